"""The web app and the CLI see read models, never the store (docs/architecture/reads.md).

Reads every module under web/ and cli/ and lists each import of `cadenza.store`; only
the modules that wire the database itself (bring its schema up to date at start, or on
`cadenza db upgrade`) may import it, and only `migrate`. (The "enforce" work adds
import-linter contracts; this test says the same for these two layers until then.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import cadenza

PACKAGE = Path(cadenza.__file__).parent
LAYERS = ("web", "cli")

# module (relative to the package) -> the store modules it may import, and why:
# these are where an app wires its database, not where anything is read.
ALLOWED = {
    "web/app.py": {"cadenza.store.migrate"},  # refuses to serve an out-of-date schema
    "cli/db.py": {"cadenza.store.migrate"},  # `cadenza db upgrade`
    "cli/serve.py": {"cadenza.store.migrate"},  # `cadenza serve` upgrades first
}


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = module.removesuffix(".py").split("/")
    base = ["cadenza", *parts[: len(parts) - node.level]]
    return ".".join(base + ([node.module] if node.module else []))


def _store_imports(path: Path, root: Path = PACKAGE) -> set[tuple[str, int]]:
    """Each (imported store module, line) in the file, `from cadenza.store import x`
    counting as `cadenza.store.x`; `root` is the package's folder."""
    module = path.relative_to(root).as_posix()
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            if source == "cadenza":
                names = [f"cadenza.{alias.name}" for alias in node.names]
            elif source == "cadenza.store":
                names = [f"cadenza.store.{alias.name}" for alias in node.names]
            else:
                names = [source]
        else:
            continue
        for name in names:
            if name == "cadenza.store" or name.startswith("cadenza.store."):
                found.add((name, node.lineno))
    return found


def _modules() -> list[Path]:
    return sorted(p for layer in LAYERS for p in (PACKAGE / layer).rglob("*.py"))


def test_web_and_cli_modules_do_not_import_the_store():
    offending = []
    for path in _modules():
        module = path.relative_to(PACKAGE).as_posix()
        for name, line in sorted(_store_imports(path)):
            if name not in ALLOWED.get(module, set()):
                offending.append(f"{module}:{line} imports {name}")
    assert not offending, (
        "web/ and cli/ get read models from the services, not ORM rows "
        "(docs/architecture/reads.md):\n" + "\n".join(offending)
    )


def test_every_listed_exception_is_still_needed():
    """An exception nobody uses any more is taken off the list, so it cannot be reused."""
    for module, allowed in ALLOWED.items():
        used = {name for name, _ in _store_imports(PACKAGE / module)}
        assert allowed <= used, f"{module} no longer imports {sorted(allowed - used)}"


def test_the_check_sees_every_spelling_of_a_store_import(tmp_path):
    """The check would pass vacuously if it missed a form: each of these is caught."""
    layer = tmp_path / "web"
    layer.mkdir()
    (layer / "sample.py").write_text(
        "import cadenza.store.models\n"
        "from cadenza.store.models import Contact\n"
        "from cadenza import store\n"
        "from ..store import db\n",
        encoding="utf-8",
    )
    names = sorted(_store_imports(layer / "sample.py", tmp_path))
    assert names == [
        ("cadenza.store", 3),
        ("cadenza.store.db", 4),
        ("cadenza.store.models", 1),
        ("cadenza.store.models", 2),
    ]

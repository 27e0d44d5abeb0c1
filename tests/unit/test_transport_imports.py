"""Transports know settings values, not the database; the connection-test service knows a
factory, not the engine (the layers only call downwards: docs/architecture/transports.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import cadenza

SRC = Path(cadenza.__file__).parent


def imports_of(path: Path, package: str) -> list[str]:
    """The modules `path` imports from `package` (or its submodules)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return sorted(m for m in found if m == package or m.startswith(package + "."))


def test_the_transports_never_import_the_store():
    transports = sorted((SRC / "engine" / "transports").glob("*.py"))
    assert {p.name for p in transports} >= {"base.py", "capture.py", "factory.py", "smtp.py"}
    found = {p.name: imports_of(p, "cadenza.store") for p in transports}
    assert {name: modules for name, modules in found.items() if modules} == {}


def test_the_connection_test_service_never_imports_the_engine():
    service = SRC / "services" / "accounts" / "connection_tests.py"
    assert imports_of(service, "cadenza.engine") == []


def test_the_check_sees_both_forms_of_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import cadenza.store.db\nfrom cadenza.store.models import Mailbox\n"
        "from cadenza.storage import x\n"
    )
    assert imports_of(sample, "cadenza.store") == ["cadenza.store.db", "cadenza.store.models"]

"""Mutation testing of the modules that carry Cadenza's guarantees: `make mutation`.

    make mutation                                  # every module below, one after another
    make mutation MODULE=cadenza.domain.throttle   # one module, with its own fast tests
    make mutation MODULE=cadenza.services.delivery # a group: its claims, handover, recovery

Each module is mutated by mutmut (its settings: [tool.mutmut] in pyproject.toml) and
tried against the tests listed for it here only, not the whole suite: that is what
makes one module a matter of minutes. Each run happens in its own scratch directory,
.mutation/<module>/, so the working tree is never touched, a second module does not
throw away the first one's results, and a re-run tries only the mutants of functions
that changed. mutmut keeps a survivor's verdict while its function is unchanged, even
after a new test: delete .mutation/<module>/ to try every mutant again. One child
process (the machine is shared); MUTATION_CHILDREN raises it. The score is printed
per module and appended to .mutation/scores.txt; docs/testing.md ("Mutation
testing") keeps the figures and explains every survivor.
Browse survivors with `cd .mutation/<module> && ../../.venv/bin/mutmut browse`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from mutmut.stats import status_by_exit_code  # its verdict per exit code

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = ROOT / ".mutation"
SQLITE_ONLY = ["-k", "not postgresql"]  # the engine's logic; PostgreSQL's locks have their own

# module -> (its source files, the fast tests that guard it, extra pytest arguments)
MODULES: dict[str, tuple[list[str], list[str], list[str]]] = {
    "cadenza.domain.throttle": (
        ["src/cadenza/domain/throttle.py"],
        ["tests/unit/test_throttle.py"],
        [],
    ),
    "cadenza.domain.schedule": (
        ["src/cadenza/domain/schedule.py"],
        ["tests/unit/test_schedule.py"],
        [],
    ),
    "cadenza.domain.link_tokens": (
        ["src/cadenza/domain/link_tokens.py"],
        [
            "tests/unit/test_link_tokens.py",
            "tests/unit/test_link_token_reasons.py",
            "tests/unit/test_tracking_html.py",
        ],
        [],
    ),
    "cadenza.domain.inbound": (
        # classification and parsing; bookings.py (issue 16's booking webhooks, not
        # issue 19's list) is guarded by its API tests and `make breaks`
        [
            "src/cadenza/domain/inbound/bounce.py",
            "src/cadenza/domain/inbound/autoreply.py",
            "src/cadenza/domain/inbound/classify.py",
            "src/cadenza/domain/inbound/parse.py",
            "src/cadenza/domain/inbound/postmark.py",
        ],
        [
            "tests/unit/test_inbound.py",
            "tests/unit/test_inbound_parsing.py",
            "tests/unit/test_bounce_rules.py",
            "tests/unit/test_autoreply_rules.py",
            "tests/unit/test_postmark_events.py",  # Postmark's events (postmark.py)
            "tests/api/test_events_api.py",  # the same over HTTP
        ],
        SQLITE_ONLY,
    ),
    "cadenza.services.signals.inbound": (
        ["src/cadenza/services/signals/inbound.py"],
        ["tests/integration/test_inbox_matching.py", "tests/integration/test_signals.py"],
        SQLITE_ONLY,
    ),
    # The delivery protocol, one module per file: each with the tests that drive it
    # directly (test_delivery_*), on SQLite, and for the hand-over the PostgreSQL races
    # too (test_delivery_races has no SQLite variant, so `-k` keeps it).
    # MODULE=cadenza.services.delivery runs all three.
    "cadenza.services.delivery.claims": (
        ["src/cadenza/services/delivery/claims.py"],
        [
            "tests/integration/test_delivery_claims.py",
            "tests/integration/test_delivery_guarantees.py",
            "tests/integration/test_engine.py",  # throttles, send windows, render failures
            "tests/integration/test_task_reminders.py",  # reminders and digests sent
            "tests/integration/test_digest_claims.py",  # which digests, their lines
            "tests/integration/test_claim_locks.py",  # PostgreSQL: skipped, not waited for
        ],
        SQLITE_ONLY,
    ),
    "cadenza.services.delivery.handover": (
        ["src/cadenza/services/delivery/handover.py"],
        [
            "tests/integration/test_delivery_record.py",
            "tests/integration/test_delivery_guarantees.py",
            "tests/integration/test_delivery_races.py",  # PostgreSQL's row lock at hand-over
            "tests/integration/test_circuit_breaker.py",  # refusals that pause the mailbox
            "tests/integration/test_batched_handover.py",  # one commit for many mailboxes
            "tests/integration/test_task_reminders.py",  # reminders and digests handed over
            "tests/integration/test_sequence_counters.py",  # the figures a send moves
        ],
        SQLITE_ONLY,
    ),
    "cadenza.services.delivery.recovery": (
        ["src/cadenza/services/delivery/recovery.py"],
        [
            "tests/integration/test_delivery_recovery.py",
            "tests/integration/test_delivery_guarantees.py",
            "tests/integration/test_task_reminders.py",  # an unsent digest given back
            "tests/integration/test_sequence_counters.py",  # the figures a lost send moves
        ],
        SQLITE_ONLY,
    ),
    "cadenza.web.ui.session": (
        ["src/cadenza/web/ui/session.py"],
        [
            "tests/ui/test_session_rules.py",
            "tests/ui/test_guards_http.py",
            "tests/ui/test_sessions_http.py",
        ],
        SQLITE_ONLY,
    ),
    # The access policy: its rules as pure functions, then the same through the API.
    "cadenza.domain.policy": (
        ["src/cadenza/domain/policy.py"],
        [
            "tests/unit/test_policy.py",
            "tests/unit/test_policy_denials.py",
            "tests/api/test_authorization_matrix.py",
        ],
        SQLITE_ONLY,
    ),
}
# Names that stand for several modules above.
GROUPS: dict[str, list[str]] = {
    "cadenza.services.delivery": [
        "cadenza.services.delivery.claims",
        "cadenza.services.delivery.handover",
        "cadenza.services.delivery.recovery",
    ],
}


def base_settings() -> tuple[str, dict]:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    without = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", text)
    return without, tomllib.loads(text).get("tool", {}).get("mutmut", {})


def toml_value(value) -> str:
    return json.dumps(value)  # strings, numbers, booleans and lists of them: valid TOML too


def prepare(module: str) -> Path | None:
    files, tests, extra = MODULES[module]
    if not all(list(ROOT.glob(f)) for f in files) or not all((ROOT / t).exists() for t in tests):
        print(f"{module}: not there yet (needs {files} and {tests}); skipped")
        return None
    work = SCRATCH / module
    work.mkdir(parents=True, exist_ok=True)
    for name in ("src", "tests"):
        link = work / name
        if not link.exists():
            link.symlink_to(ROOT / name)
    pyproject, shared = base_settings()
    settings = {
        **shared,
        "only_mutate": files,
        "pytest_add_cli_args_test_selection": tests,
        "pytest_add_cli_args": [
            *shared.get("pytest_add_cli_args", []),
            *extra,
        ],
    }
    section = "\n".join(f"{key} = {toml_value(value)}" for key, value in settings.items())
    (work / "pyproject.toml").write_text(f"{pyproject.rstrip()}\n\n[tool.mutmut]\n{section}\n")
    return work


def score(work: Path, files: list[str]) -> Counter:
    counts: Counter = Counter()
    for pattern in files:
        for path in (work / "mutants").glob(pattern + ".meta"):
            meta = json.loads(path.read_text())
            for exit_code in meta.get("exit_code_by_key", {}).values():
                counts[status_by_exit_code[exit_code]] += 1
    return counts


def run(module: str) -> Counter | None:
    work = prepare(module)
    if work is None:
        return None
    children = os.environ.get("MUTATION_CHILDREN", "1")
    mutmut = str(Path(sys.executable).with_name("mutmut"))
    subprocess.run([mutmut, "run", "--max-children", children], cwd=work, check=False)
    counts = score(work, MODULES[module][0])
    tried = sum(counts.values()) - counts["skipped"] - counts["not checked"]
    killed = counts["killed"] + counts["timeout"] + counts["caught by type check"]
    percent = 100 * killed / tried if tried else 0.0
    line = (
        f"{datetime.now(UTC):%Y-%m-%d} {module}: {killed}/{tried} killed ({percent:.1f}%) "
        + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    )
    print(line)
    with (SCRATCH / "scores.txt").open("a") as scores:
        scores.write(line + "\n")
    survivors = subprocess.run(
        [mutmut, "results"], cwd=work, capture_output=True, text=True, check=False
    ).stdout
    print(survivors)
    return counts


def main(argv: list[str]) -> int:
    wanted = [m for name in argv or list(MODULES) for m in GROUPS.get(name, [name])]
    unknown = [m for m in wanted if m not in MODULES]
    if unknown:
        print(
            f"unknown module(s) {unknown}; choose from: {', '.join([*MODULES, *GROUPS])}",
            file=sys.stderr,
        )
        return 2
    for module in wanted:
        run(module)
    return 0


if __name__ == "__main__":
    sys.exit(main([a for a in sys.argv[1:] if a]))

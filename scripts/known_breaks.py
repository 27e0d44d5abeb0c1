"""The breaks of issue 19 §2, put back one at a time, each expected to fail its tests.

    make breaks                      # every break below, one after another
    make breaks BREAK=handover-owner # one (or several, separated by spaces)
    python scripts/known_breaks.py --list

Issue 19 §2 lists breaks of the code that went unnoticed: no test failed with them.
Tests were written for each and checked by hand, once; the code has moved since, and a
check by hand cannot be repeated. This script repeats it. Each break below is a small
text of today's code (`original`, found exactly once in its file) and what makes the
break (`broken`): the script copies src/ and tests/ to a scratch directory,
.breaks/<id>/, so the working tree is never touched, puts the break in there, and runs
only the tests listed for it. pytest failing (exit 1) means the break is caught;
passing (exit 0) means it is NOT caught; anything else (a collection or usage error, a
timeout) is an error of the entry, shown with the end of pytest's output.

Before the breaks, each distinct set of tests is run once on the unbroken copy: a
test that fails anyway proves nothing about a break.

When the code moves, an `original` may no longer be found, or be found twice: the
script then stops (exit 2) and names the entry, which must be brought up to date
(docs/testing.md, "Issue 19 §2: the breaks, re-checked").

The copy is imported, never the working tree nor the editable install of the
virtualenv (a .pth file naming another checkout's src/): PYTHONPATH puts the copy's
src/ first, pytest runs from the copy with its own rootdir, and every run first
checks that the broken module is imported from the copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = ROOT / ".breaks"
# What pytest needs besides src/ and tests/: its settings ([tool.pytest.ini_options]).
COPIED = ["src", "tests", "pyproject.toml"]
PYTEST = ["-p", "no:cacheprovider", "-q", "-x"]
SQLITE_ONLY = "not postgresql"  # the engine's logic; PostgreSQL's locks have their own tests
TIMEOUT = 900  # seconds for one pytest run: a break that hangs is an error, not a catch
CAUGHT, NOT_CAUGHT, ERROR = "caught", "NOT CAUGHT", "error"


@dataclass(frozen=True)
class Break:
    id: str
    words: str  # the wording
    file: str
    original: str  # found exactly once in `file`
    broken: str  # what replaces it
    tests: list[str]  # pytest files or node ids
    select: str | None = None  # pytest -k

    def pytest_args(self) -> list[str]:
        return [*self.tests, *(["-k", self.select] if self.select else [])]


HANDOVER = "src/cadenza/services/delivery/handover.py"
CLAIMS = "src/cadenza/services/delivery/claims.py"
BOUNCE = "src/cadenza/domain/inbound/bounce.py"
INBOX = "src/cadenza/services/signals/inbound.py"
RACES = "tests/integration/test_delivery_races.py"  # PostgreSQL only: no -k
# What drives the claim directly, on a frozen clock: its reads, slots and throttles.
CLAIM_TESTS = ["tests/integration/test_delivery_claims.py", "tests/integration/test_engine.py"]

BREAKS: list[Break] = [
    Break(
        "handover-owner",
        "The hand-over's owner condition removed (`locked_by == worker`)",
        HANDOVER,
        'owned = and_(StepRun.locked_by == bindparam("worker"), *conditions)',
        "owned = and_(StepRun.id.is_not(None), *conditions)",
        ["tests/integration/test_delivery_record.py"],
        SQLITE_ONLY,
    ),
    Break(
        "handover-lease",
        "The hand-over's lease condition removed (`StepRun.status == SENDING`)",
        HANDOVER,
        "_owned_by_worker(StepRun.status == SENDING),",
        "_owned_by_worker(),",
        ["tests/integration/test_delivery_record.py"],
        SQLITE_ONLY,
    ),
    Break(
        "handover-stale-lease",
        "The stale-lease branch of the hand-over (not marked `handing` -> SKIP) never reached",
        HANDOVER,
        "    slots = [c for c in going if c.message_pk in handed]",
        "    slots = going",
        ["tests/integration/test_delivery_record.py"],
        SQLITE_ONLY,
    ),
    Break(
        "handover-row-lock",
        "PostgreSQL's row locks at hand-over removed (the state read without FOR UPDATE)",
        HANDOVER,
        '    if dialect == "postgresql":\n        return query.with_for_update(',
        "    if False:\n        return query.with_for_update(",
        [RACES],
    ),
    Break(
        "daily-limit-in-flight",
        "In-flight messages no longer counted toward the daily limit",
        CLAIMS,
        "            or_(Message.sent_at > now - timedelta(hours=24), _in_flight()),\n",
        "            Message.sent_at > now - timedelta(hours=24),\n",
        ["tests/integration/test_delivery_guarantees.py"],
        SQLITE_ONLY,
    ),
    Break(
        "auth-failure-attempts",
        "The attempts counter no longer reset after an authentication failure",
        HANDOVER,
        "    run.attempts -= 1  # waiting for the mailbox to be fixed is not a failed try",
        "    pass",
        ["tests/integration/test_delivery_record.py"],
        SQLITE_ONLY,
    ),
    Break(
        "held-follow-up-window",
        "The held-follow-up branch of the send window disabled",
        CLAIMS,
        "            if allowed_from > at:  # no longer due",
        "            if False:  # no longer due",
        ["tests/integration/test_delivery_claims.py"],
        SQLITE_ONLY,
    ),
    Break(
        "bounce-5xx-delayed",
        "Bounce classification: 5.x.x with Action `delayed`",
        BOUNCE,
        'return self.status.startswith("5") and self.action not in ("delayed", "relayed")',
        'return self.status.startswith("5")',
        ["tests/unit/test_bounce_rules.py"],
    ),
    Break(
        "bounce-no-status",
        "Bounce classification: a report without a Status field",
        BOUNCE,
        'fallback = "4.0.0" if action == "delayed" else "5.0.0"',
        'fallback = "4.0.0"',
        ["tests/unit/test_bounce_rules.py"],
    ),
    Break(
        "bounce-wording",
        "Bounce classification: temporary/permanent wording",
        BOUNCE,
        "    if _TEMPORARY_WORDS.search(text) and not _PERMANENT_WORDS.search(text):",
        "    if False:",
        ["tests/unit/test_bounce_rules.py"],
    ),
    Break(
        "bounce-smtp-code",
        "Bounce classification: an SMTP code read from text",
        BOUNCE,
        "    code = _SMTP_CODE.search(text)\n",
        "    code = None\n",
        ["tests/unit/test_bounce_rules.py"],
    ),
    Break(
        "inbox-sender-mailbox",
        "Inbox matching: sender matching not limited to the mailbox that sent",
        INBOX,
        "            Enrollment.mailbox_id == mailbox.id,\n",
        "",
        ["tests/integration/test_inbox_matching.py"],
        SQLITE_ONLY,
    ),
    Break(
        "inbox-own-copy",
        "Inbox matching: our own copy of a message",
        INBOX,
        "        if inbound.sender == mailbox.from_email:",
        "        if False:",
        ["tests/integration/test_inbox_matching.py"],
        SQLITE_ONLY,
    ),
    Break(
        "inbox-other-recipient",
        "Inbox matching: a bounce about another recipient",
        INBOX,
        "        if elsewhere:\n",
        "        if False:\n",
        ["tests/integration/test_inbox_matching.py"],
        SQLITE_ONLY,
    ),
    Break(
        "session-max-age",
        "Sessions: the maximum age",
        "src/cadenza/web/ui/session.py",
        "self._serializer.loads(cookie, max_age=SESSION_MAX_AGE)",
        "self._serializer.loads(cookie)",
        ["tests/ui/test_guards_http.py"],
        SQLITE_ONLY,
    ),
    Break(
        "session-csrf-at-sign-in",
        "Sessions: a fresh CSRF token at sign-in",
        "src/cadenza/web/ui/session.py",
        '            "csrf": secrets.token_urlsafe(32),\n            "uid": user.id,',
        '            "csrf": self.csrf,\n            "uid": user.id,',
        ["tests/ui/test_guards_http.py"],
        SQLITE_ONLY,
    ),
    Break(
        "web-task-ownership",
        "The web app's ownership check on tasks (a task's page)",
        "src/cadenza/web/ui/tasks.py",
        "    item = task_queue.queue_item(ctx, task_id, actor_id=user.id)\n"
        "    return _work_page(request, ctx, user.id, item, q)\n",
        "    item = task_queue.queue_item(ctx, task_id)\n"
        "    return _work_page(request, ctx, user.id, item, q)\n",
        ["tests/ui/test_guards_http.py", "tests/ui/test_ownership_http.py"],
        SQLITE_ONLY,
    ),
    Break(
        "web-outbox-ownership",
        "The web app's ownership check on the outbox (a message's page)",
        "src/cadenza/web/ui/outbox.py",
        "message=outbox.get_message(ctx, message_id, actor_id=user.id)[0],",
        "message=outbox.get_message(ctx, message_id)[0],",
        ["tests/ui/test_guards_http.py", "tests/ui/test_ownership_http.py"],
        SQLITE_ONLY,
    ),
    Break(
        "web-task-list-ownership",
        "The web app's ownership check on tasks (the task list)",
        "src/cadenza/web/ui/tasks.py",
        "ctx, owner_id=user.id, status=TaskStatus.OPEN, limit=200, actor_id=user.id, where=where",
        "ctx, owner_id=None, status=TaskStatus.OPEN, limit=200, actor_id=None, where=where",
        ["tests/ui/test_guards_http.py", "tests/ui/test_ownership_http.py"],
        SQLITE_ONLY,
    ),
    Break(
        "web-task-skip-ownership",
        "The web app's ownership check on tasks (skipping one)",
        "src/cadenza/web/ui/tasks.py",
        "    tasks.skip_task(ctx, task_id, actor_id=user.id)\n",
        "    tasks.skip_task(ctx, task_id)\n",
        ["tests/ui/test_guards_http.py", "tests/ui/test_ownership_http.py"],
        SQLITE_ONLY,
    ),
    Break(
        "web-outbox-list-ownership",
        "The web app's ownership check on the outbox (the list)",
        "src/cadenza/web/ui/outbox.py",
        "messages=outbox.list_messages(ctx, limit=50, actor_id=user.id),",
        "messages=outbox.list_messages(ctx, limit=50),",
        ["tests/ui/test_guards_http.py", "tests/ui/test_ownership_http.py"],
        SQLITE_ONLY,
    ),
    Break(
        "web-outbox-review-ownership",
        "The web app's ownership check on the outbox (reviewing an unknown send)",
        "src/cadenza/web/ui/outbox.py",
        'outbox.resolve_unknown(ctx, message_id, delivered=delivered == "yes", actor_id=user.id)',
        'outbox.resolve_unknown(ctx, message_id, delivered=delivered == "yes")',
        ["tests/ui/test_guards_http.py", "tests/ui/test_ownership_http.py"],
        SQLITE_ONLY,
    ),
    Break(
        "webhook-timestamp-tolerance",
        "Webhooks: the timestamp tolerance of signatures (inbound bookings)",
        "src/cadenza/domain/inbound/bookings.py",
        "    if abs(now - int(stamps[0])) > CALENDLY_TOLERANCE_SECONDS:",
        "    if False:",
        ["tests/api/test_booking_webhooks.py"],
        SQLITE_ONLY,
    ),
    Break(
        "webhook-signature-tolerance",
        "Webhooks: the timestamp tolerance of signatures (what a receiver of ours checks)",
        "src/cadenza/domain/webhooks.py",
        "    if abs(now - timestamp) > tolerance:",
        "    if False:",
        ["tests/unit/test_webhook_signature.py"],
    ),
    Break(
        "webhook-4xx-delivered",
        "Webhooks: 4xx answers counted as delivered",
        "src/cadenza/services/events_out/webhooks.py",
        "if status_code is not None and 200 <= status_code < 300:",
        "if status_code is not None and (200 <= status_code < 300 or 400 <= status_code < 500):",
        ["tests/integration/test_webhook_answers.py"],
        SQLITE_ONLY,
    ),
    Break(
        "handover-enrollment-state",
        "Unenroll (and pause) racing the hand-over on PostgreSQL, proven both ways",
        HANDOVER,
        "            state == EnrollmentState.ACTIVE\n            or (claim.is_reminder",
        "            True\n            or (claim.is_reminder",
        [RACES],
    ),
    Break(
        "stop-enrollment-lock",
        "Unenroll (and pause) racing the hand-over: their lock on the enrollment removed",
        "src/cadenza/services/enrollment/control.py",
        "enrollment = fetch(session, Enrollment, enrollment_id, for_update=True)",
        "enrollment = fetch(session, Enrollment, enrollment_id, for_update=False)",
        [RACES],
    ),
    # Not issue 19's list: the claim's batched read is built once per process
    # (`_due_runs_statement`, lru_cache), before mutmut switches a mutant on, so its
    # mutants survive unseen (docs/testing.md, "What the tool does not see"). Its
    # conditions are checked here instead, each broken in the source.
    Break(
        "claim-read-recheck",
        "The claim's read: the due conditions not repeated on the locked rows",
        CLAIMS,
        "            *_due_by_horizon(opaque=True),\n",
        "",
        ["tests/integration/test_claim_locks.py"],
    ),
    Break(
        "claim-read-by-due-index",
        "The claim's read: the re-checked conditions left open to the due index "
        "(PostgreSQL with lagging statistics reads every due run)",
        CLAIMS,
        "            *_due_by_horizon(opaque=True),\n",
        "            *_due_by_horizon(),\n",
        ["tests/integration/test_query_plans.py"],
    ),
    Break(
        "claim-read-due-order",
        "The claim's read: a mailbox's runs not taken in due order",
        CLAIMS,
        "        .order_by(StepRun.due_at, StepRun.id)\n        .limit(",
        "        .order_by(StepRun.id.desc())\n        .limit(",
        CLAIM_TESTS,
        SQLITE_ONLY,
    ),
    Break(
        "claim-read-per-mailbox",
        "The claim's read: every mailbox's range read with the first mailbox's id",
        CLAIMS,
        'StepRun.mailbox_id == bindparam(f"m{i}")',
        'StepRun.mailbox_id == bindparam("m0")',
        CLAIM_TESTS,
        SQLITE_ONLY,
    ),
    Break(
        "claim-read-pending",
        "The claim's read: runs taken whatever their status",
        CLAIMS,
        "    due = [StepRun.status == PENDING, StepRun.due_at",
        "    due = [StepRun.status.is_not(None), StepRun.due_at",
        CLAIM_TESTS,
        SQLITE_ONLY,
    ),
    Break(
        "claim-read-due",
        "The claim's read: runs taken however far ahead of their due time, not only "
        "within the horizon",
        CLAIMS,
        'StepRun.due_at <= bindparam("due_by"), _sends_email()]',
        "StepRun.due_at.is_not(None), _sends_email()]",
        CLAIM_TESTS,
        SQLITE_ONLY,
    ),
    Break(
        "claim-slot-before-due",
        "An email claimed ahead of its due time given a slot before it (sent early)",
        "src/cadenza/domain/throttle.py",
        "at = max(slot, due[i]) if due is not None and i < len(due) else slot",
        "at = slot",
        [
            *CLAIM_TESTS,
            "tests/unit/test_throttle.py",
            "tests/integration/test_sends_side_by_side.py",
        ],
        SQLITE_ONLY,
    ),
    Break(
        "gather-skips-equal-halves",
        "A hand-over gathers no send in flight when as many mailboxes are due as are sending",
        "src/cadenza/engine/sends.py",
        "if not self.sending or len(due) >= room or GATHER_SECONDS <= 0:",
        "if len(due) >= len(self.sending) or GATHER_SECONDS <= 0:",
        ["tests/integration/test_sends_side_by_side.py"],
        SQLITE_ONLY,
    ),
    Break(
        "gather-window-fixed",
        "The gather's window ignores how long recent hand-over commits took",
        "src/cadenza/engine/sends.py",
        "window = max(GATHER_SECONDS, min(self._commit_seconds, GATHER_MOST_SECONDS))",
        "window = GATHER_SECONDS",
        ["tests/integration/test_sends_side_by_side.py"],
        SQLITE_ONLY,
    ),
    Break(
        "claim-read-emails-only",
        "The claim's read: task steps taken as emails",
        CLAIMS,
        'bindparam("due_by"), _sends_email()]',
        'bindparam("due_by")]',
        CLAIM_TESTS,
        SQLITE_ONLY,
    ),
    Break(
        "claim-read-mailbox-order",
        "The claim's read: the rows not grouped by mailbox in due order",
        CLAIMS,
        ".order_by(StepRun.mailbox_id, StepRun.due_at, StepRun.id)",
        ".order_by(StepRun.id.desc())",
        CLAIM_TESTS,
        SQLITE_ONLY,
    ),
    Break(
        "address-pattern-loose",
        "The quick address pattern lets through a local part the stdlib's parser refuses",
        "src/cadenza/domain/message.py",
        '_ATEXT = r"[A-Za-z0-9!#$%&\'*+/=?^_`{|}~-]+"',
        '_ATEXT = r"[A-Za-z0-9.()!#$%&\'*+/=?^_`{|}~-]+"',
        ["tests/unit/test_message.py"],
    ),
    Break(
        "log-time-stale",
        "The text log line's time, converted once a second, is never converted again",
        "src/cadenza/logs.py",
        "if int(record.created) != second:",
        "if second < 0:",
        ["tests/unit/test_text_log_lines.py"],
    ),
    Break(
        "state-check-indexed",
        "The hand-over's state checks are plain conditions again, an index's way in",
        "src/cadenza/store/bound_rows.py",
        "    return condition.is_(True)",
        "    return condition",
        ["tests/integration/test_query_plans.py"],
        select="hand_over and postgresql",
    ),
    Break(
        "sqlite-commit-not-flushed",
        "SQLite's commits return before the WAL is on disk: a power cut undoes `handing`",
        "src/cadenza/store/db.py",
        'cursor.execute("PRAGMA synchronous=FULL")',
        'cursor.execute("PRAGMA synchronous=NORMAL")',
        ["tests/integration/test_schema.py"],
        select="reach_the_disk",
    ),
    Break(
        "libpq-on-every-connection",
        "libpq runs the per-email statements on connections where psycopg prepares too",
        "src/cadenza/store/libpq_statements.py",
        "        connection.prepare_threshold is None\n",
        "        True\n",
        ["tests/integration/test_libpq_statements.py"],
        select="postgresql",
    ),
    Break(
        "keyed-engine-prepares",
        "The hand-over's connections prepare as psycopg does: libpq's path is never taken",
        "src/cadenza/store/db.py",
        '"prepare_threshold": None,',
        '"prepare_threshold": 5,',
        ["tests/integration/test_libpq_statements.py"],
        select="postgresql",
    ),
    Break(
        "key-file-created-in-place",
        "The key file is created where it is read, and written after: read empty, at times",
        "src/cadenza/services/accounts/keys.py",
        'temporary = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.new")',
        "temporary = path",
        ["tests/integration/test_secrets_at_rest.py"],
        select="whole_or_not",
    ),
    Break(
        "libpq-lost-connection-unnamed",
        "A connection lost under libpq's path is a plain DatabaseError, not psycopg's own",
        "src/cadenza/store/libpq_statements.py",
        "    if connection.pgconn.status != pq.ConnStatus.OK:",
        "    if False:",
        ["tests/integration/test_libpq_statements.py"],
        select="lost",
    ),
    Break(
        "let-go-mailboxes-keep-their-claims",
        "A worker over its share keeps the emails it claimed of the mailboxes it lets go",
        "src/cadenza/engine/worker.py",
        "            let_go=self._offer_let_go if beside else self.sends.release,\n",
        "",
        ["tests/integration/test_batched_handover.py"],
        select="gives_back",
    ),
    Break(
        "let-go-mailbox-taken-back",
        "A mailbox let go, its last email in flight, is taken back in place of one kept",
        "src/cadenza/services/delivery/affinity.py",
        "if mailbox in mine and mailbox in noted_mine]",
        "if mailbox in mine]",
        ["tests/integration/test_batched_handover.py"],
        select="taken_back",
    ),
    Break(
        "batch-held-runs-marked-rate-limited",
        "Runs the claim's batch held back are marked as held by the mailbox's per-minute limit",
        "src/cadenza/services/delivery/claims.py",
        "    if (behind and wanted < batch_size) or len(granted) < len(sendable):",
        "    if behind or len(granted) < len(sendable):",
        ["tests/integration/test_delivery_claims.py"],
        select="behind_a_claims_batch",
    ),
    Break(
        "given-back-emails-hold-daily-room",
        "A prepared message whose run was given back still counts against the daily limit",
        "src/cadenza/services/delivery/claims.py",
        "    return or_(Message.status == MessageStatus.HANDING, prepared)",
        "    return Message.status.in_((MessageStatus.PREPARED, MessageStatus.HANDING))",
        ["tests/integration/test_delivery_claims.py"],
        select="given_back",
    ),
    Break(
        "refusal-recorded-after-the-last-check",
        "A commit checks its leaving emails before recording a refusal that disconnects them",
        HANDOVER,
        "    for claim, result in finished:\n        if claim.message_pk not in common:\n"
        "            _record(connection, ctx, claim, result, worker_id)\n"
        "    answers, going = _going(connection, claims, worker_id)\n",
        "    answers, going = _going(connection, claims, worker_id)\n"
        "    for claim, result in finished:\n        if claim.message_pk not in common:\n"
        "            _record(connection, ctx, claim, result, worker_id)\n",
        ["tests/integration/test_batched_handover.py"],
        select="login_refused",
    ),
    Break(
        "every-email-counts-a-contact-emailed",
        "Every email sent counts its contact as emailed, not only its enrollment's first",
        "src/cadenza/services/delivery/sent_steps.py",
        'step.enrollment["enrollment_id"], step.message_pk, bool(first)',
        'step.enrollment["enrollment_id"], step.message_pk, True',
        ["tests/integration/test_sequence_counters.py"],
        select="emailed_once",
    ),
    Break(
        "finished-enrollment-reads-active-in-its-session",
        "The end written by a plain statement is not set on the session's enrollment",
        "src/cadenza/services/enrollment/progress.py",
        'set_committed_value(loaded, "state", EnrollmentState.FINISHED)',
        "pass",
        ["tests/integration/test_enrollment.py"],
        select="finished_by_its_last_step",
    ),
    Break(
        "scheduled-run-hidden-from-the-sessions-enrollment",
        "A run written as a plain row does not show in the session's loaded enrollment",
        "src/cadenza/services/enrollment/progress.py",
        'session.expire(loaded, ["step_runs"])',
        "pass",
        ["tests/integration/test_enrollment.py"],
        select="already_read or plain_rows",
    ),
    Break(
        "variant-winners-read-without-variants",
        "An enroll reads the decided variant winners of a sequence that has no variants",
        "src/cadenza/services/sequences/variants.py",
        "    if not any(s.variants for s in specs):\n        return {}",
        "    if False:\n        return {}",
        ["tests/api/test_request_statements.py"],
        select="fifty_contacts",
    ),
    Break(
        "blank-token-value-not-missing",
        "A token whose value is blank (spaces) no longer counts as missing at enroll",
        "src/cadenza/domain/templates.py",
        "str(t) for t in required if _blank((context.get(t.namespace) or {}).get(t.name))",
        "str(t) for t in required if (context.get(t.namespace) or {}).get(t.name) is None",
        ["tests/unit/test_templates.py"],
        select="missing_tokens",
    ),
    Break(
        "enroll-response-steps-shared-across-zones",
        "Contacts of two zones sent at once are shown one zone's local times",
        "src/cadenza/web/routes/enrollments.py",
        "keys = [(step.step, step.due_at, step.due_at.tzinfo) for step in result.schedule]",
        "keys = [(step.step, step.due_at, None) for step in result.schedule]",
        ["tests/api/test_enrollments_api.py"],
        select="each_contacts_wall_clock",
    ),
    Break(
        "serve-heap-not-settled",
        "`cadenza serve` leaves its start's objects to the garbage collector",
        "src/cadenza/cli/serve.py",
        "    settle_heap()  # the app is built",
        "    pass  # the app is built",
        ["tests/unit/test_runtime_heap.py"],
    ),
    Break(
        "prepared-rows-unprocessed",
        "A prepared read gives the driver's values: an instant as SQLite's text, 1 for true",
        "src/cadenza/store/prepared.py",
        "        if not plan.results:\n            return rows",
        "        if plan.results is not None:\n            return rows",
        ["tests/integration/test_prepared_reads.py"],
    ),
    Break(
        "prepared-statements-unheard",
        "Statements compiled once go past SQLAlchemy's listeners: counts and plans miss them",
        "src/cadenza/store/prepared.py",
        "    listeners = connection.dispatch.before_cursor_execute\n    if listeners:",
        "    listeners = connection.dispatch.before_cursor_execute\n    if False:",
        ["tests/integration/test_prepared_reads.py", "tests/api/test_request_statements.py"],
    ),
    Break(
        "single-read-in-a-transaction",
        "The token check opens a transaction (SQLite's write lock) for its one read",
        "src/cadenza/store/db.py",
        "        with self._reads.connect() as connection:",
        "        with self._reads.begin() as connection:",
        ["tests/integration/test_prepared_reads.py"],
    ),
    Break(
        "enroll-ids-unchecked",
        "An enroll request's contact ids go to the database unchecked (True, 2**63)",
        "src/cadenza/services/enrollment/candidates.py",
        "    return sorted({i for i in ids if is_row_id(i)})",
        "    return sorted({i for i in ids if isinstance(i, int)})",
        ["tests/integration/test_prepared_reads.py"],
    ),
    Break(
        "reads-run-one-by-one",
        "The enroll request's independent reads go one round trip each on PostgreSQL",
        "src/cadenza/store/prepared.py",
        '    if connection.dialect.name != "postgresql":\n        return [prepared.rows',
        "    if True:\n        return [prepared.rows",
        ["tests/integration/test_prepared_reads.py"],
    ),
    Break(
        "reads-in-a-transaction",
        "A read session on PostgreSQL sends BEGIN and COMMIT around its statements",
        "src/cadenza/store/db.py",
        '        if self.dialect == "postgresql":\n            return self.engine.execution_',
        "        if False:\n            return self.engine.execution_",
        ["tests/integration/test_prepared_reads.py"],
    ),
    Break(
        "block-list-domain-after-first-at",
        "The block list's domain match takes what follows the first @, not the last",
        "src/cadenza/services/enrollment/candidates.py",
        "literal_column(\"'^.*@'\")",
        "literal_column(\"'^[^@]*@'\")",
        ["tests/integration/test_prepared_reads.py"],
        select="last_at_sign",
    ),
    Break(
        "read-session-writes",
        "A read session (autocommit on PostgreSQL) flushes what it was given to write",
        "src/cadenza/store/db.py",
        '        event.listen(self._readers, "before_flush", _refuse_writes)\n',
        "",
        ["tests/integration/test_prepared_reads.py"],
        select="refuses_to_write",
    ),
    Break(
        "form-ids-unicode-digits",
        "A form's or link's id is read by isdigit() alone: \"²\", which int() refuses, is a 500",
        "src/cadenza/domain/ids.py",
        "    if text.isascii() and text.isdigit() and len(text) <= longest:",
        "    if text.isdigit():",
        [
            "tests/unit/test_ids.py",
            "tests/ui/test_records_http.py",
            "tests/ui/test_enroll_count_http.py",
        ],
        select="no_number or no_row_can_have",
    ),
    Break(
        "rested-connection-not-pinged",
        "A connection the server dropped while it rested in the pool is handed out unpinged",
        "src/cadenza/store/db.py",
        "        if returned is None or _now() - returned < PING_AFTER_REST_SECONDS:",
        "        if True:",
        ["tests/integration/test_connection_pool.py"],
    ),
    Break(
        "busy-connection-pinged",
        "Every checkout pings, even of a connection back from a request a moment ago",
        "src/cadenza/store/db.py",
        "        if returned is None or _now() - returned < PING_AFTER_REST_SECONDS:",
        "        if returned is None:",
        ["tests/integration/test_connection_pool.py"],
    ),
    Break(
        "bulk-enroll-edits-ignored",
        "A contact's step edits are dropped when no step has variants",
        "src/cadenza/services/enrollment/enroll.py",
        "    if not step_edits and not any(s.variants for s in specs):",
        "    if not any(s.variants for s in specs):",
        ["tests/integration/test_enrollment.py"],
        select="theirs_alone",
    ),
    Break(
        "bulk-enroll-edited-templates-shared",
        "An edited contact's token check uses the shared steps' templates",
        "src/cadenza/services/enrollment/enroll.py",
        "    if steps is plan.specs and plan.shared_remaining is not None:",
        "    if plan.shared_remaining is not None:",
        ["tests/integration/test_enrollment.py"],
        select="theirs_alone",
    ),
    Break(
        "claims-serial-on-postgresql",
        "A PostgreSQL worker claims on its loop's thread: its hand-overs wait for each round",
        "src/cadenza/engine/worker.py",
        '        return self.ctx.db.dialect == "postgresql"',
        "        return False",
        ["tests/integration/test_claims_beside.py"],
    ),
    Break(
        "claim-holds-mailbox-row",
        "A claim locks its mailboxes' rows: a hand-over of their emails waits for its composing",
        CLAIMS,
        "    return list(session.scalars(rows))",
        "    return list(session.scalars(rows.with_for_update(skip_locked=True)))",
        ["tests/integration/test_claims_beside.py"],
    ),
    Break(
        "claim-writes-mailbox-first",
        "A claim writes a mailbox's next free slot before composing, and holds its row since",
        CLAIMS,
        "            plans.append((mailbox, granted, slots))\n",
        "            plans.append((mailbox, granted, slots))\n"
        "            mailbox.next_send_at = next_free[mailbox.id]\n",
        ["tests/integration/test_claims_beside.py"],
    ),
    Break(
        "let-go-not-offered",
        "A worker claiming beside its hand-overs keeps the claims of the mailboxes it lets go",
        "src/cadenza/engine/worker.py",
        "        self.sends.offer(functools.partial(self.sends.release, mailbox_ids))",
        "        pass",
        ["tests/integration/test_batched_handover.py"],
        select="gives_back",
    ),
    Break(
        "claim-without-hold",
        "Two claims of one mailbox plan its slots at the same time",
        CLAIMS,
        '    if session.get_bind().dialect.name == "postgresql":',
        "    if False:",
        ["tests/integration/test_claims_beside.py"],
    ),
    Break(
        "gather-holds-due-outside-heap",
        "A hand-over keeps its due mailboxes aside while offered work (a let-go) runs",
        "src/cadenza/engine/sends.py",
        "            heapq.heappush(self._ready, entry)\n"
        "        window = max(GATHER_SECONDS, min(self._commit_seconds, GATHER_MOST_SECONDS))\n"
        "        deadline = time.monotonic() + window\n"
        "        while self.sending and (left := deadline - time.monotonic()) > 0:\n"
        "            self._wait_for_a_send(None, left)\n"
        "        return self._due(self.ctx.clock.now())\n",
        "            pass\n"
        "        window = max(GATHER_SECONDS, min(self._commit_seconds, GATHER_MOST_SECONDS))\n"
        "        deadline = time.monotonic() + window\n"
        "        while self.sending and (left := deadline - time.monotonic()) > 0:\n"
        "            self._wait_for_a_send(None, left)\n"
        "        return due + self._due(self.ctx.clock.now())\n",
        ["tests/integration/test_batched_handover.py"],
        select="gathers",
    ),
    Break(
        "claims-past-what-is-held",
        "A worker claims a lagging mailbox's slots whatever it already holds of them",
        "src/cadenza/engine/worker.py",
        "            held_enough=self._held_enough(),",
        "            held_enough=(),",
        ["tests/integration/test_sends_side_by_side.py"],
        select="server_lags",
    ),
    Break(
        "held-enough-takes-places",
        "A mailbox held enough takes another mailbox's place in the claim round",
        "src/cadenza/services/worker_jobs.py",
        "        mailboxes + len(held_enough),",
        "        mailboxes,",
        ["tests/integration/test_batched_handover.py"],
        select="held_enough",
    ),
    Break(
        "held-enough-floor-one",
        "A mailbox at 10 a minute whose email waits late is not claimed ahead any more",
        "src/cadenza/engine/worker.py",
        "            if len(waiting) >= max(fill, 2):",
        "            if len(waiting) >= max(fill, 1):",
        ["tests/integration/test_sends_side_by_side.py"],
        select="ten_a_minute",
    ),
]


class EntryOutOfDate(Exception):
    """An entry's original text is not in its file exactly once: the code moved."""


def copy_tree(work: Path) -> None:
    """A fresh copy of what the tests need, without bytecode of the working tree."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, work / name, ignore=ignore, symlinks=True)
        else:
            shutil.copy2(source, work / name)


def check_entry(entry: Break, root: Path = ROOT) -> None:
    text = (root / entry.file).read_text(encoding="utf-8")
    found = text.count(entry.original)
    if found != 1:
        raise EntryOutOfDate(
            f"{entry.id}: its original text is found {found} times in {entry.file} "
            f"(must be once): the code moved, bring the entry up to date\n"
            f"--- original ---\n{entry.original}"
        )


def apply(entry: Break, work: Path) -> None:
    path = work / entry.file
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(entry.original, entry.broken, 1), encoding="utf-8")


def module_of(file: str) -> str:
    """src/cadenza/web/ui/session.py -> cadenza.web.ui.session"""
    parts = Path(file).relative_to("src").with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def environment(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(work / "src")  # before site-packages and its editable .pth
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # the copy's modules compile once, not per process
    return env


def imports_the_copy(work: Path, file: str) -> None:
    """The module is imported from the copy, not the working tree nor the installed one."""
    probe = f"import {module_of(file)} as m; print(m.__file__)"
    found = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=work,
        env=environment(work),
        capture_output=True,
        text=True,
        check=False,
    )
    origin = found.stdout.strip()
    if found.returncode != 0 or Path(origin).resolve() != (work / file).resolve():
        raise RuntimeError(f"{module_of(file)} is imported from {origin!r}, not {work / file}")


def run_pytest(work: Path, args: list[str]) -> tuple[int | None, str, float]:
    """pytest's exit code (None: timed out), its output, and the seconds."""
    command = [sys.executable, "-m", "pytest", "--rootdir", str(work), *PYTEST, *args]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command,
            cwd=work,
            env=environment(work),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout or b""
        if isinstance(partial, bytes):
            partial = partial.decode(errors="replace")
        code, output = None, f"{partial}\ntimed out after {TIMEOUT} s"
    return code, output, time.monotonic() - started


def tail(output: str, lines: int = 15) -> str:
    return "\n".join(output.rstrip().splitlines()[-lines:])


def first_failure(output: str) -> str:
    """The test that failed first, from pytest's short summary (-ra)."""
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.partition(" ")[2].split(" - ")[0]
    return "?"


def baseline(entries: list[Break]) -> bool:
    """Each distinct test set passes on the unbroken copy."""
    work = SCRATCH / "_unbroken"
    copy_tree(work)
    imports_the_copy(work, entries[0].file)
    passing = True
    for args in dict.fromkeys(tuple(e.pytest_args()) for e in entries):
        code, output, seconds = run_pytest(work, list(args))
        shown = " ".join(args)
        if code == 0:
            print(f"unbroken: {shown}: pass ({seconds:.0f} s)", flush=True)
        else:
            print(f"unbroken: {shown}: FAILS (exit {code}): no break can be judged\n{tail(output)}")
            passing = False
    return passing


def verdict(code: int | None) -> str:
    if code == 1:
        return CAUGHT
    if code == 0:
        return NOT_CAUGHT
    return ERROR


def try_break(entry: Break) -> tuple[str, float]:
    work = SCRATCH / entry.id
    copy_tree(work)
    check_entry(entry, work)
    apply(entry, work)
    imports_the_copy(work, entry.file)
    code, output, seconds = run_pytest(work, entry.pytest_args())
    result = verdict(code)
    if result == CAUGHT:
        print(f"{entry.id}: caught by {first_failure(output)} ({seconds:.0f} s)", flush=True)
    else:
        print(f"{entry.id}: {result} ({seconds:.0f} s): pytest exit {code}, its output ends:")
        print(tail(output), flush=True)
    return result, seconds


def table(rows: list[tuple[Break, str, float]]) -> str:
    lines = [f"{'id':<28} {'file':<44} {'verdict':<10} {'s':>4}  tests"]
    for entry, result, seconds in rows:
        file = entry.file.removeprefix("src/cadenza/")
        tests = " ".join(t.removeprefix("tests/") for t in entry.tests)
        tests += f' -k "{entry.select}"' if entry.select else ""
        lines.append(f"{entry.id:<28} {file:<44} {result:<10} {seconds:>4.0f}  {tests}")
    return "\n".join(lines)


def list_breaks() -> None:
    for entry in BREAKS:
        print(f"{entry.id:<28} {entry.words}")


def main(argv: list[str]) -> int:
    if "--list" in argv:
        list_breaks()
        return 0
    known = {entry.id: entry for entry in BREAKS}
    unknown = [name for name in argv if name not in known]
    if unknown:
        print(f"unknown break(s) {unknown}; see --list", file=sys.stderr)
        return 2
    entries = [known[name] for name in argv] if argv else BREAKS
    try:
        for entry in entries:
            check_entry(entry)
    except EntryOutOfDate as exc:
        print(exc, file=sys.stderr)
        return 2
    started = time.monotonic()
    if not baseline(entries):
        return 1
    rows = [(entry, *try_break(entry)) for entry in entries]
    print()
    print(table(rows))
    missed = [entry.id for entry, result, _ in rows if result != CAUGHT]
    print(f"\n{len(rows) - len(missed)}/{len(rows)} caught in {time.monotonic() - started:.0f} s")
    if missed:
        print(f"not caught or in error: {', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main([a for a in sys.argv[1:] if a]))

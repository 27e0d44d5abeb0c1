"""The closed vocabularies (domain/enums.py): every value the code stores or compares is a
member, and no layer spells one as a bare string (docs/architecture/enums.md)."""

from __future__ import annotations

import ast
import re
from enum import StrEnum
from pathlib import Path

import pytest

import cadenza
from cadenza.domain import enums, webhooks
from cadenza.domain.delivery_outcome import DeliveryOutcome
from cadenza.domain.enums import (
    LIVE_ENROLLMENT_STATES,
    EnrollmentState,
    EventKind,
    MessageStatus,
    UnenrollReason,
    WebhookEvent,
)
from cadenza.services.automation import rules
from cadenza.services.delivery import outbox
from cadenza.services.enrollment import control
from cadenza.services.signals import effects
from cadenza.store.models import Base
from cadenza.store.types import StrEnumType

SRC = Path(cadenza.__file__).parent
TEMPLATES = SRC / "web" / "ui" / "templates"

# Every column typed with an enum, and the vocabulary it holds.
TYPED_COLUMNS = {
    f"{table.name}.{column.name}": column.type
    for table in Base.metadata.sorted_tables
    for column in table.columns
    if isinstance(column.type, StrEnumType)
}

# The attributes that hold a typed value, wherever they are read (rows, read models).
TYPED_ATTRIBUTES = {"state", "status", "reason", "wait_reason", "outcome", "pause_reason", "role"}


def test_the_states_the_issue_names_are_typed_columns():
    expected = {
        "enrollments.state": EnrollmentState,
        "enrollments.reason": UnenrollReason,
        "step_runs.status": enums.StepRunStatus,
        "step_runs.wait_reason": enums.StepWaitReason,
        "messages.status": MessageStatus,
        "tasks.status": enums.TaskStatus,
        "email_events.kind": EventKind,
        "delivery_attempts.outcome": DeliveryOutcome,
        "webhook_deliveries.status": enums.WebhookDeliveryStatus,
        "list_enroll_jobs.status": enums.ListJobStatus,
        "contact_lists.kind": enums.ListKind,
        "automation_runs.outcome": enums.AutomationOutcome,
        "automation_events.type": enums.AutomationEventType,
        "mailboxes.auth_method": enums.MailboxAuth,
        "mailboxes.oauth_provider": enums.OAuthProvider,
        "oauth_states.provider": enums.OAuthProvider,
        "users.reminder_timing": enums.ReminderTiming,
        "task_digests.status": enums.DigestStatus,
        "sequences.sharing": enums.Sharing,
        "email_templates.sharing": enums.Sharing,
        "snippets.sharing": enums.Sharing,
    }
    assert {name: t.enum for name, t in TYPED_COLUMNS.items()} == expected


@pytest.mark.parametrize("name", sorted(TYPED_COLUMNS))
def test_every_value_fits_its_column(name):
    column_type = TYPED_COLUMNS[name]
    longest = max(len(member.value) for member in column_type.enum)
    assert longest <= column_type.impl.length


@pytest.mark.parametrize("name", sorted(TYPED_COLUMNS))
def test_a_value_outside_the_vocabulary_is_refused_with_the_allowed_ones(name):
    column_type = TYPED_COLUMNS[name]
    with pytest.raises(ValueError, match=column_type.enum.__name__) as refused:
        column_type.process_bind_param("no-such-value", None)
    assert all(member.value in str(refused.value) for member in column_type.enum)


def _values(column: str) -> set[str]:
    return {member.value for member in TYPED_COLUMNS[column].enum}


def test_partial_indexes_name_values_of_their_columns_vocabulary():
    """The SQL of the partial indexes is the one place values stay literal (it must
    match the migrations); each value it names must still be a member."""
    checked = 0
    for table in Base.metadata.sorted_tables:
        for index in table.indexes:
            where = index.dialect_options["postgresql"].get("where")
            if where is None:
                continue
            for column, value in re.findall(r"(\w+) = '(\w+)'", str(where)):
                assert value in _values(f"{table.name}.{column}")
                checked += 1
            for column, values in re.findall(r"(\w+) IN \(([^)]*)\)", str(where)):
                for value in re.findall(r"'(\w+)'", values):
                    assert value in _values(f"{table.name}.{column}")
                    checked += 1
    assert checked >= 7


def test_the_vocabularies_that_services_validate_against_are_the_enums():
    assert set(control.UNENROLL_REASONS) == set(UnenrollReason) - {
        UnenrollReason.AUTOMATION,
        UnenrollReason.TASK_OUTCOME,
    }
    assert set(rules.ENDING_REASONS) == set(UnenrollReason)
    assert tuple(MessageStatus) == outbox.MESSAGE_STATUSES
    assert tuple(WebhookEvent) == webhooks.EVENT_TYPES
    assert set(LIVE_ENROLLMENT_STATES) == {EnrollmentState.ACTIVE, EnrollmentState.PAUSED}


def test_every_trigger_reads_an_event_type_and_the_reason_ones_name_their_reason():
    from cadenza.services.automation import runner
    from cadenza.services.events_out import triggers

    assert set(triggers.TRIGGER_EVENTS) == set(enums.AutomationTrigger) == set(rules.TRIGGER_KEYS)
    assert set(triggers.TRIGGER_EVENTS.values()) == set(enums.AutomationEventType)
    for trigger, reason in runner.REASON_TRIGGERS.items():
        assert trigger.value == reason.value


def test_each_reason_event_is_the_webhook_event_of_the_same_name():
    assert webhooks.REASON_EVENTS
    for reason, event in webhooks.REASON_EVENTS.items():
        assert isinstance(reason, UnenrollReason) and isinstance(event, WebhookEvent)
        assert reason.value == event.value


def test_every_signal_kind_has_an_effect_and_only_tracking_kinds_have_none():
    assert set(effects._EFFECTS) <= set(EventKind)
    assert set(EventKind) - set(effects._EFFECTS) == set(enums.ENGAGEMENT_KINDS)


def test_members_read_and_hash_as_their_values():
    """Why no behaviour changes: old strings, JSON payloads and dict keys still match."""
    assert EnrollmentState.ACTIVE == "active" and f"{EnrollmentState.ACTIVE}" == "active"
    assert {"replied": 1}[UnenrollReason.REPLIED] == 1
    assert {UnenrollReason.REPLIED: 1}["replied"] == 1


# --- no bare strings for typed values, in code and templates ------------------------------


def _string_values(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [v for element in node.elts for v in _string_values(element)]
    return []


def _typed_attribute(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr in TYPED_ATTRIBUTES


def _bare_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """`x.status == "sent"`, `x.state in ("active", ...)`, `x.status = "sent"`,
    `Model.status.in_(("sent",))`, `.values(status="sent")` and `Model(status="sent")`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_typed_attribute(side) for side in sides):
                found += [(node.lineno, v) for side in sides for v in _string_values(side)]
        elif isinstance(node, ast.Assign):
            targets = [
                t for target in node.targets
                for t in (target.elts if isinstance(target, ast.Tuple) else [target])
            ]  # fmt: skip
            if any(_typed_attribute(t) for t in targets):
                found += [(node.lineno, v) for v in _string_values(node.value)]
        elif isinstance(node, ast.Call):
            function = node.func
            if (
                isinstance(function, ast.Attribute)
                and function.attr == "in_"
                and _typed_attribute(function.value)
            ):
                found += [(node.lineno, v) for a in node.args for v in _string_values(a)]
            for keyword in node.keywords:
                if keyword.arg in TYPED_ATTRIBUTES - {"reason"}:  # reason= is also free text
                    found += [(node.lineno, v) for v in _string_values(keyword.value)]
    return found


def test_the_guard_finds_what_it_looks_for():
    sample = ast.parse(
        "run.status == 'sent'\nm.status = 'failed'\nX.state.in_(('active',))\n"
        "update(X).values(status='pending')\nif x.status in ('a', 'b'): pass\n"
    )
    assert sorted(_bare_uses(sample)) == [
        (1, "sent"), (2, "failed"), (3, "active"), (4, "pending"), (5, "a"), (5, "b")
    ]  # fmt: skip


def test_no_layer_compares_or_stores_a_typed_value_as_a_bare_string():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        offenders += [
            f"{path.relative_to(SRC)}:{line} {value!r}" for line, value in _bare_uses(tree)
        ]
    assert offenders == []


_TEMPLATE_COMPARISON = re.compile(
    r"\.(?:" + "|".join(sorted(TYPED_ATTRIBUTES)) + r")\s*(?:==|!=|in)\s*\(?\s*['\"]"
)


def test_no_template_compares_a_typed_value_with_a_bare_string():
    offenders = [
        f"{path.relative_to(TEMPLATES)}:{number}"
        for path in sorted(TEMPLATES.rglob("*.html"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if _TEMPLATE_COMPARISON.search(line)
    ]
    assert offenders == []


def test_the_vocabularies_templates_compare_with_are_known_to_them():
    from cadenza.web.ui.rendering import env

    used = set()
    for path in TEMPLATES.rglob("*.html"):
        used |= set(re.findall(r"\b([A-Z][A-Za-z]+)\.[A-Z_]+\b", path.read_text()))
    assert used, "templates compare with members"
    for name in used:
        vocabulary = env.globals.get(name)
        assert isinstance(vocabulary, type) and issubclass(vocabulary, StrEnum), name


def test_a_task_is_of_a_task_step_type_or_the_email_of_a_manual_step():
    assert {k.value for k in enums.TaskKind} == {t.value for t in enums.TaskType} | {"email"}

"""The enrollment rules as pure functions (domain/eligibility.py, sequence_settings.py):
exclusivity both ways, re-enrollment, days since last emailed, defaults, the override grant."""

from datetime import UTC, datetime, timedelta

import pytest

from cadenza.domain.eligibility import ContactFacts, LiveEnrollment, refusal_for, rule_refusals
from cadenza.domain.enums import Exclusivity as X
from cadenza.domain.enums import Reenrollment as R
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.policy import may_override_enrollment_rules
from cadenza.domain.sequence_settings import EnrollmentRules, SequenceSettings
from tests.support.people import ADMIN, ANN, VIC, Person

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)
HERE = 1


def facts(*live: tuple[int, X], **extra) -> ContactFacts:
    return ContactFacts(
        email="ann@corp.example", email_valid=True, bounced=False, unsubscribed=False,
        blocked=False,
        live=tuple(LiveEnrollment(100 + s, s, f"Seq {s}", x) for s, x in live), **extra,
    )  # fmt: skip


def rules(exclusivity=X.NONE, reenrollment=R.WHEN_NOT_LIVE, days=0) -> EnrollmentRules:
    return EnrollmentRules(exclusivity, reenrollment, days)


@pytest.mark.parametrize(
    ("mine", "theirs", "refused"),
    [
        (X.NONE, X.NONE, False),
        (X.NONE, X.EXCLUSIVE, False),  # exclusive binds only exclusive sequences
        (X.EXCLUSIVE, X.NONE, False),
        (X.EXCLUSIVE, X.EXCLUSIVE, True),
        (X.ANY, X.NONE, True),  # this one admits no other
        (X.NONE, X.ANY, True),  # that one admits no other
        (X.EXCLUSIVE, X.ANY, True),
    ],
)
def test_exclusivity_is_checked_both_ways(mine, theirs, refused):
    found = refusal_for(facts((7, theirs)), HERE, rules(mine), NOW)
    assert (found is not None) == refused
    if refused:
        assert found.code == ErrorCode.IN_ANOTHER_SEQUENCE and found.overridable
        assert "'Seq 7' (#7)" in found.message and found.details["sequence_id"] == 7


def test_reenrollment_once_when_not_live_and_any_time():
    before = facts(enrolled_before=True)
    assert refusal_for(before, HERE, rules(reenrollment=R.WHEN_NOT_LIVE), NOW) is None
    once = refusal_for(before, HERE, rules(reenrollment=R.ONCE), NOW)
    assert once.code == ErrorCode.ENROLLED_BEFORE and once.overridable
    live_here = facts((HERE, X.ANY), enrolled_before=True)
    hard = refusal_for(live_here, HERE, rules(X.ANY, R.ONCE), NOW)
    assert hard.code == ErrorCode.ALREADY_ENROLLED and not hard.overridable
    # any time: live here is no refusal (the service restarts it), nor "another sequence"
    assert refusal_for(live_here, HERE, rules(X.ANY, R.ANY_TIME), NOW) is None


def test_days_since_last_emailed_names_the_date_and_every_broken_rule_is_listed():
    last = NOW - timedelta(days=2, hours=23)
    recent = facts((7, X.ANY), last_emailed_at=last, enrolled_before=True)
    found = rule_refusals(recent, HERE, rules(X.NONE, R.ONCE, days=3), NOW)
    assert [r.code for r in found] == [
        ErrorCode.IN_ANOTHER_SEQUENCE, ErrorCode.ENROLLED_BEFORE, ErrorCode.CONTACTED_RECENTLY,
    ]  # fmt: skip
    assert "2026-02-27" in found[2].message and found[2].details["eligible_from"].startswith(
        "2026-03-02T10:00"
    )
    assert rule_refusals(facts(last_emailed_at=last), HERE, rules(days=2), NOW) == []
    assert rule_refusals(facts(last_emailed_at=last), HERE, rules(days=0), NOW) == []


def test_a_sequences_rules_fall_back_to_the_installations_per_rule():
    default = rules(X.ANY, R.ONCE, 5)
    own = SequenceSettings.from_dict({"enrollment_rules": {"reenrollment": "any_time"}})
    assert own.enrollment_rules.resolved(default) == rules(X.ANY, R.ANY_TIME, 5)
    off = EnrollmentRules(min_days_since_emailed=0).resolved(default)
    assert off.min_days_since_emailed == 0  # 0 is "off", not "use the default"
    assert SequenceSettings.from_dict(own.to_dict()) == own  # stored and read back alike


@pytest.mark.parametrize(
    "bad",
    [
        {"exclusivity": "sometimes"},
        {"reenrollment": True},
        {"min_days_since_emailed": -1},
        {"min_days_since_emailed": 366},
        {"min_days_since_emailed": "7"},
        {"min_days_since_emailed": True},
        {"cooldown": 3},
        ["any"],
    ],
)
def test_bad_rules_are_refused_with_a_validation_error(bad):
    with pytest.raises(CadenzaError) as caught:
        SequenceSettings.from_dict({"enrollment_rules": bad})
    assert caught.value.code == ErrorCode.VALIDATION_ERROR and caught.value.message


def test_admins_and_granted_members_override_viewers_never():
    assert may_override_enrollment_rules(ADMIN)
    assert not may_override_enrollment_rules(ANN)
    granted = Person(ANN.id, "member")
    granted.can_override_enrollment_rules = True  # type: ignore[attr-defined]
    assert may_override_enrollment_rules(granted)
    viewer = Person(VIC.id, "viewer")
    viewer.can_override_enrollment_rules = True  # type: ignore[attr-defined]
    assert not may_override_enrollment_rules(viewer)

"""A/B variants, pure: the shape a step's variants must have, the stable assignment and
its spread, the winner rule, the per-contact override, and the statistics."""

from __future__ import annotations

from collections import Counter
from math import comb

import pytest

from cadenza.domain.errors import CadenzaError
from cadenza.domain.steps import StepSpec, parse_steps, validate_edits
from cadenza.domain.variants import VariantTally, assigned_label, winner
from cadenza.services.analytics.variants import reply_test, wilson_interval

BASE = {"type": "email", "subject": "Hi {{ contact.firstname }}", "body": "<p>Hello</p>"}


def variant_step(*variants, **extra) -> StepSpec:
    [step] = parse_steps([{**BASE, "variants": list(variants), **extra}])
    return step


def refusal(step: dict) -> CadenzaError:
    with pytest.raises(CadenzaError) as caught:
        parse_steps([step])
    return caught.value


def test_variants_parse_inherit_and_survive_a_snapshot():
    step = variant_step({"label": "A"}, {"subject": "Quick question"}, {"body": "<p>Other</p>"})
    assert [v.label for v in step.variants] == ["A", "B", "C"]
    assert step.as_variant("A").subject == BASE["subject"]
    b, c = step.as_variant("B"), step.as_variant("C")
    assert (b.subject, b.body, b.variant, b.variants) == ("Quick question", "<p>Hello</p>", "B", ())
    assert (c.subject, c.body) == (BASE["subject"], "<p>Other</p>")
    assert StepSpec.from_dict(step.to_dict()) == step  # what the sequence row stores
    assert StepSpec.from_dict(b.to_dict()) == b  # what an enrollment snapshot stores
    assert "Quick question" in step.templates()  # tokens are checked in every variant
    assert parse_steps([BASE])[0].to_dict()["variants"] is None


@pytest.mark.parametrize(
    ("step", "fragment"),
    [
        ({**BASE, "variants": [{"subject": "Only one"}]}, "2 to 5 variants (1 given)"),
        ({**BASE, "variants": [{}] * 6}, "2 to 5 variants (6 given)"),
        ({**BASE, "variants": "AB"}, "2 to 5 variants (not a list)"),
        ({**BASE, "variants": [{"label": "B"}, {}]}, "variant 1 must be labelled A"),
        ({**BASE, "variants": [{}, {"weight": 2}]}, "variant B: an object"),
        ({**BASE, "variants": [{}, "B"]}, "variant B: an object"),
        ({**BASE, "type": "manual_email", "variants": [{}, {}]}, "only an automated email"),
        ({"type": "task", "task_title": "Call", "variants": [{}, {}]}, "only an automated"),
        ({**BASE, "winner_after": 5}, "winner_after needs variants"),
        ({**BASE, "variants": [{}, {}], "winner_after": 0}, "winner_after must be"),
        ({**BASE, "variants": [{}, {}], "winner_after": True}, "winner_after must be"),
    ],
)
def test_bad_variants_are_refused(step, fragment):
    error = refusal(step)
    assert str(error.code) == "validation_error" and fragment in error.message
    assert error.message.startswith("step 1: ")


def test_a_variant_past_a_template_limit_is_refused_naming_it():
    error = refusal({**BASE, "variants": [{}, {"body": '<p>{{ "x" | center(10**9) }}</p>'}]})
    assert str(error.code) == "template_limit"
    assert error.details["field"] == "variants.B.body" and error.details["step"] == 1


def test_a_variant_body_is_sanitised_like_the_step_body():
    step = variant_step({}, {"body": "<p>Hi</p><script>alert(1)</script>"})
    assert step.variants[1].body == "<p>Hi</p>"


def test_assignment_is_stable_and_evenly_spread():
    labels = ["A", "B"]
    assert assigned_label(labels, 7, 42, 1) == assigned_label(labels, 7, 42, 1)
    two = Counter(assigned_label(labels, 7, contact, 1) for contact in range(4000))
    assert 1900 <= two["A"] <= 2100 and two["A"] + two["B"] == 4000
    five = Counter(assigned_label(list("ABCDE"), 3, contact, 2) for contact in range(5000))
    assert set(five) == set("ABCDE") and all(900 <= n <= 1100 for n in five.values())
    # steps draw independently: step 2's split is not step 1's
    same = sum(
        assigned_label(labels, 7, c, 1) == assigned_label(labels, 7, c, 2) for c in range(4000)
    )
    assert 1800 <= same <= 2200


def tally(label, sent, replied, bounced=0):
    return VariantTally(label, sent=sent, delivered=sent - bounced, replied=replied)


def test_the_winner_rule():
    assert winner([tally("A", 9, 5), tally("B", 10, 1)], after=10) is None  # A not at 10 yet
    assert winner([tally("A", 10, 5), tally("B", 10, 1)], after=10) == "A"
    assert winner([tally("B", 10, 1), tally("A", 10, 5)], after=10) == "A"  # order-free
    assert winner([tally("A", 10, 2), tally("B", 20, 4)], after=10) is None  # a tie
    assert winner([tally("A", 10, 0), tally("B", 10, 0)], after=10) is None  # nobody replied
    # the rate is over delivered emails: B's bounces make its 3 replies the better rate
    assert winner([tally("A", 10, 3), tally("B", 10, 3, bounced=4)], after=10) == "B"
    assert winner([tally("A", 4, 4)], after=1) is None  # one variant decides nothing
    assert winner([tally("A", 0, 0), tally("B", 0, 0)], after=0) is None


def test_a_contacts_edit_overrides_the_variant():
    step = variant_step({}, {"subject": "Quick question"})
    assert step.with_edits({}, "B").variant == "B"
    pinned = step.with_edits(validate_edits(step, {"variant": "A"}), "B")
    assert (pinned.variant, pinned.subject) == ("A", BASE["subject"])
    own = step.with_edits(validate_edits(step, {"subject": "Just for you"}), "B")
    assert (own.variant, own.subject, own.variants) == (None, "Just for you", ())
    for bad in ({"variant": "C"}, {"variant": 1}):
        with pytest.raises(CadenzaError, match="variant must be one of A, B"):
            validate_edits(step, bad)
    with pytest.raises(CadenzaError, match="no variants"):
        validate_edits(parse_steps([BASE])[0], {"variant": "A"})


def test_wilson_interval():
    assert wilson_interval(5, 10) == (0.2366, 0.7634)
    low, high = wilson_interval(0, 20)
    assert low == 0 and 0.16 < high < 0.17  # Wilson, not Wald's degenerate (0, 0)
    assert wilson_interval(0, 0) is None


def fisher_by_hand(a, b, c, d):
    """Two-sided Fisher exact test, summing every table at most as likely as the one seen."""
    row, col, n = a + b, a + c, a + b + c + d

    def p(x):
        return comb(col, x) * comb(n - col, row - x) / comb(n, row)

    seen = p(a)
    return sum(
        p(x) for x in range(max(0, row + col - n), min(row, col) + 1) if p(x) <= seen * (1 + 1e-7)
    )


def test_reply_tests():
    test, p = reply_test([(1, 20), (8, 20)])
    assert test == "fisher" and p == pytest.approx(fisher_by_hand(1, 19, 8, 12), abs=1e-4)
    test, p = reply_test([(10, 50), (10, 50), (10, 50)])
    assert test == "chi-square" and p == 1.0
    test, p = reply_test([(2, 50), (10, 50), (25, 50)])
    assert test == "chi-square" and p < 0.001
    assert reply_test([(0, 10), (0, 10)]) == (None, None)  # nobody replied yet
    assert reply_test([(3, 10), (0, 0)]) == (None, None)  # B not delivered yet


@pytest.mark.parametrize(
    ("sent", "bounced", "replied", "delivered", "shown_replied"),
    [
        (10, 2, 3, 8, 3),  # the common case: sent less bounced
        (2, 1, 2, 2, 2),  # a bounced email answered anyway: it arrived
        (1, 0, 2, 1, 1),  # more replies than emails still sent: never a rate over 1
        (3, 3, 0, 0, 0),
    ],
)
def test_tallies_never_hold_more_replies_than_deliveries(
    sent, bounced, replied, delivered, shown_replied
):
    tally = VariantTally.of_counts("A", sent, bounced, replied)
    assert (tally.sent, tally.delivered, tally.replied) == (sent, delivered, shown_replied)
    assert tally.reply_rate <= 1
    if tally.delivered:
        low, high = wilson_interval(tally.replied, tally.delivered)
        assert 0 <= low <= high <= 1
    reply_test([(tally.replied, tally.delivered), (0, 5)])  # accepts the counts

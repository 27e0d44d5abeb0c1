"""Template limits: each one reached by a hostile template, at save and at render.

Every case would, without its limit, take gigabytes or minutes; with it, it stops at once
with template_limit and says which limit in words the author can act on."""

from __future__ import annotations

import itertools

import pytest

from cadenza.config import Settings
from cadenza.domain import template_limits
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.template_limits import TemplateLimits
from cadenza.domain.templates import render, render_subject, validate_template

LONG = "x" * 300
CONTEXT = {
    "contact": {"firstname": "Ada", "company": "Acme", "notes": LONG, "tags": ["a", "b"]},
    "sender": {"firstname": "Charles"},
}


def _limit(func, *args, **kwargs) -> CadenzaError:
    with pytest.raises(CadenzaError) as info:
        func(*args, **kwargs)
    assert info.value.code is ErrorCode.TEMPLATE_LIMIT, info.value
    return info.value


def _render_limit(source: str, **kwargs) -> CadenzaError:
    return _limit(render, source, CONTEXT, html=True, **kwargs)


# --------------------------------------------------------------------------- sizes and widths


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ('{{ "x" | center(10**9) }}', "center's width of 1000000000"),
        ("{{ contact.firstname | center(10001) }}", "center's width of 10001"),
        ('{{ "x" | indent(10**9) }}', "indent's width"),
        ('{{ "x" | indent(" " * 20000) }}', "indent's width of 20000"),
        ('{{ "x" | wordwrap(10**9) }}', "wordwrap's width"),
        ('{{ "x" | truncate(10**9) }}', "truncate's length"),
        ("{{ [1] | batch(10**9, 0) | list }}", "batch's size"),
        ("{{ [1] | slice(10**9) | list }}", "slice's count"),
        ('{{ "ab" | replace("a", "b", 10**9) }}', "replace's count"),
        ('{{ "%1000000000s" | format(1) }}', "a width in a % format of 1000000000"),
        ('{{ "%.1000000000f" | format(1) }}', "a width in a % format"),
        ('{{ "%*s" | format(10**9, 1) }}', "* width or precision"),
        ('{{ "%1000000000s" % 1 }}', "a width in a % format"),
        ('{{ "x" * 10**9 }}', "the result of * would be 1000000000 characters"),
        ("{{ [1, 2] * 10**9 }}", "the result of * would be 8000000000"),
        ("{{ 9 ** 999999 }}", "the result of ** would be too large"),
        ("{{ (9 ** 30000) * (9 ** 30000) * (9 ** 30000) * (9 ** 30000) }}", "* would be too large"),
        ("{{ [[1]] * 1000 | sum(start=[]) }}", "sum adds numbers only"),
        ('{{ ["a"] | map("center", 100000) | join }}', "center's width of 100000"),
    ],
)
def test_a_width_count_or_size_past_the_limit_is_refused_at_save(source, fragment):
    err = _limit(validate_template, "Hi\n" + source, field="body")
    assert fragment in err.details["reason"], err
    assert err.details == {"field": "body", "line": 2, "reason": err.details["reason"]}
    assert err.message.startswith("Template limit reached in body on line 2: ")


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        # a contact's own value decides how much these build
        ('{{ contact.notes | replace("x", contact.notes * 20) }}', "the result of replace"),
        ('{{ contact.notes | replace("", contact.notes * 20) }}', "the result of replace"),
        ("{{ contact.notes | wordwrap(1, wrapstring=contact.notes * 20) }}", "wordwrap"),
        ('{{ ((contact.notes ~ "\n") * 2000) | indent(300, true) }}', "result of indent"),
        ("{{ ([contact.notes * 100] * 100) | join }}", "the result of * would be 3000400"),
        ("{{ contact.notes | list | join(contact.notes * 20) }}", "the result of join would be"),
        ('{{ contact.notes | map("center", 5000) | join }}', "the result of join"),
        (
            '{% set a = contact.notes * 2000 %}{{ "%s%s%s%s" | format(a, a, a, a) }}',
            "the result of format would be 2400008",
        ),
        # doubling by concatenation, +, and captured blocks
        (
            "{% set a = contact.notes * 2000 %}{% set b = a ~ a %}{% set c = b ~ b %}{{ c }}",
            "a value the template builds would be 1200000",
        ),
        ("{% set a = contact.notes * 2000 %}{% set b = a + a + a + a %}{{ b }}", "the result of +"),
        (
            "{% set a %}{{ contact.notes * 2000 }}{{ contact.notes * 2000 }}{% endset %}{{ a }}",
            "a value the template builds",
        ),
    ],
)
def test_values_built_from_contact_data_are_bounded_at_render(source, fragment):
    validate_template(source)  # the sample values are short: the save check lets these by
    err = _render_limit(source)
    assert fragment in err.details["reason"], err


def test_render_subject_is_bounded_like_a_body():
    err = _limit(render_subject, "{{ contact.firstname | center(10**6) }}", CONTEXT)
    assert "center's width" in err.message


def test_widths_within_the_limit_still_work():
    out = render(
        '{{ contact.firstname | center(9) }}|{{ "%05d" | format(42) }}', CONTEXT, html=False
    )
    assert out == "   Ada   |00042"


# --------------------------------------------------------------------------- output and total


def test_the_output_is_bounded():
    limits = TemplateLimits(max_output_chars=1000)
    render("{% for c in contact.notes %}ab{% endfor %}", CONTEXT, html=True, limits=limits)
    err = _render_limit("{% for c in contact.notes %}abcd{% endfor %}", limits=limits)
    assert err.details["reason"] == "the output is longer than the 1000 characters allowed"


def test_everything_built_along_the_way_is_bounded_too():
    # each value is small and the output empty, but the loop keeps building new strings
    source = "{% for c in contact.notes %}{% set big = contact.notes * 30 %}{% endfor %}"
    limits = TemplateLimits(max_built_chars=1_000_000)
    err = _render_limit(source, limits=limits)
    assert "built more than 1000000 characters" in err.details["reason"]
    assert render(source, CONTEXT, html=True) == ""  # 2.7M of the default 10M


# --------------------------------------------------------------------------- loops


def test_nested_loops_over_a_contact_value_count_every_iteration():
    source = "{% for a in contact.notes %}{% for b in contact.notes %}.{% endfor %}{% endfor %}"
    validate_template(source)  # "Sample notes": 12 x 12 = 144 iterations
    err = _render_limit(source)  # 300 + 300 x 300
    assert err.details["reason"] == "loops would run more than 10000 times in all"


def test_the_iteration_count_is_over_the_whole_render():
    one = "{% for a in contact.notes %}.{% endfor %}"
    limits = TemplateLimits(max_loop_iterations=500)
    assert render(one, CONTEXT, html=False, limits=limits) == "." * 300
    _render_limit(one + one, limits=limits)  # 600 in two loops one after the other


def test_items_a_filter_yields_count_as_iterations():
    limits = TemplateLimits(max_loop_iterations=100)
    err = _render_limit('{{ contact.notes | map("upper") | join }}', limits=limits)
    assert "loops would run more than 100 times" in err.details["reason"]


def test_a_loop_filter_and_loop_variables_still_work():
    source = (
        "{% for t in contact.tags if t != 'b' %}"
        "{{ loop.index }}{{ t }}{{ loop.length }}{% endfor %}"
    )
    assert render(source, CONTEXT, html=False) == "1a1"


# --------------------------------------------------------------------------- time


def test_a_render_past_its_time_budget_stops():
    ticks = itertools.count()
    limits = TemplateLimits(max_seconds=50)
    source = "{% for a in contact.notes %}{{ a | upper }}{% endfor %}"
    err = _render_limit(source, limits=limits, timer=lambda: float(next(ticks)))
    assert err.details["reason"] == "rendering took longer than 50 seconds"
    # the same render on a clock that does not move finishes
    assert render(source, CONTEXT, html=False, limits=limits, timer=lambda: 0.0) == "X" * 300


# --------------------------------------------------------------------------- source and nesting


def test_the_source_length_is_bounded_at_save_and_at_render():
    limits = TemplateLimits(max_source_chars=50)
    source = "<p>" + "a" * 60 + "</p>"
    err = _limit(validate_template, source, field="body", limits=limits)
    assert "is 67 characters long, more than the 50 allowed" in err.message
    _render_limit(source, limits=limits)


def test_the_default_source_limit():
    err = _limit(validate_template, "a" * 100_001, field="subject")
    assert err.details["field"] == "subject"


@pytest.mark.parametrize(
    "source",
    [
        "{{ " + "(" * 400 + "1" + ")" * 400 + " }}",
        "{{ " + " + ".join(["1"] * 200) + " }}",
        "{% if contact.a %}" * 45 + "x" + "{% endif %}" * 45,
        "{% for a in contact.tags %}" * 25 + "x" + "{% endfor %}" * 25,
    ],
)
def test_deep_nesting_is_refused_at_save(source):
    err = _limit(validate_template, source, field="body")
    assert "nests" in err.details["reason"]


@pytest.mark.parametrize(
    "source",
    [
        "{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}",
        "{% for t in contact.tags recursive %}{{ loop(t) }}{% endfor %}",
    ],
)
def test_recursion_cannot_be_written_at_all(source):
    with pytest.raises(CadenzaError) as info:
        validate_template(source)
    assert info.value.code is ErrorCode.UNSAFE_TEMPLATE


def test_a_long_ordinary_email_is_within_every_limit():
    body = "".join(
        f"<p>Paragraph {i} for {{{{ contact.firstname | default('there') }}}}: "
        "{% if contact.company %}{{ contact.company | upper }}{% endif %}</p>"
        for i in range(300)
    )
    validate_template(body, field="body")
    assert render(body, CONTEXT, html=True).count("ACME") == 300


# --------------------------------------------------------------------------- configuration


def test_limits_come_from_settings_through_the_service_context():
    from cadenza.services.context import Context

    before = template_limits.active_limits()
    try:
        Context(db=None, settings=Settings(template_max_number=5, template_max_seconds=0.5))
        assert template_limits.active_limits().max_number == 5
        assert template_limits.active_limits().max_seconds == 0.5
        err = _render_limit("{{ contact.firstname | center(6) }}")
        assert "center's width of 6 is larger than the 5 allowed" in err.message
    finally:
        template_limits.configure(before)


def test_settings_refuse_a_limit_that_is_not_positive():
    with pytest.raises(ValueError, match="template_max_loop_iterations"):
        Settings(template_max_loop_iterations=0)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{% set x | upper %}hi {{ contact.firstname }}{% endset %}{{ x }}", "HI ADA"),
        ("{% for t in contact.none | default([]) %}x{% else %}none{% endfor %}", "none"),
        ("{% filter upper %}{{ contact.company }}{% endfilter %}", "ACME"),
        (
            "{% for t in contact.tags %}{{ loop.revindex }}{{ loop.last }}{% endfor %}",
            "2False1True",
        ),
        ('{{ contact.tags | map("upper") | join("+") }}', "A+B"),
        ('{{ "%s-%s" % (1, 2) }} {{ 1 + 2 }} {{ (contact.tags + ["c"]) | join }}', "1-2 3 abc"),
        ("{{ contact.firstname ~ '/' ~ contact.company }}", "Ada/Acme"),
    ],
)
def test_the_instrumented_constructs_render_as_jinja_does(source, expected):
    """Loops, `~`, block captures and filters are rewritten to pass through the budget;
    what they render must not change."""
    validate_template(source)
    assert render(source, CONTEXT, html=False) == expected


@pytest.mark.parametrize(
    "source",
    [
        # lists hold references, but as text (printed, joined, `~`, tojson) each is spelled
        # out: a literal of lists doubles what it holds, line after line
        "{% set a = contact.notes * 2000 %}{% set b = [a, a] %}{% set c = [b, b] %}{{ c }}",
        "{% set a = contact.notes * 2000 %}{{ [a] * 2 }}",
        "{% set a = contact.notes * 2000 %}{{ {'x': a, 'y': a} | tojson }}",
        "{% set a = contact.notes * 2000 %}{% set b = (a, a) %}{{ b | join }}",
    ],
)
def test_lists_and_dicts_are_measured_as_the_text_they_would_make(source):
    err = _render_limit(source)
    assert "would be 1200" in err.details["reason"], err

"""Templates: rendering, token analysis, the sandbox and the save-time HTML cleaner."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markupsafe import Markup, escape

from cadenza.domain import templates
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.templates import (
    TokenRef,
    missing_tokens,
    render,
    render_subject,
    required_tokens,
    sanitize_html,
    validate_template,
)

CONTEXT = {
    "contact": {
        "firstname": "Ada",
        "company": "Analytical Engines",
        "industry": "Computing",
        "plan tier": "Enterprise",
        "items": "three widgets",
        "email": "ada@example.test",
    },
    "sender": {"firstname": "Charles"},
}


def _error(func, *args, **kwargs) -> CadenzaError:
    with pytest.raises(CadenzaError) as info:
        func(*args, **kwargs)
    return info.value


# --------------------------------------------------------------------------- rendering


def test_renders_contact_sender_and_custom_properties() -> None:
    source = (
        "Hi {{ contact.firstname }} at {{ contact.company }} ({{ contact.industry }}, "
        '{{ contact["plan tier"] }}) - {{ sender.firstname }}'
    )
    assert render(source, CONTEXT, html=False) == (
        "Hi Ada at Analytical Engines (Computing, Enterprise) - Charles"
    )


def test_dot_syntax_reads_a_property_named_like_a_dict_method() -> None:
    assert render("{{ contact.items }}", CONTEXT, html=False) == "three widgets"
    assert _error(render, "{{ contact.keys }}", CONTEXT, html=False).details == {
        "tokens": ["contact.keys"]
    }


def test_default_applies_to_absent_none_and_blank_values() -> None:
    source = 'Hi {{ contact.firstname | default("there") }}'
    for contact in ({}, {"firstname": None}, {"firstname": ""}, {"firstname": " \t\r\n"}):
        assert render(source, {"contact": contact}, html=False) == "Hi there"
    assert render(source, {"contact": {"firstname": "Ada"}}, html=False) == "Hi Ada"


def test_d_alias_chained_fallbacks_and_nested_chains() -> None:
    source = '{{ contact.nickname | d(contact.firstname) | d("friend") }}'
    assert render(source, {"contact": {"nickname": "Addie", "firstname": "Ada"}}, html=False) == (
        "Addie"
    )
    assert render(source, {"contact": {"firstname": "Ada"}}, html=False) == "Ada"
    assert render(source, {}, html=False) == "friend"
    assert render('{{ contact.address.city | default("?") }}', {}, html=False) == "?"


def test_missing_required_value_raises_validation_error_listing_tokens() -> None:
    err = _error(render, "Hi {{ contact.firstname }}", {"contact": {}}, html=False)
    assert err.code is ErrorCode.VALIDATION_ERROR
    assert err.message == "missing value for contact.firstname"
    assert err.details == {"tokens": ["contact.firstname"]}

    err = _error(
        render,
        "{{ sender.firstname }} {{ contact.company }} {{ contact.firstname }}",
        {"contact": {"firstname": "  "}, "sender": {"firstname": None}},
        html=True,
    )
    assert err.details == {"tokens": ["contact.company", "contact.firstname", "sender.firstname"]}
    assert err.message == "missing values for contact.company, contact.firstname, sender.firstname"


def test_missing_value_reached_through_an_alias_still_raises() -> None:
    err = _error(render, "{% set c = contact %}{{ c.title }}", CONTEXT, html=False)
    assert err.code is ErrorCode.VALIDATION_ERROR
    assert err.details == {"tokens": ["contact.title"]}


def test_if_guard_renders_without_the_value() -> None:
    source = (
        "{% if contact.company %}at {{ contact.company }}{% else %}no company{% endif %}"
        '{% if contact.employees > 100 %} big{% endif %}{{ " vip" if contact.vip }}'
    )
    assert render(source, {"contact": {}}, html=False) == "no company"
    assert render(source, {"contact": {"company": "Acme"}}, html=False) == "at Acme"
    assert render(source, {"contact": {"employees": 500, "vip": "y"}}, html=False) == (
        "no company big vip"
    )


def test_if_tests_treat_a_missing_value_as_empty() -> None:
    source = (
        '{% if "vip" in contact.tags %}vip{% endif %}'
        "{% if contact.tags | length > 1 %}many{% endif %}"
        '{% if contact.plan == "pro" %}pro{% endif %}'
        "{% if contact.plan is not defined %}no plan{% endif %}"
    )
    assert required_tokens(source) == set()
    assert render(source, {}, html=False) == "no plan"
    context = {"contact": {"tags": ["vip", "x"], "plan": "pro"}}
    assert render(source, context, html=False) == "vipmanypro"


def test_loops_and_set_use_names_the_template_assigns() -> None:
    source = (
        '{% set greeting = "Hello" %}{{ greeting }} '
        "{% for tag in contact.tags %}{{ loop.index }}:{{ tag }} {% endfor %}"
    )
    assert render(source, {"contact": {"tags": ["a", "b"]}}, html=False) == "Hello 1:a 2:b "


def test_only_contact_and_sender_are_visible() -> None:
    err = _error(render, "{{ deal.amount }}", {"deal": {"amount": 5}}, html=False)
    assert err.code is ErrorCode.UNSAFE_TEMPLATE


def test_html_body_escapes_values_while_subject_gets_them_raw() -> None:
    context = {"contact": {"firstname": '<script>alert("x")</script>', "company": "A&B"}}
    body = render("<p>Hi {{ contact.firstname }} of {{ contact.company }}</p>", context, html=True)
    assert body == ("<p>Hi &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; of A&amp;B</p>")
    subject = render_subject("Hi {{ contact.firstname }} of {{ contact.company }}", context)
    assert subject == 'Hi <script>alert("x")</script> of A&B'


def test_markup_values_are_escaped_like_any_other_value() -> None:
    context = {"contact": {"firstname": Markup("<b>Ada</b>")}}
    assert render("{{ contact.firstname }}", context, html=True) == "&lt;b&gt;Ada&lt;/b&gt;"


def test_html_body_keeps_trailing_newline() -> None:
    assert render("Hi {{ contact.firstname }}\n", CONTEXT, html=True) == "Hi Ada\n"


def test_subject_collapses_header_injection_to_one_line() -> None:
    context = {"contact": {"firstname": "Bob\r\nBcc: x@evil.test"}}
    subject = render_subject("Hello {{ contact.firstname }}!", context)
    assert subject == "Hello Bob Bcc: x@evil.test!"
    assert "\r" not in subject and "\n" not in subject


def test_subject_collapses_template_whitespace_and_unicode_line_breaks() -> None:
    context = {"contact": {"firstname": "A\u2028B\x85C\x00D\x0bE"}}
    assert render_subject("  Hi\n\n  {{ contact.firstname }}  \n", context) == "Hi A B C D E"


def test_render_reports_a_value_the_template_cannot_compute_with() -> None:
    err = _error(render, "{{ contact.firstname + 1 }}", CONTEXT, html=False)
    assert err.code is ErrorCode.INVALID_TEMPLATE
    assert err.details["line"] == 1


def test_render_refuses_unsafe_template_even_if_never_validated() -> None:
    err = _error(render, "{{ ''.__class__ }}", CONTEXT, html=True)
    assert err.code is ErrorCode.UNSAFE_TEMPLATE


def test_a_refused_template_is_refused_again_not_remembered_as_compiled() -> None:
    """Compiled templates are kept by source; a refusal must never be kept as one."""
    for _ in range(2):
        for html in (True, False):
            err = _error(render, "{{ ''.__class__ }}", CONTEXT, html=html)
            assert err.code is ErrorCode.UNSAFE_TEMPLATE


def test_render_caps_repetition() -> None:
    err = _error(render, "x\n{{ contact.firstname * 10000000 }}", CONTEXT, html=False)
    assert err.code is ErrorCode.TEMPLATE_LIMIT
    assert err.details["line"] == 2


# --------------------------------------------------------------------------- tokens


def test_token_ref_string_form() -> None:
    assert str(TokenRef("contact", "firstname")) == "contact.firstname"
    assert str(TokenRef("contact", "plan tier")) == "contact.plan tier"


def test_required_tokens_plain_reads_and_bracket_syntax() -> None:
    source = '{{ contact.firstname }} {{ contact["plan tier"] }} {{ sender.firstname }}'
    assert required_tokens(source) == {
        TokenRef("contact", "firstname"),
        TokenRef("contact", "plan tier"),
        TokenRef("sender", "firstname"),
    }


def test_required_tokens_ignores_default_subjects_only() -> None:
    source = (
        '{{ contact.firstname | default("there") }} {{ contact.company | d("you") }} '
        '{{ contact.title | upper | default("") }} {{ contact.a | d(contact.b) | d("c") }} '
        '{{ contact.x | default(contact.y) }} {{ contact.address.city | default("?") }}'
    )
    # title: `upper` runs before the fallback; y: printed as-is when x is missing
    assert required_tokens(source) == {TokenRef("contact", "title"), TokenRef("contact", "y")}


def test_required_tokens_with_if_guards() -> None:
    source = """
    {% if contact.company %}at {{ contact.company }} ({{ contact.industry }}){% endif %}
    {% if contact.city and contact.country is defined %}{{ contact.city }}, {{ contact.country }}
    {% elif contact.region %}{{ contact.region }} {{ contact.city }}
    {% else %}{{ contact.company }}{% endif %}
    {% if contact.phone or contact.mobile %}{{ contact.phone }}{% endif %}
    {% if not contact.title %}{{ contact.title }}{% endif %}
    {{ contact.nick if contact.nick else contact.firstname }}
    {{ "yes" if contact.score > 5 }}
    """
    assert {str(t) for t in required_tokens(source)} == {
        "contact.industry",  # inside the body but not what the if tests
        "contact.city",  # in the elif body: that branch only guarantees region
        "contact.company",  # in the else body
        "contact.phone",  # `or` guarantees neither side
        "contact.title",  # `not` guarantees nothing
        "contact.firstname",  # inline else branch
    }


def test_required_tokens_counts_loop_and_set_sources() -> None:
    source = "{% set n = contact.firstname %}{% for t in contact.tags %}{{ t }}{% endfor %}"
    assert {str(t) for t in required_tokens(source)} == {"contact.firstname", "contact.tags"}


def test_required_tokens_on_broken_template_is_invalid_template() -> None:
    assert _error(required_tokens, "{{ contact.firstname ").code is ErrorCode.INVALID_TEMPLATE


def test_missing_tokens_across_templates_sorted() -> None:
    subject = "Quick question, {{ contact.firstname }}"
    body = (
        '<p>Hi {{ contact.firstname | default("there") }}</p>'
        "{% if contact.company %}<p>{{ contact.company }}</p>{% endif %}"
        "<p>{{ contact.industry }} - {{ sender.firstname }} {{ sender.title }}</p>"
    )
    context = {
        "contact": {"firstname": "   ", "industry": None},
        "sender": {"firstname": "Sam", "title": ""},
    }
    assert missing_tokens([subject, body], context) == [
        "contact.firstname",
        "contact.industry",
        "sender.title",
    ]
    assert (
        missing_tokens([subject, body], CONTEXT | {"sender": {"firstname": "S", "title": "x"}})
        == []
    )
    assert missing_tokens([body], {}) == ["contact.industry", "sender.firstname", "sender.title"]


def test_missing_tokens_agrees_with_render() -> None:
    templates = [
        "{{ contact.firstname }} {{ sender.firstname | default('us') }}",
        "{% if contact.company %}{{ contact.company }}{% endif %}{{ contact.city }}",
    ]
    contexts = [{}, {"contact": {"firstname": "A"}}, {"contact": {"firstname": "A", "city": "B"}}]
    for context in contexts:
        missing = missing_tokens(templates, context)
        for source in templates:
            own = missing_tokens([source], context)
            if own:
                assert _error(render, source, context, html=False).details == {"tokens": own}
            else:
                render(source, context, html=False)
        assert missing == sorted({t for s in templates for t in missing_tokens([s], context)})


def test_zero_and_false_count_as_present() -> None:
    context = {"contact": {"score": 0, "active": False}}
    assert missing_tokens(["{{ contact.score }} {{ contact.active }}"], context) == []
    assert render("{{ contact.score }} {{ contact.active }}", context, html=False) == "0 False"


# --------------------------------------------------------------------------- validation


def test_valid_templates_pass() -> None:
    validate_template(
        """<p>Hi {{ contact.firstname | default("there") | title }},</p>
        {% if contact.company %}<p>How is {{ contact.company | e }}?</p>{% endif %}
        {% set tags = contact.tags | default([]) %}
        {% for tag in tags | sort %}{{ loop.index }}. {{ tag | truncate(20) }}{% endfor %}
        {{ contact["plan tier"] }} {{ contact.people | map(attribute="name") | join(", ") }}
        {{ sender.firstname }}""",
        field="body",
    )


def test_syntax_error_reports_line_and_jinja_message() -> None:
    source = "Hi {{ contact.firstname }},\n\nThanks for {{ contact.company }\nBye"
    err = _error(validate_template, source, field="body")
    assert err.code is ErrorCode.INVALID_TEMPLATE
    assert err.details == {"field": "body", "line": 3, "reason": "unexpected '}'"}
    assert err.message == "Syntax error in body on line 3: unexpected '}'"


def test_unclosed_block_and_unknown_filter_are_invalid() -> None:
    err = _error(validate_template, "a\n{% if contact.x %}\nb", field="subject")
    assert err.code is ErrorCode.INVALID_TEMPLATE
    assert err.details["field"] == "subject"
    assert "endif" in err.message

    err = _error(validate_template, "a\nb\n{{ contact.x | nosuchfilter }}")
    assert err.code is ErrorCode.INVALID_TEMPLATE
    assert err.details["line"] == 3
    assert "nosuchfilter" in err.message


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("{{ ''.__class__.__mro__ }}", "underscore"),
        ("{{ cycler.__init__.__globals__ }}", "underscore"),
        ("{{ contact|attr('__class__') }}", "attr filter"),
        ("{{ range(10) }}", "calls"),
        ("{{ lipsum() }}", "calls"),
        ("{% include 'x' %}", "include"),
        ("{{ contact.email.upper() }}", "calls"),
        ("{{ self }}", "'self' is not available"),
        ("{{ cycler }}", "'cycler' is not available"),
        ("{{ joiner }}", "'joiner' is not available"),
        ("{{ namespace }}", "'namespace' is not available"),
        ("{{ range }}", "'range' is not available"),
        ("{{ dict }}", "'dict' is not available"),
        ("{{ config }}", "'config' is not available"),
        ("{{ request }}", "'request' is not available"),
        ("{{ contact._private }}", "underscore"),
        ("{{ contact['__class__'] }}", "underscore"),
        ("{{ contact | map(attribute='__class__') | list }}", "underscore"),
        ("{{ contact | map(attribute='a.__dict__') | list }}", "underscore"),
        ("{{ contact | map('attr', 'x') | list }}", "attr filter"),
        ("{{ contact | selectattr('_x') | list }}", "underscore"),
        ("{{ contact.people | join(', ', attribute=contact.key) }}", "literal"),
        ("{{ contact.firstname | safe }}", "safe filter"),
        ("{% filter safe %}{{ contact.firstname }}{% endfilter %}", "safe filter"),
        ("{% autoescape false %}{{ contact.x }}{% endautoescape %}", "autoescape"),
        ("{% import 'x' as y %}", "import"),
        ("{% from 'x' import y %}", "import"),
        ("{% extends 'base' %}", "extends"),
        ("{% macro m() %}x{% endmacro %}", "macro"),
        ("{% call contact.f() %}x{% endcall %}", "call"),
        ("{% for x in contact.tags %}{{ loop.cycle('a', 'b') }}{% endfor %}", "calls"),
        ("{% set ns.count = 1 %}", "namespace()"),
    ],
)
def test_unsafe_templates_are_refused(source: str, fragment: str) -> None:
    err = _error(validate_template, source, field="body")
    assert err.code is ErrorCode.UNSAFE_TEMPLATE, err
    assert fragment in err.message
    assert err.details["field"] == "body"
    assert err.details["line"] == 1


def test_unsafe_construct_reports_its_line() -> None:
    err = _error(validate_template, "Hi\n{{ contact.firstname }}\n\n{{ ''.__class__ }}")
    assert err.code is ErrorCode.UNSAFE_TEMPLATE
    assert err.details["line"] == 4
    assert err.message.startswith("Unsafe template in template on line 4:")


def test_sample_render_catches_runtime_limits_with_line() -> None:
    source = "Hi\n{% set s = contact.firstname %}\n{{ s * 100000 }}"
    err = _error(validate_template, source, field="subject")
    assert err.code is ErrorCode.TEMPLATE_LIMIT
    assert err.details["line"] == 3


def test_data_dependent_failures_do_not_block_saving() -> None:
    validate_template("{{ contact.employees + 1 }} {{ contact.tags | first }}")


# --------------------------------------------------------------------------- sanitize_html


def test_sanitize_removes_script_style_handlers_and_javascript_links() -> None:
    dirty = (
        '<p onclick="steal()" style="color:red">Hello</p>'
        "<script>alert(document.cookie)</script><style>p { display:none }</style>"
        '<a href="javascript:alert(1)" onmouseover="x()">click</a>'
        '<a href=" JaVaScRiPt:alert(1)">again</a>'
        '<img src="x.png" onerror="x()"><iframe src="https://evil.test"></iframe>'
    )
    clean = sanitize_html(dirty)
    assert clean == (
        "<p>Hello</p>"
        '<a rel="noopener noreferrer">click</a><a rel="noopener noreferrer">again</a>'
        '<img src="x.png">'
    )
    for gone in ("script", "alert", "style", "onclick", "onerror", "javascript", "iframe"):
        assert gone not in clean.lower()


def test_sanitize_keeps_allowed_markup_and_safe_links() -> None:
    html = (
        '<h2>Hi</h2><p><b>bold</b> <em>it</em> <a href="https://a.test/x?y=1" title="t">l</a> '
        '<a href="mailto:a@b.test">m</a> <a href="tel:+123">t</a></p><ul><li>x</li></ul>'
        "<blockquote>q</blockquote><hr><pre>  p\n  q</pre><code>c</code>"
        '<img src="https://a.test/i.png" alt="i" width="10" height="5">'
    )
    assert sanitize_html(html) == html.replace('">l<', '" rel="noopener noreferrer">l<').replace(
        '">m<', '" rel="noopener noreferrer">m<'
    ).replace('">t<', '" rel="noopener noreferrer">t<')


JINJA_SAMPLES = [
    '{{ contact.firstname | default("there") }}',
    "{% if contact.company %}",
    "{% endif %}",
    '{{ contact["plan tier"] }}',
    "{{ a < b and c > d }}",
    '{{ "<b>bold</b> & more" }}',
    '{{ "}}" ~ contact.x }}',
    '{% set s = "%}" %}',
    "{# a comment with <tags> & 100% #}",
    "{{ contact.firstname\r\n   | default('x') }}",
    "{{- contact.x -}}",
    "{%- if contact.y +%}",
    "{%- endif %}",
]


def test_sanitize_keeps_jinja_tags_byte_for_byte() -> None:
    body = (
        '<p>Hi {{ contact.firstname | default("there") }},</p>\n'
        "{% if contact.company %}<p>How is {{ contact.company }} doing?</p>{% endif %}\n"
        '<p><a href="{{ contact.website }}">site</a> '
        '<a href="https://example.test/u/{{ contact.id }}?ref={{ sender.firstname }}">p</a> '
        '<img src="{{ contact.logo }}" alt="{{ contact["plan tier"] }}"></p>'
    )
    clean = sanitize_html(body)
    assert clean == (
        body.replace('">site', '" rel="noopener noreferrer">site').replace(
            '">p</a>', '" rel="noopener noreferrer">p</a>'
        )
    )


@pytest.mark.parametrize("tag", JINJA_SAMPLES)
def test_sanitize_preserves_each_jinja_tag_in_text(tag: str) -> None:
    body = f"<p>before {tag} after</p>"
    assert sanitize_html(body) == body


@pytest.mark.parametrize("tag", [t for t in JINJA_SAMPLES if t.startswith("{{")])
def test_sanitize_preserves_each_jinja_expression_in_attributes(tag: str) -> None:
    body = f'<a href="{tag}" title="x {tag}">k</a>'
    assert sanitize_html(body) == body.replace(">k<", ' rel="noopener noreferrer">k<')


def test_sanitized_body_still_validates_and_renders() -> None:
    body = sanitize_html(
        '<p onclick="x()">Hi {{ contact.firstname | default("there") }}</p>'
        '{% if contact.company %}<a href="{{ contact.website }}">{{ contact.company }}</a>'
        "{% endif %}<script>{{ contact.secret }}</script>"
    )
    validate_template(body, field="body")
    context = {"contact": {"company": "A<B", "website": "https://a.test/?a=1&b=2"}}
    assert render(body, context, html=True) == (
        '<p>Hi there</p><a href="https://a.test/?a=1&amp;b=2" rel="noopener noreferrer">A&lt;B</a>'
    )


def test_sanitize_is_idempotent() -> None:
    body = (
        '<p>{{ "<i>" }} &amp; {{ a < b }}</p><a href=\'{{ contact["w"] }}\'>x</a>'
        "<script>bad()</script>{% if contact.x %}y{% endif %}"
    )
    once = sanitize_html(body)
    assert sanitize_html(once) == once
    assert '{{ "<i>" }}' in once and "{{ a < b }}" in once


def test_sanitize_placeholder_cannot_smuggle_a_javascript_url() -> None:
    for href in ("java{{ '' }}script:alert(1)", "{{ 'javascript' }}:alert(1)"):
        assert "href" not in sanitize_html(f'<a href="{href}">x</a>')


def test_sanitize_does_not_confuse_text_that_looks_like_a_placeholder() -> None:
    body = "<p>cdzjinjax0x {{ contact.firstname }} cdzjinja</p>"
    assert sanitize_html(body) == body


def test_sanitize_refuses_jinja_tags_the_parser_would_move() -> None:
    body = "<table>{% for row in contact.rows %}<tr><td>{{ row }}</td></tr>{% endfor %}</table>"
    err = _error(sanitize_html, body)
    assert err.code is ErrorCode.INVALID_TEMPLATE
    assert err.details == {"field": "body", "moved": ["{% endfor %}", "{{ row }}"]}
    # inside cells is fine
    ok = "<table><tbody><tr><td>{% if contact.a %}{{ contact.a }}{% endif %}</td></tr></tbody>"
    ok += "</table>"
    assert sanitize_html(ok) == ok


def test_sanitize_refuses_dropping_half_a_block() -> None:
    body = "<p>{% if contact.vip %}VIP</p><!-- {% endif %} -->"
    err = _error(sanitize_html, body, field="signature")
    assert err.code is ErrorCode.INVALID_TEMPLATE
    assert err.details == {"field": "signature", "dropped": ["{% endif %}"]}


def test_sanitize_drops_jinja_inside_removed_content_silently() -> None:
    body = (
        '<p>x</p><script>var n = "{{ contact.firstname }}";</script><!-- {% if a %}{% endif %} -->'
    )
    assert sanitize_html(body) == "<p>x</p>"


def test_sanitize_cleans_raw_block_bodies_because_jinja_prints_them_verbatim() -> None:
    body = '{% raw %}{{ "<script>alert(1)</script>" }}<b onclick="x()">b</b>{% endraw %}'
    clean = sanitize_html(body)
    assert clean == '{% raw %}{{ "" }}<b>b</b>{% endraw %}'
    assert render(clean, {}, html=True) == '{{ "" }}<b>b</b>'


def test_sanitize_follows_jinja_bracket_balancing() -> None:
    # a naive "up to the first }}" scan ends the first tag early, then takes
    # {#" }}<script>...</script>{{ "#} for a comment and hides the script from nh3
    body = '{{ {"a": {"b": 1}} ~ "{#" }}<script>alert(1)</script>{{ "#}" }}'
    clean = sanitize_html(body)
    assert clean == '{{ {"a": {"b": 1}} ~ "{#" }}{{ "#}" }}'
    assert "script" not in render(clean, {}, html=True)


def test_sanitize_refuses_when_jinja_disagrees_with_the_scanner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def naive_split(source: str) -> list[tuple[bool, str]]:
        parts = re.split(r"(\{\{.*?\}\}|\{#.*?#\})", source, flags=re.DOTALL)
        return [(i % 2 == 1, part) for i, part in enumerate(parts) if part]

    monkeypatch.setattr(templates, "_split_jinja", naive_split)
    body = '{{ {"a": {"b": 1}} ~ "{#" }}<script>alert(1)</script>{{ "#}" }}'
    err = _error(sanitize_html, body)
    assert err.code is ErrorCode.INVALID_TEMPLATE
    assert err.details == {"field": "body"}


def test_sanitize_leaves_broken_templates_for_validation_to_report() -> None:
    body = '<p onclick="x()">{{ contact["x"] }}</p>\n{{ "unterminated }}<script>bad()</script>'
    clean = sanitize_html(body)
    assert clean == '<p>{{ contact["x"] }}</p>\n{{ "unterminated }}'
    assert _error(validate_template, clean).details["line"] == 2


# --------------------------------------------------------------------------- properties

VALUES = st.text(alphabet=st.characters(codec="utf-8"), max_size=60)


@given(firstname=VALUES, company=VALUES)
def test_subject_never_contains_line_breaks(firstname: str, company: str) -> None:
    context = {"contact": {"firstname": firstname, "company": company}}
    subject = render_subject(
        'Hi {{ contact.firstname | default("there") }}\r\n{{ contact.company | default("") }}',
        context,
    )
    assert "\r" not in subject and "\n" not in subject
    assert subject == subject.strip()


@given(firstname=VALUES)
def test_html_render_never_emits_a_raw_angle_bracket_from_a_value(firstname: str) -> None:
    body = render(
        '<p>Hi {{ contact.firstname | default("there") }}</p>',
        {"contact": {"firstname": firstname}},
        html=True,
    )
    assert body.startswith("<p>Hi ") and body.endswith("</p>")
    inner = body[len("<p>Hi ") : -len("</p>")]
    assert "<" not in inner and ">" not in inner and '"' not in inner
    expected = "there" if not firstname.strip() else str(escape(firstname))
    assert inner == expected


@given(text=st.text(alphabet=st.sampled_from(list("ab<>&'%{}#/ =\n")), max_size=40))
def test_sanitize_keeps_any_jinja_string_literal_byte_for_byte(text: str) -> None:
    tag = '{{ "' + text + '" }}'
    assert sanitize_html(f"<p>{tag}</p>") == f"<p>{tag}</p>"


DANGEROUS_HTML = st.sampled_from(
    [
        "<script>alert(1)</script>", '<b onclick="y()">b</b>', '<a href="javascript:z()">a</a>',
        "<p>t</p>", "<!-- c -->", " ", "{{", "}}", "{#", "#}", '"',
    ]
)  # fmt: skip
TAG_INNARDS = st.sampled_from(
    [
        '"<script>alert(1)</script>"', "'<b onclick=y()>'", '"{#"', '"#}"', '"}}"', '"%}"',
        "{", "}", '{"k": 1}', "(", ")", "1", " ~ ", "-",
    ]
)  # fmt: skip
TAG_LIKE = st.builds(
    lambda open_, innards, close: f"{open_} {''.join(innards)} {close}",
    st.sampled_from(["{{", "{%", "{#"]),
    st.lists(TAG_INNARDS, max_size=5),
    st.sampled_from(["}}", "%}", "#}"]),
)
SEGMENT = st.recursive(
    st.one_of(DANGEROUS_HTML, TAG_LIKE),
    lambda inner: st.lists(inner, max_size=4).map(
        lambda parts: "{% raw %}" + "".join(parts) + "{% endraw %}"
    ),
    max_leaves=12,
)


class _ActiveContent(HTMLParser):
    """Finds what a mail client could execute, as a browser would parse it."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "iframe"):
            self.found.append(tag)
        for name, value in attrs:
            if name.startswith("on") or name == "style":
                self.found.append(name)
            url = re.sub(r"[\x00-\x20]", "", value or "").lower()
            if name in ("href", "src") and url.startswith(("javascript:", "data:", "vbscript:")):
                self.found.append(f"{name}={value}")


def _active_content(html: str) -> list[str]:
    parser = _ActiveContent()
    parser.feed(html)
    parser.close()
    return parser.found


@given(st.lists(SEGMENT, max_size=6).map("".join))
def test_sanitized_body_never_renders_active_content(body: str) -> None:
    try:
        output = render(sanitize_html(body), {}, html=True)
    except CadenzaError:
        return  # refused at some stage: nothing is sent
    assert _active_content(output) == []


def test_active_content_oracle_sees_what_it_should() -> None:
    assert _active_content('<script>x</script><b onclick="y">b</b><a href=" javascript:z">') == [
        "script",
        "onclick",
        "href= javascript:z",
    ]
    assert _active_content("&lt;script&gt; &lt;b onclick=y&gt;") == []

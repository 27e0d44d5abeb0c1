"""Personalisation templates: checked when saved, analysed for the tokens they need, rendered.

Templates are written by users and filled with contact data that may come from anyone (CSV
imports, web forms), so both sides are untrusted:

* the template may only read `contact` and `sender` (plus names it sets itself), may not call
  anything and may not reach Python internals. A static AST check gives the author a precise
  line; the immutable sandbox is the second wall for anything the check does not foresee;
* values are escaped in HTML bodies and have line breaks collapsed in subjects, so a contact
  value cannot inject markup or mail headers;
* a token with no fallback must have a value: the engine asks `missing_tokens` before it
  enrols a contact, and `render` refuses the same cases, rather than sending "Hi ,".

See docs/templates.md for the rules as users see them.
"""

from __future__ import annotations

import functools
import itertools
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NoReturn

import nh3
from jinja2 import (
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    UndefinedError,
    nodes,
)
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from cadenza.domain import template_limits as limits_
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.template_limits import (
    RenderBudget,
    TemplateLimitError,
    TemplateLimits,
    active_limits,
)

__all__ = [
    "NAMESPACES",
    "TemplateLimits",
    "TokenRef",
    "missing_tokens",
    "render",
    "render_subject",
    "required_tokens",
    "sanitize_html",
    "validate_template",
]

NAMESPACES: tuple[str, ...] = ("contact", "sender")
# Where the message's own unsubscribe link goes; compose swaps in the real, signed URL
# after sanitising (domain/tracking.py). A URL under a reserved domain, so the sanitiser
# keeps it and it can never lead anywhere if it slipped through.
UNSUBSCRIBE_PLACEHOLDER = "https://unsubscribe.cadenza.invalid/"
# Names a template may read besides the namespaces, with the values they render to.
LINKS: dict[str, str] = {"unsubscribe_url": UNSUBSCRIBE_PLACEHOLDER}


@dataclass(frozen=True, order=True)
class TokenRef:
    """A value a template reads from one of the two namespaces, e.g. contact.firstname."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}.{self.name}"


# --------------------------------------------------------------------------- sandbox


class _Missing(StrictUndefined):
    """Loud where a blank would reach the reader, quiet where the template only asks.

    Printing, string filters and arithmetic raise, as with StrictUndefined, so a missing
    value never renders as an empty string. Truth tests, comparisons, length and iteration
    treat it as empty, because `{% if contact.x %}` and `default` are exactly how a template
    says "this one is optional". Attribute access chains, so `contact.a.b | default("x")`
    falls back instead of failing on `a`.
    """

    # jinja2 types StrictUndefined's dunders as raising (NoReturn); answering instead is
    # this class's purpose, hence the `type: ignore[override]` on each of them.
    __slots__ = ()

    def __bool__(self) -> bool:  # type: ignore[override]
        return False

    def __getattr__(self, name: str) -> Any:
        if name[:2] == "__":
            raise AttributeError(name)
        return self

    def __getitem__(self, key: Any) -> Any:
        return self

    def __len__(self) -> int:  # type: ignore[override]
        return 0

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        return iter(())

    def __contains__(self, item: object) -> bool:  # type: ignore[override]
        return False

    def __eq__(self, other: object) -> bool:  # type: ignore[override]
        return type(self) is type(other)

    def __ne__(self, other: object) -> bool:  # type: ignore[override]
        return not self.__eq__(other)

    def __hash__(self) -> int:  # type: ignore[override]
        return id(type(self))

    def __lt__(self, other: object) -> bool:  # type: ignore[override]
        return False

    __le__ = __gt__ = __ge__ = __lt__  # type: ignore[assignment]


class _Namespace(dict[str, Any]):
    """The contact or sender dict, labelled so a runtime miss can name its token."""

    __slots__ = ("label",)

    def __init__(self, label: str, values: Mapping[str, Any]) -> None:
        super().__init__(values)
        self.label = label


_MISSING_PREFIX = "missing value for "
_MAX_POWER_BITS = 100_000  # bits one `*` or `**` between whole numbers may produce


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with dict keys only and every costly step on a budget.

    Dicts are looked up by key only, so a custom property called `items` or `keys` reads the
    property instead of a dict method. `*`, `**`, `+` and `%` are intercepted because
    `{{ 9**9**9 }}`, `{{ "x" * 10**10 }}` or `{{ "%999999999s" % x }}` would tie up a worker
    (and the save-time sample render) indefinitely; loops, concatenation and filters are
    routed through the render's budget too (domain/template_limits.py).
    """

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        limits_.budget().tick()
        if isinstance(obj, dict):
            return self._key(obj, attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        limits_.budget().tick()
        if isinstance(obj, dict):
            return self._key(obj, argument)
        return super().getitem(obj, argument)

    def _key(self, obj: dict[Any, Any], key: Any) -> Any:
        try:
            return obj[key]
        except (KeyError, TypeError):
            hint = f"{_MISSING_PREFIX}{obj.label}.{key}" if isinstance(obj, _Namespace) else None
            return self.undefined(hint=hint, obj=obj, name=key)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        limits_.check_binop(operator, left, right, _MAX_POWER_BITS)
        result = super().call_binop(context, operator, left, right)
        return limits_.budget().built_value(f"the result of {operator}", result)

    def _generate(self, source: nodes.Template, *args: Any, **kwargs: Any) -> str:
        """Compiles the tree with loops, `~` and block captures routed through the budget."""
        return super()._generate(limits_.instrument(source), *args, **kwargs)


def _make_env(html: bool) -> _Sandbox:
    env = _Sandbox(autoescape=html, undefined=_Missing, keep_trailing_newline=True)
    # range, lipsum, cycler, joiner, namespace, dict: the static check refuses them already;
    # clearing them means a name the check misses resolves to a missing value, not a tool.
    env.globals.clear()
    limits_.guard_filters(env.filters)
    return env


_ENVS = {True: _make_env(True), False: _make_env(False)}


# --------------------------------------------------------------------------- errors


def _syntax_error(exc: TemplateSyntaxError, field: str) -> CadenzaError:
    reason = exc.message or "invalid syntax"
    return CadenzaError(
        ErrorCode.INVALID_TEMPLATE,
        f"Syntax error in {field} on line {exc.lineno}: {reason}",
        details={"field": field, "line": exc.lineno, "reason": reason},
    )


def _unsafe(field: str, line: int | None, reason: str) -> CadenzaError:
    where = f" on line {line}" if line else ""
    return CadenzaError(
        ErrorCode.UNSAFE_TEMPLATE,
        f"Unsafe template in {field}{where}: {reason}",
        details={"field": field, "line": line, "reason": reason},
    )


def _limit(field: str, line: int | None, reason: str) -> CadenzaError:
    where = f" on line {line}" if line else ""
    return CadenzaError(
        ErrorCode.TEMPLATE_LIMIT,
        f"Template limit reached in {field}{where}: {reason}",
        details={"field": field, "line": line, "reason": reason},
    )


def _check_length(source: str, field: str, limits: TemplateLimits) -> None:
    if len(source) > limits.max_source_chars:
        raise _limit(
            field,
            None,
            f"the template is {len(source)} characters long, more than the "
            f"{limits.max_source_chars} allowed",
        )


def _template_line(tb: TracebackType | None) -> int | None:
    """Jinja rewrites tracebacks so template frames carry template line numbers."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


# --------------------------------------------------------------------------- static check

_FORBIDDEN_STATEMENTS: tuple[tuple[type[nodes.Node], str], ...] = (
    (nodes.Extends, "{% extends %} is not allowed; templates cannot load other templates"),
    (nodes.Include, "{% include %} is not allowed; templates cannot load other templates"),
    (nodes.Import, "{% import %} is not allowed; templates cannot load other templates"),
    (nodes.FromImport, "{% from ... import %} is not allowed; templates cannot load others"),
    (nodes.Macro, "{% macro %} is not allowed; keep templates declarative"),
    (nodes.CallBlock, "{% call %} is not allowed; keep templates declarative"),
    (nodes.EvalContextModifier, "{% autoescape %} is not allowed; escaping is always on"),
    (nodes.NSRef, "{% set name.attribute %} needs namespace(), which is not available"),
)

# `attr` reaches arbitrary attributes; `safe` would let a contact value carry raw HTML past
# both the save-time sanitiser and autoescaping.
_FORBIDDEN_FILTERS = {
    "attr": 'the attr filter is not allowed; use contact.name or contact["name"]',
    "safe": "the safe filter is not allowed; values are always escaped in HTML",
}

# Filters whose string arguments name attributes (a dotted path): filter -> positional index
# of that argument, or None when it can only be passed as attribute=.
_ATTRIBUTE_ARGS: dict[str, int | None] = {
    "map": None,
    "selectattr": 0,
    "rejectattr": 0,
    "sort": 2,
    "groupby": 0,
    "unique": 1,
    "min": 1,
    "max": 1,
    "sum": 0,
    "join": 1,
}


def _dangerous_reason(node: nodes.Node, assigned: frozenset[str]) -> str | None:
    for kind, reason in _FORBIDDEN_STATEMENTS:
        if isinstance(node, kind):
            return reason
    if isinstance(node, nodes.Call):
        return "calls such as x() are not allowed; use filters instead, e.g. {{ x | upper }}"
    if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
        return f"'{node.attr}' starts with an underscore, which could reach Python internals"
    if (
        isinstance(node, nodes.Getitem)
        and isinstance(node.arg, nodes.Const)
        and isinstance(node.arg.value, str)
        and node.arg.value.startswith("_")
    ):
        return f"'{node.arg.value}' starts with an underscore, which could reach Python internals"
    if isinstance(node, nodes.Name) and node.ctx == "load" and node.name not in assigned:
        return (
            f"'{node.name}' is not available; templates may use only contact, sender, "
            "unsubscribe_url and names they set themselves"
        )
    if isinstance(node, nodes.Filter | nodes.Test):
        return _filter_reason(node)
    return None


def _filter_reason(node: nodes.Filter | nodes.Test) -> str | None:
    if node.dyn_args is not None or node.dyn_kwargs is not None:
        return "argument unpacking (*args, **kwargs) is not allowed in filters and tests"
    if isinstance(node, nodes.Test):
        return None
    if node.name in _FORBIDDEN_FILTERS:
        return _FORBIDDEN_FILTERS[node.name]
    named: list[nodes.Expr] = [kw.value for kw in node.kwargs if kw.key == "attribute"]
    index = _ATTRIBUTE_ARGS.get(node.name)
    if index is not None and len(node.args) > index:
        named.append(node.args[index])
    for arg in named:
        if not (isinstance(arg, nodes.Const) and isinstance(arg.value, str | int)):
            return f"the attribute given to {node.name} must be a literal string"
        if isinstance(arg.value, str) and any(p.startswith("_") for p in arg.value.split(".")):
            return f"'{arg.value}' starts with an underscore, which could reach Python internals"
    if node.name == "map" and node.args and not any(kw.key == "attribute" for kw in node.kwargs):
        applied = node.args[0]
        if not (isinstance(applied, nodes.Const) and isinstance(applied.value, str)):
            return "the filter given to map must be a literal name"
        if applied.value in _FORBIDDEN_FILTERS:
            return _FORBIDDEN_FILTERS[applied.value]
    return None


def _check_safe(ast: nodes.Template, field: str) -> None:
    assigned = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
    assigned.update(NAMESPACES)
    assigned.update(LINKS)
    if any(True for _ in ast.find_all(nodes.For)):
        assigned.add("loop")
    frozen = frozenset(assigned)
    for node in ast.find_all(nodes.Node):
        reason = _dangerous_reason(node, frozen)
        if reason is not None:
            raise _unsafe(field, node.lineno, reason)


def _parse(source: str, field: str) -> nodes.Template:
    limits = active_limits()
    _check_length(source, field, limits)
    try:
        tree = _ENVS[True].parse(source)
    except TemplateSyntaxError as exc:
        raise _syntax_error(exc, field) from None
    except RecursionError:
        raise _limit(field, None, "the template nests too deeply") from None
    depth = limits_.nesting(tree)
    if depth > limits.max_nesting:
        raise _limit(
            field, None, f"the template nests {depth} levels deep, more than {limits.max_nesting}"
        )
    return tree


def _build(source: str, html: bool, field: str) -> Template:
    _check_safe(_parse(source, field), field)
    try:
        # compiling catches what parsing does not, such as an unknown filter name
        return _ENVS[html].from_string(source)
    except TemplateSyntaxError as exc:
        raise _syntax_error(exc, field) from None
    except (RecursionError, SyntaxError, MemoryError):
        # Python's own compiler refuses code nested past its limits
        raise _limit(field, None, "the template nests too deeply") from None


@functools.lru_cache(maxsize=1024)
def _compiled(source: str, html: bool) -> Template:
    """Parsing, checking and compiling once per source: the engine renders each thousands
    of times. The static check runs here too, so even a template saved before validation
    existed is never executed unchecked."""
    return _build(source, html, "template")


# --------------------------------------------------------------------------- token analysis


def _token_of(node: nodes.Node) -> TokenRef | None:
    if isinstance(node, nodes.Getattr | nodes.Getitem) and isinstance(node.node, nodes.Name):
        ns = node.node.name
        if ns not in NAMESPACES or node.node.ctx != "load":
            return None
        if isinstance(node, nodes.Getattr):
            return TokenRef(ns, node.attr)
        if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            return TokenRef(ns, node.arg.value)
    return None


def _root_token(node: nodes.Node | None) -> TokenRef | None:
    """The token at the root of contact.a.b["c"]: a missing root falls through the chain."""
    while node is not None:
        token = _token_of(node)
        if token is not None:
            return token
        if isinstance(node, nodes.Getattr) or (
            isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const)
        ):
            node = node.node
        else:
            return None
    return None


def _is_default(node: nodes.Node | None) -> bool:
    return isinstance(node, nodes.Filter) and node.name in ("default", "d")


def _guards(test: nodes.Node) -> frozenset[TokenRef]:
    """Tokens certain to have a value when `test` is true: the bare token, `is defined`,
    and both sides of `and`. Anything cleverer (or, not, comparisons) guards nothing."""
    token = _token_of(test)
    if token is not None:
        return frozenset({token})
    if isinstance(test, nodes.Test) and test.name == "defined":
        inner = _token_of(test.node)
        return frozenset({inner}) if inner else frozenset()
    if isinstance(test, nodes.And):
        return _guards(test.left) | _guards(test.right)
    return frozenset()


class _RequiredReads:
    """Collects token reads that have no fallback. The rule, also in docs/templates.md:

    a read of contact.x / sender.x is required unless it is the direct subject of `default`
    (or, in a chain `a | default(b) | default("c")`, a fallback that is itself defaulted),
    the subject of `is defined`, anywhere in an `if` test (statement or inline), or inside
    the body of an `if` whose test guards that same token (see `_guards`).
    """

    def __init__(self) -> None:
        self.required: set[TokenRef] = set()

    def visit(self, node: nodes.Node, guarded: frozenset[TokenRef]) -> None:
        token = _token_of(node)
        if token is not None:
            if token not in guarded:
                self.required.add(token)
        elif _is_default(node):
            assert isinstance(node, nodes.Filter)
            self._default(node, guarded, covered=False)
        elif isinstance(node, nodes.Test) and node.name in ("defined", "undefined"):
            if _root_token(node.node) is None:
                self.visit(node.node, guarded)
        elif isinstance(node, nodes.If):
            # the test only asks; each branch body may rely on what its own test guarantees
            self.visit_all(node.body, guarded | _guards(node.test))
            for branch in node.elif_:
                self.visit_all(branch.body, guarded | _guards(branch.test))
            self.visit_all(node.else_, guarded)
        elif isinstance(node, nodes.CondExpr):
            self.visit(node.expr1, guarded | _guards(node.test))
            if node.expr2 is not None:
                self.visit(node.expr2, guarded)
        else:
            self.visit_all(node.iter_child_nodes(), guarded)

    def visit_all(self, children: Iterable[nodes.Node], guarded: frozenset[TokenRef]) -> None:
        for child in children:
            self.visit(child, guarded)

    def _default(self, node: nodes.Filter, guarded: frozenset[TokenRef], *, covered: bool) -> None:
        subject = node.node
        if _is_default(subject):
            assert isinstance(subject, nodes.Filter)
            self._default(subject, guarded, covered=True)
        elif subject is not None and _root_token(subject) is None:
            self.visit(subject, guarded)
        for i, arg in enumerate(node.args):
            if i == 0 and covered and _root_token(arg) is not None:
                continue
            if i == 0 and covered and _is_default(arg):
                assert isinstance(arg, nodes.Filter)
                self._default(arg, guarded, covered=True)
                continue
            self.visit(arg, guarded)
        self.visit_all((kw.value for kw in node.kwargs), guarded)


@functools.lru_cache(maxsize=1024)
def _required(source: str) -> frozenset[TokenRef]:
    reads = _RequiredReads()
    reads.visit(_parse(source, "template"), frozenset())
    return frozenset(reads.required)


def required_tokens(source: str) -> set[TokenRef]:
    """Tokens the template cannot render without; the rule is on `_RequiredReads`.

    Raises CadenzaError(INVALID_TEMPLATE) when the source does not parse.
    """
    return set(_required(source))


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _namespaces(context: Mapping[str, Mapping[str, Any]]) -> dict[str, _Namespace]:
    """Only contact and sender, with None and blank strings dropped so `default` applies.

    Values marked as HTML-safe (Markup, anything with __html__) are turned into plain
    strings, so a caller cannot switch off escaping for contact data by accident.
    """
    result = {}
    for ns in NAMESPACES:
        values = context.get(ns) or {}
        result[ns] = _Namespace(
            ns,
            {
                k: str(v) if hasattr(v, "__html__") else v
                for k, v in values.items()
                if not _blank(v)
            },
        )
    return result


def missing_tokens(sources: Iterable[str], context: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Required tokens the context lacks, so enrolment can refuse a contact up front."""
    required: set[TokenRef] = set()
    for source in sources:
        required |= _required(source)
    # the tokens asked for, looked up alone: what `_namespaces` would keep of each (not
    # blank), without copying every value of the contact and the sender per contact
    # (a 50-contact enroll asked it 50 times: bench/api.py)
    return sorted(str(t) for t in required if _blank((context.get(t.namespace) or {}).get(t.name)))


# --------------------------------------------------------------------------- validation & rendering


def _sample_context(ast: nodes.Template) -> dict[str, _Namespace | str]:
    values: dict[str, dict[str, Any]] = {ns: {} for ns in NAMESPACES}
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        token = _token_of(node)
        if token is not None:
            values[token.namespace][token.name] = f"Sample {token.name}"
    return {**LINKS, **{ns: _Namespace(ns, v) for ns, v in values.items()}}


def _run(
    template: Template,
    values: Mapping[str, Any],
    limits: TemplateLimits,
    timer: Callable[[], float],
) -> str:
    """Renders chunk by chunk under a fresh budget, so a limit stops it part way."""
    budget = RenderBudget(limits, timer)
    chunks = []
    with limits_.rendering(budget):
        for chunk in template.generate(values):
            budget.emitted(chunk)
            chunks.append(chunk)
    return "".join(chunks)


def validate_template(
    source: str, *, field: str = "template", limits: TemplateLimits | None = None
) -> None:
    """Refuses, at save time, a template that would fail or escape the sandbox at send time.

    Raises CadenzaError(INVALID_TEMPLATE) for syntax errors and unknown filters,
    CadenzaError(UNSAFE_TEMPLATE) for anything reaching outside contact/sender data, and
    CadenzaError(TEMPLATE_LIMIT) for a template too long or too deep, or whose render with
    sample values already runs past a limit; all carry details {"field", "line", "reason"}.
    """
    limits = limits or active_limits()
    _check_length(source, field, limits)
    template = _build(source, True, field)  # syntax, static check, unknown filters
    try:
        _run(template, _sample_context(_parse(source, field)), limits, time.monotonic)
    except SecurityError as exc:
        raise _unsafe(field, _template_line(exc.__traceback__), str(exc)) from None
    except TemplateLimitError as exc:
        raise _limit(field, _template_line(exc.__traceback__), exc.reason) from None
    except (RecursionError, MemoryError) as exc:
        raise _limit(
            field, _template_line(exc.__traceback__), "the render ran out of room"
        ) from None
    except Exception:
        pass  # sample values cannot prove data-dependent failures; only escapes matter here


def render(
    source: str,
    context: Mapping[str, Mapping[str, Any]],
    *,
    html: bool,
    limits: TemplateLimits | None = None,
    timer: Callable[[], float] = time.monotonic,
) -> str:
    """Fills a template for one contact; html=True escapes values for an email body.

    Raises CadenzaError(VALIDATION_ERROR, details={"tokens": [...]}) when a required token
    has no value, UNSAFE_TEMPLATE if the sandbox refuses something, TEMPLATE_LIMIT when this
    contact's values make the render run past a limit (`limits`, by default the installation's;
    `timer` measures the time budget), INVALID_TEMPLATE for a broken template or a value the
    template cannot compute with.
    """
    limits = limits or active_limits()
    _check_length(source, "template", limits)
    template = _compiled(source, html)
    namespaces = _namespaces(context)
    missing = sorted(str(t) for t in _required(source) if t.name not in namespaces[t.namespace])
    if missing:
        _raise_missing(missing)
    try:
        return _run(template, {**LINKS, **namespaces}, limits, timer)
    except TemplateLimitError as exc:
        raise _limit("template", _template_line(exc.__traceback__), exc.reason) from None
    except (RecursionError, MemoryError) as exc:
        line = _template_line(exc.__traceback__)
        raise _limit("template", line, "the render ran out of room") from None
    except SecurityError as exc:
        raise _unsafe("template", _template_line(exc.__traceback__), str(exc)) from None
    except UndefinedError as exc:
        # reached only through reads the static rule cannot see, e.g. {% set c = contact %}
        message = exc.message or "missing value"
        token = message.removeprefix(_MISSING_PREFIX)
        tokens = [token] if token != message else []
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR, message, details={"tokens": tokens}
        ) from None
    except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
        line = _template_line(exc.__traceback__)
        raise CadenzaError(
            ErrorCode.INVALID_TEMPLATE,
            f"Template could not be rendered on line {line}: {exc}",
            details={"field": "template", "line": line, "reason": str(exc)},
        ) from None


def _raise_missing(tokens: list[str]) -> NoReturn:
    noun = "value" if len(tokens) == 1 else "values"
    raise CadenzaError(
        ErrorCode.VALIDATION_ERROR,
        f"missing {noun} for {', '.join(tokens)}",
        details={"tokens": tokens},
    )


# every whitespace run (CR, LF, U+2028, ...) and every other control character
_HEADER_BREAKS = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")


def render_subject(source: str, context: Mapping[str, Mapping[str, Any]]) -> str:
    """Renders a one-line text (subject, task title): no value can add a header line."""
    return _HEADER_BREAKS.sub(" ", render(source, context, html=False)).strip()


# --------------------------------------------------------------------------- HTML sanitising

_ALLOWED_TAGS = frozenset(
    {
        "p", "br", "a", "b", "strong", "i", "em", "u", "ul", "ol", "li", "blockquote",
        "h1", "h2", "h3", "h4", "span", "div", "img", "table", "thead", "tbody", "tr",
        "td", "th", "hr", "pre", "code",
    }
)  # fmt: skip
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
}
_URL_SCHEMES = frozenset({"http", "https", "mailto", "tel"})

# The scanner below mirrors jinja2.lexer for the default delimiters, because a disagreement
# about where a tag ends is a sanitiser bypass: anything taken for a tag is hidden from nh3,
# and if Jinja reads it as text instead it is sent verbatim. So: `{% raw %}` bodies are HTML
# (Jinja prints them as they are), comments end at the first `#}`, and `{{ }}` / `{% %}` end
# only outside string literals and once (), [] and {} are balanced. `sanitize_html` then
# asks Jinja's own lexer to confirm, and refuses when the two disagree.
_OPENER = re.compile(r"\{%[-+]?\s*raw\s*-?%\}|\{[{%#]")
_RAW_END = re.compile(r"\{%[-+]?\s*endraw\s*[-+]?%\}")
_STRING = re.compile(r"'([^'\\]*(?:\\.[^'\\]*)*)'" r'|"([^"\\]*(?:\\.[^"\\]*)*)"', re.DOTALL)
_CLOSERS = {"(": ")", "[": "]", "{": "}"}
_WHITESPACE = re.compile(r"\s+")
_MARKER = "cdzjinja"  # lower-case letters only: nh3 never escapes it, and no entity starts so


def _tag_end(source: str, pos: int, end: str) -> int | None:
    """Where the `{{`/`{%` tag whose body starts at pos ends, or None if Jinja would fail."""
    stack: list[str] = []
    while pos < len(source):
        if not stack and source.startswith(end, pos):
            return pos + len(end)
        char = source[pos]
        if char in "'\"":
            string = _STRING.match(source, pos)
            if string is None:
                return None
            pos = string.end()
            continue
        if char in _CLOSERS:
            stack.append(_CLOSERS[char])
        elif char in ")]}" and (not stack or stack.pop() != char):
            return None
        pos += 1
    return None


def _split_jinja(source: str) -> list[tuple[bool, str]]:
    """Splits a body into (is_jinja_tag, text) pieces, in order, covering all of it."""
    pieces: list[tuple[bool, str]] = []
    pos = 0
    while (opener := _OPENER.search(source, pos)) is not None:
        start = opener.start()
        if opener.group() == "{#":
            close = source.find("#}", start + 2)
            stop = None if close < 0 else close + 2
        elif opener.group() in ("{{", "{%"):
            stop = _tag_end(source, opener.end(), "}}" if opener.group() == "{{" else "%}")
        else:  # raw block: its delimiters are tags, its body is HTML like any other text
            raw_end = _RAW_END.search(source, opener.end())
            if raw_end is None:
                break
            pieces += [
                (False, source[pos:start]),
                (True, opener.group()),
                (False, source[opener.end() : raw_end.start()]),
                (True, raw_end.group()),
            ]
            pos = raw_end.end()
            continue
        if stop is None:
            break  # Jinja cannot compile this; leave the rest to nh3 as plain HTML
        pieces += [(False, source[pos:start]), (True, source[start:stop])]
        pos = stop
    pieces.append((False, source[pos:]))
    return [piece for piece in pieces if piece[1]]


def _allow_list(attribute_filter: Callable[[str, str, str], str] | None) -> dict[str, Any]:
    return {
        "tags": set(_ALLOWED_TAGS),
        "attributes": {tag: set(attrs) for tag, attrs in _ALLOWED_ATTRIBUTES.items()},
        "url_schemes": set(_URL_SCHEMES),
        "link_rel": "noopener noreferrer",
        "clean_content_tags": {"script", "style"},
        "strip_comments": True,
        "attribute_filter": attribute_filter,
    }


# Built once: handing the allow-list to nh3 and building its sanitiser cost four times
# the cleaning of a short email body (docs/benchmarks.md), once per email.
_CLEANER = nh3.Cleaner(**_allow_list(None))


def clean_html(html: str, attribute_filter: Callable[[str, str, str], str] | None = None) -> str:
    """The allow-list itself; also applied to every rendered body before it is sent, since
    a token value (say a contact's website in an href) can carry a `javascript:` URL that
    no check at save time could see. `attribute_filter(tag, attribute, value)` may change
    allowed values (click tracking rewrites hrefs with it)."""
    if attribute_filter is None:
        return _CLEANER.clean(html)
    return nh3.clean(html, **_allow_list(attribute_filter))


def sanitize_html(body: str, *, field: str = "body") -> str:
    """Cleans an email body when it is saved, leaving its Jinja tags exactly as written.

    nh3 escapes `<`, `>`, `&` inside tags (`{{ a < b }}` -> `{{ a &lt; b }}`) and balances
    tags it sees in string literals, so each Jinja tag is swapped for a letters-and-digits
    placeholder first and put back afterwards. The placeholder cannot help an href past the
    scheme check: `java{{ x }}script:` still reads as an unknown scheme and is dropped.

    Jinja tags inside removed content (script, style, comments) or inside an HTML tag outside
    an attribute value are dropped with it. Raises CadenzaError(INVALID_TEMPLATE) when the
    HTML parser moves Jinja tags (text between table rows is moved before the table), when
    dropping them breaks the template, or when Jinja would read the result differently from
    the scanner, rather than save something other than what was checked.
    """
    marker = _MARKER
    while marker in body:
        marker += "q"
    originals: list[str] = []
    protected: list[str] = []
    for is_tag, text in _split_jinja(body):
        if is_tag:
            protected.append(f"{marker}x{len(originals)}x")
            originals.append(text)
        else:
            protected.append(text)

    cleaned = clean_html("".join(protected))
    placeholder = re.compile(rf"{marker}x(\d+)x")
    order = [int(m.group(1)) for m in placeholder.finditer(cleaned)]
    if order != sorted(set(order)):
        first, second = next((a, b) for a, b in itertools.pairwise(order) if b <= a)
        moved = [originals[first], originals[second]]
        raise CadenzaError(
            ErrorCode.INVALID_TEMPLATE,
            f"Cleaning the HTML of {field} would move {moved[0]} before {moved[1]}: "
            "browsers move text that sits between table rows out of the table. "
            "Put Jinja tags inside table cells, or around the whole table.",
            details={"field": field, "moved": moved},
        )
    restored = placeholder.sub(lambda m: originals[int(m.group(1))], cleaned)
    kept = set(order)
    dropped = [tag for i, tag in enumerate(originals) if i not in kept]
    _confirm_with_jinja(body, restored, placeholder.sub("", cleaned), dropped, field)
    return restored


def _parses(source: str) -> bool:
    try:
        _ENVS[True].parse(source)
    except TemplateSyntaxError:
        return False
    return True


def _jinja_text(source: str) -> str:
    """What Jinja prints verbatim (text and raw bodies), whitespace removed, because `{%-`
    and `-%}` trim whitespace next to tags."""
    tokens = _ENVS[True].lex(source)
    return _WHITESPACE.sub("", "".join(value for _, kind, value in tokens if kind == "data"))


def _confirm_with_jinja(
    body: str, restored: str, approved: str, dropped: list[str], field: str
) -> None:
    if not _parses(restored):
        if dropped and _parses(body):
            raise CadenzaError(
                ErrorCode.INVALID_TEMPLATE,
                f"Cleaning the HTML of {field} removed {', '.join(dropped)}, which breaks the "
                "template. Keep Jinja tags in text or attribute values, not inside HTML tags, "
                "scripts or comments.",
                details={"field": field, "dropped": dropped},
            )
        return  # broken as written and so never renderable: validate_template reports it
    if _jinja_text(restored) != _WHITESPACE.sub("", approved):
        raise CadenzaError(
            ErrorCode.INVALID_TEMPLATE,
            f"Could not tell the Jinja tags in {field} apart from its HTML safely; "
            "check for unbalanced brackets or quotes inside {{ }} and {% %}.",
            details={"field": field},
        )

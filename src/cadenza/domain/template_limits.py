"""Bounds on what one template render may cost: time, memory, iterations.

A template is written once and rendered for every contact, by the one worker that sends
for everyone, with values that come from CSV imports and web forms. A render that loops
over a contact's long property, or asks `center` for a billion columns, must stop with a
clear error for that contact instead of holding up every other email. So each render gets
a budget (`RenderBudget`) and the sandbox charges it from hooks it already has, plus a few
it adds by rewriting the template's syntax tree before it is compiled:

* every `{% for %}` iterates through `LOOP_FILTER`, which counts items (nested loops
  multiply, and the count is over the whole render);
* every `~` concatenation and `{% set %}...{% endset %}` capture passes through
  `BUILT_FILTER`, which checks the size of what was built;
* every filter is wrapped (`guard_filters`): its width/count arguments are checked before
  it runs when they decide how much it allocates, and its result is measured after;
* the environment's `*`, `**`, `+`, `%` hooks, attribute reads and each output chunk.

Every hook also checks the time budget. The checks are cooperative: nothing is killed,
a hook raises `TemplateLimitError` and the render unwinds. One builtin operation runs to
completion, which is why each is bounded in size before it starts.

Pure: the timer is injected; the defaults are in `TemplateLimits`, and the installation's
values come from Settings (config.py) through `configure`.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeGuard

from jinja2 import nodes

__all__ = [
    "BUILT_FILTER",
    "LOOP_FILTER",
    "RenderBudget",
    "TemplateLimitError",
    "TemplateLimits",
    "active_limits",
    "budget",
    "configure",
    "guard_filters",
    "instrument",
]

# Filter names that contain a space: no template can write them, only the rewrite below.
LOOP_FILTER = "cadenza loop"
BUILT_FILTER = "cadenza built"


@dataclass(frozen=True)
class TemplateLimits:
    """What one render may use. Defaults suit emails: a long email is ~20,000 characters.

    max_source_chars: length of a template's source (subject, body, task title or notes).
    max_output_chars: the rendered text, and any single value built on the way.
    max_built_chars: all characters built during one render (concatenations, filter
        results, captured blocks, output), which bounds memory churn in loops.
    max_loop_iterations: items all `{% for %}` loops of one render go through, together
        (two nested loops over 200 items each are 40,200 iterations).
    max_number: the largest width or count a filter or `%` format accepts
        (center, indent, wordwrap, truncate, batch, slice, replace's count, "%10s").
    max_nesting: how deeply blocks and expressions may nest in the source.
    max_seconds: wall time one render may take.
    """

    max_source_chars: int = 100_000
    max_output_chars: int = 1_000_000
    max_built_chars: int = 10_000_000
    max_loop_iterations: int = 10_000
    max_number: int = 10_000
    max_nesting: int = 40
    max_seconds: float = 2.0


class TemplateLimitError(Exception):
    """A limit was reached; `reason` says which, in words the template author can act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_configured = TemplateLimits()


def configure(limits: TemplateLimits) -> None:
    """Installs the installation's limits for every render in this process.

    Called when a service context is created from Settings; the same values then apply at
    save, preview, enrollment views and in the worker, since all of them render through
    domain/templates.py.
    """
    global _configured
    _configured = limits


def active_limits() -> TemplateLimits:
    return _configured


class RenderBudget:
    """What one render has used so far, against its limits."""

    def __init__(self, limits: TemplateLimits, timer: Callable[[], float] = time.monotonic):
        self.limits = limits
        self._timer = timer
        self._deadline = timer() + limits.max_seconds
        self.iterations = 0
        self.built = 0
        self.output = 0
        self._sizes: dict[int, tuple[Any, int]] = {}

    def tick(self) -> None:
        if self._timer() > self._deadline:
            raise TemplateLimitError(
                f"rendering took longer than {self.limits.max_seconds:g} seconds"
            )

    def iterate(self) -> None:
        self.iterations += 1
        if self.iterations > self.limits.max_loop_iterations:
            raise TemplateLimitError(
                f"loops would run more than {self.limits.max_loop_iterations} times in all"
            )
        self.tick()

    def number(self, what: str, value: Any) -> None:
        """A width or count that decides how much an operation allocates."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return
        if abs(value) > self.limits.max_number:
            raise TemplateLimitError(
                f"{what} of {_short(value)} is larger than the {self.limits.max_number} allowed"
            )

    def expect(self, what: str, size: int) -> None:
        """Refuses, before it is built, a value that would be longer than the output limit."""
        if size > self.limits.max_output_chars:
            raise TemplateLimitError(
                f"{what} would be {size} characters long, more than the "
                f"{self.limits.max_output_chars} allowed"
            )

    def built_value(self, what: str, value: Any) -> Any:
        """Measures a value after it is built; returns it, or an iterator that counts."""
        self.tick()
        if isinstance(value, str):
            self.expect(what, len(value))
            self._charge(len(value))
        elif isinstance(value, list | tuple | dict):
            # as text: `[big] * 9` or `[a, a, a]` holds references, but printing it, `~`,
            # `join` or `tojson` would spell each one out
            self.expect(what, self.size(value))
            self._charge(len(value))
        elif isinstance(value, Iterator):
            return self.counted(value)
        return value

    def size(self, value: Any) -> int:
        """About how long `value` is as text; shared parts are measured once."""
        if isinstance(value, str):
            return len(value)
        if isinstance(value, bool) or value is None:
            return 5
        if isinstance(value, int):
            return value.bit_length() // 3 + 1
        if not isinstance(value, list | tuple | dict):
            return 24
        known = self._sizes.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        self.tick()
        items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        total = 2 + sum(self.size(item) + 2 for item in items)
        self._sizes[id(value)] = (value, total)  # kept alive, so the id is not reused
        return total

    def counted(self, items: Iterable[Any]) -> Iterator[Any]:
        for item in items:
            self.iterate()
            yield item

    def emitted(self, chunk: str) -> None:
        self.output += len(chunk)
        if self.output > self.limits.max_output_chars:
            raise TemplateLimitError(
                f"the output is longer than the {self.limits.max_output_chars} characters allowed"
            )
        self._charge(len(chunk))
        self.tick()

    def _charge(self, size: int) -> None:
        self.built += size
        if self.built > self.limits.max_built_chars:
            raise TemplateLimitError(
                f"the template built more than {self.limits.max_built_chars} characters in all"
            )


def _short(value: Any) -> str:
    text = str(value) if not isinstance(value, int) or value.bit_length() < 200 else "a huge number"
    return text if len(text) <= 30 else text[:27] + "..."


_current: contextvars.ContextVar[RenderBudget | None] = contextvars.ContextVar(
    "cadenza_template_budget", default=None
)


def budget() -> RenderBudget:
    """The budget of the render under way (a fresh one for a hook called outside any)."""
    current = _current.get()
    return current if current is not None else RenderBudget(_configured)


class rendering:
    """`with rendering(budget):` makes `budget()` answer this budget for the render."""

    def __init__(self, render_budget: RenderBudget) -> None:
        self._budget = render_budget
        self._token: contextvars.Token[RenderBudget | None] | None = None

    def __enter__(self) -> RenderBudget:
        self._token = _current.set(self._budget)
        return self._budget

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None
        _current.reset(self._token)


# --------------------------------------------------------------------------- the syntax tree


def _wrap(node: nodes.Node | None, name: str, lineno: int) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=lineno)


def _built_node(node: Any) -> TypeGuard[nodes.Expr]:
    """Expressions whose value is checked once built: `~`, and list, tuple and dict
    literals (a literal of lists doubles what it holds, line after line)."""
    if isinstance(node, nodes.Tuple):
        return node.ctx == "load"  # not a target such as `{% for k, v in ... %}`
    return isinstance(node, nodes.Concat | nodes.List | nodes.Dict)


def instrument(tree: nodes.Template) -> nodes.Template:
    """Routes loops, built values and block captures through the counting filters
    (in place)."""
    for loop in list(tree.find_all(nodes.For)):
        loop.iter = _wrap(loop.iter, LOOP_FILTER, loop.lineno)
    for capture in list(tree.find_all(nodes.AssignBlock)):
        capture.filter = _wrap(capture.filter, BUILT_FILTER, capture.lineno)
    for parent in list(tree.find_all(nodes.Node)):
        for field in parent.fields:
            value = getattr(parent, field, None)
            if _built_node(value):
                setattr(parent, field, _wrap(value, BUILT_FILTER, value.lineno))
            elif isinstance(value, list):
                value[:] = [
                    _wrap(v, BUILT_FILTER, v.lineno) if _built_node(v) else v for v in value
                ]
    return tree


def nesting(tree: nodes.Node) -> int:
    """How deeply the tree nests (1 for a node without children)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())
    return deepest


# --------------------------------------------------------------------------- filters

# printf conversions, as `%` and the format filter read them
_CONVERSION = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")


def check_format(spec: Any) -> None:
    """Widths and precisions in a printf format: `"%1000000000s"` allocates that much."""
    if not isinstance(spec, str):
        return
    current = budget()
    for conversion in _CONVERSION.finditer(spec):
        for number in conversion.groups():
            if number == "*":
                raise TemplateLimitError("a * width or precision in a % format is not allowed")
            if number is not None:
                current.number("a width in a % format", int(number) if len(number) < 12 else 10**12)


def _text_len(value: Any) -> int:
    return len(value) if isinstance(value, str) else len(str(value))


def _check_replace(args: dict[str, Any]) -> None:
    text, old, new, count = args["s"], args["old"], args["new"], args.get("count")
    current = budget()
    current.number("replace's count", count)
    if not isinstance(text, str):
        return
    old, new = str(old), str(new)
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and 0 <= count < found:
        found = count
    current.expect("the result of replace", len(text) + found * (len(new) - len(old)))


def _check_center(args: dict[str, Any]) -> None:
    budget().number("center's width", args.get("width"))


def _check_indent(args: dict[str, Any]) -> None:
    width, text = args.get("width"), args.get("s")
    current = budget()
    # a width may be a number of spaces or the string to indent with
    pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    current.number("indent's width", pad)
    if isinstance(text, str):
        current.expect("the result of indent", len(text) + (text.count("\n") + 1) * pad)


def _check_wordwrap(args: dict[str, Any]) -> None:
    width, text, wrap = args.get("width"), args.get("s"), args.get("wrapstring")
    current = budget()
    current.number("wordwrap's width", width)
    if isinstance(text, str) and isinstance(wrap, str) and isinstance(width, int) and width > 0:
        current.expect("the result of wordwrap", len(text) + (len(text) // width + 1) * len(wrap))


def _check_truncate(args: dict[str, Any]) -> None:
    budget().number("truncate's length", args.get("length"))
    budget().number("truncate's leeway", args.get("leeway"))


def _check_batch(args: dict[str, Any]) -> None:
    budget().number("batch's size", args.get("linecount"))


def _check_slice(args: dict[str, Any]) -> None:
    budget().number("slice's count", args.get("slices"))


def _check_format(args: dict[str, Any]) -> None:
    spec = args.get("value")
    check_format(spec)
    values = (*args.get("args", ()), *args.get("kwargs", {}).values())
    size = _text_len(spec) + sum(_text_len(v) for v in values if isinstance(v, str))
    budget().expect("the result of format", size)


def _attribute_of(item: Any, attribute: Any) -> Any:
    for part in str(attribute).split("."):
        if isinstance(item, dict):
            item = item.get(part, "")
        elif isinstance(item, list | tuple) and part.isdigit() and int(part) < len(item):
            item = item[int(part)]
        else:
            return ""
    return item


def _check_join(args: dict[str, Any]) -> None:
    value: Any = args.get("value")
    separator, attribute = args.get("d", ""), args.get("attribute")
    if isinstance(value, str):
        return
    if not isinstance(value, list | tuple):
        # a generator (select, map...) is collected here, its items counted, to be measured
        value = args["value"] = list(value)
    current = budget()
    items = value if attribute is None else [_attribute_of(item, attribute) for item in value]
    size = sum(current.size(item) for item in items)
    size += max(len(value) - 1, 0) * _text_len(separator)
    current.expect("the result of join", size)


def _check_sum(args: dict[str, Any]) -> None:
    if not isinstance(args.get("start", 0), int | float):
        raise TemplateLimitError("sum adds numbers only; use join for text and lists")


_BEFORE: dict[str, Callable[[Any], None]] = {
    "replace": _check_replace,
    "center": _check_center,
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "truncate": _check_truncate,
    "batch": _check_batch,
    "slice": _check_slice,
    "format": _check_format,
    "join": _check_join,
    "sum": _check_sum,
}


def _guarded(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    before = _BEFORE.get(name)
    signature = inspect.signature(func) if before is not None else None
    # Jinja passes its context first to a filter marked pass_*; async-ready filters are
    # marked so on a wrapper whose signature (the sync function's) does not show it.
    skip = 0
    if signature is not None and getattr(func, "jinja_pass_arg", None) is not None:
        first = next(iter(signature.parameters), "")
        skip = 0 if first in ("eval_ctx", "context", "environment", "env") else 1

    @functools.wraps(func)  # keeps jinja_pass_arg, so Jinja still passes the context
    def guarded(*args: Any, **kwargs: Any) -> Any:
        current = budget()
        current.tick()
        if before is not None and signature is not None:
            try:
                bound = signature.bind(*args[skip:], **kwargs)
            except TypeError:
                pass  # the call itself will fail with Jinja's own message
            else:
                bound.apply_defaults()
                before(bound.arguments)  # may collect a generator argument to measure it
                args, kwargs = (*args[:skip], *bound.args), bound.kwargs
        return current.built_value(f"the result of {name}", func(*args, **kwargs))

    return guarded


def _loop(items: Any) -> Iterator[Any]:
    return budget().counted(items)


def _built(value: Any) -> Any:
    return budget().built_value("a value the template builds", value)


def guard_filters(filters: dict[str, Callable[..., Any]]) -> None:
    """Wraps every filter (in place) and adds the two the rewritten tree calls."""
    for name, func in list(filters.items()):
        filters[name] = _guarded(name, func)
    filters[LOOP_FILTER] = _loop
    filters[BUILT_FILTER] = _built


# --------------------------------------------------------------------------- operators


def check_binop(operator: str, left: Any, right: Any, max_bits: int) -> None:
    """Before `*`, `**` or `%` runs: results that would be too large are refused."""
    current = budget()
    current.tick()
    if operator == "**":
        if (
            isinstance(left, int)
            and isinstance(right, int)
            and right > 0
            and max(abs(left).bit_length(), 1) * right > max_bits
        ):
            raise TemplateLimitError("the result of ** would be too large")
    elif operator == "*":
        if isinstance(left, int) and isinstance(right, int):
            if abs(left).bit_length() + abs(right).bit_length() > max_bits:
                raise TemplateLimitError("the result of * would be too large")
            return
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(count, int):
                current.expect("the result of *", current.size(seq) * max(count, 0))
    elif operator == "%" and isinstance(left, str):
        check_format(left)

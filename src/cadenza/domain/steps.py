"""The shape of a sequence step, validated when a sequence is saved.

The same `StepSpec` is what an enrollment snapshots (as a plain dict), so the engine
runs exactly what was validated, with the contact's edits applied.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from enum import Enum
from typing import Any, TypeVar

from cadenza.domain import templates
from cadenza.domain.enums import StepType, TaskPriority, TaskType
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.ids import is_row_id
from cadenza.domain.variants import (
    LABELS,
    MAX_VARIANTS,
    MAX_WINNER_AFTER,
    MIN_VARIANTS,
    VARIANT_KEYS,
    Variant,
)

MAX_DELAY_DAYS = 365
EDITABLE_FIELDS = ("subject", "body", "task_title", "task_notes")


@dataclass(frozen=True)
class StepSpec:
    position: int
    type: StepType
    delay_days: int = 0
    delay_hours: int = 0
    subject: str | None = None
    body: str | None = None
    thread_with_step: int | None = None
    task_type: TaskType | None = None
    task_title: str | None = None
    task_notes: str | None = None
    task_priority: TaskPriority = TaskPriority.NONE
    continue_without_completing: bool = False
    # A/B variants (domain/variants.py); empty for a step without them.
    variants: tuple[Variant, ...] = ()
    winner_after: int | None = None  # the winner rule: sends per variant before it decides
    # In an enrollment's snapshot only: the variant this contact got (its text is the
    # step's subject and body there, the others dropped); None when the step had none or
    # the contact's own edit replaced it.
    variant: str | None = None
    # The library template an email step uses by reference (subject and body are its
    # text as it was when saved or last edited); None when typed inline or copied.
    template_id: int | None = None

    @property
    def sends_email(self) -> bool:
        return self.type in (StepType.EMAIL, StepType.MANUAL_EMAIL)

    def templates(self) -> list[str]:
        """Every template the step renders, for token checks."""
        texts = (self.subject, self.body, self.task_title, self.task_notes)
        own = [t for t in texts if t]
        return own + [t for v in self.variants for t in (v.subject, v.body) if t]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("type", "task_type", "task_priority"):
            data[key] = str(data[key]) if data[key] is not None else None
        data["variants"] = [v.to_dict() for v in self.variants] or None
        if data["variant"] is None:  # a snapshot's only: a sequence's step reads back as saved
            del data["variant"]
        return data

    def as_variant(self, label: str) -> StepSpec:
        """The step as the contact given `label` gets it: that variant's text, alone."""
        chosen = next(v for v in self.variants if v.label == label)
        return replace(
            self,
            subject=chosen.subject or self.subject,
            body=chosen.body or self.body,
            variants=(),
            winner_after=None,
            variant=label,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepSpec:
        """Rebuilds a stored (already validated) step, e.g. from an enrollment snapshot."""
        return cls(
            **{
                **data,
                "type": StepType(data["type"]),
                "task_type": TaskType(data["task_type"]) if data.get("task_type") else None,
                "task_priority": TaskPriority(data.get("task_priority") or "none"),
                "variants": tuple(Variant.from_dict(v) for v in data.get("variants") or ()),
            }
        )

    def with_edits(self, edits: dict[str, Any], label: str | None = None) -> StepSpec:
        """The step for one contact: on a step with variants, the one chosen (`label`,
        unless the edits name one); an edit of the subject or body replaces the variant
        altogether (the contact gets their own text, counted as no variant)."""
        edits = dict(edits)
        chosen = edits.pop("variant", None) or label
        if not self.variants:
            return replace(self, **edits) if edits else self  # frozen: unchanged is itself
        if "subject" in edits or "body" in edits:
            return replace(self, **edits, variants=(), winner_after=None, variant=None)
        return replace(self.as_variant(chosen or self.variants[0].label), **edits)


def _fail(position: int, message: str, field: str | None = None) -> CadenzaError:
    return CadenzaError(
        ErrorCode.VALIDATION_ERROR,
        f"step {position}: {message}",
        {"step": position, "field": field},
    )


def _int(data: dict[str, Any], key: str, position: int, low: int, high: int) -> int:
    value = data.get(key, 0) or 0
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(position, f"{key} must be a whole number from {low} to {high}", key)
    return value


_Choice = TypeVar("_Choice", bound=Enum)


def _choice(enum: type[_Choice], value: Any, position: int, field: str) -> _Choice:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise _fail(position, f"{field} must be one of {allowed}, got {value!r}", field) from None


def _template(value: Any, position: int, field: str, *, html: bool = False) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _fail(position, f"{field} must be text", field)
    try:
        templates.validate_template(value, field=field)
    except CadenzaError as exc:
        exc.message = f"step {position}: {exc.message}"
        exc.details = {**(exc.details or {}), "step": position, "field": field}
        raise
    return templates.sanitize_html(value) if html else value


def _template_id(value: Any, position: int) -> int | None:
    if value is None or value == "":
        return None
    if not is_row_id(value):
        raise _fail(position, "template_id must be a template's id", "template_id")
    return value


STEP_KEYS = {
    "type",
    "delay_days",
    "delay_hours",
    "subject",
    "body",
    "thread_with_step",
    "task_type",
    "task_title",
    "task_notes",
    "task_priority",
    "continue_without_completing",
    "position",
    "id",
    "variants",
    "winner_after",
    "template_id",
}


def parse_step(data: dict[str, Any], position: int) -> StepSpec:
    if not isinstance(data, dict):
        raise _fail(position, "must be an object")
    unknown = sorted(set(data) - STEP_KEYS)
    if unknown:
        raise _fail(position, f"unknown field(s): {', '.join(unknown)}")
    step_type = _choice(StepType, data.get("type"), position, "type")
    spec = StepSpec(
        position=position,
        type=step_type,
        delay_days=_int(data, "delay_days", position, 0, MAX_DELAY_DAYS),
        delay_hours=_int(data, "delay_hours", position, 0, 23),
        subject=_template(data.get("subject"), position, "subject"),
        body=_template(data.get("body"), position, "body", html=True),
        thread_with_step=data.get("thread_with_step"),
        task_title=_template(data.get("task_title"), position, "task_title"),
        task_notes=_template(data.get("task_notes"), position, "task_notes"),
        task_priority=_choice(
            TaskPriority, data.get("task_priority") or "none", position, "task_priority"
        ),
        continue_without_completing=bool(data.get("continue_without_completing", False)),
        template_id=_template_id(data.get("template_id"), position),
    )
    if step_type is StepType.TASK:
        if data.get("variants") or data.get("winner_after") is not None:
            raise _fail(position, "only an automated email step can have variants", "variants")
        return replace(
            spec,
            task_type=_choice(TaskType, data.get("task_type") or "todo", position, "task_type"),
            subject=None,
            body=None,
            thread_with_step=None,
            template_id=None,
        )
    # Task fields mean nothing on an email step (a manual email's task takes only its
    # priority): dropped here so no client keeps a value nothing reads or shows.
    spec = replace(
        spec,
        task_title=None,
        task_notes=None,
        continue_without_completing=False,
        task_priority=spec.task_priority
        if step_type is StepType.MANUAL_EMAIL
        else TaskPriority.NONE,
    )
    if not spec.body:
        raise _fail(position, "an email step needs a body", "body")
    if not spec.subject and spec.thread_with_step is None:
        raise _fail(position, "an email step needs a subject (or thread_with_step)", "subject")
    return _with_variants(spec, data.get("variants"), data.get("winner_after"))


def _with_variants(spec: StepSpec, items: Any, winner_after: Any) -> StepSpec:
    """2 to 5 variants labelled A, B... in order, each a valid template; the winner rule
    only on a step that has them."""
    position = spec.position
    if items is None or items == []:
        if winner_after is not None:
            raise _fail(position, "winner_after needs variants", "winner_after")
        return spec
    if spec.type is not StepType.EMAIL:
        raise _fail(position, "only an automated email step can have variants", "variants")
    if not isinstance(items, list) or not MIN_VARIANTS <= len(items) <= MAX_VARIANTS:
        count = f"{len(items)} given" if isinstance(items, list) else "not a list"
        raise _fail(
            position, f"a step has {MIN_VARIANTS} to {MAX_VARIANTS} variants ({count})", "variants"
        )
    variants = []
    for index, item in enumerate(items):
        label = LABELS[index]
        if not isinstance(item, dict) or set(item) - VARIANT_KEYS:
            raise _fail(position, f"variant {label}: an object of label, subject, body", "variants")
        if item.get("label") not in (None, label):
            raise _fail(position, f"variant {index + 1} must be labelled {label}", "variants")
        variants.append(
            Variant(
                label,
                _template(item.get("subject"), position, f"variants.{label}.subject"),
                _template(item.get("body"), position, f"variants.{label}.body", html=True),
            )
        )
    if winner_after is not None and (
        isinstance(winner_after, bool)
        or not isinstance(winner_after, int)
        or not 1 <= winner_after <= MAX_WINNER_AFTER
    ):
        raise _fail(
            position,
            f"winner_after must be a whole number from 1 to {MAX_WINNER_AFTER}, or null",
            "winner_after",
        )
    return replace(spec, variants=tuple(variants), winner_after=winner_after)


MAX_STEPS = 50  # a cadence, not a program: bounds every projection and preview


def parse_steps(items: list[dict[str, Any]]) -> list[StepSpec]:
    """Validates an ordered list of steps; positions are 1-based, in list order."""
    if not isinstance(items, list):
        raise CadenzaError(ErrorCode.VALIDATION_ERROR, "steps must be a list")
    if len(items) > MAX_STEPS:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            f"a sequence has at most {MAX_STEPS} steps ({len(items)} given)",
            {"field": "steps", "limit": MAX_STEPS},
        )
    steps = [parse_step(item, index) for index, item in enumerate(items, start=1)]
    for step in steps:
        if step.thread_with_step is None:
            continue
        target = step.thread_with_step
        if (
            not isinstance(target, int)
            or not 1 <= target < step.position
            or not steps[target - 1].sends_email
        ):
            raise _fail(
                step.position,
                "thread_with_step must name an earlier email step of this sequence",
                "thread_with_step",
            )
    return steps


def validate_edits(step: StepSpec, edits: Any) -> dict[str, str]:
    """Per-contact edits of a step at enrollment: only text fields, each a valid template,
    and on a step with variants the one this contact gets (`variant`)."""
    if not isinstance(edits, dict):
        raise _fail(step.position, "edits must be an object")
    unknown = sorted(set(edits) - {*EDITABLE_FIELDS, "variant"})
    if unknown:
        raise _fail(step.position, f"cannot edit {', '.join(unknown)}")
    clean: dict[str, str] = {}
    for field, value in edits.items():
        if value is None:
            continue
        if field == "variant":
            labels = [v.label for v in step.variants]
            if value not in labels:
                allowed = ", ".join(labels) or "none: the step has no variants"
                raise _fail(step.position, f"variant must be one of {allowed}", "variant")
            clean[field] = value
            continue
        rendered = _template(value, step.position, field, html=field == "body")
        if rendered is not None:
            clean[field] = rendered
    return clean

"""The sequence editor: add, reorder, edit and delete steps, the settings, and a live
preview for a chosen contact.

The whole sequence is one form. Add / move / delete re-render the form with the change
(unsaved) so nothing needs client-side state; Save replaces the sequence through the
sequences service, which validates every step (errors are shown on their step).
An automated email's A/B variants are tabs (vanilla JS; without it every variant shows,
one under the other), added and removed by the same re-rendering ops.
In-flight enrollments keep their snapshots, so saving never changes them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData

from cadenza.domain.enums import (
    ContactStatus,
    Exclusivity,
    FollowUpDays,
    Reenrollment,
    StepType,
    TaskPriority,
    TaskType,
    UnenrollOnReply,
)
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.ids import whole_number
from cadenza.domain.steps import parse_step
from cadenza.domain.variants import LABELS, MAX_VARIANTS, MIN_VARIANTS
from cadenza.services.context import Context
from cadenza.services.crm import contact_index
from cadenza.services.sequences import preview
from cadenza.services.sequences import templates_library as library
from cadenza.services.sequences.catalog import get_sequence, replace_sequence, step_specs
from cadenza.web.auth import Ctx
from cadenza.web.errors import MAX_ID
from cadenza.web.ui.forms import FormError, settings_from_form
from cadenza.web.ui.rendering import render
from cadenza.web.ui.session import PageWriter, check_csrf
from cadenza.web.ui.templates_library import snippet_choices

router = APIRouter(dependencies=[Depends(check_csrf)])

MAX_TEMPLATES_OFFERED = 500
UNSAVED = "Not saved yet: press Save to keep the changes."

TEXT_FIELDS = ("subject", "body", "task_title", "task_notes", "task_type", "task_priority")
TOKENS = (
    "contact.firstname", "contact.lastname", "contact.fullname", "contact.company",
    "contact.jobtitle", "sender.firstname", "sender.fullname", "sender.email",
    "sender.meeting_link",
)  # fmt: skip


def _number(value: Any) -> Any:
    """Digits become numbers; anything else goes to the validator as it is, to be refused."""
    text = str(value or "").strip()
    number = whole_number(text)
    return number if number is not None else (text or 0)


# Every sequence setting the editor has a control for. A setting missing here keeps its
# stored value on save (see `editor_settings`), so a new setting is never reset by a
# form that does not know it yet; tests check that this covers all of them.
EDITOR_SETTINGS = (
    "follow_up_days", "holiday_country", "send_window", "thread_follow_ups", "task_reminders",
    "unenroll_on_reply", "unenroll_on_meeting", "track_opens", "track_clicks",
    "auto_reply_pause_days", "append_signature", "unenroll_on_outcomes", "enrollment_rules",
)  # fmt: skip


def _rules_from_form(form: FormData) -> dict[str, Any]:
    """The enrollment rules' controls: blank is the installation's default (None)."""
    days = str(form.get("rule_min_days", "")).strip()
    return {
        "exclusivity": str(form.get("rule_exclusivity", "")) or None,
        "reenrollment": str(form.get("rule_reenrollment", "")) or None,
        "min_days_since_emailed": _number(days) if days else None,
    }


def editor_settings(form: FormData, stored: dict[str, Any]) -> dict[str, Any]:
    """The stored settings with the editor's controls applied on top (validated later)."""
    shown = settings_from_form(form) | {
        "unenroll_on_reply": form.get("unenroll_on_reply", UnenrollOnReply.CONTACT),
        "unenroll_on_meeting": form.get("unenroll_on_meeting") == "on",
        "track_opens": form.get("track_opens") == "on",
        "track_clicks": form.get("track_clicks") == "on",
        "auto_reply_pause_days": _number(form.get("auto_reply_pause_days")),
        "append_signature": form.get("append_signature") == "on",
        # comma-separated keys; blank: the team's ending outcomes (docs/tasks.md)
        "unenroll_on_outcomes": [
            k.strip() for k in str(form.get("unenroll_on_outcomes", "")).split(",") if k.strip()
        ]
        or None,
        "enrollment_rules": _rules_from_form(form),
    }
    # The page names the settings it had controls for: an unchecked box sends nothing,
    # so only this list tells "turned off" from "not on the page".
    on_page = set(str(form.get("settings_controls", "")).split(",")) & set(EDITOR_SETTINGS)
    return {**stored, **{name: shown[name] for name in EDITOR_SETTINGS if name in on_page}}


def steps_from_form(form: FormData) -> list[dict[str, Any]]:
    steps = []
    for index in range(1, int(form.get("step_count", "0") or 0) + 1):
        prefix = f"step-{index}-"
        if f"{prefix}type" not in form:
            continue
        step: dict[str, Any] = {"type": form[f"{prefix}type"]}
        for name in TEXT_FIELDS:
            step[name] = str(form.get(prefix + name, "")) or None
        step["delay_days"] = _number(form.get(prefix + "delay_days"))
        step["delay_hours"] = _number(form.get(prefix + "delay_hours"))
        thread = str(form.get(prefix + "thread_with_step", ""))
        step["thread_with_step"] = whole_number(thread)
        step["continue_without_completing"] = form.get(prefix + "continue") == "on"
        step |= _variants_from_form(form, prefix)
        template = str(form.get(prefix + "template_id", ""))
        step["template_id"] = int(template) if template.isdigit() and len(template) < 10 else None
        steps.append(step)
    return steps


def _variants_from_form(form: FormData, prefix: str) -> dict[str, Any]:
    """A step's A/B variants (`variant_count` of them; empty fields: the step's own) and
    its winner rule. A count the editor never shows (1, or past 5) goes to the validator
    as it is, to be refused there; the loop stays bounded whatever the form says."""
    count = _number(form.get(prefix + "variant_count"))
    if not isinstance(count, int) or count == 0:
        return {}
    variants = []
    for label in (LABELS + "F")[: min(count, MAX_VARIANTS + 1)]:
        field = f"{prefix}variant-{label}-"
        variants.append(
            {
                "label": label if label in LABELS else None,
                "subject": str(form.get(field + "subject", "")) or None,
                "body": str(form.get(field + "body", "")) or None,
            }
        )
    winner_after = str(form.get(prefix + "winner_after", "")).strip()
    return {"variants": variants, "winner_after": _number(winner_after) if winner_after else None}


def variant_op(steps: list[dict[str, Any]], op: str) -> list[dict[str, Any]]:
    """variant-add:<n> (a step's first: A and B; then the next label), variant-remove:<n>:<L>
    (the others relabelled in order; fewer than 2 left: the step has no variants)."""
    verb, _, arg = op.partition(":")
    position, _, label = arg.partition(":")
    if not position.isdigit() or not 1 <= int(position) <= len(steps):
        return steps
    steps = [dict(step) for step in steps]
    step = steps[int(position) - 1]
    variants = [dict(v) for v in step.get("variants") or []]
    if verb == "variant-add" and step.get("type") == StepType.EMAIL:
        variants += [{}] * (2 if not variants else 1)
    elif verb == "variant-remove":
        variants = [v for i, v in enumerate(variants) if LABELS[i : i + 1] != label]
    variants = variants[:MAX_VARIANTS]
    if len(variants) < MIN_VARIANTS:
        step["variants"], step["winner_after"] = None, None
    else:
        blank = {"subject": None, "body": None}
        step["variants"] = [{**blank, **v, "label": LABELS[i]} for i, v in enumerate(variants)]
    return steps


def use_template(
    ctx: Context, user_id: int, form: FormData, steps: list[dict[str, Any]], op: str
) -> list[dict[str, Any]]:
    """template:<n>: step n takes the template picked beside it, by reference (kept
    current by the library) or as a copy (its own text from now on); detach:<n> turns a
    step's reference into a copy of the text it has."""
    verb, _, arg = op.partition(":")
    if not arg.isdigit() or not 1 <= int(arg) <= len(steps):
        return steps
    step = dict(steps[int(arg) - 1])
    if verb == "detach":
        step["template_id"] = None
    else:
        picked = str(form.get(f"step-{arg}-pick", ""))
        if not (picked.isdigit() and 1 <= int(picked) <= MAX_ID):
            raise CadenzaError(ErrorCode.VALIDATION_ERROR, "choose a template to use")
        template = library.get_template(ctx, user_id, int(picked))
        by_reference = form.get(f"step-{arg}-pick_mode", "reference") == "reference"
        step |= {
            "subject": template.subject,
            "body": template.body,
            "template_id": template.id if by_reference else None,
        }
    return [*steps[: int(arg) - 1], step, *steps[int(arg) :]]


def apply_op(steps: list[dict[str, Any]], op: str) -> list[dict[str, Any]]:
    """add:<type>, up:<n>, down:<n>, delete:<n> (1-based); threads follow their step."""
    verb, _, arg = op.partition(":")
    steps = list(steps)
    if verb == "add" and arg in {t.value for t in StepType}:
        new = {"type": arg, "delay_days": 0 if not steps else 2, "delay_hours": 0}
        if arg == StepType.TASK:
            new |= {"task_type": "call", "task_title": "Call {{ contact.firstname }}"}
        else:
            new |= {"subject": "", "body": "<p>Hi {{ contact.firstname }},</p>"}
        return [*steps, new]
    if not arg.isdigit() or not 1 <= int(arg) <= len(steps):
        return steps
    index = int(arg) - 1
    order = list(range(len(steps)))
    if verb == "delete":
        order.pop(index)
    elif verb == "up" and index > 0:
        order[index - 1], order[index] = order[index], order[index - 1]
    elif verb == "down" and index < len(steps) - 1:
        order[index + 1], order[index] = order[index], order[index + 1]
    else:
        return steps
    new_position = {old + 1: new + 1 for new, old in enumerate(order)}
    moved = [dict(steps[old]) for old in order]
    for step in moved:
        target = step.get("thread_with_step")
        if target:
            step["thread_with_step"] = new_position.get(target)
    return moved


STEP_DEFAULTS = {
    **dict.fromkeys(TEXT_FIELDS),
    "delay_days": 0,
    "delay_hours": 0,
    "thread_with_step": None,
    "continue_without_completing": False,
    "variants": None,
    "winner_after": None,
    "template_id": None,
}


def _editor(request: Request, ctx: Context, user_id: int, sequence_id: int, **state: Any):
    state["steps"] = [{**STEP_DEFAULTS, **step} for step in state.get("steps", [])]
    offered = library.list_templates(ctx, user_id, limit=MAX_TEMPLATES_OFFERED)
    contacts = contact_index.browse_contacts(
        ctx, contact_index.ContactFilter(status=ContactStatus.REACHABLE), per_page=50
    ).contacts
    return render(
        request,
        "sequences/editor.html",
        sequence_id=sequence_id,
        contacts=contacts,
        tokens=TOKENS,
        step_types=[t.value for t in StepType],
        task_types=[t.value for t in TaskType],
        priorities=[p.value for p in TaskPriority],
        follow_up_choices=[f.value for f in FollowUpDays],
        unenroll_choices=[u.value for u in UnenrollOnReply],
        exclusivity_choices=[e.value for e in Exclusivity],
        reenrollment_choices=[r.value for r in Reenrollment],
        rules_default=ctx.settings.enrollment_rules(),
        settings_controls=",".join(EDITOR_SETTINGS),
        library_templates=offered,
        template_names={t.id: t.name for t in offered},
        snippets=snippet_choices(ctx, user_id),
        status_code=state.pop("status_code", 200),
        **{"error": None, "notice": None, **state},
    )


@router.get("/sequences/{sequence_id}/edit")
def edit_sequence(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
    sequence_id: int = Path(ge=1, le=MAX_ID),
):
    sequence = get_sequence(ctx, sequence_id, actor_id=user.id, to_change=True)
    steps = [s.to_dict() for s in step_specs(sequence)]
    return _editor(
        request, ctx, user.id, sequence_id, name=sequence.name, settings=sequence.settings,
        steps=steps,
    )  # fmt: skip


@router.post("/sequences/{sequence_id}/edit")
async def save_sequence(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
    sequence_id: int = Path(ge=1, le=MAX_ID),
):
    form = await request.form()
    # A missing sequence is a 404 page and someone else's a 403 page, not a form error;
    # an archived one says to unarchive it first.
    stored = get_sequence(ctx, sequence_id, actor_id=user.id, to_change=True).settings or {}
    name = str(form.get("name", ""))
    steps = steps_from_form(form)
    op = str(form.get("op", "save"))
    try:
        settings = editor_settings(form, stored)
    except FormError as exc:
        return _editor(request, ctx, user.id, sequence_id, name=name, settings=stored,
                       steps=steps, error={"step": None, "message": exc.message},
                       status_code=422)  # fmt: skip
    if op != "save":
        try:
            if op.startswith("variant-"):
                steps = variant_op(steps, op)
            elif op.startswith(("template:", "detach:")):
                steps = use_template(ctx, user.id, form, steps, op)
            else:
                steps = apply_op(steps, op)
        except CadenzaError as exc:
            step = int(op.partition(":")[2]) if op.partition(":")[2].isdigit() else None
            return _editor(request, ctx, user.id, sequence_id, name=name, settings=settings,
                           steps=steps, error={"step": step, "message": exc.message},
                           status_code=exc.http_status)  # fmt: skip
        return _editor(request, ctx, user.id, sequence_id, name=name, settings=settings,
                       steps=steps, notice=UNSAVED)  # fmt: skip
    try:
        replace_sequence(
            ctx, sequence_id, name=name, settings=settings, steps=steps, actor_id=user.id
        )
    except CadenzaError as exc:
        step = (exc.details or {}).get("step") if isinstance(exc.details, dict) else None
        return _editor(request, ctx, user.id, sequence_id, name=name, settings=settings,
                       steps=steps, error={"step": step, "message": exc.message},
                       status_code=422)  # fmt: skip
    return RedirectResponse(f"/sequences/{sequence_id}", status_code=303)


@router.post("/sequences/{sequence_id}/preview")
async def preview_sequence(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
    sequence_id: int = Path(ge=1, le=MAX_ID),
):
    form = await request.form()
    get_sequence(ctx, sequence_id, actor_id=user.id, to_change=True)
    contact = str(form.get("preview_contact", ""))
    specs, problems = [], []
    for position, step in enumerate(steps_from_form(form), start=1):
        try:
            specs.append(parse_step(step, position))
        except CadenzaError as exc:
            problems.append(exc.message)
    threaded = form.get("thread_follow_ups") == "on"
    previews = (
        preview.preview_steps(ctx, specs, int(contact), user.id, thread_follow_ups=threaded)
        if contact.isdigit()
        else []
    )
    return render(request, "sequences/preview.html", previews=previews, problems=problems)

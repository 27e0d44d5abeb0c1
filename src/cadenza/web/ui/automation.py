"""Automation rules (admins): the list, a new rule, switching one on or off, its run log.

Triggers, conditions and actions are typed as JSON (the API's shapes, documented in
docs/records.md) with an example for each trigger; the service checks them and a
refusal is shown next to the field it names, with what was typed kept.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import RedirectResponse

from cadenza.domain.errors import CadenzaError
from cadenza.domain.ids import row_id_of
from cadenza.services.automation import rules as automation_rules
from cadenza.services.context import Context
from cadenza.services.sequences.catalog import list_sequences
from cadenza.web.auth import Ctx
from cadenza.web.errors import MAX_ID
from cadenza.web.ui.forms import FormError
from cadenza.web.ui.rendering import render
from cadenza.web.ui.session import PageAdmin, check_csrf

router = APIRouter(dependencies=[Depends(check_csrf)])

MAX_RULES = 500
MAX_JSON = 20_000
EXAMPLES = {
    "trigger": '{"type": "list_added", "list_id": 1}',
    "conditions": '{"all": [{"property": "jobtitle", "op": "contains", "value": "vp"}]}',
    "action": '{"type": "enroll", "user_id": 1, "mailbox_id": 1}',
}


def _json(form: Any, field: str, *, required: bool) -> dict | None:
    text = str(form.get(field, "")).strip()
    if not text:
        if required:
            raise FormError(field, f"give the {field} as JSON, e.g. {EXAMPLES[field]}")
        return None
    if len(text) > MAX_JSON:
        raise FormError(field, f"the {field} is too long")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormError(field, f"not valid JSON: {exc.msg} (line {exc.lineno})") from None
    except (ValueError, RecursionError):  # the limits of Python's reader, not syntax
        raise FormError(field, "not valid JSON: a number or a nesting too deep to read") from None
    if not isinstance(value, dict):
        raise FormError(field, f"the {field} must be a JSON object, e.g. {EXAMPLES[field]}")
    return value


def _page(request: Request, ctx: Context, status_code: int = 200, **extra):
    return render(
        request,
        "automation/index.html",
        status_code=status_code,
        rules=automation_rules.list_rules(ctx, limit=MAX_RULES),
        sequences={s.id: s for s in list_sequences(ctx)},
        examples=EXAMPLES,
        **{"errors": {}, "values": {}, **extra},
    )


@router.get("/automation")
def rules_page(request: Request, user: PageAdmin, ctx: Ctx):
    return _page(request, ctx)


@router.post("/automation/rules")
async def create_rule(
    request: Request,
    user: PageAdmin,
    ctx: Ctx,
):
    form = await request.form()
    values = {k: str(v) for k, v in form.items() if k != "csrf_token"}
    try:
        sequence = values.get("sequence", "")
        if sequence and row_id_of(sequence) is None:
            raise FormError("sequence", "choose a sequence")
        automation_rules.create_rule(
            ctx,
            user.id,
            name=values.get("name", ""),
            sequence_id=int(sequence) if sequence else None,
            trigger=_json(form, "trigger", required=True),
            conditions=_json(form, "conditions", required=False),
            action=_json(form, "action", required=True),
            enabled=form.get("enabled") == "on",
        )
    except FormError as exc:
        return _page(request, ctx, 422, errors={exc.field: exc.message}, values=values)
    except CadenzaError as exc:
        details = exc.details if isinstance(exc.details, dict) else {}
        where = str(details.get("field", "general")).split(".")[0]
        field = where if where in ("name", "trigger", "conditions", "action") else "general"
        if where == "sequence_id":
            field = "sequence"
        message = f"{exc.code}: {exc.message}"
        return _page(request, ctx, exc.http_status, errors={field: message}, values=values)
    return RedirectResponse("/automation", status_code=303)


@router.post("/automation/rules/{rule_id}/enabled")
async def switch_rule(
    request: Request,
    user: PageAdmin,
    ctx: Ctx,
    rule_id: int = Path(ge=1, le=MAX_ID),
):
    enabled = (await request.form()).get("enabled") == "true"
    automation_rules.update_rule(ctx, user.id, rule_id, {"enabled": enabled})
    return RedirectResponse("/automation", status_code=303)


@router.get("/automation/rules/{rule_id}")
def rule_page(
    request: Request,
    user: PageAdmin,
    ctx: Ctx,
    rule_id: int = Path(ge=1, le=MAX_ID),
):
    return render(
        request,
        "automation/rule.html",
        rule=automation_rules.get_rule(ctx, rule_id),
        runs=automation_rules.list_runs(ctx, rule_id, limit=200),
    )

"""The template library's pages (list with search and folders, new, edit with a preview
for a contact and the template's figures) and the snippets page.

Pages only call services: who may read, change, share or archive a template is the
sharing rule the services apply; a page merely hides the controls it would refuse.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import RedirectResponse

from cadenza.domain import policy
from cadenza.domain.enums import ContactStatus, Sharing
from cadenza.domain.errors import CadenzaError
from cadenza.services.analytics.template_figures import template_figures
from cadenza.services.context import Context
from cadenza.services.crm import contact_index
from cadenza.services.sequences import snippets
from cadenza.services.sequences import templates_library as library
from cadenza.web.auth import Ctx
from cadenza.web.errors import MAX_ID
from cadenza.web.ui.rendering import render
from cadenza.web.ui.session import PageUser, PageWriter, check_csrf

router = APIRouter(dependencies=[Depends(check_csrf)])

MAX_SHOWN = 500
SHARING_LABELS = {
    Sharing.PRIVATE: "Private (only me)",
    Sharing.TEAM_USE: "Team can use",
    Sharing.TEAM_EDIT: "Team can use and edit",
}
TEXT = 200_000  # form fields past this are refused before the template limits look


def snippet_choices(ctx: Context, user_id: int) -> list[dict[str, str]]:
    """What the editors' snippet picker and `#name` autocomplete offer (their JSON)."""
    return [{"name": s.name, "body": s.body} for s in snippets.list_snippets(ctx, user_id)]


def _contacts(ctx: Context):
    return contact_index.browse_contacts(
        ctx, contact_index.ContactFilter(status=ContactStatus.REACHABLE), per_page=50
    ).contacts


@router.get("/templates")
def template_index(
    request: Request,
    user: PageUser,
    ctx: Ctx,
    q: str = Query("", max_length=200),
    folder: str = Query("", max_length=100),
    archived: bool = Query(False),
):
    found = library.list_templates(
        ctx, user.id, search=q, folder=folder or None, archived=archived, limit=MAX_SHOWN
    )
    return render(
        request,
        "templates_library/index.html",
        found=found,
        figures=template_figures(ctx, [t.id for t in found]),
        folders=library.folders(ctx, user.id),
        q=q,
        folder=folder,
        archived=archived,
        may_write=policy.may_write(user),
        sharing_labels=SHARING_LABELS,
    )


def _form(request: Request, ctx: Context, user_id: int, **state):
    state.setdefault("current", None)
    return render(
        request,
        "templates_library/form.html",
        status_code=state.pop("status_code", 200),
        sharing_labels=SHARING_LABELS,
        snippets=snippet_choices(ctx, user_id),
        **{"error": None, "values": {}, "may_edit": True, "may_share": True, **state},
    )


@router.get("/templates/new")
def new_template(request: Request, user: PageWriter, ctx: Ctx):
    return _form(request, ctx, user.id, values={"sharing": Sharing.PRIVATE})


@router.post("/templates")
def create_template(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
    name: str = Form("", max_length=300),
    subject: str = Form("", max_length=TEXT),
    body: str = Form("", max_length=TEXT),
    folder: str = Form("", max_length=200),
    sharing: str = Form(Sharing.PRIVATE, max_length=20),
):
    values = {"name": name, "subject": subject, "body": body, "folder": folder, "sharing": sharing}
    try:
        made = library.create_template(ctx, user.id, **values)
    except CadenzaError as exc:
        return _form(request, ctx, user.id, values=values, error=exc.message, status_code=422)
    return RedirectResponse(f"/templates/{made.id}", status_code=303)


@router.get("/templates/{template_id}")
def template_page(
    request: Request,
    user: PageUser,
    ctx: Ctx,
    template_id: int = Path(ge=1, le=MAX_ID),
):
    template = library.get_template(ctx, user.id, template_id)
    may_edit, may_share = library.may_edit(ctx, user.id, template)
    return _form(
        request,
        ctx,
        user.id,
        current=template,
        values=template.__dict__,
        may_edit=may_edit and template.archived_at is None,
        may_share=may_share,
        figures=template_figures(ctx, [template_id])[template_id],
        contacts=_contacts(ctx),
    )


@router.post("/templates/{template_id}")
def save_template(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
    template_id: int = Path(ge=1, le=MAX_ID),
    name: str = Form("", max_length=300),
    subject: str = Form("", max_length=TEXT),
    body: str = Form("", max_length=TEXT),
    folder: str = Form("", max_length=200),
    sharing: str | None = Form(None, max_length=20),
):
    template = library.get_template(ctx, user.id, template_id)
    values = {"name": name, "subject": subject, "body": body, "folder": folder}
    if sharing is not None:  # the control is only on the page for its owner and admins
        values["sharing"] = sharing
    try:
        library.update_template(ctx, user.id, template_id, values)
    except CadenzaError as exc:
        if exc.http_status in (403, 404, 409):
            raise
        may_edit, may_share = library.may_edit(ctx, user.id, template)
        return _form(
            request, ctx, user.id, current=template, values={**template.__dict__, **values},
            may_edit=may_edit, may_share=may_share, error=exc.message, status_code=422,
            figures=template_figures(ctx, [template_id])[template_id], contacts=_contacts(ctx),
        )  # fmt: skip
    return RedirectResponse(f"/templates/{template_id}", status_code=303)


@router.post("/templates/{template_id}/archive")
def archive_template(
    user: PageWriter,
    ctx: Ctx,
    template_id: int = Path(ge=1, le=MAX_ID),
    archived: str = Form("yes", max_length=3),
):
    library.set_archived(ctx, user.id, template_id, archived == "yes")
    return RedirectResponse(f"/templates/{template_id}", status_code=303)


@router.post("/templates/{template_id}/preview")
def preview_template(
    request: Request,
    user: PageUser,
    ctx: Ctx,
    template_id: int = Path(ge=1, le=MAX_ID),
    preview_contact: int = Form(ge=1, le=MAX_ID),
):
    shown = library.preview_template(ctx, user.id, template_id, preview_contact)
    return render(request, "sequences/preview.html", previews=[shown], problems=[])


@router.get("/snippets")
def snippet_page(request: Request, user: PageUser, ctx: Ctx):
    return _snippets(request, ctx, user)


def _snippets(request: Request, ctx: Context, user, **state):
    found = snippets.list_snippets(ctx, user.id)
    rows = []
    for snippet in found:
        args = (snippet.owner_id, snippet.sharing)
        rows.append(
            (
                snippet,
                policy.shared_may(user, policy.Resource.SNIPPET, policy.Action.UPDATE, *args),
                policy.shared_may(user, policy.Resource.SNIPPET, policy.Action.DELETE, *args),
            )
        )
    return render(
        request,
        "templates_library/snippets.html",
        status_code=state.pop("status_code", 200),
        rows=rows,
        sharing_labels=SHARING_LABELS,
        may_write=policy.may_write(user),
        **{"error": None, "values": {}, **state},
    )


@router.post("/snippets")
def create_snippet(
    request: Request,
    user: PageWriter,
    ctx: Ctx,
    name: str = Form("", max_length=100),
    body: str = Form("", max_length=snippets.MAX_BODY * 2),
    sharing: str = Form(Sharing.PRIVATE, max_length=20),
):
    try:
        snippets.create_snippet(ctx, user.id, name=name, body=body, sharing=sharing)
    except CadenzaError as exc:
        values = {"name": name, "body": body, "sharing": sharing}
        return _snippets(request, ctx, user, values=values, error=exc.message,
                         status_code=exc.http_status)  # fmt: skip
    return RedirectResponse("/snippets", status_code=303)


@router.post("/snippets/{snippet_id}")
def save_snippet(
    user: PageWriter,
    ctx: Ctx,
    snippet_id: int = Path(ge=1, le=MAX_ID),
    body: str = Form("", max_length=snippets.MAX_BODY * 2),
    sharing: str | None = Form(None, max_length=20),
):
    changes = {"body": body} if sharing is None else {"body": body, "sharing": sharing}
    snippets.update_snippet(ctx, user.id, snippet_id, changes)
    return RedirectResponse("/snippets", status_code=303)


@router.post("/snippets/{snippet_id}/delete")
def delete_snippet(user: PageWriter, ctx: Ctx, snippet_id: int = Path(ge=1, le=MAX_ID)):
    snippets.delete_snippet(ctx, user.id, snippet_id)
    return RedirectResponse("/snippets", status_code=303)

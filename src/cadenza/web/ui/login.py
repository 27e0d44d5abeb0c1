"""Signing in and out with email and password, behind the failed-login brake."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse

from cadenza.domain.errors import CadenzaError
from cadenza.services.accounts import login_brake
from cadenza.services.accounts.users import authenticate, end_sessions, session_user
from cadenza.web.auth import Ctx, client_address
from cadenza.web.ui.rendering import render
from cadenza.web.ui.session import PageUser, check_csrf, local_path, session_of

router = APIRouter(dependencies=[Depends(check_csrf)])


@router.get("/")
def home(_user: PageUser):
    return RedirectResponse("/contacts", status_code=303)


@router.get("/login")
def login_form(request: Request, next: str = "/"):
    return render(request, "login.html", next=local_path(next), email="", error=None)


@router.post("/login")
def login(
    request: Request,
    ctx: Ctx,
    email: str = Form(""),
    password: str = Form(""),
    next: str = Form("/"),
):
    address = client_address(request, ctx.settings)
    target = local_path(next)
    try:
        login_brake.check(ctx, email, address)
    except CadenzaError as exc:
        return render(
            request, "login.html", status_code=429, next=target, email=email, error=exc.message
        )
    user = authenticate(ctx, email, password) if email and password else None
    if user is None:
        login_brake.failed(ctx, email, address)
        return render(
            request,
            "login.html",
            status_code=401,
            next=target,
            email=email,
            error="wrong email or password",
        )
    login_brake.succeeded(ctx, email, address)
    session_of(request).sign_in(user)
    return RedirectResponse(target, status_code=303)


@router.post("/logout")
def logout(request: Request, ctx: Ctx):
    """Ends this user's sessions everywhere, not only this browser's: a cookie copied
    off this machine is ended too."""
    session = session_of(request)
    uid = session.data.get("uid")
    if isinstance(uid, int) and session_user(ctx, uid, session.data.get("epoch")) is not None:
        end_sessions(ctx, uid, actor_id=uid)
    session.sign_out()
    return RedirectResponse("/login", status_code=303)

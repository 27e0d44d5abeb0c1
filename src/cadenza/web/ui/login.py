"""Signing in and out with email and password, behind the API's failed-login brake."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse

from cadenza.domain.errors import CadenzaError
from cadenza.services.users import authenticate
from cadenza.web.auth import Ctx, FailedLogins
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
    limiter: FailedLogins = request.app.state.failed_logins
    client = request.client.host if request.client else "unknown"
    target = local_path(next)
    try:
        limiter.check(client)
    except CadenzaError as exc:
        return render(
            request, "login.html", status_code=429, next=target, email=email, error=exc.message
        )
    user = authenticate(ctx, email, password) if email and password else None
    if user is None:
        limiter.failed(client)
        return render(
            request,
            "login.html",
            status_code=401,
            next=target,
            email=email,
            error="wrong email or password",
        )
    session_of(request).sign_in(user)
    return RedirectResponse(target, status_code=303)


@router.post("/logout")
def logout(request: Request):
    session_of(request).sign_out()
    return RedirectResponse("/login", status_code=303)

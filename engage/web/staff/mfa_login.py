"""The second step of staff sign-in, and signing in with a passkey alone.

After a right password, a staff member with a second factor gets a pending cookie
(:mod:`engage.web.staff.pending`) and ``/login/verify`` asks for a code from their
authenticator app, a recovery code, or their passkey. ``/login/passkey/*`` also serves the
sign-in page's "Use a passkey instead" (no password: the authenticator must verify its user).
These routes have no session yet, so they check the sign-in form's double-submit CSRF cookie.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.orm import Session

from engage import metrics
from engage.config import get_settings
from engage.db import session_scope
from engage.records import factors, login_throttle, passkeys
from engage.records import staff as accounts
from engage.records.models import StaffUser
from engage.records.staff_sessions import start_session
from engage.web import ratelimit
from engage.web.staff import pending
from engage.web.staff.auth import LOGIN_CSRF_COOKIE, _safe_next, set_session_cookie
from engage.web.staff.pages import redirect, render

router = APIRouter()


def _csrf_ok(request: Request, given: str | None) -> bool:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    return bool(given) and bool(expected) and hmac.compare_digest(given or "", expected)


def _pending_staff(session: Session, request: Request) -> StaffUser | None:
    """The staff member this browser gave the password of, in the last 5 minutes (password unchanged, active)."""
    found = pending.read_pending(request)
    if found is None:
        return None
    staff = session.get(StaffUser, found.staff_id)
    if staff is None or not staff.active or pending.password_digest(staff.password_hash) != found.password_digest:
        return None
    return staff


def _verify_page(
    request: Request, next_url: str, has_passkey: bool, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    response = render(
        request,
        "login_verify.html",
        None,
        status_code=status_code,
        login_csrf=token,
        next_url=next_url,
        error=error,
        has_passkey=has_passkey,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        path="/login",
        secure=get_settings().public_url.startswith("https://"),
    )
    return response


def _signed_in(next_url: str, token: str) -> Response:
    metrics.record_login("ok")
    response = redirect(next_url)
    set_session_cookie(response, token)
    pending.clear_pending(response)
    return response


@router.get("/login/verify", response_class=HTMLResponse)
def verify_form(request: Request, next: str | None = None) -> Response:  # noqa: A002 (the query parameter's name)
    with session_scope() as session:
        staff = _pending_staff(session, request)
        if staff is None:
            return redirect("/login", "Sign in again: the second step expired.")
        has_passkey = bool(passkeys.passkeys_of(session, staff.id))
    return _verify_page(request, _safe_next(next), has_passkey)


@router.post("/login/verify", response_class=HTMLResponse)
def verify(
    request: Request,
    code: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",  # noqa: A002
) -> Response:
    """Check the code (authenticator app or recovery code) of the pending sign-in; a session when it matches."""
    next_url = _safe_next(next)
    with session_scope() as session:
        staff = _pending_staff(session, request)
        if staff is None:
            return redirect("/login", "Sign in again: the second step expired.")
        has_passkey = bool(passkeys.passkeys_of(session, staff.id))
        if not _csrf_ok(request, csrf_token):
            return _verify_page(request, next_url, has_passkey, "The form expired; please try again.", 400)
        try:
            factors.verify_code(session, staff, code)
        except factors.SecondFactorThrottled:
            metrics.record_login("locked")
            minutes = f"{get_settings().login_window_minutes:g}"
            error = f"Too many failed sign-ins. Wait {minutes} minutes and try again."
            return _verify_page(request, next_url, has_passkey, error, 429)
        except factors.SecondFactorRefused:
            session.commit()  # keep the failure count
            metrics.record_login("failed")
            error = "That code does not match, or it was used already. Type the code your app shows now."
            return _verify_page(request, next_url, has_passkey, error, 401)
        token = start_session(session, staff)
    return _signed_in(next_url, token)


def _json_error(message: str, status_code: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code, headers={"Cache-Control": "no-store"})


@router.post("/login/passkey/options", dependencies=[Depends(ratelimit.login)])
def passkey_options(request: Request) -> Response:
    """WebAuthn request options: the pending staff member's passkeys, or any engage passkey (passwordless)."""
    if not _csrf_ok(request, request.headers.get("x-csrf-token")):
        return _json_error("The sign-in form expired; reload the page.", 400)
    with session_scope() as session:
        staff = _pending_staff(session, request)
        staff_id = staff.id if staff else None
        ceremony = passkeys.authentication_options(session, staff_id)
    response = Response(ceremony.options_json, media_type="application/json", headers={"Cache-Control": "no-store"})
    pending.set_challenge(response, "login", ceremony.challenge, staff_id, "/login")
    return response


@router.post("/login/passkey", dependencies=[Depends(ratelimit.login)])
def passkey_sign_in(
    request: Request,
    credential: Annotated[str, Form()] = "",
    next: str | None = None,  # noqa: A002 (the query parameter's name)
) -> Response:
    """Check a passkey's answer (``credential``: its JSON); a session when it verifies (second factor, or the
    whole sign-in). Answers JSON ``{"redirect": ...}`` or ``{"error": ...}``."""
    if not _csrf_ok(request, request.headers.get("x-csrf-token")):
        return _json_error("The sign-in form expired; reload the page.", 400)
    next_url = _safe_next(next)
    with session_scope() as session:
        staff = _pending_staff(session, request)
        staff_id = staff.id if staff else None
        challenge = pending.read_challenge(request, "login", staff_id)
        if challenge is None:
            return _json_error("The passkey request expired; try again.", 400)
        keys = [accounts.account_key(staff.email)] if staff else []
        if keys and not login_throttle.reserve(session, keys):
            return _json_error("Too many failed sign-ins. Wait and try again.", 429)
        try:
            signed = passkeys.authenticate(session, credential, challenge, staff_id)
        except passkeys.PasskeyRefused:
            session.commit()  # keep the failure count
            metrics.record_login("failed")
            return _json_error("That passkey is not registered with engage, or it did not verify.", 401)
        login_throttle.release(session, keys)
        token = start_session(session, signed)
    response = JSONResponse({"redirect": next_url}, headers={"Cache-Control": "no-store"})
    metrics.record_login("ok")
    set_session_cookie(response, token)
    pending.clear_pending(response)
    response.delete_cookie(pending.CHALLENGE_COOKIE, path="/login")
    return response

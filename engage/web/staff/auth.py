"""Signing staff in and out, the ``current_staff`` dependency, CSRF checks and role checks.

The session cookie holds only a random token (``engage.records.staff_sessions``):
HttpOnly, SameSite=Lax, Secure when ``ENGAGE_PUBLIC_URL`` is https. Every form
posts the session's CSRF token back (htmx sends it as ``X-CSRF-Token``); the
sign-in form, which has no session yet, uses a double-submit cookie instead.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Header, Request
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException

from engage import metrics
from engage.config import get_settings
from engage.conversation.inbox import waiting_count
from engage.db import session_scope
from engage.records import factors
from engage.records import staff as accounts
from engage.records.roles import Action
from engage.records.staff_sessions import end_session, resume_session, start_session
from engage.web import ratelimit
from engage.web.staff import pending
from engage.web.staff.pages import Staff, redirect, render

SESSION_COOKIE = "engage_session"
LOGIN_CSRF_COOKIE = "engage_login_csrf"

router = APIRouter()


class SignInRequired(Exception):
    """No live session: pages redirect to /login (htmx requests get an HX-Redirect)."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


class EnrollmentRequired(Exception):
    """Signed in, but the clinic requires a second factor they do not have: pages redirect to enrollment."""


ENROLL_URL = "/account/security"


def _secure_cookies() -> bool:
    return get_settings().public_url.startswith("https://")


def _load(token: str | None) -> Staff | None:
    with session_scope() as session:
        signed_in = resume_session(session, token)
        if signed_in is None:
            return None
        staff = signed_in.staff
        return Staff(
            id=staff.id,
            clinic_id=staff.clinic_id,
            clinic_name=staff.clinic.name,
            timezone=staff.clinic.timezone,
            email=staff.email,
            name=staff.name,
            role=staff.role,
            csrf_token=signed_in.csrf_token,
            enroll=factors.enrollment_needed(session, staff),
            inbox_waiting=waiting_count(session, staff.clinic_id),
        )


def current_staff(enrolling: Annotated[Staff, Depends(signed_in_staff)]) -> Staff:
    """The signed-in staff member (:func:`signed_in_staff`); ``EnrollmentRequired`` when the clinic's MFA rule
    covers them and they have no second factor yet."""
    if enrolling.enroll:
        raise EnrollmentRequired()
    return enrolling


def signed_in_staff(
    request: Request,
    x_csrf_token: Annotated[str | None, Header()] = None,
    csrf_token: Annotated[str | None, Form()] = None,
) -> Staff:
    """The signed-in staff member; ``SignInRequired`` otherwise. POSTs must carry the session's CSRF token:
    the ``X-CSRF-Token`` header (htmx) or else the form's ``csrf_token`` field. Lets a staff member without a
    required second factor through: only the enrollment pages use it directly."""
    staff = _load(request.cookies.get(SESSION_COOKIE))
    if staff is None:
        raise SignInRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    if request.method not in ("GET", "HEAD"):
        given = x_csrf_token if x_csrf_token is not None else csrf_token
        if not given or not hmac.compare_digest(given.encode(), staff.csrf_token.encode()):
            raise HTTPException(status_code=403, detail="the form expired or did not come from engage; reload the page")
    return staff


CurrentStaff = Annotated[Staff, Depends(current_staff)]
EnrollingStaff = Annotated[Staff, Depends(signed_in_staff)]


def staff_may(action: Action) -> Callable[[Staff], Staff]:
    """A dependency: the signed-in staff member, when their role allows ``action`` (the page does not show it
    then either); else 403. It runs before the route's body, so the role is checked before any record is loaded
    (the API's order: :func:`engage.web.api.context.allowed_to`)."""

    def check(staff: CurrentStaff) -> Staff:
        if not staff.may(action):
            raise HTTPException(status_code=403, detail="your role does not allow this")
        return staff

    return check


PatientsEditor = Annotated[Staff, Depends(staff_may(Action.EDIT_PATIENTS))]
PlansEditor = Annotated[Staff, Depends(staff_may(Action.EDIT_PLANS))]
ExercisePicker = Annotated[Staff, Depends(staff_may(Action.PICK_EXERCISES))]
OutcomeRecorder = Annotated[Staff, Depends(staff_may(Action.RECORD_OUTCOMES))]
MessageResolver = Annotated[Staff, Depends(staff_may(Action.RESOLVE_MESSAGES))]
ReplyHandler = Annotated[Staff, Depends(staff_may(Action.HANDLE_REPLIES))]
Admin = Annotated[Staff, Depends(staff_may(Action.ADMIN))]


def _safe_next(next_url: str | None) -> str:
    # Only paths on this site: "//evil.example" or "https://..." would send a fresh session elsewhere.
    if next_url and next_url.startswith("/") and not next_url.startswith("//") and "\\" not in next_url:
        return next_url
    return "/"


def _login_page(
    request: Request, next_url: str, error: str | None = None, email: str = "", status_code: int = 200
) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        None,
        status_code=status_code,
        login_csrf=token,
        next_url=next_url,
        error=error,
        email=email,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/login", secure=_secure_cookies()
    )
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:  # noqa: A002 (the query parameter's name)
    return _login_page(request, _safe_next(next))


def _sign_in(email: str, password: str, ip: str | None) -> str | pending.Pending:
    """A new session's token, or the pending sign-in when a second factor must follow the password."""
    with session_scope() as session:
        try:
            staff = accounts.authenticate(session, email, password, ip)
        except accounts.LoginRefused:
            session.commit()  # keep the failure count
            raise
        if factors.has_second_factor(session, staff.id):
            return pending.Pending(staff.id, pending.password_digest(staff.password_hash))
        return start_session(session, staff)


def set_session_cookie(response: Response, token: str) -> None:
    """Hand the browser its session (after the password, and the second factor when there is one)."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        path="/",
        secure=_secure_cookies(),
        max_age=int(get_settings().session_absolute_hours * 3600),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")


@router.post("/login", response_class=HTMLResponse, dependencies=[Depends(ratelimit.login)])
def login(
    request: Request,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",  # noqa: A002
) -> Response:
    next_url = _safe_next(next)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    if not csrf_token or not hmac.compare_digest(csrf_token.encode(), expected.encode()):
        return _login_page(request, next_url, "The sign-in form expired; please try again.", email, 400)
    ip = request.client.host if request.client else None
    try:
        token = _sign_in(email, password, ip)
    except accounts.LoginThrottled:
        metrics.record_login("locked")
        minutes = f"{get_settings().login_window_minutes:g}"
        return _login_page(
            request, next_url, f"Too many failed sign-ins. Wait {minutes} minutes and try again.", email, 429
        )
    except accounts.LoginRefused:
        metrics.record_login("failed")
        return _login_page(request, next_url, "Wrong email address or password.", email, 401)
    if isinstance(token, pending.Pending):  # the password was right; the second factor comes next
        response = redirect("/login/verify?next=" + quote(next_url, safe=""))
        pending.set_pending(response, token.staff_id, token.password_digest)
        return response
    metrics.record_login("ok")
    response = redirect(next_url)
    set_session_cookie(response, token)
    return response


def _sign_out(token: str | None) -> None:
    with session_scope() as session:
        end_session(session, token)


@router.post("/logout")
def logout(request: Request, staff: CurrentStaff) -> Response:
    _sign_out(request.cookies.get(SESSION_COOKIE))
    response = redirect("/login", "You are signed out.")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def enrollment_redirect(request: Request, exc: EnrollmentRequired) -> Response:
    """The app's handler for ``EnrollmentRequired``."""
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={"HX-Redirect": ENROLL_URL})
    return redirect(ENROLL_URL, "Your clinic requires a second factor: set one up to continue.")


def sign_in_redirect(request: Request, exc: SignInRequired) -> Response:
    """The app's handler for ``SignInRequired``."""
    url = "/login?next=" + quote(exc.next_url, safe="")
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={"HX-Redirect": url})
    return redirect(url)

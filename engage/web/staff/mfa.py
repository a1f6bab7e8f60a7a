"""Second factors in the staff app: a staff member's own (``/account/security``) and the admin's rule and resets.

``/account/security`` is where the staff app sends anyone the clinic's rule covers who has no
second factor yet (:class:`engage.web.staff.auth.EnrollmentRequired`), so its routes take
:data:`EnrollingStaff`. Set up an authenticator app (QR code, then its first code), add a
passkey (``/static/passkey.js``), make new recovery codes, or reset one's own factors with a
code. ``/settings/security`` (admins): who must have a second factor, and resetting a
colleague's factors (audited) when they lose their phone.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.orm import Session

from engage.db import session_scope
from engage.errors import InvalidInput, NotFound
from engage.records import factors, passkeys
from engage.records import staff as accounts
from engage.records.models import MfaPolicy, StaffUser
from engage.web.staff import pending
from engage.web.staff.auth import Admin, EnrollingStaff
from engage.web.staff.pages import Staff, redirect, render

router = APIRouter()
PAGE = "/account/security"


def _me(session: Session, staff: Staff) -> StaffUser:
    return accounts.get_staff_in_clinic(session, staff.clinic_id, staff.id)


def _page(request: Request, staff: Staff, status_code: int = 200, **context: Any) -> HTMLResponse:
    with session_scope() as session:
        me = _me(session, staff)
        summary = factors.summary(session, me.id)
        required = factors.required_for(me.clinic.mfa_required, me.role)
    return render(
        request,
        "security.html",
        staff,
        status_code=status_code,
        nav="security",
        summary=summary,
        required=required,
        **context,
    )


@router.get(PAGE, response_class=HTMLResponse)
def security(request: Request, staff: EnrollingStaff) -> Response:
    return _page(request, staff)


@router.post(PAGE + "/totp", response_class=HTMLResponse)
def start_totp(request: Request, staff: EnrollingStaff) -> Response:
    """A new authenticator-app secret, shown as a QR code (and as text) with the form for its first code."""
    with session_scope() as session:
        me = _me(session, staff)
        try:
            factor = factors.begin_totp(session, me)
        except InvalidInput as exc:
            return redirect(PAGE, f"{exc}.")
        uri = factors.provisioning_uri(me, factor)
        secret = factor.secret or ""
    grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    return render(request, "security_totp.html", staff, nav="security", qr=factors.qr_svg(uri), secret=grouped)


@router.post(PAGE + "/totp/confirm", response_class=HTMLResponse)
def confirm_totp(request: Request, staff: EnrollingStaff, code: Annotated[str, Form()] = "") -> Response:
    with session_scope() as session:
        me = _me(session, staff)
        try:
            codes = factors.confirm_totp(session, me, code, actor=staff.email)
        except InvalidInput as exc:
            session.commit()  # keep the pending secret: the person retypes the code, not the QR
            return render(request, "security_totp.html", staff, status_code=422, nav="security", error=f"{exc}.")
    if not codes:
        return redirect(PAGE, "Authenticator app set up.")
    return render(request, "recovery_codes.html", staff, nav="security", codes=codes, first=True)


@router.post(PAGE + "/recovery-codes", response_class=HTMLResponse)
def recovery_codes(request: Request, staff: EnrollingStaff) -> Response:
    with session_scope() as session:
        me = _me(session, staff)
        if not factors.has_second_factor(session, me.id):
            return redirect(PAGE, "Set up an authenticator app or a passkey first.")
        codes = factors.new_recovery_codes(session, me, actor=staff.email)
    return render(request, "recovery_codes.html", staff, nav="security", codes=codes, first=False)


@router.post(PAGE + "/passkey/options")
def passkey_options(staff: EnrollingStaff) -> Response:
    """WebAuthn creation options for a new passkey (JSON); the challenge goes in a signed cookie."""
    with session_scope() as session:
        ceremony = passkeys.registration_options(session, _me(session, staff))
    response = Response(ceremony.options_json, media_type="application/json", headers={"Cache-Control": "no-store"})
    pending.set_challenge(response, "register", ceremony.challenge, staff.id, PAGE)
    return response


@router.post(PAGE + "/passkey")
def add_passkey(
    request: Request,
    staff: EnrollingStaff,
    credential: Annotated[str, Form()] = "",
    label: Annotated[str, Form()] = "",
) -> Response:
    """Keep the browser's new passkey (``credential``: its JSON); answers JSON ``{"redirect": ...}`` or
    ``{"error": ...}``."""
    challenge = pending.read_challenge(request, "register", staff.id)
    if challenge is None:
        return JSONResponse({"error": "The passkey request expired; try again."}, status_code=400)
    with session_scope() as session:
        me = _me(session, staff)
        try:
            passkeys.register(session, me, credential, challenge, label, actor=staff.email)
        except InvalidInput as exc:
            return JSONResponse({"error": f"{str(exc).capitalize()}."}, status_code=422)
    response = JSONResponse({"redirect": PAGE})
    response.delete_cookie(pending.CHALLENGE_COOKIE, path=PAGE)
    return response


@router.post(PAGE + "/reset")
def reset_own(request: Request, staff: EnrollingStaff, proof: Annotated[str, Form()] = "") -> Response:
    """Remove one's own second factors: only with a current code (a stolen session must not be enough)."""
    with session_scope() as session:
        try:
            factors.reset_factors(
                session, staff.id, clinic_id=staff.clinic_id, actor=staff.email, actor_staff_id=staff.id, proof=proof
            )
        except InvalidInput as exc:
            return _page(request, staff, 422, reset_error=f"{str(exc).capitalize()}.")
        except factors.SecondFactorRefused as exc:
            session.commit()  # keep the failure count
            return _page(request, staff, 422, reset_error=f"{str(exc).capitalize()}.")
    return redirect(PAGE, "Your second factors are removed.")


# --- the clinic's rule and colleagues' resets (admins) -------------------------------------------------------


def _settings_page(request: Request, staff: Staff, status_code: int = 200, **context: Any) -> HTMLResponse:
    with session_scope() as session:
        me = _me(session, staff)
        rows = [(a, factors.has_second_factor(session, a.id)) for a in accounts.list_staff(session, staff.clinic_id)]
        policy = me.clinic.mfa_required
    return render(
        request,
        "mfa_settings.html",
        staff,
        status_code=status_code,
        nav="settings",
        rows=rows,
        policy=policy,
        policies=list(MfaPolicy),
        **context,
    )


@router.get("/settings/security", response_class=HTMLResponse)
def settings(request: Request, staff: Admin) -> Response:
    return _settings_page(request, staff)


@router.post("/settings/security/policy")
def set_policy(request: Request, staff: Admin, policy: Annotated[str, Form()] = "") -> Response:
    with session_scope() as session:
        try:
            factors.set_policy(session, staff.clinic_id, policy, actor=staff.email)
        except InvalidInput as exc:
            return _settings_page(request, staff, 422, policy_error=f"{str(exc).capitalize()}.")
    return redirect("/settings/security", "Saved who needs a second factor.")


@router.post("/settings/security/staff/{staff_id}/reset")
def reset_colleague(staff: Admin, staff_id: int) -> Response:
    """Remove a colleague's second factors (they enroll again on their next request if the rule covers them)."""
    if staff_id == staff.id:
        return redirect(PAGE, "Reset your own second factors here, with a code.")
    with session_scope() as session:
        try:
            account = factors.reset_factors(
                session, staff_id, clinic_id=staff.clinic_id, actor=staff.email, actor_staff_id=staff.id
            )
        except NotFound:
            return redirect("/settings/security", "No such staff account in this clinic.")
        email = account.email
    return redirect("/settings/security", f"Second factors of {email} removed.")

"""``/settings`` (admin only): clinic details, quiet hours, staff accounts, API tokens and webhook endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException

from engage.db import session_scope
from engage.errors import InvalidInput, NotFound
from engage.integrations import endpoints as webhooks
from engage.integrations.deliver import MAX_ATTEMPTS
from engage.records import api_tokens
from engage.records import staff as accounts
from engage.records.clinics import caps_name, sms_caps, update_clinic
from engage.records.models import Clinic
from engage.records.outgoing_webhooks import WebhookEndpoint
from engage.records.quiet_hours import describe_quiet_hours
from engage.schedule.clinic_hours import set_quiet_hours
from engage.schedule.explain import describe_result
from engage.web.staff.auth import Admin
from engage.web.staff.loaders import get_endpoint_for, get_staff_user_for
from engage.web.staff.pages import Staff, redirect, refusing, render

router = APIRouter()


def _page(
    request: Request,
    staff: Staff,
    new_token: str | None = None,
    new_endpoint: WebhookEndpoint | None = None,
    webhook_form: dict[str, str] | None = None,
    webhook_errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The settings page; ``new_token`` and ``new_endpoint``'s secret are shown on this answer only."""
    with session_scope() as session:
        clinic = session.get_one(Clinic, staff.clinic_id)
        people = accounts.list_staff(session, staff.clinic_id)
        emails = {a.id: a.email for a in people}
        tokens = [(t, emails.get(t.staff_user_id, "")) for t in api_tokens.list_tokens(session, clinic_id=clinic.id)]
        hooks = [
            (e, next(iter(webhooks.recent_events(session, e, limit=1)), None))
            for e in webhooks.list_endpoints(session, clinic.id)
        ]
        return render(
            request,
            "settings.html",
            staff,
            status_code=status_code,
            nav="settings",
            clinic=clinic,
            quiet=describe_quiet_hours(clinic.quiet_hours),
            caps=(caps_name(clinic), *sms_caps(clinic)),
            accounts=people,
            tokens=tokens,
            new_token=new_token,
            webhooks=hooks,
            new_endpoint=new_endpoint,
            max_endpoints=webhooks.MAX_ENDPOINTS,
            webhook_form=webhook_form or {},
            webhook_errors=webhook_errors or {},
        )


@router.get("/settings", response_class=HTMLResponse)
def settings_page(request: Request, staff: Admin) -> HTMLResponse:
    return _page(request, staff)


@router.post("/settings/clinic")
def clinic_details(
    staff: Admin,
    name: Annotated[str, Form()] = "",
    address: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    phone: Annotated[str, Form()] = "",
) -> Response:
    with refusing("Saving the clinic details failed", "/settings"), session_scope() as session:
        changed = update_clinic(
            session,
            session.get_one(Clinic, staff.clinic_id),
            name=name,
            address=address,
            email=email,
            phone=phone,
            actor=staff.email,
        )
    return redirect("/settings", f"Clinic details saved ({', '.join(changed)})." if changed else "Nothing changed.")


@router.post("/settings/quiet-hours")
def quiet_hours(staff: Admin, sms: Annotated[str, Form()] = "", email: Annotated[str, Form()] = "") -> Response:
    with refusing("Saving the quiet hours failed", "/settings"), session_scope() as session:
        _, result = set_quiet_hours(session, staff.clinic_id, {"sms": sms, "email": email}, actor=staff.email)
    return redirect("/settings", f"Quiet hours saved; {describe_result(result)}.")


@router.post("/settings/staff")
def add_staff(
    staff: Admin,
    email: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    with refusing("Adding the account failed", "/settings"), session_scope() as session:
        created = accounts.create_staff(
            session,
            clinic_id=staff.clinic_id,
            email=email,
            name=name,
            role_name=role,
            password=password,
            actor=staff.email,
        )
        notice = f"Staff account added for {created.email}."
    return redirect("/settings", notice)


@router.post("/settings/staff/{staff_id}/deactivate")
def deactivate(staff: Admin, staff_id: int) -> Response:
    with refusing("Deactivating failed", "/settings"), session_scope() as session:
        account = get_staff_user_for(session, staff, staff_id)
        accounts.deactivate_staff(session, account.id, clinic_id=staff.clinic_id, actor=staff.email)
        notice = f"{account.email} deactivated."
    return redirect("/settings", notice)


@router.post("/settings/staff/{staff_id}/password")
def reset_password(staff: Admin, staff_id: int, password: Annotated[str, Form()] = "") -> Response:
    with refusing("Changing the password failed", "/settings"), session_scope() as session:
        account = get_staff_user_for(session, staff, staff_id)
        accounts.reset_password(session, account.id, password, clinic_id=staff.clinic_id, actor=staff.email)
        notice = f"Password of {account.email} changed; their sessions ended."
    return redirect("/settings", notice)


@router.post("/settings/tokens", response_class=HTMLResponse)
def create_token(
    request: Request, staff: Admin, label: Annotated[str, Form()] = "", owner: Annotated[str, Form()] = ""
) -> Response:
    """A new API token, shown once on the page that answers (never again: only its hash is kept)."""
    with refusing("Creating the token failed", "/settings#tokens", NotFound), session_scope() as session:
        account = get_staff_user_for(session, staff, _int_id(owner)) if owner else None
        _, token = api_tokens.create_token(
            session,
            staff_email=account.email if account else staff.email,
            label=label,
            actor=staff.email,
            clinic_id=staff.clinic_id,
        )
    return _page(request, staff, new_token=token)


@router.post("/settings/tokens/{token_id}/revoke")
def revoke_token(staff: Admin, token_id: int) -> Response:
    with refusing("Revoking the token failed", "/settings"), session_scope() as session:
        try:
            api_tokens.revoke_token(session, token_id, clinic_id=staff.clinic_id, actor=staff.email)
        except NotFound:
            raise HTTPException(status_code=404, detail="not found") from None
    return redirect("/settings", f"API token {token_id} revoked.")


@router.post("/settings/webhooks", response_class=HTMLResponse)
def add_webhook(
    request: Request, staff: Admin, url: Annotated[str, Form()] = "", label: Annotated[str, Form()] = ""
) -> Response:
    """A new webhook endpoint; its signing secret is shown once, on the page that answers."""
    try:
        with session_scope() as session:
            endpoint = webhooks.create_endpoint(session, staff.clinic_id, url, label, actor=staff.email)
    except InvalidInput as exc:
        # Beside the field at fault (the URL's rule, a label too long); above the form otherwise (too many).
        errors = {exc.field if exc.field in ("url", "label") else "form": str(exc)}
        return _page(request, staff, webhook_form={"url": url, "label": label}, webhook_errors=errors, status_code=400)
    return _page(request, staff, new_endpoint=endpoint)


@router.get("/settings/webhooks/{endpoint_id}", response_class=HTMLResponse)
def webhook_events(request: Request, staff: Admin, endpoint_id: int) -> HTMLResponse:
    """One endpoint and its newest events: what was posted, how often, and what the endpoint answered."""
    with session_scope() as session:
        endpoint = get_endpoint_for(session, staff, endpoint_id)
        return render(
            request,
            "webhook_events.html",
            staff,
            nav="settings",
            endpoint=endpoint,
            events=webhooks.recent_events(session, endpoint),
            max_attempts=MAX_ATTEMPTS,
        )


@router.post("/settings/webhooks/{endpoint_id}/remove")
def remove_webhook(staff: Admin, endpoint_id: int) -> Response:
    with refusing("Removing the webhook endpoint failed", "/settings#webhooks"), session_scope() as session:
        try:
            endpoint = webhooks.remove_endpoint(session, staff.clinic_id, endpoint_id, actor=staff.email)
        except NotFound:
            raise HTTPException(status_code=404, detail="not found") from None
        notice = f"Webhook endpoint {endpoint.label or endpoint.url} removed; nothing more is posted to it."
    return redirect("/settings#webhooks", notice)


def _int_id(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidInput("choose a staff account") from None

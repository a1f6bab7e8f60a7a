"""``/sequences/{key}/test-send``: "Send a test to me", a step of the draft to the admin's own phone or email
(:mod:`engage.delivery.test_send`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import Response

from engage.db import session_scope
from engage.delivery.test_send import send_test
from engage.web.staff.auth import Admin
from engage.web.staff.pages import redirect, refusing
from engage.web.staff.sequence_editor import _known, edit_url

router = APIRouter()


@router.post("/sequences/{key}/test-send")
def test_send(
    staff: Admin,
    key: str,
    step: Annotated[str, Form()] = "",
    locale: Annotated[str, Form()] = "en",
    phone: Annotated[str, Form()] = "",
) -> Response:
    _known(key)
    with refusing("No test sent", edit_url(key)), session_scope() as session:
        sent = send_test(
            session, staff.clinic_id, key, step, locale=locale, staff_email=staff.email, phone=phone or None
        )
    how = "SMS" if sent.channel == "sms" else "email"
    return redirect(edit_url(key), f"Test {how} of step {step} sent to {sent.to}, marked TEST.")

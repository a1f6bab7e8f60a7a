"""After a patient texts STOP, only the patient opts back in: the API (409), the CLI (exit 2), the staff page."""

from __future__ import annotations

from click.testing import CliRunner
from markupsafe import escape

from engage.cli.care import consent
from engage.conversation.consent import ONLY_THE_PATIENT_CAN_OPT_IN, current_consent, record_consent
from engage.db import session_scope
from engage.records.models import Channel, ConsentState, MfaPolicy
from engage.records.models import Clinic as ClinicRow
from tests.web.api.conftest import World
from tests.web.staff.support import HTML, signed_in


def _patient_texts(world: World, word: str, state: ConsentState) -> None:
    with session_scope() as session:  # what the inbound SMS handler records for STOP / START
        record_consent(session, world.a.patient_id, Channel.SMS, state, "sms_keyword", word)


def _sms(world: World) -> ConsentState:
    with session_scope() as session:
        return current_consent(session, world.a.patient_id, Channel.SMS)


def test_staff_cannot_opt_a_patient_back_in_to_sms_after_they_texted_stop(world: World) -> None:
    _patient_texts(world, "STOP", ConsentState.OPTED_OUT)
    path = f"/patients/{world.a.patient_id}/consent"
    with world.client() as api:
        refused = api.post(path, json={"channel": "sms", "state": "opted_in", "reason": "said yes at the desk"})
        email = api.post(path, json={"channel": "email", "state": "opted_in", "reason": "said yes at the desk"})
    assert refused.status_code == 409 and refused.json()["detail"] == ONLY_THE_PATIENT_CAN_OPT_IN
    assert email.status_code == 200  # email consent was never the patient's keyword
    assert _sms(world) is ConsentState.OPTED_OUT

    cli = CliRunner().invoke(
        consent,
        ["set", str(world.a.patient_id), "--channel", "sms", "--state", "opted_in", "--reason", "at the desk"],
    )
    assert cli.exit_code == 2 and ONLY_THE_PATIENT_CAN_OPT_IN in cli.output
    assert _sms(world) is ConsentState.OPTED_OUT

    with session_scope() as session:  # the page part is about consent, not the admin's second factor
        session.get_one(ClinicRow, world.a.id).mfa_required = MfaPolicy.NONE
    client, csrf = signed_in(world.a.staff_email)
    page = client.get(f"/patients/{world.a.patient_id}", headers=HTML)
    assert "opted out of SMS by texting STOP" in page.text and "text START (or ALTA)" in page.text
    answer = client.post(
        f"/patients/{world.a.patient_id}/consent",
        data={"channel": "sms", "state": "opted_in", "reason": "at the desk", "csrf_token": csrf},
        headers=HTML,
    )
    assert str(escape(ONLY_THE_PATIENT_CAN_OPT_IN)) in answer.text
    assert _sms(world) is ConsentState.OPTED_OUT

    _patient_texts(world, "START", ConsentState.OPTED_IN)  # the patient's own word undoes it
    with world.client() as api:
        out = api.post(path, json={"channel": "sms", "state": "opted_out", "reason": "asked by phone"})
        back = api.post(path, json={"channel": "sms", "state": "opted_in", "reason": "asked again"})
    assert out.status_code == 200 and back.status_code == 200  # a verbal opt-out staff may undo

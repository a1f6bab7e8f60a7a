"""Clinic scoping: every staff route that names a record answers 404 for another clinic's record."""

from __future__ import annotations

import re

from fastapi.routing import APIRoute

from engage.db import session_scope
from engage.integrations import endpoints
from engage.records import api_tokens
from engage.records.models import ApiToken, Appointment, AuditEvent, Enrollment, Message, MessageStatus, StaffUser
from engage.records.outgoing_webhooks import WebhookEndpoint
from engage.web.staff import (
    appointment_import,
    auth,
    inbox,
    messages,
    patient_page,
    patients,
    plans,
    sequences,
    settings,
    today,
)
from tests import seed
from tests.web.staff.support import HTML, signed_in

VERBS = {"/appointments/{appointment_id}/{verb}": "cancel", "/enrollments/{enrollment_id}/{verb}": "pause"}


def _routes() -> list[tuple[str, str]]:
    found = []
    for module in (
        auth,
        today,
        patients,
        patient_page,
        plans,
        messages,
        inbox,
        sequences,
        settings,
        appointment_import,
    ):
        for route in module.router.routes:
            assert isinstance(route, APIRoute)
            if "{" in route.path:
                found += [(method, route.path) for method in sorted(route.methods)]
    return found


def _their_records() -> dict[str, int]:
    """A second clinic with one of everything, and its ids by path parameter name."""
    with session_scope() as session:
        theirs = seed.clinic(session, name="Elsewhere", email="front@elsewhere.example")
        them = seed.patient(session, theirs.id, "Zoe", "Other", email="zoe@example.com")
        plan_id = seed.enrolled(session, them.id)
        message = seed.messages(session, them.id)[0]
        message.status = MessageStatus.UNKNOWN
        appointment = session.query(Appointment).filter_by(plan_id=plan_id).first()
        enrollment = session.query(Enrollment).filter_by(plan_id=plan_id).one()
        reply = seed.flagged_reply(session, theirs.id, them.id)
        their_staff = seed.staff(session, theirs.id, "desk@elsewhere.example")
        token, _ = api_tokens.create_token(session, staff_email=their_staff.email, label="theirs", actor="test")
        endpoint = endpoints.create_endpoint(
            session, theirs.id, "https://zoe.elsewhere.example/hooks", "Zoe's PMS", actor=their_staff.email
        )
        assert appointment is not None
        return {
            "patient_id": them.id,
            "plan_id": plan_id,
            "appointment_id": appointment.id,
            "enrollment_id": enrollment.id,
            "message_id": message.id,
            "reply_id": reply.id,
            "staff_id": their_staff.id,
            "token_id": token.id,
            "endpoint_id": endpoint.id,
        }


def test_every_route_answers_404_for_another_clinics_ids_and_changes_nothing(db_url: str) -> None:
    with session_scope() as session:
        ours = seed.clinic(session)
        seed.staff(session, ours.id, "admin@clinic.example", "admin")
    ids = _their_records()
    client, csrf = signed_in("admin@clinic.example")
    with session_scope() as session:
        audit_before = session.query(AuditEvent).count()
    routes = _routes()
    assert len(routes) >= 15
    for method, path in routes:
        url = re.sub(r"\{(\w+)\}", lambda m, p=path: str(ids.get(m.group(1)) or VERBS[p]), path)
        if method == "GET":
            answer = client.get(url + "?sequence=dry-needling-sciatica", headers=HTML)
        else:
            answer = client.post(
                url,
                data={
                    "csrf_token": csrf,
                    "note": "x",
                    "reason": "x",
                    "to": "2030-01-01T10:00",
                    "start": "2030-01-01T10:00",
                    "action": "drop",
                    "password": "x" * 12,
                    "channel": "sms",
                    "state": "opted_out",
                    "first_name": "Mallory",
                    "last_name": "M",
                    "phone": "+14155550100",
                },
                headers=HTML,
            )
        assert answer.status_code == 404, (method, url, answer.status_code)
        assert "Zoe" not in answer.text
    with session_scope() as session:
        assert session.query(AuditEvent).count() == audit_before + 0
        assert session.get_one(Message, ids["message_id"]).status is MessageStatus.UNKNOWN
        assert session.get_one(StaffUser, ids["staff_id"]).active
        assert session.get_one(ApiToken, ids["token_id"]).revoked_at is None
        assert session.get_one(WebhookEndpoint, ids["endpoint_id"]).active

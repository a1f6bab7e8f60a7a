"""HIPAA audit controls: who opened which patient's page, and who exported which list, are in the audit log."""

from __future__ import annotations

from sqlalchemy import select

from engage.db import session_scope
from engage.records.models import AuditEvent
from tests import seed
from tests.web.staff.support import HTML, signed_in


def test_opening_a_patients_page_and_exporting_messages_are_audited(db_url: str) -> None:
    with session_scope() as session:
        clinic = seed.clinic(session)
        seed.staff(session, clinic.id, "desk@clinic.example")
        ana = seed.patient(session, clinic.id)
        ana_id, clinic_id = ana.id, clinic.id
    client, _ = signed_in("desk@clinic.example")
    page = client.get(f"/patients/{ana_id}", headers=HTML)
    export = client.get("/messages.csv", params={"status": "sent", "channel": "sms"})
    assert page.status_code == 200 and export.status_code == 200
    with session_scope() as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.action.in_(["patient.view", "messages.export"])))
        seen = [(r.actor, r.action, r.subject_type, r.subject_id, r.detail) for r in rows]
    assert seen == [
        ("desk@clinic.example", "patient.view", "patient", ana_id, {}),
        ("desk@clinic.example", "messages.export", "clinic", clinic_id, {"status": "sent", "channel": "sms"}),
    ]
    again = client.get(f"/patients/{ana_id}", headers=HTML)  # views are logged, not listed as changes
    assert "patient.view" not in again.text

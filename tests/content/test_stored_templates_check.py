"""``engage templates check`` covers the texts clinics stored in the database (issue 23), on both backends."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.records import clinics
from engage.records.models import SequenceVersion
from engage.schedule import versions
from engage.schedule.publish import publish_draft
from tests.cli import engage

SEQ = "dry-needling-sciatica"


def test_a_published_version_in_use_is_checked_like_the_files(session: Session) -> None:
    clinic = clinics.create_clinic(
        session, name="Riverside", timezone="America/New_York", address="1 River St", email="a@b.example", actor="t"
    )
    versions.start_draft(session, clinic.id, SEQ, actor="admin")
    publish_draft(session, clinic.id, SEQ, actor="admin", current_patients=False)
    session.commit()
    files_only = engage("templates", "check", "--no-database", "--json").json
    checked = engage("templates", "check", "--json").json
    assert checked["ok"] and checked["checked"] > files_only["checked"]

    # A text that became a problem after it was published (here: written behind the editor's back).
    row = session.scalars(select(SequenceVersion)).one()
    row.texts = {**row.texts, "sms/visit-reminder.txt": "Your dry needling visit is {{ appointment.start|local_day }}."}
    session.commit()
    result = engage("templates", "check", "--json")
    assert result.code == 1
    problems = {(p["file"], p["rule"]) for p in json.loads(result.stdout)["problems"]}
    assert (f"clinic {clinic.id} {SEQ} v1: sms/visit-reminder.txt", "sms-condition-word") in problems
    assert engage("templates", "check", "--no-database", "--json").code == 0

"""The staff and front-desk commands end to end: staff accounts, patient find/update, consent, inbox, resolve."""

from __future__ import annotations

import json

from sqlalchemy import select

from engage.db import session_scope
from engage.records.models import Message, MessageStatus, StaffUser
from tests import seed
from tests.cli import engage


def _clinic_with_patient() -> tuple[int, int]:
    with session_scope() as session:
        clinic = seed.clinic(session)
        ana = seed.patient(session, clinic.id, email="ana@example.com")
        seed.enrolled(session, ana.id)
        return clinic.id, ana.id


def _engage_stdin(stdin: str, *args: str) -> tuple[int, str, str]:
    result = engage(*args, input=stdin)
    return result.code, result.stdout, result.stderr


def test_staff_add_list_reset_and_deactivate(db_url: str) -> None:
    clinic_id, _ = _clinic_with_patient()
    code, out, err = _engage_stdin(
        "a long enough secret\n",
        "staff",
        "add",
        "--clinic",
        str(clinic_id),
        "--email",
        "Desk@Clinic.example",
        "--name",
        "Dana Desk",
        "--role",
        "front_desk",
        "--password-stdin",
        "--json",
    )
    assert code == 0, err
    added = json.loads(out)
    assert (added["email"], added["role"], added["active"]) == ("desk@clinic.example", "front_desk", True)
    with session_scope() as session:
        stored = session.scalar(select(StaffUser.password_hash))
        assert stored is not None and stored.startswith("$argon2id$")

    code, _, err = _engage_stdin(
        "too short\n",
        "staff",
        "add",
        "--clinic",
        str(clinic_id),
        "--email",
        "b@clinic.example",
        "--name",
        "B",
        "--role",
        "admin",
        "--password-stdin",
    )
    assert code == 2 and "at least 12 characters" in err

    listed = engage("staff", "list", "--clinic", str(clinic_id), "--json").json["staff"]
    assert [s["email"] for s in listed] == ["desk@clinic.example"]
    code, _, err = _engage_stdin(
        "another long secret\n", "staff", "reset-password", str(added["id"]), "--password-stdin"
    )
    assert code == 0, err
    assert engage("staff", "deactivate", str(added["id"]), "--json").json["active"] is False


def test_patient_find_update_and_consent(db_url: str) -> None:
    clinic_id, patient_id = _clinic_with_patient()
    found = engage("patient", "find", "(415) 555-0123", "--clinic", str(clinic_id), "--json").json
    assert [p["id"] for p in found["patients"]] == [patient_id]
    assert engage("patient", "list", "--clinic", str(clinic_id), "--json").json["total"] == 1

    bad = engage("patient", "update", str(patient_id), "--phone", "12", "--json")
    assert bad.code == 2 and "invalid phone number" in bad.stderr
    updated = engage("patient", "update", str(patient_id), "--phone", "+1 720 555 0188", "--json").json
    assert updated["changed"] == ["phone"] and updated["patient"]["phone"] == "+17205550188"

    out = engage(
        "consent",
        "set",
        str(patient_id),
        "--channel",
        "sms",
        "--state",
        "opted_out",
        "--reason",
        "asked at the desk",
        "--json",
    ).json
    assert out["messages"]["cancelled"] == 0  # record_consent already cancelled them; reconcile finds nothing
    with session_scope() as session:
        sms = session.scalars(select(Message.status).where(Message.channel == "sms")).all()
    # every pending SMS is cancelled; rows the planner already skipped (frequency cap) stay skipped
    assert MessageStatus.CANCELLED in sms and set(sms) <= {MessageStatus.CANCELLED, MessageStatus.SKIPPED}


def test_inbox_and_message_resolve(db_url: str) -> None:
    clinic_id, patient_id = _clinic_with_patient()
    with session_scope() as session:
        reply_id = seed.flagged_reply(session, clinic_id, patient_id).id
        message = seed.messages(session, patient_id)[0]
        message.status = MessageStatus.UNKNOWN
        message_id = message.id
    waiting = engage("inbox", "--clinic", str(clinic_id), "--json").json["replies"]
    assert [r["id"] for r in waiting] == [reply_id]
    assert engage("inbox", "--clinic", str(clinic_id), "--handle", str(reply_id)).code == 2  # no note
    handled = engage(
        "inbox", "--clinic", str(clinic_id), "--handle", str(reply_id), "--note", "called back", "--json"
    ).json
    assert handled["handled_note"] == "called back"
    assert engage("inbox", "--clinic", str(clinic_id), "--json").json["replies"] == []

    resolved = engage(
        "message", "resolve", str(message_id), "--action", "mark-sent", "--reason", "patient confirmed", "--json"
    ).json
    assert resolved["status"] == "sent"
    again = engage("message", "resolve", str(message_id), "--action", "drop", "--reason", "x")
    assert again.code == 2 and "only unknown or failed" in again.stderr

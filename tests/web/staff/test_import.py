"""The staff app's CSV import: check (a dry run) then import, bad rows listed, roles, clinics, and files refused."""

from __future__ import annotations

import base64
import html
import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select

from engage.clock import utcnow
from engage.db import session_scope
from engage.records.models import Appointment, AuditEvent, Enrollment, Message, MessageStatus, Patient
from engage.sync.csv_import import import_appointments
from tests import seed
from tests.web.staff.support import HTML, signed_in

HEADER = (
    "patient_external_id,first_name,last_name,phone,email,timezone,appointment_external_id,start,duration,status,"
    "sequence\n"
)


def day(n: int, hour: int = 9) -> str:
    return (utcnow() + timedelta(days=n)).strftime(f"%Y-%m-%dT{hour:02d}:00")


def rows(*, second_start: str | None = None) -> str:
    return HEADER + "".join(
        [
            f"P1,Ana,Ruiz,(415) 555-0123,ana@example.com,,A1,{day(5)},45,booked,{seed.SEQUENCE}\n",
            f"P1,Ana,Ruiz,(415) 555-0123,ana@example.com,,A2,{second_start or day(12)},45,booked,{seed.SEQUENCE}\n",
            f"P2,Bo,Lee,+14155550124,,America/Chicago,B1,{day(6, 10)},30m,booked,{seed.SEQUENCE}\n",
        ]
    )


def _clinic() -> int:
    with session_scope() as session:
        clinic = seed.clinic(session)
        seed.staff(session, clinic.id, "desk@clinic.example", "front_desk")
        seed.staff(session, clinic.id, "doc@clinic.example", "practitioner")
        return clinic.id


def _check(client: TestClient, csrf: str, content: str | bytes, name: str = "appointments.csv") -> Response:
    data = content.encode() if isinstance(content, str) else content
    return client.post("/import", data={"csrf_token": csrf}, files={"file": (name, data, "text/csv")}, headers=HTML)


def _import(client: TestClient, checked: Response | str) -> Response:
    """Press Import on a checked page: post back the form it carries."""
    page = checked if isinstance(checked, str) else checked.text
    form = page.split('action="/import/apply"')[1].split("</form>")[0]
    fields = {name: html.unescape(value) for name, value in re.findall(r'name="(\w+)" value="([^"]*)"', form)}
    assert {"csrf_token", "content", "seal", "filename"} <= set(fields)
    return client.post("/import/apply", data=fields, headers=HTML)


def _counts(page: str) -> dict[str, str]:
    """The report's numbers, e.g. {"Appointments new": "3", ...}."""
    found = {}
    for section, items in re.findall(r"<h3>([^<]+)</h3>\s*<ul class=\"counts\">(.*?)</ul>", page, re.S):
        for number, label in re.findall(r"<strong>(\d+)</strong>\s*([^<]+)</li>", items):
            found[f"{section} {label.strip()}"] = number
    return found


def _count(model: type) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _imports_audited() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).where(AuditEvent.action == "sync.apply")) or 0


def _outbox() -> list[tuple[object, ...]]:
    with session_scope() as session:
        rows = session.execute(select(Message.id, Message.due_at, Message.status).order_by(Message.id))
        return [tuple(r) for r in rows]


def _reminder(external_id: str) -> Message:
    with session_scope() as session:
        return session.scalars(
            select(Message)
            .join(Appointment, Appointment.id == Message.appointment_id)
            .where(Appointment.external_id == external_id, Message.step_key == "visit-reminder")
        ).one()


def test_checking_writes_nothing_and_importing_creates_appointments_and_enrols(db_url: str) -> None:
    clinic_id = _clinic()
    client, csrf = signed_in("desk@clinic.example")

    checked = _check(client, csrf, rows())

    assert checked.status_code == 200 and "every row is valid. Nothing has been written yet." in checked.text
    assert _counts(checked.text) == {
        "Appointments new": "3",
        "Appointments moved": "0",
        "Appointments cancelled, completed or no-show": "0",
        "Appointments unchanged": "0",
        "Patients new": "2",
        "Patients updated": "0",
        "Patients unchanged": "0",
        "Plans and messages new plans": "2",
        "Plans and messages enrollments": "2",
    }
    assert "messages planned" in checked.text
    assert (_count(Patient), _count(Appointment), _count(Message), _imports_audited()) == (0, 0, 0, 0)

    imported = _import(client, checked)

    assert imported.status_code == 200 and "Imported appointments.csv." in imported.text
    assert _counts(imported.text) == _counts(checked.text)
    assert (_count(Patient), _count(Appointment), _count(Enrollment)) == (2, 3, 2)
    assert _reminder("A1").status is MessageStatus.SCHEDULED
    with session_scope() as session:
        audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "sync.apply")).one()
        assert (audit.actor, audit.clinic_id, audit.detail["appointments_created"]) == (
            "desk@clinic.example",
            clinic_id,
            3,
        )
        assert session.scalar(select(func.count()).where(Patient.clinic_id != clinic_id)) == 0


def test_importing_the_same_file_again_changes_nothing(db_url: str) -> None:
    _clinic()
    client, csrf = signed_in("desk@clinic.example")
    _import(client, _check(client, csrf, rows()))
    before = _outbox()

    again = _check(client, csrf, rows())
    assert "Nothing would change" in again.text
    imported = _import(client, again)

    assert "nothing changed, everything in it was already here" in imported.text
    counts = _counts(imported.text)
    assert (counts["Appointments unchanged"], counts["Patients unchanged"], counts["Appointments new"]) == (
        "3",
        "2",
        "0",
    )
    assert "Messages: no messages changed." in imported.text
    assert _outbox() == before


def test_a_changed_start_moves_the_reminders(db_url: str) -> None:
    _clinic()
    client, csrf = signed_in("desk@clinic.example")
    _import(client, _check(client, csrf, rows()))
    before = _reminder("A2")

    checked = _check(client, csrf, rows(second_start=day(14, 11)))
    assert _counts(checked.text)["Appointments moved"] == "1"
    assert _reminder("A2").due_at == before.due_at  # the check moved nothing
    imported = _import(client, checked)

    assert _counts(imported.text)["Appointments moved"] == "1" and "moved" in imported.text.split("Messages:")[1]
    after = _reminder("A2")
    assert after.id == before.id and after.status is MessageStatus.SCHEDULED
    assert after.due_at - before.due_at == timedelta(days=2, hours=2)


def test_each_bad_row_is_listed_with_its_line_and_nothing_is_written(db_url: str) -> None:
    _clinic()
    client, csrf = signed_in("desk@clinic.example")
    bad = HEADER + "".join(
        [
            f"P1,Ana,Ruiz,(415) 555-0123,,,A1,{day(5)},45,booked,{seed.SEQUENCE}\n",
            f"P2,Bo,Lee,12,,,B1,{day(5)},45,booked,{seed.SEQUENCE}\n",
            f"P3,Cy,Day,+14155550125,,Mars/Base,C1,{day(5)},ninety,booked,{seed.SEQUENCE}\n",
        ]
    )

    answer = _check(client, csrf, bad)

    assert answer.status_code == 400 and "Nothing was imported" in answer.text
    assert 'action="/import/apply"' not in answer.text
    table = answer.text.split("<tbody>")[1].split("</tbody>")[0]
    listed = re.findall(r"<tr><td>(line \d+)</td><td>(\w*)</td><td>", table)
    assert listed == [("line 3", "phone"), ("line 4", "duration")]  # in file order
    assert "has 2 problems" in answer.text
    assert (_count(Patient), _count(Appointment), _imports_audited()) == (0, 0, 0)


def test_a_practitioner_gets_403_and_sees_no_import_link(db_url: str) -> None:
    _clinic()
    desk, desk_csrf = signed_in("desk@clinic.example")
    assert 'href="/import"' in desk.get("/patients").text
    checked = _check(desk, desk_csrf, rows())
    doc, doc_csrf = signed_in("doc@clinic.example")

    assert 'href="/import"' not in doc.get("/patients").text
    assert doc.get("/import", headers=HTML).status_code == 403
    assert _check(doc, doc_csrf, rows()).status_code == 403
    form = dict(re.findall(r'name="(content|seal|filename)" value="([^"]*)"', checked.text))
    assert doc.post("/import/apply", data={**form, "csrf_token": doc_csrf}, headers=HTML).status_code == 403
    assert (_count(Patient), _count(Appointment)) == (0, 0)


def test_another_clinics_records_with_the_same_ids_are_untouched(db_url: str) -> None:
    _clinic()
    with session_scope() as session:
        theirs = seed.clinic(session, name="Elsewhere", email="front@elsewhere.example")
        their_file = rows().replace("Ana,Ruiz", "Zoe,Other")
        import_appointments(session, theirs.id, their_file, actor="test")
    before = _outbox()
    with session_scope() as session:
        their_starts = dict(session.execute(select(Appointment.external_id, Appointment.start_at)).all())
    client, csrf = signed_in("desk@clinic.example")

    imported = _import(client, _check(client, csrf, rows(second_start=day(14, 11))))

    assert _counts(imported.text)["Appointments new"] == "3"  # their A1, A2, B1 are not ours
    with session_scope() as session:
        zoe = session.scalars(select(Patient).where(Patient.clinic_id == theirs.id, Patient.external_id == "P1")).one()
        assert (zoe.first_name, zoe.last_name) == ("Zoe", "Other")
        for ext, start in their_starts.items():
            theirs_now = session.scalars(
                select(Appointment)
                .join(Appointment.plan)
                .join(Patient)
                .where(Patient.clinic_id == theirs.id, Appointment.external_id == ext)
            ).one()
            assert theirs_now.start_at == start
    assert _outbox()[: len(before)] == before  # their messages, as they were (ours come after, by id)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00" + b"\x00" * 64, "This is not a CSV file"),
        ((HEADER + f"P1,Jos\xe9,Ruiz,+14155550123,,,A1,{day(5)},45,booked,\n").encode("latin-1"), "not UTF-8 text"),
        (b"", "The file is empty"),
        (b"x" * 5_000_001, "The file is larger than 5.0 MB: import it in parts"),
    ],
)
def test_a_file_that_is_not_utf8_csv_or_too_big_is_refused_beside_the_field(
    db_url: str, content: bytes, says: str
) -> None:
    _clinic()
    client, csrf = signed_in("desk@clinic.example")

    answer = _check(client, csrf, content)

    assert answer.status_code == 400
    beside = re.search(r'<small id="e-file" class="field-error">([^<]+)</small>', answer.text)
    assert beside is not None and says in html.unescape(beside.group(1)), answer.text[-2000:]
    assert 'aria-invalid="true" aria-describedby="e-file"' in answer.text
    assert (_count(Patient), _imports_audited()) == (0, 0)


def test_text_that_is_not_csv_is_listed_as_a_bad_file_and_far_too_big_a_body_is_413(db_url: str) -> None:
    _clinic()
    client, csrf = signed_in("desk@clinic.example")

    prose = _check(client, csrf, "Dear team,\nplease find the appointments attached.\n", name="notes.txt")
    unclosed = _check(client, csrf, HEADER + 'P1,"Ana' + "n" * 140_000 + "\n")
    huge = _check(client, csrf, b"x" * 9_000_000)

    assert prose.status_code == 400 and "missing column(s): patient_external_id" in prose.text
    assert unclosed.status_code == 400 and "<td>line 2</td><td></td><td>not readable as CSV" in unclosed.text
    assert huge.status_code == 413
    assert _count(Patient) == 0


def test_only_the_file_that_was_checked_can_be_imported(db_url: str) -> None:
    _clinic()
    client, csrf = signed_in("desk@clinic.example")
    checked = _check(client, csrf, rows())
    other = rows(second_start=day(20))
    content = re.search(r'name="content" value="([^"]*)"', checked.text)
    assert content is not None

    refused = _import(client, checked.text.replace(content.group(1), base64.urlsafe_b64encode(other.encode()).decode()))

    assert refused.status_code == 400 and "This is not the file that was checked" in refused.text
    assert _count(Patient) == 0
    assert _import(client, checked).status_code == 200 and _count(Appointment) == 3


def test_a_file_over_a_megabyte_goes_through_both_steps(pg_url: str) -> None:
    """Bigger than the app's usual 1 MB request cap and the form parser's 1 MB a field: the upload has its own."""
    _clinic()
    client, csrf = signed_in("desk@clinic.example")
    start = utcnow() + timedelta(days=400)
    header = "patient_external_id,first_name,last_name,phone,appointment_external_id,start,status,plan_external_id\n"
    big = header + "".join(
        f"P1,Ana,Ruiz,+14155550123,A{n:06d},{start + timedelta(hours=n):%Y-%m-%dT%H:%M}+00:00,completed,PL1\n"
        for n in range(16_000)
    )
    assert len(big) > 1_000_000

    checked = _check(client, csrf, big)
    assert checked.status_code == 200, checked.text[-1500:]
    imported = _import(client, checked)

    assert imported.status_code == 200 and _counts(imported.text)["Appointments new"] == "16000"
    assert _count(Appointment) == 16_000

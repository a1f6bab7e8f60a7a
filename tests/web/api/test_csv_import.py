"""``POST /api/v1/import/appointments`` over real HTTP: the CLI's CSV import for a scheduled export."""

from __future__ import annotations

from sqlalchemy import func, select

from engage.db import session_scope
from engage.records.models import Appointment, Message, MessageStatus, Role
from tests.sync.test_csv_import import rows
from tests.web.api.conftest import World, make_clinic

CSV = {"Content-Type": "text/csv"}


def appointments() -> int:
    with session_scope() as session:
        return int(
            session.scalar(select(func.count()).select_from(Appointment).where(Appointment.external_id.is_not(None)))
            or 0
        )


def scheduled() -> list[tuple[int, object]]:
    with session_scope() as session:
        return [
            tuple(r)
            for r in session.execute(
                select(Message.id, Message.due_at).where(Message.status == MessageStatus.SCHEDULED).order_by(Message.id)
            )
        ]  # type: ignore[misc]


def test_a_csv_is_checked_then_imported_and_the_same_file_again_changes_nothing(world: World) -> None:
    text = rows()
    with world.client() as api:
        checked = api.post("/import/appointments?dry_run=true", content=text.encode(), headers=CSV)
        assert checked.status_code == 200, checked.text
        assert checked.json()["appointments_created"] == 3 and checked.json()["dry_run"] is True
        assert appointments() == 0

        imported = api.post("/import/appointments", content=text.encode(), headers=CSV)
        assert imported.status_code == 200 and imported.json()["appointments_created"] == 3
        planned = scheduled()
        assert planned

        again = api.post("/import/appointments", content=text.encode(), headers=CSV).json()
        assert (again["appointments_created"], again["appointments_unchanged"]) == (0, 3)
        assert scheduled() == planned

        cancelled = api.post(
            "/import/appointments", content=rows(second_status="cancelled").encode(), headers=CSV
        ).json()
        assert cancelled["appointments_status_changed"] == 1 and len(scheduled()) < len(planned)


def test_bad_rows_are_each_listed_and_nothing_is_written(world: World) -> None:
    text = rows().replace("(415) 555-0123", "not a phone", 1).replace("+14155550124", "")
    with world.client() as api:
        answer = api.post("/import/appointments", content=text.encode(), headers=CSV)
        latin1 = api.post("/import/appointments", content="patient_external_id\nPérez\n".encode("latin-1"), headers=CSV)
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    records = {e.get("record") for e in answer.json()["errors"]}
    assert {"line 2", "line 4"} <= records
    assert appointments() == 0
    assert latin1.status_code == 422 and "UTF-8" in latin1.json()["detail"]


def test_a_practitioners_token_may_not_import(world: World) -> None:
    reader = make_clinic("Readers", "pt@c.example", role=Role.PRACTITIONER)
    with world.client(reader) as api:
        assert api.post("/import/appointments", content=rows().encode(), headers=CSV).status_code == 403
    assert appointments() == 0


def test_a_file_over_the_general_request_limit_is_taken_up_to_the_import_limit(world: World) -> None:
    # 1 MB is the general cap on request bodies; a 10,000-visit export is larger, and the import takes 5 MB.
    text = rows()
    big = text + ("\n" * 1_100_000)  # blank lines: skipped by the CSV reader, counted by the size limit
    with world.client() as api:
        answer = api.post("/import/appointments?dry_run=true", content=big.encode(), headers=CSV)
        huge = api.post("/import/appointments?dry_run=true", content=b"\n" * 5_100_000, headers=CSV)
    assert answer.status_code == 200, answer.text
    assert answer.json()["appointments_created"] == 3
    assert huge.status_code == 413 and huge.headers["content-type"] == "application/problem+json"

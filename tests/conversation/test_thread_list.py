"""The inbox's thread list read through indexes: urgent threads first, then waiting ones, then the quiet ones,
each by its latest text, however the page is cut; the total counts every thread; unknown numbers apart."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.conversation.inbox import waiting_from_unknown_numbers
from engage.conversation.threads import threads
from engage.records.models import InboundMessage
from tests import seed


def _text(session: Session, clinic_id: int, patient_id: int | None, minutes_ago: int, **flags: object) -> None:
    session.add(
        InboundMessage(
            clinic_id=clinic_id,
            patient_id=patient_id,
            from_phone="+14155550123",
            to_phone="+14155550100",
            body=f"text of {minutes_ago} minutes ago",
            kind="other",
            flagged=bool(flags.get("flagged", False)),
            urgent=bool(flags.get("urgent", False)),
            handled_at=utcnow() if flags.get("handled") else None,
            received_at=utcnow() - timedelta(minutes=minutes_ago),
        )
    )
    session.flush()


def test_threads_in_order_whatever_the_page_size(session: Session) -> None:
    clinic = seed.clinic(session)
    p = {name: seed.patient(session, clinic.id, name, "Lee").id for name in ("Ana", "Ben", "Cy", "Dee", "Eve")}
    _text(session, clinic.id, p["Ana"], 50, flagged=True)  # waiting, then a later thanks: latest text 5 min ago
    _text(session, clinic.id, p["Ana"], 5)
    _text(session, clinic.id, p["Ben"], 40, flagged=True, urgent=True)  # urgent
    _text(session, clinic.id, p["Cy"], 1)  # quiet, the latest of all
    _text(session, clinic.id, p["Dee"], 30, flagged=True, handled=True)  # handled: quiet
    _text(session, clinic.id, p["Eve"], 20, flagged=True)  # waiting
    _text(session, clinic.id, None, 3, flagged=True)  # an unknown number: no thread
    order = ["Ben", "Ana", "Eve", "Cy", "Dee"]
    for limit in range(1, 7):
        rows, total = threads(session, clinic.id, limit=limit)
        assert total == 5
        assert [r.patient_name.split()[0] for r in rows] == order[:limit]
    rows, _ = threads(session, clinic.id)
    ana = rows[1]
    assert (ana.waiting, ana.urgent, ana.last_text) == (1, 0, "text of 5 minutes ago")
    assert (rows[0].waiting, rows[0].urgent) == (1, 1)
    assert [(r.waiting, r.last_text) for r in rows[3:]] == [(0, "text of 1 minutes ago"), (0, "text of 30 minutes ago")]
    assert [r.body for r in waiting_from_unknown_numbers(session, clinic.id)] == ["text of 3 minutes ago"]


def test_many_quiet_threads_are_read_a_batch_at_a_time(session: Session) -> None:
    clinic = seed.clinic(session)
    ids = [seed.patient(session, clinic.id, f"P{i}", "Quiet", phone=f"+1415555{i:04d}").id for i in range(60)]
    for i, patient_id in enumerate(ids):  # five texts each (300), the first patient's the latest
        for k in range(5):
            _text(session, clinic.id, patient_id, 5 * i + k)
    rows, total = threads(session, clinic.id, limit=50)  # batches of 200 texts: 40 threads, then the rest
    assert total == 60 and [r.patient_id for r in rows] == ids[:50]

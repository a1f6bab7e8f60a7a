"""How many messages each demo patient got: in total and in the busiest rolling 7 days (SMS and email).

``python -m tests.demo_volume [path/to/engage.db]`` prints the table for the newest demo clinic in that
SQLite database (default ``./engage.db``, where ``engage demo`` writes); ``tests/test_demo.py`` uses the
same functions to hold the demo to the issue 22 rules.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select

from engage.db import make_engine
from engage.records.models import Channel, Clinic, Message, MessageStatus, Patient

WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Sent:
    patient: str
    step: str
    channel: Channel
    at: datetime
    appointment_id: int | None


def sent_messages(engine: Engine, clinic_id: int | None = None) -> list[Sent]:
    """Every message sent to the patients of ``clinic_id`` (default: the newest clinic), oldest first."""
    with engine.connect() as conn:
        clinic_id = clinic_id or conn.scalar(select(func.max(Clinic.id)))
        rows = conn.execute(
            select(Patient.first_name, Message.step_key, Message.channel, Message.sent_at, Message.appointment_id)
            .join(Patient, Patient.id == Message.patient_id)
            .where(Patient.clinic_id == clinic_id, Message.status == MessageStatus.SENT)
            .order_by(Message.sent_at, Message.id)
        ).all()
    return [Sent(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def busiest_week(times: list[datetime]) -> int:
    """The most of ``times`` in any 7-day window (a window starts at each one)."""
    ordered = sorted(times)
    return max((sum(1 for t in ordered if start <= t < start + WEEK) for start in ordered), default=0)


def volume_table(sent: list[Sent]) -> list[dict[str, object]]:
    """Per patient: sent SMS and email, and the busiest rolling week (all, SMS, SMS without welcome/aftercare)."""
    by_patient: dict[str, list[Sent]] = defaultdict(list)
    for message in sent:
        by_patient[message.patient].append(message)
    table = []
    for name, messages in by_patient.items():
        sms = [m for m in messages if m.channel is Channel.SMS]
        capped = [m.at for m in sms if m.step not in ("welcome", "aftercare")]
        table.append(
            {
                "patient": name,
                "sms": len(sms),
                "email": len(messages) - len(sms),
                "week_all": busiest_week([m.at for m in messages]),
                "week_sms": busiest_week([m.at for m in sms]),
                "week_capped_sms": busiest_week(capped),
            }
        )
    return table


def main(path: str = "engage.db") -> None:
    engine = make_engine(f"sqlite:///{path}")
    table = volume_table(sent_messages(engine))
    engine.dispose()
    print("| patient | SMS | email | busiest 7 days: all | SMS | SMS under the caps |")
    print("|---|---|---|---|---|---|")
    for row in table:
        print(
            f"| {row['patient']} | {row['sms']} | {row['email']} | {row['week_all']} | {row['week_sms']} "
            f"| {row['week_capped_sms']} |"
        )


if __name__ == "__main__":
    main(*sys.argv[1:2])

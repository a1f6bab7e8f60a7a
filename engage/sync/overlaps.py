"""A sync may not leave one patient with two booked visits at the same time.

The practice-management system is the source of truth, but two booked visits of one
patient that overlap are a booking error there (a double booking, a visit moved without
cancelling the old one), and reminders for both would tell the patient two things. The
check looks at the state the whole sync would leave: the sync's booked appointments
(with their new times) and the patient's other booked visits already in engage, so a
sync that swaps two visits, or cancels one and books another in its slot, is fine.
Visits in the past count like any other; cancelled, completed and no-show ones do not.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.records.models import Appointment, AppointmentStatus, Patient, TreatmentPlan
from engage.sync.records import CheckedAppointment, SyncError

_CHUNK = 1000


@dataclass(frozen=True)
class _Slot:
    start: datetime
    end: datetime
    order: int  # the sync record's position, or -1 for a visit only engage has
    synced: CheckedAppointment | None
    name: str  # how an error names it


def refuse_overlaps(
    session: Session,
    appointments: list[CheckedAppointment],
    known: dict[str, Patient],
    errors: list[SyncError],
) -> None:
    """Add a :class:`SyncError` (field ``start``) to ``errors`` for each booked appointment of the sync that
    overlaps another booked visit of the same patient once the sync is applied, naming the other visit: its
    place in the sync (``line 4``) or, for one only engage has, its id and local start.

    A pair of the sync's own appointments is reported once, at the later record.
    """
    slots: dict[str, list[_Slot]] = defaultdict(list)
    timezones: dict[str, str] = {}
    for order, appt in enumerate(appointments):
        if appt.status is AppointmentStatus.BOOKED:
            ext = appt.record.patient_external_id
            slots[ext].append(_Slot(appt.start, appt.end, order, appt, f"appointment {appt.record.external_id}"))
            timezones[ext] = appt.timezone
    replaced = {appt.existing.id for appt in appointments if appt.existing is not None}
    by_patient_id = {known[ext].id: ext for ext in slots if ext in known}
    ids = sorted(by_patient_id)
    for first in range(0, len(ids), _CHUNK):
        rows = session.execute(
            select(
                Appointment.id,
                Appointment.external_id,
                Appointment.start_at,
                Appointment.end_at,
                TreatmentPlan.patient_id,
            )
            .join(TreatmentPlan, TreatmentPlan.id == Appointment.plan_id)
            .where(
                TreatmentPlan.patient_id.in_(ids[first : first + _CHUNK]),
                Appointment.status == AppointmentStatus.BOOKED,
            )
        )
        for row in rows:
            if row.id not in replaced:  # the sync gives it a new time or status
                name = f"appointment {row.external_id}" if row.external_id else f"engage's appointment {row.id}"
                slots[by_patient_id[row.patient_id]].append(_Slot(row.start_at, row.end_at, -1, None, name))
    for ext, patient_slots in slots.items():
        _report(sorted(patient_slots, key=lambda s: (s.start, s.end, s.order)), ZoneInfo(timezones[ext]), errors)


def _report(slots: list[_Slot], tz: ZoneInfo, errors: list[SyncError]) -> None:
    ongoing: list[_Slot] = []
    for slot in slots:
        ongoing = [other for other in ongoing if other.end > slot.start]
        for other in ongoing:
            here, there = (slot, other) if slot.order > other.order else (other, slot)
            if here.synced is None:
                continue  # two visits only engage has: not this sync's doing
            where = there.synced.record.where if there.synced is not None else "booked in engage"
            details = [where] if where not in ("", "body") else []
            details.append(f"{there.start.astimezone(tz):%Y-%m-%d %H:%M}")
            errors.append(
                SyncError(
                    here.synced.record.where,
                    "start",
                    f"{here.name} overlaps {there.name} of the same patient ({', '.join(details)}); "
                    "a patient's booked visits may not overlap: move or cancel one of them",
                )
            )
        ongoing.append(slot)

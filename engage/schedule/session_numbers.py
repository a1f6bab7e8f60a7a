"""How staff count a plan's visits: "session 3" is the third visit that is not cancelled.

Booked, completed and no-show visits are numbered in start order (ties by id); a cancelled visit has
no number and is shown apart, so a cancel and a re-add leave a 6-session plan at sessions 1–6.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engage.records.models import Appointment, AppointmentStatus


@dataclass(frozen=True)
class NumberedVisits:
    """A plan's visits as staff read them: the numbered ones with their number, and the cancelled ones."""

    numbered: list[tuple[int, Appointment]]
    cancelled: list[Appointment]

    def number_of(self, appointment_id: int) -> int | None:
        """The session number of a visit, or None for a cancelled (or unknown) one."""
        return next((n for n, a in self.numbered if a.id == appointment_id), None)


def number_visits(appointments: Iterable[Appointment]) -> NumberedVisits:
    """Number a plan's visits (see the module docstring)."""
    ordered = sorted(appointments, key=lambda a: (a.start_at, a.id))
    kept = [a for a in ordered if a.status is not AppointmentStatus.CANCELLED]
    return NumberedVisits(
        numbered=list(enumerate(kept, start=1)),
        cancelled=[a for a in ordered if a.status is AppointmentStatus.CANCELLED],
    )

"""The practitioner filter shared by Today, the patient page and the message list: ``?practitioner=<id>`` (one of
the clinic's practitioners), ``me`` (the signed-in practitioner) or empty (everyone); a bad choice shows everyone
with a sentence beside the field."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from engage.records.practitioners import list_practitioners
from engage.web.staff.pages import Staff


@dataclass(frozen=True)
class PractitionerChoice:
    """What the filter chose and what the form offers."""

    whose: int | None  # the practitioner's id, None for everyone
    problem: str | None  # a sentence for a bad choice
    choices: list[tuple[int, str]]  # (id, name) of the clinic's practitioners
    mine: int | None  # the signed-in staff member's practitioner id, if they are one
    wanted: str  # as given (for links that keep the filter)

    def context(self) -> dict[str, object]:
        """The template variables of ``_practitioner_filter.html``."""
        return {
            "practitioners": self.choices,
            "whose": self.whose,
            "mine": self.mine,
            "practitioner_problem": self.problem,
        }


def choose_practitioner(session: Session, staff: Staff, wanted: str) -> PractitionerChoice:
    """Read ``wanted`` (see the module docstring) against the clinic's practitioners."""
    listed = list_practitioners(session, staff.clinic_id)
    choices = [(p.id, p.name) for p in listed]
    mine = next((p.id for p in listed if p.staff_user_id == staff.id), None)
    wanted = wanted.strip()
    if not wanted:
        return PractitionerChoice(None, None, choices, mine, "")
    if wanted == "me":
        if mine is None:
            return PractitionerChoice(
                None, "your account is not a practitioner of this clinic: showing everyone", choices, mine, wanted
            )
        return PractitionerChoice(mine, None, choices, mine, wanted)
    chosen = next((pid for pid, _ in choices if str(pid) == wanted), None)
    if chosen is None:
        return PractitionerChoice(None, "choose a practitioner from the list: showing everyone", choices, mine, wanted)
    return PractitionerChoice(chosen, None, choices, mine, wanted)

"""What each staff role may do. Pages ask :func:`may` to decide both whether to show an action and whether to
accept it (403 otherwise), so the two never disagree.

- ``admin``: everything, including staff accounts, API tokens and clinic settings;
- ``front_desk``: patients, consent, plans, appointments, enrolments, replies and stuck messages; the baseline
  scores a patient gives at the desk;
- ``practitioner``: reads everything; picks a plan's exercises, records pain scores and writes notes on replies
  (marking them handled); with the admin, reads the clinic-wide Outcomes page.
  Exercises are a clinical choice, so the front desk does not pick them.
"""

from __future__ import annotations

import enum

from engage.records.models import Role


class Action(enum.StrEnum):
    EDIT_PATIENTS = "edit_patients"  # add, edit, consent
    EDIT_PLANS = "edit_plans"  # plans, appointments, enrolments
    RESOLVE_MESSAGES = "resolve_messages"
    HANDLE_REPLIES = "handle_replies"
    RECORD_OUTCOMES = "record_outcomes"  # a pain score taken at a visit
    PICK_EXERCISES = "pick_exercises"  # the stretches a plan's messages and /x page show
    RECORD_INTAKE = "record_intake"  # baseline pain and PSFS a patient gave at the desk before treatment
    VIEW_OUTCOMES = "view_outcomes"  # clinic-wide results by practitioner and sequence (the Outcomes page)
    ADMIN = "admin"  # clinic settings, staff accounts, API tokens


_ALLOWED: dict[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(Action),
    Role.FRONT_DESK: frozenset(
        {
            Action.EDIT_PATIENTS,
            Action.EDIT_PLANS,
            Action.RESOLVE_MESSAGES,
            Action.HANDLE_REPLIES,
            Action.RECORD_INTAKE,
        }
    ),
    Role.PRACTITIONER: frozenset(
        {
            Action.HANDLE_REPLIES,
            Action.RECORD_OUTCOMES,
            Action.RECORD_INTAKE,
            Action.PICK_EXERCISES,
            Action.VIEW_OUTCOMES,
        }
    ),
}


def may(role: Role, action: Action | str) -> bool:
    """True when ``role`` may do ``action``."""
    return Action(action) in _ALLOWED.get(role, frozenset())

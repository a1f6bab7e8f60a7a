"""Picking a plan's exercises, and re-planning what depends on them (the stretch text is sent only with some)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from engage.content.exercises import set_plan_exercises
from engage.records.models import TreatmentPlan
from engage.schedule.reconcile import reconcile_plan


def choose_exercises(session: Session, plan_id: int, keys: Iterable[str], *, actor: str) -> TreatmentPlan:
    """Replace the plan's picked exercises (see :func:`set_plan_exercises`) and re-plan its messages.

    Raises like :func:`set_plan_exercises`; nothing is written then.
    """
    plan = set_plan_exercises(session, plan_id, keys, actor=actor)
    reconcile_plan(session, plan.id)
    return plan

"""Scores recorded outside a prompt: a baseline at the desk or at intake, a score from another system with its
past time, through the staff app, the API, the CLI and the intake page ``/q/{token}``.

Two measures, both whole numbers 0-10 (``Outcome.measure``):

- ``nprs``: the Numeric Pain Rating Scale, 0 no pain to 10 worst imaginable (lower is better);
- ``psfs``: the Patient-Specific Functional Scale, one row per activity the patient named (``item``, at most
  three at baseline), 0 unable to do it to 10 able as before the problem (higher is better). Later ratings name
  the same activities.

A score may carry a past time (``at``): a baseline taken at intake last week counts as a baseline, since an
episode's baseline is any score from 7 days before its first session to that session.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.errors import InvalidInput, NotFound
from engage.records import validation
from engage.records.audit import AuditAction, audit
from engage.records.models import Measure, Outcome, Patient
from engage.records.outgoing_webhooks import EventType, emit

#: The furthest back a score may be dated: older answers are history another system keeps.
OLDEST = timedelta(days=366)
#: Clocks differ a little between a desk computer and the server.
CLOCK_SKEW = timedelta(minutes=5)
PSFS_ITEMS = 3
ITEM_LENGTH = 100
SOURCES = ("staff", "api", "cli", "intake")


def measure(value: str | Measure) -> Measure:
    """The measure named by ``value`` (``nprs`` or ``psfs``); ``InvalidInput`` naming field ``measure``."""
    try:
        return Measure(str(value).strip().lower())
    except ValueError:
        raise InvalidInput("the measure is nprs (pain) or psfs (function)", field="measure") from None


def score_value(value: int | str, field: str = "score") -> int:
    """A whole number 0-10 from ``value``; ``InvalidInput`` naming ``field`` otherwise."""
    if isinstance(value, bool):
        raise InvalidInput("a score is a whole number from 0 to 10", field=field)
    try:
        number = int(str(value).strip())
    except ValueError:
        raise InvalidInput("a score is a whole number from 0 to 10", field=field) from None
    if not 0 <= number <= 10:
        raise InvalidInput("a score is a whole number from 0 to 10", field=field)
    return number


def when(value: str | datetime | None, tz: str, now: datetime | None = None) -> datetime:
    """The score's time: now for None; text without an offset is wall time in ``tz``. ``InvalidInput`` (field
    ``at``) for a time in the future or more than a year ago."""
    now = now or utcnow()
    if value is None or (isinstance(value, str) and not value.strip()):
        return now
    try:
        at = validation.local_datetime(value, tz)
    except InvalidInput as exc:
        raise InvalidInput(str(exc), field="at") from None
    if at > now + CLOCK_SKEW:
        raise InvalidInput("a score cannot be dated in the future", field="at")
    if at < now - OLDEST:
        raise InvalidInput("a score is dated at most a year back", field="at")
    return at


def record_score(
    session: Session,
    patient_id: int,
    score: int | str,
    *,
    actor: str,
    measure_name: str | Measure = Measure.NPRS,
    at: str | datetime | None = None,
    item: str | None = None,
    source: str = "staff",
) -> Outcome:
    """Store one score answering no prompt; returns it. Audited and announced (``outcome.recorded``).

    ``item``: the PSFS activity (required for ``psfs``, refused for ``nprs``). Raises ``InvalidInput`` (with
    the field) for a bad score, measure, time or item, ``NotFound`` for an unknown patient; nothing written.
    """
    kind = measure(measure_name)
    value = score_value(score)
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound(f"no patient with id {patient_id}")
    recorded_at = when(at, patient.effective_timezone)
    activity = (item or "").strip() or None
    if kind is Measure.PSFS and activity is None:
        raise InvalidInput("a PSFS score names the activity it rates", field="item")
    if kind is Measure.NPRS and activity is not None:
        raise InvalidInput("a pain score names no activity", field="item")
    if activity is not None and len(activity) > ITEM_LENGTH:
        raise InvalidInput(f"an activity has at most {ITEM_LENGTH} characters", field="item")
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    outcome = Outcome(
        patient_id=patient.id, score=value, source=source, recorded_at=recorded_at, measure=kind, item=activity
    )
    session.add(outcome)
    session.flush()
    emit(session, EventType.OUTCOME_RECORDED, [outcome.id])
    audit(
        session,
        clinic_id=patient.clinic_id,
        actor=actor,
        action=AuditAction.OUTCOME_RECORD,
        subject_type="patient",
        subject_id=patient.id,
        outcome_id=outcome.id,
        measure=kind.value,
    )
    return outcome


def record_psfs(
    session: Session,
    patient_id: int,
    ratings: Sequence[tuple[str, int | str]],
    *,
    actor: str,
    at: str | datetime | None = None,
    source: str = "staff",
) -> list[Outcome]:
    """Store a PSFS assessment: up to three (activity, 0-10) pairs at one time. ``InvalidInput`` for none, more
    than three, the same activity twice, or a bad pair (field ``item`` or ``score``); nothing written then."""
    given = [(name.strip(), score) for name, score in ratings if name.strip() or str(score).strip()]
    if not given:
        raise InvalidInput("name at least one activity and rate it 0-10", field="item")
    if len(given) > PSFS_ITEMS:
        raise InvalidInput(f"the PSFS takes at most {PSFS_ITEMS} activities", field="item")
    names = [name.lower() for name, _ in given]
    if len(set(names)) != len(names):
        raise InvalidInput("each activity once", field="item")
    for name, score in given:  # check every pair before writing any
        score_value(score)
        if not name:
            raise InvalidInput("a PSFS score names the activity it rates", field="item")
    patient = session.get(Patient, patient_id)
    stamp = when(at, patient.effective_timezone) if patient is not None else None
    return [
        record_score(
            session, patient_id, score, actor=actor, measure_name=Measure.PSFS, at=stamp, item=name, source=source
        )
        for name, score in given
    ]


def psfs_activities(session: Session, patient_id: int) -> list[str]:
    """The activities the patient rated most recently, in the order they were named (for later ratings)."""
    rows = session.execute(
        select(Outcome.item, Outcome.recorded_at)
        .where(Outcome.patient_id == patient_id, Outcome.measure == Measure.PSFS)
        .order_by(Outcome.recorded_at.desc(), Outcome.id)
    ).all()
    if not rows:
        return []
    newest = rows[0][1]
    return [str(item) for item, at in rows if at == newest and item]


def score_json(outcome: Outcome) -> dict[str, Any]:
    """The JSON shape of one score (``recorded_at`` ISO 8601 UTC)."""
    return {
        "id": outcome.id,
        "patient_id": outcome.patient_id,
        "measure": outcome.measure.value,
        "item": outcome.item,
        "score": outcome.score,
        "recorded_at": outcome.recorded_at.isoformat(),
        "source": outcome.source,
    }

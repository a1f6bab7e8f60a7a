"""Publishing a clinic's version of a sequence: version N+1 in one transaction, and what it does to patients
already enrolled (the sequence editor, issue 23).

:func:`publish_draft` turns the draft into version N+1; :func:`republish` publishes an earlier version again
as N+1 (rolling back). With ``current_patients`` every live enrollment of the clinic in the sequence is
switched to the new version and re-planned (:mod:`engage.schedule.replan`): pending messages move, are
cancelled or are added; rows already handed to a provider are history, so a step already sent is never
sent again. Without it only new enrollments follow the new version.

The summary ("X pending messages change time, Y are cancelled, Z are added") is counted by the code that
applies the change: a dry run applies it inside a savepoint and rolls it back.

**Concurrency.** Publishing locks the clinic's row (``FOR NO KEY UPDATE``: other writers referring to the
clinic are not held up; SQLite's ``BEGIN IMMEDIATE`` serialises writers anyway), so two admins publishing
at once go one after the other, and the second finds the draft gone or its base outdated:
:class:`StalePublish` names the version now current. Everything happens in the caller's one transaction,
and the outbox rows it changes are locked until it commits, so a dispatcher's tick either sees the old
version's plan or the new one's, never a half-published version.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.errors import Conflict, InvalidInput, NotFound
from engage.records.audit import AuditAction, audit
from engage.records.models import Clinic, Enrollment, Patient, SequenceVersion
from engage.schedule.draft_checks import draft_problems
from engage.schedule.reconcile import PLANNING_ACTIVE
from engage.schedule.replan import replan_enrollments, switch_version
from engage.schedule.versions import (
    SequenceContent,
    content_at,
    content_of,
    current_version,
    forget,
    version_row,
)


@dataclass(frozen=True)
class PublishSummary:
    version: int
    changed: int
    cancelled: int
    added: int

    def as_dict(self) -> dict[str, int]:
        return {"version": self.version, "changed": self.changed, "cancelled": self.cancelled, "added": self.added}


class StalePublish(Conflict):
    """Another admin published since this draft was started: ``current_version`` is the version now current."""

    def __init__(self, current_version: int, message: str | None = None) -> None:
        super().__init__(
            message
            or f"another admin published version {current_version} while you edited; review it and publish again",
            field="version",
        )
        self.current_version = current_version


def publish_draft(
    session: Session, clinic_id: int, key: str, *, actor: str, current_patients: bool, dry_run: bool = False
) -> PublishSummary:
    """Publish the clinic's draft of ``key`` as the next version. Raises ``NotFound`` (no draft, never
    published), :class:`StalePublish` (published by someone else meanwhile) or ``InvalidInput`` (the draft
    has problems: they are listed)."""
    _lock_clinic(session, clinic_id)
    current = current_version(session, clinic_id, key)
    draft = session.scalars(
        select(SequenceVersion)
        .where(
            SequenceVersion.clinic_id == clinic_id,
            SequenceVersion.sequence_key == key,
            SequenceVersion.version.is_(None),
        )
        .with_for_update()
    ).one_or_none()
    if draft is None:
        if current is not None:
            raise StalePublish(current, f"there is no draft to publish: version {current} is current")
        raise NotFound(f"no draft of sequence {key!r}")
    if draft.base_version != current:
        assert current is not None  # a draft's base is a published version, and versions are never deleted
        raise StalePublish(current)
    problems = draft_problems(key, draft.definition, dict(draft.texts))
    if problems:
        listed = "; ".join(f"{p.field}: {p.message}" for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise InvalidInput(f"the draft cannot be published until its problems are fixed: {listed}{more}")

    def make() -> SequenceVersion:
        draft.version = (current or 0) + 1
        return draft

    return _publish(session, clinic_id, key, make, actor=actor, current_patients=current_patients, dry_run=dry_run)


def republish(
    session: Session,
    clinic_id: int,
    key: str,
    version: int,
    *,
    actor: str,
    current_patients: bool,
    dry_run: bool = False,
) -> PublishSummary:
    """Publish the clinic's version ``version`` of ``key`` again, as the next version (a roll back)."""
    _lock_clinic(session, clinic_id)
    source = version_row(session, clinic_id, key, version)
    current = current_version(session, clinic_id, key)
    assert current is not None
    content_of(source)  # still readable by today's loader

    def make() -> SequenceVersion:
        row = SequenceVersion(
            clinic_id=clinic_id,
            sequence_key=key,
            version=current + 1,
            definition=dict(source.definition),
            texts=dict(source.texts),
            base_version=current,
            created_by=actor,
            created_at=utcnow(),
            updated_by=actor,
            updated_at=utcnow(),
            summary={},
        )
        session.add(row)
        return row

    return _publish(
        session,
        clinic_id,
        key,
        make,
        actor=actor,
        current_patients=current_patients,
        dry_run=dry_run,
        republished_from=version,
    )


def _same_steps(session: Session, clinic_id: int, key: str, version: int | None, content: SequenceContent) -> bool:
    try:
        return content_at(session, clinic_id, key, version).sequence == content.sequence
    except (NotFound, InvalidInput):  # the old one no longer reads: re-plan
        return False


def _lock_clinic(session: Session, clinic_id: int) -> None:
    found = session.scalars(
        select(Clinic.id).where(Clinic.id == clinic_id).with_for_update(key_share=True)
    ).one_or_none()
    if found is None:
        raise NotFound(f"no clinic with id {clinic_id}")


def _publish(
    session: Session,
    clinic_id: int,
    key: str,
    make: Any,
    *,
    actor: str,
    current_patients: bool,
    dry_run: bool,
    republished_from: int | None = None,
) -> PublishSummary:
    savepoint = session.begin_nested()
    version: int | None = None
    try:
        row: SequenceVersion = make()
        version = row.version
        assert version is not None
        now = utcnow()
        row.published_by = actor
        row.published_at = now
        row.updated_at = now
        session.flush()
        content = content_of(row)
        live: dict[int | None, list[int]] = defaultdict(list)  # the version they follow -> enrollment ids
        if current_patients:
            for enrollment_id, following in session.execute(
                select(Enrollment.id, Enrollment.sequence_version)
                .join(Patient, Patient.id == Enrollment.patient_id)
                .where(
                    Patient.clinic_id == clinic_id,
                    Enrollment.sequence_key == key,
                    Enrollment.status.in_(PLANNING_ACTIVE),
                )
            ):
                live[following].append(enrollment_id)
        to_replan: list[int] = []
        same_plan: list[int] = []
        for following, ids in live.items():
            # Steps unchanged (only the words): every message stays where it is; the enrollments just switch.
            (same_plan if _same_steps(session, clinic_id, key, following, content) else to_replan).extend(ids)
        switch_version(session, same_plan, version)
        replanned = replan_enrollments(session, to_replan, content)
        replanned.enrollments += len(same_plan)
        summary = PublishSummary(version, replanned.changed, replanned.cancelled, replanned.added)
        detail: dict[str, Any] = {
            **summary.as_dict(),
            "current_patients": current_patients,
            "enrollments": replanned.enrollments,
        }
        if republished_from is not None:
            detail["republished_from"] = republished_from
        row.summary = detail
        audit(
            session,
            clinic_id=clinic_id,
            actor=actor,
            action=AuditAction.SEQUENCE_PUBLISH,
            subject_type="sequence_version",
            subject_id=row.id,
            sequence=key,
            **detail,
        )
        session.flush()
    except BaseException:
        savepoint.rollback()
        if version is not None:
            forget(clinic_id, key, version)
        raise
    if dry_run:
        savepoint.rollback()
        forget(clinic_id, key, version)
    else:
        savepoint.commit()
        # Should the caller's transaction roll back after all, the number is free again: forget what this
        # process cached under it (a version is cached as never changing).
        event.listen(session, "after_rollback", lambda _session: forget(clinic_id, key, version), once=True)
    return summary

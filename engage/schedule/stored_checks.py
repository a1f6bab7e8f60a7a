"""``templates check`` over the texts clinics stored in the database (the sequence editor, issue 23).

Every version a clinic's new enrollments follow (its newest of each sequence), and every older version a
live enrollment still follows, is checked as the files are: its definition as the loader reads it, and
its texts under the same rules (:func:`engage.content.checks.check_texts`, partials from the files).
Drafts are not: they keep bad input on purpose, and cannot be published until it is fixed.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from engage.content.checks import Report, check_stored_texts
from engage.content.rendering import Texts
from engage.records.models import Enrollment, Patient, SequenceVersion
from engage.schedule.draft_checks import parse_definition
from engage.schedule.reconcile import PLANNING_ACTIVE


def versions_in_use(session: Session) -> list[SequenceVersion]:
    """Each clinic's newest version of each sequence, and the versions live enrollments follow."""
    newest = select(
        SequenceVersion.clinic_id, SequenceVersion.sequence_key, func.max(SequenceVersion.version)
    ).group_by(SequenceVersion.clinic_id, SequenceVersion.sequence_key)
    followed = (
        select(Patient.clinic_id, Enrollment.sequence_key, Enrollment.sequence_version)
        .join(Patient, Patient.id == Enrollment.patient_id)
        .where(Enrollment.sequence_version.is_not(None), Enrollment.status.in_(PLANNING_ACTIVE))
        .distinct()
    )
    wanted = {tuple(row) for row in session.execute(newest)} | {tuple(row) for row in session.execute(followed)}
    if not wanted:
        return []
    return list(
        session.scalars(
            select(SequenceVersion)
            .where(
                tuple_(SequenceVersion.clinic_id, SequenceVersion.sequence_key, SequenceVersion.version).in_(
                    sorted(wanted)
                )
            )
            .order_by(SequenceVersion.clinic_id, SequenceVersion.sequence_key, SequenceVersion.version)
        )
    )


def check_stored(
    session: Session, report: Report, templates_dir: Path | None = None, condition_words: list[str] | None = None
) -> None:
    """Add the problems of every stored version in use to ``report``, each file named
    ``clinic <id> <key> v<n>: <path>``."""
    for row in versions_in_use(session):
        where = f"clinic {row.clinic_id} {row.sequence_key} v{row.version}"
        report.checked += 1
        _sequence, problems = parse_definition(row.sequence_key, row.definition)
        for problem in problems:
            report.add(f"{where}: {problem.field}", "sequence", problem.message)
        found = check_stored_texts(Texts(row.texts), templates_dir, condition_words)
        report.checked += found.checked
        for broken in found.problems:
            report.add(f"{where}: {broken.file}", broken.rule, broken.detail)

"""Which sequences a clinic has: the shipped ones and its own, with the version each follows now.

For lists (the staff pages' choices, the API, sync checking an appointment's ``sequence``): a key is
known to a clinic when the library ships it or the clinic published a version of it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engage.errors import NotFound
from engage.records.audit import AuditAction, audit
from engage.records.lookup import get
from engage.records.models import Clinic, SequenceVersion
from engage.schedule.sequences import load_sequences
from engage.schedule.versions import content_at


def sequence_list(session: Session, clinic_id: int) -> list[dict[str, Any]]:
    """``[{key, name, version, has_draft}]`` by key: the shipped sequences and the clinic's own."""
    library = load_sequences()
    newest = dict(
        session.execute(
            select(SequenceVersion.sequence_key, func.max(SequenceVersion.version))
            .where(SequenceVersion.clinic_id == clinic_id)
            .group_by(SequenceVersion.sequence_key)
        ).all()
    )
    drafts = set(
        session.scalars(
            select(SequenceVersion.sequence_key).where(
                SequenceVersion.clinic_id == clinic_id, SequenceVersion.version.is_(None)
            )
        )
    )
    out = []
    for key in sorted(set(library) | {k for k, v in newest.items() if v is not None}):
        version = newest.get(key)
        sequence = content_at(session, clinic_id, key, version).sequence if version is not None else library[key]
        out.append({"key": key, "name": sequence.name, "version": version, "has_draft": key in drafts})
    return out


def sequence_names(session: Session, clinic_id: int) -> dict[str, str]:
    """Key -> name of every sequence the clinic can enrol into."""
    return {row["key"]: row["name"] for row in sequence_list(session, clinic_id)}


def set_default_sequence(session: Session, clinic_id: int, key: str | None, *, actor: str) -> None:
    """The sequence new appointments arriving by sync without a ``sequence`` are planned in, when their
    patient has no active plan (None: refuse them, as before). ``NotFound`` for a key the clinic does not have."""
    clinic: Clinic = get(session, Clinic, clinic_id)
    if key is not None and key.strip():
        require_known(session, clinic_id, key.strip())
    clinic.default_sequence = key.strip() if key is not None and key.strip() else None
    session.flush()
    audit(
        session,
        clinic_id=clinic_id,
        actor=actor,
        action=AuditAction.CLINIC_SETTINGS,
        subject_type="clinic",
        subject_id=clinic_id,
        fields=["default_sequence"],
    )


def require_known(session: Session, clinic_id: int, key: str) -> str:
    """``key`` when the clinic can enrol into it (shipped, or published by the clinic); ``NotFound`` listing
    the known keys otherwise. Returns the sequence's name."""
    names = sequence_names(session, clinic_id)
    if key not in names:
        raise NotFound(f"no sequence {key!r} (known: {', '.join(sorted(names)) or 'none'})")
    return names[key]

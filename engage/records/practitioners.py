"""Practitioners: who treats a plan's patient and sees each visit, so Today, messages and outcomes can be read
per person.

A practitioner is either a staff account of role practitioner (``staff_user_id``) or a name and an external id
from the practice-management system, which a CSV or FHIR sync matches by that id (and adds, named, when new).
Plans carry one as the default for their appointments; an appointment may name another.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.errors import InvalidInput, NotFound
from engage.records import external_ids
from engage.records.audit import AuditAction, audit
from engage.records.models import Practitioner, Role, StaffUser

MAX_NAME = 200


def add_practitioner(
    session: Session,
    clinic_id: int,
    *,
    name: str | None = None,
    external_id: str | None = None,
    staff_email: str | None = None,
    actor: str,
) -> Practitioner:
    """Add a practitioner to the clinic; returns it.

    With ``staff_email``: that staff account of the clinic (role practitioner), named as the account unless
    ``name`` is given. Raises ``InvalidInput`` for no name, a name too long, an external id another
    practitioner of the clinic has, or a staff account that is not a practitioner of the clinic (or has one).
    """
    staff: StaffUser | None = None
    if staff_email is not None:
        staff = session.scalar(
            select(StaffUser).where(StaffUser.clinic_id == clinic_id, StaffUser.email == staff_email.strip().lower())
        )
        if staff is None or staff.role is not Role.PRACTITIONER:
            raise InvalidInput(f"{staff_email} is not a practitioner's account in this clinic", field="staff")
        if session.scalar(select(Practitioner.id).where(Practitioner.staff_user_id == staff.id)) is not None:
            raise InvalidInput(f"{staff_email} is a practitioner already", field="staff")
    text = (name or (staff.name or staff.email if staff else "")).strip()
    if not text:
        raise InvalidInput("a practitioner needs a name", field="name")
    if len(text) > MAX_NAME:
        raise InvalidInput(f"a name has at most {MAX_NAME} characters", field="name")
    ext = external_ids.normalise(external_id)
    if ext is not None and find_by_external_id(session, clinic_id, ext) is not None:
        raise InvalidInput(f"another practitioner of this clinic has external id {ext!r}", field="external_id")
    practitioner = Practitioner(
        clinic_id=clinic_id, name=text, external_id=ext, staff_user_id=staff.id if staff else None, active=True
    )
    session.add(practitioner)
    session.flush()
    audit(
        session,
        clinic_id=clinic_id,
        actor=actor,
        action=AuditAction.PRACTITIONER_ADD,
        subject_type="practitioner",
        subject_id=practitioner.id,
    )
    return practitioner


def find_by_external_id(session: Session, clinic_id: int, external_id: str) -> Practitioner | None:
    """The clinic's practitioner with that external id, or None."""
    return session.scalar(
        select(Practitioner).where(Practitioner.clinic_id == clinic_id, Practitioner.external_id == external_id)
    )


def get_practitioner_in_clinic(session: Session, clinic_id: int, practitioner_id: int) -> Practitioner:
    """The practitioner when it belongs to the clinic; else ``NotFound`` (field ``practitioner``), as if absent."""
    practitioner = session.get(Practitioner, practitioner_id)
    if practitioner is None or practitioner.clinic_id != clinic_id:
        raise NotFound(f"no practitioner with id {practitioner_id} in this clinic")
    return practitioner


def checked_practitioner_id(session: Session, clinic_id: int, practitioner_id: int | None) -> int | None:
    """``practitioner_id`` when None or one of the clinic's; else ``InvalidInput`` naming the field."""
    if practitioner_id is None:
        return None
    practitioner = session.get(Practitioner, practitioner_id)
    if practitioner is None or practitioner.clinic_id != clinic_id:
        raise InvalidInput(f"no practitioner with id {practitioner_id} in this clinic", field="practitioner")
    return practitioner.id


def list_practitioners(session: Session, clinic_id: int) -> list[Practitioner]:
    """The clinic's practitioners by name."""
    return list(
        session.scalars(
            select(Practitioner).where(Practitioner.clinic_id == clinic_id).order_by(Practitioner.name, Practitioner.id)
        )
    )


def match_external(session: Session, clinic_id: int, wanted: dict[str, str | None]) -> dict[str, int]:
    """External id -> practitioner id for a sync, adding the ones the clinic lacks (named by ``wanted``).

    ``wanted`` maps each external id to the name the sync gives it (None: none given). Raises
    ``InvalidInput`` (field ``practitioner_external_id``) for a new id without a name. A known practitioner's
    name is not changed by a sync.
    """
    ids = {ext.strip() for ext in wanted if ext and ext.strip()}
    found = {
        p.external_id or "": p.id
        for p in session.scalars(
            select(Practitioner).where(Practitioner.clinic_id == clinic_id, Practitioner.external_id.in_(ids))
        )
    }
    for ext in sorted(ids - set(found)):
        name = (wanted.get(ext) or "").strip()
        if not name:
            raise InvalidInput(
                f"no practitioner with external id {ext!r}: give practitioner_name to add one",
                field="practitioner_external_id",
            )
        practitioner = Practitioner(clinic_id=clinic_id, name=name[:MAX_NAME], external_id=ext, active=True)
        session.add(practitioner)
        session.flush()
        found[ext] = practitioner.id
    return found


def practitioner_json(practitioner: Practitioner) -> dict[str, Any]:
    return {
        "id": practitioner.id,
        "name": practitioner.name,
        "external_id": practitioner.external_id,
        "staff_user_id": practitioner.staff_user_id,
        "active": practitioner.active,
    }

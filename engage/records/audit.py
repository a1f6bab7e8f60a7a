"""Who did what to whose record. Detail holds ids and field names, never patient data."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.records.models import AuditEvent


def audit(
    session: Session, *, clinic_id: int | None, actor: str, action: str, subject_type: str, subject_id: int | None,
    **detail: Any,
) -> None:
    session.add(
        AuditEvent(
            clinic_id=clinic_id, actor=actor, action=action, subject_type=subject_type, subject_id=subject_id,
            detail=detail, at=utcnow(),
        )
    )

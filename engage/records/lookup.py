"""Load one record by id, or say plainly which one is missing."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from engage.errors import NotFound


def get(session: Session, model: type[Any], record_id: int) -> Any:
    """The record, or ``NotFound`` naming its kind and id."""
    record = session.get(model, record_id)
    if record is None:
        raise NotFound(f"no {model.__tablename__.replace('_', ' ')} with id {record_id}")
    return record

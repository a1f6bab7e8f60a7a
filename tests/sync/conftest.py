"""The sync tests' clinic (its patients and appointments come from the file under test)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from engage.records import clinics


@pytest.fixture
def clinic_id(session: Session) -> int:
    clinic = clinics.create_clinic(
        session,
        name="Back in Motion",
        timezone="America/New_York",
        address="12 Elm St",
        email="front@clinic.example",
        sms_from="+14155550100",
        actor="test",
    )
    session.commit()
    return clinic.id

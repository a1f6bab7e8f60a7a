"""Refusals that protect patients: a forgeable secret key, and database errors that would log their data."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engage.config import DEV_SECRET_KEY, InsecureSecretKey, Settings, require_secret_key
from engage.records import clinics, patients
from engage.records.models import Patient
from tests.cli import engage


def test_the_development_key_is_refused_with_a_real_database() -> None:
    with pytest.raises(InsecureSecretKey, match="ENGAGE_SECRET_KEY is the development default"):
        require_secret_key(Settings(secret_key=DEV_SECRET_KEY, database_url="postgresql://db/engage"))
    with pytest.raises(InsecureSecretKey, match="too short"):
        require_secret_key(Settings(secret_key="short", database_url="sqlite:///x.db"))
    require_secret_key(Settings(secret_key=DEV_SECRET_KEY, database_url="sqlite:///./engage.db"))  # embedded default
    require_secret_key(Settings(secret_key="x" * 32, database_url="postgresql://db/engage"))


def test_serve_refuses_to_start_with_the_development_key(pg_url: str) -> None:
    result = engage("serve", "--port", "1", env={"ENGAGE_SECRET_KEY": DEV_SECRET_KEY, "ENGAGE_DATABASE_URL": pg_url})
    assert result.code == 2
    assert "ENGAGE_SECRET_KEY is the development default" in result.stderr


def test_database_errors_do_not_quote_patient_data(session: Session) -> None:
    clinic = clinics.create_clinic(session, name="C", timezone="UTC", address="1 St", email="c@example.com")
    patients.add_patient(session, clinic_id=clinic.id, first_name="Ana", last_name="Ruiz", email="ana@example.com",
                        phone="+14155550123")
    session.commit()
    session.add(Patient(clinic_id=clinic.id, first_name="Zed", last_name="Zulu", email="ana@example.com",
                        phone="+14155550199"))
    with pytest.raises(IntegrityError) as caught:
        session.flush()
    session.rollback()
    text = str(caught.value)
    # PostgreSQL's own DETAIL line names the conflicting key; every other value stays out.
    assert "+14155550199" not in text and "Zulu" not in text and "Zed" not in text
    assert "hidden due to hide_parameters" in text

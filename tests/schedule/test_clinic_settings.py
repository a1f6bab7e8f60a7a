"""A clinic's SMS name and messaging settings, checked when saved."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from engage.errors import InvalidInput
from engage.records.clinics import caps_name, create_clinic, sms_caps
from engage.schedule.clinic_settings import change_clinic_settings


def _clinic(session: Session) -> int:
    clinic = create_clinic(
        session,
        name="Lycoming Orthopedic & Sports Acupuncture",
        timezone="America/New_York",
        address="1 Main St\nWilliamsport, PA 17701",
        email="care@lycoming.example",
        actor="test",
    )
    session.commit()
    return clinic.id


@pytest.mark.parametrize("name", ["Stop Sciatica", "iNeedle Care", "Acupuntura Sur", "S\u0441i\u0430tica"])
def test_an_sms_name_naming_a_condition_or_treatment_is_refused(session: Session, name: str) -> None:
    clinic_id = _clinic(session)
    with pytest.raises(InvalidInput, match="condition or treatment"):
        change_clinic_settings(session, clinic_id, sms_name=name, actor="test")


def test_an_sms_name_longer_than_twenty_characters_is_refused(session: Session) -> None:
    clinic_id = _clinic(session)
    with pytest.raises(InvalidInput, match="at most 20"):
        change_clinic_settings(session, clinic_id, sms_name="Lycoming Orthopedic Group", actor="test")


def test_settings_are_saved_and_caps_default_to_the_fcc_healthcare_exemption(session: Session) -> None:
    clinic_id = _clinic(session)
    clinic, _ = change_clinic_settings(session, clinic_id, sms_name="  Lycoming   Ortho ", actor="test")
    assert clinic.sms_name == "Lycoming Ortho"
    assert sms_caps(clinic) == (1, 3) and caps_name(clinic) == "FCC healthcare exemption (1 a day, 3 a week)"
    clinic, _ = change_clinic_settings(
        session, clinic_id, sms_per_day=2, sms_per_week=5, steps_off=["rebook"], prefers_email=True, actor="test"
    )
    session.commit()
    assert sms_caps(clinic) == (2, 5) and clinic.steps_off == ["rebook"] and clinic.prefers_email
    assert caps_name(clinic) == "set by the clinic"
    clinic, _ = change_clinic_settings(session, clinic_id, steps_on=["rebook"], sms_per_day=None, actor="test")
    assert clinic.steps_off == [] and sms_caps(clinic) == (1, 5)
    with pytest.raises(InvalidInput, match="0 or more"):
        change_clinic_settings(session, clinic_id, sms_per_week=-1, actor="test")

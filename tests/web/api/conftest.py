"""The API tests' world: a real ``engage serve`` subprocess on PostgreSQL, reached over real HTTP.

Records are seeded with the library's own functions and committed; the server (its own
process, its own sessions) sees them as it would in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest

from engage.clock import utcnow
from engage.db import session_scope
from engage.records import api_tokens, clinics, patients, plans, staff
from engage.records.models import Role
from tests.conftest import PG_URL


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    """``engage serve`` on a free port against the test PostgreSQL database (``tests.browser.serve``); its base
    URL."""
    from tests.browser import serve  # there, not at the top: Playwright is imported only where a test needs it

    env = {
        "ENGAGE_SECRET_KEY": "test-secret-key-0123456789",
        "ENGAGE_PUBLIC_URL": "http://engage.test",
        "ENGAGE_WEBHOOK_ALLOW_LOCAL": "1",  # the webhook tests' receiver listens on this machine
    }
    with serve(PG_URL, env=env) as base:
        yield base


@dataclass
class Clinic:
    id: int
    token: str
    token_id: int
    staff_email: str
    patient_id: int
    plan_id: int
    appointment_ids: list[int]


@dataclass
class World:
    base: str
    a: Clinic
    b: Clinic

    def client(self, clinic: Clinic | None = None, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or (clinic or self.a).token}"}
        return httpx.Client(base_url=self.base + "/api/v1", headers=headers, timeout=30)


def make_clinic(name: str, email: str, role: Role = Role.ADMIN) -> Clinic:
    """A clinic with a staff user, an API token, and a patient with a 3-session plan starting in 5 days."""
    with session_scope() as session:
        clinic = clinics.create_clinic(
            session,
            name=name,
            timezone="America/New_York",
            address="12 Elm St, Springfield",
            email=f"front@{name.lower().replace(' ', '')}.example",
            sms_from="+14155550100",
            actor="test",
        )
        staff.create_staff(
            session,
            clinic_id=clinic.id,
            email=email,
            name="Desk",
            role_name=role,
            password="correct horse battery",
            actor="test",
        )
        row, token = api_tokens.create_token(session, staff_email=email, label="tests", actor="test")
        patient = patients.add_patient(
            session,
            clinic_id=clinic.id,
            first_name="Ana",
            last_name="Ruiz",
            phone="+14155550123",
            email=f"ana@{name.lower().replace(' ', '')}.example",
            actor="test",
        ).patient
        first = (utcnow() + timedelta(days=5)).replace(microsecond=0)
        plan = plans.create_plan(
            session,
            patient_id=patient.id,
            condition="sciatica",
            modality="dry needling",
            first=first,
            sessions=3,
            every=timedelta(days=7),
            actor="test",
        )
        return Clinic(clinic.id, token, row.id, email, patient.id, plan.id, [a.id for a in plan.appointments])


@pytest.fixture
def world(server: str, pg_url: str) -> World:
    """Two clinics on an empty PostgreSQL database, the server already listening."""
    return World(server, make_clinic("Back in Motion", "desk@a.example"), make_clinic("Other Place", "desk@b.example"))

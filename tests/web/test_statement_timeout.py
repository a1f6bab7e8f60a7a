"""Web requests' database work has a deadline on PostgreSQL: a statement past it is cancelled and answered 503."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from engage import db
from engage.config import get_settings
from engage.db import make_engine, session_scope
from engage.records import api_tokens
from engage.web.app import create_app
from tests import seed
from tests.web.staff.support import HTML, signed_in

ADMIN = "admin@clinic.example"


def test_a_statement_past_the_timeout_is_cancelled_and_the_next_transaction_has_none(pg_url: str) -> None:
    with db.statement_timeout(0.2), pytest.raises(OperationalError) as caught, session_scope() as session:
        session.execute(text("SELECT pg_sleep(3)"))
    assert getattr(caught.value.orig, "sqlstate", None) == "57014"

    with session_scope() as session:  # the same pooled connection, outside the block: no limit left behind
        assert session.scalar(text("SHOW statement_timeout")) == "0"


@pytest.fixture
def token(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A clinic with an admin and their API token; the web statement timeout at 0.5 s."""
    monkeypatch.setenv("ENGAGE_WEB_STATEMENT_TIMEOUT_SECONDS", "0.5")
    get_settings.cache_clear()
    with session_scope() as session:
        clinic = seed.clinic(session)
        seed.staff(session, clinic.id, ADMIN, "admin")
        _, token = api_tokens.create_token(session, staff_email=ADMIN, label="tests", actor="test")
    return token


@contextmanager
def patients_locked() -> Iterator[None]:
    """The patient table locked by another connection (as a long query would hold it) inside the block."""
    other = make_engine(get_settings().database_url)
    release, locked = threading.Event(), threading.Event()

    def hold() -> None:
        with other.begin() as conn:
            conn.execute(text("LOCK TABLE patient IN ACCESS EXCLUSIVE MODE"))
            locked.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(10)
    try:
        yield
    finally:
        release.set()
        holder.join()
        other.dispose()


def test_an_api_search_that_waits_past_the_timeout_answers_503(token: str) -> None:
    client = TestClient(create_app(), headers={"Authorization": f"Bearer {token}"})

    with patients_locked():
        started = time.monotonic()
        answer = client.get("/api/v1/patients", params={"q": "ana"})

    assert time.monotonic() - started < 5
    assert answer.status_code == 503 and "narrow it" in answer.json()["detail"]


def test_a_staff_search_that_waits_past_the_timeout_answers_503(token: str) -> None:
    client, _ = signed_in(ADMIN)

    with patients_locked():
        started = time.monotonic()
        answer = client.get("/patients?q=ana", headers=HTML)

    assert time.monotonic() - started < 5
    assert answer.status_code == 503

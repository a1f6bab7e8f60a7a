"""The sign-in throttle holds under real concurrency: parallel guesses are counted before any is checked."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy.orm import Session

from engage.db import session_factory
from engage.records import staff as accounts
from tests import seed


def _attempt(barrier: threading.Barrier, password: str, ip: str) -> str:
    session = session_factory()()
    try:
        barrier.wait()
        try:
            accounts.authenticate(session, "desk@clinic.example", password, ip=ip)
            session.commit()
            return "signed-in"
        except accounts.LoginThrottled:
            return "throttled"
        except accounts.LoginRefused:
            session.commit()
            return "checked"
    finally:
        session.close()


def test_forty_parallel_wrong_passwords_from_forty_addresses_get_five_checks(pg_url: str) -> None:
    setup: Session = session_factory()()
    seed.staff(setup, seed.clinic(setup).id, "desk@clinic.example")
    setup.commit()
    setup.close()
    barrier = threading.Barrier(40)
    with ThreadPoolExecutor(40) as pool:
        outcomes = list(pool.map(lambda n: _attempt(barrier, f"wrong guess {n}", f"10.1.0.{n}"), range(40)))
    assert outcomes.count("checked") == 5
    assert outcomes.count("throttled") == 35
    session = session_factory()()
    with pytest.raises(accounts.LoginThrottled):  # the right password after the burst waits too
        accounts.authenticate(session, "desk@clinic.example", seed.PASSWORD, ip="10.2.0.1")
    session.close()


def test_a_success_gives_its_attempt_back_so_signing_in_often_never_locks(session: Session) -> None:
    seed.staff(session, seed.clinic(session).id, "desk@clinic.example")
    session.commit()
    for _ in range(8):
        assert accounts.authenticate(session, "desk@clinic.example", seed.PASSWORD, ip="10.0.0.1")
        session.commit()

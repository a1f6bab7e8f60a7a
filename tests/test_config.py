"""Refusals that protect patients: a forgeable secret key, and database errors that would log their data."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engage.config import InsecureSecretKey, Settings, StartupRefused, require_secret_key, secret_key
from engage.delivery.startup import check_startup
from engage.records import clinics, patients
from engage.records.models import Patient
from tests.cli import ROOT, engage, engage_process

NO_KEY = "ENGAGE_SECRET_KEY is not set"


def test_no_key_is_refused_on_postgresql_and_a_short_one_anywhere() -> None:
    with pytest.raises(InsecureSecretKey, match=NO_KEY):
        require_secret_key(Settings(secret_key=None, database_url="postgresql://db/engage"))
    with pytest.raises(InsecureSecretKey, match="too short"):
        require_secret_key(Settings(secret_key="short", database_url="sqlite:///x.db"))
    require_secret_key(Settings(secret_key="x" * 32, database_url="postgresql://db/engage"))


def _python(code: str, env: dict[str, str], cwd: Path) -> str:
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    full_env.pop("ENGAGE_SECRET_KEY", None)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_sqlite_key_is_made_beside_the_database_by_db_upgrade_and_shared_by_every_process(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ENGAGE_SECRET_KEY")
    database = tmp_path / "data" / "engage.db"
    database.parent.mkdir()
    env = {"ENGAGE_DATABASE_URL": f"sqlite:///{database}"}
    key_file = tmp_path / "data" / "engage.db.secret-key"

    assert engage("db", "upgrade", env=env, cwd=tmp_path).code == 0

    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert len(key) >= 32
    # One process signs (as tick and the workers do), another reads (as serve does), after a "restart".
    url = _python("from engage.content.links import unsubscribe_url; print(unsubscribe_url(7, 'email'))", env, tmp_path)
    token = url.rsplit("/", 1)[1]
    read = _python(f"from engage.content.links import read_unsubscribe_token as r; print(r({token!r}))", env, tmp_path)
    assert read == "(7, 'email')"
    assert key_file.read_text().strip() == key  # kept, not made anew


def test_first_use_makes_the_sqlite_key_once_even_when_processes_race(tmp_path: Path) -> None:
    settings = Settings(secret_key=None, database_url=f"sqlite:///{tmp_path / 'engage.db'}")
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: secret_key(settings), range(16)))
    assert len(keys) == 1
    assert (tmp_path / "engage.db.secret-key").read_text().strip() == keys.pop()
    assert [p.name for p in tmp_path.iterdir()] == ["engage.db.secret-key"]  # no temporary files left


@pytest.mark.parametrize("command", [["tick"], ["demo", "--days", "1"], ["serve", "--port", "1"]])
def test_every_command_refuses_to_start_on_postgresql_without_a_secret_key(
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
) -> None:
    monkeypatch.delenv("ENGAGE_SECRET_KEY")

    # serve as a real process: were it to start, it would serve (until the timeout) rather than return
    run = engage_process if command[0] == "serve" else engage
    result = run(*command, env={"ENGAGE_DATABASE_URL": pg_url})

    assert result.code == 2
    assert result.stderr.startswith("error: " + NO_KEY) and result.stderr.count("\n") == 1


@pytest.mark.parametrize("program", ["worker", "beat"])
def test_celery_worker_and_beat_refuse_to_start_on_postgresql_without_a_secret_key(
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    program: str,
) -> None:
    monkeypatch.delenv("ENGAGE_SECRET_KEY")
    env = {**os.environ, "ENGAGE_DATABASE_URL": pg_url, "ENGAGE_BROKER_URL": "memory://", "PYTHONPATH": str(ROOT)}
    extra = ["--pool", "solo"] if program == "worker" else ["--schedule", str(tmp_path / "beat-schedule")]

    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "workers.app", program, *extra],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )

    assert done.returncode != 0
    assert f"engage {program}: configuration error: {NO_KEY}" in done.stderr


def test_a_real_provider_with_the_default_public_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENGAGE_PUBLIC_URL")  # the shipped default, http://127.0.0.1:8000
    twilio = {"twilio_account_sid": "AC" + "0" * 32, "twilio_auth_token": "t" * 32, "secret_key": "k" * 32}
    with pytest.raises(StartupRefused, match="ENGAGE_PUBLIC_URL is http://127.0.0.1:8000, which patients and twilio"):
        check_startup(Settings(**twilio))
    with pytest.raises(StartupRefused, match="sendgrid cannot reach"):
        check_startup(Settings(sendgrid_api_key="SG.x", secret_key="k" * 32, public_url="http://localhost:8000"))
    check_startup(Settings(**twilio, public_url="https://engage.clinic.example"))
    check_startup(Settings(secret_key="k" * 32))  # the default providers write files: any URL will do


def test_serve_and_tick_refuse_a_real_provider_with_the_default_public_url(sqlite_url: str) -> None:
    env = {"ENGAGE_PUBLIC_URL": "http://127.0.0.1:8000", "SENDGRID_API_KEY": "SG.test"}
    for command in (["serve", "--port", "1"], ["tick"]):
        run = engage_process if command[0] == "serve" else engage
        result = run(*command, env=env)
        assert result.code == 2
        assert "ENGAGE_PUBLIC_URL is http://127.0.0.1:8000, which patients and sendgrid cannot reach" in result.stderr


def test_database_errors_quote_no_patient_data_not_even_postgresqls_detail_line(session: Session) -> None:
    clinic = clinics.create_clinic(
        session, name="C", timezone="Europe/London", address="1 St", email="c@example.com", actor="test"
    )
    patients.add_patient(
        session,
        clinic_id=clinic.id,
        first_name="Ana",
        last_name="Ruiz",
        email="ana@example.com",
        phone="+14155550123",
        actor="test",
    )
    session.commit()
    session.add(
        Patient(clinic_id=clinic.id, first_name="Zed", last_name="Zulu", email="ana@example.com", phone="+14155550199")
    )
    with pytest.raises(IntegrityError) as caught:
        session.flush()
    session.rollback()
    # Nor does PostgreSQL's own DETAIL line, which would name the conflicting email, in our error or its cause.
    for text in (str(caught.value), str(caught.value.orig), repr(caught.value.orig)):
        for value in ("+14155550199", "Zulu", "Zed", "ana@example.com", "DETAIL"):
            assert value not in text
    assert "hidden due to hide_parameters" in str(caught.value)
    assert "clinic_id" in str(caught.value)  # what went wrong is still said (constraint or columns)

"""``engage tick``: one dispatch-and-send pass from the command line, on the default outbox provider."""

from __future__ import annotations

import email
import email.policy
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session

from engage.cli.delivery import tick
from engage.config import get_settings
from engage.content.links import unsubscribe_url
from engage.db import session_scope
from engage.delivery.providers import reset_providers
from engage.records.models import Message, MessageStatus
from tests.cli import engage
from tests.delivery.test_dispatch import (  # templates: the same autouse fixture (small templates, fresh providers)
    EMAIL,
    EMAIL_DUE,
    FIRST_NAME,
    PHONE,
    SEND_AT,
    make_world,
    templates,  # noqa: F401
)

ROOT = Path(__file__).resolve().parents[2]


def run_tick(*args: str) -> subprocess.CompletedProcess[str]:
    """``engage tick`` in its own process, with this test's environment (database, outbox, templates).

    The entry point's smoke test: the first tick below runs as a process, the rest of the file in-process.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "engage", "tick", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )


def test_tick_sends_everything_due_into_the_outbox_and_a_second_tick_sends_nothing(session: Session) -> None:
    world = make_world(session)
    outbox = get_settings().outbox_dir

    done = run_tick("--now", SEND_AT.isoformat().replace("+00:00", "Z"), "--json")
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)
    assert counts["claimed"] == 2 and counts["sent"] == 2
    assert counts["failed"] == counts["skipped"] == counts["cancelled"] == 0

    sms = json.loads((outbox / f"sms-{world.sms_id}.json").read_text(encoding="utf-8"))
    assert sms["to"] == PHONE and sms["message_id"] == world.sms_id
    assert sms["body"].startswith(f"Hi {FIRST_NAME}, see you Wednesday, June 12")
    assert sms["status_callback"] == f"http://engage.test/webhooks/twilio/status?m={world.sms_id}"
    assert sms["segments"] == 2

    mail = email.message_from_bytes((outbox / f"email-{world.email_id}.eml").read_bytes(), policy=email.policy.default)
    assert mail["To"] == EMAIL
    assert mail["List-Unsubscribe"] == f"<{unsubscribe_url(world.patient_id, 'email')}>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert [part.get_content_type() for part in mail.iter_parts()] == ["text/plain", "text/html"]

    with session_scope() as s:
        for message_id in (world.sms_id, world.email_id):
            stored = s.get_one(Message, message_id)
            assert stored.status is MessageStatus.SENT and stored.provider == "outbox"
            assert stored.provider_message_id == f"outbox-{message_id}" and stored.sent_at == SEND_AT

    again = engage("tick", "--now", (SEND_AT + timedelta(minutes=1)).isoformat(), "--json")
    assert again.code == 0, again.stderr
    assert json.loads(again.stdout)["claimed"] == 0
    assert sorted(p.name for p in outbox.iterdir()) == sorted(
        [f"sms-{world.sms_id}.json", f"email-{world.email_id}.eml"]
    )


def test_tick_before_anything_is_due_sends_nothing(session: Session) -> None:
    make_world(session)
    result = CliRunner().invoke(tick, ["--now", (EMAIL_DUE - timedelta(minutes=1)).isoformat(), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["claimed"] == 0
    assert not get_settings().outbox_dir.exists() or not any(get_settings().outbox_dir.iterdir())


def test_tick_prints_a_summary_for_people(session: Session) -> None:
    make_world(session)
    result = CliRunner().invoke(tick, ["--now", (EMAIL_DUE + timedelta(minutes=1)).isoformat()])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "claimed 1, sent 1"


def test_a_naive_now_is_read_as_utc(session: Session) -> None:
    world = make_world(session)
    result = CliRunner().invoke(tick, ["--now", SEND_AT.replace(tzinfo=None).isoformat(), "--json"])
    assert json.loads(result.output)["sent"] == 2
    with session_scope() as s:
        assert s.get_one(Message, world.sms_id).sent_at == SEND_AT


def test_a_bad_now_is_refused(session: Session) -> None:
    result = CliRunner().invoke(tick, ["--now", "next tuesday"])
    assert result.exit_code == 2
    assert "not an ISO 8601 date and time" in result.output


def test_a_configuration_error_stops_the_tick_with_a_clear_message(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(session)
    monkeypatch.setenv("ENGAGE_EMAIL_PROVIDER", "carrier-pigeon")
    get_settings.cache_clear()
    reset_providers()
    result = CliRunner().invoke(tick, ["--now", SEND_AT.isoformat(), "--json"])
    assert result.exit_code == 2
    assert "configuration: unknown email provider 'carrier-pigeon'" in result.output
    with session_scope() as s:
        assert s.get_one(Message, world.email_id).status is MessageStatus.QUEUED  # kept, not failed
        assert s.get_one(Message, world.email_id).attempts == 0


def test_a_future_now_is_refused_with_a_real_provider_and_nothing_is_claimed(
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = make_world(session)
    for name, value in (
        ("ENGAGE_SMS_PROVIDER", "twilio"),
        ("TWILIO_ACCOUNT_SID", "AC" + "0" * 32),
        ("TWILIO_AUTH_TOKEN", "t" * 32),
        ("TWILIO_FROM_NUMBER", "+14155550100"),
    ):
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    reset_providers()
    future = datetime.now(timezone.utc) + timedelta(days=2)

    result = CliRunner().invoke(tick, ["--now", future.isoformat()])

    assert result.exit_code == 2
    assert "is in the future and twilio sends real messages" in result.output
    with session_scope() as s:
        for message_id in (world.sms_id, world.email_id):
            assert s.get_one(Message, message_id).status is MessageStatus.SCHEDULED


def test_a_future_now_is_fine_on_the_outbox(session: Session) -> None:
    make_world(session)
    future = datetime.now(timezone.utc) + timedelta(days=2)

    result = CliRunner().invoke(tick, ["--now", future.isoformat(), "--json"])

    assert result.exit_code == 0, result.output  # the README's simulated tick keeps working
    assert "claimed" in json.loads(result.output)

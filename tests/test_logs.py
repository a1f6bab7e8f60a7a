"""Logs: one JSON object a line under ENGAGE_LOG_FORMAT=json, with message ids, never PHI; the Twilio SDK kept quiet."""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engage import logs
from engage.delivery.providers import OutgoingSms, reset_providers, sms_provider
from tests.cli import ROOT, engage
from tests.fakes.provider_server import FakeProviders

PHONE = "+14155550123"


def record(msg: str, *args: object, exc: BaseException | None = None, **extra: object) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    rec = logging.LogRecord("engage.delivery.send", logging.ERROR, __file__, 1, msg, args, exc_info)
    rec.__dict__.update(extra)
    return rec


def test_json_line_carries_level_logger_text_and_the_message_id() -> None:
    line = logs.JsonFormatter().format(record("message %d sent via %s as %s", 42, "twilio", "SM123", message_id=42))
    assert "\n" not in line
    data = json.loads(line)
    assert data["message"] == "message 42 sent via twilio as SM123"
    assert data["message_id"] == 42 and data["level"] == "ERROR" and data["logger"] == "engage.delivery.send"
    assert data["time"].endswith("+00:00")


def test_message_id_given_as_extra_is_kept() -> None:
    data = json.loads(logs.JsonFormatter().format(record("retrying", message_id=7)))
    assert data["message_id"] == 7


def test_the_text_is_not_parsed_for_a_message_id() -> None:
    data = json.loads(logs.JsonFormatter().format(record("message %d sent via %s", 42, "twilio")))
    assert "message_id" not in data and data["message"] == "message 42 sent via twilio"


def _log_calls(path: Path) -> Iterator[tuple[str, ast.Call]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"debug", "info", "warning", "error", "exception", "critical"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield f"{path.relative_to(ROOT)}:{node.lineno}", node


def test_every_line_about_one_message_passes_its_id_as_extra() -> None:
    """A line whose text names one outbox message ("message %d ...") carries it as ``extra`` for the JSON logs."""
    about_one = re.compile(r"^message %[ds]\b|\bfor message %[ds]\b")
    missing = []
    checked = 0
    for path in sorted([*(ROOT / "engage").rglob("*.py"), *(ROOT / "workers").rglob("*.py")]):
        for where, call in _log_calls(path):
            assert isinstance(call.args[0], ast.Constant)
            if not about_one.search(str(call.args[0].value)):
                continue
            checked += 1
            extra = next((k.value for k in call.keywords if k.arg == "extra"), None)
            if not (
                isinstance(extra, ast.Dict)
                and any(isinstance(k, ast.Constant) and k.value == "message_id" for k in extra.keys)
            ):
                missing.append(where)
    assert checked > 10
    assert missing == []


def test_an_exception_keeps_its_type_and_stack_but_not_its_text() -> None:
    try:
        raise ValueError(f"The 'To' number {PHONE} is not a valid phone number.")
    except ValueError as exc:
        caught = exc
    line = logs.JsonFormatter().format(record("message %d: provider raised", 9, exc=caught))
    data = json.loads(line)
    assert data["exc_type"] == "builtins.ValueError" and "test_logs.py" in data["stack"]
    assert PHONE not in line


@pytest.mark.usefixtures("sqlite_url")
def test_cli_logs_json_lines_when_asked() -> None:
    # engage status logs a warning when the broker is down: that line must come out as JSON on stderr.
    result = engage(
        "status",
        "--ping-timeout",
        "0.2",
        env={"ENGAGE_LOG_FORMAT": "json", "ENGAGE_BROKER_URL": "redis://127.0.0.1:1/0"},
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, result.stderr
    for line in lines:
        data = json.loads(line)
        assert {"time", "level", "logger", "message"} <= data.keys()
    assert any("broker unreachable" in json.loads(line)["message"] for line in lines)


def test_worker_and_beat_log_json_lines_when_asked() -> None:
    """Celery's own logging set-up (as ``celery worker`` / ``celery beat`` run it) gets the JSON formatter."""
    script = (
        "from workers.app import app; app.log.setup(loglevel='INFO'); import logging; "
        "logging.getLogger('engage.delivery.send')"
        ".warning('message %d: put back to queued', 3, extra={'message_id': 3})"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ENGAGE_LOG_FORMAT": "json"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    [line] = [line for line in proc.stderr.splitlines() if line.strip()]
    data = json.loads(line)
    assert data["message"] == "message 3: put back to queued" and data["message_id"] == 3


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProviders]:
    from engage.config import get_settings

    with FakeProviders() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        reset_providers()
        yield server
    reset_providers()


def test_twilio_sdk_request_lines_with_the_account_sid_never_reach_the_log(
    fake: FakeProviders, caplog: pytest.LogCaptureFixture
) -> None:
    from engage.config import get_settings

    caplog.set_level(logging.DEBUG)  # a worker at --loglevel=DEBUG, the worst case
    sid = get_settings().twilio_account_sid
    assert sid
    sms_provider().send_sms(
        OutgoingSms(
            message_id=5,
            to=PHONE,
            body="See you tomorrow",
            sender=None,
            status_callback="http://engage.test/webhooks/twilio/status?message_id=5",
        )
    )
    assert fake.sms_requests()
    assert not [r for r in caplog.records if r.name.startswith("twilio")]
    assert sid not in caplog.text and PHONE not in caplog.text

"""Logging set-up for every engage process: plain text, or one JSON object a line (``ENGAGE_LOG_FORMAT=json``).

engage's own log lines carry ids, counts and short reasons, never a patient's
name, phone, email or a message body (each module keeps to that). The JSON
form adds no more: time, level, logger, the message, the process, and the
outbox ``message_id`` when a line is about one message: its call site passes
``extra={"message_id": …}`` (the text is never parsed for it). For an
exception it keeps the type and the stack, not the exception's text, which may
quote what it was given.
"""

from __future__ import annotations

import json
import logging
import traceback
from datetime import datetime, timezone
from typing import Any

TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        message_id = _message_id(record)
        if message_id is not None:
            data["message_id"] = message_id
        for name in ("task_name", "task_id"):  # Celery's task logger sets these
            if getattr(record, name, None):
                data[name] = getattr(record, name)
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, _exc, tb = record.exc_info
            data["exc_type"] = f"{exc_type.__module__}.{exc_type.__qualname__}"
            data["stack"] = "".join(traceback.format_tb(tb)).rstrip()
        return json.dumps(data, ensure_ascii=False, default=str)


def _message_id(record: logging.LogRecord) -> int | None:
    """The outbox row a line is about, as its call site passed it: ``extra={"message_id": id}``."""
    explicit = getattr(record, "message_id", None)
    return explicit if isinstance(explicit, int) else None


def formatter(log_format: str) -> logging.Formatter:
    """The formatter ``ENGAGE_LOG_FORMAT`` (``settings.log_format``) asks for: ``text`` or ``json``."""
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure(level: int, log_format: str) -> None:
    """Send the root logger's records to stderr in the chosen format (replacing earlier handlers)."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)

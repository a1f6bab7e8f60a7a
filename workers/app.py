"""The Celery app, configured from the top-level ``celeryconfig`` module (which reads the environment).

``celery -A workers.app worker`` / ``celery -A workers.app beat``. Importing this
module never touches the database, the broker or a provider.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger, beat_init, worker_init, worker_process_init

app = Celery("engage", include=["workers.tasks"])
app.config_from_object("celeryconfig")

log = logging.getLogger(__name__)


@worker_init.connect
def _check_providers(**_: Any) -> None:
    """Refuse to start a worker that is misconfigured (providers, secret key, public URL).

    A ConfigurationError must stop loudly: a worker that started anyway would
    take every due message and fail it. SystemExit passes through Celery's
    signal dispatcher, which logs and swallows ordinary exceptions.
    """
    from engage.delivery.providers import email_provider, sms_provider

    _refuse_misconfigured("worker", sms_provider, email_provider)


@beat_init.connect
def _check_beat(**_: Any) -> None:
    """Refuse to start beat on settings the workers would refuse: it would queue work nobody should send."""
    _refuse_misconfigured("beat")


def _refuse_misconfigured(process: str, *checks: Any) -> None:
    from engage.config import StartupRefused
    from engage.delivery.providers import ConfigurationError
    from engage.delivery.startup import check_startup

    try:
        check_startup()  # the worker signs the links it sends; beat's and the worker's must agree
        for check in checks:
            check()
    except (ConfigurationError, StartupRefused) as exc:
        log.critical("engage is misconfigured, %s not started: %s", process, exc)
        raise SystemExit(f"engage {process}: configuration error: {exc}") from exc


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    """A forked pool process must not share the parent's database connections (SQLAlchemy's fork advice)."""
    from engage.db import get_engine

    get_engine().dispose(close=False)


@after_setup_logger.connect
@after_setup_task_logger.connect
def _log_format(logger: logging.Logger, **_: Any) -> None:
    """Under ``ENGAGE_LOG_FORMAT=json`` the worker's and beat's handlers write one JSON object a line."""
    from engage import logs
    from engage.config import get_settings

    if get_settings().log_format == "json":
        for handler in logger.handlers:
            handler.setFormatter(logs.JsonFormatter())

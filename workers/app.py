"""The Celery app, configured from the top-level ``celeryconfig`` module (which reads the environment).

``celery -A workers.app worker`` / ``celery -A workers.app beat``. Importing this
module never touches the database, the broker or a provider.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger, worker_init, worker_process_init

app = Celery("engage", include=["workers.tasks"])
app.config_from_object("celeryconfig")

log = logging.getLogger(__name__)


@worker_init.connect
def _check_providers(**_: Any) -> None:
    """Refuse to start a worker that is misconfigured (providers, or the development secret key on a real database).

    A ConfigurationError must stop loudly: a worker that started anyway would
    take every due message and fail it. SystemExit passes through Celery's
    signal dispatcher, which logs and swallows ordinary exceptions.
    """
    from engage.config import InsecureSecretKey, get_settings, require_secret_key
    from engage.delivery.providers import ConfigurationError, email_provider, sms_provider

    try:
        require_secret_key(get_settings())  # the worker signs the links it sends
        sms_provider()
        email_provider()
    except (ConfigurationError, InsecureSecretKey) as exc:
        log.critical("engage is misconfigured, worker not started: %s", exc)
        raise SystemExit(f"engage worker: configuration error: {exc}") from exc


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

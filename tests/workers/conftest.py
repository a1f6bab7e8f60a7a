"""The in-process Celery worker the task tests share (``worker``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from engage.config import get_settings
from engage.delivery.providers import reset_providers
from engage.delivery.ratelimit import reset_limiters
from tests.conftest import clean_environment

#: The queues the tasks use (emptied before each test).
QUEUES = ("engage.dispatch", "engage.send", "engage.send.sms", "engage.send.email", "engage.webhooks")


@pytest.fixture(scope="module")
def _running_worker(_migrated: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Celery worker thread (solo pool) on the in-process broker, with results kept in memory, for the module.

    One worker for all the tests of a module, not one a test: starting and stopping one took 4 s (the stop
    is prompt now, see ``embedded_worker``), about 45 s over ``test_tasks.py``.
    The tasks read the settings (database, outbox, providers) when they run, so each test's own apply.
    """
    from engage.demo import embedded_worker
    from workers.app import app

    # Polling the memory transport every 10 ms, not kombu's 1 s: each task would wait up to a second.
    app.conf.update(
        broker_url="memory://",
        broker_transport_options={"polling_interval": 0.01},
        result_backend="cache+memory://",
        task_ignore_result=False,
    )
    with pytest.MonkeyPatch.context() as monkeypatch:
        # The worker checks its settings as it starts, before any test's own are set.
        clean_environment(monkeypatch, tmp_path_factory.mktemp("worker"))
        monkeypatch.setenv("ENGAGE_DATABASE_URL", _migrated["sqlite"])
        reset_providers()
        with embedded_worker(app) as w:
            yield w
        get_settings.cache_clear()


@pytest.fixture
def worker(db_url: str, _running_worker: Any) -> Iterator[Any]:
    """The module's worker, idle, with empty queues and fresh providers; idle again when the test ends, so no
    task of one test runs into the next one's database."""
    from workers.app import app

    with app.connection_for_write() as conn:
        for queue in QUEUES:
            conn.default_channel.queue_purge(queue) if conn.default_channel._has_queue(queue) else None
    reset_providers()
    reset_limiters()
    yield _running_worker
    _wait_idle()
    reset_providers()


def _wait_idle(timeout: float = 30) -> None:
    """Wait until the worker runs no task and none waits in a queue."""
    import time

    from celery.worker import state

    deadline = time.monotonic() + timeout
    while state.active_requests or state.reserved_requests or any(queue_sizes().values()):
        assert time.monotonic() < deadline, "the worker is still busy after the test"
        time.sleep(0.01)


def queue_sizes() -> dict[str, int]:
    from workers.app import app

    with app.connection_for_write() as conn:
        channel = conn.default_channel
        return {q: channel._size(q) if channel._has_queue(q) else 0 for q in QUEUES}

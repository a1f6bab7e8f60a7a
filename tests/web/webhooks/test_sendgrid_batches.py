"""SendGrid event batches at scale: a bounded number of statements per batch, and no deadlock between batches."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from engage.db import get_engine, session_scope
from engage.records.models import Channel, ConsentState, DeliveryEvent, Message, MessageStatus
from engage.web.webhooks.sendgrid import handle_events
from tests.fixtures.webhooks.support import SendGridKey, World, add_message, client, load, make_world, post_sendgrid

EMAIL = "ana.ruiz@example.org"


def event(name: str, message_id: int, n: int) -> dict[str, Any]:
    return load("sendgrid_events.json", message_id=message_id, x_message_id=f"x{message_id}", email=EMAIL, n=n)[name]


def email_messages(world: World, count: int) -> list[int]:
    return [
        add_message(world, channel=Channel.EMAIL, template="what-to-expect", provider_message_id=f"x{i}")
        for i in range(count)
    ]


@pytest.fixture
def statements(db_url: str) -> Iterator[list[str]]:
    """Every SQL statement the app's engine runs while the test does (executemany counts once)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    engine = get_engine()
    sa_event.listen(engine, "before_cursor_execute", record)
    yield seen
    sa_event.remove(engine, "before_cursor_execute", record)


def test_a_large_batch_is_applied_in_a_bounded_number_of_statements(statements: list[str]) -> None:
    world = make_world()
    ids = email_messages(world, 100)
    batch = [event(name, m, n=m) for m in ids for name in ("processed", "delivered", "open")]
    batch.append(event("bounce", ids[0], n=ids[0]))  # a suppressing event: one opt-out, once
    statements.clear()

    assert handle_events(batch) == 301

    assert len(statements) <= 15, statements  # per batch, not per event (was about five per event)
    with session_scope() as session:
        assert set(session.scalars(select(Message.status).where(Message.id.in_(ids)))) == {MessageStatus.DELIVERED}
        assert session.scalar(select(func.count()).select_from(DeliveryEvent)) == 301
        from engage.conversation.consent import current_consent

        assert current_consent(session, world.patient_id, Channel.EMAIL) is ConsentState.OPTED_OUT
    assert handle_events(batch) == 0  # the repeat changes nothing


def test_repeated_events_inside_one_batch_count_once(db_url: str) -> None:
    world = make_world()
    [message_id] = email_messages(world, 1)
    delivered = event("delivered", message_id, n=1)

    assert handle_events([delivered, dict(delivered), event("processed", message_id, n=1)]) == 2

    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(DeliveryEvent)) == 2
        assert session.get_one(Message, message_id).status is MessageStatus.DELIVERED


def test_concurrent_batches_over_the_same_messages_do_not_deadlock(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = SendGridKey()
    http: list[TestClient] = [client(monkeypatch, SENDGRID_WEBHOOK_PUBLIC_KEY=key.public_key) for _ in range(2)]
    world = make_world()
    answers: list[int] = [0, 0]

    def post(slot: int, batch: list[dict[str, Any]], start: threading.Barrier) -> None:
        start.wait()
        answers[slot] = post_sendgrid(http[slot], key, batch).status_code

    for _ in range(3):
        # Both batches move every message (sending -> sent, sending/sent -> delivered), in opposite
        # orders: locking row by row as the events come takes the rows in opposite orders.
        ids = [
            add_message(world, channel=Channel.EMAIL, template="what-to-expect", status=MessageStatus.SENDING)
            for _ in range(150)
        ]
        batches = [[event("processed", m, n=m) for m in ids], [event("delivered", m, n=m) for m in reversed(ids)]]
        start = threading.Barrier(2)
        threads = [threading.Thread(target=post, args=(i, batches[i], start)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        assert answers == [200, 200]
        with session_scope() as session:
            assert set(session.scalars(select(Message.status).where(Message.id.in_(ids)))) == {MessageStatus.DELIVERED}
            assert (
                session.scalar(select(func.count()).select_from(DeliveryEvent).where(DeliveryEvent.message_id.in_(ids)))
                == 300
            )

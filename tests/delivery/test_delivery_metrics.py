"""The send path and the tick feed the Prometheus metrics: provider latency, errors by code, tick duration."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY
from sqlalchemy.orm import Session

from engage.delivery import heartbeat
from engage.delivery.send import Outcome
from tests.delivery.test_dispatch import (  # templates: the same autouse fixture (small templates, fresh providers)
    claim_and_send,
    fake,  # noqa: F401
    make_world,
    templates,  # noqa: F401
)
from tests.fakes.provider_server import FakeProviders


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_each_provider_call_is_timed_by_provider_and_channel(session: Session, fake: Any) -> None:  # noqa: F811
    world = make_world(session)
    before = sample("engage_provider_request_seconds_count", provider="twilio", channel="sms")
    assert claim_and_send(world.sms_id).outcome is Outcome.SENT
    assert sample("engage_provider_request_seconds_count", provider="twilio", channel="sms") == before + 1


def test_a_refused_send_counts_an_error_under_the_vendor_code(session: Session, fake: FakeProviders) -> None:  # noqa: F811
    world = make_world(session)
    fake.add_faults("sms", [{"status": 400, "code": 21211}])
    before = sample("engage_provider_errors_total", provider="twilio", code="21211")
    timed = sample("engage_provider_request_seconds_count", provider="twilio", channel="sms")
    assert claim_and_send(world.sms_id).outcome is Outcome.FAILED
    assert sample("engage_provider_errors_total", provider="twilio", code="21211") == before + 1
    assert sample("engage_provider_request_seconds_count", provider="twilio", channel="sms") == timed + 1


def test_a_finished_tick_is_timed(session: Session) -> None:
    before = sample("engage_tick_duration_seconds_count")
    with heartbeat.ticking():
        pass
    assert sample("engage_tick_duration_seconds_count") == before + 1

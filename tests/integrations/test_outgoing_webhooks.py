"""Outgoing webhooks: each event written with its change, posted once signed, retried with backoff, on both backends.

Messages are sent through the real SDKs to the fake provider server (``tests/fakes``); events are
posted over real HTTP to :class:`~tests.fakes.webhook_receiver.WebhookReceiver`, and signatures are
checked by hand from the Standard Webhooks rules, not with the library that made them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engage import clock
from engage.config import get_settings
from engage.conversation.consent import record_consent
from engage.conversation.inbound import InboundSms, receive_sms
from engage.conversation.outcomes import record_staff_outcome
from engage.db import session_scope
from engage.delivery.send import send_one
from engage.delivery.status import Report, apply_reports
from engage.errors import InvalidInput, NotFound
from engage.integrations import deliver, endpoints
from engage.records.models import Appointment, Channel, Clinic, ConsentState, MessageStatus, Patient
from engage.records.outgoing_webhooks import EventStatus, EventType, WebhookEndpoint, WebhookEvent
from engage.schedule.reconcile import reconcile_patient
from tests.delivery.test_dispatch import EMAIL, FIRST_NAME, PHONE, SEND_AT, World, claim_and_send, make_world
from tests.fakes.provider_server import FakeProviders
from tests.fakes.webhook_receiver import Post, WebhookReceiver


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    """A receiver on this machine, which engage posts to only with the development setting."""
    monkeypatch.setenv("ENGAGE_WEBHOOK_ALLOW_LOCAL", "1")
    get_settings.cache_clear()
    with WebhookReceiver() as server:
        yield server


def add_endpoint(clinic_id: int, url: str) -> WebhookEndpoint:
    with session_scope() as session:
        endpoint = endpoints.create_endpoint(session, clinic_id, url, "PMS", actor="admin@clinic.example")
        session.expunge(endpoint)
        return endpoint


def clinic_of(world: World) -> int:
    with session_scope() as session:
        return session.get_one(Patient, world.patient_id).clinic_id


def deliver_at(at: datetime) -> dict[str, int]:
    with clock.frozen(at):
        return deliver.deliver_due()


def events() -> list[WebhookEvent]:
    with session_scope() as session:
        rows = list(session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))
        session.expunge_all()
        return rows


def verify(post: Post, secret: str) -> dict[str, object]:
    """The body, once the Standard Webhooks signature is checked by hand."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{post.headers['webhook-id']}.{post.headers['webhook-timestamp']}.".encode() + post.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert post.headers["webhook-signature"] == f"v1,{expected}"
    assert post.headers["content-type"] == "application/json"
    body = json.loads(post.body)
    assert body["id"] == post.headers["webhook-id"]
    return body


def posts_counted(result: str) -> float:
    """``engage_outgoing_webhook_posts_total{result}`` in this process."""
    return REGISTRY.get_sample_value("engage_outgoing_webhook_posts_total", {"result": result}) or 0.0


def assert_no_patient_words(post: Post) -> None:
    text = post.body.decode()
    for secret in (PHONE, EMAIL, FIRST_NAME, "López", "see you"):
        assert secret not in text


def test_a_sent_sms_is_posted_once_signed_and_without_the_patients_details(
    session: Session,
    fake: FakeProviders,
    receiver: WebhookReceiver,
) -> None:
    world = make_world(session)
    endpoint = add_endpoint(clinic_of(world), receiver.url)
    claim_and_send(world.sms_id)

    assert deliver_at(SEND_AT) == {"delivered": 1, "retry": 0, "failed": 0}
    [post] = receiver.posts()
    body = verify(post, endpoint.secret)
    assert_no_patient_words(post)
    assert body["type"] == "message.sent"
    assert post.headers["webhook-id"] == f"evt_message_sent_{world.sms_id}"
    data = body["data"]
    assert isinstance(data, dict)
    assert (data["message_id"], data["patient_id"], data["channel"], data["step"]) == (
        world.sms_id,
        world.patient_id,
        "sms",
        "reminder",
    )
    assert data["provider_message_id"] == fake.sms_requests()[0]["sid"]
    assert "status" not in data and "error_code" not in data  # those say how a message.failed failed

    # The provider's own "sent" and "delivered" callbacks emit nothing new, and nothing is posted twice.
    with session_scope() as s:
        apply_reports(s, "twilio", [Report(world.sms_id, MessageStatus.DELIVERED, "cb-1", {})])
    assert deliver_at(SEND_AT + timedelta(hours=1)) == {"delivered": 0, "retry": 0, "failed": 0}
    assert len(receiver.posts()) == 1
    [event] = events()
    assert (event.status, event.attempts, event.last_status_code) == (EventStatus.DELIVERED, 1, 200)


def test_a_permanent_provider_refusal_posts_message_failed_with_its_code(
    session: Session,
    fake: FakeProviders,
    receiver: WebhookReceiver,
) -> None:
    world = make_world(session)
    endpoint = add_endpoint(clinic_of(world), receiver.url)
    fake.add_faults("sms", [{"status": 400, "code": 21211}])
    claim_and_send(world.sms_id)
    deliver_at(SEND_AT)

    [post] = receiver.posts()
    body = verify(post, endpoint.secret)
    assert body["type"] == "message.failed"
    assert body["data"]["status"] == "failed" and body["data"]["error_code"] == "21211"  # type: ignore[index]
    assert_no_patient_words(post)


def test_an_undelivered_callback_after_sent_posts_message_failed_once(
    session: Session,
    fake: FakeProviders,
    receiver: WebhookReceiver,
) -> None:
    world = make_world(session)
    add_endpoint(clinic_of(world), receiver.url)
    claim_and_send(world.sms_id)
    with session_scope() as s:
        report = Report(world.sms_id, MessageStatus.UNDELIVERED, "cb-1", {}, error_code="30003")
        apply_reports(s, "twilio", [report])
        apply_reports(s, "twilio", [Report(world.sms_id, MessageStatus.UNDELIVERED, "cb-2", {})])
    deliver_at(SEND_AT)
    types = [json.loads(p.body)["type"] for p in receiver.posts()]
    assert sorted(types) == ["message.failed", "message.sent"]


def test_consent_replies_and_scores_are_posted_as_their_own_events(
    session: Session,
    receiver: WebhookReceiver,
) -> None:
    world = make_world(session)
    clinic_id = clinic_of(world)
    endpoint = add_endpoint(clinic_id, receiver.url)
    with clock.frozen(SEND_AT), session_scope() as s:
        record_consent(s, world.patient_id, Channel.EMAIL, ConsentState.OPTED_OUT, source="staff")
        record_staff_outcome(s, world.patient_id, 4, actor="pt@clinic.example")
        clinic = s.get_one(Clinic, clinic_id)
        clinic.sms_from = "+14155550100"
        s.flush()
        sms = InboundSms(sid="SM1", from_phone=PHONE, to_phone="+14155550100", body="Can I come Friday?")
        receive_sms(s, sms, replan=reconcile_patient)
    deliver_at(SEND_AT)

    bodies = {b["type"]: b["data"] for b in (verify(p, endpoint.secret) for p in receiver.posts())}
    assert set(bodies) == {"consent.changed", "outcome.recorded", "reply.received"}
    assert bodies["consent.changed"] == bodies["consent.changed"] | {  # type: ignore[operator]
        "patient_id": world.patient_id,
        "channel": "email",
        "state": "opted_out",
        "source": "staff",
    }
    assert bodies["outcome.recorded"]["score"] == 4 and bodies["outcome.recorded"]["source"] == "staff"  # type: ignore[index]
    assert bodies["reply.received"]["kind"] == "other"  # type: ignore[index]
    assert bodies["reply.received"]["patient_id"] == world.patient_id  # type: ignore[index]
    for post in receiver.posts():
        assert b"Friday" not in post.body
        assert_no_patient_words(post)


@pytest.mark.parametrize(("body", "kind"), [("C", "confirm"), ("R", "reschedule"), ("Sí, confirmo", "confirm")])
def test_a_confirmation_or_call_back_reply_names_the_visit_by_our_id_and_the_external_one(
    session: Session,
    receiver: WebhookReceiver,
    body: str,
    kind: str,
) -> None:
    world = make_world(session)
    clinic_id = clinic_of(world)
    endpoint = add_endpoint(clinic_id, receiver.url)
    with clock.frozen(SEND_AT), session_scope() as s:
        appointment = s.get_one(Appointment, world.appointment_id)
        appointment.external_id, appointment.external_clinic_id = "PMS-V-77", clinic_id
        s.get_one(Clinic, clinic_id).sms_from = "+14155550100"
        s.flush()
        receive_sms(
            s, InboundSms(sid="SM9", from_phone=PHONE, to_phone="+14155550100", body=body), replan=reconcile_patient
        )
        receive_sms(
            s,
            InboundSms(sid="SM10", from_phone=PHONE, to_phone="+14155550100", body="Thanks!"),
            replan=reconcile_patient,
        )
    deliver_at(SEND_AT)

    posted = [verify(p, endpoint.secret)["data"] for p in receiver.posts()]
    by_kind = {d["kind"]: d for d in posted if isinstance(d, dict)}
    assert (by_kind[kind]["appointment_id"], by_kind[kind]["appointment_external_id"]) == (
        world.appointment_id,
        "PMS-V-77",
    )
    assert (by_kind["other"]["appointment_id"], by_kind["other"]["appointment_external_id"]) == (None, None)


def test_without_an_endpoint_no_event_is_written_and_another_clinics_endpoint_hears_nothing(
    session: Session,
    fake: FakeProviders,
    receiver: WebhookReceiver,
) -> None:
    world = make_world(session)
    with session_scope() as s:
        other = Clinic(name="Other", timezone="America/Chicago", address="2 Oak St", email_from="o@other.example")
        s.add(other)
        s.flush()
        other_id = other.id
    add_endpoint(other_id, receiver.url)
    claim_and_send(world.sms_id)  # claims the email too
    with clock.frozen(SEND_AT):
        send_one(world.email_id)
    assert len(fake.sms_requests()) == 1 and len(fake.email_requests()) == 1
    assert events() == []
    deliver_at(SEND_AT)
    assert receiver.posts() == []


def test_failed_posts_are_retried_with_backoff_and_the_same_event_id_until_a_2xx(
    session: Session,
    receiver: WebhookReceiver,
) -> None:
    world = make_world(session)
    endpoint = add_endpoint(clinic_of(world), receiver.url)
    receiver.answer([500, {"status": 503, "retry_after": 300}, 404])
    with clock.frozen(SEND_AT), session_scope() as s:
        record_staff_outcome(s, world.patient_id, 6, actor="test")
    retries, deliveries = posts_counted("retry"), posts_counted("delivered")

    assert deliver_at(SEND_AT) == {"delivered": 0, "retry": 1, "failed": 0}
    [event] = events()
    assert (event.attempts, event.last_status_code, event.last_error) == (1, 500, "HTTP 500")
    assert event.next_attempt_at == SEND_AT + deliver.RETRY_DELAYS[0]

    assert deliver_at(SEND_AT + timedelta(seconds=29)) == {"delivered": 0, "retry": 0, "failed": 0}  # not yet due
    second = SEND_AT + deliver.RETRY_DELAYS[0]
    assert deliver_at(second)["retry"] == 1
    [event] = events()
    assert event.next_attempt_at == second + timedelta(seconds=300)  # Retry-After outweighs the 2-minute step

    third = second + timedelta(seconds=300)
    assert deliver_at(third)["retry"] == 1  # a 404 is retried too: the receiver may be mid-deploy
    assert deliver_at(third + deliver.RETRY_DELAYS[2]) == {"delivered": 1, "retry": 0, "failed": 0}

    posts = receiver.posts()
    assert len(posts) == 4
    assert {p.headers["webhook-id"] for p in posts} == {events()[0].event_id}
    for post in posts:
        verify(post, endpoint.secret)
    [event] = events()
    assert (event.status, event.attempts, event.last_error) == (EventStatus.DELIVERED, 4, None)
    assert (posts_counted("retry") - retries, posts_counted("delivered") - deliveries) == (3, 1)
    assert deliver_at(third + timedelta(days=2))["delivered"] == 0


def test_a_slow_endpoint_times_out_and_an_endpoint_that_never_answers_2xx_is_given_up(
    session: Session,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENGAGE_WEBHOOK_TIMEOUT_SECONDS", "0.3")
    get_settings.cache_clear()
    world = make_world(session)
    add_endpoint(clinic_of(world), receiver.url)
    receiver.answer([{"delay": 1.5}] + [500] * deliver.MAX_ATTEMPTS)
    with clock.frozen(SEND_AT), session_scope() as s:
        record_staff_outcome(s, world.patient_id, 6, actor="test")

    at = SEND_AT
    assert deliver_at(at)["retry"] == 1
    assert events()[0].last_error == deliver.NO_ANSWER and events()[0].last_status_code is None
    for delay in deliver.RETRY_DELAYS[:-1]:
        at += delay
        assert deliver_at(at)["retry"] == 1
    at += deliver.RETRY_DELAYS[-1]
    assert deliver_at(at) == {"delivered": 0, "retry": 0, "failed": 1}
    [event] = events()
    assert (event.status, event.attempts, event.next_attempt_at) == (EventStatus.FAILED, deliver.MAX_ATTEMPTS, None)
    assert deliver_at(at + timedelta(days=3))["failed"] == 0
    assert len(receiver.posts()) == deliver.MAX_ATTEMPTS


def test_a_claimed_event_whose_worker_died_is_posted_again_when_its_lease_ends(
    session: Session,
    receiver: WebhookReceiver,
) -> None:
    world = make_world(session)
    add_endpoint(clinic_of(world), receiver.url)
    with clock.frozen(SEND_AT), session_scope() as s:
        record_staff_outcome(s, world.patient_id, 6, actor="test")
    with clock.frozen(SEND_AT):
        assert len(deliver.claim_due(10)) == 1  # ... and the worker dies before posting
    assert deliver_at(SEND_AT + timedelta(seconds=5))["delivered"] == 0  # leased: nobody else posts it
    assert deliver_at(SEND_AT + timedelta(minutes=2))["delivered"] == 1
    [event] = events()
    assert (event.status, event.attempts) == (EventStatus.DELIVERED, 2)


def test_a_removed_endpoint_gets_nothing_more(session: Session, receiver: WebhookReceiver) -> None:
    world = make_world(session)
    clinic_id = clinic_of(world)
    endpoint = add_endpoint(clinic_id, receiver.url)
    with clock.frozen(SEND_AT), session_scope() as s:
        record_staff_outcome(s, world.patient_id, 6, actor="test")
        endpoints.remove_endpoint(s, clinic_id, endpoint.id, actor="admin@clinic.example")
        record_staff_outcome(s, world.patient_id, 5, actor="test")
    deliver_at(SEND_AT)
    assert receiver.posts() == []
    assert [e.status for e in events()] == [EventStatus.DROPPED]
    with session_scope() as s, pytest.raises(NotFound):
        endpoints.remove_endpoint(s, clinic_id, endpoint.id, actor="admin@clinic.example")


def test_two_deliverers_at_once_post_each_event_once_on_postgresql(
    pg_url: str,
    receiver: WebhookReceiver,
) -> None:
    with session_scope() as s:
        world = make_world(s)
    add_endpoint(clinic_of(world), receiver.url)
    receiver.answer([{"status": 200, "delay": 0.05}] * 100)
    with clock.frozen(SEND_AT), session_scope() as s:
        for score in range(40):
            record_staff_outcome(s, world.patient_id, score % 11, actor="test")

    totals: list[dict[str, int]] = []

    def run() -> None:
        totals.append(deliver_at(SEND_AT))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [p.headers["webhook-id"] for p in receiver.posts()]
    assert len(ids) == 40 and len(set(ids)) == 40
    assert sum(t["delivered"] for t in totals) == 40
    with session_scope() as s:
        assert s.scalar(select(func.count()).where(WebhookEvent.status == EventStatus.DELIVERED)) == 40


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://pms.example.org/hooks", "must use https"),
        ("ftp://pms.example.org/hooks", "looks like https://"),
        ("https:///hooks", "looks like https://"),
        ("https://pms.example.org/" + "x" * 500, "too long"),
    ],
)
def test_an_endpoint_url_engage_must_not_post_to_is_refused(session: Session, url: str, problem: str) -> None:
    clinic_id = clinic_of(make_world(session))
    with session_scope() as s, pytest.raises(InvalidInput, match=problem):
        endpoints.create_endpoint(s, clinic_id, url, actor="admin@clinic.example")
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0


def test_local_http_is_allowed_for_trying_a_receiver_and_a_clinic_has_at_most_five(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENGAGE_WEBHOOK_ALLOW_LOCAL", "1")
    get_settings.cache_clear()
    world = make_world(session)
    clinic_id = clinic_of(world)
    with session_scope() as s:
        for url in (
            "http://127.0.0.1:9000/a",
            "http://localhost/b",
            "http://[::1]:8080/c",
            "https://x.example/d",
            "https://x.example/e",
        ):
            endpoints.create_endpoint(s, clinic_id, url, actor="admin@clinic.example")
    with session_scope() as s, pytest.raises(InvalidInput, match="at most 5"):
        endpoints.create_endpoint(s, clinic_id, "https://x.example/f", actor="admin@clinic.example")
    with session_scope() as s:
        assert all(
            e.secret.startswith("whsec_") and len(base64.b64decode(e.secret[6:])) == 32
            for e in endpoints.list_endpoints(s, clinic_id)
        )


def test_an_event_emitted_twice_is_owed_once(session: Session, receiver: WebhookReceiver) -> None:
    from engage.records.outgoing_webhooks import emit

    world = make_world(session)
    add_endpoint(clinic_of(world), receiver.url)
    with session_scope() as s:
        emit(s, EventType.MESSAGE_SENT, [world.sms_id, world.sms_id])
        emit(s, EventType.MESSAGE_SENT, [world.sms_id])
    with session_scope() as s:
        s.execute(update(WebhookEvent).values(next_attempt_at=SEND_AT))
    assert [e.event_id for e in events()] == [f"evt_message_sent_{world.sms_id}"]

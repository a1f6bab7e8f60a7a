"""Settings → Webhooks in-process: add (the secret shown once), list, the events page, remove, refusals.

Events are posted over real HTTP to :class:`~tests.fakes.webhook_receiver.WebhookReceiver`, and the
secret the page showed is checked against the signature the receiver got, by hand.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from engage import clock
from engage.clock import utcnow
from engage.config import get_settings
from engage.db import session_scope
from engage.integrations import deliver, endpoints
from engage.records.models import AuditEvent
from engage.records.outgoing_webhooks import EventStatus, EventType, WebhookEndpoint, WebhookEvent
from tests import seed
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.web.staff.support import HTML, signed_in

ADMIN = "admin@clinic.example"
SECRET = re.compile(r'<code id="webhook-secret">(whsec_[^<]+)</code>')
REFUSED_HTTP = (
    "a webhook URL must use https (plain http only to this machine, in development: ENGAGE_WEBHOOK_ALLOW_LOCAL)"
)


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    """A receiver on this machine, which engage posts to only with the development setting."""
    monkeypatch.setenv("ENGAGE_WEBHOOK_ALLOW_LOCAL", "1")
    get_settings.cache_clear()
    with WebhookReceiver() as server:
        yield server


def _clinic() -> dict[str, int]:
    with session_scope() as session:
        clinic = seed.clinic(session)
        seed.staff(session, clinic.id, ADMIN, "admin")
        seed.staff(session, clinic.id, "desk@clinic.example", "front_desk")
        ana = seed.patient(session, clinic.id, email="ana@example.com")
        return {"clinic": clinic.id, "ana": ana.id}


def _endpoint(clinic_id: int, url: str = "https://pms.example.org/engage-events", label: str = "PMS sync") -> int:
    with session_scope() as session:
        return endpoints.create_endpoint(session, clinic_id, url, label, actor=ADMIN).id


def _audited(action: str) -> list[tuple[str, int | None]]:
    with session_scope() as session:
        return [(a.actor, a.subject_id) for a in session.scalars(select(AuditEvent).where(AuditEvent.action == action))]


def _count_endpoints() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(WebhookEndpoint)) or 0


def test_admin_adds_an_endpoint_and_sees_its_secret_once_then_only_in_the_list(db_url: str) -> None:
    _clinic()
    client, csrf = signed_in(ADMIN)
    page = client.post(
        "/settings/webhooks",
        data={"csrf_token": csrf, "url": " https://pms.example.org/engage-events ", "label": "PMS sync"},
    )
    assert page.status_code == 200
    shown = SECRET.search(page.text)
    assert shown is not None
    for words in ("webhook-id", "webhook-timestamp", "webhook-signature", "drop repeats by"):
        assert words in page.text, words
    with session_scope() as session:
        [endpoint] = session.scalars(select(WebhookEndpoint))
        assert (endpoint.url, endpoint.label, endpoint.created_by) == (
            "https://pms.example.org/engage-events",
            "PMS sync",
            ADMIN,
        )
        assert endpoint.secret == shown.group(1)
        endpoint_id = endpoint.id
    assert _audited("webhook.create") == [(ADMIN, endpoint_id)]

    again = client.get("/settings").text
    assert shown.group(1) not in again and "whsec_" not in again
    listed = again.split('id="webhooks-h"')[1]
    assert "https://pms.example.org/engage-events" in listed and "PMS sync" in listed and f"by {ADMIN}" in listed
    assert "none yet" in listed and f'href="/settings/webhooks/{endpoint_id}"' in listed


def test_the_secret_shown_signs_the_posts_and_the_events_page_shows_each_answer(
    db_url: str,
    receiver: WebhookReceiver,
) -> None:
    ids = _clinic()
    admin, csrf = signed_in(ADMIN)
    shown = SECRET.search(admin.post("/settings/webhooks", data={"csrf_token": csrf, "url": receiver.url}).text)
    assert shown is not None
    with session_scope() as session:
        endpoint_id = session.scalars(select(WebhookEndpoint.id)).one()

    # The front desk records an opt-out: a consent.changed event, refused once by the receiver, then taken.
    desk, desk_csrf = signed_in("desk@clinic.example")
    desk.post(
        f"/patients/{ids['ana']}/consent",
        data={"csrf_token": desk_csrf, "channel": "sms", "state": "opted_out", "reason": "asked at the desk"},
    )
    receiver.answer([500])
    assert deliver.deliver_due() == {"delivered": 0, "retry": 1, "failed": 0}
    events_page = admin.get(f"/settings/webhooks/{endpoint_id}").text
    row = _row(events_page, "consent.changed")
    assert "pending" in row and "HTTP 500" in row and "next try" in row

    with clock.frozen(utcnow() + timedelta(minutes=1)):
        assert deliver.deliver_due() == {"delivered": 1, "retry": 0, "failed": 0}
    row = _row(admin.get(f"/settings/webhooks/{endpoint_id}").text, "consent.changed")
    assert "delivered" in row and "HTTP 200" in row and "<td>2</td>" in row
    newest = admin.get("/settings").text.split('id="webhooks-h"')[1]
    assert "delivered" in newest and "consent.changed" in newest

    post = receiver.posts()[-1]
    key = base64.b64decode(shown.group(1).removeprefix("whsec_"))
    signed = f"{post.headers['webhook-id']}.{post.headers['webhook-timestamp']}.".encode() + post.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert post.headers["webhook-signature"] == f"v1,{expected}"
    assert post.headers["webhook-id"] in events_page


def _row(page: str, text: str) -> str:
    rows = [r for r in re.findall(r"<tr>.*?</tr>", page, re.S) if text in r]
    assert len(rows) == 1, page
    return rows[0]


def test_admin_removes_an_endpoint_its_owed_events_are_dropped_and_it_is_gone(db_url: str) -> None:
    ids = _clinic()
    endpoint_id = _endpoint(ids["clinic"])
    with session_scope() as session:
        session.add(
            WebhookEvent(
                endpoint_id=endpoint_id,
                event_id="evt_consent_changed_1",
                subject_id=1,
                type=EventType.CONSENT_CHANGED,
                occurred_at=utcnow(),
                next_attempt_at=utcnow(),
            )
        )
    client, csrf = signed_in(ADMIN)
    answer = client.post(f"/settings/webhooks/{endpoint_id}/remove", data={"csrf_token": csrf}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/settings#webhooks"
    page = client.get("/settings").text
    assert "Webhook endpoint PMS sync removed" in page
    assert "<code>https://pms.example.org/engage-events</code>" not in page and "No webhook endpoints." in page
    with session_scope() as session:
        endpoint = session.get_one(WebhookEndpoint, endpoint_id)
        assert not endpoint.active and endpoint.disabled_at is not None
        assert session.scalars(select(WebhookEvent.status)).one() is EventStatus.DROPPED
    assert _audited("webhook.remove") == [(ADMIN, endpoint_id)]
    assert client.get(f"/settings/webhooks/{endpoint_id}", headers=HTML).status_code == 404
    again = client.post(f"/settings/webhooks/{endpoint_id}/remove", data={"csrf_token": csrf}, headers=HTML)
    assert again.status_code == 404 and len(_audited("webhook.remove")) == 1


@pytest.mark.parametrize(
    ("field", "url", "label", "error"),
    [
        ("url", "http://pms.example.org/engage-events", "PMS", REFUSED_HTTP),
        ("url", "ftp://pms.example.org/x", "PMS", "a webhook URL looks like https://example.org/engage-events"),
        (
            "label",
            "https://pms.example.org/engage-events",
            "x" * 101,
            "the webhook endpoint label is too long: at most 100 characters, not 101",
        ),
    ],
)
def test_a_refused_endpoint_names_its_field_keeps_what_was_typed_and_writes_nothing(
    db_url: str,
    field: str,
    url: str,
    label: str,
    error: str,
) -> None:
    _clinic()
    client, csrf = signed_in(ADMIN)
    answer = client.post("/settings/webhooks", data={"csrf_token": csrf, "url": url, "label": label}, headers=HTML)
    assert answer.status_code == 400
    beside = re.search(rf'<small id="we-{field}" class="field-error">([^<]+)</small>', answer.text)
    assert beside is not None and html.unescape(beside.group(1)) == error
    assert re.search(rf'id="w-{field}"[^>]*aria-invalid="true" aria-describedby="we-{field}"', answer.text, re.S)
    assert f'value="{html.escape(url)}"' in answer.text and "whsec_" not in answer.text
    assert _count_endpoints() == 0 and _audited("webhook.create") == []


def test_a_sixth_endpoint_is_refused_above_the_form(db_url: str) -> None:
    ids = _clinic()
    for n in range(endpoints.MAX_ENDPOINTS):
        _endpoint(ids["clinic"], f"https://pms.example.org/{n}")
    client, csrf = signed_in(ADMIN)
    answer = client.post(
        "/settings/webhooks", data={"csrf_token": csrf, "url": "https://pms.example.org/6"}, headers=HTML
    )
    assert answer.status_code == 400
    assert f'role="alert" class="field-error">a clinic has at most {endpoints.MAX_ENDPOINTS} webhook' in answer.text
    assert _count_endpoints() == endpoints.MAX_ENDPOINTS


def test_the_front_desk_sees_no_webhooks_and_gets_403_on_every_webhook_route(db_url: str) -> None:
    ids = _clinic()
    endpoint_id = _endpoint(ids["clinic"])
    client, csrf = signed_in("desk@clinic.example")
    assert "Settings" not in client.get("/").text
    assert client.get("/settings", headers=HTML).status_code == 403
    assert client.get(f"/settings/webhooks/{endpoint_id}", headers=HTML).status_code == 403
    added = client.post("/settings/webhooks", data={"csrf_token": csrf, "url": "https://evil.example/x"}, headers=HTML)
    assert added.status_code == 403
    removed = client.post(f"/settings/webhooks/{endpoint_id}/remove", data={"csrf_token": csrf}, headers=HTML)
    assert removed.status_code == 403
    assert _count_endpoints() == 1 and _audited("webhook.remove") == []
    with session_scope() as session:
        assert session.get_one(WebhookEndpoint, endpoint_id).active


def test_another_clinics_endpoint_answers_404_and_is_left_alone(db_url: str) -> None:
    _clinic()
    with session_scope() as session:
        theirs = seed.clinic(session, name="Elsewhere", email="front@elsewhere.example").id
    their_endpoint = _endpoint(theirs, "https://elsewhere.example/hooks", "Their PMS")
    client, csrf = signed_in(ADMIN)
    page = client.get(f"/settings/webhooks/{their_endpoint}", headers=HTML)
    assert page.status_code == 404 and "elsewhere.example" not in page.text
    removed = client.post(f"/settings/webhooks/{their_endpoint}/remove", data={"csrf_token": csrf}, headers=HTML)
    assert removed.status_code == 404
    assert "elsewhere.example" not in client.get("/settings").text
    with session_scope() as session:
        assert session.get_one(WebhookEndpoint, their_endpoint).active
    assert _audited("webhook.remove") == []

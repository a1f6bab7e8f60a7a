"""``/api/v1/webhooks`` over real HTTP: admin tokens register, list and remove endpoints; events follow API changes;
and ``engage webhook`` plus ``engage tick`` do the same from the command line."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from engage.config import get_settings
from engage.db import session_scope
from engage.integrations import deliver
from engage.records.models import Role
from engage.records.outgoing_webhooks import EventStatus, WebhookEndpoint, WebhookEvent
from tests.cli import engage
from tests.conftest import PG_URL
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.web.api.conftest import World, make_clinic


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    """A receiver on this machine, which engage posts to only with the development setting."""
    monkeypatch.setenv("ENGAGE_WEBHOOK_ALLOW_LOCAL", "1")
    get_settings.cache_clear()
    with WebhookReceiver() as server:
        yield server


def endpoint_count() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(WebhookEndpoint)) or 0)


def test_an_admin_registers_an_endpoint_sees_the_secret_once_and_events_follow_api_changes(
    world: World,
    receiver: WebhookReceiver,
) -> None:
    with world.client() as api:
        made = api.post("/webhooks", json={"url": receiver.url, "label": "PMS"}, headers={"Idempotency-Key": "w1"})
        again = api.post("/webhooks", json={"url": receiver.url, "label": "PMS"}, headers={"Idempotency-Key": "w1"})
        assert made.status_code == 201 and made.json()["secret"].startswith("whsec_")
        assert again.json() == made.json() and endpoint_count() == 1  # the same key creates nothing more
        listed = api.get("/webhooks").json()["endpoints"]
        assert [e["id"] for e in listed] == [made.json()["id"]] and "secret" not in listed[0]

        consent = api.post(
            f"/patients/{world.a.patient_id}/consent",
            json={"channel": "sms", "state": "opted_out", "reason": "asked at the desk"},
        )
        assert consent.status_code in (200, 201)
        pending = api.get(f"/webhooks/{made.json()['id']}/events").json()["events"]
        assert [(e["type"], e["status"]) for e in pending] == [("consent.changed", "pending")]

        assert deliver.deliver_due()["delivered"] == 1
        [post] = receiver.posts()
        key = base64.b64decode(made.json()["secret"].removeprefix("whsec_"))
        signed = f"{post.headers['webhook-id']}.{post.headers['webhook-timestamp']}.".encode() + post.body
        assert (
            post.headers["webhook-signature"]
            == "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        )
        data = json.loads(post.body)["data"]
        assert (data["patient_id"], data["channel"], data["state"]) == (world.a.patient_id, "sms", "opted_out")
        delivered = api.get(f"/webhooks/{made.json()['id']}/events").json()["events"]
        assert [(e["status"], e["last_status_code"], e["attempts"]) for e in delivered] == [("delivered", 200, 1)]

        removed = api.delete(f"/webhooks/{made.json()['id']}")
        assert removed.status_code == 200 and removed.json()["active"] is False
        assert api.get("/webhooks").json()["endpoints"] == []
        assert api.get(f"/webhooks/{made.json()['id']}/events").status_code == 404


def test_only_admins_manage_endpoints_and_never_another_clinics(world: World, receiver: WebhookReceiver) -> None:
    desk = make_clinic("Desk Only", "front@c.example", role=Role.FRONT_DESK)
    with world.client(desk) as api:
        answer = api.post("/webhooks", json={"url": receiver.url})
        assert answer.status_code == 403 and answer.headers["content-type"] == "application/problem+json"
        assert api.get("/webhooks").status_code == 403
    with world.client(world.b) as api:
        theirs = api.post("/webhooks", json={"url": receiver.url}).json()["id"]
    with world.client(world.a) as api:
        assert api.delete(f"/webhooks/{theirs}").status_code == 404
        assert api.get(f"/webhooks/{theirs}/events").status_code == 404
    with session_scope() as session:
        assert session.get_one(WebhookEndpoint, theirs).active is True


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("http://pms.example.org/hooks", "must use https"),
        ("mailto:it@pms.example.org", "looks like https://"),
    ],
)
def test_a_url_engage_must_not_post_to_is_a_problem_pointing_at_the_field(world: World, url: str, detail: str) -> None:
    with world.client() as api:
        answer = api.post("/webhooks", json={"url": url})
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    [error] = answer.json()["errors"]
    assert error["pointer"] == "#/url" and detail in error["detail"]
    assert endpoint_count() == 0


def test_the_cli_adds_lists_and_removes_endpoints_and_tick_posts_due_events(
    world: World,
    receiver: WebhookReceiver,
) -> None:
    env = {"ENGAGE_DATABASE_URL": PG_URL}
    added = engage(
        "webhook", "add", "--clinic", str(world.a.id), "--url", receiver.url, "--label", "PMS", "--json", env=env
    )
    assert added.code == 0, added.stderr
    endpoint = added.json
    assert endpoint["secret"].startswith("whsec_")
    listed = engage("webhook", "list", "--clinic", str(world.a.id), "--json", env=env).json["endpoints"]
    assert [e["id"] for e in listed] == [endpoint["id"]] and "secret" not in listed[0]

    engage(
        "consent",
        "set",
        str(world.a.patient_id),
        "--channel",
        "email",
        "--state",
        "opted_out",
        "--reason",
        "asked",
        env=env,
    )
    ticked = engage("tick", "--json", env=env).json
    assert ticked["webhooks_delivered"] == 1
    assert [json.loads(p.body)["type"] for p in receiver.posts()] == ["consent.changed"]
    events = engage("webhook", "events", str(endpoint["id"]), "--clinic", str(world.a.id), "--json", env=env).json
    assert [e["status"] for e in events["events"]] == ["delivered"]

    refused = engage("webhook", "add", "--clinic", str(world.a.id), "--url", "http://pms.example.org/x", env=env)
    assert refused.code == 2 and "must use https" in refused.stderr
    wrong_clinic = engage("webhook", "remove", str(endpoint["id"]), "--clinic", str(world.b.id), env=env)
    assert wrong_clinic.code == 2
    assert engage("webhook", "remove", str(endpoint["id"]), "--clinic", str(world.a.id), env=env).code == 0
    with session_scope() as session:
        statuses = set(session.scalars(select(WebhookEvent.status)))
    assert statuses == {EventStatus.DELIVERED}

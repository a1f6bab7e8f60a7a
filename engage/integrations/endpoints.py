"""Register, list and remove a clinic's webhook endpoints (admin only, from the staff app, the API or the CLI).

An endpoint receives every event type (:class:`~engage.records.outgoing_webhooks.EventType`); a receiver
ignores the ones it does not need. Its signing secret is shown once, at creation: it is stored as it is,
because signing needs the key itself.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.config import get_settings
from engage.errors import InvalidInput, NotFound
from engage.integrations import addresses
from engage.records.audit import AuditAction, audit
from engage.records.limits import check_values
from engage.records.outgoing_webhooks import EventStatus, WebhookEndpoint, WebhookEvent

PLAIN_HTTP = "plain http only to this machine, in development: ENGAGE_WEBHOOK_ALLOW_LOCAL"
#: Endpoints a clinic may have at once: each event is written once per endpoint.
MAX_ENDPOINTS = 5


def check_url(url: str) -> str:
    """The URL, trimmed, when engage may post events to it; ``InvalidInput`` naming the rule otherwise.

    HTTPS only (events carry patient ids and scores), to a public address: not loopback, private, link-local
    or reserved, nor a host written as a bare number (:mod:`engage.integrations.addresses`); a name that
    resolves now is checked now, and every post checks again the address it connects to. With
    ``ENGAGE_WEBHOOK_ALLOW_LOCAL`` (development), local addresses too, and plain HTTP to this machine.
    """
    url = url.strip()
    check_values(WebhookEndpoint, url=url)
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 0
    if parts.scheme not in ("https", "http") or not parts.hostname or not port:
        raise InvalidInput("a webhook URL looks like https://example.org/engage-events", field="url")
    allow_local = get_settings().webhook_allow_local
    if parts.scheme == "http" and not (allow_local and _loopback(parts.hostname)):
        raise InvalidInput(f"a webhook URL must use https ({PLAIN_HTTP})", field="url")
    # A name that does not resolve yet (the receiver may not be live) is taken: each post resolves and checks again.
    with contextlib.suppress(OSError):
        addresses.permitted_addresses(parts.hostname, port, allow_local=allow_local)
    return url


def _loopback(host: str) -> bool:
    address = addresses.literal(host)
    return address.is_loopback if address is not None else host.lower() == "localhost"


def new_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def create_endpoint(session: Session, clinic_id: int, url: str, label: str = "", *, actor: str) -> WebhookEndpoint:
    """Add an endpoint for the clinic; its ``secret`` is to be shown to the caller now, and never again.

    Raises ``InvalidInput`` for a URL :func:`check_url` refuses, a label too long, or a clinic that
    has :data:`MAX_ENDPOINTS` already.
    """
    url = check_url(url)
    label = " ".join(label.split())
    check_values(WebhookEndpoint, label=label)
    if len(list_endpoints(session, clinic_id)) >= MAX_ENDPOINTS:
        raise InvalidInput(f"a clinic has at most {MAX_ENDPOINTS} webhook endpoints; remove one first")
    endpoint = WebhookEndpoint(
        clinic_id=clinic_id,
        url=url,
        label=label,
        secret=new_secret(),
        active=True,
        created_by=actor,
        created_at=utcnow(),
    )
    session.add(endpoint)
    session.flush()
    audit(
        session,
        clinic_id=clinic_id,
        actor=actor,
        action=AuditAction.WEBHOOK_CREATE,
        subject_type="webhook_endpoint",
        subject_id=endpoint.id,
    )
    return endpoint


def list_endpoints(session: Session, clinic_id: int) -> list[WebhookEndpoint]:
    """The clinic's active endpoints, oldest first."""
    return list(
        session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.clinic_id == clinic_id, WebhookEndpoint.active)
            .order_by(WebhookEndpoint.id)
        )
    )


def get_endpoint(session: Session, clinic_id: int, endpoint_id: int) -> WebhookEndpoint:
    """The clinic's active endpoint; ``NotFound`` for a removed one or another clinic's."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.clinic_id != clinic_id or not endpoint.active:
        raise NotFound(f"no webhook endpoint with id {endpoint_id}")
    return endpoint


def remove_endpoint(session: Session, clinic_id: int, endpoint_id: int, *, actor: str) -> WebhookEndpoint:
    """Stop sending to the endpoint; the events it was still owed are dropped. ``NotFound`` as above."""
    endpoint = get_endpoint(session, clinic_id, endpoint_id)
    now = utcnow()
    endpoint.active = False
    endpoint.disabled_at = now
    dropped = session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.endpoint_id == endpoint.id, WebhookEvent.status == EventStatus.PENDING)
        .values(status=EventStatus.DROPPED, next_attempt_at=None)
    ).rowcount  # type: ignore[attr-defined]
    audit(
        session,
        clinic_id=clinic_id,
        actor=actor,
        action=AuditAction.WEBHOOK_REMOVE,
        subject_type="webhook_endpoint",
        subject_id=endpoint.id,
        dropped=dropped,
    )
    return endpoint


def recent_events(session: Session, endpoint: WebhookEndpoint, limit: int = 50) -> list[WebhookEvent]:
    """The endpoint's newest events, newest first."""
    return list(
        session.scalars(
            select(WebhookEvent)
            .where(WebhookEvent.endpoint_id == endpoint.id)
            .order_by(WebhookEvent.id.desc())
            .limit(limit)
        )
    )


def endpoint_json(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """An endpoint as the API and ``--json`` show it: never its secret (only its creator sees that, once)."""
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "label": endpoint.label,
        "active": endpoint.active,
        "created_at": endpoint.created_at.isoformat(),
        "created_by": endpoint.created_by,
    }


def event_json(event: WebhookEvent) -> dict[str, Any]:
    """One owed event and how its delivery went."""
    return {
        "event_id": event.event_id,
        "type": event.type.value,
        "status": event.status.value,
        "attempts": event.attempts,
        "occurred_at": event.occurred_at.isoformat(),
        "next_attempt_at": event.next_attempt_at.isoformat() if event.next_attempt_at else None,
        "last_status_code": event.last_status_code,
        "last_error": event.last_error,
        "delivered_at": event.delivered_at.isoformat() if event.delivered_at else None,
    }

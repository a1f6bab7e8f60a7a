"""``engage webhook add|list|remove|events``: a clinic's outgoing webhook endpoints (the secret is shown once)."""

from __future__ import annotations

import click

from engage.cli.common import ACTOR, emit, json_option, table, user_errors
from engage.db import session_scope
from engage.integrations import endpoints


@click.group()
def webhook() -> None:
    """Outgoing webhooks: signed JSON events (message.sent, reply.received, ...) posted to a clinic's URL."""


@webhook.command("add")
@click.option("--clinic", "clinic_id", type=int, required=True, help="The clinic whose events are sent.")
@click.option("--url", required=True, help="Where to post events: https://... (http only to this machine).")
@click.option("--label", default="", help="What the endpoint is, e.g. 'PMS sync'.")
@json_option
@user_errors
def webhook_add(clinic_id: int, url: str, label: str) -> None:
    """Register an endpoint and print its signing secret once: store it now, it cannot be shown again."""
    with session_scope() as session:
        endpoint = endpoints.create_endpoint(session, clinic_id, url, label, actor=ACTOR)
        data = endpoints.endpoint_json(endpoint) | {"secret": endpoint.secret}
    emit(data, f"webhook endpoint {data['id']} added; its signing secret (shown once):\n{data['secret']}")


@webhook.command("list")
@click.option("--clinic", "clinic_id", type=int, required=True)
@json_option
@user_errors
def webhook_list(clinic_id: int) -> None:
    """The clinic's endpoints (never their secrets)."""
    with session_scope() as session:
        data = {"endpoints": [endpoints.endpoint_json(e) for e in endpoints.list_endpoints(session, clinic_id)]}
    emit(data, lambda: table(data["endpoints"], ["id", "url", "label", "created_at", "created_by"]))


@webhook.command("remove")
@click.argument("endpoint_id", type=int)
@click.option("--clinic", "clinic_id", type=int, required=True)
@json_option
@user_errors
def webhook_remove(endpoint_id: int, clinic_id: int) -> None:
    """Stop posting to an endpoint; events it was still owed are dropped."""
    with session_scope() as session:
        data = endpoints.endpoint_json(endpoints.remove_endpoint(session, clinic_id, endpoint_id, actor=ACTOR))
    emit(data, f"webhook endpoint {endpoint_id} removed")


@webhook.command("events")
@click.argument("endpoint_id", type=int)
@click.option("--clinic", "clinic_id", type=int, required=True)
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@json_option
@user_errors
def webhook_events(endpoint_id: int, clinic_id: int, limit: int) -> None:
    """The endpoint's newest events and how their delivery went (attempts, last answer)."""
    with session_scope() as session:
        endpoint = endpoints.get_endpoint(session, clinic_id, endpoint_id)
        data = {"events": [endpoints.event_json(e) for e in endpoints.recent_events(session, endpoint, limit)]}
    emit(
        data,
        lambda: table(
            data["events"], ["event_id", "status", "attempts", "last_status_code", "last_error", "occurred_at"]
        ),
    )

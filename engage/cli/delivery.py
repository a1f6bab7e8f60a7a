"""``engage tick``: one synchronous dispatch-and-send pass, through the same code the workers run."""

from __future__ import annotations

import contextlib
from datetime import datetime, timezone

import click

from engage import clock
from engage.cli.common import UserError, emit, json_option, user_errors
from engage.delivery import dispatch
from engage.delivery.providers.base import ConfigurationError


def _instant(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 date and time: {value!r} (e.g. 2026-03-02T09:00:00Z)") from None
    # A time without an offset is read as UTC, the outbox's own zone.
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed


def _summary(counts: dict[str, int]) -> str:
    shown = [f"{key} {value}" for key, value in counts.items() if value or key in ("claimed", "sent")]
    return ", ".join(shown)


@click.command("tick")
@click.option(
    "--now",
    "now",
    callback=_instant,
    metavar="ISO",
    help="Run as if at this time (ISO 8601; UTC when no offset is given). Default: the real time.",
)
@json_option
@user_errors
def tick(now: datetime | None) -> None:
    """Claim every due message and send it now, as the workers would.

    Prints counts: claimed, sent, failed, skipped, cancelled, retry (back on the
    schedule after a transient error), deferred (quiet hours, a moved
    appointment), unknown (the provider may have it: check before resending).
    Then posts the outgoing webhook events that are due (``webhooks_delivered``, ...).
    """
    from engage.integrations import deliver  # HTTP client and signing only when a tick runs

    try:
        counts = dispatch.tick(now)
    except ConfigurationError as exc:  # the message that hit it is back in ``queued``; nothing was lost
        raise UserError(f"configuration: {exc}") from exc
    with clock.frozen(now) if now is not None else contextlib.nullcontext():
        counts |= {f"webhooks_{key}": value for key, value in deliver.deliver_due().items()}
    emit(counts, _summary(counts))

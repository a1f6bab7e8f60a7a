"""Applying email events (already verified and normalized by the provider module) to our messages and consent.

Each event finds its message by our id (the custom arg the provider echoes), else by the
provider's message id we stored at send time; events for messages we do not know are
ignored. :func:`engage.delivery.status.apply_reports` records each event once (by its
event id) and moves the message forwards only; then each new event that means "never
email this address again" (``engage.conversation.consent.email_opt_out_source``) opts
its patient out of email, once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.conversation.consent import email_opt_out_source, opt_out_of_email
from engage.delivery.providers.sendgrid import EmailEvent
from engage.delivery.status import Report, apply_reports
from engage.records.models import Channel, Message

log = logging.getLogger(__name__)

_CHUNK = 1000  # ids per IN (...) list


def apply_email_events(session: Session, provider: str, events: Sequence[EmailEvent]) -> int:
    """Apply a batch in the caller's transaction; returns how many events were new.

    Set-based whatever the batch size (SendGrid posts up to thousands of events at a time):
    two queries find the messages, one :func:`apply_reports` records and applies the events
    with the messages locked in id order, then the new suppressing events opt their patients out.
    """
    found = find_messages(session, events)
    reports: list[Report] = []
    patients: dict[int, int] = {}  # message id -> patient id
    suppressing: dict[str, str] = {}  # event id -> consent source
    for index, event in enumerate(events):
        message = found.get(index)
        if message is None:
            continue
        message_id, patients[message_id] = message
        reports.append(
            Report(
                message_id,
                event.status,
                event.event_id,
                event.payload,
                error_code=event.error_code,
                provider_message_id=event.x_message_id,
                error=event.error,
            )
        )
        source = email_opt_out_source(event.name, event.reject_reason)
        if source:
            suppressing[event.event_id] = source
    if len(reports) < len(events):
        log.info("%s: %d events for unknown messages ignored", provider, len(events) - len(reports))
    new = apply_reports(session, provider, reports)
    opt_outs: dict[int, tuple[str, int]] = {}  # patient id -> (source, message id), first event wins
    for report in new:
        if report.event_id in suppressing:
            opt_outs.setdefault(patients[report.message_id], (suppressing[report.event_id], report.message_id))
    for patient_id, (source, message_id) in sorted(opt_outs.items()):
        opt_out_of_email(session, patient_id, source, f"message {message_id}")
    return len(new)


def find_messages(session: Session, events: Sequence[EmailEvent]) -> dict[int, tuple[int, int]]:
    """Index in ``events`` -> (message id, patient id) of our email message, for each event we know.

    By our id, else by the provider's message id; two queries for the whole batch.
    """
    ours = {i: e.message_id for i, e in enumerate(events) if e.message_id is not None}
    by_x_message_id = {i: e.x_message_id for i, e in enumerate(events) if e.message_id is None and e.x_message_id}
    email = Message.channel == Channel.EMAIL
    known: dict[int, int] = {}
    wanted = sorted(set(ours.values()))
    for start in range(0, len(wanted), _CHUNK):
        query = select(Message.id, Message.patient_id).where(Message.id.in_(wanted[start : start + _CHUNK]), email)
        known.update((m, p) for m, p in session.execute(query))
    by_provider_id: dict[str, tuple[int, int]] = {}
    wanted_x = sorted({x for x in by_x_message_id.values() if x})
    for start in range(0, len(wanted_x), _CHUNK):
        by_x = (
            select(Message.provider_message_id, Message.id, Message.patient_id)
            .where(Message.provider_message_id.in_(wanted_x[start : start + _CHUNK]), email)
            .order_by(Message.id.desc())
        )  # the lowest id wins a (never expected) tie
        by_provider_id.update({x: (m, p) for x, m, p in session.execute(by_x) if x})
    found = {i: (m, known[m]) for i, m in ours.items() if m in known}
    found.update({i: by_provider_id[x] for i, x in by_x_message_id.items() if x and x in by_provider_id})
    return found

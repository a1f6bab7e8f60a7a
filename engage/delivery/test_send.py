""" "Send a test to me": one step of a sequence, as its draft (or else its published version) words it, sent to
the staff member's own phone or email through the clinic's configured provider, marked TEST.

It is not a patient's message: no outbox row is written, so no frequency cap, metric, analytics count or
patient timeline ever sees it, and the dispatcher cannot send it twice. It is rendered for the sample
patient (``engage.content.message_context.sample_context``), whose links are visibly not real.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session

from engage.content.message_context import sample_context
from engage.content.rendering import TemplateError, as_texts, render_email, render_sms
from engage.delivery.providers import OutgoingEmail, OutgoingSms, email_provider, sms_provider
from engage.errors import InvalidInput
from engage.records.models import Channel, Clinic
from engage.records.validation import phone_e164
from engage.schedule.versions import get_draft, published_content

log = logging.getLogger(__name__)

SMS_MARK = "TEST: "
SUBJECT_MARK = "[TEST] "


@dataclass(frozen=True)
class TestSent:
    channel: str
    to: str  # shown back to the staff member who asked (their own address), never logged
    provider_message_id: str


def _texts_and_step(session: Session, clinic_id: int, key: str, step_key: str) -> tuple[dict[str, str], str, str]:
    draft = get_draft(session, clinic_id, key)
    if draft is not None:
        for step in draft.definition.get("steps") or []:
            if isinstance(step, dict) and step.get("key") == step_key:
                return dict(draft.texts), str(step.get("channel", "sms")), str(step.get("template", ""))
        raise InvalidInput(f"the draft has no step {step_key!r}")
    content = published_content(session, clinic_id, key)
    step = content.sequence.step(step_key)
    return dict(content.texts), step.channel.value, step.template


def send_test(
    session: Session,
    clinic_id: int,
    key: str,
    step_key: str,
    *,
    locale: str,
    staff_email: str,
    phone: str | None,
) -> TestSent:
    """Send step ``step_key`` of sequence ``key`` to the staff member. An SMS step needs ``phone`` (any format
    the clinic's region reads); an email step goes to ``staff_email``. Raises ``InvalidInput`` (a text that does
    not render, a phone number that is not one) before anything is sent."""
    clinic = session.get_one(Clinic, clinic_id)
    texts, channel, template = _texts_and_step(session, clinic_id, key, step_key)
    locale = locale if locale in ("en", "es") else "en"
    context = sample_context(template, channel, locale)
    stored = as_texts(texts)
    try:
        if channel == Channel.SMS.value:
            if not (phone or "").strip():
                raise InvalidInput("give your mobile number: this step is an SMS")
            to = phone_e164(phone or "", clinic.region)
            body = SMS_MARK + render_sms(template, {**context, "first_sms": True}, locale, None, stored).body
            sender = clinic.sms_from if clinic.sms_from and clinic.sms_from.startswith("+") else None
            accepted = sms_provider().send_sms(OutgoingSms(message_id=0, to=to, body=body, sender=sender))
        else:
            to = staff_email
            email = render_email(template, context, locale, None, stored)
            accepted = email_provider().send_email(
                OutgoingEmail(
                    message_id=0,
                    to=to,
                    from_email=clinic.email_from,
                    from_name=clinic.name,
                    subject=SUBJECT_MARK + email.subject,
                    text="TEST: this is how the message reads; it was not sent to a patient.\n\n" + email.text,
                    html=email.html,
                    categories=("engage-test",),
                )
            )
    except TemplateError as exc:
        raise InvalidInput(f"the text does not render: {exc}") from None
    log.info("test send", extra={"sequence": key, "step": step_key, "channel": channel, "clinic_id": clinic_id})
    return TestSent(channel, to, accepted.provider_message_id)

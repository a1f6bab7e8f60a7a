"""A template rendered with sample data in every locale, for staff to read before patients do."""

from __future__ import annotations

from dataclasses import dataclass

from engage.content.message_context import sample_context
from engage.content.rendering import (
    TemplateError,
    Texts,
    render_email,
    render_sms,
    resolve_template,
    template_locales,
)


@dataclass(frozen=True)
class Preview:
    """One rendering: ``locale`` asked for, ``effective`` locale used (English when no variant), the text."""

    channel: str
    template: str
    locale: str
    effective: str
    subject: str | None = None
    body: str = ""
    segments: int | None = None
    error: str | None = None


def preview_all_locales(channel: str, template: str, texts: Texts | None = None) -> list[Preview]:
    """``template`` rendered with sample data (first SMS, day 1) in each locale engage has templates for;
    ``texts``: a clinic's stored version of it (a published sequence's), else the files."""
    previews = []
    for locale in template_locales():
        try:
            effective, _files = resolve_template(channel, template, locale, None, texts)
            context = sample_context(template, channel, locale)
            if channel == "email":
                email = render_email(template, context, locale, None, texts)
                previews.append(Preview(channel, template, locale, effective, subject=email.subject, body=email.text))
            else:
                sms = render_sms(template, context, locale, None, texts)
                previews.append(Preview(channel, template, locale, effective, body=sms.body, segments=sms.segments))
        except TemplateError as exc:
            previews.append(Preview(channel, template, locale, locale, error=str(exc)))
    return previews

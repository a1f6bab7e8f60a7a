"""One message text as the editor shows it while it is typed: rendered for a sample patient, its SMS encoding
and segment count, and the content checks ``engage templates check`` applies (:mod:`engage.content.checks`),
each as a sentence."""

from __future__ import annotations

from dataclasses import dataclass, field

from engage.config import get_settings
from engage.content.checks import MAX_SEGMENTS, email_preview
from engage.content.condition_words import condition_words_in
from engage.content.message_context import sample_context
from engage.content.overlay import render_with_texts
from engage.content.rendering import TemplateError, finish_sms
from engage.content.sms_text import GSM7, non_gsm_replaceable, segment_info
from engage.errors import InvalidInput
from engage.web.staff.sequence_editor_form import text_label, text_locale


@dataclass(frozen=True)
class TextCheck:
    path: str
    label: str
    rendered: str | None = None
    encoding: str | None = None
    segments: int | None = None
    units: int | None = None
    problems: list[str] = field(default_factory=list)


def _template_of(path: str) -> tuple[str, str]:
    channel, _, file = path.partition("/")
    return channel, file.partition(".")[0]


def check_text(path: str, source: str, words: list[str] | None = None) -> TextCheck:
    """``source`` as the text stored at ``path`` (``sms/stretch.txt``), rendered with the sample patient."""
    channel, template = _template_of(path)
    label = text_label(path)
    words = get_settings().condition_words if words is None else words
    if not source.strip():
        what = "SMS" if channel == "sms" else label.split(",")[0].lower()
        return TextCheck(path, label, problems=[f"The {what} is empty: write what the patient should read."])
    locale = text_locale(path)
    context = {**sample_context(template, channel, locale), "locale": locale}
    try:
        rendered = render_with_texts(path, {path: source}, context)
    except (InvalidInput, TemplateError) as exc:
        detail = exc.detail if isinstance(exc, TemplateError) else str(exc)
        hint = " Pick a variable from the list." if "undefined" in detail or "unknown" in detail.lower() else ""
        return TextCheck(path, label, problems=[f"It does not render: {detail}.{hint}"])
    problems: list[str] = []
    if channel == "sms":
        body = finish_sms(rendered, locale, True)
        encoding, segments, units = segment_info(body)
        odd = sorted(set(non_gsm_replaceable(source.replace("\t", ""))))
        if odd:
            problems.append(
                "It holds characters with a plain look-alike that would be replaced: "
                + ", ".join(f"U+{ord(ch):04X}" for ch in odd)
                + "."
            )
        if encoding != GSM7:
            problems.append(
                "It is not GSM-7 (a character such as á, í, ó or ú): a segment then holds 70 characters instead "
                "of 160. Rewrite the words to need none."
            )
        if segments > MAX_SEGMENTS:
            problems.append(
                f"It is {segments} SMS segments with the sample patient; at most {MAX_SEGMENTS}: shorten it."
            )
        for word in condition_words_in(body, words):
            problems.append(f"It names “{word}”: an SMS shows on a lock screen and must not name a condition.")
        return TextCheck(path, label, body, encoding, segments, units, problems)
    part = path.rsplit(".", 2)
    if path.endswith(".subject.txt"):
        subject = " ".join(rendered.split())
        if not subject:
            problems.append("The subject is empty.")
        for word in condition_words_in(subject, words):
            problems.append(f"The subject names “{word}”: a phone's lock screen shows it; the body may.")
        return TextCheck(path, label, subject, problems=problems)
    html = part[-1] == "html"
    if not html:
        for word in condition_words_in(email_preview(rendered), words):
            problems.append(f"The first line names “{word}”: a phone previews it under the subject.")
    clinic = context["clinic"]
    if clinic["name"] not in rendered and not (html and clinic["name"].replace("&", "&amp;") in rendered):
        problems.append("The clinic's name is missing: add {{ clinic.name }}.")
    if not all(line in rendered for line in clinic["address_lines"]):
        problems.append("The clinic's postal address is missing (the law requires it): add {{ clinic.address }}.")
    if context["unsubscribe_url"] not in rendered:
        problems.append("The unsubscribe link is missing (the law requires it): add {{ unsubscribe_url }}.")
    return TextCheck(path, label, rendered.strip(), problems=problems)

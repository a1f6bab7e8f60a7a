"""One message text as the editor shows it while it is typed: rendered for a sample patient, its SMS encoding
and segment count, and the content checks ``engage templates check`` applies (:mod:`engage.content.checks`),
each as a sentence."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from engage.config import get_settings
from engage.content.checks import check_texts
from engage.content.message_context import sample_context
from engage.content.overlay import render_with_texts
from engage.content.rendering import TemplateError, Texts, finish_sms
from engage.content.sms_text import segment_info
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


def check_text(
    path: str, source: str, siblings: Mapping[str, str] | None = None, words: list[str] | None = None
) -> TextCheck:
    """``source`` as the text stored at ``path`` (``sms/stretch.txt``), rendered with the sample patient and
    checked; ``siblings``: the other texts in the form (a template's parts and languages are checked together)."""
    channel, template = _template_of(path)
    label = text_label(path)
    words = get_settings().condition_words if words is None else words
    if not source.strip():
        what = "SMS" if channel == "sms" else label.split(",")[0].lower()
        return TextCheck(path, label, problems=[f"The {what} is empty: write what the patient should read."])
    locale = text_locale(path)
    context = {**sample_context(template, channel, locale), "locale": locale}
    try:
        rendered = render_with_texts(path, Texts({path: source}), context)
    except (InvalidInput, TemplateError) as exc:
        detail = exc.detail if isinstance(exc, TemplateError) else str(exc)
        hint = " Pick a variable from the list." if "undefined" in detail or "unknown" in detail.lower() else ""
        return TextCheck(path, label, problems=[f"It does not render: {detail}.{hint}"])
    problems = _checks(path, source, siblings or {}, words)
    if channel == "sms":
        body = finish_sms(rendered, locale, True)
        encoding, segments, units = segment_info(body)
        return TextCheck(path, label, body, encoding, segments, units, problems)
    if path.endswith(".subject.txt"):
        return TextCheck(path, label, " ".join(rendered.split()), problems=problems)
    return TextCheck(path, label, rendered.strip(), problems=problems)


def _checks(path: str, source: str, siblings: Mapping[str, str], words: list[str]) -> list[str]:
    """The rules ``templates check`` applies to stored texts (:func:`engage.content.checks.check_texts`), over
    the template's texts as they are in the form, for the one text typed; each as a sentence."""
    channel, template = _template_of(path)
    prefix = f"{channel}/{template}."
    texts = {p: s for p, s in siblings.items() if p.startswith(prefix)} | {path: source}
    found: dict[str, str] = {}
    for problem in check_texts(texts, [path], words):
        if problem.file != path:
            continue
        detail = problem.detail.rstrip(".")
        lead = _LEADS.get(problem.rule, "")
        sentence = lead + (detail if lead else detail[:1].upper() + detail[1:]) + "."
        if problem.rule == "render-error" and "undefined" in detail:
            sentence += " Pick a variable from the list."
        # The longest sample data decides a length: one sentence for the rule, not one per sample.
        found.setdefault(problem.rule if problem.rule == "sms-segments" else sentence, sentence)
    return list(found.values())


_LEADS = {
    "sms-segments": "Too long for an SMS: ",
    "render-error": "It does not render: ",
    "sms-lookalike": "A character with a plain look-alike: ",
    "sms-condition-word": "A lock screen would show a condition: it ",
}

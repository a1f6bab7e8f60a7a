"""The rules behind ``engage templates check``: every template, every locale, rendered with sample data.

A template fails on:

- ``render-error``: it does not render (syntax error, missing variable, missing file);
- ``sms-segments``: an SMS longer than two segments with worst-case sample data
  (a 40-character clinic name, long weekday and month names, the STOP line);
- ``sms-ucs2``: an SMS that is not GSM-7 with sample data (Spanish is written to need no á, í, ó, ú);
- ``sms-lookalike``: an SMS holding a non-GSM character with a GSM look-alike
  (curly quote, no-break space, dash, ellipsis...), in its output or its source;
  we would replace it, but the author should see what they typed;
- ``sms-condition-word``: an SMS naming a condition or treatment (``settings.condition_words``,
  at the start of a word, so "needles" for "needle"; :mod:`engage.content.condition_words`, the
  rule the send path applies too), which a lock screen shows to anyone (HIPAA minimum necessary);
- ``email-preview-condition-word``: an email's subject or its first line (the start of
  the text a phone shows under the subject: :data:`PREVIEW_CHARS` characters) names a
  condition or treatment; the body below may;
- ``emergency-rule``: a template words the emergency rule (says 911) instead of including
  ``safety/emergency.txt``, or an SMS form of the rule is not its long form without the brackets;
- ``exercise``: an exercise (``templates/exercises/*.yaml``) lacks a language, or does not
  say to stop when pain, tingling or numbness spreads down the leg;
- ``email-clinic-name``, ``email-address``, ``email-unsubscribe``: the text or HTML
  part of an email lacks the clinic's name, postal address or unsubscribe link
  (CAN-SPAM requires the last two).

The patient pages (``templates/web/*.html``) are rendered too, in the same sandbox, with
sample values for every page variable; one that does not render is a ``render-error``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from markupsafe import escape

from engage.config import get_settings
from engage.content import links
from engage.content.condition_words import CONDITION_WORD_RULE, condition_words_in
from engage.content.exercises import ExerciseError, exercises_dir, parse_exercise
from engage.content.message_context import SAMPLE_START, sample_context
from engage.content.pages import SAMPLE_PAGE, page_names, render_page
from engage.content.rendering import (
    DEFAULT_LOCALE,
    TemplateError,
    Texts,
    finish_sms,
    render_email,
    render_file,
    render_sms_raw,
    resolve_template,
    template_locales,
    template_names,
    templates_root,
)
from engage.content.safety import SAFETY_DIR, without_brackets
from engage.content.sms_text import LOOKALIKES, non_gsm_replaceable, segment_info

MAX_SEGMENTS = 2
#: How much of an email's text a phone's notification and inbox list show under the subject.
PREVIEW_CHARS = 140
EMAIL_PREVIEW_RULE = "email-preview-condition-word"
#: Appointment starts to try: the longest English names (Wednesday, September), and a Saturday,
#: whose Spanish name ("sábado") makes the message UCS-2.
SAMPLE_STARTS: tuple[datetime, ...] = (SAMPLE_START, SAMPLE_START - timedelta(days=4))
STEP_DAYS = (1, 2, 3)


@dataclass(frozen=True)
class Problem:
    file: str
    rule: str
    detail: str


@dataclass
class Report:
    checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, file: str, rule: str, detail: str) -> None:
        problem = Problem(file, rule, detail)
        if problem not in self.problems:  # an English fallback is checked once per locale; report it once
            self.problems.append(problem)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "problems": [asdict(p) for p in self.problems]}


def check_templates(templates_dir: Path | None = None, condition_words: list[str] | None = None) -> Report:
    """Render every email and SMS template in every locale any template has, and every patient page;
    collect what breaks a rule."""
    root = templates_root(templates_dir)
    words = condition_words if condition_words is not None else get_settings().condition_words
    report = Report()
    for locale in template_locales(root):
        for name in template_names("email", root):
            report.checked += 1
            _check_email(report, root, name, locale, words)
        for name in template_names("sms", root):
            report.checked += 1
            _check_sms(report, root, name, locale, words)
    _check_exercises(report, root)
    _check_emergency_rule(report, root)
    for page in page_names(root):
        report.checked += 1
        try:
            render_page(page, SAMPLE_PAGE, root)
        except TemplateError as exc:
            _render_error(report, exc)
    return report


def check_texts(
    texts: Mapping[str, str], paths: Iterable[str] | None = None, condition_words: list[str] | None = None
) -> list[Problem]:
    """The problems of stored template sources (a clinic's draft or version of a sequence) under the rules
    ``templates check`` applies, for the templates of ``paths`` (default: every text), each in its locale."""
    stored = texts if isinstance(texts, Texts) else Texts(texts)
    wanted = list(paths) if paths is not None else None
    return check_stored_texts(stored, None, condition_words, wanted).problems


def check_stored_texts(
    texts: Texts,
    templates_dir: Path | None = None,
    condition_words: list[str] | None = None,
    paths: list[str] | None = None,
) -> Report:
    """The same rules over template sources stored in the database (a clinic's version of a sequence): every
    template they hold (or those of ``paths``), in English and every locale they hold (or those of ``paths``),
    with partials from the files."""
    root = templates_root(templates_dir)
    words = condition_words if condition_words is not None else get_settings().condition_words
    report = Report()
    chosen = paths if paths is not None else list(texts)
    locales = [DEFAULT_LOCALE, *sorted({_locale_of(path) for path in chosen} - {DEFAULT_LOCALE})]
    if paths is not None:
        locales = sorted({_locale_of(path) for path in paths})
    templates = sorted({_template_of(path) for path in chosen} if paths is not None else texts.templates)
    for channel, name in templates:
        for locale in locales:
            report.checked += 1
            if channel == "email":
                _check_email(report, root, name, locale, words, texts)
            elif channel == "sms":
                _check_sms(report, root, name, locale, words, texts)
            else:
                report.add(f"{channel}/{name}", "render-error", f"unknown channel {channel!r}")
    for path, source in sorted(texts.items()):
        if paths is not None and path not in paths:
            continue
        if "911" in _COMMENT.sub("", source):
            report.add(path, "emergency-rule", _OWN_EMERGENCY_RULE)
    return report


def _template_of(path: str) -> tuple[str, str]:
    channel, _, file = path.partition("/")
    return channel, file.partition(".")[0]


def _locale_of(path: str) -> str:
    middle = path.partition("/")[2].split(".")[1:-1]  # name.[es.]txt, name.[es.]subject.txt
    middle = [part for part in middle if part != "subject"]
    return middle[0] if middle else DEFAULT_LOCALE


_OWN_EMERGENCY_RULE = f'words the emergency rule itself; include "{SAFETY_DIR}/emergency.txt" (or its SMS form)'


def _check_exercises(report: Report, root: Path) -> None:
    """``exercise``: every file in ``exercises/`` parses, in every shipped language, saying when to stop."""
    folder = exercises_dir(root)
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        report.checked += 1
        try:
            parse_exercise(path)
        except ExerciseError as exc:
            report.add(str(path.relative_to(root)), "exercise", str(exc).removeprefix(f"{path}: "))


_COMMENT = re.compile(r"\{#.*?#\}", re.S)


def _check_emergency_rule(report: Report, root: Path) -> None:
    """``emergency-rule``: one wording everywhere. A template that says 911 must include the rule's file
    rather than word it itself, and each SMS form must be its long form without the words in brackets."""
    for folder in ("email", "sms", "web"):
        for path in sorted((root / folder).glob("*")) if (root / folder).is_dir() else []:
            if not path.is_file():
                continue
            source = _COMMENT.sub("", path.read_text(encoding="utf-8"))
            if "911" in source:
                report.add(str(path.relative_to(root)), "emergency-rule", _OWN_EMERGENCY_RULE)
    safety = root / SAFETY_DIR
    for long_form in sorted(safety.glob("emergency.*txt")) if safety.is_dir() else []:
        sms_form = safety / long_form.name.replace("emergency", "emergency-sms", 1)
        file = f"{SAFETY_DIR}/{long_form.name}"
        try:
            long_text = " ".join(render_file(file, {}, root).split())
            sms_text = " ".join(render_file(f"{SAFETY_DIR}/{sms_form.name}", {}, root).split())
        except TemplateError as exc:
            _render_error(report, exc)
            continue
        if sms_text != without_brackets(long_text):
            report.add(
                f"{SAFETY_DIR}/{sms_form.name}",
                "emergency-rule",
                f"is not {file} without the words in brackets: the rule must read the same everywhere",
            )


def _render_error(report: Report, exc: TemplateError) -> None:
    report.add(exc.template, "render-error", exc.detail + (f" (line {exc.line})" if exc.line else ""))


def _describe(ch: str) -> str:
    replacement = LOOKALIKES.get(ch, "")
    instead = f"would be sent as {replacement!r}" if replacement else "would be removed"
    return f"U+{ord(ch):04X} {unicodedata.name(ch, 'UNNAMED')} ({instead})"


def _line_of(source: str, ch: str) -> str:
    index = source.find(ch)
    return f" on line {source.count(chr(10), 0, index) + 1}" if index >= 0 else " in the output"


def _check_sms(
    report: Report, root: Path, name: str, locale: str, words: list[str], texts: Texts | None = None
) -> None:
    try:
        _loc, files = resolve_template("sms", name, locale, root, texts)
    except TemplateError as exc:
        _render_error(report, exc)
        return
    file = files["txt"]
    source = texts[file] if texts is not None and file in texts else (root / file).read_text(encoding="utf-8")
    if not source.strip():
        report.add(file, "render-error", "the SMS text is empty")
        return
    # Tabs are fine in a template's source (indentation inside tags); only in output do they cost.
    for ch in non_gsm_replaceable(source.replace("\t", "")):
        report.add(file, "sms-lookalike", _describe(ch) + _line_of(source, ch))
    days = STEP_DAYS if "step" in source else (1,)
    for day in days:
        for start in SAMPLE_STARTS:
            # With the practitioner's exercises picked (the sample's), and with none picked.
            for first_sms, picked in ((True, None), (False, None), (True, [])):
                context = sample_context(name, "sms", locale, step={"day": day}, exercise_keys=picked)
                context["first_sms"] = first_sms
                # A real link, as long as any patient's: the preview's "/q/preview" is 50 characters shorter.
                context["intake_url"] = links.longest_intake_url()
                if context["appointment"] is not None:
                    context["appointment"] = {
                        **context["appointment"],
                        "start": start,
                        "end": start + timedelta(minutes=45),
                    }
                try:
                    file, effective, raw = render_sms_raw(name, context, locale, root, texts)
                except TemplateError as exc:
                    _render_error(report, exc)
                    return
                for ch in non_gsm_replaceable(raw):
                    report.add(file, "sms-lookalike", _describe(ch) + _line_of(source, ch))
                body = finish_sms(raw, effective, first_sms)
                encoding, segments, units = segment_info(body)
                if encoding != "GSM-7":
                    report.add(
                        file,
                        "sms-ucs2",
                        "not GSM-7 with sample data (an accent outside GSM-7 such as á, í, ó, ú more than halves "
                        "what fits in a segment): rewrite the words to need none",
                    )
                if segments > MAX_SEGMENTS:
                    report.add(
                        file,
                        "sms-segments",
                        f"{segments} segments ({encoding}, {units} units) with sample data; at most {MAX_SEGMENTS}",
                    )
                for word in condition_words_in(body, words):
                    report.add(
                        file, CONDITION_WORD_RULE, f"mentions {word!r}; SMS must not name a condition or treatment"
                    )


def _contains(text: str, needle: str, html: bool) -> bool:
    return needle in text or (html and str(escape(needle)) in text)


def email_preview(text: str) -> str:
    """The start of an email's text part as a phone previews it: whitespace collapsed, :data:`PREVIEW_CHARS` long."""
    return " ".join(text.split())[:PREVIEW_CHARS]


def _check_email(
    report: Report, root: Path, name: str, locale: str, words: list[str], texts: Texts | None = None
) -> None:
    context = sample_context(name, "email", locale)
    try:
        _loc, files = resolve_template("email", name, locale, root, texts)
        email = render_email(name, context, locale, root, texts)
    except TemplateError as exc:
        _render_error(report, exc)
        return
    if not email.subject:
        report.add(files["subject.txt"], "render-error", "the subject is empty")
    for part, text in (("subject.txt", email.subject), ("txt", email_preview(email.text))):
        for word in condition_words_in(text, words):
            where = "subject" if part == "subject.txt" else "first line (the preview a phone shows)"
            report.add(files[part], EMAIL_PREVIEW_RULE, f"the {where} mentions {word!r}; the body below it may")
    clinic = context["clinic"]
    for part, text in (("txt", email.text), ("html", email.html)):
        html = part == "html"
        file = files[part]
        if not _contains(text, clinic["name"], html):
            report.add(file, "email-clinic-name", "the clinic's name is missing")
        if not all(_contains(text, line, html) for line in clinic["address_lines"]):
            report.add(file, "email-address", "the clinic's postal address is missing (clinic.address)")
        if not _contains(text, context["unsubscribe_url"], html):
            report.add(file, "email-unsubscribe", "the unsubscribe link is missing (unsubscribe_url)")

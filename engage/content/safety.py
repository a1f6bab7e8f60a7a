"""The emergency rule: one wording, kept in ``templates/safety/`` and included wherever it is given.

``emergency.txt`` (emails and pages) and ``emergency-sms.txt`` (SMS: the same words without the
explanation in brackets), with a ``.es`` variant each. Templates include the file; Python (the
automatic SMS answers) reads it through :func:`emergency_rule`. Safety wording: CLINICAL SIGN-OFF
REQUIRED for any change.
"""

from __future__ import annotations

import re
from pathlib import Path

from engage.config import ROOT
from engage.content.rendering import DEFAULT_LOCALE, babel_locale, render_file, templates_root

SAFETY_DIR = "safety"
SHIPPED_TEMPLATES = ROOT / "templates"
#: The words in brackets that only the long form carries (the SMS form has no room for them).
_BRACKETS = re.compile(r"\s*\([^)]*\)")


def emergency_file(locale: str | None, *, sms: bool, templates_dir: Path | None = None) -> str:
    """The rule's file for ``locale`` (``safety/emergency[-sms][.es].txt``), English when there is no variant."""
    stem = "emergency-sms" if sms else "emergency"
    language = babel_locale(locale).language
    root = templates_root(templates_dir)
    if language != DEFAULT_LOCALE and (root / SAFETY_DIR / f"{stem}.{language}.txt").is_file():
        return f"{SAFETY_DIR}/{stem}.{language}.txt"
    return f"{SAFETY_DIR}/{stem}.txt"


def emergency_rule(locale: str | None, *, sms: bool = False, templates_dir: Path | None = None) -> str:
    """The emergency rule in ``locale``'s language, as one line.

    A templates folder made before the rule had its own file (a clinic's copy) falls back to the
    shipped one: an answer to a patient never fails for want of it. Raises ``TemplateError`` when
    the file does not render.
    """
    root = templates_root(templates_dir)
    if not (root / SAFETY_DIR).is_dir():
        root = SHIPPED_TEMPLATES
    text = render_file(emergency_file(locale, sms=sms, templates_dir=root), {}, root)
    return " ".join(text.split())


def without_brackets(text: str) -> str:
    """``text`` without its words in brackets: what the long form of the rule must become to be the SMS form."""
    return " ".join(_BRACKETS.sub("", text).split())

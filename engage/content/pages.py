"""The pages patients open from their messages (``templates/web/``), rendered like messages.

Staff may edit these templates as they edit messages, so they get the same
sandboxed Jinja environment (:func:`engage.content.rendering.render_file`): a
template cannot reach Python internals, and a misspelt variable is an error, not a
blank. Every page receives :data:`PAGE_VARIABLES` (with the caller's values over
them), and ``engage templates check`` renders each page with :data:`SAMPLE_PAGE`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engage.content.rendering import render_file, templates_root

#: Every variable a page may use, with its value when the page has none.
PAGE_VARIABLES: dict[str, Any] = {
    "lang": "en",  # the <html lang> attribute: the patient's language
    "clinic_name": None,
    "channel_words": "messages",  # "emails" / "text messages" on the unsubscribe pages
    "note": None,  # a correction to show above a form ("choose a whole number from 0 to 10")
    "score": None,  # the answer just recorded
    "selected": None,  # the score a one-click link pre-selects, not yet sent
    "phone": None,  # the clinic's phone (E.164), shown as a tel: link
    "exercises": [],  # the exercises page: the practitioner's picks (engage.content.exercises views)
    "default_clinic": "Your clinic",  # shown when the clinic is unknown, in the page's language
    "phone_tel": None,  # the clinic's phone, E.164, for tel: links
    "phone_display": None,  # the clinic's phone as people dial it
    "numbers": [str(n) for n in range(11)],  # 0-10 as the locale writes them (Babel)
    "channel": "email",  # "email" or "sms" on the unsubscribe pages
    "high": False,  # the recorded score calls for the safety line
    "recorded_on": "",  # when the answer was recorded, a Babel date in the patient's zone and language
    # the intake form's answers, to show them again
    "given": {"pain": "", "activities": [("", "")] * 3, "start_back": [""] * 9},
    "notes": {},  # the intake form: field name -> what to fix there
    "start_back": None,  # the STarT Back wording the clinic installed in the page's language (None: not asked)
    "activities": 0,  # how many PSFS activities the intake recorded
}
#: Worst-case sample values for ``engage templates check``.
SAMPLE_PAGE: dict[str, Any] = {
    "lang": "en",
    "clinic_name": "Riverside Physical Therapy & Wellness Co",
    "channel_words": "text messages",
    "note": "Please choose a whole number from 0 to 10.",
    "score": 10,
    "selected": 7,
    "phone": "+15035550123",
    "exercises": [
        {
            "key": "figure-four",
            "name": "Lying figure-four stretch",
            "steps": ["Lie on your back with both knees bent.", "Cross your right ankle over your left knee."],
            "hold_seconds": 30,
            "repeat": 3,
            "each_side": True,
            "stop_when": "Stop if pain, tingling or numbness spreads down your leg.",
            "image_url": "https://example.org/figure-four.png",
            "video_url": "https://example.org/figure-four.mp4",
        }
    ],
    "default_clinic": "Your clinic",
    "phone_tel": "+15035550123",
    "phone_display": "(503) 555-0123",
    "numbers": [str(n) for n in range(11)],
    "channel": "sms",
    "high": True,
    "recorded_on": "September 30, 2026",
    "given": {
        "pain": "11",
        "activities": [("Putting on socks and shoes in the morning", "3"), ("Sitting", ""), ("", "x")],
        "start_back": ["1", "0", "", "1", "1", "0", "1", "1", "3"],
    },
    "start_back": {
        "items": [
            f"Sample statement {n}, as long as the longest of the licensed wording might be." for n in range(1, 10)
        ],
        "agree": "Agree",
        "disagree": "Disagree",
        "bother": ["Not at all", "Slightly", "Moderately", "Very much", "Extremely"],
    },
    "notes": {
        "pain": "Choose how much pain you have now, from 0 to 10.",
        "rating_2": "Rate each activity you wrote from 0 to 10.",
        "activity_3": "Write the activity you rated, in a few words.",
        "rating_3": "Rate each activity you wrote from 0 to 10.",
        "start_back": "Answer all nine questions about your back, or leave them all empty.",
    },
    "activities": 3,
}


def page_names(templates_dir: Path | None = None) -> list[str]:
    """The page templates in ``templates/web/`` (files starting with ``_`` are layouts, not pages)."""
    folder = templates_root(templates_dir) / "web"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix == ".html" and p.name[0] not in "._")


def render_page(name: str, context: dict[str, Any] | None = None, templates_dir: Path | None = None) -> str:
    """The HTML of ``templates/web/<name>`` (autoescaped, sandboxed). Raises ``TemplateError``."""
    return render_file(f"web/{name}", {**PAGE_VARIABLES, **(context or {})}, templates_dir)

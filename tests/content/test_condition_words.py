"""The condition-word rule against every way it was shown to be got round (issue 14)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engage.config import Settings
from engage.content.condition_words import (
    _skeleton_unicode,
    condition_words_in,
    plan_words,
    skeleton,
    with_plan_words,
)

WORDS = Settings().condition_words

#: (what a clinic or template wrote, the configured word that must catch it)
BYPASSES = [
    ("StopSciatica", "sciatica"),
    ("NoMoreSciatica", "sciatica"),
    ("Sciatic Nerve Care", "sciatica"),
    ("iNeedle", "needle"),
    ("DryNeedling", "dry needling"),
    ("Punción-seca", "punción seca"),
    ("Acupuntura", "acupuntura"),
    ("Lycoming Orthopedic & Sports Acupuncture", "acupuncture"),
    (unicodedata.normalize("NFD", "Ciática"), "ciática"),  # decomposed: i + U+0301 COMBINING ACUTE ACCENT
    ("S\u0441i\u0430ti\u0441\u0430 Care", "sciatica"),  # Cyrillic с and а
    ("\u0405\u0441\u0456\u0430t\u0456\u0441\u0430", "sciatica"),  # Cyrillic Ѕ, с, і, а
    ("\uff33\uff23\uff29\uff21\uff34\uff29\uff23\uff21", "sciatica"),  # full-width ＳＣＩＡＴＩＣＡ
    ("_sciatica_", "sciatica"),
    ("S-c-i-a-t-i-c-a", "sciatica"),
    ("N E E D L E", "needle"),
    ("Dry\u00a0Needling Studio", "dry needling"),
    ("AGUJAS", "aguja"),
]


@pytest.mark.parametrize(("text", "word"), BYPASSES, ids=[text for text, _ in BYPASSES])
def test_every_known_bypass_is_caught(text: str, word: str) -> None:
    assert word in condition_words_in(text, WORDS)


@pytest.mark.parametrize(
    "text",
    [
        "Riverside Physical Therapy & Wellness Co",
        "Lycoming Ortho: see you on Wednesday, September 30 at 10:30 AM. To reschedule, call (503) 555-0123.",
        "Clínica Río: le esperamos el sábado 26 de septiembre a las 10:30. Responda C para confirmar.",
        "How is your pain today on a scale of 0 to 10?",
    ],
)
def test_ordinary_messages_name_nothing(text: str) -> None:
    assert condition_words_in(text, WORDS) == []


def test_the_skeleton_is_what_a_reader_sees() -> None:
    assert skeleton("Ｄｒｙ  Ｎｅｅｄｌｉｎｇ!") == "dryneedling"
    assert skeleton("Ci\u0301atica") == skeleton("Ciática") == "ciatica"
    assert skeleton("\u0440\u0430in") == "pain"  # Cyrillic р, а


def test_a_plans_own_words_are_added_but_not_a_bare_pain() -> None:
    assert plan_words("plantar fasciitis", "cupping", "pain", None, " ") == ["plantar fasciitis", "cupping"]
    words = with_plan_words(WORDS, "plantar fasciitis", "cupping")
    assert condition_words_in("FasciitisFix: see you soon", words) == ["plantar fasciitis"]
    assert condition_words_in("Cupping Corner", words) == ["cupping"]


@settings(max_examples=500)
@given(st.text(st.characters(max_codepoint=127), max_size=300))
def test_an_ascii_text_has_the_skeleton_the_unicode_path_gives(text: str) -> None:
    """ASCII takes a shortcut in skeleton(); it must agree with the full normalisation character for character."""
    assert skeleton(text) == _skeleton_unicode(text)

"""Our automatic SMS answers: GSM-7 in both languages (no accent doubles the price), no condition named."""

from __future__ import annotations

import pytest

from engage.config import get_settings
from engage.content.sms_text import is_gsm
from engage.conversation.outcomes import is_high_score
from engage.conversation.sms_replies import REPLIES, reply_text, words_for


@pytest.mark.parametrize("locale", sorted(REPLIES))
def test_every_answer_is_gsm7_and_names_no_condition(locale: str) -> None:
    assert set(REPLIES[locale]) == set(REPLIES["en"])
    for key in set(REPLIES[locale]) - {"clinic", "call", "no_phone"}:  # parts of the answers, not answers
        for phone in ("(415) 555-0199", None):
            text = reply_text(locale, key, clinic_name="Back in Motion", phone=phone, score=7)
            assert is_gsm(text), (locale, key, [c for c in text if not is_gsm(c)])
            assert not any(word in text.lower() for word in get_settings().condition_words), key


def test_spanish_is_rewritten_rather_than_stripped_of_accents() -> None:
    stop = reply_text("es", "stop", clinic_name="Back in Motion", phone=None)
    assert "ya no le enviaremos mensajes de texto" in stop and "recibira" not in stop


def test_regional_locales_use_their_language() -> None:
    assert words_for("es-MX") is REPLIES["es"] and words_for("es_US") is REPLIES["es"]
    assert words_for("fr") is REPLIES["en"] and words_for(None) is REPLIES["en"]


@pytest.mark.parametrize(
    ("score", "previous", "high"),
    [(8, None, True), (7, None, False), (7, 4, True), (6, 4, False), (2, 9, False), (10, 10, True)],
)
def test_high_score_is_eight_or_three_worse(score: int, previous: int | None, high: bool) -> None:
    assert is_high_score(score, previous) is high

"""The wording a clinic expects in the shipped messages (issue 14), in English and US Spanish."""

from __future__ import annotations

from engage.content.message_context import sample_context
from engage.content.rendering import render_email, render_sms


def _email(name: str, locale: str) -> tuple[str, str]:
    email = render_email(name, sample_context(name, "email", locale), locale)
    return email.text, email.html


def test_what_to_expect_reassures_gives_the_address_with_a_map_and_tel_links() -> None:
    text, html = _email("what-to-expect", "en")
    assert "explains each step before any needle, and nothing starts until you are ready" in text
    assert "Most people feel more relaxed afterwards" in text and "sweatpants or leggings" in text
    assert "1200 Riverside Avenue, Suite 210, Portland, OR 97201" in text and "google.com/maps/search" in text
    assert "Bring a list of the medicines you take" in text
    assert 'href="tel:+15035550123"' in html and "google.com/maps/search" in html


def test_what_to_expect_in_spanish_for_us_patients() -> None:
    text, html = _email("what-to-expect", "es")
    for phrase in ("examen físico", "Tome agua", "una pequeña marca morada", "pants deportivos o leggings"):
        assert phrase in text and phrase in html
    assert "hematoma" not in text and "moretón" not in html and "exploración" not in html
    assert 'href="tel:+15035550123"' in html


def test_reassessment_safety_lines_are_split_by_urgency_in_both_languages() -> None:
    text, html = _email("reassessment", "en")
    assert "EMERGENCY ROOM OR CALL 911 NOW if you have new trouble controlling your bladder or bowels" in text
    assert "Call us the same day at (503) 555-0123 if your pain is much worse" in text
    assert 'href="tel:911"' in html
    text, _html = _email("reassessment", "es")
    assert "SALA DE EMERGENCIAS O LLAME AL 911 AHORA MISMO" in text and "Comuníquese con nosotros el mismo día" in text


def test_aftercare_says_after_your_visit_never_today() -> None:
    for locale, phrase in (("en", "after your visit"), ("es", "después de su visita")):
        body = render_sms("aftercare", sample_context("aftercare", "sms", locale), locale).body
        assert phrase in body and "today" not in body and "hoy" not in body


def test_end_of_plan_email_shows_the_pain_trend_and_the_exercises() -> None:
    text, html = _email("end-of-plan", "en")
    assert "7 > 6 > 4 > 3" in text and "From 7 to 3" in text and "Lying figure-four stretch" in text
    assert "/x/" in text and "&rarr;" in html and 'href="tel:911"' in html
    text, _html = _email("end-of-plan", "es")
    assert "SUS EJERCICIOS" in text and "Estiramiento en forma de cuatro" in text

"""The wording a clinic expects in the shipped messages (issue 14), in English and US Spanish."""

from __future__ import annotations

from engage.content.message_context import sample_context
from engage.content.rendering import render_email, render_sms
from engage.content.safety import emergency_rule


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
    for phrase in ("examen físico", "Tome agua", "un pequeño moretón", "ducha tibia", "pants deportivos o leggings"):
        assert phrase in text and phrase in html
    assert "hematoma" not in text and "marca morada" not in html and "exploración" not in html
    assert "debilidad nuevos" in text and "primera cita" in text and "consultorio" not in text
    assert 'href="tel:+15035550123"' in html


def test_reassessment_safety_lines_are_split_by_urgency_in_both_languages() -> None:
    text, html = _email("reassessment", "en")
    assert emergency_rule("en") in text and emergency_rule("en") in html
    assert "Call us the same day at (503) 555-0123 if your pain gets much worse" in text
    assert "press the button on the page" in text and "one click" not in text and "next sessions" not in text
    text, _html = _email("reassessment", "es")
    assert emergency_rule("es") in text and "Llámenos el mismo día" in text


def test_aftercare_names_infection_signs_and_the_emergency_rule_never_today() -> None:
    # Quiet hours may hold it until the next morning, so it never says "today".
    for locale, sign in (("en", "Fever, a red, hot, swollen treated spot"), ("es", "fiebre, zona tratada roja")):
        body = render_sms("aftercare", sample_context("aftercare", "sms", locale), locale).body
        assert sign in body and emergency_rule(locale, sms=True) in body
        assert "today" not in body and "hoy" not in body


def test_end_of_plan_email_shows_the_pain_trend_and_the_exercises() -> None:
    text, html = _email("end-of-plan", "en")
    assert "7, then 6, then 4, then 3" in text and "From 7 to 3" in text and "Lying figure-four stretch" in text
    assert ">" not in text.split("YOUR EXERCISES")[0].split("YOUR PAIN SCORES")[1]  # not "greater than"
    assert "/x/" in text and "From 7 to 3" in html and emergency_rule("en") in html
    assert "(where a bike seat touches)" in text and "at (503) 555-0123 if your pain gets much worse" in text
    assert "comes back or gets worse" in text and "keep the pain away" not in text
    text, _html = _email("end-of-plan", "es")
    assert "SUS EJERCICIOS" in text and "Estiramiento en forma de cuatro" in text

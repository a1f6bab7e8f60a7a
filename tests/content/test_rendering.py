"""Rendering: every shipped template in every locale, escaping, strictness, locales, and message contexts."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from engage.content.links import read_reassessment_token, read_unsubscribe_token
from engage.content.message_context import SAMPLE_CLINIC, message_context, sample_context
from engage.content.rendering import (
    FILE_CHECK_SECONDS,
    RenderedEmail,
    RenderedSms,
    TemplateError,
    render_email,
    render_sms,
    template_locales,
    template_names,
    template_variables,
)
from engage.records.models import (
    Appointment,
    Channel,
    Clinic,
    Enrollment,
    Message,
    MessageStatus,
    Patient,
    TreatmentPlan,
)

SHIPPED_EMAIL = ["aftercare", "end-of-plan", "reassessment", "what-to-expect"]
SHIPPED_SMS = [
    "aftercare",
    "booking-confirmation",
    "no-show",
    "reassessment",
    "rebook",
    "staff-reply",
    "stretch",
    "visit-reminder",
    "welcome",
]
LOCALES = ["en", "es"]


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_shipped_templates_are_the_ones_the_issue_asks_for() -> None:
    assert template_names("email") == SHIPPED_EMAIL
    assert template_names("sms") == SHIPPED_SMS
    assert template_locales() == LOCALES


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("name", SHIPPED_EMAIL)
def test_each_shipped_email_renders_with_address_and_unsubscribe_link(name: str, locale: str) -> None:
    context = sample_context(name, "email", locale)
    email = render_email(name, context, locale)
    assert isinstance(email, RenderedEmail)
    assert email.subject and "\n" not in email.subject
    for part in (email.text, email.html):
        assert "Riverside Physical Therapy &" in part.replace("&amp;", "&")
        assert "1200 Riverside Avenue, Suite 210" in part
        assert "Portland, OR 97201" in part
        assert context["unsubscribe_url"] in part
    assert email.html.lstrip().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("day", [1, 2, 3])
@pytest.mark.parametrize("name", SHIPPED_SMS)
def test_each_shipped_sms_renders_within_two_segments(name: str, day: int, locale: str) -> None:
    sms = render_sms(name, sample_context(name, "sms", locale, step={"day": day}), locale)
    assert isinstance(sms, RenderedSms)
    assert sms.body.startswith("Riverside Physical Therapy & Wellness Co: ")
    assert sms.segments <= 2
    assert sms.encoding in ("GSM-7", "UCS-2")


def test_what_to_expect_covers_the_first_visit_in_english() -> None:
    text = render_email("what-to-expect", sample_context("what-to-expect", "email", "en"), "en").text
    for phrase in (
        "Wednesday, September 30 at 10:30 AM",
        "health history",
        "physical exam",
        "trigger points",
        "fine, sterile, single-use needles",
        "10 to 30 minutes",
        "small prick",
        "brief twitch or ache",
        "normal and expected",
        "bleeding disorder",
        "blood thinners",
        "active infection",
        "pregnant",
        "What to wear".upper(),
        "reschedule".upper(),
        "(503) 555-0123",
    ):
        assert phrase in text
    assert "cure" not in text.lower()


def test_what_to_expect_is_spanish_with_spanish_dates() -> None:
    email = render_email("what-to-expect", sample_context("what-to-expect", "email", "es"), "es")
    assert email.subject == "Su primera cita el miércoles 30 de septiembre: qué esperar"
    assert "el miércoles 30 de septiembre a las 10:30" in email.text
    assert "10:30 AM" not in email.text
    assert '<html lang="es">' in email.html
    assert "Darse de baja de estos correos" in email.html


def test_reassessment_email_has_one_click_links_for_every_score() -> None:
    context = sample_context("reassessment", "email", "en")
    email = render_email("reassessment", context, "en")
    for score in range(11):
        url = dict(context["reassessment_urls"])[score]
        assert url.endswith(f"?score={score}")
        assert f'href="{url}"' in email.html
        assert f"{score}: {url}" in email.text
    assert context["reassessment_form_url"] in email.text


def test_reassessment_sms_asks_for_a_number() -> None:
    sms = render_sms("reassessment", sample_context("reassessment", "sms", "en"), "en")
    assert "How is your pain today on a scale of 0 to 10? Reply with a number" in sms.body


def test_stretch_sms_prescribes_no_stretch_the_practitioner_did_not_pick() -> None:
    # Knee-to-chest for every sciatica patient can aggravate a disc: the prompt links to the picked ones instead.
    for day in (1, 2, 3):
        for picked in (None, []):
            body = render_sms(
                "stretch", sample_context("stretch", "sms", "en", step={"day": day}, exercise_keys=picked), "en"
            ).body
            assert "knee" not in body and "ankle" not in body


def test_patient_first_name_is_escaped_in_html_only() -> None:
    context = sample_context("what-to-expect", "email", "en")
    context["patient"] = {"first_name": "<script>alert(1)</script>"}
    email = render_email("what-to-expect", context, "en")
    assert "<script>" not in email.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
    assert "Hi <script>alert(1)</script>," in email.text  # plain text is not HTML: shown as typed


def test_clinic_name_with_ampersand_is_escaped_in_html() -> None:
    email = render_email("reassessment", sample_context("reassessment", "email", "en"), "en")
    assert "Riverside Physical Therapy &amp; Wellness Co" in email.html
    assert "Therapy & Wellness" not in email.html


def test_first_sms_carries_the_stop_line_and_later_ones_do_not() -> None:
    for locale, line in (("en", "Reply STOP to opt out."), ("es", "Responda STOP o BAJA para darse de baja.")):
        context = sample_context("visit-reminder", "sms", locale)
        assert render_sms("visit-reminder", context, locale).body.endswith(" " + line)
        context["first_sms"] = False
        assert "STOP" not in render_sms("visit-reminder", context, locale).body


def test_shipped_sms_name_no_condition() -> None:
    for locale in LOCALES:
        for name in SHIPPED_SMS:
            for day in (1, 2, 3):
                body = render_sms(name, sample_context(name, "sms", locale, step={"day": day}), locale).body.lower()
                for word in ("sciatica", "needl", "ciática", "ciatica", "punción", "diagnos"):
                    assert word not in body


def test_missing_variable_names_template_and_variable(tmp_path: Path) -> None:
    root = _write(tmp_path, {"sms/hello.txt": "Hi from {{ clinic.name }}.\n{{ patient.nickname }}\n"})
    context = sample_context("hello", "sms", "en")
    context["patient"] = {"first_name": "Zelda-Secret"}
    with pytest.raises(TemplateError) as info:
        render_sms("hello", context, "en", templates_dir=root)
    message = str(info.value)
    assert info.value.template == "sms/hello.txt"
    assert info.value.line == 2
    assert "sms/hello.txt" in message and "nickname" in message
    assert "Zelda-Secret" not in message


def test_undefined_top_level_variable_is_an_error_not_a_blank(tmp_path: Path) -> None:
    root = _write(tmp_path, {"sms/hello.txt": "See you {{ when }}."})
    with pytest.raises(TemplateError, match=r"sms/hello\.txt:1: undefined variable: 'when' is undefined"):
        render_sms("hello", sample_context("hello", "sms", "en"), "en", templates_dir=root)


def test_error_in_a_filter_never_quotes_patient_data(tmp_path: Path) -> None:
    root = _write(tmp_path, {"sms/hello.txt": "{{ patient.first_name|local_date }}"})
    context = sample_context("hello", "sms", "en")
    context["patient"] = {"first_name": "Zelda-Secret"}
    with pytest.raises(TemplateError) as info:
        render_sms("hello", context, "en", templates_dir=root)
    assert "sms/hello.txt" in str(info.value)
    assert "Zelda-Secret" not in str(info.value)


def test_error_in_a_layout_names_the_layout(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "email/_layout.html": "<p>{{ clinic.fax }}</p>{% block content %}{% endblock %}",
            "email/note.subject.txt": "Hi",
            "email/note.txt": "Hi",
            "email/note.html": '{% extends "email/_layout.html" %}{% block content %}Hi{% endblock %}',
        },
    )
    with pytest.raises(TemplateError) as info:
        render_email("note", sample_context("note", "email", "en"), "en", templates_dir=root)
    assert info.value.template == "email/_layout.html"
    assert "fax" in info.value.detail


def test_sandbox_refuses_unsafe_attribute_access(tmp_path: Path) -> None:
    root = _write(tmp_path, {"sms/evil.txt": "{{ ''.__class__.__mro__[1].__subclasses__() }}"})
    with pytest.raises(TemplateError, match="unsafe|undefined"):
        render_sms("evil", sample_context("evil", "sms", "en"), "en", templates_dir=root)


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    root = _write(tmp_path, {"sms/broken.txt": "Hello\n{% if clinic %}\nno end"})
    with pytest.raises(TemplateError, match=r"sms/broken\.txt:\d+: syntax error"):
        render_sms("broken", sample_context("broken", "sms", "en"), "en", templates_dir=root)


def test_missing_template_is_a_template_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="sms/nothing.txt"):
        render_sms("nothing", sample_context("nothing", "sms", "en"), "en", templates_dir=tmp_path)


def test_locale_without_a_variant_falls_back_to_english_throughout(tmp_path: Path) -> None:
    root = _write(tmp_path, {"sms/only-en.txt": "See you {{ appointment.start|local_date }}."})
    sms = render_sms("only-en", sample_context("only-en", "sms", "es"), "es", templates_dir=root)
    assert sms.body == "See you Wednesday, September 30. Reply STOP to opt out."


def test_regional_locale_uses_the_language_variant() -> None:
    sms = render_sms("visit-reminder", sample_context("visit-reminder", "sms", "es-MX"), "es-MX")
    assert "le esperamos el 30 de septiembre a las 10:30" in sms.body


def test_sms_lookalikes_are_replaced_before_sending(tmp_path: Path) -> None:
    root = _write(
        tmp_path, {"sms/typo.txt": "We\u2019re open\u00a0\u2013 see you at {{ appointment.start|local_time }}\u2026"}
    )
    context = sample_context("typo", "sms", "en")
    context["first_sms"] = False
    sms = render_sms("typo", context, "en", templates_dir=root)
    assert sms == RenderedSms(body="We're open - see you at 10:30 AM...", segments=1, encoding="GSM-7")


def test_date_filters_use_the_context_time_zone_and_locale(tmp_path: Path) -> None:
    pattern = "{{ at|local_datetime }} | {{ at|local_date }} | {{ at|local_time }}"
    root = _write(tmp_path, {"sms/when.txt": pattern, "sms/when.es.txt": pattern})
    at = datetime(2026, 12, 1, 15, 0, tzinfo=timezone.utc)  # 9:00 in Chicago (CST)
    base = {"first_sms": False, "at": at, "tz": "America/Chicago"}
    assert render_sms("when", {**base, "locale": "en"}, "en", root).body == (
        "Tuesday, December 1 at 9:00 AM | Tuesday, December 1 | 9:00 AM"
    )
    assert render_sms("when", {**base, "locale": "es"}, "es", root).body == (
        "martes 1 de diciembre, 9:00 | martes 1 de diciembre | 9:00"
    )
    assert render_sms("when", {**base, "tz": "Europe/Madrid"}, "en", root).body.endswith("| 4:00 PM")


# --- message_context (database) -----------------------------------------------------------------


def _seed(session: Session) -> tuple[Patient, Appointment, Enrollment]:
    clinic = Clinic(
        name="Lakeside Clinic",
        timezone="America/New_York",
        address="1 Lake St\nChicago, IL 60601",
        email_from="hello@lakeside.test",
        phone="+13125550100",
        region="US",
    )
    patient = Patient(
        clinic=clinic,
        first_name="Lucía",
        last_name="Pérez",
        email="lucia@example.test",
        phone="+13125550199",
        timezone="America/Chicago",
        locale="es",
    )
    plan = TreatmentPlan(
        patient=patient, condition="sciatica", modality="dry needling", planned_sessions=6, cadence_minutes=7 * 24 * 60
    )
    start = datetime(2026, 12, 1, 16, 0, tzinfo=timezone.utc)  # 10:00 in Chicago
    appointment = Appointment(plan=plan, start_at=start, end_at=start + timedelta(minutes=45))
    session.add_all([clinic, patient, plan, appointment])
    session.flush()
    enrollment = Enrollment(patient_id=patient.id, plan_id=plan.id, sequence_key="dry-needling-sciatica")
    session.add(enrollment)
    session.flush()
    return patient, appointment, enrollment


def _message(
    enrollment: Enrollment,
    appointment: Appointment | None,
    step: str,
    occurrence: str,
    channel: Channel,
    template: str,
    due_at: datetime,
    **kw: object,
) -> Message:
    return Message(
        enrollment_id=enrollment.id,
        patient_id=enrollment.patient_id,
        clinic_id=enrollment.patient.clinic_id,
        appointment_id=appointment.id if appointment else None,
        step_key=step,
        occurrence=occurrence,
        channel=channel,
        template=template,
        due_at=due_at,
        **kw,
    )


def test_message_context_is_in_the_patients_time_zone_and_locale(session: Session) -> None:
    patient, appointment, enrollment = _seed(session)
    reminder = _message(
        enrollment,
        appointment,
        "visit-reminder",
        f"appt:{appointment.id}",
        Channel.SMS,
        "visit-reminder",
        appointment.start_at - timedelta(hours=24),
    )
    session.add(reminder)
    session.commit()

    context = message_context(session, reminder)
    assert context["tz"] == "America/Chicago" and context["locale"] == "es"
    start = context["appointment"]["start"]
    assert start.tzinfo == ZoneInfo("America/Chicago") and (start.hour, start.minute) == (10, 0)
    assert context["patient"] == {"first_name": "Lucía"}
    assert context["clinic"]["name"] == "Lakeside Clinic"
    assert context["clinic"]["address_lines"] == ["1 Lake St", "Chicago, IL 60601"]
    assert context["clinic"]["phone"] == "(312) 555-0100"
    assert context["first_sms"] is True

    sms = render_sms("visit-reminder", context, context["locale"])
    assert sms.body == (
        "Lakeside Clinic: le esperamos el 1 de diciembre a las 10:00 en 1 Lake St, Chicago, IL 60601. Para cambiar "
        "la cita, llame al (312) 555-0100. Responda C para confirmar. Responda STOP o BAJA para darse de baja."
    )


def test_first_sms_is_only_the_enrollments_earliest_live_sms(session: Session) -> None:
    _patient, appointment, enrollment = _seed(session)
    start = appointment.start_at
    email = _message(
        enrollment, appointment, "what-to-expect", "a", Channel.EMAIL, "what-to-expect", start - timedelta(hours=48)
    )
    cancelled = _message(
        enrollment,
        appointment,
        "old",
        "b",
        Channel.SMS,
        "visit-reminder",
        start - timedelta(hours=30),
        status=MessageStatus.CANCELLED,
    )
    reminder = _message(
        enrollment, appointment, "visit-reminder", "c", Channel.SMS, "visit-reminder", start - timedelta(hours=24)
    )
    aftercare = _message(
        enrollment, appointment, "aftercare", "d", Channel.SMS, "aftercare", start + timedelta(hours=3)
    )
    session.add_all([email, cancelled, reminder, aftercare])
    session.commit()

    assert message_context(session, email)["first_sms"] is False  # email has no STOP line
    assert message_context(session, reminder)["first_sms"] is True  # the cancelled one never went
    assert message_context(session, aftercare)["first_sms"] is False

    reminder.status = MessageStatus.SKIPPED
    session.commit()
    assert message_context(session, aftercare)["first_sms"] is True


def test_message_context_links_and_step(session: Session) -> None:
    patient, appointment, enrollment = _seed(session)
    stretch = _message(
        enrollment,
        appointment,
        "stretch",
        f"appt:{appointment.id}:day:2",
        Channel.SMS,
        "stretch",
        appointment.end_at + timedelta(days=2),
        context={"day": 2, "session_number": 1},
    )
    prompt = _message(
        enrollment,
        None,
        "reassessment",
        "plan.end",
        Channel.EMAIL,
        "reassessment",
        appointment.end_at + timedelta(days=1),
    )
    session.add_all([stretch, prompt])
    session.commit()

    assert message_context(session, stretch)["step"] == {"day": 2, "session_number": 1}
    context = message_context(session, prompt)
    assert context["appointment"] is None
    token = urlsplit(context["unsubscribe_url"]).path.removeprefix("/u/")
    assert read_unsubscribe_token(token) == (patient.id, "email")
    assert [score for score, _url in context["reassessment_urls"]] == list(range(11))
    for _score, url in context["reassessment_urls"]:
        assert read_reassessment_token(urlsplit(url).path.removeprefix("/r/")) == prompt.id
    email = render_email("reassessment", context, context["locale"])
    assert "Hola, Lucía:" in email.text and "1 Lake St" in email.html


def test_a_message_signs_only_the_links_its_template_reads(session: Session) -> None:
    """An SMS that shows no link costs no signature; an email's layout and footer count, and every email carries
    the unsubscribe link its List-Unsubscribe header needs."""
    patient, appointment, enrollment = _seed(session)
    reminder = _message(
        enrollment, appointment, "visit-reminder", "a", Channel.SMS, "visit-reminder", appointment.start_at
    )
    prompt = _message(enrollment, None, "reassessment", "b", Channel.EMAIL, "reassessment", appointment.end_at)
    session.add_all([reminder, prompt])
    session.commit()

    sms_needs = template_variables("sms", "visit-reminder", "es")
    assert sms_needs is not None and "clinic" in sms_needs and "appointment" in sms_needs
    sms_context = message_context(session, reminder, needs=sms_needs)
    assert not {"reassessment_urls", "exercises_url", "intake_url"} & set(sms_context)
    assert (
        render_sms("visit-reminder", sms_context, "es").body
        == render_sms("visit-reminder", message_context(session, reminder), "es").body
    )

    email_needs = template_variables("email", "reassessment", "es")
    assert email_needs is not None and {"unsubscribe_url", "reassessment_urls"} <= email_needs  # layout, footer
    email_context = message_context(session, prompt, needs=email_needs)
    assert render_email("reassessment", email_context, "es") == render_email(
        "reassessment", message_context(session, prompt), "es"
    )
    assert read_unsubscribe_token(urlsplit(email_context["unsubscribe_url"]).path.removeprefix("/u/")) == (
        patient.id,
        "email",
    )


def test_template_variables_unknown_when_a_partial_is_named_by_a_variable(tmp_path: Path) -> None:
    root = _write(
        tmp_path, {"sms/odd.txt": "{% include step.partial %}", "sms/plain.txt": "Hi {{ patient.first_name }}"}
    )
    assert template_variables("sms", "odd", "en", root) is None  # then the context keeps every link
    assert template_variables("sms", "plain", "en", root) == frozenset({"patient"})


def test_an_edited_template_file_is_seen_within_the_file_check_window(tmp_path: Path) -> None:
    root = _write(tmp_path, {"sms/note.txt": "First {{ patient.first_name }}"})
    context = {"patient": {"first_name": "Ana"}, "first_sms": False}
    assert render_sms("note", context, "en", root).body == "First Ana"
    _write(root, {"sms/note.txt": "Second {{ clinic.name }}", "sms/note.es.txt": "Segundo {{ patient.first_name }}"})
    time.sleep(FILE_CHECK_SECONDS + 0.1)
    assert render_sms("note", {**context, "clinic": {"name": "Lakeside"}}, "en", root).body == "Second Lakeside"
    assert render_sms("note", context, "es", root).body == "Segundo Ana"  # a new locale's file is found too
    assert template_variables("sms", "note", "en", root) == frozenset({"clinic"})


def test_sample_clinic_name_is_worst_case_length() -> None:
    assert len(SAMPLE_CLINIC["name"]) >= 40

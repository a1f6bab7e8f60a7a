"""``engage templates check`` catches each rule on deliberately broken templates; ``preview`` shows a message."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engage.cli.templates import templates
from engage.clock import frozen
from engage.config import get_settings
from engage.content.checks import check_templates
from engage.records.models import Appointment, Clinic, Outcome, Patient, TreatmentPlan
from engage.web.app import create_app

BROKEN = Path(__file__).parent.parent / "fixtures" / "templates_broken"


def _run(*args: str) -> Result:
    return CliRunner().invoke(templates, list(args), catch_exceptions=False)


def _problems(result: Result) -> set[tuple[str, str]]:
    data = json.loads(result.output)
    assert data["ok"] is (result.exit_code == 0)
    return {(p["file"], p["rule"]) for p in data["problems"]}


def test_shipped_templates_pass_the_check() -> None:
    result = _run("check", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    # (3 email + 8 SMS, the welcome among them) x (en, es), the 8 patient pages and 7 Spanish variants,
    # and the 4 exercises
    assert data == {"ok": True, "checked": 49, "problems": []}


def test_check_prints_a_summary_for_people() -> None:
    result = _run("check")
    assert result.exit_code == 0
    assert result.output.strip() == "ok: 49 templates checked"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("render_error", {("sms/greeting.txt", "render-error")}),
        ("syntax_error", {("sms/unclosed.txt", "render-error")}),
        ("too_long", {("sms/chatty.txt", "sms-segments")}),
        ("lookalike", {("sms/curly.txt", "sms-lookalike"), ("sms/curly.es.txt", "sms-lookalike")}),
        ("condition_word", {("sms/leaky.txt", "sms-condition-word")}),
        ("no_address", {("email/note.txt", "email-address"), ("email/note.html", "email-address")}),
        ("no_unsubscribe", {("email/note.txt", "email-unsubscribe"), ("email/note.html", "email-unsubscribe")}),
        ("missing_part", {("email/note.html", "render-error")}),
        ("unsafe_page", {("web/evil.html", "render-error")}),
    ],
)
def test_check_fails_naming_file_and_rule(case: str, expected: set[tuple[str, str]]) -> None:
    result = _run("check", "--json", "--templates-dir", str(BROKEN / case))
    assert result.exit_code == 1
    assert _problems(result) == expected


def test_check_details_say_what_is_wrong() -> None:
    report = check_templates(BROKEN / "render_error")
    assert [p.detail for p in report.problems] == [
        "undefined variable: 'dict object' has no attribute 'nickname' (line 1)"
    ]

    details = {p.file: p.detail for p in check_templates(BROKEN / "lookalike").problems}
    assert details["sms/curly.txt"] == 'U+2019 RIGHT SINGLE QUOTATION MARK (would be sent as "\'") on line 1'
    es = [p.detail for p in check_templates(BROKEN / "lookalike").problems if p.file == "sms/curly.es.txt"]
    assert es == [
        "U+00A0 NO-BREAK SPACE (would be sent as ' ') on line 1",
        "U+2026 HORIZONTAL ELLIPSIS (would be sent as '...') on line 1",
    ]

    segments = check_templates(BROKEN / "too_long").problems
    assert segments[0].detail.startswith("3 segments (GSM-7, ")

    words = {p.detail for p in check_templates(BROKEN / "condition_word").problems}
    assert "mentions 'sciatica'; SMS must not name a condition or treatment" in words
    assert "mentions 'dry needling'; SMS must not name a condition or treatment" in words


def test_check_renders_patient_pages_in_the_sandbox() -> None:
    [problem] = check_templates(BROKEN / "unsafe_page").problems
    assert problem.file == "web/evil.html"
    assert problem.detail.startswith("unsafe operation: ")


def test_check_human_output_names_file_and_rule() -> None:
    result = _run("check", "--templates-dir", str(BROKEN / "condition_word"))
    assert result.exit_code == 1
    assert "sms/leaky.txt" in result.output and "sms-condition-word" in result.output


def test_condition_words_are_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGAGE_CONDITION_WORDS", json.dumps(["frozen shoulder", "session"]))
    get_settings.cache_clear()
    problems = check_templates(BROKEN / "condition_word").problems
    assert [(p.file, p.rule, p.detail) for p in problems] == [
        ("sms/leaky.txt", "sms-condition-word", "mentions 'session'; SMS must not name a condition or treatment")
    ]


def test_a_spanish_saturday_is_checked_too(tmp_path: Path) -> None:
    # "sábado" is not GSM: a Spanish reminder that fits on a Wednesday can need 3 segments on a Saturday.
    (tmp_path / "sms").mkdir()
    text = (
        "{{ clinic.name }}: le recordamos que su cita es el {{ appointment.start|local_date }}"
        " a las {{ appointment.start|local_time }}. Gracias."
    )
    (tmp_path / "sms" / "reminder.txt").write_text("{{ clinic.name }}: see you soon.")
    (tmp_path / "sms" / "reminder.es.txt").write_text(text)
    problems = check_templates(tmp_path).problems
    assert [(p.file, p.rule) for p in problems] == [
        ("sms/reminder.es.txt", "sms-ucs2"),
        ("sms/reminder.es.txt", "sms-segments"),
    ]
    assert "UCS-2" in problems[1].detail


# --- preview -------------------------------------------------------------------------------------


def test_preview_sms_with_sample_data() -> None:
    result = _run("preview", "visit-reminder", "--locale", "es", "--json")
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data == {
        "template": "visit-reminder",
        "channel": "sms",
        "locale": "es",
        "body": "Riverside Physical Therapy & Wellness Co: le esperamos el 30 de septiembre a las 10:30 en "
        "1200 Riverside Avenue, Suite 210, Portland, OR 97201. Para cambiar la cita, llame al (503) 555-0123. "
        "Responda C para confirmar. Responda STOP o BAJA para darse de baja.",
        "segments": 2,
        "encoding": "GSM-7",
    }


def test_preview_email_writes_html(tmp_path: Path) -> None:
    out = tmp_path / "preview.html"
    result = _run("preview", "what-to-expect", "--html", str(out))
    assert result.exit_code == 0
    assert result.output.startswith("Subject: Your first visit on Wednesday, September 30: what to expect\n")
    html = out.read_text(encoding="utf-8")
    assert "1200 Riverside Avenue, Suite 210" in html and "/u/" in html


def test_preview_asks_for_a_channel_when_both_exist() -> None:
    result = CliRunner().invoke(templates, ["preview", "reassessment"])
    assert result.exit_code == 2
    assert "--channel" in result.output
    assert _run("preview", "reassessment", "--channel", "sms").exit_code == 0


def test_preview_unknown_template_is_a_clear_error() -> None:
    result = CliRunner().invoke(templates, ["preview", "no-such-thing"])
    assert result.exit_code == 2
    assert "no template named 'no-such-thing'" in result.output


def test_preview_html_is_for_email_only(tmp_path: Path) -> None:
    result = CliRunner().invoke(templates, ["preview", "aftercare", "--html", str(tmp_path / "x.html")])
    assert result.exit_code == 2
    assert not (tmp_path / "x.html").exists()


def _patient(session: Session, with_appointment: bool) -> int:
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
        timezone="America/Chicago",
        locale="es",
    )
    session.add_all([clinic, patient])
    if with_appointment:
        plan = TreatmentPlan(
            patient=patient, condition="sciatica", modality="dry needling", planned_sessions=2, cadence_minutes=10080
        )
        past = datetime(2026, 11, 24, 16, 0, tzinfo=timezone.utc)
        upcoming = datetime(2026, 12, 1, 16, 0, tzinfo=timezone.utc)
        session.add_all(
            [plan, *(Appointment(plan=plan, start_at=s, end_at=s + timedelta(minutes=45)) for s in (past, upcoming))]
        )
    session.commit()
    return patient.id


def test_preview_for_a_patient_uses_their_next_appointment_and_locale(session: Session) -> None:
    patient_id = _patient(session, with_appointment=True)
    with frozen(datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)):
        result = _run("preview", "what-to-expect", "--patient", str(patient_id), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["locale"] == "es"
    assert data["subject"] == "Su primera cita el martes 1 de diciembre: qué esperar"
    assert "Hola, Lucía:" in data["text"] and "a las 10:00" in data["text"]
    assert "1 Lake St" in data["html"]


def test_preview_for_a_patient_prints_links_that_are_visibly_not_real(session: Session) -> None:
    patient_id = _patient(session, with_appointment=True)
    with frozen(datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)):
        email = json.loads(_run("preview", "what-to-expect", "--patient", str(patient_id), "--json").output)
        prompt = json.loads(
            _run("preview", "reassessment", "--channel", "email", "--patient", str(patient_id), "--json").output
        )

    assert "http://engage.test/u/preview" in email["text"] and "http://engage.test/u/preview" in email["html"]
    assert "http://engage.test/r/preview?score=7" in prompt["text"]
    links = re.findall(r"http://engage\.test/[ur]/[^\s\"<?]+", email["text"] + email["html"] + prompt["text"])
    assert links and set(links) == {"http://engage.test/u/preview", "http://engage.test/r/preview"}
    # ... and the server answers them as invalid links.
    http = TestClient(create_app())
    for path in ("/u/preview", "/r/preview?score=7"):
        page = http.get(path)
        assert page.status_code == 404 and "not valid" in page.text
    assert http.post("/r/preview", data={"score": "7"}).status_code == 404
    assert session.scalar(select(func.count()).select_from(Outcome)) == 0


def test_preview_for_a_patient_without_appointments_uses_a_stand_in(session: Session) -> None:
    patient_id = _patient(session, with_appointment=False)
    with frozen(datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)):
        result = _run("preview", "visit-reminder", "--patient", str(patient_id), "--locale", "en", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["body"] == (
        "Lakeside Clinic: a reminder of your appointment on Monday, November 30 at 10:30 AM, 1 Lake St, Chicago, "
        "IL 60601. To reschedule, call (312) 555-0100. Reply C to confirm. Reply STOP to opt out."
    )


def test_preview_for_an_unknown_patient_is_a_clear_error(session: Session) -> None:
    result = CliRunner().invoke(templates, ["preview", "aftercare", "--channel", "sms", "--patient", "9999"])
    assert result.exit_code == 2
    assert "no patient with id 9999" in result.output

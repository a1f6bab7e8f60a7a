"""The pages patients open: one-click unsubscribe (RFC 8058) and the reassessment answer, in their language."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from engage.clock import utcnow
from engage.config import get_settings
from engage.content.links import make_token, reassessment_url, unsubscribe_url
from engage.conversation.consent import current_consent
from engage.conversation.outcomes import list_outcomes
from engage.db import session_scope
from engage.records.models import (
    AuditEvent,
    Channel,
    ConsentEvent,
    ConsentState,
    Message,
    MessageStatus,
    Outcome,
    Patient,
)
from tests.fixtures.webhooks.support import PUBLIC_URL, World, add_message, client, make_world

pytestmark = pytest.mark.usefixtures("db_url")


@pytest.fixture
def http(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    return client(monkeypatch)


def path(url: str) -> str:
    assert url.startswith(PUBLIC_URL)
    return url[len(PUBLIC_URL) :]


def count(model: type) -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def consent(patient_id: int, channel: Channel) -> ConsentState:
    with session_scope() as session:
        return current_consent(session, patient_id, channel)


# --- unsubscribe ---------------------------------------------------------------------------------


def test_get_shows_a_confirmation_and_changes_nothing(http: TestClient) -> None:
    world = make_world()

    page = http.get(path(unsubscribe_url(world.patient_id, Channel.EMAIL)))

    assert page.status_code == 200
    assert 'method="post"' in page.text and 'name="List-Unsubscribe" value="One-Click"' in page.text
    assert "Back in Motion" in page.text and "emails" in page.text
    assert "ana.ruiz@example.org" not in page.text and "Ana" not in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert count(ConsentEvent) == 0


def test_one_click_post_unsubscribes_that_channel_only(http: TestClient) -> None:
    world = make_world()
    later = utcnow() + timedelta(days=2)
    pending_email = add_message(
        world, channel=Channel.EMAIL, template="what-to-expect", status=MessageStatus.SCHEDULED, due_at=later
    )
    pending_sms = add_message(world, template="visit-reminder", status=MessageStatus.SCHEDULED, due_at=later)
    url = path(unsubscribe_url(world.patient_id, Channel.EMAIL))

    # Exactly what a mail client sends for RFC 8058: a form body, no cookies, no confirmation step.
    response = http.post(
        url, content=b"List-Unsubscribe=One-Click", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )

    assert response.status_code == 200
    assert "You are unsubscribed" in response.text
    assert consent(world.patient_id, Channel.EMAIL) is ConsentState.OPTED_OUT
    assert consent(world.patient_id, Channel.SMS) is ConsentState.OPTED_IN
    with session_scope() as session:
        assert session.get_one(Message, pending_email).status is MessageStatus.CANCELLED
        assert session.get_one(Message, pending_sms).status is MessageStatus.SCHEDULED
        [event] = session.scalars(select(ConsentEvent)).all()
        assert (event.channel, event.source) == (Channel.EMAIL, "unsubscribe_link")

    again = http.post(url, data={"List-Unsubscribe": "One-Click"})  # the button, a second time

    assert again.status_code == 200 and again.text == response.text
    assert count(ConsentEvent) == 1


def test_sms_unsubscribe_link_opts_out_of_sms(http: TestClient) -> None:
    world = make_world()

    http.post(path(unsubscribe_url(world.patient_id, Channel.SMS)), data={"List-Unsubscribe": "One-Click"})

    assert consent(world.patient_id, Channel.SMS) is ConsentState.OPTED_OUT
    assert consent(world.patient_id, Channel.EMAIL) is ConsentState.OPTED_IN


def test_forged_or_altered_unsubscribe_tokens_are_refused(http: TestClient) -> None:
    world = make_world()
    genuine = path(unsubscribe_url(world.patient_id, Channel.EMAIL)).removeprefix("/u/")
    payload, _, signature = genuine.rpartition(".")
    other_patient = path(unsubscribe_url(world.patient_id + 1, Channel.EMAIL)).removeprefix("/u/")
    forged = [
        payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:],  # altered signature
        other_patient.rpartition(".")[0] + "." + signature,  # another patient's id, this signature
        "eyJwYXRpZW50X2lkIjoxLCJjaGFubmVsIjoiZW1haWwifQ.forged",
        make_token("reassessment", {"patient_id": world.patient_id, "channel": "email"}),  # other purpose
        make_token("unsubscribe", {"patient_id": world.patient_id, "channel": "fax"}),  # signed, nonsense
        "not-a-token",
    ]
    pages = []
    for token in forged:
        pages.append(http.get(f"/u/{token}"))
        pages.append(http.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}))

    assert {p.status_code for p in pages} == {404}
    assert len({p.text for p in pages}) == 1  # one page, the same for every failure
    assert "not valid" in pages[0].text and "Back in Motion" not in pages[0].text
    assert count(ConsentEvent) == 0


def test_token_for_a_patient_that_no_longer_exists_reveals_nothing(http: TestClient) -> None:
    make_world()
    response = http.post(path(unsubscribe_url(999_999, Channel.EMAIL)), data={"List-Unsubscribe": "One-Click"})

    assert response.status_code == 200 and "You are unsubscribed" in response.text
    assert count(ConsentEvent) == 0


def test_clinic_name_is_escaped_on_the_page(http: TestClient) -> None:
    world = make_world(clinic_name="<script>alert(1)</script> Clinic")

    page = http.get(path(unsubscribe_url(world.patient_id, Channel.EMAIL)))

    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Clinic" in page.text


# --- reassessment --------------------------------------------------------------------------------


def email_prompt(world_kwargs: dict[str, str] | None = None) -> tuple[int, int]:
    world = make_world(**(world_kwargs or {}))
    return world.patient_id, add_message(world, channel=Channel.EMAIL)


def outcomes() -> list[tuple[int | None, int, str]]:
    with session_scope() as session:
        return [(o.prompt_message_id, o.score, o.source) for o in session.scalars(select(Outcome).order_by(Outcome.id))]


def test_score_links_opened_by_a_mail_scanner_record_nothing(http: TestClient) -> None:
    _, prompt = email_prompt()

    # Safe Links, Proofpoint and Mimecast open every link in an email, in order.
    pages = [http.get(path(reassessment_url(prompt, score))) for score in range(11)]

    assert {p.status_code for p in pages} == {200}
    assert outcomes() == []


def confirm(http: TestClient, prompt: int, score: int) -> str:
    """Press "yes, send my answer" on the confirm step; returns the thank-you page."""
    response = http.post(path(reassessment_url(prompt, None)), data={"score": str(score), "confirm": "yes"})
    assert response.status_code == 200
    return response.text


def test_one_click_score_link_shows_a_confirm_step_and_only_the_post_records(http: TestClient) -> None:
    patient_id, prompt = email_prompt()

    page = http.get(path(reassessment_url(prompt, 7)))

    assert page.status_code == 200
    assert "Is this right?" in page.text and "7 out of 10" in page.text
    assert 'name="confirm" value="yes"' in page.text and 'method="post"' in page.text
    assert outcomes() == []  # a GET (a mail scanner, a prefetch) never records

    thanks = confirm(http, prompt, 7)

    assert "Thank you" in thanks and "7 out of 10" in thanks and "practitioner will review it" in thanks
    assert outcomes() == [(prompt, 7, "email")]


def test_a_later_answer_is_kept_beside_the_earlier_one_and_becomes_the_outcome(http: TestClient) -> None:
    patient_id, prompt = email_prompt()

    confirm(http, prompt, 7)
    with session_scope() as session:
        first_time = session.scalars(select(Outcome.recorded_at)).one()
    confirm(http, prompt, 7)  # the same answer again adds nothing
    confirm(http, prompt, 3)

    assert outcomes() == [(prompt, 7, "email"), (prompt, 3, "email")]
    with session_scope() as session:
        times = session.scalars(select(Outcome.recorded_at).order_by(Outcome.id)).all()
        assert times[0] == first_time and times[1] >= first_time  # the earlier answer keeps its own time
        [latest] = list_outcomes(session, patient_id)
        assert (latest.score, latest.prompt_message_id) == (3, prompt)


def test_a_prompt_never_sent_takes_no_answer(http: TestClient) -> None:
    world = make_world()
    unsent = add_message(
        world, channel=Channel.EMAIL, status=MessageStatus.SCHEDULED, due_at=utcnow() + timedelta(days=1)
    )
    url = path(reassessment_url(unsent, 4))

    pages = [http.get(url), http.post(url, data={"score": "4", "confirm": "yes"})]

    assert {p.status_code for p in pages} == {410}
    assert "This question is closed" in pages[1].text
    assert outcomes() == []


def test_answers_are_accepted_only_within_the_answer_window(http: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world()
    now = utcnow()
    recent = add_message(world, channel=Channel.EMAIL, sent_at=now - timedelta(days=13))
    stale = add_message(world, channel=Channel.EMAIL, sent_at=now - timedelta(days=15))

    assert http.post(path(reassessment_url(stale, None)), data={"score": "6", "confirm": "yes"}).status_code == 410
    assert http.post(path(reassessment_url(recent, None)), data={"score": "6", "confirm": "yes"}).status_code == 200
    assert outcomes() == [(recent, 6, "email")]

    monkeypatch.setenv("ENGAGE_REASSESSMENT_ANSWER_DAYS", "3")
    get_settings.cache_clear()

    assert http.post(path(reassessment_url(recent, None)), data={"score": "2", "confirm": "yes"}).status_code == 410
    assert outcomes() == [(recent, 6, "email")]


def test_pages_carry_the_patients_language(http: TestClient) -> None:
    world = make_world()
    with session_scope() as session:
        session.get_one(Patient, world.patient_id).locale = "es"
    prompt = add_message(world, channel=Channel.EMAIL)

    assert '<html lang="es">' in http.get(path(reassessment_url(prompt, None))).text
    assert '<html lang="es">' in http.get(path(unsubscribe_url(world.patient_id, Channel.EMAIL))).text
    assert '<html lang="en">' in http.get("/u/not-a-token").text


def test_link_without_a_score_shows_the_buttons_then_the_confirm_step_then_records(http: TestClient) -> None:
    _, prompt = email_prompt()
    url = path(reassessment_url(prompt, None))

    form = http.get(url)

    assert form.status_code == 200
    assert form.text.count('name="score"') == 11 and 'method="post"' in form.text
    assert 'class="chosen"' not in form.text
    assert outcomes() == []

    chosen = http.post(url, data={"score": "5"})

    assert chosen.status_code == 200 and "Is this right?" in chosen.text and "5 out of 10" in chosen.text
    assert outcomes() == []
    assert "5 out of 10" in confirm(http, prompt, 5)
    assert outcomes() == [(prompt, 5, "email")]


@pytest.mark.parametrize(("score", "high"), [(8, True), (7, False)])
def test_thank_you_page_repeats_the_safety_line_for_a_high_score(http: TestClient, score: int, high: bool) -> None:
    _, prompt = email_prompt()

    thanks = confirm(http, prompt, score)

    assert ("If your pain gets much worse" in thanks) is high
    assert ("Go to the ER or call 911 now for new bladder or bowel trouble" in thanks) is high
    with session_scope() as session:
        flagged = session.scalars(select(AuditEvent).where(AuditEvent.action == "outcome.flagged_for_practitioner"))
        assert len(flagged.all()) == (1 if high else 0)


def test_pages_speak_the_patients_language_with_the_clinic_phone_as_a_tel_link(http: TestClient) -> None:
    patient_id, prompt = email_prompt()
    with session_scope() as session:
        session.get_one(Patient, patient_id).locale = "es"

    choose = http.get(path(reassessment_url(prompt, None)))
    check = http.get(path(reassessment_url(prompt, 9)))
    thanks = confirm(http, prompt, 9)
    unsubscribed = http.post(path(unsubscribe_url(patient_id, Channel.SMS)))

    for page in (choose.text, check.text, thanks, unsubscribed.text):
        assert '<html lang="es">' in page
        assert '<a href="tel:+14155550199">(415) 555-0199</a>' in page
    assert "¿Cómo está su dolor hoy?" in choose.text and "9 de 10" in check.text
    assert "Su terapeuta la revisará" in thanks and "Si el dolor empeora mucho" in thanks
    today = format_date(utcnow().astimezone(ZoneInfo("America/New_York")), format="long", locale="es")
    assert f"el {today}" in thanks  # Babel's Spanish date, in the patient's time zone
    assert "Responda <strong>ALTA</strong>" in unsubscribed.text


@pytest.mark.parametrize(
    ("channel", "how"), [(Channel.SMS, "Reply <strong>START</strong>"), (Channel.EMAIL, "Call the clinic at")]
)
def test_unsubscribed_page_says_how_to_opt_back_in(http: TestClient, channel: Channel, how: str) -> None:
    world = make_world()

    page = http.post(path(unsubscribe_url(world.patient_id, channel)))

    assert "Changed your mind?" in page.text and how in page.text
    assert 'href="tel:+14155550199"' in page.text


@pytest.mark.parametrize("score", ["11", "-1", "seven", "7.5"])
def test_a_score_outside_0_to_10_is_not_recorded(http: TestClient, score: str) -> None:
    _, prompt = email_prompt()

    page = http.get(path(reassessment_url(prompt, None)) + f"?score={score}")
    posted = http.post(path(reassessment_url(prompt, None)), data={"score": score})

    assert page.status_code == posted.status_code == 400 and "0 to 10" in page.text and "0 to 10" in posted.text
    assert outcomes() == []


def test_forged_reassessment_tokens_and_non_prompts_are_refused(http: TestClient) -> None:
    patient_id, prompt = email_prompt()
    with session_scope() as session:
        row = session.get_one(Message, prompt)
        clinic_id, enrollment_id = row.clinic_id, row.enrollment_id
    not_a_prompt = add_message(
        World(clinic_id, patient_id, 0, enrollment_id), channel=Channel.EMAIL, template="what-to-expect"
    )
    genuine = path(reassessment_url(prompt, None)).removeprefix("/r/")
    bad = [
        genuine[:-2] + ("xy" if not genuine.endswith("xy") else "zz"),
        make_token("unsubscribe", {"message_id": prompt}),
        path(reassessment_url(not_a_prompt, None)).removeprefix("/r/"),
        path(reassessment_url(987_654, None)).removeprefix("/r/"),
    ]

    responses = [http.get(f"/r/{token}?score=4") for token in bad]
    responses += [http.post(f"/r/{token}", data={"score": "4"}) for token in bad]

    assert {r.status_code for r in responses} == {404}
    assert len({r.text for r in responses}) == 1
    assert outcomes() == []


def test_page_templates_are_rendered_in_the_sandbox(
    http: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(get_settings().templates_dir, templates)
    marker = tmp_path / "template-ran-a-shell-command"
    (templates / "web" / "invalid.html").write_text(
        '{{ cycler.__init__.__globals__.os.popen("touch ' + str(marker) + '").read() }}'
    )
    monkeypatch.setenv("ENGAGE_TEMPLATES_DIR", str(templates))
    get_settings.cache_clear()

    page = http.get("/u/not-a-token")

    assert page.status_code == 500 and "Something went wrong" in page.text
    assert not marker.exists()

"""The pages patients open: one-click unsubscribe (RFC 8058) and the email reassessment answer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from engage.clock import utcnow
from engage.content.links import make_token, reassessment_url, unsubscribe_url
from engage.conversation.consent import current_consent
from engage.db import session_scope
from engage.records.models import Channel, ConsentEvent, ConsentState, Message, MessageStatus, Outcome
from tests.fixtures.webhooks.support import PUBLIC_URL, World, add_message, client, make_world

pytestmark = pytest.mark.usefixtures("db_url")


@pytest.fixture
def http(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    return client(monkeypatch)


def path(url: str) -> str:
    assert url.startswith(PUBLIC_URL)
    return url[len(PUBLIC_URL):]


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
    pending_email = add_message(world, channel=Channel.EMAIL, template="what-to-expect",
                                status=MessageStatus.SCHEDULED, due_at=later)
    pending_sms = add_message(world, template="visit-reminder", status=MessageStatus.SCHEDULED, due_at=later)
    url = path(unsubscribe_url(world.patient_id, Channel.EMAIL))

    # Exactly what a mail client sends for RFC 8058: a form body, no cookies, no confirmation step.
    response = http.post(url, content=b"List-Unsubscribe=One-Click",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})

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


def test_one_click_score_link_records_the_outcome_and_thanks(http: TestClient) -> None:
    patient_id, prompt = email_prompt()

    page = http.get(path(reassessment_url(prompt, 7)))

    assert page.status_code == 200
    assert "Thank you" in page.text and "7 out of 10" in page.text
    assert outcomes() == [(prompt, 7, "email")]
    with session_scope() as session:
        assert session.scalars(select(Outcome.patient_id)).one() == patient_id


def test_clicking_again_updates_the_answer_and_the_same_click_changes_nothing(http: TestClient) -> None:
    _, prompt = email_prompt()

    http.get(path(reassessment_url(prompt, 7)))
    with session_scope() as session:
        first_time = session.scalars(select(Outcome.recorded_at)).one()
    http.get(path(reassessment_url(prompt, 7)))
    with session_scope() as session:
        assert session.scalars(select(Outcome.recorded_at)).one() == first_time
    http.get(path(reassessment_url(prompt, 3)))

    assert outcomes() == [(prompt, 3, "email")]


def test_link_without_a_score_shows_the_form_and_the_form_records(http: TestClient) -> None:
    _, prompt = email_prompt()
    url = path(reassessment_url(prompt, None))

    form = http.get(url)

    assert form.status_code == 200
    assert form.text.count('name="score"') == 11 and 'method="post"' in form.text
    assert outcomes() == []

    answered = http.post(url, data={"score": "5"})

    assert answered.status_code == 200 and "5 out of 10" in answered.text
    assert outcomes() == [(prompt, 5, "email")]


@pytest.mark.parametrize("score", ["11", "-1", "seven", "7.5"])
def test_a_score_outside_0_to_10_is_not_recorded(http: TestClient, score: str) -> None:
    _, prompt = email_prompt()

    page = http.get(path(reassessment_url(prompt, None)) + f"?score={score}")

    assert page.status_code == 400 and "0 to 10" in page.text
    assert outcomes() == []


def test_forged_reassessment_tokens_and_non_prompts_are_refused(http: TestClient) -> None:
    patient_id, prompt = email_prompt()
    with session_scope() as session:
        enrollment_id = session.get_one(Message, prompt).enrollment_id
    not_a_prompt = add_message(World(0, patient_id, 0, enrollment_id), channel=Channel.EMAIL, template="what-to-expect")
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

"""``/q/{token}``: the intake questionnaire records a baseline on POST only, all or nothing, in the patient's
language."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from engage.content.links import intake_url, unsubscribe_url
from engage.db import session_scope
from engage.records.models import Channel, Measure, Outcome, Patient
from engage.web.app import create_app
from tests.fixtures.webhooks.support import PUBLIC_URL, make_world


def _path(url: str) -> str:
    return url.removeprefix(PUBLIC_URL)


def _scores(patient_id: int) -> list[tuple[Measure, int, str | None, str]]:
    with session_scope() as session:
        rows = session.execute(
            select(Outcome.measure, Outcome.score, Outcome.item, Outcome.source)
            .where(Outcome.patient_id == patient_id)
            .order_by(Outcome.id)
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_get_shows_the_form_and_records_nothing(sqlite_url: str) -> None:
    world = make_world()
    client = TestClient(create_app())
    page = client.get(_path(intake_url(world.patient_id)))
    assert page.status_code == 200 and "How much pain do you have now?" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert _scores(world.patient_id) == []


def test_post_records_pain_and_activities_as_one_baseline(sqlite_url: str) -> None:
    world = make_world()
    client = TestClient(create_app())
    form = {"pain": "6", "activity_1": "Sitting at work", "rating_1": "4", "activity_2": "Walking", "rating_2": "7"}
    answer = client.post(_path(intake_url(world.patient_id)), data=form)
    assert answer.status_code == 200 and "pain now as 6 out of 10 and 2 activities" in answer.text
    assert "If your pain gets much worse" not in answer.text
    assert _scores(world.patient_id) == [
        (Measure.NPRS, 6, None, "intake"),
        (Measure.PSFS, 4, "Sitting at work", "intake"),
        (Measure.PSFS, 7, "Walking", "intake"),
    ]


def test_a_bad_answer_shows_what_to_fix_in_spanish_and_records_nothing(sqlite_url: str) -> None:
    world = make_world()
    with session_scope() as session:
        session.get_one(Patient, world.patient_id).locale = "es"
    client = TestClient(create_app())
    url = _path(intake_url(world.patient_id))
    answer = client.post(url, data={"pain": "", "activity_1": "Caminar", "rating_1": ""})
    assert answer.status_code == 400
    assert "Elija cuánto dolor tiene ahora, del 0 al 10." in answer.text
    assert "Califique del 0 al 10 cada actividad que escribió." in answer.text
    assert 'value="Caminar"' in answer.text  # what was typed stays
    assert _scores(world.patient_id) == []
    high = client.post(url, data={"pain": "9"})
    assert high.status_code == 200 and "Si el dolor empeora mucho" in high.text
    assert _scores(world.patient_id) == [(Measure.NPRS, 9, None, "intake")]


def test_a_forged_or_wrong_purpose_token_is_not_found(sqlite_url: str) -> None:
    world = make_world()
    client = TestClient(create_app())
    assert client.get("/q/not-a-token").status_code == 404
    other = _path(unsubscribe_url(world.patient_id, Channel.SMS)).replace("/u/", "/q/")
    assert client.post(other, data={"pain": "3"}).status_code == 404
    assert _scores(world.patient_id) == []


def test_the_what_to_expect_email_links_the_intake_page_in_both_languages() -> None:
    from engage.content.links import preview_intake_url
    from engage.content.message_context import sample_context
    from engage.content.rendering import render_email

    for locale in ("en", "es"):
        email = render_email("what-to-expect", sample_context("what-to-expect", "email", locale), locale)
        assert preview_intake_url() in email.text and f'href="{preview_intake_url()}"' in email.html, locale


def test_a_link_sent_before_the_token_was_shortened_still_opens_the_form(sqlite_url: str) -> None:
    from engage.content.links import INTAKE, make_token

    world = make_world()
    client = TestClient(create_app())
    old = f"/q/{make_token(INTAKE, {'patient_id': world.patient_id})}"
    assert client.get(old).status_code == 200
    assert len(_path(intake_url(world.patient_id))) < len(old)  # the welcome SMS carries the shorter one

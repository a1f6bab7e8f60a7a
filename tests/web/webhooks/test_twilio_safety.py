"""Through the signed Twilio webhook (real HTTP into the app): red flags and high scores always get the safety
answer and an urgent flag, even after the day's one automatic answer; scores written in a sentence; opt-outs in
plain words; a NUL in the body; and a reply to a prompt whose sent time is ahead of the server's clock."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from sqlalchemy import select

from engage.clock import utcnow
from engage.content.safety import emergency_rule
from engage.conversation.consent import current_consent
from engage.conversation.inbox import inbox
from engage.db import session_scope
from engage.records.models import Channel, ConsentState, InboundMessage, Outcome, Patient
from tests.fixtures.webhooks.support import World, add_message, client, make_world, send_sms

pytestmark = pytest.mark.usefixtures("db_url")


def replies(response_text: str) -> list[str]:
    return [m.text or "" for m in ET.fromstring(response_text).findall("Message")]


def rows() -> list[InboundMessage]:
    with session_scope() as session:
        found = list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))
        session.expunge_all()
        return found


def spanish(world: World) -> None:
    with session_scope() as session:
        session.get_one(Patient, world.patient_id).locale = "es"


@pytest.mark.parametrize(
    ("body", "locale"),
    [
        ("I can't pee since last night", "en"),
        ("my leg is getting weaker", "en"),
        ("numb between my legs", "en"),
        ("the needle spot is hot and swollen and I have a fever", "en"),
        ("I fainted when I got home", "en"),
        ("no puedo orinar desde anoche", "es"),
        ("se me entumeció la entrepierna", "es"),
    ],
)
def test_a_red_flag_after_the_days_auto_reply_still_gets_the_safety_answer_and_tops_the_inbox(
    monkeypatch: pytest.MonkeyPatch, body: str, locale: str
) -> None:
    world = make_world()
    if locale == "es":
        spanish(world)
    http = client(monkeypatch)
    [first] = replies(send_sms(http, "Can I shower tonight?").text)  # the day's one automatic answer
    assert replies(send_sms(http, "and can I swim?").text) == []  # used up

    response = send_sms(http, body)

    assert response.status_code == 200
    [answer] = replies(response.text)
    assert emergency_rule(locale, sms=True) in answer and "(415) 555-0199" in answer
    assert first != answer
    urgent = rows()[-1]
    assert (urgent.flagged, urgent.urgent, urgent.auto_reply) == (True, True, "urgent")
    assert urgent.flag_reason is not None and urgent.flag_reason.startswith("urgent: ")
    with session_scope() as session:
        listed = inbox(session, world.clinic_id)
        assert [r.id for r in listed][0] == urgent.id  # above the two older replies
        assert len(listed) == 3


def test_a_high_score_in_a_sentence_after_the_auto_reply_is_recorded_and_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = make_world()
    prompt = add_message(world, sent_at=utcnow() - timedelta(hours=2))
    http = client(monkeypatch)
    replies(send_sms(http, "What should I wear?").text)

    [answer] = replies(send_sms(http, "9/10 worse after yesterday").text)

    assert "9/10" in answer and emergency_rule("en", sms=True) in answer
    with session_scope() as session:
        outcome = session.scalars(select(Outcome)).one()
        assert (outcome.prompt_message_id, outcome.score, outcome.source) == (prompt, 9, "sms")
    last = rows()[-1]
    assert (last.urgent, last.flagged, last.auto_reply) == (True, True, "score_high")


@pytest.mark.parametrize(
    ("body", "score", "locale"),
    [("pain 9 since the needling", 9, "en"), ("nope, still 6", 6, "en"), ("no, sigue en 5", 5, "es")],
)
def test_a_score_in_a_sentence_answers_the_open_prompt(
    monkeypatch: pytest.MonkeyPatch, body: str, score: int, locale: str
) -> None:
    world = make_world()
    if locale == "es":
        spanish(world)
    prompt = add_message(world, sent_at=utcnow() - timedelta(hours=1))
    http = client(monkeypatch)

    [answer] = replies(send_sms(http, body).text)

    assert f"{score}/10" in answer
    with session_scope() as session:
        outcome = session.scalars(select(Outcome)).one()
        assert (outcome.prompt_message_id, outcome.score) == (prompt, score)


def test_a_score_in_a_sentence_with_no_prompt_open_is_kept_and_flagged(monkeypatch: pytest.MonkeyPatch) -> None:
    make_world()
    http = client(monkeypatch)

    send_sms(http, "pain 5 since the weekend")

    with session_scope() as session:
        outcome = session.scalars(select(Outcome)).one()
        assert (outcome.prompt_message_id, outcome.score, outcome.source) == (None, 5, "sms_unsolicited")
    last = rows()[-1]
    assert last.flagged and last.flag_reason is not None and "no open reassessment prompt" in last.flag_reason


def test_a_reply_to_a_prompt_sent_ahead_of_the_servers_clock_is_recorded_not_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = make_world()
    prompt = add_message(world, sent_at=utcnow() + timedelta(minutes=3))  # the worker's clock runs ahead
    http = client(monkeypatch)

    response = send_sms(http, "4")

    assert response.status_code == 200 and "4/10" in replies(response.text)[0]
    with session_scope() as session:
        outcome = session.scalars(select(Outcome)).one()
        assert (outcome.prompt_message_id, outcome.score) == (prompt, 4)


@pytest.mark.parametrize(
    "body",
    [
        "STOP\x00",
        "remove me",
        "take me off your list",
        "Can you stop texting me please",
        "unsubscibe",
        "Wrong number",
        "dejen de enviarme mensajes",
        "Por favor ya no me escriban",
    ],
)
def test_plain_words_and_a_nul_opt_out_with_one_confirmation(monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    world = make_world()
    http = client(monkeypatch)

    response = send_sms(http, body)

    assert response.status_code == 200
    [answer] = replies(response.text)
    assert "unsubscribed" in answer and "START" in answer
    with session_scope() as session:
        assert current_consent(session, world.patient_id, Channel.SMS) is ConsentState.OPTED_OUT
    assert rows()[-1].kind == "opt_out"

"""Reassessment outcomes: recording, the SMS answer window, and ``engage patient outcomes``."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engage.cli.outcomes import outcomes as outcomes_command
from engage.clock import frozen, utcnow
from engage.conversation.outcomes import (
    PromptClosed,
    list_outcomes,
    open_sms_prompt,
    outcome_json,
    record_outcome,
)
from engage.db import session_scope
from engage.errors import InvalidInput, NotFound
from engage.records.models import Channel, Message, MessageStatus, Outcome
from tests.fixtures.webhooks.support import add_message, make_world

pytestmark = pytest.mark.usefixtures("db_url")


def test_each_answer_keeps_its_own_time_and_the_latest_is_the_outcome() -> None:
    world = make_world()
    sent = utcnow() - timedelta(hours=2)
    prompt_id = add_message(world, sent_at=sent)
    with session_scope() as session:
        prompt = session.get_one(Message, prompt_id)
        with frozen(sent + timedelta(minutes=10)):
            first = record_outcome(session, prompt, 6, source="sms")
        with frozen(sent + timedelta(minutes=20)):
            assert record_outcome(session, prompt, 6, source="sms").id == first.id  # the same answer adds nothing
        with frozen(sent + timedelta(minutes=30)):
            second = record_outcome(session, prompt, 4, source="email")
        assert first.id != second.id
    with session_scope() as session:
        stored = session.scalars(select(Outcome).order_by(Outcome.id)).all()
        assert [(o.score, o.source, o.recorded_at) for o in stored] == [
            (6, "sms", sent + timedelta(minutes=10)),
            (4, "email", sent + timedelta(minutes=30)),
        ]
        [outcome] = list_outcomes(session, world.patient_id)
        assert (outcome.prompt_message_id, outcome.patient_id, outcome.score) == (prompt_id, world.patient_id, 4)


def test_record_outcome_refuses_a_prompt_never_sent_or_past_its_window() -> None:
    world = make_world()
    now = utcnow()
    unsent = add_message(world, status=MessageStatus.SCHEDULED, due_at=now + timedelta(days=1))
    failed = add_message(world, status=MessageStatus.FAILED)
    old = add_message(world, sent_at=now - timedelta(days=14, minutes=1))
    with session_scope() as session:
        for prompt_id in (unsent, failed, old):
            with pytest.raises(PromptClosed, match="takes no answers"):
                record_outcome(session, session.get_one(Message, prompt_id), 5, source="email")
    with session_scope() as session:
        assert session.scalars(select(Outcome)).all() == []


@pytest.mark.parametrize("score", [-1, 11, True, 7.0])
def test_record_outcome_refuses_scores_outside_0_to_10(score: object) -> None:
    world = make_world()
    prompt_id = add_message(world)
    with session_scope() as session, pytest.raises(InvalidInput):
        record_outcome(session, session.get_one(Message, prompt_id), score, source="sms")  # type: ignore[arg-type]


def test_record_outcome_refuses_a_message_that_is_not_a_prompt() -> None:
    world = make_world()
    reminder = add_message(world, template="visit-reminder")
    with session_scope() as session, pytest.raises(InvalidInput):
        record_outcome(session, session.get_one(Message, reminder), 5, source="sms")


def test_open_prompt_is_the_latest_sent_sms_prompt_within_seven_days_without_an_answer() -> None:
    world = make_world()
    now = utcnow()
    add_message(world, sent_at=now - timedelta(days=6, hours=23))
    add_message(world, channel=Channel.EMAIL, sent_at=now - timedelta(hours=1))  # email: answered by link
    add_message(world, status=MessageStatus.SCHEDULED, due_at=now + timedelta(days=1))  # not sent yet
    latest = add_message(world, sent_at=now - timedelta(days=2))
    with session_scope() as session:
        prompt = open_sms_prompt(session, world.patient_id)
        assert prompt is not None and prompt.id == latest
        record_outcome(session, prompt, 2, source="sms")
    with session_scope() as session:
        assert open_sms_prompt(session, world.patient_id) is None  # answered; the older one is superseded
    with frozen(now + timedelta(days=8)), session_scope() as session:
        assert open_sms_prompt(session, world.patient_id) is None


def test_outcomes_are_listed_oldest_first() -> None:
    world = make_world()
    base = datetime(2026, 3, 1, 15, 0, tzinfo=timezone.utc)
    prompts = [add_message(world, sent_at=base + timedelta(days=d)) for d in range(3)]
    with session_scope() as session:
        for day, (prompt_id, score) in reversed(list(enumerate(zip(prompts, [8, 5, 2], strict=True)))):
            with frozen(base + timedelta(days=day, hours=1)):
                record_outcome(session, session.get_one(Message, prompt_id), score, source="sms")
    with session_scope() as session:
        listed = [outcome_json(o) for o in list_outcomes(session, world.patient_id)]
    assert [o["score"] for o in listed] == [8, 5, 2]
    assert listed[0] == {
        "score": 8,
        "recorded_at": "2026-03-01T16:00:00+00:00",
        "source": "sms",
        "prompt_message_id": prompts[0],
        "measure": "nprs",
        "item": None,
    }


def test_list_outcomes_of_an_unknown_patient_is_not_found() -> None:
    with session_scope() as session, pytest.raises(NotFound):
        list_outcomes(session, 424242)


def test_cli_lists_scores_as_json_and_as_a_table() -> None:
    world = make_world()
    prompt_id = add_message(world)
    with session_scope() as session:
        record_outcome(session, session.get_one(Message, prompt_id), 3, source="email")
    runner = CliRunner()

    as_json = runner.invoke(outcomes_command, [str(world.patient_id), "--json"])
    as_table = runner.invoke(outcomes_command, [str(world.patient_id)])

    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["patient_id"] == world.patient_id
    [row] = data["outcomes"]
    assert (row["score"], row["source"], row["prompt_message_id"]) == (3, "email", prompt_id)
    assert datetime.fromisoformat(row["recorded_at"]).tzinfo is not None
    assert as_table.exit_code == 0
    lines = as_table.output.splitlines()
    assert lines[0].split() == ["recorded_at", "score", "source", "prompt_message_id"]
    assert lines[2].split()[1:] == ["3", "email", str(prompt_id)]


def test_cli_for_an_unknown_patient_fails_clearly() -> None:
    result = CliRunner().invoke(outcomes_command, ["424242", "--json"])

    assert result.exit_code == 2
    assert "no patient with id 424242" in result.output

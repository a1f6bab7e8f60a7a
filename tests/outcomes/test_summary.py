"""The clinic-wide summary from the database, on SQLite and PostgreSQL, against the hand-worked fixture."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.conversation.measures import record_score
from engage.errors import InvalidInput
from engage.outcomes.summary import Filters, outcome_summary, parse_filters
from tests.outcomes import world as fixture

COUNTED = ("enrolled", "episodes", "with_baseline", "with_follow_up", "with_final", "worsened")


def test_ten_episodes_with_six_responders_make_sixty_percent(session: Session) -> None:
    fixture.build(session)
    session.commit()
    summary = outcome_summary(session, 1)
    assert (summary["enrolled"], summary["episodes"], summary["with_follow_up"]) == (12, 10, 10)
    assert summary["responders"] == {"two_points": 7, "thirty_percent": 6, "both": 6}
    assert summary["responder_rate"] == 0.6
    assert summary["ci95"] == fixture.WILSON_6_OF_10
    assert summary["median_change"] == -2.5
    assert summary["median_baseline"] == 8
    assert summary["worsened"] == 1
    assert summary["time_to_mcid"] == {"median_days": 14.08, "median_sessions": 3, "events": 6, "censored": 4}


def test_practitioner_rows_add_up_to_the_clinic_and_small_cells_are_pooled(session: Session) -> None:
    world = fixture.build(session)
    session.commit()
    summary = outcome_summary(session, world.clinic_id)
    rows = summary["by_practitioner"]
    assert [(r["name"], r["hidden"], r["episodes"]) for r in rows] == [
        ("Dr. Lee", False, 6),
        ("Other (fewer than 5 episodes each)", True, 4),
    ]
    assert "Dr. Diaz" not in str(rows)
    for key in COUNTED:
        assert sum(r[key] for r in rows) == summary[key], key
    for key in ("two_points", "thirty_percent", "both"):
        assert sum(r["responders"][key] for r in rows) == summary["responders"][key]
    lee = rows[0]
    assert lee["responders"] == {"two_points": 5, "thirty_percent": 4, "both": 4}
    assert [r["episodes"] for r in summary["by_sequence"]] == [10]


def test_filters_narrow_to_one_practitioner_and_a_period(session: Session) -> None:
    world = fixture.build(session)
    session.commit()
    diaz = outcome_summary(session, world.clinic_id, Filters(practitioner_id=world.diaz))
    assert (diaz["episodes"], diaz["responders"]["both"], diaz["responder_rate"]) == (4, 2, 0.5)
    today = utcnow().date()
    later = outcome_summary(session, world.clinic_id, Filters(start=today - timedelta(days=5)))
    assert later["enrolled"] == 0
    assert outcome_summary(session, world.clinic_id, Filters(condition="SCIATICA"))["episodes"] == 10
    assert outcome_summary(session, world.clinic_id, Filters(modality="massage"))["episodes"] == 0


def test_patients_to_act_on_are_the_worsened_and_the_high_scores(session: Session) -> None:
    world = fixture.build(session)
    worse = world.patients["lee"][5]  # 8 -> 10
    session.commit()
    act_on = outcome_summary(session, world.clinic_id)["act_on"]
    assert [(r["patient_id"], r["reasons"]) for r in act_on] == [(worse, ["worsened", "high_pain"])]


def test_a_score_eight_days_before_the_first_session_is_no_baseline(session: Session) -> None:
    world = fixture.build(session)
    session.commit()
    patient_id = world.patients["lee"][6]  # enrolled without scores
    summary = outcome_summary(session, world.clinic_id)
    first = utcnow() - timedelta(days=20)
    record_score(session, patient_id, 7, actor="test", at=first - timedelta(days=8))
    session.commit()
    assert outcome_summary(session, world.clinic_id)["episodes"] == summary["episodes"]
    record_score(session, patient_id, 7, actor="test", at=first - timedelta(days=6))
    session.commit()
    after = outcome_summary(session, world.clinic_id)
    assert after["episodes"] == summary["episodes"] + 1
    assert after["with_follow_up"] == summary["with_follow_up"]  # a baseline alone has no follow-up


def test_bad_filters_name_their_field() -> None:
    with pytest.raises(InvalidInput) as bad_date:
        parse_filters(start="12/01/2026")
    assert bad_date.value.field == "from"
    with pytest.raises(InvalidInput) as backwards:
        parse_filters(start="2026-12-02", end="2026-12-01")
    assert backwards.value.field == "from"
    with pytest.raises(InvalidInput) as who:
        parse_filters(practitioner="lee")
    assert who.value.field == "practitioner"


def test_a_practitioner_of_another_clinic_is_refused(session: Session) -> None:
    world = fixture.build(session)
    session.commit()
    with pytest.raises(InvalidInput):
        outcome_summary(session, world.clinic_id, Filters(practitioner_id=999))


def test_two_prompts_in_a_row_unanswered_put_the_patient_on_the_list(session: Session) -> None:
    """Runs counted from the newest prompt whose 72 hours are over; an answered one ends the run, and one still
    inside its 72 hours counts neither way. Response rates: answered within 72 hours, per channel."""
    from sqlalchemy import select

    from engage.records.models import Channel, Enrollment, Message, MessageStatus, Outcome, Patient

    world = fixture.build(session)
    now = utcnow()
    silent, answered_between = world.patients["lee"][6], world.patients["lee"][7]

    def prompt(patient_id: int, days_ago: float, answered: bool = False, channel: Channel = Channel.SMS) -> None:
        enrollment = session.scalars(select(Enrollment.id).where(Enrollment.patient_id == patient_id)).one()
        sent = now - timedelta(days=days_ago)
        message = Message(
            enrollment_id=enrollment,
            patient_id=patient_id,
            clinic_id=session.get_one(Patient, patient_id).clinic_id,
            step_key="reassessment",
            occurrence=f"n:{days_ago}",
            channel=channel,
            template="reassessment",
            context={},
            due_at=sent,
            status=MessageStatus.DELIVERED,
            sent_at=sent,
        )
        session.add(message)
        session.flush()
        if answered:
            session.add(
                Outcome(
                    patient_id=patient_id,
                    prompt_message_id=message.id,
                    score=5,
                    source="sms",
                    recorded_at=sent + timedelta(hours=2),
                )
            )

    for days_ago in (12, 8, 4):
        prompt(silent, days_ago)
    prompt(silent, 1)  # inside its 72 hours: not yet unanswered
    prompt(answered_between, 12)
    prompt(answered_between, 8, answered=True, channel=Channel.EMAIL)
    prompt(answered_between, 4)
    session.commit()
    summary = outcome_summary(session, world.clinic_id)
    listed = {r["patient_id"]: (r["reasons"], r["unanswered_in_a_row"]) for r in summary["act_on"]}
    assert listed[silent] == (["unanswered"], 3)
    assert answered_between not in listed  # one unanswered since its last answer
    assert summary["act_on_total"] == len(summary["act_on"]) == 2  # with the fixture's worsened patient
    # Six SMS prompts, none answered: Wilson 0/6 is [0, z²/6 / (1 + z²/6)] = [0, 0.3903].
    assert summary["response_rate"]["sms"] == {"n": 6, "count": 0, "rate": 0.0, "ci95": [0.0, 0.3903]}
    assert summary["response_rate"]["email"]["count"] == summary["response_rate"]["email"]["n"] == 1


def test_figures_by_start_back_risk_add_up_to_the_clinic(session: Session) -> None:
    from engage.conversation import start_back

    world = fixture.build(session)
    for patient_id in world.patients["lee"][:5]:  # responders 4 of 5: 8->4, 8->4, 8->3, 8->5 and 8->6
        start_back.record(session, patient_id, [0, 0, 0, 0, 1, 1, 1, 0, 4], actor="test")
    start_back.record(session, world.patients["lee"][0], [0] * 9, actor="test", at=utcnow() - timedelta(days=30))
    session.commit()
    summary = outcome_summary(session, world.clinic_id)
    rows = {r["name"]: r for r in summary["by_start_back_risk"]}
    assert list(rows) == ["High risk", "Not screened"]  # the newest screening counts: no "Low risk" row
    assert (rows["High risk"]["episodes"], rows["High risk"]["responders"]["both"]) == (5, 4)
    assert (rows["Not screened"]["episodes"], rows["Not screened"]["enrolled"]) == (5, 7)
    for key in COUNTED:
        assert sum(r[key] for r in rows.values()) == summary[key], key


def test_function_by_the_psfs_mean_from_baseline_to_the_latest_rating(session: Session) -> None:
    """Baselines (means): 3, 2 and 5; follow-ups: 6 (+3), 3 (+1), none; the older follow-up of the first
    patient (4) is not the latest. Improved by 2 or more: 1 of 2."""
    from engage.conversation.measures import record_psfs

    world = fixture.build(session)
    first = utcnow() - timedelta(days=20)
    a, b, c = world.patients["lee"][:3]
    record_psfs(session, a, [("Sitting", 2), ("Walking", 4)], actor="test", at=first - timedelta(days=1))
    record_psfs(session, a, [("Sitting", 4), ("Walking", 4)], actor="test", at=first + timedelta(days=5))
    record_psfs(session, a, [("Sitting", 6), ("Walking", 6)], actor="test", at=first + timedelta(days=12))
    record_psfs(session, b, [("Stairs", 2)], actor="test", at=first - timedelta(days=2))
    record_psfs(session, b, [("Stairs", 3)], actor="test", at=first + timedelta(days=12))
    record_psfs(session, c, [("Lifting", 5)], actor="test", at=first - timedelta(days=3))
    record_psfs(session, c, [("Lifting", 9)], actor="test", at=first - timedelta(days=9))  # before the window
    session.commit()
    psfs = outcome_summary(session, world.clinic_id)["function"]
    assert (psfs["with_baseline"], psfs["with_follow_up"]) == (3, 2)
    assert (psfs["median_baseline"], psfs["median_latest"], psfs["median_change"]) == (3, 4.5, 2)
    assert (psfs["improved"]["count"], psfs["improved"]["n"], psfs["improved"]["rate"]) == (1, 2, 0.5)


@pytest.mark.parametrize("seed", range(3))
def test_the_summary_prompt_figures_equal_those_counted_prompt_by_prompt(session: Session, seed: int) -> None:
    """The summary reads each enrollment's prompts as stored with its facts (``prompts_of``); the CSV's episodes
    count them prompt by prompt (``prompt_facts``): on random prompts (both channels, sent, delivered or failed,
    answered in time, late or not at all, some inside their 72 hours) both give the same rates per channel and
    the same runs of unanswered prompts; and again after delivery-like bulk SQL changes statuses and times
    (past the ORM: the database's triggers log those enrollments stale), to whole days, so that some prompts of
    an enrollment are sent at the same moment (one answered at that moment ends the run: the others are not
    after it)."""
    import random

    from sqlalchemy import delete, select, update

    from engage.outcomes import figures
    from engage.outcomes.summary import load_episodes
    from engage.records.models import Channel, Enrollment, Message, MessageStatus, Outcome

    rng = random.Random(seed)
    world = fixture.build(session)
    now = utcnow()
    statuses = [MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.UNKNOWN, MessageStatus.FAILED]
    for enrollment_id, patient_id in session.execute(
        select(Enrollment.id, Enrollment.patient_id).order_by(Enrollment.id)
    ):
        for number, days_ago in enumerate(rng.sample(range(1, 40), rng.randint(0, 6))):
            sent = now - timedelta(days=days_ago, hours=rng.random())
            message = Message(
                enrollment_id=enrollment_id,
                patient_id=patient_id,
                clinic_id=world.clinic_id,
                step_key="reassessment",
                occurrence=f"r:{number}",
                channel=rng.choice(list(Channel)),
                template="reassessment",
                context={},
                due_at=sent,
                status=rng.choice(statuses),
                sent_at=sent,
            )
            session.add(message)
            session.flush()
            if rng.random() < 0.4:
                session.add(
                    Outcome(
                        patient_id=patient_id,
                        prompt_message_id=message.id,
                        score=rng.randint(0, 10),
                        source="sms",
                        recorded_at=sent + timedelta(hours=rng.choice([1, 30, 80, 200])),
                    )
                )
    session.commit()

    def same_as_counted_one_by_one() -> None:
        summary = outcome_summary(session, world.clinic_id, now=now)
        loaded = load_episodes(session, world.clinic_id, Filters(), now)
        assert summary["response_rate"] == figures.response_rates(loaded.rates)
        assert summary["response_rate"]  # the random prompts make some rates
        expected = figures.act_on(loaded.episodes)
        assert summary["act_on_total"] == len(expected)
        assert [(r["enrollment_id"], r["unanswered_in_a_row"], r["reasons"]) for r in summary["act_on"]] == [
            (r["enrollment_id"], r["unanswered_in_a_row"], r["reasons"]) for r in expected
        ]
        session.commit()

    same_as_counted_one_by_one()
    before = outcome_summary(session, world.clinic_id, now=now)["response_rate"]
    session.commit()
    prompts = session.scalars(select(Message.id).where(Message.template == "reassessment")).all()
    changed = rng.sample(prompts, len(prompts) // 2)
    for message_id in changed:  # one statement per row, as the send path and the provider callbacks write
        session.execute(
            update(Message.__table__)
            .where(Message.__table__.c.id == message_id)
            .values(status=rng.choice(statuses), sent_at=now - timedelta(days=rng.randint(1, 40)))
        )
    answers = Outcome.__table__.c.prompt_message_id
    session.execute(delete(Outcome.__table__).where(answers.in_([prompts[0], prompts[-1]])))
    session.execute(delete(Message.__table__).where(Message.__table__.c.id == prompts[-1]))
    session.commit()
    same_as_counted_one_by_one()
    assert outcome_summary(session, world.clinic_id, now=now)["response_rate"] != before

"""Publishing a clinic's version of a sequence (issue 23): version N+1 in one transaction, the summary a dry
run shows is what publishing does, current patients re-planned (a step already sent is never sent again),
two admins at once, rolling back, and the send path rendering the version an enrollment follows."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engage import clock
from engage.config import get_settings
from engage.db import session_factory
from engage.delivery import dispatch
from engage.delivery.claim import claim_due
from engage.delivery.providers import reset_providers
from engage.delivery.send_checks import load_for_sending, render
from engage.errors import InvalidInput
from engage.records import clinics, patients, plans
from engage.records.models import AuditEvent, Enrollment, Message, MessageStatus, SequenceVersion
from engage.schedule import enrollments, versions
from engage.schedule.draft_preview import preview_for_plan
from engage.schedule.publish import PublishSummary, StalePublish, publish_draft, republish
from engage.schedule.sequences import library_definition
from tests.fakes.provider_server import FakeProviders

UTC = timezone.utc
SEQ = "dry-needling-sciatica"
ENROLLED_AT = datetime(2030, 6, 1, 14, 0, tzinfo=UTC)
FIRST = "2030-06-10T10:00"  # New York (EDT): 14:00 UTC; visits weekly
ADMIN = "admin@clinic.example"
NEW_TEXT = "{{ clinic.name }}: see you {{ appointment.start|local_day }} at {{ appointment.start|local_time }}. NEW."


def _world(session: Session, patients_count: int = 1) -> tuple[int, list[int]]:
    """A clinic (caps out of the way) with patients each on a 3-visit plan, enrolled in the shipped sequence."""
    with clock.frozen(ENROLLED_AT - timedelta(days=1)):
        clinic = clinics.create_clinic(
            session,
            name="Riverside Physio",
            timezone="America/New_York",
            address="1 River St",
            email="care@riverside.example",
            sms_from="+14155550100",
            actor="test",
        )
        clinic.sms_per_day = clinic.sms_per_week = 99
        plan_ids = []
        for n in range(patients_count):
            patient = patients.add_patient(
                session,
                clinic_id=clinic.id,
                first_name="Pat",
                last_name=f"Doe{n}",
                phone=f"+1202555{n:04d}",
                email=f"pat{n}@example.com",
                actor="test",
            ).patient
            plan = plans.create_plan(
                session,
                patient_id=patient.id,
                condition="sciatica",
                modality="dry needling",
                first=FIRST,
                sessions=3,
                every=timedelta(days=7),
                actor="test",
            )
            plan_ids.append(plan.id)
    enrollment_ids = []
    with clock.frozen(ENROLLED_AT):
        for plan_id in plan_ids:
            plan = session.get_one(plans.TreatmentPlan, plan_id)
            enrollment, _ = enrollments.enroll(session, plan.patient_id, plan_id, SEQ, enrolled_by="test")
            enrollment_ids.append(enrollment.id)
    session.commit()
    return clinic.id, enrollment_ids


def _reminder_at_18(session: Session, clinic_id: int, text: str | None = NEW_TEXT) -> None:
    """An admin's draft: the visit reminder the evening before at 18:00, optionally reworded."""
    draft = versions.start_draft(session, clinic_id, SEQ, actor=ADMIN)
    definition = library_definition(SEQ)
    reminder = next(s for s in definition["steps"] if s["key"] == "visit-reminder")
    reminder.update(offset="-1d", at="18:00")
    texts = dict(draft.texts)
    if text is not None:
        texts["sms/visit-reminder.txt"] = text
    saved = versions.save_draft(session, clinic_id, SEQ, definition=definition, texts=texts, actor=ADMIN)
    assert saved.problems == []


def _rows(session: Session, enrollment_id: int) -> dict[tuple[str, str], tuple[datetime, MessageStatus]]:
    session.expire_all()
    found = session.scalars(select(Message).where(Message.enrollment_id == enrollment_id))
    return {(m.step_key, m.occurrence): (m.due_at, m.status) for m in found}


def _reminders(rows: dict[tuple[str, str], tuple[datetime, MessageStatus]]) -> list[tuple[datetime, MessageStatus]]:
    return sorted(v for k, v in rows.items() if k[0] == "visit-reminder")


def test_a_dry_run_counts_what_publishing_then_does_and_changes_nothing(session: Session) -> None:
    clinic_id, [enrollment_id] = _world(session)
    with clock.frozen(ENROLLED_AT + timedelta(hours=1)):
        _reminder_at_18(session, clinic_id)
        before = _rows(session, enrollment_id)
        dry = publish_draft(session, clinic_id, SEQ, actor=ADMIN, current_patients=True, dry_run=True)
        assert dry == PublishSummary(version=1, changed=3, cancelled=0, added=0)
        assert _rows(session, enrollment_id) == before
        assert versions.list_versions(session, clinic_id, SEQ) == []
        assert versions.get_draft(session, clinic_id, SEQ) is not None
        assert session.get_one(Enrollment, enrollment_id).sequence_version is None

        real = publish_draft(session, clinic_id, SEQ, actor=ADMIN, current_patients=True)
        session.commit()
    assert real == dry
    assert versions.get_draft(session, clinic_id, SEQ) is None
    [info] = versions.list_versions(session, clinic_id, SEQ)
    assert (info.version, info.published_by) == (1, ADMIN)
    assert info.summary["changed"] == 3 and info.summary["current_patients"] is True
    assert session.get_one(Enrollment, enrollment_id).sequence_version == 1
    # 18:00 the evening before each visit, in New York (EDT: 22:00 UTC).
    assert [due for due, _ in _reminders(_rows(session, enrollment_id))] == [
        datetime(2030, 6, d, 22, 0, tzinfo=UTC) for d in (9, 16, 23)
    ]
    audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "sequence.publish")).one()
    assert audit.detail["changed"] == 3 and audit.detail["version"] == 1
    # Published content is what new enrollments follow.
    assert versions.published_content(session, clinic_id, SEQ).version == 1


def test_only_new_enrollments_follow_a_version_published_for_them(session: Session) -> None:
    clinic_id, [old] = _world(session)
    with clock.frozen(ENROLLED_AT + timedelta(hours=1)):
        _reminder_at_18(session, clinic_id)
        before = _rows(session, old)
        summary = publish_draft(session, clinic_id, SEQ, actor=ADMIN, current_patients=False)
        assert summary == PublishSummary(version=1, changed=0, cancelled=0, added=0)
        session.commit()
        assert _rows(session, old) == before
        assert session.get_one(Enrollment, old).sequence_version is None
        enrollments.cancel(session, old, actor="test")
        plan_id = session.get_one(Enrollment, old).plan_id
        patient_id = session.get_one(Enrollment, old).patient_id
        new, _ = enrollments.enroll(session, patient_id, plan_id, SEQ, enrolled_by="test")
        session.commit()
    assert new.sequence_version == 1
    assert [due.hour for due, _ in _reminders(_rows(session, new.id))] == [22, 22, 22]


def test_a_draft_with_problems_cannot_be_published_and_nothing_is_written(session: Session) -> None:
    clinic_id, [enrollment_id] = _world(session)
    draft = versions.start_draft(session, clinic_id, SEQ, actor=ADMIN)
    texts = {**draft.texts, "sms/visit-reminder.txt": "Hi {{ frist_name }}"}
    versions.save_draft(session, clinic_id, SEQ, definition=draft.definition, texts=texts, actor=ADMIN)
    with pytest.raises(InvalidInput, match="frist_name"):
        publish_draft(session, clinic_id, SEQ, actor=ADMIN, current_patients=True)
    assert versions.list_versions(session, clinic_id, SEQ) == []


def test_rolling_back_publishes_an_earlier_version_again(session: Session) -> None:
    clinic_id, [enrollment_id] = _world(session)
    with clock.frozen(ENROLLED_AT + timedelta(hours=1)):
        original = [due for due, _ in _reminders(_rows(session, enrollment_id))]
        versions.start_draft(session, clinic_id, SEQ, actor=ADMIN)
        publish_draft(session, clinic_id, SEQ, actor=ADMIN, current_patients=True)  # v1: the library as it is
        _reminder_at_18(session, clinic_id)
        assert publish_draft(session, clinic_id, SEQ, actor=ADMIN, current_patients=True).changed == 3  # v2
        back = republish(session, clinic_id, SEQ, 1, actor="other@clinic.example", current_patients=True)
        session.commit()
    assert back == PublishSummary(version=3, changed=3, cancelled=0, added=0)
    assert [due for due, _ in _reminders(_rows(session, enrollment_id))] == original
    assert [v.version for v in versions.list_versions(session, clinic_id, SEQ)] == [3, 2, 1]
    assert versions.list_versions(session, clinic_id, SEQ)[0].summary["republished_from"] == 1
    assert session.get_one(Enrollment, enrollment_id).sequence_version == 3


def test_the_send_path_renders_the_version_the_enrollment_follows(session: Session) -> None:
    clinic_id, [enrollment_id] = _world(session)
    with clock.frozen(ENROLLED_AT + timedelta(hours=1)):
        _reminder_at_18(session, clinic_id)
        publish_draft(session, clinic_id, SEQ, actor=ADMIN, current_patients=True)
        session.commit()
    reminder_id = session.scalars(
        select(Message.id)
        .where(Message.enrollment_id == enrollment_id, Message.step_key == "visit-reminder")
        .order_by(Message.due_at)
    ).first()
    assert reminder_id is not None
    loaded = load_for_sending(session, reminder_id)
    ready = render(session, loaded.message, first_sms=loaded.first_sms)
    assert ready.payload.body.startswith("Riverside Physio: see you June 10 at 10:00 AM. NEW.")  # type: ignore[union-attr]


def test_two_admins_publishing_at_once_one_wins_the_other_is_told(pg_url: str) -> None:
    factory = session_factory()
    with factory() as setup:
        clinic_id, _ = _world(setup)
        _reminder_at_18(setup, clinic_id)
        setup.commit()
    first, second = factory(), factory()
    outcome: dict[str, Any] = {}
    try:
        publish_draft(first, clinic_id, SEQ, actor="a@clinic.example", current_patients=True)  # holds the lock

        def other() -> None:
            try:
                publish_draft(second, clinic_id, SEQ, actor="b@clinic.example", current_patients=True)
                second.commit()
            except StalePublish as exc:
                outcome["stale"] = exc.current_version
                second.rollback()

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(timeout=1)
        assert thread.is_alive()  # waiting for the first publish's transaction
        first.commit()
        thread.join(timeout=10)
    finally:
        first.close()
        second.close()
    assert outcome == {"stale": 1}
    with factory() as check:
        assert [v.version for v in versions.list_versions(check, clinic_id, SEQ)] == [1]
        assert check.scalar(select(SequenceVersion.published_by)) == "a@clinic.example"


def test_a_draft_started_before_another_publish_is_stale(session: Session) -> None:
    clinic_id, _ = _world(session)
    _reminder_at_18(session, clinic_id)
    publish_draft(session, clinic_id, SEQ, actor=ADMIN, current_patients=False)
    # Someone publishes version 2 by rolling back while a draft based on version 1 is open.
    versions.start_draft(session, clinic_id, SEQ, actor=ADMIN)
    republish(session, clinic_id, SEQ, 1, actor="other@clinic.example", current_patients=False)
    with pytest.raises(StalePublish) as raised:
        publish_draft(session, clinic_id, SEQ, actor=ADMIN, current_patients=False)
    assert raised.value.current_version == 2


def _tick(at: datetime) -> None:
    with clock.frozen(at):
        dispatch.tick()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProviders]:
    with FakeProviders() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        reset_providers()
        yield server
    reset_providers()


def test_a_step_already_sent_is_not_sent_again_after_a_version_moves_it(session: Session, fake: FakeProviders) -> None:
    clinic_id, [enrollment_id] = _world(session)
    session.commit()  # on SQLite every transaction holds the write lock; the ticks need it
    # The first visit's reminder goes at 10:00 the day before (24 h ahead), with the shipped text.
    _tick(datetime(2030, 6, 9, 14, 5, tzinfo=UTC))
    reminders = [r for r in fake.sms_requests() if "a reminder of your appointment" in r["body"]]
    assert len(reminders) == 1
    session.expire_all()
    # The admin moves the reminder to 18:00 the evening before: the first visit's is now due tonight.
    with clock.frozen(datetime(2030, 6, 9, 15, 0, tzinfo=UTC)):
        _reminder_at_18(session, clinic_id)
        summary = publish_draft(session, clinic_id, SEQ, actor=ADMIN, current_patients=True)
        session.commit()
    assert summary.changed == 2  # the two visits still ahead; the sent one is history
    sent = [v for k, v in _rows(session, enrollment_id).items() if k[0] == "visit-reminder"]
    assert sorted(status for _, status in sent).count(MessageStatus.SENT) == 1
    session.commit()
    # Ticks past 18:00 that evening and the next week: the first reminder is not sent again,
    # the second goes at its new time with the new words.
    _tick(datetime(2030, 6, 9, 22, 5, tzinfo=UTC))
    _tick(datetime(2030, 6, 16, 22, 5, tzinfo=UTC))
    bodies = [r["body"] for r in fake.sms_requests()]
    assert len([b for b in bodies if "a reminder of your appointment" in b]) == 1
    assert [b for b in bodies if b.endswith("NEW.")] == ["Riverside Physio: see you June 17 at 10:00 AM. NEW."]


def test_the_preview_shows_the_draft_beside_the_published_version_on_a_real_plan(session: Session) -> None:
    clinic_id, [enrollment_id] = _world(session)
    plan_id = session.get_one(Enrollment, enrollment_id).plan_id
    with clock.frozen(ENROLLED_AT + timedelta(hours=1)):
        _reminder_at_18(session, clinic_id)
        rows = preview_for_plan(session, plan_id, SEQ)
    reminders = [r for r in rows if r.step_key == "visit-reminder"]
    assert [(r.draft_at.hour, r.published_at.hour) for r in reminders] == [(18, 10)] * 3  # type: ignore[union-attr]
    assert [r.draft_at.day for r in reminders] == [9, 16, 23]  # type: ignore[union-attr]
    first = reminders[0]
    assert first.draft_text == "Riverside Physio: see you June 10 at 10:00 AM. NEW."
    assert first.published_text is not None and "a reminder of your appointment" in first.published_text
    assert first.time_changed and first.text_changed
    aftercare = next(r for r in rows if r.step_key == "aftercare")
    assert not aftercare.time_changed and not aftercare.text_changed
    # Already sent: not previewed (it will not go again).
    session.execute(
        update(Message)
        .where(Message.enrollment_id == enrollment_id, Message.step_key == "booking-confirmation")
        .values(status=MessageStatus.SENT)
    )
    with clock.frozen(ENROLLED_AT + timedelta(hours=1)):
        assert "booking-confirmation" not in {r.step_key for r in preview_for_plan(session, plan_id, SEQ)}


def test_a_tick_during_a_publish_takes_nothing_the_publish_is_changing(pg_url: str) -> None:
    factory = session_factory()
    with factory() as setup:
        clinic_id, [enrollment_id] = _world(setup)
        _reminder_at_18(setup, clinic_id)
        setup.commit()
    old_due = datetime(2030, 6, 9, 14, 0, tzinfo=UTC)  # the first reminder, 24 h ahead, under the shipped file
    publishing = factory()
    try:
        with clock.frozen(old_due + timedelta(minutes=5)):
            publish_draft(publishing, clinic_id, SEQ, actor=ADMIN, current_patients=True)
            # The dispatcher ticks before the publish commits: the enrollment's rows are locked, so it takes none
            # (it would otherwise send the reminder the new version no longer wants at this time).
            claimed: list[int] = []
            thread = threading.Thread(target=lambda: claimed.extend(claim_due()))
            thread.start()
            thread.join(timeout=10)
            assert not thread.is_alive() and claimed == []
            publishing.commit()
            after = claim_due()
    finally:
        publishing.close()
    with factory() as check:
        taken = {m.step_key for m in check.scalars(select(Message).where(Message.id.in_(after)))}
        assert "visit-reminder" not in taken and "booking-confirmation" in taken
        first_reminder = check.scalars(
            select(Message)
            .where(Message.enrollment_id == enrollment_id, Message.step_key == "visit-reminder")
            .order_by(Message.due_at)
        ).first()
        assert first_reminder is not None
        assert (first_reminder.status, first_reminder.due_at) == (
            MessageStatus.SCHEDULED,
            datetime(2030, 6, 9, 22, 0, tzinfo=UTC),
        )


def test_a_reworded_version_switches_current_patients_without_moving_a_message(session: Session) -> None:
    clinic_id, [enrollment_id] = _world(session)
    with clock.frozen(ENROLLED_AT + timedelta(hours=1)):
        before = _rows(session, enrollment_id)
        draft = versions.start_draft(session, clinic_id, SEQ, actor=ADMIN)
        texts = {**draft.texts, "sms/visit-reminder.txt": NEW_TEXT}
        versions.save_draft(session, clinic_id, SEQ, definition=draft.definition, texts=texts, actor=ADMIN)
        summary = publish_draft(session, clinic_id, SEQ, actor=ADMIN, current_patients=True)
        session.commit()
    assert summary == PublishSummary(version=1, changed=0, cancelled=0, added=0)
    assert _rows(session, enrollment_id) == before
    assert session.get_one(Enrollment, enrollment_id).sequence_version == 1
    reminder_id = session.scalars(
        select(Message.id)
        .where(Message.enrollment_id == enrollment_id, Message.step_key == "visit-reminder")
        .order_by(Message.due_at)
    ).first()
    assert reminder_id is not None
    loaded = load_for_sending(session, reminder_id)
    body = render(session, loaded.message, first_sms=loaded.first_sms).payload.body  # type: ignore[union-attr]
    assert body == "Riverside Physio: see you June 10 at 10:00 AM. NEW."


def test_the_admin_who_lost_a_publish_race_keeps_their_draft_over_the_new_version(session: Session) -> None:
    clinic_id, _ = _world(session)
    versions.start_draft(session, clinic_id, SEQ, actor=ADMIN)
    publish_draft(session, clinic_id, SEQ, actor=ADMIN, current_patients=False)  # v1
    _reminder_at_18(session, clinic_id)  # a draft based on v1
    republish(session, clinic_id, SEQ, 1, actor="other@clinic.example", current_patients=False)  # v2 meanwhile
    with pytest.raises(StalePublish):
        publish_draft(session, clinic_id, SEQ, actor=ADMIN, current_patients=False)
    assert versions.rebase_draft(session, clinic_id, SEQ, actor=ADMIN).base_version == 2
    assert publish_draft(session, clinic_id, SEQ, actor=ADMIN, current_patients=False).version == 3

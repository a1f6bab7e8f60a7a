"""``engage sequences export|import`` (issue 23): the YAML round trip, the summary, texts as files."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import yaml

from engage.clock import utcnow
from engage.db import session_scope
from engage.records import clinics, patients, plans
from engage.schedule import versions
from engage.schedule.enrollments import enroll
from engage.schedule.sequences import get_sequence, parse_sequence, sequences_dir
from tests.cli import engage

SEQ = "dry-needling-sciatica"


def _clinic(name: str = "Riverside Physio", *, enrolled: int = 0) -> int:
    with session_scope() as session:
        clinic = clinics.create_clinic(
            session,
            name=name,
            timezone="America/New_York",
            address="1 River St",
            email="care@riverside.example",
            actor="test",
        )
        clinic.sms_per_day = clinic.sms_per_week = 99
        first = (utcnow() + timedelta(days=10)).strftime("%Y-%m-%dT10:00")
        for n in range(enrolled):
            patient = patients.add_patient(
                session, clinic_id=clinic.id, first_name="Pat", last_name=f"D{n}", phone=f"+1202555{n:04d}", actor="t"
            ).patient
            plan = plans.create_plan(
                session,
                patient_id=patient.id,
                condition="sciatica",
                modality="dry needling",
                first=first,
                sessions=3,
                every=timedelta(days=7),
                actor="test",
            )
            enroll(session, patient.id, plan.id, SEQ, enrolled_by="test")
        return clinic.id


def _shipped() -> str:
    return (sequences_dir() / f"{SEQ}.yaml").read_text(encoding="utf-8")


def _evening_reminder() -> str:
    data = yaml.safe_load(_shipped())
    reminder = next(s for s in data["steps"] if s["key"] == "visit-reminder")
    reminder.update(offset="-1d", at="18:00")
    return yaml.safe_dump(data, sort_keys=False)


def test_the_shipped_file_round_trips_through_import_publish_and_export(sqlite_url: str, tmp_path: Path) -> None:
    clinic_id = _clinic()
    source = tmp_path / "in.yaml"
    source.write_text(_shipped(), encoding="utf-8")
    assert engage("sequences", "import", str(source), "--clinic", str(clinic_id), "--publish", "--json").json == {
        "version": 1,
        "changed": 0,
        "cancelled": 0,
        "added": 0,
    }
    exported = engage("sequences", "export", SEQ, "--clinic", str(clinic_id))
    assert exported.code == 0, exported.stderr
    out = tmp_path / "out.yaml"
    out.write_text(exported.stdout, encoding="utf-8")
    assert parse_sequence(out) == get_sequence(SEQ)  # the existing loader reads it back identically


def test_before_any_publish_export_prints_the_shipped_file_the_patients_follow(sqlite_url: str) -> None:
    clinic_id = _clinic()
    exported = engage("sequences", "export", SEQ, "--clinic", str(clinic_id))
    assert exported.code == 0, exported.stderr
    assert exported.stdout == _shipped()
    unknown = engage("sequences", "export", "no-such-sequence", "--clinic", str(clinic_id))
    assert unknown.code != 0 and "no sequence 'no-such-sequence'" in unknown.stderr


def test_an_edited_sequence_round_trips_and_imports_into_another_clinic_unchanged(db_url: str, tmp_path: Path) -> None:
    first, second = _clinic(enrolled=2), _clinic("Other Physio")
    source = tmp_path / "edited.yaml"
    source.write_text(_evening_reminder(), encoding="utf-8")
    dry = engage(
        "sequences", "import", str(source), "--clinic", str(first), "--publish", "--current-patients", "--dry-run",
        "--json",
    )  # fmt: skip
    assert dry.json == {"version": 1, "changed": 6, "cancelled": 0, "added": 0}  # 3 reminders x 2 patients move
    with session_scope() as session:
        assert versions.list_versions(session, first, SEQ) == []
        assert versions.get_draft(session, first, SEQ) is None  # a dry run changes nothing
    published = engage(
        "sequences", "import", str(source), "--clinic", str(first), "--publish", "--current-patients", "--json"
    )
    assert published.json == dry.json
    exported = engage("sequences", "export", SEQ, "--clinic", str(first)).stdout
    (tmp_path / "out.yaml").write_text(exported, encoding="utf-8")
    loaded = parse_sequence(tmp_path / "out.yaml")
    with session_scope() as session:
        assert loaded == versions.content_at(session, first, SEQ, 1).sequence
    assert loaded.step("visit-reminder").at is not None and loaded.step("visit-reminder").at.hour == 18
    assert "at: '18:00'" in exported  # a string, not YAML 1.1's sexagesimal 1080
    # Into another clinic and out again: the same text.
    engage("sequences", "import", str(tmp_path / "out.yaml"), "--clinic", str(second), "--publish", "--json")
    assert engage("sequences", "export", SEQ, "--clinic", str(second)).stdout == exported


def test_texts_travel_as_template_files(sqlite_url: str, tmp_path: Path) -> None:
    clinic_id = _clinic()
    source = tmp_path / "seq.yaml"
    source.write_text(_shipped(), encoding="utf-8")
    engage("sequences", "import", str(source), "--clinic", str(clinic_id), "--publish", "--json")
    texts = tmp_path / "texts"
    engage("sequences", "export", SEQ, "--clinic", str(clinic_id), "--texts-dir", str(texts))
    assert (texts / "sms" / "stretch.es.txt").is_file()
    (texts / "sms" / "visit-reminder.txt").write_text("{{ clinic.name }}: see you soon. Reply C to confirm.\n")
    result = engage("sequences", "import", str(source), "--clinic", str(clinic_id), "--texts-dir", str(texts), "--json")
    assert result.json["problems"] == [] and result.json["version"] is None
    with session_scope() as session:
        draft = versions.get_draft(session, clinic_id, SEQ)
        assert draft is not None and draft.texts["sms/visit-reminder.txt"].startswith("{{ clinic.name }}: see you")


def test_a_draft_with_problems_is_kept_but_not_published(sqlite_url: str, tmp_path: Path) -> None:
    clinic_id = _clinic()
    source = tmp_path / "bad.yaml"
    source.write_text(_shipped().replace("offset: -24h", "offset: 3 dayz"), encoding="utf-8")
    result = engage("sequences", "import", str(source), "--clinic", str(clinic_id), "--publish", "--json")
    assert result.code == 2 and "3 dayz" in result.stderr
    saved = engage("sequences", "import", str(source), "--clinic", str(clinic_id), "--json").json
    assert [p["field"] for p in saved["problems"]] == ["steps.2.offset"]
    still = engage("sequences", "export", SEQ, "--clinic", str(clinic_id))
    assert still.code == 0 and still.stdout == _shipped()  # nothing published: the patients follow the shipped file

"""A clinic's drafts and versions of a sequence (issue 23): saving keeps bad input and names its problems."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from engage.content.checks import check_texts
from engage.errors import InvalidInput, NotFound
from engage.schedule import versions
from engage.schedule.sequences import Sequence, get_sequence, library_definition
from tests import seed

SEQ = "dry-needling-sciatica"


def _step(definition: dict[str, Any], key: str) -> tuple[int, dict[str, Any]]:
    return next((i, s) for i, s in enumerate(definition["steps"]) if s["key"] == key)


def test_a_new_draft_starts_from_the_shipped_file_and_has_no_problems(session: Session) -> None:
    clinic = seed.clinic(session)
    draft = versions.start_draft(session, clinic.id, SEQ, actor="admin@example.com")
    assert draft.definition == library_definition(SEQ)
    assert Sequence.model_validate(draft.definition) == get_sequence(SEQ)
    assert {"sms/stretch.txt", "sms/stretch.es.txt", "email/reassessment.txt", "email/what-to-expect.html"} <= set(
        draft.texts
    )
    assert draft.base_version is None
    assert draft.problems == []
    assert versions.get_draft(session, clinic.id, SEQ) == draft
    # Nothing published: the clinic follows the shipped file.
    content = versions.published_content(session, clinic.id, SEQ)
    assert content.version is None
    assert content.sequence == get_sequence(SEQ)
    assert versions.list_versions(session, clinic.id, SEQ) == []


def test_a_draft_under_a_new_key_starts_from_a_library_sequence(session: Session) -> None:
    clinic = seed.clinic(session)
    draft = versions.start_draft(session, clinic.id, "our-sciatica", actor="admin@example.com", from_library=SEQ)
    assert draft.definition["key"] == "our-sciatica"
    assert draft.problems == []
    with pytest.raises(NotFound, match="known"):
        versions.start_draft(session, clinic.id, "other", actor="admin@example.com")


def test_saving_keeps_bad_input_and_names_each_problem(session: Session) -> None:
    clinic = seed.clinic(session)
    draft = versions.start_draft(session, clinic.id, SEQ, actor="admin@example.com")
    definition = library_definition(SEQ)
    index, stretch = _step(definition, "stretch")
    stretch["offset"] = "3 dayz"
    stretch["at"] = "25:00"
    texts = dict(draft.texts)
    texts["sms/stretch.txt"] = "Hi {{ first_nme }}, time for your stretches."
    texts["sms/stretch.es.txt"] = "   "
    texts["sms/visit-reminder.txt"] = "See you soon at {{ clinic.name }}. " + "Please come in on time. " * 60

    saved = versions.save_draft(session, clinic.id, SEQ, definition=definition, texts=texts, actor="b@example.com")

    fields = {p.field: p.message for p in saved.problems}
    assert "Not a duration: '3 dayz'" in fields[f"steps.{index}.offset"]
    assert "25:00" in fields[f"steps.{index}.at"]
    assert "first_nme" in fields["texts.sms/stretch.txt"]
    assert "empty" in fields["texts.sms/stretch.es.txt"]
    assert "segments" in fields["texts.sms/visit-reminder.txt"]
    session.commit()
    session.expire_all()
    again = versions.get_draft(session, clinic.id, SEQ)
    assert again is not None
    assert again.definition == definition  # what was typed, bad parts included
    assert again.texts == texts
    assert again.updated_by == "b@example.com"
    assert {p.field for p in again.problems} == set(fields)


def test_a_condition_word_on_a_lock_screen_and_a_missing_template_are_problems(session: Session) -> None:
    clinic = seed.clinic(session)
    draft = versions.start_draft(session, clinic.id, SEQ, actor="admin@example.com")
    definition = library_definition(SEQ)
    index, stretch = _step(definition, "stretch")
    stretch["template"] = "no-such-text"
    texts = {**draft.texts, "sms/rebook.txt": "Book your next dry needling session at {{ clinic.name }}."}
    saved = versions.save_draft(session, clinic.id, SEQ, definition=definition, texts=texts, actor="a@example.com")
    fields = {p.field: p.message for p in saved.problems}
    assert "no-such-text" in fields[f"steps.{index}.template"]
    assert "needle" in fields["texts.sms/rebook.txt"]


def test_what_cannot_be_stored_is_refused_and_a_draft_can_be_discarded(session: Session) -> None:
    clinic = seed.clinic(session)
    with pytest.raises(InvalidInput):
        versions.save_draft(session, clinic.id, SEQ, definition=[], texts={}, actor="a")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        versions.save_draft(session, clinic.id, "Bad Key", definition={}, texts={}, actor="a")
    saved = versions.save_draft(session, clinic.id, SEQ, definition={"name": ""}, texts={}, actor="a")
    assert {p.field for p in saved.problems} >= {"steps"}
    versions.discard_draft(session, clinic.id, SEQ, actor="a")
    assert versions.get_draft(session, clinic.id, SEQ) is None
    with pytest.raises(NotFound):
        versions.discard_draft(session, clinic.id, SEQ, actor="a")


def test_a_rule_between_a_steps_fields_goes_beside_the_field_it_names(session: Session) -> None:
    clinic = seed.clinic(session)
    definition = library_definition(SEQ)
    index, reminder = _step(definition, "visit-reminder")
    reminder["or_email"] = True
    reminder["channel"] = "email"
    saved = versions.save_draft(session, clinic.id, SEQ, definition=definition, texts={}, actor="a")
    assert [p.field for p in saved.problems if p.field.startswith("steps.")] == [f"steps.{index}.or_email"]


def test_the_checks_of_one_text_for_the_editor() -> None:
    texts = {"sms/stretch.txt": "Hi {{ first_nme }}", "sms/stretch.es.txt": "Hola {{ patient.first_name }}, a estirar."}
    [problem] = check_texts(texts, ["sms/stretch.txt"])
    assert (problem.file, problem.rule) == ("sms/stretch.txt", "render-error") and "first_nme" in problem.detail
    assert check_texts(texts, ["sms/stretch.es.txt"]) == []

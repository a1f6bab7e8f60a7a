"""The editor's form and the loader's definition: every shipped sequence goes through the form's fields and
back to the same sequence (saving an untouched draft changes nothing), and what people type reads as meant."""

from __future__ import annotations

import pytest

from engage.schedule.sequences import Sequence, library_definition, load_sequences
from engage.web.staff.sequence_editor_form import (
    definition_from_form,
    field_problems,
    offset_text,
    steps_of,
    text_label,
)


def _fields(definition: dict) -> dict[str, list[str]]:  # type: ignore[type-arg]
    steps = steps_of(definition)
    return {
        "step_key": [s.key for s in steps],
        "anchor": [s.anchor for s in steps],
        "direction": [s.direction for s in steps],
        "offset": [s.offset for s in steps],
        "at": [s.at for s in steps],
        "appointments": [s.appointments for s in steps],
        "channel": [s.channel for s in steps],
        "or_email": ["yes" if s.or_email else "no" for s in steps],
        "priority": [s.priority for s in steps],
        "caps": ["exempt" if s.urgent else "apply" for s in steps],
        "quiet_hours": [s.quiet_hours for s in steps],
    }


@pytest.mark.parametrize("key", sorted(load_sequences()))
def test_a_shipped_sequence_goes_through_the_form_unchanged(key: str) -> None:
    definition = library_definition(key)
    again = definition_from_form(definition, definition["name"], _fields(definition))
    assert Sequence.model_validate(again) == Sequence.model_validate(definition)
    assert field_problems(again) == {}


@pytest.mark.parametrize(
    ("direction", "typed", "stored"),
    [
        ("before", "24 hours", "-24h"),
        ("after", "1 day", "1d"),
        ("after", "2 days and 3 hours", "2d3h"),
        ("before", "30 min", "-30m"),
        ("after", "1d12h", "1d12h"),
        ("after", "", ""),
        ("after", "3 dayz", "3 dayz"),  # kept as typed: the draft keeps it, the page says what is wrong
    ],
)
def test_an_offset_reads_as_people_write_it(direction: str, typed: str, stored: str) -> None:
    assert offset_text(direction, typed) == stored


def test_bad_fields_get_a_sentence_each() -> None:
    definition = {"name": " ", "steps": [{"key": "a", "offset": "-3 dayz", "at": "25:00", "priority": "high"}]}
    problems = field_problems(definition)
    assert set(problems) == {"name", "steps.0.offset", "steps.0.at", "steps.0.priority"}
    assert problems["steps.0.offset"].startswith("“3 dayz” is not a length of time")
    assert problems["steps.0.at"].startswith("“25:00” is not a time of day")


def test_text_labels_name_the_part_and_the_language() -> None:
    assert text_label("sms/stretch.es.txt") == "SMS text, Spanish"
    assert text_label("email/aftercare.subject.txt") == "Email subject, English"
    assert text_label("email/aftercare.es.html") == "Email HTML, Spanish"

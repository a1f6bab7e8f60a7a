"""What is wrong with a draft of a sequence, as sentences beside the fields (the sequence editor, issue 23).

A draft is kept whatever it holds; these problems say what must be fixed before it can be published:
the definition as the YAML loader validates it (``steps.3.offset: not a duration: '3 dayz' ...``), a
step whose template has no text, and the texts under the rules ``templates check`` applies
(unknown variables, an empty SMS, more than two segments, condition words on a lock screen, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from engage.content.checks import check_stored_texts
from engage.content.overlay import step_templates, template_paths
from engage.content.rendering import Texts
from engage.schedule.sequences import Sequence


@dataclass(frozen=True)
class Problem:
    """``field``: ``name``, ``steps.3.offset``, ``texts.sms/stretch.es.txt``; ``message``: a sentence for it."""

    field: str
    message: str


def parse_definition(key: str, definition: Mapping[str, Any]) -> tuple[Sequence | None, list[Problem]]:
    """The sequence the definition describes (None when it is not valid) and what is wrong with it."""
    if not isinstance(definition, Mapping):
        return None, [Problem("definition", "a sequence is a mapping with key, name and steps")]
    problems = []
    if definition.get("key", key) != key:
        problems.append(Problem("key", f"the key is {key!r}; a draft cannot change it"))
    try:
        sequence = Sequence.model_validate({**definition, "key": key})
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "definition"
            if len(error["loc"]) == 2 and error["loc"][0] == "steps":  # a rule between a step's fields
                field += "." + _field_named(error["msg"])
            problems.append(Problem(field, _sentence(error["msg"])))
        return None, problems
    return sequence, problems


#: For a rule between a step's fields, the field its sentence goes beside (the first named in the message).
_STEP_RULE_FIELDS = ("or_email", "appointments", "repeat", "at", "offset", "key")


def _field_named(message: str) -> str:
    for name in _STEP_RULE_FIELDS:
        if f"'{name}'" in message or message.startswith(f"with '{name}'") or f" {name} " in f" {message} ":
            return name
    return "step"


def _sentence(message: str) -> str:
    text = message.removeprefix("Value error, ")
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def draft_problems(key: str, definition: Mapping[str, Any], texts: Mapping[str, str]) -> list[Problem]:
    """Everything that stops a draft being published; empty: it may be."""
    sequence, problems = parse_definition(key, definition)
    stored = Texts(texts)
    if sequence is not None:
        for index, step in enumerate(sequence.steps):
            for channel, name in step_templates([step]):
                if not stored.holds(channel, name) and not template_paths(channel, name):
                    problems.append(Problem(f"steps.{index}.template", f"There is no {channel} text named {name!r}."))
    report = check_stored_texts(stored)
    for problem in report.problems:
        problems.append(Problem(f"texts.{problem.file}", _sentence(problem.detail)))
    return problems

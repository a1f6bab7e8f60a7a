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

from engage.config import get_settings
from engage.content.checks import _locale_of, _template_of, check_stored_texts
from engage.content.overlay import step_templates, template_paths
from engage.content.rendering import DEFAULT_LOCALE, Texts, templates_root
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
    for file, detail in _text_problems(texts):
        problems.append(Problem(f"texts.{file}", _sentence(detail)))
    return problems


#: Each template's checked texts -> its problems, for the settings they were checked under (the editor loads
#: and saves a draft often, changing one text at a time: only a changed template is rendered and checked again).
_checked: dict[tuple[Any, ...], tuple[tuple[str, str], ...]] = {}
_checked_under: list[Any] = [None]
_CHECKED_SIZE = 2048


def _text_problems(texts: Mapping[str, str]) -> list[tuple[str, str]]:
    """``(file, detail)`` for what ``templates check``'s rules find in the stored texts: the same as
    ``check_stored_texts(Texts(texts))``, one template at a time (each in every locale any text has),
    remembered by the template's texts."""
    settings = get_settings()
    if _checked_under[0] is not settings or len(_checked) >= _CHECKED_SIZE:
        _checked.clear()
        _checked_under[0] = settings
    locales = tuple(sorted({DEFAULT_LOCALE, *(_locale_of(path) for path in texts)}))
    root = str(templates_root())
    words = tuple(settings.condition_words)
    groups: dict[tuple[str, str], dict[str, str]] = {}
    for path, source in texts.items():
        groups.setdefault(_template_of(path), {})[path] = source
    found: list[tuple[str, str]] = []
    for (channel, name), group in sorted(groups.items()):
        key = (root, words, channel, name, locales, tuple(sorted(group.items())))
        if key not in _checked:
            # One path per locale makes check_stored_texts check the template in that locale.
            wanted = sorted({*group, *(_path_in(channel, name, locale) for locale in locales)})
            report = check_stored_texts(Texts(group), paths=wanted)
            _checked[key] = tuple((problem.file, problem.detail) for problem in report.problems)
        found.extend(_checked[key])
    return found


def _path_in(channel: str, name: str, locale: str) -> str:
    middle = "" if locale == DEFAULT_LOCALE else f"{locale}."
    return f"{channel}/{name}.{middle}{'txt' if channel == 'sms' else 'subject.txt'}"

"""A clinic's sequence as files: export a published version as the YAML the library loader reads (and its
texts as template files), import such files as a draft (``engage sequences export|import``, issue 23).

The YAML is the version's definition as stored (the dict the loader validated), so reading it back with
:func:`engage.schedule.sequences.parse_sequence` gives the same :class:`Sequence`; the texts go to
``<dir>/<channel>/<file>``, the layout of ``templates/``, so a clinic can keep both in git.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session

from engage.content.overlay import library_texts, step_templates
from engage.errors import InvalidInput, NotFound
from engage.schedule.draft_checks import parse_definition
from engage.schedule.sequences import get_sequence, parse_sequence, sequences_dir
from engage.schedule.versions import (
    Draft,
    check_key,
    content_of,
    current_version,
    get_draft,
    save_draft,
    start_draft,
    version_row,
)


def dump_definition(definition: dict[str, Any]) -> str:
    """The definition as YAML, keys in the order written (``at: '09:00'`` stays a string)."""
    return yaml.safe_dump(definition, sort_keys=False, allow_unicode=True, default_flow_style=False)


def export_version(
    session: Session, clinic_id: int, key: str, version: int | None = None
) -> tuple[str, dict[str, str]]:
    """``(yaml, texts)`` of the clinic's version of ``key`` (default: the current one); the shipped file and its
    texts while the clinic has published none, since that is what its patients follow."""
    version = version if version is not None else current_version(session, clinic_id, key)
    if version is None:
        sequence = get_sequence(key)  # NotFound naming the known keys
        return _shipped_text(key), library_texts(sequence)
    row = version_row(session, clinic_id, key, version)
    content_of(row)  # still readable by today's loader
    return dump_definition(dict(row.definition)), {str(k): str(v) for k, v in row.texts.items()}


def _shipped_text(key: str) -> str:
    for path in sorted(sequences_dir().glob("*.y*ml")):
        if parse_sequence(path).key == key:
            return path.read_text(encoding="utf-8")
    raise NotFound(f"no sequence {key!r}")


def write_texts(folder: Path, texts: dict[str, str]) -> list[Path]:
    """Write each text to ``folder/<path>``; the paths written."""
    written = []
    for path, source in sorted(texts.items()):
        target = folder / path
        if ".." in Path(path).parts or Path(path).is_absolute():
            raise InvalidInput(f"{path!r} is not a template path")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source, encoding="utf-8")
        written.append(target)
    return written


def read_definition(text: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"not valid YAML ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("key"), str):
        raise InvalidInput("a sequence file is a mapping with key, name and steps")
    return data


def import_draft(session: Session, clinic_id: int, text: str, *, actor: str, texts_dir: Path | None = None) -> Draft:
    """Make the clinic's draft of the file's sequence from it: its definition, and the texts of the templates
    its steps use read from ``texts_dir`` (``<channel>/<name>[.<locale>].<part>``) where given and present,
    else kept from the draft, version or shipped file the draft starts from."""
    definition = read_definition(text)
    key = definition["key"]
    check_key(key)
    draft = get_draft(session, clinic_id, key)
    if draft is None:
        try:
            draft = start_draft(session, clinic_id, key, actor=actor)
        except NotFound:  # a sequence of the clinic's own: no version, no shipped file
            draft = None
    texts = dict(draft.texts) if draft is not None else {}
    sequence, _problems = parse_definition(key, definition)
    if texts_dir is not None and sequence is not None:
        for channel, name in step_templates(sequence.steps):
            folder = texts_dir / channel
            for path in sorted(folder.glob(f"{name}.*")) if folder.is_dir() else []:
                texts[f"{channel}/{path.name}"] = path.read_text(encoding="utf-8")
    return save_draft(session, clinic_id, key, definition=definition, texts=texts, actor=actor)

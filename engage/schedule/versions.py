"""A clinic's own versions of a sequence: the draft an admin edits, the published versions, and which
version an enrollment is planned and rendered from (the sequence editor, issue 23).

Per clinic and sequence key (``sequence_versions``): at most one draft, kept whatever it holds (bad input
is stored with its :class:`Problem` list, so nothing typed is lost), and published versions 1..N, never
changed once published. A clinic with no published version follows the shipped library file, exactly as
before the editor existed. Publishing lives in :mod:`engage.schedule.publish`.

A published version's content is cached per process by (clinic, key, version): it cannot change, so the
send path reads it from the database once, and its compiled templates are cached by its texts
(:class:`engage.content.rendering.Texts`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.content.overlay import library_texts
from engage.content.rendering import Texts
from engage.errors import InvalidInput, NotFound
from engage.records.audit import AuditAction, audit
from engage.records.models import Clinic, SequenceVersion
from engage.schedule.draft_checks import Problem, draft_problems, parse_definition
from engage.schedule.sequences import Sequence, get_sequence, library_definition, valid_key

__all__ = [
    "Draft",
    "Problem",
    "SequenceContent",
    "VersionInfo",
    "content_at",
    "current_version",
    "discard_draft",
    "get_draft",
    "list_versions",
    "published_content",
    "rebase_draft",
    "save_draft",
    "start_draft",
]

#: Limits on what a draft may hold (a sequence has about ten steps and thirty texts).
MAX_TEXTS = 200
MAX_TEXT_CHARS = 20_000
MAX_STEPS = 100


@dataclass(frozen=True)
class Draft:
    clinic_id: int
    key: str
    definition: dict[str, Any]
    texts: dict[str, str]
    base_version: int | None
    updated_by: str
    updated_at: datetime
    problems: list[Problem]


@dataclass(frozen=True)
class SequenceContent:
    """What an enrollment follows: the sequence and its texts; ``version`` None is the shipped library file
    (then ``texts`` is empty: the files render)."""

    sequence: Sequence
    texts: Mapping[str, str]
    version: int | None


@dataclass(frozen=True)
class VersionInfo:
    version: int
    published_at: datetime
    published_by: str
    summary: dict[str, Any]


_cache: dict[tuple[int, str, int], SequenceContent] = {}
_CACHE_SIZE = 512


_NO_TEXTS = Texts()


def library_content(key: str) -> SequenceContent:
    """The shipped file of ``key`` (``NotFound`` lists the known keys)."""
    return SequenceContent(get_sequence(key), _NO_TEXTS, None)


def current_version(session: Session, clinic_id: int, key: str) -> int | None:
    """The clinic's newest published version of ``key`` (None: it follows the shipped file)."""
    return session.scalar(
        select(func.max(SequenceVersion.version)).where(
            SequenceVersion.clinic_id == clinic_id, SequenceVersion.sequence_key == key
        )
    )


def published_content(session: Session, clinic_id: int, key: str) -> SequenceContent:
    """What a new enrollment of the clinic in ``key`` follows: its newest published version, else the file."""
    return content_at(session, clinic_id, key, current_version(session, clinic_id, key))


def content_at(session: Session, clinic_id: int, key: str, version: int | None) -> SequenceContent:
    """Version ``version`` of the clinic's ``key`` (None: the shipped file); cached, as a version never changes."""
    if version is None:
        return library_content(key)
    cache_key = (clinic_id, key, version)
    found = _cache.get(cache_key)
    if found is not None:
        return found
    content = content_of(version_row(session, clinic_id, key, version))
    if len(_cache) >= _CACHE_SIZE:
        _cache.clear()
    _cache[cache_key] = content
    return content


def definition_of(session: Session, clinic_id: int, key: str, version: int | None) -> dict[str, Any]:
    """The definition (as the YAML loader reads it) of the clinic's version of ``key``; None: the shipped file."""
    if version is None:
        return library_definition(key)
    return dict(version_row(session, clinic_id, key, version).definition)


def content_of(row: SequenceVersion) -> SequenceContent:
    """A version row as content (its definition was valid when it was published)."""
    sequence, problems = parse_definition(row.sequence_key, row.definition)
    if sequence is None:
        raise InvalidInput(f"version {row.version} of {row.sequence_key!r}: {problems[0].field}: {problems[0].message}")
    return SequenceContent(sequence, Texts(row.texts), row.version)


def clear_cache() -> None:
    """Forget every cached version (a database emptied and filled again, as the tests do)."""
    _cache.clear()


def forget(clinic_id: int, key: str, version: int) -> None:
    """Drop a cached version (a dry run's, rolled back: its number will be used again)."""
    _cache.pop((clinic_id, key, version), None)


def check_key(key: str) -> None:
    if not isinstance(key, str) or len(key) > 100 or not valid_key(key):
        raise InvalidInput(f"{key!r} is not a sequence key: lower-case letters, digits, '-' or '_'")


def _draft_row(session: Session, clinic_id: int, key: str, *, lock: bool = False) -> SequenceVersion | None:
    query = select(SequenceVersion).where(
        SequenceVersion.clinic_id == clinic_id,
        SequenceVersion.sequence_key == key,
        SequenceVersion.version.is_(None),
    )
    return session.scalars(query.with_for_update() if lock else query).one_or_none()


def version_row(session: Session, clinic_id: int, key: str, version: int) -> SequenceVersion:
    """The stored row of the clinic's published version ``version`` of ``key``; ``NotFound`` naming it."""
    row = session.scalars(
        select(SequenceVersion).where(
            SequenceVersion.clinic_id == clinic_id,
            SequenceVersion.sequence_key == key,
            SequenceVersion.version == version,
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"sequence {key!r} has no version {version}")
    return row


def _as_draft(row: SequenceVersion) -> Draft:
    definition = dict(row.definition) if isinstance(row.definition, dict) else {}
    texts = {str(k): str(v) for k, v in row.texts.items()} if isinstance(row.texts, dict) else {}
    return Draft(
        clinic_id=row.clinic_id,
        key=row.sequence_key,
        definition=definition,
        texts=texts,
        base_version=row.base_version,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
        problems=draft_problems(row.sequence_key, row.definition, texts),
    )


def get_draft(session: Session, clinic_id: int, key: str) -> Draft | None:
    """The clinic's draft of ``key`` with its problems, or None."""
    row = _draft_row(session, clinic_id, key)
    return _as_draft(row) if row is not None else None


def start_draft(session: Session, clinic_id: int, key: str, *, actor: str, from_library: str | None = None) -> Draft:
    """The clinic's draft of ``key``, made if there is none: from the shipped sequence ``from_library`` (its
    definition under the key ``key``, and its texts), else from the clinic's newest version, else from the
    shipped file of ``key``. An existing draft is returned as it is (``from_library`` then does nothing)."""
    check_key(key)
    session.get_one(Clinic, clinic_id)
    row = _draft_row(session, clinic_id, key)
    if row is not None:
        return _as_draft(row)
    base = current_version(session, clinic_id, key)
    if from_library is not None:
        definition = {**library_definition(from_library), "key": key}
        texts = library_texts(get_sequence(from_library))
    elif base is not None:
        published = version_row(session, clinic_id, key, base)
        definition, texts = dict(published.definition), dict(published.texts)
    else:
        definition = library_definition(key)
        texts = library_texts(get_sequence(key))
    now = utcnow()
    row = SequenceVersion(
        clinic_id=clinic_id,
        sequence_key=key,
        version=None,
        definition=definition,
        texts=texts,
        base_version=base,
        created_by=actor,
        created_at=now,
        updated_by=actor,
        updated_at=now,
        summary={},
    )
    session.add(row)
    session.flush()
    audit(
        session,
        clinic_id=clinic_id,
        actor=actor,
        action=AuditAction.SEQUENCE_DRAFT_SAVE,
        subject_type="sequence_version",
        subject_id=row.id,
        sequence=key,
        started_from=from_library or (f"version {base}" if base is not None else "library"),
    )
    return _as_draft(row)


def _check_size(definition: Any, texts: Any) -> None:
    if not isinstance(definition, dict):
        raise InvalidInput("the definition must be a mapping (key, name, steps)")
    steps = definition.get("steps")
    if isinstance(steps, list) and len(steps) > MAX_STEPS:
        raise InvalidInput(f"a sequence has at most {MAX_STEPS} steps")
    if not isinstance(texts, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in texts.items()):
        raise InvalidInput("texts must map a template path to its text")
    if len(texts) > MAX_TEXTS:
        raise InvalidInput(f"a sequence has at most {MAX_TEXTS} texts")
    for path, source in texts.items():
        if len(path) > 200 or len(source) > MAX_TEXT_CHARS:
            raise InvalidInput(f"{path[:200]!r}: a text is at most {MAX_TEXT_CHARS} characters, its path 200")


def save_draft(
    session: Session, clinic_id: int, key: str, *, definition: dict[str, Any], texts: dict[str, str], actor: str
) -> Draft:
    """Store the draft exactly as typed (bad input is kept) and return it with its problems.

    Refused (``InvalidInput``) only for what cannot be stored at all: a definition that is not a mapping,
    texts that are not strings, or more than the limits allow.
    """
    check_key(key)
    _check_size(definition, texts)
    session.get_one(Clinic, clinic_id)
    row = _draft_row(session, clinic_id, key, lock=True)
    now = utcnow()
    if row is None:
        row = SequenceVersion(
            clinic_id=clinic_id,
            sequence_key=key,
            version=None,
            base_version=current_version(session, clinic_id, key),
            created_by=actor,
            created_at=now,
            summary={},
        )
        session.add(row)
    row.definition = dict(definition)
    row.texts = dict(texts)
    row.updated_by = actor
    row.updated_at = now
    session.flush()
    draft = _as_draft(row)
    audit(
        session,
        clinic_id=clinic_id,
        actor=actor,
        action=AuditAction.SEQUENCE_DRAFT_SAVE,
        subject_type="sequence_version",
        subject_id=row.id,
        sequence=key,
        problems=len(draft.problems),
    )
    return draft


def rebase_draft(session: Session, clinic_id: int, key: str, *, actor: str) -> Draft:
    """Keep the draft over the version now current: the admin has seen the version another admin published
    meanwhile, and publishing the draft will replace it. ``NotFound`` without a draft."""
    row = _draft_row(session, clinic_id, key, lock=True)
    if row is None:
        raise NotFound(f"no draft of sequence {key!r}")
    before = row.base_version
    row.base_version = current_version(session, clinic_id, key)
    row.updated_by = actor
    row.updated_at = utcnow()
    session.flush()
    audit(
        session,
        clinic_id=clinic_id,
        actor=actor,
        action=AuditAction.SEQUENCE_DRAFT_SAVE,
        subject_type="sequence_version",
        subject_id=row.id,
        sequence=key,
        kept_over_version=row.base_version,
        was_based_on=before,
    )
    return _as_draft(row)


def discard_draft(session: Session, clinic_id: int, key: str, *, actor: str) -> None:
    """Delete the clinic's draft of ``key`` (``NotFound`` when there is none)."""
    row = _draft_row(session, clinic_id, key, lock=True)
    if row is None:
        raise NotFound(f"no draft of sequence {key!r}")
    audit(
        session,
        clinic_id=clinic_id,
        actor=actor,
        action=AuditAction.SEQUENCE_DRAFT_DISCARD,
        subject_type="sequence_version",
        subject_id=row.id,
        sequence=key,
    )
    session.delete(row)
    session.flush()


def list_versions(session: Session, clinic_id: int, key: str) -> list[VersionInfo]:
    """The clinic's published versions of ``key``, newest first."""
    rows = session.scalars(
        select(SequenceVersion)
        .where(
            SequenceVersion.clinic_id == clinic_id,
            SequenceVersion.sequence_key == key,
            SequenceVersion.version.is_not(None),
        )
        .order_by(SequenceVersion.version.desc())
    ).all()
    return [
        VersionInfo(
            version=row.version or 0,
            published_at=row.published_at or row.created_at,
            published_by=row.published_by or row.created_by,
            summary=dict(row.summary),
        )
        for row in rows
    ]


def clinic_keys(session: Session, clinic_id: int) -> list[str]:
    """Every sequence key the clinic has a draft or a version of."""
    return list(
        session.scalars(
            select(SequenceVersion.sequence_key)
            .where(SequenceVersion.clinic_id == clinic_id)
            .distinct()
            .order_by(SequenceVersion.sequence_key)
        )
    )

"""``/sequences``: a clinic's versions of its sequences (reading: any token; drafts and publishing: admin tokens).

A draft is stored as sent, with the problems that stop it being published; publishing makes the next
version in one transaction and, with ``current_patients``, re-plans the patients already enrolled (a step
already sent is never sent again). A dry run answers the same summary and changes nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from engage.records.api_tokens import Caller
from engage.records.roles import Action
from engage.schedule import publish, versions
from engage.schedule.catalogue import sequence_list
from engage.web.api.context import CallerDep, IdempotencyKeyHeader, allowed_to, read, write
from engage.web.api.problems import errors
from engage.web.api.schemas import Input, UtcTime

router = APIRouter(prefix="/sequences", tags=["sequences"], responses=errors(401, 422))
Admin = Annotated[Caller, Depends(allowed_to(Action.ADMIN))]
Key = Annotated[str, Path(description="The sequence's key", examples=["dry-needling-sciatica"], max_length=100)]

_DEFINITION = {
    "key": "dry-needling-sciatica",
    "name": "Dry needling for sciatica",
    "steps": [
        {
            "key": "visit-reminder",
            "channel": "sms",
            "template": "visit-reminder",
            "anchor": "appointment.start",
            "appointments": "each",
            "offset": "-1d",
            "at": "18:00",
            "priority": 40,
        }
    ],
}
_TEXTS = {"sms/visit-reminder.txt": "{{ clinic.name }}: see you {{ appointment.start|local_day }}. Reply C."}


class SequenceSummary(BaseModel):
    key: str = Field(examples=["dry-needling-sciatica"], description="The sequence's key")
    name: str = Field(examples=["Dry needling for sciatica"], description="Its name (the clinic's version's)")
    version: int | None = Field(examples=[3], description="The clinic's current version; null: the shipped file")
    has_draft: bool = Field(examples=[False], description="Whether an admin is editing a draft of it")


class SequenceList(BaseModel):
    sequences: list[SequenceSummary] = Field(description="The shipped sequences and the clinic's own, by key")


class ProblemOut(BaseModel):
    field: str = Field(examples=["steps.3.offset"], description="The field at fault (texts.<path> for a text)")
    message: str = Field(
        examples=["Not a duration: '3 dayz' (write e.g. 30m, 2h, -1d, 1d12h)."], description="What to fix"
    )


class DraftIn(Input):
    key: str = Field(min_length=1, max_length=100, examples=["dry-needling-sciatica"], description="The key")
    definition: dict[str, Any] | None = Field(
        None,
        examples=[_DEFINITION],
        description="The sequence as the YAML loader reads it; omitted: start a draft (from_library or current)",
    )
    texts: dict[str, str] | None = Field(
        None, examples=[_TEXTS], description="Template path -> text; omitted: keep the draft's (or its start's)"
    )
    from_library: str | None = Field(
        None,
        max_length=100,
        examples=["dry-needling-sciatica"],
        description="Start a new draft from this shipped sequence (with no definition)",
    )


class DraftOut(BaseModel):
    key: str = Field(examples=["dry-needling-sciatica"], description="The sequence's key")
    definition: dict[str, Any] = Field(examples=[_DEFINITION], description="As stored (bad input kept)")
    texts: dict[str, str] = Field(examples=[_TEXTS], description="Template path -> text, as stored")
    base_version: int | None = Field(examples=[2], description="The version the draft started from")
    updated_by: str = Field(examples=["admin@clinic.example"], description="Who saved it last")
    updated_at: UtcTime = Field(examples=["2026-12-01T18:30:00+00:00"], description="When (UTC)")
    problems: list[ProblemOut] = Field(description="What stops it being published; empty: it may be")


class SequenceOut(BaseModel):
    key: str = Field(examples=["dry-needling-sciatica"], description="The sequence's key")
    version: int | None = Field(examples=[3], description="The clinic's current version; null: the shipped file")
    definition: dict[str, Any] = Field(examples=[_DEFINITION], description="What new enrollments follow")
    texts: dict[str, str] = Field(examples=[_TEXTS], description="Its texts (empty: the shipped files)")
    draft: DraftOut | None = Field(description="The draft, if an admin is editing one")


class VersionOut(BaseModel):
    version: int = Field(examples=[3], description="The version number")
    published_at: UtcTime = Field(examples=["2026-12-01T18:30:00+00:00"], description="When (UTC)")
    published_by: str = Field(examples=["admin@clinic.example"], description="Who published it")
    summary: dict[str, Any] = Field(
        examples=[{"version": 3, "changed": 12, "cancelled": 0, "added": 2, "current_patients": True}],
        description="What publishing did to patients already enrolled",
    )


class VersionList(BaseModel):
    versions: list[VersionOut] = Field(description="Newest first")


class PublishIn(Input):
    current_patients: bool = Field(
        examples=[True], description="Re-plan patients already enrolled (else only new enrollments follow it)"
    )
    version: int | None = Field(
        None, ge=1, examples=[None], description="Publish this earlier version again (a roll back); null: the draft"
    )


class PublishOut(BaseModel):
    version: int = Field(examples=[4], description="The version published (or a dry run would publish)")
    changed: int = Field(examples=[12], description="Pending messages whose time changes")
    cancelled: int = Field(examples=[0], description="Pending messages cancelled")
    added: int = Field(examples=[2], description="Messages added; already-sent steps are never sent again")


def _draft_json(draft: versions.Draft) -> dict[str, Any]:
    return {
        "key": draft.key,
        "definition": draft.definition,
        "texts": draft.texts,
        "base_version": draft.base_version,
        "updated_by": draft.updated_by,
        "updated_at": draft.updated_at,
        "problems": [{"field": p.field, "message": p.message} for p in draft.problems],
    }


@router.get("", response_model=SequenceList, summary="The clinic's sequences")
def list_sequences(caller: CallerDep) -> Any:
    """The shipped sequences and the clinic's own: each one's current version (null: the shipped file)."""
    return read(lambda session: {"sequences": sequence_list(session, caller.clinic_id)})


@router.post(
    "",
    response_model=DraftOut,
    summary="Save a draft",
    description="Stores the draft as sent, bad input included, and answers its problems (admin tokens).",
    responses=errors(403, 404, 413),
)
def save_draft(body: DraftIn, request: Request, caller: Admin, key: IdempotencyKeyHeader = None) -> Any:
    def work(session: Session) -> dict[str, Any]:
        if body.definition is None:
            if body.texts is not None:
                versions.check_key(body.key)
            draft = versions.start_draft(
                session, caller.clinic_id, body.key, actor=caller.actor, from_library=body.from_library
            )
            if body.texts is not None:
                draft = versions.save_draft(
                    session,
                    caller.clinic_id,
                    body.key,
                    definition=draft.definition,
                    texts=body.texts,
                    actor=caller.actor,
                )
            return _draft_json(draft)
        texts = body.texts
        if texts is None:
            existing = versions.get_draft(session, caller.clinic_id, body.key)
            texts = existing.texts if existing is not None else {}
        return _draft_json(
            versions.save_draft(
                session, caller.clinic_id, body.key, definition=body.definition, texts=texts, actor=caller.actor
            )
        )

    return write(request, caller, key, body, work)


@router.get("/{key}", response_model=SequenceOut, summary="A sequence", responses=errors(404))
def get_sequence(key: Key, caller: CallerDep) -> Any:
    """What new enrollments of the clinic follow (its current version, or the shipped file), and the draft."""

    def work(session: Session) -> dict[str, Any]:
        content = versions.published_content(session, caller.clinic_id, key)
        draft = versions.get_draft(session, caller.clinic_id, key)
        return {
            "key": key,
            "version": content.version,
            "definition": versions.definition_of(session, caller.clinic_id, key, content.version),
            "texts": dict(content.texts),
            "draft": _draft_json(draft) if draft is not None else None,
        }

    return read(work)


@router.get("/{key}/versions", response_model=VersionList, summary="Published versions", responses=errors(404))
def list_versions(key: Key, caller: CallerDep) -> Any:
    """The clinic's published versions of the sequence, newest first, each with what publishing did."""
    return read(
        lambda session: {
            "versions": [
                {
                    "version": v.version,
                    "published_at": v.published_at,
                    "published_by": v.published_by,
                    "summary": v.summary,
                }
                for v in versions.list_versions(session, caller.clinic_id, key)
            ]
        }
    )


def _publish(session: Session, caller: Caller, key: str, body: PublishIn, *, dry_run: bool) -> dict[str, int]:
    if body.version is None:
        summary = publish.publish_draft(
            session, caller.clinic_id, key, actor=caller.actor, current_patients=body.current_patients, dry_run=dry_run
        )
    else:
        summary = publish.republish(
            session,
            caller.clinic_id,
            key,
            body.version,
            actor=caller.actor,
            current_patients=body.current_patients,
            dry_run=dry_run,
        )
    return summary.as_dict()


@router.post(
    "/{key}/publish/dry-run",
    response_model=PublishOut,
    summary="What publishing would do",
    description="The summary publishing would answer (pending messages that change time, are cancelled, are "
    "added), counted by the same code that applies it, then rolled back: nothing changes (admin tokens).",
    responses=errors(403, 404, 409, 413),
)
def publish_dry_run(key: Key, body: PublishIn, request: Request, caller: Admin) -> Any:
    return write(request, caller, None, body, lambda session: _publish(session, caller, key, body, dry_run=True))


@router.post(
    "/{key}/publish",
    response_model=PublishOut,
    summary="Publish the draft (or an earlier version again)",
    description="Makes the next version in one transaction (admin tokens). With current_patients, patients "
    "already enrolled are re-planned: already-sent steps are never sent again. 409 when another admin "
    "published meanwhile (the answer names the version now current).",
    responses=errors(403, 404, 409, 413),
)
def publish_version(
    key: Key, body: PublishIn, request: Request, caller: Admin, idempotency_key: IdempotencyKeyHeader = None
) -> Any:
    return write(
        request, caller, idempotency_key, body, lambda session: _publish(session, caller, key, body, dry_run=False)
    )

"""``/patients/{id}/outcomes`` (POST: record a score, possibly dated in the past), ``/outcomes/summary`` (the
clinic-wide figures), ``/observations`` (scores as a FHIR R4 Bundle) and ``/practitioners``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from engage.conversation.measures import record_score, score_json
from engage.outcomes.export import MAX_PAGE, observations_bundle
from engage.outcomes.summary import outcome_summary, parse_filters
from engage.records.api_tokens import Caller
from engage.records.lookup import get_in_clinic
from engage.records.models import Patient
from engage.records.practitioners import list_practitioners, practitioner_json
from engage.records.roles import Action
from engage.web.api.context import CallerDep, IdempotencyKeyHeader, allowed_to, read, write
from engage.web.api.problems import errors
from engage.web.api.schemas import Input, MaybeWhen, UtcTime

router = APIRouter(tags=["outcomes"], responses=errors(401, 422))
ScoreRecorder = Annotated[Caller, Depends(allowed_to(Action.RECORD_OUTCOMES))]
OutcomesReader = Annotated[Caller, Depends(allowed_to(Action.VIEW_OUTCOMES))]


class ScoreIn(Input):
    score: int = Field(ge=0, le=10, examples=[6], description="A whole number 0-10")
    measure: Literal["nprs", "psfs"] = Field(
        "nprs", examples=["nprs"], description="nprs: pain; psfs: one activity of the PSFS"
    )
    at: MaybeWhen = Field(None, description="When it was taken (default: now); at most a year back")
    item: str | None = Field(None, max_length=100, examples=["climbing stairs"], description="PSFS: the activity")


class ScoreOut(BaseModel):
    id: int = Field(examples=[901], description="engage's id of the score")
    patient_id: int = Field(examples=[42], description="engage's patient id")
    measure: Literal["nprs", "psfs"] = Field(examples=["nprs"], description="nprs (pain) or psfs (function)")
    item: str | None = Field(None, examples=["climbing stairs"], description="The PSFS activity, if any")
    score: int = Field(examples=[6], description="0-10")
    recorded_at: UtcTime = Field(description="When it was taken, UTC")
    source: str = Field(examples=["api"], description="api, cli, staff or intake")


_CI = Field(examples=[[0.3127, 0.8318]], description="Wilson 95 % interval [low, high]; null without episodes")


class Rate(BaseModel):
    n: int = Field(examples=[10], description="Episodes with a follow-up")
    count: int = Field(examples=[6], description="Of them, meeting the criterion")
    rate: float | None = Field(examples=[0.6], description="count / n; null when n is 0")
    ci95: list[float] | None = _CI


class TimeToMcid(BaseModel):
    median_days: float | None = Field(examples=[14.1], description="Kaplan-Meier median, days from the first session")
    median_sessions: float | None = Field(examples=[3], description="Kaplan-Meier median, in sessions begun")
    events: int = Field(examples=[6], description="Episodes that met the MCID")
    censored: int = Field(examples=[4], description="Episodes with follow-ups that have not (yet) met it")


class Responders(BaseModel):
    two_points: int = Field(examples=[7], description="Improved by at least 2 points")
    thirty_percent: int = Field(examples=[6], description="Improved by at least 30 %")
    both: int = Field(examples=[6], description="Both: the MCID counted as a response")


class Rates(BaseModel):
    two_points: Rate = Field(description="At least 2 points")
    thirty_percent: Rate = Field(description="At least 30 %")
    both: Rate = Field(description="Both criteria")


class SummaryRow(BaseModel):
    """The figures of a group of episodes (the clinic, a practitioner, a sequence)."""

    enrolled: int = Field(examples=[12], description="Enrollments in scope")
    episodes: int = Field(examples=[10], description="Enrollments with a baseline (up to 7 days before session 1)")
    with_baseline: int = Field(examples=[10], description="The same as episodes (the funnel's second step)")
    with_follow_up: int = Field(examples=[10], description="Episodes with a score after the first session")
    with_final: int = Field(examples=[4], description="Episodes with a score at or after the last session")
    responders: Responders = Field(description="Among episodes with a follow-up, by the latest score")
    responder_rate: float | None = Field(examples=[0.6], description="Share of episodes with a follow-up meeting both")
    ci95: list[float] | None = _CI
    rates: Rates = Field(description="Each criterion's rate with n and its Wilson interval")
    median_baseline: float | None = Field(examples=[8], description="Median baseline pain")
    median_latest: float | None = Field(examples=[4.5], description="Median latest pain")
    median_change: float | None = Field(examples=[-2.5], description="Median latest minus baseline")
    worsened: int = Field(examples=[1], description="Latest at least 2 points above the baseline")
    worsened_rate: float | None = Field(examples=[0.1], description="worsened / with_follow_up")
    time_to_mcid: TimeToMcid = Field(description="Time to meaningful improvement, censoring those lost")


class GroupRow(SummaryRow):
    id: int | str | None = Field(examples=[3], description="Practitioner id or sequence key; null: pooled cells")
    name: str = Field(examples=["Dr. Lee"], description="Who or which sequence")
    hidden: bool = Field(examples=[False], description="True for the row pooling groups of fewer than 5 episodes")
    groups: int | None = Field(None, examples=[2], description="On the pooled row: how many groups it holds")


class SummaryOut(SummaryRow):
    model_config = ConfigDict(extra="allow")

    by_practitioner: list[GroupRow] = Field(description="Rows like the clinic's; they add up to it")
    by_sequence: list[GroupRow] = Field(description="Rows like the clinic's; they add up to it")
    act_on_total: int = Field(
        description="Patients to act on in all; `act_on` lists the 100 most urgent", examples=[12]
    )


@router.post(
    "/patients/{patient_id}/outcomes",
    status_code=201,
    response_model=ScoreOut,
    summary="Record a score (pain or PSFS), now or at a past time",
    responses=errors(403, 404, 413),
)
def post_outcome(
    patient_id: Annotated[int, Path(description="engage's patient id", examples=[42])],
    body: ScoreIn,
    request: Request,
    caller: ScoreRecorder,
    key: IdempotencyKeyHeader = None,
) -> Any:
    """A score answering no prompt: a baseline taken at intake (`at` up to 7 days before the first session
    counts), or one from another system. A PSFS score names its activity (`item`)."""

    def work(session: Session) -> dict[str, Any]:
        get_in_clinic(session, Patient, patient_id, caller.clinic_id)
        outcome = record_score(
            session,
            patient_id,
            body.score,
            actor=caller.actor,
            measure_name=body.measure,
            at=body.at,
            item=body.item,
            source="api",
        )
        return score_json(outcome)

    return write(request, caller, key, body, work, status_code=201)


@router.get("/outcomes/summary", response_model=SummaryOut, summary="Clinic-wide outcomes", responses=errors(403))
def get_summary(
    caller: OutcomesReader,
    start: Annotated[
        str | None, Query(alias="from", description="First sessions from (YYYY-MM-DD)", examples=["2026-09-01"])
    ] = None,
    end: Annotated[
        str | None, Query(alias="to", description="First sessions to (YYYY-MM-DD), inclusive", examples=["2026-11-30"])
    ] = None,
    practitioner: Annotated[str | None, Query(description="A practitioner id", examples=["3"])] = None,
    sequence: Annotated[str | None, Query(description="A sequence key", examples=["dry-needling-sciatica"])] = None,
    condition: Annotated[str | None, Query(description="A plan condition", examples=["sciatica"])] = None,
    modality: Annotated[str | None, Query(description="A plan modality", examples=["dry needling"])] = None,
) -> Any:
    """The same figures as `engage outcomes summary --json` and the Outcomes page."""
    filters = parse_filters(
        start=start, end=end, practitioner=practitioner, sequence=sequence, condition=condition, modality=modality
    )
    return read(lambda session: outcome_summary(session, caller.clinic_id, filters))


@router.get("/observations", summary="Scores as FHIR R4 Observations (a searchset Bundle)")
def get_observations(
    caller: CallerDep,
    since: Annotated[
        datetime | None,
        Query(description="Scores recorded at or after (ISO 8601 with offset)", examples=["2026-11-01T00:00:00Z"]),
    ] = None,
    after: Annotated[
        int | None, Query(description="The last score id of the previous page (outcome-N)", examples=[900])
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="At most this many", examples=[500])] = 500,
) -> Any:
    """Pain scores coded LOINC 72514-3; PSFS activity scores with engage's own code (PSFS has no LOINC code)."""
    return read(lambda session: observations_bundle(session, caller.clinic_id, since, after, limit))


@router.get("/practitioners", summary="The clinic's practitioners")
def get_practitioners(caller: CallerDep) -> Any:
    """Each with engage's id (plans and appointments name it) and your system's id."""
    return read(lambda session: [practitioner_json(p) for p in list_practitioners(session, caller.clinic_id)])

"""``/webhooks``: a clinic's outgoing webhook endpoints (admin tokens only). The secret is answered once."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from engage.integrations import endpoints
from engage.records.api_tokens import Caller
from engage.records.roles import Action
from engage.web.api.context import IdempotencyKeyHeader, allowed_to, read, write
from engage.web.api.problems import errors
from engage.web.api.schemas import Input, MaybeUtcTime, UtcTime

router = APIRouter(prefix="/webhooks", tags=["webhooks"], responses=errors(401, 403, 422))
Admin = Annotated[Caller, Depends(allowed_to(Action.ADMIN))]
EndpointId = Annotated[int, Path(description="engage's id of the endpoint", examples=[1])]

EVENTS_DOC = """\
engage posts each event as JSON to every endpoint of the clinic, signed per Standard Webhooks
(https://www.standardwebhooks.com): `webhook-id` (the event id: drop repeats by it), `webhook-timestamp`
(Unix seconds) and `webhook-signature` (`v1,` + base64 HMAC-SHA256 of `id.timestamp.body` under the
endpoint's secret, its `whsec_` prefix removed and the rest base64-decoded). Event types: `message.sent`,
`message.failed`, `reply.received`, `outcome.recorded`, `consent.changed`. Bodies carry ids, kinds,
statuses, scores and times, never what a message or reply said. Any 2xx answer delivers the event; anything
else is retried after 30 s, 2 min, 10 min, 30 min, 1 h, 3 h, 6 h and 12 h, then given up.
"""


class EndpointIn(Input):
    url: str = Field(
        min_length=1,
        max_length=500,
        examples=["https://pms.example.org/engage-events"],
        description="https:// (public addresses; plain http only in development)",
    )
    label: str = Field("", max_length=100, examples=["PMS sync"], description="What the endpoint is for")


class EndpointOut(BaseModel):
    id: int = Field(examples=[1], description="engage's id of the endpoint")
    url: str = Field(examples=["https://pms.example.org/engage-events"], description="Where events are posted")
    label: str = Field(examples=["PMS sync"], description="What the endpoint is for")
    active: bool = Field(examples=[True], description="False once removed")
    created_at: UtcTime = Field(examples=["2026-12-01T18:30:00+00:00"], description="When it was added (UTC)")
    created_by: str = Field(examples=["admin@clinic.example"], description="Who added it")


class EndpointCreated(EndpointOut):
    secret: str = Field(
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        description="The signing secret, answered only here: store it now",
    )


class EndpointList(BaseModel):
    endpoints: list[EndpointOut] = Field(description="The clinic's active endpoints, oldest first")


class EventOut(BaseModel):
    event_id: str = Field(examples=["evt_message_sent_812"], description="The `webhook-id` the endpoint receives")
    type: str = Field(examples=["message.sent"], description="The event type")
    status: str = Field(examples=["delivered"], description="pending, delivered, failed (gave up) or dropped")
    attempts: int = Field(examples=[1], description="Posts made so far")
    occurred_at: UtcTime = Field(examples=["2026-12-01T18:30:00+00:00"], description="When it happened (UTC)")
    next_attempt_at: MaybeUtcTime = Field(examples=[None], description="When a pending event is posted next")
    last_status_code: int | None = Field(examples=[200], description="The endpoint's last HTTP status, if any")
    last_error: str | None = Field(examples=[None], description="`timeout`, `HTTP 500`, ... when the last post failed")
    delivered_at: MaybeUtcTime = Field(examples=["2026-12-01T18:30:01+00:00"], description="When a 2xx came")


class EventList(BaseModel):
    events: list[EventOut] = Field(description="The endpoint's newest events, newest first")


@router.post(
    "",
    status_code=201,
    response_model=EndpointCreated,
    summary="Register an endpoint",
    description=EVENTS_DOC,
    responses=errors(413),
)
def create_endpoint(body: EndpointIn, request: Request, caller: Admin, key: IdempotencyKeyHeader = None) -> Any:
    def work(session: Session) -> dict[str, Any]:
        endpoint = endpoints.create_endpoint(session, caller.clinic_id, body.url, body.label, actor=caller.actor)
        return endpoints.endpoint_json(endpoint) | {"secret": endpoint.secret}

    return write(request, caller, key, body, work, status_code=201)


@router.get("", response_model=EndpointList, summary="The clinic's endpoints (never their secrets)")
def list_endpoints(caller: Admin) -> Any:
    """The clinic's active endpoints, oldest first; each one's secret was answered only when it was added."""
    return read(
        lambda session: {
            "endpoints": [endpoints.endpoint_json(e) for e in endpoints.list_endpoints(session, caller.clinic_id)]
        }
    )


@router.delete(
    "/{endpoint_id}",
    response_model=EndpointOut,
    summary="Remove an endpoint",
    description="Nothing more is posted to it; events it was still owed are dropped.",
    responses=errors(404),
)
def remove_endpoint(endpoint_id: EndpointId, request: Request, caller: Admin) -> Any:
    return write(
        request,
        caller,
        None,
        None,
        lambda session: endpoints.endpoint_json(
            endpoints.remove_endpoint(session, caller.clinic_id, endpoint_id, actor=caller.actor)
        ),
    )


@router.get(
    "/{endpoint_id}/events",
    response_model=EventList,
    summary="An endpoint's events and their delivery",
    responses=errors(404),
)
def list_events(
    endpoint_id: EndpointId,
    caller: Admin,
    limit: Annotated[int, Query(ge=1, le=500, description="How many, newest first", examples=[50])] = 50,
) -> Any:
    """The endpoint's newest events: whether each was delivered, how many posts it took, the last answer."""

    def work(session: Session) -> dict[str, Any]:
        endpoint = endpoints.get_endpoint(session, caller.clinic_id, endpoint_id)
        return {"events": [endpoints.event_json(e) for e in endpoints.recent_events(session, endpoint, limit)]}

    return read(work)

"""What every API route shares: who is calling (bearer token), the session, and idempotent writes.

A route parses its input, then hands :func:`read` or :func:`write` one function that calls
the library; the work runs in one transaction, so any error leaves nothing written.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engage.db import session_scope
from engage.errors import InvalidInput
from engage.records import api_tokens, idempotency
from engage.records.api_tokens import Caller
from engage.records.roles import Action, may
from engage.web import ratelimit

T = TypeVar("T")
#: The largest id a row can have (an INTEGER column).
MAX_ID = 2**31 - 1

_bearer = HTTPBearer(auto_error=False, description="An API token from `engage token create` (acts as its staff user)")
_UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="engage"'}


def current_caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Caller:
    """The token's staff user, or 401 (no token, unknown, revoked, or staff deactivated); 429 past the token's
    request rate (``ENGAGE_RATE_LIMIT_API_PER_TOKEN``)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "send an API token: Authorization: Bearer <token>", headers=_UNAUTHORIZED)
    with session_scope() as session:
        caller = api_tokens.authenticate(session, credentials.credentials)
    if caller is None:
        raise HTTPException(401, "this API token is unknown or revoked", headers=_UNAUTHORIZED)
    ratelimit.api_per_token.check(request, f"token:{caller.token_id}")
    return caller


def allowed_to(action: Action) -> Callable[[Caller], Caller]:
    """A dependency: the caller, when their role may do ``action`` (the staff app's rule); else 403."""

    def check(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
        if not may(caller.role, action):
            raise HTTPException(403, f"a {caller.role.value} may not do this ({action.value})")
        return caller

    return check


CallerDep = Annotated[Caller, Depends(current_caller)]
PatientsWriter = Annotated[Caller, Depends(allowed_to(Action.EDIT_PATIENTS))]
PlansWriter = Annotated[Caller, Depends(allowed_to(Action.EDIT_PLANS))]
ExercisePicker = Annotated[Caller, Depends(allowed_to(Action.PICK_EXERCISES))]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Retry-safe POST: the same key and body answer as the first time, "
        "creating nothing; the same key with another body is refused (422).",
        examples=["5f0c2f8e-1b7a-4c1e-9a53-2d4b8f7e6a10"],
    ),
]


def read(work: Callable[[Session], T]) -> T:
    """Run ``work`` in a session (committed: a read may still write an audit line)."""
    with session_scope() as session:
        return work(session)


def write(
    request: Request,
    caller: Caller,
    key: str | None,
    body: BaseModel | None,
    work: Callable[[Session], Any],
    status_code: int = 200,
) -> JSONResponse:
    """Run ``work`` in one transaction and answer its result as JSON; honour ``Idempotency-Key``.

    With a key, the answer is stored in the same transaction as the work: a retry with the
    same key and body gets the stored answer; with another body, 422.
    """
    fingerprint = idempotency.request_fingerprint(
        request.method, request.url.path, body.model_dump(mode="json") if body is not None else None
    )
    for attempt in (1, 2):
        try:
            with session_scope() as session:
                if key is not None:
                    stored = idempotency.recall(session, caller.staff_id, key, fingerprint)
                    if stored is not None:
                        return JSONResponse(stored[1], status_code=stored[0], headers={"Idempotent-Replayed": "true"})
                data = jsonable_encoder(work(session))
                if key is not None:
                    idempotency.remember(session, caller.staff_id, key, fingerprint, status_code, data)
            return JSONResponse(data, status_code=status_code)
        except IntegrityError:
            # The same key arrived twice at once and the other request stored it first: answer as it did.
            if key is None or attempt == 2:
                raise InvalidInput("the request conflicts with a change made at the same moment; retry it") from None
    raise AssertionError("unreachable")


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The id after which the next page starts, or None for the first page; 422 for a cursor we did not make."""
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = text.partition(":")
        if prefix != "id" or not value.isascii():
            raise ValueError
        before = int(value)
        if not 0 < before <= MAX_ID:  # a bigger id would overflow the id column: no row has it
            raise ValueError
        return before
    except ValueError:
        raise InvalidInput(
            "this cursor is not one the API gave out; start again without it", field="query:cursor"
        ) from None

"""RFC 9457 ``application/problem+json`` answers for every API error.

A validation error lists one entry per invalid field, each with a JSON pointer
(``#/first_name``) or the parameter it concerns, so a client can show the error
beside its field. The library's own ``InvalidInput`` names its field when it knows it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException

from engage.errors import Conflict, InvalidInput, NotFound

PROBLEM = "application/problem+json"
_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request body too large",
    422: "Invalid input",
}


#: What a request hears when the database refuses one of its values (an id past the column's range, say):
#: the route's own checks let it through, but it is still the client's value, not a server fault.
OUT_OF_RANGE = "a value in the request is out of the range engage stores (an id or a number too large)"


def problem(
    status: int, detail: str, errors: list[dict[str, str]] | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _where(loc: tuple[Any, ...] | list[Any]) -> dict[str, str]:
    """Pydantic's ``loc`` as RFC 9457's ``pointer`` (body) or ``parameter`` / ``header`` (query, path, header)."""
    source, *rest = loc or ("body",)
    if source == "body":
        return {"pointer": "#" + "".join(f"/{part}" for part in rest)}
    if source == "header":
        return {"header": str(rest[0]) if rest else ""}
    return {"parameter": str(rest[0]) if rest else str(source)}


def _message(error: dict[str, Any]) -> str:
    text = str(error.get("msg", "invalid"))
    return text.removeprefix("Value error, ")


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` as problem+json."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{**_where(e.get("loc", ())), "detail": _message(e)} for e in exc.errors()]
        return problem(422, f"{len(errors)} invalid field(s); nothing was written", errors)

    @app.exception_handler(InvalidInput)
    async def invalid_input(_request: Request, exc: InvalidInput) -> JSONResponse:
        per_field: dict[str, str] = getattr(exc, "errors", None) or {}  # FieldErrors: several at once
        if exc.field is not None:
            per_field = {exc.field: str(exc)}
        errors = [{**_field(name), "detail": text} for name, text in per_field.items()]
        for error in getattr(exc, "sync_errors", None) or []:  # SyncErrors: each bad record and field
            where = {} if error.where in ("", "body") else {"record": error.where}
            errors.append({**(_field(error.field) if error.field else {}), **where, "detail": error.message})
        return problem(422, str(exc), errors)

    @app.exception_handler(DataError)
    async def out_of_range(_request: Request, _exc: DataError) -> JSONResponse:
        return problem(422, OUT_OF_RANGE)

    @app.exception_handler(OperationalError)
    async def too_slow(request: Request, exc: OperationalError) -> Any:
        from engage.web.middleware import query_too_slow  # the one rule for every route

        return await query_too_slow(request, exc)

    @app.exception_handler(Conflict)
    async def conflict(_request: Request, exc: Conflict) -> JSONResponse:
        errors = [{**_field(exc.field), "detail": str(exc)}] if exc.field else None
        return problem(409, str(exc), errors)

    @app.exception_handler(NotFound)
    async def not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return problem(404, str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}) or None)


def _field(name: str) -> dict[str, str]:
    """``InvalidInput.field``: ``header:NAME``, ``query:NAME``, or a body field name (a pointer)."""
    kind, sep, rest = name.partition(":")
    if sep and kind == "header":
        return {"header": rest}
    if sep and kind == "query":
        return {"parameter": rest}
    return {"pointer": "#/" + name.replace(".", "/")}


def _documented(
    status: int,
    description: str,
    detail: str,
    errors: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    example: dict[str, Any] = {"type": "about:blank", "title": _TITLES[status], "status": status, "detail": detail}
    if errors is not None:
        example["errors"] = errors
    return {"description": description, "content": {PROBLEM: {"schema": PROBLEM_JSON_SCHEMA, "example": example}}}


#: For the OpenAPI document: the shape of every error answer.
PROBLEM_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "required": ["type", "title", "status", "detail"],
    "description": "An RFC 9457 problem",
    "properties": {
        "type": {
            "type": "string",
            "description": "Always `about:blank`: the status says what happened",
            "examples": ["about:blank"],
        },
        "title": {"type": "string", "description": "The status in words", "examples": ["Invalid input"]},
        "status": {"type": "integer", "description": "The HTTP status", "examples": [422]},
        "detail": {
            "type": "string",
            "description": "What went wrong, for a person",
            "examples": ["1 invalid field(s); nothing was written"],
        },
        "errors": {
            "type": "array",
            "description": "One entry per invalid field (422 only)",
            "examples": [[{"pointer": "#/phone", "detail": "invalid phone number: write it with a country code"}]],
            "items": {
                "type": "object",
                "properties": {
                    "pointer": {
                        "type": "string",
                        "description": "A JSON pointer into the body",
                        "examples": ["#/phone"],
                    },
                    "parameter": {"type": "string", "description": "A query or path parameter", "examples": ["cursor"]},
                    "header": {"type": "string", "description": "A request header", "examples": ["Idempotency-Key"]},
                    "record": {
                        "type": "string",
                        "description": "A CSV line or a FHIR Bundle entry",
                        "examples": ["line 7"],
                    },
                    "detail": {
                        "type": "string",
                        "description": "What is wrong with it",
                        "examples": ["invalid phone number: write it with a country code"],
                    },
                },
            },
        },
    },
}
#: Every error answer the API gives, documented with an example: pick a route's with :func:`errors`.
ERRORS: dict[int | str, dict[str, Any]] = {
    401: _documented(401, "No bearer token, or a revoked or unknown one", "this API token is unknown or revoked"),
    403: _documented(
        403,
        "The token's staff role may not do this (a practitioner's token reads, it cannot write)",
        "a practitioner may not do this (edit_patients)",
    ),
    404: _documented(
        404, "No such record in the token's clinic (another clinic's id answers the same)", "no patient with id 42"
    ),
    409: _documented(
        409,
        "Someone else's change came first (another admin published the sequence meanwhile); nothing was written",
        "another admin published version 4 while you edited; review it and publish again",
    ),
    413: _documented(
        413,
        "The body is over the limit: `ENGAGE_MAX_REQUEST_BYTES` (1 MB), for a CSV import "
        "`ENGAGE_IMPORT_MAX_BYTES` (5 MB)",
        "request body too large",
    ),
    422: _documented(
        422,
        "Invalid input: `errors` has one entry per invalid field; nothing was written",
        "1 invalid field(s); nothing was written",
        [{"pointer": "#/phone", "detail": "invalid phone number: write it with a country code"}],
    ),
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers ``statuses`` (for a route's ``responses=``)."""
    return {status: ERRORS[status] for status in statuses}

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
from starlette.exceptions import HTTPException

from engage.errors import InvalidInput, NotFound

PROBLEM = "application/problem+json"
_TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
           409: "Conflict", 413: "Request body too large", 422: "Invalid input"}


def problem(status: int, detail: str, errors: list[dict[str, str]] | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": _TITLES.get(status, "Error"), "status": status,
                            "detail": detail}
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


#: For the OpenAPI document: what every error answer looks like.
PROBLEM_SCHEMA: dict[str, Any] = {
    "description": "An RFC 9457 problem; `errors` has one entry per invalid field",
    "content": {PROBLEM: {"example": {
        "type": "about:blank", "title": "Invalid input", "status": 422,
        "detail": "1 invalid field(s); nothing was written",
        "errors": [{"pointer": "#/phone", "detail": "invalid phone number: write it with a country code"}],
    }}},
}
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {**PROBLEM_SCHEMA, "description": "No bearer token, or a revoked or unknown one"},
    403: {**PROBLEM_SCHEMA, "description": "The token's staff role may not do this"},
    404: {**PROBLEM_SCHEMA, "description": "No such record in the token's clinic"},
    422: PROBLEM_SCHEMA,
}

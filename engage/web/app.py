"""The FastAPI application: provider webhooks and the pages patients open from their messages.

:func:`create_app` builds a fresh app (tests build one per test). Every request body
is capped at ``settings.max_request_bytes`` by :class:`BodySizeLimit` (413 beyond it),
before any handler or form parser reads it; CSV uploads (staff app and API) have a larger cap of their own.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Depends, FastAPI
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engage import __version__
from engage.config import get_settings
from engage.ops import status as ops_status
from engage.web import exercise_pages, intake_pages, middleware, nul, patient_pages, ratelimit
from engage.web import metrics as metrics_route
from engage.web import staff as staff_app
from engage.web.api import create_api, problems
from engage.web.webhooks import sendgrid as sendgrid_webhooks
from engage.web.webhooks import twilio as twilio_webhooks


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes the limit; an HTTPException so any layer maps it to 413."""

    def __init__(self) -> None:
        super().__init__(status_code=413, detail="request body too large")


class BodySizeLimit:
    """ASGI middleware: 413 for a declared ``Content-Length`` over ``max_bytes``, or a streamed body that grows past it.

    Counting the stream as well as the header matters: a chunked request declares no length.
    ``larger``: paths (exact) that take bodies up to their own limit instead.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, larger: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.larger.get(scope["path"], self.max_bytes)
        declared = _content_length(scope)
        if declared is not None and declared > max_bytes:
            await _too_large(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await _too_large(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(scope: Scope, receive: Receive, send: Send) -> None:
    if str(scope.get("path", "")).startswith("/api/"):  # the JSON API answers every error as problem+json
        await problems.problem(413, "request body too large")(scope, receive, send)
        return
    await PlainTextResponse("request body too large", status_code=413)(scope, receive, send)


def create_app() -> FastAPI:
    """A new engage web app with the webhook and patient-page routes and the body size limit."""
    settings = get_settings()
    app = FastAPI(title="engage", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(twilio_webhooks.router)
    app.include_router(sendgrid_webhooks.router)
    ratelimit.check_settings(settings)
    app.include_router(patient_pages.router, dependencies=[Depends(ratelimit.public_pages)])
    app.include_router(exercise_pages.router, dependencies=[Depends(ratelimit.public_pages)])
    app.include_router(intake_pages.router, dependencies=[Depends(ratelimit.public_pages)])
    app.include_router(metrics_route.router)
    staff_app.install(app)

    @app.get("/livez", include_in_schema=False)
    def livez() -> dict[str, bool]:
        """200 while the web process answers (a container healthcheck); says nothing about beat or workers."""
        return {"ok": True}

    app.mount("/api", create_api())

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        """200 while beat ticks; 503 with the same JSON when the last tick is older than 3 ticks (or there never
        was one), a provider refuses every send, or the database does not answer (``problems`` says which)."""
        ok, body = ops_status.health()
        return JSONResponse(body, status_code=200 if ok else 503)

    app.add_middleware(nul.NoNul)  # inside the size limit: it reads whole form and JSON bodies
    upload = staff_app.appointment_import.body_limit(settings)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_request_bytes,
        larger={
            **{path: upload for path in staff_app.appointment_import.UPLOAD_PATHS},
            "/api/v1/import/appointments": settings.import_max_bytes,
        },
    )
    app.add_exception_handler(ClientDisconnect, middleware.client_went_away)
    app.add_exception_handler(DataError, middleware.out_of_range)
    app.add_exception_handler(OperationalError, middleware.query_too_slow)
    app.add_middleware(middleware.DatabaseDeadline, seconds=settings.web_statement_timeout_seconds)
    app.add_middleware(middleware.SecurityHeaders, hsts=settings.public_url.startswith("https://"))
    app.add_middleware(middleware.RequestLog)  # outermost: logs and counts every answer, 413s and 429s included
    return app

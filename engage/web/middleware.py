"""ASGI middleware for every response: one access-log line per request, and security headers (CSP included).

The access line names the route *template* (``/u/{token}``), never the path itself:
patient links carry tokens, and a log is no place for them. A client that goes away
before its body has arrived (Starlette's ``ClientDisconnect``) is not an error:
:func:`client_went_away` answers it (to
nobody) with 499, nginx's "client closed request", and the access line is all that is logged.
"""

from __future__ import annotations

import logging
import time

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engage import db, metrics
from engage.web.api.problems import OUT_OF_RANGE, problem

access_log = logging.getLogger("engage.web.access")

CLIENT_CLOSED_REQUEST = 499
WEBHOOK_PREFIX = "/webhooks/"


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/u/{token}``), or ``-`` when no route matched."""
    return str(getattr(scope.get("route"), "path", None) or "-")


class RequestLog:
    """Log ``METHOD /route/{template} STATUS DURATIONms`` for each HTTP request, at INFO on ``engage.web.access``,
    and count each ``/webhooks/<provider>/…`` answer by status for ``/metrics``.

    An exception that escapes the app is logged (and counted) as 500, what the server answers, and re-raised.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        finally:
            access_log.info(
                "%s %s %d %.1fms",
                scope["method"],
                route_template(scope),
                status,
                (time.perf_counter() - started) * 1000,
            )
            path = scope.get("path", "")
            if path.startswith(WEBHOOK_PREFIX):
                provider = path[len(WEBHOOK_PREFIX) :].split("/", 1)[0]
                metrics.record_webhook(provider if provider in ("twilio", "sendgrid") else "other", status)


#: The Content-Security-Policy of every response that sets none of its own (the staff pages and the patient pages
#: set theirs): never framed (clickjacking), scripts and styles only from engage's own files (no inline script:
#: Swagger UI on /api/docs is started by /static/api-docs.js), no <base>, forms post only to engage.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)


class SecurityHeaders:
    """Add ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` and :data:`CONTENT_SECURITY_POLICY` to
    every response, and HSTS when ``hsts`` (an https public URL)."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),  # for browsers that predate frame-ancestors
            (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
        ]
        if hsts:
            self.headers.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in self.headers if n not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


class DatabaseDeadline:
    """Run each HTTP request under :func:`engage.db.statement_timeout` (``ENGAGE_WEB_STATEMENT_TIMEOUT_SECONDS``):
    no statement a request makes runs longer on PostgreSQL. :func:`query_too_slow` answers the cancelled ones."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with db.statement_timeout(self.seconds):
            await self.app(scope, receive, send)


#: PostgreSQL's SQLSTATE for a statement cancelled by ``statement_timeout`` (or by an operator).
QUERY_CANCELED = "57014"
TOO_SLOW = "this request asked more of the database than a request may; narrow it (fewer words, a shorter period)"


def cancelled_by_timeout(exc: Exception) -> bool:
    """Whether ``exc`` (SQLAlchemy's ``OperationalError``) is a statement PostgreSQL cancelled for taking too long."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == QUERY_CANCELED


async def query_too_slow(request: Request, exc: Exception) -> Response:
    """Exception handler for ``OperationalError``: 503 with a sentence for a cancelled statement; others re-raised."""
    if not cancelled_by_timeout(exc):
        raise exc
    access_log.warning(
        "%s %s: a statement ran past the web statement timeout", request.method, route_template(request.scope)
    )
    if request.url.path.startswith("/api/"):
        return problem(503, TOO_SLOW)
    return PlainTextResponse(TOO_SLOW, status_code=503)


async def client_went_away(request: Request, exc: Exception) -> Response:
    """Exception handler for :class:`ClientDisconnect`: nobody is listening, so no traceback and no error line."""
    del request, exc  # the access line already says which route it was
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def out_of_range(request: Request, exc: Exception) -> Response:
    """Exception handler for SQLAlchemy's ``DataError`` (a value the database refuses, e.g. an id past the
    column's range, from a path or query parameter): 400 with a sentence, not a server error."""
    del request, exc
    return PlainTextResponse(OUT_OF_RANGE, status_code=400)

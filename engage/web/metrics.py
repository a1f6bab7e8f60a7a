"""``GET /metrics`` (Prometheus text, behind a bearer token) and the webhook counter middleware.

``/metrics`` is off (404) unless ``ENGAGE_METRICS_TOKEN`` is set; then a scrape
must send ``Authorization: Bearer <token>`` (401 otherwise). It carries counts
and timings only, no patient data, but it still tells an outsider how busy a clinic is.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engage import metrics
from engage.config import get_settings
from engage.ops.metrics import OutboxCollector

router = APIRouter()

WEBHOOK_PREFIX = "/webhooks/"


@router.get("/metrics", include_in_schema=False)
def scrape(request: Request) -> Response:
    token = get_settings().metrics_token
    if not token:
        return PlainTextResponse("metrics are off: set ENGAGE_METRICS_TOKEN", status_code=404)
    given = request.headers.get("authorization", "")
    scheme, _, credentials = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.strip().encode(), token.encode()):
        return PlainTextResponse("bearer token required", status_code=401, headers={"WWW-Authenticate": "Bearer"})
    return Response(metrics.exposition(OutboxCollector()), media_type=metrics.CONTENT_TYPE)


class WebhookCounter:
    """ASGI middleware: count each ``/webhooks/<provider>/…`` request by the status engage answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(WEBHOOK_PREFIX):
            await self.app(scope, receive, send)
            return
        provider = path[len(WEBHOOK_PREFIX):].split("/", 1)[0] or "unknown"
        status = 500  # an exception before the response started is answered 500 by the server

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        finally:
            metrics.record_webhook(provider if provider in ("twilio", "sendgrid") else "other", status)

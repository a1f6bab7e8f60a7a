"""``GET /metrics`` (Prometheus text, behind a bearer token); webhook answers are counted by the request log.

``/metrics`` is off (404) unless ``ENGAGE_METRICS_TOKEN`` is set; then a scrape
must send ``Authorization: Bearer <token>`` (401 otherwise). It carries counts
and timings only, no patient data, but it still tells an outsider how busy a clinic is.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from starlette.responses import PlainTextResponse, Response

from engage import metrics
from engage.config import get_settings
from engage.ops.metrics import OutboxCollector

router = APIRouter()


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

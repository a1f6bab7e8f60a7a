"""The JSON API, mounted at ``/api``: routes under ``/api/v1``, OpenAPI at ``/api/openapi.json``, docs at ``/api/docs``.

Every route parses its input, checks the caller's clinic, calls the same library
function the CLI calls, and answers JSON (errors: RFC 9457 problem+json).
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from engage import __version__
from engage.web import ratelimit
from engage.web.api import (
    csv_sync,
    enrollments,
    fhir,
    messages,
    outcomes,
    patients,
    plans,
    problems,
    sequences,
    sync,
    webhooks,
)

VENDOR = Path(__file__).resolve().parent.parent / "static" / "vendor"
SWAGGER_UI = "swagger-ui-5.35.0"
DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>engage API</title>
<link rel="stylesheet" href="{css}">
<link rel="stylesheet" href="/static/api-docs.css">
<link rel="icon" href="data:,">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi}"></div>
<script src="{js}"></script>
<script src="/static/api-docs.js"></script>
</body>
</html>
"""
DESCRIPTION = """\
engage's JSON API. Authenticate with `Authorization: Bearer <token>` (make one with
`engage token create --staff EMAIL --label LABEL`); a token acts as its staff user, in
that user's clinic and role. Errors are RFC 9457 `application/problem+json`, with one
entry per invalid field; nothing is written on any error. Every POST takes an
`Idempotency-Key` header. Times: ISO 8601 with an offset, or the patient's local
wall time without one.
"""


def create_api() -> FastAPI:
    """The API sub-application (mount it at ``/api``)."""
    api = FastAPI(
        title="engage API",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    api.mount("/assets", StaticFiles(directory=VENDOR), name="api-assets")

    @api.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        """Swagger UI from our own copy (static/vendor), so the page works offline and leaks no visit to a CDN;
        started by /static/api-docs.js rather than an inline script, so the page keeps the site's CSP."""
        root = request.scope.get("root_path", "")
        return HTMLResponse(
            DOCS_PAGE.format(
                css=html.escape(f"{root}/assets/{SWAGGER_UI}.min.css"),
                js=html.escape(f"{root}/assets/{SWAGGER_UI}-bundle.min.js"),
                openapi=html.escape(f"{root}/openapi.json"),
            )
        )

    # sync first: its literal /by-external-id/ paths must win over /patients/{patient_id}.
    for router in (
        sync.router,
        patients.router,
        plans.plans_router,
        plans.appointments_router,
        enrollments.router,
        messages.router,
        fhir.router,
        csv_sync.router,
        webhooks.router,
        outcomes.router,
        sequences.router,
    ):
        api.include_router(router, prefix="/v1", dependencies=[Depends(ratelimit.api_per_ip)])
    problems.install(api)
    return api

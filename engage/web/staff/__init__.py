"""The staff web app: server-rendered pages for the front desk, practitioners and the clinic admin.

:func:`install` adds the routes, the static files (vendored Pico CSS, htmx, Chart.js)
and the handlers that turn "not signed in" into a redirect, a refused change (:func:`pages.refusing`) into
a redirect with its notice, and HTTP errors into pages.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.responses import Response

from engage.web.staff import (
    appointment_import,
    auth,
    inbox,
    messages,
    mfa,
    mfa_login,
    outcomes,
    patient_page,
    patients,
    plans,
    sequence_editor,
    sequence_editor_preview,
    sequence_editor_publish,
    sequence_editor_steps,
    sequence_editor_test_send,
    sequences,
    settings,
    today,
)
from engage.web.staff.pages import Refused, refused_redirect, render

STATIC = Path(__file__).resolve().parent.parent / "static"
_NOT_STAFF = ("/api/", "/webhooks/", "/u/", "/r/", "/x/", "/q/", "/metrics", "/healthz")
_TITLES = {403: "Not allowed", 404: "Not found", 405: "Not allowed", 429: "Too many requests"}


def install(app: FastAPI) -> None:
    """Add the staff pages to ``app``."""
    for module in (
        auth,
        mfa_login,
        mfa,
        today,
        patients,
        patient_page,
        plans,
        messages,
        inbox,
        sequences,
        sequence_editor,
        sequence_editor_preview,
        sequence_editor_publish,
        sequence_editor_steps,
        sequence_editor_test_send,
        settings,
        appointment_import,
        outcomes,
    ):
        app.include_router(module.router, include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(auth.SignInRequired, auth.sign_in_redirect)  # type: ignore[arg-type]
    app.add_exception_handler(Refused, refused_redirect)  # type: ignore[arg-type]
    app.add_exception_handler(auth.EnrollmentRequired, auth.enrollment_redirect)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _bad_address)  # type: ignore[arg-type]


async def _http_error(request: Request, exc: HTTPException) -> Response:
    """Staff-facing errors as a page; everything else (webhooks, API) keeps plain answers."""
    accepts_html = "text/html" in request.headers.get("accept", "")
    if not accepts_html or exc.status_code < 400 or request.url.path.startswith(_NOT_STAFF):
        return await http_exception_handler(request, exc)
    title = _TITLES.get(exc.status_code, "Something went wrong")
    detail = {404: "There is nothing here, or it belongs to another clinic."}.get(exc.status_code, str(exc.detail))
    return render(request, "error.html", None, status_code=exc.status_code, title=title, detail=detail)


async def _bad_address(request: Request, exc: RequestValidationError) -> Response:
    """A staff address with a malformed part (``/patients/abc``): a page saying which part, not FastAPI's JSON."""
    if "text/html" not in request.headers.get("accept", "") or request.url.path.startswith(_NOT_STAFF):
        return await request_validation_exception_handler(request, exc)
    parts = sorted({str(error.get("loc", ("", "?"))[-1]).replace("_", " ") for error in exc.errors()})
    detail = f"This address is not right: the {', '.join(parts)} in it must be a whole number. Check the link."
    return render(request, "error.html", None, status_code=422, title="Not a valid address", detail=detail)

"""``/import``: the CSV appointment import of ``engage import appointments``, for the front desk, in two steps.

**Check file** (``POST /import``) runs :func:`engage.sync.csv_import.import_appointments` and rolls it back,
then shows what importing would do, or every bad row and why. **Import** (``POST /import/apply``) runs it
again on the same text and commits. The check page carries the text forward in a hidden field, sealed with
an HMAC (the secret key, the staff member's session), so only a file that was checked can be imported; the
library validates every row again before it writes, and writes nothing on any error.

A file is at most ``ENGAGE_IMPORT_MAX_BYTES`` (5 MB) of UTF-8 CSV; anything else is refused beside the field.
The import is the staff member's clinic's, audited under their email (``sync.apply``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse

from engage.config import Settings, get_settings, secret_key
from engage.db import session_scope
from engage.errors import InvalidInput
from engage.schedule.explain import describe_result
from engage.sync.csv_import import (
    OPTIONAL,
    REQUIRED,
    BadFile,
    error_lines,
    import_appointments,
    megabytes,
    read_file,
)
from engage.sync.records import SyncReport
from engage.web.staff.auth import PlansEditor
from engage.web.staff.pages import Staff, render

router = APIRouter()

#: The paths whose requests carry a whole file (:func:`body_limit` bytes, not ``ENGAGE_MAX_REQUEST_BYTES``).
UPLOAD_PATHS = ("/import", "/import/apply")


def body_limit(settings: Settings) -> int:
    """The request size the upload paths accept: the largest file, base64-encoded (4/3), and the form around it.

    A file a little over the limit still reaches the page (and is refused beside the field); far over it, 413.
    """
    return max(settings.max_request_bytes, settings.import_max_bytes * 3 // 2 + 64 * 1024)


@dataclass
class Outcome:
    """A run of the import: its report, or the bad rows (``where``, ``field``, ``message``) in file order."""

    report: SyncReport | None
    errors: list[dict[str, Any]]


def seal_for(staff: Staff, content: str) -> str:
    """An HMAC of ``content`` for this staff member's session: the import takes back only what was checked."""
    message = f"csv-import:{staff.id}:{staff.clinic_id}:{staff.csrf_token}:".encode() + content.encode()
    return hmac.new(secret_key().encode(), message, hashlib.sha256).hexdigest()


def run_import(staff: Staff, text: str, *, dry_run: bool) -> Outcome:
    """The CSV import for the staff member's clinic (rolled back when ``dry_run``), as the CLI runs it."""
    try:
        with session_scope() as session:
            report = import_appointments(session, staff.clinic_id, text, actor=staff.email, dry_run=dry_run)
    except InvalidInput as exc:
        return Outcome(None, sorted(error_lines(exc), key=_line_number))
    return Outcome(report, [])


def _line_number(error: dict[str, Any]) -> int:
    """Bad rows in file order (the library lists unreadable rows before invalid ones)."""
    digits = "".join(c for c in str(error.get("where") or "") if c.isdigit())
    return int(digits) if digits else 0


def _page(request: Request, staff: Staff, status_code: int = 200, **context: Any) -> HTMLResponse:
    settings = get_settings()
    report: SyncReport | None = context.get("report")
    if report is not None:
        context["messages_changed"] = describe_result(report.messages)
        context["changed"] = any(
            (
                report.patients_created,
                report.patients_updated,
                report.plans_created,
                report.appointments_created,
                report.appointments_moved,
                report.appointments_status_changed,
                report.enrollments_created,
                report.messages.changed,
            )
        )
    return render(
        request,
        "import.html",
        staff,
        status_code=status_code,
        nav="patients",
        required=REQUIRED,
        optional=OPTIONAL,
        max_size=megabytes(settings.import_max_bytes),
        max_bytes=settings.import_max_bytes,
        **context,
    )


@router.get("/import", response_class=HTMLResponse)
def import_form(request: Request, staff: PlansEditor) -> HTMLResponse:
    return _page(request, staff)


@router.post("/import", response_class=HTMLResponse)
def check_file(
    request: Request,
    staff: PlansEditor,
    file: Annotated[UploadFile | None, File()] = None,
) -> HTMLResponse:
    filename = (file.filename or "")[:200] if file is not None else ""
    limit = get_settings().import_max_bytes
    try:
        text = read_file(file.file.read(limit + 1) if file is not None else b"", limit)
    except BadFile as exc:
        return _page(request, staff, 400, file_error=str(exc), filename=filename)
    outcome = run_import(staff, text, dry_run=True)
    if outcome.errors:
        return _page(request, staff, 400, row_errors=outcome.errors, filename=filename)
    content = base64.urlsafe_b64encode(text.encode()).decode()
    return _page(
        request,
        staff,
        step="checked",
        report=outcome.report,
        filename=filename,
        content=content,
        seal=seal_for(staff, text),
    )


# The checked text comes back base64-encoded in one form field: the body cap (body_limit), not the
# form parser's 1 MB a field, bounds it.
@router.post("/import/apply", response_class=HTMLResponse, form_limits={"max_part_size": 64 * 1024 * 1024})
def apply_file(
    request: Request,
    staff: PlansEditor,
    content: Annotated[str, Form()] = "",
    seal: Annotated[str, Form()] = "",
    filename: Annotated[str, Form()] = "",
) -> HTMLResponse:
    filename = filename[:200]
    try:
        text = base64.urlsafe_b64decode(content.encode()).decode()
    except ValueError:  # not base64, or not UTF-8 inside
        text = ""
    if not text or not hmac.compare_digest(seal.encode(), seal_for(staff, text).encode()):
        return _page(
            request,
            staff,
            400,
            filename=filename,
            file_error="This is not the file that was checked (or the check expired when you signed in "
            "again). Choose it and check it again.",
        )
    outcome = run_import(staff, text, dry_run=False)
    if outcome.errors:
        return _page(request, staff, 400, row_errors=outcome.errors, filename=filename)
    return _page(request, staff, step="imported", report=outcome.report, filename=filename)

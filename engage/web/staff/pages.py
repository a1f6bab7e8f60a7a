"""Rendering staff pages: one Jinja2 environment over ``templates/staff``, the signed-in context every page
gets, local-time filters, flash notices, and the security headers staff pages carry."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from engage.config import get_settings
from engage.errors import InvalidInput
from engage.records.models import Role
from engage.records.roles import Action, may

FLASH_COOKIE = "engage_flash"
#: Scripts and styles only from this app (the vendored files); no inline script, no framing.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


@dataclass(frozen=True)
class Staff:
    """The signed-in staff member, as pages need them (a plain value: no database session attached)."""

    id: int
    clinic_id: int
    clinic_name: str
    timezone: str
    email: str
    name: str
    role: Role
    csrf_token: str
    #: The clinic's MFA rule covers them and they have no second factor: every page sends them to enrollment.
    enroll: bool = False
    inbox_waiting: int = 0  # read when the request began: the inbox count in the menu of every page

    def may(self, action: Action | str) -> bool:
        return may(self.role, action)


def local(moment: datetime | None, tz: str, fmt: str = "%a %d %b %Y, %H:%M") -> str:
    """An instant as wall time in ``tz`` (e.g. "Tue 08 Dec 2026, 09:00"); empty for None."""
    if moment is None:
        return ""
    return moment.astimezone(ZoneInfo(tz)).strftime(fmt)


@lru_cache
def _templates(directory: Path) -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(directory))
    templates.env.filters["local"] = local
    templates.env.globals["Action"] = Action
    return templates


def templates() -> Jinja2Templates:
    return _templates(get_settings().templates_dir / "staff")


def render(request: Request, name: str, staff: Staff | None, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render ``templates/staff/<name>`` with the staff member, their CSRF token and any flash notice."""
    notice = request.cookies.get(FLASH_COOKIE)
    response = templates().TemplateResponse(
        request,
        name,
        {"staff": staff, "notice": unquote(notice) if notice else None, **context},
        status_code=status_code,
    )
    if notice:
        response.delete_cookie(FLASH_COOKIE, path="/")
    secure(response)
    return response


def secure(response: Response) -> Response:
    """Headers every staff page carries: CSP, no caching of patient data, no framing (nosniff: the app's middleware)."""
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def redirect(url: str, notice: str | None = None) -> RedirectResponse:
    """303 to ``url`` (POST-redirect-GET), with a one-time notice shown on the next page."""
    response = RedirectResponse(url, status_code=303)
    if notice:
        response.set_cookie(
            FLASH_COOKIE,
            quote(notice[:300]),
            httponly=True,
            samesite="lax",
            path="/",
            secure=get_settings().public_url.startswith("https://"),
        )
    return response


class Refused(Exception):
    """A change staff asked for was refused: the app answers with :func:`redirect` to ``to`` with ``notice``."""

    def __init__(self, to: str, notice: str) -> None:
        super().__init__(notice)
        self.to = to
        self.notice = notice


@contextmanager
def refusing(what: str, to: str, *also: type[Exception]) -> Iterator[None]:
    """Turn an ``InvalidInput`` (or one of ``also``) raised inside into :class:`Refused`: back to ``to`` with the
    notice ``"<what>: <why>."``. Raised through (or after) ``session_scope``, so nothing of the change is written."""
    caught: tuple[type[Exception], ...] = (InvalidInput, *also)
    try:
        yield
    except caught as exc:
        raise Refused(to, f"{what}: {exc}.") from exc


def refused_redirect(_request: Request, exc: Refused) -> Response:
    """The app's handler for :class:`Refused`."""
    return redirect(exc.to, exc.notice)

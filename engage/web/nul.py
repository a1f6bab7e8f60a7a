"""NUL characters in requests: refused in the URL, dropped from form and JSON bodies.

PostgreSQL cannot store U+0000 in a text column (nor in JSONB), so a NUL that reaches a query
is a server error. :class:`NoNul` stops it at the door, the same for every route:

- a path or query string holding NUL (``%00``) is answered 400 (problem+json under ``/api/``);
- a ``application/x-www-form-urlencoded`` body loses its ``%00`` escapes and a JSON body its
  ``\\u0000`` escapes (and raw NUL bytes) before any handler parses it, so a name with a NUL is
  stored without it;
- webhook bodies (``/webhooks/``) are left as they came: their signatures cover the raw bytes,
  so the webhook strips NUL with :func:`strip_nul` after checking the signature.

Other bodies (multipart uploads) are left alone: the CSV import refuses NUL bytes itself.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engage.web.api import problems

FORM = b"application/x-www-form-urlencoded"
JSON = b"application/json"
WEBHOOKS = "/webhooks/"
_FORM_NUL = re.compile(rb"%00|\x00")
# \u0000 preceded by an even number of backslashes (an odd one would make it the text "\u0000").
_JSON_NUL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000|\x00")
REFUSAL = "a request may not hold a NUL character (%00)"

T = TypeVar("T")


def strip_nul(value: T) -> T:
    """``value`` (a string, or lists and dicts of them, as JSON parses) with every NUL character removed."""
    if isinstance(value, str):
        return value.replace("\x00", "")  # type: ignore[return-value]
    if isinstance(value, list):
        return [strip_nul(v) for v in value]  # type: ignore[return-value]
    if isinstance(value, dict):
        return {strip_nul(k): strip_nul(v) for k, v in value.items()}  # type: ignore[return-value]
    return value


def _strip_json(body: bytes) -> bytes:
    return _JSON_NUL.sub(lambda m: m.group(1) or b"", body)


class NoNul:
    """ASGI middleware: see the module docstring. Place it inside the body size limit (it reads whole bodies)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        if "\x00" in scope["path"] or b"\x00" in query or b"%00" in query:
            await _refuse(scope, receive, send)
            return
        media_type = _media_type(scope)
        if scope["path"].startswith(WEBHOOKS) or media_type not in (FORM, JSON):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        clean = _FORM_NUL.sub(b"", body) if media_type == FORM else _strip_json(body)
        if clean != body:
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
            scope = {**scope, "headers": [*headers, (b"content-length", str(len(clean)).encode())]}
        await self.app(scope, _replay([{"type": "http.request", "body": clean, "more_body": False}], receive), send)


def _media_type(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bytes(value.split(b";", 1)[0].strip().lower())
    return b""


def _replay(messages: list[Message], receive: Receive) -> Receive:
    async def replaying() -> Message:
        return messages.pop(0) if messages else await receive()

    return replaying


async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
    response: Any = (
        problems.problem(400, REFUSAL)
        if str(scope["path"]).startswith("/api/")
        else PlainTextResponse(REFUSAL, status_code=400)
    )
    await response(scope, receive, send)

"""No route answers 500, whatever strings it is sent (Hypothesis).

Every route of the app (staff pages, patient pages, webhooks, the API), found by walking the app's routers:
each path parameter, query parameter, form field and JSON field the route declares gets a random string
(or, for JSON, a random value), with the few the route needs to be reached at all made right: a signed-in
admin's session and CSRF token, an API token, Twilio and SendGrid signatures over the random fields.
PostgreSQL, because it refuses what SQLite takes (NUL characters, integers past a column's range).

Examples are bounded (a few per route) so the test runs in well under a minute.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from starlette.routing import Mount

from engage.config import get_settings
from engage.db import session_scope
from engage.records import api_tokens
from engage.web.app import create_app
from tests import seed
from tests.fixtures.webhooks.support import TWILIO_AUTH_TOKEN, SendGridKey, twilio_signature

ADMIN = "admin@clinic.example"
#: Routes left out: signing out would end the session the other examples use.
SKIPPED = {("POST", "/logout")}
TWILIO_FIELDS = ("Body", "From", "To", "MessageSid", "SmsSid", "MessageStatus", "ErrorCode", "AccountSid")
EXAMPLES_PER_ROUTE = 4
SENDGRID_FIELDS = ("event", "email", "engage_message_id", "sg_event_id", "timestamp", "reason", "type")


@dataclass
class Route:
    method: str
    path: str
    path_params: list[str] = field(default_factory=list)
    query: list[str] = field(default_factory=list)
    form: list[str] = field(default_factory=list)
    json_fields: list[str] = field(default_factory=list)
    json_body: bool = False


def routes(app: FastAPI) -> list[Route]:
    """Every HTTP route of ``app`` with the parameters it declares."""
    found: list[Route] = []

    def add(route: APIRoute, prefix: str) -> None:
        dependant = route.dependant
        form, json_fields, json_body = [], [], False
        for param in dependant.body_params:
            kind = type(param.field_info).__name__
            if kind in ("Form", "File"):
                form.append(param.alias)
            else:
                json_body = True
                annotation = param.field_info.annotation
                if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                    json_fields += [f.alias or name for name, f in annotation.model_fields.items()]
                else:
                    json_fields.append(param.alias)
        for method in sorted(route.methods - {"HEAD"}):
            found.append(
                Route(
                    method,
                    prefix + route.path,
                    [p.alias for p in _all(dependant, "path_params")],
                    [p.alias for p in _all(dependant, "query_params")],
                    form,
                    json_fields,
                    json_body,
                )
            )

    def walk(items: list[Any], prefix: str) -> None:
        for item in items:
            if isinstance(item, APIRoute):
                add(item, prefix)
            elif isinstance(item, Mount) and isinstance(item.app, FastAPI):
                walk(item.app.routes, prefix + item.path)
            elif hasattr(item, "original_router"):  # a router included in the app
                walk(item.original_router.routes, prefix + item.include_context.prefix)

    walk(app.routes, "")
    return [r for r in found if (r.method, r.path) not in SKIPPED]


def _all(dependant: Any, name: str) -> list[Any]:
    """The parameters of a kind the route and its dependencies declare (a role check takes none, a filter some)."""
    params = list(getattr(dependant, name))
    for sub in dependant.dependencies:
        params += [p for p in _all(sub, name) if p.alias not in {q.alias for q in params}]
    return params


#: Strings that once broke a route, and more of their kind, besides Hypothesis's own.
NASTY = [
    "",
    "\x00",
    "STOP\x00",
    "%00",
    "0",
    "-1",
    "1",
    "99999999999999999999",
    "9" * 25,
    "2147483648",
    "²",
    "٣",
    "1e400",
    "NaN",
    "2026-13-45",
    "2026-02-30T25:61",
    "../../etc/passwd",
    "' OR 1=1 --",
    "{{ 7*7 }}",
    "<script>",
    "a" * 300,
    "ana " * 50,
]
strings = st.one_of(
    st.sampled_from(NASTY),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
)
json_values = st.one_of(
    strings,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(strings, max_size=3),
)


@dataclass
class World:
    app: FastAPI
    staff: TestClient
    csrf: str
    token: str
    sendgrid: SendGridKey
    ids: list[str]


@pytest.fixture
def world(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> World:
    key = SendGridKey()
    for name, value in {
        "TWILIO_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
        "SENDGRID_WEBHOOK_PUBLIC_KEY": key.public_key,
        "ENGAGE_RATE_LIMIT_LOGIN": "100000/minute",
        "ENGAGE_RATE_LIMIT_PUBLIC_PAGES": "100000/minute",
        "ENGAGE_RATE_LIMIT_API_PER_IP": "100000/minute",
        "ENGAGE_RATE_LIMIT_API_PER_TOKEN": "100000/minute",
        "ENGAGE_LOGIN_MAX_FAILURES": "100000",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    with session_scope() as session:
        clinic = seed.clinic(session)
        seed.staff(session, clinic.id, ADMIN, "admin")
        patient = seed.patient(session, clinic.id, email="ana@example.com")
        seed.enrolled(session, patient.id)
        _, token = api_tokens.create_token(session, staff_email=ADMIN, label="fuzz", actor="test")
    app = create_app()
    staff = TestClient(app, raise_server_exceptions=False)
    login = re.search(r'name="csrf_token" value="([^"]+)"', staff.get("/login").text)
    assert login is not None
    page = staff.post("/login", data={"email": ADMIN, "password": seed.PASSWORD, "csrf_token": login.group(1)})
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert page.url.path == "/" and csrf is not None
    return World(app, staff, csrf.group(1), token, key, ["1", "2", "3"])


def _request(world: World, route: Route, data: st.DataObject) -> tuple[str, str, dict[str, Any]]:
    """The method, URL and httpx arguments of one random request to ``route``."""
    path = route.path
    for name in route.path_params:
        value = data.draw(st.one_of(st.sampled_from(world.ids), strings), label=name)
        path = path.replace("{" + name + "}", quote(value, safe="") or "x")
    query = {name: data.draw(strings, label=name) for name in route.query if data.draw(st.booleans())}
    url = path + ("?" + urlencode(query) if query else "")
    headers = {"accept": data.draw(st.sampled_from(["text/html", "application/json"]))}
    kwargs: dict[str, Any] = {"headers": headers}
    if path.startswith("/api/"):
        headers["Authorization"] = f"Bearer {world.token}"
        if data.draw(st.booleans()):
            headers["Idempotency-Key"] = data.draw(strings.filter(lambda s: s.isprintable() and s.isascii()))
    if path.startswith("/webhooks/twilio/"):
        params = {name: data.draw(strings, label=name) for name in TWILIO_FIELDS if data.draw(st.booleans())}
        headers["X-Twilio-Signature"] = twilio_signature(url, params)
        kwargs["data"] = params
    elif path.startswith("/webhooks/sendgrid/"):
        events = [
            {name: data.draw(json_values) for name in SENDGRID_FIELDS if data.draw(st.booleans())}
            for _ in range(data.draw(st.integers(0, 2)))
        ]
        body = json.dumps(events).encode()
        headers.update(world.sendgrid.headers(body))
        kwargs["content"] = body
    elif route.form:
        form = {name: data.draw(strings, label=name) for name in route.form if data.draw(st.booleans())}
        if data.draw(st.integers(0, 9)) > 0:  # mostly with the session's token, so the route itself runs
            form["csrf_token"] = world.csrf
        if "file" in route.form:
            kwargs["files"] = {"file": ("a.csv", data.draw(strings).encode(), "text/csv")}
            form.pop("file", None)
        kwargs["data"] = form
    elif route.json_body:
        body = {name: data.draw(json_values, label=name) for name in route.json_fields if data.draw(st.booleans())}
        kwargs["json"] = body
    elif route.method == "POST" and not path.startswith("/api/"):
        kwargs["data"] = {"csrf_token": world.csrf}
    return route.method, url, kwargs


def test_no_route_answers_500_to_random_strings(world: World) -> None:
    every = routes(world.app)
    assert len(every) > 60, [f"{r.method} {r.path}" for r in every]  # the walk found the routers
    api = TestClient(world.app, raise_server_exceptions=False)

    for route in every:  # each route its own few examples: a random pick of routes would leave some out
        _check_route(world, api, route)


def _check_route(world: World, api: TestClient, route: Route) -> None:
    """A few random requests to ``route``; fails on the first 5xx (Hypothesis then shrinks it)."""

    @settings(
        max_examples=EXAMPLES_PER_ROUTE,
        # The same examples every run, so CI is reproducible; ENGAGE_FUZZ_RANDOM=1 explores new ones
        # (a random run found the overlong time zone that answered 500).
        derandomize=os.environ.get("ENGAGE_FUZZ_RANDOM") != "1",
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        method, url, kwargs = _request(world, route, data)
        client = api if url.startswith(("/api/", "/webhooks/")) else world.staff
        answer = client.request(method, url, follow_redirects=False, **kwargs)
        beat_down = route.path == "/healthz" and answer.status_code == 503  # no beat here: true, not a fault
        assert answer.status_code < 500 or beat_down, (
            f"{method} {url} {kwargs} -> {answer.status_code}: {answer.text[:300]}"
        )

    check()

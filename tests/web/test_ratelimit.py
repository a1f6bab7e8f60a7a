"""Per-IP rate limits: the patient pages and sign-in, in process on the embedded default and shared through Redis."""

from __future__ import annotations

import pytest
import redis
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from engage.config import get_settings
from engage.web import ratelimit
from engage.web.app import create_app


def app_client(monkeypatch: pytest.MonkeyPatch, ip: str = "203.0.113.7", **env: str) -> TestClient:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return TestClient(create_app(), client=(ip, 50000))


def statuses(http: TestClient, path: str, times: int) -> list[int]:
    return [http.get(path).status_code for _ in range(times)]


def test_public_pages_are_limited_per_ip_in_process_on_the_default(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    http = app_client(monkeypatch, ENGAGE_RATE_LIMIT_PUBLIC_PAGES="3/minute")

    answers = [http.get(path) for path in ("/u/a", "/r/b", "/u/c", "/u/d")]

    assert [a.status_code == 429 for a in answers] == [False, False, False, True]
    assert 1 <= int(answers[3].headers["Retry-After"]) <= 60
    other_ip = TestClient(http.app, client=("198.51.100.9", 50000))
    assert other_ip.get("/u/a").status_code != 429  # another address has its own count
    assert 429 not in statuses(http, "/healthz", 5)  # only the public pages are limited


def test_web_processes_share_the_count_through_redis(
    pg_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"ENGAGE_REDIS_URL": redis_url, "ENGAGE_RATE_LIMIT_PUBLIC_PAGES": "3/minute"}
    first, second = app_client(monkeypatch, **env), app_client(monkeypatch, **env)  # two apps: two processes

    assert [s == 429 for s in statuses(first, "/u/a", 2)] == [False, False]
    assert [s == 429 for s in statuses(second, "/u/a", 2)] == [False, True]  # the third and fourth overall
    assert redis.Redis.from_url(redis_url).keys(f"{ratelimit.KEY_PREFIX}*")


def test_pages_keep_answering_when_redis_is_down(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    http = app_client(monkeypatch, ENGAGE_REDIS_URL="redis://127.0.0.1:1/0", ENGAGE_RATE_LIMIT_PUBLIC_PAGES="2/minute")

    assert [s == 429 for s in statuses(http, "/u/a", 3)] == [False, False, True]  # counted in process meanwhile


def test_the_login_limit_is_a_dependency_a_sign_in_route_adds(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGAGE_RATE_LIMIT_LOGIN", "2/minute")
    get_settings.cache_clear()
    app = FastAPI()

    @app.post("/login", dependencies=[Depends(ratelimit.login)])
    def login() -> dict[str, bool]:
        return {"ok": True}

    http = TestClient(app, client=("203.0.113.7", 50000))

    assert [http.post("/login").status_code for _ in range(3)] == [200, 200, 429]


def test_an_unreadable_rate_stops_the_app_at_start(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGAGE_RATE_LIMIT_LOGIN", "lots")
    get_settings.cache_clear()

    with pytest.raises(ValueError, match="ENGAGE_RATE_LIMIT_LOGIN"):
        create_app()


def _api_token(email: str = "admin@clinic.example") -> str:
    from engage.db import session_scope
    from engage.records import api_tokens
    from tests import seed

    with session_scope() as session:
        clinic = seed.clinic(session)
        seed.staff(session, clinic.id, email, "admin")
        return api_tokens.create_token(session, staff_email=email, label="tests", actor="test")[1]


def test_api_requests_are_limited_per_token_from_any_address(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    token = _api_token()
    http = app_client(monkeypatch, ENGAGE_RATE_LIMIT_API_PER_TOKEN="3/minute")
    elsewhere = TestClient(http.app, client=("198.51.100.9", 50000))
    auth = {"Authorization": f"Bearer {token}"}

    answers = [c.get("/api/v1/patients", headers=auth) for c in (http, elsewhere, http, elsewhere)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[3].headers["content-type"] == "application/problem+json"
    assert 1 <= int(answers[3].headers["Retry-After"]) <= 60


def test_api_requests_are_limited_per_address_before_the_token_is_read(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    http = app_client(monkeypatch, ENGAGE_RATE_LIMIT_API_PER_IP="2/minute")

    answers = [http.get("/api/v1/patients", headers={"Authorization": "Bearer guess"}) for _ in range(3)]

    assert [a.status_code for a in answers] == [401, 401, 429]
    assert int(answers[2].headers["Retry-After"]) >= 1
    assert TestClient(http.app, client=("198.51.100.9", 50000)).get("/api/v1/patients").status_code == 401

"""Signing in to the staff app in-process (FastAPI's TestClient), for the tests that need no browser."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from engage.web.app import create_app
from tests import seed

HTML = {"accept": "text/html"}


def signed_in(email: str) -> tuple[TestClient, str]:
    """A client signed in as ``email`` (password ``seed.PASSWORD``) and its session's CSRF token."""
    client = TestClient(create_app())
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    answer = client.post("/login", data={"email": email, "password": seed.PASSWORD, "csrf_token": token.group(1)})
    assert answer.status_code == 200 and answer.url.path == "/", answer.text[:500]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', answer.text)
    assert csrf is not None
    return client, csrf.group(1)

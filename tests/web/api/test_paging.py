"""Paging through lists with ``next_cursor`` while the clinic keeps working: nobody is listed twice or lost."""

from __future__ import annotations

import base64
import itertools

import httpx
import pytest
from sqlalchemy import select

from engage.db import session_scope
from engage.records.models import Patient
from tests.web.api.conftest import World

_names = itertools.count()


def add(api: httpx.Client, first_name: str, last_name: str) -> int:
    n = next(_names)
    answer = api.post("/patients", json={"first_name": first_name, "last_name": last_name, "phone": f"+1415555{n:04d}"})
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def page_through(api: httpx.Client, q: str, limit: int, between_pages: list[tuple[str, str]]) -> list[int]:
    """Every id listed for ``q``, a page at a time, adding a patient that sorts first and one that sorts
    last (``between_pages``, in turn) after each page."""
    seen: list[int] = []
    cursor: str | None = None
    newcomers = iter(between_pages)
    while True:
        params = {"q": q, "limit": limit, **({"cursor": cursor} if cursor else {})}
        page = api.get("/patients", params=params)
        assert page.status_code == 200, page.text
        seen += [p["id"] for p in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return seen
        for first_name, last_name in itertools.islice(newcomers, 2):
            add(api, first_name, last_name)


def clinic_patient_ids(clinic_id: int) -> set[int]:
    with session_scope() as session:
        return set(session.scalars(select(Patient.id).where(Patient.clinic_id == clinic_id)))


@pytest.mark.parametrize("q", ["", "zamora"])
def test_paging_lists_each_patient_once_while_patients_are_added_between_pages(world: World, q: str) -> None:
    with world.client() as api:
        for i in range(11):
            add(api, f"Lu{i:02d}", "Zamora")
            add(api, f"Mo{i:02d}", "Avila")
        before = clinic_patient_ids(world.a.id)
        expected = {p["id"] for p in api.get("/patients", params={"q": q, "limit": 200}).json()["items"]}
        # Each turn one newcomer sorts before every row listed so far (a page number would shift
        # everyone down and list one twice) and one after the last (it may or may not be listed).
        newcomers = [("Aa", "Zamora" if q else "Aaron"), ("Zz", "Zamora" if q else "Zzyzx")] * 20
        seen = page_through(api, q, limit=4, between_pages=newcomers)

    assert len(expected) == (11 if q else 23) and expected <= before
    assert len(seen) == len(set(seen)), "a patient was listed twice"
    assert expected <= set(seen), "a patient who was there all along was left out"


def test_a_cursor_is_opaque_and_refused_when_altered_or_used_for_another_search(world: World) -> None:
    with world.client() as api:
        for i in range(3):
            add(api, f"Lu{i}", "Zamora")
        cursor = api.get("/patients", params={"q": "zamora", "limit": 1}).json()["next_cursor"]
        same = api.get("/patients", params={"q": " Zamora ", "limit": 1, "cursor": cursor})
        altered = api.get("/patients", params={"q": "zamora", "cursor": cursor[:-6] + "AAAAAA"})
        other_search = api.get("/patients", params={"q": "ruiz", "cursor": cursor})
        made_up = api.get("/patients", params={"cursor": base64.urlsafe_b64encode(b"page:2").decode()})
    with world.client(world.b) as other_clinic:
        elsewhere = other_clinic.get("/patients", params={"q": "zamora", "cursor": cursor})

    decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    assert b"zamora" not in decoded.lower() and b"lu0" not in decoded.lower()
    assert same.status_code == 200 and [p["first_name"] for p in same.json()["items"]] == ["Lu1"]
    for refused in (altered, other_search, made_up, elsewhere):
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["errors"] == [{"parameter": "cursor", "detail": refused.json()["detail"]}]

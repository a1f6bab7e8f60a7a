"""The shape every staff route shares: a plain ``def`` (FastAPI runs it in its thread pool), the CSRF check and
the role as dependencies, and a refused change answered by one helper with its notice and nothing written."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

from fastapi import APIRouter
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy import func, select

import engage.web.staff
from engage.db import session_scope
from engage.records.audit import READS
from engage.records.models import Appointment, AuditEvent, ConsentEvent, StaffUser, TreatmentPlan
from tests import seed
from tests.web.staff.support import HTML, signed_in


def _calls(dependant: Dependant) -> list[object]:
    """The endpoint and every dependency it runs, depth first."""
    found: list[object] = [dependant.call]
    for sub in dependant.dependencies:
        found += _calls(sub)
    return found


def test_no_staff_route_or_dependency_is_a_coroutine_or_calls_run_in_threadpool() -> None:
    package = Path(engage.web.staff.__file__).parent
    modules = [importlib.import_module(f"engage.web.staff.{m.name}") for m in pkgutil.iter_modules([str(package)])]
    routes = [route for module in modules for route in getattr(module, "router", APIRouter()).routes]
    assert all(isinstance(route, APIRoute) for route in routes) and len(routes) >= 40
    coroutines = [
        f"{route.path}: {getattr(call, '__qualname__', call)}"
        for route in routes
        if isinstance(route, APIRoute)
        for call in _calls(route.dependant)
        if inspect.iscoroutinefunction(call)
    ]
    assert coroutines == []
    assert [p.name for p in sorted(package.glob("*.py")) if "run_in_threadpool" in p.read_text()] == []


def _clinic_with_ana(role: str) -> dict[str, int]:
    with session_scope() as session:
        clinic = seed.clinic(session)
        me = seed.staff(session, clinic.id, "desk@clinic.example", role)
        ana = seed.patient(session, clinic.id, email="ana@example.com")
        plan_id = seed.enrolled(session, ana.id)
        reply_id = seed.flagged_reply(session, clinic.id, ana.id, "Can I move Friday?").id
        return {"me": me.id, "ana": ana.id, "plan": plan_id, "reply": reply_id}


def test_htmx_posts_carry_the_csrf_token_in_a_header_which_wins_over_the_form_field(db_url: str) -> None:
    ids = _clinic_with_ana("front_desk")
    client, csrf = signed_in("desk@clinic.example")
    url = f"/inbox/{ids['reply']}/handled"
    forged_header = client.post(url, data={"csrf_token": csrf}, headers={**HTML, "X-CSRF-Token": "forged"})
    assert forged_header.status_code == 403
    empty_header = client.post(url, data={"csrf_token": csrf}, headers={**HTML, "X-CSRF-Token": ""})
    assert empty_header.status_code == 403
    done = client.post(url, data={"note": "called back"}, headers={**HTML, "X-CSRF-Token": csrf})
    assert done.status_code == 200 and "Reply marked handled" in done.text


def test_the_role_is_checked_before_the_record_so_the_answer_is_the_same_for_any_id(db_url: str) -> None:
    ids = _clinic_with_ana("practitioner")
    with session_scope() as session:
        theirs = seed.clinic(session, name="Elsewhere", email="front@elsewhere.example")
        zoe = seed.patient(session, theirs.id, "Zoe", "Other", email="zoe@example.com").id
    client, csrf = signed_in("desk@clinic.example")
    consent = {"csrf_token": csrf, "channel": "sms", "state": "opted_out", "reason": "x"}
    for patient_id in (ids["ana"], zoe, 999_999):
        answer = client.post(f"/patients/{patient_id}/consent", data=consent, headers=HTML)
        assert answer.status_code == 403, patient_id
        assert client.get(f"/patients/{patient_id}/edit", headers=HTML).status_code == 403
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(ConsentEvent)) == 0


def test_each_refused_change_comes_back_with_its_notice_and_writes_nothing(db_url: str) -> None:
    ids = _clinic_with_ana("admin")
    client, csrf = signed_in("desk@clinic.example")
    with session_scope() as session:
        changes = select(func.count()).select_from(AuditEvent).where(AuditEvent.action.notin_(READS))  # not views
        audited = session.scalar(changes)
        appointment_id = session.scalars(select(Appointment.id).where(Appointment.plan_id == ids["plan"])).first()
    # A refused plan is the exception: its form comes back (400) with the reason beside the field
    # (tests/web/staff/test_pages.py), like the patient and webhook forms.
    cases = [
        (
            f"/patients/{ids['ana']}/plans/{ids['plan']}/enroll",
            {"sequence": "no-such-sequence"},
            f"/patients/{ids['ana']}",
            "Not enrolled: ",
        ),
        (
            f"/patients/{ids['ana']}/consent",
            {"channel": "sms", "state": "maybe", "reason": "x"},
            f"/patients/{ids['ana']}",
            "Consent not changed: ",
        ),
        (f"/appointments/{appointment_id}/move", {"to": "soon"}, f"/patients/{ids['ana']}", "Appointment not moved: "),
        (
            f"/settings/staff/{ids['me']}/deactivate",
            {},
            "/settings",
            "Deactivating failed: you cannot deactivate your own account.",
        ),
        ("/settings/tokens", {"owner": "not a number"}, "/settings", "Creating the token failed: choose a staff"),
    ]
    for url, form, lands_on, notice in cases:
        answer = client.post(url, data={"csrf_token": csrf, **form}, headers=HTML)
        assert answer.status_code == 200 and answer.url.path == lands_on, (url, answer.status_code, answer.url)
        assert notice in answer.text, (url, answer.text[:2000])
    with session_scope() as session:
        assert session.scalar(changes) == audited
        assert session.scalar(select(func.count()).select_from(TreatmentPlan)) == 1
        assert session.get_one(StaffUser, ids["me"]).active

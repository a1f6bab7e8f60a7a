"""``/patients``: search, add and edit patients. Errors are shown beside their field; nothing is saved on error."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from engage.db import session_scope
from engage.errors import InvalidInput
from engage.records.patient_search import search_patients
from engage.records.patients import FieldErrors, add_patient
from engage.records.validation import LOCALES
from engage.schedule.explain import describe_result
from engage.schedule.patient_changes import update_patient
from engage.web.staff.auth import CurrentStaff, PatientsEditor
from engage.web.staff.loaders import get_patient_for
from engage.web.staff.pages import Staff, redirect, render

router = APIRouter()

FIELDS = ("first_name", "last_name", "date_of_birth", "phone", "email", "timezone", "locale")


@router.get("/patients", response_class=HTMLResponse)
def patient_list(request: Request, staff: CurrentStaff, q: str = "", page: int = 1) -> HTMLResponse:
    found, error = None, None
    with session_scope() as session:
        try:
            found = search_patients(session, staff.clinic_id, q, page=max(page, 1))
        except InvalidInput as exc:
            error = str(exc)
    template = "_patient_results.html" if request.headers.get("hx-request") else "patients.html"
    return render(request, template, staff, nav="patients", q=q, found=found, error=error)


def _form(
    request: Request,
    staff: Staff,
    values: dict[str, str],
    errors: dict[str, str],
    patient_id: int | None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "patient_form.html",
        staff,
        nav="patients",
        values=values,
        errors=errors,
        patient_id=patient_id,
        locales=LOCALES,
        status_code=status_code,
    )


@router.get("/patients/new", response_class=HTMLResponse)
def new_patient_form(request: Request, staff: PatientsEditor) -> HTMLResponse:
    return _form(request, staff, {"locale": "en"}, {}, None)


@router.post("/patients/new", response_class=HTMLResponse)
def new_patient(
    request: Request,
    staff: PatientsEditor,
    first_name: Annotated[str, Form()] = "",
    last_name: Annotated[str, Form()] = "",
    phone: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    timezone: Annotated[str, Form()] = "",
    locale: Annotated[str, Form()] = "en",
    date_of_birth: Annotated[str, Form()] = "",
) -> Response:
    values = {
        "first_name": first_name,
        "last_name": last_name,
        "date_of_birth": date_of_birth,
        "phone": phone,
        "email": email,
        "timezone": timezone,
        "locale": locale,
    }
    try:
        with session_scope() as session:
            patient_id = add_patient(
                session,
                clinic_id=staff.clinic_id,
                first_name=first_name,
                last_name=last_name,
                email=email or None,
                phone=phone or None,
                timezone=timezone or None,
                locale=locale or "en",
                actor=staff.email,
                date_of_birth=date_of_birth or None,
            ).patient.id
    except FieldErrors as exc:
        return _form(request, staff, values, exc.errors, None, 400)
    return redirect(f"/patients/{patient_id}", "Patient added.")


@router.get("/patients/{patient_id}/edit", response_class=HTMLResponse)
def edit_patient_form(request: Request, staff: PatientsEditor, patient_id: int) -> HTMLResponse:
    with session_scope() as session:
        patient = get_patient_for(session, staff, patient_id)
        values = {name: getattr(patient, name) or "" for name in FIELDS}
    return _form(request, staff, values, {}, patient_id)


@router.post("/patients/{patient_id}/edit", response_class=HTMLResponse)
def edit_patient(
    request: Request,
    staff: PatientsEditor,
    patient_id: int,
    first_name: Annotated[str, Form()] = "",
    last_name: Annotated[str, Form()] = "",
    phone: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    timezone: Annotated[str, Form()] = "",
    locale: Annotated[str, Form()] = "en",
    date_of_birth: Annotated[str, Form()] = "",
) -> Response:
    values = {
        "first_name": first_name,
        "last_name": last_name,
        "date_of_birth": date_of_birth,
        "phone": phone,
        "email": email,
        "timezone": timezone,
        "locale": locale,
    }
    try:
        with session_scope() as session:
            patient = get_patient_for(session, staff, patient_id)
            changed, result = update_patient(session, patient, actor=staff.email, **values)
    except FieldErrors as exc:
        return _form(request, staff, values, exc.errors, patient_id, 400)
    if not changed:
        return redirect(f"/patients/{patient_id}", "Nothing changed.")
    saved = ", ".join(c.replace("_", " ") for c in changed)
    return redirect(f"/patients/{patient_id}", f"Saved ({saved}); {describe_result(result)}.")

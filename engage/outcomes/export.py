"""Exports of outcome data: one CSV row per episode (identified, or de-identified), and scores as FHIR R4
``Observation`` resources in a ``searchset`` Bundle.

De-identified CSV rows carry no names, contacts, engage ids or exact dates: a row number, the month of the
first session, and intervals (days, sessions) measured from it, so figures can be shared outside the clinic.

FHIR: a pain score is coded with LOINC 72514-3 "Pain severity - 0-10 verbal numeric rating [Score] - Reported"
(checked at loinc.org). The Patient-Specific Functional Scale has no LOINC code, so a PSFS activity score
carries engage's own code (``psfs-item`` in :data:`CODE_SYSTEM`) and the activity as the code's text. The
resources are built as the FHIR R4 JSON shape and checked with ``fhir.resources`` (its R4B models, the R4
Observation and Bundle unchanged).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.config import get_settings
from engage.outcomes.episodes import Episode
from engage.records.models import Measure, Outcome, Patient

LOINC = "http://loinc.org"
NPRS_LOINC = ("72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported")
CODE_SYSTEM_PATH = "/fhir/CodeSystem/engage-measures"
MAX_PAGE = 1000

IDENTIFIED = ["enrollment_id", "patient_id", "patient", "practitioner", "sequence", "first_session"]
DEIDENTIFIED = ["row", "practitioner", "sequence", "first_session_month"]
FIGURES = [
    "baseline",
    "latest",
    "change",
    "percent_change",
    "follow_ups",
    "final",
    "responder_two_points",
    "responder_thirty_percent",
    "responder_both",
    "worsened",
    "days_to_mcid",
    "sessions_to_mcid",
]


def episodes_csv(
    episodes: list[Episode],
    *,
    timezone: str,
    practitioners: dict[int, str],
    patient_names: dict[int, str] | None = None,
    deidentified: bool = False,
) -> str:
    """The episodes (those with a baseline) as CSV text, one row each, in first-session order."""
    tz = ZoneInfo(timezone)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow((DEIDENTIFIED if deidentified else IDENTIFIED) + FIGURES)
    rows = sorted((e for e in episodes if e.baseline is not None), key=lambda e: (e.first_session, e.enrollment_id))
    for number, episode in enumerate(rows, start=1):
        practitioner = practitioners.get(episode.practitioner_id or 0, "")
        first = episode.first_session.astimezone(tz)
        if deidentified:
            head: list[Any] = [number, practitioner, episode.sequence_key, first.strftime("%Y-%m")]
        else:
            name = (patient_names or {}).get(episode.patient_id, "")
            head = [episode.enrollment_id, episode.patient_id, name, practitioner, episode.sequence_key]
            head.append(first.isoformat(timespec="minutes"))
        days = episode.days_to_mcid
        writer.writerow(
            head
            + [
                episode.baseline,
                _blank(episode.latest),
                _blank(episode.change),
                _blank(episode.percent_change),
                episode.follow_ups,
                _yes(episode.final),
                _yes(episode.two_points),
                _yes(episode.thirty_percent),
                _yes(episode.both),
                _yes(episode.worsened),
                "" if days is None else round(days, 1),
                _blank(episode.sessions_to_mcid),
            ]
        )
    return out.getvalue()


def _blank(value: object) -> object:
    return "" if value is None else value


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def observation(outcome: Outcome, patient: Patient, base_url: str) -> dict[str, Any]:
    """One score as a FHIR R4 Observation (JSON)."""
    if outcome.measure is Measure.NPRS:
        code: dict[str, Any] = {
            "coding": [{"system": LOINC, "code": NPRS_LOINC[0], "display": NPRS_LOINC[1]}],
            "text": "Pain (NPRS 0-10)",
        }
    else:
        code = {
            "coding": [
                {
                    "system": base_url + CODE_SYSTEM_PATH,
                    "code": "psfs-item",
                    "display": "Patient-Specific Functional Scale activity score",
                }
            ],
            "text": f"PSFS: {outcome.item or ''}".strip(),
        }
    subject: dict[str, Any] = {"reference": f"Patient/{patient.id}"}
    if patient.external_id:
        subject["identifier"] = {"value": patient.external_id}
    return {
        "resourceType": "Observation",
        "id": f"outcome-{outcome.id}",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                        "display": "Survey",
                    }
                ]
            }
        ],
        "code": code,
        "subject": subject,
        "effectiveDateTime": outcome.recorded_at.isoformat(),
        "issued": outcome.recorded_at.isoformat(),
        "valueInteger": outcome.score,
    }


def observations_bundle(
    session: Session, clinic_id: int, since: datetime | None, after: int | None = None, limit: int = 500
) -> dict[str, Any]:
    """The clinic's scores recorded at or after ``since`` (and with an id above ``after``), oldest first, as a
    ``searchset`` Bundle of at most ``limit`` Observations (validated); ``total`` counts this page."""
    base = get_settings().public_url.rstrip("/")
    query = (
        select(Outcome, Patient)
        .join(Patient, Patient.id == Outcome.patient_id)
        .where(Patient.clinic_id == clinic_id)
        .order_by(Outcome.id)
        .limit(max(1, min(limit, MAX_PAGE)))
    )
    if since is not None:
        query = query.where(Outcome.recorded_at >= since)
    if after is not None:
        query = query.where(Outcome.id > after)
    rows = session.execute(query).all()
    entries = [
        {"fullUrl": f"{base}/api/v1/observations/outcome-{o.id}", "resource": observation(o, p, base), "search": {}}
        for o, p in rows
    ]
    for entry in entries:
        entry["search"] = {"mode": "match"}
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}
    Bundle.model_validate(bundle)  # a programming error here must not reach an integrator as invalid FHIR
    return bundle

"""The Keele STarT Back Tool: nine questions at intake that place a patient with low back pain at low, medium or
high risk of a poor outcome (Hill et al., Arthritis Rheum 2008;59(5):632-41), so the practitioner can match
treatment to risk.

Scoring, as the tool's authors publish it: items 1-8 are answered agree (1) or disagree (0); item 9 ("how
bothersome has your back pain been in the last 2 weeks?") has five answers, 0 "not at all" to 4 "extremely",
and scores 1 for "very much" or "extremely". The **total** is 0-9; the **psychosocial subscale** is items 5-9,
0-5. A total of 3 or less is **low** risk; otherwise a subscale of 3 or less is **medium**, and 4 or 5 **high**.

The questions' wording is Keele University's, free for clinical use but licensed for commercial software, so
engage does not ship it: a clinic that holds a licence puts it in ``templates/questionnaires/start-back.<lang>.yaml``
(see ``templates/questionnaires/README.md``), and only then does the intake page ask it, in that language.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.content.rendering import templates_root
from engage.errors import InvalidInput, NotFound
from engage.records.audit import AuditAction, audit
from engage.records.models import Patient, Screening

TOOL = "start_back"
ITEMS = 9
AGREE_ITEMS = 8  # items 1-8: disagree 0, agree 1
BOTHER_ANSWERS = 5  # item 9: 0 not at all .. 4 extremely
BOTHER_SCORES_FROM = 3  # "very much" and "extremely" score 1
PSYCHOSOCIAL = slice(4, 9)  # items 5-9
LOW, MEDIUM, HIGH = "low", "medium", "high"
SOURCE = "Hill JC et al. Arthritis Rheum 2008;59(5):632-41 (the Keele STarT Back Screening Tool)"


@dataclass(frozen=True)
class Result:
    total: int
    subscale: int
    risk: str


def check_answers(answers: Sequence[int | str]) -> list[int]:
    """The nine answers as numbers; ``InvalidInput`` (field ``start_back``) unless items 1-8 are 0 or 1 and
    item 9 is 0-4."""
    problem = InvalidInput(
        "answer all nine STarT Back questions: items 1-8 agree (1) or disagree (0), item 9 from 0 to 4",
        field="start_back",
    )
    if len(answers) != ITEMS:
        raise problem
    try:
        numbers = [int(str(answer).strip()) for answer in answers]
    except ValueError:
        raise problem from None
    if any(n not in (0, 1) for n in numbers[:AGREE_ITEMS]) or not 0 <= numbers[-1] < BOTHER_ANSWERS:
        raise problem
    return numbers


def score(answers: Sequence[int | str]) -> Result:
    """The total, the psychosocial subscale and the risk group of nine answers (see the module docstring)."""
    numbers = check_answers(answers)
    points = [*numbers[:AGREE_ITEMS], int(numbers[-1] >= BOTHER_SCORES_FROM)]
    total, subscale = sum(points), sum(points[PSYCHOSOCIAL])
    risk = LOW if total <= 3 else MEDIUM if subscale <= 3 else HIGH
    return Result(total, subscale, risk)


def record(
    session: Session,
    patient_id: int,
    answers: Sequence[int | str],
    *,
    actor: str,
    source: str = "intake",
    at: datetime | None = None,
) -> Screening:
    """Store one completed STarT Back with its scores; audited (ids and the risk group only)."""
    result = score(answers)
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound(f"no patient with id {patient_id}")
    screening = Screening(
        patient_id=patient.id,
        tool=TOOL,
        answers=check_answers(answers),
        total=result.total,
        subscale=result.subscale,
        risk=result.risk,
        source=source,
        recorded_at=at or utcnow(),
    )
    session.add(screening)
    session.flush()
    audit(
        session,
        clinic_id=patient.clinic_id,
        actor=actor,
        action=AuditAction.OUTCOME_RECORD,
        subject_type="patient",
        subject_id=patient.id,
        screening_id=screening.id,
        measure=TOOL,
    )
    return screening


def newest_risks(patient_ids: Any) -> Any:
    """A subquery (``patient_id``, ``risk``): the risk group of each patient's newest STarT Back (by the time it
    was answered), for the patients ``patient_ids`` (a select of ids) names."""
    ranked = (
        select(
            Screening.patient_id,
            Screening.risk,
            func.row_number()
            .over(partition_by=Screening.patient_id, order_by=(Screening.recorded_at.desc(), Screening.id.desc()))
            .label("rn"),
        )
        .where(Screening.tool == TOOL, Screening.patient_id.in_(patient_ids))
        .subquery("ranked_screening")
    )
    return select(ranked.c.patient_id, ranked.c.risk).where(ranked.c.rn == 1).subquery("risk")


def wording(lang: str, templates_dir: Path | None = None) -> dict[str, Any] | None:
    """The licensed wording in ``lang`` (``items``: nine questions; ``agree``/``disagree``; ``bother``: item 9's
    five answers), or None when the clinic has not installed it in that language."""
    path = templates_root(templates_dir) / "questionnaires" / f"start-back.{lang}.yaml"
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    items, bother = data.get("items") or [], data.get("bother") or []
    if len(items) != ITEMS or len(bother) != BOTHER_ANSWERS or not data.get("agree") or not data.get("disagree"):
        raise ValueError(f"{path.name}: nine items, agree, disagree and five bother answers are required")
    return {
        "items": [str(i) for i in items],
        "agree": str(data["agree"]),
        "disagree": str(data["disagree"]),
        "bother": [str(b) for b in bother],
    }

"""``engage outcome record`` (one score, possibly dated in the past) and ``engage outcomes summary`` (the
clinic-wide figures the Outcomes page shows)."""

from __future__ import annotations

from typing import Any

import click

from engage.cli.common import ACTOR, emit, json_option, table, user_errors
from engage.conversation.measures import record_score, score_json
from engage.db import session_scope
from engage.outcomes.summary import outcome_summary, parse_filters


@click.group()
def outcome() -> None:
    """Record a patient's score: pain (NPRS) or one PSFS activity, now or at a past time."""


@outcome.command("record")
@click.argument("patient_id", type=int)
@click.option("--score", required=True, help="A whole number from 0 to 10.")
@click.option("--at", "at", help="When it was taken (ISO 8601; without an offset: the patient's local time).")
@click.option("--measure", default="nprs", show_default=True, type=click.Choice(["nprs", "psfs"]))
@click.option("--item", help="PSFS: the activity rated, in the patient's words.")
@json_option
@user_errors
def outcome_record(patient_id: int, score: str, at: str | None, measure: str, item: str | None) -> None:
    """Record one score for a patient (a baseline before the first session, or a follow-up)."""
    with session_scope() as session:
        data = score_json(
            record_score(session, patient_id, score, actor=ACTOR, measure_name=measure, at=at, item=item, source="cli")
        )
    emit(data, f"{data['measure']} score {data['score']} recorded for patient {patient_id} at {data['recorded_at']}")


@click.group()
def outcomes() -> None:
    """Clinic-wide outcomes: responders, time to meaningful improvement, by practitioner and sequence."""


@outcomes.command("summary")
@click.option("--clinic", "clinic_id", type=int, required=True)
@click.option("--from", "start", help="First sessions on or after this local date (YYYY-MM-DD).")
@click.option("--to", "end", help="First sessions on or before this local date (YYYY-MM-DD).")
@click.option("--practitioner", "practitioner_id", help="Only this practitioner's episodes (an id).")
@click.option("--sequence", help="Only enrollments in this sequence (its key).")
@click.option("--condition", help="Only plans for this condition.")
@click.option("--modality", help="Only plans of this modality.")
@json_option
@user_errors
def outcomes_summary(
    clinic_id: int,
    start: str | None,
    end: str | None,
    practitioner_id: str | None,
    sequence: str | None,
    condition: str | None,
    modality: str | None,
) -> None:
    """The clinic's outcome figures (see the Outcomes page for the definitions)."""
    filters = parse_filters(
        start=start, end=end, practitioner=practitioner_id, sequence=sequence, condition=condition, modality=modality
    )
    with session_scope() as session:
        data = outcome_summary(session, clinic_id, filters)
    emit(data, lambda: _human(data))


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f} %"


def _human(data: dict[str, Any]) -> str:
    ci = data["ci95"]
    lines = [
        f"enrolled {data['enrolled']}, episodes (with a baseline) {data['episodes']}, "
        f"with a follow-up {data['with_follow_up']}, with a final score {data['with_final']}",
        f"responders (2 points and 30 %): {data['responders']['both']} of {data['with_follow_up']} = "
        f"{_percent(data['responder_rate'])}" + (f" (95 % CI {_percent(ci[0])} to {_percent(ci[1])})" if ci else ""),
        f"median change {data['median_change']}, worsened {data['worsened']}, "
        f"median days to improvement {data['time_to_mcid']['median_days']}",
        "",
        "by practitioner:",
        table(
            [
                {**r, "rate": _percent(r["responder_rate"]), "both": r["responders"]["both"]}
                for r in data["by_practitioner"]
            ],
            ["name", "episodes", "with_follow_up", "both", "rate", "worsened"],
        ),
    ]
    return "\n".join(lines)

"""``engage patient outcomes ID``: a patient's reassessment scores over time."""

from __future__ import annotations

import click

from engage.cli.common import emit, json_option, table, user_errors
from engage.conversation.outcomes import list_outcomes, outcome_json
from engage.db import session_scope


@click.command("outcomes")
@click.argument("patient_id", type=int)
@json_option
@user_errors
def outcomes(patient_id: int) -> None:
    """List a patient's 0-10 pain scores, oldest first."""
    with session_scope() as session:
        rows = [outcome_json(o) for o in list_outcomes(session, patient_id)]
    emit(
        {"patient_id": patient_id, "outcomes": rows},
        lambda: table(rows, ["recorded_at", "score", "source", "prompt_message_id"]),
    )

"""``engage enroll``, ``engage enrollment pause|resume|cancel``, ``engage timeline``.

Each command runs in one ``session_scope()`` (all or nothing) and prints only after
the transaction committed, so what it reports is what is stored.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import click

from engage.cli.common import emit, json_option, table, user_errors
from engage.db import session_scope
from engage.schedule import enrollments


@click.command("enroll")
@click.option("--patient", "patient_id", type=int, required=True, help="Patient id.")
@click.option("--plan", "plan_id", type=int, required=True, help="The patient's treatment plan id.")
@click.option("--sequence", "sequence_key", required=True, help="Sequence key, e.g. dry-needling-sciatica.")
@click.option("--by", "enrolled_by", default="cli", show_default=True, help="Who enrolls (kept in the audit log).")
@json_option
@user_errors
def enroll(patient_id: int, plan_id: int, sequence_key: str, enrolled_by: str) -> None:
    """Enroll a patient's plan into a follow-up sequence and plan every message."""
    with session_scope() as session:
        enrollment, _result = enrollments.enroll(session, patient_id, plan_id, sequence_key, enrolled_by=enrolled_by)
        statuses = Counter(
            m["status"] for m in enrollments.timeline(session, patient_id) if m["enrollment_id"] == enrollment.id
        )
        data: dict[str, Any] = {
            "id": enrollment.id,
            "messages": sum(statuses.values()),
            "by_status": dict(sorted(statuses.items())),
        }
    summary = ", ".join(f"{n} {status}" for status, n in data["by_status"].items()) or "nothing to send"
    emit(data, f"enrollment {data['id']}: {data['messages']} messages ({summary}); see `engage timeline {patient_id}`")


@click.group("enrollment")
def enrollment() -> None:
    """Pause, resume or cancel an enrollment."""


def _status_command(name: str, action: Any, help_text: str) -> click.Command:
    @enrollment.command(name, help=help_text)
    @click.argument("enrollment_id", type=int)
    @click.option("--by", "actor", default="cli", show_default=True, help="Who does it (kept in the audit log).")
    @json_option
    @user_errors
    def command(enrollment_id: int, actor: str) -> None:
        with session_scope() as session:
            changed, result = action(session, enrollment_id, actor=actor)
            data = {"id": changed.id, "status": changed.status.value, "changes": result.as_dict()}
        counts = result.as_dict()
        moved = ", ".join(f"{n} {what}" for what, n in counts.items() if n and what != "unchanged") or "no changes"
        emit(data, f"enrollment {data['id']} is {data['status']} ({moved})")

    return command


_status_command("pause", enrollments.pause, "Pause: pending messages are cancelled until resumed.")
_status_command("resume", enrollments.resume, "Resume: future messages are scheduled again.")
_status_command("cancel", enrollments.cancel, "Cancel for good: pending messages are cancelled.")


@click.command("timeline")
@click.argument("patient_id", type=int)
@json_option
@user_errors
def timeline(patient_id: int) -> None:
    """Every message planned or sent for a patient, by due time (local time shown for people)."""
    with session_scope() as session:
        messages = enrollments.timeline(session, patient_id)

    def human() -> str:
        rows = [
            {
                "id": m["id"],
                "due (local)": datetime.fromisoformat(m["local_due_at"]).strftime("%Y-%m-%d %H:%M %z"),
                "step": m["step"],
                "channel": m["channel"],
                "status": m["status"],
                "appt": m["appointment_id"] or "",
                "reason": m["reason"] or "",
            }
            for m in messages
        ]
        return table(rows, ["id", "due (local)", "step", "channel", "status", "appt", "reason"])

    emit({"messages": messages}, human)

"""``engage import appointments FILE.csv``: sync appointments from a practice-management export."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from engage.cli.common import ACTOR, emit, json_option, user_errors, wants_json
from engage.db import session_scope
from engage.errors import InvalidInput
from engage.sync.csv_import import error_lines, import_appointments, read_file


@click.group("import")
def import_() -> None:
    """Bring records in from another system (upserted by its ids: importing twice changes nothing)."""


@import_.command("appointments")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--clinic", "clinic_id", type=int, required=True)
@click.option("--dry-run", is_flag=True, help="Check and count, write nothing.")
@json_option
@user_errors
def import_appointments_command(csv_file: Path, clinic_id: int, dry_run: bool) -> None:
    """Import appointments and their patients from CSV (columns: see the README).

    Every row is checked first; with any bad row, each is listed and nothing is written.
    """
    try:
        text = read_file(csv_file.read_bytes())
        with session_scope() as session:
            report = import_appointments(session, clinic_id, text, dry_run=dry_run, actor=ACTOR)
    except InvalidInput as exc:
        lines = error_lines(exc)
        if wants_json():
            click.echo(json.dumps({"ok": False, "errors": lines}))
        for line in lines:
            where = f"{line['where']}: " if line["where"] else ""
            field = f"{line['field']}: " if line["field"] else ""
            click.echo(f"error: {where}{field}{line['message']}", err=True)
        click.echo(f"nothing was written ({len(lines)} error(s))", err=True)
        sys.exit(2)
    data = {**report.as_dict(), "dry_run": dry_run}

    def human() -> str:
        verb = "would be" if dry_run else "were"
        return (
            f"appointments: {data['appointments_created']} created, {data['appointments_moved']} moved, "
            f"{data['appointments_status_changed']} changed status, {data['appointments_unchanged']} unchanged\n"
            f"patients: {data['patients_created']} created, {data['patients_updated']} updated, "
            f"{data['patients_unchanged']} unchanged; plans created: {data['plans_created']}; "
            f"enrollments: {data['enrollments_created']}\n"
            f"messages {verb} changed: {_changes(data['messages'])}"
        )

    emit(data, human)


def _changes(counts: dict[str, int]) -> str:
    """``{"inserted": 25, "moved": 0, ...}`` as people read it: ``25 inserted``; ``none`` when all are 0."""
    return ", ".join(f"{n} {what}" for what, n in counts.items() if n and what != "unchanged") or "none"


# The lazy CLI finds a command by its module attribute, and ``import`` is a keyword.
globals()["import"] = import_

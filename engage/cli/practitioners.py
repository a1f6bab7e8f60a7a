"""``engage practitioner add|list``: the clinic's clinicians, whom plans and appointments name."""

from __future__ import annotations

import click

from engage.cli.common import ACTOR, emit, json_option, table, user_errors
from engage.db import session_scope
from engage.records.practitioners import add_practitioner, list_practitioners, practitioner_json


@click.group()
def practitioner() -> None:
    """Practitioners: who treats (a staff account, or a name and id from your practice-management system)."""


@practitioner.command("add")
@click.option("--clinic", "clinic_id", type=int, required=True)
@click.option("--name", help="As patients and colleagues know them; default: the staff account's name.")
@click.option("--external-id", help="Their id in your practice-management system (a sync matches it).")
@click.option("--staff", "staff_email", help="The email of their staff account (role practitioner).")
@json_option
@user_errors
def practitioner_add(clinic_id: int, name: str | None, external_id: str | None, staff_email: str | None) -> None:
    """Add a practitioner to a clinic."""
    with session_scope() as session:
        data = practitioner_json(
            add_practitioner(
                session, clinic_id, name=name, external_id=external_id, staff_email=staff_email, actor=ACTOR
            )
        )
    emit(data, f"practitioner {data['id']} added: {data['name']}")


@practitioner.command("list")
@click.option("--clinic", "clinic_id", type=int, required=True)
@json_option
@user_errors
def practitioner_list(clinic_id: int) -> None:
    """The clinic's practitioners by name."""
    with session_scope() as session:
        rows = [practitioner_json(p) for p in list_practitioners(session, clinic_id)]
    emit({"practitioners": rows}, lambda: table(rows, ["id", "name", "external_id", "staff_user_id"]))

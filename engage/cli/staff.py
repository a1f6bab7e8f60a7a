"""``engage staff add|list|deactivate|reset-password|mfa-reset``: staff accounts for the web app."""

from __future__ import annotations

import sys

import click

from engage.cli.common import ACTOR, UserError, emit, json_option, table, user_errors
from engage.db import session_scope
from engage.records import staff as accounts


def _password(from_stdin: bool) -> str:
    """The new password: one line on stdin with --password-stdin, else asked twice without echo."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UserError("--password-stdin: no password on standard input")
        return password
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@click.group()
def staff() -> None:
    """Staff accounts (admin, front_desk, practitioner) that sign in to the web app."""


@staff.command("add")
@click.option("--clinic", "clinic_id", type=int, required=True)
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", "role_name", required=True, type=click.Choice(["admin", "front_desk", "practitioner"]))
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (one line).")
@json_option
@user_errors
def staff_add(clinic_id: int, email: str, name: str, role_name: str, password_stdin: bool) -> None:
    """Add a staff account; the password (at least 12 characters) is asked for unless --password-stdin."""
    accounts.role(role_name)  # refuse a bad role before asking for a password
    password = _password(password_stdin)
    with session_scope() as session:
        created = accounts.create_staff(
            session,
            clinic_id=clinic_id,
            email=email,
            name=name,
            role_name=role_name,
            password=password,
            actor=ACTOR,
        )
        data = accounts.staff_json(created)
    emit(data, f"staff {data['id']} added: {data['email']} ({data['role']})")


@staff.command("list")
@click.option("--clinic", "clinic_id", type=int, help="Only this clinic's accounts.")
@json_option
@user_errors
def staff_list(clinic_id: int | None) -> None:
    """Staff accounts."""
    with session_scope() as session:
        rows = [accounts.staff_json(s) for s in accounts.list_staff(session, clinic_id)]
    emit({"staff": rows}, lambda: table(rows, ["id", "clinic_id", "email", "name", "role", "active"]))


@staff.command("deactivate")
@click.argument("staff_id", type=int)
@json_option
@user_errors
def staff_deactivate(staff_id: int) -> None:
    """Deactivate an account: it cannot sign in, and its open sessions end."""
    with session_scope() as session:
        data = accounts.staff_json(accounts.deactivate_staff(session, staff_id, actor=ACTOR))
    emit(data, f"staff {staff_id} deactivated")


@staff.command("reset-password")
@click.argument("staff_id", type=int)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (one line).")
@json_option
@user_errors
def staff_reset_password(staff_id: int, password_stdin: bool) -> None:
    """Set a new password; the account's open sessions end."""
    password = _password(password_stdin)
    with session_scope() as session:
        data = accounts.staff_json(accounts.reset_password(session, staff_id, password, actor=ACTOR))
    emit(data, f"staff {staff_id}: password changed")


@staff.command("mfa-reset")
@click.argument("staff_id", type=int)
@json_option
@user_errors
def staff_mfa_reset(staff_id: int) -> None:
    """Remove an account's second factors (authenticator app, passkeys, recovery codes); audited.

    For someone who lost their phone: if their clinic requires a second factor, they set up a new
    one on their next page after signing in with their password.
    """
    from engage.records import factors

    with session_scope() as session:
        data = accounts.staff_json(factors.reset_factors(session, staff_id, actor=ACTOR))
    emit(data, f"staff {staff_id}: second factors removed")

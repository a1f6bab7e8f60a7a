"""``engage token create|list|revoke``: API tokens (shown once; only a hash is stored)."""

from __future__ import annotations

import click
from sqlalchemy import select

from engage.cli.common import ACTOR, emit, json_option, table, user_errors
from engage.db import session_scope
from engage.records import api_tokens
from engage.records.models import StaffUser


@click.group()
def token() -> None:
    """API tokens: a token acts as its staff user (same clinic, same role)."""


@token.command("create")
@click.option("--staff", "staff_email", required=True, help="The staff user's email; the token acts as them.")
@click.option("--label", default="", help="What the token is for, e.g. 'PMS sync'.")
@click.option("--clinic", "clinic_id", type=int, help="The clinic, when staff at several clinics share the address.")
@json_option
@user_errors
def token_create(staff_email: str, label: str, clinic_id: int | None) -> None:
    """Make a token and print it once: store it now, it cannot be shown again."""
    with session_scope() as session:
        row, secret = api_tokens.create_token(
            session, staff_email=staff_email, label=label, clinic_id=clinic_id, actor=ACTOR
        )
        data = {"id": row.id, "token": secret, "label": row.label}
    emit(data, f"token {data['id']} created; store it now, it is not shown again:\n{secret}")


@token.command("list")
@click.option("--staff", "staff_email", help="Only this staff user's tokens.")
@click.option("--clinic", "clinic_id", type=int, help="Only this clinic's tokens.")
@json_option
@user_errors
def token_list(staff_email: str | None, clinic_id: int | None) -> None:
    """Tokens with their labels and state (never the token itself)."""
    with session_scope() as session:
        rows = api_tokens.list_tokens(session, staff_email=staff_email, clinic_id=clinic_id)
        emails = dict(session.execute(select(StaffUser.id, StaffUser.email)).all())
        data = {"tokens": [api_tokens.token_json(r, emails.get(r.staff_user_id)) for r in rows]}
    emit(data, lambda: table(data["tokens"], ["id", "staff_email", "label", "created_at", "revoked_at"]))


@token.command("revoke")
@click.argument("token_id", type=int)
@json_option
@user_errors
def token_revoke(token_id: int) -> None:
    """Revoke a token: requests with it get 401 from now on."""
    with session_scope() as session:
        data = api_tokens.token_json(api_tokens.revoke_token(session, token_id, actor=ACTOR))
    emit(data, f"token {token_id} revoked")

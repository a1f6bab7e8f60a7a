"""The front desk's everyday work from a shell: ``patient list|find|update``, ``consent set``, ``inbox``,
``message resolve``. The same library functions as the staff pages."""

from __future__ import annotations

import click

from engage.cli.common import ACTOR, emit, json_option, table, user_errors
from engage.cli.records import patient
from engage.conversation import inbox as replies
from engage.db import session_scope
from engage.delivery import resolve
from engage.records import lookup, patient_search, patients
from engage.records.models import Clinic, Patient
from engage.schedule import patient_changes


def _page_text(data: dict) -> str:  # type: ignore[type-arg]
    return table(data["patients"], ["id", "last_name", "first_name", "date_of_birth", "phone", "email"]) + (
        f"\npage {data['page']} of {data['pages']} ({data['total']} patients)"
    )


def _search(clinic_id: int, query: str, page: int, per_page: int) -> None:
    with session_scope() as session:
        lookup.get(session, Clinic, clinic_id)
        data = patient_search.search_patients(session, clinic_id, query, page=page, per_page=per_page).as_dict()
    emit(data, lambda: _page_text(data))


@patient.command("list")
@click.option("--clinic", "clinic_id", type=int, required=True)
@click.option("--page", type=int, default=1, show_default=True)
@click.option("--per-page", type=int, default=25, show_default=True)
@json_option
@user_errors
def patient_list(clinic_id: int, page: int, per_page: int) -> None:
    """A clinic's patients by last name, a page at a time."""
    _search(clinic_id, "", page, per_page)


@patient.command("find")
@click.argument("query")
@click.option("--clinic", "clinic_id", type=int, required=True)
@click.option("--page", type=int, default=1, show_default=True)
@click.option("--per-page", type=int, default=25, show_default=True)
@json_option
@user_errors
def patient_find(query: str, clinic_id: int, page: int, per_page: int) -> None:
    """Find patients by name ("ana ru"), phone in any format ("(415) 555-0123") or email."""
    _search(clinic_id, query, page, per_page)


@patient.command("update")
@click.argument("patient_id", type=int)
@click.option("--first-name")
@click.option("--last-name")
@click.option("--email", help="An empty value removes it (a phone must remain).")
@click.option("--phone", help="Any format; an empty value removes it (an email must remain).")
@click.option("--timezone", "tz", help="IANA name; an empty value means the clinic's.")
@click.option("--locale", help="en or es.")
@click.option("--date-of-birth", help="YYYY-MM-DD or MM/DD/YYYY; an empty value removes it.")
@json_option
@user_errors
def patient_update(
    patient_id: int,
    first_name: str | None,
    last_name: str | None,
    email: str | None,
    phone: str | None,
    tz: str | None,
    locale: str | None,
    date_of_birth: str | None,
) -> None:
    """Change a patient's details (validated as on add); their messages are re-planned."""
    given = {
        name: value
        for name, value in (
            ("first_name", first_name),
            ("last_name", last_name),
            ("email", email),
            ("phone", phone),
            ("timezone", tz),
            ("locale", locale),
            ("date_of_birth", date_of_birth),
        )
        if value is not None
    }
    with session_scope() as session:
        found: Patient = lookup.get(session, Patient, patient_id)
        changed, result = patient_changes.update_patient(session, found, actor=ACTOR, **given)
        data = {"patient": patients.patient_json(found), "changed": changed, "messages": result.as_dict()}
    emit(data, f"patient {patient_id}: " + (", ".join(changed) + " changed" if changed else "nothing changed"))


@click.group()
def consent() -> None:
    """A patient's consent per channel."""


@consent.command("set")
@click.argument("patient_id", type=int)
@click.option("--channel", required=True, type=click.Choice(["sms", "email"]))
@click.option("--state", required=True, type=click.Choice(["opted_in", "opted_out"]))
@click.option("--reason", required=True, help="Why, e.g. 'asked at the desk to stop texts'.")
@json_option
@user_errors
def consent_set(patient_id: int, channel: str, state: str, reason: str) -> None:
    """Record an opt-out or opt-in a patient gave in person or by phone."""
    with session_scope() as session:
        found: Patient = lookup.get(session, Patient, patient_id)
        event, result = patient_changes.set_consent(session, found, channel, state, reason=reason, actor=ACTOR)
        data = {
            "patient_id": patient_id,
            "channel": channel,
            "state": state,
            "event_id": event.id,
            "messages": result.as_dict(),
        }
    emit(data, f"patient {patient_id}: {channel} {state.replace('_', ' ')}")


@click.command("inbox")
@click.option("--clinic", "clinic_id", type=int, required=True)
@click.option("--all", "include_handled", is_flag=True, help="Also replies already handled.")
@click.option("--handle", "handle_id", type=int, metavar="REPLY_ID", help="Mark this reply handled (needs --note).")
@click.option("--note", help="What was done about the reply.")
@json_option
@user_errors
def inbox(clinic_id: int, include_handled: bool, handle_id: int | None, note: str | None) -> None:
    """Patient replies waiting for a person, oldest first; --handle ID --note TEXT marks one handled."""
    with session_scope() as session:
        lookup.get(session, Clinic, clinic_id)
        if handle_id is not None:
            reply = replies.get_reply_in_clinic(session, clinic_id, handle_id)
            data = replies.reply_json(replies.mark_handled(session, reply, note or "", actor=ACTOR))
            emit(data, f"reply {handle_id} handled")
            return
        rows = [
            replies.reply_json(r, session.get(Patient, r.patient_id) if r.patient_id else None)
            for r in replies.inbox(session, clinic_id, include_handled=include_handled)
        ]
    emit({"replies": rows}, lambda: table(rows, ["id", "received_at", "patient", "flag_reason", "body", "handled_at"]))


@click.group()
def message() -> None:
    """Single outbox messages."""


@message.command("resolve")
@click.argument("message_id", type=int)
@click.option("--action", "resolution", required=True, type=click.Choice(["mark-sent", "send-again", "drop"]))
@click.option("--reason", required=True)
@json_option
@user_errors
def message_resolve(message_id: int, resolution: str, reason: str) -> None:
    """Settle an unknown or failed message: mark it sent, send it again, or drop it."""
    with session_scope() as session:
        found = resolve.get_message_in_clinic(session, None, message_id)
        done = resolve.resolve_message(session, found, resolution, reason, actor=ACTOR)
        data = {"id": done.id, "status": done.status.value, "reason": done.status_reason}
    emit(data, f"message {message_id} is {data['status']}")

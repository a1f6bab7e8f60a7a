"""The ``engage`` command. Each group lives in its own module; this file only assembles them.

A command's module is imported only when that command runs (or its own ``--help`` is
asked for): ``engage --help`` lists them from :data:`SHORT_HELP` without importing
SQLAlchemy, the provider SDKs or Redis, so it answers at once. A test keeps
:data:`SHORT_HELP` equal to each command's own docstring.
"""

from __future__ import annotations

import importlib
import logging

import click
from click.utils import make_default_short_help

from engage import __version__, logs
from engage.config import get_settings

#: (module, attribute) of every command or group, in the order ``engage --help`` lists them.
COMMANDS = [
    ("engage.cli.db", "db"),
    ("engage.cli.records", "clinic"),
    ("engage.cli.care", "patient"),  # care adds list/find/update to the group records defines
    ("engage.cli.records", "plan"),
    ("engage.cli.records", "appointment"),
    ("engage.cli.templates", "templates"),
    ("engage.cli.sequences", "sequences"),
    ("engage.cli.schedule", "enroll"),
    ("engage.cli.schedule", "enrollment"),
    ("engage.cli.schedule", "timeline"),
    ("engage.cli.delivery", "tick"),
    ("engage.cli.demo", "demo"),
    ("engage.cli.web", "serve"),
    ("engage.cli.ops", "status"),
    ("engage.cli.ops", "purge"),
    ("engage.cli.staff", "staff"),
    ("engage.cli.care", "consent"),
    ("engage.cli.care", "inbox"),
    ("engage.cli.care", "message"),
    ("engage.cli.tokens", "token"),
    ("engage.cli.sync", "import"),
    ("engage.cli.webhooks", "webhook"),
    ("engage.cli.practitioners", "practitioner"),
    ("engage.cli.results", "outcome"),
    ("engage.cli.results", "outcomes"),
]


#: Each command's one-line help as ``engage --help`` shows it (a command missing here is imported to ask it).
SHORT_HELP = {
    "db": "The database schema.",
    "clinic": "Clinics: name, time zone, address, senders and quiet hours.",
    "patient": "Patients.",
    "plan": "Treatment plans.",
    "appointment": "Appointments: add, move, cancel, complete, no-show.",
    "templates": "Check and preview message templates.",
    "sequences": "A clinic's versions of a sequence: export as YAML, import (and publish) from it.",
    "enroll": "Enroll a patient's plan into a follow-up sequence and plan every message.",
    "enrollment": "Pause, resume or cancel an enrollment.",
    "timeline": "Every message planned or sent for a patient, by due time (local time shown for people).",
    "tick": "Claim every due message and send it now, as the workers would.",
    "demo": "Seed a demo clinic, enroll its patients and send their messages over a simulated clock.",
    "serve": "Serve the staff web app (/, sign in at /login), the webhooks (/webhooks/...) and patient pages "
    "(/u/..., /r/...).",
    "status": "Is engage sending? Backlog, oldest due message, last beat tick, workers that answer, recent failures.",
    "purge": "Delete message contexts, provider payloads, reply texts and outbox files older than the window.",
    "staff": "Staff accounts (admin, front_desk, practitioner) that sign in to the web app.",
    "consent": "A patient's consent per channel.",
    "inbox": "Patient replies waiting for a person, oldest first; --handle ID --note TEXT marks one handled.",
    "message": "Single outbox messages.",
    "token": "API tokens: a token acts as its staff user (same clinic, same role).",
    "import": "Bring records in from another system (upserted by its ids: importing twice changes nothing).",
    "webhook": "Outgoing webhooks: signed JSON events (message.sent, reply.received, ...) posted to a clinic's URL.",
    "practitioner": "Practitioners: who treats (a staff account, or a name and id from your practice-management "
    "system).",
    "outcome": "Record a patient's score: pain (NPRS) or one PSFS activity, now or at a past time.",
    "outcomes": "Clinic-wide outcomes: responders, time to meaningful improvement, by practitioner and sequence.",
}


class _LazyGroup(click.Group):
    """A group whose commands are imported from :data:`COMMANDS` when first needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for _module, name in COMMANDS]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            module = next((m for m, name in COMMANDS if name == cmd_name), None)
            if module is None:
                return None
            self.add_command(getattr(importlib.import_module(module), cmd_name))
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            text = SHORT_HELP.get(name)
            if text is None:
                command = self.get_command(ctx, name)
                text = command.get_short_help_str(limit) if command is not None else ""
            rows.append((name, make_default_short_help(text, limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="engage")
def main() -> None:
    """engage: patient engagement automation for clinics."""
    try:
        log_format = get_settings().log_format
    except ValueError:  # pydantic's ValidationError: the command that reads the settings reports it
        log_format = "text"
    logs.configure(logging.WARNING, log_format)

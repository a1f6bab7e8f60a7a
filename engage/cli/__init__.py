"""The ``engage`` command. Each group lives in its own module; this file only assembles them."""

from __future__ import annotations

import importlib
import logging

import click

from engage import __version__, logs
from engage.config import get_settings

#: (module, attribute) of every command or group, in the order ``engage --help`` lists them.
COMMANDS = [
    ("engage.cli.db", "db"),
    ("engage.cli.records", "clinic"),
    ("engage.cli.records", "patient"),
    ("engage.cli.records", "plan"),
    ("engage.cli.records", "appointment"),
    ("engage.cli.templates", "templates"),
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
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="engage")
def main() -> None:
    """engage: patient engagement automation for clinics."""
    try:
        log_format = get_settings().log_format
    except ValueError:  # pydantic's ValidationError: the command that reads the settings reports it
        log_format = "text"
    logs.configure(logging.WARNING, log_format)


for _module, _name in COMMANDS:
    main.add_command(getattr(importlib.import_module(_module), _name))

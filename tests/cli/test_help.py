"""``engage --help``: every command listed with its own one-line help, without importing the heavy libraries."""

from __future__ import annotations

import importlib
import sys

import click

from engage.cli import COMMANDS, SHORT_HELP
from tests.cli import engage_process

HEAVY = ("sqlalchemy", "twilio", "sendgrid", "redis", "celery", "fastapi", "jinja2")


def test_help_lists_every_command_without_importing_the_database_the_sdks_or_redis() -> None:
    probe = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from engage.cli import main\n"
        "result = CliRunner().invoke(main, ['--help'])\n"
        "print(result.output)\n"
        f"print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = engage_python(probe)
    assert "LOADED []" in result, result
    for _module, name in COMMANDS:
        assert f"  {name} " in result


def test_short_help_matches_each_commands_own_docstring() -> None:
    for module, name in COMMANDS:
        command = getattr(importlib.import_module(module), name)
        assert isinstance(command, click.Command)
        if name in SHORT_HELP:
            assert SHORT_HELP[name] == command.get_short_help_str(limit=1000), name


def test_a_command_still_runs_and_shows_its_own_help() -> None:
    """The entry point as a process: ``python -m engage`` (the other CLI tests run it in-process)."""
    result = engage_process("tick", "--help")
    assert result.code == 0 and "Usage: python -m engage tick" in result.stdout
    assert engage_process("no-such-command").code == 2


def engage_python(code: str) -> str:
    import subprocess

    from tests.cli import ROOT

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout

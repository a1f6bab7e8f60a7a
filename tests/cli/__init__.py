"""Run the ``engage`` command as a person or a script would: in this process, or as a real process.

:func:`engage` invokes the Click command in the test's process (Click's ``CliRunner``), which costs
milliseconds where ``python -m engage`` costs about two seconds of imports. Each call starts as a new
process would: the settings are read afresh from the environment (``env`` applies to the call only),
and no database engine, provider or rate limiter is carried over from the test or an earlier call.
The command's own changes to process-wide state are undone or refused after the call: the logging
set-up it installs is replaced by the test's again, and a command that leaves ``os.environ``, the
working folder or a signal handler changed fails the test rather than leaking into the next one.

:func:`engage_process` runs the real entry point, ``python -m engage``, for the few smoke tests that
must see it start as a process (help, tick, serve, demo).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]

#: What ``engage`` prints its usage as when run the documented way.
PROG_NAME = "python -m engage"

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: Loggers whose level a command sets for its process (``engage.cli`` sets the root; ``serve`` these two).
_LOGGERS = ("", "engage", "uvicorn")


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        assert self.code == 0, f"engage failed ({self.code}): {self.stderr}"
        return json.loads(self.stdout)


def engage(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    """``engage ARGS`` in this process with the test's environment plus ``env``, in ``cwd`` (default: the repo).

    ``input`` is the command's standard input. An exception the command does not handle ends it with
    code 1 and its traceback on stderr, as Python would print it.
    """
    from engage.cli import main

    environ = dict(os.environ)
    folder = os.getcwd()
    handlers = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    loggers = {name: logging.getLogger(name) for name in _LOGGERS}
    levels = {name: logger.level for name, logger in loggers.items()}
    root_handlers = list(logging.getLogger().handlers)

    _start_like_a_new_process()
    os.chdir(cwd or ROOT)
    try:
        result = CliRunner().invoke(main, list(args), input=input, env=env, prog_name=PROG_NAME)
    finally:
        os.chdir(folder)
        root = logging.getLogger()
        for handler in list(root.handlers):
            if handler not in root_handlers:
                root.removeHandler(handler)
                handler.close()
        for handler in root_handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        for name, level in levels.items():
            loggers[name].setLevel(level)
        _start_like_a_new_process()  # and the test reads its own environment again

    assert dict(os.environ) == environ, f"engage {' '.join(args)} left the environment changed"
    assert {sig: signal.getsignal(sig) for sig in _SIGNALS} == handlers, f"engage {' '.join(args)} left signal handlers"
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return Result(result.exit_code, result.stdout, stderr)


def _start_like_a_new_process() -> None:
    """Forget what a process builds from its environment once: settings, engines, providers, rate limiters."""
    from engage.config import get_settings
    from engage.db import reset_engines
    from engage.delivery.providers import reset_providers
    from engage.delivery.ratelimit import reset_limiters

    get_settings.cache_clear()
    reset_engines()
    reset_providers()
    reset_limiters()


def engage_process(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 120,
) -> Result:
    """``python -m engage ARGS`` as a real process, with the test's environment plus ``env``."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "engage", *args],
        input=input,
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=full_env,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)

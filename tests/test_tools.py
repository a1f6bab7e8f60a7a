"""The linters run in the suite, so a finding fails CI instead of waiting for someone to remember them.

ruff and mypy are pinned in pyproject.toml's ``test`` extra: a new release may format or type-check
differently, and that should arrive as a change of the pin, not as a red build on an unrelated commit.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which(command[0])
    assert tool, f"{command[0]} is missing: python -m pip install -e '.[test]' installs it"
    return subprocess.run([tool, *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_check_finds_nothing() -> None:
    result = _run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_ruff_format_changes_nothing() -> None:
    result = _run("ruff", "format", "--check", "--no-cache", ".")
    assert result.returncode == 0, "run `ruff format .`:\n" + result.stdout[-6000:] + result.stderr[-2000:]


@pytest.mark.xdist_group("mypy")
def test_mypy_finds_nothing_in_the_library() -> None:
    result = _run(sys.executable, "-m", "mypy", "engage", "workers", "celeryconfig.py")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]

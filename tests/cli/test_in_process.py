"""The in-process ``engage`` helper keeps calls apart as separate processes would be."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from tests.cli import engage


def test_a_call_leaves_the_tests_logging_as_it_was(caplog: pytest.LogCaptureFixture) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    assert engage("no-such-command").code == 2  # the group's set-up replaced the root's handlers meanwhile
    assert root.handlers == handlers and root.level == level
    logging.getLogger("engage.test").warning("still captured")
    assert "still captured" in caplog.text


def test_each_call_reads_its_own_environment_and_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    relative = {"ENGAGE_DATABASE_URL": "sqlite:///./engage.db"}  # one URL, a different file in each folder
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
        assert engage("db", "upgrade", cwd=folder, env=relative).code == 0
    made = engage(
        "clinic", "create", "--name", "A", "--timezone", "Europe/London", "--address", "1 St",
        "--email", "a@example.com", "--json", cwd=first, env=relative,
    )  # fmt: skip
    assert made.code == 0, made.stderr
    clinic_id = str(made.json["id"])
    assert engage("clinic", "show", clinic_id, "--json", cwd=first, env=relative).json["name"] == "A"
    assert "no clinic with id" in engage("clinic", "show", clinic_id, cwd=second, env=relative).stderr
    assert "ENGAGE_DATABASE_URL" not in os.environ  # the call's env was for the call only


def test_an_unhandled_error_ends_with_code_1_and_its_traceback_on_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGAGE_DATABASE_URL", "sqlite:////nonexistent-folder/engage.db")
    result = engage("clinic", "show", "1")
    assert result.code == 1 and "Traceback (most recent call last)" in result.stderr

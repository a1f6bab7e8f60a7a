"""The layout's one rule: imports point down (cli and web -> domains -> content -> records -> cross-cutting).

The contract lives in pyproject.toml ([tool.importlinter]); this runs it so a change that
points an import upward fails the suite, and CI with it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_imports_point_down_the_layers() -> None:
    lint = shutil.which("lint-imports")
    assert lint, "lint-imports is missing: python -m pip install -e '.[test]' installs import-linter"
    result = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout

"""The layout's one rule: imports point down (cli and web -> domains -> content -> records -> cross-cutting).

The contract lives in pyproject.toml ([tool.importlinter]); this runs it so a change that
points an import upward fails the suite, and CI with it.
"""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_imports_point_down_the_layers() -> None:
    lint = shutil.which("lint-imports")
    assert lint, "lint-imports is missing: python -m pip install -e '.[test]' installs import-linter"
    result = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout


def _layered_modules() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    [layers] = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    return {name.strip() for layer in layers for name in layer.split("|")}


def test_the_layers_contract_names_every_package_and_module() -> None:
    """A package missing from the contract may import anything (``engage.integrations`` once could import
    ``engage.web``): every top-level package and module of ``engage`` and ``workers`` has its layer."""
    import engage

    ours = {f"engage.{m.name}" for m in pkgutil.iter_modules(engage.__path__) if m.name != "__main__"}
    layered = _layered_modules()
    assert ours - layered == set(), "add these to [tool.importlinter] layers in pyproject.toml"
    assert "workers" in layered
    assert layered - ours - {"workers"} == set(), "the contract names modules that do not exist"

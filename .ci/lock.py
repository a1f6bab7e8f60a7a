"""Write ``constraints.txt``: every package the image installs, pinned to one version.

    python .ci/lock.py          # after changing dependencies in pyproject.toml

pip resolves ``.`` and ``flower`` (the image also runs Flower) against the
package index without installing anything (``--dry-run --report``); each
package is pinned to the version installed in this environment when there is
one (so the image runs what the tests ran), else to the resolved one. The
Dockerfile installs exactly this list, so a build next month gets the same versions.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # .ci/ sits at the top of the repository
EXTRA = ["flower"]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--dry-run",
                "--ignore-installed",
                "--report",
                str(report),
                str(ROOT),
                *EXTRA,
            ],
            check=True,
        )
        resolved = json.loads(report.read_text())["install"]
    pins = {}
    for item in resolved:
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        if name == "engage":
            continue
        with contextlib.suppress(metadata.PackageNotFoundError):  # not installed here: the resolved version
            version = metadata.version(name)
        pins[name.lower().replace("_", "-")] = version
    lines = [
        "# Every package the engage image installs, pinned (pip constraints format).",
        "# Made by: python .ci/lock.py  (re-run after changing dependencies in pyproject.toml)",
        f"# Python {sys.version_info.major}.{sys.version_info.minor}, Linux x86_64.",
        *(f"{name}=={version}" for name, version in sorted(pins.items())),
    ]
    (ROOT / "constraints.txt").write_text("\n".join(lines) + "\n")
    print(f"constraints.txt: {len(pins)} packages")


if __name__ == "__main__":
    main()

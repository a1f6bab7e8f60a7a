"""One spelling in what people read: the clinics are in the US, so "enroll" and "enrollment", never "enrol"."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: What staff, patients and integrators read: the README, every template, the web app (pages and API docs), CLI help.
READ_BY_PEOPLE = ["README.md", "templates", "engage/web", "engage/cli"]
BRITISH = re.compile(r"\b[Ee]nrol(?:s|ment|ments)?\b")


def test_user_facing_text_says_enroll_and_enrollment() -> None:
    files = [ROOT / name for name in READ_BY_PEOPLE if (ROOT / name).is_file()]
    files += [p for name in READ_BY_PEOPLE if (ROOT / name).is_dir() for p in (ROOT / name).rglob("*") if p.is_file()]
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        if path.suffix in {".md", ".py", ".html", ".txt", ".yaml", ".yml", ".json"}
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if BRITISH.search(line)
    ]
    assert len(files) > 50 and found == []

"""What the delivery benchmark measures besides counts: CPU time of process trees, percentiles, the machine."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import text

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far (0 when it is gone), from /proc/PID/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14 and 15 of stat)


def tree_cpu_seconds(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def postgres_backends(engine: object, database: str) -> list[int]:
    """Server process ids of the connections to ``database`` (the workers' and beat's pools), local server only."""
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return list(
            conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()"), {"d": database}
            ).scalars()
        )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def machine() -> str:
    """One line for the README table: date, CPU, cores, load."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {model}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {load}"
    )

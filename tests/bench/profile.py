"""Sample worker processes with py-spy during a benchmark run and summarise where their CPU went.

``py-spy record --gil --format raw`` (only samples of a thread holding the GIL, so
waiting on the network or the database does not count) writes one line per distinct
stack: ``frame;frame;…;frame COUNT``, outermost first, each frame ``function (file)``.
:func:`summarise` turns the files of all sampled processes into two rankings: by
package (the innermost frame's top-level package: where the CPU is spent) and by
function, inclusive (every sample whose stack passes through it: what a step costs
with everything it calls). py-spy is a benchmark tool only (``pip install py-spy``);
without it the run goes on unprofiled.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections import Counter
from contextlib import suppress
from pathlib import Path


class Profiler:
    """py-spy on each of ``pids`` until :meth:`stop`; then :meth:`summary` of what it saw."""

    def __init__(self, pids: list[int], workdir: Path, label: str, rate: int = 200) -> None:
        self.files: list[Path] = []
        self.spies: list[subprocess.Popen[bytes]] = []
        exe = shutil.which("py-spy")
        if exe is None:
            print("  (py-spy not installed: no profile)")
            return
        for pid in pids:
            out = workdir / f"profile-{label}-{pid}.txt"
            self.files.append(out)
            self.spies.append(
                subprocess.Popen(
                    [exe, "record", "--pid", str(pid), "--gil", "--nolineno", "--format", "raw", "-r", str(rate)]
                    + ["-o", str(out)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    def stop(self) -> None:
        for spy in self.spies:
            with suppress(ProcessLookupError):
                spy.send_signal(signal.SIGINT)
        for spy in self.spies:
            try:
                spy.wait(timeout=20)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()

    def summary(self, top: int = 15) -> str:
        return summarise([f for f in self.files if f.exists()], top)


def _package(frame: str) -> str:
    """``function (path/to/module.py)`` -> the module's top-level package, as py-spy shortens it."""
    path = frame.rsplit("(", 1)[-1].rstrip(")")
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif "/lib/python" in path:
        return "stdlib"
    first = path.split("/", 1)[0]
    return first.removesuffix(".py") or "?"


def summarise(files: list[Path], top: int = 15) -> str:
    """The top packages (self time) and functions (inclusive time) across ``files``, as shares of all samples."""
    inclusive: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    innermost: Counter[str] = Counter()
    total = 0
    for file in files:
        for line in file.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = stack.split(";")
            total += count
            for frame in set(frames):
                inclusive[frame] += count
            innermost[frames[-1]] += count
            by_package[_package(frames[-1])] += count
    if not total:
        return "  (no samples)"
    out = [f"  {total} GIL-holding samples in {len(files)} processes"]
    packages = ", ".join(f"{p} {100 * c / total:.1f} %" for p, c in by_package.most_common(8))
    out.append(f"  by package (self): {packages}")
    out.append(f"  top {top} functions, inclusive (their callees counted in):")
    shown = 0
    for frame, count in inclusive.most_common():
        if _boring(frame):
            continue
        out.append(f"    {100 * count / total:5.1f} %  {frame}")
        shown += 1
        if shown >= top:
            break
    out.append(f"  top {top} functions, self:")
    for frame, count in innermost.most_common(top):
        out.append(f"    {100 * count / total:5.1f} %  {frame}")
    return "\n".join(out)


def _boring(frame: str) -> bool:
    """Frames every sample passes through (the thread's and Celery's plumbing), not steps of a send."""
    name = frame.split(" (", 1)[0]
    return any(
        part in frame
        for part in ("threading.py", "concurrent/futures/thread.py", "billiard/", "celery/", "kombu/", "click/")
    ) or name in {"<module>", "run", "_run_module_as_main", "_run_code", "main"}

"""Browser tests' helpers: headless Chromium (Debian's) driven by Playwright, axe-core, a real ``engage serve``.

The recipe (versions, pitfalls) is in ``.ci/browser-setup.sh``: Chromium comes from apt (never
``playwright install``), axe-core from npm into ``~/.cache/axe-core/axe.min.js`` (or ``AXE_JS``).

- :func:`launch_browser`: a headless Chromium, closed on exit.
- :func:`axe_violations` / :func:`assert_accessible`: axe-core's serious and critical findings on a page.
- :func:`serve`: ``python -m engage serve`` on a free port against a given database, until the block ends.
- :class:`Screenshots`: one PNG per page into a folder the run prints.
- :func:`settle`: the page loaded and no htmx request in flight.
- :func:`look_at_widths`: a page at a phone's width and a desk's (resized, not reloaded): axe, fit, screenshot.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
AXE_JS = Path(os.environ.get("AXE_JS", Path.home() / ".cache/axe-core/axe.min.js"))
LAUNCH_ARGS = [
    "--no-sandbox",  # CI runs as root: Chromium refuses to start sandboxed
    "--disable-dev-shm-usage",  # safe when /dev/shm is small (docker default: 64 MB)
    "--disable-gpu",
]
BLOCKING = ("serious", "critical")
WIDTHS = (360, 1280)  # a phone's width and a desk's
SCREENSHOTS = Path(os.environ.get("ENGAGE_SCREENSHOT_DIR", ROOT / "screenshots"))


@contextmanager
def launch_browser(timeout_ms: int = 15_000) -> Iterator[Browser]:
    """Yield a headless Chromium Browser; always closed on exit."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True, timeout=timeout_ms)
        try:
            yield browser
        finally:
            browser.close()


def axe_violations(page: Page, impacts: tuple[str, ...] = BLOCKING) -> list[dict]:  # type: ignore[type-arg]
    """Inject axe-core (once per document) and return violations with the given impacts."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        # evaluate() is not subject to the page's CSP (add_script_tag is: it fails under script-src 'self')
        page.evaluate(AXE_JS.read_text() + "\n;void 0")
    results = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [v for v in results["violations"] if v.get("impact") in impacts]


def format_violations(violations: list[dict]) -> str:  # type: ignore[type-arg]
    """One line per violation + offending selectors, for assert messages."""
    return "\n".join(
        f"[{v['impact']}] {v['id']}: {v['help']} -> {[n['target'] for n in v['nodes']]}" for v in violations
    )


def assert_accessible(page: Page) -> None:
    """No serious or critical axe-core violation on the page as it is now."""
    violations = axe_violations(page)
    assert not violations, f"{page.url}:\n{format_violations(violations)}"


class Screenshots:
    """Saves one full-page PNG per name under ``folder`` (``ENGAGE_SCREENSHOT_DIR``, default ``./screenshots``)."""

    def __init__(self, folder: Path = SCREENSHOTS) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def take(self, page: Page, name: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


def overflow(page: Page) -> int:
    """How many pixels the page is wider than the screen (0 when only regions of it scroll sideways)."""
    return int(page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth"))


def settle(page: Page) -> None:
    """Wait until the document has loaded and no htmx request is in flight: what a look at the page needs.

    Not ``networkidle``: that waits for 500 ms without a request, which every page paid (about 12 s of the
    every-page walk); the pages fetch nothing on their own after loading, only htmx requests a test set off.
    """
    page.wait_for_load_state("load")
    page.wait_for_function("() => !document.querySelector('.htmx-request')")


def look_at_widths(page: Page, shots: Screenshots, name: str, fits: bool = True) -> None:
    """The page as it is now at each of :data:`WIDTHS`: no serious or critical axe violation, nothing wider than
    the screen (unless ``fits`` is false), a full-page screenshot each; then back to the width it had.

    The document is resized, not loaded again: a test walks its flow once (at 360 px, the harder width) and
    still sees every page laid out at both widths.
    """
    settle(page)
    before = page.viewport_size or {"width": WIDTHS[0], "height": 800}
    widths = sorted(WIDTHS, key=lambda width: width != before["width"])  # the current width first: no resize
    for width in widths:
        if width != (page.viewport_size or before)["width"]:
            page.set_viewport_size({"width": width, "height": before["height"]})
        assert_accessible(page)
        if fits:
            assert overflow(page) <= 1, f"{name} at {width}px is {overflow(page)}px wider than the screen"
        shots.take(page, f"{name} {width}px")
    if (page.viewport_size or before)["width"] != before["width"]:
        page.set_viewport_size(before)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(
    database_url: str, env: dict[str, str] | None = None, timeout: float = 60, host: str = "127.0.0.1"
) -> Iterator[str]:
    """Run ``python -m engage serve`` against ``database_url``; yield its base URL; stop it afterwards.

    ``host``: the name in the base URL (and ``ENGAGE_PUBLIC_URL``); ``localhost`` for passkeys, since
    WebAuthn refuses an IP address as the relying party's id. The server listens on 127.0.0.1 either way.
    """
    port = free_port()
    base = f"http://{host}:{port}"
    full_env = {
        **os.environ,
        "ENGAGE_DATABASE_URL": database_url,
        "ENGAGE_PUBLIC_URL": base,
        "ENGAGE_SECRET_KEY": os.environ.get("ENGAGE_SECRET_KEY", "browser-test-secret-0123456789"),
        "PYTHONPATH": str(ROOT),
        **(env or {}),
    }
    # Its output goes to a file: a pipe nobody reads fills up and stops the server mid-test.
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engage", "serve", "--port", str(port)],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2).close()
                    break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        proc.kill()
                        proc.wait()
                        log.seek(0)
                        output = log.read().decode(errors="replace")
                        raise RuntimeError(f"engage serve did not start on {base}:\n{output[-3000:]}") from None
                    time.sleep(0.2)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

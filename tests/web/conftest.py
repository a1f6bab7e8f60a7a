"""Shared by the browser tests under tests/web: one headless Chromium for a run of browser tests in a row.

Launching Chromium costs a second or two, so the browser tests that run one after the other in a process
share one (each test opens its own context: no cookie, storage or page is shared). Under xdist the browser
tests run together on one worker (``--dist loadgroup``, tests/conftest.py), so that worker launches
Chromium once. The browser is closed as soon as the next test is not a browser test (and at the end), so
no Playwright event loop lingers while other tests run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest

_shared = ExitStack()
_browser: Any = None


def _close_browser() -> None:
    global _browser
    _browser = None
    _shared.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's Chromium through Playwright (``tests.browser.launch_browser``), launched on first use."""
    global _browser
    from tests.browser import launch_browser  # Playwright only where a test asks for a browser

    if _browser is not None and not _browser.is_connected():  # a test crashed it: the next one gets a new one
        _close_browser()
    if _browser is None:
        _browser = _shared.enter_context(launch_browser())
    yield _browser


@pytest.hookimpl(trylast=True)  # after the test's own fixtures are torn down
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Close the shared browser after the last of a run of browser tests."""
    if _browser is not None and (nextitem is None or "browser" not in getattr(nextitem, "fixturenames", ())):
        _close_browser()


def pytest_sessionfinish() -> None:
    _close_browser()

"""Shared by the browser tests under tests/web: one headless Chromium per test module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium through Playwright (``tests.browser.launch_browser``), for the module's tests."""
    from tests.browser import launch_browser  # Playwright only where a test asks for a browser

    with launch_browser() as b:
        yield b

"""The Content-Security-Policy in a real browser: /api/docs works under it, and no engage page can be framed."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from tests.browser import serve

pytestmark = pytest.mark.browser


def test_api_docs_render_under_the_csp_with_no_violation_and_refuse_to_be_framed(
    pg_url: str, browser: Browser, tmp_path: Any
) -> None:
    with serve(pg_url) as base:
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        violations: list[str] = []
        page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)

        answer = page.goto(base + "/api/docs")

        assert answer is not None and "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        expect(page.get_by_role("heading", name="engage API")).to_be_visible(timeout=20_000)
        expect(page.get_by_text("/v1/patients").first).to_be_visible()
        assert violations == []

        # A page of another site that frames engage's pages: each frame stays empty, blocked by the browser.
        blocked: list[str] = []
        page.on("console", lambda m: blocked.append(m.text) if "frame-ancestors" in m.text else None)
        framer = tmp_path / "framer.html"
        paths = ["/api/docs", "/login", "/livez", "/api/openapi.json"]
        framer.write_text("".join(f'<iframe src="{base}{p}"></iframe>' for p in paths))
        page.goto(framer.as_uri())
        page.wait_for_timeout(1500)
        for frame in page.frames[1:]:
            assert frame.url in ("about:blank", "chrome-error://chromewebdata/") or frame.content().count("<") <= 6, (
                frame.url
            )
        assert len(blocked) == len(paths)

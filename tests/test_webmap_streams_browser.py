"""The map page's live updates in a real browser, served exactly as ``geo-mz serve`` serves it.

uvicorn with the flask app behind a2wsgi and ``/events`` on the event loop (``webmap.asgi``);
Debian's headless Chromium driven by Playwright. An incident posted by a script appears on an
open page without a reload, and a page whose stream was ended (``sse_max_s``) reconnects by
itself and gets the events it missed meanwhile (the browser's own ``Last-Event-ID``).

Skipped when ``/usr/bin/chromium`` or ``playwright`` is missing, except on CI, where it fails.
"""

from __future__ import annotations

import time

import pytest

pytest.importorskip("flask")
pytest.importorskip("uvicorn")

from tests.browser import launch, require_browser

require_browser()
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from webmap import create_app  # noqa: E402
from webmap.asgi import running  # noqa: E402
from webmap.testing import fresh_settings, post_incident, sample_base  # noqa: E402

pytestmark = pytest.mark.slow


def test_open_page_gets_live_and_missed_events_from_the_async_stream(tmp_path_factory):
    base = sample_base(tmp_path_factory.getbasetemp() / "webmap_base")
    settings = fresh_settings(
        base, tmp_path_factory.mktemp("streams_browser"), sse_keepalive_s=1.0, sse_max_s=3.0
    )
    app = create_app(settings)
    with running(app) as (root, asgi), sync_playwright() as p:
        browser = launch(p)
        try:
            context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 800})
            context.set_default_timeout(20_000)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(root + "/")
            page.wait_for_function("() => window.geoMzMap && window.geoMzMap.state.config")
            expect(page.locator("#live")).to_have_class("on")
            page.evaluate("() => { window.notReloaded = true; }")
            deadline = time.monotonic() + 10  # (between two of its streams it may have none)
            while asgi.hub.open_streams != 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert asgi.hub.open_streams == 1  # one page, one stream

            live = f"异步推送 {time.time_ns()}"
            post_incident(root, live)
            expect(page.locator("#incident-list li", has_text=live)).to_have_count(1)

            # cut the page off: block /events so it cannot reconnect, let its stream end
            # (sse_max_s), post while it is away, then let it reconnect by itself
            page.route("**/events*", lambda route: route.abort())
            deadline = time.monotonic() + 20
            while asgi.hub.open_streams and time.monotonic() < deadline:
                time.sleep(0.1)
            assert asgi.hub.open_streams == 0
            missed = [f"离线期间 {i} {time.time_ns()}" for i in range(2)]
            for text in missed:
                post_incident(root, text)
            page.unroute("**/events*")
            for text in missed:
                expect(page.locator("#incident-list li", has_text=text)).to_have_count(1)
            assert page.evaluate("() => window.notReloaded === true")
            assert errors == []
            context.close()
        finally:
            browser.close()

"""The printable brief of the web map (issue 16, item 6), in Debian's headless Chromium.

One click on "打印简报 / Print brief" fills a header (title, Beijing time, the live situation and
the planning figures of ``GET /map/summary``) and calls ``window.print()``; print.css hides the
controls. Checked with Playwright: print media emulated (screenshot saved), ``page.pdf()``
written, the header holds the server's own figures, the controls are hidden, and the map shows
the extent the user was looking at. Screenshots and the PDF go to ``$GEO_MZ_SCREENSHOTS``
(default ``/tmp/geo_mz_screenshots``) as ``webmap_brief*``.
"""

from __future__ import annotations

import json
import os
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytest.importorskip("flask")
pytest.importorskip("waitress")

from tests.browser import launch, require_browser

SHOTS = Path(os.environ.get("GEO_MZ_SCREENSHOTS", "/tmp/geo_mz_screenshots"))
require_browser()
from playwright.sync_api import sync_playwright  # noqa: E402

from webmap import create_app  # noqa: E402
from webmap.testing import (  # noqa: E402
    fresh_settings,
    post_incident,
    running_server,
    sample_base,
)

pytestmark = pytest.mark.slow

VIEW = (22.62, 113.06, 14)  # lat, lon, zoom inside Pengjiang
CENTRE_JS = (
    "() => { const c = window.geoMzMap.map.getBounds().getCenter();"
    " return {lat: c.lat, lng: c.lng}; }"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    base = sample_base(tmp_path_factory.getbasetemp() / "webmap_base")
    settings = fresh_settings(base, tmp_path_factory.mktemp("brief_ws"))
    with running_server(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def page(server):
    with sync_playwright() as p:
        b = launch(p)
        # A browser far from Beijing: the brief must still print Beijing time.
        context = b.new_context(
            locale="zh-CN",
            timezone_id="America/New_York",
            viewport={"width": 1280, "height": 800},
        )
        context.set_default_timeout(15_000)
        pg = context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        # The print dialog cannot be driven headless: count the calls instead.
        pg.add_init_script(
            "window.print = function () { window.__printed = (window.__printed || 0) + 1; };"
        )
        pg.goto(server + "/")
        pg.wait_for_function("() => window.geoMzMap && window.geoMzMap.state.config")
        pg.js_errors = errors  # type: ignore[attr-defined]
        yield pg
        context.close()
        b.close()


def _summary(server: str) -> dict:
    with urllib.request.urlopen(server + "/map/summary?lang=zh", timeout=10) as r:
        return json.load(r)


def _visible(page, selector: str) -> bool:
    return page.locator(selector).first.is_visible() if page.locator(selector).count() else False


def test_one_click_brief_then_print_layout(page, server):
    lat, lon, zoom = VIEW
    page.evaluate(
        f"() => {{ window.geoMzMap.map.setView([{lat}, {lon}], {zoom}, {{animate: false}}); }}"
    )
    before = page.evaluate(CENTRE_JS)
    # on screen: the button is there and the brief is not
    assert page.locator("#print-brief-btn").is_visible()
    assert not _visible(page, "#print-brief")

    post_incident(server, "简报测试：仓库起火", lonlat=(VIEW[1], VIEW[0]), timeout_s=10)
    page.locator("#print-brief-btn").click()
    page.wait_for_function("() => window.__printed === 1")
    text = page.locator("#print-brief").inner_text()
    summary = _summary(server)
    assert "北京时间" in text and "(UTC+8)" in text
    # the time printed is Beijing time now, whatever the browser's zone (New York here)
    now = datetime.now(UTC) + timedelta(hours=8)
    stamps = {(now + timedelta(minutes=d)).strftime("%Y-%m-%d %H:%M") for d in (-1, 0, 1)}
    assert any(s in text for s in stamps), text[:200]
    assert "现场态势" in text and "规划指标" in text
    assert f"道路中断\n{summary['live']['closures']}" in text or "道路中断" in text
    for k in summary["kpis"][:3]:  # the server's own planning figures
        assert k["label"] in text
    assert "图幅范围" in text
    assert summary["live"]["incidents_open"] >= 1
    (line,) = [x for x in text.splitlines() if "简报测试：仓库起火" in x]  # the new incident
    reported = datetime.fromisoformat(summary["incidents"][0]["reported_at"].replace("Z", "+00:00"))
    assert (reported + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M") in line  # Beijing time

    page.emulate_media(media="print")
    page.wait_for_timeout(400)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "webmap_brief_print.png"), full_page=True)
    assert _visible(page, "#print-brief") and _visible(page, "#map")
    for control in (
        "#panel",
        ".leaflet-control-zoom",
        ".leaflet-control-layers",
        "#print-brief-btn",
    ):
        assert not _visible(page, control), control
    box = page.locator("#map").bounding_box()
    assert box and box["width"] > 600 and box["height"] > 300
    brief_box = page.locator("#print-brief").bounding_box()
    assert brief_box and brief_box["y"] + brief_box["height"] <= box["y"] + 1  # header above map
    # the printed map shows the extent that was on screen (same centre, within a few metres)
    after = page.evaluate(CENTRE_JS)
    assert abs(after["lat"] - before["lat"]) < 2e-3 and abs(after["lng"] - before["lng"]) < 2e-3

    pdf = page.pdf(format="A4", landscape=True, print_background=True)
    (SHOTS / "webmap_brief.pdf").write_bytes(pdf)
    assert pdf.startswith(b"%PDF") and len(pdf) > 20_000
    assert b"/Count 1" in pdf  # one page: the brief and its map

    page.emulate_media(media="screen")
    page.wait_for_timeout(200)
    assert not _visible(page, "#print-brief")
    assert page.locator("#print-brief-btn").is_visible()
    assert not page.js_errors, page.js_errors  # type: ignore[attr-defined]

"""Web map in a real browser: Debian's headless Chromium driven by Playwright (no download).

A waitress server runs in a thread (``webmap.testing.running_server``). The tests check that the
map page loads with its layers, that a layer toggles, that a reporter logs in and posts an
incident through the page's forms, that a second, already open browser context sees it appear
without reloading (Server-Sent Events), and that a browser whose event stream was cut off gets
the missed events replayed when it reconnects (``Last-Event-ID``).

Skipped when ``/usr/bin/chromium`` or the ``playwright`` package is missing, except on CI
(env ``CI`` set), where that is a failure.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

pytest.importorskip("flask")
pytest.importorskip("waitress")

from tests.browser import TIMEOUT_MS, chromium, context_page, require_browser

require_browser()
from playwright.sync_api import Page, expect  # noqa: E402

from webmap import create_app  # noqa: E402
from webmap.testing import (  # noqa: E402
    INSIDE,
    PASSWORD,
    fresh_settings,
    post_incident,
    running_server,
    sample_base,
)

pytestmark = pytest.mark.slow

# INSIDE (webmap.testing) lies in Pengjiang (the jurisdiction) and clear of the map's controls.


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    base = sample_base(tmp_path_factory.getbasetemp() / "webmap_base")
    # Streams end every few seconds so the reconnect test sees the browser's own reconnection.
    settings = fresh_settings(
        base, tmp_path_factory.mktemp("browser_ws"), sse_keepalive_s=1.0, sse_max_s=4.0
    )
    app = create_app(settings)
    with running_server(app, threads=24) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    yield from chromium()


@pytest.fixture
def new_page(browser, server):
    """Open the map in a fresh browser context (own cookies); contexts closed after the test."""
    contexts = []

    def open_page() -> Page:
        context, page = context_page(browser)
        contexts.append(context)
        page.goto(server + "/")
        page.wait_for_function("() => window.geoMzMap && window.geoMzMap.state.config")
        expect(page.locator("#live")).to_have_class("on")
        return page

    yield open_page
    for context in contexts:
        context.close()


def config(server: str) -> dict:
    with urllib.request.urlopen(server + "/map/config?lang=zh", timeout=10) as r:
        return json.load(r)


def group_size(page: Page, layer: str) -> int:
    return page.evaluate(f"() => window.geoMzMap.state.groups[{layer!r}].getLayers().length")


def shown(page: Page, layer: str) -> bool:
    return page.evaluate(
        f"() => window.geoMzMap.map.hasLayer(window.geoMzMap.state.groups[{layer!r}])"
    )


def test_map_loads_with_its_layers(new_page, server):
    page = new_page()
    cfg = config(server)
    expect(page).to_have_title("灾害应急指挥地图")
    expect(page.locator("#title")).to_contain_text(cfg["name"])
    # Leaflet's panes, a canvas renderer for the vector layers, scale bar and legend
    for pane in ("tile", "overlay", "marker", "popup"):
        expect(page.locator(f".leaflet-{pane}-pane")).to_have_count(1)
    expect(page.locator(".leaflet-overlay-pane canvas")).to_have_count(1)
    expect(page.locator(".leaflet-control-scale")).to_be_visible()
    # the layer switcher lists every layer by its Chinese catalog title
    labels = page.locator(".leaflet-control-layers-overlays label").all_inner_texts()
    labels = [s.strip() for s in labels]
    assert "救灾物资送达核查" in labels  # the relief-audit overlay of analysis.js
    assert "15分钟养老服务圈" in labels and "养老服务缺口" in labels  # coverage overlays
    analysis = {"救灾物资送达核查", "15分钟养老服务圈", "养老服务缺口"}
    labels = [s for s in labels if s not in analysis]
    assert len(labels) == len(cfg["layers"])
    for info, label in zip(cfg["layers"], labels, strict=True):
        assert label.startswith(info["title"]["zh"]), (label, info["title"])
    # a feature group per layer; the visible ones are on the map and filled
    for info in cfg["layers"]:
        assert shown(page, info["id"]) is info["visible"], info["id"]
    for layer in ("admin_units", "shelters", "roads"):
        page.wait_for_function(
            f"() => window.geoMzMap.state.groups[{layer!r}].getLayers().length > 0"
        )
    shelters = next(i for i in cfg["layers"] if i["id"] == "shelters")
    assert group_size(page, "shelters") == shelters["count"]
    expect(page.locator(".legend")).to_contain_text("图例")
    expect(page.locator("#kpi-list dt").first).to_be_visible()
    assert page.js_errors == []  # type: ignore[attr-defined]


def test_a_layer_toggles_off_and_on(new_page, server):
    page = new_page()
    page.wait_for_function("() => window.geoMzMap.state.groups.shelters.getLayers().length > 0")
    title = next(i for i in config(server)["layers"] if i["id"] == "shelters")["title"]["zh"]
    box = page.locator(".leaflet-control-layers-overlays label", has_text=title).locator("input")
    legend = page.locator(".legend")
    expect(box).to_be_checked()
    expect(legend).to_contain_text(title)
    box.uncheck()
    assert not shown(page, "shelters")
    expect(legend).not_to_contain_text(title)
    box.check()
    assert shown(page, "shelters")
    expect(legend).to_contain_text(title)
    assert group_size(page, "shelters") > 0
    assert page.js_errors == []  # type: ignore[attr-defined]


def test_a_reporter_posts_an_incident_and_another_browser_sees_it_live(new_page):
    watcher = new_page()  # opened first and never reloaded
    watcher.evaluate("() => { window.notReloaded = true; }")
    before = group_size(watcher, "incidents")

    page = new_page()
    expect(page.locator("#report")).to_be_hidden()
    form = page.locator("#login-form")
    form.locator("input[name=username]").fill("reporter1")
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("button[type=submit]").click()
    expect(page.locator("#who-name")).to_contain_text("reporter1")
    expect(page.locator("#report")).to_be_visible()

    # pick the place on the map, then fill the form
    xy = page.evaluate(
        "([lon, lat]) => window.geoMzMap.map.latLngToContainerPoint([lat, lon])", list(INSIDE)
    )
    hit = page.evaluate(
        "([x, y]) => { const r = document.getElementById('map').getBoundingClientRect();"
        " const e = document.elementFromPoint(r.left + x, r.top + y);"
        " return !!e.closest('.leaflet-map-pane'); }",
        [xy["x"], xy["y"]],
    )
    assert hit, f"the point {INSIDE} is hidden under a map control at {xy}"
    page.locator("#map").click(position={"x": xy["x"], "y": xy["y"]})
    expect(page.locator("#report-where")).to_contain_text("位置已选")
    text = f"浏览器测试：桥下积水 {time.time_ns()}"
    report = page.locator("#report-form")
    report.locator("select[name=kind]").select_option("flood")
    report.locator("textarea[name=description]").fill(text)
    report.locator("input[name=people_affected]").fill("12")
    report.locator("button[type=submit]").click()
    expect(page.locator("#report-msg")).to_have_text("已提交")

    # the other browser, not reloaded, shows it in the list and as a marker
    expect(watcher.locator("#incident-list li", has_text=text)).to_have_count(1)
    watcher.wait_for_function(
        f"() => window.geoMzMap.state.groups.incidents.getLayers().length > {before}"
    )
    assert watcher.evaluate("() => window.notReloaded === true")
    item = watcher.locator("#incident-list li", has_text=text)
    expect(item).to_contain_text("reporter1")
    assert page.js_errors == [] and watcher.js_errors == []  # type: ignore[attr-defined]


def test_a_reconnecting_browser_gets_the_events_it_missed(new_page, server):
    page = new_page()
    page.evaluate("() => { window.notReloaded = true; }")
    # one event seen live, so the browser has a Last-Event-ID to resume from
    first = f"断线之前的报告 {time.time_ns()}"
    post_incident(server, first, timeout_s=10)
    expect(page.locator("#incident-list li", has_text=first)).to_have_count(1)
    seen = page.evaluate("() => window.geoMzMap.state.lastId")
    assert seen > 0

    streams: list[dict] = []
    page.on("request", lambda r: streams.append(r.all_headers()) if "/events" in r.url else None)
    refused: list[str] = []

    def refuse(route) -> None:
        refused.append(route.request.url)
        route.abort("connectionrefused")

    # Cut the page off from the event stream: the server ends each stream after a few
    # seconds (sse_max_s) and every reconnection attempt is refused until the route is lifted.
    page.route("**/events*", refuse)
    expect(page.locator("#live")).to_have_class("off")
    missed = [f"断线期间的报告 {i} {time.time_ns()}" for i in range(2)]
    for text in missed:
        post_incident(server, text, timeout_s=10)
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not refused and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert refused, "the browser did not try to reconnect"
    for text in missed:
        expect(page.locator("#incident-list li", has_text=text)).to_have_count(0)

    # the browser keeps retrying; once the stream is back it replays what was missed
    page.unroute("**/events*")
    for text in missed:
        expect(page.locator("#incident-list li", has_text=text)).to_have_count(1)
    expect(page.locator("#live")).to_have_class("on")
    assert page.evaluate("() => window.notReloaded === true")
    assert page.evaluate("() => window.geoMzMap.state.lastId") == seen + 2
    # it asked to resume after the last event it had seen, by the Last-Event-ID header
    resumed = [int(h["last-event-id"]) for h in streams if "last-event-id" in h]
    assert seen in resumed and min(resumed) >= seen, streams
    assert page.js_errors == []  # type: ignore[attr-defined]


def test_relief_audit_overlay_and_figure(new_page, server):
    page = new_page()
    expect(page.locator("#analysis-figures dt").first).to_contain_text("村居超时/断路")
    expect(page.locator("#analysis-figures dd").first).to_contain_text(" / ")
    expect(page.locator("#analysis-figures dt").nth(1)).to_contain_text("15分钟覆盖率")
    expect(page.locator("#analysis-figures dd").nth(1)).to_contain_text("%")
    box = page.locator(".leaflet-control-layers-overlays label", has_text="救灾物资送达核查")
    box.locator("input").check()
    expect(box.locator("input")).to_be_checked()
    assert page.js_errors == []  # type: ignore[attr-defined]

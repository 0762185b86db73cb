"""The map page as disaster command uses it (issue 16): click order, layout, legibility.

Debian's headless Chromium driven by Playwright against a real waitress server (as in
``tests/test_webmap_browser.py``). Checks that a click on a shelter opens the shelter's popup
(with the occupancy form for a commander) after login, after land use is toggled and with the
relief overlay on; that the report pin moves only in report mode; that the legend never overlaps
a layer toggle or a map control at 1280×800 and on a 390×844 phone (bounding boxes); that times
are Beijing time, server messages show the page language's half, incidents have a pin per kind,
towns and villages are labelled by zoom.

Screenshots of each state go to ``$GEO_MZ_SCREENSHOTS`` (default ``/tmp/geo_mz_screenshots``)
as ``page_*.png``. Skipped when ``/usr/bin/chromium`` or ``playwright`` is missing, except on CI.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

pytest.importorskip("flask")
pytest.importorskip("waitress")

from tests.browser import chromium, context_page, require_browser

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

TIMEOUT_MS = 30_000
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = Path(os.environ.get("GEO_MZ_SCREENSHOTS", "/tmp/geo_mz_screenshots"))
SHELTER_TITLE = "应急避难场所"
CLICKS = 10


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    base = sample_base(tmp_path_factory.getbasetemp() / "webmap_base")
    settings = fresh_settings(base, tmp_path_factory.mktemp("page_ws"))
    with running_server(create_app(settings), threads=24) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    yield from chromium()


@pytest.fixture
def open_page(browser, server):
    """Open the map in a fresh context (own cookies, viewport, language); closed after the test."""
    contexts = []

    def _open(viewport=DESKTOP, lang: str = "zh", **ctx) -> Page:
        context, page = context_page(browser, viewport=viewport, timeout_ms=TIMEOUT_MS, **ctx)
        contexts.append(context)
        page.goto(f"{server}/?lang={lang}")
        page.wait_for_function("() => window.geoMzMap && window.geoMzMap.state.config")
        loaded(page, "shelters")
        return page

    yield _open
    for context in contexts:
        context.close()


def loaded(page: Page, layer: str) -> None:
    page.wait_for_function(
        f"() => {{ const g = window.geoMzMap.state.groups[{layer!r}];"
        " return g && g.getLayers().length > 0; }"
    )


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"page_{name}.png"))


def login(page: Page, user: str) -> None:
    form = page.locator("#login-form")
    form.locator("input[name=username]").fill(user)
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("button[type=submit]").click()
    expect(page.locator("#who-name")).to_contain_text(user)


def toggle(page: Page, title: str, on: bool) -> None:
    box = page.locator(".leaflet-control-layers-overlays label", has_text=title).first
    box.locator("input").set_checked(on)


# Shelters whose centre is on the map, not under a control, and not under another point layer
# drawn above them (elder care, stores, markers: a click there rightly opens that feature):
# page coordinates of up to `n` of them.
SHELTER_SPOTS = """(n) => {
  const h = window.geoMzMap, map = h.map, rect = map.getContainer().getBoundingClientRect();
  const me = h.state.config.layers.find(i => i.id === 'shelters');
  const others = [];
  h.state.config.layers.forEach(i => {
    if (i.id === 'shelters' || !map.hasLayer(h.state.groups[i.id])) return;
    if (!['points', 'incidents'].includes(i.pane) || i.z < me.z) return;
    h.state.groups[i.id].eachLayer(l => {
      const p = map.latLngToContainerPoint(l.getLatLng());
      others.push([p.x, p.y, (l.getRadius ? l.getRadius() : 15) + 3]);
    });
  });
  const out = [];
  h.state.groups.shelters.eachLayer(l => {
    if (out.length >= n) return;
    const p = map.latLngToContainerPoint(l.getLatLng());
    if (p.x < 20 || p.y < 20 || p.x > rect.width - 20 || p.y > rect.height - 20) return;
    if (others.some(o => Math.hypot(o[0] - p.x, o[1] - p.y) < o[2])) return;
    const x = rect.left + p.x, y = rect.top + p.y, e = document.elementFromPoint(x, y);
    if (!e || e.closest('.leaflet-control') || e.closest('.leaflet-popup')) return;
    out.push([x, y]);
  });
  return out;
}"""


def click_shelters(page: Page, label: str) -> None:
    """Click 10 shelters; each click opens that shelter's popup, with the occupancy form."""
    page.evaluate("() => { window.geoMzMap.map.closePopup(); }")
    spots = page.evaluate(SHELTER_SPOTS, CLICKS)
    assert len(spots) == CLICKS, spots
    popup = page.locator(".leaflet-popup-content")
    for i, (x, y) in enumerate(spots):
        page.mouse.click(x, y)
        expect(popup.locator("h3")).to_have_text(SHELTER_TITLE)
        expect(popup.locator("form input[type=number]")).to_be_visible()
        if i == 0:
            page.wait_for_timeout(400)  # the popup's fade-in
            shot(page, f"shelter_popup_{label}")
        page.evaluate("() => { window.geoMzMap.map.closePopup(); }")
        expect(popup).to_have_count(0)


def test_shelter_popup_after_login_and_after_toggling_land_use(open_page):
    page = open_page()
    login(page, "commander1")  # reloads every layer
    loaded(page, "landuse")
    loaded(page, "shelters")
    page.wait_for_timeout(500)  # let the reload of every layer land
    click_shelters(page, "after_login")
    toggle(page, "土地利用与保护区", False)
    toggle(page, "土地利用与保护区", True)
    loaded(page, "landuse")
    page.wait_for_timeout(500)
    click_shelters(page, "after_landuse_toggle")
    # land use is drawn below the shelters (its own pane), whatever the load order
    z = page.evaluate(
        "() => [getComputedStyle(document.querySelector('.leaflet-overlay-pane')).zIndex,"
        " getComputedStyle(document.querySelector('.geomz-pane-points')).zIndex]"
    )
    assert int(z[0]) < int(z[1]), z
    assert page.js_errors == []  # type: ignore[attr-defined]


def test_relief_overlay_does_not_take_shelter_clicks(open_page):
    page = open_page()
    login(page, "commander1")
    toggle(page, "救灾物资送达核查", True)
    page.wait_for_function("() => document.querySelectorAll('.geomz-pane-relief path').length > 0")
    expect(page.locator(".legend")).to_contain_text("救灾物资送达核查")  # its legend entry
    expect(page.locator(".legend")).to_contain_text("断路不可达")
    shot(page, "relief_overlay")
    click_shelters(page, "relief_on")
    toggle(page, "15分钟养老服务圈", True)
    expect(page.locator(".legend")).to_contain_text("15分钟养老服务圈")
    expect(page.locator(".legend")).to_contain_text("10–15分钟")
    shot(page, "coverage_overlay")
    assert page.js_errors == []  # type: ignore[attr-defined]


def map_point(page: Page, lon: float, lat: float) -> dict:
    return page.evaluate(
        "([lon, lat]) => window.geoMzMap.map.latLngToContainerPoint([lat, lon])", [lon, lat]
    )


def test_the_report_pin_moves_only_in_report_mode(open_page):
    page = open_page()
    login(page, "reporter1")
    mode, where = page.locator("#report-mode"), page.locator("#report-where")
    expect(mode).to_have_attribute("aria-pressed", "true")  # a field reporter starts in it
    mode.click()
    expect(mode).to_have_attribute("aria-pressed", "false")
    xy = map_point(page, *INSIDE)
    page.locator("#map").click(position={"x": xy["x"], "y": xy["y"]})
    expect(where).to_have_text("请在地图上点击灾情位置")
    assert page.evaluate("() => window.geoMzMap.state.marker") is None
    mode.click()
    page.locator("#map").click(position={"x": xy["x"], "y": xy["y"]})
    expect(where).to_contain_text("位置已选")
    placed = where.inner_text()
    shot(page, "report_mode_on")
    mode.click()  # out of report mode: another click does not move the pin
    other = map_point(page, INSIDE[0] + 0.02, INSIDE[1] + 0.01)
    page.locator("#map").click(position={"x": other["x"], "y": other["y"]})
    page.wait_for_timeout(300)
    assert where.inner_text() == placed
    pin = page.evaluate("() => window.geoMzMap.state.marker.getLatLng()")
    assert abs(pin["lng"] - INSIDE[0]) < 0.002 and abs(pin["lat"] - INSIDE[1]) < 0.002, pin
    # a commander is not in report mode: a click on a shelter opens its popup, no pin
    cmd = open_page()
    login(cmd, "commander1")
    expect(cmd.locator("#report-mode")).to_have_attribute("aria-pressed", "false")
    click_shelters(cmd, "commander")
    assert cmd.evaluate("() => window.geoMzMap.state.marker") is None
    assert page.js_errors == [] and cmd.js_errors == []  # type: ignore[attr-defined]


BOXES = """() => {
  const vis = e => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0 ? [r.left, r.top, r.right, r.bottom] : null;
  };
  const all = sel => [...document.querySelectorAll(sel)];
  // a toggle scrolled out of the layer list is clipped by it: only its shown part counts
  const list = vis(document.querySelector('.leaflet-control-layers-list'));
  const clip = b => b && list && [Math.max(b[0], list[0]), Math.max(b[1], list[1]),
    Math.min(b[2], list[2]), Math.min(b[3], list[3])];
  const toggles = all('.leaflet-control-layers-overlays label').map(vis).map(clip)
    .filter(b => b && b[2] > b[0] && b[3] > b[1]);
  const controls = all('.leaflet-control').filter(c => !c.classList.contains('legend')
    && !c.classList.contains('leaflet-control-layers')).map(vis).filter(Boolean);
  const m = document.getElementById('map').getBoundingClientRect();
  return { legend: vis(document.querySelector('.legend')), toggles, controls,
    layers: vis(document.querySelector('.leaflet-control-layers')),
    map: [m.left, m.top, m.right, m.bottom] };
}"""


def meets(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def assert_apart(boxes: dict) -> None:
    legend = boxes["legend"]
    assert legend, "the legend is not visible"
    layers = [boxes["layers"]] if boxes["layers"] else []
    for box in boxes["toggles"] + boxes["controls"] + layers:
        assert not meets(legend, box), (legend, box)


def test_the_legend_never_covers_a_toggle_or_control_on_a_desktop(open_page):
    page = open_page()
    assert_apart(page.evaluate(BOXES))
    shot(page, "desktop_default")
    # every layer and overlay on: the longest legend there is
    for label in page.locator(".leaflet-control-layers-overlays label").all():
        label.locator("input").set_checked(True)
    page.wait_for_function("() => document.querySelectorAll('.geomz-pane-relief path').length > 0")
    page.wait_for_timeout(1000)
    boxes = page.evaluate(BOXES)
    assert_apart(boxes)
    assert boxes["legend"][3] <= boxes["map"][3] and boxes["layers"][3] <= boxes["map"][3]
    # a legend entry for every layer and overlay that is on
    legend = page.locator(".legend").inner_text()
    for label in page.locator(".leaflet-control-layers-overlays label").all_inner_texts():
        title = re.sub(r"\s*\(.*\)$", "", label.strip())
        assert title in legend, title
    shot(page, "desktop_all_layers")
    # both fold away and open again
    page.locator(".fold-legend").click()
    expect(page.locator(".legend .legend-body")).to_be_hidden()
    page.locator(".fold-layers").click()
    expect(page.locator(".leaflet-control-layers-list")).to_be_hidden()
    shot(page, "desktop_folded")
    page.locator(".fold-layers").click()
    page.locator(".fold-legend").click()
    expect(page.locator(".leaflet-control-layers-list")).to_be_visible()
    assert_apart(page.evaluate(BOXES))
    assert page.js_errors == []  # type: ignore[attr-defined]


def test_a_phone_gets_a_bottom_sheet_and_its_location(open_page):
    here = {"latitude": 22.6, "longitude": 113.08}
    page = open_page(PHONE, geolocation=here, permissions=["geolocation"])
    boxes = page.evaluate(BOXES)
    assert boxes["legend"] is None and boxes["toggles"] == []  # both in the folded sheet
    assert boxes["map"][3] - boxes["map"][1] > 0.9 * PHONE["height"]
    shot(page, "phone_default")
    page.locator("#sheet-tabs button[data-tab=legend]").click()
    boxes = page.evaluate(BOXES)
    assert_apart(boxes)
    assert boxes["toggles"] == []
    assert boxes["map"][3] - boxes["map"][1] > 0.4 * PHONE["height"]  # the map stays visible
    shot(page, "phone_legend")
    page.locator("#sheet-tabs button[data-tab=layers]").click()
    boxes = page.evaluate(BOXES)
    assert boxes["legend"] is None and len(boxes["toggles"]) > 10
    for box in boxes["toggles"]:
        assert not any(meets(box, c) for c in boxes["controls"]), box
    shot(page, "phone_layers")
    # a field reporter logs in in the sheet and reports where she stands
    page.locator("#sheet-tabs button[data-tab=panel]").click()
    login(page, "reporter1")
    page.locator("#locate").click()
    expect(page.locator("#report-where")).to_contain_text("113.08000, 22.60000")
    centre = page.evaluate("() => window.geoMzMap.map.getCenter()")
    assert abs(centre["lat"] - 22.6) < 1e-3 and abs(centre["lng"] - 113.08) < 1e-3
    page.locator("#sheet-tabs button[data-tab=panel]").click()  # fold the sheet
    shot(page, "phone_located")
    assert page.js_errors == []  # type: ignore[attr-defined]


def beijing(iso: str) -> str:
    """Independent of the page's code: UTC ISO time → 'YYYY-MM-DD HH:MM' at UTC+8."""
    t = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (t.astimezone(timezone(timedelta(hours=8)))).strftime("%Y-%m-%d %H:%M")


@pytest.mark.parametrize("lang, suffix", [("zh", "北京时间"), ("en", "Beijing time")])
def test_times_are_beijing_time_and_incidents_have_a_pin_per_kind(open_page, server, lang, suffix):
    dx = 0.0 if lang == "zh" else -0.01  # pins apart, so each can be clicked
    fire = post_incident(
        server, f"时间测试 {lang} 火", kind="fire", lonlat=(INSIDE[0] + dx, INSIDE[1]), timeout_s=10
    )[0]
    post_incident(
        server,
        f"时间测试 {lang} 水",
        kind="flood",
        lonlat=(INSIDE[0] + dx + 0.004, INSIDE[1]),
        timeout_s=10,
    )
    page = open_page(lang=lang)
    item = page.locator("#incident-list li", has_text=f"时间测试 {lang} 火")
    expect(item).to_have_count(1)
    when = beijing(fire["properties"]["reported_at"])
    assert item.locator("small").inner_text().endswith(f"{when} {suffix}")
    # the popup shows the same time
    page.locator("#incident-list li", has_text=f"时间测试 {lang} 火").click()
    pin = page.locator(f".geomz-pane-incidents [data-id='{fire['id']}'] .inc-pin.inc-fire")
    expect(pin).to_be_visible()
    pin.click()
    expect(page.locator(".leaflet-popup-content")).to_contain_text(f"{when} {suffix}")
    # a pin per kind, in the kind's colour, not the elder-care circles
    colours = page.evaluate(
        "() => ['fire', 'flood'].map(k => getComputedStyle("
        "document.querySelector('.geomz-pane-incidents .inc-' + k)).backgroundColor)"
    )
    assert colours == ["rgb(177, 0, 38)", "rgb(33, 113, 181)"], colours
    shot(page, f"incidents_{lang}")
    assert page.js_errors == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_server_messages_in_the_page_language(open_page, lang):
    page = open_page(lang=lang)
    # a real bilingual refusal of the server, shown as the page shows any failure
    shown = page.evaluate(
        "async () => { const h = window.geoMzMap;"
        " const r = await h.call('GET', 'map/layers/roads?bbox=1,2');"
        " h.note('test', 'bbox', h.problem(r)); return [h.problem(r), h.say(h.problem(r))]; }"
    )
    full, said = shown
    assert "应为" in full and "needs 4 or 6" in full  # the server sent both halves
    note = page.locator(".map-note", has_text="bbox")
    visible = note.inner_text()
    if lang == "zh":
        assert "应为" in said and "was '1,2'" not in said
        assert "应为" in visible and "was '1,2'" not in visible
    else:
        assert "was '1,2'" in said and "应为" not in said
        assert "was '1,2'" in visible and "应为" not in visible
    note.click()  # opened, it shows the whole message
    expect(note.locator(".other-lang")).to_be_visible()
    # the panel's two parts, in the page's language
    heads = page.locator("#panel h2").all_inner_texts()
    zh = lang == "zh"
    live, plan = ("现场态势", "规划指标") if zh else ("Live situation", "Planning figures")
    assert live in heads and plan in heads
    assert page.locator("#planning #kpi-list dt").count() > 0
    assert page.locator("#figures #live-figures dt").count() > 0
    shot(page, f"panel_{lang}")
    assert page.js_errors == []  # type: ignore[attr-defined]


def test_town_and_village_labels_by_zoom(open_page):
    page = open_page()
    page.wait_for_function("() => window.geoMzMap.state.labels.town > 0")
    labels = page.evaluate("() => window.geoMzMap.state.labels")
    assert labels["town"] >= 5 and labels["village"] == 0, labels  # towns only at district zoom
    expect(page.locator(".map-label.town", has_text="棠下镇")).to_be_visible()
    shot(page, "labels_towns")
    page.evaluate("() => { window.geoMzMap.map.setView([22.60, 113.08], 14); }")
    page.wait_for_function("() => window.geoMzMap.state.labels.village > 3")
    boxes = page.evaluate(
        "() => [...document.querySelectorAll('.map-label span')].map(e => {"
        " const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })"
    )
    for i, a in enumerate(boxes):  # not cluttered: no two labels overlap
        for b in boxes[i + 1 :]:
            assert not meets(a, b), (a, b)
    shot(page, "labels_villages")
    assert page.js_errors == []  # type: ignore[attr-defined]

"""Drawing closures and working incidents on the map page, in Debian's headless Chromium.

A commander draws a polygon over the 潮连 bridges with Leaflet-Geoman, sees the preview list
the cut roads, saves it; a second browser context sees the closure and the relief figure change
without reloading; the closure is lifted from the page. An incident goes through every state
from the page's incident desk, by the right roles, with the audit log keeping who and when.
Filters change the listed and drawn incidents; a shelter is closed and opened from its popup.

Screenshots of each state go to ``$GEO_MZ_SCREENSHOTS`` (default /tmp/geo_mz_screenshots) as
``draw_*.png``. Skipped like ``test_webmap_browser.py`` when Chromium or playwright is missing.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("flask")
pytest.importorskip("waitress")

from tests.browser import chromium, context_page

try:
    from playwright.sync_api import Page, expect
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
except ImportError:  # pragma: no cover - test_webmap_browser skips the module already
    pytest.skip("playwright is missing", allow_module_level=True)

import geopandas as gpd
import shapely

from geo_mz.core.workspace import Workspace
from webmap import create_app
from webmap.testing import PASSWORD, fresh_settings, running_server, sample_base

pytestmark = pytest.mark.slow
SHOTS = Path(os.environ.get("GEO_MZ_SCREENSHOTS", "/tmp/geo_mz_screenshots"))
CHAOLIAN = "440703005"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    base = sample_base(tmp_path_factory.getbasetemp() / "webmap_base")
    settings = fresh_settings(base, tmp_path_factory.mktemp("drawing_ws"), sse_keepalive_s=1.0)
    app = create_app(settings)
    with running_server(app, threads=24) as url:
        yield url, settings.workspace


@pytest.fixture(scope="module")
def browser():
    yield from chromium()


@pytest.fixture
def open_page(browser, server):
    contexts = []

    def open_(user: str | None = None) -> Page:
        context, page = context_page(browser)
        contexts.append(context)
        page.on("dialog", lambda d: d.accept())
        page.goto(server[0] + "/")
        page.wait_for_function("() => window.geoMzMap && window.geoMzMap.state.config")
        expect(page.locator("#live")).to_have_class("on")
        if user:
            form = page.locator("#login-form")
            form.locator("input[name=username]").fill(user)
            form.locator("input[name=password]").fill(PASSWORD)
            form.locator("button[type=submit]").click()
            expect(page.locator("#who-name")).to_contain_text(user)
        return page

    yield open_
    for context in contexts:
        context.close()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"draw_{name}.png"))


def api(server: str, method: str, path: str, user: str, body=None, etag=None):
    token = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
    if etag:
        headers["If-Match"] = etag
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(server + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
            return r.status, json.loads(text) if text else None, r.headers.get("ETag")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), None


def bridges_hull(workspace) -> list[list[float]]:
    """A simple polygon around the 潮连 bridges: their buffered hull, few vertices, lon/lat."""
    ws = Workspace(workspace)
    roads = ws.read("roads")
    bridges = roads[roads["name"].isin(["潮连一桥", "潮连二桥", "潮连三桥"])]
    assert len(bridges) == 3
    crs = ws.metadata["measure_crs"]
    hull = shapely.union_all(bridges.to_crs(crs).geometry.to_numpy()).convex_hull.buffer(80)
    hull = hull.simplify(60)
    ring = gpd.GeoSeries([hull], crs=crs).to_crs("OGC:CRS84").iloc[0].exterior.coords
    return [[x, y] for x, y in list(ring)[:-1]]


def relief(server: str) -> dict:
    with urllib.request.urlopen(server + "/analysis/relief", timeout=60) as r:
        return json.load(r)


def test_commander_draws_a_closure_a_second_user_sees_it_then_it_is_lifted(open_page, server):
    url, workspace = server
    assert relief(url)["cut_off"] == 0
    observer = open_page()  # another user: anonymous read
    figures = observer.locator("#analysis-figures")
    expect(figures).to_contain_text("村居超时/断路0 /")
    page = open_page("commander1")
    expect(page.locator("#draw")).to_be_visible()
    ring = bridges_hull(workspace)
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    page.evaluate(
        f"() => {{ window.geoMzMap.map.fitBounds([[{min(lats)}, {min(lons)}], "
        f"[{max(lats)}, {max(lons)}]], {{padding: [120, 120], animate: false}}); }}"
    )
    page.wait_for_timeout(300)
    box = page.locator("#map").bounding_box()
    assert box is not None
    page.locator("#draw-polygon").click()
    points = [
        page.evaluate(
            f"() => {{ const p = window.geoMzMap.map.latLngToContainerPoint([{lat}, {lon}]);"
            " return [p.x, p.y]; }"
        )
        for lon, lat in ring
    ]
    for x, y in [*points, points[0]]:  # back on the first vertex finishes the polygon
        page.mouse.click(box["x"] + x, box["y"] + y)
        page.wait_for_timeout(80)
    roads = page.locator("#draw-roads li")
    expect(roads.first).to_be_visible()
    expect(page.locator("#draw-roads")).to_contain_text("潮连一桥")
    expect(page.locator("#draw-roads")).to_contain_text("潮连二桥")
    expect(page.locator("#draw-roads")).to_contain_text("潮连三桥")
    preview = page.evaluate("() => window.geoMzMap.draw.preview")
    assert preview["edges"] > 0 and roads.count() == preview["roads_count"]
    shot(page, "1_preview")
    assert relief(url)["closures"] == 0  # a preview stores nothing
    page.locator("#draw-form input[name=reason]").fill("桥梁封闭检测")
    page.locator("#draw-save").click()
    expect(page.locator("#draw-saved")).to_be_visible()
    # the other user's page: the closure appears and the relief figure shows villages cut off
    t0 = time.monotonic()
    observer.wait_for_function(
        "() => window.geoMzMap.state.groups.road_closures.getLayers().length === 1",
        timeout=10_000,
    )
    expect(figures).to_contain_text(re.compile(r"\(断路 [1-9]"), timeout=10_000)
    took = time.monotonic() - t0
    assert took < 10
    after = relief(url)
    assert after["cut_off"] > 0 and after["edges_closed"] == preview["edges"]
    observer.evaluate(
        f"() => {{ window.geoMzMap.map.fitBounds([[{min(lats)}, {min(lons)}], "
        f"[{max(lats)}, {max(lons)}]], {{padding: [60, 60], animate: false}}); }}"
    )
    observer.wait_for_timeout(800)
    shot(observer, "2_second_user_sees_closure")
    shot(page, "3_saved")
    # lifted from the page: the closure's popup, "解除中断"
    page.evaluate(
        "() => { window.geoMzMap.state.groups.road_closures.eachLayer(l => l.openPopup()); }"
    )
    page.locator(".leaflet-popup button", has_text="解除中断").click()
    observer.wait_for_function(
        "() => window.geoMzMap.state.groups.road_closures.getLayers().length === 0",
        timeout=10_000,
    )
    expect(figures).to_contain_text("村居超时/断路0 /", timeout=10_000)
    assert relief(url)["closures"] == 0
    shot(observer, "4_lifted")
    assert page.js_errors == [] and observer.js_errors == []  # type: ignore[attr-defined]


def _town_point(workspace) -> list[float]:
    units = Workspace(workspace).read("admin_units")
    p = units[units["adcode"] == CHAOLIAN].geometry.iloc[0].representative_point()
    return [round(p.x, 6), round(p.y, 6)]


def _report(url: str, where: list[float], kind: str, text: str) -> str:
    body = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": where},
        "properties": {"kind": kind, "description": text},
    }
    status, feat, _ = api(url, "POST", "/collections/incidents/items", "reporter1", body)
    assert status == 201, feat
    return feat["id"]


def test_an_incident_goes_through_every_state_on_the_page(open_page, server):
    url, workspace = server
    commander = open_page("commander1")
    reporter = open_page("reporter1")
    fid = _report(url, _town_point(workspace), "building_damage", "民房倒塌")
    row = commander.locator(f"#incident-desk-list li[data-id='{fid}']")
    expect(row).to_be_visible(timeout=10_000)
    expect(row).to_have_class("inc-item new")  # the new one is highlighted
    assert commander.evaluate("() => window.geoMzMap.incidents.beeps") >= 1
    assert commander.evaluate("() => window.geoMzMap.incidents.muted") is True  # default muted
    row.scroll_into_view_if_needed()
    shot(commander, "5_incident_reported")
    # the reporter sees no lifecycle buttons, and the API refuses them in both languages
    rrow = reporter.locator(f"#incident-desk-list li[data-id='{fid}']")
    expect(rrow).to_be_visible()
    expect(rrow.locator("button")).to_have_count(0)
    refusal = reporter.evaluate(
        "async (fid) => { const h = window.geoMzMap, p = 'collections/incidents/items/' + fid;"
        " const cur = await h.call('GET', p);"
        " return (await h.call('PATCH', p, {status: 'verified'}, cur.etag)).body; }",
        fid,
    )
    assert refusal["code"] == "role_forbidden"
    assert "无权" in refusal["description"] and "may not" in refusal["description"]
    steps = [
        ("verified", "已核实"),
        ("assigned", "已派单"),
        ("resolved", "已处置"),
        ("closed", "已办结"),
    ]
    for state, label in steps:
        row.locator(f"button[data-to={state}]").click()
        if state == "assigned":
            row.locator("form.inc-assign select[name=unit]").select_option(CHAOLIAN)
            row.locator("form.inc-assign button[type=submit]").click()
        expect(row).to_have_attribute("data-state", state, timeout=10_000)
        expect(row.locator(".inc-status")).to_contain_text(label)
        expect(rrow).to_have_attribute("data-state", state, timeout=10_000)  # live elsewhere
        shot(commander, f"6_incident_{state}")
    expect(row).to_contain_text("承办 潮连街道")
    expect(row.locator("button")).to_have_count(0)  # closed: nothing more to do
    _, audit, _ = api(url, "GET", "/audit?layer=incidents&limit=100", "admin1")
    mine = [r for r in audit["rows"] if r["fid"] == fid][::-1]
    assert [r["user"] for r in mine] == ["reporter1"] + ["commander1"] * 4
    assert [r["after"]["properties"]["status"] for r in mine] == ["reported"] + [
        s for s, _ in steps
    ]
    assert all(r["at"] for r in mine)
    # an admin deletes it from the page
    admin = open_page("admin1")
    arow = admin.locator(f"#incident-desk-list li[data-id='{fid}']")
    arow.locator("button[data-to=delete]").click()
    expect(commander.locator(f"#incident-desk-list li[data-id='{fid}']")).to_have_count(0)
    assert commander.js_errors == [] and reporter.js_errors == []  # type: ignore[attr-defined]


def test_filters_change_the_visible_incidents(open_page, server):
    url, workspace = server
    inside = _town_point(workspace)
    fire = _report(url, inside, "fire", "仓库起火")
    flood = _report(url, [inside[0] + 0.002, inside[1]], "flood", "低洼积水")
    etag = api(url, "GET", f"/collections/incidents/items/{flood}", "commander1")[2]
    assert api(url, "PATCH", f"/collections/incidents/items/{flood}", "commander1",
               {"status": "verified"}, etag)[0] == 200  # fmt: skip
    page = open_page("commander1")
    items = page.locator("#incident-desk-list li.inc-item")
    expect(page.locator(f"#incident-desk-list li[data-id='{fire}']")).to_be_visible()
    total = items.count()
    assert total >= 2
    page.locator("#inc-filter-kind").select_option("fire")
    expect(page.locator(f"#incident-desk-list li[data-id='{flood}']")).to_have_count(0)
    expect(page.locator(f"#incident-desk-list li[data-id='{fire}']")).to_have_count(1)
    kinds = page.evaluate(
        "() => { const d = window.geoMzMap.incidents;"
        " return d.data.incidents.filter(i => d.shown.includes(i.id)).map(i => i.kind); }"
    )
    assert kinds and all(k == "fire" for k in kinds)
    # the map's pins follow: the flood pin is hidden, the fire pin shown
    page.evaluate("() => { window.geoMzMap.map.addLayer(window.geoMzMap.state.groups.incidents); }")
    page.wait_for_function(
        f"() => {{ const m = document.querySelector(\".inc-icon [data-id='{fire}'], "
        f"[data-id='{fire}'].leaflet-marker-icon\"); return !!m; }}"
    )
    # The filter hides the flood pin once it is drawn: wait for it (fails after 10 s if never).
    page.wait_for_function(
        "(id) => { let out = null; window.geoMzMap.state.groups.incidents.eachLayer(l => {"
        " if (l.feature.id === id && l.getElement()) out = l.getElement().style.display; });"
        " return out === 'none'; }",
        arg=flood,
        timeout=10_000,
    )
    page.locator("#inc-filter-kind").select_option("")
    page.locator("#inc-filter-status").select_option("verified")
    expect(page.locator(f"#incident-desk-list li[data-id='{flood}']")).to_have_count(1)
    expect(page.locator(f"#incident-desk-list li[data-id='{fire}']")).to_have_count(0)
    page.locator("#inc-filter-status").select_option("")
    page.locator("#inc-filter-town").select_option(CHAOLIAN)
    expect(page.locator("#incident-counts tr[data-town]")).to_have_count(1)
    n_town = items.count()
    counts = page.locator(f"#incident-counts tr[data-town='{CHAOLIAN}'] td").inner_text()
    assert counts.endswith(f"/ {n_town}")
    page.locator("#incident-desk").scroll_into_view_if_needed()
    shot(page, "7_filtered_by_town")
    page.locator("#inc-filter-town").select_option("")
    page.locator("#inc-filter-time").select_option("1")  # all reported just now
    expect(items).to_have_count(total)


def test_shelter_closed_and_opened_from_its_popup(open_page, server):
    url, _ = server
    page = open_page("commander1")
    page.evaluate("() => { window.geoMzMap.map.addLayer(window.geoMzMap.state.groups.shelters); }")
    page.wait_for_function("() => window.geoMzMap.state.groups.shelters.getLayers().length > 0")

    # A reload (after login, a move, a live edit) replaces the markers and opens the same
    # shelter's popup again: for 200 ms the old one fades out beside it, so the newest (last)
    # popup is the one to read.
    def newest(sel: str) -> Any:
        return page.locator(f".leaflet-popup {sel}").last

    def open_popup() -> str:
        for _ in range(5):
            sid = page.evaluate(
                "() => { const l = window.geoMzMap.state.groups.shelters.getLayers()[0];"
                " window.geoMzMap.map.setView(l.getLatLng(), 15, {animate: false}); l.openPopup();"
                " return l.feature.id; }"
            )
            try:  # a slow reload (a loaded machine) may replace the marker meanwhile
                page.wait_for_selector(".leaflet-popup .shelter-toggle", timeout=3000)
                return sid
            except PlaywrightTimeoutError:
                continue
        raise AssertionError("the shelter popup did not stay open")

    sid = open_popup()
    toggle = newest(".shelter-toggle")
    expect(toggle).to_be_visible()
    expect(newest(".cap-bar")).to_be_visible()
    was_open = api(url, "GET", f"/collections/shelters/items/{sid}", "commander1")[1]
    was_open = was_open["properties"]["is_open"] is not False
    expect(toggle).to_have_text("关闭场所" if was_open else "启用场所")
    shot(page, "8_shelter_popup")

    def is_open() -> bool:
        got = api(url, "GET", f"/collections/shelters/items/{sid}", "commander1")[1]
        return got["properties"]["is_open"] is not False

    def click_toggle(before: bool) -> None:
        # live events re-render the popup: a click may land on a button being replaced
        for _ in range(5):
            try:
                newest(".shelter-toggle").click(timeout=3000)
                return
            except PlaywrightTimeoutError:
                if is_open() != before:
                    return  # the click went through before the popup was replaced
                open_popup()
        raise AssertionError("the shelter toggle could not be clicked")

    click_toggle(was_open)
    for want in (not was_open, was_open):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = api(url, "GET", f"/collections/shelters/items/{sid}", "commander1")[1]
            if (now["properties"]["is_open"] is not False) == want:
                break
            time.sleep(0.2)
        assert (now["properties"]["is_open"] is not False) == want
        if want != was_open:
            page.wait_for_timeout(400)
            open_popup()
            expect(newest(".shelter-state")).to_have_text("启用中" if want else "未启用")
            shot(page, "9_shelter_toggled")
            click_toggle(want)


def test_a_live_edit_elsewhere_keeps_an_open_shelter_popup(open_page, server):
    """Command reads a shelter's popup while occupancy edits stream in for other shelters."""
    url, _ = server
    page = open_page("commander1")
    page.evaluate("() => { window.geoMzMap.map.addLayer(window.geoMzMap.state.groups.shelters); }")
    page.wait_for_function("() => window.geoMzMap.state.groups.shelters.getLayers().length > 1")
    page.wait_for_timeout(1000)  # the reloads after login and the layer's first load are over
    ids = page.evaluate(
        "() => { const ls = window.geoMzMap.state.groups.shelters.getLayers();"
        " window.geoMzMap.map.setView(ls[0].getLatLng(), 15, {animate: false});"
        " return ls.map(l => l.feature.id); }"
    )
    page.wait_for_timeout(1000)  # the move's reload
    page.evaluate(
        "(id) => { window.geoMzMap.state.groups.shelters.getLayers()"
        ".find(l => l.feature.id === id).openPopup(); }",
        ids[0],
    )
    expect(page.locator(".leaflet-popup .shelter-toggle").last).to_be_visible()
    loads = page.evaluate("() => window.geoMzMap.state.groups.shelters.getLayers()[0]._leaflet_id")
    other = ids[-1]
    _, got, etag = api(url, "GET", f"/collections/shelters/items/{other}", "commander1")
    occ = (got["properties"]["occupancy_persons"] or 0) + 11
    status, _, _ = api(url, "PATCH", f"/collections/shelters/items/{other}", "commander1",
                       {"occupancy_persons": occ}, etag)  # fmt: skip
    assert status == 200
    # the edit's live event reloads the layer (new markers), and the popup is open again on
    # the same shelter
    page.wait_for_function(
        "(old) => window.geoMzMap.state.groups.shelters.getLayers()[0]._leaflet_id !== old",
        arg=loads,
    )
    page.wait_for_timeout(400)  # the old popup's fade
    assert page.locator(".leaflet-popup").count() == 1
    open_on = page.evaluate(
        "() => window.geoMzMap.state.groups.shelters.getLayers()"
        ".filter(l => l.isPopupOpen()).map(l => l.feature.id)"
    )
    assert open_on == [ids[0]]

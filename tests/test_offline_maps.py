"""The offline folium maps of ``geo-mz demo``, chosen like a cartographer (issue 16, item 7).

map.html opens with a few layers on (boundaries with place labels, water, main roads, coverage
per village, elder-care centres), the rest listed off in the layer control; population is a
density raster, not 20,000 markers; in coverage_map.html the walking rings are drawn above the
gaps and roads; the overview stays under 3 MB.

Checked twice, independently: in the HTML as written (the layer control's overlays and which
groups are added to the map) and in Debian's headless Chromium (the layer control's checkboxes,
the panes' z-index, Leaflet's own layers). Screenshots go to ``$GEO_MZ_SCREENSHOTS`` (default
``/tmp/geo_mz_screenshots``) as ``offline_*.png``; the render time is printed, not asserted.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from geo_mz.demo import DEMO_MAP_ON, run_demo
from geo_mz.outputs.eldercare import CIRCLE_MAP_ON

MAX_MAP_BYTES = 3_000_000
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(os.environ.get("GEO_MZ_SCREENSHOTS", "/tmp/geo_mz_screenshots"))

# Layer-control titles (without the feature count) of the layers on when map.html opens.
OVERVIEW_ON_TITLES = {
    "行政区划",
    "地名标注",
    "水系",
    "道路",
    "15分钟养老服务圈覆盖率",
    "养老服务设施",
}
COVERAGE_ON_TITLES = {
    "行政区划",
    "地名标注",
    "水系",
    "步行等时圈",
    "养老服务圈缺口",
    "养老服务设施",
    "新增养老服务设施建议选址",
}


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("offline_maps")
    run_demo(out)
    return out


def _title(label: str) -> str:
    """Layer title without its count: '道路 (1974)' -> '道路'."""
    return re.sub(r"\s*\((显示 )?[\d/]+\)$", "", label.strip())


def _overlays(html: str) -> dict[str, bool]:
    """Layer-control title -> whether the page adds the group to the map when it opens."""
    block = re.search(r"overlays\s*:\s*\{(.*?)\}", html, re.S)
    assert block, "no layer control in the map"
    pairs = re.findall(r'"([^"]+)"\s*:\s*(feature_group_\w+)', block.group(1))
    added = set(re.findall(r"(feature_group_\w+)\.addTo\(map_\w+\)", html))
    return {_title(json.loads(f'"{name}"')): var in added for name, var in pairs}


def test_overview_map_is_small_and_opens_with_few_layers(demo_out: Path):
    path = demo_out / "map.html"
    size = path.stat().st_size
    print(f"map.html: {size / 1e6:.2f} MB")
    assert size <= MAX_MAP_BYTES
    html = path.read_text(encoding="utf-8")
    overlays = _overlays(html)
    on = {t for t, shown in overlays.items() if shown}
    assert on == OVERVIEW_ON_TITLES
    assert len(overlays) >= 18  # the rest is there, off: population, relief, shelters, burial...
    for off in ("人口", "村（社区）救灾物资送达状态", "应急避难场所", "养老服务圈缺口"):
        assert overlays[off] is False
    assert len(DEMO_MAP_ON) == 5


def test_population_is_a_raster_not_twenty_thousand_markers(demo_out: Path):
    html = (demo_out / "map.html").read_text(encoding="utf-8")
    assert "L.imageOverlay(" in html
    assert '"cell_id"' not in html  # no population cell is a GeoJSON feature
    # Every GeoJSON feature embedded in the page, counted: far fewer than the 20,000 cells.
    n_features = len(re.findall(r'\{"geometry":\{"coordinates"', html))
    assert 0 < n_features < 10_000
    assert "人口" in _overlays(html)


def test_coverage_map_rings_above_gaps_and_roads(demo_out: Path):
    html = (demo_out / "coverage_map.html").read_text(encoding="utf-8")
    overlays = _overlays(html)
    assert {t for t, shown in overlays.items() if shown} == COVERAGE_ON_TITLES
    assert overlays["15分钟养老服务圈覆盖率"] is False  # the village choropleth: listed, off
    assert "isochrones" in CIRCLE_MAP_ON
    z = _pane_z_by_first_property(html)
    assert z["ring"] > z["gap_id"] and z["ring"] > z["road_id"]
    assert z["ring"] < z["facility_id"]  # the centres stay on top


def _pane_z_by_first_property(html: str) -> dict[str, int]:
    """A property key that identifies a layer (``ring``, ``gap_id``...) -> its pane's z-index."""
    panes = dict(
        re.findall(r'createPane\(\s*"(geo_mz_\d+)"\);\s*\w+\.style\.zIndex = (\d+);', html)
    )
    out: dict[str, int] = {}
    for var in re.findall(r"var (geo_json_\w+) = L\.geoJson\(", html):
        pane = re.search(rf'var {var} = L\.geoJson\(null, \{{.*?"pane": "(geo_mz_\d+)"', html, re.S)
        data = re.search(
            rf'{var}_add\(\{{"features":\[\{{"geometry":.*?"properties":\{{(.*?)\}}', html
        )
        if pane and data:
            for key in re.findall(r'"(\w+)":', data.group(1)):
                out.setdefault(key, int(panes[pane.group(1)]))
    return out


# --------------------------------------------------------------------------- in Chromium

BROWSER_STATE = """() => {
  const labels = [...document.querySelectorAll('.leaflet-control-layers-overlays label')];
  const on = labels.filter(l => l.querySelector('input').checked).map(l => l.textContent.trim());
  const all = labels.map(l => l.textContent.trim());
  let map = null, z = {}, nGeo = 0, nImage = 0;
  for (const k of Object.keys(window)) {
    const v = window[k];
    if (v instanceof L.Map) map = v;
  }
  for (const k of Object.keys(window)) {
    const v = window[k];
    if (v instanceof L.GeoJSON) {
      const first = v.getLayers()[0];
      if (!first) continue;
      nGeo += v.getLayers().length;
      const zi = +map.getPane(v.options.pane).style.zIndex;
      for (const p of Object.keys(first.feature.properties)) if (!(p in z)) z[p] = zi;
    }
    if (v instanceof L.ImageOverlay) nImage += 1;
  }
  const legend = [...document.querySelectorAll('.gm-layer')]
    .filter(e => e.style.display !== 'none').map(e => e.querySelector('b').textContent);
  const towns = [...document.querySelectorAll('.gm-label-t')]
    .filter(e => e.offsetParent !== null).length;
  return {on, all, z, nGeo, nImage, legend, towns, zoom: map.getZoom()};
}"""


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing (required on CI)")
        pytest.skip(f"{CHROMIUM} is missing")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--host-resolver-rules=MAP * ~NOTFOUND"],
        )
        yield b
        b.close()


def _open(browser, path: Path, shot: str) -> dict:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    t0 = time.perf_counter()
    page.goto(path.as_uri(), wait_until="load")
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    elapsed = time.perf_counter() - t0
    print(f"{path.name}: drawn in {elapsed:.2f} s in headless Chromium")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / shot))
    state = page.evaluate(BROWSER_STATE)
    page.close()
    return state


def test_overview_in_chromium(browser, demo_out: Path):
    s = _open(browser, demo_out / "map.html", "offline_map.png")
    assert {_title(t) for t in s["on"]} == OVERVIEW_ON_TITLES
    assert len(s["all"]) > len(s["on"])
    assert s["nImage"] == 1 and s["nGeo"] < 10_000  # population drawn as one image
    # the legend shows the themes that are on, and nothing else
    assert {_title(t) for t in s["legend"]} == OVERVIEW_ON_TITLES - {"地名标注"}
    assert s["towns"] >= 5  # town names on the map
    assert s["zoom"] >= 10.5  # fitted to the district, not to its neighbours


def test_coverage_map_in_chromium(browser, demo_out: Path):
    s = _open(browser, demo_out / "coverage_map.html", "offline_coverage_map.png")
    assert {_title(t) for t in s["on"]} == COVERAGE_ON_TITLES
    z = s["z"]
    assert z["ring"] > z["gap_id"] and z["ring"] > z["road_id"]


def test_relief_map_in_chromium(browser, demo_out: Path):
    s = _open(browser, demo_out / "relief_map.html", "offline_relief_map.png")
    on = {_title(t) for t in s["on"]}
    assert "村（社区）救灾物资送达状态" in on and "救灾物资送达时间核查" not in on

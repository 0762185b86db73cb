"""Features styled from a table (``TableStyledGeoJson``) look exactly as folium's own styler
draws them: checked in Chromium, feature by feature, against ``folium.GeoJson`` on the same
page with the same styles, for polygons and for circle markers sized per feature."""

from __future__ import annotations

import shutil
from pathlib import Path

import folium
import numpy as np
import pytest
import shapely
import xstatic.pkg.leaflet as xleaflet

from geo_mz.outputs.map_render import TableStyledGeoJson
from tests.browser import CHROMIUM, CHROMIUM_ARGS, require_browser

require_browser()


def _collection(geoms) -> dict:
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "id": i, "properties": {"n": str(i)},
             "geometry": shapely.geometry.mapping(g)}
            for i, g in enumerate(geoms)
        ],
    }  # fmt: skip


def _styles(n: int, rng, points: bool) -> list[dict]:
    # Continuous colours (each feature its own) and a few repeated ones, as a choropleth gives.
    out = []
    for i in range(n):
        c = "#" + "".join(f"{int(v):02x}" for v in rng.integers(0, 256, 3))
        if i % 3 == 0:
            c = "#3182bd"
        st = {"color": c, "fillColor": c, "fillOpacity": 0.6, "weight": 1 + i % 3}
        if points:
            st["radius"] = 3 + i % 5
        out.append(st)
    return out


STATE = """() => {
  const out = {};
  for (const k of Object.keys(window)) {
    const v = window[k];
    if (!(v instanceof L.GeoJSON)) continue;
    out[v.options.attribution] = v.getLayers().map(l => [l.feature.id, l.options.color,
      l.options.fillColor, l.options.fillOpacity, l.options.weight,
      l.getRadius ? l.getRadius() : null]);
  }
  return out;
}"""


@pytest.mark.parametrize("points", [False, True], ids=["polygons", "circle markers"])
def test_the_table_styler_draws_what_folium_draws(tmp_path, points):
    from playwright.sync_api import sync_playwright

    rng = np.random.default_rng(7)
    n = 300
    xy = rng.uniform([113.0, 22.5], [113.5, 23.0], (n, 2))
    geoms = shapely.points(xy) if points else shapely.buffer(shapely.points(xy), 0.003)
    data = _collection(geoms)
    styles = _styles(n, rng, points)
    # Leaflet from the package geo_mz inlines, beside the page (no network here).
    m = folium.Map(location=[22.75, 113.25], zoom_start=10, tiles=None, prefer_canvas=True)
    m.default_js = [("leaflet", "leaflet.js")]
    m.default_css = []
    shutil.copy(Path(xleaflet.BASE_DIR) / "leaflet.js", tmp_path / "leaflet.js")
    marker = folium.CircleMarker(radius=5) if points else None
    # Two layers of the same features: folium's switch styler and the table; told apart by
    # their attribution option.
    folium.GeoJson(
        data, style_function=lambda f: dict(styles[f["id"]]), marker=marker,
        attribution="folium",
    ).add_to(m)  # fmt: skip
    marker = folium.CircleMarker(radius=5) if points else None
    TableStyledGeoJson(data, styles, marker=marker, attribution="table").add_to(m)
    page_path = tmp_path / "m.html"
    m.save(str(page_path))
    text = page_path.read_text(encoding="utf-8")
    assert text.count("case ") >= n // 2  # folium's layer: a case per feature
    assert "_style_of = [" in text
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = b.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_path.as_uri(), wait_until="load")
        got = page.evaluate(STATE)
        b.close()
    assert not errors, errors
    assert {"table", "folium"} <= set(got)
    assert len(got["table"]) == len(got["folium"]) == n
    table = sorted(got["table"])
    assert table == sorted(got["folium"])
    # ... and each is the style asked for (not, say, every feature in the commonest one).
    for fid, colour, fill, opacity, weight, radius in table:
        st = styles[fid]
        assert (colour, fill, opacity, weight) == (st["color"], st["fillColor"],
                                                   st["fillOpacity"], st["weight"])  # fmt: skip
        if points:
            assert radius == st["radius"]


def test_ids_must_be_positions():
    data = _collection([shapely.Point(0, 0), shapely.Point(1, 1)])
    data["features"][1]["id"] = 5
    with pytest.raises(ValueError, match=r"0\.\.n-1"):
        TableStyledGeoJson(data, [{}, {}])
    data["features"][1]["id"] = 1
    with pytest.raises(ValueError, match="1 styles for 2 features"):
        TableStyledGeoJson(data, [{}])
    with pytest.raises(TypeError, match="highlight_function"):
        TableStyledGeoJson(data, [{}, {}], highlight_function=lambda f: {})

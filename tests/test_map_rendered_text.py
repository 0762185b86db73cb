"""save_map keeps rendered scripts as text (no second Jinja pass): the same page byte for byte."""

from __future__ import annotations

import contextlib
import re

import geopandas as gpd
import shapely

from geo_mz.outputs import map_render, maps


def _layers() -> dict[str, gpd.GeoDataFrame]:
    pts = gpd.GeoDataFrame(
        {"name": ["甲\r\n乙", "b\n", "<b>&'"], "beds": [1, 2, 3]},
        geometry=[shapely.Point(113.1, 23.1), shapely.Point(113.2, 23.2), shapely.Point(113, 23)],
        crs="EPSG:4490",
    )
    marked = gpd.GeoDataFrame(  # Jinja marks in the data: that script is compiled as before
        {"note": ["{{ 1 + 1 }}", "{# x #}"]},
        geometry=[shapely.box(113, 23, 113.1, 23.1), shapely.box(113.2, 23, 113.3, 23.1)],
        crs="EPSG:4490",
    )
    rings = gpd.GeoDataFrame(
        {"threshold_min": [15.0], "ring": ["0-15"]},
        geometry=[shapely.Point(113.1, 23.1).buffer(0.01)],
        crs="EPSG:4490",
    )
    return {"points": pts, "marked": marked, "isochrones": rings}


def _ids_in_order(page: str) -> str:
    seen: dict[str, str] = {}
    return re.sub(r"[0-9a-f]{32}", lambda m: seen.setdefault(m.group(0), f"ID{len(seen)}"), page)


def test_the_page_is_the_same_as_with_a_second_jinja_pass(tmp_path, monkeypatch):
    fast = maps.save_map(maps.layers_map(_layers(), show=["points"]), tmp_path / "fast.html")
    monkeypatch.setattr(maps, "rendered_text_kept", contextlib.nullcontext)
    slow = maps.save_map(maps.layers_map(_layers(), show=["points"]), tmp_path / "slow.html")
    a = fast.read_text(encoding="utf-8")
    b = slow.read_text(encoding="utf-8")
    assert len(a) > 100_000 and "甲\\r\\n乙" in a  # the data is there (Leaflet inlined too)
    assert _ids_in_order(a) == _ids_in_order(b)


def test_branca_is_left_as_it_was():
    import branca.element

    before = branca.element.Element
    with map_render.rendered_text_kept():
        assert branca.element.Element is map_render.RenderedText
    assert branca.element.Element is before

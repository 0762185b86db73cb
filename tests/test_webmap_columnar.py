"""Columnar GeoJSON (``webmap.core.columnar``) equals the per-row encoder ``features_of``.

Checked on every layer of the Pengjiang sample for every CRS the API offers, and on frames made
by hypothesis with odd values (NaN, ±inf, -0.0, None, big ints, unicode, quotes, control
characters, nullable dtypes, dates, tz-aware times, mixed objects, empty and missing
geometries, collections, polygons with holes). The comparison is of the parsed JSON: the same
values; the text must be strict JSON (no NaN/Infinity).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webmap.core import ogc_crs
from webmap.core.columnar import (
    collection_json,
    column_json,
    column_values,
    features_json,
    geometry_texts,
)
from webmap.core.geojson import features_of, jsonable
from webmap.testing import fresh_settings, sample_base

CRSS = (
    ogc_crs.CRS84,
    "http://www.opengis.net/def/crs/EPSG/0/4490",
    "http://www.opengis.net/def/crs/EPSG/0/4547",
    "http://www.opengis.net/def/crs/EPSG/0/3857",
)


def _strict(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in the JSON text")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    from webmap.core import backend
    from webmap.core.overlays import with_overlays

    base = sample_base(tmp_path_factory.getbasetemp() / "webmap_base")
    settings_ = fresh_settings(base, tmp_path_factory.mktemp("columnar"))
    return with_overlays(backend.open_store(settings_))


def test_every_sample_layer_in_every_crs_equals_the_per_row_encoder(store):
    offered = ogc_crs.supported_crs(store.metadata)
    assert set(CRSS) <= set(offered)
    checked = 0
    for cid in store.layer_names():
        g = store.frame(cid)
        id_field = store.spec(cid).id_field
        if len(g) > 600:  # population, roads: a spread of rows keeps the test fast
            g = g.iloc[np.linspace(0, len(g) - 1, 600).astype(int)]
        for crs in offered:
            assert _strict(features_json(g, id_field, crs=crs)) == features_of(
                g, id_field, crs=crs
            ), (cid, crs)
            checked += len(g)
    assert checked > 5_000


def test_items_pages_and_bbox_through_the_handler_equal_the_per_row_encoder(store):
    from webmap.core import features
    from webmap.core.http import ApiRequest

    g = store.frame("roads")
    for args in (
        {"limit": "1000", "offset": "17"},
        {"limit": "100", "bbox": "113.0,22.55,113.1,22.65"},
        {"limit": "50", "crs": "EPSG:4490"},
    ):
        r = features.items(store, ApiRequest(args=args), "roads")
        body = _strict(r.text())
        assert body["type"] == "FeatureCollection"
        assert body["numberReturned"] == len(body["features"]) > 0
        crs = ogc_crs.normalise(args.get("crs", ogc_crs.CRS84))
        ids = [f["id"] for f in body["features"]]
        page = g.set_index("road_id", drop=False).loc[ids]
        expect = features_of(page.reset_index(drop=True), "road_id", crs=crs)
        assert body["features"] == expect
        assert {link["rel"] for link in body["links"]} >= {"self", "collection"}


# -- hypothesis: odd values ------------------------------------------------------------------

TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12
) | st.sampled_from(['"', "\\", "\x00", "\n\t", '", "', "蓬江区", "\u2028", "é\x1f"])
FLOAT = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([-0.0, 1e16, 5e-324])
INT = st.integers(-(2**63), 2**63 - 1)
WHEN = st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1))


def _column(kind: str, n: int, data: st.DataObject) -> pd.Series | list[Any]:
    def some(values: st.SearchStrategy) -> list[Any]:
        return data.draw(st.lists(values, min_size=n, max_size=n))

    if kind == "float":
        return pd.Series(some(FLOAT), dtype="float64")
    if kind == "int":
        return pd.Series(some(INT), dtype="int64")
    if kind == "bool":
        return pd.Series(some(st.booleans()), dtype="bool")
    if kind == "Int64":
        return pd.array(some(st.none() | st.integers(-(2**63) + 1, 2**63 - 1)), dtype="Int64")
    if kind == "Float64":
        return pd.array(some(st.none() | st.floats(allow_nan=False)), dtype="Float64")
    if kind == "boolean":
        return pd.array(some(st.none() | st.booleans()), dtype="boolean")
    if kind == "str":
        return pd.array(some(st.none() | TEXT), dtype="str")
    if kind == "object_str":
        return pd.Series(some(st.none() | TEXT), dtype=object)
    if kind == "datetime":
        return pd.Series(pd.to_datetime(some(st.none() | WHEN)), dtype="datetime64[ms]")
    if kind == "datetime_tz":
        stamps = pd.to_datetime(some(st.none() | WHEN)).tz_localize("Asia/Shanghai")
        return pd.Series(stamps)
    if kind == "date":
        return pd.Series(some(st.none() | st.dates()), dtype=object)
    if kind == "mixed":
        return pd.Series(some(st.none() | INT | FLOAT | TEXT | st.booleans()), dtype=object)
    if kind == "category":
        return pd.Series(some(st.sampled_from(["a", "b", "蓬江"])), dtype="category")
    raise AssertionError(kind)


KINDS = (
    "float",
    "int",
    "bool",
    "Int64",
    "Float64",
    "boolean",
    "str",
    "object_str",
    "datetime",
    "datetime_tz",
    "date",
    "mixed",
    "category",
)


@st.composite
def coordinates(draw: st.DrawFn) -> tuple[float, float]:
    lon = draw(st.floats(108.0, 118.0))
    lat = draw(st.floats(18.0, 30.0))
    places = draw(st.integers(0, 12))
    return round(lon, places), round(lat, places)


@st.composite
def rings(draw: st.DrawFn) -> list[tuple[float, float]]:
    x, y = draw(coordinates())
    w = draw(st.floats(1e-6, 0.5))
    h = draw(st.floats(1e-6, 0.5))
    return [(x, y), (x + w, y), (x + w, y + h), (x, y + h), (x, y)]


@st.composite
def geometries(draw: st.DrawFn) -> shapely.Geometry | None:
    kind = draw(
        st.sampled_from(
            [
                "point",
                "line",
                "polygon",
                "holes",
                "multipoint",
                "multiline",
                "multipolygon",
                "empty",
                "none",
                "collection",
            ]
        )
    )
    if kind == "none":
        return None
    if kind == "empty":
        wkt = ["POINT EMPTY", "LINESTRING EMPTY", "POLYGON EMPTY", "MULTIPOLYGON EMPTY"]
        return shapely.from_wkt(draw(st.sampled_from(wkt)))
    if kind == "point":
        return shapely.Point(draw(coordinates()))
    line = draw(st.lists(coordinates(), min_size=2, max_size=6))
    if kind == "line":
        return shapely.LineString(line)
    if kind == "multipoint":
        return shapely.MultiPoint(line)
    if kind == "multiline":
        return shapely.MultiLineString([line, draw(st.lists(coordinates(), min_size=2))])
    outer = draw(rings())
    if kind == "polygon":
        return shapely.Polygon(outer)
    (x0, y0), (x1, _), _, (_, y1), _ = outer
    hole = [
        (x0 + (x1 - x0) * 0.25, y0 + (y1 - y0) * 0.25),
        (x0 + (x1 - x0) * 0.5, y0 + (y1 - y0) * 0.25),
        (x0 + (x1 - x0) * 0.5, y0 + (y1 - y0) * 0.5),
        (x0 + (x1 - x0) * 0.25, y0 + (y1 - y0) * 0.25),
    ]
    if kind == "holes":
        return shapely.Polygon(outer, [hole])
    if kind == "multipolygon":
        parts = [shapely.Polygon(outer, [hole]), shapely.Polygon(draw(rings()))]
        return shapely.MultiPolygon(parts)
    point = shapely.Point(draw(coordinates()))
    return shapely.GeometryCollection([point, shapely.LineString(line)])


@st.composite
def frames(draw: st.DrawFn) -> tuple[gpd.GeoDataFrame, str]:
    n = draw(st.integers(1, 8))
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=0, max_size=5))
    data = {f"c{i}_{k}": _column(k, n, draw(st.data())) for i, k in enumerate(kinds)}
    geoms = draw(st.lists(geometries(), min_size=n, max_size=n))
    g = gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms), crs="OGC:CRS84")
    names = [*data, "absent"]
    return g, draw(st.sampled_from(names))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames(), st.sampled_from(CRSS))
def test_columnar_equals_per_row_encoder_on_odd_frames(frame, crs):
    g, id_field = frame
    assert _strict(features_json(g, id_field, crs=crs)) == features_of(g, id_field, crs=crs)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(KINDS), st.integers(0, 10), st.data())
def test_column_values_and_text_equal_jsonable_per_value(kind, n, data):
    s = pd.Series(_column(kind, n, data))
    per_value = [jsonable(v) for v in s.tolist()]
    assert column_values(s) == per_value
    assert [_strict(t) for t in column_json(s)] == per_value


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1e7, 1e7) | st.sampled_from([0.0, -0.0, 5e-8, -5e-8]), min_size=2))
def test_rounded_coordinates_are_exact(values):
    """The numpy digit formatter writes exactly the double ``np.round`` gives (7 and 3 places)."""
    xy = np.array(values[: len(values) // 2 * 2], dtype=float).reshape(-1, 2)
    geoms = shapely.points(xy)
    for crs, places in ((ogc_crs.CRS84, 7), (CRSS[3], 3)):
        moved = ogc_crs.to_crs(geoms, crs)
        expect = np.round(shapely.get_coordinates(moved), places)
        got = [_strict(t)["coordinates"] for t in geometry_texts(geoms, crs=crs)]
        # outside the CRS's area (inf): null, as GEOS's GeoJSON writer has it
        got = np.array([[np.inf if v is None else v for v in p] for p in got], dtype=float)
        assert np.array_equal(got, np.where(np.isfinite(expect), expect, np.inf)), crs


def test_collection_text_splices_the_other_members():
    text = collection_json("[]", {"numberMatched": 0, "links": [{"title": "页"}]})
    assert _strict(text) == {
        "type": "FeatureCollection",
        "features": [],
        "numberMatched": 0,
        "links": [{"title": "页"}],
    }
    assert _strict(collection_json("[]", {})) == {"type": "FeatureCollection", "features": []}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames(), st.data())
def test_rows_of_a_frame_equal_the_per_row_encoder_of_those_rows(frame, data):
    g, id_field = frame
    rows = np.array(data.draw(st.lists(st.integers(0, len(g) - 1), max_size=6)), dtype=np.int64)
    expect = features_of(g.iloc[rows], id_field)
    assert _strict(features_json(g, id_field, rows=rows)) == expect


def test_cached_texts_give_the_same_pages_and_follow_a_new_frame(store):
    """Pages from the layer's encoded texts equal the per-page encoder; a changed frame is
    re-encoded (the old texts are never served for the new object)."""
    from webmap.core import columnar_cache

    def pages(g, rows, crs, expect):
        deadline = time.monotonic() + 30
        before = columnar_cache.cached_bytes()
        # seen once: per page; twice: encoded whole in the background; then from the texts
        while columnar_cache.cached_bytes() == before and time.monotonic() < deadline:
            assert columnar_cache.page_json(g, "shelter_id", rows, crs=crs) == expect
            time.sleep(0.01)
        assert columnar_cache.cached_bytes() != before
        assert columnar_cache.page_json(g, "shelter_id", rows, crs=crs) == expect

    g = store.frame("shelters")
    rows = np.array([5, 0, 3, len(g) - 1])
    for crs in CRSS[:2]:
        pages(g, rows, crs, features_json(g, "shelter_id", crs=crs, rows=rows))
    changed = g.copy()
    changed.loc[changed.index[0], "name"] = 'new "name" 新'
    expect = features_json(changed, "shelter_id", rows=rows)
    assert expect != features_json(g, "shelter_id", rows=rows)
    pages(changed, rows, CRSS[0], expect)
    assert columnar_cache.page_json(g, "shelter_id", np.array([], dtype=int)) == "[]"

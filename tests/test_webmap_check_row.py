"""``check_row`` builds its one-row frame a faster way: same frame, same findings, same errors.

The reference is the plain construction it replaced (``GeoDataFrame(columns, geometry=[g],
crs=label)`` then ``check_layer``), run here on the same inputs: valid rows, bad values, wrong
types, text dates, a geometry outside the area and one outside the jurisdiction.
"""

from __future__ import annotations

import pandas as pd
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal

from geo_mz.core import check_layer
from webmap.core.api import WebMapAPI
from webmap.core.edits import JURISDICTION_TOLERANCE_DEG, check_row
from webmap.core.errors import UnprocessableError
from webmap.core.layers import closure_spec
from webmap.testing import fresh_settings, sample_base


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    base = sample_base(tmp_path_factory.getbasetemp() / "webmap_base")
    settings = fresh_settings(base, tmp_path_factory.mktemp("check_row") / "ws")
    api = WebMapAPI(settings)
    yield api.store
    api.close()


def reference(spec, values, geometry, store):
    """The construction check_row used before, and its findings."""
    import geopandas as gpd

    gdf = gpd.GeoDataFrame(
        {f.name: [values.get(f.name)] for f in spec.fields}, geometry=[geometry], crs="EPSG:4490"
    )
    out, problems = check_layer(gdf, spec, file=spec.name, area=tuple(store.metadata["bounds"]))
    errors = [(p.field, p.code, p.message) for p in problems if p.severity == "error"]
    area = store.jurisdiction()
    geom = out.geometry.iloc[0]
    if (
        not errors
        and area is not None
        and not shapely.dwithin(area, geom, JURISDICTION_TOLERANCE_DEG)
    ):
        errors.append(("geometry", "outside_jurisdiction", None))
    return out, errors


NOW = pd.Timestamp("2026-07-01 08:15:00")
INSIDE = shapely.Point(113.08, 22.6)
ROAD = shapely.LineString([(113.08, 22.6), (113.09, 22.61)])
CASES = [
    ("incidents", {"kind": "fire", "description": "x", "status": "reported"}, INSIDE),
    ("incidents", {"kind": "fire", "reported_at": "2026-07-01T08:15:00"}, INSIDE),
    ("incidents", {"kind": "no-such-kind", "people_affected": "many"}, INSIDE),
    ("incidents", {"kind": "fire", "people_affected": 3.5, "status": None}, INSIDE),
    ("incidents", {"kind": "fire", "reported_at": "not a date"}, INSIDE),
    ("incidents", {"kind": "fire"}, shapely.Point(100.0, 30.0)),  # outside the area
    ("incidents", {"kind": "fire"}, shapely.Point(112.45, 22.1)),  # outside the jurisdiction
    (
        "closures",
        {"reason": "flood", "effect": "closed"},
        shapely.LineString([(113.08, 22.6), (113.09, 22.61)]),
    ),
    (
        "closures",
        {"reason": "flood", "effect": "bogus"},
        shapely.LineString([(113.08, 22.6), (113.09, 22.61)]),
    ),
]


@pytest.mark.parametrize(("layer", "props", "geometry"), CASES)
def test_check_row_matches_the_plain_construction(store, layer, props, geometry):
    if store.metadata.get("storage_crs") not in (None, "EPSG:4490"):
        pytest.skip("the sample stores EPSG:4490")
    spec = store.spec(layer) if layer == "incidents" else closure_spec("LineString")
    values = {**props, spec.id_field: "X-1", "reporter": "r", "created_by": "r"}
    values.setdefault("reported_at", NOW)
    values.setdefault("status", "reported")
    values.setdefault("created_at", NOW)
    expected, errors = reference(spec, values, geometry, store)
    if not errors:
        got = check_row(spec, values, geometry, store)
        assert_geodataframe_equal(got, expected)
        assert list(got.dtypes) == list(expected.dtypes)
        return
    with pytest.raises(UnprocessableError) as raised:
        check_row(spec, values, geometry, store)
    got_errors = raised.value.errors
    assert [e["code"] for e in got_errors] == [code for _, code, _ in errors]
    for e, (field, _, message) in zip(got_errors, errors, strict=True):
        if message is not None:
            assert e["message"] == message
        assert e["field"].endswith(field) if field else e["field"] == "feature"

"""Output polygons valid in metres stay valid in EPSG:4490 (``core.results.to_storage_crs``).

The case is real: a gap between two towns of the Guangdong workload (county 440307), found by a
boundary part in CGCS2000 / GK CM 114E. Two of its vertices lie 2 mm apart along an edge;
projected to degrees, the ring crosses itself. The whole run's ``conform`` repaired it; a
boundary part wrote it invalid into ``scale_boundaries.gpkg``.
"""

from __future__ import annotations

import geopandas as gpd
import pytest
import shapely

from geo_mz.core.errors import GeoMzError
from geo_mz.core.results import to_storage_crs

GAP_4547 = (
    "0103000000010000000A0000006C0F66A7C50F2041010068362A1E43416E1E19A1C00F20415AC059EA261E4341"
    "1692ECE8C00F20415A72877CFF1D43411B717186C00F20410B1A388C351E4341F744239388102041E9203FBEA1"
    "1E434115FBB9625111204150B182D0A11E4341A1CD474D951020419C7567BFA11E434188F4F4A591102041FFB6"
    "A1E29F1E43419C7A04CFCA0F2041626960602D1E43416C0F66A7C50F2041010068362A1E4341"
)


def _gap() -> gpd.GeoDataFrame:
    geom = shapely.from_wkb(bytes.fromhex(GAP_4547))
    return gpd.GeoDataFrame({"kind": ["gap"]}, geometry=[geom], crs="EPSG:4547")


def test_a_gap_valid_in_metres_is_valid_in_degrees_with_its_area():
    g = _gap()
    assert g.is_valid.all()
    assert not g.to_crs("EPSG:4490").is_valid.any()  # the case: broken by the projection
    out = to_storage_crs(g, "boundary part 440307")
    assert out.crs.to_epsg() == 4490 and out.is_valid.all()
    assert out["kind"].tolist() == ["gap"]
    assert abs(out.to_crs("EPSG:4547").area.iloc[0] - g.area.iloc[0]) < 0.01


def test_a_repair_that_would_change_the_area_is_an_error():
    # A 60 km edge in degrees is not the 60 km edge in metres: a vertex the repair inserts
    # on it moves by metres, and the area with it; that is refused, not written.
    crs = "EPSG:4547"
    x0, y0 = 380_000.0, 2_500_000.0
    for side in (1.0, -1.0):
        long = shapely.box(x0, y0 + side * 1e-3, x0 + 60_000, y0 + side * 1_000)
        tip = (x0 + 30_000, y0)
        tri = shapely.Polygon(
            [tip, (tip[0] - 500, y0 - side * 800), (tip[0] + 500, y0 - side * 800)]
        )
        g = gpd.GeoDataFrame(geometry=[shapely.MultiPolygon([long, tri])], crs=crs)
        if not g.to_crs("EPSG:4490").is_valid.all():
            with pytest.raises(GeoMzError, match="repaired losslessly"):
                to_storage_crs(g, "rings")
            return
    pytest.fail("neither side crosses once projected: the test no longer shows the case")

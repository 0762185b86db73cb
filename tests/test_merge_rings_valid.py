"""merge_rings makes each invalid polygon valid alone: the same area as rebuilding the piece."""

from __future__ import annotations

import numpy as np
import shapely

from geo_mz.scale.partition_rings import _valid_parts, join_pieces, polygonal


def test_invalid_polygons_made_valid_alone_cover_what_the_whole_piece_did():
    bowtie = shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2)])  # self-intersecting
    square = shapely.box(5, 5, 6, 6)
    overlapping = shapely.box(5.5, 5.5, 7, 7)  # a multipolygon's parts that overlap
    pieces = np.array(
        [
            shapely.MultiPolygon([bowtie, square]),
            shapely.MultiPolygon([overlapping]),
            shapely.box(10, 0, 11, 1),
            shapely.MultiPolygon([square, overlapping]),  # invalid: its parts overlap
        ],
        dtype=object,
    )
    got = _valid_parts(pieces)
    assert (shapely.get_type_id(got) == 3).all() and shapely.is_valid(got).all()
    want = polygonal(pieces)
    a, b = join_pieces(got), join_pieces(want)
    assert shapely.symmetric_difference(a, b).area < 1e-9
    assert abs(a.area - (2.0 + 1.0 + 2.25 - 0.25 + 1.0)) < 1e-9  # bow-tie 2, squares unioned
    clean = np.array([shapely.box(0, 0, 1, 1)], dtype=object)
    assert _valid_parts(clean)[0] is clean[0] or shapely.equals(_valid_parts(clean)[0], clean[0])


def test_merged_rings_are_valid_back_in_the_storage_crs():
    """A ring valid in metres, whose polygons pass 1 mm apart along a 60 km edge, crosses
    itself once projected to degrees (the edge is straight in both, the point beside it is
    not): merge_rings gives it back valid, its area unchanged."""
    import geopandas as gpd

    from geo_mz.scale.partition_rings import merge_rings

    crs = "EPSG:4547"  # CGCS2000 / 3-degree Gauss-Kruger CM 114E
    x0, y0, gap = 380_000.0, 2_500_000.0, 1e-3
    made = []
    for side in (1.0, -1.0):  # the point beside the long edge, on one side, then the other
        edge_y = y0 + side * gap
        long = shapely.box(x0, edge_y, x0 + 60_000, edge_y + side * 1_000)
        tip = (x0 + 30_000, y0)
        tri = shapely.Polygon(
            [tip, (tip[0] - 500, y0 - side * 800), (tip[0] + 500, y0 - side * 800)]
        )
        ring = shapely.MultiPolygon([shapely.orient_polygons(long), shapely.orient_polygons(tri)])
        assert shapely.is_valid(ring)
        made.append(ring)
    back = gpd.GeoSeries(made, crs=crs).to_crs("EPSG:4490")
    crossed = [g for g in back.values if not shapely.is_valid(g)]
    assert crossed, "neither side crosses once projected: the test no longer shows the case"
    pieces = gpd.GeoDataFrame(
        {"threshold_min": [15] * len(crossed), "ring": ["10-15"] * len(crossed)},
        geometry=crossed, crs="EPSG:4490",
    )  # fmt: skip
    merged = merge_rings(pieces, crs)
    assert shapely.is_valid(merged.geometry.values).all()
    want = sum(made[i].area for i, g in enumerate(back.values) if not shapely.is_valid(g))
    assert abs(merged["area_m2"].sum() - want) < 1.0
    # In degrees, the ring is the union of its polygons (each valid there).
    polys = shapely.get_parts(np.asarray(crossed, dtype=object))
    assert shapely.symmetric_difference(merged.union_all(), shapely.union_all(polys)).area < 1e-12

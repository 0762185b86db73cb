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

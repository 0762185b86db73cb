"""Tests of geo_mz.eldercare.coverage: hand-checkable networks, then the Pengjiang sample."""

from __future__ import annotations

import functools
import math

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_mz.core.errors import CrsError, GeoMzError
from geo_mz.core.results import Kpi
from geo_mz.eldercare import capacity as cap
from geo_mz.eldercare import coverage as cv
from geo_mz.network.graph import ELDERLY_WALK_SPEED_KMH, network_from_roads
from geo_mz.network.paths import snap_points, to_networkx

X0, Y0 = 500_000.0, 2_500_000.0  # EPSG:4547 (CGCS2000 GK CM 114E), near Jiangmen
CRS = "EPSG:4547"
MIN_PER_M = 0.06 / ELDERLY_WALK_SPEED_KMH  # 0.01875 min per metre at 3.2 km/h


def pt(x: float, y: float) -> shapely.Point:
    return shapely.Point(X0 + x, Y0 + y)


def roads(lines: list[list[tuple[float, float]]]) -> gpd.GeoDataFrame:
    geoms = [shapely.LineString([(X0 + x, Y0 + y) for x, y in c]) for c in lines]
    return gpd.GeoDataFrame(
        {"road_id": [f"R{i}" for i in range(len(geoms))], "road_class": "residential"},
        geometry=geoms,
        crs=CRS,
    )


def walk_net(lines):
    return network_from_roads(
        roads(lines), mode="walk", measure_crs=CRS, walk_speed_kmh=ELDERLY_WALK_SPEED_KMH
    )


def centres_frame(rows: list[dict], xy: list[tuple[float, float]]) -> gpd.GeoDataFrame:
    base = {"kind": "day_care_centre", "status": "operating", "beds": 0, "nursing_beds": 0}
    recs = [{**base, "facility_id": f"C{i + 1}", **r} for i, r in enumerate(rows)]
    return gpd.GeoDataFrame(recs, geometry=[pt(*p) for p in xy], crs=CRS)


# A line (0,0)-(400,0)-(800,0)-(1600,0) with a branch (400,0)-(400,400).
LINE = [[(0, 0), (400, 0)], [(400, 0), (800, 0)], [(800, 0), (1600, 0)], [(400, 0), (400, 400)]]
# (x, y, pop_60plus, village): hand times with the centre 30 m off node (0,0) (0.5625 min)
POINTS = [
    (400, 20, 10, "440703001001"),  # 20 m + 400 m + 30 m -> 8.4375
    (100, 0, 5, "440703001001"),  # 100 m to node (0,0) + 30 -> 2.4375
    (800, 0, 20, "440703001002"),  # 800 + 30 -> 15.5625
    (1600, 0, 7, "440703001002"),  # 1600 + 30 -> 30.5625
    (400, 400, 3, "440703001001"),  # 800 + 30 -> 15.5625
    (2500, 0, 4, "440703001002"),  # 900 m snap (too far) + 1600 + 30 -> 47.4375
]
HAND_MIN = np.array([450, 130, 830, 1630, 830, 2530]) * MIN_PER_M


def population(points=POINTS, *, adcode: bool = True, index=None) -> gpd.GeoDataFrame:
    df = gpd.GeoDataFrame(
        {
            "cell_id": [f"P{i}" for i in range(len(points))],
            "pop_60plus": [float(p[2]) for p in points],
        },
        geometry=[pt(p[0], p[1]) for p in points],
        crs=CRS,
        index=index,
    )
    if adcode:
        df["adcode"] = [p[3] for p in points]
    return df


def units() -> gpd.GeoDataFrame:
    box = shapely.box
    return gpd.GeoDataFrame(
        {
            "adcode": ["440703", "440703001", "440703001001", "440703001002", "440704"],
            "name": ["区", "镇", "甲社区", "乙村", "邻区"],
            "level": ["county", "town", "village", "village", "county"],
            "urban_rural": [None, "rural", "urban", "rural", None],
            "in_jurisdiction": [True, True, True, True, False],
        },
        geometry=[
            box(X0 - 100, Y0 - 100, X0 + 3000, Y0 + 600),
            box(X0 - 100, Y0 - 100, X0 + 3000, Y0 + 600),
            box(X0 - 100, Y0 - 100, X0 + 600, Y0 + 600),
            box(X0 + 600, Y0 - 100, X0 + 3000, Y0 + 600),
            box(X0 + 3000, Y0 - 100, X0 + 5000, Y0 + 600),
        ],
        crs=CRS,
    ).to_crs("EPSG:4490")


# --------------------------------------------------------------------------- hand network


def test_access_times_hand_values_and_contract():
    net = walk_net(LINE)
    cen = centres_frame([{}], [(0, -30)])
    pop = population(index=pd.Index([f"k{i}" for i in range(len(POINTS))], name="key"))
    pop4490 = pop.to_crs("EPSG:4490")
    before = pop4490.copy()
    t = cv.access_times(net, cen, pop4490)
    pd.testing.assert_frame_equal(pop4490, before)  # input not mutated
    assert isinstance(t, gpd.GeoDataFrame)
    assert t.crs == pop4490.crs and t.index.equals(pop4490.index)
    np.testing.assert_allclose(t["walk_min"], HAND_MIN, atol=1e-6)  # 4490 round trip, < 1 mm
    assert t["nearest_centre"].tolist() == ["C1"] * len(POINTS)
    np.testing.assert_allclose(t["snap_m"], [20, 100, 0, 0, 0, 900], atol=1e-3)  # nodes, not edges
    assert t["too_far"].tolist() == [False] * 5 + [True]  # reported, not dropped


def test_node_times_and_unreachable():
    # limit_min leaves the far nodes unreached: inf and nearest -1.
    net = walk_net(LINE)
    cen = centres_frame([{}], [(0, 0)])
    time_min, nearest = cv.node_times(net, cen, limit_min=10)
    order = np.lexsort((net.node_xy[:, 1], net.node_xy[:, 0]))
    got = time_min[order]  # nodes (0,0), (400,0), (400,400), (800,0), (1600,0)
    np.testing.assert_allclose(got[np.isfinite(got)], [0, 7.5], atol=1e-9)
    assert np.isinf(got).sum() == 3 and (nearest[np.isinf(time_min)] == -1).all()
    time_all, _ = cv.node_times(net, cen)
    np.testing.assert_allclose(time_all[order], [0, 7.5, 15, 15, 30], atol=1e-9)


def test_thresholds_are_inclusive():
    net = walk_net(LINE)
    cen = centres_frame([{}], [(0, 0)])
    pts = [(800, 0, 1, "440703001002"), (800, 0.5, 1, "440703001002")]  # 15.0 and 15.009 min
    t = cv.access_times(net, cen, population(pts))
    assert t["walk_min"].iloc[0] == pytest.approx(15.0, abs=1e-12)
    tab = cv.coverage_by_unit(t, units(), level="village")
    row = tab[tab["adcode"] == "440703001002"].iloc[0]
    assert row["covered_15min"] == 1  # exactly 15.0 is inside; 15.009 is not


def test_walk_speed_retimes_network_and_snap_legs():
    net = walk_net(LINE)
    cen = centres_frame([{}], [(0, -30)])
    t = cv.access_times(net, cen, population(), walk_speed_kmh=4.0)
    np.testing.assert_allclose(t["walk_min"], HAND_MIN * 3.2 / 4.0, atol=1e-9)


def test_walk_times_from_coordinates_equal_access_times():
    """Snapping coordinates (snap_xy) and walk_times: access_times' numbers bit for bit."""
    from geo_mz.network import snap_points, snap_xy

    net = walk_net(LINE)
    cen = centres_frame([{}], [(0, -30)])
    pop = population()
    xy = shapely.get_coordinates(pop.to_crs(net.crs).geometry.values)
    sn = snap_xy(net, xy, max_snap_m=500.0)
    ref = snap_points(net, pop, max_snap_m=500.0)
    for f in ("node", "offset_m", "offset_min", "too_far"):
        np.testing.assert_array_equal(getattr(sn, f), getattr(ref, f))
    walk, nearest = cv.walk_times(net, cen, sn)
    t = cv.access_times(net, cen, pop)
    np.testing.assert_array_equal(walk, t["walk_min"].to_numpy())
    assert nearest.tolist() == t["nearest_centre"].tolist()
    with pytest.raises(Exception, match="finite"):
        snap_xy(net, np.array([[np.nan, 0.0]]))


@pytest.mark.parametrize("adcode", [True, False])
def test_coverage_by_unit_by_hand(adcode):
    net = walk_net(LINE)
    t = cv.access_times(net, centres_frame([{}], [(0, -30)]), population(adcode=adcode))
    tab = cv.coverage_by_unit(t, units(), level="village")
    assert tab["level"].tolist() == ["village", "village", "total"]  # neighbour unit ignored
    v1, v2, tot = (tab.iloc[i] for i in range(3))
    # V1 (urban): p1 8.44, p2 2.44, p5 15.56 min; pop 10 + 5 + 3
    assert (v1["pop_60plus"], v1["covered_5min"], v1["covered_10min"], v1["covered_15min"]) == (
        18,
        5,
        15,
        15,
    )
    assert v1["share_15min"] == pytest.approx(15 / 18)
    assert v1["target_share"] == 1.0 and v1["shortfall_persons"] == 3 and not v1["meets_target"]
    w = (10 * 8.4375 + 5 * 2.4375 + 3 * 15.5625) / 18
    assert v1["mean_walk_min"] == pytest.approx(w)
    # V2 (rural): 31 people, nobody within 15 min; 95 % of 31 = 29.45 -> 30 persons short
    assert (v2["pop_60plus"], v2["covered_15min"], v2["shortfall_persons"]) == (31, 0, 30)
    assert v2["too_far_pop"] == 4 and v2["nearest_centre"] == "C1"
    # total = sum of rows; the target is the population-weighted requirement
    assert tot["pop_60plus"] == 49 and tot["covered_15min"] == 15
    assert tot["shortfall_persons"] == 33 and tot["target_share"] == pytest.approx(48 / 49)
    assert tot["adcode"] == "440703" and tot["mean_walk_min"] == pytest.approx(
        (np.array([10, 5, 20, 7, 3, 4]) * HAND_MIN).sum() / 49
    )
    kpis = cv.coverage_kpis(tab)
    assert all(isinstance(k, Kpi) for k in kpis)
    k15 = next(k for k in kpis if k.label_en.startswith("Aged 60+ within 15"))
    assert k15.value == pytest.approx(round(100 * 15 / 49, 1)) and k15.met is False
    assert k15.source


def test_coverage_by_unit_zero_population_and_unassigned():
    net = walk_net(LINE)
    pts = [(100, 0, 5, "440703001001"), (200, 0, 2, "440703009001")]  # 2nd: unknown village
    t = cv.access_times(net, centres_frame([{}], [(0, 0)]), population(pts))
    tab = cv.coverage_by_unit(t, units(), level="village")
    assert tab["level"].tolist() == ["village", "village", "unassigned", "total"]
    empty = tab.iloc[1]
    assert empty["pop_60plus"] == 0 and math.isnan(empty["share_15min"])
    assert pd.isna(empty["meets_target"])
    assert tab.iloc[2]["pop_60plus"] == 2 and tab.iloc[3]["pop_60plus"] == 7


def test_custom_targets_and_thresholds():
    net = walk_net(LINE)
    t = cv.access_times(net, centres_frame([{}], [(0, -30)]), population())
    targets = {"urban": 0.8, "rural": 0.0}
    tab = cv.coverage_by_unit(
        t, units(), level="village", thresholds_min=(10, 20), target_min=20, targets=targets
    )
    assert "covered_20min" in tab.columns and "covered_15min" not in tab.columns
    assert tab.iloc[0]["covered_20min"] == 18 and tab.iloc[0]["meets_target"]
    assert tab.iloc[1]["meets_target"]  # rural target 0
    with pytest.raises(cv.CoverageError, match="target_min"):
        cv.coverage_by_unit(t, units(), level="village", thresholds_min=(10,))


def test_errors_are_clear():
    net = walk_net(LINE)
    cen = centres_frame([{}], [(0, 0)])
    with pytest.raises(cv.NoCentresError, match="meal_point") as e:
        cv.select_centres(cen, kinds=["meal_point"])
    assert isinstance(e.value, GeoMzError) and isinstance(e.value, ValueError)
    with pytest.raises(cv.NoCentresError, match="planned"):
        cv.select_centres(cen, statuses=["planned"])
    with pytest.raises(cv.CoverageError, match="unknown codes"):
        cv.select_centres(cen, kinds=["hospital"])
    with pytest.raises(CrsError, match="no CRS"):
        cv.access_times(net, cen, population().set_crs(None, allow_override=True))
    with pytest.raises(cv.NoCentresError):
        cv.access_times(net, cen.iloc[:0], population())
    with pytest.raises(CrsError, match="metres"):
        cv.gaps(cv.access_times(net, cen, population()), crs="EPSG:4490")
    with pytest.raises(cv.CoverageError, match=r"没有 city 级单元.*/ the admin_units .* no city"):
        cv.coverage_by_unit(cv.access_times(net, cen, population()), units(), level="city")


def test_select_centres_filters():
    cen = centres_frame(
        [{"kind": "meal_point"}, {}, {"status": "planned"}, {"kind": "nursing_home"}],
        [(0, 0)] * 4,
    )
    assert cv.select_centres(cen)["facility_id"].tolist() == ["C1", "C2", "C4"]
    got = cv.select_centres(cen, kinds=cv.COMMUNITY_KINDS, statuses=None)
    assert got["facility_id"].tolist() == ["C2", "C3"]
    assert set(cv.COMMUNITY_KINDS) < set(cv.ELDER_CARE_KINDS)
    assert "meal_point" not in cv.COMMUNITY_KINDS


def test_kinds_match_catalog():
    from geo_mz.core.catalog import get_spec

    spec = get_spec("elder_care")
    kind = next(f for f in spec.fields if f.name == "kind")
    assert tuple(v.code for v in kind.values) == cv.ELDER_CARE_KINDS


GRID = [[(x, y), (x + 200, y)] for x in range(0, 1000, 200) for y in range(0, 1200, 200)] + [
    [(x, y), (x, y + 200)] for x in range(0, 1200, 200) for y in range(0, 1000, 200)
]
CANDIDATES = [(x * 137 % 1000 + 7, x * 311 % 1000 + 3) for x in range(12)]


@functools.cache
def grid_net():
    return walk_net(GRID)


@settings(max_examples=40, deadline=None)
@given(
    base=st.sets(st.integers(0, len(CANDIDATES) - 1), min_size=1, max_size=6),
    extra=st.integers(0, len(CANDIDATES) - 1),
)
def test_adding_a_centre_never_lowers_coverage(base, extra):
    net = grid_net()
    pts = [((i * 97) % 1100, (i * 53) % 1100, 1 + i % 3, "440703001001") for i in range(40)]
    pop = population(pts)

    def run(ids):
        cen = centres_frame([{} for _ in ids], [CANDIDATES[i] for i in sorted(ids)])
        return cv.access_times(net, cen, pop)

    a, b = run(base), run(base | {extra})
    assert (b["walk_min"].to_numpy() <= a["walk_min"].to_numpy() + 1e-9).all()
    ta = cv.coverage_by_unit(a, units(), level="village")
    tb = cv.coverage_by_unit(b, units(), level="village")
    for t in cv.COVERAGE_THRESHOLDS_MIN:
        assert (tb[f"covered_{t}min"] >= ta[f"covered_{t}min"]).all()


# --------------------------------------------------------------------------- gaps


def test_gaps_hand_hexagons_and_clusters():
    net = walk_net(LINE)
    t = cv.access_times(net, centres_frame([{}], [(0, -30)]), population())
    hexes = cv.gaps(t, crs=CRS, cell_size_m=200)
    assert hexes.crs == "EPSG:4490"
    uncovered = t.loc[t["walk_min"] > 15, "pop_60plus"].sum()
    assert hexes["pop_60plus_uncovered"].sum() == uncovered == 34
    # (800,0) 20 people, (1600,0) 7, (2500,0) 4, (400,400) 3: all in separate, non-adjacent hexes
    assert hexes["pop_60plus_uncovered"].tolist() == [20, 7, 4, 3]
    assert hexes["rank"].tolist() == [1, 2, 3, 4] and hexes["gap_id"].iloc[0] == "H0001"
    assert hexes["mean_walk_min"].iloc[2] == pytest.approx(2530 * MIN_PER_M)
    # every hexagon holds its points and has the asked centre spacing (flat-to-flat width)
    h = hexes.to_crs(CRS)
    assert h.geometry.iloc[0].contains(pt(800, 0))
    assert np.allclose(h.area, math.sqrt(3) / 2 * 200**2)
    clusters = cv.gaps(t, crs=CRS, cell_size_m=200, level="cluster")
    assert len(clusters) == 4
    big = cv.gaps(t, crs=CRS, cell_size_m=900, level="cluster")  # neighbours merge
    assert big["pop_60plus_uncovered"].sum() == 34
    assert big["pop_60plus_uncovered"].is_monotonic_decreasing
    assert big["n_hex"].sum() == len(cv.gaps(t, crs=CRS, cell_size_m=900))
    none = cv.gaps(t, crs=CRS, threshold_min=1000)
    assert len(none) == 0 and none.crs == "EPSG:4490"


def test_gaps_unreachable_mean_is_inf():
    net = walk_net(LINE)
    t = cv.access_times(net, centres_frame([{}], [(0, 0)]), population())
    t.loc[t.index[3], "walk_min"] = np.inf
    hexes = cv.gaps(t, crs=CRS, cell_size_m=200)
    row = hexes[hexes["pop_60plus_uncovered"] == 7].iloc[0]
    assert np.isinf(row["mean_walk_min"]) and row["unreachable_pop"] == 7


# --------------------------------------------------------------------------- capacity


def test_beds_by_unit_by_hand():
    fac = centres_frame(
        [
            {"kind": "nursing_home", "beds": 100, "nursing_beds": 60},
            {"kind": "care_home", "beds": 20, "nursing_beds": 5},
            {"kind": "meal_point", "beds": None, "nursing_beds": None},
            {"kind": "nursing_home", "beds": 500, "nursing_beds": 500, "status": "planned"},
        ],
        [(100, 0), (900, 0), (1000, 0), (50, 0)],
    )
    pts = [(100, 0, 1000, "440703001001"), (800, 0, 500, "440703001002")]
    tab = cap.beds_by_unit(fac, units(), population(pts), level="village")
    v1, v2, tot = (tab.iloc[i] for i in range(3))
    assert (v1["beds"], v1["beds_per_1000"], v1["nursing_share"]) == (100, 100, 0.6)
    assert (v2["beds"], v2["beds_per_1000"], v2["nursing_share"]) == (20, 40, 0.25)
    assert v2["meets_beds_target"] and not v2["meets_nursing_target"]  # 40 is inclusive
    assert v2["n_facilities"] == 2 and v2["beds_shortfall"] == 0
    assert tot["beds_per_1000"] == 80 and tot["nursing_share"] == pytest.approx(65 / 120)
    assert tot["beds_target_per_1000"] == 40 and tot["nursing_share_target"] == 0.55


def _e2sfca_case(decay="step", caps=(10, 20)):
    net = walk_net([[(x, 0), (x + 200, 0)] for x in range(0, 2000, 200)])
    cen = centres_frame([{"beds": c} for c in caps], [(200, 0), (1400, 0)])
    pts = [(0, 0, 100, "440703001001"), (600, 0, 200, "440703001001")]
    pts += [(1800, 0, 300, "440703001002")]
    return net, cen, population(pts)


def test_e2sfca_step_equals_textbook_2sfca():
    net, cen, pop = _e2sfca_case()
    res = cap.e2sfca(net, cen, pop, decay="step", demand_per_1000=1000)
    # catchment 15 min = 800 m, inclusive: P1 reaches A (200 m), P2 both (400 m / exactly
    # 800 m), P3 only B (400 m)
    r_a, r_b = 10 / (100 + 200), 20 / (200 + 300)
    np.testing.assert_allclose(res.centres["supply_ratio"], [r_a, r_b])
    np.testing.assert_allclose(
        res.population["access_score"], np.array([r_a, r_a + r_b, r_b]) * 1000
    )
    assert res.population["centres_in_reach"].tolist() == [1, 2, 1]
    assert res.centres["demand_pop"].tolist() == [300, 500]
    assert res.centres["over_capacity"].tolist() == [True, True]  # 300 > 10 places needed
    assert res.population.index.equals(pop.index) and res.population.crs == pop.crs


@pytest.mark.parametrize("decay", ["step", "linear", "gaussian"])
def test_e2sfca_supply_is_conserved(decay):
    net, cen, pop = _e2sfca_case()
    res = cap.e2sfca(net, cen, pop, decay=decay, max_block_mb=1e-6)  # one centre per block
    total = (pop["pop_60plus"] * res.population["access_score"] / 1000).sum()
    assert total == pytest.approx(30.0, rel=1e-12)
    w = res.centres["demand_weighted"]
    assert (w <= res.centres["demand_pop"] + 1e-9).all()


def test_e2sfca_rejects_missing_capacity():
    net, cen, pop = _e2sfca_case()
    cen = cen.assign(beds=[10, None])
    with pytest.raises(cv.CoverageError, match="'beds' must be numbers >= 0; rows \\[1\\]"):
        cap.e2sfca(net, cen, pop)
    with pytest.raises(cv.CoverageError, match="decay"):
        cap.e2sfca(net, cen.fillna(0), pop, decay="cubic")


def test_capacity_adjusted_coverage_below_plain_when_over_capacity():
    net, cen, pop = _e2sfca_case(caps=(1, 1000))
    t = cv.access_times(net, cen, pop)
    adj = cap.capacity_adjusted_coverage(t, cen, demand_per_1000=1000)
    # P1 and P2 are nearest to A (1 place for 300 people), P3 to B (ample)
    np.testing.assert_allclose(adj["capacity_factor"], [1 / 300, 1 / 300, 1.0])
    assert adj["covered_pop_adjusted"].sum() < adj["covered_pop"].sum() == 600
    tab = cv.coverage_by_unit(adj, units(), level="village")
    tot = tab.iloc[-1]
    assert tot["share_capacity_adj"] < tot["share_15min"]
    assert tot["covered_capacity_adj"] == pytest.approx(1 + 300)
    with pytest.raises(cv.CoverageError, match="not in `centres`"):
        cap.capacity_adjusted_coverage(t, cen.iloc[:1], demand_per_1000=1000)


# --------------------------------------------------------------------------- Pengjiang sample


@functools.cache
def sample():
    from geo_mz.datasets.pengjiang import build_pengjiang

    layers = build_pengjiang().layers
    net = network_from_roads(
        layers["roads"], mode="walk", measure_crs=CRS, walk_speed_kmh=ELDERLY_WALK_SPEED_KMH
    )
    centres = cv.select_centres(layers["elder_care"], kinds=cv.COMMUNITY_KINDS)
    times = cv.access_times(net, centres, layers["population"])
    return layers, net, centres, times


def test_sample_node_times_equal_networkx():
    _, net, centres, _ = sample()
    time_min, nearest = cv.node_times(net, centres)
    s = snap_points(net, centres)
    g = to_networkx(net)
    for j, (node, off) in enumerate(zip(s.node.tolist(), s.offset_min.tolist(), strict=True)):
        g.add_edge("S", node, key=f"c{j}", time_min=off)
    ref = nx.multi_source_dijkstra_path_length(g, {"S"}, weight="time_min")
    nodes = np.random.default_rng(0).choice(net.n_nodes, 400, replace=False)
    np.testing.assert_allclose(time_min[nodes], [ref[int(n)] for n in nodes], rtol=0, atol=1e-9)
    assert len(ref) - 1 == int(np.isfinite(time_min).sum())
    # the named nearest centre gives that time
    j = nearest[nodes]
    assert (j >= 0).all()


def test_sample_village_table_and_kpis():
    layers, _, _, times = sample()
    tab = cv.coverage_by_unit(times, layers["admin_units"], level="village")
    units_rows = tab[tab["level"] != "total"]
    tot = tab[tab["level"] == "total"].iloc[0]
    assert len(units_rows) == 139 and (units_rows["level"] == "village").all()
    assert units_rows["pop_60plus"].sum() == 83_000 == tot["pop_60plus"]
    for col in ["covered_5min", "covered_10min", "covered_15min", "shortfall_persons"]:
        assert units_rows[col].sum() == pytest.approx(tot[col])
    assert tot["covered_5min"] <= tot["covered_10min"] <= tot["covered_15min"]
    towns = cv.coverage_by_unit(times, layers["admin_units"], level="town")
    assert len(towns) == 7 and towns.iloc[-1]["covered_15min"] == tot["covered_15min"]
    kpis = cv.coverage_kpis(tab)
    assert any(k.label_en == "Villages/communities meeting the target" for k in kpis)
    # the spatial join (points without adcode) agrees with the adcode-prefix join
    spatial = cv.coverage_by_unit(
        times.drop(columns="adcode"), layers["admin_units"], level="village"
    )
    pd.testing.assert_frame_equal(spatial, tab)


def test_sample_more_kinds_more_coverage():
    layers, net, _, times = sample()
    every = cv.select_centres(layers["elder_care"])
    t_all = cv.access_times(net, every, layers["population"])
    assert (t_all["walk_min"] <= times["walk_min"] + 1e-9).all()
    pop = times["pop_60plus"]
    assert (pop * (t_all["walk_min"] <= 15)).sum() >= (pop * (times["walk_min"] <= 15)).sum()


def test_sample_gaps_sum_exactly():
    _, _, _, times = sample()
    uncovered = times.loc[times["walk_min"] > 15, "pop_60plus"].sum()
    hexes = cv.gaps(times, crs=CRS)
    assert hexes["pop_60plus_uncovered"].sum() == uncovered
    assert hexes["n_cells"].sum() == int(
        ((times["walk_min"] > 15) & (times["pop_60plus"] > 0)).sum()
    )
    clusters = cv.gaps(times, crs=CRS, level="cluster")
    assert clusters["pop_60plus_uncovered"].sum() == uncovered
    assert clusters["pop_60plus_uncovered"].is_monotonic_decreasing
    assert clusters["rank"].tolist() == list(range(1, len(clusters) + 1))
    assert set(hexes["cluster_id"]) == set(clusters["gap_id"])


def test_sample_beds_and_e2sfca():
    layers, net, _, _ = sample()
    tab = cap.beds_by_unit(
        layers["elder_care"], layers["admin_units"], layers["population"], level="town"
    )
    tot = tab.iloc[-1]
    assert tot["beds"] == 3_100 and tot["beds_per_1000"] == pytest.approx(3_100 / 83_000 * 1000)
    assert tab.iloc[:-1]["beds"].sum() == 3_100
    k = cap.beds_kpis(tab)
    assert k[0].met is False and k[1].met is True  # 37.3 < 40; 55 % nursing
    homes = cv.select_centres(layers["elder_care"], kinds=cv.RESIDENTIAL_KINDS)
    res = cap.e2sfca(net, homes, layers["population"])
    served = res.centres["demand_weighted"] > 0
    got = (res.population["pop_60plus"] * res.population["access_score"]).sum() / 1000
    assert got == pytest.approx(res.centres.loc[served, "capacity"].sum(), rel=1e-9)

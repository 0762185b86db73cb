"""Tests of network.siting: brute force on small instances, hand examples, networkx, Pengjiang."""

from __future__ import annotations

import itertools
import json
import math

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import shapely

from geo_mz.core.errors import GeoMzError
from geo_mz.datasets.pengjiang import build_pengjiang
from geo_mz.network.graph import ELDERLY_WALK_SPEED_KMH, network_from_roads
from geo_mz.network.paths import snap_points, to_networkx
from geo_mz.network.siting import (
    ZERO_TIME_MIN,
    SitingError,
    SitingResult,
    coverage_matrix,
    lscp,
    mclp,
    site_centres,
)

RATIO = 1 - 1 / math.e
CRS = "EPSG:4547"
X0, Y0 = 500_000.0, 3_400_000.0


def random_instance(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    n, m = int(rng.integers(2, 11)), int(rng.integers(1, 13))
    cover = (rng.random((n, m)) < rng.uniform(0.15, 0.5)).astype(float)
    demand = rng.integers(0, 12, m).astype(float)
    return cover, demand, int(rng.integers(1, min(3, n) + 1))


def covered_by(cover: np.ndarray, demand: np.ndarray, sites) -> float:
    return float(demand[cover[list(sites)].any(axis=0)].sum()) if len(sites) else 0.0


def brute_mclp(cover: np.ndarray, demand: np.ndarray, k: int) -> float:
    return max(covered_by(cover, demand, s) for s in itertools.combinations(range(len(cover)), k))


def check_result(res: SitingResult) -> None:
    assert len(set(res.chosen.tolist())) == len(res.chosen) == len(res.gain)
    assert (res.gain > 0).all()
    assert res.gap >= 0


# --------------------------------------------------------------------------- MCLP


def test_mclp_equals_brute_force_and_greedy_is_bounded():
    rng = np.random.default_rng(20240603)
    for _ in range(60):
        cover, demand, k = random_instance(rng)
        best = brute_mclp(cover, demand, k)
        exact = mclp(sp.csr_matrix(cover), demand, k=k, method="milp")
        check_result(exact)
        assert exact.method == "milp-highs"
        assert ("Optimal" if best else "nothing to cover") in exact.status
        assert exact.objective == best == exact.bound and exact.gap == 0.0
        assert covered_by(cover, demand, exact.chosen) == best == exact.gain.sum()
        assert len(exact.chosen) <= k
        greedy = mclp(cover, demand, k=k, method="greedy", max_milp_vars=0)  # online bound only
        check_result(greedy)
        assert greedy.method == "greedy"
        assert RATIO * best - 1e-9 <= greedy.objective <= best
        assert greedy.bound >= best and greedy.bound <= greedy.objective / RATIO + 1e-9
        assert (np.diff(greedy.gain) <= 0).all()
        assert covered_by(cover, demand, greedy.chosen) == greedy.objective
        assert mclp(cover, demand, k=k).objective == best  # auto -> milp (tiny model)


def test_mclp_ranking_and_fewer_sites_when_nothing_left():
    cover = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [1, 0, 0, 0]], float)
    demand = np.array([5.0, 1.0, 4.0, 7.0])  # point 3 nobody reaches
    res = mclp(cover, demand, k=3, method="milp")
    assert res.chosen.tolist() == [0, 1] and res.gain.tolist() == [6.0, 4.0]
    assert res.objective == res.covered == 10.0 and res.gap == 0.0
    assert res.unreachable_points.tolist() == [3] and res.unreachable_demand == 7.0
    greedy = mclp(cover, demand, k=3, method="greedy")
    assert greedy.chosen.tolist() == [0, 1] and greedy.bound == 10.0 and greedy.gap == 0.0


def test_already_covered_weighs_nothing():
    cover = np.array([[1, 1, 0], [0, 0, 1]], float)
    demand = np.array([3.0, 3.0, 5.0])
    assert mclp(cover, demand, k=1).chosen.tolist() == [0]  # 6 > 5
    done = np.array([True, False, False])
    res = mclp(cover, demand, k=1, already_covered=done)
    assert res.chosen.tolist() == [1] and res.objective == 5.0
    assert res.already_covered_demand == 3.0 and res.covered == 8.0
    both = mclp(cover, demand, k=2, already_covered=done)
    assert both.gain.tolist() == [5.0, 3.0] and both.covered == 11.0


# --------------------------------------------------------------------------- capacitated


def test_capacity_forces_the_other_site():
    # Site A reaches three points of 10 people, site B one point of 25.
    cover = np.array([[1, 1, 1, 0], [0, 0, 0, 1]], float)
    demand = np.array([10.0, 10.0, 10.0, 25.0])
    assert mclp(cover, demand, k=1).chosen.tolist() == [0]  # 30 > 25
    cap = np.array([15.0, 25.0])  # A can only serve 15
    for method in ("milp", "greedy"):
        res = mclp(cover, demand, k=1, capacity=cap, method=method)
        assert res.model == "mclp-capacitated"
        assert res.chosen.tolist() == [1] and res.objective == 25.0 == res.gain.sum()
        assert res.objective <= cap[res.chosen].sum()
    both = mclp(cover, demand, k=2, capacity=cap, method="milp")
    assert both.objective == 40.0 and both.gain.tolist() == [25.0, 15.0]  # fractional A
    inf_cap = mclp(cover, demand, k=1, capacity=np.array([np.inf, 25.0]))
    assert inf_cap.objective == 30.0


def brute_capacitated(cover, demand, cap, k) -> float:
    best = 0.0
    for sites in itertools.combinations(range(len(cover)), k):
        g = nx.DiGraph()
        for i, d in enumerate(demand):
            g.add_edge("s", ("d", i), capacity=int(d))
            for j in sites:
                if cover[j, i]:
                    g.add_edge(("d", i), ("c", j), capacity=int(d))
        for j in sites:
            g.add_edge(("c", j), "t", capacity=int(cap[j]))
        if "t" in g:
            best = max(best, float(nx.maximum_flow_value(g, "s", "t")))
    return best


def test_capacitated_equals_brute_force_max_flow():
    rng = np.random.default_rng(7)
    for _ in range(25):
        cover, demand, k = random_instance(rng)
        cap = rng.integers(0, 25, len(cover)).astype(float)
        best = brute_capacitated(cover, demand, cap, k)
        res = mclp(cover, demand, k=k, capacity=cap, method="milp")
        check_result(res)
        assert res.objective == pytest.approx(best, abs=1e-6) and res.gap == 0.0
        assert res.objective <= cap[res.chosen].sum() + 1e-6
        assert (res.gain <= cap[res.chosen] + 1e-6).all()
        greedy = mclp(cover, demand, k=k, capacity=cap, method="greedy")
        assert greedy.objective <= best + 1e-6 <= greedy.bound + 2e-6


# --------------------------------------------------------------------------- LSCP


def test_lscp_equals_brute_force_minimum():
    rng = np.random.default_rng(11)
    for _ in range(50):
        cover, demand, _ = random_instance(rng)
        need = (demand > 0) & cover.any(axis=0)
        exact = lscp(cover, demand, method="milp")
        greedy = lscp(cover, demand, method="greedy", max_milp_vars=0)
        unreachable = np.flatnonzero((demand > 0) & ~cover.any(axis=0))
        for res in (exact, greedy):
            check_result(res)
            assert res.unreachable_points.tolist() == unreachable.tolist()
            assert res.unreachable_demand == demand[unreachable].sum()
            assert cover[res.chosen][:, need].any(axis=0).all()
            assert res.covered == demand[need].sum()
        if not need.any():
            assert exact.objective == 0 and len(exact.chosen) == 0
            continue
        size = next(
            s
            for s in range(1, len(cover) + 1)
            if any(
                cover[list(c)][:, need].any(0).all()
                for c in itertools.combinations(range(len(cover)), s)
            )
        )
        assert exact.objective == size == exact.bound and exact.gap == 0.0
        assert greedy.bound <= size <= greedy.objective


def test_lscp_reports_unreachable_and_respects_existing():
    cover = np.array([[1, 1, 0, 0], [0, 0, 1, 0]], float)
    demand = np.array([2.0, 0.0, 4.0, 9.0])
    res = lscp(cover, demand)
    assert res.chosen.tolist() == [1, 0] and res.gain.tolist() == [4.0, 2.0]
    assert res.unreachable_points.tolist() == [3] and res.unreachable_demand == 9.0
    res = lscp(cover, demand, already_covered=np.array([False, False, True, False]))
    assert res.chosen.tolist() == [0] and res.covered == 6.0


# --------------------------------------------------------------------------- larger / limits


def test_greedy_is_fast_and_bounded_on_a_larger_instance():
    rng = np.random.default_rng(3)
    n, m = 2_000, 20_000
    rows = np.repeat(np.arange(n), 60)
    cover = sp.csr_matrix((np.ones(len(rows)), (rows, rng.integers(0, m, len(rows)))), (n, m))
    demand = rng.integers(0, 10, m).astype(float)
    res = mclp(cover, demand, k=30, max_milp_vars=1_000)  # auto -> greedy, no LP
    assert res.method == "greedy" and len(res.chosen) == 30
    assert res.objective <= res.bound <= res.objective / RATIO
    assert (np.diff(res.gain) <= 0).all()
    assert res.gap == pytest.approx((res.bound - res.objective) / res.objective)
    big_k = mclp(cover, demand, k=30, capacity=np.full(n, 50.0), method="greedy", max_milp_vars=0)
    assert big_k.objective <= 30 * 50 and big_k.bound >= big_k.objective
    sc = lscp(cover, demand, method="greedy", max_milp_vars=0)
    assert sc.bound <= sc.objective


def test_time_limited_milp_reports_bound_and_gap():
    rng = np.random.default_rng(0)
    cover = sp.random(300, 3_000, density=0.03, random_state=1, format="csr")
    demand = rng.integers(1, 20, 3_000).astype(float)
    res = mclp(cover, demand, k=10, method="milp", time_limit_s=0.5)
    assert res.bound >= res.objective > 0
    assert res.gap == pytest.approx((res.bound - res.objective) / res.objective)
    assert "Time limit" in res.status or res.gap == 0.0


def test_core_validation_lists_every_problem():
    with pytest.raises(SitingError) as err:
        mclp(np.ones((2, 3)), np.array([1.0, -1.0, np.nan]), k=5, method="best")  # type: ignore[arg-type]
    msg = str(err.value)
    assert isinstance(err.value, GeoMzError) and isinstance(err.value, ValueError)
    assert "`demand`" in msg and "`k` was 5" in msg and "`method`" in msg
    with pytest.raises(SitingError, match="already_covered"):
        lscp(np.ones((2, 3)), np.ones(3), already_covered=np.ones(2, bool))
    with pytest.raises(SitingError, match="capacity"):
        mclp(np.ones((2, 3)), np.ones(3), k=1, capacity=np.array([1.0, -2.0]))
    with pytest.raises(SitingError, match="cover"):
        mclp(np.array([[1.0, np.inf]]), np.ones(2), k=1)


# --------------------------------------------------------------------------- coverage matrix


def lattice_roads(rng: np.random.Generator) -> gpd.GeoDataFrame:
    rows, step = [], 300.0
    for i in range(5):
        for j in range(5):
            p = (X0 + i * step, Y0 + j * step)
            for di, dj in ((1, 0), (0, 1)):
                if i + di < 5 and j + dj < 5:
                    q = (X0 + (i + di) * step, Y0 + (j + dj) * step)
                    rows.append(
                        {
                            "road_id": f"r{len(rows)}",
                            "road_class": str(rng.choice(["primary", "tertiary", "residential"])),
                            "speed_kmh": np.nan,
                            "oneway": bool(rng.random() < 0.25),
                            "geometry": shapely.LineString([p, q]),
                        }
                    )
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)


def points(rng: np.random.Generator, n: int) -> gpd.GeoDataFrame:
    xy = rng.uniform([X0 - 100, Y0 - 100], [X0 + 1300, Y0 + 1300], (n, 2))
    return gpd.GeoDataFrame(geometry=shapely.points(xy), crs=CRS)


@pytest.mark.parametrize("mode", ["walk", "drive"])
def test_coverage_matrix_equals_networkx(mode):
    rng = np.random.default_rng(5)
    net = network_from_roads(lattice_roads(rng), mode=mode)
    cands, dem = points(rng, 6), points(rng, 15)
    max_min = 12.0 if mode == "walk" else 4.0
    cov = coverage_matrix(net, cands, dem, max_min=max_min, max_snap_m=150.0)
    assert cov.shape == (6, 15) and isinstance(cov, sp.csr_matrix)
    cs, ds = snap_points(net, cands, max_snap_m=150.0), snap_points(net, dem, max_snap_m=150.0)
    g = to_networkx(net)
    dense = cov.toarray()
    n_in = 0
    for j in range(6):
        to_j = nx.single_source_dijkstra_path_length(
            g.reverse(copy=False), cs.node[j], weight="time_min"
        )
        for i in range(15):
            t = cs.offset_min[j] + to_j.get(ds.node[i], math.inf) + ds.offset_min[i]
            if t <= max_min and not cs.too_far[j] and not ds.too_far[i]:
                assert dense[j, i] == pytest.approx(max(t, ZERO_TIME_MIN), rel=1e-9)
                n_in += 1
            else:
                assert dense[j, i] == 0.0  # absent
    assert 0 < n_in < 90 and cov.nnz == n_in
    # chunked Dijkstra gives the same matrix
    import geo_mz.network.siting as siting

    old = siting.CELL_BUDGET
    try:
        siting.CELL_BUDGET = 1
        again = coverage_matrix(net, cands, dem, max_min=max_min, max_snap_m=150.0)
    finally:
        siting.CELL_BUDGET = old
    assert (again != cov).nnz == 0


def test_coverage_keeps_zero_times():
    rng = np.random.default_rng(5)
    net = network_from_roads(lattice_roads(rng), mode="walk")
    node = gpd.GeoDataFrame(geometry=[shapely.Point(net.node_xy[0])], crs=CRS)
    cov = coverage_matrix(net, node, node)
    assert cov.nnz == 1 and cov[0, 0] == ZERO_TIME_MIN
    with pytest.raises(SitingError, match="max_min"):
        coverage_matrix(net, node, node, max_min=0)


# --------------------------------------------------------------------------- Pengjiang sample


@pytest.fixture(scope="module")
def pengjiang():
    layers = build_pengjiang().layers
    net = network_from_roads(layers["roads"], mode="walk", walk_speed_kmh=ELDERLY_WALK_SPEED_KMH)
    names = layers["place_names"]
    care = layers["elder_care"]
    return (
        net,
        names[names["category"] == "village_seat"],
        layers["population"],
        care[care["status"] == "operating"],
    )


def test_pengjiang_mclp_milp_and_greedy(pengjiang):
    net, seats, pop, care = pengjiang
    out = {
        method: site_centres(net, seats, pop, existing=care, k=5, method=method)
        for method in ("milp", "greedy")
    }
    total = float(pop["pop_60plus"].sum())
    for method, frame in out.items():
        info = frame.attrs["siting"]
        assert info["method"] == {"milp": "milp-highs", "greedy": "greedy"}[method]
        assert len(frame) == 5 and frame["rank"].tolist() == [1, 2, 3, 4, 5]
        assert frame.crs == "EPSG:4490" and set(frame.index) <= set(seats.index)
        gain = frame["gain_pop_60plus"].to_numpy()
        assert (gain > 0).all() and (np.diff(gain) <= 0).all()
        cum = frame["cumulative_covered"].to_numpy()
        np.testing.assert_allclose(cum, info["already_covered_demand"] + np.cumsum(gain))
        assert info["covered"] == info["already_covered_demand"] + gain.sum() <= total
        assert 0 < info["already_covered_demand"] < total
        assert info["unreachable_demand"] > 0 and info["bound"] >= info["objective"]
        assert info["candidates_too_far"] == 0 and info["existing_too_far"] == 0
        assert json.loads(json.dumps(info)) == info  # plain Python, safe in attrs
    milp_info, greedy_info = out["milp"].attrs["siting"], out["greedy"].attrs["siting"]
    assert milp_info["gap"] == 0.0 and milp_info["objective"] >= greedy_info["objective"]
    assert greedy_info["bound"] >= milp_info["objective"]


def test_pengjiang_capacitated_and_lscp(pengjiang):
    net, seats, pop, care = pengjiang
    seats = seats.assign(places=100.0)
    cap = site_centres(net, seats, pop, existing=care, k=5, capacity_field="places")
    info = cap.attrs["siting"]
    assert info["model"] == "mclp-capacitated" and info["objective"] <= 500.0 + 1e-6
    assert (cap["gain_pop_60plus"] <= 100.0 + 1e-6).all()
    sc = site_centres(net, seats, pop, existing=care, model="lscp")
    info = sc.attrs["siting"]
    assert info["model"] == "lscp" and info["gap"] == 0.0 and len(sc) == info["objective"]
    reach = info["total_demand"] - info["already_covered_demand"] - info["unreachable_demand"]
    assert sc["gain_pop_60plus"].sum() == pytest.approx(reach)


def test_site_centres_validates_before_work(pengjiang):
    net, seats, pop, care = pengjiang
    bad_pop = pop.assign(pop_60plus=-1)
    with pytest.raises(SitingError) as err:
        site_centres(net, seats.set_crs(None, allow_override=True), bad_pop, existing=care, k=0)
    msg = str(err.value)
    assert "no CRS" in msg and "`k` was 0" in msg and "pop_60plus" in msg
    with pytest.raises(SitingError, match=r"\[1, 139\]"):
        site_centres(net, seats, pop, existing=None, k=140)
    with pytest.raises(SitingError, match="is empty"):
        site_centres(net, seats.iloc[:0], pop, existing=None, k=1)
    with pytest.raises(SitingError, match="unknown solver options"):
        site_centres(net, seats, pop, existing=None, k=1, solver="cbc")
    with pytest.raises(SitingError, match="pass None"):
        site_centres(net, seats, pop, existing=None, k=3, model="lscp")
    with pytest.raises(TypeError):
        site_centres(net, seats, pop.drop(columns="geometry"), existing=None, k=1)

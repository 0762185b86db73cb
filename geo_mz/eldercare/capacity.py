"""Capacity of elder-care: beds per 1,000 aged 60+ per unit, E2SFCA access, capacity-aware coverage.

* :func:`beds_by_unit` / :func:`beds_kpis` - beds and nursing-type beds per 1,000 aged 60+
  against GB 50437-2007 (2018) §3.2.1 (≥ 40) and the 14th five-year plan (≥ 55 % nursing-type).
* :func:`e2sfca` - enhanced two-step floating catchment (Luo & Qi 2009) on network times, so a
  centre already over capacity does not count as full access.
* :func:`capacity_adjusted_coverage` - covered population weighted by min(1, capacity / demand)
  of the serving centre, for :func:`geo_mz.eldercare.coverage_by_unit`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy.sparse.csgraph import dijkstra

from geo_mz.core.results import Kpi
from geo_mz.core.standards import BEDS_PER_1000_MIN, NURSING_SHARE_MIN
from geo_mz.core.units import assign_to_units
from geo_mz.eldercare._common import (
    TOL_MIN,
    TOL_PERSONS,
    CoverageError,
    NoCentresError,
    centre_ids,
    check_gdf,
    check_positive,
    coverage_units,
    frame_rows,
    nonneg_numbers,
    pct,
    retimed,
    snap_centres,
)
from geo_mz.eldercare.coverage import select_centres
from geo_mz.network.graph import Network, Snapped
from geo_mz.network.paths import snap_points

__all__ = [
    "TOL_MIN",
    "E2sfcaResult",
    "beds_by_unit",
    "beds_kpis",
    "capacity_adjusted_coverage",
    "decay_weight",
    "e2sfca",
    "pairs_within",
]


class E2sfcaResult(NamedTuple):
    """What :func:`e2sfca` returns: both sides of the floating catchment."""

    population: gpd.GeoDataFrame  #: population + access_score, centres_in_reach, snap_m, too_far
    centres: gpd.GeoDataFrame  #: centres + capacity, demand_*, supply_ratio, over_capacity


def beds_by_unit(
    facilities: gpd.GeoDataFrame,
    units: gpd.GeoDataFrame,
    population: gpd.GeoDataFrame,
    *,
    level: str,
    kinds: Sequence[str] | None = None,
    statuses: Sequence[str] | None = ("operating",),
    pop_field: str = "pop_60plus",
    beds_min_per_1000: float = BEDS_PER_1000_MIN,
    nursing_share_min: float = NURSING_SHARE_MIN,
) -> pd.DataFrame:
    """Beds and nursing-type beds per 1,000 aged 60+ per unit, plus a district total row.

    Parameters
    ----------
    facilities
        ``elder_care`` layer (``beds``, ``nursing_beds``; missing values count 0). A facility's
        beds count in the unit it stands in (by adcode prefix, else spatially).
    units
        ``admin_units``.
    population
        Population points (joined like in :func:`coverage_by_unit`).
    level
        ``"town"`` or ``"village"``.
    kinds, statuses
        Facility filter as in :func:`select_centres` (default every kind, operating only); an
        empty selection is allowed (zero beds is a finding).
    pop_field
        Population column.
    beds_min_per_1000
        Default 40: GB 50437-2007 (2018) §3.2.1 (STANDARDS.md §B).
    nursing_share_min
        Default 0.55: 《"十四五"国家老龄事业发展和养老服务体系规划》 (STANDARDS.md §B).

    Returns
    -------
    pandas.DataFrame
        level, adcode, name, urban_rural, ``pop_field``, n_facilities, beds, nursing_beds,
        beds_per_1000, nursing_beds_per_1000, nursing_share, meets_beds_target (NA without
        people), beds_shortfall (ceil(norm x pop / 1000) - beds, >= 0), meets_nursing_target
        (NA without beds); an ``unassigned`` row when something falls in no unit; ``total``.
    """
    check_gdf(facilities, "facilities", ("kind", "status"))
    check_gdf(population, "population", (pop_field,))
    try:
        fac = select_centres(facilities, kinds=kinds, statuses=statuses)
    except NoCentresError:
        fac = facilities.iloc[:0]
    u = coverage_units(units, level)
    k = len(u) + 1
    fpos, ppos = assign_to_units(fac, u), assign_to_units(population, u)
    fg, pg = np.where(fpos >= 0, fpos, len(u)), np.where(ppos >= 0, ppos, len(u))
    beds_f = nonneg_numbers(fac, "beds", "facilities", nan_ok=True) if "beds" in fac else 0 * fg
    nurse_f = (
        nonneg_numbers(fac, "nursing_beds", "facilities", nan_ok=True)
        if "nursing_beds" in fac
        else 0 * fg
    )
    pop = np.bincount(pg, nonneg_numbers(population, pop_field, "population"), k)
    beds = np.bincount(fg, beds_f, k)
    nursing = np.bincount(fg, nurse_f, k)
    count = np.bincount(fg, minlength=k).astype(float)
    extra = bool((fpos < 0).any() or (ppos < 0).any())
    sel = np.r_[np.arange(len(u)), [len(u)] if extra else []].astype(np.int64)
    rows = frame_rows(u, level, extra)

    def with_total(x: np.ndarray) -> np.ndarray:
        return np.r_[x[sel], x[sel].sum()]

    p, b, nb = with_total(pop), with_total(beds), with_total(nursing)
    safe_p, safe_b = np.where(p > 0, p, np.nan), np.where(b > 0, b, np.nan)
    rows[pop_field] = p
    rows["n_facilities"] = with_total(count).astype(np.int64)
    rows["beds"] = b
    rows["nursing_beds"] = nb
    rows["beds_per_1000"] = b / safe_p * 1000.0
    rows["nursing_beds_per_1000"] = nb / safe_p * 1000.0
    rows["nursing_share"] = nb / safe_b
    need = np.ceil(beds_min_per_1000 * p / 1000.0 - TOL_PERSONS)
    short = np.maximum(need - b, 0.0)
    short[-1] = short[:-1].sum()
    meets_b = pd.array(short <= 0, dtype="boolean")
    meets_b[p <= 0] = pd.NA
    meets_n = pd.array(nb / np.where(b > 0, b, 1.0) >= nursing_share_min - 1e-12, dtype="boolean")
    meets_n[b <= 0] = pd.NA
    rows["beds_target_per_1000"] = float(beds_min_per_1000)
    rows["meets_beds_target"] = meets_b
    rows["beds_shortfall"] = short
    rows["nursing_share_target"] = float(nursing_share_min)
    rows["meets_nursing_target"] = meets_n
    return rows


def beds_kpis(table: pd.DataFrame) -> list[Kpi]:
    """District beds per 1,000 aged 60+ and nursing-bed share of a :func:`beds_by_unit` table.

    Parameters
    ----------
    table
        The beds table.

    Returns
    -------
    list of Kpi
        Two figures against GB 50437 §3.2.1 and the 14th five-year plan.
    """
    tot = table[table["level"] == "total"].iloc[0]
    per, share = float(tot["beds_per_1000"]), float(tot["nursing_share"])
    tb, tn = float(tot["beds_target_per_1000"]), float(tot["nursing_share_target"])
    return [
        Kpi("每千名老人床位", "Beds per 1,000 aged 60+", round(per, 1), "张/千人", f"≥ {tb:g}",
            per >= tb, "GB 50437-2007 (2018) §3.2.1"),
        Kpi("护理型床位占比", "Nursing-type bed share", pct(share), "%", f"≥ {pct(tn):g}",
            share >= tn, '《"十四五"国家老龄事业发展和养老服务体系规划》'),
    ]  # fmt: skip


def decay_weight(t: np.ndarray, t0: float, decay: str) -> np.ndarray:
    """Return E2SFCA's distance decay ``W(t)`` for times ``t`` within the catchment ``t0``.

    Parameters
    ----------
    t
        Times (minutes), at most ``t0`` (larger times are clipped to ``t0``: weight 0 or 1).
    t0
        Catchment (minutes).
    decay
        ``"step"`` (1), ``"linear"`` (``1 - t/t0``) or ``"gaussian"`` (see :func:`e2sfca`).

    Returns
    -------
    numpy.ndarray
        The weights, in [0, 1].
    """
    x = np.clip(t / t0, 0.0, 1.0)
    if decay == "step":
        return np.ones_like(x)
    if decay == "linear":
        return 1.0 - x
    e = math.exp(-0.5)
    return np.clip((np.exp(-0.5 * x * x) - e) / (1.0 - e), 0.0, 1.0)


def pairs_within(
    net: Network, cs: Snapped, ps: Snapped, limit: float, max_block_mb: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return every (centre, point, time) pair within ``limit`` minutes, blockwise.

    The time is the centre's snap walk + the network time + the point's snap walk, kept when
    at most ``limit`` (+ ``TOL_MIN``); the partitioned E2SFCA uses the same arithmetic.

    Parameters
    ----------
    net
        The walking network (its graph in minutes).
    cs, ps
        The centres' and the points' snaps to ``net`` (``node``, ``offset_min``).
    limit
        Catchment (minutes), inclusive.
    max_block_mb
        Memory cap of one dense Dijkstra block (``rows x n_nodes x 8`` bytes).

    Returns
    -------
    tuple of numpy.ndarray
        Centre positions, point positions and times, ordered by centre block, then by the
        centre and node within a block.
    """
    n = net.n_nodes
    order = np.argsort(ps.node, kind="stable")
    counts = np.bincount(ps.node, minlength=n)
    ptr = np.r_[0, np.cumsum(counts)]
    rows = max(1, int(max_block_mb * 2**20 // (8 * n)))
    js, ps_, ts = [], [], []
    for start in range(0, len(cs.node), rows):
        off = cs.offset_min[start : start + rows]
        lim = limit - float(off.min()) + TOL_MIN
        if lim < 0:
            continue
        d = dijkstra(net.graph, directed=True, indices=cs.node[start : start + rows], limit=lim)
        r, c = np.nonzero(d + off[:, None] <= limit + TOL_MIN)
        dd, cnt = d[r, c] + off[r], counts[c]
        tot = int(cnt.sum())
        first = np.repeat(ptr[c] - (np.cumsum(cnt) - cnt), cnt)
        pts = order[first + np.arange(tot)]
        t = np.repeat(dd, cnt) + ps.offset_min[pts]
        ok = t <= limit + TOL_MIN
        js.append(np.repeat(start + r, cnt)[ok])
        ps_.append(pts[ok])
        ts.append(t[ok])
    if not js:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    return np.concatenate(js), np.concatenate(ps_), np.concatenate(ts)


def e2sfca(
    net: Network,
    centres: gpd.GeoDataFrame,
    population: gpd.GeoDataFrame,
    *,
    capacity_field: str = "beds",
    catchment_min: float = 15.0,
    decay: Literal["gaussian", "linear", "step"] = "gaussian",
    demand_per_1000: float = BEDS_PER_1000_MIN,
    pop_field: str = "pop_60plus",
    max_snap_m: float = 500.0,
    walk_speed_kmh: float | None = None,
    max_block_mb: float = 256.0,
) -> E2sfcaResult:
    """Enhanced two-step floating catchment (E2SFCA, Luo & Qi 2009) on network walking times.

    Step 1: ``R_j = S_j / Σ_i P_i W(t_ij)`` over the points within ``catchment_min`` of centre
    ``j``; step 2: ``A_i = Σ_j R_j W(t_ij)``. ``t_ij`` = centre snap walk + network time +
    point snap walk. Hence ``Σ_i P_i A_i = Σ_j S_j`` over centres with any demand.

    Parameters
    ----------
    net
        A walking network.
    centres
        Centres with a capacity column.
    population
        Population points.
    capacity_field
        Capacity ``S_j`` (default ``beds``); missing or negative values are an error.
    catchment_min
        Catchment ``t0`` in minutes (15: the 15-min circle, STANDARDS.md §B), inclusive.
    decay
        ``W(t)`` for ``t <= t0`` (0 beyond): ``"step"`` 1 (classic 2SFCA), ``"linear"``
        ``1 - t/t0``, ``"gaussian"`` ``(exp(-(t/t0)²/2) - exp(-1/2)) / (1 - exp(-1/2))``
        (Dai 2010, the continuous form of Luo & Qi's Gaussian-weighted zones).
    demand_per_1000
        Places needed per 1,000 people, for ``over_capacity`` (default 40, GB 50437 §3.2.1).
    pop_field
        Population column ``P_i``.
    max_snap_m, walk_speed_kmh
        As in :func:`access_times`.
    max_block_mb
        Memory cap of one dense Dijkstra block (``rows x n_nodes x 8`` bytes): the centres are
        processed in blocks of ``max_block_mb MiB / (8 n_nodes)`` rows, each limited to the
        catchment; only (centre, point) pairs within the catchment are kept, so memory is one
        block plus O(pairs).

    Returns
    -------
    E2sfcaResult
        ``population`` + ``access_score`` (places per 1,000 people within reach, decayed;
        ``A_i x 1000``), ``centres_in_reach`` (centres with ``W > 0``), ``snap_m``,
        ``too_far``; ``centres`` + ``capacity``, ``demand_pop`` (people within the catchment),
        ``demand_weighted`` (``Σ P_i W``), ``demand_places`` (demand_weighted x demand_per_1000
        / 1000), ``supply_ratio`` (``R_j``, places per person; NaN without demand),
        ``supply_per_1000``,
        ``over_capacity`` (demand_places > capacity), ``snap_m``, ``too_far``.
    """
    check_gdf(population, "population", (pop_field,))
    check_gdf(centres, "centres", (capacity_field,))
    if decay not in ("gaussian", "linear", "step"):
        raise CoverageError(f"`decay` was {decay!r}; expected 'gaussian', 'linear' or 'step'")
    t0 = check_positive("catchment_min", catchment_min)
    need = float(demand_per_1000)
    cap = nonneg_numbers(centres, capacity_field, "centres")
    net2, v = retimed(net, walk_speed_kmh)
    cs = snap_centres(net2, centres, max_snap_m, v)
    ps = snap_points(net2, population, max_snap_m=max_snap_m, access_speed_kmh=v)
    pop = nonneg_numbers(population, pop_field, "population")
    j, i, t = pairs_within(net2, cs, ps, t0, check_positive("max_block_mb", max_block_mb))
    w = decay_weight(t, t0, decay)
    nc, npop = len(centres), len(population)
    demand_w = np.bincount(j, pop[i] * w, nc)
    ratio = np.where(demand_w > 0, cap / np.where(demand_w > 0, demand_w, 1.0), np.nan)
    access = np.bincount(i, np.nan_to_num(ratio)[j] * w, npop)
    p_out = population.copy()
    p_out["access_score"] = access * 1000.0
    p_out["centres_in_reach"] = np.bincount(i, w > 0, npop).astype(np.int64)
    p_out["snap_m"], p_out["too_far"] = ps.offset_m, ps.too_far
    c_out = centres.copy()
    c_out["capacity"] = cap
    c_out["demand_pop"] = np.bincount(j, pop[i], nc)
    c_out["demand_weighted"] = demand_w
    c_out["demand_places"] = demand_w * need / 1000.0
    c_out["supply_ratio"] = ratio
    c_out["supply_per_1000"] = ratio * 1000.0
    c_out["over_capacity"] = demand_w * need / 1000.0 > cap + 1e-9
    c_out["snap_m"], c_out["too_far"] = cs.offset_m, cs.too_far
    return E2sfcaResult(p_out, c_out)


def capacity_adjusted_coverage(
    times: gpd.GeoDataFrame,
    centres: gpd.GeoDataFrame,
    *,
    capacity_field: str = "beds",
    demand_per_1000: float = BEDS_PER_1000_MIN,
    threshold_min: float = 15.0,
    pop_field: str = "pop_60plus",
    id_field: str = "facility_id",
) -> gpd.GeoDataFrame:
    """Coverage discounted by the capacity of each point's serving (nearest) centre.

    A covered point ``i`` (``walk_min <= threshold_min``) served by centre ``j`` counts
    ``P_i x f_j`` people, with ``f_j = min(1, S_j / D_j)`` and ``D_j`` = demand_per_1000 / 1000 x
    the covered people whose nearest centre is ``j`` (``f_j = 1`` when ``D_j = 0``). An
    over-capacity centre thus covers only the share of its people it has places for.

    Parameters
    ----------
    times
        Output of :func:`access_times` run with the same ``centres``.
    centres
        The centres, with ``capacity_field`` (>= 0, no missing values).
    capacity_field
        Capacity column ``S_j``.
    demand_per_1000
        Places needed per 1,000 people (default 40, GB 50437 §3.2.1).
    threshold_min
        The circle, inclusive.
    pop_field
        Population column.
    id_field
        Centre id column (the index if absent), as in :func:`access_times`.

    Returns
    -------
    geopandas.GeoDataFrame
        ``times`` plus ``capacity_factor`` (``f_j`` of the serving centre; NaN if not covered),
        ``covered_pop`` and ``covered_pop_adjusted`` (persons); :func:`coverage_by_unit` sums the
        latter into ``covered_capacity_adj`` / ``share_capacity_adj``.
    """
    check_gdf(times, "times", ("walk_min", "nearest_centre", pop_field))
    check_gdf(centres, "centres", (capacity_field,))
    ids = pd.Index(centre_ids(centres, id_field))
    cap = nonneg_numbers(centres, capacity_field, "centres")
    pop = nonneg_numbers(times, pop_field, "times")
    walk = pd.to_numeric(times["walk_min"]).to_numpy(dtype=float)
    near = times["nearest_centre"].to_numpy(dtype=object)
    covered = walk <= float(threshold_min) + TOL_MIN
    j = np.full(len(times), -1, dtype=np.int64)
    j[covered] = ids.get_indexer(pd.Index(near[covered], dtype=object))
    unknown = covered & (j < 0)
    if unknown.any():
        bad = sorted({str(x) for x in near[unknown]})[:10]
        raise CoverageError(f"`times` names centres not in `centres`: {bad}")
    demand = np.bincount(j[covered], pop[covered], len(ids)) * float(demand_per_1000) / 1000.0
    factor = np.where(demand > 0, np.minimum(1.0, cap / np.where(demand > 0, demand, 1.0)), 1.0)
    f = np.where(covered, factor[np.maximum(j, 0)], np.nan)
    out = times.copy()
    out["capacity_factor"] = f
    out["covered_pop"] = pop * covered
    out["covered_pop_adjusted"] = np.where(covered, pop * np.nan_to_num(f), 0.0)
    return out

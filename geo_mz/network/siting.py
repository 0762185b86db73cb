"""Siting new centres over candidate sites: maximal covering (MCLP), capacitated MCLP, set covering.

Two entry levels (STYLE.md guideline 15): the core :func:`mclp` / :func:`lscp` take a coverage
matrix (``n_candidates x n_demand``, non-zero = the candidate serves that demand point, e.g. the
travel times of :func:`coverage_matrix`); :func:`site_centres` builds that matrix from layers and
a :class:`~geo_mz.network.Network`. Each input check is written once (``check_*``, with the
solvers in the package-internal :mod:`geo_mz.network._siting_solvers`) and runs once, before
any geometry or solver work.

Solvers (``method``)
--------------------
* ``"milp"``: HiGHS via :func:`scipy.optimize.milp`, ``mip_rel_gap=0`` by default (optimal =
  proven up to HiGHS' absolute gap 1e-6). At the time limit scipy returns status 1, the incumbent
  ``x`` (or None) and ``mip_dual_bound`` (or None): the bound is reported, and the greedy solution
  replaces a worse (or missing) incumbent.
* ``"greedy"``: vectorised greedy with incremental gains: choosing a site subtracts only the newly
  covered demand from the candidates reaching it (one ``bincount`` over those CSC columns), so a
  run touches each non-zero once. Upper bound: the online bound ``f(S_i) + sum of the k largest
  marginal gains`` at every step (at most ``f / (1 - 1/e)``), and the LP relaxation (HiGHS) when
  the model has at most ``max_milp_vars`` variables.
* ``"auto"``: milp when the model has at most ``max_milp_vars`` variables, else greedy.

Exact reduction first: zero-weight points (no demand, or covered by existing centres) are dropped
and points reached by exactly the same candidates merged. ``gap = |objective - bound| /
objective`` as HiGHS defines it; ``chosen`` is in rank order (each site adds the most demand given
those before it; capacitated: by persons assigned).
"""

from __future__ import annotations

from typing import Any, Literal

import geopandas as gpd
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from geo_mz.network._siting_solvers import (
    MODELS,
    SitingError,
    SitingResult,
    Solver,
    check_core,
    check_k,
    check_solver,
    check_values,
    gather,
    raise_problems,
    solve_lscp,
    solve_mclp,
)
from geo_mz.network.graph import Network, Snapped
from geo_mz.network.paths import snap_points

Method = Literal["auto", "milp", "greedy"]
Direction = Literal["to_candidate", "from_candidate"]
STORAGE_CRS = "EPSG:4490"
#: Stored in place of a travel time of exactly 0 min so sparse storage keeps the pair.
ZERO_TIME_MIN = 1e-9
#: Dense cells (float64) per Dijkstra chunk in :func:`coverage_matrix`: 2**24 cells = 128 MB.
CELL_BUDGET = 1 << 24


# --------------------------------------------------------------------------- coverage matrix


def _coverage_from_snaps(
    net: Network, cs: Snapped, ds: Snapped, max_min: float, direction: Direction
) -> sp.csr_matrix:
    ci = np.flatnonzero(~cs.too_far & (cs.offset_min <= max_min))
    di = np.flatnonzero(~ds.too_far & (ds.offset_min <= max_min))
    shape = (len(cs.node), len(ds.node))
    if len(ci) == 0 or len(di) == 0:
        return sp.csr_matrix(shape, dtype=np.float64)
    graph = net.graph if direction == "from_candidate" else net.graph.T.tocsr()
    di = di[np.argsort(ds.node[di], kind="stable")]  # demand points grouped by node
    at_node = np.r_[0, np.cumsum(np.bincount(ds.node[di], minlength=net.n_nodes))]
    chunk = max(1, CELL_BUDGET // net.n_nodes)
    rows, cols, vals = [], [], []
    for s in range(0, len(ci), chunk):
        part = ci[s : s + chunk]
        limit = max_min - cs.offset_min[part].min() - ds.offset_min[di].min()
        dist = dijkstra(graph, directed=True, indices=cs.node[part], limit=max(limit, 0.0))
        row, node = np.nonzero(np.isfinite(dist))  # reached (candidate, node) pairs only
        pos, counts = gather(at_node, node)  # ... expanded to the demand points at each node
        row, dem = np.repeat(row, counts), di[pos]
        t = np.repeat(dist[np.isfinite(dist)], counts) + cs.offset_min[part][row]
        t += ds.offset_min[dem]
        ok = t <= max_min
        rows.append(part[row[ok]])
        cols.append(dem[ok])
        vals.append(np.maximum(t[ok], ZERO_TIME_MIN))
    out = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape
    )
    out.sort_indices()
    return out


def coverage_matrix(
    net: Network,
    candidates: gpd.GeoDataFrame,
    demand: gpd.GeoDataFrame,
    *,
    max_min: float = 15.0,
    walk_speed_kmh: float | None = None,
    max_snap_m: float = 500.0,
    direction: Direction = "to_candidate",
) -> sp.csr_matrix:
    """Travel times in minutes between candidates and demand points within ``max_min``.

    Time = walk from the demand point to its snap node + network time + walk from the
    candidate's node to the candidate (:func:`geo_mz.network.snap_points`). All candidates go into
    one ``scipy.sparse.csgraph.dijkstra(indices=..., limit=...)`` call; when its dense
    ``candidates x network-nodes`` result would exceed ``CELL_BUDGET`` cells (128 MB) they are
    split into chunks of that size, one call each. Only reached nodes are then expanded to the
    demand points snapped to them, so memory beyond that chunk scales with the pairs found.

    Parameters
    ----------
    net
        The network (walk networks: build with ``ELDERLY_WALK_SPEED_KMH`` for elder care).
    candidates, demand
        Point layers with a CRS (reprojected to ``net.crs``).
    max_min
        Coverage threshold in minutes (inclusive).
    walk_speed_kmh
        Speed of both snap legs; default ``net.access_speed_kmh``.
    max_snap_m
        Points farther than this from the network cover / are covered by nothing.
    direction
        ``"to_candidate"`` (people travel to the centre: Dijkstra on the reversed graph) or
        ``"from_candidate"`` (the centre's staff travel out). Equal on walk networks.

    Returns
    -------
    scipy.sparse.csr_matrix
        ``(n_candidates, n_demand)`` float64 minutes; absent = not within ``max_min``. A time of
        exactly 0 is stored as ``ZERO_TIME_MIN`` (1e-9) so the pair is not dropped as a zero.
    """
    if not (np.isfinite(max_min) and max_min > 0):
        raise SitingError(f"`max_min` was {max_min!r} but must be a positive, finite number")
    if direction not in ("to_candidate", "from_candidate"):
        raise SitingError(f"`direction` was {direction!r}; allowed: to_candidate, from_candidate")
    snap = {"max_snap_m": max_snap_m, "access_speed_kmh": walk_speed_kmh}
    cs, ds = snap_points(net, candidates, **snap), snap_points(net, demand, **snap)
    return _coverage_from_snaps(net, cs, ds, float(max_min), direction)


# --------------------------------------------------------------------------- MCLP, LSCP


def mclp(
    cover: sp.spmatrix | np.ndarray,
    demand: np.ndarray,
    *,
    k: int,
    already_covered: np.ndarray | None = None,
    capacity: np.ndarray | None = None,
    method: Method = "auto",
    time_limit_s: float = 60.0,
    max_milp_vars: int = 200_000,
    mip_rel_gap: float = 0.0,
) -> SitingResult:
    """Maximal covering: choose at most ``k`` sites covering the most (not yet covered) demand.

    Parameters
    ----------
    cover
        ``(n_candidates, n_demand)``; a non-zero entry means the candidate covers the point
        (e.g. :func:`coverage_matrix`). Entries must be finite and >= 0.
    demand
        ``(n_demand,)`` persons per point, >= 0.
    k
        Number of new sites, ``1 <= k <= n_candidates``. Fewer are returned when more add
        nothing.
    already_covered
        ``(n_demand,)`` bool: covered by existing centres, so weight 0 in the objective.
    capacity
        ``(n_candidates,)`` persons each new site may serve (``inf`` = no limit): the
        capacitated MCLP ``max sum d_i x_ij`` s.t. ``x_ij <= y_j``, ``sum_j x_ij <= 1``,
        ``sum_i d_i x_ij <= cap_j y_j``, ``sum y_j <= k``. The assignment ``x_ij`` is
        *fractional* (a population point may be split between centres); ``y`` is binary.
        Greedy opens the site able to serve most residual demand, then re-assigns optimally
        among the opened sites (LP = max flow). Existing centres are assumed to serve the
        demand they cover (their capacity is not modelled).
    method
        ``"auto"`` (milp when the model has ``<= max_milp_vars`` variables), ``"milp"``,
        ``"greedy"``.
    time_limit_s
        HiGHS time limit (MILP and LP bound).
    max_milp_vars
        Model size limit of ``"auto"``: candidates + merged demand groups (uncapacitated) or
        candidates + candidate-group pairs (capacitated).
    mip_rel_gap
        HiGHS relative gap for stopping; 0 = prove optimality.

    Returns
    -------
    SitingResult
        ``gain``: marginal demand of each site in rank order (capacitated: persons assigned).
    """
    solver = {"method": method, "time_limit_s": time_limit_s, "max_milp_vars": max_milp_vars}
    solver["mip_rel_gap"] = mip_rel_gap
    cov, d, done, cap, s = check_core(cover, demand, k, already_covered, capacity, solver)
    return solve_mclp(cov, d, done, k, cap, s)


def lscp(
    cover: sp.spmatrix | np.ndarray,
    demand: np.ndarray,
    *,
    already_covered: np.ndarray | None = None,
    method: Method = "auto",
    time_limit_s: float = 60.0,
    max_milp_vars: int = 200_000,
    mip_rel_gap: float = 0.0,
) -> SitingResult:
    """Set covering: the fewest sites covering every reachable point with demand > 0.

    Points already covered need nothing; points with demand > 0 that no candidate reaches are
    reported in ``unreachable_points`` / ``unreachable_demand`` (not silently ignored). Greedy
    (``n_candidates > max_milp_vars``) removes redundant sites afterwards and bounds the optimum
    from below by the largest of: a packing of demand points with disjoint candidate sets, greedy
    size / H(max points per site), and the LP relaxation (when it fits).

    Parameters
    ----------
    cover, demand, already_covered, method, time_limit_s, max_milp_vars, mip_rel_gap
        As in :func:`mclp`; the model has one variable per candidate.

    Returns
    -------
    SitingResult
        ``objective`` = number of sites, ``bound`` = lower bound; ``gain`` in persons.
    """
    solver = {"method": method, "time_limit_s": time_limit_s, "max_milp_vars": max_milp_vars}
    solver["mip_rel_gap"] = mip_rel_gap
    cov, d, done, _, s = check_core(cover, demand, None, already_covered, None, solver)
    return solve_lscp(cov, d, done, s)


# --------------------------------------------------------------------------- from layers


def _numeric(
    gdf: gpd.GeoDataFrame, column: str, name: str, *, allow_inf: bool
) -> tuple[np.ndarray, list[str]]:
    try:
        values = gdf[column].to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        return np.empty(0), [f"`{name}[{column!r}]` must be numeric, got {gdf[column].dtype}"]
    return values, check_values(f"{name}[{column!r}]", values, len(gdf), allow_inf=allow_inf)


def _check_layers(
    layers: dict[str, gpd.GeoDataFrame | None],
    demand_field: str,
    capacity_field: str | None,
    k: int | None,
    model: str,
    max_min: float,
    solver: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray | None, Solver]:
    """All checks of :func:`site_centres`, before any geometry work; raises once."""
    for name, gdf in layers.items():
        if gdf is not None and not isinstance(gdf, gpd.GeoDataFrame):
            raise TypeError(f"`{name}` must be a GeoDataFrame, got {type(gdf).__name__}")
    problems, s = check_solver(solver)
    for name, gdf in layers.items():
        if gdf is None:
            continue
        if gdf.crs is None:
            problems.append(f"`{name}` has no CRS; set it with .set_crs(...)")
        if len(gdf) == 0 and name != "existing":
            problems.append(f"`{name}` is empty")
    cands, pop = layers["candidates"], layers["population"]
    assert cands is not None and pop is not None
    if model not in MODELS:
        problems.append(f"`model` was {model!r} but is expected to be one of {list(MODELS)}")
    if model == "mclp":
        problems += check_k(k, len(cands))
    elif k is not None:
        problems.append(f"`k` was {k!r} but model='lscp' chooses the number of sites; pass None")
    if not (np.isfinite(max_min) and max_min > 0):
        problems.append(f"`max_min` was {max_min!r} but must be a positive, finite number")
    demand = np.empty(0)
    if demand_field not in pop.columns:
        problems.append(f"`population` has no column {demand_field!r}")
    else:
        demand, more = _numeric(pop, demand_field, "population", allow_inf=False)
        problems += more
    cap = None
    if capacity_field is not None:
        if model != "mclp":
            problems.append("`capacity_field` applies to model='mclp' only")
        if capacity_field not in cands.columns:
            problems.append(f"`candidates` has no column {capacity_field!r}")
        else:
            cap, more = _numeric(cands, capacity_field, "candidates", allow_inf=True)
            problems += more
    raise_problems(problems)
    return demand, cap, s


def site_centres(
    net: Network,
    candidates: gpd.GeoDataFrame,
    population: gpd.GeoDataFrame,
    *,
    existing: gpd.GeoDataFrame | None,
    k: int | None = None,
    max_min: float = 15.0,
    capacity_field: str | None = None,
    model: Literal["mclp", "lscp"] = "mclp",
    demand_field: str = "pop_60plus",
    walk_speed_kmh: float | None = None,
    max_snap_m: float = 500.0,
    **solver: Any,
) -> gpd.GeoDataFrame:
    """Choose new centres among candidate sites, from layers (see :func:`mclp`, :func:`lscp`).

    Parameters
    ----------
    net
        Travel network (elder care: walk network at ``ELDERLY_WALK_SPEED_KMH``).
    candidates
        Candidate sites (points): idle schools, village buildings, grid points.
    population
        Demand points with ``demand_field`` (persons, >= 0).
    existing
        Operating centres (points) or None; demand within ``max_min`` of them counts as covered.
    k
        Number of new centres (``model="mclp"``); None for ``"lscp"``.
    max_min
        Travel-time threshold in minutes, snap walks included.
    capacity_field
        Column of ``candidates`` with the places each new centre would have (capacitated MCLP).
    model
        ``"mclp"`` (maximal covering) or ``"lscp"`` (set covering).
    demand_field
        Column of ``population`` with the demand, default aged 60+.
    walk_speed_kmh, max_snap_m
        Snap-leg speed and maximum snap distance (:func:`coverage_matrix`).
    **solver
        ``method``, ``time_limit_s``, ``max_milp_vars``, ``mip_rel_gap`` (see :func:`mclp`).

    Returns
    -------
    geopandas.GeoDataFrame
        The chosen candidates in rank order, in EPSG:4490, index and columns of ``candidates``
        plus ``rank`` (1 = most gain), ``gain_<demand_field>`` and ``cumulative_covered``
        (existing + new up to this rank). ``attrs["siting"]`` holds
        :meth:`geo_mz.network.SitingResult.summary`, ``total_demand`` and the numbers of
        candidates, population points and existing centres farther than ``max_snap_m`` from the
        network (they cover / are covered by nothing).
    """
    layers = {"candidates": candidates, "population": population, "existing": existing}
    demand, cap, s = _check_layers(layers, demand_field, capacity_field, k, model, max_min, solver)
    snap = {"max_snap_m": max_snap_m, "access_speed_kmh": walk_speed_kmh}
    cs, ds = snap_points(net, candidates, **snap), snap_points(net, population, **snap)
    cover = _coverage_from_snaps(net, cs, ds, float(max_min), "to_candidate")
    done, existing_too_far = np.zeros(len(population), bool), 0
    if existing is not None and len(existing):
        es = snap_points(net, existing, **snap)
        by_existing = _coverage_from_snaps(net, es, ds, float(max_min), "to_candidate").tocsc()
        done, existing_too_far = np.diff(by_existing.indptr) > 0, int(es.too_far.sum())
    if model == "mclp":
        assert k is not None
        result = solve_mclp(cover, demand, done, int(k), cap, s)
    else:
        result = solve_lscp(cover, demand, done, s)
    out = candidates.iloc[result.chosen].to_crs(STORAGE_CRS)
    out["rank"] = np.arange(1, len(out) + 1)
    out[f"gain_{demand_field}"] = result.gain
    out["cumulative_covered"] = result.already_covered_demand + np.cumsum(result.gain)
    out.attrs["siting"] = result.summary() | {
        "total_demand": float(demand.sum()),
        "candidates_too_far": int(cs.too_far.sum()),
        "population_too_far": int(ds.too_far.sum()),
        "existing_too_far": existing_too_far,
    }
    return out


__all__ = [
    "CELL_BUDGET",
    "ZERO_TIME_MIN",
    "SitingError",
    "SitingResult",
    "coverage_matrix",
    "lscp",
    "mclp",
    "site_centres",
]

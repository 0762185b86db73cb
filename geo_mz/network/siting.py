"""Siting new centres over candidate sites: maximal covering (MCLP), capacitated MCLP, set covering.

Two entry levels (STYLE.md guideline 15): the core :func:`mclp` / :func:`lscp` take a coverage
matrix (``n_candidates x n_demand``, non-zero = the candidate serves that demand point, e.g. the
travel times of :func:`coverage_matrix`); :func:`site_centres` builds that matrix from layers and
a :class:`~geo_mz.network.Network`. Each input check is written once (``_check_*``) and runs once,
before any geometry or solver work.

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

import math
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse.csgraph import dijkstra

from geo_mz.core.errors import GeoMzError
from geo_mz.network.graph import Network, Snapped
from geo_mz.network.paths import snap_points

Method = Literal["auto", "milp", "greedy"]
Direction = Literal["to_candidate", "from_candidate"]
METHODS: tuple[str, ...] = ("auto", "milp", "greedy")
MODELS: tuple[str, ...] = ("mclp", "lscp")
STORAGE_CRS = "EPSG:4490"
#: Stored in place of a travel time of exactly 0 min so sparse storage keeps the pair.
ZERO_TIME_MIN = 1e-9
#: Dense cells (float64) per Dijkstra chunk in :func:`coverage_matrix`: 2**24 cells = 128 MB.
CELL_BUDGET = 1 << 24
_SOLVER_KEYS = ("method", "time_limit_s", "max_milp_vars", "mip_rel_gap")


class SitingError(GeoMzError, ValueError):
    """Siting inputs are invalid; the message lists every problem found."""


@dataclass(frozen=True, eq=False)
class SitingResult:
    """Outcome of :func:`mclp` or :func:`lscp` (demand in persons, e.g. aged 60+)."""

    chosen: np.ndarray  #: candidate row indices in rank order
    gain: np.ndarray  #: demand each chosen site adds, in that order
    covered: float  #: demand covered by existing + new centres
    objective: float  #: MCLP: demand covered by the new sites; LSCP: number of sites
    bound: float  #: proven upper (MCLP) / lower (LSCP) bound on the optimum
    gap: float  #: |objective - bound| / objective, 0 when proven optimal
    method: str  #: "milp-highs" or "greedy"
    status: str  #: solver message
    model: str = "mclp"  #: "mclp", "mclp-capacitated" or "lscp"
    already_covered_demand: float = 0.0  #: demand covered by existing centres
    unreachable_demand: float = 0.0  #: uncovered demand no candidate reaches
    unreachable_points: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    def summary(self) -> dict[str, Any]:
        """Plain-Python (JSON-able) copy, for ``GeoDataFrame.attrs`` and reports."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["unreachable_n"] = len(out.pop("unreachable_points"))
        return {key: v.tolist() if isinstance(v, np.ndarray) else v for key, v in out.items()}


@dataclass(frozen=True)
class _Solver:
    method: str = "auto"
    time_limit_s: float = 60.0
    max_milp_vars: int = 200_000
    mip_rel_gap: float = 0.0


# --------------------------------------------------------------------------- checks (once each)


def _raise(problems: list[str]) -> None:
    if problems:
        raise SitingError(
            f"{len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems)
        )


def _check_k(k: object, n_candidates: int) -> list[str]:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        return [f"`k` was {k!r} but must be an integer >= 1"]
    if not 1 <= k <= n_candidates:
        return [f"`k` was {k} but must be in [1, {n_candidates}] (the number of candidates)"]
    return []


def _check_values(name: str, values: np.ndarray, n: int, *, allow_inf: bool = False) -> list[str]:
    if values.shape != (n,):
        return [f"`{name}` has shape {values.shape} but {n} values are expected"]
    bad = np.isnan(values) | (values < 0) | (~np.isfinite(values) if not allow_inf else False)
    if bad.any():
        rows = np.flatnonzero(bad)
        return [f"`{name}` must be finite and >= 0; {len(rows)} are not: {values[rows[:5]]}"]
    return []


def _check_solver(solver: dict[str, Any]) -> tuple[list[str], _Solver]:
    unknown = sorted(set(solver) - set(_SOLVER_KEYS))
    problems = [f"unknown solver options {unknown}; allowed: {list(_SOLVER_KEYS)}"] * bool(unknown)
    s = _Solver(**{key: v for key, v in solver.items() if key in _SOLVER_KEYS})
    if not isinstance(s.method, str) or s.method not in METHODS:
        problems.append(f"`method` was {s.method!r} but is expected to be one of {list(METHODS)}")
    if not (isinstance(s.time_limit_s, int | float) and s.time_limit_s > 0):
        problems.append(f"`time_limit_s` was {s.time_limit_s!r} but must be > 0")
    if not (isinstance(s.max_milp_vars, int | np.integer) and s.max_milp_vars >= 0):
        problems.append(f"`max_milp_vars` was {s.max_milp_vars!r} but must be an integer >= 0")
    if not (isinstance(s.mip_rel_gap, int | float) and 0 <= s.mip_rel_gap < 1):
        problems.append(f"`mip_rel_gap` was {s.mip_rel_gap!r} but must be in [0, 1)")
    return problems, s


def _check_core(
    cover: Any,
    demand: Any,
    k: int | None,
    already_covered: Any,
    capacity: Any,
    solver: dict[str, Any],
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, np.ndarray | None, _Solver]:
    """Validate the matrix-level inputs of :func:`mclp` / :func:`lscp`, raising all at once."""
    problems, s = _check_solver(solver)
    try:
        cov = sp.csr_matrix(cover, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SitingError(f"`cover` must be a 2-D sparse or dense matrix ({exc})") from exc
    if np.any(~np.isfinite(cov.data) | (cov.data < 0)):
        problems.append("`cover` entries must be finite and >= 0 (non-zero = covered)")
    n_cand, n_dem = cov.shape
    try:
        d = np.asarray(demand, dtype=np.float64).ravel()
        problems += _check_values("demand", d, n_dem)
    except (TypeError, ValueError):
        problems.append(f"`demand` must be numeric, got {type(demand).__name__}")
    if k is not None:
        problems += _check_k(k, n_cand)
    done = np.zeros(n_dem, bool) if already_covered is None else np.asarray(already_covered)
    if done.shape != (n_dem,) or done.dtype != bool:
        problems.append(f"`already_covered` must be a boolean array of {n_dem} values")
    cap = None if capacity is None else np.asarray(capacity, dtype=np.float64).ravel()
    if cap is not None:
        problems += _check_values("capacity", cap, n_cand, allow_inf=True)
    _raise(problems)
    cov.eliminate_zeros()
    return cov, d, done, cap, s


# --------------------------------------------------------------------------- coverage matrix


def _gather(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions in ``indices``/``data`` of the given compressed rows, and each row's count."""
    starts = indptr[rows]
    counts = indptr[rows + 1] - starts
    offsets = np.repeat(starts - (np.cumsum(counts) - counts), counts)
    return offsets + np.arange(int(counts.sum())), counts


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
        pos, counts = _gather(at_node, node)  # ... expanded to the demand points at each node
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


# --------------------------------------------------------------------------- reduction, greedy


@dataclass(frozen=True)
class _Reduced:
    a: sp.csr_matrix  # (n_candidates, m) 0/1: candidate reaches group
    at: sp.csr_matrix  # (m, n_candidates) its transpose
    w: np.ndarray  # (m,) demand per group
    unreachable: np.ndarray  # demand points with weight > 0 that no candidate reaches


def _reduce(cover: sp.csr_matrix, weight: np.ndarray) -> _Reduced:
    """Drop zero-weight points and merge points reached by exactly the same candidates."""
    csc = cover.tocsc()
    csc.sort_indices()
    reach = np.diff(csc.indptr) > 0
    cols = np.flatnonzero((weight > 0) & reach)
    keys: dict[bytes, int] = {}
    group = np.array(
        [
            keys.setdefault(csc.indices[csc.indptr[c] : csc.indptr[c + 1]].tobytes(), len(keys))
            for c in cols.tolist()
        ],
        dtype=np.int64,
    )
    _, first = np.unique(group, return_index=True)
    a = csc[:, cols[first]].tocsr()
    a.data[:] = 1.0
    w = np.bincount(group, weights=weight[cols], minlength=len(keys)).astype(np.float64)
    return _Reduced(a, a.T.tocsr(), w, np.flatnonzero((weight > 0) & ~reach))


def _top_sum(values: np.ndarray, k: int) -> float:
    v = values[np.isfinite(values) & (values > 0)]
    return float(v.sum() if len(v) <= k else np.partition(v, len(v) - k)[len(v) - k :].sum())


def _greedy(
    r: _Reduced, w: np.ndarray, k: int, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Greedy max coverage: picks, their exact gains, and the best online upper bound."""
    gains = r.a @ w
    if allowed is not None:
        gains[~allowed] = -np.inf
    covered = np.zeros(len(w), bool)
    picks: list[int] = []
    got: list[float] = []
    f, bound = 0.0, math.inf
    for _ in range(k):
        bound = min(bound, f + _top_sum(gains, k))
        j = int(np.argmax(gains))
        if not gains[j] > 0:
            break
        groups = r.a.indices[r.a.indptr[j] : r.a.indptr[j + 1]]
        new = groups[~covered[groups]]
        gain = float(w[new].sum())
        if not gain > 0:
            break
        covered[new] = True
        pos, counts = _gather(r.at.indptr, new)
        gains -= np.bincount(r.at.indices[pos], np.repeat(w[new], counts), minlength=len(gains))
        gains[j] = -np.inf
        picks.append(j)
        got.append(gain)
        f += gain
    rest = r.a @ (w * ~covered)  # exact final marginals (the running ones may carry rounding)
    if allowed is not None:
        rest[~allowed] = 0.0
    rest[picks] = 0.0
    bound = min(bound, f + _top_sum(rest, k))
    return np.array(picks, np.int64), np.array(got, np.float64), bound


def _rank(r: _Reduced, sites: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order sites by marginal gain within the set; sites adding nothing are dropped."""
    allowed = np.zeros(r.a.shape[0], bool)
    allowed[sites] = True
    picks, gains, _ = _greedy(r, r.w, len(sites), allowed)
    return picks, gains


# --------------------------------------------------------------------------- HiGHS


def _highs(
    c: np.ndarray, blocks: list[tuple[Any, float, float]], n_int: int, s: _Solver, relax: bool
) -> tuple[np.ndarray | None, float, bool, str]:
    """Minimise c·x over [0, 1]^n, the first ``n_int`` variables binary unless ``relax``.

    Returns ``x`` (None if no feasible point was found), a valid lower bound (``mip_dual_bound``;
    the LP optimum when relaxed; -inf if none), whether it is proven optimal, and the message.
    """
    integrality = np.r_[np.full(n_int, 0 if relax else 1), np.zeros(len(c) - n_int)]
    cons = [LinearConstraint(sp.csr_matrix(a), lo, hi) for a, lo, hi in blocks]
    options = {"time_limit": float(s.time_limit_s), "mip_rel_gap": float(s.mip_rel_gap)}
    res = milp(c, constraints=cons, integrality=integrality, bounds=Bounds(0, 1), options=options)
    dual = None if relax else getattr(res, "mip_dual_bound", None)
    bound = float(dual) if dual is not None else (float(res.fun) if res.status == 0 else -math.inf)
    return res.x, bound, res.status == 0, str(res.message)


def _mclp_model(
    r: _Reduced, k: int, cap: np.ndarray | None
) -> tuple[np.ndarray, list[tuple[Any, float, float]], np.ndarray]:
    """Objective, constraint blocks and the candidates in the model (those that can add demand).

    Uncapacitated: ``[y, z]``, ``z_g <= sum_j a_jg y_j``. Capacitated: ``[y, x]`` with one ``x``
    per (candidate, group) pair: ``x <= y``, ``sum_j x_gj <= 1``, ``sum_g w_g x_gj <= cap_j y_j``.
    """
    reach = r.a @ r.w
    useful = np.flatnonzero((reach > 0) & (True if cap is None else cap > 0))
    a = r.a[useful]
    (nu, m), p = a.shape, np.arange(a.nnz)
    width = nu + (m if cap is None else a.nnz)
    k_row = (sp.csr_matrix(np.r_[np.ones(nu), np.zeros(width - nu)][None, :]), 0, k)
    if cap is None:
        cover = (sp.hstack([-a.T, sp.identity(m)]), -np.inf, 0)
        return np.r_[np.zeros(nu), -r.w], [cover, k_row], useful
    j_of, g_of, one = np.repeat(np.arange(nu), np.diff(a.indptr)), a.indices, np.ones(a.nnz)
    capu = np.minimum(cap[useful], reach[useful])  # a capacity beyond the reach never binds
    link = sp.hstack([-sp.csr_matrix((one, (p, j_of)), shape=(a.nnz, nu)), sp.identity(a.nnz)])
    once = sp.hstack([sp.csr_matrix((m, nu)), sp.csr_matrix((one, (g_of, p)), shape=(m, a.nnz))])
    load = sp.hstack([-sp.diags(capu), sp.csr_matrix((r.w[g_of], (j_of, p)), (nu, a.nnz))])
    blocks = [(link, -np.inf, 0), (once, -np.inf, 1), (load, -np.inf, 0), k_row]
    return np.r_[np.zeros(nu), -r.w[g_of]], blocks, useful


def _served(r: _Reduced, useful: np.ndarray, x: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Persons each candidate serves in the capacitated solution ``x`` of :func:`_mclp_model`."""
    a, nu = r.a[useful], len(useful)
    j_of = np.repeat(np.arange(nu), np.diff(a.indptr))
    load = np.bincount(j_of, r.w[a.indices] * np.clip(x[nu:], 0, 1), minlength=nu)
    out = np.zeros(r.a.shape[0])
    out[useful] = np.minimum(load * (x[:nu] > 0.5), cap[useful])
    return out


# --------------------------------------------------------------------------- MCLP


def _greedy_capacitated(r: _Reduced, k: int, cap: np.ndarray, s: _Solver) -> np.ndarray:
    """Capacitated greedy: persons served per candidate (0 = not opened).

    Opens the site able to serve most residual demand and fills it, points with the fewest other
    candidates first; then re-assigns optimally among the opened sites (an LP = a max flow).
    """
    residual, served = r.w.copy(), np.zeros(r.a.shape[0])
    degree = np.diff(r.at.indptr).astype(np.int64)
    for _ in range(k):
        pot = np.where(served > 0, -1.0, np.minimum(cap, r.a @ residual))
        j = int(np.argmax(pot))
        if not pot[j] > 0:
            break
        groups = r.a.indices[r.a.indptr[j] : r.a.indptr[j + 1]]
        degree[groups] -= 1
        groups = groups[residual[groups] > 0]
        groups = groups[np.lexsort((-residual[groups], degree[groups]))]
        room = np.maximum(cap[j] - np.cumsum(residual[groups]) + residual[groups], 0.0)
        take = np.minimum(residual[groups], room)
        residual[groups] -= take
        served[j] = take.sum()
    opened = np.flatnonzero(served > 0)
    if len(opened) == 0:
        return served
    sub = _Reduced(r.a[opened], r.at[:, opened], r.w, r.unreachable)
    c, blocks, useful = _mclp_model(sub, len(opened), cap[opened])
    x, _, optimal, _ = _highs(c, blocks, len(useful), s, relax=True)
    if optimal and x is not None:  # y = 1 is optimal in the relaxation, so x is a max flow
        flow = np.zeros_like(served)
        flow[opened] = _served(sub, useful, x, cap[opened])
        if flow.sum() > served.sum():
            return flow
    return served


def _finish(
    r: _Reduced,
    demand: np.ndarray,
    done: np.ndarray,
    model: str,
    sol: tuple[np.ndarray, np.ndarray],
    bound: float,
    method: str,
    status: str,
) -> SitingResult:
    """Assemble the result; clamp the bound to the objective (absorbs solver round-off)."""
    picks, gains = sol
    objective = float(len(picks)) if model == "lscp" else float(gains.sum())
    bound = min(bound, objective) if model == "lscp" else max(bound, objective)
    gap = abs(objective - bound) / objective if objective else (0.0 if bound == 0 else math.inf)
    if gap < 1e-9:
        bound, gap = objective, 0.0
    already = float(demand[done].sum())
    unreachable = float(demand[r.unreachable].sum())
    covered = already + float(gains.sum())
    return SitingResult(
        *(picks, gains, covered, objective, bound, gap, method, status, model),
        *(already, unreachable, r.unreachable),
    )


def _solve_mclp(
    cover: sp.csr_matrix,
    demand: np.ndarray,
    done: np.ndarray,
    k: int,
    cap: np.ndarray | None,
    s: _Solver,
) -> SitingResult:
    r = _reduce(cover, demand * ~done)
    if cap is not None:
        cap = np.where(np.isinf(cap), float(r.w.sum()), cap)
    n_vars = r.a.shape[0] + (r.a.shape[1] if cap is None else r.a.nnz)
    use_milp = s.method == "milp" or (s.method == "auto" and n_vars <= s.max_milp_vars)
    method = "milp-highs" if use_milp else "greedy"
    # Greedy always runs: it is cheap, its bound is valid, and it backs up a time-limited MILP.
    picks, gains, bound = _greedy(r, r.w, k)
    if cap is not None:
        served = _greedy_capacitated(r, k, cap, s)
        picks, gains = np.flatnonzero(served > 0), served[served > 0]
        bound = min(bound, _top_sum(np.minimum(cap, r.a @ r.w), k))
    if len(r.w) == 0:
        status = "nothing to cover: no uncovered demand within reach of any candidate"
    elif use_milp:
        c, blocks, useful = _mclp_model(r, k, cap)
        x, lower, _, message = _highs(c, blocks, len(useful), s, relax=False)
        bound, status = min(bound, -lower), f"HiGHS: {message}"
        if x is None:
            method, status = "greedy", f"greedy solution (HiGHS found none); {status}"
        else:
            if cap is None:
                m_picks, m_gains = _rank(r, useful[x[: len(useful)] > 0.5])
            else:
                served = _served(r, useful, x, cap)
                m_picks, m_gains = np.flatnonzero(served > 0), served[served > 0]
            if gains.sum() > m_gains.sum() * (1 + 1e-9) + 1e-9:
                method, status = "greedy", f"greedy beat the HiGHS incumbent; {status}"
            else:
                picks, gains = m_picks, m_gains
    elif n_vars <= s.max_milp_vars:
        c, blocks, useful = _mclp_model(r, k, cap)
        _, lower, _, message = _highs(c, blocks, len(useful), s, relax=True)
        bound, status = min(bound, -lower), f"greedy; LP-relaxation bound: HiGHS {message}"
    else:
        status = "greedy; online bound (model too large for the LP relaxation)"
    if cap is not None:
        order = np.argsort(-gains, kind="stable")
        picks, gains = picks[order], gains[order]
    model = "mclp" if cap is None else "mclp-capacitated"
    return _finish(r, demand, done, model, (picks, gains), bound, method, status)


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
    cov, d, done, cap, s = _check_core(cover, demand, k, already_covered, capacity, solver)
    return _solve_mclp(cov, d, done, k, cap, s)


# --------------------------------------------------------------------------- LSCP


def _ceil(lower: float) -> int:
    """Integer lower bound from a solver's float bound (0 when there is none)."""
    return math.ceil(lower - 1e-6) if np.isfinite(lower) else 0


def _packing_bound(r: _Reduced) -> int:
    """Lower bound: count groups with pairwise disjoint candidate sets (each needs a site)."""
    used = np.zeros(r.a.shape[0], bool)
    count = 0
    for g in np.argsort(np.diff(r.at.indptr), kind="stable").tolist():
        cands = r.at.indices[r.at.indptr[g] : r.at.indptr[g + 1]]
        if not used[cands].any():
            used[cands] = True
            count += 1
    return count


def _lscp_greedy(r: _Reduced) -> tuple[np.ndarray, int]:
    """Greedy set cover, then drop redundant sites; returns sites and a packing/harmonic bound."""
    picks, _, _ = _greedy(r, np.ones(len(r.w)), r.a.shape[0])
    count = np.asarray(r.at[:, picks].sum(axis=1)).ravel()
    keep = np.ones(len(picks), bool)
    for i in range(len(picks) - 1, -1, -1):  # drop sites whose groups others cover too
        mine = r.a.indices[r.a.indptr[picks[i]] : r.a.indptr[picks[i] + 1]]
        if (count[mine] >= 2).all():
            keep[i] = False
            count[mine] -= 1
    harmonic = sum(1 / i for i in range(1, int(np.diff(r.a.indptr).max()) + 1))
    return picks[keep], max(math.ceil(len(picks) / harmonic - 1e-9), _packing_bound(r))


def _solve_lscp(
    cover: sp.csr_matrix, demand: np.ndarray, done: np.ndarray, s: _Solver
) -> SitingResult:
    r = _reduce(cover, demand * ~done)
    useful = np.flatnonzero(np.diff(r.a.indptr) > 0)
    c, blocks = np.ones(len(useful)), [(r.at[:, useful], 1.0, np.inf)]
    use_milp = s.method == "milp" or (s.method == "auto" and len(useful) <= s.max_milp_vars)
    method = "milp-highs" if use_milp else "greedy"
    sites, bound, optimal, status = None, 0, False, "nothing to cover: no demand within reach"
    if len(r.w) and use_milp:
        x, lower, optimal, message = _highs(c, blocks, len(useful), s, relax=False)
        sites, bound, status = None if x is None else useful[x > 0.5], _ceil(lower), message
        status = f"HiGHS: {message}"
    if len(r.w) and not optimal:
        g_sites, g_bound = _lscp_greedy(r)
        bound = max(bound, g_bound)
        if sites is None or len(g_sites) < len(sites):
            method, sites = "greedy", g_sites
            note = "greedy + redundancy removal; packing/harmonic bound"
            status = f"{note}; {status}" if use_milp else note
        if not use_milp and len(useful) <= s.max_milp_vars:
            _, lower, _, message = _highs(c, blocks, len(useful), s, relax=True)
            bound = max(bound, _ceil(lower))
            status += f"; LP-relaxation bound: HiGHS {message}"
    sol = _rank(r, np.empty(0, np.int64) if sites is None else sites)
    return _finish(r, demand, done, "lscp", sol, float(bound), method, status)


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
    cov, d, done, _, s = _check_core(cover, demand, None, already_covered, None, solver)
    return _solve_lscp(cov, d, done, s)


# --------------------------------------------------------------------------- from layers


def _numeric(
    gdf: gpd.GeoDataFrame, column: str, name: str, *, allow_inf: bool
) -> tuple[np.ndarray, list[str]]:
    try:
        values = gdf[column].to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        return np.empty(0), [f"`{name}[{column!r}]` must be numeric, got {gdf[column].dtype}"]
    return values, _check_values(f"{name}[{column!r}]", values, len(gdf), allow_inf=allow_inf)


def _check_layers(
    layers: dict[str, gpd.GeoDataFrame | None],
    demand_field: str,
    capacity_field: str | None,
    k: int | None,
    model: str,
    max_min: float,
    solver: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray | None, _Solver]:
    """All checks of :func:`site_centres`, before any geometry work; raises once."""
    for name, gdf in layers.items():
        if gdf is not None and not isinstance(gdf, gpd.GeoDataFrame):
            raise TypeError(f"`{name}` must be a GeoDataFrame, got {type(gdf).__name__}")
    problems, s = _check_solver(solver)
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
        problems += _check_k(k, len(cands))
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
    _raise(problems)
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
        :meth:`SitingResult.summary`, ``total_demand`` and the numbers of candidates, population
        points and existing centres farther than ``max_snap_m`` from the network (they cover /
        are covered by nothing).
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
        result = _solve_mclp(cover, demand, done, int(k), cap, s)
    else:
        result = _solve_lscp(cover, demand, done, s)
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

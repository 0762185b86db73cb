"""The siting solvers behind :func:`geo_mz.network.mclp` and :func:`geo_mz.network.lscp`.

Package-internal: the result type and error, the solver options and the input checks (written
once each, shared by the matrix entry points and :func:`geo_mz.network.site_centres`), the exact
reduction of a coverage matrix (zero-weight points dropped, points reached by the same candidates
merged), the greedy with its online bound, the HiGHS MILP / LP-relaxation models, and the MCLP
(plain and capacitated) and LSCP solves that choose between them and rank the chosen sites.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

from geo_mz.core.errors import GeoMzError

METHODS: tuple[str, ...] = ("auto", "milp", "greedy")
MODELS: tuple[str, ...] = ("mclp", "lscp")
SOLVER_KEYS = ("method", "time_limit_s", "max_milp_vars", "mip_rel_gap")


class SitingError(GeoMzError, ValueError):
    """Siting inputs are invalid; the message lists every problem found."""


@dataclass(frozen=True, eq=False)
class SitingResult:
    """Outcome of :func:`geo_mz.network.mclp` or :func:`geo_mz.network.lscp`.

    Demand in persons, e.g. aged 60+.
    """

    chosen: np.ndarray  #: candidate row indices in rank order
    gain: np.ndarray  #: demand each chosen site adds, in that order
    covered: float  #: demand covered by existing + new centres
    objective: float  #: MCLP: demand covered by the new sites; LSCP: number of sites
    bound: float  #: proven upper (MCLP) / lower (LSCP) bound on the optimum
    gap: float  #: ``|objective - bound| / objective``, 0 when proven optimal
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
class Solver:
    method: str = "auto"
    time_limit_s: float = 60.0
    max_milp_vars: int = 200_000
    mip_rel_gap: float = 0.0


# --------------------------------------------------------------------------- checks (once each)


def raise_problems(problems: list[str]) -> None:
    if problems:
        raise SitingError(
            f"{len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems)
        )


def check_k(k: object, n_candidates: int) -> list[str]:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        return [f"`k` was {k!r} but must be an integer >= 1"]
    if not 1 <= k <= n_candidates:
        return [f"`k` was {k} but must be in [1, {n_candidates}] (the number of candidates)"]
    return []


def check_values(name: str, values: np.ndarray, n: int, *, allow_inf: bool = False) -> list[str]:
    if values.shape != (n,):
        return [f"`{name}` has shape {values.shape} but {n} values are expected"]
    bad = np.isnan(values) | (values < 0) | (~np.isfinite(values) if not allow_inf else False)
    if bad.any():
        rows = np.flatnonzero(bad)
        return [f"`{name}` must be finite and >= 0; {len(rows)} are not: {values[rows[:5]]}"]
    return []


def check_solver(solver: dict[str, Any]) -> tuple[list[str], Solver]:
    unknown = sorted(set(solver) - set(SOLVER_KEYS))
    problems = [f"unknown solver options {unknown}; allowed: {list(SOLVER_KEYS)}"] * bool(unknown)
    s = Solver(**{key: v for key, v in solver.items() if key in SOLVER_KEYS})
    if not isinstance(s.method, str) or s.method not in METHODS:
        problems.append(f"`method` was {s.method!r} but is expected to be one of {list(METHODS)}")
    if not (isinstance(s.time_limit_s, int | float) and s.time_limit_s > 0):
        problems.append(f"`time_limit_s` was {s.time_limit_s!r} but must be > 0")
    if not (isinstance(s.max_milp_vars, int | np.integer) and s.max_milp_vars >= 0):
        problems.append(f"`max_milp_vars` was {s.max_milp_vars!r} but must be an integer >= 0")
    if not (isinstance(s.mip_rel_gap, int | float) and 0 <= s.mip_rel_gap < 1):
        problems.append(f"`mip_rel_gap` was {s.mip_rel_gap!r} but must be in [0, 1)")
    return problems, s


def check_core(
    cover: Any,
    demand: Any,
    k: int | None,
    already_covered: Any,
    capacity: Any,
    solver: dict[str, Any],
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, np.ndarray | None, Solver]:
    """Validate the matrix-level inputs of :func:`geo_mz.network.mclp` / ``lscp``, all at once."""
    problems, s = check_solver(solver)
    try:
        cov = sp.csr_matrix(cover, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SitingError(f"`cover` must be a 2-D sparse or dense matrix ({exc})") from exc
    if np.any(~np.isfinite(cov.data) | (cov.data < 0)):
        problems.append("`cover` entries must be finite and >= 0 (non-zero = covered)")
    n_cand, n_dem = cov.shape
    try:
        d = np.asarray(demand, dtype=np.float64).ravel()
        problems += check_values("demand", d, n_dem)
    except (TypeError, ValueError):
        problems.append(f"`demand` must be numeric, got {type(demand).__name__}")
    if k is not None:
        problems += check_k(k, n_cand)
    done = np.zeros(n_dem, bool) if already_covered is None else np.asarray(already_covered)
    if done.shape != (n_dem,) or done.dtype != bool:
        problems.append(f"`already_covered` must be a boolean array of {n_dem} values")
    cap = None if capacity is None else np.asarray(capacity, dtype=np.float64).ravel()
    if cap is not None:
        problems += check_values("capacity", cap, n_cand, allow_inf=True)
    raise_problems(problems)
    cov.eliminate_zeros()
    return cov, d, done, cap, s


# --------------------------------------------------------------------------- sparse rows


def gather(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions in ``indices``/``data`` of the given compressed rows, and each row's count."""
    starts = indptr[rows]
    counts = indptr[rows + 1] - starts
    offsets = np.repeat(starts - (np.cumsum(counts) - counts), counts)
    return offsets + np.arange(int(counts.sum())), counts


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
        pos, counts = gather(r.at.indptr, new)
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
    c: np.ndarray, blocks: list[tuple[Any, float, float]], n_int: int, s: Solver, relax: bool
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


def _greedy_capacitated(r: _Reduced, k: int, cap: np.ndarray, s: Solver) -> np.ndarray:
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


def solve_mclp(
    cover: sp.csr_matrix,
    demand: np.ndarray,
    done: np.ndarray,
    k: int,
    cap: np.ndarray | None,
    s: Solver,
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


def solve_lscp(
    cover: sp.csr_matrix, demand: np.ndarray, done: np.ndarray, s: Solver
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


__all__ = [
    "METHODS",
    "MODELS",
    "SOLVER_KEYS",
    "SitingError",
    "SitingResult",
    "Solver",
    "check_core",
    "check_k",
    "check_solver",
    "check_values",
    "gather",
    "raise_problems",
    "solve_lscp",
    "solve_mclp",
]

"""Capacitated assignment by min-cost flow: people to shelters, relief kits to villages.

One small helper shared by the evacuation assignment (:mod:`geo_mz.relief.shelters`) and the relief
allocation (:mod:`geo_mz.relief.delivery`). Supply points ``i`` (people, demand for kits) are
assigned to
capacitated targets ``j`` (shelter places, store stock) along the allowed pairs only, moving as
much as capacity allows and, among all such maximum assignments, the one of least total cost.

Two engines solve the same network:

* ``"ortools"``: OR-Tools ``SimpleMinCostFlow.solve_max_flow_with_min_cost`` (C++, fast; the
  default for large problems such as population cells to shelters);
* ``"networkx"``: :func:`networkx.network_simplex` on the same graph balanced by an "unassigned"
  node whose arcs cost more than any augmenting path, so the optimum first maximises the flow.

The tests solve problems with both and compare, which is the cross-check the issue asks for.
Costs are minutes; both engines need integers, so they are scaled by ``cost_scale`` (100 = 0.01
minute resolution) and rounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from geo_mz.core.errors import GeoMzError

Engine = Literal["ortools", "networkx"]


class FlowError(GeoMzError, ValueError):
    """The assignment problem is malformed (negative amounts, bad indices) or has no solution."""


@dataclass(frozen=True)
class Assignment:
    """Result of :func:`assign`.

    ``flows`` has one row per used pair: ``i``, ``j``, ``amount``, ``cost`` (unscaled, per unit).
    ``unassigned`` ``(n_i,)`` is what each supply point could not place; ``load`` ``(n_j,)`` is what
    each target received. ``total_cost`` is the sum of amount × cost.
    """

    flows: pd.DataFrame
    unassigned: np.ndarray
    load: np.ndarray
    total_cost: float


def _check(
    supply: np.ndarray, capacity: np.ndarray, i: np.ndarray, j: np.ndarray, cost: np.ndarray
) -> None:
    problems = []
    if np.any(supply < 0):
        problems.append(f"supply has negative values at {np.flatnonzero(supply < 0)[:10]}")
    if np.any(capacity < 0):
        problems.append(f"capacity has negative values at {np.flatnonzero(capacity < 0)[:10]}")
    if not (len(i) == len(j) == len(cost)):
        problems.append(f"pairs i, j, cost have lengths {len(i)}, {len(j)}, {len(cost)}")
    elif len(i):
        if i.min() < 0 or i.max() >= len(supply):
            problems.append(f"pair supply index outside [0, {len(supply)})")
        if j.min() < 0 or j.max() >= len(capacity):
            problems.append(f"pair target index outside [0, {len(capacity)})")
        if np.any(~np.isfinite(cost) | (cost < 0)):
            problems.append("pair costs must be finite and >= 0")
    if problems:
        raise FlowError("assignment problem is malformed:\n  - " + "\n  - ".join(problems))


def assign(
    supply: np.ndarray,
    capacity: np.ndarray,
    pair_i: np.ndarray,
    pair_j: np.ndarray,
    pair_cost: np.ndarray,
    *,
    engine: Engine = "ortools",
    cost_scale: float = 100.0,
) -> Assignment:
    """Assign integer supply to capacitated targets at least cost, as much as capacity allows.

    Parameters
    ----------
    supply
        ``(n_i,)`` non-negative integers to place (people, kits).
    capacity
        ``(n_j,)`` non-negative integers each target can take.
    pair_i, pair_j, pair_cost
        The allowed pairs and their unit cost (minutes, >= 0). A supply point with no pair stays
        unassigned; nothing is assigned outside the pairs (e.g. beyond a distance limit).
    engine
        ``"ortools"`` (default) or ``"networkx"``; same optimum, see the module docstring.
    cost_scale
        Costs are multiplied by this and rounded to integers for the solvers.

    Returns
    -------
    Assignment
        The flows, what stayed unassigned per supply point and the load per target.
    """
    supply = np.asarray(supply).astype(np.int64)
    capacity = np.asarray(capacity).astype(np.int64)
    i = np.asarray(pair_i, dtype=np.int64).ravel()
    j = np.asarray(pair_j, dtype=np.int64).ravel()
    cost = np.asarray(pair_cost, dtype=np.float64).ravel()
    _check(supply, capacity, i, j, cost)
    icost = np.rint(cost * cost_scale).astype(np.int64)
    if engine == "ortools":
        amount = _solve_ortools(supply, capacity, i, j, icost)
    elif engine == "networkx":
        amount = _solve_networkx(supply, capacity, i, j, icost)
    else:
        raise FlowError(f"unknown engine {engine!r}; use 'ortools' or 'networkx'")
    used = amount > 0
    flows = pd.DataFrame({"i": i[used], "j": j[used], "amount": amount[used], "cost": cost[used]})
    placed = np.bincount(flows["i"], weights=flows["amount"], minlength=len(supply))
    load = np.bincount(flows["j"], weights=flows["amount"], minlength=len(capacity))
    return Assignment(
        flows=flows.reset_index(drop=True),
        unassigned=(supply - placed).astype(np.int64),
        load=load.astype(np.int64),
        total_cost=float((flows["amount"] * flows["cost"]).sum()),
    )


def _solve_ortools(
    supply: np.ndarray, capacity: np.ndarray, i: np.ndarray, j: np.ndarray, icost: np.ndarray
) -> np.ndarray:
    from ortools.graph.python import min_cost_flow

    ni, nj = len(supply), len(capacity)
    sink = ni + nj
    smcf = min_cost_flow.SimpleMinCostFlow()
    big = int(supply.sum())
    pair_arcs = smcf.add_arcs_with_capacity_and_unit_cost(
        i, ni + j, np.full(len(i), big, dtype=np.int64), icost
    )
    smcf.add_arcs_with_capacity_and_unit_cost(
        np.arange(ni, ni + nj), np.full(nj, sink), capacity, np.zeros(nj, dtype=np.int64)
    )
    smcf.set_nodes_supplies(
        np.arange(sink + 1), np.concatenate([supply, np.zeros(nj, np.int64), [-big]])
    )
    status = smcf.solve_max_flow_with_min_cost()
    if status != smcf.OPTIMAL:
        raise FlowError(f"OR-Tools min-cost flow failed with status {status}")
    return np.asarray(smcf.flows(pair_arcs), dtype=np.int64)


def _solve_networkx(
    supply: np.ndarray, capacity: np.ndarray, i: np.ndarray, j: np.ndarray, icost: np.ndarray
) -> np.ndarray:
    import networkx as nx

    ni, nj = len(supply), len(capacity)
    # An augmenting path visits each node at most once, so its cost is below this: routing a
    # unit through "unassigned" is always worse than any way of placing it (max flow first).
    penalty = int(icost.max(initial=0)) * (ni + nj + 1) + 1
    g = nx.DiGraph()
    total = int(supply.sum())
    g.add_node("sink", demand=total)
    g.add_node("unassigned", demand=0)
    for a in range(ni):
        g.add_node(("i", a), demand=-int(supply[a]))
        g.add_edge(("i", a), "unassigned", weight=penalty)
    for b in range(nj):
        g.add_edge(("j", b), "sink", weight=0, capacity=int(capacity[b]))
    g.add_edge("unassigned", "sink", weight=0)
    # Parallel pairs (same i and j) keep their cheapest cost; flows go back to the first of them.
    first: dict[tuple[int, int], int] = {}
    for k in np.argsort(icost, kind="stable").tolist():
        key = (int(i[k]), int(j[k]))
        if key not in first:
            first[key] = k
            g.add_edge(("i", key[0]), ("j", key[1]), weight=int(icost[k]))
    _, flow = nx.network_simplex(g)
    amount = np.zeros(len(i), dtype=np.int64)
    for (a, b), k in first.items():
        amount[k] = flow[("i", a)].get(("j", b), 0)
    return amount


__all__ = ["Assignment", "FlowError", "assign"]

"""One trip of a store's vehicles: an OR-Tools capacitated vehicle-routing problem with time.

The routing half of :mod:`geo_mz.relief.delivery` (which plans the trips one after another and
reports
them). Location 0 is the store, 1..m the demand points it serves; a point's kits come as
*pieces* (:func:`pieces`) so that it can be split between vehicles. Each vehicle leaves the
store at its own minute (a truck back from an earlier trip leaves later), routes are open (they
end at the last unloading), arrival after the target is a soft bound (late stops are served and
flagged by the caller), and a piece is dropped only when no vehicle has room for it: the caller
carries dropped kits over to the next trip.

Objective: dropped kits ≫ late seconds (100 each) > span (10 per second) > driving seconds.
First solution PATH_CHEAPEST_ARC, then GUIDED_LOCAL_SEARCH for ``time_limit_s``, at most 0.05 s
per piece (small problems converge in well under a second). The model works in whole seconds;
the caller recomputes reported times in float minutes along the chosen routes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from geo_mz.core.errors import GeoMzError

# Routing objective weights (local choice): a late second costs 100, one second less until a
# vehicle's last unloading is worth 10 seconds of extra driving; dropping a kit costs more than
# any lateness it could avoid (set per problem in solve_trip).
LATE_PER_S = 100
SPAN_PER_S = 10


class RoutingModelError(GeoMzError, ValueError):
    """A routing problem too large for one model (its penalties would overflow)."""


def pieces(kits: int, capacity: int) -> list[int]:
    """Cut a stop's kits into routing pieces: whole vehicle loads, then 1, 2, 4, ... + the rest.

    Any amount up to the remainder is a sum of some of its pieces, so the solver can split a stop
    between vehicles in any proportion and fill every vehicle exactly.
    """
    out = [capacity] * ((kits - 1) // capacity) if kits > 0 else []
    rest, size = kits - sum(out), 1
    while rest >= size:
        out.append(size)
        rest, size = rest - size, size * 2
    return out + [rest] * (rest > 0)


def visits(seq: Sequence[int], loc: Sequence[int], kits: Sequence[int]) -> list[list[int]]:
    """Merge pieces unloaded in a row at one location into visits ``[location, kits]``."""
    out: list[list[int]] = []
    for q in seq:
        if out and out[-1][0] == loc[q]:
            out[-1][1] += kits[q]
        else:
            out.append([loc[q], kits[q]])
    return out


def solve_trip(
    leg_min: np.ndarray,
    piece_loc: np.ndarray,
    piece_kits: np.ndarray,
    capacity: int,
    start_min: Sequence[float],
    target_min: float,
    service_min: float,
    time_limit_s: float,
) -> tuple[list[list[int]], str]:
    """Route one trip of ``len(start_min)`` vehicles from the store (location 0).

    Parameters
    ----------
    leg_min
        ``(m + 1, m + 1)`` driving minutes between the store and the points (inf: no road).
    piece_loc, piece_kits
        Location (1..m) and kits of each piece.
    capacity
        Kits per vehicle.
    start_min
        Minute after the dispatch order at which each vehicle leaves the store.
    target_min
        Soft upper bound on every arrival.
    service_min
        Unloading minutes per visit.
    time_limit_s
        Guided-local-search time (capped at 0.05 s per piece).

    Returns
    -------
    tuple
        Pieces (indices into ``piece_loc``) in visiting order per vehicle, and the OR-Tools
        status name.
    """
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    vehicles = len(start_min)
    n = 1 + len(piece_loc)
    loc = np.concatenate([[0], piece_loc]).astype(np.int64)
    sec = np.where(np.isfinite(leg_min), np.rint(leg_min * 60.0), -1).astype(np.int64)
    service = round(service_min * 60)
    start = [round(t * 60) for t in start_min]
    horizon = max(start) + n * (int(sec.max()) + service) + 1
    sec[sec < 0] = horizon + 1  # an unreachable leg cannot fit in the horizon
    transit = sec[loc][:, loc]
    other = loc[:, None] != loc[None, :]
    other[0, :] = False  # no unloading at the store
    transit += np.where(other, service, 0)  # unload once per visit, when leaving for elsewhere
    transit[1:, 0] = service  # open routes: "back to the store" is only the last unloading
    transit[0, 0] = 0
    manager = pywrapcp.RoutingIndexManager(n, vehicles, 0)
    routing = pywrapcp.RoutingModel(manager)
    tr = routing.RegisterTransitMatrix(transit.tolist())
    routing.SetArcCostEvaluatorOfAllVehicles(tr)
    load = routing.RegisterUnaryTransitVector([0, *piece_kits.tolist()])
    routing.AddDimensionWithVehicleCapacity(load, 0, [capacity] * vehicles, True, "Load")
    routing.AddDimension(tr, 0, horizon, False, "Time")
    time = routing.GetDimensionOrDie("Time")
    time.SetGlobalSpanCostCoefficient(SPAN_PER_S)
    for v, t0 in enumerate(start):
        time.CumulVar(routing.Start(v)).SetRange(t0, t0)
    # dropping a kit must cost more than the lateness, span and driving serving it can add
    drop_per_kit = (n + 2) * horizon * (LATE_PER_S + SPAN_PER_S + 1) + 1
    if drop_per_kit * int(piece_kits.sum()) > 2**61:
        raise RoutingModelError(
            f"{n - 1} routing pieces are too many for one model: split the demand"
        )
    target_s = round(target_min * 60)
    for node in range(1, n):
        idx = manager.NodeToIndex(node)
        time.SetCumulVarSoftUpperBound(idx, target_s, LATE_PER_S)
        routing.AddDisjunction([idx], drop_per_kit * int(piece_kits[node - 1]))
    p = pywrapcp.DefaultRoutingSearchParameters()
    p.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC
    p.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    p.time_limit.FromMilliseconds(max(1, round(min(time_limit_s, 0.05 * n) * 1000)))
    sol = routing.SolveWithParameters(p)
    status = routing_enums_pb2.RoutingSearchStatus.Value.Name(routing.status())
    if sol is None:
        return [[] for _ in range(vehicles)], status
    routes = []
    for v in range(vehicles):
        seq, idx = [], sol.Value(routing.NextVar(routing.Start(v)))
        while not routing.IsEnd(idx):
            seq.append(manager.IndexToNode(idx) - 1)
            idx = sol.Value(routing.NextVar(idx))
        routes.append(seq)
    return routes, status


__all__ = ["LATE_PER_S", "SPAN_PER_S", "RoutingModelError", "pieces", "solve_trip", "visits"]

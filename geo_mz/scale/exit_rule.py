"""The exit rule: a route that leaves a part's cut is no faster than its way back in.

Inside the cut a part's network is the whole network: every road with an end inside the cut
meets it, so every whole-network node inside the cut is a node of the part, and every road
between two such nodes is a road of the part. A route of the whole network to a point that
passes any node not strictly inside the cut has a last such node ``v``; the road from ``v``
into the cut meets the cut, so ``v`` is a node of the part, and the rest of the route lies in
the part. The route therefore reaches the point's node no sooner than the part's least time
from any of its nodes not strictly inside the cut (:func:`exit_times`: one search).

So when a point's time in the part is below that (plus the point's own leg), the point's snap
circle lies inside the cut (it snaps to the same node on both networks) and the winning source
is *sure* (its snap circle inside the cut: its snap, and so its route, are the whole's): every
source's route that leaves the cut is slower, every source whose whole-network node is inside
the cut snaps there in the part too and reaches the point no faster than in the part, and the
answer is the whole's. On a province whose counties' roads are joined, a county's cut is left
only by the few roads across its border; the room rule (``s + 2·t·v``, see
:mod:`geo_mz.scale.partition`) asks for a buffer twice the longest time's reach instead.

:func:`walk_exit_proven` is the rule for walking times (coverage and the jobs built on its
times); :mod:`geo_mz.scale.relief_proof` applies it to relief rows, store by store.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from geo_mz.network import sptree
from geo_mz.scale.cut import SLACK_M, Cut


def exit_times(
    net: Any,
    cut: Cut,
    *,
    leaving: bool = False,
    limit_min: float = np.inf,
    also: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Per node of a part's network: the least time (min) from outside the cut to it.

    One search from every node of the part not strictly inside the cut (the outer ends of the
    roads that cross its edge; anchors' ends), along the arcs' direction (sources to points).
    A route of the whole network that passes any node outside the cut reaches a node ``n``
    inside it no sooner than ``exit_times(net, cut)[n]`` (module docstring).

    Parameters
    ----------
    net
        The part's network (its node coordinates in the cut's CRS).
    cut
        The round's cut.
    leaving
        Instead, the least time from each node to a node outside the cut (the search runs
        against the arcs' direction): a route from a node inside the cut that leaves it
        takes at least that long to.
    limit_min
        Stop the search beyond this time: farther nodes get ``inf`` (a lower bound still
        holds for any time below the limit).
    also
        More sources: ``(nodes, minutes)``, each node starting at its minutes (the snap legs
        of sources the part lacks, :func:`walk_exit_proven`).

    Returns
    -------
    numpy.ndarray
        Minutes per node; ``inf`` where no node outside the cut leads to it (or from it)
        within ``limit_min``.
    """
    x, y = net.node_xy[:, 0], net.node_xy[:, 1]
    src = np.flatnonzero(~shapely.contains_xy(cut.polygon, x, y))
    offset = np.zeros(len(src))
    if also is not None and len(also[0]):
        src = np.concatenate([src, np.asarray(also[0], dtype=src.dtype)])
        offset = np.concatenate([offset, np.asarray(also[1], dtype=float)])
    if not len(src):
        return np.full(len(net.node_xy), np.inf)
    graph = net.graph.T.tocsr() if leaving else net.graph
    forest = sptree.grow(graph, src, offset, check_weights=False, limit_min=limit_min)
    return forest.time_at(np.arange(len(x)))


def walk_exit_proven(
    net: Any,
    cut: Cut,
    xy: np.ndarray,
    node: np.ndarray,
    snap_m: np.ndarray,
    offset_min: np.ndarray,
    travel_min: np.ndarray,
    winner_sure: np.ndarray,
    vmax_kmh: float,
    absent_xy: np.ndarray,
    *,
    cap_min: float = np.inf,
) -> np.ndarray:
    """Which walking answers the exit rule proves (see the module docstring).

    A point's answer is proven when its snap circle lies inside the cut, its winning source is
    sure, and its time is strictly below the least time by any route the part may lack: one
    that enters the cut from outside, or one from a source the part lacks (``absent_xy``, the
    sources outside the cut). Such a source snaps on the whole network either to a node not
    strictly inside the cut (its routes enter from outside) or to its nearest node of the
    part, with the same leg; so the search of :func:`exit_times` starts from those nodes too,
    each after its source's leg at ``v_max``. Strictly below: a tie could name another source.

    An answer at or beyond ``cap_min`` (``inf``: unreachable) only needs to be shown at or
    beyond it on the whole network: every route the part has is, and the part lacks none
    faster when the least time of those it may lack is at least the cap. So a point the part
    cannot reach is proven unreachable when no route can enter the cut nor start from a
    source the part lacks.

    Parameters
    ----------
    net
        The part's walking network (node coordinates in the cut's CRS).
    cut
        The round's cut.
    xy
        ``(n, 2)`` points in the cut's CRS.
    node, snap_m, offset_min
        Their snaps on ``net``: node, metres and minutes.
    travel_min
        Their times in the part (``inf`` when unreachable).
    winner_sure
        Per point, whether the source that won it has its snap circle inside the cut.
    vmax_kmh
        The speed of the sources' snap legs (the walking speed).
    absent_xy
        ``(k, 2)`` the whole layer's sources the part did not search from (outside the cut),
        in the cut's CRS.
    cap_min
        Times at or beyond this need only be proven so (a ring's widest threshold).

    Returns
    -------
    numpy.ndarray
        Bool per point.
    """
    travel = np.asarray(travel_min, dtype=float)
    inside = snap_m + SLACK_M <= cut.room_m(xy)
    capped = inside & (travel >= cap_min)
    exact = inside & ~capped & np.asarray(winner_sure, dtype=bool)
    if not (exact.any() or capped.any()):
        return exact
    also = None
    if len(absent_xy):
        d, n = net.node_tree.query(np.asarray(absent_xy, dtype=float))
        # Less the node merging's slack: the whole network's node may sit that much nearer.
        legs = np.maximum(np.asarray(d, dtype=float) - SLACK_M, 0.0) / (vmax_kmh * 1000.0 / 60.0)
        also = (np.asarray(n), legs)
    # Only whether the way in is slower than each answer (or the cap) matters: search no
    # further than that.
    need = np.where(capped, cap_min, travel)[exact | capped]
    limit = float(need.max()) + 1.0 if np.isfinite(need).all() else np.inf
    into = exit_times(net, cut, limit_min=limit, also=also)[node] + offset_min
    return (exact & (travel < into)) | (capped & (into >= cap_min))


def winners_sure(net: Any, cut: Cut, source_xy: np.ndarray, winner: np.ndarray) -> np.ndarray:
    """Per answer: whether its winning source (``winner``: its position, -1 for none) is sure.

    A source is sure when its snap circle lies inside the cut (every whole-network node
    within it is a node of the part): it snaps to the same node on both networks.
    """
    winner = np.asarray(winner)
    out = np.zeros(len(winner), dtype=bool)
    won = winner >= 0
    if not won.any():
        return out
    sxy = np.asarray(source_xy, dtype=float).reshape(-1, 2)
    d, _ = net.node_tree.query(sxy)
    sure = np.asarray(d, dtype=float) + SLACK_M <= cut.room_m(sxy)
    out[won] = sure[winner[won]]
    return out


def absent_sources(source_xy: np.ndarray, cut: Cut) -> np.ndarray:
    """Return the sources outside the cut (``(k, 2)``, the cut's CRS): a part lacks them."""
    sxy = np.asarray(source_xy, dtype=float).reshape(-1, 2)
    shapely.prepare(cut.polygon)
    return sxy[~shapely.intersects_xy(cut.polygon, sxy[:, 0], sxy[:, 1])]


__all__ = ["absent_sources", "exit_times", "walk_exit_proven", "winners_sure"]

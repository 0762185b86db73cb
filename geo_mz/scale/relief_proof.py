"""The relief parts' proof, sharpened: each answer against its own stores; anchors; exits.

:func:`geo_mz.scale.partition.proven` proves a relief part's answers (the proof rule is in
:mod:`geo_mz.scale.partition`). Its complete-component rule bounds every answer of a component
by the snap leg ``d / v_max`` of the nearest *unsure* source snapping into it, a store whose snap
circle is not inside the cut. A part snaps every store of the layer onto its network, so a store
far outside the cut snaps to the nearest node of the part, often a node of a component lying
wholly inside it (a county's roads, when a province's networks are not joined), with a leg of
tens of kilometres. On Guangdong's 123 generated counties this left 3–76 answers unproven in
27 parts, and each of them read and searched a cut of twice the buffer (four times the roads).
Two sharper rules, both on the same cut:

**Each answer against its own stores** (:func:`relief_proven`). An audit row (a point and a
target) is the fastest of its *candidate* stores only: those of the target's level serving the
point's area (``match="own"``), or every store of that level (``"any"``); the searches of other
targets and areas never touch it. On the whole network its candidates snapping into the point's
complete component are the part's sure ones and some of the part's unsure ones (each of those
either snaps to the same node as in the part or outside the component: see
:func:`geo_mz.scale.partition.exact_below_min`). A row whose time is below the snap leg of
every unsure *candidate* snapping into its component is therefore attained by a sure store on
both networks, and is the whole's; with no such candidate every answer of the component is
(unreachable ones too). This is the complete-component rule with the sources narrowed to the
row's candidates; the point's own snap circle must lie inside the cut, as there. A county's
own store lies in the county: on Guangdong the rule proves every row of the first round.

**Anchor roads** (:class:`Anchors`), for rows still bounded by an unsure candidate (stores of
other counties under a ``match="any"`` target). For such a store, a road of the whole layer
with a drivable end nearer to the store than its leg ``d`` (less
:data:`geo_mz.scale.partition.SLACK_M`) is read and added to the part's roads:

- an anchor meets no part of the cut: every road meeting the cut is in the part, and an end
  nearer than every node of the part would be a node of the part;
- so the network is the whole network inside the cut plus some whole-network roads outside it.
  A route proven by its room never leaves the cut, and a store whose snap circle is inside the
  cut snaps as before (no anchor end lies inside the circle): the room rule is unchanged;
- a complete component has all its nodes inside the cut, and an anchor, whose ends are outside,
  never joins it. A store snapping elsewhere in the part snaps elsewhere on the whole network
  too (its whole-network nearest node would be a node of the part, and nearer). The anchored
  store now snaps to its anchor's end or nearer, outside the component, and bounds it no more.

**The exit rule** (:mod:`geo_mz.scale.exit_rule`), for the rows both rules above leave: a
route that leaves the cut has a first and a last node not strictly inside it, both nodes of the
part. A sure candidate reaches the first no sooner than in the part, the last no sooner than
that plus the straight line between them at the top speed; an unsure one reaches the last no
sooner than its straight line; from the last node on, the route lies in the part. One search
per group of candidates, from the nodes outside the cut each starting at that least time,
bounds every route that leaves the cut (:func:`_exit_rule`). A row won by a sure store in less
is the whole's; a row no candidate reaches in the part is unreachable on the whole network too
when no candidate can leave the cut and come back to it. On a province of joined county
networks a county's cut is left only by the few roads across its border: routes inside the
county are proven in the first round, where the room rule asked for hundreds of kilometres,
and so are villages their county's store cannot reach at all.

A store with no drivable road end nearer than ``d`` (its own road *is* in the component, or no
road is near it) is left so, and the unproven rows go to the next round with a doubled buffer,
as before. A part keeps the anchors it read for its later rounds (whole-network roads are valid
for any cut; one meeting a wider cut is read with it and not added twice).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from geo_mz.core.projection import STORAGE_CRS, geometries_to_crs
from geo_mz.network import sptree
from geo_mz.network.graph import mode_speeds
from geo_mz.relief import drive_audit as relief
from geo_mz.scale.cut import QUAD_SEGS, Cut
from geo_mz.scale.part_inputs import roads_in_cut
from geo_mz.scale.partition import SLACK_M, exact_below_min, prove_rounds, proven

FIRST_RADIUS_M = 2000.0
"""Radius of the first read round a store for its anchor (stores lie by their roads)."""
RADIUS_GROWTH = 4.0
"""Factor the read radius grows by while no road end nearer than the store's leg is found."""
REACH_FACTOR = 1.5
"""Stores are anchored whose snap leg is within this many times an unproven row's time (an
anchored store that was the fastest raises the row's time, maybe past the next store's leg)."""
MAX_ANCHOR_PASSES = 2
"""Anchor passes (the network built again with new anchors) per buffer round of a part."""

GROWTH_CAP = 4.0
"""Most a relief round's buffer grows by (times the last): the room rule's need at the part's
times is hundreds of km on a joined network, where the exit rule proves most rows of a cut a
few times wider (Guangdong joined: 160 against 339 ms a county part uncapped)."""

PROBE_M = 2000.0
"""Buffer of a relief part's first (probe) round: enough for a county whose roads are its own."""

NO_STORES = (np.array([], dtype=np.int64), np.array([], dtype=float))


def relief_proven(
    a: relief.Audit,
    cut: Cut,
    xy: np.ndarray,
    travel_min: np.ndarray,
    vmax_kmh: float,
    full: bool,
    store_xy: np.ndarray,
    last_leg_kmh: float,
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Return which rows of an audit's table are the whole network's, and the stores to anchor.

    Parameters
    ----------
    a
        The part's audit (:func:`geo_mz.relief.audit` or :func:`geo_mz.relief.reaudit`), its
        ``table`` in row order.
    cut
        The round's cut.
    xy
        Each row's point, in the cut's CRS.
    travel_min
        Each row's travel time (time less the dispatch time; inf when unreachable).
    vmax_kmh
        The proof's top speed (of the whole undisrupted layer).
    full
        Whether the cut holds the whole roads layer.
    store_xy
        Every store of the layer, in the cut's CRS (the audit's stores, in its order).
    last_leg_kmh
        The audit's speed of the point's own snap leg.

    Returns
    -------
    tuple
        Proven flags per row (:func:`geo_mz.scale.partition.proven`, ``no_store`` rows, and the
        per-candidate rule of the module docstring); the unsure candidate stores bounding rows
        still unproven within :data:`REACH_FACTOR` times their time, with their legs (m); and
        the room the unproven rows lack for the room rule at their part times (m, the largest;
        inf when one is unreachable in the part; 0 when all are proven).
    """
    tab = a.table
    pos = tab["_point"].to_numpy()
    node = a.point_node[pos]
    snap_m = a.point_offset_min[pos] * last_leg_kmh * 1000.0 / 60.0
    travel = np.asarray(travel_min, dtype=float)
    ok = (tab["status"] == "no_store").to_numpy().copy()
    if full or ok.all():
        return np.ones(len(tab), dtype=bool), NO_STORES, 0.0
    net = a.network
    # The per-candidate rule first (it proves all that the complete-component rule of
    # ``proven`` does, and more); ``proven`` then only for the rest (its room rule).
    complete = np.isposinf(exact_below_min(net, cut, vmax_kmh))  # no sources: +inf or -inf
    _, label = connected_components(net.graph, directed=True, connection="weak")
    sxy = np.asarray(store_xy, dtype=float)
    dist = np.hypot(*(sxy - net.node_xy[a.store_node]).T)
    unsure = dist + SLACK_M > cut.room_m(sxy)
    leg = dist / (float(vmax_kmh) * 1000.0 / 60.0)
    bad = np.flatnonzero(~ok & complete[node] & (snap_m + SLACK_M <= cut.room_m(xy)))
    bound = np.full(len(bad), np.inf)
    target = tab["target"].to_numpy(dtype=object)[bad]
    seen: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for g in a.groups:
        us = g.stores[unsure[g.stores]]
        if not len(us):
            continue
        rows = np.flatnonzero((target == g.target.key) & np.isin(pos[bad], g.points))
        if not len(rows):
            continue
        same = label[a.store_node[us]][None, :] == label[node[bad[rows]]][:, None]
        legs = np.where(same, leg[us][None, :], np.inf)
        bound[rows] = np.minimum(bound[rows], legs.min(axis=1))
        seen.append((rows, us, legs))
    ok[bad] = (travel[bad] < bound) | np.isposinf(bound)
    rest = np.flatnonzero(~ok)
    if len(rest):
        ok[rest] = proven(
            net, cut, xy[rest], node[rest], snap_m[rest], travel[rest], vmax_kmh, False,
            source_xy=store_xy,
        )  # fmt: skip
    rest = np.flatnonzero(~ok & (snap_m + SLACK_M <= cut.room_m(xy)))
    if len(rest):
        ok[rest] = _exit_rule(a, cut, rest, travel[rest], vmax_kmh, sxy, unsure)
    lack = _room_lacking(cut, xy[~ok], snap_m[~ok], travel[~ok], vmax_kmh)
    # The unsure candidates within reach of the rows still unproven: the stores to anchor.
    culprit = [
        us[((legs <= REACH_FACTOR * travel[bad[rows]][:, None]) & ~ok[bad[rows]][:, None]).any(0)]
        for rows, us, legs in seen
    ]
    idx = np.unique(np.concatenate(culprit)) if culprit else NO_STORES[0]
    if ok.all() or not len(idx):
        return ok, NO_STORES, lack
    return ok, (idx, dist[idx]), lack


def _exit_rule(
    a: relief.Audit,
    cut: Cut,
    rows: np.ndarray,
    travel: np.ndarray,
    vmax_kmh: float,
    store_xy: np.ndarray,
    unsure: np.ndarray,
) -> np.ndarray:
    """Return which of ``rows`` the exit rule proves (their points' snap circles in the cut).

    A row is proven when won by a sure store in less than every candidate's least time by a
    route that leaves the cut (module docstring), or unreachable in the part when no
    candidate has such a route at all.

    A route that leaves the cut has a first node ``u`` and a last node ``w`` not strictly
    inside it, both nodes of the part. A sure candidate reaches ``u`` no sooner than the
    part's time from it to ``u`` (the route before ``u`` lies in the part); from ``u`` to
    ``w`` it needs at least their straight-line distance at the top speed, and from ``w`` to
    the point at least the part's time. An unsure candidate reaches ``w`` no sooner than
    its straight-line distance at the top speed. So per group of candidates, each node ``w``
    outside the cut starts after the least of those, and one search from them bounds every
    row of the group.
    """
    net = a.network
    tab = a.table
    pos = tab["_point"].to_numpy()[rows]
    win = tab["_store"].to_numpy()[rows]
    sure_win = win >= 0
    sure_win[sure_win] = ~unsure[win[sure_win]]
    no_win = (win < 0) & np.isposinf(travel)
    if not (sure_win | no_win).any():
        return sure_win
    x, y = net.node_xy[:, 0], net.node_xy[:, 1]
    edge = np.flatnonzero(~shapely.contains_xy(cut.polygon, x, y))
    if not len(edge):
        return sure_win | no_win  # no node outside: no route leaves the cut
    m_per_min = float(vmax_kmh) * 1000.0 / 60.0
    edge_xy = net.node_xy[edge]
    bound = np.full(len(rows), np.inf)
    target = tab["target"].to_numpy(dtype=object)[rows]
    for g in a.groups:
        mine = np.flatnonzero((target == g.target.key) & np.isin(pos, g.points))
        mine = mine[sure_win[mine] | no_win[mine]]
        if not len(mine):
            continue
        # Only whether each row's bound exceeds its time matters: search no further.
        limit = float(np.max(travel[mine], initial=0.0)) + 1.0
        start = np.full(len(edge), np.inf)
        sure, far = g.stores[~unsure[g.stores]], g.stores[unsure[g.stores]]
        if len(sure):
            first = sptree.grow(net.graph, a.store_node[sure], a.store_offset_min[sure],
                                check_weights=False, limit_min=limit).time_at(edge)  # fmt: skip
            out = np.isfinite(first)
            if out.any():
                start = np.minimum(start, _hop_min(first[out], edge_xy[out], edge_xy, m_per_min))
        if len(far):
            gap, _ = cKDTree(store_xy[far]).query(edge_xy)
            start = np.minimum(start, np.maximum(gap - SLACK_M, 0.0) / m_per_min)
        keep = np.isfinite(start)
        if not keep.any():
            continue
        back = sptree.grow(net.graph, edge[keep], start[keep], check_weights=False,
                           limit_min=limit)  # fmt: skip
        at = back.time_at(a.point_node[pos[mine]]) + a.point_offset_min[pos[mine]]
        bound[mine] = np.minimum(bound[mine], at)
    return (sure_win & (travel < bound)) | (no_win & np.isposinf(bound))


def _hop_min(
    first: np.ndarray, from_xy: np.ndarray, to_xy: np.ndarray, m_per_min: float
) -> np.ndarray:
    """Per point of ``to_xy``: the least ``first[i]`` plus the straight line from point ``i``.

    In blocks of about a million pairs (a wide cut has thousands of nodes outside it).
    """
    best = np.full(len(to_xy), np.inf)
    step = max(1, 1_000_000 // max(len(to_xy), 1))
    for i in range(0, len(from_xy), step):
        d = np.hypot(*(from_xy[i : i + step, None, :] - to_xy[None, :, :]).transpose(2, 0, 1))
        best = np.minimum(best, (first[i : i + step, None] + d / m_per_min).min(axis=0))
    return best


def _room_lacking(
    cut: Cut, xy: np.ndarray, snap_m: np.ndarray, travel: np.ndarray, vmax_kmh: float
) -> float:
    """Return the most room (m) an unproven row lacks for the room rule; inf if unknown.

    From the part's times: a guess at the whole's (a route the part lacks makes the part's
    time longer, a store snapped from afar in the part can make it shorter), used only to
    size the next round's buffer; the proof decides.
    """
    if not len(xy):
        return 0.0
    need = snap_m + 2.0 * travel * (float(vmax_kmh) * 1000.0 / 60.0) + SLACK_M
    return float(np.max(need - cut.room_m(xy)))


class Anchors:
    """The anchor roads of one part (see the module docstring), read as they are needed.

    Parameters
    ----------
    ws
        The workspace.
    store_xy
        Every store of the layer, in ``crs``.
    crs
        The part's measuring CRS.
    settings
        The audit's settings (which road classes trucks use).
    fields
        The road fields read (those the drive network uses).
    """

    def __init__(
        self,
        ws: Any,
        store_xy: np.ndarray,
        crs: str,
        settings: relief.ReliefSettings,
        fields: list[str],
    ) -> None:
        self.ws = ws
        self.store_xy = np.asarray(store_xy, dtype=float)
        self.crs = crs
        self.settings = settings
        self.fields = list(fields)
        self.tried: set[int] = set()
        self.frames: list[gpd.GeoDataFrame] = []
        self.reads = 0

    @property
    def n_roads(self) -> int:
        """The number of anchor roads read so far."""
        return sum(len(f) for f in self.frames)

    def add(self, stores: Iterable[int], snap_m: Iterable[float]) -> int:
        """Read an anchor for each store not tried before; return how many were found.

        ``snap_m``: each store's snap leg in the part (an anchor's end must be nearer).
        Stores at the same place share one read.
        """
        found = 0
        done: dict[tuple[float, float], float] = {}
        for i, d in zip(stores, snap_m, strict=True):
            i = int(i)
            if i in self.tried:
                continue
            self.tried.add(i)
            key = (float(self.store_xy[i, 0]), float(self.store_xy[i, 1]))
            within = float(d) - SLACK_M - 1.0
            if done.get(key, np.inf) < within:
                continue  # a store here already has an anchor nearer than this one's leg
            road, u = self._nearest_road(self.store_xy[i], within)
            if road is not None:
                self.frames.append(road)
                done[key] = u
                found += 1
        return found

    def _nearest_road(
        self, xy: np.ndarray, within_m: float
    ) -> tuple[gpd.GeoDataFrame | None, float]:
        """Return the road (one row, part CRS) with the nearest drivable end within reach."""
        r = min(FIRST_RADIUS_M, within_m)
        while r > 0:
            centre = shapely.Point(float(xy[0]), float(xy[1]))
            disc = Cut(self.crs, shapely.buffer(centre, r, quad_segs=QUAD_SEGS), r, centre)
            roads = roads_in_cut(self.ws, disc, None, self.fields)
            self.reads += 1
            u, row = _nearest_end(roads, xy, self.settings)
            if row is not None and u < within_m:
                return roads.iloc[[row]], u
            if r >= within_m:
                break
            r = min(r * RADIUS_GROWTH, within_m)
        return None, np.inf

    def with_roads(self, roads: gpd.GeoDataFrame, cut: Cut) -> gpd.GeoDataFrame:
        """Return the cut's ``roads`` (in the part's CRS) and the anchors that do not meet it.

        An anchor that meets the cut (one read for a narrower cut) is among ``roads`` already;
        a road anchoring two stores is added once.
        """
        if not self.frames:
            return roads
        extra = pd.concat(self.frames, ignore_index=True)
        geoms = np.asarray(extra.geometry.values)
        shapely.prepare(cut.polygon)
        keep = ~shapely.intersects(cut.polygon, geoms)
        keep &= ~pd.Series(shapely.to_wkb(geoms)).duplicated().to_numpy()
        if not keep.any():
            return roads
        extra = extra[keep]
        out = pd.concat([roads, extra], ignore_index=True)
        return gpd.GeoDataFrame(out, geometry=roads.geometry.name, crs=roads.crs)


def anchor_passes(
    todo: np.ndarray,
    attempt: Callable[[np.ndarray], tuple[Any, ...]],
    anchors: Anchors,
) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any], float]:
    """Compute ``todo`` on one cut, anchoring the stores that bound unproven answers.

    ``attempt(todo)`` builds the network of the cut's roads and the anchors read so far
    (:meth:`Anchors.with_roads`), computes and proves the answers, and returns their rows (with
    ``_pos``), the proven flags, figures, the stores to anchor and the room lacking
    (:func:`relief_proven`). While some answers are unproven and new anchors are found (at most
    :data:`MAX_ANCHOR_PASSES` times), their positions are computed again with the anchors.
    The rows of a position are kept from the pass that proved all of them.

    Returns
    -------
    tuple
        The rows, proven flags (unproven ones for the next buffer round), the first pass's
        figures with ``anchor_passes``, ``anchors`` (roads added as anchors) and
        ``anchor_reads``, and the last pass's room lacking.
    """
    kept: list[pd.DataFrame] = []
    figures: dict[str, Any] | None = None
    passes, had, reads = 0, anchors.n_roads, anchors.reads
    for p in range(MAX_ANCHOR_PASSES + 1):
        rows, ok, fig, (idx, snap_m), lack = attempt(todo)
        figures = fig if figures is None else figures
        ok = np.asarray(ok, dtype=bool)
        if ok.all() or p == MAX_ANCHOR_PASSES or not anchors.add(idx, snap_m):
            break
        passes += 1
        pos = rows["_pos"].to_numpy()
        bad_pos = np.unique(pos[~ok])
        kept.append(rows[~np.isin(pos, bad_pos)])
        todo = bad_pos
    figures = dict(figures or {}) | {
        "anchor_passes": passes,
        "anchors": anchors.n_roads - had,
        "anchor_reads": anchors.reads - reads,
    }
    if not kept:
        return rows, ok, figures, lack
    out = pd.concat([*kept, rows], ignore_index=True)
    flags = np.concatenate([np.ones(sum(len(k) for k in kept), dtype=bool), ok])
    return out, flags, figures, lack


def full_buffer_m(cut: Cut, extent: tuple[float, float, float, float]) -> float:
    """Return a buffer of ``cut``'s hull whose cut holds the lon/lat box ``extent`` (m).

    The box's edges in 0.01° steps (as :meth:`Cut.contains_extent` tests them), each vertex's
    distance to the hull, over ``cos(3π/8n)`` (a point that far is inside the buffer: see
    :mod:`geo_mz.scale.cut`), and a metre more. The cut of a convex hull is convex, so it
    holds the straight edges between the vertices too.
    """
    box = np.array([shapely.segmentize(shapely.box(*extent), 0.01)], dtype=object)
    ring = shapely.get_coordinates(geometries_to_crs(box, STORAGE_CRS, cut.crs)[0])
    base = cut.hull if cut.hull is not None else cut.polygon
    far = float(np.max(shapely.distance(base, shapely.points(ring))))
    return far / np.cos(3 * np.pi / (8 * QUAD_SEGS)) + 1.0


def relief_rounds(
    n: int,
    compute: Callable[[np.ndarray, float], tuple[pd.DataFrame, np.ndarray, dict, float]],
    first_m: float,
    buffer_m: float,
    what: str,
    full_m: Callable[[], float] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Compute positions ``0..n-1`` in rounds of growing cuts until every answer is proven.

    As :func:`geo_mz.scale.partition.prove_rounds`, but the first round's buffer is
    ``first_m`` (a probe: the complete-component rule needs little room, the room rule hours of
    driving), and each later buffer is the larger of twice the last and the last grown by the
    room the unproven answers lack at their part times (:func:`relief_proven`), but at most
    :data:`GROWTH_CAP` times the last; when one is unreachable in the part, at least
    ``buffer_m``; never more than ``full_m()``, a buffer whose
    cut holds the whole roads layer (:func:`full_buffer_m`: then every answer is proven; asked
    only when a round leaves answers unproven).
    ``compute(todo, b)`` returns the rows (with ``_pos``), proven flags, figures and that room.

    Returns
    -------
    tuple
        The proven rows (a position's rows from the round that proved all of them) and the
        rounds' log (``rounds``, ``buffer_m``, ``recomputed`` and the figures summed).
    """

    def grow(b: float, lack: float) -> float:
        # The room of a point grows with the buffer by cos(3π/8n) (cut.py): a little more.
        more = 1.05 * lack + SLACK_M if np.isfinite(lack) else float(buffer_m) - b
        nxt = max(2.0 * b, min(b + more, GROWTH_CAP * b))
        if full_m is not None:
            full = full_m()
            if full > b:
                nxt = min(nxt, full)
        return nxt

    return prove_rounds(n, compute, first_m, what, grow=grow)


def _nearest_end(
    roads: gpd.GeoDataFrame, xy: np.ndarray, s: relief.ReliefSettings
) -> tuple[float, int | None]:
    """Distance to the nearest end of a drivable, non-degenerate road piece, and its row."""
    if not len(roads):
        return np.inf, None
    geoms = np.asarray(roads.geometry.values)
    parts, row = shapely.get_parts(geoms, return_index=True)
    own = None
    if "speed_kmh" in roads.columns:
        own = pd.to_numeric(roads["speed_kmh"]).to_numpy(dtype=float, na_value=np.nan)[row]
    _, usable = mode_speeds(
        "drive",
        roads["road_class"].to_numpy(dtype=object)[row],
        own,
        1.0,
        s.drive_speeds_kmh,
        s.disaster_factor,
    )
    usable &= shapely.length(parts) > 1.0
    if not usable.any():
        return np.inf, None
    parts, row = parts[usable], row[usable]
    ends = np.concatenate(
        [shapely.get_coordinates(shapely.get_point(parts, 0)),
         shapely.get_coordinates(shapely.get_point(parts, -1))]
    )  # fmt: skip
    d = np.hypot(ends[:, 0] - xy[0], ends[:, 1] - xy[1])
    k = int(np.argmin(d))
    return float(d[k]), int(np.concatenate([row, row])[k])


__all__ = [
    "FIRST_RADIUS_M",
    "MAX_ANCHOR_PASSES",
    "NO_STORES",
    "PROBE_M",
    "RADIUS_GROWTH",
    "REACH_FACTOR",
    "Anchors",
    "anchor_passes",
    "full_buffer_m",
    "relief_proven",
    "relief_rounds",
]

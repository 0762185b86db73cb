"""The relief audit's engine: points and stores onto the drive network, one search per area.

:func:`audit_points` (from :mod:`geo_mz.relief.audit_inputs`) places villages
(population-weighted centres) and shelters; :func:`audit` runs one shortest-path forest per
(target, served area) from :mod:`geo_mz.network.sptree` on the drive network's CSR graph
(forests of "own" stores searched only as far as their own villages need) and tabulates time,
store and status per (point, target); :func:`reaudit` re-audits a disruption scenario by
*repairing* only the subtrees whose arcs were closed or slowed; :func:`routes` draws the store
→ point routes out of the kept forests. :func:`drive_network` and :func:`run_audit` build the
trucks' network and audit a whole workspace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from geo_mz.network import sptree
from geo_mz.network.graph import Network, network_from_roads
from geo_mz.network.paths import path_arcs, route_geometry, snap_points, snap_xy
from geo_mz.relief.audit_inputs import audit_points, uses_units_as_given
from geo_mz.relief.audit_targets import ReliefError, ReliefSettings, Target

STORAGE_CRS = "EPSG:4490"
_STORAGE = CRS.from_user_input(STORAGE_CRS)

STATUSES = ("meets", "misses", "cut_off", "no_store")


# --------------------------------------------------------------------------- inputs


def _in_storage_crs(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Return ``gdf`` in EPSG:4490 with a new index (no reprojected copy when stored so)."""
    if gdf.crs is not None and gdf.crs.is_exact_same(_STORAGE):
        return gdf.reset_index(drop=True)
    return gdf.to_crs(STORAGE_CRS).reset_index(drop=True)


def _snapped(
    net: Network, frame: gpd.GeoDataFrame, xy: np.ndarray | None, what: str, s: ReliefSettings
) -> Any:
    """Snap ``frame``'s points, or their coordinates ``xy`` in the network's CRS when given."""
    if xy is None:
        return snap_points(net, frame, max_snap_m=s.max_snap_m, access_speed_kmh=s.last_leg_kmh)
    xy = np.asarray(xy, dtype=float)
    if xy.shape != (len(frame), 2):
        raise ReliefError(
            f"{what}: {xy.shape} coordinates given for {len(frame)} rows; one (x, y) per row"
        )
    return snap_xy(net, xy, max_snap_m=s.max_snap_m, access_speed_kmh=s.last_leg_kmh)


def _check_stores(stores: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    problems = []
    for col in ("store_id", "level", "adcode"):
        if col not in stores.columns:
            problems.append(f"relief_stores：缺少字段 '{col}' / field '{col}' is missing")
    if not problems:
        # Checked as arrays (every part of a partitioned run checks the whole layer); the
        # rows are named one by one only when some are wrong.
        code = stores["adcode"]
        bad = code.isna().to_numpy() | ~np.array([str(v).isdigit() for v in code.tolist()], bool)
        ids = stores["store_id"].tolist()
        problems += [
            f"relief_stores 第 {row + 1} 行 ({ids[row]})：所属区划代码 adcode 为空或不是代码 / "
            f"relief_stores row {row + 1} ({ids[row]}): field 'adcode' is empty or not a code"
            for row in np.flatnonzero(bad).tolist()
        ]
    if problems:
        raise ReliefError(
            "储备库无法核查（市级及以上储备库须填所属区划代码；区县、镇街储备库导入时按位置"
            "赋码）/ relief stores cannot be audited (city, province and central stores need "
            "their adcode; county and town stores are coded by where they lie at import):\n  - "
            + "\n  - ".join(problems)
        )
    return _in_storage_crs(stores)


# --------------------------------------------------------------------------- audit


@dataclass(eq=False)
class _Group:
    """One search: a target and the stores / points it pairs (one served area, or all)."""

    target: Target
    area: str  # served adcode, or "*" for match="any"
    stores: np.ndarray  # row indices into Audit.stores
    points: np.ndarray  # row indices into Audit.points
    forest: sptree.Forest


@dataclass(eq=False)
class Audit:
    """A relief audit, with the search state needed to re-audit a scenario cheaply.

    ``table`` has one row per (point, target): ``point_id``, ``kind``, ``name``,
    ``town_adcode``, ``town_name``, ``population``, ``target``, ``target_level``,
    ``target_h``, ``store_id``, ``store_name``, ``time_min``, ``margin_min`` (target − time;
    negative = late), ``meets``, ``status`` (meets/misses/cut_off/no_store), ``too_far``.
    """

    settings: ReliefSettings
    network: Network
    stores: gpd.GeoDataFrame
    points: gpd.GeoDataFrame
    store_node: np.ndarray
    store_offset_min: np.ndarray
    point_node: np.ndarray
    point_offset_min: np.ndarray
    point_too_far: np.ndarray
    groups: list[_Group]
    table: gpd.GeoDataFrame
    scenario: str = "normal"
    disruption: Any = None
    recomputed: dict[str, int] = field(default_factory=dict)


def _top_speed_kmh(net: Network) -> float:
    return float(np.nanmax(net.edge_speed_kmh)) if net.n_edges else 1.0


def _lower_bound_min(
    net: Network, src: np.ndarray, off: np.ndarray, dst: np.ndarray, vmax: float | None = None
) -> float:
    """Bound from below the time from the sources to the farthest destination node."""
    vmax = _top_speed_kmh(net) if vmax is None else vmax
    d = np.hypot(*(net.node_xy[dst][:, None, :] - net.node_xy[src][None, :, :]).transpose(2, 0, 1))
    t = d * 0.06 / vmax + off[None, :]
    return float(t.min(axis=1).max()) if len(dst) else 0.0


def _grow(
    net: Network,
    src: np.ndarray,
    off: np.ndarray,
    dst: np.ndarray,
    own: bool,
    *,
    checked: bool = False,
    vmax_kmh: float | None = None,
) -> sptree.Forest:
    """Search only as far as the group's own points need: limit from a lower bound, doubled.

    ``checked``: the network's weights were already checked, and ``vmax_kmh`` is its top
    speed (both once per audit, not per search).
    """
    kw = {"check_weights": not checked}
    if not own:
        return sptree.grow(net.graph, src, off, **kw)
    limit = 1.5 * _lower_bound_min(net, src, off, dst, vmax_kmh) + 1.0
    for _ in range(4):
        f = sptree.grow(net.graph, src, off, limit_min=limit, **kw)
        if np.all(np.isfinite(f.time_at(dst))):
            return f
        limit *= 2.0
    return sptree.grow(net.graph, src, off, **kw)


def _groups(
    targets: Sequence[Target],
    stores: gpd.GeoDataFrame,
    points: gpd.GeoDataFrame,
) -> list[tuple[Target, str, np.ndarray, np.ndarray]]:
    out = []
    pcode = points["adcode"].astype(str)
    # Points by code prefix of each length in use: one pass per length, not one per area
    # (a province has thousands of areas and a hundred thousand points).
    by_prefix: dict[int, dict[str, np.ndarray]] = {}
    level = stores["level"].astype(str).to_numpy()
    scode = stores["adcode"].astype(str).to_numpy()
    for t in targets:
        rows = np.flatnonzero(level == t.level)
        if len(rows) == 0:
            continue
        if t.match == "any":
            out.append((t, "*", rows, np.arange(len(points))))
            continue
        for area in sorted(set(scode[rows])):
            if len(area) not in by_prefix:
                head = pcode.str.slice(0, len(area)).to_numpy()
                by_prefix[len(area)] = pd.Series(np.arange(len(head))).groupby(head).indices
            pts = np.asarray(by_prefix[len(area)].get(area, []), dtype=np.int64)
            if len(pts):
                out.append((t, area, rows[scode[rows] == area], pts))
    return out


def audit(
    points: gpd.GeoDataFrame,
    stores: gpd.GeoDataFrame,
    net: Network,
    settings: ReliefSettings | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    point_xy: np.ndarray | None = None,
    store_xy: np.ndarray | None = None,
) -> Audit:
    """Audit delivery times from ``stores`` to ``points`` on a drive network.

    Parameters
    ----------
    points
        From :func:`audit_points` (needs ``point_id``, ``adcode``, ``name``, ``town_adcode``,
        ``town_name``, ``population``, ``kind``).
    stores
        The relief_stores layer (``store_id``, ``name``, ``level``, ``adcode``).
    net
        A drive network (e.g. :func:`drive_network`).
    settings
        Targets and times; :class:`geo_mz.relief.ReliefSettings` defaults when None.
    progress
        Called with a short message before each step.
    point_xy, store_xy
        The points' and the stores' coordinates in the network's CRS, one row each, when the
        caller has them (a partitioned run reprojects them once per part, not per round):
        snapped as they are instead of reprojecting the frames' points (the same numbers).

    Returns
    -------
    Audit
        The table of times and the search state for :func:`reaudit`.
    """
    s = settings or ReliefSettings()
    say = progress or (lambda _m: None)
    if net.mode != "drive":
        raise ReliefError(f"the relief audit needs a drive network, got mode {net.mode!r}")
    stores = _check_stores(stores)
    points = _in_storage_crs(points)
    say("吸附储备库与村居到路网 snapping stores and points to the roads")
    ss = _snapped(net, stores, store_xy, "store_xy", s)
    ps = _snapped(net, points, point_xy, "point_xy", s)
    say("计算配送时间 computing delivery times")
    if not np.all(net.graph.data >= 0):
        raise ReliefError(
            "车行路网有负的或无效的通行时间 / the drive network has negative or NaN travel "
            "times: check the roads' lengths and speeds"
        )
    groups, vmax = [], _top_speed_kmh(net)
    for t, area, srow, prow in _groups(s.targets, stores, points):
        own = t.match == "own"
        forest = _grow(
            net, ss.node[srow], ss.offset_min[srow], ps.node[prow], own, checked=True, vmax_kmh=vmax
        )
        groups.append(_Group(t, area, srow, prow, forest))
    a = Audit(
        settings=s,
        network=net,
        stores=stores,
        points=points,
        store_node=ss.node,
        store_offset_min=ss.offset_min,
        point_node=ps.node,
        point_offset_min=ps.offset_min,
        point_too_far=ps.too_far,
        groups=groups,
        table=gpd.GeoDataFrame(),
        recomputed={"searches": len(groups)},
    )
    a.table = _table(a)
    return a


def _table(a: Audit) -> gpd.GeoDataFrame:
    s, p = a.settings, a.points
    frames = []
    for t in s.targets:
        n = len(p)
        time = np.full(n, np.inf)
        store = np.full(n, -1, dtype=np.int64)
        served = np.zeros(n, dtype=bool)
        for g in (g for g in a.groups if g.target is t):
            node = a.point_node[g.points]
            d = g.forest.time_at(node) + a.point_offset_min[g.points] + s.dispatch_prep_min
            win = g.forest.source_at(node)
            better = d < time[g.points]
            time[g.points[better]] = d[better]
            store[g.points[better]] = np.where(win[better] >= 0, g.stores[win[better]], -1)
            served[g.points] = True
        if not any(g.target is t for g in a.groups):
            continue
        status = np.where(
            ~served,
            "no_store",
            np.where(~np.isfinite(time), "cut_off", np.where(time <= t.minutes, "meets", "misses")),
        )
        sid = a.stores["store_id"].astype(str).to_numpy()
        sname = a.stores["name"].astype(str).to_numpy() if "name" in a.stores else sid
        frames.append(
            pd.DataFrame(
                {
                    "point_id": p["point_id"].to_numpy(),
                    "kind": p["kind"].to_numpy(),
                    "name": p["name"].to_numpy(),
                    "town_adcode": p["town_adcode"].to_numpy(),
                    "town_name": p["town_name"].to_numpy(),
                    "population": p["population"].to_numpy(float),
                    "target": t.key,
                    "target_level": t.level,
                    "target_h": t.hours,
                    "store_id": np.where(store >= 0, sid[np.maximum(store, 0)], None),
                    "store_name": np.where(store >= 0, sname[np.maximum(store, 0)], None),
                    "time_min": np.where(np.isfinite(time), time, np.nan),
                    "margin_min": np.where(np.isfinite(time), t.minutes - time, np.nan),
                    "meets": status == "meets",
                    "status": status,
                    "too_far": a.point_too_far,
                    "_point": np.arange(n),
                    "_store": store,
                }
            )
        )
    if not frames:
        raise ReliefError(
            "no store level matches a target: stores have levels "
            f"{sorted(set(a.stores['level'].astype(str)))}, targets "
            f"{[t.level for t in s.targets]}"
        )
    df = pd.concat(frames, ignore_index=True)
    return gpd.GeoDataFrame(df, geometry=p.geometry.values[df["_point"]], crs=STORAGE_CRS)


def drive_network(
    roads: gpd.GeoDataFrame, settings: ReliefSettings | None = None, **kw: Any
) -> Network:
    """Build the relief trucks' network: class speeds × the disaster derating, one-way rules.

    Every component is kept (``components="all"`` unless ``kw`` says otherwise): a village
    whose nearest road is a piece not joined to its store's is ``cut_off`` in the audit, not
    moved to the largest component, and a partitioned audit (:mod:`geo_mz.scale.partition`),
    which cannot see which component is the largest, gives the same rows.
    """
    s = settings or ReliefSettings()
    return network_from_roads(
        roads,
        mode="drive",
        drive_speeds_kmh=s.drive_speeds_kmh,
        disaster_factor=s.disaster_factor,
        **{"components": "all", **kw},
    )


def run_audit(
    layers: Mapping[str, gpd.GeoDataFrame],
    settings: ReliefSettings | None = None,
    *,
    measure_crs: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Audit:
    """Audit a workspace: drive network from ``roads``, villages and shelters, ``relief_stores``."""
    for name in ("roads", "relief_stores", "admin_units"):
        if name not in layers or layers[name].empty:
            raise ReliefError(
                f"{name}：图层缺失或为空，救灾物资送达核查需要它 / {name}: the layer is missing or "
                "empty; the relief audit needs it"
            )
    say = progress or (lambda _m: None)
    say("构建车行路网 building the drive network")
    net = drive_network(layers["roads"], settings, measure_crs=measure_crs)
    points = audit_points(layers, measure_crs=measure_crs)
    return audit(points, layers["relief_stores"], net, settings, progress=progress)


# --------------------------------------------------------------------------- scenarios


def reaudit(base: Audit, disruption: Any, *, name: str = "scenario") -> Audit:
    """Re-audit after closures/slow-downs, repairing only the searches they touch.

    Parameters
    ----------
    base
        The audit on the undisrupted (or less disrupted) network.
    disruption
        A :class:`geo_mz.network.Disruption` on ``base.network`` (closures and slow-downs
        only make arcs slower, which is what makes repair exact).
    name
        Scenario label kept in ``Audit.scenario``.

    Returns
    -------
    Audit
        The new audit; ``recomputed`` counts the searches repaired and grown again.
    """
    new_net = disruption.apply(base.network)
    changed = sptree.changed_pairs(base.network.graph, new_net.graph)
    groups, repaired, regrown = [], 0, 0
    for g in base.groups:
        f, moved = sptree.repair(g.forest, base.network.graph, new_net.graph, changed=changed)
        repaired += int(len(moved) > 0)
        if np.isfinite(f.limit_min) and not np.all(
            np.isfinite(f.time_at(base.point_node[g.points]))
        ):
            # A point pushed beyond this search's limit: search that area again, further.
            f = _grow(new_net, f.sources, f.offset_min, base.point_node[g.points], True)
            regrown += 1
        groups.append(replace(g, forest=f))
    a = replace(
        base,
        network=new_net,
        groups=groups,
        scenario=name,
        disruption=disruption,
        recomputed={"searches": len(groups), "repaired": repaired, "regrown": regrown},
    )
    a.table = _table(a)
    return a


# --------------------------------------------------------------------------- routes


def routes(a: Audit, rows: np.ndarray | None = None) -> gpd.GeoDataFrame:
    """Route geometry (store → roads → point) of table rows (default: every reachable row).

    Parameters
    ----------
    a
        An audit.
    rows
        Row positions of ``a.table``; rows without a store or reachable time are skipped.

    Returns
    -------
    geopandas.GeoDataFrame
        ``point_id``, ``target``, ``store_id``, ``time_min``, ``meets``, ``status``, ``scenario``
        and the LineString in EPSG:4490.
    """
    t = a.table
    rows = np.arange(len(t)) if rows is None else np.asarray(rows, dtype=np.int64)
    net = a.network
    # (target, point) -> the group that searched it; several groups of one target never share
    # a point for match="own" (areas are disjoint prefixes) and "any" has one group.
    owner: dict[tuple[str, int], _Group] = {}
    for g in a.groups:
        for pi in g.points.tolist():
            owner.setdefault((g.target.key, pi), g)
    spts = shapely.get_coordinates(a.stores.to_crs(net.crs).geometry.values)
    ppts = shapely.get_coordinates(a.points.to_crs(net.crs).geometry.values)
    target = t["target"].to_numpy()
    point = t["_point"].to_numpy()
    store = t["_store"].to_numpy()
    lines, keep = [], []
    for r in rows.tolist():
        pi, si = int(point[r]), int(store[r])
        g = owner.get((target[r], pi))
        node = int(a.point_node[pi])
        if si < 0 or g is None or not np.isfinite(g.forest.time_at(np.array([node]))[0]):
            continue
        nodes = sptree.path_to(g.forest, node)
        mid = (
            shapely.get_coordinates(route_geometry(net, path_arcs(net, nodes)))
            if len(nodes) > 1
            else net.node_xy[nodes]
        )
        lines.append(shapely.LineString(np.vstack([spts[si : si + 1], mid, ppts[pi : pi + 1]])))
        keep.append(r)
    cols = ["point_id", "kind", "name", "target", "store_id", "time_min", "meets", "status"]
    out = t.iloc[keep][cols].copy()
    out["scenario"] = a.scenario
    return gpd.GeoDataFrame(out.reset_index(drop=True), geometry=lines, crs=net.crs).to_crs(
        STORAGE_CRS
    )


__all__ = [
    "STATUSES",
    "Audit",
    "audit",
    "audit_points",
    "drive_network",
    "reaudit",
    "routes",
    "run_audit",
    "uses_units_as_given",
]

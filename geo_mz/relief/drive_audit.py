"""Relief-delivery audit: whether every village and shelter is reached from its stores in time.

For every audit point (a village's population-weighted centre, or a shelter) and every delivery
target (a store level with its hours, e.g. the town store within 3 h), the time is

    dispatch preparation + the store's leg onto the road network + truck drive time on the
    network (road-class speeds × disaster derating, one-way rules) + the point's last leg off
    the network,

checked against the store of that level that serves the point's own area ("own": the store
whose ``adcode`` is a prefix of the point's code, e.g. the town store of its town) or against
the nearest store of that level ("any").

Engine: one shortest-path forest per (target, served area) from :mod:`geo_mz.network.sptree` on the
drive network's CSR graph. Forests of "own" stores are searched only as far as their own
villages need (a time limit grown from a straight-line lower bound), so a district of 100 town
stores costs about one whole-network search instead of 100. The forests are kept in the
:class:`Audit`, so a disruption scenario (:mod:`geo_mz.network.disruption`) re-audits by *repairing*
only the subtrees whose arcs were closed or slowed (:func:`reaudit`), never rebuilding the
network or re-running every search.

Targets are configuration (:class:`Target`): the national guidance is the built-in default
(STANDARDS.md §C: county 6 h, city 8 h, province 10 h, SOURCED); a workspace may carry its own
(the Pengjiang sample carries the district plan's 5 h / 3 h, SOURCED local plan) in its metadata
key ``relief_targets``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.core.errors import GeoMzError
from geo_mz.core.results import Kpi
from geo_mz.network import sptree
from geo_mz.network.graph import WALK_SPEED_KMH, Network, network_from_roads
from geo_mz.network.paths import path_arcs, route_geometry, snap_points

Match = Literal["own", "any"]
STORAGE_CRS = "EPSG:4490"

_SRC_NATIONAL = (
    "国家防灾减灾救灾委员会办公室《关于进一步加强应急抢险救灾物资保障体系和能力建设的指导意见》"
    "(2024): county ≤ 6 h, city ≤ 8 h, province ≤ 10 h (STANDARDS.md §C, SOURCED)"
)
_SRC_PENGJIANG = (
    "《江门市蓬江区“大民政”综合保障体系建设“十三五”规划》(2019) 二(三)4(3): 区级 5 h、"
    "镇(街)级 3 h (STANDARDS.md §C, SOURCED local plan)"
)
#: Basic needs of the affected met within 10 h. 《"十四五"国家综合防灾减灾规划》, SOURCED.
BASIC_NEEDS_H = 10.0

STATUSES = ("meets", "misses", "cut_off", "no_store")


class ReliefError(GeoMzError, ValueError):
    """Relief inputs are unusable; the message names the layer, row and field."""


@dataclass(frozen=True)
class Target:
    """One delivery-time target: stores of ``level`` reach their points within ``hours``.

    ``match="own"`` checks each point against the store(s) of that level serving its own area
    (store ``adcode`` a prefix of the point's ``adcode``); ``"any"`` against the nearest store of
    that level. ``source`` says where the number comes from.
    """

    level: str
    hours: float
    match: Match = "own"
    source: str = ""

    @property
    def minutes(self) -> float:
        """The target in minutes."""
        return float(self.hours) * 60.0

    @property
    def key(self) -> str:
        """Short name used in columns and labels, e.g. ``township_3h``."""
        return f"{self.level}_{self.hours:g}h"


#: National default (no township figure exists nationally; towns get the local plan's).
NATIONAL_TARGETS: tuple[Target, ...] = (
    Target("county", 6.0, "own", _SRC_NATIONAL),
    Target("city", 8.0, "own", _SRC_NATIONAL),
    Target("province", 10.0, "own", _SRC_NATIONAL),
)
#: The Pengjiang district plan: district store 5 h, town stores 3 h.
PENGJIANG_TARGETS: tuple[Target, ...] = (
    Target("county", 5.0, "own", _SRC_PENGJIANG),
    Target("township", 3.0, "own", _SRC_PENGJIANG),
)


def targets_to_json(targets: Sequence[Target]) -> str:
    """Serialise targets for a workspace's metadata (key ``relief_targets``)."""
    return json.dumps(
        [
            {"level": t.level, "hours": t.hours, "match": t.match, "source": t.source}
            for t in targets
        ],
        ensure_ascii=False,
    )


def targets_from_json(text: str) -> tuple[Target, ...]:
    """Parse targets written by :func:`targets_to_json` (or by hand), checking every entry."""
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReliefError(f"relief_targets is not valid JSON: {exc}") from exc
    if not isinstance(items, list) or not items:
        raise ReliefError("relief_targets must be a non-empty JSON list of targets")
    out, problems = [], []
    for k, it in enumerate(items, start=1):
        if not isinstance(it, dict) or "level" not in it or "hours" not in it:
            problems.append(f"target {k}: needs 'level' and 'hours'")
            continue
        hours = it["hours"]
        if not isinstance(hours, int | float) or not hours > 0:
            problems.append(f"target {k}: 'hours' must be a number > 0, got {hours!r}")
            continue
        match = it.get("match", "own")
        if match not in ("own", "any"):
            problems.append(f"target {k}: 'match' must be 'own' or 'any', got {match!r}")
            continue
        out.append(Target(str(it["level"]), float(hours), match, str(it.get("source", ""))))
    if problems:
        raise ReliefError("relief_targets has problems:\n  - " + "\n  - ".join(problems))
    return tuple(out)


def workspace_targets(metadata: Mapping[str, Any]) -> tuple[Target, ...]:
    """Read the workspace's targets (metadata ``relief_targets``), else the national ones."""
    text = metadata.get("relief_targets")
    return targets_from_json(str(text)) if text else NATIONAL_TARGETS


@dataclass(frozen=True)
class ReliefSettings:
    """Options of the relief audit; every default names its source.

    Attributes
    ----------
    targets
        Delivery targets (:data:`NATIONAL_TARGETS` by default; a workspace may carry its own).
    dispatch_prep_min
        Loading and dispatch after the order, 30 min (local choice: no figure was found).
    disaster_factor
        Truck speeds × 0.6 on disaster-damaged roads (STANDARDS.md §C, assumption, UNSOURCED).
    drive_speeds_kmh
        Per-class planning speeds over ``network.DRIVE_SPEEDS_KMH`` (JTG B01-2014, UNSOURCED).
    last_leg_kmh
        Speed of the straight last leg between a point and its road, 4 km/h: on foot, the
        conservative choice (DERIVED walking speed, STANDARDS.md §B).
    max_snap_m
        Points farther from every road node are flagged (kept, with their long last leg).
    basic_needs_h
        All affected people's basic needs met within 10 h (十四五 plan, SOURCED): a KPI line.
    """

    targets: tuple[Target, ...] = NATIONAL_TARGETS
    dispatch_prep_min: float = 30.0
    disaster_factor: float = 0.6
    drive_speeds_kmh: Mapping[str, float | None] | None = None
    last_leg_kmh: float = WALK_SPEED_KMH
    max_snap_m: float = 2000.0
    basic_needs_h: float = BASIC_NEEDS_H


# --------------------------------------------------------------------------- inputs


def audit_points(
    layers: Mapping[str, gpd.GeoDataFrame],
    *,
    shelters: bool = True,
    measure_crs: str | None = None,
) -> gpd.GeoDataFrame:
    """Villages (population-weighted centres) and shelters to audit.

    Parameters
    ----------
    layers
        Workspace layers: ``admin_units`` (villages: ``level == "village"`` in jurisdiction),
        optionally ``population`` (cells with ``pop_total`` and ``adcode``) and ``shelters``.
    shelters
        Audit the shelters too.
    measure_crs
        Projected CRS of the weighted centres; the GK zone of the villages' centre when None
        (a partitioned run passes the workspace's, so every piece computes the same points).

    Returns
    -------
    geopandas.GeoDataFrame
        ``point_id``, ``kind`` (village/shelter), ``name``, ``adcode``, ``town_adcode``,
        ``town_name``, ``population`` and a Point geometry (EPSG:4490). A village without
        populated cells is placed at its polygon's representative point.
    """
    units = layers.get("admin_units")
    if units is None or units.empty:
        raise ReliefError("admin_units: the layer is missing or empty (villages are audited)")
    units = units.to_crs(STORAGE_CRS)
    inj = units.get("in_jurisdiction", pd.Series(True, index=units.index)).fillna(True).astype(bool)
    vil = units[(units["level"] == "village") & inj].reset_index(drop=True)
    if vil.empty:
        raise ReliefError("admin_units: no village-level units in the jurisdiction to audit")
    towns = units[units["level"] == "town"].set_index("adcode")["name"]
    from geo_mz.core.projection import measure_crs_for

    metric = measure_crs or measure_crs_for(vil)
    pts = vil.geometry.to_crs(metric).representative_point()
    pop = np.zeros(len(vil))
    pop_layer = layers.get("population")
    if pop_layer is not None and len(pop_layer) and "adcode" in pop_layer.columns:
        cells = pop_layer.to_crs(metric)
        w = pd.to_numeric(cells["pop_total"]).fillna(0).to_numpy(float)
        code = cells["adcode"].astype(str).to_numpy()
        df = pd.DataFrame(
            {"code": code, "w": w, "x": cells.geometry.x * w, "y": cells.geometry.y * w}
        )
        agg = df[df["w"] > 0].groupby("code")[["w", "x", "y"]].sum()
        hit = vil["adcode"].astype(str).map(agg["w"]).fillna(0).to_numpy(float)
        has = hit > 0
        codes = vil["adcode"].astype(str)[has]
        xy = np.column_stack(
            [agg.loc[codes, "x"] / agg.loc[codes, "w"], agg.loc[codes, "y"] / agg.loc[codes, "w"]]
        )
        pts = pts.copy()
        pts[has] = shapely.points(xy)
        pop = hit
    out = gpd.GeoDataFrame(
        {
            "point_id": vil["adcode"].astype(str),
            "kind": "village",
            "name": vil["name"].astype(str),
            "adcode": vil["adcode"].astype(str),
            "town_adcode": vil["parent_adcode"].astype(str),
            "population": pop,
        },
        geometry=gpd.GeoSeries(pts, crs=metric).to_crs(STORAGE_CRS).values,
        crs=STORAGE_CRS,
    )
    sh = layers.get("shelters")
    if shelters and sh is not None and len(sh):
        sh = sh.to_crs(STORAGE_CRS).reset_index(drop=True)
        code = (
            sh["adcode"].astype("string")
            if "adcode" in sh.columns
            else pd.Series(pd.NA, index=sh.index, dtype="string")
        )
        missing = code.isna() | (code.str.len() < 6)
        if missing.any():
            # Shelters without a village code take the village they stand in.
            joined = gpd.sjoin(
                sh[missing][["geometry"]],
                vil[["adcode", "geometry"]],
                predicate="within",
                how="left",
            )
            joined = joined[~joined.index.duplicated()]
            code[missing] = joined["adcode"].astype("string")
        parent = vil.set_index("adcode")["parent_adcode"].astype(str)
        out_sh = gpd.GeoDataFrame(
            {
                "point_id": sh["shelter_id"].astype(str),
                "kind": "shelter",
                "name": sh["name"].astype(str),
                "adcode": code.fillna("").astype(str),
                "town_adcode": code.map(parent).fillna(code.str.slice(0, 9)).fillna("").astype(str),
                "population": pd.to_numeric(sh.get("capacity_persons", 0)).fillna(0).astype(float),
            },
            geometry=sh.geometry.values,
            crs=STORAGE_CRS,
        )
        out = pd.concat([out, out_sh], ignore_index=True)
    out["town_name"] = out["town_adcode"].map(towns).fillna("").astype(str)
    return gpd.GeoDataFrame(out, geometry="geometry", crs=STORAGE_CRS)


def _check_stores(stores: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    problems = []
    for col in ("store_id", "level", "adcode"):
        if col not in stores.columns:
            problems.append(f"relief_stores: field '{col}' is missing")
    if not problems:
        for row, r in enumerate(stores.itertuples(index=False), start=1):
            if pd.isna(r.adcode) or not str(r.adcode).isdigit():
                problems.append(
                    f"relief_stores row {row} ({r.store_id}): field 'adcode' is empty or not a code"
                )
    if problems:
        raise ReliefError("relief stores cannot be audited:\n  - " + "\n  - ".join(problems))
    return stores.to_crs(STORAGE_CRS).reset_index(drop=True)


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


def _lower_bound_min(net: Network, src: np.ndarray, off: np.ndarray, dst: np.ndarray) -> float:
    """Bound from below the time from the sources to the farthest destination node."""
    vmax = float(np.nanmax(net.edge_speed_kmh)) if net.n_edges else 1.0
    d = np.hypot(*(net.node_xy[dst][:, None, :] - net.node_xy[src][None, :, :]).transpose(2, 0, 1))
    t = d * 0.06 / vmax + off[None, :]
    return float(t.min(axis=1).max()) if len(dst) else 0.0


def _grow(
    net: Network, src: np.ndarray, off: np.ndarray, dst: np.ndarray, own: bool
) -> sptree.Forest:
    """Search only as far as the group's own points need: limit from a lower bound, doubled."""
    if not own:
        return sptree.grow(net.graph, src, off)
    limit = 1.5 * _lower_bound_min(net, src, off, dst) + 1.0
    for _ in range(4):
        f = sptree.grow(net.graph, src, off, limit_min=limit)
        if np.all(np.isfinite(f.dist_min[dst])):
            return f
        limit *= 2.0
    return sptree.grow(net.graph, src, off)


def _groups(
    targets: Sequence[Target],
    stores: gpd.GeoDataFrame,
    points: gpd.GeoDataFrame,
) -> list[tuple[Target, str, np.ndarray, np.ndarray]]:
    out = []
    pcode = points["adcode"].astype(str).to_numpy()
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
            pts = np.flatnonzero(np.char.startswith(pcode.astype(str), area))
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
        Targets and times; :class:`ReliefSettings` defaults when None.
    progress
        Called with a short message before each step.

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
    points = points.to_crs(STORAGE_CRS).reset_index(drop=True)
    say("吸附储备库与村居到路网 snapping stores and points to the roads")
    ss = snap_points(net, stores, max_snap_m=s.max_snap_m, access_speed_kmh=s.last_leg_kmh)
    ps = snap_points(net, points, max_snap_m=s.max_snap_m, access_speed_kmh=s.last_leg_kmh)
    say("计算配送时间 computing delivery times")
    groups = []
    for t, area, srow, prow in _groups(s.targets, stores, points):
        forest = _grow(net, ss.node[srow], ss.offset_min[srow], ps.node[prow], t.match == "own")
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
            d = g.forest.dist_min[node] + a.point_offset_min[g.points] + s.dispatch_prep_min
            win = g.forest.source[node]
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
    """Build the relief trucks' network: class speeds × the disaster derating, one-way rules."""
    s = settings or ReliefSettings()
    return network_from_roads(
        roads,
        mode="drive",
        drive_speeds_kmh=s.drive_speeds_kmh,
        disaster_factor=s.disaster_factor,
        **kw,
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
            raise ReliefError(f"{name}: the layer is missing or empty; the relief audit needs it")
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
            np.isfinite(f.dist_min[base.point_node[g.points]])
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


def compare(base: Audit, scenario: Audit) -> gpd.GeoDataFrame:
    """Rows of (point, target) whose result changed between two audits.

    Returns
    -------
    geopandas.GeoDataFrame
        ``point_id``, ``kind``, ``name``, ``town_name``, ``population``, ``target``,
        ``status_before``, ``status_after``, ``time_before_min``, ``time_after_min``,
        ``delta_min``, ``change`` (``falls_out`` met → missed, ``cut_off`` reachable → not,
        ``slower``, ``recovered``, ``faster``), geometry (the point).
    """
    b, s = base.table, scenario.table
    if len(b) != len(s) or not np.array_equal(b["point_id"].to_numpy(), s["point_id"].to_numpy()):
        raise ReliefError("the two audits do not cover the same points and targets")
    tb, ts = b["time_min"].to_numpy(float), s["time_min"].to_numpy(float)
    both = np.isfinite(tb) & np.isfinite(ts)
    delta = np.where(both, ts - tb, np.nan)
    sb, sa = b["status"].to_numpy(), s["status"].to_numpy()
    change = np.select(
        [
            (sb != "cut_off") & (sa == "cut_off"),
            (sb == "meets") & (sa == "misses"),
            (sb != "meets") & (sa == "meets"),
            both & (delta > 1e-6),
            both & (delta < -1e-6),
        ],
        ["cut_off", "falls_out", "recovered", "slower", "faster"],
        default="",
    )
    keep = change != ""
    out = b.loc[
        keep, ["point_id", "kind", "name", "town_name", "population", "target", "target_h"]
    ].copy()
    out["status_before"], out["status_after"] = sb[keep], sa[keep]
    out["time_before_min"], out["time_after_min"] = tb[keep], ts[keep]
    out["delta_min"], out["change"] = delta[keep], change[keep]
    out["store_id"] = s.loc[keep, "store_id"].to_numpy()
    out["_row"] = np.flatnonzero(keep)
    return gpd.GeoDataFrame(
        out.reset_index(drop=True), geometry=b.geometry.values[keep], crs=STORAGE_CRS
    )


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
        if si < 0 or g is None or not np.isfinite(g.forest.dist_min[node]):
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


# --------------------------------------------------------------------------- summaries


def town_summary(a: Audit) -> pd.DataFrame:
    """Per town and target: villages audited, meeting, missing, cut off; the worst time."""
    t = a.table[a.table["kind"] == "village"]
    g = t.groupby(["town_adcode", "town_name", "target"], sort=True)
    out = g.agg(
        villages=("point_id", "size"),
        meets_n=("meets", "sum"),
        misses_n=("status", lambda x: int((x == "misses").sum())),
        cut_off_n=("status", lambda x: int((x == "cut_off").sum())),
        no_store_n=("status", lambda x: int((x == "no_store").sum())),
        worst_time_min=("time_min", "max"),
        pop_missing=("population", lambda x: float(x[~t.loc[x.index, "meets"]].sum())),
    ).reset_index()
    out["meets_share"] = out["meets_n"] / out["villages"]
    return out


def audit_kpis(a: Audit) -> list[Kpi]:
    """Headline figures: villages meeting each target, cut off, and the basic-needs line."""
    out = []
    t = a.table
    for tg in a.settings.targets:
        rows = t[(t["target"] == tg.key) & (t["kind"] == "village")]
        if rows.empty:
            continue
        n, met = len(rows), int(rows["meets"].sum())
        out.append(
            Kpi(
                f"{_level_zh(tg.level)}储备库{tg.hours:g}小时送达村居",
                f"Villages reached from the {tg.level} store within {tg.hours:g} h",
                f"{met}/{n}",
                "",
                target="100%",
                met=met == n,
                source=tg.source,
            )
        )
    cut = t[(t["status"] == "cut_off") & (t["kind"] == "village")]["point_id"].nunique()
    out.append(
        Kpi(
            "断路无法送达的村居",
            "Villages cut off",
            str(cut),
            "",
            target="0",
            met=cut == 0,
            source="",
        )
    )
    return out


def _level_zh(level: str) -> str:
    return {"county": "区(县)级", "township": "镇(街)级", "city": "市级", "province": "省级"}.get(
        level, level
    )


# --------------------------------------------------------------------------- pre-positioning


def preposition(
    a: Audit,
    candidates: gpd.GeoDataFrame,
    *,
    level: str,
    k: int = 1,
    weight: Literal["population", "villages"] = "population",
    name_field: str = "name",
) -> gpd.GeoDataFrame:
    """Choose ``k`` new store sites of ``level`` that bring the most villages within its target.

    A new store serves whatever it reaches within the level's target (like ``match="any"``);
    villages already within the target count for nothing. The choice is a maximal covering
    problem solved by :func:`geo_mz.network.mclp` (HiGHS MILP, greedy fallback) on a coverage
    matrix of one time-limited search per candidate.

    Parameters
    ----------
    a
        A normal or scenario audit (so sites can be chosen for the flood case too).
    candidates
        Candidate points with a CRS; ``site_id`` (else the index) and ``name_field`` if present.
    level
        Store level of the new sites; one of the audit's targets must have it.
    k
        Number of sites.
    weight
        Maximise people (``population``) or the number of villages.
    name_field
        Column naming the candidates.

    Returns
    -------
    geopandas.GeoDataFrame
        The chosen sites in rank order: ``site_id``, ``name``, ``rank``, ``level``,
        ``target_h``, ``gain_population``, ``gain_villages`` (EPSG:4490).
    """
    from geo_mz.network.siting import mclp

    tgt = next((t for t in a.settings.targets if t.level == level), None)
    if tgt is None:
        known = [t.key for t in a.settings.targets]
        raise ReliefError(f"no delivery target for level {level!r}; targets: {known}")
    if candidates.empty:
        raise ReliefError("candidates: no candidate sites given")
    rows = a.table[(a.table["target"] == tgt.key) & (a.table["kind"] == "village")]
    pts = rows["_point"].to_numpy()
    met = rows["meets"].to_numpy(bool)
    pop = rows["population"].to_numpy(float)
    net, s = a.network, a.settings
    cs = snap_points(net, candidates, max_snap_m=s.max_snap_m, access_speed_kmh=s.last_leg_kmh)
    budget = tgt.minutes - s.dispatch_prep_min
    cover = np.zeros((len(candidates), len(pts)), dtype=bool)
    for c in range(len(candidates)):
        f = sptree.grow(net.graph, cs.node[c : c + 1], cs.offset_min[c : c + 1], limit_min=budget)
        cover[c] = f.dist_min[a.point_node[pts]] + a.point_offset_min[pts] <= budget
    demand = pop if weight == "population" else np.ones(len(pts))
    res = mclp(cover.astype(np.float64), demand, k=min(k, len(candidates)), already_covered=met)
    cand = candidates.to_crs(STORAGE_CRS).reset_index(drop=True)
    ids = cand["site_id"].astype(str) if "site_id" in cand else cand.index.astype(str)
    names = cand[name_field].astype(str) if name_field in cand else ids
    taken = met.copy()
    gain_pop, gain_n = [], []
    for c in res.chosen.tolist():
        new = cover[c] & ~taken
        gain_pop.append(float(pop[new].sum()))
        gain_n.append(int(new.sum()))
        taken |= cover[c]
    chosen = res.chosen
    return gpd.GeoDataFrame(
        {
            "site_id": ids.to_numpy()[chosen],
            "name": names.to_numpy()[chosen],
            "rank": np.arange(1, len(chosen) + 1),
            "level": level,
            "target_h": tgt.hours,
            "gain_population": gain_pop,
            "gain_villages": gain_n,
        },
        geometry=cand.geometry.values[chosen],
        crs=STORAGE_CRS,
    )


__all__ = [
    "NATIONAL_TARGETS",
    "PENGJIANG_TARGETS",
    "STATUSES",
    "Audit",
    "ReliefError",
    "ReliefSettings",
    "Target",
    "audit",
    "audit_kpis",
    "audit_points",
    "compare",
    "drive_network",
    "preposition",
    "reaudit",
    "routes",
    "run_audit",
    "targets_from_json",
    "targets_to_json",
    "town_summary",
    "workspace_targets",
]

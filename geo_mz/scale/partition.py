"""One part of a large area (a county, a town, a province), computed alone and exactly.

A partitioned run computes each part from the workspace rows around it: the part's own points
(population, villages, units) and the roads, centres and neighbouring units within a buffer.
The answer for a point is the same as on the whole network when the search that produced it
cannot have left the buffer, which each part checks for every point instead of assuming it:

- a time ``t`` found for a point ``p`` that snapped ``s`` metres to its node is exact if
  ``s + 2·t·v_max`` is at most the distance from ``p`` to the edge of the cut (``v_max`` the
  fastest speed of the whole layer). Every road piece of a route that short lies inside the
  cut, and so do the snap circles of every centre or store that could serve ``p`` as fast, so
  the route and its end points are the same as on the whole network;
- a point whose network component lies wholly inside the cut (no node within 1 m of its edge)
  has the same component, centres and times as on the whole network, reachable or not;
- a cut that contains the whole roads layer is the whole network;
- a time below the least time by any route the part may lack (one entering the cut from
  outside, or one from a centre outside the cut), won by a centre whose snap circle is inside
  the cut, is the whole's (the exit rule, :mod:`geo_mz.scale.exit_rule`): on a province whose
  counties' roads are joined it proves in the first round the long walks the first rule would
  leave to a buffer twice their reach.

Points that pass none of these are computed again with the buffer doubled, until all pass
(a part never returns an answer it has not proved).

**Components.** The whole and the parts keep every component of the network
(``components="all"``; :func:`geo_mz.eldercare.analyse_circle` and
:func:`geo_mz.relief.run_audit` build theirs so too), and a point whose nearest road is a piece
joined to no centre or store is unreachable (``walk_min`` inf, counted in ``unreachable_pop``;
relief status ``cut_off``). Keeping only the largest component instead would move such a point
to the next road of the largest component and count it as served: a cell on an isolated 6 m
road would be "covered" by a centre it has no mapped way to, and an island's villages would be
reached by trucks over the sea. Unreachable people are a finding to report (the network checks
count the components, the KPIs the people), and a part could not tell which component is the
largest anyway: that is a property of the whole network.

For the second rule to hold, the centres and stores that snap into the component must snap so
on the whole network too: each that does in the part must have its snap circle inside the cut
(every whole-network node within it is in the part). Every centre and store is snapped for this,
not only those inside the cut: a centre outside the cut whose nearest road anywhere is a piece
inside it serves that piece's points on the whole network. A source that is not so sure spoils
only the answers it could change: on the whole network it snaps either to the same node as in
the part or to a node outside it, so no time below its snap leg (``d / v_max``) depends on it
(:func:`exact_below_min`). Without this bound a part lost the whole component nearest to any
far-away centre, and most parts needed two or three rounds.

Boundary QA parts keep the findings whose lowest unit code is one of the part's own units;
gaps must lie inside the cut (then every unit around them is in the part), else the part is
checked again with a doubled buffer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from geopandas.array import GeometryArray
from scipy.sparse.csgraph import connected_components

from geo_mz.boundaries import topology as boundaries
from geo_mz.core.errors import GeoMzError
from geo_mz.core.gpkg_read import to_geoframe
from geo_mz.core.projection import STORAGE_CRS, measure_crs_for, xy_to_crs
from geo_mz.core.results import to_storage_crs
from geo_mz.eldercare import coverage
from geo_mz.eldercare.circle15 import CircleSettings
from geo_mz.network.graph import (
    DRIVE_SPEEDS_KMH,
    NETWORK_ROAD_FIELDS,
    Network,
    network_from_roads,
)
from geo_mz.network.paths import snap_xy
from geo_mz.relief import drive_audit as relief
from geo_mz.scale.cut import SLACK_M, Cut, RoadlessCutError, make_cut, need_roads
from geo_mz.scale.exit_rule import absent_sources, walk_exit_proven, winners_sure
from geo_mz.scale.part_inputs import (
    Sources,
    centre_sources,
    in_cut,
    own_bbox,
    own_rows,
    part_bbox,
    part_crs,
    part_sources,
    part_unit_tables,
    read_box,
    read_once,
    read_own,
    read_part,
    roads_extent,
    roads_in_cut,
    source_layer,
    sources_in_cut,
    to_cut_crs,
    unit_shapes,
    units_of_part,
)
from geo_mz.scale.store import open_run_store

TIMES_POP_FIELDS = ("cell_id", "adcode", "pop_total", "pop_60plus")
"""The population fields a coverage part reads and keeps with its times."""
MAX_ROUNDS = 12
"""Doublings of the buffer before a part gives up (2^12 × the first buffer)."""


class PartitionError(GeoMzError, RuntimeError):
    """A part that cannot be computed: no units, or no exact answer within the rounds."""


@dataclass(frozen=True)
class Part:
    """A part: its code (the adcode prefix of everything in it), name and area (EPSG:4490)."""

    code: str
    name: str
    geometry: shapely.Geometry


# --------------------------------------------------------------------------- the cut


def complete_nodes(net: Network, cut: Cut, *, source_xy: np.ndarray | None = None) -> np.ndarray:
    """Per node: its (weak) component is the whole network's (see the module docstring).

    A component is complete when no node of it is within 1 m of the cut's edge or outside, and
    every source (centre, store; ``source_xy`` in the cut's CRS) whose nearest node is in it
    has its snap circle inside the cut.
    """
    return np.isposinf(exact_below_min(net, cut, 1.0, source_xy=source_xy))


def exact_below_min(
    net: Network, cut: Cut, vmax_kmh: float, *, source_xy: np.ndarray | None = None
) -> np.ndarray:
    """Per node: the time below which an answer in the node's component is the whole's.

    ``-inf`` for a component that reaches the cut's edge (within 1 m) or leaves it. For the
    others, the whole network's component is the part's; its sources (centres, stores;
    ``source_xy`` in the cut's CRS, every source of the whole layer) differ from the part's
    only by *unsure* ones, whose snap circle is not inside the cut: one of those snaps into
    the component on the whole network only at the node it snaps to in the part (a nearer
    whole-network node would be in the part), so it reaches no point of the component in
    less than its snap leg, ``d / v_max``. An answer found within less than the smallest such
    leg of the component sees the same sources as on the whole network; ``inf`` when the
    component has no unsure source (then every answer is exact, unreachable ones included).
    """
    _, label = connected_components(net.graph, directed=True, connection="weak")
    n_comp = int(label.max()) + 1 if len(label) else 0
    inner = shapely.buffer(cut.polygon, -1.0)
    inside = shapely.contains_xy(inner, net.node_xy[:, 0], net.node_xy[:, 1])
    bound = np.full(n_comp, np.inf)
    if source_xy is not None and len(source_xy) and len(label):
        sxy = np.asarray(source_xy, dtype=float)
        dist, node = net.node_tree.query(sxy)
        dist, node = np.asarray(dist, dtype=float), np.asarray(node)
        unsure = dist + SLACK_M > cut.room_m(sxy)
        m_per_min = float(vmax_kmh) * 1000.0 / 60.0
        np.minimum.at(bound, label[node[unsure]], dist[unsure] / m_per_min)
    bad = np.bincount(label, weights=~inside, minlength=n_comp) > 0
    bound[bad] = -np.inf
    return bound[label]


def proven(
    net: Network,
    cut: Cut,
    xy: np.ndarray,
    node: np.ndarray,
    snap_m: np.ndarray,
    travel_min: np.ndarray,
    vmax_kmh: float,
    full: bool,
    *,
    source_xy: np.ndarray | None = None,
) -> np.ndarray:
    """Which answers are the whole network's (see the module docstring).

    ``source_xy``: every centre or store of the whole layer (in the cut's CRS), for the
    complete-component rule; a point's own snap circle must lie inside the cut for that rule.
    """
    if full:
        return np.ones(len(xy), dtype=bool)
    v = vmax_kmh * 1000.0 / 60.0
    room = cut.room_m(xy)
    with np.errstate(invalid="ignore"):
        need = snap_m + 2.0 * travel_min * v + SLACK_M
    ok = np.isfinite(need) & (room >= need)
    if ok.all():  # every answer proven by its room: the component rule adds nothing
        return ok
    own_snap = snap_m + SLACK_M <= room
    below = exact_below_min(net, cut, vmax_kmh, source_xy=source_xy)[node]
    # Strictly below: a tie with an unsure source could name another nearest centre.
    with np.errstate(invalid="ignore"):
        seen_same = (travel_min < below) | np.isposinf(below)
    return ok | (seen_same & own_snap)


def prove_rounds(
    n: int,
    compute: Callable[[np.ndarray, float], tuple],
    buffer_m: float,
    what: str,
    *,
    grow: Callable[[float, Any], float] | None = None,
) -> tuple[Any, dict]:
    """Compute positions ``0..n-1`` with a growing buffer until every answer is proven.

    ``compute(todo, buffer_m)`` returns rows with a ``_pos`` column (a frame, or a dict of
    equally long arrays: then a dict comes back), a proven flag per row and round figures;
    rows of a position are kept only when all of them are proven. The buffer doubles from
    round to round; with ``grow``, ``compute`` returns a fourth value, a hint, and the next
    buffer is ``grow(buffer_m, hint)``. A ``compute`` that finds no street in its cut raises
    ``RoadlessCutError`` (``geo_mz.scale.cut.need_roads``): the
    buffer doubles. With no positions (a part where nobody lives) ``compute`` gets an empty
    ``todo`` once and should return without reading roads.
    """
    todo = np.arange(n)
    b = float(buffer_m)
    kept: list[pd.DataFrame] = []
    log: dict[str, Any] = {"rounds": 0, "buffer_m": [], "recomputed": []}
    for _ in range(MAX_ROUNDS):
        log["rounds"] += 1
        log["buffer_m"].append(b)
        log["recomputed"].append(len(todo))
        try:
            rows, ok, figures, *hint = compute(todo, b)
        except RoadlessCutError:  # no street in the cut yet: nothing proven, read farther
            log["roadless"] = log.get("roadless", 0) + 1
            b *= 2.0
            continue
        for k, v in figures.items():
            log[k] = log.get(k, 0) + v
        ok = np.asarray(ok, dtype=bool)
        if ok.all():  # the common case: one round proves every answer (no filtering copy)
            kept.append(rows)
            break
        if isinstance(rows, dict):
            pos = rows["_pos"]
            bad_pos = np.unique(pos[~ok])
            good = ~np.isin(pos, bad_pos)
            kept.append({k: v[good] for k, v in rows.items()})
        else:
            bad_pos = np.unique(rows.loc[~ok, "_pos"].to_numpy())
            kept.append(rows[~rows["_pos"].isin(bad_pos)])
        todo = bad_pos
        if len(todo) == 0:
            break
        b = 2.0 * b if grow is None else grow(b, hint[0])
    else:
        last = log["buffer_m"][-1]
        raise PartitionError(
            f"{what}：{len(todo)} 个结果经 {MAX_ROUNDS} 轮（缓冲 {last:.0f} m）仍未证明与全域"
            f"一致，道路图层的范围是否已记录？/ {what}: {len(todo)} answer(s) not proven exact "
            f"after {MAX_ROUNDS} rounds (buffer {last:.0f} m); is the roads layer's extent "
            f"recorded?"
        )
    if kept and isinstance(kept[0], dict):
        return {k: np.concatenate([r[k] for r in kept]) for k in kept[0]}, log
    if len(kept) == 1 and isinstance(kept[0].index, pd.RangeIndex) and kept[0].index.start == 0:
        return kept[0], log  # as the concatenation would give it (index 0..n-1)
    out = pd.concat(kept, ignore_index=True) if kept else pd.DataFrame({"_pos": []})
    return out, log


# --------------------------------------------------------------------------- coverage


def coverage_part(
    ws: Any,
    part: Part,
    *,
    settings: CircleSettings | None = None,
    measure_crs: str | None = None,
    buffer_m: float = 2000.0,
    roads_bbox: tuple[float, float, float, float] | None = None,
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Compute the 15-minute circle's walking times and unit tables of one part.

    Parameters
    ----------
    ws
        A workspace (GeoPackage or PostGIS) with ``roads``, ``population``, ``elder_care`` and
        ``admin_units``.
    part
        The part; its population is the rows whose ``adcode`` starts with ``part.code``.
    settings
        Circle options (walking speed, centre kinds/statuses, snap limit, thresholds).
    measure_crs
        Projected CRS; the workspace's, else the GK zone of the part.
    buffer_m
        First buffer round the part (doubled while answers are unproven). 2 km: a 15-minute
        walk at 3.2 km/h is 800 m, so the circle's points are proven in the first round.
    roads_bbox
        Lon/lat extent of the whole roads layer (``roads_extent()``); read when None.

    Returns
    -------
    tuple
        Frames ``times`` (each population row with ``walk_min``, ``nearest_centre``,
        ``snap_m``, ``too_far``) and ``units`` (:func:`geo_mz.eldercare.coverage_by_unit` rows
        of the part's towns and villages), and figures of the rounds.
    """
    s = settings or CircleSettings()
    crs = part_crs(part, measure_crs)
    first_cut = make_cut(part.geometry, crs, buffer_m)
    with read_once(ws) as ws:
        # The units, the part's own people (in the box of its own units) and the first cut's
        # roads (only the fields the walking network reads), read together: one round trip
        # on PostGIS, Python's GC held off meanwhile.
        got = read_part(
            ws, part, own={"population": TIMES_POP_FIELDS}, cut=first_cut,
            in_cut={"roads": NETWORK_ROAD_FIELDS},
        )  # fmt: skip
        units, pop, first_roads = got.units, got.own["population"], got.cut["roads"]
        extent = roads_bbox or roads_extent(ws)
        # Every centre, for the proof (one outside the cut may snap into a piece inside it);
        # an error here, as in the whole run, when the layer holds no centre of those kinds.
        src = centre_sources(ws, s, crs)
    # The people as coordinates in the network's CRS, reprojected once: snapped from them, no
    # reprojected geometries built.
    xy_all = xy_to_crs(shapely.get_coordinates(pop.geometry.values), pop.crs, crs)

    def compute(todo: np.ndarray, b: float) -> tuple[dict[str, np.ndarray], np.ndarray, dict]:
        if not len(todo):  # nobody lives in the part: no times to compute, no roads to read
            cols = {"walk_min": np.zeros(0), "nearest_centre": np.zeros(0, dtype=object),
                    "snap_m": np.zeros(0), "too_far": np.zeros(0, dtype=bool)}  # fmt: skip
            return cols | {"_pos": todo}, np.zeros(0, dtype=bool), {}
        first = b == buffer_m
        cut = first_cut if first else make_cut(part.geometry, crs, b)
        roads = roads_in_cut(ws, cut, first_roads if first else None, list(NETWORK_ROAD_FIELDS))
        need_roads(roads, cut, extent)
        net = network_from_roads(
            roads, mode="walk", walk_speed_kmh=s.walk_speed_kmh, measure_crs=crs,
            components="all",
        )  # fmt: skip
        centres = sources_in_cut(src, cut)
        xy = xy_all[todo]
        sn = snap_xy(net, xy, max_snap_m=s.max_snap_m)  # once: times and proof
        if len(centres):
            walk, nearest, idx, _ = coverage.centre_walks(net, centres, sn, max_snap_m=s.max_snap_m)
        else:
            walk, idx = np.full(len(todo), np.inf), np.full(len(todo), -1)
            nearest = np.full(len(todo), None, dtype=object)
        cols = {"walk_min": walk, "nearest_centre": nearest, "snap_m": sn.offset_m,
                "too_far": sn.too_far}  # fmt: skip
        vmax = float(net.access_speed_kmh)
        ok = proven(net, cut, xy, sn.node, sn.offset_m, walk, vmax, cut.contains_extent(extent),
                    source_xy=src.xy)  # fmt: skip
        by_exit = 0
        if not ok.all():
            # The exit rule, for times too long for the room rule: the winner must be sure.
            rest = np.flatnonzero(~ok)
            cxy = shapely.get_coordinates(centres.geometry.values)
            exit_ok = walk_exit_proven(
                net, cut, xy[rest], sn.node[rest], sn.offset_m[rest], sn.offset_min[rest],
                walk[rest], winners_sure(net, cut, cxy, idx[rest]), vmax,
                absent_sources(src.xy, cut),
            )  # fmt: skip
            ok[rest[exit_ok]] = True
            by_exit = int(exit_ok.sum())
        return cols | {"_pos": todo}, ok, {"roads_read": len(roads), "proven_by_exit": by_exit}

    rows, log = prove_rounds(len(pop), compute, buffer_m, f"coverage part {part.code}")
    # One frame of the people's ids, times and points, in the people's order (each position
    # once), built in one go: it is both the part's times and the unit tables' input.
    order = np.argsort(rows["_pos"], kind="stable")
    keep = ["walk_min", "nearest_centre", "snap_m", "too_far"]
    cols: dict[str, Any] = {c: pop[c].array for c in TIMES_POP_FIELDS if c in pop}
    # As Series of their own dtype: object stays object (a frame would infer text from the
    # centre ids, and a missing id would become NaN, not None).
    cols |= {c: pd.Series(rows[c][order], dtype=rows[c].dtype) for c in keep}
    cols["geometry"] = pop.geometry.values
    times = to_geoframe(pd.DataFrame(cols))
    unit_rows = part_unit_tables(times, units, part, s)
    unit_rows = unit_rows.assign(
        geometry=GeometryArray(unit_shapes(units, unit_rows["adcode"]), crs=STORAGE_CRS)
    )
    unit_rows = to_geoframe(unit_rows)
    out_times = times
    log |= {"points": len(times), "crs": crs}
    return {"times": out_times, "units": unit_rows}, log


def proven_times(
    ws: Any,
    part: Part,
    s: CircleSettings,
    measure_crs: str | None,
    buffer_m: float,
    roads_bbox: tuple[float, float, float, float] | None,
    part_times: Mapping[str, gpd.GeoDataFrame] | None,
    times_run: Mapping[str, str] | None = None,
) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """Return the part's proven walking times: given, stored by a coverage run, or computed.

    ``part_times``: part code -> :func:`geo_mz.scale.coverage_part`'s ``times``
    from a coverage run with the same settings (so one run's times serve every job).
    ``times_run``: ``{"store": ref, "run_key": key}`` of a coverage run with the same
    settings, buffer and CRS (``scale run all`` passes its own): the part's times are read
    from that store when the part is done there, else computed anew.
    """
    if part_times is not None and part.code in part_times:
        return part_times[part.code], {"times": "given"}
    if times_run is not None:
        stored = stored_times(times_run, part.code)
        if stored is not None:
            return stored, {"times": "stored"}
    frames, log = coverage_part(ws, part, settings=s, measure_crs=measure_crs,
                                buffer_m=buffer_m, roads_bbox=roads_bbox)  # fmt: skip
    return frames["times"], log


def stored_times(times_run: Mapping[str, str], code: str) -> gpd.GeoDataFrame | None:
    """Return a part's ``times`` saved by the coverage run ``times_run``; None if not done there.

    The frame :func:`coverage_part` returned, as the store gives it back (typed columns,
    geometry in EPSG:4490).
    """
    ref = str(times_run["store"])
    store = _STORES.get(ref)
    if store is None:
        store = _STORES[ref] = open_run_store(ref)
    rows = store.part_rows(str(times_run["run_key"]), code, "times")
    if rows is None:
        return None
    frame = rows.drop(columns="part")
    if frame.empty and "geometry" not in frame:  # a part with nobody: the store kept no points
        frame = frame.assign(geometry=gpd.GeoSeries([], crs=STORAGE_CRS, index=frame.index))
    return gpd.GeoDataFrame(frame, geometry="geometry", crs=STORAGE_CRS)


_STORES: dict[str, Any] = {}
"""Run stores opened by this process for :func:`stored_times` (one per reference)."""


# --------------------------------------------------------------------------- relief


def max_drive_kmh(roads: gpd.GeoDataFrame, settings: relief.ReliefSettings) -> float:
    """Return the fastest truck speed of ``roads`` (class table or ``speed_kmh``), derated."""
    table = {**DRIVE_SPEEDS_KMH, **dict(settings.drive_speeds_kmh or {})}
    top = max(v for v in table.values() if v is not None)
    if "speed_kmh" in roads.columns:
        own = pd.to_numeric(roads["speed_kmh"]).max()
        if pd.notna(own):
            top = max(top, float(own))
    return max(top * settings.disaster_factor, settings.last_leg_kmh)


# --------------------------------------------------------------------------- boundaries


def _owner(units_text: pd.Series) -> np.ndarray:
    return np.array([min(str(u).split(",")) if u else "" for u in units_text], dtype=object)


def boundary_part(
    ws: Any,
    part: Part,
    *,
    level: str,
    settings: boundaries.QaSettings = boundaries.QA_DEFAULTS,
    measure_crs: str | None = None,
    buffer_m: float = 5000.0,
    units: gpd.GeoDataFrame | None = None,
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Boundary QA findings owned by one part's units of ``level``.

    Parameters
    ----------
    ws
        A workspace with ``admin_units`` (or None with ``units`` given).
    part
        The part; its units are those of ``level`` whose ``adcode`` starts with its code.
    level
        The level checked as a coverage (e.g. ``county`` across a province).
    settings
        QA tolerances.
    measure_crs
        Projected CRS; the GK zone of each part's units when None.
    buffer_m
        Neighbours within this distance are checked with the part (doubled while a gap the
        part owns reaches the edge).
    units
        The units to check, instead of reading ``admin_units`` from ``ws``.

    Returns
    -------
    tuple
        Frames ``findings`` (as :func:`geo_mz.boundaries.qa`, in EPSG:4490, without ids:
        :func:`geo_mz.boundaries.number_findings` numbers the gathered whole) and
        ``invalid_edges``, and round figures.
    """

    def level_units(bbox: tuple[float, float, float, float]) -> gpd.GeoDataFrame:
        # Read by bounding box: a province must not read the whole nation's units.
        frame = ws.read("admin_units", bbox=bbox) if units is None else units
        lvl = frame[(frame["level"] == level).to_numpy()]
        if "in_jurisdiction" in lvl.columns:
            lvl = lvl[lvl["in_jurisdiction"].astype("boolean").fillna(True).to_numpy(bool)]
        return lvl

    lvl = level_units(tuple(shapely.bounds(part.geometry)))
    geoms = lvl.geometry.values
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    # A unit with no polygon cannot be checked: listed with the part's figures, not dropped.
    no_geometry = sorted(lvl.loc[empty & own_rows(lvl, part.code), "adcode"].astype(str))
    own_units = lvl[~empty & own_rows(lvl, part.code)]
    if own_units.empty:
        raise PartitionError(
            f"分区 {part.code}：没有代码以此开头的 {level} 级区划单元 / part {part.code}: "
            f"no {level} units with codes starting so"
        )
    crs = measure_crs or measure_crs_for(own_units)
    own_codes = set(own_units["adcode"].astype(str))
    core = shapely.union_all(own_units.to_crs(STORAGE_CRS).geometry.to_numpy())
    b = float(buffer_m)
    log: dict[str, Any] = {"rounds": 0, "buffer_m": []}
    for _ in range(MAX_ROUNDS):
        cut = make_cut(core, crs, b)
        lvl = level_units(cut.lonlat_bbox)
        lvl = lvl[
            ~(shapely.is_missing(lvl.geometry.values) | shapely.is_empty(lvl.geometry.values))
        ]
        own = own_rows(lvl, part.code)
        near = lvl[own | shapely.intersects(cut.polygon, lvl.geometry.to_crs(crs).values)]
        q = boundaries.qa(
            near[["adcode", "name", near.geometry.name]],  # only these: qa prepares the rest
            code_field="adcode",
            name_field="name",
            settings=settings,
            measure_crs=crs,
        )
        f = q.findings
        mine = np.isin(_owner(f["units"]), list(own_codes))
        f = f[mine]
        log["rounds"] += 1
        log["buffer_m"].append(b)
        gap = f["kind"].eq("gap") | f["sliver_of"].eq("gap")
        inside = shapely.within(f.geometry.values, shapely.buffer(cut.polygon, -SLACK_M))
        if (inside | ~gap.to_numpy()).all():
            break
        b *= 2.0
    else:
        raise PartitionError(
            f"边界分区 {part.code}：{MAX_ROUNDS} 轮后缺口仍触及读取范围边缘 / boundary part "
            f"{part.code}: gaps still reach the cut's edge"
        )
    findings = to_storage_crs(f.drop(columns="finding_id"), f"boundary part {part.code}")
    findings = findings.reset_index(drop=True)
    edges = q.invalid_edges
    edges = edges[edges["code"].astype(str).isin(own_codes)].to_crs(STORAGE_CRS)
    log |= {"units": len(own_codes), "neighbours": int(len(near) - own.sum()), "crs": crs,
            "units_without_geometry": no_geometry,
            "coverage_valid": q.coverage_valid}  # fmt: skip
    return {"findings": findings, "invalid_edges": edges.reset_index(drop=True)}, log


__all__ = [
    "Cut",
    "Part",
    "PartitionError",
    "Sources",
    "boundary_part",
    "centre_sources",
    "complete_nodes",
    "coverage_part",
    "exact_below_min",
    "in_cut",
    "make_cut",
    "max_drive_kmh",
    "own_bbox",
    "own_rows",
    "part_bbox",
    "part_crs",
    "part_sources",
    "part_unit_tables",
    "prove_rounds",
    "proven",
    "proven_times",
    "read_box",
    "read_once",
    "read_own",
    "roads_extent",
    "roads_in_cut",
    "source_layer",
    "sources_in_cut",
    "stored_times",
    "to_cut_crs",
    "units_of_part",
]

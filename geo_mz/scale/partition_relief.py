"""The relief audit and its scenarios (closures, floods) of one part, proven equal to the whole.

Built on ``geo_mz.scale.partition`` (read its docstring: the cut, the proof rule
``s + 2·t·v_max ≤ room``, complete components, the doubling buffer). What is exact here:

**Relief audit** (``relief_part``). The part's villages and shelters are audited on the roads
of its cut against every store of the layer; an answer is kept when the proof says its route
and its stores are the whole network's: :func:`geo_mz.scale.partition.proven`, sharpened by
:mod:`geo_mz.scale.relief_proof` (each row against its own target's candidate stores only, and
anchor roads that hold a far store off the part's roads). The rounds start from a small probe
cut (:data:`geo_mz.scale.relief_proof.PROBE_M`: a county whose roads are its own is proven on
them) and grow by the room the unproven answers lack, up to a cut holding every road
(``geo_mz.scale.relief_proof.relief_rounds``); on Guangdong's 123 generated counties every
part is proven in its first round, on a quarter of the roads a 20 km cut read.

A part's fixed costs decide how it scales (a county's hundred points against a whole province
in one process), so its inputs are read once and only as far as they are used
(:func:`relief_inputs`): the roads' network fields, the shelters' audited fields, and of the
population only the cells coded to the part's villages (the only ones that place or weigh a
village when its units have towns and villages; a province coded by town reads none). The
stores are kept per worker with their coordinates, and the points' coordinates are reprojected
once and handed to the audit, not reprojected per round.

**Relief scenarios** (``relief_scenario_part``). A flood raster, closed road ids, closure
areas and road-blocked incidents only *close or slow* edges, so every disrupted speed is at most
the undisrupted ``v_max`` of the whole layer and the proof rule holds with it: a scenario time
``t`` of a point with room ``s + 2·t·v_max`` used only edges inside the cut. Each edge's
disruption depends only on that edge (its geometry against the raster or the areas, its id),
and the part's network holds the whole network's edges inside the cut unchanged, so the
disrupted part network is the disrupted whole network inside the cut. A point's rows are kept
when both its normal and its scenario times are proven (so its ``changes`` row is exact too);
closures may cut a component in two, and the complete-component rule is checked on the
disrupted graph. Times equal the whole run's up to the order in which a repaired search sums
its arcs (the whole's and a part's forests are repaired from different subtrees: 3e-14 min on
the sample); stores and statuses are the same.

Road ids not in the part's network are not an error in a part (the road may lie elsewhere):
they are listed in the round figures (``close_roads_not_in_cut``), and an id missing from every
part is misspelt or far from all of them, which the gather step should report.

Shelter adequacy and evacuation parts are in ``geo_mz.scale.partition_shelters`` (evacuation
runs in two passes, ``geo_mz.scale.partition_evacuation``); ``RELIEF_JOBS`` names the
scenario and shelter adequacy jobs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.core.io import read_source
from geo_mz.core.projection import STORAGE_CRS, xy_to_crs
from geo_mz.network import disruption as dis
from geo_mz.network.graph import NETWORK_ROAD_FIELDS, Network
from geo_mz.relief import drive_audit as relief
from geo_mz.relief.audit_inputs import uses_units_as_given
from geo_mz.scale.cut import Cut, need_roads
from geo_mz.scale.part_inputs import read_own_codes, read_part
from geo_mz.scale.partition import (
    SLACK_M,
    Part,
    make_cut,
    own_rows,
    part_crs,
    part_sources,
    read_once,
    read_own,
    roads_extent,
    roads_in_cut,
)
from geo_mz.scale.partition_shelters import shelter_adequacy_part
from geo_mz.scale.relief_proof import (
    PROBE_M,
    Anchors,
    anchor_passes,
    full_buffer_m,
    relief_proven,
    relief_rounds,
)

Frames = dict[str, pd.DataFrame]


ROAD_FIELDS = list(NETWORK_ROAD_FIELDS)
"""The roads' fields a relief part reads: those the drive network uses (ids for closures)."""
POINT_POP_FIELDS = ["adcode", "pop_total"]
"""The population fields :func:`geo_mz.relief.audit_points` weighs villages with."""
VILLAGE_HEAD = 10
"""Characters of a village code its cells are read by (town 9 + the first of the village's 3)."""
MAX_HEAD_READS = 8
"""Most reads by code head a part makes for its villages' cells (else one read of its own)."""
SHELTER_FIELDS = ["shelter_id", "name", "adcode", "capacity_persons"]
"""The shelter fields :func:`geo_mz.relief.audit_points` reads."""


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class ReliefInputs:
    """A relief part's inputs, read once (in one snapshot where the workspace has them)."""

    points: gpd.GeoDataFrame
    """The part's own villages and shelters (:func:`geo_mz.relief.audit_points`), EPSG:4490."""
    xy: np.ndarray
    """Their coordinates in the part's CRS."""
    stores: gpd.GeoDataFrame
    """Every relief store (the whole layer: the proof needs the far ones too); read-only."""
    store_xy: np.ndarray
    """Their coordinates in the part's CRS."""
    extent: tuple[float, float, float, float]
    """Lon/lat extent of the whole roads layer."""
    first_cut: Cut
    """The cut of the first buffer."""
    first_roads: gpd.GeoDataFrame
    """The roads read for it (:data:`ROAD_FIELDS`)."""

    def full_m(self) -> float:
        """Return a buffer whose cut holds the whole roads layer (:func:`full_buffer_m`)."""
        return full_buffer_m(self.first_cut, self.extent)


def relief_inputs(
    ws: Any,
    part: Part,
    crs: str,
    buffer_m: float,
    roads_bbox: tuple[float, float, float, float] | None = None,
    probe_m: float | None = None,
) -> ReliefInputs:
    """Read a relief part's points, stores and first roads, with only the fields it uses.

    The points are the whole run's: with towns and villages in the part's units
    (:func:`geo_mz.relief.audit_inputs.uses_units_as_given`), a village's point is its polygon's
    or the weighted centre of the cells coded to it, so only those cells are read
    (:func:`village_cells`). Without them villages are made from the coded points of the box
    around, which is read whole.

    Parameters
    ----------
    ws
        The workspace.
    part
        The part.
    crs
        The part's measuring CRS (:func:`geo_mz.scale.partition.part_crs`).
    buffer_m
        The first round's buffer without a probe.
    roads_bbox
        Lon/lat extent of the whole roads layer; read when None.
    probe_m
        The first round's buffer when smaller than ``buffer_m`` and a cut of ``buffer_m``
        would not hold the whole roads layer (a small area is proven whole at once).

    Returns
    -------
    ReliefInputs
        The points (own only), stores, extent and the first cut with its roads.
    """
    with read_once(ws) as ws:
        extent = roads_bbox or roads_extent(ws)
        first_cut = make_cut(part.geometry, crs, buffer_m)
        # A probe only where a cut of ``buffer_m`` would not hold every road (then one round
        # proves all: a small area's parts are proven whole at once).
        if probe_m is not None and probe_m < buffer_m and not first_cut.contains_extent(extent):
            first_cut = first_cut.with_buffer(probe_m)
        # The units and the first cut's roads read together, then the shelters in the box of
        # the part's own units (PostGIS: two round trips, not three).
        boxed = {"shelters": SHELTER_FIELDS} if "shelters" in ws.layers() else {}
        got = read_part(ws, part, boxed=boxed, cut=first_cut, in_cut={"roads": ROAD_FIELDS})
        units, bbox, first_roads = got.units, got.bbox, got.cut["roads"]
        layers = {"admin_units": units}
        if uses_units_as_given(units):
            layers["population"] = village_cells(ws, units, part, bbox)
        else:
            layers["population"] = ws.read("population", bbox=bbox)
        layers |= got.boxed
        src = part_sources(ws, "relief_stores", crs)
    points = relief.audit_points(layers, measure_crs=crs)
    points = points.take(np.flatnonzero(own_rows(points, part.code))).reset_index(drop=True)
    # Coordinates reprojected as an array (the numbers ``to_crs`` gives), no frame built.
    xy = xy_to_crs(shapely.get_coordinates(points.geometry.values), STORAGE_CRS, crs)
    return ReliefInputs(points, xy, src.frame, src.xy, extent, first_cut, first_roads)


def village_cells(
    ws: Any, units: gpd.GeoDataFrame, part: Part, bbox: tuple[float, float, float, float]
) -> gpd.GeoDataFrame:
    """Read the population cells that can weigh the part's villages (:data:`POINT_POP_FIELDS`).

    Only a cell whose code is a village's weighs it, and such a code begins with the first
    :data:`VILLAGE_HEAD` characters of that village's code: the cells are read by those heads
    (a few per part, through the code index), not every cell of the part. A province's cells
    are often coded by town (9 digits): those are never read, and were a tenth of a county
    part's time. Each village's cells come from one read, in the box's order (as
    :func:`geo_mz.scale.partition.read_own` gives them), so its sums are the whole run's. With
    more than :data:`MAX_HEAD_READS` heads the part's own cells are read at once.

    Parameters
    ----------
    ws
        The workspace.
    units
        The part's units (:func:`geo_mz.scale.partition.units_of_part`).
    part
        The part.
    bbox
        Lon/lat box of the part's own units.

    Returns
    -------
    geopandas.GeoDataFrame
        The cells (``adcode``, ``pop_total``), a village's cells in the box's order.
    """
    level = units["level"].to_numpy(dtype=object)
    vil = (level == "village") & own_rows(units, part.code)
    heads = sorted({c[:VILLAGE_HEAD] for c in units["adcode"].astype(str)[vil]})
    if not heads or len(heads) > MAX_HEAD_READS:
        return read_own(ws, "population", bbox, part.code, columns=POINT_POP_FIELDS)
    # (together: one round trip on PostGIS)
    frames = read_own_codes(ws, "population", bbox, heads, columns=POINT_POP_FIELDS)
    full = [f for f in frames if len(f)]
    if len(full) <= 1:
        return (full or frames)[0]
    return pd.concat(full, ignore_index=True)


def part_roads(ws: Any, inp: ReliefInputs, part: Part, crs: str, b: float) -> tuple[Cut, Any]:
    """Return the cut of buffer ``b`` and its roads in the part's CRS (read for a later round).

    Parameters
    ----------
    ws
        The workspace.
    inp
        The part's inputs (the first cut's roads are reused, not read again).
    part
        The part.
    crs
        The part's measuring CRS.
    b
        The round's buffer.

    Returns
    -------
    tuple
        The :class:`geo_mz.scale.partition.Cut` and its roads (:data:`ROAD_FIELDS`).
    """
    if b == inp.first_cut.buffer_m:
        return inp.first_cut, roads_in_cut(ws, inp.first_cut, inp.first_roads, ROAD_FIELDS)
    cut = make_cut(part.geometry, crs, b)
    return cut, roads_in_cut(ws, cut, None, ROAD_FIELDS)


# --------------------------------------------------------------------------- relief


def relief_part(
    ws: Any,
    part: Part,
    *,
    settings: relief.ReliefSettings | None = None,
    measure_crs: str | None = None,
    vmax_kmh: float,
    buffer_m: float = 20000.0,
    roads_bbox: tuple[float, float, float, float] | None = None,
    probe_m: float | None = PROBE_M,
) -> tuple[Frames, dict[str, Any]]:
    """Audit one part's villages and shelters: the relief table's rows per point and target.

    Parameters
    ----------
    ws
        A workspace with ``roads``, ``relief_stores``, ``admin_units`` (and optionally
        ``population`` and ``shelters``).
    part
        The part; its points are the villages and shelters whose codes start with its code.
    settings
        Audit options (targets, speeds, dispatch time).
    measure_crs
        Projected CRS; the workspace's, else the GK zone of the part.
    vmax_kmh
        Fastest truck speed of the whole roads layer (:func:`geo_mz.scale.max_drive_kmh`),
        for the proof.
    buffer_m
        Buffer after the probe round when an unproven answer is unreachable in the part (else
        the next buffer is sized from the room the answers lack; at least doubled each round:
        ``geo_mz.scale.relief_proof.relief_rounds``). Delivery routes are hours long: the
        room rule needs far more road than the complete-component rule.
    roads_bbox
        Lon/lat extent of the whole roads layer (``roads_extent()``); read when None.
    probe_m
        Buffer of the first round (at most ``buffer_m``): a county whose roads are not joined
        to its neighbours' is proven on its own roads with little more; None: ``buffer_m``.

    Returns
    -------
    tuple
        Frame ``audit`` (the rows of :func:`geo_mz.relief.audit`'s table) and round figures.
    """
    s = settings or relief.ReliefSettings()
    crs = part_crs(part, measure_crs)
    inp = relief_inputs(ws, part, crs, buffer_m, roads_bbox, probe_m)

    anchors = Anchors(ws, inp.store_xy, crs, s, ROAD_FIELDS)

    def attempt(todo: np.ndarray, cut: Cut, roads: gpd.GeoDataFrame) -> tuple[Any, ...]:
        net = relief.drive_network(
            anchors.with_roads(roads, cut), s, measure_crs=crs, components="all"
        )
        a = relief.audit(
            inp.points.iloc[todo].reset_index(drop=True), inp.stores, net, s,
            point_xy=inp.xy[todo], store_xy=inp.store_xy,
        )  # fmt: skip
        tab = a.table
        pos = tab["_point"].to_numpy()
        ok, why, lack = relief_proven(
            a, cut, inp.xy[todo][pos], _travel(tab, s), vmax_kmh,
            cut.contains_extent(inp.extent), inp.store_xy, s.last_leg_kmh,
        )  # fmt: skip
        rows = tab.drop(columns=["_store"]).assign(_pos=todo[pos])
        return rows, ok, {"roads_read": len(roads)}, why, lack

    rows, log = _proven_rows(ws, inp, part, crs, s, anchors, attempt, buffer_m,
                             f"relief part {part.code}")  # fmt: skip
    rows = rows.drop(columns=["_t", "_pos", "_point"]).reset_index(drop=True)
    out = gpd.GeoDataFrame(rows, geometry="geometry", crs=STORAGE_CRS)
    log |= {"points": len(inp.points), "crs": crs}
    return {"audit": out}, log


# --------------------------------------------------------------------------- scenarios


def scenario_disruption(
    ws: Any,
    net: Network,
    *,
    flood: str | Path | None = None,
    close_depth_m: float | None = None,
    close_roads: Sequence[str] = (),
    closures: gpd.GeoDataFrame | str | Path | None = None,
    buffer_m: float = 0.0,
    use_incidents: bool = False,
) -> tuple[dis.Disruption, list[str]]:
    """Build the disruption of ``net`` as ``geo-mz relief scenario`` does, for one part.

    Parameters
    ----------
    ws
        The workspace (for ``incidents`` with ``use_incidents``).
    net
        The part's drive network.
    flood
        Depth raster (m), as ``--flood``.
    close_depth_m
        Depth that closes a road, as ``--close-depth`` (the module default when None).
    close_roads
        Road ids to close, as ``--close-roads``; ids not in ``net`` are returned, not raised.
    closures
        Closure areas (points/lines need ``buffer_m``), as ``--closures``: a frame or a
        file (a path keeps a run's options small and hashable).
    buffer_m
        Buffer of closure points/lines (m), as ``--buffer-m``.
    use_incidents
        Close roads at the workspace's open ``road_blocked`` incidents (buffer ``buffer_m``,
        30 m when 0), as ``--use-incidents``.

    Returns
    -------
    tuple
        The combined disruption (nothing closed when no option is given) and the road ids
        not in ``net``.
    """
    parts = [dis.no_disruption(net)]
    if flood is not None:
        kw = {} if close_depth_m is None else {"close_depth_m": close_depth_m}
        parts.append(dis.from_flood_raster(net, flood, **kw))
    have = set(net.edge_id.astype(str))
    ids = [str(r) for r in close_roads]
    outside = sorted(set(ids) - have)
    inside = [r for r in ids if r in have]
    if inside:
        parts.append(dis.from_edge_ids(net, inside))
    if isinstance(closures, str | Path):
        closures = read_source(closures).gdf
    if closures is not None and len(closures):
        parts.append(dis.from_polygons(net, closures, buffer_m=buffer_m, reason="closure"))
    if use_incidents and "incidents" in ws.layers():
        # Every incident that can touch an edge of the net: the edges' box, grown by the buffer.
        edges = gpd.GeoSeries(net.edge_geometry, crs=net.crs)
        grow = (buffer_m or 30.0) + SLACK_M
        box = shapely.buffer(shapely.box(*edges.total_bounds), grow)
        bbox = tuple(gpd.GeoSeries([box], crs=net.crs).to_crs(STORAGE_CRS).total_bounds)
        inc = ws.read("incidents", bbox=bbox)
        inc = inc[inc["kind"] == "road_blocked"]
        if "status" in inc:
            inc = inc[inc["status"] != "closed"]
        if len(inc):
            parts.append(
                dis.from_polygons(
                    net,
                    inc,
                    buffer_m=buffer_m or 30.0,
                    label_field="incident_id",
                    reason="incident",
                )
            )
    return dis.combine(*parts), outside


def relief_scenario_part(
    ws: Any,
    part: Part,
    *,
    settings: relief.ReliefSettings | None = None,
    measure_crs: str | None = None,
    vmax_kmh: float,
    buffer_m: float = 20000.0,
    roads_bbox: tuple[float, float, float, float] | None = None,
    name: str = "scenario",
    probe_m: float | None = PROBE_M,
    **scenario: Any,
) -> tuple[Frames, dict[str, Any]]:
    """Re-audit one part's villages and shelters under a road disruption scenario.

    Parameters
    ----------
    ws
        A workspace with ``roads``, ``relief_stores``, ``admin_units`` (optionally
        ``population``, ``shelters``, ``incidents``).
    part
        The part; its points are the villages and shelters whose codes start with its code.
    settings
        Audit options (targets, speeds, dispatch time).
    measure_crs
        Projected CRS; the workspace's, else the GK zone of the part.
    vmax_kmh
        Fastest undisrupted truck speed of the whole roads layer
        (:func:`geo_mz.scale.max_drive_kmh`); disruptions only slow, so it bounds
        the scenario too.
    buffer_m
        Buffer after the probe round, as for :func:`relief_part`.
    roads_bbox
        Lon/lat extent of the whole roads layer; read when None.
    name
        Scenario label.
    probe_m
        Buffer of the first round, as for :func:`relief_part`.
    **scenario
        ``scenario_disruption`` options (``flood``, ``close_depth_m``, ``close_roads``,
        ``closures``, ``buffer_m`` of closures as ``closure_buffer_m``, ``use_incidents``).

    Returns
    -------
    tuple
        Frames ``scenario`` (the scenario audit's rows, as :func:`geo_mz.relief.audit`'s
        table) and ``changes`` (:func:`geo_mz.relief.compare` rows of the part's points), and
        round figures (``closed_edges`` summed over rounds' cuts, ``close_roads_not_in_cut``).
    """
    s = settings or relief.ReliefSettings()
    crs = part_crs(part, measure_crs)
    opts = dict(scenario)
    if "closure_buffer_m" in opts:
        opts["buffer_m"] = opts.pop("closure_buffer_m")
    inp = relief_inputs(ws, part, crs, buffer_m, roads_bbox, probe_m)
    outside: set[str] = set(map(str, opts.get("close_roads", ())))

    anchors = Anchors(ws, inp.store_xy, crs, s, ROAD_FIELDS)

    def attempt(todo: np.ndarray, cut: Cut, roads: gpd.GeoDataFrame) -> tuple[Any, ...]:
        net = relief.drive_network(
            anchors.with_roads(roads, cut), s, measure_crs=crs, components="all"
        )
        base = relief.audit(
            inp.points.iloc[todo].reset_index(drop=True), inp.stores, net, s,
            point_xy=inp.xy[todo], store_xy=inp.store_xy,
        )  # fmt: skip
        d, missing = scenario_disruption(ws, net, **opts)
        outside.intersection_update(missing)
        scen = relief.reaudit(base, d, name=name)
        full = cut.contains_extent(inp.extent)
        ok = np.ones(len(base.table), dtype=bool)
        why: list[tuple[np.ndarray, np.ndarray]] = []
        lack = 0.0
        for a in (base, scen):
            pos = a.table["_point"].to_numpy()
            this, stores, short = relief_proven(
                a, cut, inp.xy[todo][pos], _travel(a.table, s), vmax_kmh, full,
                inp.store_xy, s.last_leg_kmh,
            )  # fmt: skip
            ok &= this
            why.append(stores)
            lack = max(lack, short)
        rows = scen.table.drop(columns=["_store"]).assign(_pos=todo[scen.table["_point"]])
        ch = relief.compare(base, scen)
        figures = {"roads_read": len(roads), "closed_edges": d.n_closed, "slowed_edges": d.n_slowed}
        idx = np.concatenate([w[0] for w in why])
        snap = np.concatenate([w[1] for w in why])
        return _with_changes(rows, ch), ok, figures, (idx, snap), lack

    rows, log = _proven_rows(ws, inp, part, crs, s, anchors, attempt, buffer_m,
                             f"relief scenario part {part.code}")  # fmt: skip
    change_cols = [c for c in rows.columns if c.startswith("ch_")]
    changed = rows[rows["ch_change"].notna()]
    changes = gpd.GeoDataFrame(
        changed[change_cols].rename(columns=lambda c: c[3:]).reset_index(drop=True),
        geometry=changed["geometry"].values,
        crs=STORAGE_CRS,
    )
    rows = rows.drop(columns=["_t", "_pos", "_point", *change_cols])
    out = gpd.GeoDataFrame(rows.reset_index(drop=True), geometry="geometry", crs=STORAGE_CRS)
    log |= {"points": len(inp.points), "crs": crs, "close_roads_not_in_cut": sorted(outside)}
    return {"scenario": out, "changes": changes}, log


def _proven_rows(
    ws: Any,
    inp: ReliefInputs,
    part: Part,
    crs: str,
    s: relief.ReliefSettings,
    anchors: Anchors,
    attempt: Callable[[np.ndarray, Cut, gpd.GeoDataFrame], tuple[Any, ...]],
    buffer_m: float,
    what: str,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Run ``attempt`` in growing cuts until every row is proven; rows by target, then point.

    Each round reads the cut's roads (grown while it holds no drivable road), and runs
    ``attempt`` on the points still unproven (``anchor_passes``). The rows keep ``_t`` (the
    target's place in ``s.targets``), ``_pos`` and ``_point`` for the caller to drop.
    """

    def compute(todo: np.ndarray, b: float) -> tuple[pd.DataFrame, np.ndarray, dict, float]:
        cut, roads = part_roads(ws, inp, part, crs, b)
        need_roads(roads, cut, inp.extent, mode="drive", drive_speeds_kmh=s.drive_speeds_kmh)
        return anchor_passes(todo, lambda t: attempt(t, cut, roads), anchors)

    rows, log = relief_rounds(
        len(inp.points), compute, inp.first_cut.buffer_m, buffer_m, what, inp.full_m
    )
    order = {t.key: i for i, t in enumerate(s.targets)}
    rows = rows.assign(_t=rows["target"].map(order)).sort_values(["_t", "_pos"], kind="stable")
    return rows, log


def _travel(tab: pd.DataFrame, s: relief.ReliefSettings) -> np.ndarray:
    """Each row's travel time for the proof: time less the dispatch time, inf when none."""
    travel = tab["time_min"].to_numpy(float) - s.dispatch_prep_min
    return np.where(np.isnan(travel), np.inf, travel)


def _with_changes(rows: pd.DataFrame, ch: gpd.GeoDataFrame) -> pd.DataFrame:
    """Carry each compare() row on its table row (``ch_`` columns), so rounds keep them."""
    cols = [
        "point_id",
        "kind",
        "name",
        "town_name",
        "population",
        "target",
        "target_h",
        "status_before",
        "status_after",
        "time_before_min",
        "time_after_min",
        "delta_min",
        "change",
        "store_id",
    ]
    at = ch["_row"].to_numpy()
    for c in cols:
        vals = np.full(len(rows), None, dtype=object)
        vals[at] = ch[c].to_numpy(dtype=object)
        rows[f"ch_{c}"] = vals
    return rows


RELIEF_JOBS: dict[str, Callable[..., tuple[Frames, dict[str, Any]]]] = {
    "relief_scenario": relief_scenario_part,
    "shelter_adequacy": shelter_adequacy_part,
}
"""The single-pass relief and shelter jobs by name (add them to :data:`geo_mz.scale.JOBS`;
evacuation runs in two passes: ``geo_mz.scale.partition_evacuation.EVACUATION``)."""

__all__ = [
    "MAX_HEAD_READS",
    "POINT_POP_FIELDS",
    "RELIEF_JOBS",
    "ROAD_FIELDS",
    "SHELTER_FIELDS",
    "VILLAGE_HEAD",
    "ReliefInputs",
    "part_roads",
    "relief_inputs",
    "relief_part",
    "relief_scenario_part",
    "scenario_disruption",
    "village_cells",
]

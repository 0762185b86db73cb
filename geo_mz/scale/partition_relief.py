"""Relief scenarios of one part (closures, floods), proven equal to the whole-area run.

Built on ``geo_mz.scale.partition`` (read its docstring: the cut, the proof rule
``s + 2·t·v_max ≤ room``, complete components, the doubling buffer). What is exact here:

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

Shelter adequacy and evacuation parts are in ``geo_mz.scale.partition_shelters``;
``RELIEF_JOBS`` names all three.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.core.io import read_source
from geo_mz.core.projection import STORAGE_CRS
from geo_mz.network import disruption as dis
from geo_mz.network.graph import Network
from geo_mz.relief import drive_audit as relief
from geo_mz.scale.partition import (
    SLACK_M,
    Part,
    make_cut,
    own_bbox,
    own_rows,
    part_crs,
    prove_rounds,
    proven,
    roads_extent,
    roads_in_cut,
    units_of_part,
)
from geo_mz.scale.partition_shelters import evacuation_part, shelter_adequacy_part

Frames = dict[str, pd.DataFrame]


def _xy(gdf: gpd.GeoDataFrame, crs: str) -> np.ndarray:
    return shapely.get_coordinates(gdf.geometry.to_crs(crs).values)


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
        First buffer (doubled while answers are unproven).
    roads_bbox
        Lon/lat extent of the whole roads layer; read when None.
    name
        Scenario label.
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
    units = units_of_part(ws, part)
    bbox = own_bbox(units, part)
    layers = {"admin_units": units, "population": ws.read("population", bbox=bbox)}
    if "shelters" in ws.layers():
        layers["shelters"] = ws.read("shelters", bbox=bbox)
    points = relief.audit_points(layers, measure_crs=crs)
    points = points[own_rows(points, part.code)].reset_index(drop=True)
    stores = ws.read("relief_stores")
    store_xy = _xy(stores, crs)
    extent = roads_bbox or roads_extent(ws)
    xy_all = _xy(points, crs)
    m_per_min = s.last_leg_kmh * 1000.0 / 60.0
    outside: set[str] = set(map(str, opts.get("close_roads", ())))

    def compute(todo: np.ndarray, b: float) -> tuple[pd.DataFrame, np.ndarray, dict]:
        cut = make_cut(part.geometry, crs, b)
        roads = roads_in_cut(ws, cut)
        net = relief.drive_network(roads, s, measure_crs=crs, components="all")
        base = relief.audit(points.iloc[todo].reset_index(drop=True), stores, net, s)
        d, missing = scenario_disruption(ws, net, **opts)
        outside.intersection_update(missing)
        scen = relief.reaudit(base, d, name=name)
        full = cut.contains_extent(extent)
        ok = np.ones(len(base.table), dtype=bool)
        for a in (base, scen):
            tab = a.table
            pos = tab["_point"].to_numpy()
            travel = tab["time_min"].to_numpy(float) - s.dispatch_prep_min
            ok &= (
                proven(
                    a.network,
                    cut,
                    xy_all[todo][pos],
                    a.point_node[pos],
                    a.point_offset_min[pos] * m_per_min,
                    np.where(np.isnan(travel), np.inf, travel),
                    vmax_kmh,
                    full,
                    source_xy=store_xy,
                )
                | (tab["status"] == "no_store").to_numpy()
            )
        rows = scen.table.drop(columns=["_store"]).assign(_pos=todo[scen.table["_point"]])
        ch = relief.compare(base, scen)
        figures = {"roads_read": len(roads), "closed_edges": d.n_closed, "slowed_edges": d.n_slowed}
        return _with_changes(rows, ch), ok, figures

    rows, log = prove_rounds(len(points), compute, buffer_m, f"relief scenario part {part.code}")
    order = {t.key: i for i, t in enumerate(s.targets)}
    rows = rows.assign(_t=rows["target"].map(order)).sort_values(["_t", "_pos"], kind="stable")
    change_cols = [c for c in rows.columns if c.startswith("ch_")]
    changed = rows[rows["ch_change"].notna()]
    changes = gpd.GeoDataFrame(
        changed[change_cols].rename(columns=lambda c: c[3:]).reset_index(drop=True),
        geometry=changed["geometry"].values,
        crs=STORAGE_CRS,
    )
    rows = rows.drop(columns=["_t", "_pos", "_point", *change_cols])
    out = gpd.GeoDataFrame(rows.reset_index(drop=True), geometry="geometry", crs=STORAGE_CRS)
    log |= {"points": len(points), "crs": crs, "close_roads_not_in_cut": sorted(outside)}
    return {"scenario": out, "changes": changes}, log


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
    "evacuation": evacuation_part,
}
"""The partitioned relief and shelter jobs by name (add them to :data:`geo_mz.scale.JOBS`)."""

__all__ = ["RELIEF_JOBS", "relief_scenario_part", "scenario_disruption"]

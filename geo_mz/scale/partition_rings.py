"""Isochrone rings of the 15-minute circle per part, proven equal to the whole run's.

A part draws the rings on its cut network (:mod:`geo_mz.scale.partition`) and keeps their
piece inside its own polygon. A ring is the streets reached within its minutes (partial
streets cut at the exact point), buffered by ``buffer_m`` (50 m,
:func:`geo_mz.network.isochrones`). A street reached from a node at ``t`` minutes is reached
along at most ``(t_max − t)·v`` of its length from that node (``t_max``: the widest ring), so
the rings inside the polygon depend only on the nodes within ``reach = t_max·v + buffer_m``
of it, on their times up to ``t_max`` (a time at or beyond ``t_max`` reaches nothing), and on
the streets' first ``t_max·v`` metres from them. When the cut holds everything within
``reach`` of the polygon (a buffer of at least that), those nodes and street pieces are the
whole network's: every whole-network node within reach is a node of the part, so a street
leaving one ends, within ``t_max·v``, at the same node on both networks or not at all. The
part then grows its cut until every node within reach is proven (its time, or that it is at
least ``t_max``): by the room rule ``2·min(t, t_max)·v ≤ room``, a complete component, or the
exit rule (:func:`geo_mz.scale.exit_rule.walk_exit_proven`, capped at ``t_max``), which
proves the nodes of a province whose counties' roads are joined in the first round.
:func:`merge_rings` joins the pieces: the whole run's rings inside the parts' polygons (they
reach beyond them, along the roads of the buffer, only in the whole run), equal to 1e-6 of
their area (the pieces meet along the part borders).
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from geo_mz.core.projection import STORAGE_CRS
from geo_mz.eldercare import coverage
from geo_mz.eldercare.circle15 import CircleSettings
from geo_mz.network import isochrone as isochrones
from geo_mz.network.graph import NETWORK_ROAD_FIELDS, network_from_roads
from geo_mz.scale.cut import QUAD_SEGS, RoadlessCutError, need_roads
from geo_mz.scale.exit_rule import absent_sources, walk_exit_proven, winners_sure
from geo_mz.scale.partition import (
    MAX_ROUNDS,
    SLACK_M,
    Part,
    PartitionError,
    centre_sources,
    make_cut,
    part_crs,
    proven,
    roads_extent,
    roads_in_cut,
    sources_in_cut,
)

# --------------------------------------------------------------------------- rings


def rings_part(
    ws: Any,
    part: Part,
    *,
    settings: CircleSettings | None = None,
    measure_crs: str | None = None,
    buffer_m: float = 2000.0,
    roads_bbox: tuple[float, float, float, float] | None = None,
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Isochrone rings of the circle inside one part's polygon (see the module docstring).

    Returns
    -------
    tuple
        Frame ``rings`` (``part``, ``threshold_min``, ``ring``, ``area_m2`` in the measuring
        CRS, ``geometry`` in EPSG:4490: the part's piece of each ring; :func:`merge_rings`
        joins the pieces) and the round figures.
    """
    s = settings or CircleSettings()
    crs = part_crs(part, measure_crs)
    top = max(s.thresholds_min)
    # A real county outline can come back from the reprojection self-intersecting (quantised
    # rings: 湛江 廉江市 does); GEOS then refuses the clip, so keep its area as a valid polygon.
    tile = polygonal(gpd.GeoSeries([part.geometry], crs=STORAGE_CRS).to_crs(crs).values)[0]
    src = centre_sources(ws, s, crs)
    c_xy = src.xy
    extent = roads_bbox or roads_extent(ws)
    v = float(s.walk_speed_kmh) * 1000.0 / 60.0
    reach_m = top * v + s.isochrone_buffer_m + SLACK_M
    b = float(buffer_m)
    log: dict[str, Any] = {"rounds": 0, "buffer_m": [], "roads_read": 0}
    for _ in range(MAX_ROUNDS):
        cut = make_cut(part.geometry, crs, b)
        roads = roads_in_cut(ws, cut, None, list(NETWORK_ROAD_FIELDS))
        log["rounds"] += 1
        log["buffer_m"].append(b)
        log["roads_read"] += len(roads)
        # The cut holds everything within reach of the polygon (the room is a lower bound).
        full = cut.contains_extent(extent)
        holds = full or cut.buffer_m * np.cos(3 * np.pi / (8 * QUAD_SEGS)) >= reach_m + SLACK_M
        try:
            need_roads(roads, cut, extent)
        except RoadlessCutError:
            if holds:  # no street within reach of the part: the whole run's rings miss it too
                return {"rings": _no_rings()}, log | {"crs": crs, "nodes": 0}
            b *= 2.0
            continue
        net = network_from_roads(roads, mode="walk", walk_speed_kmh=s.walk_speed_kmh,
                                 measure_crs=crs, components="all")  # fmt: skip
        here = sources_in_cut(src, cut)
        if len(here):
            t, nearest = coverage.node_times(net, here, max_snap_m=s.max_snap_m)
        else:
            t, nearest = np.full(net.n_nodes, np.inf), np.full(net.n_nodes, -1)
        n = net.n_nodes
        matter = np.flatnonzero(shapely.dwithin(tile, shapely.points(net.node_xy), reach_m))
        ok = proven(net, cut, net.node_xy[matter], matter, np.zeros(len(matter)),
                    np.minimum(t[matter], top), float(net.access_speed_kmh), full,
                    source_xy=c_xy)  # fmt: skip
        if holds and not ok.all():
            rest = matter[~ok]
            here_xy = shapely.get_coordinates(here.geometry.values)
            ok[~ok] = walk_exit_proven(
                net, cut, net.node_xy[rest], rest, np.zeros(len(rest)), np.zeros(len(rest)),
                t[rest], winners_sure(net, cut, here_xy, nearest[rest]),
                float(net.access_speed_kmh), absent_sources(c_xy, cut), cap_min=top,
            )  # fmt: skip
        if holds and ok.all():
            break
        b *= 2.0
    else:
        raise PartitionError(
            f"等时圈分区 {part.code}：{MAX_ROUNDS} 轮（缓冲 {b / 2:.0f} m）后分区附近的街道仍未"
            f"证明与全域一致 / rings part {part.code}: streets near the part not proven after "
            f"{MAX_ROUNDS} rounds (buffer {b / 2:.0f} m)"
        )
    rings = isochrones.isochrones(net, t, nearest, thresholds_min=s.thresholds_min,
                                  buffer_m=s.isochrone_buffer_m, crs_out=crs)  # fmt: skip
    pieces = polygonal(shapely.intersection(np.asarray(rings.geometry.values), tile))
    # Rings keep a core 1e-7 m off a smaller outline; stored in EPSG:4490 and joined in
    # another CRS, such slivers turn into self-intersections GEOS cannot repair. Snap-rounded
    # to 1 µm here (valid in, valid out), every feature left survives the round trip.
    pieces = shapely.set_precision(pieces, 1e-6)
    out = gpd.GeoDataFrame(
        {"part": part.code, "threshold_min": rings["threshold_min"].to_numpy(float),
         "ring": rings["ring"].to_numpy(object), "area_m2": shapely.area(pieces)},
        geometry=pieces, crs=crs,
    ).to_crs(STORAGE_CRS)  # fmt: skip
    return {"rings": out}, log | {"crs": crs, "nodes": n}


def _no_rings() -> gpd.GeoDataFrame:
    """Return the rings of a part no street reaches: none, as the whole run draws none there."""
    return gpd.GeoDataFrame(
        {"part": pd.Series([], dtype=object), "threshold_min": np.zeros(0),
         "ring": pd.Series([], dtype=object), "area_m2": np.zeros(0)},
        geometry=gpd.GeoSeries([], crs=STORAGE_CRS),
    )  # fmt: skip


def polygonal(geoms: Any) -> np.ndarray:
    """Make polygons valid, keeping only their area (a reprojection may leave bow-ties)."""
    geoms = np.asarray(geoms, dtype=object)
    fixed = geoms.copy()
    bad = ~shapely.is_valid(geoms)  # most pieces are valid: make_valid rebuilds them all
    fixed[bad] = shapely.make_valid(geoms[bad], method="structure", keep_collapsed=False)
    out = []
    for g in fixed:
        parts = shapely.get_parts(shapely.get_parts(g))  # collections of multipolygons too
        out.append(shapely.multipolygons(parts[shapely.get_type_id(parts) == 3]))
    return np.array(out, dtype=object)


_TOUCH_M = 1e-3
"""Polygons whose boxes come this close may meet (pieces of neighbouring parts along a border,
whose shared edges differ by float noise after the round trip through EPSG:4490)."""


def join_pieces(pieces: np.ndarray) -> shapely.Geometry:
    """Union of ring pieces that meet only along part borders, as ``union_all`` on a 1 µm grid.

    Only the polygons that may meet another (their boxes come within 1 mm) are unioned, group
    by group, on a 1 µm grid (GEOS's robust snap-rounding overlay); every other polygon lies
    apart from the rest and is kept as it is. A province's rings are mostly such polygons, so
    this costs a fraction of one overlay of every piece.
    """
    polys = shapely.get_parts(shapely.get_parts(np.asarray(pieces, dtype=object)))
    polys = polys[~shapely.is_empty(polys)]
    if len(polys) < 2:
        return shapely.union_all(polys, grid_size=1e-6)
    b = shapely.bounds(polys)
    boxes = shapely.box(b[:, 0] - _TOUCH_M, b[:, 1] - _TOUCH_M, b[:, 2] + _TOUCH_M,
                        b[:, 3] + _TOUCH_M)  # fmt: skip
    i, j = shapely.STRtree(boxes).query(boxes, predicate="intersects")
    n = len(polys)
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    size = np.bincount(label)
    alone = size[label] == 1
    joined = [shapely.union_all(polys[label == k], grid_size=1e-6)
              for k in np.flatnonzero(size > 1)]  # fmt: skip
    parts = shapely.get_parts(np.array([*polys[alone], *joined], dtype=object))
    return shapely.multipolygons(parts[shapely.get_type_id(parts) == 3])


def _valid_parts(geoms: Any) -> np.ndarray:
    """Return the polygons of ``geoms``, each invalid one made valid alone (its area kept).

    As :func:`polygonal` for :func:`join_pieces`, which unions the polygons that may meet:
    a multipolygon is invalid when one of its polygons is (a reprojected outline's
    self-intersection), and rebuilding that polygon alone costs a fraction of rebuilding the
    multipolygon (a province's ring pieces: 0.2 s instead of 1 s). Polygons of one piece that
    overlap each other are unioned by :func:`join_pieces` (their boxes meet).
    """
    polys = shapely.get_parts(shapely.get_parts(np.asarray(geoms, dtype=object)))
    polys = polys[shapely.get_type_id(polys) == 3]
    bad = ~shapely.is_valid(polys)
    if not bad.any():
        return polys
    out = polys.copy()
    out[bad] = shapely.make_valid(polys[bad], method="structure", keep_collapsed=False)
    parts = shapely.get_parts(shapely.get_parts(out))  # in the pieces' order
    return parts[shapely.get_type_id(parts) == 3]


def merge_rings(pieces: gpd.GeoDataFrame, crs: str) -> gpd.GeoDataFrame:
    """Join the parts' ring pieces into one row per ring (areas in ``crs``, geometry EPSG:4490)."""
    p = pieces.to_crs(crs)
    rows = []
    for (k, ring), g in p.groupby(["threshold_min", "ring"], sort=True):
        # Pieces meet along the part borders; back from EPSG:4490 their shared edges differ
        # by float noise, so they are joined on a 1 µm grid (join_pieces).
        geom = join_pieces(_valid_parts(g.geometry.values))
        rows.append({"threshold_min": k, "ring": ring, "area_m2": geom.area, "geometry": geom})
    out = gpd.GeoDataFrame(rows, geometry="geometry", crs=crs).to_crs(STORAGE_CRS)
    return out.set_geometry(_valid_rings(out.geometry.values))


def _valid_rings(geoms: Any) -> np.ndarray:
    """Make the joined rings valid again in the storage CRS, each polygon alone.

    Valid in metres, a ring can come back from the projection invalid (two of its polygons,
    or a polygon and itself, touching at a vertex cross by float noise): on Guangdong two of
    the three province rings did. Each invalid polygon is rebuilt alone (0.2 s, against 2 s
    for rebuilding the ring's multipolygon), and the whole ring only when its polygons still
    overlap.
    """
    out = np.asarray(geoms, dtype=object).copy()
    for i in np.flatnonzero(~shapely.is_valid(out)):
        ring = shapely.multipolygons(_valid_parts([out[i]]))
        out[i] = ring if shapely.is_valid(ring) else polygonal([out[i]])[0]
    return out


__all__ = ["join_pieces", "merge_rings", "polygonal", "rings_part"]

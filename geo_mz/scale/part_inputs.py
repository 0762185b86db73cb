"""A part's inputs: read once, reprojected once, and kept per worker where they can be.

A county part is small, so its fixed costs decide how well a partitioned run scales: opening
and reading the workspace, reprojecting, building frames. The helpers here read a part's rows
by box (its own people only, where the workspace can leave the others out as it reads),
reproject each input once into the measuring CRS and hand it on there, and keep the layers
every part needs whole (centres, stores) selected and reprojected per worker while the
GeoPackage file is unchanged. :func:`read_part` reads a part's units and the rows round them
together (one round trip on PostGIS). :mod:`geo_mz.scale.partition` uses them and exports them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from geopandas.array import GeometryArray
from pyproj import CRS

from geo_mz.core.gpkg_read import rtree_extent, to_geoframe
from geo_mz.core.projection import STORAGE_CRS, geometries_to_crs, gk_zone_crs
from geo_mz.core.workspace import Workspace
from geo_mz.core.workspace_postgis import PostgisWorkspace, gc_paused
from geo_mz.core.workspace_read import read_layer, related_to, roll_back_killed_edit
from geo_mz.eldercare import coverage
from geo_mz.eldercare.circle15 import CircleSettings

# A part (``geo_mz.scale.partition.Part``: code, name, geometry) and a cut (``Cut``: crs,
# polygon) are typed Any here: that module imports this one.
_Part = Any
_Cut = Any


def rows_where(gdf: gpd.GeoDataFrame, mask: np.ndarray) -> gpd.GeoDataFrame:
    """Return ``gdf[mask]`` (a boolean mask), taken by position: the same frame, cheaper.

    A GeoDataFrame's boolean ``[]`` costs about 0.2 ms more a call than ``take``; a part
    filters its roads, sources and units so every round.
    """
    return gdf.take(np.flatnonzero(mask))


def in_cut(gdf: gpd.GeoDataFrame, cut: _Cut) -> gpd.GeoDataFrame:
    """Return the rows of ``gdf`` whose geometry meets the cut (any CRS; compared in the cut's)."""
    geoms = geometries_to_crs(np.asarray(gdf.geometry.values), gdf.crs, cut.crs)
    shapely.prepare(cut.polygon)
    return rows_where(gdf, shapely.intersects(cut.polygon, geoms))


def to_cut_crs(gdf: gpd.GeoDataFrame, crs: str) -> gpd.GeoDataFrame:
    """Return ``gdf`` in ``crs``, reprojected once (the frame itself when already there).

    A part reprojects its roads, points and sources once and hands them on in the measuring
    CRS: the network, snapping and the proof then find them there and do not reproject again
    (the coordinates are those ``to_crs`` gives, bit for bit).
    """
    geoms = np.asarray(gdf.geometry.values)
    moved = geometries_to_crs(geoms, gdf.crs, crs)
    if moved is geoms:
        return gdf
    out = gdf.copy(deep=False)
    out[gdf.geometry.name] = gpd.GeoSeries(moved, index=gdf.index, crs=crs)
    return out


def roads_in_cut(
    ws: Any,
    cut: _Cut,
    read: gpd.GeoDataFrame | None = None,
    columns: list[str] | None = None,
) -> gpd.GeoDataFrame:
    """Return the roads that meet the cut, in the cut's CRS (read by its box unless given).

    ``columns``: read only these fields (e.g. ``NETWORK_ROAD_FIELDS`` for a network).
    """
    roads = read_box(ws, "roads", cut.lonlat_bbox, columns, cut) if read is None else read
    name = roads.geometry.name
    geoms = np.asarray(roads.geometry.values)
    moved = geometries_to_crs(geoms, roads.crs, cut.crs)
    shapely.prepare(cut.polygon)
    idx = np.flatnonzero(shapely.intersects(cut.polygon, moved))
    if moved is geoms:
        return roads.take(idx)
    # The kept rows' columns once, then their reprojected lines: no reprojected copy of the
    # whole box, no frame taken and then rewritten.
    cols = {c: (GeometryArray(moved[idx], crs=CRS.from_user_input(cut.crs)) if c == name
                else roads[c].array.take(idx)) for c in roads.columns}  # fmt: skip
    return to_geoframe(pd.DataFrame(cols, index=roads.index[idx]), name)


def sources_in_cut(src: Sources, cut: _Cut) -> gpd.GeoDataFrame:
    """Return the sources (points) that meet the cut, in the cut's CRS (as :func:`in_cut`)."""
    frame = src.projected
    if len(src.xy) != len(frame) or frame.crs != cut.crs:
        return in_cut(frame, cut)
    # The cut's box first (a few hundred of a province's thousands of points are near it),
    # then the polygon: the same rows.
    x0, y0, x1, y1 = shapely.bounds(cut.polygon)
    x, y = src.xy[:, 0], src.xy[:, 1]
    near = np.flatnonzero((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1))
    shapely.prepare(cut.polygon)
    return frame.take(near[shapely.intersects_xy(cut.polygon, x[near], y[near])])


def read_box(
    ws: Any,
    kind: str,
    bbox: tuple[float, float, float, float],
    columns: list[str] | None = None,
    cut: _Cut | None = None,
) -> gpd.GeoDataFrame:
    """Read the rows of ``kind`` in ``bbox``: only ``columns`` where the workspace can.

    ``cut``: the rows are for this cut (``bbox`` holds it): a GeoPackage or PostGIS
    workspace reads only those meeting the cut's lon/lat mask (``Cut.lonlat_mask``), not the
    corners of its box; every row meeting the cut is among them.
    """
    if isinstance(ws, Workspace | PostgisWorkspace) and cut is not None:
        cols = None if columns is None else list(columns)
        return ws.read(kind, mask=cut.lonlat_mask, columns=cols)
    if columns is not None and isinstance(ws, Workspace | PostgisWorkspace):
        return ws.read(kind, bbox=bbox, columns=list(columns))
    return ws.read(kind, bbox=bbox)


@contextmanager
def read_once(ws: Any) -> Iterator[Any]:
    """Yield ``ws`` for reading a part's inputs together: one snapshot where it has them.

    A PostGIS workspace reads them on one pooled connection in one transaction, under one
    shared lock (``PostgisWorkspace.snapshot``); a GeoPackage, or any workspace without
    ``snapshot``, reads as usual.
    """
    snapshot = getattr(ws, "snapshot", None)
    with snapshot() if snapshot is not None else nullcontext(ws) as w:
        yield w


def _file_stamp(ws: Any) -> tuple[str, tuple[int, int, int]] | None:
    """(path, (inode, mtime_ns, size)) of a GeoPackage workspace, None for other backends."""
    path = getattr(ws, "path", None)
    if not isinstance(path, Path) or not path.is_file():
        return None
    st = path.stat()
    return str(path.resolve()), (st.st_ino, st.st_mtime_ns, st.st_size)


_RUN_DIGESTS: ContextVar[Mapping[str, str] | None] = ContextVar("run_digests", default=None)


@contextmanager
def run_layer_digests(digests: Mapping[str, str] | None) -> Iterator[None]:
    """Name the data of the run a part belongs to: its layers' digests (the run key's).

    With them a worker keeps the source layers every part reads between the parts of a
    PostGIS workspace too (:func:`source_layer`), keyed by the layer's digest: the same
    digest is the same rows, and another one (data edited by any tool) reads them again.
    """
    token = _RUN_DIGESTS.set(dict(digests) if digests is not None else None)
    try:
        yield
    finally:
        _RUN_DIGESTS.reset(token)


def _layer_stamp(ws: Any, kind: str) -> tuple[str, Any] | None:
    """(workspace, stamp) under which a worker may keep ``kind``; None: not to be kept.

    The GeoPackage file's stamp, or the layer's digest in the run (:func:`run_layer_digests`).
    """
    file = _file_stamp(ws)
    if file is not None:
        return file
    digests = _RUN_DIGESTS.get()
    path = getattr(ws, "path", None)
    if digests is not None and kind in digests and isinstance(path, str):
        return path, ("digest", digests[kind])
    return None


_SOURCES: dict[tuple[str, str], tuple[Any, gpd.GeoDataFrame]] = {}
_PROJECTED: dict[tuple[Any, ...], tuple[Any, Any]] = {}


def source_layer(ws: Any, kind: str) -> gpd.GeoDataFrame:
    """Read a whole layer of sources (``elder_care``, ``relief_stores``) every part needs.

    Every part reads the whole layer for its proof; a worker keeps the one it read from a
    GeoPackage while the file is unchanged (same inode, time and size: every geo_mz write
    replaces the file, and an edit in place changes its time), so it reads it once and not once
    per part. A PostGIS layer is kept under its digest in the run (:func:`run_layer_digests`:
    the same rows); without one it is read each time (inside the part's snapshot).
    """
    stamp = _layer_stamp(ws, kind)
    if stamp is None:
        return ws.read(kind)
    key = (stamp[0], kind)
    hit = _SOURCES.get(key)
    if hit is None or hit[0] != stamp[1]:
        hit = (stamp[1], ws.read(kind))
        _SOURCES[key] = hit
    return hit[1].copy()


@dataclass(frozen=True)
class Sources:
    """A layer of sources selected for a job, in storage and measuring CRS (read-only)."""

    frame: gpd.GeoDataFrame
    """The selected rows as read (storage CRS)."""
    projected: gpd.GeoDataFrame
    """The same rows in the measuring CRS."""
    xy: np.ndarray
    """Their coordinates in the measuring CRS (one row per point)."""


def part_sources(
    ws: Any,
    kind: str,
    crs: str,
    select: Callable[[gpd.GeoDataFrame], gpd.GeoDataFrame] | None = None,
    key: Any = None,
) -> Sources:
    """Return a whole source layer selected by ``select`` and reprojected to ``crs``.

    Like :func:`source_layer`, kept per worker while the layer is unchanged, here with
    the selection (``select`` named by ``key``: the same key must mean the same selection)
    and the reprojection, which every part of a run would otherwise repeat. Callers must not
    change the frames.
    """
    file = _layer_stamp(ws, kind)
    cache_key = (None if file is None else file[0], kind, crs, key)
    hit = _PROJECTED.get(cache_key) if file is not None else None
    if hit is not None and hit[0] == file[1]:
        return hit[1]
    frame = source_layer(ws, kind)
    if select is not None:
        frame = select(frame)
    projected = to_cut_crs(frame, crs)
    out = Sources(frame, projected, shapely.get_coordinates(projected.geometry.values))
    if file is not None:
        _PROJECTED[cache_key] = (file[1], out)
    return out


def centre_sources(ws: Any, settings: CircleSettings, crs: str) -> Sources:
    """Return every elder-care centre of the circle's kinds and statuses (:func:`part_sources`).

    An error, as in the whole run, when the layer holds no centre of those kinds.
    """
    kinds, statuses = settings.kinds, settings.statuses
    key = ("centres", tuple(kinds), None if statuses is None else tuple(statuses))
    return part_sources(
        ws, "elder_care", crs, key=key,
        select=lambda g: coverage.select_centres(g, kinds=kinds, statuses=statuses),
    )  # fmt: skip


def part_crs(part: _Part, measure_crs: str | None = None) -> str:
    """Return the measuring CRS of a part: ``measure_crs``, else the GK zone of its area.

    The zone :func:`geo_mz.core.projection.measure_crs_for` gives the part's polygon, from its
    bounds: EPSG:4490 to EPSG:4326 is PROJ's null ("ballpark") transformation, the same
    numbers, so no frame is built and reprojected for it (≈ 2 ms a part).
    """
    if measure_crs:
        return measure_crs
    minx, _, maxx, _ = shapely.bounds(part.geometry)
    return gk_zone_crs((float(minx) + float(maxx)) / 2.0)


def own_rows(gdf: gpd.GeoDataFrame, code: str, field: str = "adcode") -> np.ndarray:
    """Return a mask of the rows whose ``field`` code starts with the part's ``code``."""
    values = gdf[field]
    if not isinstance(values.dtype, pd.StringDtype):
        values = values.astype("string")
    # Plain str.startswith over the values: a third of pandas' .str accessor's time for the
    # few hundred units or points a part asks about, the same answer (missing: not own).
    arr = values.to_numpy(dtype=object, na_value=None)
    return np.fromiter(
        (v is not None and v.startswith(code) for v in arr), dtype=bool, count=len(arr)
    )


def own_located(gdf: gpd.GeoDataFrame, part: _Part) -> np.ndarray:
    """Return a mask of the points a part owns: by code where a row has one, else by place.

    Shelters and centres are coded at import by the unit they lie in; one added later without
    a code (on the web map, in QGIS) belongs to the part whose polygon holds it, so that no
    point of the layer is left out of every part.
    """
    has = gdf["adcode"].notna().to_numpy() if "adcode" in gdf else np.zeros(len(gdf), bool)
    own = np.zeros(len(gdf), dtype=bool)
    if has.any():
        own[has] = own_rows(gdf[has], part.code)
    if not has.all():
        geoms = storage_geometries(gdf)[~has]
        own[~has] = shapely.within(geoms, part.geometry)
    return own


def read_own(
    ws: Any,
    kind: str,
    bbox: tuple[float, float, float, float],
    code: str,
    field: str = "adcode",
    columns: list[str] | None = None,
) -> gpd.GeoDataFrame:
    """Read the rows of ``kind`` in ``bbox`` whose ``field`` starts with ``code``, new index.

    GeoPackage and PostGIS workspaces leave the others out as they read (``read``'s
    ``prefix``); other workspaces read the box and keep the part's own rows here.
    ``columns``: only these fields (and ``field``) where the workspace can leave the others.
    """
    if isinstance(ws, Workspace | PostgisWorkspace) and columns is not None:
        return ws.read(kind, bbox=bbox, prefix=(field, code), columns=list(columns))
    if isinstance(ws, Workspace | PostgisWorkspace):
        return ws.read(kind, bbox=bbox, prefix=(field, code))
    rows = ws.read(kind, bbox=bbox)
    return rows[own_rows(rows, code, field)].reset_index(drop=True)


def read_own_codes(
    ws: Any,
    kind: str,
    bbox: tuple[float, float, float, float],
    codes: Sequence[str],
    field: str = "adcode",
    columns: list[str] | None = None,
) -> list[gpd.GeoDataFrame]:
    """Return :func:`read_own` of ``kind`` in ``bbox`` for each of ``codes``, in order.

    A PostGIS workspace sends the reads together (one round trip, one range of the code
    index each); any other reads them one after the other. The frames are :func:`read_own`'s.
    """
    if isinstance(ws, PostgisWorkspace) and len(codes) > 1:
        cols = None if columns is None else list(columns)
        with gc_paused():
            return ws.read_many(
                [(kind, {"bbox": bbox, "prefix": (field, c), "columns": cols}) for c in codes]
            )
    return [read_own(ws, kind, bbox, c, field, columns) for c in codes]


def units_of_part(ws: Any, part: _Part) -> gpd.GeoDataFrame:
    """Read the part's own units and their ancestors (for names), in stored order, new index.

    The units in the part's bounding box (a part must not read the whole nation's units)
    whose ``adcode`` starts with the part's code or is a prefix of it. A GeoPackage reads
    them through its ``adcode`` index (the part's range and its ancestors' exact codes), not
    every unit of the box (the neighbours' villages too); the rows are the same.
    """
    bbox = tuple(shapely.bounds(part.geometry))
    if isinstance(ws, Workspace):
        roll_back_killed_edit(ws.path)  # as Workspace.read does
        return read_layer(
            ws.path, "admin_units", ws.layers(), bbox=bbox, prefix=("adcode", part.code),
            ancestors=True,
        )  # fmt: skip
    if isinstance(ws, PostgisWorkspace):  # through its adcode index too
        return ws.read("admin_units", bbox=bbox, prefix=("adcode", part.code), ancestors=True)
    units = ws.read("admin_units", bbox=bbox)
    return units[related_to(units, "adcode", part.code)].reset_index(drop=True)


@dataclass(frozen=True)
class PartReads:
    """A part's inputs, read together by :func:`read_part` (the frames of the separate reads)."""

    units: gpd.GeoDataFrame
    """The part's units and their ancestors (:func:`units_of_part`)."""
    bbox: tuple[float, float, float, float]
    """The box of its own units and its polygon (:func:`own_bbox` of ``units``)."""
    own: dict[str, gpd.GeoDataFrame]
    """Per layer, its rows in ``bbox`` coded to the part (:func:`read_own`)."""
    boxed: dict[str, gpd.GeoDataFrame]
    """Per layer, its rows in ``bbox`` (:func:`read_box`)."""
    cut: dict[str, gpd.GeoDataFrame]
    """Per layer, its rows meeting the cut (:func:`read_box` with the cut)."""


def read_part(
    ws: Any,
    part: _Part,
    *,
    own: Mapping[str, Sequence[str] | None] | None = None,
    boxed: Mapping[str, Sequence[str] | None] | None = None,
    cut: _Cut | None = None,
    in_cut: Mapping[str, Sequence[str] | None] | None = None,
) -> PartReads:
    """Read a part's units and the rows it needs round them, together, from one snapshot.

    The frames are those of the separate reads: ``units_of_part(ws, part)``, then with
    ``bbox = own_bbox(units, part)``, ``read_own(ws, kind, bbox, part.code, columns=cols)``
    for each of ``own``, ``read_box(ws, kind, bbox, cols)`` for each of ``boxed`` and
    ``read_box(ws, kind, cut.lonlat_bbox, cols, cut)`` for each of ``in_cut``. A PostGIS
    workspace sends them together (``PostgisWorkspace.read_many``): the units, the rows in
    the cut and the part's own rows (one range of the ``adcode`` index, the box of its
    own units tested here once they are read) in one round trip; ``boxed`` layers,
    whose rows need that box in the query, in a second. Any other workspace reads them
    one after the other, as the separate reads do. Python's cyclic garbage collector waits
    until they are read (``geo_mz.core.workspace_postgis.gc_paused``: a third of a county
    part's read time, on either backend).

    Parameters
    ----------
    ws
        The workspace (GeoPackage, PostGIS or any with ``read``).
    part
        The part (``code``, ``geometry``: :class:`geo_mz.scale.partition.Part`).
    own
        Layer name -> the fields to read (None: all) of the part's own rows (``adcode``
        starting with ``part.code``) in the box of its own units.
    boxed
        Layer name -> fields: every row in that box.
    cut
        The part's first cut (:func:`geo_mz.scale.cut.make_cut`); needed with ``in_cut``.
    in_cut
        Layer name -> fields: the rows meeting the cut's lon/lat mask.

    Returns
    -------
    PartReads
        The units, the box and a frame per layer asked for.

    Raises
    ------
    ValueError
        If ``in_cut`` is given without ``cut``, or a layer is asked for twice.
    geo_mz.core.errors.WorkspaceError
        As the separate reads: a layer or field the workspace lacks.
    """
    own, boxed, in_cut = dict(own or {}), dict(boxed or {}), dict(in_cut or {})
    if in_cut and cut is None:
        raise ValueError("read_part: in_cut needs the cut / 需要 cut")
    kinds = [*own, *boxed, *in_cut]
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"read_part: a layer asked for twice / 图层重复: {kinds}")
    cols = {k: None if c is None else list(c) for k, c in (own | boxed | in_cut).items()}
    # Python's cyclic GC held off meanwhile: the reads make tens of thousands of objects, no
    # cycle among them, and each few hundred made it scan every object the worker holds.
    with read_once(ws) as w, gc_paused():
        if not isinstance(w, PostgisWorkspace):
            units = units_of_part(w, part)
            bbox = own_bbox(units, part)
            return PartReads(
                units, bbox,
                {k: read_own(w, k, bbox, part.code, columns=cols[k]) for k in own},
                {k: read_box(w, k, bbox, cols[k]) for k in boxed},
                {k: read_box(w, k, cut.lonlat_bbox, cols[k], cut) for k in in_cut},
            )  # fmt: skip
        found: list[tuple[float, float, float, float]] = []

        def box_of_units(frames: list[gpd.GeoDataFrame]) -> tuple[float, float, float, float]:
            if not found:  # (once: every own and boxed read asks)
                found.append(own_bbox(frames[0], part))
            return found[0]

        code = ("adcode", part.code)
        reads: list[tuple[str, dict[str, Any]]] = [
            ("admin_units", {"bbox": tuple(shapely.bounds(part.geometry)), "prefix": code,
                             "ancestors": True}),
            *((k, {"mask": cut.lonlat_mask, "columns": cols[k]}) for k in in_cut),
            *((k, {"bbox": box_of_units, "prefix": code, "columns": cols[k]}) for k in own),
            # Last: their box must be in the query, so they wait for the reads before.
            *((k, {"bbox": box_of_units, "columns": cols[k]}) for k in boxed),
        ]  # fmt: skip
        frames = w.read_many(reads)
    units = frames[0]
    got = dict(zip([*in_cut, *own, *boxed], frames[1:], strict=True))
    return PartReads(
        units, found[0] if found else own_bbox(units, part),
        {k: got[k] for k in own}, {k: got[k] for k in boxed}, {k: got[k] for k in in_cut},
    )  # fmt: skip


def part_unit_tables(
    times: gpd.GeoDataFrame, units: gpd.GeoDataFrame, part: _Part, settings: CircleSettings
) -> pd.DataFrame:
    """Coverage rows of the part's own county, towns and villages (the whole run's rows).

    Parameters
    ----------
    times
        The part's population rows with ``walk_min``, ``nearest_centre`` (and ``too_far``),
        in storage CRS: :func:`geo_mz.eldercare.access_times` of the part's own people.
    units
        The part's units (:func:`units_of_part`).
    part
        The part.
    settings
        Circle options (thresholds and targets).

    Returns
    -------
    pandas.DataFrame
        Per level present, the :func:`geo_mz.eldercare.coverage_by_unit` rows of that level
        (not its total row), levels in order county, town, village.
    """
    own = own_rows(units, part.code)
    level = units["level"].to_numpy(dtype=object)
    levels = [lv for lv in ("county", "town", "village") if (own & (level == lv)).any()]
    if not levels or times.empty:
        return pd.DataFrame({"adcode": []})
    # The ancestors (a county part's province and city) are at other levels: the tables
    # leave them out by their level, so the units need no filtered copy then.
    others = ~own & np.isin(level, levels)
    mine = rows_where(units, own) if others.any() else units
    # One pass over the points for every level (the per-point sums are shared).
    return coverage.coverage_by_units(
        times, mine, levels=levels, thresholds_min=settings.thresholds_min,
        targets=settings.targets, totals=False,
    )  # fmt: skip


def roads_extent(ws: Any) -> tuple[float, float, float, float]:
    """Lon/lat extent of the workspace's roads (whole network = a cut that contains it).

    A partitioned run computes it once and hands it to the parts. A GeoPackage gives its
    R-tree's box (every road's box rounded outward to 32-bit floats: the extent or a hair
    more, which is on the safe side for "a cut that contains it"), not every road's bounds.
    """
    if isinstance(ws, Workspace):
        try:
            box = rtree_extent(ws.path, "roads")
        except sqlite3.Error:
            box = None  # (a file locked by a writer, ...) the layer's bounds, as before
        if box is not None:
            return box
    return tuple(float(v) for v in ws.extent("roads"))


def part_bbox(units: gpd.GeoDataFrame, part: _Part) -> tuple[float, float, float, float]:
    """Return the lon/lat box of a part's polygon and its units (to read its own rows by box)."""
    geoms = np.array([part.geometry, *storage_geometries(units)], dtype=object)
    return tuple(float(v) for v in shapely.total_bounds(geoms))


def own_bbox(units: gpd.GeoDataFrame, part: _Part) -> tuple[float, float, float, float]:
    """:func:`part_bbox` of the part's own units among ``units`` (no filtered frame built)."""
    geoms = storage_geometries(units)[own_rows(units, part.code)]
    return tuple(float(v) for v in shapely.total_bounds(np.append(geoms, part.geometry)))


def storage_geometries(gdf: gpd.GeoDataFrame) -> np.ndarray:
    """Return the geometries of ``gdf`` in EPSG:4490 as an array (as read: stored so)."""
    return geometries_to_crs(np.asarray(gdf.geometry.values), gdf.crs, STORAGE_CRS)


def unit_shapes(units: gpd.GeoDataFrame, codes: pd.Series) -> np.ndarray:
    """Return the EPSG:4490 polygon of each code in ``codes`` (its first unit in ``units``)."""
    geoms = storage_geometries(units)
    first: dict[str, Any] = {}
    for code, g in zip(units["adcode"].astype(str).tolist(), geoms, strict=True):
        first.setdefault(code, g)
    return np.array([first.get(c) for c in codes.astype(str).tolist()], dtype=object)

"""OpenStreetMap files (XML, PBF, or GeoJSON/GPKG lines) as a roads layer noded at junctions.

Issue 14: an OSM export imported as roads collapses without a word, because OSM ways are not
split at junctions (a junction is a node *shared* mid-way) while
:func:`geo_mz.network.network_from_roads` connects line *end points* only. :func:`read_osm_roads`
reads highway ways (GDAL's OSM driver, checked against a way-only pyosmium pass; node by
node with pyosmium where a way has a node reference without a location, see
``geo_mz.core._osm_ways``) and splits them:

* **OSM XML / PBF**: every way is cut at each node location that kept highway ways use two or
  more times (a junction, or a way touching itself), so every piece ends at a junction or a
  way end. Ways connect only where they share a node location, as in OSM: a bridge crossing a
  street shares no node and stays unconnected (tested); what OSM joins with a shared node stays
  joined, even across ``bridge``/``tunnel``/``layer`` (``OsmImportReport.mixed_level_junctions``
  counts those, a likely tagging error worth a look). Two distinct nodes stacked on one spot
  (an OSM "duplicate node", e.g. two parking aisles in 龙岗 drawn three days apart) join too:
  a router should see them as one junction.
* **GeoJSON / GPKG / Shapefile of OSM lines** (Overpass, QuickOSM, GDAL's OSM driver with its
  ``other_tags``) have no node ids: lines are cut where their vertices coincide *exactly*, but
  only between lines on the same level (``layer``, ``bridge``, ``tunnel``) or where one of them
  ends there (a bridge's end on the street). Interior vertices of lines on different levels
  never join.

The tag profile (which ways, which class, access, one-way, speed) is
:mod:`geo_mz.core.osm_profile`, shared with the pyrosm network reader (:mod:`geo_mz.network.osm`);
its public names are re-exported here.
"""

from __future__ import annotations

import array
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry

from geo_mz.core._osm_ways import (
    GDAL_SUFFIXES,
    OSM_SUFFIXES,
    Ways,
    read_lines,
    read_osm_gdal,
    read_osm_pyosmium,
    ticker,
)
from geo_mz.core.errors import OsmImportError
from geo_mz.core.osm_profile import (
    OSM_PROFILE,
    HighwayRule,
    WayClass,
    classify_way,
    maxspeed_kmh,
    oneway_code,
)
from geo_mz.core.projection import STORAGE_CRS, parse_crs
from geo_mz.core.roads_quality import (
    MIN_LARGEST_SHARE,
    MIN_POP_REACH,
    RoadsQuality,
    default_measure_crs,
    population_within_m,
    roads_qualities,
    roads_quality,
)

__all__ = [
    "MIN_LARGEST_SHARE",
    "MIN_POP_REACH",
    "OSM_PROFILE",
    "HighwayRule",
    "OsmImportError",
    "OsmImportReport",
    "WayClass",
    "classify_way",
    "maxspeed_kmh",
    "oneway_code",
    "population_within_m",
    "read_osm_roads",
    "roads_quality",
]


# --------------------------------------------------------------------------- report


@dataclass
class OsmImportReport:
    """What :func:`read_osm_roads` read, kept, excluded and wrote, and how well it connects.

    ``walk``/``drive`` are ``roads_quality`` (:mod:`geo_mz.core.roads_quality`) of the written
    layer (the network :func:`geo_mz.network.network_from_roads` will build from it);
    ``drive`` is None when no piece is drivable.
    """

    file: str  #: the file as given
    source: str  #: "osm" (XML/PBF, node ids) or "lines" (GeoJSON/GPKG, coinciding vertices)
    highway_ways: int  #: ways (lines) with a highway tag read
    ways_kept: int  #: of those, ways written as at least one piece
    excluded: dict[str, int]  #: ways left out, by reason
    unknown_highways: dict[str, int]  #: highway values absent from OSM_PROFILE, with counts
    missing_nodes: int  #: node references without a location in the file (cut by the extract)
    reclassed: dict[str, int]  #: ways written with another class for their access
    mixed_level_junctions: int  #: shared nodes joining ways of different layer/bridge/tunnel
    pieces: int  #: pieces written
    pieces_outside_clip: int  #: pieces dropped by the clip
    length_km: float  #: total length written
    measure_crs: str  #: CRS lengths and the clip margin were measured in
    walk: RoadsQuality | None  #: quality of the walking network (None: not asked for)
    drive: RoadsQuality | None = None  #: quality of the driving network
    notes: list[str] = field(default_factory=list)  #: "中文 / English" remarks

    @property
    def ok(self) -> bool:
        """True when the walking network meets every threshold (see ``walk.problems``).

        Raises ValueError when the quality was not computed (``read_osm_roads(quality=False)``).
        """
        if self.walk is None:
            raise ValueError("the network quality was not computed (quality=False)")
        return self.walk.ok

    @property
    def problems(self) -> list[str]:
        """Threshold problems of the walking network ("中文 / English"); empty when unchecked."""
        return list(self.walk.problems) if self.walk is not None else []

    def lines(self, lang: Literal["zh", "en", "both"] = "both") -> list[str]:
        """Human-readable report lines for the CLI; ``"both"`` gives each in Chinese, then English.

        Parameters
        ----------
        lang
            ``"zh"``, ``"en"`` or ``"both"``.

        Returns
        -------
        list of str
        """
        if lang == "both":
            zh, en = self.lines("zh"), self.lines("en")
            return [x for pair in zip(zh, en, strict=True) for x in pair]
        z = lang == "zh"
        excl = ", ".join(f"{k} {v}" for k, v in sorted(self.excluded.items())) or (
            "无" if z else "none"
        )
        out = [
            (
                f"{self.file}：读取 {self.highway_ways} 条 highway 路线，保留 {self.ways_kept} 条，"
                f"打断为 {self.pieces} 段，共 {self.length_km:.2f} km"
                if z
                else f"{self.file}: {self.highway_ways} highway ways read, {self.ways_kept} kept, "
                f"split into {self.pieces} pieces, {self.length_km:.2f} km"
            ),
            f"排除：{excl}" if z else f"excluded: {excl}",
            (
                f"缺少坐标的节点引用 {self.missing_nodes} 个；"
                f"裁剪去掉 {self.pieces_outside_clip} 段；"
                f"跨层共用节点 {self.mixed_level_junctions} 个"
                if z
                else f"{self.missing_nodes} node references without a location; "
                f"{self.pieces_outside_clip} pieces outside the clip; "
                f"{self.mixed_level_junctions} shared nodes joining different levels"
            ),
        ]
        if self.reclassed:
            items = ", ".join(f"{k} {v}" for k, v in sorted(self.reclassed.items()))
            out.append(f"按通行权改写道路等级：{items}" if z else f"class set by access: {items}")
        if self.unknown_highways:
            items = ", ".join(f"{k} {v}" for k, v in sorted(self.unknown_highways.items()))
            out.append(f"未知 highway 值：{items}" if z else f"unknown highway values: {items}")
        for q in (self.walk, self.drive):
            if q is not None:
                out.extend(q.lines("zh" if z else "en"))
        for note in self.notes:
            zh_text, _, en_text = note.partition(" / ")
            out.append(zh_text if z else (en_text or zh_text))
        return out


# --------------------------------------------------------------------------- splitting


@dataclass
class _Pieces:
    way: np.ndarray  # way index of each piece
    vidx: np.ndarray  # vertex indices of all pieces, concatenated (reversed where one-way -1)
    piece_of_vertex: np.ndarray
    mixed_level_junctions: int


def _split(ways: Ways, source: str) -> _Pieces:
    """Cut every run at its break vertices (junctions, ends); return pieces as vertex indices."""
    lon = np.asarray(ways.lon, dtype=np.float64)
    n = len(lon)
    run_start = np.asarray(ways.run_start, dtype=np.int64)
    run_way = np.asarray(ways.run_way, dtype=np.int64)
    bounds = np.r_[run_start, n]
    run_of = np.repeat(np.arange(len(run_start)), np.diff(bounds))
    is_end = np.zeros(n, dtype=bool)
    is_end[run_start] = True
    is_end[bounds[1:] - 1] = True
    layer = ways.column("layer")
    bridge = ways.column("bridge").astype(np.int64)
    tunnel = ways.column("tunnel").astype(np.int64)
    way_level = np.unique(layer * 4 + bridge * 2 + tunnel, return_inverse=True)[1].ravel()
    level = way_level[run_way[run_of]]
    if source == "osm":
        key = np.asarray(ways.refs, dtype=np.int64)
    else:
        lat = np.asarray(ways.lat, dtype=np.float64)
        xy = np.ascontiguousarray(np.column_stack([lon, lat])).view(np.complex128).ravel()
        key = np.unique(xy, return_inverse=True)[1].ravel()  # exact (lon, lat) as one number
    _, inv, cnt = np.unique(key, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    shared = cnt[inv] >= 2
    sh = np.flatnonzero(shared)
    # occurrences of shared nodes sorted by node, then level: per node its lowest and highest
    # level and its way ends; per (node, level) how many ways meet there
    order = np.lexsort((level[sh], inv[sh]))
    node, lev = inv[sh][order], level[sh][order]
    m = len(order)
    node_first = np.flatnonzero(np.r_[True, node[1:] != node[:-1]]) if m else order
    node_last = np.r_[node_first[1:] - 1, m - 1] if m else order
    ends = np.add.reduceat(is_end[sh][order].astype(np.int64), node_first) if m else order
    brk = is_end.copy()
    if source == "osm":
        brk[sh] = True  # OSM: a shared node is a junction, whatever the levels
        mixed_count = int(((lev[node_first] != lev[node_last]) & (ends == 0)).sum())
    else:  # lines: cut where ways of one level meet, or where one of them ends
        grp = np.flatnonzero(np.r_[True, (node[1:] != node[:-1]) | (lev[1:] != lev[:-1])])
        size = np.diff(np.r_[grp, m])
        cut = np.repeat(size, size) >= 2
        cut |= np.repeat(ends, np.diff(np.r_[node_first, m])) > 0
        brk[sh[order[cut]]] = True
        mixed_count = 0
    bidx = np.flatnonzero(brk)
    r = run_of[bidx]
    cont = r[1:] == r[:-1]
    p_start, p_end, p_run = bidx[:-1][cont], bidx[1:][cont], r[:-1][cont]
    p_way = run_way[p_run]
    lengths = p_end - p_start + 1
    offsets = np.cumsum(lengths) - lengths
    piece_of_vertex = np.repeat(np.arange(len(p_start)), lengths)
    within = np.arange(int(lengths.sum())) - offsets[piece_of_vertex]
    backward = ways.column("oneway")[p_way] == -1
    vidx = np.where(
        backward[piece_of_vertex],
        p_end[piece_of_vertex] - within,
        p_start[piece_of_vertex] + within,
    )
    return _Pieces(p_way, vidx, piece_of_vertex, mixed_count)


# --------------------------------------------------------------------------- the reader


def _clip_area(clip: Any, margin_m: float, to_metric: Transformer) -> BaseGeometry:
    if isinstance(clip, gpd.GeoDataFrame | gpd.GeoSeries):
        if clip.crs is None:
            raise OsmImportError("裁剪范围没有坐标系 / the clip has no CRS; set it first")
        clip = clip.to_crs("EPSG:4326").union_all()
    if not isinstance(clip, BaseGeometry) or clip.is_empty:
        raise OsmImportError(
            "`clip` must be a non-empty shapely geometry in lon/lat (EPSG:4490/4326) or a "
            f"GeoDataFrame/GeoSeries with a CRS, got {type(clip).__name__}"
        )
    metric = shapely.transform(clip, lambda xy: np.column_stack(to_metric.transform(*xy.T)))
    area = metric.buffer(float(margin_m)) if margin_m > 0 else metric
    shapely.prepare(area)
    return area


def read_osm_roads(
    path: str | Path,
    *,
    clip: BaseGeometry | gpd.GeoDataFrame | gpd.GeoSeries | None = None,
    margin_m: float = 1000.0,
    measure_crs: str | None = None,
    progress: Callable[[int], Any] | Any | None = None,
    population: gpd.GeoDataFrame | None = None,
    layer: str | None = None,
    fill_speeds: bool = True,
    quality: bool = True,
    in_measure_crs: bool = False,
) -> tuple[gpd.GeoDataFrame, OsmImportReport]:
    """Read OSM roads into a roads layer split at junctions, with a report of what happened.

    Parameters
    ----------
    path
        ``.osm`` (XML), ``.osm.pbf``/``.pbf`` (also ``.osm.bz2``/``.osm.gz``/``.o5m``), read with
        pyosmium; or a GeoJSON/GPKG/Shapefile of OSM lines with a ``highway`` column (tags as
        columns and/or GDAL's ``other_tags``), split where vertices coincide exactly.
    clip
        Keep only pieces touching this area (typically the district boundary): a shapely
        geometry in lon/lat (EPSG:4490/4326), or a GeoDataFrame/GeoSeries with a CRS. Pieces are
        never cut, so every kept end is a real junction or way end.
    margin_m
        The clip area is buffered by this many metres in ``measure_crs`` (roads just outside the
        district still carry trips inside it).
    measure_crs
        Projected CRS for lengths and the margin; default the CGCS2000 GK zone of the data's
        centre (UTM outside China).
    progress
        Optional progress: a tqdm bar (``.update(n)``) or a callable, given the number of ways
        (rows of a vector file) read since the last call, every 10,000; the calls add up to
        all highway ways (all rows).
    population
        Optional population points (``pop_total``): fills ``population_reach`` of the report.
    layer
        Layer of a multi-layer vector file (GPKG).
    fill_speeds
        True (default): ``speed_kmh`` is ``maxspeed`` or the profile speed of the way's highway
        value. False: only tagged ``maxspeed`` (else empty, so ``network_from_roads`` uses its
        class table and ``drive_speeds_kmh``).
    quality
        True (default): measure the walking and driving networks the layer makes (the report's
        ``walk``/``drive``). False leaves them None (a caller building its network at once,
        as ``geo_mz.network.network_from_osm`` does, gets the same figures from the network).
    in_measure_crs
        False (default): the layer in EPSG:4490, as stored. True: in ``measure_crs``, built from
        the projected coordinates (no second reprojection when a network is built at once).

    Returns
    -------
    tuple of (geopandas.GeoDataFrame, OsmImportReport)
        The roads layer in EPSG:4490 (``measure_crs`` with ``in_measure_crs``), one LineString
        per piece: the layers/roads.toml fields
        ``road_id`` (``"w<way id>-<piece>"``, or ``"r<row>-<piece>"`` for lines without an id),
        ``name``, ``road_class``, ``speed_kmh``, ``oneway`` (drawn direction; ``oneway=-1`` pieces
        are reversed), ``lanes``, ``bridge``, ``tunnel``; then the extra columns ``osm_way_id``,
        ``highway``, ``layer``, ``walk``, ``drive``, ``speed_source`` (kept by the workspace
        import as extra attributes). And the report.

    Raises
    ------
    OsmImportError
        The file is not OSM (or not readable), has no highway way (or none usable), a vector
        file has no ``highway`` column, or nothing is left inside the clip. Messages name the
        file, Chinese first.
    FileNotFoundError
        If ``path`` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: 文件不存在 / file does not exist")
    margin_m = float(margin_m)
    if not np.isfinite(margin_m) or margin_m < 0:
        raise OsmImportError(f"`margin_m` was {margin_m!r}; it must be >= 0 metres")
    tick = ticker(progress)
    name = path.name.lower()
    is_osm = name.endswith(OSM_SUFFIXES)
    notes = []
    if is_osm and name.endswith(GDAL_SUFFIXES):
        ways, why = read_osm_gdal(path, tick)
        if ways is None:
            notes.append(
                f"逐节点精确读取（较慢）：{why} / read node by node (exact, slower): {why}"
            )
            ways = read_osm_pyosmium(path, lambda n: None)
    elif is_osm:
        ways = read_osm_pyosmium(path, tick)
    else:
        ways = read_lines(path, layer, tick)
    if ways.highway_ways == 0:
        raise OsmImportError(f"{path}: 文件中没有 highway 道路 / the file has no highway way")
    if is_osm:
        ways.key_by_location()
    if len(ways.run_start) == 0:
        reasons = ", ".join(f"{k} {v}" for k, v in ways.excluded.most_common())
        raise OsmImportError(
            f"{path}: {ways.highway_ways} 条 highway 路线全部被排除 / all {ways.highway_ways} "
            f"highway ways were excluded ({reasons})"
        )
    pieces = _split(ways, "osm" if is_osm else "lines")
    lon = np.asarray(ways.lon, dtype=np.float64)[pieces.vidx]
    lat = np.asarray(ways.lat, dtype=np.float64)[pieces.vidx]
    ways.refs, ways.lon, ways.lat = array.array("q"), array.array("d"), array.array("d")
    pieces.vidx = np.empty(0, dtype=np.int64)  # vertices live in lon/lat now: free the copies
    if measure_crs is None:
        measure_crs = default_measure_crs(
            (lon.min() + lon.max()) / 2.0, (lat.min() + lat.max()) / 2.0
        )
    target = parse_crs(measure_crs)
    assert target is not None
    if not target.is_projected:
        raise OsmImportError(f"measure_crs {measure_crs} 是地理坐标系 / is geographic")
    to_metric = _transformer("EPSG:4326", target.to_wkt())
    x, y = to_metric.transform(lon, lat)
    pv = pieces.piece_of_vertex
    seg = np.hypot(np.diff(x), np.diff(y))
    seg[pv[1:] != pv[:-1]] = 0.0
    length_m = np.bincount(pv[1:], weights=seg, minlength=len(pieces.way))
    keep = length_m > 0
    n_zero = int((~keep).sum())
    outside = 0
    if clip is not None:
        area = _clip_area(clip, margin_m, to_metric)
        metric = shapely.linestrings(np.column_stack([x, y]), indices=pv)
        inside = shapely.intersects(metric, area)
        outside = int((keep & ~inside).sum())
        keep &= inside
        del metric
    del seg
    if not keep.any():
        raise OsmImportError(
            f"{path}: 裁剪范围（含 {margin_m:.0f} m 缓冲）内没有道路 / no road piece lies within "
            f"the clip area (buffered by {margin_m:.0f} m)"
        )
    vkeep = keep[pv]
    new_id = np.cumsum(keep) - 1
    vpiece = new_id[pv[vkeep]]
    metric_xy = np.column_stack([x[vkeep], y[vkeep]])
    if in_measure_crs:
        geoms = shapely.linestrings(metric_xy, indices=vpiece)
    else:
        geoms = shapely.linestrings(np.column_stack([lon[vkeep], lat[vkeep]]), indices=vpiece)
    del lon, lat, x, y, vkeep, new_id, pv
    pieces.piece_of_vertex = np.empty(0, dtype=np.int64)
    roads = _frame(ways, pieces.way, keep, geoms, fill_speeds, target if in_measure_crs else None)
    modes = ("walk", "drive") if roads["drive"].any() else ("walk",)
    checked: dict[str, RoadsQuality] = {}
    if quality:
        checked = roads_qualities(
            roads,
            modes=modes,
            population=population,
            measure_crs=measure_crs,
            metric_coords=(metric_xy, vpiece),
        )
    del metric_xy, vpiece
    if n_zero:
        notes.append(
            f"{n_zero} 段长度为零（重复节点），已略去 / {n_zero} zero-length pieces (duplicate "
            "nodes) left out"
        )
    if ways.missing_nodes:
        notes.append(
            f"{ways.missing_nodes} 个节点引用在文件中没有坐标，路线在此断开 / {ways.missing_nodes} "
            "node references have no location in the file (ways cut by the extract); ways are "
            "broken there"
        )
    report = OsmImportReport(
        file=str(path),
        source="osm" if is_osm else "lines",
        highway_ways=int(ways.highway_ways),
        ways_kept=len(np.unique(np.asarray(ways.run_way, dtype=np.int64))),
        excluded=dict(ways.excluded.most_common()),
        unknown_highways=dict(ways.unknown.most_common()),
        missing_nodes=int(ways.missing_nodes),
        reclassed=dict(ways.reclassed().most_common()),
        mixed_level_junctions=pieces.mixed_level_junctions,
        pieces=len(roads),
        pieces_outside_clip=outside,
        length_km=float(length_m[keep].sum() / 1000.0),
        measure_crs=target.to_string() if target.to_epsg() is None else f"EPSG:{target.to_epsg()}",
        walk=checked.get("walk"),
        drive=checked.get("drive"),
        notes=notes,
    )
    return roads, report


def _frame(
    ways: Ways,
    way: np.ndarray,
    keep: np.ndarray,
    geoms: np.ndarray,
    fill_speeds: bool,
    metric: CRS | None = None,
) -> gpd.GeoDataFrame:
    """Build the roads layer of the kept pieces (geometries in lon/lat, or in ``metric``).

    ``way`` is the way index of every piece (in order along each way), ``keep`` the pieces
    written; pieces are numbered along their way before the clip, so ids do not depend on it.
    """
    all_id = np.asarray(ways.way_id, dtype=np.int64)[way]
    all_row = np.asarray(ways.way_row, dtype=np.int64)[way]
    key = np.where(all_id >= 0, all_id, -all_row - 1)
    number = (pd.Series(key).groupby(key).cumcount().to_numpy() + 1)[keep]
    way, way_id, row = way[keep], all_id[keep], all_row[keep]
    known = way_id >= 0
    base = np.where(known, way_id, row + 1).tolist()
    road_id = np.array(
        [
            f"{'w' if k else 'r'}{b}-{m}"
            for k, b, m in zip(known.tolist(), base, number.tolist(), strict=True)
        ],
        dtype=object,
    )
    way_names = np.full(len(ways.way_id), None, dtype=object)
    if ways.names:
        way_names[np.fromiter(ways.names, dtype=np.int64)] = list(ways.names.values())
    names = way_names[way]
    source = ways.column("speed_source")[way]
    speed = ways.column("speed_kmh")[way]
    if not fill_speeds:
        speed = np.where(source == "maxspeed", speed, np.nan)
        source = np.where(source == "maxspeed", source, "")
    lanes = ways.column("lanes")[way]
    frame = {
        "road_id": road_id,
        "name": names,
        "road_class": ways.column("road_class")[way],
        "speed_kmh": speed,
        "oneway": ways.column("oneway")[way] != 0,
        "lanes": pd.array(np.where(lanes >= 0, lanes, 0), dtype="Int64"),
        "bridge": ways.column("bridge")[way],
        "tunnel": ways.column("tunnel")[way],
        "osm_way_id": pd.array(np.where(known, way_id, 0), dtype="Int64"),
        "highway": ways.column("highway")[way],
        "layer": ways.column("layer")[way],
        "walk": ways.column("walk")[way],
        "drive": ways.column("drive")[way],
        "speed_source": source.astype(object),
    }
    frame["lanes"][lanes < 0] = pd.NA
    frame["osm_way_id"][~known] = pd.NA
    if metric is not None:
        return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=metric).values)
    gdf = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs="EPSG:4326").values)
    return (
        gdf.set_crs(STORAGE_CRS, allow_override=True) if _same_datum() else gdf.to_crs(STORAGE_CRS)
    )


@functools.cache
def _transformer(src: str, dst: str) -> Transformer:
    """Build a lon/lat -> metric transformer once per CRS pair (one costs ~50 ms to build)."""
    return Transformer.from_crs(src, dst, always_xy=True)


@functools.cache
def _same_datum() -> bool:
    """Whether PROJ maps WGS84 lon/lat to CGCS2000 unchanged (it does: ballpark, < 1 m)."""
    lon, lat = np.array([73.5, 114.0, 135.0]), np.array([18.0, 22.5, 53.5])
    x, y = _transformer("EPSG:4326", STORAGE_CRS).transform(lon, lat)
    return bool(np.array_equal(x, lon) and np.array_equal(y, lat))

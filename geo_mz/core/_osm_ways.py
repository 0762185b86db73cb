"""Reading OSM ways into flat columns (package-internal to :mod:`geo_mz.core`).

Three readers fill one :class:`Ways` (vertex keys, lon, lat, runs, per-way attributes) that
:mod:`geo_mz.core.osm_roads` splits at junctions:

* :func:`read_osm_gdal` (OSM XML and PBF, the fast path): GDAL's OSM driver (bundled with
  pyogrio) assembles the way geometries in C++; a way-only pyosmium pass (no node locations, no
  Python object per node) counts each highway way's node references, so a way GDAL shortened
  or dropped because a node has no location is *noticed* and the exact reader takes over. Ways
  are joined where they share a node location (OSM's fixed 1e-7 degree precision): the same
  node, or two nodes stacked on one spot (which OSM validators flag as duplicate nodes).
* :func:`read_osm_pyosmium` (exact, slower: one Python call per way and per node): used for
  files with node references that have no location (extracts that cut ways), and for the formats
  GDAL's driver does not read (``.o5m``, ``.opl``, compressed XML). Ways join on shared node ids;
  a way is broken where a node has no location.
* :func:`read_lines`: GeoJSON/GPKG/Shapefile of OSM lines (no node ids; coinciding vertices).
"""

from __future__ import annotations

import array
import re
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from geo_mz.core.errors import LayerReadError, OsmImportError
from geo_mz.core.io import read_source
from geo_mz.core.osm_profile import OSM_PROFILE, TAG_KEYS, WayClass, classify_way

__all__ = [
    "GDAL_SUFFIXES",
    "OSM_SUFFIXES",
    "Ways",
    "read_lines",
    "read_osm_gdal",
    "read_osm_pyosmium",
    "ticker",
]


_SHIFT_LON_E7 = 1_800_000_000  # lon * 1e7 + shift fits in 32 bits, lat * 1e7 + shift in 31
_SHIFT_LAT_E7 = 900_000_000


def location_keys(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """One int64 per OSM location (lon, lat in OSM's 1e-7 degree fixed point)."""
    lon_e7 = np.rint(np.asarray(lon) * 1e7).astype(np.int64) + _SHIFT_LON_E7
    lat_e7 = np.rint(np.asarray(lat) * 1e7).astype(np.int64) + _SHIFT_LAT_E7
    return (lon_e7 << 31) | lat_e7


class Ways:
    """Kept ways as flat columns: vertices (node key, lon, lat), runs, per-way attributes."""

    def __init__(self) -> None:
        self.refs = array.array("q")
        self.lon = array.array("d")
        self.lat = array.array("d")
        self.run_start = array.array("q")
        self.run_way = array.array("q")
        self.way_id = array.array("q")  # -1 when unknown
        self.way_row = array.array("q")  # source row (lines input) or -1
        self.way_kind = array.array("i")  # index into kinds: the way's attributes but its name
        self.kinds: dict[tuple, int] = {}  # WayClass without name -> kind index
        self.names: dict[int, str] = {}
        self.highway_ways = 0
        self.excluded: Counter[str] = Counter()
        self.unknown: Counter[str] = Counter()
        self.missing_nodes = 0

    def exclude(self, wc: WayClass) -> None:
        """Count one way left out for the reason in ``wc.excluded``."""
        self.exclude_n(wc, 1)

    def exclude_n(self, wc: WayClass, n: int) -> None:
        """Count ``n`` ways left out for the reason in ``wc.excluded``."""
        self.excluded[wc.excluded or "excluded"] += n
        if wc.excluded == "unknown_highway":
            self.unknown[wc.highway] += n

    def add_way(self, way_id: int, row: int, wc: WayClass) -> None:
        """Append a way whose runs were just added (its attributes stored once per kind)."""
        kind = self.kinds.setdefault(wc[:-1], len(self.kinds))
        if wc.name:
            self.names[len(self.way_id)] = wc.name
        self.way_id.append(way_id)
        self.way_row.append(row)
        self.way_kind.append(kind)

    def column(self, name: str) -> np.ndarray:
        """One WayClass field for every way, as an array (object for strings, -1 for no lanes)."""
        i = WayClass._fields.index(name)
        table = np.array([k[i] for k in self.kinds], dtype=object)
        if name in ("walk", "drive", "bridge", "tunnel"):
            table = table.astype(bool)
        elif name in ("oneway", "layer"):
            table = table.astype(np.int64)
        elif name == "speed_kmh":
            table = table.astype(np.float64)
        elif name == "lanes":  # -1 when unknown
            table = np.array([-1 if v is None or v < 0 else v for v in table], dtype=np.int64)
        return table[np.asarray(self.way_kind, dtype=np.int64)]

    def reclassed(self) -> Counter[str]:
        """Ways written with another class than their highway's (see the access rule)."""
        counts = np.bincount(np.asarray(self.way_kind, dtype=np.int64), minlength=len(self.kinds))
        out: Counter[str] = Counter()
        for kind, i in self.kinds.items():
            wc = WayClass(*kind, None)
            base = OSM_PROFILE[wc.highway].road_class
            if wc.road_class != base and counts[i]:
                out[f"{wc.highway}: {base} -> {wc.road_class}"] += int(counts[i])
        return out

    def key_by_location(self) -> None:
        """Make each vertex's key its location, and drop repeats of a location along a run.

        OSM coordinates are fixed-point (1e-7 degree), so equal locations are equal integers.
        Two nodes stacked on one spot (an OSM "duplicate node") become one junction, as a
        router should see them; a run left with fewer than two locations is dropped, and a
        way left without a run is counted as ``no_length``.
        """
        lon = np.asarray(self.lon, dtype=np.float64)
        lat = np.asarray(self.lat, dtype=np.float64)
        key = location_keys(lon, lat)
        run_start = np.asarray(self.run_start, dtype=np.int64)
        run_way = np.asarray(self.run_way, dtype=np.int64)
        n = len(key)
        run_of = np.repeat(np.arange(len(run_start)), np.diff(np.r_[run_start, n]))
        same = np.zeros(n, dtype=bool)
        same[1:] = (run_of[1:] == run_of[:-1]) & (key[1:] == key[:-1])
        if same.any():
            ways_before = len(np.unique(run_way))
            run_ok = np.bincount(run_of[~same], minlength=len(run_start)) >= 2
            keep = ~same & run_ok[run_of]
            key, lon, lat, run_of = key[keep], lon[keep], lat[keep], run_of[keep]
            first = np.r_[True, run_of[1:] != run_of[:-1]] if len(run_of) else run_of
            run_start = np.flatnonzero(first)
            run_way = run_way[run_ok]
            self.excluded["no_length"] += ways_before - len(np.unique(run_way))
        self.refs, self.lon, self.lat = key, lon, lat  # type: ignore[assignment]
        self.run_start, self.run_way = run_start, run_way  # type: ignore[assignment]

    def add_run(self, refs: list[int], lon: list[float], lat: list[float]) -> bool:
        if len(refs) < 2:
            return False
        self.run_start.append(len(self.refs))
        self.run_way.append(len(self.way_id))
        self.refs.extend(refs)
        self.lon.extend(lon)
        self.lat.extend(lat)
        return True


OSM_SUFFIXES = (".osm", ".pbf", ".osm.bz2", ".osm.gz", ".o5m", ".opl")
GDAL_SUFFIXES = (".osm", ".pbf")  #: what GDAL's OSM driver reads (the fast path)


def ticker(progress: Any) -> Callable[[int], None]:
    if progress is None:
        return lambda n: None
    update = getattr(progress, "update", None)
    if callable(update):
        return update
    if callable(progress):
        return progress
    raise TypeError(f"`progress` must be a callable or a tqdm bar, got {type(progress).__name__}")


def read_osm_pyosmium(path: Path, tick: Callable[[int], None]) -> Ways:
    """Stream an OSM XML/PBF file with pyosmium: highway ways only, node locations indexed."""
    import osmium

    ways = Ways()
    every = 10_000
    alone: dict[str, WayClass] = {}

    class Handler(osmium.SimpleHandler):  # type: ignore[misc]
        def way(self, w: Any) -> None:
            ways.highway_ways += 1
            if ways.highway_ways % every == 0:
                tick(every)
            tags = w.tags
            if len(tags) == 1:  # only its highway tag (common): classified once per value
                hw = tags.get("highway")
                wc = alone.get(hw) or alone.setdefault(hw, classify_way({"highway": hw}))
            else:
                wc = classify_way(tags)
            if wc.excluded is not None:
                ways.exclude(wc)
                return
            refs: list[int] = []
            lon: list[float] = []
            lat: list[float] = []
            kept = False
            prev = None
            missing_before = ways.missing_nodes
            for nr in w.nodes:
                ref = nr.ref
                if ref == prev:
                    continue
                prev = ref
                loc = nr.location
                if not loc.valid():
                    ways.missing_nodes += 1
                    kept |= ways.add_run(refs, lon, lat)
                    refs, lon, lat, prev = [], [], [], None
                    continue
                refs.append(ref)
                lon.append(loc.lon)
                lat.append(loc.lat)
            kept |= ways.add_run(refs, lon, lat)
            if kept:
                ways.add_way(w.id, -1, wc)
            else:  # every piece shorter than two nodes: cut by missing nodes, or one node only
                why = "missing_nodes" if ways.missing_nodes > missing_before else "no_length"
                ways.exclude(wc._replace(excluded=why))

    name = path.name.lower()
    fmt = "pbf" if name.endswith(".pbf") else ("osm" if name.endswith(".osm") else None)
    src = osmium.io.File(str(path), fmt) if fmt else osmium.io.File(str(path))
    try:
        Handler().apply_file(src, locations=True, filters=[osmium.filter.KeyFilter("highway")])
    except (RuntimeError, ValueError, osmium.InvalidLocationError) as exc:
        raise OsmImportError(
            f"{path}: 不是可读取的 OSM 文件（XML 或 PBF）/ not a readable OSM file (XML or PBF): "
            f"{exc}"
        ) from exc
    tick(ways.highway_ways % every)
    return ways


_OTHER_TAGS = re.compile(r'"((?:[^"\\]|\\.)*)"=>"((?:[^"\\]|\\.)*)"')
_ID_COLUMNS = ("osm_id", "osm_way_id", "@id", "id", "full_id")
_WAY_ID = re.compile(r"(?:way/|w)?(\d+)(?:\.0)?")


def _cell(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return None
    return str(v)


def _way_id(raw: Any) -> int:
    s = _cell(raw)
    m = _WAY_ID.fullmatch(s.strip()) if s is not None else None
    return int(m.group(1)) if m else -1


def read_lines(path: Path, layer: str | None, tick: Callable[[int], None]) -> Ways:
    """OSM lines from a vector file: tags from columns (and GDAL's ``other_tags``)."""
    try:
        gdf = read_source(path, layer=layer).gdf
    except LayerReadError as exc:
        raise OsmImportError(
            f"{path}: 不是可读取的 OSM 文件或 OSM 线图层 / not a readable OSM file or layer of "
            f"OSM lines: {exc}"
        ) from exc
    by_lower = {str(c).lower(): c for c in gdf.columns if c != gdf.geometry.name}
    if "highway" not in by_lower:
        raise OsmImportError(
            f"{path}: 缺少 'highway' 字段，不是 OSM 道路线 / has no 'highway' column, so it is "
            f"not a layer of OSM roads (columns: {list(by_lower.values())}); export the ways "
            "with their highway tag (Overpass, QuickOSM) or give the .osm/.pbf file"
        )
    if gdf.crs is None:
        raise OsmImportError(f"{path}: 没有坐标系 / has no CRS; OSM lines are EPSG:4326")
    crs = CRS.from_user_input(gdf.crs)
    if crs.to_epsg() not in (4326, 4490):
        gdf = gdf.to_crs("EPSG:4326")
    columns = {k: gdf[by_lower[k]].to_numpy(dtype=object) for k in TAG_KEYS if k in by_lower}
    other = gdf[by_lower["other_tags"]].to_numpy(dtype=object) if "other_tags" in by_lower else None
    id_col = next((by_lower[c] for c in _ID_COLUMNS if c in by_lower), None)
    ids = gdf[id_col].to_numpy(dtype=object) if id_col is not None else None
    geoms = np.asarray(gdf.geometry.values)
    is_line = np.isin(shapely.get_type_id(geoms), (1, 5)) & ~shapely.is_empty(geoms)
    ways = Ways()
    keep_rows = np.zeros(len(gdf), dtype=bool)
    for i in range(len(gdf)):
        if i and i % 10_000 == 0:
            tick(10_000)
        tags: dict[str, str | None] = {k: _cell(col[i]) for k, col in columns.items()}
        if other is not None and isinstance(other[i], str):
            for k, v in _OTHER_TAGS.findall(other[i]):
                if k in TAG_KEYS and tags.get(k) is None:
                    tags[k] = v
        ways.highway_ways += tags.get("highway") is not None
        wc = classify_way(tags)
        if wc.excluded is None and not is_line[i]:
            wc = wc._replace(excluded="not_a_line")
        if wc.excluded is not None:
            if tags.get("highway") is not None:
                ways.exclude(wc)
            continue
        keep_rows[i] = True
        ways.add_way(_way_id(ids[i]) if ids is not None else -1, i, wc)
    tick(len(gdf) - 10_000 * ((len(gdf) - 1) // 10_000) if len(gdf) else 0)
    rows = np.flatnonzero(keep_rows)
    parts, part_way = shapely.get_parts(shapely.force_2d(geoms[rows]), return_index=True)
    coords, vpart = shapely.get_coordinates(parts, return_index=True)
    same = np.zeros(len(coords), dtype=bool)
    same[1:] = (vpart[1:] == vpart[:-1]) & (coords[1:] == coords[:-1]).all(axis=1)
    coords, vpart = coords[~same], vpart[~same]
    nverts = np.bincount(vpart, minlength=len(parts))
    ok = nverts >= 2
    vkeep = ok[vpart]
    coords, vpart = coords[vkeep], vpart[vkeep]
    starts = np.flatnonzero(np.r_[True, vpart[1:] != vpart[:-1]]) if len(vpart) else vpart
    ways.lon, ways.lat = coords[:, 0].copy(), coords[:, 1].copy()  # type: ignore[assignment]
    ways.run_start = starts.astype(np.int64)  # type: ignore[assignment]
    ways.run_way = part_way[ok].astype(np.int64)  # type: ignore[assignment]
    lost = len(rows) - len(np.unique(ways.run_way))
    if lost:
        ways.excluded["no_length"] += lost
    return ways


# --------------------------------------------------------------------------- the fast path

#: GDAL OSM driver configuration: the profile's tags as fields of the ``lines`` layer, keys not
#: laundered (``name:zh``), no hstore column, and no key that turns a closed way into a polygon
#: (a closed residential street is a ring road; only ``area=yes`` makes an area, which the
#: profile excludes anyway).
_GDAL_CONF = """[general]
closed_ways_are_polygons=geo_mz_none
attribute_name_laundering=no
{sections}"""
_GDAL_SECTION = """[{name}]
osm_id=yes
osm_version=no
osm_timestamp=no
osm_uid=no
osm_user=no
osm_changeset=no
attributes={attributes}
other_tags=no
"""


def _gdal_conf() -> str:
    names = ("points", "lines", "multipolygons", "multilinestrings", "other_relations")
    return _GDAL_CONF.format(
        sections="".join(
            _GDAL_SECTION.format(name=n, attributes=",".join(TAG_KEYS) if n == "lines" else "name")
            for n in names
        )
    )


def _count_highway_ways(path: Path, tick: Callable[[int], None]) -> tuple[Any, ...] | None:
    """One way-only pyosmium pass: id, node-reference count and ``area=yes`` of highway ways.

    No node locations and no Python object per node, so it costs a fraction of the exact
    reader. None when pyosmium cannot read the file (the exact reader then says why).
    """
    import osmium

    ids, nrefs = array.array("q"), array.array("q")
    area: dict[int, dict[str, str]] = {}
    every = 10_000
    try:
        ways = osmium.FileProcessor(str(path), osmium.osm.WAY).with_filter(
            osmium.filter.KeyFilter("highway")
        )
        for w in ways:
            ids.append(w.id)
            nrefs.append(len(w.nodes))
            if w.tags.get("area") == "yes":  # GDAL makes it an area, not a line
                area[w.id] = {k: w.tags.get(k) for k in TAG_KEYS}
            if len(ids) % every == 0:
                tick(every)
    except (RuntimeError, ValueError) as exc:  # not OSM: the exact reader raises the error
        del exc
        return None
    tick(len(ids) % every)
    return np.frombuffer(ids, dtype=np.int64), np.frombuffer(nrefs, dtype=np.int64), area


def read_osm_gdal(path: Path, tick: Callable[[int], None]) -> tuple[Ways | None, str]:
    """Read highway ways of an OSM XML/PBF file through GDAL's OSM driver, checked by pyosmium.

    Parameters
    ----------
    path
        An ``.osm`` or ``.pbf`` file.
    tick
        Progress: called with the number of highway ways counted since the last call.

    Returns
    -------
    tuple of (Ways or None, str)
        The ways, or None with the reason when the file needs the exact reader: a highway way
        with a node reference that has no location (GDAL would join across the gap or drop the
        way), a way GDAL did not return as a line, or a file GDAL or pyosmium cannot read.
    """
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError, FieldError

    counted = _count_highway_ways(path, tick)
    if counted is None:
        return None, "pyosmium cannot read the file"
    ids, nrefs, area = counted
    if len(ids) == 0:
        ways = Ways()
        return ways, ""
    with tempfile.TemporaryDirectory(prefix="geo_mz_osm_") as tmp:
        conf = Path(tmp) / "osmconf.ini"
        conf.write_text(_gdal_conf(), encoding="utf-8")
        try:
            meta, _, wkb, fields = pyogrio.raw.read(
                path,
                layer="lines",
                columns=["osm_id", *TAG_KEYS],
                where="highway IS NOT NULL",
                CONFIG_FILE=str(conf),
            )
        except (DataSourceError, DataLayerError, FieldError) as exc:
            return None, f"GDAL cannot read it ({exc})"
    cols = dict(zip(meta["fields"], fields, strict=True))
    gid = pd.to_numeric(pd.Series(cols.pop("osm_id")), errors="coerce").to_numpy()
    geoms = shapely.from_wkb(wkb)
    del wkb
    coords, vway = shapely.get_coordinates(geoms, return_index=True)
    nvert = np.bincount(vway, minlength=len(geoms))
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    if len(sorted_ids) > 1 and (sorted_ids[1:] == sorted_ids[:-1]).any():
        return None, "way ids repeat in the file"
    if np.isnan(gid).any():
        return None, "GDAL returned a line without a way id"
    gid = gid.astype(np.int64)
    pos = np.minimum(np.searchsorted(sorted_ids, gid), len(sorted_ids) - 1)
    if not (sorted_ids[pos] == gid).all():
        return None, "GDAL returned ways pyosmium did not count"
    short = nrefs[order][pos] != nvert
    if short.any():
        return None, f"{int(short.sum())} highway ways have node references without a location"
    absent = np.setdiff1d(ids, gid).tolist()
    if not all(i in area for i in absent):
        return None, "GDAL did not return every highway way as a line"
    areas = [classify_way(area[i]) for i in absent]
    return _ways_from_gdal(cols, gid, coords, vway, len(ids), areas), ""


def _ways_from_gdal(
    cols: dict[str, np.ndarray],
    gid: np.ndarray,
    coords: np.ndarray,
    vway: np.ndarray,
    highway_ways: int,
    areas: list[WayClass],
) -> Ways:
    """Classify each distinct tag combination once and fill :class:`Ways` from arrays."""
    keys = [k for k in TAG_KEYS if k not in ("name", "name:zh")]
    tags = pd.DataFrame({k: cols[k] for k in keys})
    code = tags.groupby(keys, dropna=False, sort=False).ngroup().to_numpy()
    first = np.unique(code, return_index=True)[1]
    classes = [
        classify_way({k: v if isinstance(v, str) else None for k, v in zip(keys, row, strict=True)})
        for row in tags.iloc[first].itertuples(index=False, name=None)
    ]
    del tags
    ways = Ways()
    ways.highway_ways = highway_ways
    for wc in areas:  # GDAL made them areas; the profile excludes them (area=yes or before)
        ways.exclude(wc)
    nvert = np.bincount(vway, minlength=len(gid))
    excluded = np.array([wc.excluded is not None for wc in classes], dtype=bool)[code]
    degenerate = ~excluded & (nvert < 2)
    for c, n in zip(*np.unique(code[excluded], return_counts=True), strict=True):
        ways.exclude_n(classes[int(c)], int(n))
    for c, n in zip(*np.unique(code[degenerate], return_counts=True), strict=True):
        ways.exclude_n(classes[int(c)]._replace(excluded="no_length"), int(n))
    kept = ~excluded & ~degenerate
    kind_of = np.array(
        [
            ways.kinds.setdefault(wc[:-1], len(ways.kinds)) if wc.excluded is None else -1
            for wc in classes
        ],
        dtype=np.int64,
    )
    kept_idx = np.flatnonzero(kept)
    new_index = np.full(len(gid), -1, dtype=np.int64)
    new_index[kept_idx] = np.arange(len(kept_idx))
    vkeep = kept[vway]
    ways.refs = np.empty(0, dtype=np.int64)  # type: ignore[assignment]  # keys: by location
    ways.lon = np.ascontiguousarray(coords[vkeep, 0])  # type: ignore[assignment]
    ways.lat = np.ascontiguousarray(coords[vkeep, 1])  # type: ignore[assignment]
    run_of = new_index[vway[vkeep]]
    first = np.r_[True, run_of[1:] != run_of[:-1]] if len(run_of) else np.zeros(0, dtype=bool)
    ways.run_start = np.flatnonzero(first)  # type: ignore[assignment]
    ways.run_way = np.arange(len(kept_idx), dtype=np.int64)  # type: ignore[assignment]
    ways.way_id = gid[kept_idx]  # type: ignore[assignment]
    ways.way_row = np.full(len(kept_idx), -1, dtype=np.int64)  # type: ignore[assignment]
    ways.way_kind = kind_of[code[kept_idx]]  # type: ignore[assignment]
    name = pd.Series(cols["name"][kept_idx], dtype=object)
    name = name.where(name.notna() & (name != ""), pd.Series(cols["name:zh"][kept_idx]))
    named = name.notna() & (name != "")
    ways.names = dict(
        zip(np.flatnonzero(named.to_numpy()).tolist(), name[named].tolist(), strict=True)
    )
    return ways

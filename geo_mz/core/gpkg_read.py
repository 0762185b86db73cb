"""Bounding-box reads of a GeoPackage layer through sqlite3 and the layer's R-tree.

A partitioned run reads every part's inputs by bounding box. Through GDAL each such read opens
the file again (about 4–8 ms before the first row, whatever the box holds), which is most of a
small part's reading. Here a process keeps one read-only sqlite3 connection per file (and
thread), selects the rows by the layer's R-tree (``rtree_<table>_<geometry column>``) and
decodes the GeoPackage geometry blobs with numpy and shapely.

The result is the frame ``pyogrio.read_dataframe(path, layer=..., bbox=..., fid_as_index=True)``
gives, sorted by fid and with a fresh index: the same columns in the same order, the same raw
dtypes (taken from ``pyogrio.read_info`` of the file, once per file version), the same CRS and
the same rows (GDAL's rule: the R-tree's box meets the query box, then the geometry's envelope
is inside the box or the geometry intersects it). A layer or value this reader cannot give
exactly so (a column type other than text, integer, real or boolean; a value stored with
another type than its column's, as SQLite allows; a JSON subtype; no R-tree) makes it return
None, and the caller reads with GDAL as before.

The connection is checked at every read: the file's (inode, mtime_ns, size) and
``PRAGMA data_version``. A geo_mz write replaces the file (a new inode), a tool that edits it in
place changes its time or size, and another connection's commit changes ``data_version``; any
of these drops what was cached about the layer (and reopens the connection on a new file).
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import shapely
from geopandas.array import GeometryArray

__all__ = [
    "GpkgRows",
    "box_mask",
    "close_gpkg_connections",
    "geoframe",
    "gpkg_version",
    "mask_strips",
    "read_gpkg_bbox",
    "read_gpkg_rows",
    "rtree_extent",
    "to_geoframe",
]

_MAX_FILES = 8
"""Connections a thread keeps open (least recently used closed first)."""

# GeoPackage blob envelope sizes by the envelope indicator (flags bits 1-3).
_ENVELOPE_BYTES = np.array([0, 32, 48, 48, 64, 0, 0, 0], dtype=np.int64)
_RAW_KINDS = {"object", "float64", "int64", "int32", "int16", "bool"}
_STRIPS = 16
"""Strips of a mask's box asked of the R-tree (:func:`mask_strips`)."""
_GDAL_ROWS = 25_000
"""Boxes holding at least this many rows are read through GDAL (with the same filters): its
C loop turns rows into columns faster than sqlite3's Python rows (about 3.4 vs 5.6 µs a point
row measured on a city of the Guangdong workload); below it, GDAL's open (4–8 ms) costs more."""


@dataclass
class _LayerInfo:
    table: str
    fid: str
    geom: str
    rtree: str
    fields: list[str]
    dtypes: list[str]
    crs: Any
    """The layer's CRS as a ``pyproj.CRS`` (parsed once per layer, not once per read)."""
    indexed: frozenset[str] = frozenset()
    """Text fields that lead a B-tree index (a prefix read then skips the R-tree)."""
    text_only: dict[str, bool] = field(default_factory=dict)
    """Indexed fields found to hold only text and nulls (probed once per layer version)."""


@dataclass
class _File:
    con: sqlite3.Connection
    stamp: tuple[int, int, int]
    data_version: int
    layers: dict[str, _LayerInfo | None] = field(default_factory=dict)
    serial: int = field(default_factory=lambda: next(_SERIALS))
    """Which connection this is (data versions of two connections do not compare)."""


_SERIALS = itertools.count()


_LOCAL = threading.local()


def _files() -> dict[str, _File]:
    # Per thread (sqlite3 connections are not shared across threads) and per process (a
    # connection inherited through fork must not be used by the child).
    pid = os.getpid()
    if getattr(_LOCAL, "pid", None) != pid:
        _LOCAL.pid = pid
        _LOCAL.files = {}
    return _LOCAL.files


def _stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def close_gpkg_connections() -> None:
    """Close this thread's cached GeoPackage connections (they reopen on the next read)."""
    files = _files()
    for f in files.values():
        f.con.close()
    files.clear()


def _connection(path: Path) -> _File:
    files = _files()
    key = str(path.resolve())
    stamp = _stamp(path)
    f = files.pop(key, None)
    if f is not None and f.stamp != stamp:
        f.con.close()
        f = None
    if f is None:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        f = _File(con, stamp, _data_version(con))
    else:
        version = _data_version(f.con)
        if version != f.data_version:  # another connection committed: forget the layers
            f.data_version = version
            f.layers.clear()
    files[key] = f  # most recently used last
    while len(files) > _MAX_FILES:
        old = files.pop(next(iter(files)))
        old.con.close()
    return f


def gpkg_version(path: str | Path) -> tuple[int, tuple[int, int, int], int]:
    """Return a token of a GeoPackage's state: equal tokens, no change to its data between.

    The file's inode, modification time and size, and SQLite's ``PRAGMA data_version`` on
    this thread's kept read-only connection (it changes when any other connection commits,
    WAL mode included), with that connection's serial number. A file replaced by another
    (written and renamed into place) has another inode.

    Parameters
    ----------
    path
        A GeoPackage file.

    Returns
    -------
    tuple
        Compare with ``==`` only.

    Raises
    ------
    sqlite3.Error, OSError
        If the file cannot be opened.
    """
    f = _connection(Path(path))
    return (f.serial, f.stamp, f.data_version)


def rtree_extent(path: str | Path, layer: str) -> tuple[float, float, float, float] | None:
    """Return a box holding every feature of ``layer``, from its R-tree (None without one).

    The R-tree keeps each feature's box rounded outward to 32-bit floats, so this box holds
    the layer's exact extent and exceeds it by at most a float's rounding (~1e-5°): a
    conservative extent, read in a fifth of the time of every geometry's bounds.

    Parameters
    ----------
    path
        A GeoPackage file.
    layer
        A table with a geometry column.

    Returns
    -------
    tuple or None
        ``(minx, miny, maxx, maxy)`` in the layer's CRS (NaNs when the layer has no
        features); None when the layer has no R-tree or is not a feature table.
    """
    path = Path(path)
    f = _connection(path)
    info = _layer_info(path, f, layer)
    if info is None:
        return None
    row = f.con.execute(
        f"SELECT min(minx), min(miny), max(maxx), max(maxy) FROM {_quote(info.rtree)}"
    ).fetchone()
    return tuple(np.nan if v is None else float(v) for v in row)  # type: ignore[return-value]


def _data_version(con: sqlite3.Connection) -> int:
    return int(con.execute("PRAGMA data_version").fetchone()[0])


def _layer_info(path: Path, f: _File, layer: str) -> _LayerInfo | None:
    if layer in f.layers:
        return f.layers[layer]
    info: _LayerInfo | None = None
    row = f.con.execute(
        "SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?", (layer,)
    ).fetchone()
    if row is not None:
        geom = str(row[0])
        rtree = f"rtree_{layer}_{geom}"
        has_rtree = f.con.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (rtree,)
        ).fetchone()
        meta = pyogrio.read_info(path, layer=layer)
        dtypes = [str(d) for d in meta["dtypes"]]
        subtypes = [str(s) for s in meta["ogr_subtypes"]]
        plain = all(d in _RAW_KINDS for d in dtypes) and "OFSTJSON" not in subtypes
        if has_rtree and plain and meta["fid_column"] and meta["geometry_name"] == geom:
            info = _LayerInfo(
                table=layer,
                fid=str(meta["fid_column"]),
                geom=geom,
                rtree=rtree,
                fields=[str(c) for c in meta["fields"]],
                dtypes=dtypes,
                crs=None if meta["crs"] is None else pyproj.CRS.from_user_input(meta["crs"]),
                indexed=_indexed_fields(f.con, layer),
            )
    f.layers[layer] = info
    return info


def _indexed_fields(con: sqlite3.Connection, table: str) -> frozenset[str]:
    """Fields that are the first column of an index of ``table`` (default text collation)."""
    out = set()
    for idx in con.execute(f"PRAGMA index_list({_quote(table)})").fetchall():
        cols = con.execute(f"PRAGMA index_xinfo({_quote(str(idx[1]))})").fetchall()
        # (seqno, cid, name, desc, coll, key): the first key column, BINARY collation.
        if cols and cols[0][2] is not None and str(cols[0][4]).upper() == "BINARY":
            out.add(str(cols[0][2]))
    return frozenset(out)


def _prefix_bounds(code: str) -> tuple[str, str] | None:
    """``(code, next)``: the text range of the values that start with ``code`` (BINARY order)."""
    if not code or ord(code[-1]) >= 0x10FFFF:
        return None
    return code, code[:-1] + chr(ord(code[-1]) + 1)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _column(arr: np.ndarray, dtype: str) -> np.ndarray | None:
    """Return a column (object array) as pyogrio types it; None when a value is not so typed."""
    kind = pd.api.types.infer_dtype(arr, skipna=True) if len(arr) else "empty"
    if dtype == "object":
        if kind not in ("string", "empty"):
            return None
        return arr
    if dtype == "float64":
        if kind not in ("floating", "integer", "mixed-integer-float", "empty"):
            return None
        return arr.astype(np.float64)
    # Integers and booleans (stored as 0/1): a null makes the column float64, as in pyogrio.
    if kind not in ("integer", "empty"):
        return None
    if len(arr) and pd.isna(arr).any():
        return arr.astype(np.float64)
    if dtype == "bool":
        return arr.astype(np.int64) != 0
    return arr.astype(dtype)


_POINT_BLOB = 8 + 21
"""A little-endian 2D point without envelope: GeoPackage header (8) and WKB point (21)."""


def _geometries(blobs: tuple) -> np.ndarray:
    """Decode GeoPackage geometry blobs: strip the header (magic, flags, srs id, envelope)."""
    sizes = np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs))
    if len(blobs) and (sizes == _POINT_BLOB).all():
        # Points (most rows of a partitioned read): the coordinates straight from the bytes,
        # when every blob is a plain little-endian 2D point (flags 1, WKB byte order 1, type 1).
        buf = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(-1, _POINT_BLOB)
        head = buf[:, 8:13]
        if (buf[:, 3] == 1).all() and (head == np.array([1, 1, 0, 0, 0], np.uint8)).all():
            return shapely.points(buf[:, 13:].copy().view("<f8"))
    flags = np.fromiter((b[3] for b in blobs), dtype=np.int64, count=len(blobs))
    skip = 8 + _ENVELOPE_BYTES[(flags >> 1) & 7]
    return shapely.from_wkb([b[s:] for b, s in zip(blobs, skip.tolist(), strict=True)])


@dataclass(frozen=True)
class GpkgRows:
    """Rows of a layer read through sqlite3: raw columns and geometries, no frame built yet."""

    columns: dict[str, np.ndarray]
    """The fields read, in the layer's order, typed as pyogrio types them (text as objects)."""
    geometry: np.ndarray
    """The rows' shapely geometries."""
    crs: Any
    """The layer's CRS (``pyproj.CRS``) or None."""


def to_geoframe(df: pd.DataFrame, geometry: str = "geometry") -> gpd.GeoDataFrame:
    """Return ``df`` as a GeoDataFrame whose active geometry is its column ``geometry``.

    ``df[geometry]`` must be of geometry dtype. The frame equals
    ``geopandas.GeoDataFrame(df, geometry=geometry)`` (same columns, index, CRS, attrs) and
    shares ``df``'s data; it is made as geopandas makes the frames its own methods return,
    without the constructor's checks (about 1 ms a frame: a part's reads build several).
    """
    make = getattr(gpd.GeoDataFrame, "_from_mgr", None)
    if make is None or list(df.columns).count(geometry) != 1:  # other pandas: the public way
        return gpd.GeoDataFrame(df, geometry=geometry, copy=False)
    out = make(df._mgr, df.axes)
    out._geometry_column_name = geometry
    if df.attrs:
        out.attrs = dict(df.attrs)
    return out


def geoframe(columns: dict[str, Any], geometry: np.ndarray, crs: Any) -> gpd.GeoDataFrame:
    """Build a GeoDataFrame at once: ``columns`` in order, then ``geometry``, new index.

    Parameters
    ----------
    columns
        Field name to values (numpy or pandas arrays of one length); object arrays are
        inferred as ``pandas.DataFrame`` infers them (text as ``str``).
    geometry
        Shapely geometries, one per row.
    crs
        The geometries' CRS.

    Returns
    -------
    geopandas.GeoDataFrame
        What ``GeoDataFrame(pandas.DataFrame(columns), geometry=geometry, crs=crs)`` gives.
    """
    if "geometry" in columns:
        return gpd.GeoDataFrame(pd.DataFrame(columns), geometry=geometry, crs=crs)
    data: dict[str, Any] = dict(columns)
    data["geometry"] = GeometryArray(np.asarray(geometry, dtype=object), crs=crs)
    return to_geoframe(pd.DataFrame(data))


def read_gpkg_bbox(
    path: str | Path,
    layer: str,
    bbox: tuple[float, float, float, float],
    *,
    prefix: tuple[str, str] | None = None,
    ancestors: bool = False,
    columns: list[str] | None = None,
    mask: shapely.Geometry | None = None,
) -> gpd.GeoDataFrame | None:
    """Read the rows of ``layer`` whose geometry meets ``bbox``, in fid order.

    Parameters
    ----------
    path
        A GeoPackage file.
    layer
        A table with a geometry column and an R-tree.
    bbox
        ``(minx, miny, maxx, maxy)`` in the layer's CRS.
    prefix
        ``(field, code)``: leave out, in SQL, the rows whose text ``field`` does not start with
        ``code`` (a part's own people of a box that holds its neighbours' too). A frame
        returned then holds exactly the rows whose value starts so (nulls are left out; a
        number in the column makes this reader return None).
    ancestors
        With ``prefix``: keep too the rows whose value is a proper prefix of ``code`` (a
        part's own units and their ancestors, ``code.startswith(value)``).
    columns
        Read only these fields (those the layer has, in its order; and the ``prefix`` field)
        besides the geometry, as pyogrio's ``columns``; None reads every field. A part reads
        what its analysis uses.
    mask
        A polygon in the layer's CRS: only the rows whose geometry intersects it (as
        pyogrio's ``mask``; ``bbox`` is then the mask's bounds). The R-tree is asked for
        the mask's strips (:func:`mask_strips`), not its whole box: a part's cut is a
        buffered convex hull, and the corners of its box hold a third of the box's roads.

    Returns
    -------
    geopandas.GeoDataFrame or None
        What ``pyogrio.read_dataframe(path, layer=layer, bbox=bbox, fid_as_index=True,
        columns=columns)`` (or ``mask=mask``) gives, sorted by fid, with a new ``RangeIndex`` (raw
        dtypes: no
        catalog typing); None when this reader cannot give exactly that (see the module
        docstring).
    """
    got = read_gpkg_rows(
        path, layer, bbox, prefix=prefix, ancestors=ancestors, columns=columns, mask=mask
    )
    if isinstance(got, GpkgRows):
        return geoframe(got.columns, got.geometry, got.crs)
    return got


def read_gpkg_rows(
    path: str | Path,
    layer: str,
    bbox: tuple[float, float, float, float],
    *,
    prefix: tuple[str, str] | None = None,
    ancestors: bool = False,
    columns: list[str] | None = None,
    mask: shapely.Geometry | None = None,
) -> GpkgRows | gpd.GeoDataFrame | None:
    """Read as :func:`read_gpkg_bbox`, leaving the frame to the caller.

    Parameters
    ----------
    path, layer, bbox, prefix, ancestors, columns, mask
        As for :func:`read_gpkg_bbox`.

    Returns
    -------
    GpkgRows or geopandas.GeoDataFrame or None
        The rows' raw columns and geometries (``geoframe`` of them is the frame
        :func:`read_gpkg_bbox` returns); the frame itself when the box was read through GDAL
        (it holds many rows); None when this reader cannot give the rows exactly.
    """
    path = Path(path)
    if mask is not None:
        bbox = shapely.bounds(mask)
    minx, miny, maxx, maxy = (float(v) for v in bbox)
    f = _connection(path)
    info = _layer_info(path, f, layer)
    if info is None or (prefix is not None and prefix[0] not in info.fields):
        return None
    wanted = set(info.fields if columns is None else columns)
    if prefix is not None and columns is not None:
        wanted.add(prefix[0])  # read too: the rows are checked by it
    pick = [(n, d) for n, d in zip(info.fields, info.dtypes, strict=True) if n in wanted]
    fields = [n for n, _ in pick]
    cols = ", ".join(_quote(c) for c in fields)
    args: tuple[Any, ...] = (minx, maxx, miny, maxy)
    own = ""
    lineage = _lineage(prefix[1]) if prefix is not None and ancestors else []
    if prefix is not None:
        fld = _quote(prefix[0])
        # Nulls are not own rows; a number in a text column is read, and makes this reader
        # give up (GDAL's text of it is compared by the caller).
        up = f" OR {fld} IN ({', '.join('?' * len(lineage))})" if lineage else ""
        own = f"AND {fld} IS NOT NULL AND (typeof({fld}) != 'text' OR substr({fld}, 1, ?) = ?{up}) "
        args += (len(prefix[1]), prefix[1], *lineage)
    one = (
        f"SELECT id FROM {_quote(info.rtree)} "
        "WHERE maxx >= ? AND minx <= ? AND maxy >= ? AND miny <= ?"
    )
    boxes = [(minx, miny, maxx, maxy)] if mask is None else mask_strips(mask)
    hits = " UNION ALL ".join([one] * max(len(boxes), 1))
    # An empty mask: NULL bounds, which no row meets.
    box_args = tuple(v for x0, y0, x1, y1 in boxes for v in (x0, x1, y0, y1)) or (None,) * 4
    rows = _own_by_index(f.con, info, prefix, lineage, cols) if prefix is not None else None
    if rows is None:
        many = f"SELECT count(*) FROM ({hits} LIMIT {_GDAL_ROWS})"
        if f.con.execute(many, box_args).fetchone()[0] >= _GDAL_ROWS:
            box = (minx, miny, maxx, maxy)
            return _read_with_gdal(path, layer, box, prefix, lineage, columns, mask)
        sql = (
            f"SELECT {_quote(info.geom)}{', ' + cols if cols else ''} FROM {_quote(info.table)} "
            f"WHERE {_quote(info.fid)} IN ({hits}) {own}ORDER BY {_quote(info.fid)}"
        )
        rows = f.con.execute(sql, box_args + args[4:]).fetchall()
    values = list(zip(*rows, strict=True)) if rows else [()] * (1 + len(fields))
    geoms = _geometries(values[0])
    if mask is None:
        keep = box_mask(geoms, (minx, miny, maxx, maxy))
    else:  # as GDAL's mask: the geometry intersects the polygon
        shapely.prepare(mask)
        keep = shapely.intersects(mask, geoms)
    every = bool(keep.all())  # (a part's own rows by the index: usually all in its box)
    data: dict[str, np.ndarray] = {}
    for (name, dtype), vals in zip(pick, values[1:], strict=True):
        arr = np.array(vals, dtype=object)
        col = _column(arr if every else arr[keep], dtype)
        if col is None:
            return None
        data[name] = col
    return GpkgRows(data, geoms if every else geoms[keep], info.crs)


def box_mask(geoms: np.ndarray, bbox: tuple[float, float, float, float]) -> np.ndarray:
    """Which geometries meet the box, as GDAL's spatial filter after the R-tree decides.

    The envelope meets the box (closed), and either lies inside it or the geometry itself
    intersects the box (GEOS, as OGR does); missing and empty geometries are left out. The
    PostGIS reader tests its index candidates the same way (``ST_Intersects`` with the box).
    """
    minx, miny, maxx, maxy = (float(b) for b in bbox)
    env = shapely.bounds(geoms)
    with np.errstate(invalid="ignore"):  # NaN bounds: a missing or empty geometry, not in
        meets = (env[:, 2] >= minx) & (env[:, 0] <= maxx) & (env[:, 3] >= miny)
        meets &= env[:, 1] <= maxy
        inside = (env[:, 0] >= minx) & (env[:, 2] <= maxx) & (env[:, 1] >= miny)
        inside &= env[:, 3] <= maxy
    keep = meets & ~shapely.is_empty(geoms)
    check = keep & ~inside
    if check.any():
        box = shapely.box(minx, miny, maxx, maxy)
        shapely.prepare(box)
        keep[check] = shapely.intersects(box, geoms[check])
    return keep


def mask_strips(
    mask: shapely.Geometry, n: int = _STRIPS
) -> list[tuple[float, float, float, float]]:
    """Cover a polygon by the boxes of its pieces in ``n`` horizontal strips of its box.

    Every point of the polygon lies in one of the boxes (each is the bounding box of the
    polygon's part of a closed strip), so a geometry that intersects the polygon has an
    envelope meeting one of them: the R-tree asked for the boxes finds it. For a convex cut
    the boxes leave out most of the corners of its one box.

    Parameters
    ----------
    mask
        A polygon (any CRS).
    n
        Number of strips.

    Returns
    -------
    list of tuple
        ``(minx, miny, maxx, maxy)`` per non-empty strip, bottom to top.
    """
    if mask is None or shapely.is_empty(mask):
        return []
    x0, y0, x1, y1 = (float(v) for v in shapely.bounds(mask))
    edges = np.linspace(y0, y1, n + 1)
    edges[-1] = y1  # the top edge exactly (no rounding below the polygon's top)
    pieces = [shapely.clip_by_rect(mask, x0, a, x1, b) for a, b in itertools.pairwise(edges)]
    b = shapely.bounds(np.array(pieces, dtype=object))
    ok = ~np.isnan(b).any(axis=1)
    return [tuple(float(v) for v in row) for row in b[ok]]


def _lineage(code: str) -> list[str]:
    """Return the proper prefixes of ``code`` (``""`` too): the values ``code.startswith`` takes."""
    return [code[:k] for k in range(len(code))]


def _own_by_index(
    con: sqlite3.Connection,
    info: _LayerInfo,
    prefix: tuple[str, str],
    lineage: list[str],
    cols: str,
) -> list[tuple] | None:
    """Return the rows whose ``prefix`` field starts with the code, through the field's index.

    A part's own rows (its people by ``adcode``) are a range of an indexed text field: read so,
    the neighbours' rows in the part's box are never touched, nor the R-tree (the box filter
    is applied to these rows as to the R-tree's). ``lineage``: exact values read too (a part's
    ancestors). None when the field has no index, or holds a number or a blob anywhere (the
    R-tree read then decides, as before): numbers sort before all text and blobs after it, so
    two index probes find them (once per layer version). None too when the rows are
    ``_GDAL_ROWS`` or more (a city's people: GDAL reads them faster per row).
    """
    fld = prefix[0]
    bounds = _prefix_bounds(prefix[1])
    if fld not in info.indexed or bounds is None:
        return None
    q, t = _quote(fld), _quote(info.table)
    clean = info.text_only.get(fld)
    if clean is None:
        clean = not any(
            con.execute(f"SELECT 1 FROM {t} WHERE {odd} LIMIT 1").fetchone() is not None
            for odd in (f"{q} < ''", f"{q} >= CAST(x'' AS BLOB)")
        )
        info.text_only[fld] = clean
    if not clean:
        return None
    where = f"{q} >= ? AND {q} < ?"
    if lineage:
        where = f"({where} OR {q} IN ({', '.join('?' * len(lineage))}))"
    args = (*bounds, *lineage)
    many = f"SELECT count(*) FROM (SELECT 1 FROM {t} WHERE {where} LIMIT {_GDAL_ROWS})"
    if con.execute(many, args).fetchone()[0] >= _GDAL_ROWS:
        return None
    # A row without geometry is in no box (GDAL's spatial filter leaves it out).
    sql = (
        f"SELECT {_quote(info.geom)}{', ' + cols if cols else ''} FROM {t} "
        f"WHERE {where} AND {_quote(info.geom)} IS NOT NULL ORDER BY {_quote(info.fid)}"
    )
    return con.execute(sql, args).fetchall()


def _read_with_gdal(
    path: Path,
    layer: str,
    bbox: tuple[float, float, float, float],
    prefix: tuple[str, str] | None,
    lineage: list[str],
    columns: list[str] | None = None,
    mask: shapely.Geometry | None = None,
) -> gpd.GeoDataFrame | None:
    """Read a large box through GDAL: the same rows (``prefix`` in the same SQL), by fid."""
    where = None
    if prefix is not None:
        fld, code = _quote(prefix[0]), prefix[1].replace("'", "''")
        up = ", ".join("'" + v.replace("'", "''") + "'" for v in lineage)
        where = (
            f"{fld} IS NOT NULL AND (typeof({fld}) != 'text' OR "
            f"substr({fld}, 1, {len(prefix[1])}) = '{code}'{f' OR {fld} IN ({up})' if up else ''})"
        )
    if columns is not None and prefix is not None and prefix[0] not in columns:
        columns = [*columns, prefix[0]]
    where_box = {"bbox": bbox} if mask is None else {"mask": mask}
    gdf = pyogrio.read_dataframe(
        path, layer=layer, where=where, fid_as_index=True, columns=columns, **where_box
    )
    gdf = gdf.sort_index(kind="stable").reset_index(drop=True)
    if prefix is not None:
        values = gdf[prefix[0]].to_numpy(dtype=object)
        code, up = prefix[1], set(lineage)
        if not all(isinstance(v, str) and (v.startswith(code) or v in up) for v in values):
            return None  # a number in a text column: the caller compares GDAL's text of it
    return gdf

"""Reading a layer of the PostGIS workspace: the query, and the rows decoded column by column.

Private to :mod:`geo_mz.core` (used by :mod:`geo_mz.core.workspace_postgis`).

A partitioned run reads each part's inputs by box (its units, its own people by code prefix, the
roads round it). What such a read cost beyond the database's own work was mostly Python's: every
value typed one by one. Here a column is typed whole (numbers and flags by numpy, text straight
into pandas' ``str``), in the dtypes :func:`~geo_mz.core.workspace_read.conform_types` gives, so
that step is skipped (:func:`typed_frame`). The frame is the one the value-by-value decoding
gave (tests compare both, and with the GeoPackage's read).

The box is found with the GiST index (``geom && box``) and the exact test (the geometry meets the
box, edges included) made here as the GeoPackage reader makes it: an envelope inside the box
is in, the rest asks GEOS; the database's ``ST_Intersects`` is the same test, done per row on
the server. A part's own rows (``prefix``) are a range of the field in byte order (``COLLATE
"C"``: "starts with" exactly, whatever the database's collation), which the index the workspace
makes on ``adcode`` answers, the box then only a test of that range's rows; a workspace written
before that index reads the same rows through the GiST index. Rows are put in ``fid`` order
here (:func:`fid_order`: they mostly come in it), not by the server; a point layer's
geometries come as the column's EWKB, their coordinates taken from the bytes
(:func:`points_of_ewkb`).
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from geopandas.array import GeometryArray

from geo_mz.core._postgis_db import psycopg_module, sql_module
from geo_mz.core._postgis_tables import Catalog, read_values, storage_srid
from geo_mz.core.catalog import LayerSpec, get_spec
from geo_mz.core.errors import WorkspaceError
from geo_mz.core.gpkg_read import box_mask, mask_strips, to_geoframe
from geo_mz.core.workspace_common import no_layer_error
from geo_mz.core.workspace_read import conform_types


def prefix_range(code: str) -> tuple[str, str] | None:
    """``(code, next)``: the texts that start with ``code`` are those in ``[code, next)``.

    In code point order, which is UTF-8's byte order (``COLLATE "C"``). None when there is no
    such bound (an empty code; a last character that is the last code point).
    """
    if not code:
        return None
    last = ord(code[-1]) + 1
    if 0xD800 <= last <= 0xDFFF:  # surrogates are in no text: the next character is U+E000
        last = 0xE000
    if last > 0x10FFFF:
        return None
    return code, code[:-1] + chr(last)


def layer_query(
    schema: str,
    kind: str,
    columns: Sequence[tuple[str, str]],
    *,
    srid: int,
    bbox: tuple[float, float, float, float] | None,
    prefix: tuple[str, str, str] | None,
    ancestors: bool = False,
    boxes: Sequence[tuple[float, float, float, float]] | None = None,
    indexed: bool = False,
    ewkb: bool = False,
) -> tuple[Any, tuple[Any, ...]]:
    """Return the query of a layer read and its parameters.

    The rows come in no particular order, ``fid`` first: :func:`frame_from_rows` puts them in
    ``fid`` order (they mostly come so already: a bitmap scan returns a table's rows in their
    place in it, which is the order they were written; the server's sort cost more).

    Parameters
    ----------
    schema, kind
        The workspace schema and the layer's table.
    columns
        ``(name, type)`` of the fields to read, in table order (after ``fid``; the geometry is
        read last, as WKB).
    srid
        The storage CRS's EPSG code (the box's).
    bbox
        ``(minx, miny, maxx, maxy)``: the rows whose bounding box meets it (GiST); the exact
        test is the caller's (:func:`frame_from_rows`).
    prefix
        ``(field, type, code)``: the rows whose field starts with ``code``; a text field as a
        byte-order range (the index's), any other as its text.
    ancestors
        With ``prefix``: the rows whose field is a proper prefix of ``code`` too (a part's
        units and their ancestors; the index's exact values).
    boxes
        Instead of ``bbox``: the rows whose bounding box meets one of these (a mask's strips,
        :func:`~geo_mz.core.gpkg_read.mask_strips`; one GiST scan for them all, the boxes an
        array); none: no row.
    indexed
        The ``prefix`` field has a B-tree in byte order (``Catalog.code_indexes``): with a
        text prefix, the rows are that range of it, and the box only a test of those rows
        (not a second index scan whose bitmap the planner would AND with it: a part's own
        rows are a few thousand of the tens of thousands in its box). As the GeoPackage reader
        reads a part's own rows by its ``adcode`` index.
    ewkb
        Read the geometry as the column's own binary value (EWKB, with its SRID) instead of
        ``ST_AsBinary``'s WKB: a point layer's, whose coordinates :func:`points_of_ewkb`
        takes straight from the bytes (``ST_AsBinary`` was a quarter of the server's time
        of a part's people).

    Returns
    -------
    tuple
        The ``psycopg.sql`` query and its parameters.
    """
    sql = sql_module()
    select = [
        sql.SQL("fid"),
        *(sql.Identifier(n) for n, _ in columns),
        sql.SQL("geom" if ewkb else "ST_AsBinary(geom)"),
    ]
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(select), sql.Identifier(schema, kind)
    )
    bounds = None
    if prefix is not None and prefix[1] == "text":
        bounds = prefix_range(prefix[2])
    by_code = indexed and bounds is not None
    where: list[Any] = []
    params: tuple[Any, ...] = ()
    lit = sql.Literal(srid)
    spatial: list[Any] = []
    if bbox is not None:
        spatial.append(sql.SQL("geom && ST_MakeEnvelope(%s, %s, %s, %s, {})").format(lit))
        params += tuple(float(b) for b in bbox)
    if boxes is not None:
        if boxes:
            # One array of envelopes (an InitPlan, made once): a single bitmap scan of the
            # GiST index for all the strips, planned in a fraction of the time 16 ORs take.
            spatial.append(
                sql.SQL(
                    "geom && ANY(ARRAY(SELECT ST_MakeEnvelope(x0, y0, x1, y1, {}) FROM "
                    "unnest(%s::float8[], %s::float8[], %s::float8[], %s::float8[]) "
                    "AS b(x0, y0, x1, y1)))"
                ).format(lit)
            )
            params += tuple([float(b[k]) for b in boxes] for k in range(4))
        else:
            spatial.append(sql.SQL("false"))
    for test in spatial:
        # ``IS TRUE``: the same rows, but no index scan (the planner cannot use one for it).
        where.append(sql.SQL("({}) IS TRUE").format(test) if by_code else test)
    if prefix is not None:
        field, _, code = prefix
        up = [code[:k] for k in range(len(code))] if ancestors else []
        if bounds is not None:
            # Both bounds in byte order: the range is "starts with" and the index's own order.
            own = '{f} COLLATE "C" >= %s AND {f} COLLATE "C" < %s'
            params += bounds
            if up:  # the ancestors' exact codes, in the index's collation (it answers both)
                own = f'({own} OR {{f}} COLLATE "C" = ANY(%s))'
                params += (up,)
        else:
            own = "starts_with({f}::text, %s)"
            params += (code,)
            if up:
                own = f"({own} OR {{f}}::text = ANY(%s))"
                params += (up,)
        where.append(sql.SQL(own).format(f=sql.Identifier(field)))
    if where:
        query += sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where)
    return query, params


@functools.lru_cache(maxsize=8)
def layer_crs(storage_crs: str) -> pyproj.CRS:
    """Return the CRS of a storage CRS text, parsed once (a part reads four layers)."""
    return pyproj.CRS.from_user_input(storage_crs)


def geometries(wkb: Sequence[bytes | None]) -> np.ndarray:
    """Shapely geometries of WKB values (None for NULL), as an object array.

    ``shapely.from_wkb`` itself: on shapely 2.2 it makes 2D points faster than
    ``shapely.points`` does from their coordinates taken out of the bytes by numpy (0.57 vs
    0.76 ms for 3,000 points, 34 vs 50 ms for 124,000).
    """
    return shapely.from_wkb(list(wkb)) if len(wkb) else np.array([], dtype=object)


_EWKB_POINT = np.array([1, 1, 0, 0, 0x20], dtype=np.uint8)
"""Head of a little-endian 2D point's EWKB: byte order, type 1 with the SRID flag."""
_EWKB_SRID = 0x20
"""The SRID flag, in the type's last byte (little-endian) or first (big-endian)."""


def _without_srid(value: bytes | None) -> bytes | None:
    """EWKB without its SRID (the flag cleared, the 4 bytes out); WKB as it is."""
    if value is None or len(value) < 9:
        return value
    flags = 4 if value[0] == 1 else 1
    if not value[flags] & _EWKB_SRID:
        return value
    head = bytearray(value[:5])
    head[flags] &= ~_EWKB_SRID & 0xFF
    return bytes(head) + value[9:]


def points_of_ewkb(values: Sequence[bytes | None]) -> np.ndarray:
    """Shapely geometries of PostGIS EWKB values (None for NULL), without SRID, as WKB gives.

    2D points (a point layer's rows): the coordinates taken from the bytes by numpy and made
    points at once (0.64 ms for 3,000; ``from_wkb`` of ``ST_AsBinary``'s WKB took 0.72, and
    ``ST_AsBinary`` 0.7 ms of the server's time). Anything else (a NULL, an empty point,
    another type) goes through ``shapely.from_wkb`` with the SRID taken out.
    """
    n = len(values)
    # (map: the lengths in C, half a generator's time: 0.08 against 0.16 ms for 3,000)
    if n and None not in values and set(map(len, values)) == {25}:
        rows = np.frombuffer(b"".join(values), dtype=np.uint8).reshape(n, 25)
        if (rows[:, :5] == _EWKB_POINT).all():
            coords = rows[:, 9:].copy().view("<f8")
            if not np.isnan(coords).any():  # (an empty point is NaN, NaN)
                return shapely.points(coords)
    return geometries([_without_srid(v) for v in values])


_STR_DTYPE = pd.Series([], dtype="str").dtype
"""pandas' text dtype (``str``)."""


def text_array(values: Sequence[str | None]) -> Any:
    """Text values (None for NULL) as pandas' ``str`` array, as ``Series(..., dtype="str")``."""
    return pd.array(np.array(values, dtype=object), dtype=_STR_DTYPE)


def column(values: Sequence[Any], pg_type: str, is_field: bool) -> Any:
    """One column, typed whole as the value-by-value reading and ``conform_types`` type it.

    Spec fields: integers ``Int64``, floats ``float64``, booleans ``boolean``, text ``str``;
    extras as pyogrio gives them from a GeoPackage (``int64``, or ``float64`` with a missing
    value; ``bool``, or object with one; ``float64``; ``str``). Dates, timestamps and other
    types go value by value (:func:`~geo_mz.core._postgis_tables.read_values`).
    """
    if pg_type == "double precision":
        return np.array(values, dtype=np.float64)  # None becomes NaN
    if pg_type == "text":
        return text_array(values)
    if pg_type in ("bigint", "boolean"):
        target = np.int64 if pg_type == "bigint" else np.bool_
        if None not in values:  # (one C pass; the usual case)
            typed = np.array(values, dtype=target)
            missing = np.zeros(len(typed), dtype=bool)
        else:
            arr = np.array(values, dtype=object)
            missing = np.equal(arr, None)
            arr[missing] = 0
            typed = arr.astype(target)
        if is_field:
            if pg_type == "bigint":
                return pd.arrays.IntegerArray(typed, missing)
            return pd.arrays.BooleanArray(typed, missing)
        if not missing.any():
            return typed
        if pg_type == "bigint":
            out = typed.astype(np.float64)
            out[missing] = np.nan
            return out
        return pd.Series(values, dtype=object)
    return read_values(list(values), pg_type, is_field)


def fid_order(fids: Sequence[int]) -> np.ndarray | None:
    """Positions that put rows in ``fid`` order; None when they are in it already."""
    ids = np.fromiter(fids, dtype=np.int64, count=len(fids))
    if len(ids) < 2 or bool((ids[1:] > ids[:-1]).all()):
        return None
    return np.argsort(ids, kind="stable")


def frame_from_rows(
    rows: list[tuple],
    columns: Sequence[tuple[str, str]],
    spec: LayerSpec,
    storage_crs: str,
    bbox: tuple[float, float, float, float] | None,
    mask: shapely.Geometry | None = None,
    *,
    ewkb: bool = False,
) -> gpd.GeoDataFrame:
    """Return the rows of :func:`layer_query` (``fid``, the fields, the WKB) as a frame.

    Rows in ``fid`` order; with ``bbox``, only those whose geometry meets it; with ``mask``
    (a polygon), only those whose geometry intersects it (GEOS, as the GeoPackage reader's
    ``mask`` and GDAL's). The frame is not yet typed by
    :func:`~geo_mz.core.workspace_read.conform_types` (the caller's). ``ewkb``: the query's
    (its geometries are EWKB).
    """
    names = [n for n, _ in columns]
    width = len(columns) + 2
    cols = list(zip(*rows, strict=True)) if rows else [()] * width
    order = fid_order(cols[0])
    geoms = points_of_ewkb(cols[-1]) if ewkb else geometries(cols[-1])
    keep = None
    if mask is not None and len(geoms):
        shapely.prepare(mask)
        keep = shapely.intersects(mask, geoms)
    elif bbox is not None and len(geoms):
        keep = box_mask(geoms, bbox)
    if keep is not None and keep.all():
        keep = None
    if order is not None or keep is not None:  # rows picked, then columns: a step a row
        pick = np.arange(len(rows)) if order is None else order
        if keep is not None:
            pick = pick[keep[pick]]
        geoms = geoms[pick]
        kept = [rows[i] for i in pick.tolist()]
        cols = list(zip(*kept, strict=True)) if kept else [()] * width
    data: dict[str, Any] = {}
    for (name, pg_type), values in zip(columns, cols[1:-1], strict=True):
        if not len(values):  # as the value-by-value reading gives no rows
            data[name] = read_values([], pg_type, name in spec.field_names)
        else:
            data[name] = column(values, pg_type, name in spec.field_names)
    crs = layer_crs(storage_crs)
    if "geometry" in data:  # (a field of that name: the constructor sorts it out)
        df = pd.DataFrame(data, columns=names, index=pd.RangeIndex(len(geoms)))
        return gpd.GeoDataFrame(df, geometry=geoms, crs=crs)
    # The frame made at once, without the GeoDataFrame constructor's checks (~1.5 ms a read).
    data["geometry"] = GeometryArray(np.asarray(geoms, dtype=object), crs=crs)
    # copy=False: the arrays are this frame's own (pandas would copy each).
    # No ``columns=``: the dict is in the frame's order already (pandas would look each up).
    df = pd.DataFrame(data, index=pd.RangeIndex(len(geoms)), copy=False)
    return to_geoframe(df)


_SPEC_DTYPES = {
    "integer": pd.Int64Dtype(),
    "float": np.dtype(np.float64),
    "boolean": pd.BooleanDtype(),
    "string": _STR_DTYPE,
}
"""The dtype :func:`~geo_mz.core.workspace_read.conform_types` gives each spec field type."""


def typed_frame(frame: gpd.GeoDataFrame, spec: LayerSpec) -> gpd.GeoDataFrame:
    """Return ``conform_types(frame, spec)``; the frame itself when it is typed so already.

    :func:`frame_from_rows` types numbers, flags and text as ``conform_types`` would, which
    then only copies the frame and remakes its integer and boolean arrays with the same
    values (a fifth of a read's time); dates and timestamps still go through it.
    """
    dtypes = dict(zip(frame.columns, frame.dtypes, strict=True))  # (not a series a column)
    for f in spec.fields:
        if f.name in dtypes and dtypes[f.name] != _SPEC_DTYPES.get(f.type):
            return conform_types(frame, spec)
    return frame


@dataclass(frozen=True)
class LayerRead:
    """One layer read, planned: its query and what makes its frame of the rows."""

    query: Any
    """:func:`layer_query`'s query."""
    params: tuple[Any, ...]
    """Its parameters."""
    columns: list[tuple[str, str]]
    """``(name, type)`` of the fields read."""
    spec: LayerSpec
    """The layer's spec."""
    storage_crs: str
    """The storage CRS's text."""
    bbox: tuple[float, float, float, float] | None = None
    """The box the rows must meet, if any."""
    mask: shapely.Geometry | None = None
    """The polygon the rows must intersect, if any."""
    ewkb: bool = False
    """Whether the query reads the geometries as EWKB (:func:`layer_query`)."""
    later: Callable[[list[gpd.GeoDataFrame]], tuple[float, float, float, float]] | None = None
    """The box, found from the frames of the reads before this one that have a box of their
    own (``read_many``'s function as ``bbox``); the query does not hold it (:attr:`box_here`)."""
    box_here: bool = False
    """With :attr:`later`: the query is the prefix's range of its code index alone and the
    box is tested here (the query can be sent with the reads it depends on); without that
    index the read is planned anew with its box once those are read."""

    def frame(self, rows: list[tuple], before: Sequence[gpd.GeoDataFrame] = ()) -> gpd.GeoDataFrame:
        """Return the typed frame of the query's rows (``before``: the frames read before)."""
        bbox = self.bbox
        if self.later is not None:
            bbox = box_of(self.later(list(before)))
        raw = frame_from_rows(
            rows, self.columns, self.spec, self.storage_crs, bbox, self.mask, ewkb=self.ewkb
        )
        return typed_frame(raw, self.spec)


def box_of(value: Any) -> tuple[float, float, float, float]:
    """Return ``value`` as a box ``(minx, miny, maxx, maxy)``: four finite numbers, min <= max."""
    try:
        box = tuple(float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise WorkspaceError(f"bbox 应为四个数 / bbox must be four numbers, got {value!r}") from exc
    if len(box) != 4 or not all(np.isfinite(box)) or box[0] > box[2] or box[1] > box[3]:
        raise WorkspaceError(
            f"bbox 无效 / bbox must be (minx, miny, maxx, maxy), finite, min <= max: {value!r}"
        )
    return box


def plan_read(
    catalog: Catalog,
    schema: str,
    where: str,
    kind: str,
    names: list[str],
    bbox: Any = None,
    prefix: tuple[str, str] | None = None,
    columns: list[str] | None = None,
    ancestors: bool = False,
    mask: Any = None,
) -> LayerRead:
    """Check one read of ``PostgisWorkspace.read`` and plan it against the catalog.

    ``where`` names the workspace in messages; ``names`` are its layers; the options are
    ``read``'s (``bbox`` may be a function: ``PostgisWorkspace.read_many``).
    """
    if mask is not None and bbox is not None:
        raise WorkspaceError("bbox 与 mask 只能给一个 / give bbox or mask, not both")
    if ancestors and prefix is None:
        raise WorkspaceError("ancestors 需要 prefix / ancestors=True needs prefix=(field, code)")
    if kind not in names:
        raise no_layer_error(where, kind, names)
    spec = get_spec(kind)
    stored = [(n, t) for n, t in catalog.tables.get(kind, []) if n not in ("fid", "geom")]
    types = dict(stored)
    if prefix is not None and prefix[0] not in types:
        raise WorkspaceError(
            f"没有字段 '{prefix[0]}' / no field '{prefix[0]}' (columns {list(types)})"
        )
    if columns is not None:
        # As the GeoPackage's read: these fields (those stored) and the prefix field, in
        # the table's order.
        wanted = set(columns) | ({prefix[0]} if prefix is not None else set())
        stored = [(n, t) for n, t in stored if n in wanted]
    ewkb = spec.geometry == "Point"
    later = bbox if callable(bbox) else None
    if later is not None:
        bbox = None
    indexed = prefix is not None and (kind, prefix[0]) in catalog.code_indexes
    query, params = layer_query(
        schema,
        kind,
        stored,
        srid=storage_srid(str(catalog.storage_crs)),
        bbox=bbox,
        prefix=None if prefix is None else (prefix[0], types[prefix[0]], str(prefix[1])),
        ancestors=ancestors,
        boxes=None if mask is None else mask_strips(mask),
        indexed=indexed,
        ewkb=ewkb,
    )
    # A box found later is tested here when the query is one range of the code index (a
    # part's own rows: few, and the same ones the box then keeps).
    here = (
        later is not None
        and indexed
        and types[prefix[0]] == "text"
        and prefix_range(str(prefix[1])) is not None
    )
    return LayerRead(
        query, params, stored, spec, str(catalog.storage_crs), bbox, mask, ewkb, later, here
    )


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold Python's cyclic garbage collector off while a read makes its objects.

    A part's rows become tens of thousands of objects (psycopg's tuples and values, the
    geometries), none in a reference cycle; each few hundred of them made the collector run,
    and often scan every object the worker holds (its kept layers, frames, networks): a third
    of a county part's reads on Guangdong (21.0 against 14.1 ms a part, load 1.9).
    Collection is only put off, to the next allocation after the read. A collector the
    program turned off stays off (a read turns it back on only if it found it on); with
    several threads it is back on when the read that turned it off ends.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def fetch_reads(conn: Any, reads: Sequence[LayerRead]) -> list[gpd.GeoDataFrame]:
    """Run layer reads on ``conn`` (in its transaction); return their frames in order.

    Several are sent at once (a pipeline: one round trip, the server answering each in turn)
    where libpq can; else one after the other. Each is planned for its own box and code,
    never a generic plan that knows neither (psycopg would prepare a query run five times).
    A :attr:`LayerRead.later` box is found from the frames of the reads before it with a
    box of their own (no function). Python's cyclic GC waits meanwhile (:func:`gc_paused`).
    """
    with gc_paused():
        return _fetch_reads(conn, reads)


def _fetch_reads(conn: Any, reads: Sequence[LayerRead]) -> list[gpd.GeoDataFrame]:
    psycopg = psycopg_module()
    frames: list[gpd.GeoDataFrame] = []

    def fixed() -> list[gpd.GeoDataFrame]:
        return [f for f, r in zip(frames, reads, strict=False) if r.later is None]

    if len(reads) > 1 and psycopg.Pipeline.is_supported():
        with conn.pipeline():
            cursors = []
            for r in reads:
                cur = conn.cursor(binary=True)
                cur.execute(r.query, r.params, prepare=False)
                cursors.append(cur)
            # (Fetching inside the block sends the one Sync; a frame made here or after the
            # block measured the same: 12.39 vs 12.34 ms a part.)
            for r, cur in zip(reads, cursors, strict=True):
                frames.append(r.frame(cur.fetchall(), fixed()))
                cur.close()
        return frames
    for r in reads:
        with conn.cursor(binary=True) as cur:
            cur.execute(r.query, r.params, prepare=False)
            frames.append(r.frame(cur.fetchall(), fixed()))
    return frames


def fetch_in_turn(
    conn: Any, reads: Sequence[LayerRead], replan: Callable[[int, tuple], LayerRead]
) -> list[gpd.GeoDataFrame]:
    """Run reads whose box may come from the frames before them: in one or two round trips.

    A read with a :attr:`LayerRead.later` box is sent with the others when its box is tested
    here (:attr:`LayerRead.box_here`). The rest wait: once the others are read, each one's
    box is found from the frames of the reads before it with a box of their own, it is
    planned anew with it (``replan(i, box)``: read ``i`` with that box), and they are sent
    together.
    """
    now = [i for i, r in enumerate(reads) if r.later is None or r.box_here]
    frames = dict(zip(now, fetch_reads(conn, [reads[i] for i in now]), strict=True))
    late = [i for i in range(len(reads)) if i not in frames]
    if late:
        plans = []
        for i in late:
            before = [frames[j] for j in range(i) if reads[j].later is None]
            plans.append(replan(i, box_of(reads[i].later(before))))
        frames |= dict(zip(late, fetch_reads(conn, plans), strict=True))
    return [frames[i] for i in range(len(reads))]


__all__ = [
    "LayerRead",
    "box_of",
    "column",
    "fetch_in_turn",
    "fetch_reads",
    "fid_order",
    "frame_from_rows",
    "gc_paused",
    "geometries",
    "layer_query",
    "plan_read",
    "points_of_ewkb",
    "prefix_range",
    "text_array",
    "typed_frame",
]

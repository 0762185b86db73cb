"""Reading a layer of the PostGIS workspace: the query, and the rows decoded column by column.

Private to :mod:`geo_mz.core` (used by :mod:`geo_mz.core.workspace_postgis`).

A partitioned run reads each part's inputs by box (its units, its own people by code prefix, the
roads round it). What such a read cost beyond the database's own work was mostly Python's: every
value typed one by one. Here a column is typed whole (numbers and flags by numpy, text straight
into pandas' ``str``), in the dtypes :func:`~geo_mz.core.workspace_read.conform_types` gives, so
that step has nothing left to convert. The frame is the one the value-by-value decoding gave
(tests compare both, and with the GeoPackage's read).

The box is found with the GiST index (``geom && box``) and the exact test (the geometry meets the
box, edges included) made here as the GeoPackage reader makes it: an envelope inside the box
is in, the rest asks GEOS; the database's ``ST_Intersects`` is the same test, done per row on
the server. A part's own rows (``prefix``) are a range of the field in byte order (``COLLATE
"C"``: "starts with" exactly, whatever the database's collation), which the index the workspace
makes on ``adcode`` answers; a workspace written before that index reads the same rows.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from geopandas.array import GeometryArray

from geo_mz.core._postgis_db import sql_module
from geo_mz.core._postgis_tables import read_values
from geo_mz.core.catalog import LayerSpec
from geo_mz.core.gpkg_read import box_mask, to_geoframe


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
) -> tuple[Any, tuple[Any, ...]]:
    """Return the query of a layer read and its parameters.

    Parameters
    ----------
    schema, kind
        The workspace schema and the layer's table.
    columns
        ``(name, type)`` of the fields to read, in table order (the geometry is read last, as
        WKB).
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
        :func:`~geo_mz.core.gpkg_read.mask_strips`; each a GiST scan, their rows merged);
        none: no row.

    Returns
    -------
    tuple
        The ``psycopg.sql`` query and its parameters.
    """
    sql = sql_module()
    select = [sql.Identifier(n) for n, _ in columns] + [sql.SQL("ST_AsBinary(geom)")]
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(select), sql.Identifier(schema, kind)
    )
    where: list[Any] = []
    params: tuple[Any, ...] = ()
    env = sql.SQL("geom && ST_MakeEnvelope(%s, %s, %s, %s, {})").format(sql.Literal(srid))
    if bbox is not None:
        where.append(env)
        params += tuple(float(b) for b in bbox)
    if boxes is not None:
        if boxes:
            where.append(sql.SQL("(") + sql.SQL(" OR ").join([env] * len(boxes)) + sql.SQL(")"))
            params += tuple(float(v) for b in boxes for v in b)
        else:
            where.append(sql.SQL("false"))
    if prefix is not None:
        field, pg_type, code = prefix
        bounds = prefix_range(code) if pg_type == "text" else None
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
    return query + sql.SQL(" ORDER BY fid"), params


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


def _missing(arr: np.ndarray) -> np.ndarray:
    return np.fromiter((v is None for v in arr), dtype=bool, count=len(arr))


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
        return pd.Series(np.array(values, dtype=object), dtype="str")
    if pg_type in ("bigint", "boolean"):
        arr = np.array(values, dtype=object)
        missing = _missing(arr)
        if missing.any():
            arr[missing] = 0
        target = np.int64 if pg_type == "bigint" else np.bool_
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


def frame_from_rows(
    rows: list[tuple],
    columns: Sequence[tuple[str, str]],
    spec: LayerSpec,
    storage_crs: str,
    bbox: tuple[float, float, float, float] | None,
    mask: shapely.Geometry | None = None,
) -> gpd.GeoDataFrame:
    """Return the rows of :func:`layer_query` (the fields, then the WKB) as a frame.

    Rows are kept in their order; with ``bbox``, only those whose geometry meets it; with
    ``mask`` (a polygon), only those whose geometry intersects it (GEOS, as the GeoPackage
    reader's ``mask`` and GDAL's). The frame is not yet typed by
    :func:`~geo_mz.core.workspace_read.conform_types` (the caller's).
    """
    names = [n for n, _ in columns]
    cols = list(zip(*rows, strict=True)) if rows else [()] * (len(columns) + 1)
    geoms = geometries(cols[-1])
    keep = None
    if mask is not None and len(geoms):
        shapely.prepare(mask)
        keep = shapely.intersects(mask, geoms)
    elif bbox is not None and len(geoms):
        keep = box_mask(geoms, bbox)
    if keep is not None and not keep.all():  # rows kept, then columns: a step a row, not a value
        geoms = geoms[keep]
        kept = [r for r, k in zip(rows, keep.tolist(), strict=True) if k]
        cols = list(zip(*kept, strict=True)) if kept else [()] * (len(columns) + 1)
    data: dict[str, Any] = {}
    for (name, pg_type), values in zip(columns, cols[:-1], strict=True):
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
    df = pd.DataFrame(data, columns=[*names, "geometry"], index=pd.RangeIndex(len(geoms)))
    return to_geoframe(df)


__all__ = ["column", "frame_from_rows", "geometries", "layer_query", "prefix_range"]

"""Columnar GeoJSON: features encoded column by column, straight to JSON text.

:func:`webmap.core.geojson.features_of` builds one dict per feature (a Python call per value, a
GeoJSON string per geometry parsed back with ``json.loads``) and the response is dumped again.
Here each property column becomes its JSON texts in one pass (numbers through the C ``repr``
of Python numbers, text through the ``json`` module's C string escaper, each mapped over the
whole column; missing → ``null``), geometries are written from their coordinate arrays
(``shapely.to_ragged_array``) with digits cut by numpy from the rounded integers, and the
features are assembled by one ``str.join`` over a token table. No value is converted by Python
code of its own and nothing is parsed back.

The result equals, once parsed, what ``features_of`` gives for the same frame and CRS (checked
on every sample layer and CRS and on hypothesis-made frames in
``tests/test_webmap_columnar.py``). Geometries the fast path does not cover (collections,
empty parts, coordinates outside the CRS) and object columns of mixed types or dates go the
per-value way. :mod:`webmap.core.columnar_cache` keeps the texts of a whole layer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from json.encoder import encode_basestring
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from webmap.core import ogc_crs
from webmap.core.geojson import CRS84, jsonable

_SEP = "\x00"
"""Item separator of the bulk ``json.dumps``: JSON escapes every control character in strings,
so an unescaped NUL can only be a separator."""

_TYPE_DEPTH = {
    shapely.GeometryType.POINT: ("Point", 0),
    shapely.GeometryType.LINESTRING: ("LineString", 1),
    shapely.GeometryType.POLYGON: ("Polygon", 2),
    shapely.GeometryType.MULTIPOINT: ("MultiPoint", 1),
    shapely.GeometryType.MULTILINESTRING: ("MultiLineString", 2),
    shapely.GeometryType.MULTIPOLYGON: ("MultiPolygon", 3),
}
"""Geometry types written from coordinate arrays, with their array nesting below a position."""


def _dumps_each(values: Sequence[Any]) -> list[str]:
    """JSON text of each value, from one ``json.dumps`` call (C loop, no Python per value)."""
    if not values:
        return []
    text = json.dumps(
        values if isinstance(values, list) else list(values),
        ensure_ascii=False,
        allow_nan=False,
        separators=(_SEP, ":"),
    )
    return text[1:-1].split(_SEP)


def _floats(arr: np.ndarray) -> list[Any]:
    """Python floats of ``arr``; NaN and ±inf become None (JSON null), as ``jsonable`` does."""
    out = arr.tolist()
    for i in np.flatnonzero(~np.isfinite(arr)).tolist():  # only the few missing values
        out[i] = None
    return out


def _iso_seconds(stamps: np.ndarray) -> list[Any]:
    """``YYYY-MM-DDTHH:MM:SSZ`` of naive UTC datetime64 values (None for NaT)."""
    text = np.datetime_as_string(stamps.astype("datetime64[s]"), unit="s")
    out = np.char.add(text.astype(object), "Z")
    out[np.isnat(stamps)] = None
    return out.tolist()


def column_values(series: pd.Series) -> list[Any]:
    """Return the JSON-able values of one column, converted in bulk by dtype.

    Equal, value by value, to :func:`webmap.core.geojson.jsonable` of each element: missing →
    None, numbers → Python numbers (NaN/inf → None), datetimes → ``...Z`` ISO text in UTC,
    dates → ISO dates, other objects → their ``str``. Object columns of mixed types fall back
    to ``jsonable`` per value.

    Parameters
    ----------
    series
        One property column.

    Returns
    -------
    list
        One JSON-able value per row.
    """
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
        dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return column_values(series.astype(object))
    if dtype.kind == "M":
        return _iso_seconds(series.to_numpy())
    if isinstance(dtype, np.dtype):
        if dtype.kind == "f":
            return _floats(series.to_numpy())
        if dtype.kind in "iub":
            return series.to_numpy().tolist()
    if isinstance(dtype, pd.StringDtype):
        return series.to_numpy(dtype=object, na_value=None).tolist()
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and dtype.kind in "iubf":
        out = series.to_numpy(dtype=object, na_value=None, copy=True)
        if dtype.kind == "f":
            filled = series.to_numpy(dtype="float64", na_value=0.0)
            out[~np.isfinite(filled)] = None
        return out.tolist()
    return _object_values(series)


def _object_values(series: pd.Series) -> list[Any]:
    kind = pd.api.types.infer_dtype(series, skipna=True)
    if kind in ("string", "empty"):
        values = series.to_numpy(dtype=object, copy=True)
        values[series.isna().to_numpy()] = None
        return values.tolist()
    if kind == "date":
        missing = series.isna().to_numpy()
        days = np.array(series.where(~missing, None).tolist(), dtype="datetime64[D]")
        text = np.datetime_as_string(days, unit="D").astype(object)
        text[missing] = None
        return text.tolist()
    return [jsonable(v) for v in series.tolist()]  # mixed: the per-value rules, row by row


def _with_nulls(texts: list[str], missing: np.ndarray) -> list[str]:
    for i in np.flatnonzero(missing).tolist():  # only the missing values
        texts[i] = "null"
    return texts


def _missing(series: pd.Series) -> np.ndarray:
    return np.asarray(series.array.isna(), dtype=bool)


def _strings_json(series: pd.Series) -> list[str]:
    missing = _missing(series)
    values = series.to_numpy(dtype=object, na_value="", copy=True)
    if missing.any():
        values[missing] = ""
    return _with_nulls(list(map(encode_basestring, values.tolist())), missing)


def column_json(series: pd.Series) -> list[str]:
    """Return the JSON text of each value of one column, made column-wise.

    Equal, once parsed, to ``json.dumps`` of :func:`column_values`: numbers through the C
    ``repr`` of Python numbers (shortest round-trip), text through the C string escaper of the
    ``json`` module, each mapped over the whole column; missing values → ``null``.

    Parameters
    ----------
    series
        One property column.

    Returns
    -------
    list of str
        One JSON text per row.
    """
    dtype = series.dtype
    if isinstance(dtype, pd.StringDtype):
        return _strings_json(series)
    if isinstance(dtype, np.dtype) and dtype.kind in "fiub":
        arr = series.to_numpy()
        if dtype.kind == "b":
            return np.where(arr, "true", "false").astype(object).tolist()
        if dtype.kind == "f":
            return _with_nulls(list(map(float.__repr__, arr.tolist())), ~np.isfinite(arr))
        return list(map(int.__repr__, arr.tolist()))
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and dtype.kind in "fiub":
        missing = _missing(series)
        if dtype.kind == "b":
            arr = series.to_numpy(dtype=bool, na_value=False)
            return _with_nulls(np.where(arr, "true", "false").astype(object).tolist(), missing)
        if dtype.kind == "f":
            arr = series.to_numpy(dtype="float64", na_value=np.nan)
            texts = list(map(float.__repr__, arr.tolist()))
            return _with_nulls(texts, missing | ~np.isfinite(arr))
        ints = series.to_numpy(dtype=object, na_value=0)
        return _with_nulls(list(map(int.__repr__, ints.tolist())), missing)
    if dtype.kind == "O" and pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
        return _strings_json(series)
    return _dumps_each(column_values(series))  # dates, times, mixed objects


def _id_json(series: pd.Series, texts: list[str]) -> list[str]:
    """JSON of each feature ``id``: the text of its id value (``str``), null when missing."""
    if isinstance(series.dtype, pd.StringDtype) or (
        series.dtype.kind == "O" and pd.api.types.infer_dtype(series, skipna=True) == "string"
    ):
        return texts  # text ids: their JSON already
    values = column_values(series)
    missing = np.array(texts, dtype=object) == "null"
    ids = np.array(list(map(str, values)), dtype=object)
    ids[missing] = ""
    return _with_nulls(list(map(encode_basestring, ids.tolist())), missing)


_DIGITS4 = np.frombuffer(
    "".join(f"{i:04d}" for i in range(10_000)).encode("ascii"), dtype=np.uint8
).reshape(10_000, 4)
"""ASCII digits of 0000..9999: numbers are cut into base-10,000 chunks and looked up here."""


def _digits(values: np.ndarray, n: int) -> np.ndarray:
    """ASCII digits of non-negative ints, zero-padded to ``n`` places: shape ``(*values, n)``."""
    chunks = -(-n // 4)
    out = np.empty((*values.shape, 4 * chunks), dtype=np.uint8)
    rest = values
    for c in range(chunks - 1, -1, -1):  # least significant chunk last
        rest, chunk = np.divmod(rest, 10_000)
        out[..., 4 * c : 4 * c + 4] = _DIGITS4[chunk]
    return out[..., 4 * chunks - n :]


def _fixed_texts(xy: np.ndarray, places: int) -> list[str] | None:
    """``"x,y"`` of each position rounded to ``places`` decimals, formatted by numpy.

    ``np.round`` gives the double nearest to ``k / 10**places`` (``k = rint(v * 10**places)``);
    the decimal text of ``k`` with the point moved ``places`` to the left parses back to that
    same double, so the text is exact without a ``repr`` per number. The digits are looked up
    per 4-digit chunk into a byte table, NUL where a zero is not written (leading zeros, and
    trailing decimals but the first). None when a value is too large for exact integer
    arithmetic (the caller then uses ``repr``).
    """
    k = np.rint(xy * 10.0**places)
    if not np.all(np.abs(k) < 2.0**52):
        return None
    k = k.astype(np.int64)
    whole, frac = np.divmod(np.abs(k), 10**places)
    n_int = len(str(int(whole.max(initial=0))))
    zero = ord("0")
    table = np.zeros((len(xy), 2, n_int + places + 3), dtype=np.uint8)  # NUL: not written
    table[:, :, 0] = np.where(k < 0, ord("-"), 0)
    head = _digits(whole, n_int)
    lead = np.logical_and.accumulate(head == zero, axis=-1)
    lead[:, :, -1] = False  # "0.5": the units digit is always written
    table[:, :, 1 : n_int + 1] = np.where(lead, 0, head)
    table[:, :, n_int + 1] = ord(".")
    tail = _digits(frac, places)
    trail = np.logical_and.accumulate(tail[:, :, ::-1] == zero, axis=-1)[:, :, ::-1]
    trail[:, :, 0] = False  # "113.0": one decimal is always written
    table[:, :, n_int + 2 : n_int + 2 + places] = np.where(trail, 0, tail)
    table[:, 0, -1] = ord(",")
    table[:, 1, -1] = 1  # \x01 ends a position
    text = table[table != 0].tobytes().decode("ascii")
    return text.split("\x01")[:-1]


def _starts(offsets: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Coordinate index where each element of each nesting level starts, innermost first."""
    out = []
    index = None
    for off in offsets:
        begin = np.asarray(off[:-1], dtype=np.int64)
        index = begin if index is None else index[begin]
        out.append(index)
    return out


def _regular(offsets: Sequence[np.ndarray], n: int) -> np.ndarray:
    """Which of the ``n`` geometries have no empty part or ring (written from the arrays)."""
    ok = np.ones(n, dtype=bool)
    owner = np.arange(n)  # geometry of each element of the level, outermost level first
    for lvl in range(len(offsets) - 1, -1, -1):
        if lvl < len(offsets) - 1:
            owner = np.repeat(owner, np.diff(offsets[lvl + 1]))
        ok[owner[np.diff(offsets[lvl]) == 0]] = False
    return ok


def _group_texts(
    coords: np.ndarray, offsets: Sequence[np.ndarray], name: str, depth: int, places: int
) -> list[str]:
    """GeoJSON text of each geometry of one type from its ragged arrays (no empty part)."""
    positions = _fixed_texts(coords, places)
    if positions is None:  # beyond exact integers: Python's shortest round-trip text
        flat = json.dumps(np.round(coords, places).tolist(), separators=(",", ":"), allow_nan=False)
        positions = flat[2:-2].split("],[")  # "x,y" of every position: numbers only
    opening = '{"type":"' + name + '","coordinates":' + "[" * (depth + 1)
    closing = "]" * (depth + 1) + "}"
    seps = np.full(len(positions), "],[", dtype=object)
    starts = _starts(offsets) if depth else [np.arange(len(positions))]
    for level, begin in enumerate(starts[:-1], start=2):  # part/ring starts inside a geometry
        seps[begin] = "]" * level + ",[" + "[" * (level - 1)
    seps[starts[-1]] = closing + _SEP + opening
    seps[0] = opening
    tokens: list[str] = [""] * (2 * len(positions))
    tokens[0::2] = seps.tolist()
    tokens[1::2] = positions
    return ("".join(tokens) + closing).split(_SEP)


def geometry_texts(geoms: np.ndarray, *, crs: str = CRS84) -> list[str]:
    """Return the GeoJSON text of each geometry, in ``crs`` and rounded as the API writes them.

    Parameters
    ----------
    geoms
        Shapely geometries in lon/lat (None allowed: written ``null``).
    crs
        CRS URI of the output (see :func:`webmap.core.ogc_crs.to_crs`).

    Returns
    -------
    list of str
        One JSON text per geometry: equal, once parsed, to ``shapely.to_geojson`` of the
        geometry moved to ``crs`` and rounded to ``ogc_crs.decimals(crs)`` places.
    """
    geoms = np.asarray(geoms, dtype=object)
    out = np.full(len(geoms), "null", dtype=object)
    if len(geoms) == 0:
        return []
    present = ~shapely.is_missing(geoms)
    moved = geoms.copy()
    moved[present] = ogc_crs.to_crs(geoms[present], crs)
    places = ogc_crs.decimals(crs)
    type_ids = shapely.get_type_id(moved)
    finite = np.ones(len(geoms), dtype=bool)
    bounds = shapely.bounds(moved[present])
    finite[present] = np.isfinite(bounds).all(axis=1) | shapely.is_empty(moved[present])
    slow = present & (shapely.is_empty(moved) | ~finite)
    for type_id, (name, depth) in _TYPE_DEPTH.items():
        rows = np.flatnonzero((type_ids == type_id) & present & ~slow)
        if len(rows) == 0:
            continue
        _, coords, offsets = shapely.to_ragged_array(moved[rows], include_z=False)
        if depth:
            ok = _regular(offsets, len(rows))
            if not ok.all():  # an empty part or ring: those geometries go the slow way
                slow[rows[~ok]] = True
                rows = rows[ok]
                if len(rows) == 0:
                    continue
                _, coords, offsets = shapely.to_ragged_array(moved[rows], include_z=False)
        out[rows] = np.array(_group_texts(coords, offsets, name, depth, places), dtype=object)
    known = np.isin(type_ids, list(_TYPE_DEPTH))
    slow |= present & ~known
    for i in np.flatnonzero(slow).tolist():  # collections, empties: the per-geometry writer
        rounded = shapely.transform(moved[i], lambda xy: np.round(xy, places))
        out[i] = json.dumps(json.loads(shapely.to_geojson(rounded)), allow_nan=False)
    return out.tolist()


def _feature_tokens(
    gdf: gpd.GeoDataFrame, id_field: str, crs: str, rows: np.ndarray | None, sep: str
) -> list[str]:
    """Tokens of the features' text, one row of tokens per feature, ``sep`` between features."""
    n = len(gdf) if rows is None else len(rows)
    geometry = gdf.geometry.name
    geoms = gdf.geometry.to_numpy()
    columns = [(c, s) for c, s in gdf.items() if c != geometry]  # no frame copy
    if rows is not None:
        geoms = geoms[rows]
        columns = [(c, pd.Series(s.array.take(rows), name=c, copy=False)) for c, s in columns]
    width = 5 + 2 * len(columns)
    tokens: list[str] = [""] * (n * width)
    tokens[0::width] = [sep + '{"type":"Feature","id":'] * n
    tokens[0] = '{"type":"Feature","id":'
    tokens[1::width] = ["null"] * n
    tokens[2::width] = [',"geometry":'] * n
    tokens[3::width] = geometry_texts(geoms, crs=crs)
    for j, (c, series) in enumerate(columns):
        key = json.dumps(str(c), ensure_ascii=False) + ":"
        tokens[4 + 2 * j :: width] = [("," if j else ',"properties":{') + key] * n
        texts = column_json(series)
        tokens[5 + 2 * j :: width] = texts
        if c == id_field:
            tokens[1::width] = _id_json(series, texts)
    tokens[width - 1 :: width] = ["}}" if columns else ',"properties":{}}'] * n
    return tokens


def features_json(
    gdf: gpd.GeoDataFrame,
    id_field: str,
    *,
    crs: str = CRS84,
    rows: np.ndarray | None = None,
) -> str:
    """Return the JSON array text of the features of ``gdf``, encoded column by column.

    Parameters
    ----------
    gdf
        Features in lon/lat (CRS84 or EPSG:4490/4326 coordinates).
    id_field
        Column holding each feature's id (``id`` is its text; null when missing or absent).
    crs
        CRS URI to write the coordinates in (OGC API - Features Part 2).
    rows
        Row positions to write, in this order (a page); every row when None. Taken column by
        column: cheaper than ``gdf.iloc[rows]``, which builds a whole frame.

    Returns
    -------
    str
        ``[{"type":"Feature","id":...,"geometry":...,"properties":{...}}, ...]``: equal, once
        parsed, to :func:`webmap.core.geojson.features_of` of the same rows and arguments.
    """
    if (len(gdf) if rows is None else len(rows)) == 0:
        return "[]"
    return "[" + "".join(_feature_tokens(gdf, id_field, crs, rows, ",")) + "]"


def feature_texts(gdf: gpd.GeoDataFrame, id_field: str, *, crs: str = CRS84) -> np.ndarray:
    """Return the JSON text of each feature of ``gdf`` (an object array, one ``str`` a row).

    Made column by column like :func:`features_json`, then cut at the features' boundaries:
    a page is then ``",".join(texts[rows])``.

    Parameters
    ----------
    gdf
        Features in lon/lat.
    id_field
        Column holding each feature's id.
    crs
        CRS URI to write the coordinates in.

    Returns
    -------
    numpy.ndarray
        ``len(gdf)`` texts of GeoJSON Features.
    """
    out = np.empty(len(gdf), dtype=object)
    if len(gdf):
        out[:] = "".join(_feature_tokens(gdf, id_field, crs, None, _SEP)).split(_SEP)
    return out


def collection_json(features: str, members: dict[str, Any]) -> str:
    """Return a FeatureCollection's text: encoded ``features`` spliced into the other members.

    Parameters
    ----------
    features
        The JSON array text from :func:`features_json`.
    members
        Every other member (``numberMatched``, ``links``...), encoded with ``json.dumps``.

    Returns
    -------
    str
        ``{"type":"FeatureCollection","features":[...], ...members}``.
    """
    rest = json.dumps(members, ensure_ascii=False, allow_nan=False)
    head = '{"type":"FeatureCollection","features":' + features
    return head + ("}" if rest == "{}" else "," + rest[1:])


__all__ = [
    "collection_json",
    "column_json",
    "column_values",
    "feature_texts",
    "features_json",
    "geometry_texts",
]

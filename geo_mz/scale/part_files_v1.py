"""The previous part-file format (``geo_mz.part/1``, a ``.npz``): its writer, kept as a reference.

Part files are written in ``geo_mz.part/2`` (:mod:`geo_mz.scale.part_files`) since a part's save
had to cost less. A run store may still hold ``geo_mz.part/1`` files of an earlier run, and
:func:`~geo_mz.scale.part_files.read_part_file` reads both. The writer of the old format stays
here, unchanged, so that the tests can make such files the way the previous version made them,
and the benchmark can time the previous save against today's. Nothing in a run writes it.

The format: a numpy ``.npz`` (a zip of ``.npy`` arrays, stored, not compressed), loaded with
``allow_pickle=False``. Per layer and column the file holds the values as a typed array, a
missing-value mask where the column has missing values, text as its UTF-8 bytes concatenated
with int64 end offsets, and geometry in EPSG:4490 as point coordinates (2D points) or WKB bytes
concatenated with offsets; a JSON ``header`` member names the layers, their columns and kinds,
and the part's mark.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.core.projection import STORAGE_CRS, geometries_to_crs

FORMAT_V1 = "geo_mz.part/1"
HEADER_MEMBER = "header"


def _text(values: list[str]) -> tuple[np.ndarray, np.ndarray, bool]:
    """UTF-8 bytes of the strings concatenated, each one's end offset, and whether all ASCII."""
    joined = "".join(values)
    if joined.isascii():
        # One character one byte: the lengths of the strings are the offsets' steps.
        ends = np.cumsum(np.fromiter(map(len, values), np.int64, len(values)), dtype=np.int64)
        return np.frombuffer(joined.encode("ascii"), dtype=np.uint8), ends, True
    encoded = [v.encode("utf-8") for v in values]
    ends = np.cumsum(np.fromiter(map(len, encoded), np.int64, len(encoded)), dtype=np.int64)
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), ends, False


def _encode_column(s: pd.Series, key: str, out: dict[str, np.ndarray]) -> dict[str, Any]:
    """Put one column's arrays in ``out`` under ``key``; return its entry for the header."""
    dtype = s.dtype
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        out[key] = s.to_numpy()
        return {"kind": "float"}
    if isinstance(dtype, np.dtype) and dtype.kind in "iu":
        out[key] = s.to_numpy()
        return {"kind": "integer"}
    if isinstance(dtype, np.dtype) and dtype.kind == "b":
        out[key] = s.to_numpy()
        return {"kind": "boolean"}
    if isinstance(dtype, pd.BooleanDtype | pd.core.arrays.integer.IntegerDtype):
        na = s.isna().to_numpy()
        target = bool if isinstance(dtype, pd.BooleanDtype) else dtype.numpy_dtype
        out[key] = s.to_numpy(dtype=target, na_value=False if target is bool else 0)
        entry = {"kind": "boolean" if target is bool else "integer"}
        if na.any():
            out[key + ".na"] = na
            entry["na"] = True
        return entry
    if isinstance(dtype, np.dtype) and dtype.kind == "M":
        out[key] = s.to_numpy()  # NaT stays NaT in the array itself
        return {"kind": "datetime"}
    # Text, and anything else kept as its text (what pyogrio wrote for it).
    vals = s.to_numpy(dtype=object)
    na = pd.isna(vals) if len(vals) else np.zeros(0, dtype=bool)
    texts = vals[~na].tolist()
    try:
        out[key], out[key + ".ends"], ascii_only = _text(texts)
    except TypeError:  # not all text: each value's text (what pyogrio wrote for it)
        texts = [v if isinstance(v, str) else str(v) for v in texts]
        out[key], out[key + ".ends"], ascii_only = _text(texts)
    entry: dict[str, Any] = {"kind": "string", "ascii": ascii_only}
    if na.any():
        out[key + ".na"] = na
        entry["na"] = True
    return entry


def _encode_geometry(geoms: np.ndarray, key: str, out: dict[str, np.ndarray]) -> dict[str, Any]:
    na = shapely.is_missing(geoms)
    if na.all():
        return {"geometry": "none"}
    kept = geoms[~na]
    entry: dict[str, Any] = {}
    if na.any():
        out[key + ".na"] = na
        entry["na"] = True
    type_id = shapely.get_type_id(kept)
    has_m = getattr(shapely, "has_m", None)  # shapely >= 2.1 keeps M values
    plain_xy = not shapely.has_z(kept).any() and (has_m is None or not has_m(kept).any())
    if (type_id == 0).all() and plain_xy and not shapely.is_empty(kept).any():
        out[key] = shapely.get_coordinates(kept)
        return {**entry, "geometry": "points"}
    wkb = shapely.to_wkb(kept)
    ends = np.cumsum([len(b) for b in wkb], dtype=np.int64)
    out[key] = np.frombuffer(b"".join(wkb), dtype=np.uint8)
    out[key + ".ends"] = ends
    return {**entry, "geometry": "wkb"}


def _geometries(frame: pd.DataFrame) -> tuple[np.ndarray | None, Any]:
    """Return the frame's geometry in EPSG:4490 and its column (``None, None`` if it has none)."""
    if isinstance(frame, gpd.GeoDataFrame) and frame.geometry.name in frame.columns:
        geoms = np.asarray(frame.geometry.values, dtype=object)
        if frame.crs is not None:
            geoms = geometries_to_crs(geoms, frame.crs, STORAGE_CRS)
        return geoms, frame.geometry.name
    return None, None


def encode_part_v1(
    tables: Mapping[str, pd.DataFrame], mark: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Turn a part's frames into the header and arrays of a ``geo_mz.part/1`` file.

    Parameters
    ----------
    tables
        Store table name (``<job>_<layer>``) to results frame; a frame with no rows is left out.
    mark
        The part's row of ``geo_mz_run_parts`` (JSON-able values), kept in the header.

    Returns
    -------
    tuple
        The header (a JSON-able dict) and the arrays by member name.
    """
    arrays: dict[str, np.ndarray] = {}
    layers = []
    for table, frame in tables.items():
        if len(frame) == 0:
            continue
        t = len(layers)  # the members' prefix: the layer's place among those kept
        geoms, geometry_column = _geometries(frame)
        cols = []
        for col, s in frame.items():
            if geoms is not None and col == geometry_column:
                continue
            entry = _encode_column(s, f"{t}.{len(cols)}", arrays)
            cols.append({"name": str(col), **entry})
        geo = (
            {"geometry": "none"}
            if geoms is None
            else _encode_geometry(geoms, f"{t}.geometry", arrays)
        )
        layers.append({"table": table, "key": str(t), "n": len(frame), "columns": cols, **geo})
    return {"format": FORMAT_V1, "mark": dict(mark), "layers": layers}, arrays


def write_part_file_v1(
    path: str | Path, tables: Mapping[str, pd.DataFrame], mark: Mapping[str, Any]
) -> Path:
    """Write a part's rows and mark as the previous version did (``np.savez``, then a rename).

    Parameters
    ----------
    path
        The part file (``.npz``); an earlier one is replaced.
    tables
        Store table name to results frame (see :func:`encode_part_v1`).
    mark
        The part's ``geo_mz_run_parts`` row (JSON-able values).

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = Path(path)
    header, arrays = encode_part_v1(tables, mark)
    text = json.dumps(header, ensure_ascii=False, default=str).encode("utf-8")
    arrays[HEADER_MEMBER] = np.frombuffer(text, dtype=np.uint8)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


__all__ = ["FORMAT_V1", "HEADER_MEMBER", "encode_part_v1", "write_part_file_v1"]

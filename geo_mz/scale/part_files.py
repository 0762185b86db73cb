"""One part's results in one columnar file: numpy arrays in a ``.npz``, no pickle.

The GeoPackage run store (:mod:`geo_mz.scale.store_gpkg`) has each worker write the results of
a part to a file of its own, merged into the store's GeoPackage when the run is gathered. That
file used to be a GeoPackage written by pyogrio: ≈ 30 ms for a county's coverage part, more
than computing it. This one is a plain numpy ``.npz`` (a zip of ``.npy`` arrays, stored, not
compressed) written in ≈ 1–2 ms, loaded with ``allow_pickle=False``: a store folder may be
shared, and unpickling a file runs the code it names, so no member is ever an object array.

Per layer and column the file holds the values as a typed array (float and integer columns in
their own dtype; booleans; naive datetimes), a missing-value mask where the column has missing
values, text as its UTF-8 bytes concatenated with int64 end offsets, and geometry in EPSG:4490
as point coordinates (2D points, the common case) or WKB bytes concatenated with offsets. A
JSON header names the layers, their columns and kinds in order, and the part's *mark*: the
``geo_mz_run_parts`` row that says the part is done. Rows and mark are one file, written to a
temporary name and renamed into place (:func:`write_part_file`), so a part file is there whole
or not at all: there is no moment when the rows are kept and the part is not marked, or the
other way round.

:func:`read_part_file` gives back each layer as the frame pyogrio read from the old per-part
GeoPackage (same columns, order and dtypes: text as ``str``, integers or booleans with missing
values as ``float64``, an all-missing text column as ``object``), so the merge into the store
writes the same rows it wrote before.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from geo_mz.core.projection import STORAGE_CRS, geometries_to_crs
from geo_mz.scale.store_base import RunStoreError

FORMAT = "geo_mz.part/1"
_HEADER = "header"


class PartFileError(RunStoreError):
    """A part file that cannot be read (not one, truncated, or a newer format)."""


# --------------------------------------------------------------------------- encoding


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


def encode_part(
    tables: Mapping[str, pd.DataFrame], mark: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Turn a part's frames into the header and arrays of a part file.

    Parameters
    ----------
    tables
        Store table name (``<job>_<layer>``) to results frame; a frame with no rows is left out
        (a part without rows of a layer adds nothing to its table).
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
    return {"format": FORMAT, "mark": dict(mark), "layers": layers}, arrays


def write_part_file(
    path: str | Path, tables: Mapping[str, pd.DataFrame], mark: Mapping[str, Any]
) -> Path:
    """Write a part's rows and mark to ``path`` in one step (a temporary file renamed).

    Parameters
    ----------
    path
        The part file (``.npz``); an earlier one is replaced.
    tables
        Store table name to results frame (see :func:`encode_part`).
    mark
        The part's ``geo_mz_run_parts`` row (JSON-able values).

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = Path(path)
    header, arrays = encode_part(tables, mark)
    text = json.dumps(header, ensure_ascii=False, default=str).encode("utf-8")
    arrays[_HEADER] = np.frombuffer(text, dtype=np.uint8)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        # A rename replaces the old file whole: a reader sees the old part or the new one.
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# --------------------------------------------------------------------------- decoding


@functools.cache
def _storage_crs() -> pyproj.CRS:
    # Parsed once: a merge builds a frame per part and layer (the same CRS as the string's).
    return pyproj.CRS.from_user_input(STORAGE_CRS)


@contextlib.contextmanager
def _open(path: Path) -> Iterator[Any]:
    """Open a part file's arrays (no pickle), naming the file if it is not one."""
    with open(path, "rb") as fh:
        try:
            npz = np.load(fh, allow_pickle=False)
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise PartFileError(
                f"{path}: 不是可读的分区结果文件，删除它后重新运行即可重算该分区 / not a "
                f"readable part file ({type(exc).__name__}: {exc}); delete it and rerun to "
                "compute the part again"
            ) from exc
        try:
            with npz:
                yield npz
        except (OSError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            # Read lazily, member by member: a file cut short fails here.
            raise PartFileError(
                f"{path}: 分区结果文件不完整，删除它后重新运行即可重算该分区 / the part file is "
                f"damaged ({type(exc).__name__}: {exc}); delete it and rerun to compute the "
                "part again"
            ) from exc


def _header(npz: Any, path: Path) -> dict[str, Any]:
    try:
        header = json.loads(bytes(npz[_HEADER]).decode("utf-8"))
    except (KeyError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise PartFileError(
            f"{path}: 分区结果文件缺少或损坏了文件头 / the part file's header is missing or "
            f"damaged ({type(exc).__name__}: {exc}); delete it and rerun the part"
        ) from exc
    if header.get("format") != FORMAT:
        raise PartFileError(
            f"{path}: 分区结果文件格式 {header.get('format')!r} 不是 {FORMAT!r} / part file "
            f"format {header.get('format')!r} is not {FORMAT!r} (written by another version)"
        )
    return header


def read_part_mark(path: str | Path) -> dict[str, Any]:
    """Return the ``geo_mz_run_parts`` row kept in a part file (its rows are not read).

    Parameters
    ----------
    path
        A part file written by :func:`write_part_file`.

    Returns
    -------
    dict
        The mark: ``run_key``, ``part``, ``status``, ``rows`` (JSON), ``seconds``, ….
    """
    path = Path(path)
    with _open(path) as npz:
        return dict(_header(npz, path)["mark"])


def _split(buf: np.ndarray, ends: np.ndarray) -> list[bytes]:
    raw, stops = buf.tobytes(), ends.tolist()
    return [raw[a:b] for a, b in zip([0, *stops][: len(stops)], stops, strict=True)]


def _decode_column(npz: Any, key: str, entry: Mapping[str, Any], n: int) -> Any:
    kind = entry["kind"]
    values = npz[key]
    na = npz[key + ".na"] if entry.get("na") else None
    if kind == "string":
        out = np.empty(n, dtype=object)
        keep = np.ones(n, dtype=bool) if na is None else ~na
        ends = npz[key + ".ends"]
        if entry.get("ascii"):
            text, stops = values.tobytes().decode("ascii"), ends.tolist()
            out[keep] = [text[a:b] for a, b in zip([0, *stops][: len(stops)], stops, strict=True)]
        else:
            out[keep] = [b.decode("utf-8") for b in _split(values, ends)]
        if not keep.any():
            return out  # all missing: pyogrio gives an object column of None
        out[~keep] = np.nan
        return pd.array(out, dtype="str")
    if kind == "datetime":
        # A GeoPackage keeps milliseconds: what pyogrio read back.
        return values.astype("datetime64[ms]")
    if na is not None:
        # pyogrio reads an integer or boolean field with missing values as float64.
        out = values.astype(np.float64)
        out[na] = np.nan
        return out
    if kind == "integer" and values.dtype.kind == "u":
        return values.astype(np.int64 if values.dtype.itemsize >= 4 else np.int32)
    if kind == "integer" and values.dtype.itemsize == 1:
        return values.astype(np.int16)
    return values


def _decode_geometry(npz: Any, key: str, layer: Mapping[str, Any], n: int) -> np.ndarray:
    how = layer["geometry"]
    out = np.full(n, None, dtype=object)
    if how == "none":
        return out
    keep = np.ones(n, dtype=bool) if not layer.get("na") else ~npz[key + ".na"]
    if how == "points":
        out[keep] = shapely.points(npz[key])
    else:
        out[keep] = shapely.from_wkb(_split(npz[key], npz[key + ".ends"]))
    return out


def read_part_file(path: str | Path) -> tuple[dict[str, Any], dict[str, gpd.GeoDataFrame]]:
    """Read a part file: its mark and, per store table, the rows to append.

    Parameters
    ----------
    path
        A part file written by :func:`write_part_file`.

    Returns
    -------
    tuple
        The mark (``geo_mz_run_parts`` row) and, per table, a frame of ``run_key``, ``part``,
        ``seq``, the layer's columns and ``geometry`` (EPSG:4490), typed as pyogrio reads
        them from a GeoPackage.
    """
    path = Path(path)
    with _open(path) as npz:
        header = _header(npz, path)
        mark = dict(header["mark"])
        tables: dict[str, gpd.GeoDataFrame] = {}
        for layer in header["layers"]:
            n, t = int(layer["n"]), layer["key"]
            data: dict[str, Any] = {
                "run_key": pd.array([str(mark["run_key"])] * n, dtype="str"),
                "part": pd.array([str(mark["part"])] * n, dtype="str"),
                "seq": np.arange(n, dtype=np.int64),
            }
            for i, entry in enumerate(layer["columns"]):
                data[entry["name"]] = _decode_column(npz, f"{t}.{i}", entry, n)
            geoms = _decode_geometry(npz, f"{t}.geometry", layer, n)
            tables[layer["table"]] = gpd.GeoDataFrame(
                pd.DataFrame(data, copy=False), geometry=geoms, crs=_storage_crs()
            )
    return mark, tables


__all__ = [
    "FORMAT",
    "PartFileError",
    "encode_part",
    "read_part_file",
    "read_part_mark",
    "write_part_file",
]

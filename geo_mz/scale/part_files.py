"""One part's results in one columnar file: a JSON header, then the numpy arrays' raw bytes.

The GeoPackage run store (:mod:`geo_mz.scale.store_gpkg`) has each worker write the results of
a part to a file of its own, merged into the store's GeoPackage when the run is gathered. The
file was a GeoPackage written by pyogrio (≈ 30 ms for a county's coverage part), then a numpy
``.npz`` (``geo_mz.part/1``: a zip of ≈ 40 small members, each with its own headers and CRC,
≈ 4 ms with the encoding). It is now one container, ``geo_mz.part/2``, written in ≈ 2 ms
(``bench/bench_run_store.py``: 0.53× the ``.npz``'s time, read back in 0.64×):

- a 32-byte prefix: the magic ``geo_mz.part/2``, the header's length and its CRC-32;
- the header, JSON: the layers, their columns and kinds in order, the part's *mark* (the
  ``geo_mz_run_parts`` row that says the part is done), and for every array its dtype, shape,
  offset and length, with the payload's length and CRC-32;
- the payload: the arrays' raw bytes, each starting on a 64-byte boundary.

It is written with one ``os.writev`` of views on the arrays (no copy of them, no pickle: no
array is an object array, and a reader never unpickles anything, since a store folder may be
shared), to a temporary name renamed into place. Rows and mark are one file, so a part file is
there whole or not at all: a worker killed while writing leaves a temporary file, never a part
marked done without its rows. The file is not synced to disk (see :func:`write_part_file`): a
power cut can leave a renamed file cut short, which its lengths and CRCs then reject.

Per layer and column the file holds the values as a typed array (float and integer columns in
their own dtype; booleans; naive datetimes), a missing-value mask where the column has missing
values, text as the UTF-8 bytes of its values joined by NUL (or with int64 end offsets when a
value holds a NUL), and geometry in EPSG:4490 as point coordinates (2D points, the common case)
or WKB bytes concatenated with offsets.

:func:`read_part_file` reads ``geo_mz.part/2`` and the ``geo_mz.part/1`` files an earlier run
may have left (:mod:`geo_mz.scale.part_files_v1`), and gives back each layer as the frame
pyogrio read from the old per-part GeoPackage (same columns, order and dtypes: text as ``str``,
integers or booleans with missing values as ``float64``, an all-missing text column as
``object``), so the merge into the store writes the same rows it wrote before.
"""

from __future__ import annotations

import functools
import json
import os
import struct
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from geo_mz.core.gpkg_read import geoframe
from geo_mz.core.projection import STORAGE_CRS, geometries_to_crs
from geo_mz.scale.part_files_v1 import FORMAT_V1, HEADER_MEMBER
from geo_mz.scale.store_base import RunStoreError

FORMAT = "geo_mz.part/2"
_MAGIC = b"geo_mz.part/2\n\x00\x00"  # 16 bytes: the file says what it is to a person too
_PREFIX = struct.Struct("<16sQI4x")  # magic, header bytes, header CRC-32: 32 bytes
_ALIGN = 64  # every array starts on a cache line (8 would do for the dtypes used)
_PAD = bytes(_ALIGN)
_SEP = "\x00"  # joins a text column's values (UTF-8 never holds a NUL byte but for NUL itself)
_ZIP_MAGIC = b"PK\x03\x04"  # a geo_mz.part/1 file (.npz)
_IOV_MAX = 1024  # buffers per writev (Linux's limit)


class PartFileError(RunStoreError):
    """A part file that cannot be read (not one, truncated, or a newer format)."""


class DamagedPartFileError(PartFileError):
    """A part file cut short or damaged, or not a part file (not one of a newer format)."""


# --------------------------------------------------------------------------- encoding


def _encode_text(vals: np.ndarray, key: str, out: dict[str, np.ndarray]) -> dict[str, Any]:
    """Put a text column's arrays in ``out``: its values' UTF-8 joined by NUL, and a mask."""
    texts = vals.tolist()
    na = None
    try:
        joined = _SEP.join(texts)  # all text, nothing missing: the common case, one pass
    except TypeError:  # missing values (None, NaN) or values that are not text
        na = pd.isna(vals)
        if na.any():
            texts = vals[~na].tolist()
        else:
            na = None
        try:
            joined = _SEP.join(texts)
        except TypeError:  # each value's text (what pyogrio wrote for it)
            texts = [v if isinstance(v, str) else str(v) for v in texts]
            joined = _SEP.join(texts)
    entry: dict[str, Any] = {"kind": "string"}
    if na is not None:
        out[key + ".na"] = na
        entry["na"] = True
    if joined.count(_SEP) == max(len(texts) - 1, 0):
        out[key] = np.frombuffer(joined.encode("utf-8"), dtype=np.uint8)
        return {**entry, "sep": True}
    # A value holds a NUL itself: each value's end offset instead.
    encoded = [v.encode("utf-8") for v in texts]
    out[key] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    out[key + ".ends"] = np.cumsum(
        np.fromiter(map(len, encoded), np.int64, len(encoded)), dtype=np.int64
    )
    return {**entry, "ascii": False}


def _encode_column(s: pd.Series, key: str, out: dict[str, np.ndarray]) -> dict[str, Any]:
    """Put one column's arrays in ``out`` under ``key``; return its entry for the header."""
    dtype = s.dtype
    if isinstance(dtype, np.dtype):
        kind = dtype.kind
        if kind in "fiubM":
            out[key] = s.to_numpy()  # NaN and NaT stay in the array itself
            return {"kind": _KINDS[kind]}
    elif isinstance(dtype, pd.BooleanDtype | pd.core.arrays.integer.IntegerDtype):
        values = s.array  # the masked array itself: no Series made for its mask
        na = np.asarray(values.isna())
        target = bool if isinstance(dtype, pd.BooleanDtype) else dtype.numpy_dtype
        out[key] = values.to_numpy(dtype=target, na_value=False if target is bool else 0)
        entry = {"kind": "boolean" if target is bool else "integer"}
        if na.any():
            out[key + ".na"] = na
            entry["na"] = True
        return entry
    # Text, and anything else kept as its text (what pyogrio wrote for it).
    return _encode_text(s.to_numpy(dtype=object), key, out)


_KINDS = {"f": "float", "i": "integer", "u": "integer", "b": "boolean", "M": "datetime"}


def _encode_geometry(geoms: np.ndarray, key: str, out: dict[str, np.ndarray]) -> dict[str, Any]:
    type_id = shapely.get_type_id(geoms)  # -1 where missing: one pass answers both
    na = type_id < 0
    if na.all():
        return {"geometry": "none"}
    entry: dict[str, Any] = {}
    kept = geoms
    if na.any():
        kept, type_id = geoms[~na], type_id[~na]
        out[key + ".na"] = na
        entry["na"] = True
    # Plain 2D points go as their x, y: 2 is the coordinate dimension of XY only (3 for XYZ
    # or XYM, 4 for XYZM), and an empty point has no coordinate to count.
    if (type_id == 0).all() and (shapely.get_coordinate_dimension(kept) == 2).all():
        coords = shapely.get_coordinates(kept)
        if len(coords) == len(kept):
            out[key] = coords
            return {**entry, "geometry": "points"}
    wkb = shapely.to_wkb(kept)
    out[key] = np.frombuffer(b"".join(wkb), dtype=np.uint8)
    out[key + ".ends"] = np.cumsum(np.fromiter(map(len, wkb), np.int64, len(wkb)), dtype=np.int64)
    return {**entry, "geometry": "wkb"}


def _geometries(frame: pd.DataFrame) -> tuple[np.ndarray | None, Any]:
    """Return the frame's geometry in EPSG:4490 and its column (``None, None`` if it has none)."""
    if not isinstance(frame, gpd.GeoDataFrame):
        return None, None
    name = frame.active_geometry_name
    if name is None or name not in frame.columns:
        return None, None
    values = frame[name].values  # one GeoSeries built, not one per attribute asked
    geoms = np.asarray(values, dtype=object)
    if values.crs is not None and not values.crs.is_exact_same(_storage_crs()):
        geoms = geometries_to_crs(geoms, values.crs, STORAGE_CRS)
    return geoms, name


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
        The header (a JSON-able dict: format, mark, layers) and the arrays by name; where each
        array lies in the file is added to the header by :func:`write_part_file`.
    """
    arrays: dict[str, np.ndarray] = {}
    layers = []
    for table, frame in tables.items():
        if len(frame) == 0:
            continue
        t = len(layers)  # the arrays' prefix: the layer's place among those kept
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


def _layout(arrays: Mapping[str, np.ndarray]) -> tuple[dict[str, list], list[Any], int, int]:
    """Place the arrays one after the other: their index, the buffers, the length and CRC-32."""
    index: dict[str, list] = {}
    buffers: list[Any] = []
    offset = crc = 0
    for key, a in arrays.items():
        a = np.ascontiguousarray(a)  # a no-op but for a strided column
        if a.dtype.hasobject:  # never: each encoder makes typed arrays
            raise TypeError(f"part file array {key!r} holds Python objects")
        raw = a.reshape(-1).view(np.uint8)  # a view: datetime64 has no buffer of its own
        index[key] = [a.dtype.str, list(a.shape), offset, raw.nbytes]
        pad = _PAD[: -raw.nbytes % _ALIGN]
        crc = zlib.crc32(pad, zlib.crc32(raw, crc))
        buffers += [raw, pad]
        offset += raw.nbytes + len(pad)
    return index, buffers, offset, crc


def _write_all(fd: int, buffers: list[Any]) -> None:
    """Write the buffers in order with as few system calls as the OS allows."""
    views = [memoryview(b) for b in buffers if len(b)]
    if not hasattr(os, "writev"):  # Windows
        for v in views:
            while len(v):
                v = v[os.write(fd, v) :]
        return
    i = 0
    while i < len(views):
        n = os.writev(fd, views[i : i + _IOV_MAX])
        if n <= 0:
            raise OSError(f"writev wrote {n} bytes")
        while n:  # drop the buffers written whole; cut the one written in part
            if n >= len(views[i]):
                n -= len(views[i])
                i += 1
            else:
                views[i], n = views[i][n:], 0


def write_part_file(
    path: str | Path, tables: Mapping[str, pd.DataFrame], mark: Mapping[str, Any]
) -> Path:
    """Write a part's rows and mark to ``path`` in one step (a temporary file renamed).

    The rename makes the part there whole or not at all for every reader, also when the worker
    is killed midway. The file is not synced to disk, as the ``.npz`` was not: an ``fsync`` of
    the file and its folder would add ≈ 0.8 ms a part to ≈ 2 ms here (far more on a spinning or
    network disk), for a power cut only. After one, a part may be missing (computed again) or
    its file cut short or zeroed, which the reader names (lengths and CRC-32s).

    Parameters
    ----------
    path
        The part file; an earlier one is replaced.
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
    index, buffers, payload_bytes, payload_crc = _layout(arrays)
    header.update(arrays=index, payload_bytes=payload_bytes, payload_crc32=payload_crc)
    text = json.dumps(header, ensure_ascii=False, default=str, separators=(",", ":")).encode()
    prefix = _PREFIX.pack(_MAGIC, len(text), zlib.crc32(text))
    pad = _PAD[: -(len(prefix) + len(text)) % _ALIGN]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(tmp, flags, 0o666)
        try:
            _write_all(fd, [prefix, text, pad, *buffers])
        finally:
            os.close(fd)
        # A rename replaces the old file whole: a reader sees the old part or the new one.
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# --------------------------------------------------------------------------- reading


def _damaged(path: Path, why: str) -> PartFileError:
    return DamagedPartFileError(
        f"{path}: 分区结果文件不完整或已损坏，删除它后重新运行即可重算该分区 / the part file "
        f"is damaged ({why}); delete it and rerun to compute the part again"
    )


def _not_a_part_file(path: Path, why: str) -> PartFileError:
    return DamagedPartFileError(
        f"{path}: 不是可读的分区结果文件，删除它后重新运行即可重算该分区 / not a readable "
        f"part file ({why}); delete it and rerun to compute the part again"
    )


def _check_format(header: Any, path: Path, want: str) -> dict[str, Any]:
    if not isinstance(header, dict) or header.get("format") != want:
        got = header.get("format") if isinstance(header, dict) else None
        raise PartFileError(
            f"{path}: 分区结果文件格式 {got!r} 不是 {want!r} / part file format {got!r} is not "
            f"{want!r} (written by another version)"
        )
    return header


def _v2_header(path: Path, data: bytes | bytearray | memoryview, size: int) -> tuple[dict, int]:
    """Check a ``geo_mz.part/2`` file's prefix and header; return it and where the payload is.

    ``data`` starts at the file's start and holds at least the prefix and header; ``size`` is
    the file's length.
    """
    _, n, crc = _PREFIX.unpack_from(data)
    head = data[_PREFIX.size : _PREFIX.size + n]
    if len(head) < n:
        raise _damaged(path, f"cut short: {size} bytes, the header alone needs {32 + n}")
    if zlib.crc32(head) != crc:
        raise _damaged(path, "the header's CRC-32 does not match")
    try:
        header = json.loads(str(head, "utf-8"))
    except ValueError as exc:
        raise _damaged(path, f"header: {exc}") from exc
    header = _check_format(header, path, FORMAT)
    kinds = {
        "mark": dict,
        "layers": list,
        "arrays": dict,
        "payload_bytes": int,
        "payload_crc32": int,
    }
    wrong = [k for k, kind in kinds.items() if not isinstance(header.get(k), kind)]
    if wrong:  # its CRC matched: written so (another writer), not damaged on the way
        raise PartFileError(str(_damaged(path, f"the header lacks {', '.join(wrong)}")))
    start = _PREFIX.size + n + (-(_PREFIX.size + n) % _ALIGN)
    want = start + header["payload_bytes"]
    if size != want:
        raise _damaged(path, f"{size} bytes where the header says {want}")
    return header, start


def _v1(path: Path, fh: BinaryIO, whole: bool) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a ``geo_mz.part/1`` file (an ``.npz``): its header and (``whole``) its arrays."""
    try:
        fh.seek(0)
        with np.load(fh, allow_pickle=False) as npz:
            header = json.loads(bytes(npz[HEADER_MEMBER]).decode("utf-8"))
            arrays = {m: npz[m] for m in npz.files if m != HEADER_MEMBER} if whole else {}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise _damaged(path, f"{type(exc).__name__}: {exc}") from exc
    return _check_format(header, path, FORMAT_V1), arrays


def _arrays(path: Path, header: Mapping[str, Any], payload: memoryview) -> dict[str, np.ndarray]:
    """Return the header's arrays as views on the payload (checked to lie in it, no objects)."""
    out = {}
    try:
        for key, (dtype, shape, offset, nbytes) in header["arrays"].items():
            dt = np.dtype(dtype)
            count = int(np.prod(shape, dtype=np.int64))
            if dt.hasobject or count * dt.itemsize != nbytes or offset + nbytes > len(payload):
                raise ValueError(f"array {key!r}: {dtype} {shape} at {offset}+{nbytes}")
            out[key] = np.frombuffer(payload, dt, count, offset).reshape(shape)
    except (ValueError, TypeError, KeyError) as exc:
        raise _damaged(path, f"{type(exc).__name__}: {exc}") from exc
    return out


def _read(path: Path, whole: bool) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a part file of either format: its header and, if ``whole``, its arrays.

    A file that is not there raises :class:`FileNotFoundError` (a store's merge may have taken
    it meanwhile); a file that cannot be read whole raises :class:`PartFileError`.
    """
    with open(path, "rb") as fh:
        try:
            size = os.fstat(fh.fileno()).st_size
            first = fh.read(_PREFIX.size)
            if first.startswith(_ZIP_MAGIC):
                return _v1(path, fh, whole)
            if len(first) < _PREFIX.size or not first.startswith(_MAGIC):
                raise _not_a_part_file(path, f"it starts with {first[:16]!r}")
            if not whole:
                (n,) = struct.unpack_from("<Q", first, 16)
                header, _ = _v2_header(path, first + fh.read(min(n, size)), size)
                return header, {}
            buf = bytearray(size)  # writable: the frames' arrays are views on it, as np.load's
            buf[: len(first)] = first
            got = len(first) + _read_into(fh, memoryview(buf)[len(first) :])
        except OSError as exc:
            raise _damaged(path, f"{type(exc).__name__}: {exc}") from exc
    if got != size:
        raise _damaged(path, f"read {got} of {size} bytes")
    header, start = _v2_header(path, buf, size)
    payload = memoryview(buf)[start:]
    if zlib.crc32(payload) != header["payload_crc32"]:
        raise _damaged(path, "the rows' CRC-32 does not match")
    return header, _arrays(path, header, payload)


def _read_into(fh: BinaryIO, view: memoryview) -> int:
    done = 0
    while done < len(view):
        n = fh.readinto(view[done:])  # type: ignore[attr-defined]
        if not n:
            break
        done += n
    return done


def read_part_mark(path: str | Path) -> dict[str, Any]:
    """Return the ``geo_mz_run_parts`` row kept in a part file (its rows are not read).

    Parameters
    ----------
    path
        A part file written by :func:`write_part_file` (or by the previous version).

    Returns
    -------
    dict
        The mark: ``run_key``, ``part``, ``status``, ``rows`` (JSON), ``seconds``, ….
    """
    return dict(_read(Path(path), whole=False)[0]["mark"])


# --------------------------------------------------------------------------- decoding


@functools.cache
def _storage_crs() -> pyproj.CRS:
    # Parsed once: a merge builds a frame per part and layer (the same CRS as the string's).
    return pyproj.CRS.from_user_input(STORAGE_CRS)


def _split(buf: np.ndarray, ends: np.ndarray) -> list[bytes]:
    raw, stops = buf.tobytes(), ends.tolist()
    return [raw[a:b] for a, b in zip([0, *stops][: len(stops)], stops, strict=True)]


def _decode_text(arrays: Mapping[str, np.ndarray], key: str, entry: Mapping, na: Any) -> list:
    """Return a text column's values that are not missing, in order."""
    values = arrays[key]
    if entry.get("sep"):
        if na is not None and na.all():
            return []
        return str(values, "utf-8").split(_SEP)
    ends = arrays[key + ".ends"]
    if entry.get("ascii"):
        text, stops = values.tobytes().decode("ascii"), ends.tolist()
        return [text[a:b] for a, b in zip([0, *stops][: len(stops)], stops, strict=True)]
    return [b.decode("utf-8") for b in _split(values, ends)]


def _decode_column(arrays: Mapping[str, np.ndarray], key: str, entry: Mapping, n: int) -> Any:
    kind = entry["kind"]
    values = arrays[key]
    na = arrays[key + ".na"] if entry.get("na") else None
    if kind == "string":
        texts = _decode_text(arrays, key, entry, na)
        if len(texts) != (n if na is None else n - int(na.sum())):
            raise ValueError(f"{len(texts)} texts for {n} rows")
        out = np.empty(n, dtype=object)
        if na is None:
            out[:] = texts
            return pd.array(out, dtype="str")
        if not len(texts):
            return out  # all missing: pyogrio gives an object column of None
        out[~na] = texts
        out[na] = np.nan
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


def _decode_geometry(
    arrays: Mapping[str, np.ndarray], key: str, layer: Mapping[str, Any], n: int
) -> np.ndarray:
    how = layer["geometry"]
    out = np.full(n, None, dtype=object)
    if how == "none":
        return out
    keep = np.ones(n, dtype=bool) if not layer.get("na") else ~arrays[key + ".na"]
    if how == "points":
        out[keep] = shapely.points(arrays[key])
    else:
        out[keep] = shapely.from_wkb(_split(arrays[key], arrays[key + ".ends"]))
    return out


def _decode_layer(
    arrays: Mapping[str, np.ndarray], layer: Mapping[str, Any], mark: Mapping[str, Any]
) -> gpd.GeoDataFrame:
    n, t = int(layer["n"]), layer["key"]
    data: dict[str, Any] = {
        "run_key": pd.array([str(mark["run_key"])] * n, dtype="str"),
        "part": pd.array([str(mark["part"])] * n, dtype="str"),
        "seq": np.arange(n, dtype=np.int64),
    }
    for i, entry in enumerate(layer["columns"]):
        data[entry["name"]] = _decode_column(arrays, f"{t}.{i}", entry, n)
    geoms = _decode_geometry(arrays, f"{t}.geometry", layer, n)
    # Built at once (no GeoDataFrame constructor: its checks and CRS comparisons cost ~9 ms a
    # frame, and a province's merge reads a frame per part and table: 2,000 or more).
    return geoframe(data, geoms, _storage_crs())


def read_part_file(path: str | Path) -> tuple[dict[str, Any], dict[str, gpd.GeoDataFrame]]:
    """Read a part file: its mark and, per store table, the rows to append.

    Parameters
    ----------
    path
        A part file written by :func:`write_part_file`, or a ``geo_mz.part/1`` file (``.npz``)
        of an earlier run.

    Returns
    -------
    tuple
        The mark (``geo_mz_run_parts`` row) and, per table, a frame of ``run_key``, ``part``,
        ``seq``, the layer's columns and ``geometry`` (EPSG:4490), typed as pyogrio reads
        them from a GeoPackage.
    """
    path = Path(path)
    header, arrays = _read(path, whole=True)
    mark = dict(header["mark"])
    try:
        tables = {layer["table"]: _decode_layer(arrays, layer, mark) for layer in header["layers"]}
    except (KeyError, ValueError, TypeError, IndexError, shapely.errors.GEOSException) as exc:
        raise _damaged(path, f"{type(exc).__name__}: {exc}") from exc
    return mark, tables


__all__ = [
    "FORMAT",
    "DamagedPartFileError",
    "PartFileError",
    "encode_part",
    "read_part_file",
    "read_part_mark",
    "write_part_file",
]

"""What every run store shares: the protocol, the tables' names, column types, rows to keep.

The stores themselves are in :mod:`geo_mz.scale.store_gpkg` and
:mod:`geo_mz.scale.store_postgis`; :mod:`geo_mz.scale.store` opens one from its reference.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_mz.core.errors import GeoMzError
from geo_mz.core.projection import STORAGE_CRS, geometries_to_crs

RUNS = "geo_mz_runs"
PARTS = "geo_mz_run_parts"
SRID = 4490
PART_COLUMNS = ["part", "status", "error", "rows", "seconds", "worker", "finished_at"]


class RunStoreError(GeoMzError, RuntimeError):
    """A run store that cannot be opened, or results that cannot be kept."""


class RunStore(Protocol):
    """What the runner needs of a store (see :mod:`geo_mz.scale.store`).

    A store may also have ``save_behind(run_key, part, frames, info)``: it does a save's
    CPU work in the calling thread and returns a function that sends the save from another
    thread (True when committed, False: call ``save``), or None (call ``save``).
    ``geo_mz.scale.tasks.run_parts`` then computes a task's next part while the database
    takes this one (:class:`~geo_mz.scale.store_postgis.PostgisRunStore`); a store without
    it saves each part in turn.
    """

    ref: str
    writes_on_workers: bool

    def begin(self, run_key: str, meta: Mapping[str, Any]) -> None:
        """Record a run."""

    def done(self, run_key: str) -> set[str]:
        """Return the parts already done."""
        raise NotImplementedError

    def save(
        self,
        run_key: str,
        part: str,
        frames: Mapping[str, pd.DataFrame],
        info: Mapping[str, Any],
    ) -> None:
        """Replace a part's rows and mark it done."""

    def fail(self, run_key: str, part: str, error: str, info: Mapping[str, Any]) -> None:
        """Record a failed part."""

    def status(self, run_key: str | None = None) -> pd.DataFrame:
        """Return one row per part."""
        raise NotImplementedError

    def gather(self, run_key: str, layer: str) -> gpd.GeoDataFrame:
        """Return every done part's rows of a layer."""
        raise NotImplementedError

    def part_rows(self, run_key: str, part: str, layer: str) -> gpd.GeoDataFrame | None:
        """Return one done part's rows of a layer (as ``gather`` gives them); None if not done."""
        raise NotImplementedError

    def runs(self) -> pd.DataFrame:
        """Return the runs recorded."""
        raise NotImplementedError


def now_iso() -> str:
    """Return the current UTC time to the second, ISO 8601 (a part's ``finished_at``)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def part_row(
    run_key: str, part: str, status: str, error: str | None, rows: str, info: Mapping[str, Any]
) -> tuple:
    """Return the values of one ``geo_mz_run_parts`` row, in column order.

    Parameters
    ----------
    run_key, part
        The run and the part.
    status
        ``done`` or ``failed``.
    error
        The failure's message, if any.
    rows
        JSON: per layer the row count and column types (see :func:`rows_info`).
    info
        The part's log: ``seconds`` and ``worker`` are kept in their own columns.

    Returns
    -------
    tuple
        ``run_key, part, status, error, rows, seconds, worker, finished_at``.
    """
    seconds = float(info.get("seconds", np.nan))
    return (run_key, part, status, error, rows, seconds, str(info.get("worker", "")), now_iso())


def _dtype_name(dtype: Any) -> str:
    try:
        return _KINDS[dtype]
    except (KeyError, TypeError):
        pass
    if pd.api.types.is_bool_dtype(dtype):
        kind = "boolean"
    elif pd.api.types.is_integer_dtype(dtype):
        kind = "integer"
    elif pd.api.types.is_float_dtype(dtype):
        kind = "float"
    else:
        kind = "string"
    with contextlib.suppress(TypeError):  # an unhashable dtype is asked again next time
        _KINDS[dtype] = kind
    return kind


_KINDS: dict[Any, str] = {}
"""Kind of each dtype seen (every part asks about the same few dtypes)."""


def frame_schema(df: pd.DataFrame) -> dict[str, str]:
    """Column name to ``float``/``integer``/``boolean``/``string`` (geometry left out)."""
    # The column's name, not a GeoSeries built to ask it.
    geom = df.active_geometry_name if isinstance(df, gpd.GeoDataFrame) else None
    return {str(c): _dtype_name(t) for c, t in df.dtypes.items() if c != geom}


def typed_columns(df: pd.DataFrame, schema: Mapping[str, str]) -> pd.DataFrame:
    """Give columns read back from storage the types they were saved with (in place).

    Parameters
    ----------
    df
        Rows read from a store.
    schema
        Column name to kind, as :func:`frame_schema` names them.

    Returns
    -------
    pandas.DataFrame
        ``df`` itself: ``float64``; ``int64`` (``Int64`` with missing values); ``bool``
        (``boolean`` with missing values); text as ``object`` with ``None``.
    """
    for col, kind in schema.items():
        if col not in df.columns:
            continue
        s = df[col]
        if kind == "float":
            if s.dtype != np.float64:
                df[col] = pd.to_numeric(s).astype("float64")
        elif kind == "integer":
            df[col] = pd.array(pd.to_numeric(s), dtype="Int64")
            if not df[col].isna().any():
                df[col] = df[col].astype("int64")
        elif kind == "boolean":
            df[col] = _booleans(s)
        else:
            df[col] = pd.Series(_texts(s), index=df.index, dtype=object)
    return df


# Both run on every column of every gathered layer and part read: whole arrays when the values
# allow it, else value by value (the rule the fast paths keep).


def _booleans(s: pd.Series) -> Any:
    """``bool(v)``, ``None`` where missing: ``bool`` without missing values, else ``boolean``."""
    if s.dtype == bool:
        return s.to_numpy()
    if pd.api.types.is_numeric_dtype(s.dtype):
        missing = s.isna().to_numpy()
        values = s.to_numpy(dtype=float, na_value=0.0) != 0.0
        return values if not missing.any() else pd.arrays.BooleanArray(values, missing)
    arr = pd.array([None if pd.isna(v) else bool(v) for v in s.tolist()], dtype="boolean")
    return arr.astype(bool) if not arr.isna().any() else arr


def _texts(s: pd.Series) -> np.ndarray:
    """``str(v)``, ``None`` for ``None`` and float NaN: an object array."""
    values = s.to_numpy(dtype=object, copy=True)
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        missing = pd.isna(values)
        # str itself (not a subclass such as numpy.str_, which str(v) would turn into str);
        # missing: None or NaN (pd.NA is written as text, as value by value).
        if all(type(v) is str for v in values[~missing]) and all(
            v is None or isinstance(v, float) for v in values[missing]
        ):
            values[missing] = None
            return values
    return np.array(
        [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
         for v in values.tolist()],
        dtype=object,
    )  # fmt: skip


def gather_layers(rs: RunStore, run_key: str, layers: Sequence[str]) -> dict[str, gpd.GeoDataFrame]:
    """Several layers of a run, as the store's ``gather`` gives each.

    A store that gathers several layers at once (``gather_layers``: the GeoPackage store
    merges its new part files once and keeps the rows it just merged) is asked once; any other
    store is asked layer by layer.

    Parameters
    ----------
    rs
        An open run store.
    run_key
        The run.
    layers
        Layer names (``units``, ``times`` …).

    Returns
    -------
    dict
        Layer name to its rows, in the order asked.
    """
    many = getattr(rs, "gather_layers", None)
    if many is not None:
        return dict(many(run_key, list(layers)))
    return {n: rs.gather(run_key, n) for n in layers}


def storable_rows(frame: pd.DataFrame, run_key: str, part: str) -> gpd.GeoDataFrame:
    """Turn a results frame into rows to keep: run_key, part, seq, columns, EPSG:4490 geometry.

    Parameters
    ----------
    frame
        A part's results of one layer (a GeoDataFrame in any CRS, or a plain frame).
    run_key, part
        The run and the part, put in front of the frame's columns with ``seq`` (row order).

    Returns
    -------
    geopandas.GeoDataFrame
        The rows, geometry in EPSG:4490 (all missing for a plain frame), index 0…n-1.
    """
    n = len(frame)
    if isinstance(frame, gpd.GeoDataFrame) and frame.geometry.name in frame.columns:
        name = frame.geometry.name
        geoms = np.asarray(frame.geometry.values, dtype=object)
        if frame.crs is not None:
            # Same coordinates bit for bit as ``to_crs``, with a cached transformer and no copy
            # of the frame.
            geoms = geometries_to_crs(geoms, frame.crs, STORAGE_CRS)
        columns = [c for c in frame.columns if c != name]
    else:
        geoms = np.full(n, None, dtype=object)
        columns = list(frame.columns)
    index = pd.RangeIndex(n)
    data: dict[Any, Any] = {
        "run_key": pd.Series([run_key] * n, index=index, dtype="str"),
        "part": pd.Series([part] * n, index=index, dtype="str"),
        "seq": pd.Series(np.arange(n, dtype=np.int64), index=index),
    }
    for c in columns:
        s = frame[c]
        # Each column keeps its dtype (an object column of text stays object), not copied.
        data[c] = pd.Series(s.array, index=index, dtype=s.dtype, copy=False)
    attrs = pd.DataFrame(data, copy=False)
    return gpd.GeoDataFrame(attrs, geometry=gpd.GeoSeries(geoms, crs=STORAGE_CRS).values)


def layer_schemas(status: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Per layer, the column types recorded with the parts that are done.

    A part with no rows of a layer records the types of an empty frame (an all-missing text
    column reads as ``float``): the types of parts that have rows win over those.

    Parameters
    ----------
    status
        A store's ``status()`` table.

    Returns
    -------
    dict
        Layer name to (column name to kind).
    """
    out: dict[str, dict[str, str]] = {}
    empty: dict[str, dict[str, str]] = {}
    for rows in status.loc[status["status"] == "done", "rows"]:
        for layer, entry in json.loads(rows or "{}").get("layers", {}).items():
            # Pairs, not an object: jsonb does not keep the order of an object's keys.
            into = out if entry.get("n", 1) else empty
            into.setdefault(layer, {}).update(dict(entry.get("columns", [])))
    for layer, cols in empty.items():
        out[layer] = {**cols, **out.get(layer, {})}
    return out


def rows_info(frames: Mapping[str, pd.DataFrame], info: Mapping[str, Any]) -> str:
    """Return the ``rows`` JSON of a part: per layer its row count and column types, its log."""
    layers = {
        name: {"n": len(f), "columns": list(frame_schema(f).items())} for name, f in frames.items()
    }
    return json.dumps({"layers": layers, "info": dict(info)}, ensure_ascii=False, default=str)


def part_schema(rows: str | None, layer: str) -> dict[str, str] | None:
    """Return a part's column types of ``layer`` from its ``rows`` JSON; None if it has none."""
    entry = json.loads(rows or "{}").get("layers", {}).get(layer)
    return None if entry is None else dict(entry.get("columns", []))


def finish_gather(df: pd.DataFrame, geoms: Any, schema: Mapping[str, str]) -> gpd.GeoDataFrame:
    """Type the gathered columns by ``schema`` and add the geometry (dropped if all missing).

    Parameters
    ----------
    df
        ``part`` and the layer's columns, in row order.
    geoms
        The rows' geometries (EPSG:4490).
    schema
        Column name to kind.

    Returns
    -------
    geopandas.GeoDataFrame
        What a store's ``gather`` returns.
    """
    df = typed_columns(df, {"part": "string", **schema})
    gdf = gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs=STORAGE_CRS).values)
    if gdf.geometry.isna().all():
        gdf = gpd.GeoDataFrame(gdf.drop(columns="geometry"))
    return gdf


__all__ = [
    "PARTS",
    "PART_COLUMNS",
    "RUNS",
    "SRID",
    "RunStore",
    "RunStoreError",
    "finish_gather",
    "frame_schema",
    "gather_layers",
    "layer_schemas",
    "now_iso",
    "part_row",
    "part_schema",
    "rows_info",
    "storable_rows",
    "typed_columns",
]

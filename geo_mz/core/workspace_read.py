"""Reading a GeoPackage workspace: layers typed as their spec says, part reads, killed edits.

:func:`read_layer` is the body of :meth:`geo_mz.core.Workspace.read`: a box read through the
file's R-tree (``geo_mz.core.gpkg_read``) or GDAL, rows in stored order, typed by
:func:`conform_types` (which the PostGIS workspace shares) and cut to a prefix (a part's own rows,
:func:`starts_with`). A web edit killed mid-write leaves a hot journal that GDAL's read-only opens
refuse: :func:`roll_back_killed_edit` rolls it back before a read, and :func:`no_edit_in_place`
keeps in-place edits out while a write copies the file.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pandas.api.extensions import ExtensionDtype

from geo_mz.core.catalog import LayerSpec, get_spec
from geo_mz.core.errors import WorkspaceError
from geo_mz.core.gpkg_lock import OFD_LOCKS, workspace_lock
from geo_mz.core.gpkg_read import GpkgRows, geoframe, read_gpkg_rows, to_geoframe
from geo_mz.core.workspace_common import no_layer_error


def read_layer(
    path: Path,
    kind: str,
    names: list[str],
    *,
    bbox: tuple[float, float, float, float] | None = None,
    prefix: tuple[str, str] | None = None,
    ancestors: bool = False,
    columns: list[str] | None = None,
    mask: shapely.Geometry | None = None,
) -> gpd.GeoDataFrame:
    """Read one layer of a GeoPackage workspace, typed as its spec says.

    Parameters
    ----------
    path
        The workspace file (a killed edit already rolled back).
    kind
        Catalog layer name.
    names
        The layers the workspace holds (an error names them when ``kind`` is not one).
    bbox, prefix, columns, mask
        As for :meth:`geo_mz.core.Workspace.read`.
    ancestors
        With ``prefix``: keep too the rows whose field is a proper prefix of the code (a
        part's ancestors: :func:`related_to`).

    Returns
    -------
    geopandas.GeoDataFrame
        In stored row order, with a new index.

    Raises
    ------
    WorkspaceError
        If the workspace has no layer ``kind``, or no field ``prefix[0]``.
    """
    if kind not in names:
        raise no_layer_error(path, kind, names)
    spec = _spec(kind)
    gdf, own = None, False
    if mask is not None:
        bbox = tuple(float(v) for v in shapely.bounds(mask))
    if bbox is not None:
        # A part's reads are by box: through the file's R-tree on a kept connection, not a
        # GDAL open per read (the same frame; see geo_mz.core.gpkg_read). None, or an
        # SQLite error (a file locked by a writer, ...), reads through GDAL as before.
        try:
            got = read_gpkg_rows(
                path, kind, bbox, prefix=prefix, ancestors=ancestors, columns=columns, mask=mask
            )
        except sqlite3.Error:
            got = None
        if isinstance(got, GpkgRows):
            # Typed as the columns are built: one frame, not a raw one and a typed copy.
            own = True
            out = geoframe(typed_columns(got.columns, spec), got.geometry, got.crs)
        else:
            gdf, own = got, got is not None  # the prefix was applied as the rows were read
    if not own or gdf is not None:
        if gdf is None:
            if columns is not None and prefix is not None and prefix[0] not in columns:
                columns = [*columns, prefix[0]]
            where_box = {"bbox": bbox} if mask is None else {"mask": mask}
            gdf = pyogrio.read_dataframe(
                path, layer=kind, fid_as_index=True, columns=columns, **where_box
            )
            # A spatial filter returns rows in R-tree order; keep the stored order, which
            # results (sums, ties) may depend on.
            gdf = gdf.sort_index(kind="stable").reset_index(drop=True)
        out = conform_types(gdf, spec)
    if prefix is not None and not own:
        mask = related_to(out, *prefix) if ancestors else starts_with(out, *prefix)
        out = out[mask].reset_index(drop=True)
    return out


_SPECS: dict[str, LayerSpec] = {}


def _spec(kind: str) -> LayerSpec:
    """Return ``get_spec(kind)`` of the shipped catalog, kept per process.

    The catalog is loaded once per process anyway; looking a spec up again (a path resolved,
    the catalog copied) costs about 0.4 ms a read.
    """
    spec = _SPECS.get(kind)
    if spec is None:
        spec = _SPECS[kind] = get_spec(kind)
    return spec


def typed_columns(columns: dict[str, np.ndarray], spec: LayerSpec) -> dict[str, Any]:
    """Type raw columns (as :func:`geo_mz.core.gpkg_read.read_gpkg_rows` gives them) by spec.

    Each field of the spec is converted as :func:`conform_types` converts it in a frame built
    from the raw columns; other columns are left as they are.
    """
    types = {f.name: f.type for f in spec.fields}
    return {
        n: v if n not in types else _plain(typed_values(v, types[n])) for n, v in columns.items()
    }


def _plain(values: Any) -> Any:
    """Return a series' values as an array (a frame built of it takes them as they are)."""
    if isinstance(values, pd.Series):
        return values.array if isinstance(values.dtype, ExtensionDtype) else values.to_numpy()
    return values


def conform_types(gdf: gpd.GeoDataFrame, spec: LayerSpec) -> gpd.GeoDataFrame:
    """Give a layer read from storage the dtypes its spec promises.

    GeoPackage keeps integers and booleans with nulls as floats and dates as text; this turns
    them back into ``Int64``, ``boolean`` and ``datetime.date``.
    """
    # Columns are replaced, never changed in place. On a plain frame: a GeoDataFrame's
    # column assignment checks its CRS each time (about 0.2 ms a column).
    geo = isinstance(gdf, gpd.GeoDataFrame) and gdf._geometry_column_name in gdf.columns
    out = pd.DataFrame(gdf, copy=False) if geo else gdf.copy(deep=False)
    if geo:
        out = out.copy(deep=False)
    for f in spec.fields:
        if f.name not in out.columns:
            continue
        col = out[f.name]
        typed = typed_values(col, f.type)
        if typed is not col:  # (float and text columns as read are kept)
            out[f.name] = typed
    if not geo:
        return out
    framed = to_geoframe(out, gdf._geometry_column_name)
    framed.attrs = dict(gdf.attrs)
    return framed


def typed_values(values: pd.Series | np.ndarray, ftype: str) -> Any:
    """Return one column typed as a spec's field type says (:func:`conform_types`' rule).

    Parameters
    ----------
    values
        The column as read: a series, or a raw array as a frame's column would hold it (text
        as objects, integers and booleans with nulls as floats).
    ftype
        The field type: ``integer``, ``float``, ``boolean``, ``date``, ``datetime`` or text.

    Returns
    -------
    object
        A series or an array of the values, of length ``len(values)``.
    """
    if isinstance(values, np.ndarray):
        fast = _typed_array(values, ftype)
        if fast is not None:
            return fast
        values = pd.Series(values)  # as a frame built of it holds it
    s = values
    if ftype == "integer":
        return pd.array(pd.to_numeric(s), dtype="Int64")
    if ftype == "float":
        if s.dtype != np.float64:  # as read (the common case): nothing to convert
            return pd.to_numeric(s).astype("float64")
        return s
    if ftype == "boolean":
        return _booleans(s)
    if ftype == "date":
        return pd.Series(
            [None if not isinstance(v, str) else dt.date.fromisoformat(v[:10]) for v in s.tolist()],
            index=s.index,
            dtype=object,
        )
    if ftype == "datetime":
        return pd.to_datetime(s).astype("datetime64[ms]")
    return _strings(s)


def _typed_array(values: np.ndarray, ftype: str) -> Any:
    """:func:`typed_values` of a raw array, where it needs no series; else None."""
    numeric = values.dtype.kind in "biuf"
    if ftype == "float" and values.dtype == np.float64:
        return values
    if ftype == "integer" and numeric:
        return pd.array(values, dtype="Int64")
    if ftype == "boolean" and numeric:
        missing = np.isnan(values) if values.dtype.kind == "f" else np.zeros(len(values), bool)
        return pd.arrays.BooleanArray(np.where(missing, 0.0, values) != 0.0, missing)
    if ftype in ("string", "date") and values.dtype == object:
        if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
            return None
        if ftype == "date":
            return np.array(
                [
                    None if not isinstance(v, str) else dt.date.fromisoformat(v[:10])
                    for v in values.tolist()
                ],
                dtype=object,
            )
        return pd.array(values, dtype=_STR_DTYPE)
    return None


# The two conversions below run on every read of every layer (a partitioned run reads per
# part): done on whole arrays when the values allow it, else value by value as before.


def _booleans(s: pd.Series) -> pd.arrays.BooleanArray:
    """``None`` for missing values, else ``bool(v)``, as a nullable boolean array."""
    if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
        missing = s.isna().to_numpy()
        values = s.to_numpy(dtype=float, na_value=0.0) != 0.0
        return pd.arrays.BooleanArray(values, missing)
    return pd.array([None if pd.isna(v) else bool(v) for v in s.tolist()], dtype="boolean")


_STR_DTYPE = pd.Series([], dtype="str").dtype


def _strings(s: pd.Series) -> pd.Series:
    """``None`` for missing values, else ``str(v)``, as a ``str`` series."""
    if s.dtype == _STR_DTYPE:  # already so (pandas typed the text column as it was read)
        return s
    if pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty"):
        values = s.to_numpy(dtype=object, copy=True)
        values[pd.isna(values)] = None
        return pd.Series(values, index=s.index, dtype="str")
    return pd.Series(
        [None if pd.isna(v) else str(v) for v in s.tolist()], index=s.index, dtype="str"
    )


def related_to(gdf: pd.DataFrame, field: str, code: str) -> np.ndarray:
    """Return a mask of the rows whose ``field`` starts with ``code`` or is a prefix of it.

    A part's own units and their ancestors (``code.startswith(value)``); missing: no.

    Raises
    ------
    WorkspaceError
        If the frame has no such column.
    """
    own = starts_with(gdf, field, code)
    values = gdf[field]
    if not isinstance(values.dtype, pd.StringDtype):
        values = values.astype("string")
    up = values.isin(_lineage(code)).fillna(False).to_numpy(bool)
    return own | up


def _lineage(code: str) -> list[str]:
    """Return the proper prefixes of ``code`` (``""`` too)."""
    return [code[:k] for k in range(len(code))]


def starts_with(gdf: pd.DataFrame, field: str, code: str) -> np.ndarray:
    """Return a mask of the rows whose ``field`` (as text; missing: no) starts with ``code``.

    Raises
    ------
    WorkspaceError
        If the frame has no such column.
    """
    if field not in gdf.columns:
        raise WorkspaceError(
            f"没有字段 '{field}' / no field '{field}' (columns {list(gdf.columns)})"
        )
    values = gdf[field]
    if not isinstance(values.dtype, pd.StringDtype):
        values = values.astype("string")
    return values.str.startswith(code).fillna(False).to_numpy(bool)


@contextmanager
def no_edit_in_place(path: Path) -> Iterator[None]:
    """Hold SQLite's SHARED lock on the file, with no killed edit's journal left in it.

    The web map edits rows in place: held from the copy to the rename, no edit is half-copied,
    or committed between them and then lost. A journal found under the lock is a killed edit's
    (a live one would hold the lock) and is rolled back before the copy is taken.
    """
    if not OFD_LOCKS:
        yield
        return
    lock = workspace_lock(path)
    for _ in range(3):
        with lock.exclusive(write=False):
            journal = Path(f"{path}-journal")
            if not journal.exists() or journal.stat().st_size == 0:
                yield
                return
        roll_back_killed_edit(path)
    raise WorkspaceError(
        f"工作空间 {path} 的中断编辑日志无法回滚 / the workspace {path} keeps the journal of a "
        "killed edit that could not be rolled back"
    )


def roll_back_killed_edit(path: Path) -> None:
    """Roll back a web edit killed mid-write (its hot journal) before GDAL opens the file.

    GDAL's read-only opens refuse a file with a hot journal; a read-write SQLite open rolls it
    back (a live writer's journal is not hot: SQLite waits for it instead). One ``stat`` when
    there is none.
    """
    if not isinstance(path, Path) or not os.path.exists(f"{path}-journal"):
        return  # (a PostGIS workspace shares these methods: its ``path`` is its URL)
    try:
        with closing(sqlite3.connect(path, timeout=10)) as conn:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY:
            raise WorkspaceError(
                f"工作空间 {path} 正被另一进程写入，请稍后再试 / the workspace {path} is being "
                "written by another process; try again shortly"
            ) from exc
        raise WorkspaceError(
            f"工作空间 {path} 有一次被中断的编辑，无法回滚（{exc}）；请检查文件的写权限 / "
            f"the workspace {path} holds an edit killed mid-write that could not be rolled back "
            f"({exc}); check that the file is writable"
        ) from exc


__all__ = [
    "conform_types",
    "no_edit_in_place",
    "read_layer",
    "related_to",
    "roll_back_killed_edit",
    "starts_with",
    "typed_columns",
    "typed_values",
]

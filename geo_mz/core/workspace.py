"""The workspace: one GeoPackage holding all layers of one jurisdiction plus their metadata.

Layers are stored in EPSG:4490 (CGCS2000), one table per catalog layer. Two attribute tables hold
the metadata: ``geo_mz_workspace`` (name, adcode, storage and measuring CRS, expected area, ...)
and ``geo_mz_layers`` (per layer: rows, source, method, ``synthetic``, source CRS, sha256, time).

Every write is atomic: it goes to a copy beside the file, is checked, and replaces the file in one
``os.replace``. A failed write or import leaves the original byte-identical; a killed one leaves
the original too, and its copy is removed when the workspace is next opened (the copy's owner
lock, ``geo_mz.core.temp_copies``). The web map's one-row edits are the exception: one SQLite
transaction in place (``webmap.core.gpkg_rows``); a killed one is rolled back by the next open.
The public methods are the interface a PostGIS backend will implement too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio

import geo_mz
from geo_mz.core.catalog import LayerSpec, get_spec, load_catalog
from geo_mz.core.clip import District, district_from_layers
from geo_mz.core.errors import LayerReadError, LayerValidationError, Problem, WorkspaceError
from geo_mz.core.gpkg_lock import OFD_LOCKS, workspace_lock
from geo_mz.core.gpkg_read import read_gpkg_bbox
from geo_mz.core.projection import STORAGE_CRS, gk_zone_crs
from geo_mz.core.temp_copies import Removed, clean_stale_temps, owned_temp
from geo_mz.core.validate import LayerResult, check_layer, prepare_layer

META_TABLE = "geo_mz_workspace"
LAYERS_TABLE = "geo_mz_layers"
GPKG_GEOMETRY = {"Point": "Point", "LineString": "LineString", "Polygon": "MultiPolygon"}
LAYER_COLUMNS = [
    "layer",
    "spec_version",
    "rows",
    "synthetic",
    "source",
    "method",
    "source_crs",
    "sha256",
    "imported_at",
]


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _to_storage_frame(gdf: gpd.GeoDataFrame, spec: LayerSpec) -> gpd.GeoDataFrame:
    """Prepare a checked layer for GeoPackage: dates as ISO text (GPKG has no portable DATE)."""
    out = gdf.copy()
    for f in spec.fields:
        if f.type == "date" and f.name in out.columns:
            out[f.name] = pd.Series(
                [
                    None if v is None or (isinstance(v, float) and np.isnan(v)) else v.isoformat()
                    for v in out[f.name].tolist()
                ],
                index=out.index,
                dtype=object,
            )
    return out


def conform_types(gdf: gpd.GeoDataFrame, spec: LayerSpec) -> gpd.GeoDataFrame:
    """Give a layer read from storage the dtypes its spec promises.

    GeoPackage keeps integers and booleans with nulls as floats and dates as text; this turns
    them back into ``Int64``, ``boolean`` and ``datetime.date``.
    """
    out = gdf.copy()
    for f in spec.fields:
        if f.name not in out.columns:
            continue
        s = out[f.name]
        if f.type == "integer":
            out[f.name] = pd.array(pd.to_numeric(s), dtype="Int64")
        elif f.type == "float":
            out[f.name] = pd.to_numeric(s).astype("float64")
        elif f.type == "boolean":
            out[f.name] = _booleans(s)
        elif f.type == "date":
            out[f.name] = pd.Series(
                [
                    None if not isinstance(v, str) else dt.date.fromisoformat(v[:10])
                    for v in s.tolist()
                ],
                index=out.index,
                dtype=object,
            )
        elif f.type == "datetime":
            out[f.name] = pd.to_datetime(s).astype("datetime64[ms]")
        else:
            out[f.name] = _strings(s)
    return out


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


_LAYERS_SEEN: dict[str, tuple[tuple[int, int, int], list[str]]] = {}


class Workspace:
    """A jurisdiction's layers in one GeoPackage file.

    Open an existing workspace with ``Workspace(path)``; make a new one with
    :meth:`Workspace.create`.

    Parameters
    ----------
    path
        The ``.gpkg`` file.

    Attributes
    ----------
    removed_temps
        Temporary copies of writes killed mid-way (owner gone) that opening removed; also
        logged as warnings.

    Raises
    ------
    WorkspaceError
        If the file does not exist or is not a geo_mz workspace.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        _roll_back_killed_edit(self.path)
        _check_workspace_file(self.path)
        # Copies left by writers that were killed mid-write (their owner lock is free); a live
        # writer's copy stays. Logged, and kept here for callers that report it.
        self.removed_temps: list[Removed] = clean_stale_temps(self.path)

    # -- creation ---------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        name: str,
        adcode: str,
        bounds: tuple[float, float, float, float],
        measure_crs: str | None = None,
        storage_crs: str = STORAGE_CRS,
        overwrite: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> Workspace:
        """Create an empty workspace.

        Parameters
        ----------
        path
            New ``.gpkg`` file.
        name
            Jurisdiction name, e.g. ``"江门市蓬江区"``.
        adcode
            Its GB/T 2260 code, e.g. ``"440703"``.
        bounds
            Expected lon/lat area ``(minx, miny, maxx, maxy)``: imported features outside it are
            errors (catches swapped axes, wrong CRS and projected coordinates).
        measure_crs
            Projected CRS for lengths and areas; the CGCS2000 3-degree Gauss-Kruger zone of the
            area's centre when None.
        storage_crs
            ``EPSG:4490`` (default, CGCS2000) or ``EPSG:4326``.
        overwrite
            Replace an existing file.
        extra
            More metadata to record (e.g. the sample's seed).
        """
        path = Path(path)
        if storage_crs not in ("EPSG:4490", "EPSG:4326"):
            raise WorkspaceError(f"storage CRS must be EPSG:4490 or EPSG:4326, not {storage_crs}")
        if path.exists() and not overwrite:
            raise WorkspaceError(f"{path}: already exists (use overwrite=True / --overwrite)")
        meta = new_metadata(
            name=name,
            adcode=adcode,
            bounds=bounds,
            measure_crs=measure_crs,
            storage_crs=storage_crs,
            extra=extra,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        with owned_temp(path) as tmp:
            _write_meta(tmp, meta)
            pyogrio.write_dataframe(
                pd.DataFrame({c: pd.Series([], dtype=object) for c in LAYER_COLUMNS}),
                tmp,
                layer=LAYERS_TABLE,
            )
            os.replace(tmp, path)
        return cls(path)

    # -- reading -----------------------------------------------------------------------------
    @property
    def metadata(self) -> dict[str, Any]:
        """Workspace metadata (name, adcode, CRSs, bounds, ...)."""
        df = pyogrio.read_dataframe(self.path, layer=META_TABLE)
        meta: dict[str, Any] = dict(
            zip(df["key"].astype(str), df["value"].astype(str), strict=True)
        )
        meta["bounds"] = tuple(json.loads(meta["bounds"]))
        return meta

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Expected lon/lat area of the workspace's features."""
        return self.metadata["bounds"]

    def layer_records(self) -> pd.DataFrame:
        """Return the ``geo_mz_layers`` table: one row per stored layer with its provenance."""
        df = pyogrio.read_dataframe(self.path, layer=LAYERS_TABLE)
        if len(df):
            df["rows"] = df["rows"].astype(int)
            df["synthetic"] = df["synthetic"].astype(str).str.lower().isin(["1", "true"])
        return df

    def layers(self) -> list[str]:
        """Names of the catalog layers stored in this workspace."""
        # Every write replaces the file (os.replace) or, a web edit in place, moves its mtime, so
        # its identity, time and size tell whether the list read last is still true; a
        # partitioned run reads layers many times per part.
        # Kept per file, not per object: a worker opens the workspace again for every part.
        st = self.path.stat()
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        key = str(self.path.resolve())
        cached = _LAYERS_SEEN.get(key)
        if cached is None or cached[0] != stamp:
            cached = (stamp, [str(x) for x in self.layer_records()["layer"].tolist()])
            _LAYERS_SEEN[key] = cached
        return list(cached[1])

    @contextmanager
    def snapshot(self) -> Iterator[Workspace]:
        """Read several layers together (as the PostGIS workspace's ``snapshot``).

        A GeoPackage read is one SQLite read transaction (a layer write renames a new file into
        place; a web edit is one transaction in place), so each read is already of one version;
        this block only gives both backends one interface.
        """
        yield self

    def read(
        self,
        kind: str,
        *,
        bbox: tuple[float, float, float, float] | None = None,
        prefix: tuple[str, str] | None = None,
    ) -> gpd.GeoDataFrame:
        """Read one layer, typed as its spec says.

        Parameters
        ----------
        kind
            Catalog layer name.
        bbox
            Optional lon/lat filter ``(minx, miny, maxx, maxy)``.
        prefix
            Optional ``(field, code)``: only the rows whose ``field`` (as text) starts with
            ``code``, e.g. a part's own people (``("adcode", "440106")``), with a new index.
            With a box, the file leaves the others out before they are decoded.
        """
        _roll_back_killed_edit(self.path)  # one stat; read-only opens refuse a hot journal
        if kind not in self.layers():
            raise _no_layer(self.path, kind, self.layers())
        gdf, own = None, False
        if bbox is not None:
            # A part's reads are by box: through the file's R-tree on a kept connection, not a
            # GDAL open per read (the same frame; see geo_mz.core.gpkg_read). None, or an
            # SQLite error (a file locked by a writer, ...), reads through GDAL as before.
            try:
                gdf = read_gpkg_bbox(self.path, kind, bbox, prefix=prefix)
            except sqlite3.Error:
                gdf = None
            own = gdf is not None  # the prefix was applied as the rows were read
        if gdf is None:
            gdf = pyogrio.read_dataframe(self.path, layer=kind, bbox=bbox, fid_as_index=True)
            # A spatial filter returns rows in R-tree order; keep the stored order, which
            # results (sums, ties) may depend on.
            gdf = gdf.sort_index(kind="stable").reset_index(drop=True)
        out = conform_types(gdf, get_spec(kind))
        if prefix is not None and not own:
            out = out[starts_with(out, *prefix)].reset_index(drop=True)
        return out

    def read_all(self) -> dict[str, gpd.GeoDataFrame]:
        """All stored layers by name."""
        return {k: self.read(k) for k in self.layers()}

    def count(self, kind: str) -> int:
        """Rows of a layer as stored now (counted, not taken from its layer record).

        A layer edited by another tool (QGIS, pyogrio, SQL) has a stale record; this count
        is not.
        """
        if kind not in self.layers():
            raise _no_layer(self.path, kind, self.layers())
        return int(pyogrio.read_info(self.path, layer=kind, force_feature_count=True)["features"])

    def extent(self, kind: str) -> tuple[float, float, float, float]:
        """Lon/lat ``(minx, miny, maxx, maxy)`` of a layer's features (NaNs when it has none)."""
        if kind not in self.layers():
            raise _no_layer(self.path, kind, self.layers())
        _, b = pyogrio.read_bounds(self.path, layer=kind)
        if b.shape[1] == 0 or np.isnan(b).all():
            return (np.nan, np.nan, np.nan, np.nan)
        return (
            float(np.nanmin(b[0])),
            float(np.nanmin(b[1])),
            float(np.nanmax(b[2])),
            float(np.nanmax(b[3])),
        )

    def info(self) -> dict[str, Any]:
        """Summarise for people and reports: metadata plus one record per layer."""
        meta = self.metadata
        catalog = load_catalog()
        layers = []
        for rec in self.layer_records().to_dict("records"):
            spec = catalog.get(rec["layer"])
            layers.append(
                {
                    "layer": rec["layer"],
                    "title_zh": spec.title_zh if spec else rec["layer"],
                    "title_en": spec.title_en if spec else rec["layer"],
                    "geometry": spec.geometry if spec else "",
                    "rows": int(rec["rows"]),
                    "synthetic": bool(rec["synthetic"]),
                    "source": rec["source"],
                    "method": rec["method"],
                    "source_crs": rec["source_crs"],
                    "imported_at": rec["imported_at"],
                    "sha256": rec["sha256"],
                }
            )
        return {
            "path": str(self.path),
            "name": meta["name"],
            "adcode": meta["adcode"],
            "storage_crs": meta["storage_crs"],
            "measure_crs": meta["measure_crs"],
            "bounds": list(meta["bounds"]),
            "created_at": meta["created_at"],
            "geo_mz_version": meta["geo_mz_version"],
            "layers": layers,
        }

    # -- writing -----------------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[Path]:
        """Yield a private copy to write to; replace the workspace with it only on success.

        The copy is owned (``owned_temp``): removed here on failure, and by the next open when
        this process is killed before the end.
        """
        with _no_edit_in_place(self.path), owned_temp(self.path) as tmp:
            shutil.copy2(self.path, tmp)  # keeps the file mode
            yield tmp
            _check_workspace_file(tmp)  # the copy must open as a workspace to replace the file
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)

    def check(
        self, layers: Mapping[str, gpd.GeoDataFrame], *, file_prefix: str = "", repair: bool = False
    ) -> dict[str, LayerResult]:
        """Check in-memory layers against their specs and this workspace's area (no write)."""
        results = {}
        for kind, gdf in layers.items():
            spec = get_spec(kind)
            g = gdf if gdf.crs is None else gdf.to_crs(self.metadata["storage_crs"])
            out, problems = check_layer(
                g, spec, file=f"{file_prefix}{kind}", repair=repair, area=self.bounds
            )
            results[kind] = LayerResult(
                kind,
                f"{file_prefix}{kind}",
                out,
                problems,
                None if gdf.crs is None else gdf.crs.to_string(),
            )
        return results

    def write_layers(
        self,
        layers: Mapping[str, gpd.GeoDataFrame],
        provenance: Mapping[str, Mapping[str, Any]],
        *,
        repair: bool = False,
    ) -> dict[str, LayerResult]:
        """Check layers and write them all in one atomic step (each replaces its stored layer).

        Parameters
        ----------
        layers
            Catalog layer name to features (any CRS; stored in the workspace's storage CRS).
        provenance
            Per layer: ``synthetic`` (bool), ``source`` and ``method`` (text), optional
            ``source_crs`` and ``sha256``.
        repair
            Repair invalid geometries (reported).

        Returns
        -------
        dict
            The check result per layer (with warnings and notices).

        Raises
        ------
        LayerValidationError
            If any layer has an error; nothing is written then.
        """
        missing = [k for k in layers if k not in provenance]
        if missing:
            raise WorkspaceError(f"no provenance given for layers {missing}")
        _roll_back_killed_edit(self.path)  # GDAL's read-only opens below refuse a hot journal
        results = self.check(layers, repair=repair)
        errors = [p for r in results.values() for p in r.errors]
        if errors:
            raise LayerValidationError([p for r in results.values() for p in r.problems])
        self._commit({k: (r.gdf, provenance[k]) for k, r in results.items()})
        return results

    def import_file(
        self,
        path: str | Path,
        kind: str,
        *,
        source_crs: str | None = None,
        layer_name: str | None = None,
        encoding: str | None = None,
        lon_field: str | None = None,
        lat_field: str | None = None,
        repair: bool = False,
        synthetic: bool = False,
        method: str = "imported",
        clip: bool = False,
        defaults: Mapping[str, Any] | None = None,
    ) -> LayerResult:
        """Import one file as layer ``kind`` (replacing what is stored), or change nothing.

        Points are compared with the workspace's ``roads`` layer for a GCJ-02/BD-09 mix-up
        (:mod:`geo_mz.core.datum`; a warning, never a refusal).

        Parameters
        ----------
        path
            Source file (GeoPackage, GeoJSON, Shapefile, CSV/XLSX list with lon/lat).
        kind
            Catalog layer name.
        source_crs
            See :func:`geo_mz.core.prepare_layer`; ``gcj02``/``bd09`` are converted.
        layer_name, encoding
            Which layer of a multi-layer file (the sheet of an XLSX); text encoding when not
            UTF-8.
        lon_field, lat_field
            A list's coordinate columns when their names are not recognised.
        repair
            Repair invalid geometries (reported).
        synthetic
            Mark the layer as generated data.
        method
            How the data was produced, for the provenance record.
        clip
            Keep only the rows inside the workspace's district (``district_of`` in this module)
            and list the others in ``LayerResult.clipped`` and as notices, instead of failing.
        defaults
            Values for fields the file lacks or leaves empty, e.g.
            ``{"capacity_persons": 1000, "shelter_id": "auto"}`` (:mod:`geo_mz.core.defaults`).

        Returns
        -------
        LayerResult
            With warnings and notices (and the rows left out by the clip).

        Raises
        ------
        LayerValidationError
            With every problem, if any is an error. The workspace is then unchanged.
        LayerReadError
            If the file cannot be read at all.
        """
        reference, reference_name = reference_layer(self, kind)
        result = prepare_layer(
            path,
            kind,
            source_crs=source_crs,
            layer_name=layer_name,
            encoding=encoding,
            lon_field=lon_field,
            lat_field=lat_field,
            repair=repair,
            area=self.bounds,
            defaults=defaults,
            clip_to=district_of(self) if clip else None,
            reference=reference,
            reference_name=reference_name,
        )
        result.raise_for_errors()
        how = [method]
        if result.clipped is not None:
            how.append(f"clipped to {result.district}: {len(result.clipped)} rows outside left out")
        if defaults:
            how.append("defaults " + ", ".join(f"{k}={v}" for k, v in defaults.items()))
        prov = {
            "synthetic": synthetic,
            "source": str(path),
            "method": "; ".join(how),
            "source_crs": result.source_crs or "",
            "sha256": file_sha256(path),
        }
        self._commit({kind: (result.gdf, prov)})
        return result

    def _commit(self, items: Mapping[str, tuple[gpd.GeoDataFrame, Mapping[str, Any]]]) -> None:
        records = self.layer_records()
        records = records[~records["layer"].isin(list(items))] if len(records) else records
        new_rows = []
        with self._transaction() as tmp:
            for kind, (gdf, prov) in items.items():
                spec = get_spec(kind)
                frame = _to_storage_frame(gdf.reset_index(drop=True), spec)
                try:
                    pyogrio.write_dataframe(
                        frame,
                        tmp,
                        layer=kind,
                        geometry_type=GPKG_GEOMETRY[spec.geometry],
                        promote_to_multi=spec.geometry == "Polygon",
                    )
                except Exception as exc:
                    raise WorkspaceError(
                        f"{self.path}: writing layer '{kind}' failed ({exc}); "
                        f"the workspace is unchanged"
                    ) from exc
                new_rows.append(
                    {
                        "layer": kind,
                        "spec_version": str(spec.version),
                        "rows": str(len(gdf)),
                        "synthetic": "1" if prov.get("synthetic") else "0",
                        "source": str(prov.get("source", "")),
                        "method": str(prov.get("method", "")),
                        "source_crs": str(prov.get("source_crs", "")),
                        "sha256": str(prov.get("sha256", "")),
                        "imported_at": now_iso(),
                    }
                )
            table = pd.concat([records.astype(str), pd.DataFrame(new_rows)], ignore_index=True)
            table = table.sort_values("layer").reset_index(drop=True)
            pyogrio.write_dataframe(table[LAYER_COLUMNS].astype(object), tmp, layer=LAYERS_TABLE)


def district_of(ws: Any) -> District:
    """Return the district a list is clipped to in a workspace (either backend).

    Its ``admin_units`` rows whose code is the workspace's adcode, else its county-level rows,
    else its expected bounds (see :func:`geo_mz.core.district_from_layers`).

    Parameters
    ----------
    ws
        A :class:`Workspace` or :class:`geo_mz.core.PostgisWorkspace`.

    Returns
    -------
    District
    """
    meta = ws.metadata
    units = ws.read("admin_units") if "admin_units" in ws.layers() else None
    return district_from_layers(
        units,
        adcode=str(meta["adcode"]),
        bounds=tuple(meta["bounds"]),
        measure_crs=str(meta["measure_crs"]),
    )


def reference_layer(ws: Any, kind: str) -> tuple[gpd.GeoDataFrame | None, tuple[str, str]]:
    """Return the layer points of ``kind`` are compared with in the datum check: the roads.

    Parameters
    ----------
    ws
        A workspace (either backend).
    kind
        The layer being imported (the roads are not compared with themselves).

    Returns
    -------
    tuple
        The roads (None when the workspace has none) and their Chinese and English names.
    """
    name = ("道路", "roads")
    if kind == "roads" or "roads" not in ws.layers():
        return None, name
    return ws.read("roads"), name


def new_metadata(
    *,
    name: str,
    adcode: str,
    bounds: tuple[float, float, float, float],
    measure_crs: str | None,
    storage_crs: str,
    extra: Mapping[str, Any] | None,
) -> dict[str, str]:
    """Metadata of a new workspace (either backend), checked."""
    if storage_crs not in ("EPSG:4490", "EPSG:4326"):
        raise WorkspaceError(f"storage CRS must be EPSG:4490 or EPSG:4326, not {storage_crs}")
    minx, miny, maxx, maxy = (float(b) for b in bounds)
    if not (minx < maxx and miny < maxy):
        raise WorkspaceError(f"bounds {bounds} are not (minx, miny, maxx, maxy)")
    meta = {
        "name": name,
        "adcode": adcode,
        "storage_crs": storage_crs,
        "measure_crs": measure_crs or gk_zone_crs((minx + maxx) / 2),
        "bounds": json.dumps([minx, miny, maxx, maxy]),
        "created_at": now_iso(),
        "geo_mz_version": geo_mz.__version__,
        "format": "geo_mz workspace 1",
    }
    for k, v in (extra or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
    return meta


def _no_layer(path: Path, kind: str, names: list[str]) -> WorkspaceError:
    return WorkspaceError(
        f"{path}：工作区没有图层 '{kind}'（现有图层：{'、'.join(names) or '无'}）/ "
        f"{path}: no layer '{kind}'; layers are {names}"
    )


_CHECKED: dict[str, tuple[int, int, int]] = {}


@contextmanager
def _no_edit_in_place(path: Path) -> Iterator[None]:
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
        _roll_back_killed_edit(path)
    raise WorkspaceError(
        f"工作空间 {path} 的中断编辑日志无法回滚 / the workspace {path} keeps the journal of a "
        "killed edit that could not be rolled back"
    )


def _roll_back_killed_edit(path: Path) -> None:
    """Roll back a web edit killed mid-write (its hot journal) before GDAL opens the file.

    GDAL's read-only opens refuse a file with a hot journal; a read-write SQLite open rolls it
    back (a live writer's journal is not hot: SQLite waits for it instead). One ``stat`` when
    there is none.
    """
    if not isinstance(path, Path) or not Path(f"{path}-journal").exists():
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


def _check_workspace_file(path: Path) -> None:
    """Raise ``WorkspaceError`` unless ``path`` is a GeoPackage with the workspace tables.

    A file that passed is not opened again while unchanged (same inode, time and size): a
    partitioned run opens the workspace for every part.
    """
    if not path.is_file():
        raise WorkspaceError(
            f"{path}: no such workspace (create one with geo-mz demo or Workspace.create)"
        )
    st = path.stat()
    stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
    key = str(path.resolve())
    if _CHECKED.get(key) == stamp:
        return
    try:
        names = [str(n) for n in pyogrio.list_layers(path)[:, 0]]
    except Exception as exc:
        raise WorkspaceError(f"{path}: not a GeoPackage ({exc})") from exc
    if META_TABLE not in names:
        raise WorkspaceError(
            f"{path}: a GeoPackage but not a geo_mz workspace (no {META_TABLE} table)"
        )
    _CHECKED[key] = stamp


def _write_meta(path: Path, meta: Mapping[str, str]) -> None:
    df = pd.DataFrame({"key": list(meta), "value": [str(v) for v in meta.values()]}, dtype=object)
    pyogrio.write_dataframe(df, path, layer=META_TABLE)


__all__ = [
    "LayerReadError",
    "Problem",
    "Workspace",
    "conform_types",
    "district_of",
    "file_sha256",
    "reference_layer",
    "starts_with",
]

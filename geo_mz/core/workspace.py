"""The workspace: one GeoPackage holding all layers of one jurisdiction plus their metadata.

Layers are stored in EPSG:4490 (CGCS2000), one table per catalog layer. Two attribute tables hold
the metadata: ``geo_mz_workspace`` (name, adcode, storage and measuring CRS, expected area, ...)
and ``geo_mz_layers`` (per layer: rows, source, method, ``synthetic``, source CRS, sha256, time).

Every write is atomic: it goes to a copy beside the file, is checked, and replaces the file in one
``os.replace``. A failed write or import leaves the original byte-identical; a killed one leaves
the original too, and its copy is removed when the workspace is next opened (the copy's owner
lock, ``geo_mz.core.temp_copies``). The web map's one-row edits are the exception: one SQLite
transaction in place (``webmap.core.gpkg_rows``); a killed one is rolled back by the next open.
The public methods are the interface the PostGIS backend (``workspace_postgis``) implements too.

Reading a layer and rolling back a killed edit are in ``workspace_read``; the tables, records and
metadata both backends share are in ``workspace_common`` (their names import from here too).
"""

from __future__ import annotations

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
import shapely

from geo_mz.core.catalog import LayerSpec, get_spec, load_catalog
from geo_mz.core.errors import LayerReadError, LayerValidationError, Problem, WorkspaceError
from geo_mz.core.projection import STORAGE_CRS
from geo_mz.core.temp_copies import Removed, clean_stale_temps, owned_temp
from geo_mz.core.unit_coding import code_by_location
from geo_mz.core.validate import LayerResult, check_layer, prepare_layer
from geo_mz.core.workspace_common import (
    GPKG_GEOMETRY,
    LAYER_COLUMNS,
    LAYERS_TABLE,
    META_TABLE,
    district_of,
    layer_record,
    new_metadata,
    no_field_error,
    no_layer_error,
    reference_layer,
    value_counts_of,
)
from geo_mz.core.workspace_common import now_iso as now_iso  # re-exported (webmap imports it)
from geo_mz.core.workspace_read import (
    conform_types,
    no_edit_in_place,
    read_layer,
    roll_back_killed_edit,
    starts_with,
)


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
        roll_back_killed_edit(self.path)
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
        meta = new_metadata(
            name=name,
            adcode=adcode,
            bounds=bounds,
            measure_crs=measure_crs,
            storage_crs=storage_crs,
            extra=extra,
        )
        if path.exists() and not overwrite:
            raise WorkspaceError(f"{path}: already exists (use overwrite=True / --overwrite)")
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
        columns: list[str] | None = None,
        mask: shapely.Geometry | None = None,
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
        columns
            Optional: read only these fields (those the layer has, and the ``prefix`` field)
            besides the geometry, e.g. the fields a walking network uses of ``roads``.
        mask
            Optional lon/lat polygon: only the rows whose geometry intersects it (as pyogrio's
            ``mask``; instead of ``bbox``), e.g. a part's cut: the file is asked for the
            polygon's strips, not its whole box.
        """
        roll_back_killed_edit(self.path)  # one stat; read-only opens refuse a hot journal
        return read_layer(
            self.path, kind, self.layers(), bbox=bbox, prefix=prefix, columns=columns, mask=mask
        )

    def read_all(self) -> dict[str, gpd.GeoDataFrame]:
        """All stored layers by name."""
        return {k: self.read(k) for k in self.layers()}

    def count(self, kind: str) -> int:
        """Rows of a layer as stored now (counted, not taken from its layer record).

        A layer edited by another tool (QGIS, pyogrio, SQL) has a stale record; this count
        is not.
        """
        if kind not in self.layers():
            raise no_layer_error(self.path, kind, self.layers())
        return int(pyogrio.read_info(self.path, layer=kind, force_feature_count=True)["features"])

    def value_counts(self, kind: str, field: str) -> pd.Series:
        """Rows per value of one field of a layer, counted in SQL (no geometry read).

        Parameters
        ----------
        kind
            The layer.
        field
            One of its fields (``adcode``: how many points each code holds).

        Returns
        -------
        pandas.Series
            Rows per value (as text); ``attrs["missing"]``: rows without a value. A
            province's 387,347 population cells are counted by code in ≈ 0.2 s.
        """
        if kind not in self.layers():
            raise no_layer_error(self.path, kind, self.layers())
        with closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as db:
            names = [str(r[1]) for r in db.execute(f'PRAGMA table_info("{kind}")')]
            if field not in names:
                raise no_field_error(self.path, kind, field, names)
            rows = db.execute(
                f'SELECT CAST("{field}" AS TEXT), COUNT(*) FROM "{kind}" GROUP BY 1'
            ).fetchall()
        return value_counts_of(rows)

    def extent(self, kind: str) -> tuple[float, float, float, float]:
        """Lon/lat ``(minx, miny, maxx, maxy)`` of a layer's features (NaNs when it has none)."""
        if kind not in self.layers():
            raise no_layer_error(self.path, kind, self.layers())
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
        with no_edit_in_place(self.path), owned_temp(self.path) as tmp:
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
        roll_back_killed_edit(self.path)  # GDAL's read-only opens below refuse a hot journal
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
        spec = get_spec(kind)
        if spec.code_by_location is not None and "admin_units" in self.layers():
            result.gdf, notes = code_by_location(
                result.gdf, spec, self.read("admin_units"), file=str(path), rows=result.rows
            )
            result.problems.extend(notes)
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
                if PART_CODE_FIELD in frame.columns:
                    index_part_codes(tmp, kind)
                rec = layer_record(kind, len(gdf), prov)  # the GeoPackage stores text
                rec["rows"] = str(rec["rows"])
                rec["synthetic"] = "1" if rec["synthetic"] else "0"
                new_rows.append(rec)
            table = pd.concat([records.astype(str), pd.DataFrame(new_rows)], ignore_index=True)
            table = table.sort_values("layer").reset_index(drop=True)
            pyogrio.write_dataframe(table[LAYER_COLUMNS].astype(object), tmp, layer=LAYERS_TABLE)


_CHECKED: dict[str, tuple[int, int, int]] = {}


PART_CODE_FIELD = "adcode"
"""The field a partitioned run selects a part's own rows by (a code prefix)."""


def index_part_codes(path: str | Path, kind: str) -> None:
    """Index the ``adcode`` field of a layer (a B-tree), for reading a part's own rows by it.

    A part's people are the rows whose code starts with its code: with this index they are
    one range of it (``geo_mz.core.gpkg_read``), not a box of the R-tree that holds the
    neighbours' rows too. GDAL and QGIS ignore the index; it is rebuilt with each write.
    """
    table = kind.replace('"', '""')
    with closing(sqlite3.connect(path)) as con:
        con.execute(
            f'CREATE INDEX IF NOT EXISTS "{table}_{PART_CODE_FIELD}" '
            f'ON "{table}" ("{PART_CODE_FIELD}")'
        )
        con.commit()


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

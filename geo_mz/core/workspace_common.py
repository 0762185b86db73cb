"""What both workspace backends share: their tables, a new workspace's metadata, layer records.

The GeoPackage :class:`geo_mz.core.Workspace` and the :class:`geo_mz.core.PostgisWorkspace` hold
the same two attribute tables (``geo_mz_workspace``: metadata; ``geo_mz_layers``: one record per
layer) and give the same errors; the helpers here are written once for both.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from typing import Any

import geopandas as gpd
import pandas as pd

import geo_mz
from geo_mz.core.catalog import get_spec
from geo_mz.core.clip import District, district_from_layers
from geo_mz.core.errors import WorkspaceError
from geo_mz.core.projection import gk_zone_crs

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
    """Return the UTC time now, to the second, as ISO 8601 text (the records' time stamps)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def layer_record(kind: str, rows_n: int, prov: Mapping[str, Any]) -> dict[str, Any]:
    """Return the ``geo_mz_layers`` record of a layer written now (either backend).

    Parameters
    ----------
    kind
        Catalog layer name.
    rows_n
        Rows written.
    prov
        Provenance: ``synthetic`` (bool), ``source``, ``method``, optional ``source_crs`` and
        ``sha256``.

    Returns
    -------
    dict
        One value per ``LAYER_COLUMNS`` name: ``rows`` an int, ``synthetic`` a bool, the rest text
        (the GeoPackage stores them all as text).
    """
    return {
        "layer": kind,
        "spec_version": str(get_spec(kind).version),
        "rows": int(rows_n),
        "synthetic": bool(prov.get("synthetic")),
        "source": str(prov.get("source", "")),
        "method": str(prov.get("method", "")),
        "source_crs": str(prov.get("source_crs", "")),
        "sha256": str(prov.get("sha256", "")),
        "imported_at": now_iso(),
    }


def no_layer_error(where: object, kind: str, names: list[str]) -> WorkspaceError:
    """Return the error for a layer the workspace at ``where`` (path or URL) does not hold."""
    return WorkspaceError(
        f"{where}：工作空间没有图层 '{kind}'（现有图层：{'、'.join(names) or '无'}）/ "
        f"{where}: no layer '{kind}'; layers are {names}"
    )


def no_field_error(where: object, kind: str, field: str, names: list[str]) -> WorkspaceError:
    """Return the error for a field that layer ``kind`` of the workspace at ``where`` lacks."""
    return WorkspaceError(
        f"{where}：图层 '{kind}' 没有字段 '{field}'（现有字段：{'、'.join(names) or '无'}）/ "
        f"{where}: layer '{kind}' has no field '{field}'; its fields are {names}"
    )


def value_counts_of(rows: Iterable[tuple[Any, int]]) -> pd.Series:
    """Return ``(value, rows)`` pairs counted in SQL as a Series of rows per value (as text).

    ``attrs["missing"]`` holds the rows without a value (SQL NULL).
    """
    got: dict[str, int] = {}
    missing = 0
    for value, n in rows:
        if value is None:
            missing += int(n)
        else:
            got[str(value)] = got.get(str(value), 0) + int(n)
    out = pd.Series(got, dtype="int64")
    out.attrs["missing"] = missing
    return out


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


__all__ = [
    "GPKG_GEOMETRY",
    "LAYERS_TABLE",
    "LAYER_COLUMNS",
    "META_TABLE",
    "district_of",
    "layer_record",
    "new_metadata",
    "no_layer_error",
    "now_iso",
    "reference_layer",
]

"""Bring a district's raw sources into its workspace: OSM roads, population rasters and tables.

``geo-mz import`` sends a file here when it is not already a layer: an OpenStreetMap export as
``roads`` (split at junctions, :mod:`geo_mz.core.osm_roads`), a count raster or a per-unit
table (户籍 statistics) as ``population`` (:mod:`geo_mz.core.population`). Each reads the
workspace's district (:func:`geo_mz.core.workspace.district_of`) to clip to, checks the result
against the layer's spec, and writes it in one atomic step: a failure changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio

from geo_mz.core.errors import GeoMzError
from geo_mz.core.osm_roads import OsmImportReport, read_osm_roads
from geo_mz.core.population import PopulationReport, population_from_raster, population_from_units
from geo_mz.core.validate import LayerResult
from geo_mz.core.workspace import district_of, file_sha256

__all__ = [
    "RASTER_SUFFIXES",
    "import_population_raster",
    "import_population_units",
    "import_roads_osm",
    "is_osm_source",
]

#: Files read as OSM by ``import --layer roads`` (pyosmium reads all of them).
OSM_SUFFIXES = (".osm", ".pbf", ".osm.pbf", ".osm.bz2", ".osm.gz", ".o5m", ".opl")
#: Files read as count rasters by ``import --layer population``.
RASTER_SUFFIXES = (".tif", ".tiff", ".img", ".vrt", ".asc")

Progress = Callable[[str], None]


def is_osm_source(path: str | Path, layer_name: str | None = None) -> bool:
    """Tell whether a roads file is OpenStreetMap data: an OSM file, or lines with ``highway``.

    A GeoJSON/GeoPackage that already has the roads layer's ``road_class`` is a roads layer,
    not OSM lines, even if it also keeps a ``highway`` column.
    """
    name = Path(path).name.lower()
    if name.endswith(OSM_SUFFIXES):
        return True
    try:
        fields = {f.lower() for f in pyogrio.read_info(path, layer=layer_name)["fields"]}
    except Exception:
        return False
    return "highway" in fields and "road_class" not in fields


def _district(ws: Any, what: str) -> Any:
    d = district_of(ws)
    if d.source == "bounds":
        raise GeoMzError(
            f"{what}: 工作空间没有辖区边界，无法裁剪 / the workspace has no district polygon to "
            "clip to (only its bounds): create it with geo-mz init, or import admin_units first"
        )
    return d


def _write(ws: Any, kind: str, gdf: gpd.GeoDataFrame, path: str | Path, method: str,
           source_crs: str) -> LayerResult:  # fmt: skip
    prov = {
        "synthetic": False,
        "source": str(path),
        "method": method,
        "source_crs": source_crs,
        "sha256": file_sha256(path),
    }
    return ws.write_layers({kind: gdf}, {kind: prov})[kind]


def import_roads_osm(
    ws: Any,
    path: str | Path,
    *,
    margin_m: float = 1000.0,
    layer_name: str | None = None,
    progress: Any = None,
) -> tuple[LayerResult, OsmImportReport]:
    """Import OpenStreetMap roads, split at junctions and clipped to the district + a margin.

    Parameters
    ----------
    ws
        The workspace (either backend); its district is the clip, its ``population`` (when
        present) gives the report's population within 500 m of a road.
    path
        ``.osm`` XML, ``.osm.pbf``, or GeoJSON/GeoPackage lines with a ``highway`` column.
    margin_m
        Roads kept beyond the district, metres (routes may leave and come back).
    layer_name
        Layer of a multi-layer vector file.
    progress
        Passed to :func:`geo_mz.core.read_osm_roads` (a tqdm bar or a callable).

    Returns
    -------
    tuple
        The check result of the stored layer and the import report (components, share of the
        length in the largest, dangling ends, population reach).
    """
    d = _district(ws, str(path))
    pop = ws.read("population") if "population" in ws.layers() else None
    roads, report = read_osm_roads(
        path,
        clip=d.geometry,
        margin_m=margin_m,
        measure_crs=d.measure_crs,
        progress=progress,
        population=pop,
        layer=layer_name,
    )
    method = (
        f"OpenStreetMap via geo_mz.core.osm_roads (split at shared nodes, profile "
        f"geo_mz.core.osm_profile), clipped to {d.label_en} + {margin_m:g} m"
    )
    return _write(ws, "roads", roads, path, method, "EPSG:4326"), report


def _aged_table(path: str | Path) -> pd.DataFrame:
    p = Path(path)
    if p.suffix.lower() in (".xlsx", ".xlsm"):
        return pd.read_excel(p, dtype=str)
    return pd.read_csv(p, dtype=str, encoding="utf-8-sig")


def import_population_raster(
    ws: Any,
    path: str | Path,
    *,
    aged_share: float | None = None,
    aged_share_table: str | Path | None = None,
    aged_raster: str | Path | None = None,
    aged_band: int = 1,
    band: int = 1,
    progress: Progress | None = None,
) -> tuple[LayerResult, PopulationReport]:
    """Import a count raster (WorldPop-like) as population points inside the district.

    Parameters
    ----------
    ws
        The workspace; its district clips the raster (edge cells by their area inside).
    path
        The raster of people per cell, any CRS.
    aged_share, aged_share_table, aged_raster, aged_band
        Exactly one source of the aged 60+ (see :func:`geo_mz.core.population_from_raster`):
        a share for the district, a table of unit codes and shares (applied by the workspace's
        ``admin_units``), or an aged-60+ raster on the same grid.
    band
        Band of the people counts.
    progress
        Called with short messages.

    Returns
    -------
    tuple
        The check result of the stored layer and the population report (totals before and
        after clipping).
    """
    d = _district(ws, str(path))
    table = _aged_table(aged_share_table) if aged_share_table is not None else None
    units = ws.read("admin_units") if table is not None else None
    pts, report = population_from_raster(
        path,
        boundary=d.geometry,
        aged_share=aged_share,
        aged_share_by_unit=table,
        units=units,
        aged_raster=aged_raster,
        aged_band=aged_band,
        band=band,
        measure_crs=d.measure_crs,
        progress=progress,
    )
    method = f"{report.method}; aged 60+: {report.aged_method}"
    # Each cell takes the code of the finest unit polygon it lies in (none: the district's),
    # so per-unit figures and parts by county or town (taken by code) count it.
    from geo_mz.core.units import finest_codes

    every = units if units is not None else ws.read("admin_units")
    pts["adcode"], refined = finest_codes(pts, every)
    if refined:
        method += f"; {refined} cells coded to the unit polygon they lie in"
    return _write(ws, "population", pts, path, method, report.source_crs), report


def import_population_units(
    ws: Any,
    path: str | Path,
    *,
    level: str | None = None,
    cell_m: float = 100.0,
    road_reach_m: float = 500.0,
    encoding: str | None = None,
    progress: Progress | None = None,
) -> tuple[LayerResult, PopulationReport]:
    """Import per-unit counts (town or village codes, total and aged 60+) as population points.

    Each unit's people are spread over its area within ``road_reach_m`` of the workspace's roads
    (onto ``buildings`` footprints where such a layer exists), keeping every unit's totals
    exactly (:func:`geo_mz.core.population_from_units`). Units need polygons: the workspace's
    own, or approximate ones from coded points (:func:`geo_mz.core.complete_units`).

    Parameters
    ----------
    ws
        The workspace.
    path
        CSV/XLSX with a code column and total / aged-60+ columns (Chinese headers accepted).
    level
        ``"county"`` (one row for the district), ``"town"`` or ``"village"``; from the codes'
        length when None.
    cell_m, road_reach_m
        Grid of the points, and the reach of a road that makes an area populated (metres).
    encoding
        Text encoding of a CSV that is not UTF-8 (e.g. ``gbk``).
    progress
        Called with short messages.

    Returns
    -------
    tuple
        The check result of the stored layer and the population report (per-unit table).
    """
    from geo_mz.core.units import complete_units, unit_register

    layers = {k: ws.read(k) for k in ("admin_units", "place_names") if k in ws.layers()}
    if "admin_units" not in layers:
        raise GeoMzError(f"{path}: 工作空间没有行政区划 / the workspace has no admin_units")
    units = complete_units(layers, unit_register(ws.metadata))[0]["admin_units"]
    if level is None:
        level = _level_of(path, encoding)
    roads = ws.read("roads") if "roads" in ws.layers() else None
    buildings = ws.read("buildings") if "buildings" in ws.layers() else None
    pts, report = population_from_units(
        path,
        units,
        level=level,
        roads=roads,
        buildings=buildings,
        cell_m=cell_m,
        road_reach_m=road_reach_m,
        measure_crs=ws.metadata.get("measure_crs"),
        encoding=encoding,
        progress=progress,
    )
    return _write(ws, "population", pts, path, report.method, ""), report


def _level_of(path: str | Path, encoding: str | None) -> str:
    """``town`` or ``village`` from the length of the codes in the table's first column."""
    from geo_mz.core.population import CODE_FIELD_ALIASES

    p = Path(path)
    df = (
        pd.read_excel(p, dtype=str, nrows=50)
        if p.suffix.lower() in (".xlsx", ".xlsm")
        else pd.read_csv(p, dtype=str, nrows=50, encoding=encoding or "utf-8-sig")
    )
    col = next((c for c in df.columns if str(c).strip().lower() in CODE_FIELD_ALIASES), None)
    codes = (
        df[col].dropna().astype(str).str.strip() if col is not None else pd.Series([], dtype=str)
    )
    lengths = set(codes.str.len())
    levels: Mapping[int, str] = {6: "county", 9: "town", 12: "village"}
    if len(lengths) != 1 or next(iter(lengths)) not in levels:
        raise GeoMzError(
            f"{path}: 无法从代码长度判断层级，请给出 --level town|village / cannot tell the level "
            f"from the codes (lengths {sorted(lengths)}): give --level county|town|village"
        )
    return levels[next(iter(lengths))]

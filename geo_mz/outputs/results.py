"""Shared plumbing of analysis outputs: result-layer specs, conforming, tables, files.

Every analysis (15-minute circle, relief audit, shelters, delivery plans) writes its layers
against a spec in ``layers/results/`` so the GeoPackage, the Excel sheets, the report and the
map all read their titles, units and symbology from one place.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from geo_mz.core.catalog import LayerSpec, default_catalog_dir, load_catalog
from geo_mz.core.errors import GeoMzError, LayerValidationError
from geo_mz.outputs.maps import format_value
from geo_mz.core.projection import measure_crs_for
from geo_mz.outputs.report import Kpi
from geo_mz.core.validate import check_layer

Lang = Literal["zh", "en"]
STORAGE_CRS = "EPSG:4490"


def result_catalog() -> dict[str, LayerSpec]:
    """Specs of the analysis output layers (``layers/results/``)."""
    return load_catalog(default_catalog_dir() / "results")


def conform(kind: str, gdf: gpd.GeoDataFrame, specs: Mapping[str, LayerSpec]) -> gpd.GeoDataFrame:
    """Give an output layer its spec's columns and types; any error here is a bug, not input."""
    spec = specs[kind]
    cols = [f.name for f in spec.fields if f.name in gdf.columns]
    g = gpd.GeoDataFrame(gdf[cols], geometry=gdf.geometry.values, crs=gdf.crs).to_crs(STORAGE_CRS)
    bad = ~g.is_valid.to_numpy()
    if bad.any():
        # Reprojecting valid metric polygons to degrees can fold near-coincident vertices into
        # tiny self-intersections; repair them, but only if the area stays the same.
        # method="structure" rebuilds rings as area (linework can turn a fold into a hole).
        repaired = shapely.make_valid(
            g.geometry.values[bad], method="structure", keep_collapsed=False
        )
        fixed = gpd.GeoSeries(repaired, crs=STORAGE_CRS).apply(_polygonal)
        metric = measure_crs_for(g)
        before = g.geometry[bad].to_crs(metric).area.to_numpy()
        after = fixed.to_crs(metric).area.to_numpy()
        if np.any(np.abs(after - before) > 1e-6 * np.maximum(before, 1.0) + 1.0):
            raise GeoMzError(f"{kind}: invalid output geometry could not be repaired losslessly")
        g.loc[bad, g.geometry.name] = fixed.to_numpy()
    num = g.select_dtypes("number").columns
    g[num] = g[num].replace([np.inf, -np.inf], np.nan)
    out, problems = check_layer(g, spec, file=kind, area=None)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise LayerValidationError(errors)
    return out


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    parts = [
        p for p in getattr(geom, "geoms", [geom]) if p.geom_type in ("Polygon", "MultiPolygon")
    ]
    return shapely.union_all(parts) if parts else geom


def write_gpkg(path: str | Path, layers: Mapping[str, gpd.GeoDataFrame]) -> Path:
    """Write result layers into a new GeoPackage in one atomic step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".gpkg", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        for name, gdf in layers.items():
            pyogrio.write_dataframe(
                gdf,
                tmp,
                layer=name,
                promote_to_multi=True if gdf.geom_type.str.contains("Polygon").any() else None,
            )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def display_table(
    df: pd.DataFrame, spec: LayerSpec, lang: Lang, columns: Sequence[str]
) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """Column headings ("中文 English") and formatted rows of ``columns`` for a report table."""
    heads, fields = [], []
    for c in columns:
        f = spec.field(c)
        heads.append(f"{f.title_zh} {f.title_en}" if lang == "zh" else f"{f.title_en} {f.title_zh}")
        fields.append(f)
    rows = tuple(
        tuple(format_value(r[c], f, lang) for c, f in zip(columns, fields, strict=True))
        for r in df.to_dict("records")
    )
    return tuple(heads), rows


def headed(df: pd.DataFrame, spec: LayerSpec) -> pd.DataFrame:
    """Rename a table's columns to their spec titles, "中文 English", for Excel sheets."""
    names = {f.name: f"{f.title_zh} {f.title_en}" for f in spec.fields}
    return df.rename(columns=lambda c: names.get(c, c))


def kpi_frame(kpis: Sequence[Kpi]) -> pd.DataFrame:
    """Headline figures as a table (one row per KPI), for an Excel sheet."""
    return pd.DataFrame(
        [
            {
                "指标 indicator": f"{k.label_zh} {k.label_en}",
                "值 value": k.value,
                "单位 unit": k.unit,
                "目标 target": k.target,
                "达标 met": k.met,
                "依据 source": k.source,
            }
            for k in kpis
        ]
    )


__all__ = [
    "conform",
    "display_table",
    "headed",
    "kpi_frame",
    "result_catalog",
    "write_gpkg",
]

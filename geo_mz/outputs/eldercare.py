"""Files and map of the 15-minute elder-care circle: GeoPackage, Excel workbook, folium map."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import pandas as pd

from geo_mz.core.catalog import load_catalog
from geo_mz.core.results import headed, kpi_frame, result_catalog
from geo_mz.eldercare.circle15 import CircleResult, output_layers, overlay_layers
from geo_mz.outputs.files import write_gpkg
from geo_mz.outputs.maps import SIMPLIFY_M, layers_map, save_map

Lang = Literal["zh", "en"]

#: Layers on when the circle map opens; the rest are listed in its layer control, off.
CIRCLE_MAP_ON = frozenset(
    {"admin_units", "water", "isochrones", "coverage_gaps", "elder_care", "proposed_sites"}
)
#: Rings above the gaps (catalog z 14) and roads (20), below the centres (60).
CIRCLE_MAP_Z = {"isochrones": 22}


def write_excel(
    path: str | Path,
    result: CircleResult,
    sites: gpd.GeoDataFrame | None = None,
) -> Path:
    """Write the tables to an Excel workbook, headings in Chinese and English (always both)."""
    specs = result_catalog()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    unit_cols = [f.name for f in specs["coverage_units"].fields]
    with pd.ExcelWriter(path, engine="openpyxl") as xl:
        kpi_frame(result.kpis).to_excel(xl, sheet_name="指标 KPIs", index=False)
        for name, table in (
            ("镇街 towns", result.table_towns),
            ("村居 villages", result.table_villages),
        ):
            t = table[[c for c in unit_cols if c in table.columns]]
            headed(t, specs["coverage_units"]).to_excel(xl, sheet_name=name, index=False)
        gaps = pd.DataFrame(result.gaps.drop(columns="geometry")).head(500)
        headed(gaps, specs["coverage_gaps"]).to_excel(xl, sheet_name="缺口 gaps", index=False)
        result.beds.to_excel(xl, sheet_name="床位 beds", index=False)
        if result.e2sfca is not None:
            # Supply and demand of each residential home within its catchment (E2SFCA step 1).
            homes = pd.DataFrame(result.e2sfca.centres.drop(columns="geometry"))
            homes.to_excel(xl, sheet_name="机构供需 E2SFCA", index=False)
        if sites is not None:
            s = pd.DataFrame(sites.drop(columns="geometry"))
            s["lon"], s["lat"] = sites.geometry.x, sites.geometry.y
            headed(s, specs["proposed_sites"]).to_excel(xl, sheet_name="选址 sites", index=False)
    return path


def circle_map(
    base_layers: Mapping[str, gpd.GeoDataFrame],
    result: CircleResult,
    sites: gpd.GeoDataFrame | None = None,
    *,
    lang: Lang = "zh",
) -> Any:
    """Map of the circle over the base layers (boundaries, water, roads) with the centres.

    On when it opens: boundaries, the walking rings (drawn above the gaps and roads, so the
    gaps read as "outside the rings"), the gaps, the centres and proposed sites. The roads
    (every street, which would hide the rings) and the coverage share per village (a
    choropleth) are in the layer control, off.
    """
    layers: dict[str, gpd.GeoDataFrame] = {
        k: base_layers[k] for k in ("admin_units", "water", "roads") if k in base_layers
    }
    layers["elder_care"] = result.centres
    layers.update(overlay_layers(result, sites))
    return layers_map(
        layers,
        catalog={**load_catalog(), **result_catalog()},
        lang=lang,
        show=CIRCLE_MAP_ON,
        z=CIRCLE_MAP_Z,
        simplify_m=SIMPLIFY_M,
    )


def write_circle_outputs(
    out_dir: str | Path,
    base_layers: Mapping[str, gpd.GeoDataFrame],
    result: CircleResult,
    sites: gpd.GeoDataFrame | None = None,
    *,
    lang: Lang = "zh",
    prefix: str = "coverage",
) -> dict[str, Path]:
    """Write ``{prefix}.gpkg``, ``{prefix}.xlsx`` and ``{prefix}_map.html`` into ``out_dir``."""
    out = Path(out_dir)
    return {
        "gpkg": write_gpkg(out / f"{prefix}.gpkg", output_layers(result, sites)),
        "xlsx": write_excel(out / f"{prefix}.xlsx", result, sites),
        "map": save_map(
            circle_map(base_layers, result, sites, lang=lang), out / f"{prefix}_map.html"
        ),
    }


__all__ = ["circle_map", "write_circle_outputs", "write_excel"]

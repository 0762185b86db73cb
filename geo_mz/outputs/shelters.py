"""Files and map of shelter adequacy and evacuation: GeoPackage, Excel workbook, folium map."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import folium
import geopandas as gpd
import pandas as pd

from geo_mz.core.catalog import load_catalog
from geo_mz.core.projection import STORAGE_CRS
from geo_mz.core.results import result_catalog
from geo_mz.outputs.files import write_gpkg
from geo_mz.outputs.maps import SIMPLIFY_M, layers_map, save_map
from geo_mz.relief.shelter_tables import excel_tables, output_layers
from geo_mz.relief.shelters import AdequacyResult, EvacuationResult

Lang = Literal["zh", "en"]

#: Layers on when the shelter map opens; the rest are listed in its layer control, off.
SHELTER_MAP_ON = frozenset(
    {
        "admin_units",
        "water",
        "roads",
        "shelter_units",
        "shelters",
        "shelter_load",
        "evacuation_unassigned",
    }
)


def shelter_map(
    base_layers: Mapping[str, gpd.GeoDataFrame],
    adequacy: AdequacyResult | None = None,
    evacuation: EvacuationResult | None = None,
    *,
    lang: Lang = "zh",
) -> folium.Map:
    """Map the shelters (sized by capacity) with the analyses' layers over the base layers.

    Villages coloured by the share of people within reach, assignment lines, unplaced people
    by reason, and shelters coloured by load share after an evacuation (else by class), sized
    by capacity. The assignment lines are in the layer control, off.
    """
    layers = {k: base_layers[k] for k in ("admin_units", "water", "roads") if k in base_layers}
    outs = output_layers(adequacy, evacuation)
    if "shelter_units" in outs:
        units = outs.pop("shelter_units")
        layers["shelter_units"] = units[units["level"] == "village"]
    layers.update(outs)
    if "shelter_load" not in layers and adequacy is not None:
        layers["shelters"] = adequacy.shelters.to_crs(STORAGE_CRS)
    # Shelters are sized by capacity through their specs' symbology ``size_field``.
    return layers_map(
        layers,
        catalog={**load_catalog(), **result_catalog()},
        lang=lang,
        show=SHELTER_MAP_ON,
        simplify_m=SIMPLIFY_M,
    )


def write_shelter_outputs(
    out_dir: str | Path,
    base_layers: Mapping[str, gpd.GeoDataFrame],
    adequacy: AdequacyResult | None = None,
    evacuation: EvacuationResult | None = None,
    *,
    lang: Lang = "zh",
    prefix: str = "shelters",
) -> dict[str, Path]:
    """Write ``{prefix}.gpkg``, ``{prefix}.xlsx`` and ``{prefix}_map.html`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    xlsx = out / f"{prefix}.xlsx"
    with pd.ExcelWriter(xlsx, engine="openpyxl") as xl:
        for sheet, df in excel_tables(adequacy, evacuation).items():
            df.to_excel(xl, sheet_name=sheet, index=False)
    return {
        "gpkg": write_gpkg(out / f"{prefix}.gpkg", output_layers(adequacy, evacuation)),
        "xlsx": xlsx,
        "map": save_map(shelter_map(base_layers, adequacy, evacuation, lang=lang),
                        out / f"{prefix}_map.html"),
    }  # fmt: skip


__all__ = ["shelter_map", "write_shelter_outputs"]

"""Result files: GeoPackages written in one atomic step.

Every analysis (15-minute circle, relief audit, shelters, delivery plans) writes its layers
against a spec in ``layers/results/`` so the GeoPackage, the Excel sheets, the report and the
map all read their titles, units and symbology from one place.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import geopandas as gpd
import pyogrio

Lang = Literal["zh", "en"]
STORAGE_CRS = "EPSG:4490"


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


__all__ = ["write_gpkg"]

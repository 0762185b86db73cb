"""A fingerprint of what ``geo-mz demo`` writes: every layer of every GeoPackage, every raster.

Used by ``test_demo.py`` to prove that a refactor leaves the demo's outputs unchanged: per layer the
row count, the columns with their types, and a hash of the values (floats to 9 significant digits,
geometries as WKT to 1e-6 degree / metre), so a changed value, row or column fails the test.
Run ``python -m tests.demo_fingerprint OUT_DIR > tests/data/demo_fingerprint.json`` to record one.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import rasterio
import shapely

# Columns that hold the time of the run or the absolute output path, not a computed value.
VOLATILE = {"imported_at", "created_at", "generated_at", "computed_at", "updated_at", "run_at"}


def _value_text(series: pd.Series) -> str:
    if pd.api.types.is_float_dtype(series):
        return "|".join("nan" if np.isnan(v) else f"{v:.9g}" for v in series.to_numpy(float))
    return "|".join(map(str, series.tolist()))


def layer_fingerprint(path: Path, layer: str) -> dict:
    """Row count, columns with dtypes and a sha256 of the values of one layer."""
    df = pyogrio.read_dataframe(path, layer=layer, fid_as_index=True)
    if {"key", "value"} <= set(df.columns):  # a metadata table: drop the run's time stamps
        df = df[~df["key"].isin(VOLATILE)]
    h = hashlib.sha256()
    columns = {}
    for col in df.columns:
        if col in VOLATILE:
            continue
        if col == "geometry" and hasattr(df, "geometry"):
            text = "|".join(
                "" if g is None else shapely.to_wkt(g, rounding_precision=6, trim=True)
                for g in df.geometry.to_numpy()
            )
            columns[col] = "geometry"
        else:
            text = _value_text(df[col])
            columns[col] = str(df[col].dtype)
        h.update(col.encode())
        h.update(text.encode())
    return {"rows": len(df), "columns": columns, "sha256": h.hexdigest()}


def raster_fingerprint(path: Path) -> dict:
    """Shape, CRS and a sha256 of every band of a raster."""
    with rasterio.open(path) as src:
        data = src.read()
        return {
            "shape": list(data.shape),
            "crs": str(src.crs),
            "sha256": hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest(),
        }


def fingerprint(out: Path) -> dict:
    """The fingerprint of every GeoPackage layer and raster in a demo output folder."""
    result: dict = {}
    for gpkg in sorted(out.glob("*.gpkg")):
        for layer, _ in pyogrio.list_layers(gpkg):
            result[f"{gpkg.name}:{layer}"] = layer_fingerprint(gpkg, layer)
    for tif in sorted(out.glob("*.tif")):
        result[tif.name] = raster_fingerprint(tif)
    return result


if __name__ == "__main__":
    fp = fingerprint(Path(sys.argv[1]))
    json.dump(fp, sys.stdout, indent=1, ensure_ascii=False, sort_keys=True)
    sys.stdout.write("\n")

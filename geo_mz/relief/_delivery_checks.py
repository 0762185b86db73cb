"""Input checks shared by the delivery modules (stores, demand points); package-internal.

Each check records every bad field and row in a list of problems, and :func:`raise_problems`
raises them all at once as a :class:`~geo_mz.relief.DeliveryError`, so a bureau sees every fault
of a layer in one message; used by the allocation (stores, demand) and the routing.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.relief.delivery_settings import DeliveryError


def rows(df: pd.DataFrame, mask: np.ndarray, id_col: str | None) -> str:
    idx = np.flatnonzero(mask)[:10]
    ids = f" ({id_col} {df[id_col].iloc[idx].tolist()})" if id_col in df.columns else ""
    return f"rows {idx.tolist()}{ids}"


def integers(df: pd.DataFrame, col: str, id_col: str, problems: list[str]) -> np.ndarray:
    """Column ``col`` as non-negative integers, recording every bad row in ``problems``."""
    if col not in df.columns:
        problems.append(f"field '{col}' is missing")
        return np.zeros(len(df), dtype=np.int64)
    v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    for mask, what in (
        (np.isnan(v), "is empty or not a number"),
        (v < 0, "is negative"),
        (~np.isnan(v) & (v != np.round(v)), "is not a whole number"),
    ):
        if mask.any():
            problems.append(f"field '{col}' {what} at {rows(df, mask, id_col)}: {v[mask][:10]}")
    return np.nan_to_num(v).astype(np.int64)


def points_ok(gdf: gpd.GeoDataFrame, id_col: str, problems: list[str]) -> None:
    g = np.asarray(gdf.geometry.values)
    bad = shapely.is_missing(g) | shapely.is_empty(g) | (shapely.get_type_id(g) != 0)
    if bad.any():
        problems.append(f"geometry is missing or not a Point at {rows(gdf, bad, id_col)}")
    if gdf.crs is None:
        problems.append("the layer has no CRS")
    ids = gdf[id_col].astype(str) if id_col in gdf else None
    if ids is not None and ids.duplicated().any():
        problems.append(f"duplicate {id_col} {sorted(set(ids[ids.duplicated()]))[:10]}")


def raise_problems(what: str, problems: list[str]) -> None:
    if problems:
        raise DeliveryError(f"{what} cannot be used:\n  - " + "\n  - ".join(problems))


def check_demand(demand: gpd.GeoDataFrame) -> None:
    if not isinstance(demand, gpd.GeoDataFrame):
        raise TypeError(f"`demand` must be a GeoDataFrame, got {type(demand).__name__}")
    problems: list[str] = []
    if "point_id" not in demand.columns:
        problems.append("field 'point_id' is missing (build demand with demand_from)")
    integers(demand, "demand_kits", "point_id", problems)
    points_ok(demand, "point_id", problems)
    raise_problems("demand", problems)


__all__ = ["check_demand", "integers", "points_ok", "raise_problems", "rows"]

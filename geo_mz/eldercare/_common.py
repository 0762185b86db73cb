"""Checks and helpers shared by the elder-care modules (coverage, capacity); package-internal."""

from __future__ import annotations

import math
from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_mz.core.errors import CrsError, GeoMzError, UnitsError
from geo_mz.core.units import units_of_level
from geo_mz.network.graph import Network, Snapped
from geo_mz.network.paths import snap_points, with_closures

TOL_MIN = 1e-9  # inclusive thresholds: absorbs float noise only


TOL_PERSONS = 1e-6


class CoverageError(GeoMzError, ValueError):
    """A coverage analysis cannot run as asked (missing columns, bad options)."""


class NoCentresError(CoverageError):
    """No centre is left after filtering facilities by kind and status."""


def check_gdf(obj: object, what: str, columns: Sequence[str] = ()) -> gpd.GeoDataFrame:
    if not isinstance(obj, gpd.GeoDataFrame):
        raise TypeError(f"`{what}` must be a GeoDataFrame, got {type(obj).__name__}")
    if obj.crs is None:
        raise CrsError(f"`{what}` has no CRS; set it with .set_crs(...), e.g. 'EPSG:4490'")
    missing = [c for c in columns if c not in obj.columns]
    if missing:
        raise CoverageError(f"`{what}` lacks column(s) {missing}; it has {list(obj.columns)}")
    return obj


def check_positive(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise CoverageError(f"`{name}` was {value!r} but must be a positive, finite number")
    return v


def nonneg_numbers(df: pd.DataFrame, col: str, what: str, *, nan_ok: bool = False) -> np.ndarray:
    x = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = np.flatnonzero((np.isnan(x) & (not nan_ok)) | (x < 0))
    if len(bad):
        raise CoverageError(
            f"`{what}` column {col!r} must be numbers >= 0; rows {bad[:10].tolist()} are not"
        )
    return np.nan_to_num(x, nan=0.0)


def centre_ids(centres: gpd.GeoDataFrame, id_field: str) -> np.ndarray:
    ids = centres[id_field] if id_field in centres.columns else centres.index.to_series()
    arr = ids.to_numpy(dtype=object)
    if pd.Series(arr).duplicated().any():
        raise CoverageError(f"centre ids ({id_field!r} or the index) must be unique")
    return arr


def retimed(net: Network, walk_speed_kmh: float | None) -> tuple[Network, float]:
    """Re-time the network at ``walk_speed_kmh`` (walk only); return it and the snap speed."""
    if walk_speed_kmh is None:
        return net, float(net.access_speed_kmh)
    v = check_positive("walk_speed_kmh", walk_speed_kmh)
    if net.mode != "walk":
        raise CoverageError("`walk_speed_kmh` re-times walk networks only; this one is 'drive'")
    factor = net.edge_speed_kmh / v
    if np.allclose(factor, 1.0, rtol=0, atol=1e-12):
        return net, v
    return with_closures(net, slow_factor=factor), v


def snap_centres(
    net: Network, centres: gpd.GeoDataFrame, max_snap_m: float, speed: float
) -> Snapped:
    check_gdf(centres, "centres")
    if len(centres) == 0:
        raise NoCentresError("`centres` is empty: select at least one centre")
    return snap_points(net, centres, max_snap_m=max_snap_m, access_speed_kmh=speed)


def frame_rows(u: gpd.GeoDataFrame, level: str, extra: bool) -> pd.DataFrame:
    ur = [None if pd.isna(x) else x for x in u["urban_rural"].astype(object)]
    recs = list(zip([level] * len(u), u["adcode"], u["name"], ur, strict=True))
    if extra:
        recs.append(("unassigned", None, "未归属 unassigned", None))
    codes = {str(c)[:6] for c in u["adcode"]}
    recs.append(("total", codes.pop() if len(codes) == 1 else None, "合计 total", None))
    return pd.DataFrame(recs, columns=["level", "adcode", "name", "urban_rural"], dtype=object)


def pct(x: float) -> float:
    return round(100.0 * x, 1) if np.isfinite(x) else float("nan")


def coverage_units(units: gpd.GeoDataFrame, level: str) -> gpd.GeoDataFrame:
    """:func:`geo_mz.core.units_of_level`, its errors raised as :class:`CoverageError`."""
    try:
        return units_of_level(units, level)
    except UnitsError as exc:
        raise CoverageError(str(exc)) from exc

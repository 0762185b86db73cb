"""Checks and helpers shared by the elder-care modules (coverage, capacity); package-internal."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix

from geo_mz.core.errors import CrsError, GeoMzError, UnitsError
from geo_mz.core.units import level_positions, units_of_level
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
    s = df[col]
    if s.dtype == np.float64:  # already numbers: to_numeric would hand them back as they are
        x = s.to_numpy()
    else:
        x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
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


def float_values(col: pd.Series) -> np.ndarray:
    """``pd.to_numeric(col)`` as floats, without the call for a float column (read only)."""
    if col.dtype == np.float64:
        return col.to_numpy()
    return pd.to_numeric(col).to_numpy(dtype=float)


def unit_columns(
    level: str,
    codes: np.ndarray,
    names: np.ndarray,
    urban_rural: np.ndarray,
    extra: bool,
) -> dict[str, list]:
    """Build the first columns of :func:`frame_rows` (level, adcode, name, urban_rural).

    Built from the units' columns, without the frame of :func:`units_of_level`: lists of the
    values as they are (the caller makes them object columns).
    """
    ur = [None if pd.isna(x) else x for x in urban_rural]
    lv, ad, nm = [level] * len(codes), list(codes), list(names)
    heads = {str(c)[:6] for c in codes}
    tail = [("unassigned", None, "未归属 unassigned")] if extra else []
    tail.append(("total", heads.pop() if len(heads) == 1 else None, "合计 total"))
    for row_level, code, name in tail:
        lv.append(row_level)
        ad.append(code)
        nm.append(name)
        ur.append(None)
    return {"level": lv, "adcode": ad, "name": nm, "urban_rural": ur}


def pct(x: float) -> float:
    return round(100.0 * x, 1) if np.isfinite(x) else float("nan")


def coverage_units(units: gpd.GeoDataFrame, level: str) -> gpd.GeoDataFrame:
    """:func:`geo_mz.core.units_of_level`, its errors raised as :class:`CoverageError`."""
    try:
        return units_of_level(units, level)
    except UnitsError as exc:
        raise CoverageError(str(exc)) from exc


def coverage_positions(units: gpd.GeoDataFrame, level: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`geo_mz.core.units.level_positions`, its errors raised as :class:`CoverageError`."""
    try:
        return level_positions(units, level)
    except UnitsError as exc:
        raise CoverageError(str(exc)) from exc


# Sums of whole numbers below 2**53 are exact in float64 whatever the order of addition.
_EXACT_LIMIT = 2.0**53
# Above this many (group, value) cells the per-group mode works on the pairs present only.
_DENSE_CELLS = 1 << 16


def _mode_sparse(group: np.ndarray, vi: np.ndarray, uniq: Any, weight: np.ndarray, k: int) -> list:
    """Sum with scipy per (group, value) cell (the reference), first largest wins."""
    m = coo_matrix((weight, (group, vi)), shape=(k, len(uniq))).tocsr()
    best = np.asarray(m.argmax(axis=1)).ravel()
    top = m.max(axis=1).toarray().ravel()
    return [uniq[b] if t > 0 else None for b, t in zip(best, top, strict=True)]


def mode_by_weight(
    group: np.ndarray,
    value: np.ndarray,
    weight: np.ndarray,
    k: int,
    factors: tuple[np.ndarray, Any] | None = None,
) -> list:
    """Per group 0..k-1, the value with the largest total weight (None if no weight).

    Ties go to the value seen first in ``value``. ``factors`` is ``pd.factorize(value)`` when
    already computed. Sums are made with numpy in the order of the points; scipy's sparse
    matrix (the reference, :func:`_mode_sparse`) adds a cell's weights in another order, which
    can differ in the last bit: whole-number weights are exact either way, and otherwise a group
    whose best two sums are closer than the rounding error is settled by scipy itself.
    """
    vi, uniq = pd.factorize(value) if factors is None else factors
    ok = vi >= 0
    if not ok.any():
        return [None] * k
    g, v, w = group[ok], vi[ok], weight[ok]
    if not (np.isfinite(w).all() and (w >= 0).all()):
        return _mode_sparse(g, v, uniq, w, k)
    exact = bool((w == np.floor(w)).all() and w.sum() < _EXACT_LIMIT)
    nu = len(uniq)
    key = g.astype(np.int64) * nu + v
    if k * nu <= _DENSE_CELLS:
        cells = np.bincount(key, weights=w, minlength=k * nu).reshape(k, nu)
        best = cells.argmax(axis=1)  # first largest: the value seen first
        top = cells[np.arange(k), best]
        second = np.partition(cells, nu - 2, axis=1)[:, nu - 2] if nu > 1 else np.zeros(k)
    else:
        pair, keys = pd.factorize(key)
        sums = np.bincount(pair, weights=w)
        pg, pv = keys // nu, keys % nu
        o = np.lexsort((pv, -sums, pg))  # per group: largest sum first, then first seen
        first = np.r_[True, pg[o][1:] != pg[o][:-1]]
        at = np.flatnonzero(first)
        best, top, second = np.zeros(k, np.int64), np.zeros(k), np.zeros(k)
        best[pg[o[at]]], top[pg[o[at]]] = pv[o[at]], sums[o[at]]
        nxt = at + 1
        has2 = nxt < len(o)
        has2[has2] &= ~first[nxt[has2]]
        second[pg[o[at[has2]]]] = sums[o[nxt[has2]]]
    if not exact:
        # Recursive sums of n terms >= 0 in any order lie within n * 2**-53 * sum of the exact
        # one; a margin four times that keeps the winner whatever the order.
        n_g = np.bincount(g, minlength=k)
        close = (top > 0) & (top - second <= 4.0 * n_g * 2.0**-53 * top)
        if close.any():
            return _mode_sparse(g, v, uniq, w, k)
    return [uniq[b] if t > 0 else None for b, t in zip(best.tolist(), top.tolist(), strict=True)]

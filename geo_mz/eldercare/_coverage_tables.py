"""The per-unit sums and rows behind :func:`geo_mz.eldercare.coverage_by_units`; internal.

Made for small inputs (a county part: about 3,200 points, a few towns) as much as for a
province: per-point weights once for every level, numpy sums per unit, and the columns of
every level gathered into one frame at the end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_mz.eldercare._common import (
    TOL_MIN,
    TOL_PERSONS,
    float_values,
    mode_by_weight,
    nonneg_numbers,
    unit_columns,
)


def point_sums(times: gpd.GeoDataFrame, ths: list[float], pop_field: str) -> dict:
    """Per point, the weights every level sums per unit (the same for all levels)."""
    pop = nonneg_numbers(times, pop_field, "times")
    walk = float_values(times["walk_min"])
    reach = np.isfinite(walk)
    w: dict[str, np.ndarray] = {pop_field: pop}
    for t in ths:
        w[f"covered_{t:g}min"] = pop * (walk <= t + TOL_MIN)
    w["walk_w"] = np.where(reach, walk, 0.0) * pop
    w["reach_pop"] = pop * reach
    w["unreachable_pop"] = pop * ~reach
    too_far = times["too_far"].to_numpy(dtype=bool) if "too_far" in times.columns else 0 * pop
    w["too_far_pop"] = pop * too_far
    if "covered_pop_adjusted" in times.columns:
        w["covered_capacity_adj"] = float_values(times["covered_pop_adjusted"])
    near = times["nearest_centre"].to_numpy(dtype=object)
    factors = pd.factorize(near)
    all_near = mode_by_weight(np.zeros(len(pop), np.int64), near, pop, 1, factors)[0]
    return {"w": w, "pop": pop, "near": near, "factors": factors, "all_near": all_near}


def unit_rows(
    pts: dict,
    units: gpd.GeoDataFrame,
    level: str,
    upos: np.ndarray,
    codes: np.ndarray,
    pos: np.ndarray,
    ths: list[float],
    targets: Mapping[str, float],
    target_min: float,
    pop_field: str,
) -> dict[str, Any]:
    """One level's columns from the per-point weights and each point's unit (-1: none)."""
    n = len(upos)
    k = n + 1
    g = np.where(pos >= 0, pos, n)
    sums = {name: np.bincount(g, weights=w, minlength=k) for name, w in pts["w"].items()}
    pop_u = sums[pop_field]
    strict = max(float(x) for x in targets.values())
    if "urban_rural" in units.columns:
        ur_raw = units["urban_rural"].to_numpy(dtype=object)[upos]
    else:
        ur_raw = np.full(n, None, dtype=object)
    ur = [*ur_raw, None]
    target = np.array([float(targets.get(x, strict)) if isinstance(x, str) else strict for x in ur])
    required = np.ceil(target * pop_u - TOL_PERSONS)
    covered_t = sums[f"covered_{float(target_min):g}min"]
    shortfall = np.maximum(required - covered_t, 0.0)
    nearest = mode_by_weight(g, pts["near"], pts["pop"], k, pts["factors"])

    extra = bool(pop_u[-1] > 0 or (pos < 0).any())
    sel = np.arange(n + extra, dtype=np.int64)

    def with_total(x: np.ndarray) -> np.ndarray:
        xs = x[sel]
        return np.append(xs, xs.sum())

    p = with_total(pop_u)
    safe = np.where(p > 0, p, np.nan)
    cols: dict[str, Any] = unit_columns(
        level, codes, units["name"].to_numpy(dtype=object)[upos], ur_raw, extra
    )
    cols[pop_field] = p
    for t in ths:
        c = with_total(sums[f"covered_{t:g}min"])
        cols[f"covered_{t:g}min"] = c
        cols[f"share_{t:g}min"] = c / safe
    req = with_total(required)
    cols["target_share"] = np.append(target[sel], req[-1] / safe[-1])
    sf = with_total(shortfall)
    cols["meets_target"] = (sf <= TOL_PERSONS, p <= 0)  # values and NA mask (NA: nobody)
    cols["shortfall_persons"] = sf
    rp = with_total(sums["reach_pop"])
    cols["mean_walk_min"] = with_total(sums["walk_w"]) / np.where(rp > 0, rp, np.nan)
    near_rows = [nearest[i] for i in sel.tolist()] + [pts["all_near"]]
    cols["nearest_centre"] = near_rows
    cols["unreachable_pop"] = with_total(sums["unreachable_pop"])
    cols["too_far_pop"] = with_total(sums["too_far_pop"])
    if "covered_capacity_adj" in sums:
        adj = with_total(sums["covered_capacity_adj"])
        cols["covered_capacity_adj"] = adj
        cols["share_capacity_adj"] = adj / safe
    return cols


def head_rows(cols: dict[str, Any], n: int) -> dict[str, Any]:
    """Take the first ``n`` rows of a level's columns."""
    return {k: tuple(x[:n] for x in v) if isinstance(v, tuple) else v[:n] for k, v in cols.items()}


_OBJECT_COLUMNS = frozenset({"level", "adcode", "name", "urban_rural", "nearest_centre"})


def table_frame(levels: list[dict[str, Any]]) -> pd.DataFrame:
    """Put the levels' columns one after the other in one frame (one build, no concat)."""
    index = pd.RangeIndex(sum(len(cols["level"]) for cols in levels))
    out: dict[str, Any] = {}
    for name in levels[0]:
        parts = [cols[name] for cols in levels]
        if name in _OBJECT_COLUMNS:  # lists; object dtype said, else pandas makes them str
            out[name] = pd.Series([x for part in parts for x in part], index=index, dtype=object)
        elif name == "meets_target":
            values, mask = (np.concatenate(x) for x in zip(*parts, strict=True))
            out[name] = pd.arrays.BooleanArray(values, mask)
        else:
            out[name] = np.concatenate(parts)
    return pd.DataFrame(out, index=index)

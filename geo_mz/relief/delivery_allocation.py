"""Kits: what each store can send, what each demand point needs, and who sends what.

:func:`check_stores` validates a ``relief_stores`` layer and gives each store its stock, the kits
its vehicles can carry over all their trips and its delivery target; :func:`demand_from` turns
people at villages, shelters or incidents into kits needed; :func:`allocate` assigns kits from
store stock to demand points by a min-cost flow (:func:`geo_mz.network.assign`): as many kits as
possible, then as few late kits as possible, then the least arrival time.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_mz.network.flow import assign
from geo_mz.relief._delivery_checks import (
    check_demand,
    integers,
    points_ok,
    raise_problems,
    rows,
)
from geo_mz.relief.delivery_settings import (
    STORE_LEVELS,
    DeliveryError,
    DeliverySettings,
    target_min,
)

# --------------------------------------------------------------------------- inputs


def check_stores(
    stores: gpd.GeoDataFrame, settings: DeliverySettings | None = None
) -> pd.DataFrame:
    """Validate a ``relief_stores`` layer; return ids, names, levels, stock, fleet, target, adcode.

    ``fleet_kits`` = vehicles_n × vehicle_capacity_kits × ``trips_per_vehicle``: the kits the
    store's vehicles can carry over all their trips.

    Raises
    ------
    DeliveryError
        Naming every bad field and row at once (missing field, negative or non-integer stock,
        unknown level, duplicate id, non-point geometry).
    """
    s = settings or DeliverySettings()
    if not isinstance(stores, gpd.GeoDataFrame):
        raise TypeError(f"`stores` must be a GeoDataFrame, got {type(stores).__name__}")
    problems: list[str] = []
    for col in ("store_id", "level"):
        if col not in stores.columns:
            problems.append(f"field '{col}' is missing")
    out = pd.DataFrame({"store_id": stores.get("store_id", pd.Series(index=stores.index))})
    out["store_id"] = out["store_id"].astype(str)
    out["name"] = stores["name"].astype(str) if "name" in stores else out["store_id"]
    out["level"] = stores.get("level", pd.Series("", index=stores.index)).astype(str)
    unknown = ~out["level"].isin(STORE_LEVELS).to_numpy()
    if "level" in stores and unknown.any():
        problems.append(
            f"field 'level' has unknown values {sorted(set(out['level'][unknown]))} at "
            f"{rows(stores, unknown, 'store_id')}; allowed {list(STORE_LEVELS)}"
        )
    for col in ("stock_kits", "vehicles_n", "vehicle_capacity_kits"):
        out[col] = integers(stores, col, "store_id", problems)
    points_ok(stores, "store_id", problems)
    out["adcode"] = _codes(stores)
    no_code = (out["adcode"] == "").to_numpy()
    if s.match == "own" and no_code.any():
        problems.append(
            "区划代码 adcode 缺失或为空，按本辖区分配需要它，请补上或改用 --match any / field "
            "'adcode' is missing or empty: match='own' (--match own) needs each store's area "
            f"code; fill it in, or use match='any': {rows(stores, no_code, 'store_id')}"
        )
    raise_problems("relief_stores", problems)
    out["fleet_kits"] = out["vehicles_n"] * out["vehicle_capacity_kits"] * s.trips_per_vehicle
    out["target_min"] = [target_min(lv, s) for lv in out["level"]]
    return out.reset_index(drop=True)


def _codes(df: pd.DataFrame) -> pd.Series:
    """Return the ``adcode`` column as strings ("" where missing or the column is absent)."""
    if "adcode" not in df.columns:
        return pd.Series("", index=df.index, dtype=object)
    return df["adcode"].map(lambda v: "" if pd.isna(v) else str(v).strip())


def _own_area(st: pd.DataFrame, demand: gpd.GeoDataFrame) -> np.ndarray:
    """``(n_stores, n_demand)``: True where the store's adcode is a prefix of the point's."""
    code = _codes(demand)
    if (code == "").any():
        raise DeliveryError(
            "需求点缺少区划代码 adcode，无法按本辖区分配，请补上 adcode 字段或改用 --match any / "
            "demand points without an 'adcode' cannot be matched to their own area's store "
            "(match='own', --match own): give the points an adcode field, or use match='any': "
            + rows(demand, (code == "").to_numpy(), "point_id")
        )
    return np.array([code.str.startswith(c).to_numpy(bool) for c in st["adcode"]]).reshape(
        len(st), len(demand)
    )


_ID_COLUMNS = ("point_id", "shelter_id", "incident_id", "village_id", "name_id", "adcode")


def demand_from(
    points: gpd.GeoDataFrame,
    people_col: str,
    settings: DeliverySettings | None = None,
    *,
    id_col: str | None = None,
    name_col: str = "name",
) -> gpd.GeoDataFrame:
    """Kits needed at each demand point (village, shelter, incident).

    Parameters
    ----------
    points
        Point layer with an id column and ``people_col``.
    people_col
        People to supply (displaced persons, shelter occupants); may be fractional.
    settings
        ``kits_per_person`` is used.
    id_col
        Id column; default the first of ``point_id``, ``shelter_id``, ``incident_id``,
        ``village_id``, ``name_id``, ``adcode`` present.
    name_col
        Name column (the id when absent).

    Returns
    -------
    geopandas.GeoDataFrame
        ``point_id`` (str), ``name``, ``people``, ``demand_kits`` = ceil(people × kits_per_person)
        and the geometry, in the input CRS.
    """
    s = settings or DeliverySettings()
    if not isinstance(points, gpd.GeoDataFrame):
        raise TypeError(f"`points` must be a GeoDataFrame, got {type(points).__name__}")
    problems: list[str] = []
    idc = id_col or next((c for c in _ID_COLUMNS if c in points.columns), None)
    if idc is None or idc not in points.columns:
        problems.append(f"no id field: give id_col= or one of {list(_ID_COLUMNS)}")
    people = np.zeros(len(points))
    if people_col not in points.columns:
        problems.append(f"field '{people_col}' is missing")
    else:
        people = pd.to_numeric(points[people_col], errors="coerce").to_numpy(float, na_value=np.nan)
        for mask, what in (
            (np.isnan(people), "is empty or not a number"),
            (people < 0, "is negative"),
        ):
            if mask.any():
                problems.append(f"field '{people_col}' {what} at {rows(points, mask, idc)}")
    if idc is not None and idc in points.columns:
        points_ok(points, idc, problems)
    raise_problems("demand points", problems)
    assert idc is not None
    ids = points[idc].astype(str).to_numpy()
    # round first: 300 × 0.1 is 30.000000000000004 in floating point, which must stay 30 kits
    kits = np.ceil(np.round(people * s.kits_per_person, 6)).astype(np.int64)
    names = points[name_col].astype(str).to_numpy() if name_col in points else ids
    cols = {"point_id": ids, "name": names, "people": people, "demand_kits": kits}
    if "adcode" in points.columns:  # kept for match="own"
        cols["adcode"] = _codes(points).to_numpy()
    return gpd.GeoDataFrame(cols, geometry=points.geometry.values, crs=points.crs)


# --------------------------------------------------------------------------- allocation


def allocate(
    stores: gpd.GeoDataFrame,
    demand: gpd.GeoDataFrame,
    times_min: np.ndarray,
    settings: DeliverySettings | None = None,
    *,
    within_target: bool = True,
) -> pd.DataFrame:
    """Allocate kits from store stock to demand points by min-cost flow.

    The cost of a kit is its direct arrival time (``dispatch_prep_min`` + driving). A store
    sends at most min(stock, vehicles_n × vehicle_capacity_kits × trips_per_vehicle): each
    vehicle makes up to ``trips_per_vehicle`` trips (``fleet_kits`` of :func:`check_stores`).
    :func:`geo_mz.network.assign` first maximises the kits placed. With ``within_target`` a late
    pair (arrival beyond the store level's target) also costs a penalty larger than any
    reassignment of on-time kits can save, so among maximum allocations the one with the fewest
    late kits wins; late pairs are used only for demand that on-time stock cannot meet, and are
    flagged ``late``. (One flow rather than two passes: serving on-time pairs first and late ones
    in a second pass can place fewer kits in total.) Without it the cost is the time alone.

    Parameters
    ----------
    stores
        ``relief_stores`` layer (store_id, level, stock_kits, vehicles_n, vehicle_capacity_kits).
    demand
        From :func:`demand_from` (point_id, name, demand_kits).
    times_min
        ``(n_stores, n_demand)`` driving minutes (:func:`geo_mz.relief.store_times`); inf =
        unreachable.
    settings
        Dispatch prep, targets and the flow engine.
    within_target
        Prefer on-time pairs (see above).

    Returns
    -------
    pandas.DataFrame
        One row per (store, point) with kits: store_id, point_id, name, kits, time_min (direct
        arrival after the order), target_min, late, unmet_kits = 0, reason = "". Then one row per
        point short of kits: store_id None, kits 0, unmet_kits, reason ("unreachable": no store
        reaches it; "no store of its area": with ``match="own"``, only stores of other areas
        reach it; "no stock": the stores reaching it are empty; "no vehicle capacity": they
        have stock but their vehicles are full over all their trips). Per point, kits +
        unmet_kits = demand_kits.
    """
    s = settings or DeliverySettings()
    st = check_stores(stores, s)
    check_demand(demand)
    t = np.asarray(times_min, dtype=np.float64)
    if t.shape != (len(st), len(demand)):
        raise DeliveryError(f"`times_min` has shape {t.shape}, need ({len(st)}, {len(demand)})")
    if np.isnan(t).any() or (t < 0).any():
        raise DeliveryError("`times_min` must be >= 0 (inf for unreachable), without NaN")
    need = demand["demand_kits"].to_numpy(dtype=np.int64)
    cap = np.minimum(st["stock_kits"], st["fleet_kits"]).to_numpy(dtype=np.int64)
    reached = np.isfinite(t).any(axis=0)
    if s.match == "own":
        t = np.where(_own_area(st, demand), t, np.inf)
    si, pj = np.nonzero(np.isfinite(t))
    arrival = s.dispatch_prep_min + t[si, pj]
    target = st["target_min"].to_numpy()[si]
    late = arrival > target + 1e-9
    cost = arrival.copy()
    if within_target and late.any():
        # A change of allocation is a set of cycles of at most n_stores + n_demand + 2 pairs;
        # this penalty outweighs the time any such cycle can save (as in flow._solve_networkx).
        cost += late * ((len(st) + len(demand) + 2) * arrival.max() + 1.0)
    res = assign(need, cap, pj, si, cost, engine=s.allocation_engine)
    f = res.flows
    pair = np.full(t.shape, -1, dtype=np.int64)
    pair[si, pj] = np.arange(len(si))
    k = pair[f["j"].to_numpy(), f["i"].to_numpy()]
    short = np.flatnonzero(res.unassigned > 0)
    left = st["stock_kits"].to_numpy() - res.load
    reasons = []
    for p in short:
        reach = si[pj == p]
        if len(reach) == 0:
            reasons.append("no store of its area" if reached[p] else "unreachable")
        else:
            reasons.append("no vehicle capacity" if (left[reach] > 0).any() else "no stock")
    pts = np.concatenate([f["i"].to_numpy(), short]).astype(np.int64)
    n, m = len(f), len(short)
    return pd.DataFrame(
        {
            "store_id": [*st["store_id"].to_numpy()[f["j"]], *([None] * m)],
            "point_id": demand["point_id"].astype(str).to_numpy()[pts],
            "name": demand["name"].astype(str).to_numpy()[pts],
            "kits": np.concatenate([f["amount"].to_numpy(), np.zeros(m)]).astype(np.int64),
            "time_min": np.concatenate([arrival[k], np.full(m, np.nan)]),
            "target_min": np.concatenate([target[k], np.full(m, np.nan)]),
            "late": np.concatenate([late[k], np.zeros(m, dtype=bool)]),
            "unmet_kits": np.concatenate([np.zeros(n), res.unassigned[short]]).astype(np.int64),
            "reason": [""] * n + reasons,
        }
    )


__all__ = ["allocate", "check_stores", "demand_from"]

"""Relief-material delivery: kits from stores to villages/shelters, then vehicle routes.

Steps, each a function so the CLI, the demo and notebooks can stop after any of them:

1. :func:`demand_from` — kits needed per demand point (people × ``kits_per_person``, rounded up);
2. :func:`store_times` / :func:`travel_time_matrix` — truck minutes store → point on a drive
   :class:`~geo_mz.network.Network` (scipy Dijkstra from each distinct origin node);
3. :func:`allocate` — a min-cost flow (:func:`geo_mz.network.assign`) of kits from store stock to
   demand points: as many kits as possible, then as few late kits as possible, then the least
   arrival time;
4. :func:`plan_routes` — per store and trip, an OR-Tools capacitated vehicle-routing problem
   with a time dimension (:mod:`geo_mz.network.vrp`) over the kits allocated to it and not yet
   carried:
   a truck back from a trip reloads and goes again (``trips_per_vehicle``); reports routes
   (one per trip), stops (arrival, margin to the target) and every kit not delivered with its
   reason.

Targets are counted from the dispatch order: ``dispatch_prep_min`` for loading, then driving and
unloading (``service_min_per_stop``). A store's target is that of its level (STANDARDS.md §C).
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse.csgraph import dijkstra

from geo_mz.core.errors import GeoMzError
from geo_mz.core.results import Kpi, ReportTable, conform, display_table, result_catalog
from geo_mz.network.flow import assign
from geo_mz.network.graph import WALK_SPEED_KMH, Network
from geo_mz.network.paths import route_geometry, shortest_path_arcs, snap_points
from geo_mz.network.vrp import RoutingModelError, pieces, solve_trip, visits

Lang = Literal["zh", "en"]
STORAGE_CRS = "EPSG:4490"

#: First batch at the disaster area within these hours of the dispatch order, by store level.
#: SOURCED (STANDARDS.md §C "Delivery-time targets", 国家防灾减灾救灾委员会办公室 2024 guideline).
DELIVERY_TARGET_H: Mapping[str, float] = MappingProxyType(
    {"county": 6.0, "city": 8.0, "province": 10.0}
)
#: Basic needs met within 10 h of a disaster. SOURCED (STANDARDS.md §C, 《"十四五"国家综合防灾减灾
#: 规划》); the fallback for levels without a national delivery target (township, central).
BASIC_NEEDS_H = 10.0
STORE_LEVELS = ("central", "province", "city", "county", "township")
UNMET_REASONS = ("unreachable", "no stock", "no vehicle capacity", "dropped by routing")


class DeliveryError(GeoMzError, ValueError):
    """Delivery inputs are malformed (missing fields, negative stock) or inconsistent."""


@dataclass(frozen=True)
class DeliverySettings:
    """Options of the relief-delivery plan; every default names its source.

    Attributes
    ----------
    kits_per_person
        Kits per displaced person: 1.0, local choice (one family-kit unit per person).
    dispatch_prep_min
        Minutes from the dispatch order until the vehicles leave: 30, local choice.
    service_min_per_stop
        Unloading minutes per vehicle visit: 15, local choice.
    trips_per_vehicle
        Trips each vehicle may make: 3, local choice (a truck returns, reloads and goes again
        while the target allows; later trips may still run past it and are flagged late). 1 =
        one trip per vehicle, no reloading.
    reload_min
        Minutes of loading at the store between two trips of a vehicle: 20, local choice.
    target_h_by_level
        Delivery target in hours by store level: county 6 / city 8 / province 10, SOURCED
        (STANDARDS.md §C). A level not listed (township, central: no national target) falls back
        to ``basic_needs_h``. A bureau may override, e.g. Pengjiang's local plan (district 5,
        town 3: ``{"county": 5, "township": 3}``).
    basic_needs_h
        10 h, SOURCED (STANDARDS.md §C, 十四五 plan; the legacy value is 12).
    allocation_engine
        ``"networkx"`` (network simplex, as the issue asks) or ``"ortools"``; same optimum.
    vrp_time_limit_s
        Guided-local-search time per store and trip: at most 5 s and 0.05 s per routing piece,
        local choice (small problems converge in well under a second).
    vehicle_speed_factor
        Multiplies the network's speeds (times are divided by it), like the network's own
        ``disaster_factor``: 1.0 = the network's road-class speeds (already derated if the
        network was built with a disaster factor).
    access_speed_kmh
        Speed of the straight leg between a store or point and its nearest road node: 4 km/h,
        on foot, the conservative choice (DERIVED walking speed, STANDARDS.md §B), as in the
        relief audit (``relief.ReliefSettings.last_leg_kmh``) and ``network.snap_points``.
    max_snap_m
        A store or point farther than this from every road node is unreachable: 2,000 m, local
        choice (the relief audit's snap limit).
    """

    kits_per_person: float = 1.0
    dispatch_prep_min: float = 30.0
    service_min_per_stop: float = 15.0
    trips_per_vehicle: int = 3
    reload_min: float = 20.0
    target_h_by_level: Mapping[str, float] = field(default_factory=lambda: dict(DELIVERY_TARGET_H))
    basic_needs_h: float = BASIC_NEEDS_H
    allocation_engine: Literal["networkx", "ortools"] = "networkx"
    vrp_time_limit_s: float = 5.0
    vehicle_speed_factor: float = 1.0
    access_speed_kmh: float = WALK_SPEED_KMH
    max_snap_m: float = 2000.0

    def __post_init__(self) -> None:
        pos = ("kits_per_person", "basic_needs_h", "vrp_time_limit_s", "vehicle_speed_factor")
        nonneg = ("dispatch_prep_min", "service_min_per_stop", "reload_min", "max_snap_m")
        bad = [f"`{n}` must be > 0" for n in (*pos, "access_speed_kmh") if not getattr(self, n) > 0]
        bad += [f"`{n}` must be >= 0" for n in nonneg if not getattr(self, n) >= 0]
        bad += [
            f"target_h_by_level[{k!r}] must be > 0"
            for k, v in self.target_h_by_level.items()
            if not v > 0
        ]
        trips = self.trips_per_vehicle
        if isinstance(trips, bool) or not isinstance(trips, numbers.Integral) or trips < 1:
            bad.append("`trips_per_vehicle` must be a whole number >= 1")
        if self.allocation_engine not in ("networkx", "ortools"):
            bad.append("`allocation_engine` must be 'networkx' or 'ortools'")
        if bad:
            raise DeliveryError("bad delivery settings:\n  - " + "\n  - ".join(bad))


def target_min(level: str, settings: DeliverySettings | None = None) -> float:
    """Delivery target in minutes after the dispatch order for a store ``level``."""
    s = settings or DeliverySettings()
    return 60.0 * float(s.target_h_by_level.get(level, s.basic_needs_h))


@dataclass
class DeliveryPlan:
    """Everything :func:`plan_routes` produced (GeoDataFrames in EPSG:4490).

    ``allocation`` is the :func:`allocate` table; ``routes`` one row per vehicle trip (``trip``
    1, 2, ...); ``stops`` one row per vehicle visit; ``unmet`` one row per demand point short of
    kits (``reason`` joins the :data:`UNMET_REASONS` that apply); ``stores`` kits, vehicles and
    trips per store; ``solver`` the OR-Tools status per store (the distinct statuses of its
    trips, joined by "; ").
    """

    settings: DeliverySettings
    demand: gpd.GeoDataFrame
    allocation: pd.DataFrame
    routes: gpd.GeoDataFrame
    stops: gpd.GeoDataFrame
    unmet: pd.DataFrame
    stores: pd.DataFrame
    kpis: list[Kpi]
    solver: dict[str, str]


# --------------------------------------------------------------------------- inputs


def _rows(df: pd.DataFrame, mask: np.ndarray, id_col: str | None) -> str:
    idx = np.flatnonzero(mask)[:10]
    ids = f" ({id_col} {df[id_col].iloc[idx].tolist()})" if id_col in df.columns else ""
    return f"rows {idx.tolist()}{ids}"


def _integers(df: pd.DataFrame, col: str, id_col: str, problems: list[str]) -> np.ndarray:
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
            problems.append(f"field '{col}' {what} at {_rows(df, mask, id_col)}: {v[mask][:10]}")
    return np.nan_to_num(v).astype(np.int64)


def _points_ok(gdf: gpd.GeoDataFrame, id_col: str, problems: list[str]) -> None:
    g = np.asarray(gdf.geometry.values)
    bad = shapely.is_missing(g) | shapely.is_empty(g) | (shapely.get_type_id(g) != 0)
    if bad.any():
        problems.append(f"geometry is missing or not a Point at {_rows(gdf, bad, id_col)}")
    if gdf.crs is None:
        problems.append("the layer has no CRS")
    ids = gdf[id_col].astype(str) if id_col in gdf else None
    if ids is not None and ids.duplicated().any():
        problems.append(f"duplicate {id_col} {sorted(set(ids[ids.duplicated()]))[:10]}")


def _raise(what: str, problems: list[str]) -> None:
    if problems:
        raise DeliveryError(f"{what} cannot be used:\n  - " + "\n  - ".join(problems))


def check_stores(
    stores: gpd.GeoDataFrame, settings: DeliverySettings | None = None
) -> pd.DataFrame:
    """Validate a ``relief_stores`` layer; return store_id, name, level, stock, fleet, target.

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
            f"{_rows(stores, unknown, 'store_id')}; allowed {list(STORE_LEVELS)}"
        )
    for col in ("stock_kits", "vehicles_n", "vehicle_capacity_kits"):
        out[col] = _integers(stores, col, "store_id", problems)
    _points_ok(stores, "store_id", problems)
    _raise("relief_stores", problems)
    out["fleet_kits"] = out["vehicles_n"] * out["vehicle_capacity_kits"] * s.trips_per_vehicle
    out["target_min"] = [target_min(lv, s) for lv in out["level"]]
    return out.reset_index(drop=True)


def _check_demand(demand: gpd.GeoDataFrame) -> None:
    if not isinstance(demand, gpd.GeoDataFrame):
        raise TypeError(f"`demand` must be a GeoDataFrame, got {type(demand).__name__}")
    problems: list[str] = []
    if "point_id" not in demand.columns:
        problems.append("field 'point_id' is missing (build demand with demand_from)")
    _integers(demand, "demand_kits", "point_id", problems)
    _points_ok(demand, "point_id", problems)
    _raise("demand", problems)


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
                problems.append(f"field '{people_col}' {what} at {_rows(points, mask, idc)}")
    if idc is not None and idc in points.columns:
        _points_ok(points, idc, problems)
    _raise("demand points", problems)
    assert idc is not None
    ids = points[idc].astype(str).to_numpy()
    # round first: 300 × 0.1 is 30.000000000000004 in floating point, which must stay 30 kits
    kits = np.ceil(np.round(people * s.kits_per_person, 6)).astype(np.int64)
    names = points[name_col].astype(str).to_numpy() if name_col in points else ids
    return gpd.GeoDataFrame(
        {"point_id": ids, "name": names, "people": people, "demand_kits": kits},
        geometry=points.geometry.values,
        crs=points.crs,
    )


# --------------------------------------------------------------------------- travel times


def travel_time_matrix(net: Network, from_nodes: np.ndarray, to_nodes: np.ndarray) -> np.ndarray:
    """Network minutes from each of ``from_nodes`` to each of ``to_nodes``.

    One ``scipy.sparse.csgraph.dijkstra`` over the distinct origins; ``inf`` where unreachable.

    Returns
    -------
    numpy.ndarray
        ``(len(from_nodes), len(to_nodes))`` float64 minutes.
    """
    src = np.asarray(from_nodes, dtype=np.int64).ravel()
    dst = np.asarray(to_nodes, dtype=np.int64).ravel()
    for name, a in (("from_nodes", src), ("to_nodes", dst)):
        if len(a) and (a.min() < 0 or a.max() >= net.n_nodes):
            raise DeliveryError(f"`{name}` must be node indices in [0, {net.n_nodes})")
    if len(src) == 0 or len(dst) == 0:
        return np.zeros((len(src), len(dst)))
    uniq, inv = np.unique(src, return_inverse=True)
    out = np.empty((len(uniq), len(dst)))
    for a in range(0, len(uniq), 64):  # 64 origins at a time bound the (k, n_nodes) memory
        dist = dijkstra(net.graph, directed=True, indices=uniq[a : a + 64])
        out[a : a + 64] = np.asarray(dist, dtype=np.float64).reshape(-1, net.n_nodes)[:, dst]
    return out[inv.ravel()]


def _snap(
    net: Network, gdf: gpd.GeoDataFrame, s: DeliverySettings
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest node and access minutes (inf if farther than ``max_snap_m``) of each point."""
    sn = snap_points(net, gdf, max_snap_m=s.max_snap_m, access_speed_kmh=s.access_speed_kmh)
    return sn.node, np.where(sn.too_far, np.inf, sn.offset_min)


def _leg_minutes(
    net: Network, nodes: np.ndarray, off: np.ndarray, s: DeliverySettings
) -> np.ndarray:
    """Truck minutes between located points (access + network + access legs), 0 diagonal."""
    t = (
        off[:, None] + travel_time_matrix(net, nodes, nodes) + off[None, :]
    ) / s.vehicle_speed_factor
    np.fill_diagonal(t, 0.0)
    return t


def store_times(
    net: Network,
    stores: gpd.GeoDataFrame,
    demand: gpd.GeoDataFrame,
    settings: DeliverySettings | None = None,
) -> np.ndarray:
    """Truck minutes from each store to each demand point (driving only, no dispatch prep).

    Straight access legs at ``access_speed_kmh`` join each point to its nearest node; a point
    farther than ``max_snap_m`` is unreachable (inf). Times are divided by
    ``vehicle_speed_factor``.

    Returns
    -------
    numpy.ndarray
        ``(n_stores, n_demand)`` minutes, ``inf`` where unreachable (the input of
        :func:`allocate`).
    """
    s = settings or DeliverySettings()
    sn, so = _snap(net, stores, s)
    dn, do = _snap(net, demand, s)
    return (so[:, None] + travel_time_matrix(net, sn, dn) + do[None, :]) / s.vehicle_speed_factor


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
        ``(n_stores, n_demand)`` driving minutes (:func:`store_times`); inf = unreachable.
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
        reaches it; "no stock": the stores reaching it are empty; "no vehicle capacity": they
        have stock but their vehicles are full over all their trips). Per point, kits +
        unmet_kits = demand_kits.
    """
    s = settings or DeliverySettings()
    st = check_stores(stores, s)
    _check_demand(demand)
    t = np.asarray(times_min, dtype=np.float64)
    if t.shape != (len(st), len(demand)):
        raise DeliveryError(f"`times_min` has shape {t.shape}, need ({len(st)}, {len(demand)})")
    if np.isnan(t).any() or (t < 0).any():
        raise DeliveryError("`times_min` must be >= 0 (inf for unreachable), without NaN")
    need = demand["demand_kits"].to_numpy(dtype=np.int64)
    cap = np.minimum(st["stock_kits"], st["fleet_kits"]).to_numpy(dtype=np.int64)
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
            reasons.append("unreachable")
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


# --------------------------------------------------------------------------- routing


class _Trip(NamedTuple):
    """One vehicle trip of a store: visits ``[location, kits]`` and their times in minutes."""

    trip: int
    vehicle: int
    depart: float
    visits: list[list[int]]
    arrive: list[float]
    end: float


def _arrivals(
    locs: list[int], leg: np.ndarray, depart: float, service: float
) -> tuple[list[float], float]:
    """Arrival minutes after the order at each visited location, and when unloading ends."""
    t, prev, out = depart, 0, []
    for j in locs:
        t += leg[prev, j]
        out.append(t)
        t += service
        prev = j
    return out, t


def _store_trips(
    leg: np.ndarray,
    kits: np.ndarray,
    vehicles: int,
    capacity: int,
    target: float,
    s: DeliverySettings,
) -> tuple[list[_Trip], np.ndarray, str]:
    """Trips 1, 2, ... of one store's vehicles until its kits are carried or trips run out.

    ``leg`` is the minutes matrix of the store (0) and its points (1..m), ``kits`` the kits
    allocated to each point. Every vehicle is free at ``dispatch_prep_min``; after a trip it is
    free again when the last unloading ends + the drive back to the store + ``reload_min``. Each
    trip routes the kits still left with the vehicles' free times as their start times.

    Returns
    -------
    tuple
        The trips, the kits left per point (dropped by routing) and the solver statuses.
    """
    left = np.asarray(kits, dtype=np.int64).copy()
    free = np.full(vehicles, float(s.dispatch_prep_min))
    trips: list[_Trip] = []
    statuses: list[str] = []
    for trip in range(1, s.trips_per_vehicle + 1):
        ready = np.flatnonzero(np.isfinite(free))  # a vehicle with no road back stays out
        if left.sum() == 0 or len(ready) == 0:
            break
        cuts = [pieces(int(x), capacity) for x in left]
        loc = [j for j, c in enumerate(cuts, start=1) for _ in c]
        kit = [x for c in cuts for x in c]
        try:
            routes, status = solve_trip(
                leg,
                np.array(loc),
                np.array(kit),
                capacity,
                free[ready].tolist(),
                target,
                s.service_min_per_stop,
                s.vrp_time_limit_s,
            )
        except RoutingModelError as exc:
            raise DeliveryError(str(exc)) from exc
        statuses.append(status)
        carried = 0
        for v, seq in zip(ready, routes, strict=True):
            vis = visits(seq, loc, kit)
            if not vis:
                continue
            arrive, end = _arrivals([j for j, _ in vis], leg, free[v], s.service_min_per_stop)
            trips.append(_Trip(trip, int(v) + 1, float(free[v]), vis, arrive, end))
            for j, x in vis:
                left[j - 1] -= x
                carried += x
            free[v] = end + leg[vis[-1][0], 0] + s.reload_min
        if carried == 0:  # nothing fits any more: another trip would not help either
            break
    return trips, left, "; ".join(dict.fromkeys(statuses))


def _route_line(
    net: Network, xy: np.ndarray, nodes: np.ndarray, locs: list[int]
) -> shapely.LineString:
    """Road line from the store (location 0) through the visited locations, access legs included."""
    coords = [xy[0], net.node_xy[nodes[0]]]
    for a, b in itertools.pairwise(locs):
        _, arcs = shortest_path_arcs(net, int(nodes[a]), int(nodes[b]))
        if len(arcs):
            coords.extend(shapely.get_coordinates(route_geometry(net, arcs)))
        coords += [xy[b], net.node_xy[nodes[b]]]
    c = np.asarray(coords[:-1], dtype=float)  # ends at the last stop, not back at its node
    c = c[np.r_[True, np.any(np.diff(c, axis=0) != 0, axis=1)]]
    if len(c) < 2:  # store and stop at one spot: a 0.1 m stub keeps the line valid
        c = np.vstack([c[:1], c[:1] + np.array([0.1, 0.0])])
    return shapely.LineString(c)


def plan_routes(
    net: Network,
    stores: gpd.GeoDataFrame,
    demand: gpd.GeoDataFrame,
    allocation: pd.DataFrame,
    settings: DeliverySettings | None = None,
) -> DeliveryPlan:
    """Route each store's vehicles, trip by trip, over the kits allocated to it (OR-Tools).

    Per store: ``vehicles_n`` vehicles of ``vehicle_capacity_kits``, each making up to
    ``trips_per_vehicle`` trips, planned one trip after another (:func:`_store_trips`). On trip 1
    every vehicle leaves at ``dispatch_prep_min``; each visit adds ``service_min_per_stop``; a
    route ends at its last stop. A vehicle then drives back to the store (network time from its
    last stop), reloads for ``reload_min`` and may leave on trip k + 1 with the kits trip k could
    not carry; a vehicle that made no trip k is still free when it was. A vehicle free only after
    the target still goes: its stops are late and flagged. Each trip is one OR-Tools model
    (:func:`geo_mz.network.solve_trip`, per-vehicle start times): a stop's kits are cut into whole
    vehicle loads plus pieces of 1, 2, 4, ... kits (:func:`geo_mz.network.pieces`), so a stop larger
    than a vehicle gets several visits and any stop may be split between vehicles to fill them
    exactly; pieces unloaded in a row at one place are one visit. Arrival after the store level's
    target is a soft bound (a large penalty per late second). A piece is dropped only when no
    vehicle has room for it; it goes on the next trip, and kits still left after the last trip
    are listed in ``unmet`` as "dropped by routing" (the allocation already keeps each store
    within vehicles × capacity × trips, so this is rare). Objective per trip: dropped kits ≫ late
    seconds > span (10 per second) > driving seconds. First solution PATH_CHEAPEST_ARC, then
    GUIDED_LOCAL_SEARCH for ``vrp_time_limit_s`` per store and trip. Reported times are
    recomputed in float minutes along the chosen routes; a route's ``depart_min`` is when it
    leaves the store and ``duration_min`` runs to its last unloading (the drive back is not part
    of the route line).

    Parameters
    ----------
    net
        Drive network (the one :func:`store_times` used).
    stores, demand
        As for :func:`allocate`.
    allocation
        The :func:`allocate` table (rows with a store_id are routed; unmet rows carry over).
    settings
        Times, speeds and the solver time limit.

    Returns
    -------
    DeliveryPlan
    """
    s = settings or DeliverySettings()
    st = check_stores(stores, s)
    _check_demand(demand)
    need = pd.Series(demand["demand_kits"].to_numpy(np.int64), index=demand["point_id"].astype(str))
    alloc = allocation[allocation["store_id"].notna() & (allocation["kits"] > 0)]
    bad = sorted(set(alloc["store_id"]) - set(st["store_id"]))
    bad += sorted(set(allocation["point_id"].astype(str)) - set(need.index))
    over = alloc.groupby("point_id")["kits"].sum().sub(need, fill_value=0)
    if bad or (over > 0).any():
        raise DeliveryError(
            f"allocation does not match the stores and demand: unknown ids {bad[:10]}, points "
            f"given more kits than they need {over[over > 0].index.tolist()[:10]}"
        )
    d_xy = shapely.get_coordinates(demand.geometry.to_crs(net.crs).values)
    s_xy = shapely.get_coordinates(stores.geometry.to_crs(net.crs).values)
    (s_node, s_off), (d_node, d_off) = _snap(net, stores, s), _snap(net, demand, s)
    pos = pd.Series(np.arange(len(demand)), index=need.index)
    names = demand["name"].astype(str).to_numpy() if "name" in demand else need.index.to_numpy()
    stop_rows, route_rows, dropped, status = [], [], [], {}
    for k, store in st.iterrows():
        sid, target = store["store_id"], store["target_min"]
        mine = alloc[alloc["store_id"] == sid]
        pts = pos[mine["point_id"].astype(str)].to_numpy()
        cap, nveh = int(store["vehicle_capacity_kits"]), int(store["vehicles_n"])
        if len(mine) and (cap <= 0 or nveh <= 0):
            dropped += [
                (p, x, "no vehicle capacity") for p, x in zip(pts, mine["kits"], strict=True)
            ]
            status[sid] = "NO_VEHICLES"
        if len(mine) == 0 or cap <= 0 or nveh <= 0:
            continue
        nodes = np.concatenate([[s_node[k]], d_node[pts]])
        leg = _leg_minutes(net, nodes, np.concatenate([[s_off[k]], d_off[pts]]), s)
        trips, left, status[sid] = _store_trips(
            leg, mine["kits"].to_numpy(np.int64), nveh, cap, target, s
        )
        xy = np.vstack([s_xy[k], d_xy[pts]])
        for t in trips:
            rid = f"{sid}-{t.vehicle}-{t.trip}"
            for n_seq, ((j, x), a) in enumerate(zip(t.visits, t.arrive, strict=True), start=1):
                p = pts[j - 1]
                stop_rows.append((f"{rid}-{n_seq}", rid, n_seq, need.index[p], names[p], sid,
                                  t.vehicle, t.trip, x, a, target, target - a,
                                  a > target + 1e-9, shapely.Point(d_xy[p])))  # fmt: skip
            line = _route_line(net, xy, nodes, [0, *(j for j, _ in t.visits)])
            late_n = sum(a > target + 1e-9 for a in t.arrive)
            route_rows.append((rid, sid, store["name"], t.vehicle, t.trip, len(t.visits),
                               sum(x for _, x in t.visits), cap, t.depart, t.end - t.depart,
                               line.length / 1e3, late_n, line))  # fmt: skip
        dropped += [(pts[j], int(x), "dropped by routing") for j, x in enumerate(left) if x > 0]
    stops = _frame(stop_rows, STOP_COLUMNS, net.crs)
    routes_gdf = _frame(route_rows, ROUTE_COLUMNS, net.crs)
    unmet = _unmet(need, names, allocation, stops, dropped)
    by_store = st[["store_id", "name", "level", "stock_kits", "fleet_kits", "target_min"]].copy()
    for col, values in (
        ("allocated_kits", alloc.groupby("store_id")["kits"].sum()),
        ("delivered_kits", stops.groupby("store_id")["kits"].sum()),
        ("vehicles_used", routes_gdf.groupby("store_id")["vehicle"].nunique()),
        ("trips", routes_gdf.groupby("store_id").size()),
    ):
        by_store[col] = values.reindex(by_store["store_id"], fill_value=0).to_numpy(np.int64)
    plan = DeliveryPlan(s, demand, allocation, routes_gdf, stops, unmet, by_store, [], status)
    plan.kpis = delivery_kpis(plan)
    return plan


STOP_COLUMNS = ("stop_id", "route_id", "seq", "point_id", "name", "store_id", "vehicle", "trip")
STOP_COLUMNS += ("kits", "arrival_min", "target_min", "margin_min", "late")
ROUTE_COLUMNS = ("route_id", "store_id", "store_name", "vehicle", "trip", "stops_n", "kits")
ROUTE_COLUMNS += ("capacity_kits", "depart_min", "duration_min", "length_km", "late_stops")


def _frame(rows: list[tuple], columns: tuple[str, ...], crs: str) -> gpd.GeoDataFrame:
    df = pd.DataFrame(rows, columns=[*columns, "geometry"])
    ints = ("vehicle", "trip", "seq", "kits", "stops_n", "late_stops", "capacity_kits")
    df = df.astype({c: "int64" for c in ints if c in df} | ({"late": bool} if "late" in df else {}))
    geom = gpd.GeoSeries(df.pop("geometry").tolist(), crs=crs)
    return gpd.GeoDataFrame(df, geometry=geom.values, crs=crs).to_crs(STORAGE_CRS)


def _unmet(
    need: pd.Series,
    names: np.ndarray,
    allocation: pd.DataFrame,
    stops: gpd.GeoDataFrame,
    dropped: list[tuple[int, int, str]],
) -> pd.DataFrame:
    """One row per point short of kits, with the reasons that explain the shortfall."""
    delivered = stops.groupby("point_id")["kits"].sum().reindex(need.index, fill_value=0)
    short = need - delivered
    rows = (
        allocation[allocation["unmet_kits"] > 0] if "unmet_kits" in allocation else allocation[:0]
    )
    why = pd.DataFrame(
        {
            "point_id": [*rows["point_id"].astype(str), *(need.index[p] for p, _, _ in dropped)],
            "kits": [*rows["unmet_kits"], *(x for _, x, _ in dropped)],
            "reason": [*rows["reason"], *(r for _, _, r in dropped)],
        }
    )
    why = why.groupby(["point_id", "reason"])["kits"].sum()
    out = []
    for i in np.flatnonzero(short.to_numpy() > 0):
        pid = need.index[i]
        reasons = why[pid].to_dict() if pid in why.index.get_level_values(0) else {}
        if sum(reasons.values()) < short.iloc[i]:  # a given allocation left it out
            reasons["not allocated"] = int(short.iloc[i] - sum(reasons.values()))
        order = [r for r in (*UNMET_REASONS, "not allocated") if r in reasons]
        out.append(
            (pid, names[i], need.iloc[i], delivered.iloc[i], short.iloc[i], "; ".join(order))
        )
    cols = ["point_id", "name", "demand_kits", "delivered_kits", "unmet_kits", "reason"]
    ints = {c: "int64" for c in cols[2:5]}
    return pd.DataFrame(out, columns=cols).astype(ints)


def plan_delivery(
    net: Network,
    stores: gpd.GeoDataFrame,
    demand: gpd.GeoDataFrame,
    settings: DeliverySettings | None = None,
    *,
    within_target: bool = True,
) -> DeliveryPlan:
    """:func:`store_times` → :func:`allocate` → :func:`plan_routes` in one call."""
    s = settings or DeliverySettings()
    times = store_times(net, stores, demand, s)
    alloc = allocate(stores, demand, times, s, within_target=within_target)
    return plan_routes(net, stores, demand, alloc, s)


# --------------------------------------------------------------------------- outputs


def delivery_kpis(plan: DeliveryPlan) -> list[Kpi]:
    """Kits delivered share, late stops, unmet kits and the latest arrival."""
    need = int(plan.demand["demand_kits"].sum())
    done = int(plan.stops["kits"].sum())
    late = int(plan.stops["late"].sum())
    unmet = int(plan.unmet["unmet_kits"].sum())
    last = float(plan.stops["arrival_min"].max()) / 60 if len(plan.stops) else float("nan")
    src = "STANDARDS.md §C: 县级6h/市级8h/省级10h, 十四五 10h"
    return [
        Kpi("救灾物资送达率", "Kits delivered share",
            round(done / need * 100, 1) if need else 100.0, "%", "100", done == need, "调运计划"),
        Kpi("超时送达点", "Late stops", f"{late}/{len(plan.stops)}", "", "0", late == 0, src),
        Kpi("未满足物资", "Unmet kits", unmet, "套", "0", unmet == 0, "; ".join(
            sorted({r for rs in plan.unmet["reason"] for r in rs.split("; ")}))),
        Kpi("最晚送达", "Latest arrival", round(last, 2), "h", "", None, "调令后 after the order"),
    ]  # fmt: skip


_ROUTE_TABLE = ("route_id", "store_name", "trip", "stops_n", "kits", "capacity_kits")
_ROUTE_TABLE += ("depart_min", "duration_min", "length_km", "late_stops")
_STOP_TABLE = ("route_id", "seq", "name", "kits", "arrival_min", "target_min", "margin_min", "late")
_UNMET_TITLES = {
    "point_id": ("需求点编号", "Demand point ID"),
    "name": ("需求点", "Demand point"),
    "demand_kits": ("需求(套)", "Kits needed"),
    "delivered_kits": ("送达(套)", "Kits delivered"),
    "unmet_kits": ("缺口(套)", "Kits short"),
    "reason": ("原因", "Reason"),
}
_REASON_ZH = {
    "unreachable": "路网不可达",
    "no stock": "库存不足",
    "no vehicle capacity": "运力不足",
    "dropped by routing": "路径规划未装运",
    "not allocated": "未分配",
}


def report_tables(plan: DeliveryPlan, *, lang: Lang = "zh") -> list[ReportTable]:
    """Report tables: routes, stops and unmet demand (headings Chinese first for ``zh``)."""
    specs, s, zh = result_catalog(), plan.settings, lang == "zh"
    n, r = s.trips_per_vehicle, s.reload_min
    note = (
        f"调令后 {s.dispatch_prep_min:g} 分钟出车，每点卸货 {s.service_min_per_stop:g} 分钟，"
        + (f"每车至多 {n} 趟、返库装车 {r:g} 分钟" if n > 1 else "每车一趟")
        + f" / vehicles leave {s.dispatch_prep_min:g} min after the order, unload "
        f"{s.service_min_per_stop:g} min per stop, "
        + (f"up to {n} trips each, reloading {r:g} min at the store" if n > 1 else "one trip each")
    )
    rc, rr = display_table(plan.routes, specs["delivery_routes"], lang, _ROUTE_TABLE)
    sc, sr = display_table(plan.stops, specs["delivery_stops"], lang, _STOP_TABLE)
    uc = tuple(f"{z} {e}" if zh else f"{e} {z}" for z, e in _UNMET_TITLES.values())
    ur = tuple(
        (*map(str, r[:5]), "；".join(_REASON_ZH[x] for x in r[5].split("; ")) if zh else r[5])
        for r in plan.unmet[list(_UNMET_TITLES)].itertuples(index=False)
    )
    return [
        ReportTable("救灾物资配送路线", "Relief delivery routes", rc, rr, note),
        ReportTable("救灾物资送达点", "Relief delivery stops", sc, sr),
        ReportTable("未满足的物资需求", "Unmet relief demand", uc, ur),
    ]


def output_layers(plan: DeliveryPlan) -> dict[str, gpd.GeoDataFrame]:
    """Return the ``delivery_routes`` and ``delivery_stops`` layers, checked against their specs."""
    specs = result_catalog()
    return {
        "delivery_routes": conform("delivery_routes", plan.routes, specs),
        "delivery_stops": conform("delivery_stops", plan.stops, specs),
    }


__all__ = [
    "BASIC_NEEDS_H",
    "DELIVERY_TARGET_H",
    "UNMET_REASONS",
    "DeliveryError",
    "DeliveryPlan",
    "DeliverySettings",
    "allocate",
    "check_stores",
    "delivery_kpis",
    "demand_from",
    "output_layers",
    "plan_delivery",
    "plan_routes",
    "report_tables",
    "store_times",
    "target_min",
    "travel_time_matrix",
]

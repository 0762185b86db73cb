"""Truck times on the drive network and the vehicle routes of each store, trip by trip.

:func:`travel_time_matrix` and :func:`store_times` give truck minutes between stores and demand
points (scipy Dijkstra from each distinct origin node, straight access legs to the road);
:func:`plan_routes` routes each store's vehicles over the kits allocated to it, one OR-Tools
capacitated vehicle-routing problem per trip (:mod:`geo_mz.network.vrp`), and reports routes,
stops and every kit not delivered with its reason as a :class:`~geo_mz.relief.DeliveryPlan`.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse.csgraph import dijkstra

from geo_mz.network.graph import Network
from geo_mz.network.paths import route_geometry, shortest_path_arcs, snap_points
from geo_mz.network.vrp import RoutingModelError, pieces, solve_trip, visits
from geo_mz.relief._delivery_checks import check_demand
from geo_mz.relief.delivery_allocation import check_stores
from geo_mz.relief.delivery_report import delivery_kpis
from geo_mz.relief.delivery_settings import (
    STORAGE_CRS,
    UNMET_REASONS,
    DeliveryError,
    DeliveryPlan,
    DeliverySettings,
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
        :func:`geo_mz.relief.allocate`).
    """
    s = settings or DeliverySettings()
    sn, so = _snap(net, stores, s)
    dn, do = _snap(net, demand, s)
    return (so[:, None] + travel_time_matrix(net, sn, dn) + do[None, :]) / s.vehicle_speed_factor


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
    ``trips_per_vehicle`` trips, planned one trip after another (``_store_trips``). On trip 1
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
        As for :func:`geo_mz.relief.allocate`.
    allocation
        The :func:`geo_mz.relief.allocate` table (rows with a store_id are routed; unmet rows
        carry over).
    settings
        Times, speeds and the solver time limit.

    Returns
    -------
    DeliveryPlan
    """
    s = settings or DeliverySettings()
    st = check_stores(stores, s)
    check_demand(demand)
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


__all__ = ["plan_routes", "store_times", "travel_time_matrix"]

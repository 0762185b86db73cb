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

The steps live in their own modules: settings, targets and the plan type in
:mod:`geo_mz.relief.delivery_settings`; stores, demand and the allocation in
:mod:`geo_mz.relief.delivery_allocation`; travel times and routes in
:mod:`geo_mz.relief.delivery_routing`; KPIs, report tables and layers in
:mod:`geo_mz.relief.delivery_report`. This module runs them in one call (:func:`plan_delivery`)
and gathers their public names.
"""

from __future__ import annotations

import geopandas as gpd

from geo_mz.network.graph import Network
from geo_mz.relief.delivery_allocation import allocate, check_stores, demand_from
from geo_mz.relief.delivery_report import delivery_kpis, output_layers, report_tables
from geo_mz.relief.delivery_routing import plan_routes, store_times, travel_time_matrix
from geo_mz.relief.delivery_settings import (
    BASIC_NEEDS_H,
    DELIVERY_TARGET_H,
    UNMET_REASONS,
    DeliveryError,
    DeliveryPlan,
    DeliverySettings,
    target_min,
)


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

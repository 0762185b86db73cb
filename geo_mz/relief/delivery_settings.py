"""Settings, targets, errors and the plan type of relief-material delivery.

The options of a delivery plan (:class:`DeliverySettings`, every default naming its source), the
delivery-time target of each store level (:func:`target_min`, STANDARDS.md §C), the error every
delivery step raises (:class:`DeliveryError`) and the :class:`DeliveryPlan` that
:func:`geo_mz.relief.plan_routes` returns; the lowest of the delivery modules, which all import it.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import geopandas as gpd
import pandas as pd

from geo_mz.core.errors import GeoMzError
from geo_mz.core.results import Kpi
from geo_mz.network.graph import WALK_SPEED_KMH

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
UNMET_REASONS = (
    "unreachable",
    "no store of its area",
    "no stock",
    "no vehicle capacity",
    "dropped by routing",
)


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
    match
        ``"any"`` (default): a store sends kits to any demand point it reaches, as a bureau does
        in a disaster. ``"own"``: only to points of its own area, its ``adcode`` a prefix of the
        point's (a town store supplies its town, the district store the whole district), as the
        relief audit's ``match="own"``; stores and demand points then need an ``adcode``, and a
        point that a store reaches but no store of its area does is unmet with the reason
        "no store of its area".
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
    match: Literal["any", "own"] = "any"

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
        if self.match not in ("any", "own"):
            bad.append(f"`match` must be 'any' or 'own', got {self.match!r}")
        if bad:
            raise DeliveryError("bad delivery settings:\n  - " + "\n  - ".join(bad))


def target_min(level: str, settings: DeliverySettings | None = None) -> float:
    """Delivery target in minutes after the dispatch order for a store ``level``."""
    s = settings or DeliverySettings()
    return 60.0 * float(s.target_h_by_level.get(level, s.basic_needs_h))


@dataclass
class DeliveryPlan:
    """Everything :func:`geo_mz.relief.plan_routes` produced (GeoDataFrames in EPSG:4490).

    ``allocation`` is the :func:`geo_mz.relief.allocate` table; ``routes`` one row per vehicle
    trip (``trip`` 1, 2, ...); ``stops`` one row per vehicle visit; ``unmet`` one row per demand
    point short of kits (``reason`` joins the :data:`UNMET_REASONS` that apply); ``stores`` kits,
    vehicles and trips per store; ``solver`` the OR-Tools status per store (the distinct statuses
    of its trips, joined by "; ").
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


__all__ = [
    "BASIC_NEEDS_H",
    "DELIVERY_TARGET_H",
    "UNMET_REASONS",
    "DeliveryError",
    "DeliveryPlan",
    "DeliverySettings",
    "target_min",
]

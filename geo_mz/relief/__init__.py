"""Relief delivery (3 h / 5 h targets) and shelters.

The 3 h / 5 h delivery audit of every village and shelter (also
with roads closed), delivery plans for the stores' vehicles, shelter capacity and adequacy,
and evacuation that respects capacity.
"""

from geo_mz.relief.delivery import plan_delivery
from geo_mz.relief.delivery_allocation import allocate, check_stores, demand_from
from geo_mz.relief.delivery_report import delivery_kpis
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

# The audit's names as drive_audit gathers them (from audit_engine and audit_targets).
from geo_mz.relief.drive_audit import (
    NATIONAL_TARGETS,
    PENGJIANG_TARGETS,
    STATUSES,
    Audit,
    ReliefError,
    ReliefSettings,
    Target,
    audit,
    audit_kpis,
    audit_points,
    compare,
    drive_network,
    preposition,
    reaudit,
    routes,
    run_audit,
    targets_from_json,
    targets_to_json,
    town_summary,
    workspace_targets,
)
from geo_mz.relief.shelter_tables import excel_tables
from geo_mz.relief.shelters import (
    STAGES,
    AdequacyResult,
    EvacuationResult,
    ShelterError,
    ShelterSettings,
    evacuate,
    shelter_adequacy,
    shelter_capacity,
)

__all__ = [
    "BASIC_NEEDS_H",
    "DELIVERY_TARGET_H",
    "NATIONAL_TARGETS",
    "PENGJIANG_TARGETS",
    "STAGES",
    "STATUSES",
    "UNMET_REASONS",
    "AdequacyResult",
    "Audit",
    "DeliveryError",
    "DeliveryPlan",
    "DeliverySettings",
    "EvacuationResult",
    "ReliefError",
    "ReliefSettings",
    "ShelterError",
    "ShelterSettings",
    "Target",
    "allocate",
    "audit",
    "audit_kpis",
    "audit_points",
    "check_stores",
    "compare",
    "delivery_kpis",
    "demand_from",
    "drive_network",
    "evacuate",
    "excel_tables",
    "plan_delivery",
    "plan_routes",
    "preposition",
    "reaudit",
    "routes",
    "run_audit",
    "shelter_adequacy",
    "shelter_capacity",
    "store_times",
    "target_min",
    "targets_from_json",
    "targets_to_json",
    "town_summary",
    "travel_time_matrix",
    "workspace_targets",
]

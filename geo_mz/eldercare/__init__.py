"""The 15-minute elder-care circle (15分钟养老服务圈).

Walking times to centres, coverage per town
and village, gaps, beds per 1,000 aged 60+ and E2SFCA, and where new centres should go.
"""

from geo_mz.eldercare.capacity import (
    E2sfcaResult,
    beds_by_unit,
    beds_kpis,
    capacity_adjusted_coverage,
    e2sfca,
)
from geo_mz.eldercare.circle15 import (
    CircleResult,
    CircleSettings,
    analyse_circle,
    default_candidates,
    output_layers,
    overlay_layers,
    propose_sites,
    report_tables,
    siting_kpis,
)
from geo_mz.eldercare.coverage import (
    COMMUNITY_KINDS,
    ELDER_CARE_KINDS,
    CentreWalks,
    access_times,
    centre_walks,
    coverage_by_unit,
    coverage_by_units,
    coverage_kpis,
    gaps,
    node_times,
    select_centres,
    walk_times,
)

__all__ = [
    "COMMUNITY_KINDS",
    "ELDER_CARE_KINDS",
    "CentreWalks",
    "CircleResult",
    "CircleSettings",
    "E2sfcaResult",
    "access_times",
    "analyse_circle",
    "beds_by_unit",
    "beds_kpis",
    "capacity_adjusted_coverage",
    "centre_walks",
    "coverage_by_unit",
    "coverage_by_units",
    "coverage_kpis",
    "default_candidates",
    "e2sfca",
    "gaps",
    "node_times",
    "output_layers",
    "overlay_layers",
    "propose_sites",
    "report_tables",
    "select_centres",
    "siting_kpis",
    "walk_times",
]

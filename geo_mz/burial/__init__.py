"""Tree-burial (节地生态安葬: 树葬点, 追思堂) planning: land suitability, capacity and use.

Suitability (:func:`burial_suitability`): a DEM of any CRS is resampled onto a grid in the
workspace's measure CRS; slope is computed (Horn's method); exclusion rules from
``layers/rules/burial_rules.toml`` (殡葬管理条例 第十条 and the Shandong buffers of STANDARDS.md
§D) are rasterised onto the grid, with buffers as exact cell-centre distances; the remaining
cells are scored (slope, road access, distance to settlements) and connected regions above a
minimum area become candidate polygons. Capacity (:func:`site_capacity`): plots or niches per
site from area and plot size, used against capacity, years until full, per-town summary against
the plan's targets. Outputs: :func:`geo_mz.outputs.write_burial_outputs` (GeoPackage, Excel,
map, report, score GeoTIFF).

Modules
-------
This module is the public API: it re-exports the rules (:mod:`geo_mz.burial.rules`), the
suitability analysis (:mod:`geo_mz.burial.suitability`), capacity and use
(:mod:`geo_mz.burial.capacity`); the files and map are written by :mod:`geo_mz.outputs.burial`.
"""

from __future__ import annotations

from geo_mz.burial.capacity import capacity_kpis, site_capacity, town_summary
from geo_mz.burial.rules import (
    BurialRules,
    BurialRulesError,
    ExclusionRule,
    default_rules_path,
    load_rules,
)
from geo_mz.burial.suitability import (
    Suitability,
    burial_suitability,
    check_sites,
    slope_score,
    suitability_kpis,
)

__all__ = [
    "BurialRules",
    "BurialRulesError",
    "ExclusionRule",
    "Suitability",
    "burial_suitability",
    "capacity_kpis",
    "check_sites",
    "default_rules_path",
    "load_rules",
    "site_capacity",
    "slope_score",
    "suitability_kpis",
    "town_summary",
]

"""Headline figures of a workspace against the plan targets and standards (STANDARDS.md A–C).

These are inventory sums, not network analyses: beds per 1,000 aged 60+, nursing-bed share,
shelter capacity and area per person, and whether every town has a shelter and a relief store.
Each figure names the standard or plan it is checked against.
"""

from __future__ import annotations

from collections.abc import Mapping

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_mz.core.results import Kpi
from geo_mz.core.standards import (
    BEDS_PER_1000_MIN,
    FIXED_SHELTER_SHARE_MIN,
    NURSING_SHARE_MIN,
    RESIDENTIAL_KINDS,
    SHELTER_AREA_PER_PERSON_MIN_M2,
)

FIXED_CLASSES = ("fixed_short", "fixed_mid", "fixed_long", "central")


def _sum(gdf: gpd.GeoDataFrame | None, col: str) -> float:
    if gdf is None or col not in gdf.columns or len(gdf) == 0:
        return 0.0
    return float(pd.to_numeric(gdf[col], errors="coerce").fillna(0).sum())


def _units_with(points: gpd.GeoDataFrame | None, units: gpd.GeoDataFrame) -> int:
    """Count units that contain at least one point."""
    if points is None or len(points) == 0 or len(units) == 0:
        return 0
    joined = gpd.sjoin(points[["geometry"]], units[["adcode", "geometry"]], predicate="within")
    return int(joined["adcode"].nunique())


def headline_kpis(layers: Mapping[str, gpd.GeoDataFrame]) -> list[Kpi]:
    """Compute the headline figures that the stored layers allow.

    Parameters
    ----------
    layers
        Workspace layers by catalog name (any subset).

    Returns
    -------
    list of Kpi
        Figures whose inputs are present; missing layers are skipped, not zero-filled.
    """
    out: list[Kpi] = []
    pop = layers.get("population")
    care = layers.get("elder_care")
    shelters = layers.get("shelters")
    stores = layers.get("relief_stores")
    units = layers.get("admin_units")
    towns = units[units["level"] == "town"] if units is not None else None
    pop60 = _sum(pop, "pop_60plus")
    pop_total = _sum(pop, "pop_total")
    if pop is not None:
        out.append(Kpi("60岁及以上人口", "Population aged 60+", round(pop60), "人"))
        out.append(Kpi("常住人口", "Resident population", round(pop_total), "人"))
    if care is not None:
        operating = care[care["status"] == "operating"]
        residential = operating[operating["kind"].isin(RESIDENTIAL_KINDS)]
        beds = _sum(residential, "beds")
        nursing = _sum(residential, "nursing_beds")
        out.append(
            Kpi("养老服务设施(运营)", "Elder-care facilities operating", len(operating), "处")
        )
        out.append(Kpi("养老床位", "Elder-care beds", int(beds), "张"))
        if pop60 > 0:
            per_1000 = beds / pop60 * 1000
            out.append(
                Kpi(
                    "每千名老人床位",
                    "Beds per 1,000 aged 60+",
                    round(per_1000, 1),
                    "张",
                    f"≥ {BEDS_PER_1000_MIN:g}",
                    per_1000 >= BEDS_PER_1000_MIN,
                    "GB 50437-2007(2018) §3.2.1",
                )
            )
        if beds > 0:
            share = nursing / beds
            out.append(
                Kpi(
                    "护理型床位占比",
                    "Nursing-type bed share",
                    round(share * 100, 1),
                    "%",
                    f"≥ {NURSING_SHARE_MIN * 100:g}%",
                    share >= NURSING_SHARE_MIN,
                    "“十四五”国家老龄事业发展和养老服务体系规划",
                )
            )
    if shelters is not None:
        cap = _sum(shelters, "capacity_persons")
        area = _sum(shelters, "effective_area_m2")
        out.append(Kpi("应急避难场所", "Emergency shelters", len(shelters), "处"))
        out.append(Kpi("有效避难面积", "Effective shelter area", round(area), "m²"))
        out.append(Kpi("可容纳人数", "Shelter capacity", int(cap), "人"))
        if cap > 0:
            per = area / cap
            out.append(
                Kpi(
                    "人均有效避难面积",
                    "Effective area per person",
                    round(per, 2),
                    "m²/人",
                    f"> {SHELTER_AREA_PER_PERSON_MIN_M2:g}",
                    per > SHELTER_AREA_PER_PERSON_MIN_M2,
                    "GB 21734-2008 §5.4",
                )
            )
        if pop_total > 0 and "class_gb51143" in shelters.columns:
            fixed = _sum(
                shelters[shelters["class_gb51143"].isin(FIXED_CLASSES)], "capacity_persons"
            )
            share = fixed / pop_total
            out.append(
                Kpi(
                    "固定避难容量/常住人口",
                    "Fixed-shelter capacity / population",
                    round(share * 100, 1),
                    "%",
                    f"≥ {FIXED_SHELTER_SHARE_MIN * 100:g}%",
                    share >= FIXED_SHELTER_SHARE_MIN,
                    "避难场所通用规范 §4.2.2 (STANDARDS.md §A)",
                )
            )
        if towns is not None and len(towns):
            n = _units_with(shelters, towns)
            out.append(
                Kpi(
                    "有避难场所的镇街",
                    "Towns with a shelter",
                    f"{n}/{len(towns)}",
                    "",
                    "全部 all",
                    n == len(towns),
                    "区民政工作计划 (local plan)",
                )
            )
    if stores is not None:
        county = int(np.sum(stores["level"] == "county"))
        out.append(
            Kpi(
                "区级救灾物资储备库",
                "District relief stores",
                county,
                "个",
                "≥ 1",
                county >= 1,
                "建标121-2009; 十四五综合防灾减灾规划",
            )
        )
        if towns is not None and len(towns):
            n = _units_with(stores[stores["level"] == "township"], towns)
            out.append(
                Kpi(
                    "有镇级储备库的镇街",
                    "Towns with a town store",
                    f"{n}/{len(towns)}",
                    "",
                    "全部 all",
                    n == len(towns),
                    "蓬江区“大民政”十三五规划 (local plan)",
                )
            )
    return out

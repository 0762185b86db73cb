"""Tables and result layers of shelter adequacy and evacuation (for reports, Excel, the map).

Kept apart from :mod:`geo_mz.relief.shelters` (the analysis) so each reads in one sitting; the
files and the map are written by :mod:`geo_mz.outputs.shelters`.
"""

from __future__ import annotations

from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_mz.core.catalog import LayerSpec
from geo_mz.core.results import (
    ReportTable,
    conform,
    display_table,
    headed,
    kpi_frame,
    result_catalog,
)
from geo_mz.relief.shelters import (
    SRC_AREA,
    SRC_DIST,
    SRC_SHARE,
    AdequacyResult,
    EvacuationResult,
)

Lang = Literal["zh", "en"]


def _pct(x: float) -> float:
    return round(100.0 * float(x), 1) if np.isfinite(x) else float("nan")


def output_layers(
    adequacy: AdequacyResult | None = None, evacuation: EvacuationResult | None = None
) -> dict[str, gpd.GeoDataFrame]:
    """Return the result layers as written to the GeoPackage, each checked against its spec."""
    specs = result_catalog()
    out = {}
    if adequacy is not None:
        out["shelter_units"] = conform("shelter_units", adequacy.units, specs)
    if evacuation is not None:
        out["shelter_load"] = conform("shelter_load", evacuation.load, specs)
        out["evacuation"] = conform("evacuation", evacuation.lines, specs)
        out["evacuation_unassigned"] = conform(
            "evacuation_unassigned", evacuation.unassigned, specs
        )
    return out


TOWN_COLUMNS = ("name", "population", "n_shelters_inside", "capacity_persons",
                "fixed_capacity_persons", "fixed_capacity_share", "meets_fixed_share",
                "pop_served_share", "n_villages", "villages_without_shelter")  # fmt: skip


LOAD_COLUMNS = ("shelter_id", "name", "class_gb51143", "capacity_recorded_persons",
                "capacity_calc_persons", "capacity_persons", "assigned_persons", "load_share",
                "status", "mean_walk_min")  # fmt: skip

#: Columns of the table of shelters whose recorded capacity exceeds the area's (GB 21734).
OVER_COLUMNS = ("shelter_id", "name", "effective_area_m2", "capacity_recorded_persons",
                "capacity_calc_persons", "capacity_persons")  # fmt: skip


UNASSIGNED_COLUMNS = ("name", "adcode", "persons_unassigned", "reason")


def report_tables(
    adequacy: AdequacyResult | None = None,
    evacuation: EvacuationResult | None = None,
    *,
    lang: Lang = "zh",
    max_rows: int = 30,
) -> list[ReportTable]:
    """Report tables: adequacy per town, shelter load and unplaced people (largest first)."""
    specs = result_catalog()
    tables = []
    if adequacy is not None:
        s = adequacy.settings
        cols, rows = display_table(adequacy.table_towns, specs["shelter_units"], lang, TOWN_COLUMNS)
        note = (f"容量按{s.per_capita_m2:g} m²/人 ({SRC_AREA})；固定避难容量目标≥"
                f"{_pct(s.fixed_share_min)}% ({SRC_SHARE})；服务距离 {SRC_DIST}")  # fmt: skip
        tables.append(ReportTable("应急避难场所：各镇街容量与服务覆盖",
                                  "Emergency shelters: capacity and reach per town",
                                  cols, rows, note))  # fmt: skip
        tables += _over_recorded_table(adequacy, lang, max_rows)
    if evacuation is not None:
        ld = evacuation.load.sort_values("load_share", ascending=False).head(max_rows)
        cols, rows = display_table(ld, specs["shelter_load"], lang, LOAD_COLUMNS)
        tables.append(ReportTable("疏散安置：避难场所负荷", "Evacuation: shelter load",
                                  cols, rows, f"engine {evacuation.engine}, unit "
                                  f"{evacuation.unit}; first {max_rows} by load"))  # fmt: skip
        un = evacuation.unassigned.sort_values("persons_unassigned", ascending=False)
        cols, rows = display_table(
            un.head(max_rows), result_catalog()["evacuation_unassigned"], lang, UNASSIGNED_COLUMNS
        )
        tables.append(
            ReportTable(
                "疏散安置：未安置人口（按村居）",
                "Evacuation: people not placed, per village",
                cols,
                rows,
            )
        )
    return tables


def _over_recorded_table(adequacy: AdequacyResult, lang: Lang, max_rows: int) -> list[ReportTable]:
    """List the shelters whose list records more people than their area holds, both figures."""
    cap = adequacy.shelters
    over = cap[cap["capacity_over_standard"].astype(bool)]
    if over.empty:
        return []
    s = adequacy.settings
    n_rec = int(cap["capacity_recorded_persons"].notna().sum())
    note = (f"计算容量 = 有效避难面积 ÷ {s.per_capita_m2:g} m²/人 ({SRC_AREA})；"
            f"分析采用两者中较小者。{len(over)}/{n_rec} 个登记容量高于计算容量 / "
            f"{len(over)} of {n_rec} recorded capacities exceed the area's; the analysis uses "
            "the smaller")  # fmt: skip
    # the load spec titles these columns; capacity_persons there is the capacity used
    shown = over.assign(capacity_persons=over["capacity_used_persons"])
    shown = shown.assign(excess=shown["capacity_recorded_persons"] - shown["capacity_calc_persons"])
    shown = shown.sort_values(["excess", "shelter_id"], ascending=[False, True]).head(max_rows)
    cols, rows = display_table(shown, result_catalog()["shelter_load"], lang, OVER_COLUMNS)
    return [ReportTable("应急避难场所：登记容量高于按面积计算的容量",
                        "Emergency shelters: recorded capacity above the area's (GB 21734)",
                        cols, rows, note)]  # fmt: skip


def excel_tables(
    adequacy: AdequacyResult | None = None, evacuation: EvacuationResult | None = None
) -> dict[str, pd.DataFrame]:
    """Full tables by sheet name, headed "中文 English" (KPIs, towns, villages, shelters...)."""
    specs = result_catalog()

    def sheet(df: pd.DataFrame, spec: LayerSpec) -> pd.DataFrame:
        return headed(pd.DataFrame(df[[f.name for f in spec.fields if f.name in df]]), spec)

    kpis = (adequacy.kpis if adequacy else []) + (evacuation.kpis if evacuation else [])
    out = {"指标 KPIs": kpi_frame(kpis)}
    if adequacy is not None:
        out["镇街 towns"] = sheet(adequacy.table_towns, specs["shelter_units"])
        out["村居 villages"] = sheet(adequacy.table_villages, specs["shelter_units"])
        out["场所容量 capacity"] = pd.DataFrame(adequacy.shelters.drop(columns="geometry"))
    if evacuation is not None:
        out["场所负荷 load"] = sheet(evacuation.load, specs["shelter_load"])
        out["未安置 unassigned"] = sheet(
            evacuation.unassigned, result_catalog()["evacuation_unassigned"]
        )
        out["疏散线 lines"] = sheet(evacuation.lines, specs["evacuation"])
    return out


__all__ = [
    "LOAD_COLUMNS",
    "OVER_COLUMNS",
    "TOWN_COLUMNS",
    "UNASSIGNED_COLUMNS",
    "excel_tables",
    "output_layers",
    "report_tables",
]

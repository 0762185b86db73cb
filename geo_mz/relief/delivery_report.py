"""What a delivery plan reports: headline KPIs, report tables and the map layers.

:func:`delivery_kpis` (kits delivered share, late stops, unmet kits, latest arrival),
:func:`report_tables` (routes, stops and unmet demand, headings Chinese first for ``zh``) and
:func:`output_layers` (the ``delivery_routes`` and ``delivery_stops`` layers checked against their
specs) read a finished :class:`~geo_mz.relief.DeliveryPlan`; writing them is
:mod:`geo_mz.outputs`' job.
"""

from __future__ import annotations

import geopandas as gpd

from geo_mz.core.results import Kpi, ReportTable, conform, display_table, result_catalog
from geo_mz.relief.delivery_settings import DeliveryPlan, Lang

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
    "no store of its area": "本辖区无储备库可达",
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


__all__ = ["delivery_kpis", "output_layers", "report_tables"]

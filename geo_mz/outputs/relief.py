"""Files, tables and maps of the relief audit: GeoPackage, Excel, report tables, a map.

Kept apart from :mod:`geo_mz.relief.drive_audit` (the analysis) so the analysis reads in one
sitting. Every
layer is conformed to its spec in ``layers/results/`` (relief_audit, relief_routes,
relief_changes, road_closures, proposed_stores), which also gives the map its colours and the
sheets their "中文 English" headings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_mz.core.catalog import LayerSpec, load_catalog
from geo_mz.core.results import (
    Kpi,
    ReportTable,
    conform,
    display_table,
    headed,
    kpi_frame,
    result_catalog,
)
from geo_mz.outputs.files import write_gpkg
from geo_mz.outputs.maps import SIMPLIFY_M, layers_map, save_map
from geo_mz.relief.drive_audit import Audit, audit_kpis, compare, routes, town_summary

Lang = Literal["zh", "en"]

#: Layers on when the relief map opens; the rest are listed in its layer control, off.
RELIEF_MAP_ON = frozenset(
    {
        "admin_units",
        "water",
        "roads",
        "relief_units",
        "relief_stores",
        "road_closures",
        "relief_routes",
        "proposed_stores",
    }
)

#: Worst first: the status a point shows on the map when its targets disagree.
_SEVERITY = {"cut_off": 0, "no_store": 1, "misses": 2, "meets": 3}

TOWN_HEADINGS = {
    "town_name": "镇街 Town",
    "target": "时限目标 Target",
    "villages": "村居数 Villages",
    "meets_n": "按时送达 Within target",
    "misses_n": "超时 Late",
    "cut_off_n": "断路 Cut off",
    "no_store_n": "无储备库 No store",
    "meets_share": "达标率 Share within target",
    "worst_time_min": "最长送达时间(分钟) Worst time (min)",
    "pop_missing": "未达标人口 People not within target",
}


def audit_layer(a: Audit) -> gpd.GeoDataFrame:
    """Return the audit table as the ``relief_audit`` layer (one row per point and target)."""
    t = a.table.copy()
    t["row_id"] = t["point_id"].astype(str) + ":" + t["target"].astype(str)
    return conform("relief_audit", t, result_catalog())


def worst_per_point(a: Audit) -> gpd.GeoDataFrame:
    """One row per point: its worst target (cut off, then no store, late, met; least margin)."""
    t = audit_layer(a)
    order = t["status"].map(_SEVERITY).to_numpy() * 1e9 + t["margin_min"].fillna(-1e8).to_numpy()
    t = t.assign(_o=order).sort_values("_o", kind="stable")
    return t.drop_duplicates("point_id").drop(columns="_o").reset_index(drop=True)


def routes_layer(a: Audit, rows: np.ndarray | None = None) -> gpd.GeoDataFrame:
    """Routes of ``a`` (default: the rows that miss their target, or all if none do)."""
    if rows is None:
        late = np.flatnonzero(a.table["status"].to_numpy() == "misses")
        rows = late if len(late) else None
    r = routes(a, rows)
    r["route_id"] = r["point_id"].astype(str) + ":" + r["target"] + ":" + r["scenario"]
    return conform("relief_routes", r, result_catalog())


def changes_layer(base: Audit, scenario: Audit) -> gpd.GeoDataFrame:
    """Return :func:`geo_mz.relief.compare` as the ``relief_changes`` layer."""
    c = compare(base, scenario)
    c["change_id"] = c["point_id"].astype(str) + ":" + c["target"].astype(str)
    return conform("relief_changes", c, result_catalog())


def detour_layer(base: Audit, scenario: Audit) -> gpd.GeoDataFrame:
    """Scenario routes of the rows that changed (the detours), as ``relief_routes``."""
    c = compare(base, scenario)
    rows = c.loc[c["change"] != "cut_off", "_row"].to_numpy()
    r = routes(scenario, rows)
    r["route_id"] = r["point_id"].astype(str) + ":" + r["target"] + ":" + r["scenario"]
    return conform("relief_routes", r, result_catalog())


def closures_layer(a: Audit) -> gpd.GeoDataFrame:
    """Return the scenario's closed and slowed roads as the ``road_closures`` layer."""
    if a.disruption is None:
        return conform("road_closures", _empty_closures(a), result_catalog())
    f = a.disruption.frame(a.network)
    f = f.assign(
        closure_id=[f"E{i}" for i in f.index],
        effect=np.where(f["closed"].to_numpy(bool), "closed", "slowed"),
        edge_id=f["edge_id"].astype(str),
    )
    if "max_depth_m" not in f:
        f["max_depth_m"] = np.nan
    return conform("road_closures", f, result_catalog())


def _empty_closures(a: Audit) -> gpd.GeoDataFrame:
    cols = ("closure_id", "edge_id", "road_class", "effect", "slow_factor", "reason")
    return gpd.GeoDataFrame(
        {c: pd.Series([], dtype=object) for c in cols}, geometry=[], crs=a.network.crs
    )


def scenario_kpis(base: Audit, scenario: Audit) -> list[Kpi]:
    """Headline figures of a scenario: closures, villages falling out of target, cut off."""
    c = compare(base, scenario)
    v = c[c["kind"] == "village"]
    d = scenario.disruption
    falls = int(v.loc[v["change"] == "falls_out", "point_id"].nunique())
    cut = int(v.loc[v["change"] == "cut_off", "point_id"].nunique())
    return [
        Kpi(
            "情景中断/减速路段",
            "Road pieces closed / slowed",
            f"{d.n_closed if d else 0} / {d.n_slowed if d else 0}",
        ),
        Kpi(
            "情景下由达标变超时的村居",
            "Villages falling out of a target",
            falls,
            target="0",
            met=falls == 0,
        ),
        Kpi(
            "情景下断路的村居",
            "Villages cut off in the scenario",
            cut,
            target="0",
            met=cut == 0,
        ),
    ]


def report_tables(
    a: Audit, scenario: Audit | None = None, *, lang: Lang = "zh", max_rows: int = 40
) -> list[ReportTable]:
    """Report tables: per town and target; the late or cut-off points; scenario changes."""
    specs = result_catalog()
    towns = town_summary(a)
    cols = list(TOWN_HEADINGS)
    heads = tuple(TOWN_HEADINGS[c] for c in cols)
    rows = tuple(
        tuple(
            f"{v:.0%}" if c == "meets_share" else f"{v:.0f}" if isinstance(v, float) else str(v)
            for c, v in zip(cols, r, strict=True)
        )
        for r in towns[cols].itertuples(index=False)
    )
    s = a.settings
    note = (
        f"出车准备 {s.dispatch_prep_min:g} 分钟；灾时降速系数 {s.disaster_factor:g}；末段 "
        f"{s.last_leg_kmh:g} km/h / dispatch {s.dispatch_prep_min:g} min, disaster derating "
        f"{s.disaster_factor:g}, last leg {s.last_leg_kmh:g} km/h. "
        + "; ".join(f"{t.key}: {t.source}" for t in s.targets)
    )
    out = [ReportTable("救灾物资送达：各镇街", "Relief delivery per town", heads, rows, note)]
    bad = audit_layer(a)
    bad = bad[bad["status"] != "meets"].sort_values("margin_min").head(max_rows)
    if len(bad):
        cols2 = (
            "name",
            "kind",
            "town_name",
            "target",
            "store_name",
            "time_min",
            "margin_min",
            "status",
        )
        h, r = display_table(bad, specs["relief_audit"], lang, cols2)
        out.append(ReportTable("超时或不可达的村居与避难场所", "Late or unreachable points", h, r))
    if scenario is not None:
        ch = changes_layer(a, scenario)
        ch = ch[ch["change"].isin(["cut_off", "falls_out", "slower"])]
        ch = ch.sort_values(["change", "delta_min"], ascending=[True, False]).head(max_rows)
        if len(ch):
            cols3 = (
                "name",
                "kind",
                "town_name",
                "target",
                "time_before_min",
                "time_after_min",
                "change",
            )
            h, r = display_table(ch, specs["relief_changes"], lang, cols3)
            out.append(
                ReportTable(
                    f"情景“{scenario.scenario}”：送达变化",
                    f"Scenario '{scenario.scenario}': what changed",
                    h,
                    r,
                )
            )
    return out


def output_layers(
    a: Audit, scenario: Audit | None = None, proposed: gpd.GeoDataFrame | None = None
) -> dict[str, gpd.GeoDataFrame]:
    """Layers for the GeoPackage: audit, routes (late ones and detours), changes, closures."""
    out = {
        "relief_audit": audit_layer(a),
        "relief_routes": routes_layer(a, np.arange(len(a.table))),
    }
    if scenario is not None:
        out["relief_audit_scenario"] = audit_layer(scenario)
        out["relief_changes"] = changes_layer(a, scenario)
        out["relief_detours"] = detour_layer(a, scenario)
        out["road_closures"] = closures_layer(scenario)
    if proposed is not None:
        out["proposed_stores"] = conform("proposed_stores", proposed, result_catalog())
    return out


def overlay_layers(
    a: Audit, scenario: Audit | None = None, proposed: gpd.GeoDataFrame | None = None
) -> dict[str, gpd.GeoDataFrame]:
    """Map overlays (catalog names as keys): worst status per point, late routes or detours."""
    shown = scenario if scenario is not None else a
    layers: dict[str, gpd.GeoDataFrame] = {"relief_audit": worst_per_point(shown)}
    if scenario is not None:
        layers["road_closures"] = closures_layer(scenario)
        layers["relief_changes"] = changes_layer(a, scenario)
        layers["relief_routes"] = detour_layer(a, scenario)
    else:
        layers["relief_routes"] = routes_layer(a)
    if proposed is not None:
        layers["proposed_stores"] = conform("proposed_stores", proposed, result_catalog())
    return layers


def relief_units(a: Audit, admin_units: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Village polygons with the worst delivery status of their village centre (a choropleth).

    Parameters
    ----------
    a
        The audit (or scenario) shown.
    admin_units
        Workspace boundaries; villages are joined to audited points by adcode.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per audited village: the columns of ``worst_per_point`` on the village's
        polygon (CRS of ``admin_units``); draw it with ``relief_units_spec()``.
    """
    worst = worst_per_point(a)
    worst = pd.DataFrame(worst[worst["kind"] == "village"].drop(columns="geometry"))
    villages = admin_units.loc[admin_units["level"] == "village", ["adcode", "geometry"]]
    out = villages.merge(worst, left_on="adcode", right_on="point_id", how="inner")
    return gpd.GeoDataFrame(out.drop(columns="adcode"), geometry="geometry", crs=villages.crs)


def relief_units_spec() -> LayerSpec:
    """Map spec of ``relief_units``: the audit's fields and status colours, on polygons."""
    base = result_catalog()["relief_audit"]
    sym = {k: v for k, v in base.symbology.items() if k not in ("radius", "label_field")}
    sym.update(weight=1, fill_opacity=0.55, z=12)
    return dataclasses.replace(
        base,
        name="relief_units",
        title_zh="村（社区）救灾物资送达状态",
        title_en="Relief delivery per village",
        geometry="Polygon",
        symbology=sym,
    )


def relief_map(
    base_layers: Mapping[str, gpd.GeoDataFrame],
    a: Audit,
    scenario: Audit | None = None,
    proposed: gpd.GeoDataFrame | None = None,
    *,
    lang: Lang = "zh",
) -> Any:
    """Map of the audit (or scenario) over boundaries, water, roads, stores and shelters.

    On when it opens: boundaries, each village coloured by its worst status (meets target /
    late / cut off), stores, closures and detours; the audited points and the changes are in
    the layer control, off.
    """
    layers = {k: base_layers[k] for k in ("admin_units", "water", "roads") if k in base_layers}
    layers["relief_stores"] = a.stores
    if "admin_units" in base_layers:
        shown = scenario if scenario is not None else a
        layers["relief_units"] = relief_units(shown, base_layers["admin_units"])
    layers.update(overlay_layers(a, scenario, proposed))
    catalog = {**load_catalog(), **result_catalog(), "relief_units": relief_units_spec()}
    return layers_map(layers, catalog=catalog, lang=lang, show=RELIEF_MAP_ON, simplify_m=SIMPLIFY_M)


def write_excel(
    path: str | Path,
    a: Audit,
    scenario: Audit | None = None,
    proposed: gpd.GeoDataFrame | None = None,
) -> Path:
    """Workbook: KPIs, per-town summary, every point and target, scenario changes, sites."""
    specs = result_catalog()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kpis = audit_kpis(a) + (scenario_kpis(a, scenario) if scenario is not None else [])
    with pd.ExcelWriter(path, engine="openpyxl") as xl:
        kpi_frame(kpis).to_excel(xl, sheet_name="指标 KPIs", index=False)
        towns = town_summary(a)[list(TOWN_HEADINGS)].rename(columns=TOWN_HEADINGS)
        towns.to_excel(xl, sheet_name="镇街 towns", index=False)
        for sheet, aud in (("核查 audit", a), ("情景 scenario", scenario)):
            if aud is None:
                continue
            t = pd.DataFrame(audit_layer(aud).drop(columns="geometry"))
            headed(t, specs["relief_audit"]).to_excel(xl, sheet_name=sheet, index=False)
        if scenario is not None:
            c = pd.DataFrame(changes_layer(a, scenario).drop(columns="geometry"))
            headed(c, specs["relief_changes"]).to_excel(xl, sheet_name="变化 changes", index=False)
        if proposed is not None:
            p = pd.DataFrame(proposed.drop(columns="geometry"))
            headed(p, specs["proposed_stores"]).to_excel(xl, sheet_name="选址 sites", index=False)
    return path


def write_relief_outputs(
    out_dir: str | Path,
    base_layers: Mapping[str, gpd.GeoDataFrame],
    a: Audit,
    scenario: Audit | None = None,
    proposed: gpd.GeoDataFrame | None = None,
    *,
    lang: Lang = "zh",
    prefix: str = "relief",
) -> dict[str, Path]:
    """Write ``{prefix}.gpkg``, ``{prefix}.xlsx`` and ``{prefix}_map.html`` into ``out_dir``."""
    out = Path(out_dir)
    return {
        "gpkg": write_gpkg(out / f"{prefix}.gpkg", output_layers(a, scenario, proposed)),
        "xlsx": write_excel(out / f"{prefix}.xlsx", a, scenario, proposed),
        "map": save_map(
            relief_map(base_layers, a, scenario, proposed, lang=lang), out / f"{prefix}_map.html"
        ),
    }


def write_plan_outputs(
    out_dir: str | Path,
    base_layers: Mapping[str, gpd.GeoDataFrame],
    plan: Any,
    *,
    lang: Lang = "zh",
    prefix: str = "plan",
) -> dict[str, Path]:
    """Write a delivery plan: ``{prefix}.gpkg`` (routes, stops), ``.xlsx`` and ``_map.html``."""
    from geo_mz.relief.delivery import delivery_kpis
    from geo_mz.relief.delivery import output_layers as plan_layers

    out = Path(out_dir)
    layers = plan_layers(plan)
    specs = result_catalog()
    xlsx = out / f"{prefix}.xlsx"
    xlsx.parent.mkdir(parents=True, exist_ok=True)
    with pd.ExcelWriter(xlsx, engine="openpyxl") as xl:
        kpi_frame(delivery_kpis(plan)).to_excel(xl, sheet_name="指标 KPIs", index=False)
        for name, sheet in (("delivery_routes", "路线 routes"), ("delivery_stops", "送达点 stops")):
            t = pd.DataFrame(layers[name].drop(columns="geometry"))
            headed(t, specs[name]).to_excel(xl, sheet_name=sheet, index=False)
        plan.unmet.to_excel(xl, sheet_name="未满足 unmet", index=False)
        plan.allocation.to_excel(xl, sheet_name="分配 allocation", index=False)
    shown = {k: base_layers[k] for k in ("admin_units", "water", "roads") if k in base_layers}
    shown["relief_stores"] = base_layers["relief_stores"]
    shown.update(layers)
    the_map = layers_map(shown, catalog={**load_catalog(), **specs}, lang=lang)
    return {
        "gpkg": write_gpkg(out / f"{prefix}.gpkg", layers),
        "xlsx": xlsx,
        "map": save_map(the_map, out / f"{prefix}_map.html"),
    }

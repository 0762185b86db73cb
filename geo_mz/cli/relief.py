"""``geo-mz relief ...``: delivery audit, disaster scenarios, delivery plans, store siting.

Registered on the main group by :mod:`geo_mz.cli.app` (``geo-mz shelters`` is in
:mod:`geo_mz.cli.shelters`); kept apart so each command file reads in one sitting. Every
command reads a workspace, writes a GeoPackage, an Excel workbook and an offline map into
``--out``, prints the headline figures, and exits 2 on bad input.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import click

from geo_mz.cli.common import (
    analysis_layers,
    bad_input,
    check_network,
    echo_kpis,
    echo_paths,
    flag_maps,
    only_with,
    progress_bar,
    read_points,
    report_beside_map,
)
from geo_mz.cli.options import (
    file_option,
    lang_option,
    out_option,
    strict_option,
    with_options,
    workspace_option,
)
from geo_mz.cli.relief_targets import audit_settings, warn_levels

relief_options = [
    workspace_option,
    out_option,
    lang_option,
    strict_option,
    click.option(
        "--target",
        "targets",
        multiple=True,
        metavar="LEVEL=HOURS",
        help="送达时限，可重复，如 township=3；只替换该级别，其余保留 (默认：工作空间设置，否则"
        "国家指导意见 县6/市8/省10小时) / delivery target, repeatable, e.g. township=3; replaces "
        "that level's target and keeps the others (the workspace's, else the national county 6 / "
        "city 8 / province 10 h).",
    ),
    click.option(
        "--only-targets",
        is_flag=True,
        help="只用 --target 给出的时限，不保留其他级别 / use only the --target levels, dropping "
        "the workspace's (or national) targets of other levels.",
    ),
    click.option(
        "--match",
        type=click.Choice(["own", "any"]),
        default=None,
        help="own：只算本辖区 (代码前缀) 储备库；any：任一储备库 (核查取最近的同级库)。默认："
        "核查按时限设置 (own)，配送计划 any / own: only stores of the point's own area (code "
        "prefix); any: any store (the audit takes the nearest of the level). Default: as the "
        "targets say (own) for audits, any for plan.",
    ),
    click.option(
        "--dispatch-min",
        type=float,
        default=None,
        help="出车准备时间(分钟，默认30) / dispatch preparation, minutes (default 30).",
    ),
    click.option(
        "--disaster-factor",
        type=float,
        default=None,
        help="灾时车速系数(默认0.6) / disaster speed derating (default 0.6).",
    ),
]

scenario_options = [
    file_option("--flood", help="积水深度栅格(米，GeoTIFF) / flood-depth raster in metres."),
    click.option(
        "--close-depth",
        type=float,
        default=None,
        help="封路水深(米，默认0.3) / depth that closes a road (m, default 0.3).",
    ),
    click.option(
        "--close-roads",
        default=None,
        help="封闭的道路编号(逗号分隔) / road ids to close (comma-separated).",
    ),
    file_option(
        "--closures",
        help="封路范围文件(面；点/线需 --buffer-m) / closure areas (polygons; points need "
        "--buffer-m).",
    ),
    click.option(
        "--buffer-m",
        type=float,
        default=0.0,
        show_default=True,
        help="封路点/线的缓冲半径(米) / buffer of closure points or lines, metres.",
    ),
    click.option(
        "--use-incidents/--no-incidents",
        default=False,
        show_default=True,
        help="工作空间中“道路中断”事件点(缓冲 --buffer-m) / close roads at the workspace's "
        "road_blocked incidents.",
    ),
]


def _run(
    o: SimpleNamespace, step: Callable[[str], None], *, plan: bool = False
) -> tuple[dict, Any, dict]:
    """Open the workspace and audit it with the command's target options."""
    from geo_mz.core.workspaces import open_workspace
    from geo_mz.relief.drive_audit import run_audit

    ws = open_workspace(o.workspace)
    layers = analysis_layers(ws)
    s = audit_settings(ws, o)
    warn_levels(layers.get("relief_stores"), s.targets, plan=plan)
    a = run_audit(layers, s, measure_crs=ws.metadata.get("measure_crs"), progress=step)
    o.network_kpis = check_network(a.network, layers, strict=o.strict)
    return layers, a, ws.info()


def _only_with(o: SimpleNamespace, **more: tuple[bool, str]) -> None:
    """Refuse scenario options that the other options make ineffective (and ``more``)."""
    only_with(
        close_depth=(bool(o.flood), "--flood"),
        buffer_m=(bool(o.closures or o.use_incidents), "--closures / --use-incidents"),
        **more,
    )


def _has_scenario(o: SimpleNamespace) -> bool:
    return bool(o.flood or o.close_roads or o.closures or o.use_incidents)


def _disruption(layers: dict, a: Any, o: SimpleNamespace) -> Any:
    """Combine the command's closures: flood raster, road ids, closure areas, incidents."""
    from geo_mz.core.io import read_source
    from geo_mz.network import disruption as dis

    flood, close_depth, close_roads = o.flood, o.close_depth, o.close_roads
    closures, buffer_m, use_incidents = o.closures, o.buffer_m, o.use_incidents

    parts = []
    if flood:
        kw = {} if close_depth is None else {"close_depth_m": close_depth}
        parts.append(dis.from_flood_raster(a.network, flood, **kw))
    if close_roads:
        parts.append(dis.from_edge_ids(a.network, [r for r in close_roads.split(",") if r]))
    if closures:
        gdf = read_source(closures).gdf
        parts.append(dis.from_polygons(a.network, gdf, buffer_m=buffer_m, reason="closure"))
    if use_incidents:
        inc = layers.get("incidents")
        if inc is not None and len(inc):
            inc = inc[inc["kind"] == "road_blocked"]
            if "status" in inc:
                inc = inc[inc["status"] != "closed"]
            if len(inc):
                parts.append(
                    dis.from_polygons(
                        a.network,
                        inc,
                        buffer_m=buffer_m or 30.0,
                        label_field="incident_id",
                        reason="incident",
                    )
                )
    if not parts:
        raise click.UsageError(
            "情景需要 --flood、--close-roads、--closures 或 --use-incidents 之一 / a scenario "
            "needs --flood, --close-roads, --closures or --use-incidents"
        )
    return dis.combine(*parts)


@click.group()
def relief() -> None:
    """救灾物资送达：时限核查、灾情情景、配送计划、储备点选址 / Relief delivery."""


@relief.command(name="audit")
@with_options(relief_options)
def relief_audit(**opts: Any) -> None:
    """核查各村居与避难场所的送达时间 / Audit delivery times to villages and shelters.

    写出 relief.gpkg、relief.xlsx、relief_map.html / writes relief.gpkg, .xlsx, _map.html.
    """
    o = SimpleNamespace(**opts)
    from geo_mz.outputs.relief import report_tables as relief_tables
    from geo_mz.outputs.relief import write_relief_outputs
    from geo_mz.relief.drive_audit import audit_kpis

    step, close = progress_bar("relief audit")
    with bad_input():
        try:
            layers, a, info = _run(o, step)
            step("写出结果 writing outputs")
            paths = write_relief_outputs(o.out_dir, layers, a, lang=o.lang)
            report_beside_map(
                paths, info, audit_kpis(a) + o.network_kpis, relief_tables(a, lang=o.lang),
                o.lang, "救灾物资送达时限核查 Relief delivery audit",
            )  # fmt: skip
        finally:
            close()
    flag_maps(paths, o.network_kpis)
    echo_kpis(audit_kpis(a) + o.network_kpis)
    echo_paths(paths)


@relief.command(name="scenario")
@with_options(relief_options + scenario_options)
@click.option("--name", default="scenario", show_default=True, help="情景名 / scenario name.")
def relief_scenario(**opts: Any) -> None:
    """灾情情景：封路后重新核查并比较 / Re-audit with closures and show what changed.

    例 e.g.: geo-mz relief scenario --workspace out/pengjiang.gpkg --flood out/flood_depth.tif
    """
    o = SimpleNamespace(**opts)
    _only_with(o)
    from geo_mz.outputs.relief import report_tables as relief_tables
    from geo_mz.outputs.relief import scenario_kpis, write_relief_outputs
    from geo_mz.relief.drive_audit import audit_kpis, reaudit

    step, close = progress_bar("relief scenario")
    with bad_input():
        try:
            layers, a, info = _run(o, step)
            step("读取封路情景 reading the closures")
            d = _disruption(layers, a, o)
            step("重新核查 re-auditing")
            scen = reaudit(a, d, name=o.name)
            step("写出结果 writing outputs")
            paths = write_relief_outputs(o.out_dir, layers, a, scen, lang=o.lang, prefix="scenario")
            report_beside_map(
                paths, info, audit_kpis(scen) + scenario_kpis(a, scen),
                relief_tables(a, scen, lang=o.lang), o.lang,
                f"灾情情景 {o.name} Scenario: relief delivery",
            )  # fmt: skip
        finally:
            close()
    echo_kpis(audit_kpis(scen) + scenario_kpis(a, scen))
    echo_paths(paths)


@relief.command(name="preposition")
@with_options(relief_options + scenario_options)
@click.option(
    "--level",
    default="township",
    show_default=True,
    help="新储备点级别 / level of the new store(s).",
)
@click.option("--k", type=int, default=1, show_default=True, help="新增数量 / number of sites.")
@file_option(
    "--candidates", help="候选点文件(默认村居中心) / candidate points (default: village centres)."
)
@click.option("--candidates-crs", default=None, help="候选点坐标系 / CRS of that file.")
def relief_preposition(**opts: Any) -> None:
    """新增储备点选址：使最多村居在时限内 / Site new stores bringing most villages in target.

    可叠加灾情情景(--flood 等) / optionally under a scenario (--flood etc.).
    """
    o = SimpleNamespace(**opts)
    _only_with(o, candidates_crs=(bool(o.candidates), "--candidates"))
    from geo_mz.outputs.relief import report_tables as relief_tables
    from geo_mz.outputs.relief import write_relief_outputs
    from geo_mz.relief.drive_audit import audit_kpis, preposition, reaudit

    step, close = progress_bar("relief preposition")
    with bad_input():
        try:
            layers, a, info = _run(o, step)
            scen = None
            if _has_scenario(o):
                d = _disruption(layers, a, o)
                scen = reaudit(a, d, name="scenario")
            basis = scen or a
            cand = (
                read_points(o.candidates, o.candidates_crs)
                if o.candidates
                else basis.points[basis.points["kind"] == "village"].rename(
                    columns={"point_id": "site_id"}
                )
            )
            step("求解选址 solving the siting model")
            sites = preposition(basis, cand, level=o.level, k=o.k)
            step("写出结果 writing outputs")
            paths = write_relief_outputs(
                o.out_dir, layers, a, scen, sites, lang=o.lang, prefix="preposition"
            )
            report_beside_map(
                paths, info, audit_kpis(basis), relief_tables(a, scen, lang=o.lang), o.lang,
                "新增救灾物资储备点选址 Siting new relief stores",
            )  # fmt: skip
        finally:
            close()
    echo_kpis(audit_kpis(basis))
    for r in sites.itertuples():
        click.echo(
            f"  {r.rank:>3}. {r.name}  +{r.gain_villages} 村居 villages, "
            f"+{r.gain_population:,.0f} 人 people"
        )
    echo_paths(paths)


def _demand(
    layers: dict, a: Any, affected: str | None, people_field: str, towns: str | None, share: float
) -> Any:
    """Demand points: a file, villages of given towns × a displaced share, or occupied shelters."""
    import geopandas as gpd

    from geo_mz.relief.drive_audit import ReliefError

    if affected:
        return read_points(affected, None).rename(columns={people_field: "people"})
    pts = a.points
    if towns:
        codes = tuple(c for c in towns.split(",") if c)
        v = pts[(pts["kind"] == "village") & pts["adcode"].str.startswith(codes)].copy()
        if v.empty:
            raise ReliefError(
                f"--towns {towns}：没有村居的代码以这些开头，请用镇街代码(如 440703005) / no "
                "village has a code starting with these; give town codes, e.g. 440703005"
            )
        v["people"] = v["population"] * share
        return v
    sh = layers.get("shelters")
    if (
        sh is not None
        and "occupancy_persons" in sh
        and (sh["occupancy_persons"].fillna(0) > 0).any()
    ):
        occ = sh[sh["occupancy_persons"].fillna(0) > 0]
        cols = {"point_id": occ["shelter_id"], "name": occ["name"]}
        if "adcode" in occ:  # the shelter's area, for --match own
            cols["adcode"] = occ["adcode"]
        return gpd.GeoDataFrame(
            {**cols, "people": occ["occupancy_persons"]}, geometry=occ.geometry.values, crs=occ.crs
        )
    raise click.UsageError(
        "需要需求：--affected 文件、--towns 代码，或工作空间中有安置人数的避难场所 / give demand: "
        "--affected FILE, --towns CODES, or shelters with occupancy_persons in the workspace"
    )


@relief.command(name="plan")
@with_options(relief_options + scenario_options)
@file_option("--affected", help="受灾点文件(点，含人数字段) / affected points with a people field.")
@click.option(
    "--people-field", default="people", show_default=True, help="人数字段 / people field."
)
@click.option(
    "--towns",
    default=None,
    help="受灾镇街代码(逗号分隔)：其村居人口×--share 为需求 / affected town codes: their "
    "villages' population × --share need kits.",
)
@click.option(
    "--share",
    type=float,
    default=0.1,
    show_default=True,
    help="需转移安置人口比例(本地取值) / share of people needing kits (local choice).",
)
@click.option(
    "--kits-per-person",
    type=float,
    default=1.0,
    show_default=True,
    help="每人物资套数 / kits per person.",
)
@click.option(
    "--time-limit", type=float, default=5.0, show_default=True, help="每库求解时限(秒) / per store."
)
def relief_plan(**opts: Any) -> None:
    """配送计划：库存分配(最小费用流)与车辆路线(OR-Tools) / Delivery plan: allocation + routes.

    例 e.g.: geo-mz relief plan --workspace out/pengjiang.gpkg --towns 440703005 --flood
    out/flood_depth.tif
    """
    o = SimpleNamespace(**opts)
    _only_with(o, people_field=(bool(o.affected), "--affected"), share=(bool(o.towns), "--towns"))
    if o.affected and o.towns:
        raise click.UsageError(
            "--affected 与 --towns 只能给一个 / give --affected or --towns, not both (the file "
            "would be used and the towns ignored)"
        )
    from geo_mz.outputs.relief import write_plan_outputs
    from geo_mz.relief.delivery import DeliverySettings, delivery_kpis, demand_from, plan_delivery
    from geo_mz.relief.delivery import report_tables as plan_tables
    from geo_mz.relief.drive_audit import reaudit

    step, close = progress_bar("relief plan")
    with bad_input():
        try:
            layers, a, info = _run(o, step, plan=True)
            net = a.network
            if _has_scenario(o):
                d = _disruption(layers, a, o)
                net = reaudit(a, d).network
            s = DeliverySettings(
                kits_per_person=o.kits_per_person,
                dispatch_prep_min=a.settings.dispatch_prep_min,
                target_h_by_level={t.level: t.hours for t in a.settings.targets},
                vrp_time_limit_s=o.time_limit,
                match=o.match or "any",
            )
            demand = demand_from(
                _demand(layers, a, o.affected, o.people_field, o.towns, o.share), "people", s
            )
            step("分配与排线 allocating and routing")
            plan = plan_delivery(net, layers["relief_stores"], demand, s)
            step("写出结果 writing outputs")
            paths = write_plan_outputs(o.out_dir, layers, plan, lang=o.lang)
            report_beside_map(
                paths, info, delivery_kpis(plan), plan_tables(plan, lang=o.lang), o.lang,
                "救灾物资配送计划 Relief delivery plan",
            )  # fmt: skip
        finally:
            close()
    echo_kpis(delivery_kpis(plan))
    for r in plan.unmet.head(20).itertuples():
        click.echo(f"  未满足 unmet: {r.name} {r.unmet_kits} 套 kits ({r.reason})")
    echo_paths(paths)

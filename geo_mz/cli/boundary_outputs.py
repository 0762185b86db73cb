"""Result files of the boundary analyses: GeoPackage, Excel workbook, offline map, HTML report.

Part of the ``geo-mz boundaries`` commands (:mod:`geo_mz.cli.boundaries` re-exports these
functions, also for use from Python). Each ``write_*_outputs`` writes one result of
:mod:`geo_mz.boundaries` (topology QA, extracted lines, joint inspection, repair proposal) as
``<prefix>.gpkg``, ``<prefix>.xlsx``, ``<prefix>_map.html`` and ``<prefix>_report.html``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import pandas as pd

from geo_mz.cli.common import report_beside_map
from geo_mz.core.results import Kpi, ReportTable

Lang = Literal["zh", "en"]

#: An inspection with more lines than this gets one marker sheet with a line column instead of
#: a sheet per line (local choice: workbooks with more tabs are hard to navigate).
MAX_LINE_SHEETS = 50
#: Rows shown per report table; the workbook and GeoPackage have them all (local choice).
MAX_REPORT_ROWS = 60

SUMMARY_HEADINGS = {
    "line_id": "界线编号 Line",
    "line_name": "界线名称 Name",
    "length_m": "长度(米) Length (m)",
    "n_parts": "段数 Parts",
    "n_markers": "界桩数 Markers",
    "n_missing": "丢失 Missing",
    "n_damaged": "损坏 Damaged",
    "n_marker_issues": "界桩问题 Marker issues",
    "n_spacing_gaps": "间距过大 Spacing gaps",
    "n_number_jumps": "缺号 Number jumps",
    "max_spacing_m": "最大间距(米) Largest spacing (m)",
    "hausdorff_m": "与上次偏差(米) Hausdorff to previous (m)",
    "moved_length_m": "位移长度(米) Moved (m)",
    "max_shift_m": "最大位移(米) Largest shift (m)",
    "last_inspected": "上次联检 Last inspected",
    "next_inspection": "下次联检 Next due",
}


def _units_display(units: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    u = units[["code", "name", "geometry"]].rename(columns={"code": "adcode"})
    return gpd.GeoDataFrame(u, geometry="geometry", crs=units.crs).to_crs("EPSG:4490")


def _xlsx_sheet(xl: pd.ExcelWriter, df: pd.DataFrame, name: str, startrow: int = 0) -> None:
    clean = re.sub(r"[\[\]:*?/\\]", "_", name)[:31]
    df.to_excel(xl, sheet_name=clean, index=False, startrow=startrow)


def _table(df: pd.DataFrame, kind: str, cols: tuple[str, ...], lang: Lang) -> tuple:
    from geo_mz.core.results import display_table, result_catalog

    return display_table(df.head(MAX_REPORT_ROWS), result_catalog()[kind], lang, cols)


def _map(layers: dict[str, gpd.GeoDataFrame], lang: Lang) -> Any:
    from geo_mz.core.catalog import load_catalog
    from geo_mz.core.results import result_catalog
    from geo_mz.outputs.maps import layers_map

    return layers_map(
        {k: v for k, v in layers.items() if len(v)},
        catalog={**load_catalog(), **result_catalog()},
        lang=lang,
    )


def _write_files(
    out_dir: str | Path,
    prefix: str,
    layers: Mapping[str, gpd.GeoDataFrame],
    sheets: Sequence[tuple[str, pd.DataFrame, int]],
    shown: Mapping[str, gpd.GeoDataFrame],
    report: tuple[str, list[Kpi], list[ReportTable]],
    info: Mapping[str, Any] | None,
    lang: Lang,
) -> dict[str, Path]:
    """Write the four files of a result and return their paths by kind.

    ``layers`` go to the GeoPackage, ``sheets`` (name, table, start row) to the workbook in
    order, ``shown`` on the map, and ``report`` (title, KPIs, tables) to the HTML report.
    """
    from geo_mz.outputs.files import write_gpkg
    from geo_mz.outputs.maps import save_map

    out = Path(out_dir)
    paths = {"gpkg": write_gpkg(out / f"{prefix}.gpkg", layers)}
    xlsx = out / f"{prefix}.xlsx"
    xlsx.parent.mkdir(parents=True, exist_ok=True)
    with pd.ExcelWriter(xlsx, engine="openpyxl") as xl:
        for name, df, startrow in sheets:
            _xlsx_sheet(xl, df, name, startrow)
    paths["xlsx"] = xlsx
    paths["map"] = save_map(_map(dict(shown), lang), out / f"{prefix}_map.html")
    title, kpis, tables = report
    report_beside_map(paths, info or {}, kpis, tables, lang, title)
    return paths


def _attributes(gdf: gpd.GeoDataFrame, kind: str) -> pd.DataFrame:
    """Return a result layer's attributes under the catalog's bilingual headings (a sheet)."""
    from geo_mz.core.results import headed, result_catalog

    return headed(pd.DataFrame(gdf.drop(columns="geometry")), result_catalog()[kind])


def write_qa_outputs(
    out_dir: str | Path,
    q: Any,
    *,
    info: Mapping[str, Any] | None = None,
    lang: Lang = "zh",
    prefix: str = "boundary_qa",
) -> dict[str, Path]:
    """Write a :class:`geo_mz.boundaries.Qa`: GeoPackage, workbook, map and HTML report."""
    from geo_mz.boundaries.topology import findings_layer, qa_kpis
    from geo_mz.core.results import kpi_frame

    f = findings_layer(q)
    layers = {"boundary_findings": f}
    if len(q.invalid_edges):
        layers["boundary_unmatched_edges"] = q.invalid_edges.to_crs("EPSG:4490")
    kpis = qa_kpis(q)
    sheets = [
        ("指标 KPIs", kpi_frame(kpis), 0),
        ("问题 findings", _attributes(f, "boundary_findings"), 0),
    ]
    if len(q.invalid_edges):
        e = pd.DataFrame(q.invalid_edges.drop(columns="geometry"))
        sheets.append(("公共边不一致 unmatched edges", e, 0))
    cols = ("finding_id", "kind", "name_a", "name_b", "area_m2", "width_m", "distance_m", "detail")
    h, r = _table(f, "boundary_findings", cols, lang)
    s = q.settings
    note = (
        f"碎片 < {s.sliver_tol_m2:g} m²；应相接容差 {s.near_tol_m:g} m；量算坐标系 "
        f"{q.units.crs.to_string()} / slivers < {s.sliver_tol_m2:g} m², touch tolerance "
        f"{s.near_tol_m:g} m (local choices); gaps "
        + ("against the given extent" if q.extent_used else "= space the units enclose")
        + "；无效单位按原始环计数(非零环绕或奇偶规则)，不先修复 / invalid units are counted "
        "from their rings as given (non-zero or even-odd rule), not repaired first"
    )
    tables = [ReportTable("拓扑检查问题", "Topology findings", h, r, note)]
    shown = {"admin_units": _units_display(q.units), **layers}
    title = "界线拓扑检查 Boundary topology QA"
    return _write_files(out_dir, prefix, layers, sheets, shown, (title, kpis, tables), info, lang)


def _summary_table(sm: pd.DataFrame, cols: list[str]) -> tuple:
    cols = [c for c in cols if c in sm.columns]
    heads = tuple(SUMMARY_HEADINGS[c] for c in cols)
    rows = []
    for rec in sm[cols].head(MAX_REPORT_ROWS).itertuples(index=False):
        cells = []
        for v in rec:
            if v is None or (isinstance(v, float) and pd.isna(v)):
                cells.append("")
            elif isinstance(v, float):
                cells.append(f"{v:,.1f}" if v % 1 else f"{v:,.0f}")
            else:
                cells.append(str(v))
        rows.append(tuple(cells))
    return heads, tuple(rows)


def write_lines_outputs(
    out_dir: str | Path,
    lines: gpd.GeoDataFrame,
    units: gpd.GeoDataFrame,
    *,
    info: Mapping[str, Any] | None = None,
    lang: Lang = "zh",
    prefix: str = "boundary_lines",
) -> dict[str, Path]:
    """Write extracted lines: ``.gpkg``, ``.xlsx`` (one row per line), map and report."""
    from geo_mz.boundaries.lines import line_summary, lines_layer

    lay = lines_layer(lines)
    layers = {"boundary_lines": lay}
    sm = line_summary(lines)
    sheets = [("界线 lines", sm, 0), ("分段 parts", _attributes(lay, "boundary_lines"), 0)]
    shared = sm[sm["kind"] == "shared"]
    outer_km = round(sm.loc[sm["kind"] == "outer", "length_m"].sum() / 1e3, 2)
    repaired = "是 yes" if lines["from_repair"].any() else "否 no"
    kpis = [
        Kpi("共有界线", "Shared lines", len(shared)),
        Kpi("共有界线总长", "Shared lines, total", round(shared["length_m"].sum() / 1e3, 2), "km"),
        Kpi("外围界线总长", "Outer border, total", outer_km, "km"),
        Kpi("取自修复方案", "Taken from the repair proposal", repaired),
    ]
    h, r = _summary_table(sm, ["line_id", "line_name", "length_m", "n_parts"])
    tables = [ReportTable("行政区域界线", "Boundary lines", h, r)]
    shown = {"admin_units": _units_display(units), **layers}
    title = "行政区域界线 Boundary lines"
    return _write_files(out_dir, prefix, layers, sheets, shown, (title, kpis, tables), info, lang)


def write_inspection_outputs(
    out_dir: str | Path,
    ins: Any,
    units: gpd.GeoDataFrame,
    *,
    info: Mapping[str, Any] | None = None,
    lang: Lang = "zh",
    prefix: str = "boundary_inspect",
) -> dict[str, Path]:
    """Write an :class:`geo_mz.boundaries.Inspection`: GeoPackage, workbook, map, report.

    The GeoPackage has the lines, the marker checks and the line issues; the workbook a sheet
    per line (one sheet with a line column past :data:`MAX_LINE_SHEETS` lines).
    """
    from geo_mz.boundaries.inspection import inspection_kpis, issues_layer, marker_layer
    from geo_mz.boundaries.lines import lines_layer
    from geo_mz.core.results import headed, kpi_frame, result_catalog

    specs = result_catalog()
    layers = {
        "boundary_lines": lines_layer(ins.lines),
        "boundary_marker_report": marker_layer(ins),
        "boundary_line_issues": issues_layer(ins),
    }
    kpis = inspection_kpis(ins)
    sm = ins.summary
    mk = pd.DataFrame(layers["boundary_marker_report"].drop(columns="geometry"))
    iss = pd.DataFrame(layers["boundary_line_issues"].drop(columns="geometry"))
    cols = [c for c in SUMMARY_HEADINGS if c in sm.columns]
    sheets = [
        ("指标 KPIs", kpi_frame(kpis), 0),
        ("界线 lines", sm[cols].rename(columns=SUMMARY_HEADINGS), 0),
    ]
    with_content = [
        lid
        for lid in sm["line_id"]
        if (mk["line_id"] == lid).any() or (iss["line_id"] == lid).any()
    ]
    if len(with_content) <= MAX_LINE_SHEETS:
        for lid in with_content:
            m = headed(mk[mk["line_id"] == lid], specs["boundary_marker_report"])
            i = headed(iss[iss["line_id"] == lid], specs["boundary_line_issues"])
            sheets += [(lid, m, 0), (lid, i, len(m) + 3)]
    else:
        sheets.append(("界桩 markers", headed(mk, specs["boundary_marker_report"]), 0))
        sheets.append(("问题 issues", headed(iss, specs["boundary_line_issues"]), 0))
    rest = mk[mk["line_id"].isna()]
    if len(rest):
        sheets.append(("未匹配 unmatched", headed(rest, specs["boundary_marker_report"]), 0))
    h, r = _summary_table(sm, list(SUMMARY_HEADINGS))
    s = ins.settings
    note = (
        f"界桩搜索 {s.marker_search_m:g} m；偏离容差 {s.marker_to_line_tol_m:g} m；最大间距 "
        f"{s.max_spacing_m:g} m；位移容差 {s.change_tol_m:g} m (UNSOURCED/local choices); "
        f"next = last + {s.inspection_years} y (《省级行政区域界线联合检查实施办法》第六条)"
    )
    tables = [ReportTable("界线联检汇总", "Joint inspection per line", h, r, note)]
    bad = layers["boundary_marker_report"]
    bad = bad[bad["check"] != "ok"]
    if len(bad):
        cols2 = ("number", "line_id", "order", "chainage_m", "offset_m", "status", "issues")
        h2, r2 = _table(bad, "boundary_marker_report", cols2, lang)
        tables.append(ReportTable("有问题的界桩", "Markers with issues", h2, r2))
    if len(iss):
        cols3 = ("issue_id", "line_id", "kind", "from_m", "to_m", "length_m", "detail")
        h3, r3 = _table(layers["boundary_line_issues"], "boundary_line_issues", cols3, lang)
        tables.append(ReportTable("界线问题", "Line issues", h3, r3))
    shown = {"admin_units": _units_display(units), **layers}
    title = "行政区域界线联合检查 Boundary joint inspection"
    return _write_files(out_dir, prefix, layers, sheets, shown, (title, kpis, tables), info, lang)


def write_repair_outputs(
    out_dir: str | Path,
    rep: Any,
    *,
    info: Mapping[str, Any] | None = None,
    lang: Lang = "zh",
    prefix: str = "boundary_repair",
) -> dict[str, Path]:
    """Write a repair proposal: the proposed units and the changes (never over the source)."""
    from geo_mz.boundaries.coverage_repair import repair_kpis, repaired_layer, repairs_layer
    from geo_mz.core.results import kpi_frame

    changes = repairs_layer(rep)
    layers = {"boundary_repaired": repaired_layer(rep), "boundary_repairs": changes}
    if len(rep.gaps_left):
        left = gpd.GeoDataFrame(
            {"area_m2": rep.gaps_left.area.to_numpy()}, geometry=rep.gaps_left.values
        )
        layers["boundary_gaps_left"] = left.to_crs("EPSG:4490")
    kpis = repair_kpis(rep)
    sheets = [
        ("指标 KPIs", kpi_frame(kpis), 0),
        ("变化 changes", _attributes(changes, "boundary_repairs"), 0),
    ]
    cols = (
        "unit",
        "name",
        "area_before_m2",
        "area_after_m2",
        "added_m2",
        "removed_m2",
        "n_added",
        "n_removed",
    )
    h, r = _table(changes, "boundary_repairs", cols, lang)
    note = (
        f"方法 {rep.method}；缝隙宽度 < {rep.gap_width_m:g} m 并入相邻单位(公共边最长者)；仅为"
        f"建议，未改动原数据 / gaps narrower than {rep.gap_width_m:g} m merged into the neighbour "
        "with the longest shared border, overlaps to the unit with the longest border along "
        "them; a proposal only, the source is unchanged"
    )
    tables = [ReportTable("修复方案：各单位变化", "Repair proposal: changes per unit", h, r, note)]
    shown = {"admin_units": _units_display(rep.before), **layers}
    title = "界线拓扑修复方案 Boundary repair proposal"
    return _write_files(out_dir, prefix, layers, sheets, shown, (title, kpis, tables), info, lang)


__all__ = [
    "MAX_LINE_SHEETS",
    "MAX_REPORT_ROWS",
    "SUMMARY_HEADINGS",
    "write_inspection_outputs",
    "write_lines_outputs",
    "write_qa_outputs",
    "write_repair_outputs",
]

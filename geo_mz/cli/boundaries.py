"""``geo-mz boundaries ...``: topology QA, boundary lines, joint inspection, repair proposal.

Registered on the main group by :mod:`geo_mz.cli.app` (the click group is :data:`boundaries`).
Each command reads one level of admin units from a workspace (``--workspace W --level town``)
or a file (``--file F``, ``--source-crs gcj02`` for Amap/echarts coordinates), writes a
GeoPackage, an Excel workbook, an offline map and an HTML report into ``--out``, prints the
headline figures, and exits 2 on bad input. Nothing is ever written back to the workspace: the
repair is a proposal in its own file.

The ``write_*_outputs`` functions do the same from Python (e.g. in a notebook).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import click
import geopandas as gpd
import pandas as pd

from geo_mz.cli.common import (
    bad_input,
    echo_kpis,
    lang_option,
    only_with,
    out_option,
    progress_bar,
)
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


@dataclass(frozen=True)
class Source:
    """What a command read: units (EPSG:4490), their extent, markers, and report info."""

    units: gpd.GeoDataFrame
    info: dict[str, Any]
    extent: gpd.GeoDataFrame | None = None
    markers: gpd.GeoDataFrame | None = None
    measure_crs: str | None = None


# --- output writers -----------------------------------------------------------------------------


def _units_display(units: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    u = units[["code", "name", "geometry"]].rename(columns={"code": "adcode"})
    return gpd.GeoDataFrame(u, geometry="geometry", crs=units.crs).to_crs("EPSG:4490")


def _xlsx_sheet(xl: pd.ExcelWriter, df: pd.DataFrame, name: str, startrow: int = 0) -> None:
    clean = re.sub(r"[\[\]:*?/\\]", "_", name)[:31]
    df.to_excel(xl, sheet_name=clean, index=False, startrow=startrow)


def _table(df: pd.DataFrame, kind: str, cols: tuple[str, ...], lang: Lang) -> tuple:
    from geo_mz.core.results import display_table, result_catalog

    return display_table(df.head(MAX_REPORT_ROWS), result_catalog()[kind], lang, cols)


def _write_report(
    path: Path,
    info: Mapping[str, Any],
    kpis: list[Kpi],
    tables: list[ReportTable],
    lang: Lang,
    title: str,
    map_path: Path,
) -> Path:
    from geo_mz.outputs.report import write_report

    return write_report(
        path,
        info=info,
        validation=[],
        kpis=kpis,
        map_href=map_path.name,
        lang=lang,
        title=title,
        tables=tables,
    )


def _map(layers: dict[str, gpd.GeoDataFrame], lang: Lang) -> Any:
    from geo_mz.core.catalog import load_catalog
    from geo_mz.core.results import result_catalog
    from geo_mz.outputs.maps import layers_map

    return layers_map(
        {k: v for k, v in layers.items() if len(v)},
        catalog={**load_catalog(), **result_catalog()},
        lang=lang,
    )


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
    from geo_mz.core.results import headed, kpi_frame, result_catalog
    from geo_mz.outputs.files import write_gpkg
    from geo_mz.outputs.maps import save_map

    out = Path(out_dir)
    f = findings_layer(q)
    layers = {"boundary_findings": f}
    if len(q.invalid_edges):
        layers["boundary_unmatched_edges"] = q.invalid_edges.to_crs("EPSG:4490")
    kpis = qa_kpis(q)
    paths = {"gpkg": write_gpkg(out / f"{prefix}.gpkg", layers)}
    xlsx = out / f"{prefix}.xlsx"
    xlsx.parent.mkdir(parents=True, exist_ok=True)
    spec = result_catalog()["boundary_findings"]
    with pd.ExcelWriter(xlsx, engine="openpyxl") as xl:
        _xlsx_sheet(xl, kpi_frame(kpis), "指标 KPIs")
        _xlsx_sheet(xl, headed(pd.DataFrame(f.drop(columns="geometry")), spec), "问题 findings")
        if len(q.invalid_edges):
            e = pd.DataFrame(q.invalid_edges.drop(columns="geometry"))
            _xlsx_sheet(xl, e, "公共边不一致 unmatched edges")
    paths["xlsx"] = xlsx
    shown = {"admin_units": _units_display(q.units), **layers}
    paths["map"] = save_map(_map(shown, lang), out / f"{prefix}_map.html")
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
    paths["report"] = _write_report(
        out / f"{prefix}_report.html",
        info or {},
        kpis,
        tables,
        lang,
        "界线拓扑检查 Boundary topology QA",
        paths["map"],
    )
    return paths


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
    from geo_mz.core.results import headed, result_catalog
    from geo_mz.outputs.files import write_gpkg
    from geo_mz.outputs.maps import save_map

    out = Path(out_dir)
    lay = lines_layer(lines)
    paths = {"gpkg": write_gpkg(out / f"{prefix}.gpkg", {"boundary_lines": lay})}
    sm = line_summary(lines)
    xlsx = out / f"{prefix}.xlsx"
    xlsx.parent.mkdir(parents=True, exist_ok=True)
    with pd.ExcelWriter(xlsx, engine="openpyxl") as xl:
        _xlsx_sheet(xl, sm, "界线 lines")
        spec = result_catalog()["boundary_lines"]
        _xlsx_sheet(xl, headed(pd.DataFrame(lay.drop(columns="geometry")), spec), "分段 parts")
    paths["xlsx"] = xlsx
    shown = {"admin_units": _units_display(units), "boundary_lines": lay}
    paths["map"] = save_map(_map(shown, lang), out / f"{prefix}_map.html")
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
    paths["report"] = _write_report(
        out / f"{prefix}_report.html",
        info or {},
        kpis,
        tables,
        lang,
        "行政区域界线 Boundary lines",
        paths["map"],
    )
    return paths


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
    from geo_mz.outputs.files import write_gpkg
    from geo_mz.outputs.maps import save_map

    out = Path(out_dir)
    specs = result_catalog()
    layers = {
        "boundary_lines": lines_layer(ins.lines),
        "boundary_marker_report": marker_layer(ins),
        "boundary_line_issues": issues_layer(ins),
    }
    paths = {"gpkg": write_gpkg(out / f"{prefix}.gpkg", layers)}
    kpis = inspection_kpis(ins)
    sm = ins.summary
    mk = pd.DataFrame(layers["boundary_marker_report"].drop(columns="geometry"))
    iss = pd.DataFrame(layers["boundary_line_issues"].drop(columns="geometry"))
    xlsx = out / f"{prefix}.xlsx"
    xlsx.parent.mkdir(parents=True, exist_ok=True)
    with pd.ExcelWriter(xlsx, engine="openpyxl") as xl:
        _xlsx_sheet(xl, kpi_frame(kpis), "指标 KPIs")
        cols = [c for c in SUMMARY_HEADINGS if c in sm.columns]
        _xlsx_sheet(xl, sm[cols].rename(columns=SUMMARY_HEADINGS), "界线 lines")
        with_content = [
            lid
            for lid in sm["line_id"]
            if (mk["line_id"] == lid).any() or (iss["line_id"] == lid).any()
        ]
        if len(with_content) <= MAX_LINE_SHEETS:
            for lid in with_content:
                m = headed(mk[mk["line_id"] == lid], specs["boundary_marker_report"])
                i = headed(iss[iss["line_id"] == lid], specs["boundary_line_issues"])
                _xlsx_sheet(xl, m, lid)
                _xlsx_sheet(xl, i, lid, startrow=len(m) + 3)
        else:
            _xlsx_sheet(xl, headed(mk, specs["boundary_marker_report"]), "界桩 markers")
            _xlsx_sheet(xl, headed(iss, specs["boundary_line_issues"]), "问题 issues")
        rest = mk[mk["line_id"].isna()]
        if len(rest):
            _xlsx_sheet(xl, headed(rest, specs["boundary_marker_report"]), "未匹配 unmatched")
    paths["xlsx"] = xlsx
    shown = {"admin_units": _units_display(units), **layers}
    paths["map"] = save_map(_map(shown, lang), out / f"{prefix}_map.html")
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
    paths["report"] = _write_report(
        out / f"{prefix}_report.html",
        info or {},
        kpis,
        tables,
        lang,
        "行政区域界线联合检查 Boundary joint inspection",
        paths["map"],
    )
    return paths


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
    from geo_mz.core.results import headed, kpi_frame, result_catalog
    from geo_mz.outputs.files import write_gpkg
    from geo_mz.outputs.maps import save_map

    out = Path(out_dir)
    changes = repairs_layer(rep)
    layers = {"boundary_repaired": repaired_layer(rep), "boundary_repairs": changes}
    if len(rep.gaps_left):
        left = gpd.GeoDataFrame(
            {"area_m2": rep.gaps_left.area.to_numpy()}, geometry=rep.gaps_left.values
        )
        layers["boundary_gaps_left"] = left.to_crs("EPSG:4490")
    paths = {"gpkg": write_gpkg(out / f"{prefix}.gpkg", layers)}
    kpis = repair_kpis(rep)
    xlsx = out / f"{prefix}.xlsx"
    xlsx.parent.mkdir(parents=True, exist_ok=True)
    spec = result_catalog()["boundary_repairs"]
    with pd.ExcelWriter(xlsx, engine="openpyxl") as xl:
        _xlsx_sheet(xl, kpi_frame(kpis), "指标 KPIs")
        _xlsx_sheet(
            xl, headed(pd.DataFrame(changes.drop(columns="geometry")), spec), "变化 changes"
        )
    paths["xlsx"] = xlsx
    shown = {"admin_units": _units_display(rep.before), **layers}
    paths["map"] = save_map(_map(shown, lang), out / f"{prefix}_map.html")
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
    paths["report"] = _write_report(
        out / f"{prefix}_report.html",
        info or {},
        kpis,
        tables,
        lang,
        "界线拓扑修复方案 Boundary repair proposal",
        paths["map"],
    )
    return paths


# --- reading ------------------------------------------------------------------------------------


def load_source(o: SimpleNamespace) -> Source:
    """Units of one level from ``--workspace``/``--level`` or ``--file``, plus markers."""
    from geo_mz.boundaries.units import BoundaryError, read_layer_file

    if bool(o.workspace) == bool(o.file):
        raise click.UsageError("给出 --workspace 或 --file 之一 / give --workspace or --file")
    only_with(
        markers_crs=(bool(o.markers), "--markers"),
        source_crs=(bool(o.file), "--file"),
        layer_name=(bool(o.file), "--file"),
        encoding=(bool(o.file), "--file"),
        previous_crs=(bool(getattr(o, "previous", None)), "--previous"),
    )
    markers = read_layer_file(o.markers, source_crs=o.markers_crs) if o.markers else None
    if o.workspace:
        from geo_mz.core.workspaces import open_workspace

        ws = open_workspace(o.workspace)
        admin = ws.read("admin_units")
        levels = sorted(admin["level"].dropna().unique())
        level = o.level or (levels[0] if len(levels) == 1 else None)
        if level is None:
            raise BoundaryError(
                f"工作空间有多个行政级别 {levels}，请用 --level 指定 / the workspace has levels "
                f"{levels}; say which with --level"
            )
        units = admin[admin["level"] == level]
        if not len(units):
            raise BoundaryError(
                f"没有级别为 '{level}' 的行政单元（现有级别：{levels}）/ no admin units of "
                f"level '{level}'; levels are {levels}"
            )
        extent = None
        if o.within_parent and "parent_adcode" in units:
            parents = admin[admin["adcode"].isin(set(units["parent_adcode"].dropna()))]
            extent = parents if len(parents) else None
        if markers is None and "boundary_markers" in ws.layers():
            markers = ws.read("boundary_markers")
        info = ws.info()
        return Source(units, info, extent, markers, o.measure_crs or ws.metadata.get("measure_crs"))
    units = read_layer_file(
        o.file, source_crs=o.source_crs, layer=o.layer_name, encoding=o.encoding
    )
    if o.level:
        if "level" not in units:
            raise BoundaryError(
                f"{o.file}: 没有 level 列，无法按 --level {o.level} 选取 / no 'level' column "
                f"to select --level {o.level}"
            )
        units = units[units["level"] == o.level]
    info = {"name": Path(o.file).stem, "path": str(o.file)}
    return Source(units, info, None, markers, o.measure_crs)


# --- commands -------------------------------------------------------------------------------------


input_options = [
    click.option("--workspace", type=click.Path(dir_okay=False), help="工作空间 / workspace."),
    click.option(
        "--level",
        default=None,
        help="区划层级，如 county/town/village / admin level to check (e.g. town).",
    ),
    click.option(
        "--file",
        type=click.Path(dir_okay=False, exists=True),
        help="区划面文件(代替工作空间) / polygon file instead of a workspace.",
    ),
    click.option(
        "--source-crs",
        default=None,
        help="文件坐标系；gcj02/bd09 为高德/百度坐标 / "
        "CRS of --file; gcj02 or bd09 for "
        "Amap/echarts/Baidu coordinates.",
    ),
    click.option("--layer-name", default=None, help="文件中的图层 / layer inside --file."),
    click.option(
        "--encoding",
        default=None,
        help="--file 的文字编码，如 gbk(默认 UTF-8) / text encoding of --file, e.g. gbk.",
    ),
    click.option("--code-field", default=None, help="代码字段(默认自动) / code column."),
    click.option("--name-field", default=None, help="名称字段(默认自动) / name column."),
    click.option(
        "--measure-crs", default=None, help="量算坐标系(默认高斯-克吕格3度带) / measuring CRS."
    ),
    click.option(
        "--within-parent/--no-within-parent",
        default=True,
        show_default=True,
        help="以上级区划为范围查缝隙(工作空间) / look for gaps against the parent units.",
    ),
    click.option(
        "--markers",
        type=click.Path(dir_okay=False, exists=True),
        help="界桩文件(默认工作空间 boundary_markers) / marker file.",
    ),
    click.option("--markers-crs", default=None, help="界桩文件坐标系 / CRS of --markers."),
    out_option,
    lang_option,
]


def _apply(options: list[Any]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def deco(f: Callable[..., None]) -> Callable[..., None]:
        for opt in reversed(options):
            f = opt(f)
        return f

    return deco


def _echo_paths(paths: dict) -> None:
    for kind, path in paths.items():
        click.echo(f"{kind:<6} {path}")


def _units(src: Source, o: SimpleNamespace) -> gpd.GeoDataFrame:
    from geo_mz.boundaries.units import prepare_units

    return prepare_units(
        src.units, code_field=o.code_field, name_field=o.name_field, measure_crs=src.measure_crs
    )


@click.group()
def boundaries() -> None:
    """行政区域界线：拓扑检查、界线、联检、修复 / Boundaries: QA, lines, inspection, repair."""


@boundaries.command(name="qa")
@_apply(input_options)
@click.option(
    "--sliver-m2",
    type=float,
    default=None,
    help="碎片面积上限(默认100 m²，本地取值) / sliver area (default 100 m², local choice).",
)
@click.option(
    "--near-m",
    type=float,
    default=None,
    help="应相接距离容差(默认10 m) / touch tolerance (default 10 m).",
)
def boundaries_qa(**opts: Any) -> None:
    """拓扑检查：无效几何、重叠、缝隙、碎片、应相接未相接 / Topology QA of one level.

    例 e.g.: geo-mz boundaries qa --workspace out/pengjiang.gpkg --level town --out out/qa
    """
    o = SimpleNamespace(**opts)
    from geo_mz.boundaries.topology import QA_DEFAULTS, qa, qa_kpis

    step, close = progress_bar("boundaries qa")
    with bad_input():
        try:
            src = load_source(o)
            step("检查 checking")
            s = QA_DEFAULTS
            if o.sliver_m2 is not None:
                s = replace(s, sliver_tol_m2=o.sliver_m2)
            if o.near_m is not None:
                s = replace(s, near_tol_m=o.near_m)
            q = qa(_units(src, o), extent=src.extent, settings=s)
            step("写出结果 writing outputs")
            paths = write_qa_outputs(o.out_dir, q, info=src.info, lang=o.lang)
        finally:
            close()
    echo_kpis(qa_kpis(q))
    _echo_paths(paths)


repair_options = [
    click.option(
        "--gap-width-m",
        type=float,
        default=None,
        help="并入的缝隙宽度上限(默认20 m，本地取值) / "
        "close gaps narrower than this (default 20 m, local choice).",
    ),
    click.option(
        "--snap-m",
        type=float,
        default=None,
        help="节点捕捉距离(默认自动) / vertex snapping distance (default: automatic).",
    ),
]


@boundaries.command(name="lines")
@_apply(input_options + repair_options[:1])
@click.option(
    "--outer/--no-outer",
    default=True,
    show_default=True,
    help="含外围界线 / include outer borders.",
)
def boundaries_lines(**opts: Any) -> None:
    """提取界线：相邻单位共有界线与外围界线 / Extract the boundary lines.

    数据不构成有效覆盖时取修复方案的界线 / taken from the repair proposal when the units are
    not a clean coverage.
    """
    o = SimpleNamespace(**opts)
    from geo_mz.boundaries.coverage_repair import GAP_WIDTH_M
    from geo_mz.boundaries.lines import extract_lines

    step, close = progress_bar("boundaries lines")
    with bad_input():
        try:
            src = load_source(o)
            u = _units(src, o)
            step("提取界线 extracting")
            gw = GAP_WIDTH_M if o.gap_width_m is None else o.gap_width_m
            lines = extract_lines(u, include_outer=o.outer, gap_width_m=gw)
            step("写出结果 writing outputs")
            paths = write_lines_outputs(o.out_dir, lines, u, info=src.info, lang=o.lang)
        finally:
            close()
    shared = lines[lines["kind"] == "shared"]
    click.echo(
        f"  共有界线 shared lines: {shared['line_id'].nunique()}, "
        f"{shared['length_m'].sum() / 1e3:.2f} km"
        + ("  (取自修复方案 from the repair proposal)" if lines["from_repair"].any() else "")
    )
    _echo_paths(paths)


@boundaries.command(name="inspect")
@_apply(input_options + repair_options[:1])
@click.option(
    "--previous",
    type=click.Path(dir_okay=False, exists=True),
    help="上次联检界线 / previous inspection's lines.",
)
@click.option("--previous-crs", default=None, help="上次界线坐标系 / CRS of --previous.")
@click.option(
    "--registered",
    type=click.Path(dir_okay=False, exists=True),
    help="界桩登记表坐标 / registered marker positions.",
)
@click.option(
    "--search-m",
    type=float,
    default=None,
    help="界桩搜索距离(默认200 m) / marker search distance (default 200 m).",
)
@click.option(
    "--offset-tol-m",
    type=float,
    default=None,
    help="界桩偏离界线容差(默认1 m，UNSOURCED) / marker-to-line tolerance (default 1 m).",
)
@click.option(
    "--max-spacing-m",
    type=float,
    default=None,
    help="界桩最大间距(默认3000 m) / largest marker spacing (default 3,000 m).",
)
@click.option(
    "--change-tol-m",
    type=float,
    default=None,
    help="界线位移容差(默认5 m) / line change tolerance (default 5 m).",
)
def boundaries_inspect(**opts: Any) -> None:
    """界线联检：界桩偏离、里程、顺序与编号、间距、缺号、重号、界线变化 / Joint inspection.

    例 e.g.: geo-mz boundaries inspect --workspace out/pengjiang.gpkg --level county
    --previous lines_2016.gpkg --out out/inspect
    """
    o = SimpleNamespace(**opts)
    from geo_mz.boundaries.coverage_repair import GAP_WIDTH_M
    from geo_mz.boundaries.inspection import inspect_lines, inspection_kpis
    from geo_mz.boundaries.lines import extract_lines
    from geo_mz.boundaries.markers import InspectSettings
    from geo_mz.boundaries.units import read_layer_file

    step, close = progress_bar("boundaries inspect")
    with bad_input():
        try:
            src = load_source(o)
            u = _units(src, o)
            step("提取界线 extracting lines")
            gw = GAP_WIDTH_M if o.gap_width_m is None else o.gap_width_m
            lines = extract_lines(u, gap_width_m=gw)
            prev = read_layer_file(o.previous, source_crs=o.previous_crs) if o.previous else None
            reg = read_layer_file(o.registered) if o.registered else None
            s = InspectSettings()
            for opt, name in (
                ("search_m", "marker_search_m"),
                ("offset_tol_m", "marker_to_line_tol_m"),
                ("max_spacing_m", "max_spacing_m"),
                ("change_tol_m", "change_tol_m"),
            ):
                if getattr(o, opt) is not None:
                    s = replace(s, **{name: getattr(o, opt)})
            step("联检 inspecting")
            ins = inspect_lines(lines, src.markers, prev, registered=reg, units=u, settings=s)
            step("写出结果 writing outputs")
            paths = write_inspection_outputs(o.out_dir, ins, u, info=src.info, lang=o.lang)
        finally:
            close()
    echo_kpis(inspection_kpis(ins))
    _echo_paths(paths)


@boundaries.command(name="repair")
@_apply(input_options + repair_options)
@click.option(
    "--method",
    type=click.Choice(["auto", "coverage_clean", "polygonize"]),
    default="auto",
    show_default=True,
    help="修复方法 / repair method.",
)
def boundaries_repair(**opts: Any) -> None:
    """修复方案：消除重叠与缝隙、公共边一致；单独输出，不改原数据 / Repair proposal.

    例 e.g.: geo-mz boundaries repair --file jiangmen.geojson --source-crs gcj02
    --gap-width-m 150 --out out/repair
    """
    o = SimpleNamespace(**opts)
    from geo_mz.boundaries.coverage_repair import GAP_WIDTH_M, repair, repair_kpis

    step, close = progress_bar("boundaries repair")
    with bad_input():
        try:
            src = load_source(o)
            step("修复 repairing")
            gw = GAP_WIDTH_M if o.gap_width_m is None else o.gap_width_m
            # The raw units: repair checks their codes first and names the input row.
            rep = repair(
                src.units,
                code_field=o.code_field,
                name_field=o.name_field,
                measure_crs=src.measure_crs,
                source=str(o.file or f"{o.workspace}: admin_units"),
                gap_width_m=gw,
                snap_m=o.snap_m,
                method=o.method,
            )
            step("写出结果 writing outputs")
            paths = write_repair_outputs(o.out_dir, rep, info=src.info, lang=o.lang)
        finally:
            close()
    echo_kpis(repair_kpis(rep))
    _echo_paths(paths)


__all__ = [
    "boundaries",
    "load_source",
    "write_inspection_outputs",
    "write_lines_outputs",
    "write_qa_outputs",
    "write_repair_outputs",
]

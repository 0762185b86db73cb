"""``geo-mz boundaries ...``: topology QA, boundary lines, joint inspection, repair proposal.

Registered on the main group by :mod:`geo_mz.cli.app` (the click group is :data:`boundaries`).
Each command reads one level of admin units from a workspace (``--workspace W --level town``)
or a file (``--file F``, ``--source-crs gcj02`` for Amap/echarts coordinates), writes a
GeoPackage, an Excel workbook, an offline map and an HTML report into ``--out``, prints the
headline figures, and exits 2 on bad input. Nothing is ever written back to the workspace: the
repair is a proposal in its own file.

The ``write_*_outputs`` functions (from :mod:`geo_mz.cli.boundary_outputs`) do the same from
Python (e.g. in a notebook).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
import geopandas as gpd

from geo_mz.cli.boundary_outputs import (
    write_inspection_outputs,
    write_lines_outputs,
    write_qa_outputs,
    write_repair_outputs,
)
from geo_mz.cli.common import bad_input, echo_kpis, echo_paths, only_with, progress_bar
from geo_mz.cli.options import choice_option, file_option, lang_option, out_option, with_options


@dataclass(frozen=True)
class Source:
    """What a command read: units (EPSG:4490), their extent, markers, and report info."""

    units: gpd.GeoDataFrame
    info: dict[str, Any]
    extent: gpd.GeoDataFrame | None = None
    markers: gpd.GeoDataFrame | None = None
    measure_crs: str | None = None


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
    file_option("--file", help="区划面文件(代替工作空间) / polygon file instead of a workspace."),
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
    file_option("--markers", help="界桩文件(默认工作空间 boundary_markers) / marker file."),
    click.option("--markers-crs", default=None, help="界桩文件坐标系 / CRS of --markers."),
    out_option,
    lang_option,
]


def _units(src: Source, o: SimpleNamespace) -> gpd.GeoDataFrame:
    from geo_mz.boundaries.units import prepare_units

    return prepare_units(
        src.units, code_field=o.code_field, name_field=o.name_field, measure_crs=src.measure_crs
    )


@click.group()
def boundaries() -> None:
    """行政区域界线：拓扑检查、界线、联检、修复 / Boundaries: QA, lines, inspection, repair."""


@boundaries.command(name="qa")
@with_options(input_options)
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
    echo_paths(paths, width=6)


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
@with_options(input_options + repair_options[:1])
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
    echo_paths(paths, width=6)


@boundaries.command(name="inspect")
@with_options(input_options + repair_options[:1])
@file_option("--previous", help="上次联检界线 / previous inspection's lines.")
@click.option("--previous-crs", default=None, help="上次界线坐标系 / CRS of --previous.")
@file_option("--registered", help="界桩登记表坐标 / registered marker positions.")
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
    echo_paths(paths, width=6)


@boundaries.command(name="repair")
@with_options(input_options + repair_options)
@choice_option(
    "--method",
    choices=["auto", "coverage_clean", "polygonize"],
    default="auto",
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
    echo_paths(paths, width=6)


__all__ = [
    "boundaries",
    "load_source",
    "write_inspection_outputs",
    "write_lines_outputs",
    "write_qa_outputs",
    "write_repair_outputs",
]

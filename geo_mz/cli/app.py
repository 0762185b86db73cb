"""The ``geo-mz`` command line. Exit codes: 0 ok, 2 bad input, 1 unexpected failure."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from geo_mz.cli.boundaries import boundaries
from geo_mz.cli.burial import burial
from geo_mz.cli.common import (
    BAD_INPUT,
    analysis_layers,
    bad_input,
    check_network,
    echo_kpis,
    echo_problems,
    flag_maps,
    lang_option,
    missing_extra_message,
    only_with,
    out_option,
    progress_bar,
    read_points,
    strict_option,
)
from geo_mz.cli.fetch import fetch
from geo_mz.cli.init import init
from geo_mz.cli.names import names
from geo_mz.cli.postgis import webmap_group
from geo_mz.cli.relief import relief, shelters
from geo_mz.cli.scale import scale
from geo_mz.cli.sources import with_source_import_options
from geo_mz.cli.webmap import serve, users

source_options = [
    click.option(
        "--source-crs",
        default=None,
        help="坐标系：EPSG:4490/EPSG:4326，或 gcj02(高德/echarts)、bd09(百度)，将转换为WGS84 / "
        "CRS of the coordinates: EPSG code, or gcj02 / bd09 (converted to WGS84).",
    ),
    click.option(
        "--layer-name", default=None, help="多图层文件中的图层名 / layer inside a multi-layer file."
    ),
    click.option(
        "--sheet",
        default=None,
        help="Excel(.xlsx)工作表名，默认第一个 / sheet of an XLSX workbook (default: the first).",
    ),
    click.option(
        "--encoding", default=None, help="文本编码(如 gbk) / text encoding when not UTF-8."
    ),
    click.option(
        "--lon-field",
        default=None,
        help="经度列名(未自动识别时) / longitude column of a CSV/XLSX list when not detected.",
    ),
    click.option(
        "--lat-field",
        default=None,
        help="纬度列名(未自动识别时) / latitude column of a CSV/XLSX list when not detected.",
    ),
    click.option(
        "--default",
        "defaults",
        multiple=True,
        metavar="FIELD=VALUE",
        help="为文件缺少的字段或空值赋值，可重复；编号字段可用 auto 按行号编号 / value for a "
        "field the file lacks or leaves empty (repeatable); ID_FIELD=auto numbers the rows.",
    ),
    click.option(
        "--clip",
        is_flag=True,
        help="只保留辖区内的行，辖区外的逐行列出 / keep the rows inside the workspace's "
        "district and list the others instead of failing.",
    ),
    click.option(
        "--repair",
        is_flag=True,
        help="用 make_valid 修复无效几何(逐条报告) / repair invalid geometries (reported).",
    ),
]


def _with_source_options(f: Callable[..., None]) -> Callable[..., None]:
    for opt in reversed(source_options):
        f = opt(f)
    return f


def _source_kwargs(
    layer_name: str | None,
    sheet: str | None,
    lon_field: str | None,
    lat_field: str | None,
    defaults: tuple[str, ...],
) -> dict[str, Any]:
    """Turn the shared source options into keyword arguments of the library."""
    from geo_mz.core.defaults import parse_defaults
    from geo_mz.core.errors import LayerReadError

    if layer_name is not None and sheet is not None and layer_name != sheet:
        raise LayerReadError(
            f"--layer-name {layer_name} 与 --sheet {sheet} 不一致 / --layer-name and --sheet "
            f"name different layers; give one"
        )
    return {
        "layer_name": sheet if sheet is not None else layer_name,
        "lon_field": lon_field,
        "lat_field": lat_field,
        "defaults": parse_defaults(defaults) or None,
    }


def _echo_result(result: Any) -> None:
    """Print a result's warnings and notices, then the rows a clip left out, in full."""
    echo_problems(
        [p for p in result.problems if p.severity != "error" and p.code != "outside_district"]
    )
    if result.clipped is not None and len(result.clipped):
        click.echo(
            f"辖区外未导入 {len(result.clipped)} 行 / {len(result.clipped)} rows outside the "
            f"district, left out ({result.district}):",
            err=True,
        )
        click.echo("  row\tid\tlon\tlat\tdistance_km", err=True)
        for r in result.clipped.itertuples(index=False):
            click.echo(f"  {r.row}\t{r.id}\t{r.lon}\t{r.lat}\t{r.distance_km}", err=True)


class _Main(click.Group):
    """The ``geo-mz`` group: a missing optional package is a message naming its extra.

    Commands check their optional packages up front (``need_extra``); this catches any import
    of one that slips past, so a user never meets a ``ModuleNotFoundError`` traceback.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as exc:
            msg = missing_extra_message(exc.name or "")
            if msg is None:
                raise
            click.secho(f"错误 / error: {msg}", fg="red", err=True)
            sys.exit(BAD_INPUT)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="geo-mz")
def main() -> None:
    """geo-mz：民政空间规划与灾害应对 / GIS for civil-affairs bureaus.

    先运行 `geo-mz demo` 生成蓬江区示例工作空间、报告和地图。
    Start with `geo-mz demo`: it builds the Pengjiang sample workspace, a report and a map.
    """


@main.command()
@click.option(
    "--out",
    "out_dir",
    default="out",
    show_default=True,
    type=click.Path(file_okay=False),
    help="输出目录 / output folder.",
)
@click.option(
    "--seed",
    default=440703,
    show_default=True,
    help="合成数据随机种子 / seed of the synthetic layers.",
)
@click.option(
    "--lang",
    type=click.Choice(["zh", "en"]),
    default="zh",
    show_default=True,
    help="报告和地图语言 / language of report and map.",
)
def demo(out_dir: str, seed: int, lang: str) -> None:
    """生成蓬江区示例工作空间并输出报告和地图 / Build the Pengjiang sample, report and map."""
    from geo_mz.demo import run_demo

    step, close = progress_bar("demo")
    with bad_input():
        try:
            outputs = run_demo(out_dir, seed=seed, lang=lang, progress=step)
        finally:
            close()
    click.echo(f"工作空间 workspace : {outputs.workspace}")
    click.echo(f"人口栅格 population: {outputs.population_tif}")
    click.echo(f"地图 map           : {outputs.map}")
    click.echo(f"报告 report        : {outputs.report}")
    click.echo(f"养老服务圈 coverage: {outputs.coverage_gpkg}, {outputs.coverage_xlsx}")
    click.echo(f"洪水情景 flood     : {outputs.flood_tif}")
    click.echo(f"救灾送达 relief    : {', '.join(str(p) for p in outputs.relief.values())}")
    click.echo(f"避难场所 shelters  : {', '.join(str(p) for p in outputs.shelters.values())}")
    click.echo(f"高程 DEM (synthetic): {outputs.dem_tif}")
    click.echo(f"节地生态安葬 burial: {', '.join(str(p) for p in outputs.burial.values())}")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--layer",
    "kind",
    required=True,
    help="图层类型(见 geo-mz catalog) / layer kind (see geo-mz catalog).",
)
@_with_source_options
@click.option(
    "--workspace",
    default=None,
    type=click.Path(dir_okay=False),
    help="按该工作空间的范围检查坐标 / check coordinates against this workspace's area.",
)
@click.option("--json", "as_json", is_flag=True, help="以JSON输出 / print findings as JSON.")
def validate(
    file: str,
    kind: str,
    source_crs: str | None,
    layer_name: str | None,
    sheet: str | None,
    encoding: str | None,
    lon_field: str | None,
    lat_field: str | None,
    defaults: tuple[str, ...],
    clip: bool,
    repair: bool,
    workspace: str | None,
    as_json: bool,
) -> None:
    """检查图层文件是否符合规范 / Check a layer file against its spec (exit 2 on errors)."""
    from geo_mz.core.errors import WorkspaceError
    from geo_mz.core.validate import CHINA_BOUNDS, prepare_layer, summarize
    from geo_mz.core.workspace import district_of, reference_layer
    from geo_mz.core.workspaces import open_workspace

    with bad_input():
        if clip and not workspace:
            raise WorkspaceError(
                "--clip 需要 --workspace / --clip needs --workspace (the district)"
            )
        ws = open_workspace(workspace) if workspace else None
        reference, reference_name = reference_layer(ws, kind) if ws else (None, ("道路", "roads"))
        result = prepare_layer(
            file,
            kind,
            source_crs=source_crs,
            encoding=encoding,
            repair=repair,
            area=ws.bounds if ws else CHINA_BOUNDS,
            clip_to=district_of(ws) if ws and clip else None,
            reference=reference,
            reference_name=reference_name,
            **_source_kwargs(layer_name, sheet, lon_field, lat_field, defaults),
        )
    counts = summarize(result.problems)
    if as_json:
        clipped = None if result.clipped is None else result.clipped.to_dict("records")
        click.echo(
            json.dumps(
                {
                    "file": file,
                    "layer": kind,
                    "rows": len(result.gdf),
                    "counts": counts,
                    "problems": [p.__dict__ for p in result.problems],
                    "district": result.district,
                    "clipped": clipped,
                    "datum": None if result.datum is None else result.datum.verdict,
                },
                ensure_ascii=False,
                indent=1,
                default=str,
            )
        )
    else:
        echo_problems([p for p in result.problems if p.severity == "error"])
        _echo_result(result)
        click.echo(
            f"{file}: {len(result.gdf)} 条要素 features; {counts['error']} 错误 errors, "
            f"{counts['warning']} 警告 warnings, {counts['notice']} 提示 notices"
        )
    if not result.ok:
        sys.exit(BAD_INPUT)


@main.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--layer", "kind", required=True, help="图层类型 / layer kind.")
@click.option(
    "--workspace",
    required=True,
    type=click.Path(dir_okay=False),
    help="工作空间 GeoPackage / workspace.",
)
@_with_source_options
@click.option(
    "--synthetic", is_flag=True, help="标记为合成数据 / mark the layer as generated data."
)
@with_source_import_options
def import_(
    file: str,
    kind: str,
    workspace: str,
    source_crs: str | None,
    layer_name: str | None,
    sheet: str | None,
    encoding: str | None,
    lon_field: str | None,
    lat_field: str | None,
    defaults: tuple[str, ...],
    clip: bool,
    repair: bool,
    synthetic: bool,
    **raw: Any,
) -> None:
    """导入图层(替换同名图层；出错则不做任何修改) / Import a layer; on any error nothing changes.

    \b
    也接受原始数据 / also takes raw sources:
      roads:      OSM .osm/.osm.pbf, or lines with a `highway` column (split at junctions)
      population: a count raster (.tif) with --aged-share/--aged-share-table/--aged-raster,
                  or a table of unit codes with --by-unit (户籍: total, aged 60+)
    """  # noqa: D301
    from geo_mz.cli.sources import import_raw
    from geo_mz.core.workspaces import open_workspace

    with bad_input():
        ws = open_workspace(workspace)
        raw.update(layer_name=sheet or layer_name, encoding=encoding)
        if import_raw(ws, file, kind, workspace, raw):
            return
        result = ws.import_file(
            file,
            kind,
            source_crs=source_crs,
            encoding=encoding,
            repair=repair,
            synthetic=synthetic,
            clip=clip,
            **_source_kwargs(layer_name, sheet, lon_field, lat_field, defaults),
        )
    _echo_result(result)
    left = "" if result.clipped is None else f"; 辖区外 {len(result.clipped)} 行未导入 left out"
    click.echo(f"已导入 imported {len(result.gdf)} 条 features → {workspace}:{kind}{left}")


@main.command()
@click.argument("workspace", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="以JSON输出 / print as JSON.")
def info(workspace: str, as_json: bool) -> None:
    """显示工作空间信息和图层清单 / Show a workspace's metadata and layers."""
    from geo_mz.core.readiness import readiness
    from geo_mz.core.workspaces import open_workspace

    with bad_input():
        ws = open_workspace(workspace)
        data = ws.info()
        ready = readiness(ws)
    if as_json:
        data["readiness"] = {
            r.analysis: {
                "ready": r.ready,
                "inputs": [
                    {"input": n.layer, "required": n.required, "present": ok, "note": note}
                    for n, ok, note in r.present
                ],
            }
            for r in ready
        }
        click.echo(json.dumps(data, ensure_ascii=False, indent=1))
        return
    click.echo(f"{data['name']} ({data['adcode']})  {data['path']}")
    click.echo(
        f"存储坐标系 storage CRS: {data['storage_crs']}   "
        f"量算坐标系 measuring CRS: {data['measure_crs']}"
    )
    click.echo(f"创建 created: {data['created_at']}   geo_mz {data['geo_mz_version']}")
    for rec in data["layers"]:
        tag = "合成 synthetic" if rec["synthetic"] else "真实 real"
        click.echo(
            f"  {rec['layer']:<17} {rec['title_zh']:<10} {rec['rows']:>7}  {tag:<14} "
            f"{rec['source']}"
        )
    click.echo("分析所需 what each analysis needs (✓ present ✗ missing · optional):")
    for r in ready:
        click.echo(f"  {r.line()}")
        for hint in r.hints():
            click.echo(f"      → {hint}")


def _circle_settings(kinds: str | None, statuses: str, walk_speed: float | None) -> Any:
    from geo_mz.eldercare.circle15 import CircleSettings

    opts: dict[str, Any] = {"statuses": tuple(x for x in statuses.split(",") if x)}
    if kinds:
        opts["kinds"] = tuple(x for x in kinds.split(",") if x)
    if walk_speed is not None:
        opts["walk_speed_kmh"] = walk_speed
    return CircleSettings(**opts)


def _analyse(
    workspace: str,
    kinds: str | None,
    statuses: str,
    walk_speed: float | None,
    step: Callable[[str], None],
    strict: bool = False,
) -> tuple[Any, Any]:
    """Open the workspace and run the 15-minute circle (shared by coverage and siting)."""
    from geo_mz.core.units import unit_register
    from geo_mz.core.workspaces import open_workspace
    from geo_mz.eldercare.circle15 import analyse_circle

    ws = open_workspace(workspace)
    layers = analysis_layers(ws)
    settings = _circle_settings(kinds, statuses, walk_speed)
    result = analyse_circle(layers, settings, register=unit_register(ws.metadata), progress=step)
    result.kpis.extend(check_network(result.network, layers, strict=strict))
    for note in result.notes:
        click.echo(f"注意 note: {note}", err=True)
    return layers, result


circle_options = [
    strict_option,
    click.option(
        "--workspace",
        required=True,
        type=click.Path(dir_okay=False),
        help="工作空间 GeoPackage / workspace.",
    ),
    out_option,
    click.option(
        "--kinds",
        default=None,
        help="计入的设施类型(逗号分隔，默认社区养老服务设施) / facility kinds that count "
        "(comma-separated; default: community centres).",
    ),
    click.option(
        "--statuses",
        default="operating",
        show_default=True,
        help="计入的设施状态 / facility statuses that count.",
    ),
    click.option(
        "--walk-speed",
        type=float,
        default=None,
        help="老人步行速度 km/h(默认3.2) / elderly walking speed (default 3.2).",
    ),
    lang_option,
]


def _with_circle_options(f: Callable[..., None]) -> Callable[..., None]:
    for opt in reversed(circle_options):
        f = opt(f)
    return f


@main.command()
@_with_circle_options
def coverage(
    strict: bool,
    workspace: str,
    out_dir: str,
    kinds: str | None,
    statuses: str,
    walk_speed: float | None,
    lang: str,
) -> None:
    """15分钟养老服务圈覆盖分析 / 15-minute elder-care circle: coverage, gaps, beds.

    写出 coverage.gpkg、coverage.xlsx 和 coverage_map.html。
    Writes coverage.gpkg, coverage.xlsx and coverage_map.html.
    """
    from geo_mz.outputs.eldercare import write_circle_outputs

    step, close = progress_bar("coverage")
    with bad_input():
        try:
            layers, result = _analyse(workspace, kinds, statuses, walk_speed, step, strict)
            step("写出结果 writing outputs")
            paths = write_circle_outputs(out_dir, layers, result, lang=lang)  # type: ignore[arg-type]
        finally:
            close()
    flag_maps(paths, result.kpis)
    echo_kpis(result.kpis)
    for kind, path in paths.items():
        click.echo(f"{kind:<5} {path}")


@main.command()
@_with_circle_options
@click.option(
    "--k",
    "k",
    type=int,
    default=5,
    show_default=True,
    help="新增设施数(最大覆盖模型) / number of new centres (maximal covering).",
)
@click.option(
    "--model",
    type=click.Choice(["mclp", "lscp"]),
    default="mclp",
    show_default=True,
    help="mclp 最大覆盖 / maximal covering; lscp 最少设施全覆盖 / set covering.",
)
@click.option(
    "--candidates",
    default=None,
    type=click.Path(dir_okay=False),
    help="候选点文件(默认村居委会驻地) / candidate points file (default: village seats).",
)
@click.option("--candidates-crs", default=None, help="候选点文件坐标系 / CRS of that file.")
@click.option(
    "--capacity",
    type=float,
    default=None,
    help="每处新设施可服务老人数(有容量约束) / aged 60+ each new centre can serve.",
)
@click.option(
    "--time-limit",
    type=float,
    default=60.0,
    show_default=True,
    help="求解时限(秒) / solver time limit (s).",
)
def siting(
    strict: bool,
    workspace: str,
    out_dir: str,
    kinds: str | None,
    statuses: str,
    walk_speed: float | None,
    lang: str,
    k: int,
    model: str,
    candidates: str | None,
    candidates_crs: str | None,
    capacity: float | None,
    time_limit: float,
) -> None:
    """新增养老服务设施选址 / Site new elder-care centres (MCLP or LSCP, HiGHS or greedy).

    写出 siting.gpkg、siting.xlsx 和 siting_map.html。
    Writes siting.gpkg, siting.xlsx and siting_map.html.
    """
    from geo_mz.eldercare.circle15 import propose_sites, siting_kpis
    from geo_mz.outputs.eldercare import write_circle_outputs

    only_with(
        k=(model == "mclp", "--model mclp"), candidates_crs=(bool(candidates), "--candidates")
    )
    step, close = progress_bar("siting")
    with bad_input():
        try:
            cand = read_points(candidates, candidates_crs) if candidates else None
            layers, result = _analyse(workspace, kinds, statuses, walk_speed, step, strict)
            step("求解选址模型 solving the siting model")
            sites = propose_sites(
                layers,
                result,
                k=k if model == "mclp" else None,
                model=model,
                candidates=cand,  # type: ignore[arg-type]
                capacity_places=capacity,
                time_limit_s=time_limit,
            )
            step("写出结果 writing outputs")
            result.kpis += siting_kpis(sites, result)
            paths = write_circle_outputs(
                out_dir,
                layers,
                result,
                sites,
                lang=lang,  # type: ignore[arg-type]
                prefix="siting",
            )
        finally:
            close()
    echo_kpis(result.kpis)
    for r in sites.itertuples():
        click.echo(f"  {r.rank:>3}. {r.name}  +{r.gain_pop_60plus:,.0f} 人 aged 60+")
    for kind, path in paths.items():
        click.echo(f"{kind:<5} {path}")


@main.command()
@click.argument("kind", required=False)
def catalog(kind: str | None) -> None:
    """列出图层规范，或显示某一图层的字段 / List layer specs, or the fields of one."""
    from geo_mz.core.catalog import get_spec, load_catalog

    with bad_input():
        if kind is None:
            for name, spec in load_catalog().items():
                click.echo(f"{name:<17} {spec.geometry:<10} {spec.title_zh} / {spec.title_en}")
            return
        spec = get_spec(kind)
    click.echo(
        f"{spec.name}: {spec.title_zh} / {spec.title_en} ({spec.geometry}, id {spec.id_field})"
    )
    for f in spec.fields:
        req = "必填 required" if f.required else ""
        unit = f" [{f.unit}]" if f.unit else ""
        click.echo(f"  {f.name:<22} {f.type:<9}{unit:<10} {f.title_zh} / {f.title_en} {req}")
        for v in f.values:
            click.echo(f"      {v.code:<22} {v.zh} / {v.en}")


main.add_command(boundaries)
main.add_command(init)
main.add_command(burial)
main.add_command(fetch)
main.add_command(names)
main.add_command(relief)
main.add_command(shelters)
main.add_command(scale)
main.add_command(serve)
main.add_command(users)
main.add_command(webmap_group)


def _same_help_everywhere(group: click.Group) -> None:
    """Give every command ``-h`` as well as ``--help``, also when invoked on its own.

    Click builds a command's help option once, from the first context it runs in; a command run
    directly (a test, a plugin) would otherwise keep ``--help`` only for the rest of the process.
    """
    for cmd in group.commands.values():
        cmd.context_settings.setdefault("help_option_names", ["-h", "--help"])
        if isinstance(cmd, click.Group):
            _same_help_everywhere(cmd)


_same_help_everywhere(main)

if __name__ == "__main__":  # pragma: no cover
    main()

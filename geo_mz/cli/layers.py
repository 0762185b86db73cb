"""``geo-mz validate``, ``import``, ``info`` and ``catalog``: layer files in, workspaces read.

Registered on the main group by :mod:`geo_mz.cli.app`. The source options (CRS, sheet, columns,
defaults, clip, repair) are shared by ``validate`` and ``import``, so a file that validates
imports with the same words.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from geo_mz.cli.common import BAD_INPUT, bad_input, echo_problems
from geo_mz.cli.options import with_options
from geo_mz.cli.sources import with_source_import_options

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


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--layer",
    "kind",
    required=True,
    help="图层类型(见 geo-mz catalog) / layer kind (see geo-mz catalog).",
)
@with_options(source_options)
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


@click.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--layer", "kind", required=True, help="图层类型 / layer kind.")
@click.option(
    "--workspace",
    required=True,
    type=click.Path(dir_okay=False),
    help="工作空间 GeoPackage / workspace.",
)
@with_options(source_options)
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


@click.command()
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


@click.command()
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

"""``geo-mz init``: a workspace for any district, by its code."""

from __future__ import annotations

import shutil
import sys

import click

from geo_mz.cli.common import bad_input, only_with
from geo_mz.cli.options import file_option, lang_option


@click.command()
@click.option("--code", required=False, help="区划代码(6位县/地级，9位乡级) / GB/T 2260 code.")
@click.option(
    "--out",
    "out",
    required=False,
    type=click.Path(dir_okay=False),
    help="新工作空间 / the new workspace (.gpkg).",
)
@file_option("--boundary", help="本局边界文件(优先) / the bureau's own boundary file (preferred).")
@click.option(
    "--code-field",
    default=None,
    help="边界文件中的代码或名称字段 / field with the code (or name) in --boundary.",
)
@click.option(
    "--source-crs",
    default=None,
    help="边界坐标系，如 gcj02 / datum of --boundary, e.g. gcj02 (converted).",
)
@file_option(
    "--units",
    help="镇街/村居面(9/12位代码，或乡镇名称) / town or village polygons with 9/12-digit codes "
    "(or town names).",
)
@click.option("--units-code-field", default=None,
              help="--units 的代码或乡镇名称字段(名称按名录匹配) / field with the codes, or the "
                   "town names (matched to the register).")  # fmt: skip
@click.option("--units-source-crs", default=None, help="--units 的坐标系 / datum of --units.")
@file_option("--targets", help="规划目标TOML(见 --targets-template) / plan targets (TOML).")
@click.option(
    "--targets-template",
    is_flag=True,
    help="输出规划目标模板后退出 / print the plan-targets template and exit.",
)
@click.option("--no-neighbours", is_flag=True, help="不加相邻县区 / without neighbouring counties.")
@click.option("--overwrite", is_flag=True, help="替换已有文件 / replace an existing file.")
@lang_option
def init(
    code: str | None,
    out: str | None,
    boundary: str | None,
    code_field: str | None,
    source_crs: str | None,
    units: str | None,
    units_code_field: str | None,
    units_source_crs: str | None,
    targets: str | None,
    targets_template: bool,
    no_neighbours: bool,
    overwrite: bool,
    lang: str,
) -> None:
    """为任一区县建立工作空间 / Create a workspace for any district by its code.

    \b
    geo-mz init --code 440307 --out longgang.gpkg
    geo-mz init --code 440307 --out longgang.gpkg --boundary my_boundary.gpkg --source-crs gcj02
    geo-mz init --targets-template > plan.toml   (edit, then --targets plan.toml)
    """  # noqa: D301
    from geo_mz.datasets.district import init_district, plan_targets_template

    if targets_template:
        with open(plan_targets_template(), encoding="utf-8") as f:
            shutil.copyfileobj(f, sys.stdout)
        return
    if not code or not out:
        raise click.UsageError("--code 和 --out 必填 / --code and --out are required")
    only_with(
        code_field=(bool(boundary), "--boundary"),
        source_crs=(bool(boundary), "--boundary"),
        units_code_field=(bool(units), "--units"),
        units_source_crs=(bool(units), "--units"),
    )
    with bad_input():
        _, report = init_district(
            code,
            out,
            boundary=boundary,
            code_field=code_field,
            source_crs=source_crs,
            units=units,
            units_code_field=units_code_field,
            units_source_crs=units_source_crs,
            targets=targets,
            neighbours=not no_neighbours,
            overwrite=overwrite,
            progress=lambda msg: click.echo(msg, err=True),
        )
    for line in report.lines(lang):
        click.echo(line)
    click.echo(
        "下一步 next: geo-mz import FILE --layer roads|population|elder_care|shelters "
        f"--workspace {out}; geo-mz info {out}"
    )

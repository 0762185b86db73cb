"""The ``geo-mz`` command line. Exit codes: 0 ok, 2 bad input, 1 unexpected failure.

This module holds the main group, ``demo`` and the list of command groups; each command lives in
the module of its domain (:mod:`geo_mz.cli.layers`, :mod:`geo_mz.cli.eldercare`, ...).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from geo_mz.cli.boundaries import boundaries
from geo_mz.cli.burial import burial
from geo_mz.cli.common import BAD_INPUT, bad_input, missing_extra_message, progress_bar
from geo_mz.cli.eldercare import coverage, siting
from geo_mz.cli.fetch import fetch
from geo_mz.cli.init import init
from geo_mz.cli.layers import catalog, import_, info, validate
from geo_mz.cli.names import names
from geo_mz.cli.options import choice_option, out_option
from geo_mz.cli.postgis import webmap_group
from geo_mz.cli.relief import relief
from geo_mz.cli.scale import scale
from geo_mz.cli.shelters import shelters
from geo_mz.cli.webmap import serve, users


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
@out_option
@click.option(
    "--seed",
    default=440703,
    show_default=True,
    help="合成数据随机种子 / seed of the synthetic layers.",
)
@choice_option(
    "--lang",
    choices=["zh", "en"],
    default="zh",
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


for _command in (
    validate,
    import_,
    info,
    catalog,
    coverage,
    siting,
    boundaries,
    init,
    burial,
    fetch,
    names,
    relief,
    shelters,
    scale,
    serve,
    users,
    webmap_group,
):
    main.add_command(_command)


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

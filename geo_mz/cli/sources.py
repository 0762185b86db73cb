"""``geo-mz import`` of raw sources: OSM roads, population rasters and per-unit population tables.

:func:`import_raw` handles the files that are not yet a layer; ``import`` falls back to the
ordinary layer import for everything else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from geo_mz.cli.common import echo_problems, only_with
from geo_mz.cli.options import file_option, with_options

source_import_options = [
    click.option("--by-unit", is_flag=True,
                 help="人口按单元统计表(镇街9位/村居12位代码，总人口、60岁以上) / population as a "
                 "table of unit codes with total and aged-60+ counts (户籍统计)."),
    click.option("--level", type=click.Choice(["county", "town", "village"]), default=None,
                 help="--by-unit 表的层级(默认由代码长度判断) / level of a --by-unit table."),
    click.option("--aged-share", type=float, default=None,
                 help="60岁以上人口比例(0-1，取本区人口普查) / aged 60+ share of a raster's people "
                 "(0-1, e.g. from the district's census)."),
    file_option("--aged-share-table",
                help="各单元60岁以上比例表(代码,比例) / aged 60+ share per unit code."),
    file_option("--aged-raster",
                help="60岁以上人口栅格(同一格网) / aged 60+ count raster on the same grid."),
    click.option("--aged-band", type=int, default=1, show_default=True,
                 help="--aged-raster 的波段 / its band."),
    click.option("--band", type=int, default=1, show_default=True,
                 help="人口栅格的波段 / band of the people counts."),
    click.option("--cell-m", type=float, default=100.0, show_default=True,
                 help="--by-unit 点的格网(米) / grid of the points spread from a table (m)."),
    click.option("--road-reach-m", type=float, default=500.0, show_default=True,
                 help="--by-unit 道路可达距离(米) / distance to a road that counts as populated."),
    click.option("--margin-m", type=float, default=1000.0, show_default=True,
                 help="OSM道路在辖区外保留的距离(米) / OSM roads kept beyond the district (m)."),
]  # fmt: skip


with_source_import_options = with_options(source_import_options)
"""Add the raw-source options of ``import`` to a command."""


def _echo_layer(result: Any, workspace: str, kind: str) -> None:
    echo_problems([p for p in result.problems if p.severity != "error"])
    click.echo(f"已导入 imported {len(result.gdf)} 条 features → {workspace}:{kind}")


def import_raw(ws: Any, file: str, kind: str, workspace: str, o: dict[str, Any]) -> bool:
    """Import ``file`` if it is a raw source of ``kind``; return False to use the layer import.

    Parameters
    ----------
    ws
        The opened workspace.
    file, kind, workspace
        As given to ``import``.
    o
        The raw-source options (``by_unit``, ``aged_share``, ...) and ``layer_name``/``encoding``.

    Returns
    -------
    bool
        True when the file was handled (and written) here.
    """
    from geo_mz.core import import_sources as src

    suffix = Path(file).suffix.lower()
    osm = kind == "roads" and src.is_osm_source(file, o.get("layer_name"))
    units = kind == "population" and bool(o["by_unit"])
    raster = kind == "population" and not units and suffix in src.RASTER_SUFFIXES
    need_raster = "--layer population (.tif)"
    only_with(
        margin_m=(osm, "--layer roads (OSM)"),
        by_unit=(kind == "population", "--layer population"),
        level=(units, "--by-unit"),
        cell_m=(units, "--by-unit"),
        road_reach_m=(units, "--by-unit"),
        aged_share=(raster, need_raster),
        aged_share_table=(raster, need_raster),
        aged_raster=(raster, need_raster),
        aged_band=(raster, need_raster),
        band=(raster, need_raster),
    )
    if osm:
        from tqdm import tqdm

        with tqdm(desc="OSM", unit=" elements", unit_scale=True, leave=False) as bar:
            result, report = src.import_roads_osm(
                ws, file, margin_m=o["margin_m"], layer_name=o.get("layer_name"), progress=bar
            )
        for line in report.lines("both"):
            click.echo(line)
        _echo_layer(result, workspace, kind)
        return True
    if kind != "population":
        return False

    def say(msg: str) -> None:
        click.echo(msg, err=True)

    if o["by_unit"]:
        result, prep = src.import_population_units(
            ws, file, level=o["level"], cell_m=o["cell_m"], road_reach_m=o["road_reach_m"],
            encoding=o.get("encoding"), progress=say,
        )  # fmt: skip
    elif suffix in src.RASTER_SUFFIXES:
        result, prep = src.import_population_raster(
            ws, file, aged_share=o["aged_share"], aged_share_table=o["aged_share_table"],
            aged_raster=o["aged_raster"], aged_band=o["aged_band"], band=o["band"], progress=say,
        )  # fmt: skip
    else:
        return False
    for line in prep.lines("zh"):
        click.echo(line)
    _echo_layer(result, workspace, kind)
    return True

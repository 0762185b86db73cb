"""``geo-mz burial ...``: tree-burial land suitability, site capacity, sample DEM and land use.

Registered on the main group by :mod:`geo_mz.cli.app` (``main.add_command(burial)``). Every command
reads a workspace, writes a GeoPackage, an Excel workbook, an offline map and an HTML report
into ``--out``, prints the headline figures, and exits 2 on bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from geo_mz.cli.common import bad_input, echo_kpis, echo_paths, progress_bar
from geo_mz.cli.options import file_option, lang_option, out_option, workspace_option

__all__ = ["burial"]

rules_option = file_option(
    "--rules",
    "rules_path",
    help="规则文件(默认 layers/rules/burial_rules.toml) / rules TOML (default: the shipped one).",
)
landuse_option = file_option(
    "--landuse",
    help="土地利用/保护区面文件(代替工作空间中的 landuse 图层) / land-use polygons file "
    "(instead of the workspace's landuse layer).",
)


def _open(workspace: str, rules_path: str | None, landuse: str | None) -> tuple[Any, dict, Any]:
    from geo_mz.burial import load_rules
    from geo_mz.core.validate import load_layer
    from geo_mz.core.workspaces import open_workspace

    ws = open_workspace(workspace)
    layers = ws.read_all()
    if landuse:
        layers["landuse"] = load_layer(landuse, "landuse")
    return ws, layers, load_rules(rules_path)


@click.group()
def burial() -> None:
    """节地生态安葬：树葬选址适宜性、安葬点容量 / Tree-burial suitability and capacity."""


@burial.command(name="suitability")
@workspace_option
@click.option(
    "--dem",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="数字高程模型(GeoTIFF，任意坐标系，米) / DEM GeoTIFF of any CRS, metres.",
)
@out_option
@lang_option
@rules_option
@landuse_option
def burial_suitability_cmd(
    workspace: str, dem: str, out_dir: str, lang: str, rules_path: str | None, landuse: str | None
) -> None:
    """树葬选址适宜性：坡度、排除规则、评分、候选地块 / Land suitability for tree burial.

    写出 burial_suitability.gpkg/.xlsx/_map.html/_report.html/_score.tif。
    例 e.g.: geo-mz burial suitability --workspace out/pengjiang.gpkg --dem out/dem_30m.tif
    """
    from geo_mz.burial import burial_suitability, site_capacity, suitability_kpis
    from geo_mz.outputs.burial import write_burial_outputs as write

    step, close = progress_bar("burial suitability")
    with bad_input():
        try:
            ws, layers, rules = _open(workspace, rules_path, landuse)
            crs = ws.metadata.get("measure_crs")
            suit = burial_suitability(layers, dem, rules=rules, measure_crs=crs, progress=step)
            sites = layers.get("burial_sites")
            cap = None
            if sites is not None and len(sites):
                cap = site_capacity(
                    sites, rules=rules, admin_units=layers["admin_units"], suitability=suit
                )
            step("写出结果 writing outputs")
            paths = write(
                out_dir, layers, suit, cap, rules=rules, info=ws.info(), lang=lang,  # type: ignore[arg-type]
                prefix="burial_suitability",
            )  # fmt: skip
        finally:
            close()
    echo_kpis(suitability_kpis(suit, sites))
    for note in suit.notes:
        click.secho(f"  注意 note: {note}", fg="yellow")
    echo_paths(paths, width=6)


@burial.command(name="capacity")
@workspace_option
@out_option
@lang_option
@rules_option
def burial_capacity_cmd(workspace: str, out_dir: str, lang: str, rules_path: str | None) -> None:
    """安葬点容量、使用与可用年限，对照年度目标 / Site capacity, use, years until full.

    写出 burial_capacity.gpkg/.xlsx/_map.html/_report.html。
    例 e.g.: geo-mz burial capacity --workspace out/pengjiang.gpkg --out out
    """
    from geo_mz.burial import BurialRulesError, capacity_kpis, site_capacity
    from geo_mz.outputs.burial import write_burial_outputs as write

    with bad_input():
        ws, layers, rules = _open(workspace, rules_path, None)
        sites = layers.get("burial_sites")
        if sites is None or sites.empty:
            raise BurialRulesError(
                f"{workspace}: 工作空间没有 burial_sites 图层 / the workspace has no burial_sites"
            )
        cap = site_capacity(sites, rules=rules, admin_units=layers.get("admin_units"))
        paths = write(
            out_dir, layers, None, cap, rules=rules, info=ws.info(), lang=lang,  # type: ignore[arg-type]
            prefix="burial_capacity",
        )  # fmt: skip
    echo_kpis(capacity_kpis(cap, rules=rules))
    echo_paths(paths, width=6)


@burial.command(name="sample-data")
@workspace_option
@out_option
@click.option("--seed", type=int, default=440703, show_default=True, help="随机种子 / seed.")
def burial_sample_data_cmd(workspace: str, out_dir: str, seed: int) -> None:
    """为蓬江区示例生成合成高程(dem_30m.tif)与土地利用(landuse.gpkg) / Synthetic DEM + land use.

    仅用于示例工作空间 / for the Pengjiang sample workspace only (SYNTHETIC data).
    """
    from geo_mz.core.workspaces import open_workspace
    from geo_mz.datasets.dem import pengjiang_dem, pengjiang_landuse, write_synthetic_dem
    from geo_mz.outputs.files import write_gpkg

    with bad_input():
        layers = open_workspace(workspace).read_all()
        dem = pengjiang_dem(layers, seed=seed)
        out = Path(out_dir)
        tif = write_synthetic_dem(dem, out / "dem_30m.tif", seed=seed)
        gpkg = write_gpkg(
            out / "landuse.gpkg", {"landuse": pengjiang_landuse(layers, dem, seed=seed)}
        )
    click.echo(f"dem     {tif}")
    click.echo(f"landuse {gpkg}")

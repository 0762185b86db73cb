"""``geo-mz coverage`` and ``siting``: the 15-minute elder-care circle and new centres.

Registered on the main group by :mod:`geo_mz.cli.app`. Both commands run the same circle
analysis (:func:`geo_mz.eldercare.circle15.analyse_circle`) with the same options; ``siting``
then places new centres on what the circle leaves uncovered.
"""

from __future__ import annotations

from collections.abc import Callable
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
)
from geo_mz.cli.options import choice_option, lang_option, out_option, strict_option, with_options


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


@click.command()
@with_options(circle_options)
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
    echo_paths(paths)


@click.command()
@with_options(circle_options)
@click.option(
    "--k",
    "k",
    type=int,
    default=5,
    show_default=True,
    help="新增设施数(最大覆盖模型) / number of new centres (maximal covering).",
)
@choice_option(
    "--model",
    choices=["mclp", "lscp"],
    default="mclp",
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
    echo_paths(paths)

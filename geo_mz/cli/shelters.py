"""``geo-mz shelters ...``: shelter adequacy per town and village, and evacuation to shelters.

Registered on the main group by :mod:`geo_mz.cli.app`. Both commands walk the workspace's roads
with every network component kept, write a GeoPackage, an Excel workbook, an offline map and an
HTML report into ``--out``, print the headline figures, and exit 2 on bad input.
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
    progress_bar,
    report_beside_map,
)
from geo_mz.cli.options import (
    choice_option,
    lang_option,
    out_option,
    strict_option,
    workspace_option,
)


@click.group()
def shelters() -> None:
    """应急避难场所：容量、覆盖与疏散安置 / Shelters: capacity, adequacy, evacuation."""


def _shelter_run(
    workspace: str, step: Callable[[str], None], strict: bool = False
) -> tuple[dict, Any, Any, dict, list]:
    from geo_mz.core.workspaces import open_workspace
    from geo_mz.network.graph import network_from_roads
    from geo_mz.relief.shelters import ShelterSettings

    ws = open_workspace(workspace)
    layers = analysis_layers(ws)
    s = ShelterSettings()
    step("构建步行路网 building the walking network")
    # Every component is kept, as in every other analysis: people whose road piece is joined
    # to no shelter are counted unreachable (a figure of their own), not moved to the largest
    # piece, where they would walk to a shelter they cannot reach.
    net = network_from_roads(
        layers["roads"],
        mode="walk",
        walk_speed_kmh=s.walk_speed_kmh,
        measure_crs=ws.metadata.get("measure_crs"),
        components="all",
    )
    net_kpis = check_network(net, layers, strict=strict)
    unreachable = _no_shelter_on_network(net, layers, s)
    if unreachable is not None:
        net_kpis.append(unreachable)
    return layers, s, net, ws.info(), net_kpis


def _no_shelter_on_network(net: Any, layers: dict, s: Any) -> Any:
    """People whose road piece (network component) holds no shelter: a figure, or None."""
    import numpy as np
    from scipy.sparse.csgraph import connected_components

    from geo_mz.core.results import Kpi
    from geo_mz.network.paths import snap_points

    pop, sheltered = layers.get("population"), layers.get("shelters")
    if pop is None or not len(pop) or sheltered is None or not len(sheltered) or not net.n_nodes:
        return None
    _, piece = connected_components(net.graph, directed=True, connection="weak")
    people = snap_points(net, pop, max_snap_m=s.max_snap_m).node
    shelters = snap_points(net, sheltered, max_snap_m=s.max_snap_m).node
    cut_off = ~np.isin(piece[people], piece[shelters])
    n = round(float(pop[s.people].to_numpy(float)[cut_off].sum())) if s.people in pop else 0
    return Kpi(
        "路网上无法到达任何避难场所的人口", "People on road pieces that reach no shelter", n, "人",
        "0", n == 0, "walking network with every component; counted unserved / not placed",
    )  # fmt: skip


@shelters.command(name="adequacy")
@workspace_option
@out_option
@lang_option
@strict_option
def shelters_adequacy(workspace: str, out_dir: str, lang: str, strict: bool) -> None:
    """各镇街、村居避难场所配置与容量核查 / Shelter adequacy per town and village."""
    from geo_mz.outputs.shelters import write_shelter_outputs
    from geo_mz.relief.shelter_tables import report_tables as shelter_tables
    from geo_mz.relief.shelters import shelter_adequacy

    step, close = progress_bar("shelters adequacy")
    with bad_input():
        try:
            layers, s, net, info, net_kpis = _shelter_run(workspace, step, strict)
            step("核查 checking")
            ad = shelter_adequacy(
                layers["shelters"], layers["admin_units"], layers["population"], net, s
            )
            paths = write_shelter_outputs(out_dir, layers, ad, None, lang=lang)
            report_beside_map(
                paths, info, ad.kpis + net_kpis, shelter_tables(ad, None, lang=lang), lang,
                "应急避难场所配置核查 Shelter adequacy",
            )  # fmt: skip
        finally:
            close()
    flag_maps(paths, net_kpis)
    echo_kpis(ad.kpis + net_kpis)
    echo_paths(paths)


@shelters.command(name="evacuate")
@workspace_option
@out_option
@lang_option
@strict_option
@choice_option(
    "--unit",
    choices=["cells", "villages"],
    default="cells",
    help="按人口格网或村居分配 / assign population cells or villages.",
)
@choice_option(
    "--engine",
    choices=["ortools", "networkx"],
    default="ortools",
    help="最小费用流求解器 / min-cost-flow solver.",
)
def shelters_evacuate(
    workspace: str, out_dir: str, lang: str, strict: bool, unit: str, engine: str
) -> None:
    """按步行时间和容量将人口分配到避难场所 / Assign people to shelters by walk time."""
    from geo_mz.outputs.shelters import write_shelter_outputs
    from geo_mz.relief.shelter_tables import report_tables as shelter_tables
    from geo_mz.relief.shelters import evacuate

    step, close = progress_bar("shelters evacuate")
    with bad_input():
        try:
            layers, s, net, info, net_kpis = _shelter_run(workspace, step, strict)
            step("分配 assigning")
            ev = evacuate(
                layers["population"],
                layers["shelters"],
                net,
                s,
                unit=unit,
                engine=engine,
                units=layers["admin_units"],
            )
            paths = write_shelter_outputs(out_dir, layers, None, ev, lang=lang, prefix="evacuation")
            report_beside_map(
                paths, info, ev.kpis + net_kpis, shelter_tables(None, ev, lang=lang), lang,
                "疏散安置 Evacuation to shelters",
            )  # fmt: skip
        finally:
            close()
    flag_maps(paths, net_kpis)
    echo_kpis(ev.kpis + net_kpis)
    echo_paths(paths)

"""The sample job: build the Pengjiang workspace, run what exists, write a report and a map."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from geo_mz.catalog import load_catalog
from geo_mz.circle15 import (
    analyse_circle,
    overlay_layers,
    propose_sites,
    report_tables,
    result_catalog,
    siting_kpis,
    write_circle_outputs,
)
from geo_mz.datasets.pengjiang import build_pengjiang, write_population_geotiff
from geo_mz.inventory import headline_kpis
from geo_mz.maps import layers_map, save_map
from geo_mz.report import LayerCheck, unique_kpis, write_report
from geo_mz.workspace import Workspace

#: New elder-care centres the demo proposes (maximal covering; local choice for the example).
DEMO_NEW_CENTRES = 5

#: Margin around the real admin units for the workspace's expected area, in degrees (~5 km).
AREA_MARGIN_DEG = 0.05


@dataclass(frozen=True)
class DemoOutputs:
    """Files written by :func:`run_demo`."""

    workspace: Path
    report: Path
    map: Path
    population_tif: Path
    coverage_gpkg: Path
    coverage_xlsx: Path


def run_demo(
    out_dir: str | Path,
    *,
    seed: int = 440703,
    lang: str = "zh",
    progress: Callable[[str], None] | None = None,
) -> DemoOutputs:
    """Build the Pengjiang sample workspace and write its report and map.

    Parameters
    ----------
    out_dir
        Output folder (created); ``pengjiang.gpkg``, ``population_100m.tif``, ``map.html`` and
        ``report.html`` are (over)written there.
    seed
        Seed of the synthetic layers; the same seed gives the same layers.
    lang
        ``"zh"`` (default) or ``"en"`` for the report and map labels.
    progress
        Called with a short message before each step.

    Returns
    -------
    DemoOutputs
    """
    say = progress or (lambda _msg: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sample = build_pengjiang(seed=seed, progress=progress)
    say("创建工作空间 creating the workspace")
    units = sample.layers["admin_units"]
    minx, miny, maxx, maxy = units.to_crs(4490).total_bounds
    m = AREA_MARGIN_DEG
    ws = Workspace.create(
        out / "pengjiang.gpkg",
        name=str(sample.metadata["name"]),
        adcode=str(sample.metadata["adcode"]),
        bounds=(minx - m, miny - m, maxx + m, maxy + m),
        overwrite=True,
        extra={k: v for k, v in sample.metadata.items() if k not in ("name", "adcode")},
    )
    say("校验并写入图层 validating and writing layers")
    results = ws.write_layers(sample.layers, sample.provenance)
    say("写出人口栅格 writing the population raster")
    tif = write_population_geotiff(sample.population_grid, out / "population_100m.tif")
    say("读取工作空间 reading the workspace back")
    stored = ws.read_all()
    circle = analyse_circle(stored, progress=progress)
    say("选址 siting new centres")
    sites = propose_sites(stored, circle, k=DEMO_NEW_CENTRES)
    say("写出分析结果 writing coverage outputs")
    files = write_circle_outputs(out, stored, circle, sites, lang=lang)  # type: ignore[arg-type]
    say("绘制地图 drawing the map")
    everything = {**stored, **overlay_layers(circle, sites)}
    catalog = {**load_catalog(), **result_catalog()}
    the_map = layers_map(everything, catalog=catalog, lang=lang)  # type: ignore[arg-type]
    map_path = save_map(the_map, out / "map.html")
    say("编写报告 writing the report")
    checks = [LayerCheck(k, r.file, len(r.gdf), tuple(r.problems)) for k, r in results.items()]
    kpis = headline_kpis(stored) + circle.kpis + siting_kpis(sites, circle)
    report = write_report(
        out / "report.html",
        info=ws.info(),
        validation=checks,
        kpis=unique_kpis(kpis),
        map_href=map_path.name,
        lang=lang,  # type: ignore[arg-type]
        tables=report_tables(circle, sites, lang=lang),  # type: ignore[arg-type]
    )
    return DemoOutputs(ws.path, report, map_path, tif, files["gpkg"], files["xlsx"])

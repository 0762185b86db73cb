"""The sample job: build the Pengjiang workspace, run what exists, write a report and a map."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from geo_mz.burial import (
    burial_suitability,
    capacity_kpis,
    site_capacity,
    suitability_kpis,
    town_summary,
)
from geo_mz.core.catalog import load_catalog
from geo_mz.core.results import LayerCheck, unique_kpis
from geo_mz.core.validate import LayerResult
from geo_mz.core.workspace import Workspace
from geo_mz.datasets.dem import write_synthetic_dem
from geo_mz.datasets.pengjiang import (
    SampleWorkspace,
    build_pengjiang,
    write_population_geotiff,
)
from geo_mz.eldercare.circle15 import (
    analyse_circle,
    overlay_layers,
    propose_sites,
    report_tables,
    result_catalog,
    siting_kpis,
)
from geo_mz.network.disruption import from_flood_raster, synthetic_flood_raster
from geo_mz.network.graph import network_from_roads
from geo_mz.outputs.burial import output_layers as burial_layers
from geo_mz.outputs.burial import report_tables as burial_tables
from geo_mz.outputs.burial import write_burial_outputs
from geo_mz.outputs.eldercare import CIRCLE_MAP_Z, write_circle_outputs
from geo_mz.outputs.inventory import headline_kpis
from geo_mz.outputs.maps import SIMPLIFY_M, layers_map, save_map
from geo_mz.outputs.relief import overlay_layers as relief_overlays
from geo_mz.outputs.relief import (
    relief_units,
    relief_units_spec,
    scenario_kpis,
    write_relief_outputs,
)
from geo_mz.outputs.relief import report_tables as relief_tables
from geo_mz.outputs.report import write_report
from geo_mz.outputs.shelters import write_shelter_outputs
from geo_mz.relief.drive_audit import (
    ReliefSettings,
    audit_kpis,
    reaudit,
    run_audit,
    workspace_targets,
)
from geo_mz.relief.shelter_tables import output_layers as shelter_layers
from geo_mz.relief.shelter_tables import report_tables as shelter_tables
from geo_mz.relief.shelters import ShelterSettings, evacuate, shelter_adequacy

#: New elder-care centres the demo proposes (maximal covering; local choice for the example).
DEMO_NEW_CENTRES = 5

#: Layers on when the overview map.html opens: boundaries (with place labels), water, roads,
#: the 15-minute coverage per village and the elder-care centres. The others (population as a
#: density raster, relief per village, shelters, burial, ...) are in its layer control, off.
DEMO_MAP_ON = frozenset({"admin_units", "water", "roads", "coverage_units", "elder_care"})

#: Road classes drawn on the overview map (the analyses' maps draw every road).
OVERVIEW_ROADS = ("motorway", "trunk", "primary", "secondary", "tertiary")

#: Layers left off the overview map (each is on its analysis' map): keeps map.html under 3 MB.
OVERVIEW_LEFT_OUT = ("landuse", "burial_exclusions")

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
    flood_tif: Path
    relief: dict[str, Path]
    shelters: dict[str, Path]
    dem_tif: Path
    burial: dict[str, Path]


def sample_workspace(
    path: str | Path, *, seed: int = 440703, progress: Callable[[str], None] | None = None
) -> tuple[Workspace, SampleWorkspace, dict[str, LayerResult]]:
    """Build the Pengjiang sample and write it as a workspace (overwriting ``path``).

    Returns
    -------
    tuple
        The workspace, the generated sample (layers, provenance, population grid, metadata) and
        the validation result of every layer written.
    """
    say = progress or (lambda _msg: None)
    sample = build_pengjiang(seed=seed, progress=progress)
    say("创建工作空间 creating the workspace")
    units = sample.layers["admin_units"]
    minx, miny, maxx, maxy = units.to_crs(4490).total_bounds
    m = AREA_MARGIN_DEG
    ws = Workspace.create(
        path,
        name=str(sample.metadata["name"]),
        adcode=str(sample.metadata["adcode"]),
        bounds=(minx - m, miny - m, maxx + m, maxy + m),
        overwrite=True,
        extra={k: v for k, v in sample.metadata.items() if k not in ("name", "adcode")},
    )
    say("校验并写入图层 validating and writing layers")
    return ws, sample, ws.write_layers(sample.layers, sample.provenance)


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
    ws, sample, results = sample_workspace(out / "pengjiang.gpkg", seed=seed, progress=progress)
    say("写出人口栅格 writing the population raster")
    tif = write_population_geotiff(sample.population_grid, out / "population_100m.tif")
    say("读取工作空间 reading the workspace back")
    stored = ws.read_all()
    circle = analyse_circle(stored, progress=progress)
    say("选址 siting new centres")
    sites = propose_sites(stored, circle, k=DEMO_NEW_CENTRES)
    say("写出分析结果 writing coverage outputs")
    files = write_circle_outputs(out, stored, circle, sites, lang=lang)  # type: ignore[arg-type]
    say("救灾物资送达核查 auditing relief delivery")
    meta = ws.metadata
    rs = ReliefSettings(targets=workspace_targets(meta))
    normal = run_audit(stored, rs, measure_crs=meta["measure_crs"], progress=progress)
    say("洪水情景 flood scenario (synthetic depth raster)")
    units = stored["admin_units"]
    district = units[(units["level"] == "county") & units["in_jurisdiction"].fillna(False)]
    flood_tif = synthetic_flood_raster(
        stored["water"], district, out / "flood_depth.tif", crs=meta["measure_crs"], seed=seed
    )
    flood = reaudit(normal, from_flood_raster(normal.network, flood_tif), name="洪水 flood")
    relief_files = write_relief_outputs(out, stored, normal, flood, lang=lang)  # type: ignore[arg-type]
    say("避难场所 shelters: adequacy and evacuation")
    ss = ShelterSettings()
    walk = network_from_roads(
        stored["roads"],
        mode="walk",
        walk_speed_kmh=ss.walk_speed_kmh,
        measure_crs=meta["measure_crs"],
    )
    adequacy = shelter_adequacy(stored["shelters"], units, stored["population"], walk, ss)
    evac = evacuate(stored["population"], stored["shelters"], walk, ss, units=units)
    shelter_files = write_shelter_outputs(out, stored, adequacy, evac, lang=lang)  # type: ignore[arg-type]
    say("节地生态安葬选址 tree-burial suitability (synthetic DEM)")
    dem_tif = write_synthetic_dem(sample.dem, out / "dem_30m.tif", seed=seed)
    suit = burial_suitability(stored, dem_tif, measure_crs=meta["measure_crs"])
    bcap = site_capacity(stored["burial_sites"], admin_units=units, suitability=suit)
    burial_files = write_burial_outputs(out, stored, suit, bcap, lang=lang)  # type: ignore[arg-type]
    say("绘制地图 drawing the map")
    sh = shelter_layers(adequacy, evac)
    everything = {
        **stored,
        **overlay_layers(circle, sites),
        **relief_overlays(normal, flood),
        "shelter_load": sh["shelter_load"],
        "evacuation_unassigned": sh["evacuation_unassigned"],
        **burial_layers(suit, bcap),
    }
    everything["relief_units"] = relief_units(flood, units)
    # The overview shows the district: main roads only (every road is on the analyses' maps),
    # no land use and no burial exclusion zones (detailed outlines, on burial_map.html).
    roads = everything["roads"]
    everything["roads"] = roads[roads["road_class"].isin(OVERVIEW_ROADS)]
    for name in OVERVIEW_LEFT_OUT:
        everything.pop(name, None)
    catalog = {**load_catalog(), **result_catalog(), "relief_units": relief_units_spec()}
    the_map = layers_map(
        everything,
        catalog=catalog,
        lang=lang,  # type: ignore[arg-type]
        show=DEMO_MAP_ON,
        z=CIRCLE_MAP_Z,
        rasters=("population",),
        simplify_m=SIMPLIFY_M,
    )
    map_path = save_map(the_map, out / "map.html")
    say("编写报告 writing the report")
    checks = [LayerCheck(k, r.file, len(r.gdf), tuple(r.problems)) for k, r in results.items()]
    kpis = (
        headline_kpis(stored)
        + circle.kpis
        + siting_kpis(sites, circle)
        + audit_kpis(normal)
        + scenario_kpis(normal, flood)
        + adequacy.kpis
        + evac.kpis
        + suitability_kpis(suit, stored["burial_sites"])
        + capacity_kpis(bcap)
    )
    tables = (
        report_tables(circle, sites, lang=lang)  # type: ignore[arg-type]
        + relief_tables(normal, flood, lang=lang)  # type: ignore[arg-type]
        + shelter_tables(adequacy, evac, lang=lang)  # type: ignore[arg-type]
        + burial_tables(
            suit, bcap, town_summary(bcap, units, candidates=suit.candidates), lang=lang
        )  # type: ignore[arg-type]
    )
    report = write_report(
        out / "report.html",
        info=ws.info(),
        validation=checks,
        kpis=unique_kpis(kpis),
        map_href=map_path.name,
        lang=lang,  # type: ignore[arg-type]
        tables=tables,
    )
    return DemoOutputs(
        ws.path,
        report,
        map_path,
        tif,
        files["gpkg"],
        files["xlsx"],
        flood_tif,
        relief_files,
        shelter_files,
        dem_tif,
        burial_files,
    )

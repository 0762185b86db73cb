"""The 15-minute elder-care circle job: from workspace layers to tables, a map and a GeoPackage.

Steps (each a function of its own module; this module only chains them and writes outputs):
walking network at the elderly speed (:mod:`geo_mz.network.graph`) → walk time of every population
cell to the nearest community centre and coverage per town and village
(:mod:`geo_mz.eldercare.coverage`)
→ isochrone rings (:mod:`geo_mz.network.isochrone`) → gaps → beds per 1,000 aged 60+ and E2SFCA
(:mod:`geo_mz.eldercare.capacity`) → optional new sites (:mod:`geo_mz.network.siting`). Used by
``geo-mz
coverage``, ``geo-mz siting``, ``geo-mz demo`` and the notebooks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_mz.core.errors import GeoMzError
from geo_mz.core.results import (
    Kpi,
    ReportTable,
    conform,
    display_table,
    result_catalog,
    unique_kpis,
)
from geo_mz.core.standards import COVERAGE_THRESHOLDS_MIN, RESIDENTIAL_KINDS, TARGET_SHARE
from geo_mz.core.units import complete_units
from geo_mz.eldercare import capacity, coverage
from geo_mz.network import isochrone as isochrones
from geo_mz.network import siting
from geo_mz.network.graph import ELDERLY_WALK_SPEED_KMH, Network, network_from_roads

Lang = Literal["zh", "en"]
STORAGE_CRS = "EPSG:4490"


@dataclass(frozen=True)
class CircleSettings:
    """Options of the 15-minute circle analysis; every default names its source.

    Attributes
    ----------
    kinds
        Facility kinds that count as a community centre (``coverage.COMMUNITY_KINDS``, local
        choice documented there).
    statuses
        Facility statuses that count (existing centres only by default).
    walk_speed_kmh
        Elderly walking speed, 3.2 km/h (STANDARDS.md §B, DERIVED: 800 m in 15 min).
    thresholds_min
        The 5/10/15-minute circles (GB 50180-2018 life circles).
    targets
        Share of aged 60+ to cover within 15 min by urban/rural (local plan: 100 % / 95 %).
    max_snap_m
        Points farther from a street are reported as too far (local choice).
    gap_cell_m
        Hexagon size of the gap map (local choice).
    isochrone_buffer_m
        Reach off the street into the blocks when drawing isochrones (local choice).
    places_per_1000
        Day-service places a circle needs per 1,000 aged 60+ for capacity-adjusted coverage
        (local choice, by analogy with GB 50437's 40 beds per 1,000; no national figure found).
    """

    kinds: tuple[str, ...] = coverage.COMMUNITY_KINDS
    statuses: tuple[str, ...] = ("operating",)
    walk_speed_kmh: float = ELDERLY_WALK_SPEED_KMH
    thresholds_min: tuple[float, ...] = COVERAGE_THRESHOLDS_MIN
    targets: Mapping[str, float] = field(default_factory=lambda: dict(TARGET_SHARE))
    max_snap_m: float = 500.0
    gap_cell_m: float = 500.0
    isochrone_buffer_m: float = 50.0
    places_per_1000: float = 40.0


@dataclass
class CircleResult:
    """Everything the 15-minute circle analysis produced, for tables, maps and files."""

    settings: CircleSettings
    network: Network
    centres: gpd.GeoDataFrame
    times: gpd.GeoDataFrame
    units: gpd.GeoDataFrame  # coverage_units: towns and villages with their polygons
    table_towns: pd.DataFrame
    table_villages: pd.DataFrame
    gaps: gpd.GeoDataFrame
    gap_clusters: gpd.GeoDataFrame
    rings: gpd.GeoDataFrame
    beds: pd.DataFrame
    e2sfca: capacity.E2sfcaResult | None
    kpis: list[Kpi]
    notes: list[str] = field(default_factory=list)  # units approximated or missing


def _need(layers: Mapping[str, gpd.GeoDataFrame], *names: str) -> None:
    missing = [n for n in names if n not in layers or len(layers[n]) == 0]
    if missing:
        raise GeoMzError(
            f"the 15-minute circle needs the layers {list(names)}; missing or empty: {missing} "
            f"(import them with geo-mz import FILE --layer KIND --workspace W.gpkg)"
        )


def _district_level(units: gpd.GeoDataFrame) -> str:
    """Return the jurisdiction's own level (county or city), for a district without towns."""
    inj = units.get("in_jurisdiction", pd.Series(True, index=units.index))
    own = units[inj.astype("boolean").fillna(True).to_numpy(dtype=bool)]
    for level in ("county", "city", "province"):
        if (own["level"] == level).any():
            return level
    raise GeoMzError("admin_units: 没有辖区单元 / no unit of the jurisdiction")


def _unit_polygons(table: pd.DataFrame, units: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    rows = table[~table["level"].isin(["total", "unassigned"])]
    polys = units.set_index("adcode").geometry
    out = gpd.GeoDataFrame(
        rows.reset_index(drop=True),
        geometry=list(polys.reindex(rows["adcode"]).values),
        crs=units.crs,
    )
    # True where the area was drawn from coded points (complete_units), not a surveyed polygon
    flag = (
        units.set_index("adcode")["approximate"].astype("boolean").fillna(False)
        if "approximate" in units.columns
        else pd.Series(False, index=units["adcode"], dtype="boolean")
    )
    out["approximate"] = flag.reindex(rows["adcode"]).fillna(False).to_numpy(dtype=bool)
    return out


def analyse_circle(
    layers: Mapping[str, gpd.GeoDataFrame],
    settings: CircleSettings | None = None,
    *,
    register: pd.DataFrame | None = None,
    progress: Callable[[str], None] | None = None,
) -> CircleResult:
    """Run the 15-minute elder-care circle analysis on workspace layers.

    Parameters
    ----------
    layers
        Workspace layers; needs ``roads``, ``population``, ``elder_care`` and ``admin_units``.
    settings
        Options; :class:`CircleSettings` defaults when None.
    register
        The workspace's unit register (:func:`geo_mz.core.unit_register`): names of towns and
        villages approximated from coded points (:func:`geo_mz.core.complete_units`).
    progress
        Called with a short message before each step.

    Returns
    -------
    CircleResult
        Village tables are empty when the workspace has no village units (``notes`` says so).
    """
    s = settings or CircleSettings()
    say = progress or (lambda _m: None)
    _need(layers, "roads", "population", "elder_care", "admin_units")
    # Towns/villages without polygons get approximate areas from their coded points.
    layers, notes = complete_units(layers, register)
    say("构建步行路网 building the walking network")
    # Every component is kept: a cell whose nearest road is a piece joined to no centre is
    # unreachable (counted in unreachable_pop), not moved to the largest component; the same
    # rule as a partitioned run (geo_mz.scale.partition), so both give the same figures.
    net = network_from_roads(
        layers["roads"], mode="walk", walk_speed_kmh=s.walk_speed_kmh, components="all"
    )
    centres = coverage.select_centres(layers["elder_care"], kinds=s.kinds, statuses=s.statuses)
    say("计算步行时间 walking times to the nearest centre")
    times = coverage.access_times(net, centres, layers["population"], max_snap_m=s.max_snap_m)
    if "places" in centres.columns and centres["places"].notna().all():
        # A centre with fewer places than its circle needs does not count as full coverage.
        times = capacity.capacity_adjusted_coverage(
            times,
            centres,
            capacity_field="places",
            demand_per_1000=s.places_per_1000,
            threshold_min=max(s.thresholds_min),
        )
    say("统计各镇街、村居覆盖率 coverage per town and village")
    units = layers["admin_units"]
    kw: dict[str, Any] = {"thresholds_min": s.thresholds_min, "targets": s.targets}
    levels = set(units["level"])
    top = "town" if "town" in levels else _district_level(units)
    if top != "town":
        notes.append(
            f"没有镇街单元：按全区统计 / no town units: figures for the district as a whole "
            f"(level {top}); give town polygons (geo-mz init --units) or population by town code"
        )
    towns = coverage.coverage_by_unit(times, units, level=top, **kw)
    villages = (
        coverage.coverage_by_unit(times, units, level="village", **kw)
        if "village" in levels
        else towns.iloc[0:0]
    )
    unit_layer = pd.concat(
        [_unit_polygons(towns, units), _unit_polygons(villages, units)], ignore_index=True
    )
    say("绘制等时圈 isochrone rings")
    node_time, nearest = coverage.node_times(net, centres, max_snap_m=s.max_snap_m)
    rings = isochrones.isochrones(
        net, node_time, nearest, thresholds_min=s.thresholds_min, buffer_m=s.isochrone_buffer_m
    )
    say("识别覆盖缺口 coverage gaps")
    gap_hex = coverage.gaps(
        times, crs=net.crs, threshold_min=max(s.thresholds_min), cell_size_m=s.gap_cell_m
    )
    gap_clusters = coverage.gaps(
        times,
        crs=net.crs,
        threshold_min=max(s.thresholds_min),
        cell_size_m=s.gap_cell_m,
        level="cluster",
    )
    say("床位与可达性 beds and E2SFCA")
    beds = capacity.beds_by_unit(layers["elder_care"], units, layers["population"], level=top)
    residential = (
        coverage.select_centres(layers["elder_care"], kinds=RESIDENTIAL_KINDS, statuses=s.statuses)
        if np.isin(layers["elder_care"]["kind"], RESIDENTIAL_KINDS).any()
        else None
    )
    e2 = (
        capacity.e2sfca(net, residential, layers["population"]) if residential is not None else None
    )
    kpis = coverage.coverage_kpis(towns) + (
        coverage.coverage_kpis(villages)[1:] if len(villages) else []
    )
    if "share_capacity_adj" in towns.columns:
        adj = float(towns.iloc[-1]["share_capacity_adj"])
        kpis.append(
            Kpi(
                "按服务名额折算的15分钟覆盖率",
                "15-min share, capacity-adjusted",
                round(adj * 100, 1),
                "%",
                "",
                None,
                f"centres' places vs {s.places_per_1000:g} per 1,000 aged 60+ (local choice)",
            )
        )
    kpis += capacity.beds_kpis(beds)
    if e2 is not None:
        over = int(e2.centres["over_capacity"].sum())
        kpis.append(
            Kpi(
                "超负荷养老机构",
                "Residential homes over capacity",
                f"{over}/{len(e2.centres)}",
                "",
                "0",
                over == 0,
                "E2SFCA (Luo & Qi 2009), 40 beds per 1,000 aged 60+ "
                "in each catchment (GB 50437 §3.2.1)",
            )
        )
    return CircleResult(
        s,
        net,
        centres,
        times,
        unit_layer,
        towns,
        villages,
        gap_hex,
        gap_clusters,
        rings,
        beds,
        e2,
        unique_kpis(kpis),
        notes,
    )


def default_candidates(layers: Mapping[str, gpd.GeoDataFrame]) -> gpd.GeoDataFrame:
    """Village and community committee seats (``place_names``) as candidate sites.

    Committee buildings are the usual place for a new village or community centre (local choice);
    give any other layer of points (idle schools, grid points) to :func:`propose_sites` instead.
    """
    _need(layers, "place_names")
    names = layers["place_names"]
    seats = names[names["category"] == "village_seat"]
    if len(seats) == 0:
        raise GeoMzError("place_names has no village_seat points to use as candidate sites")
    return seats


def propose_sites(
    layers: Mapping[str, gpd.GeoDataFrame],
    result: CircleResult,
    *,
    k: int | None = 5,
    model: Literal["mclp", "lscp"] = "mclp",
    candidates: gpd.GeoDataFrame | None = None,
    capacity_places: float | None = None,
    **solver: Any,
) -> gpd.GeoDataFrame:
    """Choose new centres that cover the most uncovered aged 60+ (MCLP) or all of them (LSCP).

    Parameters
    ----------
    layers
        Workspace layers (``population``; ``place_names`` when no candidates are given).
    result
        The circle analysis (its network, settings and existing centres are reused).
    k
        Number of new centres (MCLP).
    model
        ``"mclp"`` (maximal covering, k sites) or ``"lscp"`` (fewest sites covering everyone
        reachable).
    candidates
        Candidate points; village/community seats when None.
    capacity_places
        Places per new centre (aged 60+ it can serve); uncapacitated when None.
    **solver
        Passed to :func:`geo_mz.network.site_centres` (``method``, ``time_limit_s``...).

    Returns
    -------
    geopandas.GeoDataFrame
        The ``proposed_sites`` layer (EPSG:4490); the solver summary is in ``.attrs["siting"]``.
    """
    cand = candidates if candidates is not None else default_candidates(layers)
    cand = cand.copy()
    cap_field = None
    if capacity_places is not None:
        cand["places"] = float(capacity_places)
        cap_field = "places"
    chosen = siting.site_centres(
        result.network,
        cand,
        layers["population"],
        existing=result.centres,
        k=k,
        max_min=max(result.settings.thresholds_min),
        capacity_field=cap_field,
        model=model,
        max_snap_m=result.settings.max_snap_m,
        **solver,
    )
    id_col = next(
        (c for c in ("name_id", "facility_id", "site_id", "id") if c in cand.columns), None
    )
    out = gpd.GeoDataFrame(
        {
            "site_id": [str(v) for v in (chosen[id_col] if id_col else chosen.index)],
            "name": chosen["name"].astype(str).tolist() if "name" in chosen else None,
            "rank": chosen["rank"].astype("int64").to_numpy(),
            "gain_pop_60plus": chosen["gain_pop_60plus"].to_numpy(dtype=float),
            "cumulative_covered": chosen["cumulative_covered"].to_numpy(dtype=float),
        },
        geometry=chosen.geometry.to_crs(STORAGE_CRS).values,
        crs=STORAGE_CRS,
    )
    out.attrs["siting"] = chosen.attrs.get("siting", {})
    return out


def siting_kpis(sites: gpd.GeoDataFrame, result: CircleResult) -> list[Kpi]:
    """Summarise what the proposed sites add to the district's 15-minute coverage."""
    info = sites.attrs.get("siting", {})
    total = float(result.table_towns.iloc[-1]["pop_60plus"])
    before = float(
        result.table_towns.iloc[-1][f"covered_{int(max(result.settings.thresholds_min))}min"]
    )
    added = float(sites["gain_pop_60plus"].sum())
    gap = info.get("gap")
    return [
        Kpi("建议新增设施", "New centres proposed", len(sites), "处", "", None,
            f"{info.get('model', '')} / {info.get('method', '')}"),
        Kpi("新增覆盖老人", "Aged 60+ added to the circle", round(added), "人"),
        Kpi("新增后15分钟覆盖率", "15-min share with the new centres",
            round((before + added) / total * 100, 1) if total else float("nan"), "%"),
        Kpi("选址最优性差距", "Siting optimality gap",
            "—" if gap is None else round(float(gap) * 100, 2), "%", "", None,
            "HiGHS (scipy.optimize.milp) bound" if info.get("method") == "milp-highs"
            else "greedy bound"),
    ]  # fmt: skip


# ------------------------------------------------------------------------------------ outputs


def output_layers(
    result: CircleResult, sites: gpd.GeoDataFrame | None = None
) -> dict[str, gpd.GeoDataFrame]:
    """Return the result layers as written to the GeoPackage, each checked against its spec."""
    specs = result_catalog()
    out = {
        "coverage_units": conform("coverage_units", result.units, specs),
        "isochrones": conform("isochrones", result.rings, specs),
        "coverage_gaps": conform("coverage_gaps", result.gaps, specs),
    }
    if sites is not None:
        out["proposed_sites"] = conform("proposed_sites", sites, specs)
    return out


TOWN_COLUMNS = (
    "name",
    "urban_rural",
    "pop_60plus",
    "share_5min",
    "share_10min",
    "share_15min",
    "share_capacity_adj",
    "target_share",
    "meets_target",
    "shortfall_persons",
    "mean_walk_min",
)


def report_tables(
    result: CircleResult, sites: gpd.GeoDataFrame | None = None, *, lang: Lang = "zh"
) -> list[ReportTable]:
    """Tables for the report: coverage per town (with the district total) and proposed sites."""
    specs = result_catalog()
    towns = result.table_towns.copy()
    towns.loc[towns["level"] == "total", "urban_rural"] = None
    present = [c for c in TOWN_COLUMNS if c in towns.columns]
    cols, rows = display_table(towns, specs["coverage_units"], lang, present)
    s = result.settings
    note = (
        f"步行速度 {s.walk_speed_kmh:g} km/h；设施类型 {', '.join(s.kinds)}；状态 "
        f"{', '.join(s.statuses)} / walking {s.walk_speed_kmh:g} km/h; kinds and statuses as listed"
    )
    tables = [
        ReportTable(
            "15分钟养老服务圈：各镇街覆盖率",
            "15-minute circle: coverage per town",
            cols,
            rows,
            note,
        )
    ]
    if sites is not None and len(sites):
        cols, rows = display_table(
            sites,
            specs["proposed_sites"],
            lang,
            ("rank", "name", "gain_pop_60plus", "cumulative_covered"),
        )
        tables.append(
            ReportTable("新增养老服务设施建议选址", "Proposed new elder-care centres", cols, rows)
        )
    return tables


def overlay_layers(
    result: CircleResult, sites: gpd.GeoDataFrame | None = None
) -> dict[str, gpd.GeoDataFrame]:
    """Map overlays of the circle: coverage per village, isochrone rings, gaps, proposed sites."""
    outs = output_layers(result, sites)
    units = outs.pop("coverage_units")
    return {"coverage_units": units[units["level"] == "village"], **outs}

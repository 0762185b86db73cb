"""Files, tables and maps of tree-burial planning: GeoPackage, Excel, map, report, score GeoTIFF.

Kept apart from the analysis (:mod:`geo_mz.burial.suitability`, :mod:`geo_mz.burial.capacity`)
so that each reads in one sitting.  Every layer is conformed to its spec in
``layers/results/burial_*.toml``, which also gives the map its colours and the sheets their
"中文 English" headings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_mz.burial.capacity import capacity_kpis, town_summary
from geo_mz.burial.rules import BurialRules, load_rules
from geo_mz.burial.suitability import Suitability, suitability_kpis
from geo_mz.core.catalog import load_catalog
from geo_mz.core.results import (
    Kpi,
    ReportTable,
    conform,
    display_table,
    headed,
    kpi_frame,
    result_catalog,
)
from geo_mz.core.terrain import write_raster
from geo_mz.outputs.files import write_gpkg
from geo_mz.outputs.maps import SIMPLIFY_M, layers_map, save_map
from geo_mz.outputs.report import write_report

__all__ = [
    "burial_map",
    "output_layers",
    "report_tables",
    "write_burial_outputs",
    "write_excel",
]

Lang = Literal["zh", "en"]

#: Layers on when the burial map opens; the rest are listed in its layer control, off.
BURIAL_MAP_ON = frozenset(
    {"admin_units", "water", "roads", "burial_candidates", "burial_capacity", "burial_sites"}
)

TOWN_HEADINGS = {
    "town_name": "镇街 Town",
    "tree_sites": "树葬点 Tree sites",
    "tree_sites_operating": "使用中 Operating",
    "memorial_halls": "追思堂 Halls",
    "capacity_plots": "容量(穴) Capacity",
    "used_plots": "已用 Used",
    "remaining_plots": "剩余 Left",
    "share_used": "使用率 Share used",
    "burials_per_year": "年安葬量 Per year",
    "years_until_full": "可用年限 Years left",
    "candidates": "候选地块 Candidates",
    "target_tree_sites": "树葬点目标 Target sites",
    "target_memorial_halls": "追思堂目标 Target halls",
}


def output_layers(
    suit: Suitability | None = None, capacity: gpd.GeoDataFrame | None = None
) -> dict[str, gpd.GeoDataFrame]:
    """Return the result layers conformed to ``layers/results/burial_*.toml`` (EPSG:4490)."""
    specs = result_catalog()
    out = {}
    if suit is not None:
        out["burial_candidates"] = conform("burial_candidates", suit.candidates, specs)
        ex = suit.exclusions[suit.exclusions["area_m2"] > 0].copy()
        ex["geometry"] = ex.geometry.simplify(suit.grid.cell_x_m / 2)
        out["burial_exclusions"] = conform("burial_exclusions", ex, specs)
    if capacity is not None:
        out["burial_capacity"] = conform("burial_capacity", capacity, specs)
    return out


def burial_map(
    base_layers: Mapping[str, gpd.GeoDataFrame],
    suit: Suitability | None = None,
    capacity: gpd.GeoDataFrame | None = None,
    *,
    lang: Lang = "zh",
    results: Mapping[str, gpd.GeoDataFrame] | None = None,
) -> Any:
    """Folium map: boundaries, water, main roads, land use, exclusions, candidates, sites.

    ``results`` are ``output_layers()`` of ``suit`` and ``capacity`` when already computed.
    Land use and the exclusion zones are in the layer control, off.
    """
    layers = {k: base_layers[k] for k in ("admin_units", "water", "landuse") if k in base_layers}
    if "roads" in base_layers:
        r = base_layers["roads"]
        layers["roads"] = r[r["road_class"].isin(["motorway", "trunk", "primary", "secondary"])]
    layers.update(output_layers(suit, capacity) if results is None else results)
    if capacity is None and "burial_sites" in base_layers:
        layers["burial_sites"] = base_layers["burial_sites"]
    return layers_map(
        layers,
        catalog={**load_catalog(), **result_catalog()},
        lang=lang,
        show=BURIAL_MAP_ON,
        simplify_m=SIMPLIFY_M,
    )


def _fmt(v: Any, share: bool = False) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if share:
        return f"{float(v):.0%}"
    if isinstance(v, float):
        return f"{v:,.1f}"
    return f"{v:,}" if isinstance(v, int | np.integer) else str(v)


def report_tables(
    suit: Suitability | None = None,
    capacity: gpd.GeoDataFrame | None = None,
    towns: pd.DataFrame | None = None,
    *,
    rules: BurialRules | None = None,
    lang: Lang = "zh",
    max_rows: int = 30,
    results: Mapping[str, gpd.GeoDataFrame] | None = None,
) -> list[ReportTable]:
    """Report tables: per town, sites, exclusions by rule, best candidates (``max_rows``)."""
    specs = result_catalog()
    out = []
    if towns is not None:
        cols = [c for c in TOWN_HEADINGS if c in towns and towns[c].notna().any()]
        rows = tuple(
            tuple(_fmt(r[c], c == "share_used") for c in cols) for r in towns.to_dict("records")
        )
        out.append(
            ReportTable(
                "节地生态安葬：各镇街",
                "Eco-burial per town",
                tuple(TOWN_HEADINGS[c] for c in cols),
                rows,
            )
        )
    if capacity is not None:
        lay = (results or output_layers(capacity=capacity))["burial_capacity"]
        cols = [
            c
            for c in (
                "name",
                "facility_type",
                "status",
                "town_name",
                "capacity_plots",
                "capacity_source",
                "used_plots",
                "share_used",
                "burials_per_year",
                "years_until_full",
                "full_by_year",
                "excluded_share",
            )
            if c in lay
        ]
        h, r = display_table(lay, specs["burial_capacity"], lang, cols)
        rc = rules or (suit.rules if suit is not None else load_rules())
        note = f"{rc.capacity['tree_source']}; {rc.capacity['hall_source']}"
        out.append(ReportTable("安葬点容量与使用", "Site capacity and use", h, r, note))
    if suit is not None:
        ex = pd.DataFrame(suit.exclusions.drop(columns="geometry"))
        spec = specs["burial_exclusions"]
        cols = ["name_zh" if lang == "zh" else "name_en", "buffer_m", "features_n", "applied"]
        h, r = display_table(ex, spec, lang, cols)
        area_heads = (
            "排除面积 Area excluded (km²)",
            "占辖区 Share",
            "仅此规则 Only this rule (km²)",
        )
        h = (*h, *area_heads, "依据 Source")
        r = tuple(
            (*row, f"{a / 1e6:,.2f}", f"{sh:.1%}", f"{o / 1e6:,.2f}", src)
            for row, a, sh, o, src in zip(
                r, ex["area_m2"], ex["share"], ex["area_only_m2"], ex["source"], strict=True
            )
        )
        out.append(
            ReportTable("排除规则与排除面积", "Exclusions by rule", h, r, "; ".join(suit.notes))
        )
        cols = [
            "candidate_id",
            "town_name",
            "area_m2",
            "score_mean",
            "slope_mean_deg",
            "road_m_min",
            "settlement_m_min",
            "est_plots",
        ]
        h, r = display_table(suit.candidates.head(max_rows), specs["burial_candidates"], lang, cols)
        w = suit.rules.weights
        note = (
            f"评分权重 weights: slope {w['slope']:.2f}, road access {w['road_access']:.2f}, "
            f"settlements {w['settlement']:.2f} ({suit.rules.road_access['source']})"
        )
        out.append(ReportTable("候选地块(按评分)", "Candidate areas (best first)", h, r, note))
    return out


def write_excel(
    path: str | Path,
    suit: Suitability | None = None,
    capacity: gpd.GeoDataFrame | None = None,
    towns: pd.DataFrame | None = None,
    kpis: Sequence[Kpi] = (),
    *,
    results: Mapping[str, gpd.GeoDataFrame] | None = None,
) -> Path:
    """Workbook: KPIs, towns, sites, exclusions by rule, candidates ("中文 English" headings)."""
    specs = result_catalog()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    layers = output_layers(suit, capacity) if results is None else results
    with pd.ExcelWriter(path, engine="openpyxl") as xl:
        kpi_frame(kpis).to_excel(xl, sheet_name="指标 KPIs", index=False)
        if towns is not None:
            towns[[c for c in TOWN_HEADINGS if c in towns]].rename(columns=TOWN_HEADINGS).to_excel(
                xl, sheet_name="镇街 towns", index=False
            )
        tables = {k: pd.DataFrame(v.drop(columns="geometry")) for k, v in layers.items()}
        if suit is not None:  # every rule, also those that exclude nothing
            tables["burial_exclusions"] = pd.DataFrame(suit.exclusions.drop(columns="geometry"))
        for name, sheet in (
            ("burial_capacity", "安葬点 sites"),
            ("burial_exclusions", "排除 exclusions"),
            ("burial_candidates", "候选 candidates"),
        ):
            if name in tables:
                headed(tables[name], specs[name]).to_excel(xl, sheet_name=sheet, index=False)
    return path


def write_burial_outputs(
    out_dir: str | Path,
    base_layers: Mapping[str, gpd.GeoDataFrame],
    suit: Suitability | None = None,
    capacity: gpd.GeoDataFrame | None = None,
    *,
    rules: BurialRules | None = None,
    info: Mapping[str, Any] | None = None,
    lang: Lang = "zh",
    prefix: str = "burial",
) -> dict[str, Path]:
    """Write ``{prefix}.gpkg``, ``.xlsx``, ``_map.html``, ``_score.tif`` and ``_report.html``.

    Parameters
    ----------
    out_dir
        Output folder (created).
    base_layers
        Workspace layers for the map (and town names, jurisdiction).
    suit, capacity
        From :func:`geo_mz.burial.burial_suitability` and :func:`geo_mz.burial.site_capacity`
        (either may be None).
    rules
        Targets and capacity notes; those of ``suit`` (else the shipped rules) when None.
    info
        ``Workspace.info()``; the HTML report is written only when given.
    lang
        ``"zh"`` or ``"en"``.
    prefix
        File name prefix.

    Returns
    -------
    dict
        Kind (``gpkg``, ``xlsx``, ``map``, ``score``, ``report``) to the file written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rules = rules or (suit.rules if suit is not None else load_rules())
    units = base_layers.get("admin_units")
    towns = None
    kpis: list[Kpi] = []
    if suit is not None:
        kpis += suitability_kpis(suit, base_layers.get("burial_sites"))
    if capacity is not None:
        towns = town_summary(
            capacity, units, rules=rules, candidates=suit.candidates if suit is not None else None
        )
        kpis += capacity_kpis(capacity, rules=rules)
    results = output_layers(suit, capacity)
    paths = {
        "gpkg": write_gpkg(out / f"{prefix}.gpkg", results),
        "xlsx": write_excel(out / f"{prefix}.xlsx", suit, capacity, towns, kpis, results=results),
        "map": save_map(
            burial_map(base_layers, suit, capacity, lang=lang, results=results),
            out / f"{prefix}_map.html",
        ),
    }
    if suit is not None:
        g = suit.grid
        code = suit.reason.astype(float)
        code[~suit.inside] = np.nan
        paths["score"] = write_raster(
            out / f"{prefix}_score.tif",
            {"score": suit.score, "slope_deg": suit.slope_deg, "exclusion": code},
            g.transform,
            g.crs,
            tags={
                "EXCLUSION_CODES": ";".join(
                    f"{i}={k}" for i, k in enumerate(["allowed", *suit.excluded])
                )
            },
            units={"score": "0-1", "slope_deg": "degree", "exclusion": "code"},
        )
    if info is not None:
        paths["report"] = write_report(
            out / f"{prefix}_report.html",
            info=info,
            validation=[],
            kpis=kpis,
            map_href=paths["map"].name,
            lang=lang,
            title="节地生态安葬规划 Tree-burial planning",
            tables=report_tables(suit, capacity, towns, rules=rules, lang=lang, results=results),
        )
    return paths

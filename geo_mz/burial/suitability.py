"""Tree-burial land suitability: exclusions, slope and score on a DEM grid, candidate areas.

:func:`burial_suitability` resamples a DEM of any CRS onto a grid in the workspace's measure
CRS, computes slope (Horn's method), rasterises the exclusion rules of
``layers/rules/burial_rules.toml`` (殡葬管理条例 第十条 and the Shandong buffers of
STANDARDS.md §D) with buffers as exact cell-centre distances, scores the remaining cells (slope,
road access, distance to settlements) and turns connected regions above a minimum area into
candidate polygons.  :func:`check_sites` tells whether existing sites lie in allowed land.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio.transform
import shapely
from pyproj import CRS

from geo_mz.burial.rules import BurialRules, BurialRulesError, ExclusionRule, load_rules
from geo_mz.core.catalog import load_catalog
from geo_mz.core.errors import CrsError, GeoMzError
from geo_mz.core.projection import measure_crs_for
from geo_mz.core.results import Kpi
from geo_mz.core.terrain import (
    DemGrid,
    distance_m,
    mask_polygon,
    rasterize_mask,
    read_dem,
    region_polygons,
    slope_deg,
    within_m,
)

__all__ = ["Suitability", "burial_suitability", "check_sites", "slope_score", "suitability_kpis"]


@dataclass(frozen=True)
class Suitability:
    """The outcome of :func:`burial_suitability`.

    Attributes
    ----------
    grid
        The DEM on the working grid (measure CRS).
    slope_deg
        Slope in degrees.
    inside
        Cells of the jurisdiction.
    excluded
        Rule key to the cells it excludes (``no_dem``, ``outside``, ``slope``, then the rules
        file's exclusions in order).
    reason
        Per cell: 0 allowed, else 1 + the index in ``excluded`` of the first rule excluding it.
    score
        Cell score 0-1 of allowed cells (NaN elsewhere).
    distances
        ``road_access`` and ``settlement`` distance grids (m) behind the score.
    candidates
        Candidate polygons (measure CRS), best first: ``candidate_id``, ``rank``, ``area_m2``,
        ``score_mean``, ``slope_mean_deg``, ``elevation_mean_m``, ``road_m_min``,
        ``settlement_m_min``, ``est_plots``, ``town_name``, ``adcode``.
    exclusions
        One row per rule (measure CRS, geometry = the excluded cells inside the jurisdiction):
        ``rule``, ``name_zh``, ``name_en``, ``layer``, ``buffer_m``, ``features_n``,
        ``applied``, ``area_m2``, ``share``, ``area_only_m2``, ``main_area_m2``, ``source``.
    rules
        The rules used.
    notes
        What could not be applied and why (missing layers, no DEM data...).
    """

    grid: DemGrid
    slope_deg: np.ndarray
    inside: np.ndarray
    excluded: dict[str, np.ndarray]
    reason: np.ndarray
    score: np.ndarray
    distances: dict[str, np.ndarray]
    candidates: gpd.GeoDataFrame
    exclusions: gpd.GeoDataFrame
    rules: BurialRules
    notes: tuple[str, ...]

    @property
    def allowed(self) -> np.ndarray:
        """Cells no rule excludes (inside the jurisdiction unless ``exclude_outside`` is off)."""
        return self.reason == 0

    @property
    def jurisdiction_area_m2(self) -> float:
        """Area of the jurisdiction's cells."""
        return float(self.inside.sum()) * self.grid.cell_area_m2

    @property
    def candidate_area_m2(self) -> float:
        """Total area of the candidate polygons."""
        return float(self.candidates["area_m2"].sum())


def _jurisdiction(layers: Mapping[str, gpd.GeoDataFrame], crs: str) -> tuple[Any, gpd.GeoDataFrame]:
    au = layers.get("admin_units")
    if au is None or au.empty:
        raise GeoMzError("the workspace has no admin_units: the jurisdiction is unknown")
    au = au.to_crs(crs)
    inside = au["in_jurisdiction"].fillna(False).astype(bool) if "in_jurisdiction" in au else None
    if inside is None or not inside.any():
        raise GeoMzError("admin_units: no unit is marked in_jurisdiction = true")
    levels = ("province", "city", "county", "town", "village")
    top = min((lv for lv in au.loc[inside, "level"] if lv in levels), key=levels.index)
    area = shapely.union_all(au[inside & (au["level"] == top)].geometry.values)
    towns = au[inside & (au["level"] == "town")]
    return area, towns


def _features(
    layers: Mapping[str, gpd.GeoDataFrame], rule: ExclusionRule, crs: str, rules: BurialRules
) -> gpd.GeoSeries | None:
    """Return the rule's features in ``crs`` (None when the layer is missing or empty)."""
    gdf = layers.get(rule.layer)
    if gdf is None or gdf.empty:
        return None
    where = f"{Path(rules.path).name}: [[exclusions]] '{rule.key}'"
    if rule.field is not None and rule.field not in gdf.columns:
        raise BurialRulesError(f"{where}: layer '{rule.layer}' has no field '{rule.field}'")
    if rule.min_density_per_km2 is not None:
        size_field = rule.cell_size_field or "cell_size_m"
        if size_field not in gdf.columns:
            raise BurialRulesError(f"{where}: layer '{rule.layer}' has no field '{size_field}'")
        pop = pd.to_numeric(gdf[rule.field], errors="coerce").to_numpy(float, na_value=np.nan)
        size = pd.to_numeric(gdf[size_field], errors="coerce").to_numpy(float, na_value=np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            density = pop / (size**2 / 1e6)
        gdf = gdf[np.nan_to_num(density, nan=-1.0) >= rule.min_density_per_km2]
    elif rule.field is not None:
        spec = load_catalog().get(rule.layer)
        codes = (
            {v.code for v in spec.field(rule.field).values}
            if spec is not None and (rule.field in spec.field_names)
            else set()
        )
        bad = [v for v in rule.values if codes and v not in codes]
        if bad:
            raise BurialRulesError(
                f"{where}: values {bad} are not codes of {rule.layer}.{rule.field} "
                f"({sorted(codes)})"
            )
        gdf = gdf[gdf[rule.field].astype(str).isin(rule.values)]
    return gdf.geometry.to_crs(crs)


def _burn(geoms: gpd.GeoSeries, grid: DemGrid, *, exact_polygons: bool) -> np.ndarray:
    """Cells of features: polygon interiors by cell centre, lines and points every cell touched."""
    poly = geoms.geom_type.str.contains("Polygon").to_numpy()
    mask = np.zeros(grid.shape, dtype=bool)
    if poly.any():
        mask |= rasterize_mask(
            geoms[poly], grid.transform, grid.shape, all_touched=not exact_polygons
        )
    if (~poly).any():
        mask |= rasterize_mask(geoms[~poly], grid.transform, grid.shape, all_touched=True)
    return mask


def _ramp(d: np.ndarray, lo: float, hi: float, *, rising: bool) -> np.ndarray:
    t = np.clip((d - lo) / (hi - lo), 0.0, 1.0)
    return t if rising else 1.0 - t


def slope_score(slope: np.ndarray, rules: BurialRules) -> np.ndarray:
    """Slope preference 0-1: 1 between the preferred bounds, linear to 0 at the maximum."""
    s = rules.slope
    lo, hi, mx, flat = (
        s["preferred_min_deg"],
        s["preferred_max_deg"],
        s["max_deg"],
        s["flat_score"],
    )
    out = np.ones_like(slope)
    if lo > 0:
        out = np.where(slope < lo, flat + (1.0 - flat) * slope / lo, out)
    if mx > hi:
        out = np.where(slope > hi, np.clip((mx - slope) / (mx - hi), 0.0, 1.0), out)
    return out


def burial_suitability(
    layers: Mapping[str, gpd.GeoDataFrame],
    dem: str | Path | DemGrid,
    *,
    rules: BurialRules | None = None,
    measure_crs: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Suitability:
    """Tree-burial land suitability from a DEM and the workspace's layers.

    Parameters
    ----------
    layers
        Workspace layers (any CRS): ``admin_units`` (jurisdiction) and the layers the rules
        name (``landuse``, ``water``, ``roads``, ``place_names``, ``population``...). A missing
        layer leaves its rules unapplied and says so in ``notes``.
    dem
        A DEM file (GeoTIFF, any projected or geographic CRS, elevations in metres), resampled
        onto the rules' grid in ``measure_crs``; or a :class:`~geo_mz.core.DemGrid` already
        in ``measure_crs`` (used as it is).
    rules
        From :func:`load_rules`; the shipped rules when None.
    measure_crs
        Projected CRS of the grid; the 3-degree GK zone of the jurisdiction when None.
    progress
        Called with a short message before each step.

    Returns
    -------
    Suitability

    Notes
    -----
    Polygon features with buffer 0 exclude the cells whose centre lies inside them. Features
    with a buffer (and all lines and points) are burnt into every cell they touch, and the
    cells whose centre lies within the buffer of one of those cell centres are excluded (exact
    Euclidean distance transform between cell centres). Against the vector features the buffer
    is thus exact to within half a cell diagonal either way (21 m at 30 m cells). Slope:
    Horn's method (as ``gdaldem slope``).
    """
    say = progress or (lambda _m: None)
    rules = rules or load_rules()
    units = layers.get("admin_units")
    crs = measure_crs or (measure_crs_for(units) if units is not None else None)
    if isinstance(dem, DemGrid):
        if measure_crs is not None and CRS.from_user_input(measure_crs) != CRS.from_user_input(
            dem.crs
        ):
            raise CrsError(f"the DEM grid is in {dem.crs}, not measure_crs {measure_crs}")
        crs = dem.crs
    if crs is None:
        raise GeoMzError("no measure CRS: give measure_crs or an admin_units layer")
    area, towns = _jurisdiction(layers, crs)
    reach = max(
        [r.buffer_m for r in rules.exclusions]
        + [rules.road_access["zero_m"], rules.settlement["full_m"]]
    )
    res = float(rules.grid["resolution_m"])
    pad = reach + 2 * res
    minx, miny, maxx, maxy = area.bounds
    say("读取高程 reading the DEM")
    if isinstance(dem, DemGrid):
        grid = dem
    else:
        grid = read_dem(
            dem,
            crs=crs,
            resolution_m=res,
            resampling=rules.grid["resampling"],
            bounds=(minx - pad, miny - pad, maxx + pad, maxy + pad),
        )
    cx, cy = grid.cell_x_m, grid.cell_y_m
    say("计算坡度 computing slope")
    slope = slope_deg(grid.elevation_m, cx, cy, method=rules.slope["method"])
    inside = rasterize_mask([area], grid.transform, grid.shape)
    notes: list[str] = []
    if not inside.any():
        raise GeoMzError("the jurisdiction does not overlap the DEM grid")
    excluded: dict[str, np.ndarray] = {"no_dem": ~np.isfinite(slope)}
    info: dict[str, dict[str, Any]] = {
        "no_dem": {
            "name_zh": "无高程数据",
            "name_en": "No DEM data",
            "layer": "dem",
            "source": "no slope can be computed",
        },
        "outside": {
            "name_zh": "辖区外",
            "name_en": "Outside the jurisdiction",
            "layer": "admin_units",
            "source": "[jurisdiction] " + rules.path,
        },
        "slope": {
            "name_zh": f"坡度大于{rules.slope['max_deg']:g}°",
            "name_en": f"Slope over {rules.slope['max_deg']:g}°",
            "layer": "dem",
            "source": rules.slope["source"],
        },
    }
    nodata_share = float((excluded["no_dem"] & inside).sum() / inside.sum())
    if nodata_share > 0:
        notes.append(f"{nodata_share:.1%} of the jurisdiction has no DEM data (excluded)")
    if rules.exclude_outside:
        excluded["outside"] = ~inside
    with np.errstate(invalid="ignore"):
        excluded["slope"] = slope > rules.slope["max_deg"]
    sources: dict[str, np.ndarray] = {}
    say("栅格化排除规则 rasterising the exclusions")
    for r in rules.exclusions:
        feats = _features(layers, r, grid.crs, rules)
        info[r.key] = {
            "name_zh": r.zh,
            "name_en": r.en,
            "layer": r.layer,
            "buffer_m": r.buffer_m,
            "source": r.source,
            "features_n": 0 if feats is None else len(feats),
        }
        if feats is None or feats.empty:
            if feats is None:
                notes.append(f"rule '{r.key}' not applied: layer '{r.layer}' missing or empty")
            else:
                notes.append(f"rule '{r.key}' excludes nothing: no {r.layer} features selected")
            info[r.key]["applied"] = feats is not None
            excluded[r.key] = np.zeros(grid.shape, dtype=bool)
            sources[r.key] = excluded[r.key]
            continue
        src = _burn(feats, grid, exact_polygons=r.buffer_m <= 0)
        sources[r.key] = src
        excluded[r.key] = within_m(src, r.buffer_m, cx, cy)
    keys = list(excluded)
    reason = np.zeros(grid.shape, dtype=np.int16)
    for i, k in reversed(list(enumerate(keys, start=1))):
        reason[excluded[k]] = i
    say("评分 scoring")
    allowed = reason == 0  # outside cells too when [jurisdiction] exclude_outside is false
    ra = rules.road_access
    access = _features(
        layers,
        ExclusionRule(
            "road_access", "", "", ra["layer"], ra["field"], tuple(ra["values"]), 0.0, ra["source"]
        ),
        grid.crs,
        rules,
    )
    w = dict(rules.weights)
    parts = {"slope": slope_score(slope, rules)}
    if access is None or access.empty:
        notes.append("road access not scored: no access roads")
        w["road_access"] = 0.0
        d_road = np.full(grid.shape, np.inf)
    else:
        d_road = distance_m(_burn(access, grid, exact_polygons=False), cx, cy)
        parts["road_access"] = _ramp(d_road, ra["full_m"], ra["zero_m"], rising=False)
    st = rules.settlement
    settle_src = np.zeros(grid.shape, dtype=bool)
    for k in st["rules"]:
        if k in sources:
            settle_src |= sources[k]
    if settle_src.any():
        d_settle = distance_m(settle_src, cx, cy)
        parts["settlement"] = _ramp(d_settle, st["zero_m"], st["full_m"], rising=True)
    else:
        notes.append("distance to settlements not scored: no settlement features")
        w["settlement"] = 0.0
        d_settle = np.full(grid.shape, np.inf)
    total = sum(w[k] for k in parts)
    score = np.full(grid.shape, np.nan)
    if total > 0:
        combined = sum(w[k] * parts[k] for k in parts) / total
        score[allowed] = combined[allowed]
    say("提取候选地块 extracting candidate areas")
    candidates = _candidates(grid, slope, score, allowed, d_road, d_settle, towns, rules)
    exclusions = _exclusion_table(grid, excluded, keys, reason, inside, info)
    return Suitability(
        grid,
        slope,
        inside,
        excluded,
        reason,
        score,
        {"road_access": d_road, "settlement": d_settle},
        candidates,
        exclusions,
        rules,
        tuple(notes),
    )


def _candidates(
    grid: DemGrid,
    slope: np.ndarray,
    score: np.ndarray,
    allowed: np.ndarray,
    d_road: np.ndarray,
    d_settle: np.ndarray,
    towns: gpd.GeoDataFrame,
    rules: BurialRules,
) -> gpd.GeoDataFrame:
    c = rules.candidates
    with np.errstate(invalid="ignore"):
        mask = allowed & (score >= c["min_score"])
    regions, labels = region_polygons(mask, grid.transform, grid.crs, min_area_m2=c["min_area_m2"])
    n = int(labels.max()) + 1 if labels.size else 1
    lab = labels.ravel()
    on = lab > 0

    def mean(values: np.ndarray) -> np.ndarray:
        sums = np.bincount(lab[on], weights=values.ravel()[on], minlength=n)
        cnt = np.bincount(lab[on], minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            return sums / cnt

    def low(values: np.ndarray) -> np.ndarray:
        out = np.full(n, np.inf)
        np.minimum.at(out, lab[on], values.ravel()[on])
        return out

    ids = regions["region"].to_numpy()
    cap = rules.capacity
    out = regions.assign(
        score_mean=mean(score)[ids],
        slope_mean_deg=mean(slope)[ids],
        elevation_mean_m=mean(grid.elevation_m)[ids],
        road_m_min=low(d_road)[ids],
        settlement_m_min=low(d_settle)[ids],
        est_plots=np.floor(
            regions["area_m2"].to_numpy() * cap["tree_usable_share"] / cap["tree_plot_area_m2"]
        ).astype(np.int64),
    )
    out = out.replace([np.inf, -np.inf], np.nan)
    out["town_name"], out["adcode"] = _town_of(out, towns)
    out = out.sort_values(["score_mean", "area_m2"], ascending=False, kind="stable")
    out = out.reset_index(drop=True)
    out["rank"] = np.arange(1, len(out) + 1, dtype=np.int64)
    out["candidate_id"] = [f"C{i:03d}" for i in out["rank"]]
    return out


def _town_of(gdf: gpd.GeoDataFrame, towns: gpd.GeoDataFrame) -> tuple[list[Any], list[Any]]:
    """Town name and code at each feature's representative point (None outside all towns)."""
    names: list[Any] = [None] * len(gdf)
    codes: list[Any] = [None] * len(gdf)
    if len(gdf) and len(towns):
        pts = gdf.geometry.representative_point().to_crs(towns.crs).values
        i, j = shapely.STRtree(towns.geometry.values).query(pts, predicate="intersects")
        for a, b in zip(i, j, strict=True):
            names[a], codes[a] = towns["name"].iloc[b], towns["adcode"].iloc[b]
    return names, codes


def _exclusion_table(
    grid: DemGrid,
    excluded: Mapping[str, np.ndarray],
    keys: Sequence[str],
    reason: np.ndarray,
    inside: np.ndarray,
    info: Mapping[str, Mapping[str, Any]],
) -> gpd.GeoDataFrame:
    cell = grid.cell_area_m2
    total = float(inside.sum()) * cell
    count = np.zeros(grid.shape, dtype=np.int16)
    for k in keys:
        count += excluded[k] & inside
    rows, geoms = [], []
    for i, k in enumerate(keys, start=1):
        if k == "outside":
            continue
        m = excluded[k] & inside
        rows.append(
            {
                "rule": k,
                "name_zh": info[k]["name_zh"],
                "name_en": info[k]["name_en"],
                "layer": info[k]["layer"],
                "buffer_m": info[k].get("buffer_m"),
                "features_n": info[k].get("features_n"),
                "applied": info[k].get("applied", True),
                "area_m2": float(m.sum()) * cell,
                "share": float(m.sum()) * cell / total,
                "area_only_m2": float((m & (count == 1)).sum()) * cell,
                "main_area_m2": float(((reason == i) & inside).sum()) * cell,
                "source": info[k]["source"],
            }
        )
        geoms.append(mask_polygon(m, grid.transform))
    return gpd.GeoDataFrame(rows, geometry=gpd.GeoSeries(geoms, crs=grid.crs), crs=grid.crs)


def check_sites(suit: Suitability, sites: gpd.GeoDataFrame) -> pd.DataFrame:
    """Whether existing sites lie in allowed land: excluded share and the rules that hit them.

    Parameters
    ----------
    suit
        From :func:`burial_suitability`.
    sites
        The ``burial_sites`` layer (any CRS).

    Returns
    -------
    pandas.DataFrame
        One row per site, indexed like ``sites``: ``site_id``, ``cells`` (cells whose centre is
        inside; a site smaller than a cell takes the cell at its representative point),
        ``excluded_share``, ``exclusion_rules`` (keys, comma-separated), ``slope_mean_deg``,
        ``score_mean``.
    """
    g = suit.grid
    geoms = sites.geometry.to_crs(g.crs)
    keys = list(suit.excluded)
    rows = []
    for geom in geoms:
        m = rasterize_mask([geom], g.transform, g.shape)
        if not m.any():
            p = geom.representative_point()
            r, c = rasterio.transform.rowcol(g.transform, p.x, p.y)
            if 0 <= r < g.shape[0] and 0 <= c < g.shape[1]:
                m[r, c] = True
        n = int(m.sum())
        hit = [k for k in keys if (suit.excluded[k] & m).any()]
        with np.errstate(invalid="ignore"):
            rows.append(
                {
                    "cells": n,
                    "excluded_share": float((suit.reason[m] > 0).mean()) if n else np.nan,
                    "exclusion_rules": ",".join(hit),
                    "slope_mean_deg": float(np.nanmean(suit.slope_deg[m])) if n else np.nan,
                    "score_mean": float(np.nanmean(suit.score[m]))
                    if n and np.isfinite(suit.score[m]).any()
                    else np.nan,
                }
            )
    out = pd.DataFrame(rows, index=sites.index)
    out.insert(0, "site_id", sites["site_id"].to_numpy() if "site_id" in sites else None)
    return out


def suitability_kpis(suit: Suitability, sites: gpd.GeoDataFrame | None = None) -> list[Kpi]:
    """Headline figures: jurisdiction, allowed and candidate land, sites in excluded land."""
    src = f"{Path(suit.rules.path).name} (殡葬管理条例 第十条; STANDARDS.md §D)"
    allowed = float(suit.allowed.sum()) * suit.grid.cell_area_m2
    out = [
        Kpi("辖区面积", "Jurisdiction area", round(suit.jurisdiction_area_m2 / 1e6, 2), "km²"),
        Kpi("未被排除的土地", "Land not excluded", round(allowed / 1e6, 2), "km²", source=src),
        Kpi(
            "候选地块",
            "Candidate areas",
            len(suit.candidates),
            "处 areas",
            source=suit.rules.candidates["source"],
        ),
        Kpi("候选地块面积", "Candidate area", round(suit.candidate_area_m2 / 1e6, 3), "km²"),
    ]
    if sites is not None and len(sites):
        chk = check_sites(suit, sites)
        bad = int((chk["excluded_share"].fillna(0) > 0).sum())
        out.append(
            Kpi(
                "位于排除区的现有安葬点",
                "Existing sites in excluded land",
                bad,
                f"/ {len(chk)}",
                target="0",
                met=bad == 0,
                source=src,
            )
        )
    return out

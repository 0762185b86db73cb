"""Tree-burial (节地生态安葬: 树葬点, 追思堂) planning: land suitability, capacity and use.

Suitability (:func:`burial_suitability`): a DEM of any CRS is resampled onto a grid in the
workspace's measure CRS; slope is computed (Horn's method); exclusion rules from
``layers/rules/burial_rules.toml`` (殡葬管理条例 第十条 and the Shandong buffers of STANDARDS.md
§D) are rasterised onto the grid, with buffers as exact cell-centre distances; the remaining
cells are scored (slope, road access, distance to settlements) and connected regions above a
minimum area become candidate polygons. Capacity (:func:`site_capacity`): plots or niches per
site from area and plot size, used against capacity, years until full, per-town summary against
the plan's targets. Outputs: :func:`write_burial_outputs` (GeoPackage, Excel, map, report,
score GeoTIFF).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio.transform
import shapely
from pyproj import CRS

from geo_mz.catalog import default_catalog_dir, load_catalog
from geo_mz.errors import CrsError, GeoMzError
from geo_mz.maps import layers_map, save_map
from geo_mz.projection import measure_crs_for
from geo_mz.report import Kpi, ReportTable, write_report
from geo_mz.results import conform, display_table, headed, kpi_frame, result_catalog, write_gpkg
from geo_mz.terrain import (
    DemGrid,
    distance_m,
    mask_polygon,
    rasterize_mask,
    read_dem,
    region_polygons,
    slope_deg,
    within_m,
    write_raster,
)

__all__ = [
    "BurialRules",
    "BurialRulesError",
    "ExclusionRule",
    "Suitability",
    "burial_map",
    "burial_suitability",
    "capacity_kpis",
    "check_sites",
    "default_rules_path",
    "load_rules",
    "output_layers",
    "report_tables",
    "site_capacity",
    "slope_score",
    "suitability_kpis",
    "town_summary",
    "write_burial_outputs",
    "write_excel",
]

Lang = Literal["zh", "en"]


class BurialRulesError(GeoMzError, ValueError):
    """The burial rules file is malformed; the message names the file and the key."""


# --- rules ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExclusionRule:
    """One hard exclusion: features of a layer (selected by field values or density) + buffer.

    Attributes
    ----------
    key, zh, en
        Identifier and titles.
    layer
        Workspace layer the features come from.
    field, values
        Select features whose ``field`` is one of ``values`` (all features when ``field`` is None).
    buffer_m
        Cells within this distance of a feature are excluded (0: only cells inside it).
    source
        Where the rule comes from (STANDARDS.md tag or "local choice").
    min_density_per_km2, cell_size_field
        Population cells instead: ``field`` / cell area ≥ this density.
    """

    key: str
    zh: str
    en: str
    layer: str
    field: str | None
    values: tuple[str, ...]
    buffer_m: float
    source: str
    min_density_per_km2: float | None = None
    cell_size_field: str | None = None


@dataclass(frozen=True)
class BurialRules:
    """Everything :mod:`geo_mz.burial` uses, as read from ``burial_rules.toml`` (see that file).

    Sections are kept as read (validated) mappings: ``grid``, ``slope``, ``score``,
    ``road_access``, ``settlement``, ``candidates``, ``capacity``, ``targets``; ``weights`` are
    normalised to sum 1.
    """

    path: str
    grid: Mapping[str, Any]
    slope: Mapping[str, Any]
    exclude_outside: bool
    exclusions: tuple[ExclusionRule, ...]
    weights: Mapping[str, float]
    road_access: Mapping[str, Any]
    settlement: Mapping[str, Any]
    candidates: Mapping[str, Any]
    capacity: Mapping[str, Any]
    targets: Mapping[str, Any]

    def rule(self, key: str) -> ExclusionRule:
        """Return the exclusion rule ``key``."""
        for r in self.exclusions:
            if r.key == key:
                return r
        raise KeyError(key)


def default_rules_path() -> Path:
    """Return the shipped rules file, ``layers/rules/burial_rules.toml``."""
    return default_catalog_dir() / "rules" / "burial_rules.toml"


_NUM, _TEXT, _TEXTS = "a number", "a non-empty string", "a non-empty list of strings"
_FLAG = "true or false"
_POS = "positive"  # a low bound meaning "> 0"
#: Schema of the rules file: section to key to (kind, low, high); low/high bound numbers
#: (inclusive; _POS: > 0); "kind" may instead be a tuple of allowed words. All keys required.
_SCHEMA: dict[str, dict[str, tuple[Any, Any, Any]]] = {
    "grid": {"resolution_m": (_NUM, _POS, None),
             "resampling": (("bilinear", "cubic", "nearest"), None, None),
             "source": (_TEXT, None, None)},
    "slope": {"max_deg": (_NUM, _POS, 90), "preferred_min_deg": (_NUM, 0, 90),
              "preferred_max_deg": (_NUM, 0, 90), "flat_score": (_NUM, 0, 1),
              "method": (("horn", "central"), None, None), "source": (_TEXT, None, None)},
    "jurisdiction": {"exclude_outside": (_FLAG, None, None), "source": (_TEXT, None, None)},
    "score": {"weights": (dict, None, None), "road_access": (dict, None, None),
              "settlement": (dict, None, None), "source": (_TEXT, None, None)},
    "score.weights": {"slope": (_NUM, 0, None), "road_access": (_NUM, 0, None),
                      "settlement": (_NUM, 0, None)},
    "score.road_access": {"layer": (_TEXT, None, None), "field": (_TEXT, None, None),
                          "values": (_TEXTS, None, None), "full_m": (_NUM, 0, None),
                          "zero_m": (_NUM, 0, None), "source": (_TEXT, None, None)},
    "score.settlement": {"rules": (_TEXTS, None, None), "zero_m": (_NUM, 0, None),
                         "full_m": (_NUM, 0, None), "source": (_TEXT, None, None)},
    "candidates": {"min_area_m2": (_NUM, 0, None), "min_score": (_NUM, 0, 1),
                   "source": (_TEXT, None, None)},
    "capacity": {"tree_plot_area_m2": (_NUM, _POS, None), "tree_usable_share": (_NUM, _POS, 1),
                 "tree_source": (_TEXT, None, None), "hall_niches_per_m2": (_NUM, _POS, None),
                 "hall_usable_share": (_NUM, _POS, 1), "hall_floors": (_NUM, 1, None),
                 "hall_source": (_TEXT, None, None), "prefer_recorded": (_FLAG, None, None)},
    "targets": {"plan_year": (_NUM, 1900, 2200), "tree_burial_sites": (_NUM, 0, None),
                "memorial_halls": (_NUM, 0, None), "source": (_TEXT, None, None)},
    "exclusions": {"key": (_TEXT, None, None), "zh": (_TEXT, None, None),
                   "en": (_TEXT, None, None), "layer": (_TEXT, None, None),
                   "buffer_m": (_NUM, 0, None), "source": (_TEXT, None, None)},
}  # fmt: skip
_OPTIONAL = {
    "exclusions": {"field": (_TEXT, None, None), "values": (_TEXTS, None, None),
                   "min_density_per_km2": (_NUM, 0, None), "cell_size_field": (_TEXT, None, None)},
    "targets": {"towns": (dict, None, None)},
}  # fmt: skip


def _fail(file: str, where: str, msg: str) -> BurialRulesError:
    return BurialRulesError(f"{file}: {where}: {msg}")


def _check_value(file: str, where: str, v: Any, kind: Any, lo: Any, hi: Any) -> Any:
    """Check one value against its schema entry; the error names ``where`` (table and key)."""
    if kind is dict:
        ok = isinstance(v, dict)
    elif kind == _NUM:
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        low_bad = ok and lo is not None and (v <= 0 if lo == _POS else v < lo)
        if low_bad or (ok and hi is not None and v > hi):
            bounds = [] if lo is None else ["> 0" if lo == _POS else f"≥ {lo:g}"]
            bounds += [] if hi is None else [f"≤ {hi:g}"]
            raise _fail(file, where, f"must be a number {' and '.join(bounds)}, got {v!r}")
    elif kind == _TEXT:
        ok = isinstance(v, str) and bool(v.strip())
    elif kind == _TEXTS:
        ok = isinstance(v, list) and bool(v) and all(isinstance(x, str) and x for x in v)
    elif kind == _FLAG:
        ok = isinstance(v, bool)
    else:  # a tuple of allowed words
        ok = v in kind
        kind = " or ".join(kind)
    if not ok:
        raise _fail(file, where, f"must be {'a table' if kind is dict else kind}, got {v!r}")
    return tuple(v) if kind == _TEXTS else v


def _section(file: str, raw: Any, name: str, label: str | None = None) -> dict[str, Any]:
    """Check a table against ``_SCHEMA[name]`` (+ optional keys): unknown and missing keys fail."""
    label = label or f"[{name}]"
    if not isinstance(raw, dict):
        raise _fail(file, label, "must be a table")
    known = {**_SCHEMA[name], **_OPTIONAL.get(name, {})}
    for key in raw:
        if key not in known:
            raise _fail(file, f"{label} {key}", f"unknown key (known: {', '.join(known)})")
    for key in _SCHEMA[name]:
        if key not in raw:
            raise _fail(file, f"{label} {key}", "missing")
    return {k: _check_value(file, f"{label} {k}", v, *known[k]) for k, v in raw.items()}


def _exclusion(file: str, raw: Any, i: int, seen: set[str]) -> ExclusionRule:
    label = f"[[exclusions]] #{i + 1}"
    if isinstance(raw, dict) and isinstance(raw.get("key"), str):
        label += f" ('{raw['key']}')"
    r = _section(file, raw, "exclusions", label)
    if r["key"] in seen or r["key"] in _BUILTIN:
        raise _fail(file, f"{label} key", f"used twice or reserved ({', '.join(_BUILTIN)})")
    seen.add(r["key"])
    density = r.get("min_density_per_km2")
    if ("field" in r) != ("values" in r or density is not None) or (
        "values" in r and density is not None
    ):
        raise _fail(
            file,
            f"{label} field",
            "give field + values, or field + min_density_per_km2, or neither (all features)",
        )
    return ExclusionRule(
        key=r["key"], zh=r["zh"], en=r["en"], layer=r["layer"], field=r.get("field"),
        values=r.get("values", ()), buffer_m=float(r["buffer_m"]), source=r["source"],
        min_density_per_km2=None if density is None else float(density),
        cell_size_field=r.get("cell_size_field"),
    )  # fmt: skip


def load_rules(path: str | Path | None = None) -> BurialRules:
    """Read and check the burial rules (suitability, capacity, targets).

    Parameters
    ----------
    path
        A rules TOML file; the shipped ``layers/rules/burial_rules.toml`` when None.

    Returns
    -------
    BurialRules

    Raises
    ------
    BurialRulesError
        If the file cannot be read, is not TOML, lacks a key, has an unknown key or a value of
        the wrong type or range; the message names the file and the key, e.g.
        ``burial_rules.toml: [slope] max_deg: must be a number, got 'steep'``.
    """
    p = Path(path) if path is not None else default_rules_path()
    f = p.name
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BurialRulesError(f"{p}: cannot read the burial rules: {exc}") from exc
    tops = ("version", "grid", "slope", "jurisdiction", "exclusions", "score", "candidates",
            "capacity", "targets")  # fmt: skip
    for key in raw:
        if key not in tops:
            raise _fail(f, key, f"unknown table or key (known: {', '.join(tops)})")
    for key in tops[1:]:
        if key not in raw:
            raise _fail(f, f"[{key}]", "missing")
    sec = {k: _section(f, raw[k], k) for k in tops[1:] if k != "exclusions"}
    for k in ("weights", "road_access", "settlement"):
        sec[f"score.{k}"] = _section(f, sec["score"][k], f"score.{k}")
    slope, road, settle = sec["slope"], sec["score.road_access"], sec["score.settlement"]
    if not slope["preferred_min_deg"] <= slope["preferred_max_deg"] <= slope["max_deg"]:
        raise _fail(f, "[slope] preferred_max_deg", "need preferred_min ≤ preferred_max ≤ max")
    if not road["full_m"] < road["zero_m"]:
        raise _fail(f, "[score.road_access] zero_m", "must be greater than full_m")
    if not settle["zero_m"] < settle["full_m"]:
        raise _fail(f, "[score.settlement] full_m", "must be greater than zero_m")
    weights = sec["score.weights"]
    if sum(weights.values()) <= 0:
        raise _fail(f, "[score.weights]", "at least one weight must be > 0")
    if not isinstance(raw["exclusions"], list):
        raise _fail(f, "exclusions", "must be an array of tables ([[exclusions]])")
    seen: set[str] = set()
    exclusions = tuple(_exclusion(f, e, i, seen) for i, e in enumerate(raw["exclusions"]))
    unknown = [k for k in settle["rules"] if k not in seen]
    if unknown:
        raise _fail(f, "[score.settlement] rules", f"{unknown} are not [[exclusions]] keys")
    targets = dict(sec["targets"])
    towns = {}
    for code, tt in targets.pop("towns", {}).items():
        label = f"[targets.towns.{code}]"
        for key, v in tt.items() if isinstance(tt, dict) else [("", tt)]:
            if key not in ("tree_burial_sites", "memorial_halls"):
                raise _fail(
                    f, f"{label} {key}", "unknown key (known: tree_burial_sites, memorial_halls)"
                )
            _check_value(f, f"{label} {key}", v, _NUM, 0, None)
        towns[str(code)] = {k: int(v) for k, v in tt.items()}
    for key in ("plan_year", "tree_burial_sites", "memorial_halls"):
        targets[key] = int(targets[key])
    targets["towns"] = towns
    return BurialRules(
        path=str(p), grid=sec["grid"], slope=slope,
        exclude_outside=sec["jurisdiction"]["exclude_outside"], exclusions=exclusions,
        weights={k: v / sum(weights.values()) for k, v in weights.items()},
        road_access=road, settlement=settle, candidates=sec["candidates"],
        capacity=sec["capacity"], targets=targets,
    )  # fmt: skip


# --- suitability ------------------------------------------------------------------------------

#: Built-in exclusions, applied before the rules file's: no DEM data, outside, too steep.
_BUILTIN = ("no_dem", "outside", "slope")


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
        onto the rules' grid in ``measure_crs``; or a :class:`~geo_mz.terrain.DemGrid` already
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


# --- capacity and use -------------------------------------------------------------------------


def _num(df: pd.DataFrame, col: str) -> np.ndarray:
    if col not in df:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def site_capacity(
    sites: gpd.GeoDataFrame,
    *,
    rules: BurialRules | None = None,
    admin_units: gpd.GeoDataFrame | None = None,
    suitability: Suitability | None = None,
) -> gpd.GeoDataFrame:
    """Capacity, use and years until full of each burial site.

    Parameters
    ----------
    sites
        The ``burial_sites`` layer (``facility_type``, ``area_m2``, ``plot_area_m2``,
        ``capacity_plots``, ``used_plots``, ``burials_per_year``, ``status``, ``adcode``).
    rules
        From :func:`load_rules` (``[capacity]``, ``[targets] plan_year``); shipped when None.
    admin_units
        For town names (the town is the first 9 digits of the site's ``adcode``).
    suitability
        Adds ``excluded_share`` and ``exclusion_rules`` (:func:`check_sites`).

    Returns
    -------
    geopandas.GeoDataFrame
        The sites (same index and CRS) with ``town_adcode``, ``town_name``, ``area_m2``
        (measured when missing), ``plot_area_m2`` (used), ``capacity_recorded``,
        ``capacity_est``, ``capacity_plots`` (recorded when > 0 and preferred, else the
        estimate), ``capacity_source``, ``used_plots``, ``remaining_plots``, ``share_used``,
        ``burials_per_year``, ``years_until_full`` (NaN with no burials per year),
        ``full_by_year``.

    Notes
    -----
    Tree burial (and flower, lawn, small plots): ``floor(area × tree_usable_share /
    plot_area_m2)``, the site's own ``plot_area_m2`` when given, else ``tree_plot_area_m2``
    (UNSOURCED, STANDARDS.md §D). Memorial halls and niches: ``floor(area × hall_floors ×
    hall_usable_share × hall_niches_per_m2)`` (local choice). Years until full = remaining /
    burials per year; full by = plan year + that, rounded down.
    """
    rules = rules or load_rules()
    cap = rules.capacity
    out = sites.copy()
    area = _num(out, "area_m2")
    if np.isnan(area).any() and len(out):
        measured = out.geometry.to_crs(measure_crs_for(out)).area.to_numpy()
        area = np.where(np.isnan(area), measured, area)
    hall = (
        out["facility_type"].astype(str).eq("memorial_hall").to_numpy()
        | (
            out.get("burial_type", pd.Series(index=out.index, dtype=object)).astype(str).eq("niche")
        ).to_numpy()
    )
    plot = _num(out, "plot_area_m2")
    plot = np.where(np.isnan(plot) | (plot <= 0), cap["tree_plot_area_m2"], plot)
    est_tree = np.floor(area * cap["tree_usable_share"] / plot)
    est_hall = np.floor(
        area * cap["hall_floors"] * cap["hall_usable_share"] * cap["hall_niches_per_m2"]
    )
    est = np.where(hall, est_hall, est_tree)
    recorded = _num(out, "capacity_plots")
    use_rec = cap["prefer_recorded"] & (recorded > 0)
    capacity = np.where(use_rec, recorded, est)
    used = np.nan_to_num(_num(out, "used_plots"), nan=0.0)
    per_year = np.nan_to_num(_num(out, "burials_per_year"), nan=0.0)
    remaining = np.maximum(capacity - used, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        years = np.where(per_year > 0, remaining / per_year, np.nan)
        share = np.where(capacity > 0, used / capacity, np.nan)
    code = out["adcode"].astype(str).str[:9] if "adcode" in out else pd.Series([None] * len(out))
    names = {}
    if admin_units is not None:
        t = admin_units[admin_units["level"] == "town"]
        names = dict(zip(t["adcode"].astype(str), t["name"], strict=True))
    out["town_adcode"] = code.to_numpy()
    out["town_name"] = [names.get(c) for c in code]
    out["area_m2"] = area
    out["plot_area_m2"] = np.where(hall, _num(out, "plot_area_m2"), plot)
    out["capacity_recorded"] = pd.array(np.where(np.isnan(recorded), None, recorded), "Int64")
    out["capacity_est"] = est.astype(np.int64)
    out["capacity_plots"] = capacity.astype(np.int64)
    out["capacity_source"] = np.where(use_rec, "recorded", "estimated")
    out["used_plots"] = used.astype(np.int64)
    out["remaining_plots"] = remaining.astype(np.int64)
    out["share_used"] = share
    out["burials_per_year"] = per_year.astype(np.int64)
    out["years_until_full"] = years
    plan = rules.targets["plan_year"]
    out["full_by_year"] = pd.array(
        [None if np.isnan(y) else plan + math.floor(y) for y in years], dtype="Int64"
    )
    if suitability is not None:
        chk = check_sites(suitability, sites)
        out["excluded_share"] = chk["excluded_share"].to_numpy()
        out["exclusion_rules"] = chk["exclusion_rules"].to_numpy()
        out["slope_mean_deg"] = chk["slope_mean_deg"].to_numpy()
    return out


def town_summary(
    capacity: gpd.GeoDataFrame,
    admin_units: gpd.GeoDataFrame | None = None,
    *,
    rules: BurialRules | None = None,
    candidates: gpd.GeoDataFrame | None = None,
) -> pd.DataFrame:
    """Per town: sites, capacity, use, years until full, targets; a district total row last.

    Parameters
    ----------
    capacity
        From :func:`site_capacity`.
    admin_units
        Every town of the jurisdiction gets a row (also those without sites).
    rules
        ``[targets.towns]`` (optional per-town targets) and the district targets (total row).
    candidates
        Candidate polygons (:attr:`Suitability.candidates`) counted per town.

    Returns
    -------
    pandas.DataFrame
        ``town_adcode``, ``town_name``, ``tree_sites``, ``tree_sites_operating``,
        ``memorial_halls``, ``capacity_plots``, ``used_plots``, ``remaining_plots``,
        ``share_used``, ``burials_per_year``, ``years_until_full``, ``candidates``,
        ``target_tree_sites``, ``target_memorial_halls``. Capacity and plots left include
        planned sites; burials per year count operating sites only.
    """
    rules = rules or load_rules()
    c = capacity
    tree = c["facility_type"].astype(str).eq("tree_burial_site")
    hall = c["facility_type"].astype(str).eq("memorial_hall")
    operating = c["status"].astype(str).eq("operating") if "status" in c else tree | hall
    codes = list(dict.fromkeys(c["town_adcode"].dropna().astype(str)))
    names = dict(zip(c["town_adcode"].astype(str), c["town_name"], strict=True))
    if admin_units is not None:
        t = admin_units[admin_units["level"] == "town"]
        if "in_jurisdiction" in t:
            t = t[t["in_jurisdiction"].fillna(False).astype(bool)]
        names.update(zip(t["adcode"].astype(str), t["name"], strict=True))
        codes = sorted(set(codes) | set(t["adcode"].astype(str)))
    cand = candidates["adcode"].astype(str).value_counts() if candidates is not None else None
    towns_t = rules.targets["towns"]

    def row(sel: pd.Series, code: str | None, name: str) -> dict[str, Any]:
        cap = float(c.loc[sel, "capacity_plots"].sum())
        used = float(c.loc[sel, "used_plots"].sum())
        per_year = float(c.loc[sel & operating, "burials_per_year"].sum())
        remaining = float(c.loc[sel, "remaining_plots"].sum())
        tt = rules.targets if code is None else towns_t.get(code, {})
        return {
            "town_adcode": code or "",
            "town_name": name,
            "tree_sites": int((sel & tree).sum()),
            "tree_sites_operating": int((sel & tree & operating).sum()),
            "memorial_halls": int((sel & hall).sum()),
            "capacity_plots": int(cap),
            "used_plots": int(used),
            "remaining_plots": int(remaining),
            "share_used": used / cap if cap > 0 else np.nan,
            "burials_per_year": int(per_year),
            "years_until_full": remaining / per_year if per_year > 0 else np.nan,
            "candidates": (int(cand.sum()) if code is None else int(cand.get(code, 0)))
            if cand is not None
            else None,
            "target_tree_sites": tt.get("tree_burial_sites"),
            "target_memorial_halls": tt.get("memorial_halls"),
        }

    town_code = c["town_adcode"].astype(str)
    rows = [row(town_code == code, code, str(names.get(code) or code)) for code in codes]
    rows.append(row(pd.Series(True, index=c.index), None, "合计 Total"))
    out = pd.DataFrame(rows)
    for c in ("candidates", "target_tree_sites", "target_memorial_halls"):
        out[c] = out[c].astype("Int64")
    return out


def capacity_kpis(capacity: gpd.GeoDataFrame, *, rules: BurialRules | None = None) -> list[Kpi]:
    """Sites against the plan's targets, capacity left, years until the district is full."""
    rules = rules or load_rules()
    t = rules.targets
    kind = capacity["facility_type"].astype(str)
    trees, halls = int((kind == "tree_burial_site").sum()), int((kind == "memorial_hall").sum())
    tot = town_summary(capacity, rules=rules).iloc[-1]
    years = tot["years_until_full"]
    src = f"{Path(rules.path).name} [targets]: {t['source']}"
    return [
        Kpi(
            "树葬点(含规划)",
            "Tree-burial sites (incl. planned)",
            trees,
            "处 sites",
            target=f"≥ {t['tree_burial_sites']}",
            met=trees >= t["tree_burial_sites"],
            source=src,
        ),
        Kpi(
            "追思堂(含规划)",
            "Memorial halls (incl. planned)",
            halls,
            "处 halls",
            target=f"≥ {t['memorial_halls']}",
            met=halls >= t["memorial_halls"],
            source=src,
        ),
        Kpi(
            "设计容量",
            "Capacity",
            int(tot["capacity_plots"]),
            "穴 plots",
            source=rules.capacity["tree_source"],
        ),
        Kpi("已用", "Used", int(tot["used_plots"]), "穴 plots"),
        Kpi("剩余容量", "Plots left", int(tot["remaining_plots"]), "穴 plots"),
        Kpi("年安葬量", "Burials per year", int(tot["burials_per_year"]), "穴/年 per yr"),
        Kpi(
            "按现有安葬量可用年限",
            "Years until full at the current rate",
            round(float(years), 1) if np.isfinite(years) else "—",
            "年 yr",
        ),
    ]


# --- outputs ----------------------------------------------------------------------------------

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

    ``results`` are :func:`output_layers` of ``suit`` and ``capacity`` when already computed.
    """
    layers = {k: base_layers[k] for k in ("admin_units", "water", "landuse") if k in base_layers}
    if "roads" in base_layers:
        r = base_layers["roads"]
        layers["roads"] = r[r["road_class"].isin(["motorway", "trunk", "primary", "secondary"])]
    layers.update(output_layers(suit, capacity) if results is None else results)
    if capacity is None and "burial_sites" in base_layers:
        layers["burial_sites"] = base_layers["burial_sites"]
    return layers_map(layers, catalog={**load_catalog(), **result_catalog()}, lang=lang)


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
        From :func:`burial_suitability` and :func:`site_capacity` (either may be None).
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

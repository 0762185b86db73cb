"""Capacity and use of tree-burial sites and memorial halls: plots, years until full, per town.

:func:`site_capacity` gives each site its capacity (recorded, or estimated from area and plot
size), plots used and left and the years until it is full; :func:`town_summary` sums them per
town against the plan's targets, and :func:`capacity_kpis` gives the headline figures.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_mz.burial.rules import BurialRules, load_rules
from geo_mz.burial.suitability import Suitability, check_sites
from geo_mz.core.projection import measure_crs_for
from geo_mz.core.results import Kpi

__all__ = ["capacity_kpis", "site_capacity", "town_summary"]


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
        Candidate polygons (``candidates`` of :class:`Suitability`) counted per town.

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

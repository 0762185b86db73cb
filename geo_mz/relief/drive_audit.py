"""Relief-delivery audit: whether every village and shelter is reached from its stores in time.

For every audit point (a village's population-weighted centre, or a shelter) and every delivery
target (a store level with its hours, e.g. the town store within 3 h), the time is

    dispatch preparation + the store's leg onto the road network + truck drive time on the
    network (road-class speeds × disaster derating, one-way rules) + the point's last leg off
    the network,

checked against the store of that level that serves the point's own area ("own": the store
whose ``adcode`` is a prefix of the point's code, e.g. the town store of its town) or against
the nearest store of that level ("any").

Engine: one shortest-path forest per (target, served area) from :mod:`geo_mz.network.sptree` on the
drive network's CSR graph. Forests of "own" stores are searched only as far as their own
villages need (a time limit grown from a straight-line lower bound), so a district of 100 town
stores costs about one whole-network search instead of 100. The forests are kept in the
:class:`Audit`, so a disruption scenario (:mod:`geo_mz.network.disruption`) re-audits by *repairing*
only the subtrees whose arcs were closed or slowed (:func:`reaudit`), never rebuilding the
network or re-running every search.

Targets are configuration (:class:`Target`): the national guidance is the built-in default
(STANDARDS.md §C: county 6 h, city 8 h, province 10 h, SOURCED); a workspace may carry its own
(the Pengjiang sample carries the district plan's 5 h / 3 h, SOURCED local plan) in its metadata
key ``relief_targets``.

The pieces live in their own modules: targets and settings in
:mod:`geo_mz.relief.audit_targets`; the points, the searches, re-audit and route geometry in
:mod:`geo_mz.relief.audit_engine`. This module compares scenarios, summarises by town, gives the
KPIs, pre-positions new stores, and gathers the audit's public names.
"""

from __future__ import annotations

from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_mz.core.results import Kpi
from geo_mz.network import sptree
from geo_mz.network.paths import snap_points
from geo_mz.relief.audit_engine import (
    STATUSES,
    STORAGE_CRS,
    Audit,
    audit,
    audit_points,
    drive_network,
    reaudit,
    routes,
    run_audit,
)
from geo_mz.relief.audit_targets import (
    NATIONAL_TARGETS,
    PENGJIANG_TARGETS,
    ReliefError,
    ReliefSettings,
    Target,
    targets_from_json,
    targets_to_json,
    workspace_targets,
)

# --------------------------------------------------------------------------- scenarios


def compare(base: Audit, scenario: Audit) -> gpd.GeoDataFrame:
    """Rows of (point, target) whose result changed between two audits.

    Returns
    -------
    geopandas.GeoDataFrame
        ``point_id``, ``kind``, ``name``, ``town_name``, ``population``, ``target``,
        ``status_before``, ``status_after``, ``time_before_min``, ``time_after_min``,
        ``delta_min``, ``change`` (``falls_out`` met → missed, ``cut_off`` reachable → not,
        ``slower``, ``recovered``, ``faster``), geometry (the point).
    """
    b, s = base.table, scenario.table
    if len(b) != len(s) or not np.array_equal(b["point_id"].to_numpy(), s["point_id"].to_numpy()):
        raise ReliefError("the two audits do not cover the same points and targets")
    tb, ts = b["time_min"].to_numpy(float), s["time_min"].to_numpy(float)
    both = np.isfinite(tb) & np.isfinite(ts)
    delta = np.where(both, ts - tb, np.nan)
    sb, sa = b["status"].to_numpy(), s["status"].to_numpy()
    change = np.select(
        [
            (sb != "cut_off") & (sa == "cut_off"),
            (sb == "meets") & (sa == "misses"),
            (sb != "meets") & (sa == "meets"),
            both & (delta > 1e-6),
            both & (delta < -1e-6),
        ],
        ["cut_off", "falls_out", "recovered", "slower", "faster"],
        default="",
    )
    keep = change != ""
    out = b.loc[
        keep, ["point_id", "kind", "name", "town_name", "population", "target", "target_h"]
    ].copy()
    out["status_before"], out["status_after"] = sb[keep], sa[keep]
    out["time_before_min"], out["time_after_min"] = tb[keep], ts[keep]
    out["delta_min"], out["change"] = delta[keep], change[keep]
    out["store_id"] = s.loc[keep, "store_id"].to_numpy()
    out["_row"] = np.flatnonzero(keep)
    return gpd.GeoDataFrame(
        out.reset_index(drop=True), geometry=b.geometry.values[keep], crs=STORAGE_CRS
    )


# --------------------------------------------------------------------------- summaries


def town_summary(a: Audit) -> pd.DataFrame:
    """Per town and target: villages audited, meeting, missing, cut off; the worst time."""
    t = a.table[a.table["kind"] == "village"]
    g = t.groupby(["town_adcode", "town_name", "target"], sort=True)
    out = g.agg(
        villages=("point_id", "size"),
        meets_n=("meets", "sum"),
        misses_n=("status", lambda x: int((x == "misses").sum())),
        cut_off_n=("status", lambda x: int((x == "cut_off").sum())),
        no_store_n=("status", lambda x: int((x == "no_store").sum())),
        worst_time_min=("time_min", "max"),
        pop_missing=("population", lambda x: float(x[~t.loc[x.index, "meets"]].sum())),
    ).reset_index()
    out["meets_share"] = out["meets_n"] / out["villages"]
    return out


def audit_kpis(a: Audit) -> list[Kpi]:
    """Headline figures: villages meeting each target, cut off, and the basic-needs line."""
    out = []
    t = a.table
    for tg in a.settings.targets:
        rows = t[(t["target"] == tg.key) & (t["kind"] == "village")]
        if rows.empty:
            continue
        n, met = len(rows), int(rows["meets"].sum())
        out.append(
            Kpi(
                f"{_level_zh(tg.level)}储备库{tg.hours:g}小时送达村居",
                f"Villages reached from the {tg.level} store within {tg.hours:g} h",
                f"{met}/{n}",
                "",
                target="100%",
                met=met == n,
                source=tg.source,
            )
        )
    cut = t[(t["status"] == "cut_off") & (t["kind"] == "village")]["point_id"].nunique()
    out.append(
        Kpi(
            "断路无法送达的村居",
            "Villages cut off",
            str(cut),
            "",
            target="0",
            met=cut == 0,
            source="",
        )
    )
    return out


def _level_zh(level: str) -> str:
    return {"county": "区(县)级", "township": "镇(街)级", "city": "市级", "province": "省级"}.get(
        level, level
    )


# --------------------------------------------------------------------------- pre-positioning


def preposition(
    a: Audit,
    candidates: gpd.GeoDataFrame,
    *,
    level: str,
    k: int = 1,
    weight: Literal["population", "villages"] = "population",
    name_field: str = "name",
) -> gpd.GeoDataFrame:
    """Choose ``k`` new store sites of ``level`` that bring the most villages within its target.

    A new store serves whatever it reaches within the level's target (like ``match="any"``);
    villages already within the target count for nothing. The choice is a maximal covering
    problem solved by :func:`geo_mz.network.mclp` (HiGHS MILP, greedy fallback) on a coverage
    matrix of one time-limited search per candidate.

    Parameters
    ----------
    a
        A normal or scenario audit (so sites can be chosen for the flood case too).
    candidates
        Candidate points with a CRS; ``site_id`` (else the index) and ``name_field`` if present.
    level
        Store level of the new sites; one of the audit's targets must have it.
    k
        Number of sites.
    weight
        Maximise people (``population``) or the number of villages.
    name_field
        Column naming the candidates.

    Returns
    -------
    geopandas.GeoDataFrame
        The chosen sites in rank order: ``site_id``, ``name``, ``rank``, ``level``,
        ``target_h``, ``gain_population``, ``gain_villages`` (EPSG:4490).
    """
    from geo_mz.network.siting import mclp

    tgt = next((t for t in a.settings.targets if t.level == level), None)
    if tgt is None:
        known = [t.key for t in a.settings.targets]
        raise ReliefError(f"no delivery target for level {level!r}; targets: {known}")
    if candidates.empty:
        raise ReliefError("candidates: no candidate sites given")
    rows = a.table[(a.table["target"] == tgt.key) & (a.table["kind"] == "village")]
    pts = rows["_point"].to_numpy()
    met = rows["meets"].to_numpy(bool)
    pop = rows["population"].to_numpy(float)
    net, s = a.network, a.settings
    cs = snap_points(net, candidates, max_snap_m=s.max_snap_m, access_speed_kmh=s.last_leg_kmh)
    budget = tgt.minutes - s.dispatch_prep_min
    cover = np.zeros((len(candidates), len(pts)), dtype=bool)
    for c in range(len(candidates)):
        f = sptree.grow(net.graph, cs.node[c : c + 1], cs.offset_min[c : c + 1], limit_min=budget)
        cover[c] = f.time_at(a.point_node[pts]) + a.point_offset_min[pts] <= budget
    demand = pop if weight == "population" else np.ones(len(pts))
    res = mclp(cover.astype(np.float64), demand, k=min(k, len(candidates)), already_covered=met)
    cand = candidates.to_crs(STORAGE_CRS).reset_index(drop=True)
    ids = cand["site_id"].astype(str) if "site_id" in cand else cand.index.astype(str)
    names = cand[name_field].astype(str) if name_field in cand else ids
    taken = met.copy()
    gain_pop, gain_n = [], []
    for c in res.chosen.tolist():
        new = cover[c] & ~taken
        gain_pop.append(float(pop[new].sum()))
        gain_n.append(int(new.sum()))
        taken |= cover[c]
    chosen = res.chosen
    return gpd.GeoDataFrame(
        {
            "site_id": ids.to_numpy()[chosen],
            "name": names.to_numpy()[chosen],
            "rank": np.arange(1, len(chosen) + 1),
            "level": level,
            "target_h": tgt.hours,
            "gain_population": gain_pop,
            "gain_villages": gain_n,
        },
        geometry=cand.geometry.values[chosen],
        crs=STORAGE_CRS,
    )


__all__ = [
    "NATIONAL_TARGETS",
    "PENGJIANG_TARGETS",
    "STATUSES",
    "Audit",
    "ReliefError",
    "ReliefSettings",
    "Target",
    "audit",
    "audit_kpis",
    "audit_points",
    "compare",
    "drive_network",
    "preposition",
    "reaudit",
    "routes",
    "run_audit",
    "targets_from_json",
    "targets_to_json",
    "town_summary",
    "workspace_targets",
]

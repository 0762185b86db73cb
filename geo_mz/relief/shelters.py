"""Emergency shelters (应急避难场所): capacity by standard, adequacy per unit, evacuation.

Three steps, each a function (STANDARDS.md §A gives every number and its source):

* :func:`shelter_capacity`: persons each shelter holds from its effective area (GB 21734-2008
  §5.4, at least 1.5 m² per person) and under each refuge stage, the GB 51143-2015 class used
  and its service distance, and warnings (area under 2,000 m², recorded capacity above the
  standard).
* :func:`shelter_adequacy`: per town and village of the jurisdiction, the shelters inside, their
  capacity against the population, the fixed-shelter share against the 15 % rule and the share
  of people within a shelter's service distance along the walking network.
* :func:`evacuate`: people to shelters by walking time under capacity (min-cost max-flow,
  :func:`geo_mz.network.assign`), only within each shelter's service distance.

Service distances are network distances. A walk is the straight leg from the person to the
nearest network node, the network path, then the straight leg from the shelter's node to the
shelter, all at the walking speed. A person counts as within reach when that time is at most
the shelter class's service distance divided by the speed (500 m at 4 km/h = 7.5 min).
:func:`output_layers`, :func:`report_tables`, :func:`excel_tables` and :func:`shelter_map` turn
the results into ``layers/results`` layers, report tables and a map.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse.csgraph import dijkstra

from geo_mz.core.errors import GeoMzError
from geo_mz.core.results import (
    Kpi,
)
from geo_mz.core.standards import FIXED_SHELTER_SHARE_MIN, SHELTER_AREA_PER_PERSON_MIN_M2
from geo_mz.core.units import assign_to_units, complete_units, units_of_level
from geo_mz.network import flow
from geo_mz.network.graph import WALK_SPEED_KMH, Network, Snapped
from geo_mz.network.paths import snap_points

Lang = Literal["zh", "en"]
STORAGE_CRS = "EPSG:4490"
#: GB 51143-2015 §3.1.4 classes (SOURCED); the fixed ones count toward the 15 % rule.
GB51143_CLASSES = ("emergency", "fixed_short", "fixed_mid", "fixed_long", "central")
FIXED_CLASSES = frozenset({"fixed_short", "fixed_mid", "fixed_long", "central"})
#: Refuge stages of the per-capita table (紧急/临时/短期/中期/长期).
STAGES = ("emergency", "temporary", "short", "mid", "long")
#: Stage whose per-capita area a class uses with ``capacity_basis="stage"`` (local choice).
STAGE_OF_CLASS = {"emergency": "emergency", "fixed_short": "short", "fixed_mid": "mid"} | {
    "fixed_long": "long",
    "central": "long",
}
REASONS = {
    "no_shelter_within": ("服务距离内无避难场所", "no shelter within service distance"),
    "shelters_full": ("可达避难场所已满", "shelters within reach full"),
}
SRC_AREA = "GB 21734-2008 §5.4, SOURCED"
SRC_SHARE = "general code §4.2.2 (cabr-fire.com copy), SOURCED value"
SRC_DIST = "GB 51143-2015 Table 3.2.x service distances, UNSOURCED (recalled)"
_TOL = 1e-9


class ShelterError(GeoMzError, ValueError):
    """Shelter data or options cannot be used (missing area, unknown class, wrong network)."""


@dataclass(frozen=True)
class ShelterSettings:
    """Options of the shelter analyses; every default names its source (STANDARDS.md §A).

    Attributes
    ----------
    per_capita_m2
        Effective area per person, 1.5 m² (GB 21734-2008 §5.4 "> 1.5 m²/person", SOURCED).
    stage_per_capita_m2
        Per-capita area by refuge stage: emergency 0.5, temporary 1.0, short 2.0, mid 3.0,
        long 4.5 m² (GB 51143 table, UNSOURCED (recalled)).
    capacity_basis
        ``"gb21734"`` (default): every shelter at ``per_capita_m2``. ``"stage"``: each at the
        stage of its class (``STAGE_OF_CLASS``: central as long-term, local choice).
    service_m
        Service distance along the network by GB 51143 class: 500 / 1,000 / 1,500 / 2,500 m
        (GB 51143-2015 Table 3.2.x, UNSOURCED (recalled)); central 2,500 m like long-term fixed
        (local choice: the recalled table gives no distance for it).
    class_from_gb21734
        GB 51143 class of a shelter without ``class_gb51143``: III→emergency, II→fixed_short,
        I→fixed_mid (local choice, from the stays <10 / 10-30 / ≥30 days of GB 21734 §4).
    walk_speed_kmh
        4.0 km/h (``network.WALK_SPEED_KMH``, DERIVED); the network must be built with it.
    fixed_share_min
        Fixed-shelter capacity ≥ 15 % of the population (general code §4.2.2, SOURCED value).
    min_area_m2
        Warn below 2,000 m² effective area (GB 21734-2008 §5.4 "should be > 2,000 m²",
        SOURCED; a recommended clause, so a warning).
    max_snap_m
        Points farther than this from a road are flagged too far (local choice, as in
        :mod:`geo_mz.eldercare.circle15`); their straight leg still counts in the walk.
    people
        Population column to shelter: ``"pop_total"`` (default, local choice) or
        ``"pop_60plus"``.
    """

    per_capita_m2: float = SHELTER_AREA_PER_PERSON_MIN_M2
    stage_per_capita_m2: Mapping[str, float] = field(
        default_factory=lambda: dict(emergency=0.5, temporary=1.0, short=2.0, mid=3.0, long=4.5)
    )
    capacity_basis: Literal["gb21734", "stage"] = "gb21734"
    service_m: Mapping[str, float] = field(
        default_factory=lambda: dict(
            emergency=500.0, fixed_short=1000.0, fixed_mid=1500.0, fixed_long=2500.0, central=2500.0
        )
    )
    class_from_gb21734: Mapping[str, str] = field(
        default_factory=lambda: {"III": "emergency", "II": "fixed_short", "I": "fixed_mid"}
    )
    walk_speed_kmh: float = WALK_SPEED_KMH
    fixed_share_min: float = FIXED_SHELTER_SHARE_MIN
    min_area_m2: float = 2000.0
    max_snap_m: float = 500.0
    people: Literal["pop_total", "pop_60plus"] = "pop_total"


def _check_settings(s: ShelterSettings) -> None:
    problems = []
    if s.capacity_basis not in ("gb21734", "stage"):
        problems.append(f"capacity_basis {s.capacity_basis!r} is not 'gb21734' or 'stage'")
    if set(STAGES) - set(s.stage_per_capita_m2):
        problems.append(f"stage_per_capita_m2 needs the stages {list(STAGES)}")
    if set(GB51143_CLASSES) - set(s.service_m):
        problems.append(f"service_m needs the classes {list(GB51143_CLASSES)}")
    nums = [s.per_capita_m2, s.walk_speed_kmh, *s.stage_per_capita_m2.values()]
    if any(not np.isfinite(x) or x <= 0 for x in nums + list(s.service_m.values())):
        problems.append("per-capita areas, service distances and the speed must be > 0")
    if problems:
        raise ShelterError("shelter settings are invalid:\n  - " + "\n  - ".join(problems))


def _check_net(net: Network, s: ShelterSettings) -> None:
    if net.mode != "walk" or abs(net.access_speed_kmh - s.walk_speed_kmh) > 1e-9:
        raise ShelterError(
            f"the network is {net.mode!r} at {net.access_speed_kmh:g} km/h but the shelter "
            f"service distances need a walk network at {s.walk_speed_kmh:g} km/h: build it with "
            f"network_from_roads(roads, mode='walk', walk_speed_kmh={s.walk_speed_kmh:g})"
        )


def shelter_capacity(
    shelters: gpd.GeoDataFrame, settings: ShelterSettings | None = None
) -> gpd.GeoDataFrame:
    """Capacity of each shelter from its effective area, its class, service distance, warnings.

    Parameters
    ----------
    shelters
        The ``shelters`` layer (``shelter_id``, ``effective_area_m2``; ``shelter_class`` and/or
        ``class_gb51143``; optionally the recorded ``capacity_persons``).
    settings
        Options; :class:`ShelterSettings` defaults when None.

    Returns
    -------
    geopandas.GeoDataFrame
        The shelters (index reset) plus ``class_gb51143_used``, ``capacity_recorded_persons``
        (the recorded ``capacity_persons``, NA where none is recorded),
        ``capacity_calc_persons`` = floor(area / per-capita area of ``capacity_basis``),
        ``capacity_used_persons`` (the smaller of recorded and computed; computed when nothing
        is recorded), ``capacity_over_standard`` (recorded > computed: the list records more
        people than the area holds), ``cap_<stage>_persons`` for each of
        ``STAGES``, ``service_m``, ``service_min`` and ``warnings`` (text naming the source).

    Raises
    ------
    ShelterError
        Naming the rows and shelter ids whose area is missing or negative, whose recorded
        capacity is negative or whose class is unknown or missing.
    """
    s = settings or ShelterSettings()
    _check_settings(s)
    if not isinstance(shelters, gpd.GeoDataFrame) or "effective_area_m2" not in shelters:
        raise ShelterError("`shelters` must be a GeoDataFrame with an 'effective_area_m2' column")
    out = shelters.reset_index(drop=True).copy()
    ids = out["shelter_id"].astype(str) if "shelter_id" in out else out.index.astype(str)

    def fail(rows: np.ndarray, fld: str, what: str, values: pd.Series) -> None:
        if len(rows):
            listed = "; ".join(
                f"row {r} (shelter_id {ids[r]}): {values.iloc[r]}" for r in rows[:10]
            )
            more = f" and {len(rows) - 10} more" if len(rows) > 10 else ""
            raise ShelterError(f"field '{fld}' {what} in {len(rows)} shelter(s): {listed}{more}")

    raw = out["effective_area_m2"]
    area = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    fail(np.flatnonzero(~np.isfinite(area) | (area < 0)), "effective_area_m2",
         "is missing, not a number or negative", raw.map(repr))  # fmt: skip
    rec_raw = out["capacity_persons"] if "capacity_persons" in out else pd.Series([None] * len(out))
    rec = pd.to_numeric(rec_raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    fail(np.flatnonzero(rec < 0), "capacity_persons", "is negative", rec_raw.map(repr))

    def text(col: str) -> list[str]:
        vals = out[col].tolist() if col in out else [None] * len(out)
        return ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip()
                for v in vals]  # fmt: skip

    given, c21 = text("class_gb51143"), text("shelter_class")
    cls = pd.Series([g or s.class_from_gb21734.get(c, "") for g, c in zip(given, c21, strict=True)])
    fail(np.flatnonzero(~cls.isin(GB51143_CLASSES)), "class_gb51143 / shelter_class",
         f"gives no GB 51143 class ({list(GB51143_CLASSES)}; I/II/III)",
         pd.Series([f"class_gb51143={g!r}, shelter_class={c!r}"
                    for g, c in zip(given, c21, strict=True)]))  # fmt: skip
    stage_pc = {k: float(v) for k, v in s.stage_per_capita_m2.items()}
    if s.capacity_basis == "stage":
        pc = cls.map(lambda c: stage_pc[STAGE_OF_CLASS[c]]).to_numpy(dtype=float)
    else:
        pc = np.full(len(out), float(s.per_capita_m2))
    calc = np.floor(area / pc + _TOL).astype(np.int64)  # 2,999 / 1.5 -> 1,999
    out["class_gb51143_used"] = cls.to_numpy(dtype=object)
    has = np.isfinite(rec)
    # recorded and computed side by side, so a reader sees both, not only the one used
    out["capacity_recorded_persons"] = pd.array(
        [int(r) if h else pd.NA for r, h in zip(rec, has, strict=True)], dtype="Int64"
    )
    out["capacity_calc_persons"] = calc
    out["capacity_used_persons"] = np.where(has, np.minimum(np.nan_to_num(rec), calc), calc)
    out["capacity_used_persons"] = out["capacity_used_persons"].astype(np.int64)
    over = has & (np.nan_to_num(rec) > calc)
    out["capacity_over_standard"] = over
    for st in STAGES:
        out[f"cap_{st}_persons"] = np.floor(area / stage_pc[st] + _TOL).astype(np.int64)
    out["service_m"] = cls.map(lambda c: float(s.service_m[c])).to_numpy(dtype=float)
    out["service_min"] = out["service_m"] * 0.06 / s.walk_speed_kmh
    notes = []
    for a, r, c, o, q in zip(area, rec, calc, over, pc, strict=True):
        w = []
        if a < s.min_area_m2:
            w.append(f"有效避难面积{a:,.0f} m²不足{s.min_area_m2:,.0f} m² / effective area "
                     f"{a:,.0f} m² under {s.min_area_m2:,.0f} m² ({SRC_AREA})")  # fmt: skip
        if o:
            w.append(f"登记容量{r:,.0f}人超过按{q:g} m²/人计算的{c:,}人 / recorded "
                     f"capacity {r:,.0f} above {c:,} at {q:g} m²/person "
                     f"({SRC_AREA}); {c:,} used")  # fmt: skip
        notes.append("; ".join(w))
    out["warnings"] = notes
    return out


def _reach_pairs(
    net: Network,
    s_node: np.ndarray,
    s_off: np.ndarray,
    s_limit: np.ndarray,
    t_node: np.ndarray,
    t_off: np.ndarray,
    *,
    max_cells: int = 20_000_000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (shelter k, target t, walk minutes) whose walk t → k is within k's limit.

    One limited Dijkstra per shelter on the reversed graph (people walk to the shelter), run in
    chunks of shelters that share a limit, so the dense chunk x nodes array stays under
    ``max_cells`` values. The walk adds both straight legs (``t_off`` and ``s_off``).
    """
    g = net.graph.T.tocsr()
    budget = s_limit - s_off
    chunk = max(1, max_cells // max(net.n_nodes, len(t_node), 1))
    ks, ts, ms = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0)]
    for lim in np.unique(s_limit):
        group = np.flatnonzero((s_limit == lim) & (budget >= 0))
        for start in range(0, len(group), chunk):
            kk = group[start : start + chunk]
            d = dijkstra(g, directed=True, indices=s_node[kk], limit=float(budget[kk].max()))
            walk = d[:, t_node] + s_off[kk, None] + t_off[None, :]
            r, c = np.nonzero(walk <= lim + _TOL)
            ks.append(kk[r])
            ts.append(c.astype(np.int64))
            ms.append(walk[r, c])
    return np.concatenate(ks), np.concatenate(ts), np.concatenate(ms)


def _people(population: gpd.GeoDataFrame, column: str) -> np.ndarray:
    if column not in population:
        raise ShelterError(f"`population` has no column {column!r}")
    x = pd.to_numeric(population[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(x) | (x < 0))
    if len(bad):
        raise ShelterError(f"`population` field '{column}' is missing or negative in rows "
                           f"{bad[:10].tolist()}")  # fmt: skip
    return x


def _snap(net: Network, gdf: gpd.GeoDataFrame, s: ShelterSettings) -> Snapped:
    return snap_points(net, gdf.geometry.to_crs(net.crs), max_snap_m=s.max_snap_m)


# ------------------------------------------------------------------------------------ adequacy


@dataclass
class AdequacyResult:
    """What :func:`shelter_adequacy` found: the shelters, the unit layer and tables, KPIs."""

    settings: ShelterSettings
    shelters: gpd.GeoDataFrame  # shelter_capacity() output
    units: gpd.GeoDataFrame  # towns and villages with their polygons (shelter_units spec)
    table_towns: pd.DataFrame  # one row per town, then the district "total" row
    table_villages: pd.DataFrame
    kpis: list[Kpi]


def _unit_table(
    u: gpd.GeoDataFrame,
    level: str,
    cpos: np.ndarray,
    spos: np.ndarray,
    people: np.ndarray,
    served: np.ndarray,
    cap: gpd.GeoDataFrame,
    pair_k: np.ndarray,
    pair_t: np.ndarray,
    s: ShelterSettings,
) -> pd.DataFrame:
    n = len(u)

    def bsum(pos: np.ndarray, w: np.ndarray) -> np.ndarray:
        ok = pos >= 0
        x = np.bincount(pos[ok], weights=np.asarray(w, dtype=float)[ok], minlength=n)
        return np.r_[x, x.sum()]

    fixed = cap["class_gb51143_used"].isin(FIXED_CLASSES).to_numpy()
    used = cap["capacity_used_persons"].to_numpy(dtype=float)
    pu = cpos[pair_t]
    reach = pd.DataFrame({"u": pu, "k": pair_k})[pu >= 0].drop_duplicates()
    n_reach = np.bincount(reach["u"], minlength=n)
    rows = pd.DataFrame(
        {
            "level": [level] * n + ["total"],
            "adcode": [*u["adcode"].astype(str), str(u["adcode"].iloc[0])[:6] if n else None],
            "name": [*u["name"].astype(str), "合计 total"],
            "parent_adcode": [*u.get("parent_adcode", pd.Series([None] * n)), None],
        }
    )
    pop = bsum(cpos, people)
    safe = np.where(pop > 0, pop, np.nan)
    rows["population"] = pop
    rows["n_shelters_inside"] = bsum(spos, np.ones(len(spos))).astype(np.int64)
    rows["n_shelters_reach"] = np.r_[n_reach, reach["k"].nunique()].astype(np.int64)
    has = pd.array((rows["n_shelters_inside"] + rows["n_shelters_reach"]) > 0, dtype="boolean")
    has[-1] = pd.NA
    rows["has_shelter"] = has
    rows["capacity_persons"] = bsum(spos, used)
    rows["fixed_capacity_persons"] = bsum(spos, used * fixed)
    rows["capacity_ratio"] = rows["capacity_persons"] / safe
    rows["fixed_capacity_share"] = rows["fixed_capacity_persons"] / safe
    rows["fixed_share_target"] = float(s.fixed_share_min)
    meets = pd.array(rows["fixed_capacity_share"] >= s.fixed_share_min - _TOL, dtype="boolean")
    meets[pop <= 0] = pd.NA
    rows["meets_fixed_share"] = meets
    rows["pop_served"] = bsum(cpos, people * served)
    rows["pop_served_share"] = rows["pop_served"] / safe
    rows["pop_unserved"] = rows["population"] - rows["pop_served"]
    rows["effective_area_m2"] = bsum(spos, cap["effective_area_m2"].astype(float))
    rows["area_per_person_m2"] = rows["effective_area_m2"] / safe
    return rows


def shelter_adequacy(
    shelters: gpd.GeoDataFrame,
    units: gpd.GeoDataFrame,
    population: gpd.GeoDataFrame,
    net: Network,
    settings: ShelterSettings | None = None,
) -> AdequacyResult:
    """Shelters, capacity and service coverage of every town and village of the jurisdiction.

    Parameters
    ----------
    shelters
        The ``shelters`` layer (any CRS).
    units
        ``admin_units``; town and village rows with ``in_jurisdiction`` not False are used.
    population
        ``population`` cell points (``settings.people`` and ``adcode``; cells join units by
        their 12-digit adcode, cells without one in space).
    net
        Walking network at ``settings.walk_speed_kmh`` (:func:`geo_mz.network.network_from_roads`).
    settings
        Options; :class:`ShelterSettings` defaults when None.

    Returns
    -------
    AdequacyResult
        Per unit: ``population``, ``n_shelters_inside`` (point in polygon),
        ``n_shelters_reach`` (shelters within their service distance of any of its cells),
        ``has_shelter`` (either), ``capacity_persons`` and ``fixed_capacity_persons`` of the
        shelters inside, ``capacity_ratio``, ``fixed_capacity_share`` vs
        ``fixed_share_target`` (``meets_fixed_share``), ``pop_served`` / ``pop_served_share``
        (people within the service distance of any shelter, whatever its unit),
        ``effective_area_m2``, ``area_per_person_m2``; towns add ``n_villages`` and
        ``villages_without_shelter``. Each table ends with the district ``total`` row.
    """
    s = settings or ShelterSettings()
    _check_net(net, s)
    cap = shelter_capacity(shelters, s)
    people = _people(population, s.people)
    sc, ss = _snap(net, population, s), _snap(net, cap, s)
    limit = cap["service_min"].to_numpy(dtype=float)
    pk, pt, _ = _reach_pairs(net, ss.node, ss.offset_min, limit, sc.node, sc.offset_min)
    served = np.zeros(len(population), dtype=bool)
    served[pt] = True
    pts = gpd.GeoDataFrame(geometry=cap.geometry.values, crs=cap.crs)  # no adcode: in space
    tables, polys = {}, []
    # Towns/villages without polygons get approximate areas from coded population points.
    units = complete_units({"admin_units": units, "population": population})[0]["admin_units"]
    levels = [lv for lv in ("town", "village") if (units["level"] == lv).any()]
    if "town" not in levels:  # no towns: the district as a whole is the top reporting unit
        inj = units.get("in_jurisdiction", pd.Series(True, index=units.index))
        own = units[inj.astype("boolean").fillna(True).to_numpy(dtype=bool)]
        top = next((lv for lv in ("county", "city") if (own["level"] == lv).any()), None)
        if top is None:
            raise ShelterError("admin_units: 没有辖区单元 / no unit of the jurisdiction")
        levels = [top, *levels]
    for level in levels:
        u = units_of_level(units, level)
        t = _unit_table(u, level, assign_to_units(population, u), assign_to_units(pts, u), people,
                        served, cap, pk, pt, s)  # fmt: skip
        tables[level] = t
        polys.append(gpd.GeoDataFrame(t.iloc[:-1], geometry=list(u.geometry), crs=u.crs))
    towns = tables[levels[0]]
    # No village units: an empty village table (and the towns' village counts stay unknown).
    villages = tables.get("village", towns.iloc[0:0].copy())
    vil = villages.iloc[:-1]
    k = len(str(towns["adcode"].iloc[0])) if len(towns) > 1 else 9
    by_town = vil.groupby(vil["adcode"].str[:k])
    towns["n_villages"] = towns["adcode"].map(by_town.size()).fillna(0).astype(np.int64)
    towns["villages_without_shelter"] = (
        towns["adcode"].map(by_town["has_shelter"].apply(lambda h: int((~h).sum()))).fillna(0)
    ).astype(np.int64)
    towns.loc[towns.index[-1], ["n_villages", "villages_without_shelter"]] = [
        len(vil),
        int((~vil["has_shelter"]).sum()),
    ]
    if "village" not in tables:
        towns[["n_villages", "villages_without_shelter"]] = pd.NA
    polys[0] = polys[0].assign(**towns.iloc[:-1][["n_villages", "villages_without_shelter"]])
    layer = pd.concat([p.to_crs(STORAGE_CRS) for p in polys], ignore_index=True)
    return AdequacyResult(s, cap, layer, towns, villages, _adequacy_kpis(towns, villages, s))


def _pct(x: float) -> float:
    return round(100.0 * float(x), 1) if np.isfinite(x) else float("nan")


def _adequacy_kpis(towns: pd.DataFrame, villages: pd.DataFrame, s: ShelterSettings) -> list[Kpi]:
    tot = towns.iloc[-1]
    no_t = int((~towns.iloc[:-1]["has_shelter"]).sum())
    # a district without town units reports for itself as a whole (see shelter_adequacy)
    whole = len(towns) > 1 and towns.iloc[0]["level"] != "town"
    top_zh, top_en = (
        ("区县(无镇街单元)", "Districts (no town units)") if whole else ("镇街", "Towns")
    )
    no_v = int((~villages.iloc[:-1]["has_shelter"]).sum()) if len(villages) else 0
    fixed = float(tot["fixed_capacity_share"])
    return [
        Kpi("固定避难容量/规划人口", "Fixed-shelter capacity / population", _pct(fixed), "%",
            f"≥ {_pct(s.fixed_share_min)}", bool(fixed >= s.fixed_share_min - _TOL),
            f"{SRC_SHARE}; capacity at {s.per_capita_m2:g} m²/person ({SRC_AREA})"),
        Kpi("避难容量/人口", "Shelter capacity / population", _pct(tot["capacity_ratio"]), "%"),
        Kpi("人均有效避难面积", "Effective shelter area per person",
            round(float(tot["area_per_person_m2"]), 3), "m²/人"),
        Kpi(f"无避难场所的{top_zh}", f"{top_en} without a shelter", f"{no_t}/{len(towns) - 1}",
            "", "0", no_t == 0, f"inside or within service distance ({SRC_DIST})"),
        Kpi("无避难场所的村居", "Villages without a shelter",
            f"{no_v}/{len(villages) - 1}" if len(villages) else "—", "", "0",
            no_v == 0 if len(villages) else None,
            f"inside or within service distance ({SRC_DIST})"
            if len(villages) else "no village units in the workspace"),
        Kpi("服务距离外人口", "Population outside service distance",
            round(float(tot["pop_unserved"])), "人", "0", bool(tot["pop_unserved"] <= 0),
            f"walk {s.walk_speed_kmh:g} km/h on the road network; {SRC_DIST}"),
        Kpi("服务距离内人口比例", "Population within service distance",
            _pct(tot["pop_served_share"]), "%"),
    ]  # fmt: skip


# ---------------------------------------------------------------------------------- evacuation


@dataclass
class EvacuationResult:
    """What :func:`evacuate` found: per-shelter load, assignment lines, unplaced people, KPIs."""

    settings: ShelterSettings
    engine: str
    unit: str
    load: gpd.GeoDataFrame  # shelter_load spec, EPSG:4490
    lines: gpd.GeoDataFrame  # evacuation spec: one line per flow, EPSG:4490
    unassigned: gpd.GeoDataFrame  # evacuation_unassigned: per village and reason, EPSG:4490
    total_people: int
    assigned: int
    total_cost_min: float  # person-minutes walked
    runtime_s: float
    kpis: list[Kpi]


def _sources(
    population: gpd.GeoDataFrame, net: Network, s: ShelterSettings, unit: str
) -> pd.DataFrame:
    """People per evacuation source: node, straight-leg minutes, adcode, x/y (net CRS)."""
    pop = population.to_crs(net.crs)
    people = np.rint(_people(pop, s.people)).astype(np.int64)  # flows need whole persons
    code = (pop["adcode"].astype("string").fillna("") if "adcode" in pop
            else pd.Series([""] * len(pop))).to_numpy(dtype=object)  # fmt: skip
    xy = shapely.get_coordinates(pop.geometry.values)
    sn = snap_points(net, pop, max_snap_m=s.max_snap_m)
    df = pd.DataFrame({"people": people, "adcode": code, "x": xy[:, 0], "y": xy[:, 1]})
    df["node"], df["too_far"], df["offset"] = sn.node, sn.too_far, sn.offset_min
    if unit == "villages":
        if (df["adcode"] == "").any():
            raise ShelterError("unit='villages' needs an adcode on every population point")
        key = ["adcode"]
    elif unit == "cells":
        # Thousands of 100 m cells share their nearest node: one source per (node, village,
        # too-far flag) keeps the flow problem at the size of the network, not the grid, and
        # keeps each person's village for the report. The cells' straight legs differ by about
        # a cell size; the source takes their people-weighted mean, so the service-distance cut
        # is exact on average rather than per cell.
        key = ["node", "adcode", "too_far"]
    else:
        raise ShelterError(f"`unit` was {unit!r} but must be 'cells' or 'villages'")
    df["w"] = df["people"].astype(float) + 1e-9  # weighted means stay defined for empty cells
    for c in ("x", "y", "offset"):
        df[c] = df[c] * df["w"]
    g = df.groupby(key, sort=True).agg(
        people=("people", "sum"), adcode_=("adcode", "first"), node_=("node", "first"),
        w=("w", "sum"), x=("x", "sum"), y=("y", "sum"), offset=("offset", "sum"),
    ).reset_index(drop=True)  # fmt: skip
    g = g.rename(columns={"adcode_": "adcode", "node_": "node"})
    for c in ("x", "y", "offset"):
        g[c] = g[c] / g["w"]
    if unit == "villages":  # one source per village at its people-weighted centre, snapped anew
        sv = snap_points(net, gpd.GeoSeries(gpd.points_from_xy(g["x"], g["y"]), crs=net.crs))
        g["node"], g["offset"] = sv.node, sv.offset_min
    return g[g["people"] > 0].reset_index(drop=True)


def evacuate(
    population: gpd.GeoDataFrame,
    shelters: gpd.GeoDataFrame,
    net: Network,
    settings: ShelterSettings | None = None,
    *,
    unit: Literal["cells", "villages"] = "cells",
    engine: flow.Engine = "ortools",
    units: gpd.GeoDataFrame | None = None,
) -> EvacuationResult:
    """Assign people to shelters by walking time under capacity, within service distance.

    Parameters
    ----------
    population
        ``population`` points (``settings.people``, ``adcode``).
    shelters
        The ``shelters`` layer; capacity is ``capacity_used_persons`` of
        :func:`shelter_capacity`.
    net
        Walking network at ``settings.walk_speed_kmh``.
    settings
        Options; :class:`ShelterSettings` defaults when None.
    unit
        ``"cells"`` (default): sources are the cells grouped by nearest node and village.
        ``"villages"``: one source per village at its people-weighted centre (coarse: a village
        is often wider than a 500 m service distance).
    engine
        ``"ortools"`` (default) or ``"networkx"`` (same optimum, slower; see
        :mod:`geo_mz.network.flow`).
    units
        ``admin_units`` for village names in the unassigned table (optional).

    Returns
    -------
    EvacuationResult
        Of all maximum assignments the one of least person-minutes walked. People with no
        shelter within service distance stay unassigned as ``no_shelter_within``; people with
        one but all such shelters full as ``shelters_full``.
    """
    t0 = time.perf_counter()
    s = settings or ShelterSettings()
    _check_net(net, s)
    cap = shelter_capacity(shelters, s)
    src = _sources(population, net, s, unit)
    ss = _snap(net, cap, s)
    limit = cap["service_min"].to_numpy(dtype=float)
    src_node = src["node"].to_numpy(dtype=np.int64)
    pk, pt, pm = _reach_pairs(net, ss.node, ss.offset_min, limit, src_node,
                              src["offset"].to_numpy(dtype=float))  # fmt: skip
    capacity = cap["capacity_used_persons"].to_numpy(dtype=np.int64)
    a = flow.assign(src["people"].to_numpy(), capacity, pt, pk, pm, engine=engine)
    sxy = shapely.get_coordinates(cap.geometry.to_crs(net.crs).values)
    f = a.flows
    names = {}
    if units is not None:
        names = dict(zip(units["adcode"].astype(str), units["name"].astype(str), strict=True))
    lines = gpd.GeoDataFrame(
        {
            "line_id": [f"L{n + 1:06d}" for n in range(len(f))],
            "source_id": [f"S{i + 1:06d}" for i in f["i"]],
            "adcode": src["adcode"].to_numpy()[f["i"]],
            "village_name": [names.get(c) for c in src["adcode"].to_numpy()[f["i"]]],
            "shelter_id": cap["shelter_id"].astype(str).to_numpy()[f["j"]],
            "shelter_name": cap["name"].astype(str).to_numpy()[f["j"]] if "name" in cap else None,
            "persons": f["amount"].to_numpy(dtype=np.int64),
            "walk_min": f["cost"].to_numpy(dtype=float),
        },
        geometry=shapely.linestrings(
            np.stack([src[["x", "y"]].to_numpy()[f["i"]], sxy[f["j"]]], axis=1)
        ) if len(f) else [],
        crs=net.crs,
    ).to_crs(STORAGE_CRS)  # fmt: skip
    load = cap.copy()
    load["capacity_persons"] = capacity
    load["class_gb51143"] = load["class_gb51143_used"]
    load["assigned_persons"] = a.load
    load["load_share"] = np.where(capacity > 0, a.load / np.maximum(capacity, 1), np.nan)
    load["spare_persons"] = capacity - a.load
    load["status"] = np.where(a.load == 0, "unused", np.where(a.load >= capacity, "full",
                                                                "partial"))  # fmt: skip
    pmin = np.bincount(f["j"], weights=f["amount"] * f["cost"], minlength=len(cap))
    load["mean_walk_min"] = np.where(a.load > 0, pmin / np.maximum(a.load, 1), np.nan)
    load["max_walk_min"] = f.groupby("j")["cost"].max().reindex(range(len(cap))).to_numpy()
    load = load.to_crs(STORAGE_CRS)
    un = src.assign(unassigned=a.unassigned, reachable=np.isin(np.arange(len(src)), pt))
    un = un[un["unassigned"] > 0]
    un["reason"] = np.where(un["reachable"], "shelters_full", "no_shelter_within")
    un["wx"], un["wy"] = un["x"] * un["unassigned"], un["y"] * un["unassigned"]
    g = un.groupby(["adcode", "reason"], sort=True)[["unassigned", "wx", "wy"]].sum()
    g = g.reset_index()
    unassigned = gpd.GeoDataFrame(
        {
            "unassigned_id": [f"U{n + 1:04d}" for n in range(len(g))],
            "adcode": g["adcode"].to_numpy(dtype=object),
            "name": [names.get(c) for c in g["adcode"]],
            "persons_unassigned": g["unassigned"].to_numpy(dtype=np.int64),
            "reason": g["reason"].to_numpy(dtype=object),
        },
        geometry=gpd.points_from_xy(g["wx"] / g["unassigned"], g["wy"] / g["unassigned"]),
        crs=net.crs,
    ).to_crs(STORAGE_CRS)
    total, placed = int(src["people"].sum()), int(a.load.sum())
    if total == 0 or placed == 0:
        raise ShelterError(_why_nobody_placed(total, len(np.unique(pt)), ss, cap, net, s))
    kpis = _evacuation_kpis(load, unassigned, total, placed, a.total_cost, s)
    return EvacuationResult(s, engine, unit, load, lines, unassigned, total, placed,
                            a.total_cost, time.perf_counter() - t0, kpis)  # fmt: skip


def _why_nobody_placed(
    total: int,
    reachable_sources: int,
    ss: Snapped,
    cap: gpd.GeoDataFrame,
    net: Network,
    s: ShelterSettings,
) -> str:
    """Explain an evacuation that placed nobody (instead of "0 % placed, nan minutes")."""
    if total == 0:
        return (
            f"人口图层没有人 / the population layer holds no people "
            f"(column {s.people!r} sums to 0): nothing to evacuate"
        )
    far = int(ss.too_far.sum())
    kept, dropped = net.n_nodes, int(net.dropped.get("nodes", 0))
    hints = []
    if far:
        hints.append(
            f"{far}/{len(cap)} 个避难场所距步行路网超过 {s.max_snap_m:g} m / shelters "
            f"farther than {s.max_snap_m:g} m from the walking network (wrong datum? "
            "GCJ-02 lists need --source-crs gcj02)"
        )
    if dropped > kept:
        hints.append(
            f"路网只保留了最大连通分量的 {kept} 个节点，丢弃 {dropped} 个 / the walking "
            f"network kept {kept} nodes of its largest component and dropped {dropped}: "
            "roads not split at junctions? (import OSM files as roads, they are split)"
        )
    if not hints:
        hints.append("检查避难场所容量与服务距离 / check shelter capacities and service distances")
    return (f"疏散无法计算：{total} 人中无人能在服务距离内到达有容量的避难场所 / evacuation "
            f"cannot be computed: none of {total} people reaches a shelter with capacity within "
            f"its service distance ({reachable_sources} population sources reach one at all); "
            + "; ".join(hints))  # fmt: skip


def _evacuation_kpis(
    load: gpd.GeoDataFrame,
    un: gpd.GeoDataFrame,
    total: int,
    placed: int,
    cost: float,
    s: ShelterSettings,
) -> list[Kpi]:
    by = un.groupby("reason")["persons_unassigned"].sum()
    full = int((load["status"] == "full").sum())
    src = f"min-cost max-flow (geo_mz.network.flow); {SRC_DIST}; walk {s.walk_speed_kmh:g} km/h"
    return [
        Kpi("疏散安置率", "People placed in a shelter", _pct(placed / total) if total else
            float("nan"), "%", "100", placed == total, src),
        Kpi("未安置人口", "People not placed", total - placed, "人", "0", placed == total),
        Kpi("服务距离内无避难场所人口", "Not placed: no shelter within service distance",
            int(by.get("no_shelter_within", 0)), "人"),
        Kpi("可达避难场所已满未安置人口", "Not placed: shelters within reach full",
            int(by.get("shelters_full", 0)), "人"),
        Kpi("满员避难场所", "Shelters full", f"{full}/{len(load)}"),
        Kpi("平均疏散步行时间", "Mean walk to the shelter",
            round(cost / placed, 1) if placed else float("nan"), "分钟"),
    ]  # fmt: skip


# ------------------------------------------------------------------------------------ outputs


__all__ = [
    "STAGES",
    "AdequacyResult",
    "EvacuationResult",
    "ShelterError",
    "ShelterSettings",
    "evacuate",
    "shelter_adequacy",
    "shelter_capacity",
]

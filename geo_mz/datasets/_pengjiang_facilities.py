"""Pengjiang sample, steps 6-9: population grid, facilities, boundary markers and place names.

Package-internal part of the generator :func:`geo_mz.datasets.pengjiang.build_pengjiang`, whose
module docstring describes the method step by step. Given the generated geography (a
:class:`~geo_mz.datasets._synth.DistrictGeo` filled in by
:mod:`geo_mz.datasets._pengjiang_geography`), :func:`population` builds the 100 m population
grid and its points with exact integer totals; :func:`elder_care`, :func:`shelters`,
:func:`relief_stores` and :func:`burial_sites` place the facilities at or near the seats;
:func:`markers` puts boundary markers on the real shared lines and :func:`place_names` the real
names at the seats. The totals (population, beds, shelter area and capacity) and the other local
choices of these steps are defined here. Each facility function returns :data:`Rows` (attribute
rows and geometries, EPSG:4547) and draws from the one ``numpy.random.Generator`` it is given.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import affine
import numpy as np
import shapely

from geo_mz.datasets import _synth as sy
from geo_mz.datasets._pengjiang_geography import DISTRICT_ADCODE, MEASURE_CRS
from geo_mz.datasets._synth import DistrictGeo, PopulationGrid

__all__ = [
    "BEDS_TOTAL",
    "CELL_M",
    "NURSING_SHARE_BY_KIND",
    "POP_60PLUS",
    "POP_TOTAL",
    "Rows",
    "burial_sites",
    "elder_care",
    "markers",
    "place_names",
    "population",
    "relief_stores",
    "shelters",
]

#: Residents aged 60+: the district plan's figure (DESIGN.md, "about 83,000").
POP_60PLUS = 83_000
#: Residents in total: local choice, gives a 60+ share of about 11 %.
POP_TOTAL = 750_000
#: Population cell size, m: local choice.
CELL_M = 100.0
#: Shelters, their effective area (m²) and capacity (persons): the district plan (DESIGN.md).
SHELTERS_N, SHELTER_AREA_M2, SHELTER_CAPACITY = 61, 110_000, 60_000
#: Shelters per town, in the order of pengjiang_streets.csv: local choice (≥1 each, 61 in all).
SHELTERS_PER_TOWN = (14, 4, 12, 13, 7, 11)
#: Recorded capacity of a shelter = its effective area over the m² per person its list used,
#: drawn per site from this range (local assumption; the plan's mean is 1.83 m²/person).
RECORDED_M2_PER_PERSON = (1.6, 2.2)
#: Indoor community sites (综合楼) whose list counts persons at a standing or temporary-stage
#: density instead (local assumption): the share of them, and their m² per person. Those under
#: GB 21734's 1.5 m² record more people than the standard allows; the analysis flags them.
HEADCOUNT_SHARE, HEADCOUNT_M2_PER_PERSON = 0.4, (0.9, 1.4)
#: Places (elders served) of the day-service kinds: local choice for the sample.
PLACES_BY_KIND = {
    "district_centre": 200,
    "town_centre": 120,
    "home_care_centre": 80,
    "day_care_centre": 40,
    "rural_happiness_home": 30,
    "meal_point": 0,
}

#: Residential elder-care beds in total: the district's stock as the brief states it ("about
#: 3,100"), an input; beds per 1,000 aged 60+ (37.3 with ``POP_60PLUS``) follow from it.
BEDS_TOTAL = 3_100
#: Nursing-type share (护理型床位) of each home's beds, drawn uniformly per home from its kind's
#: range: local assumption, unsourced. A 护理院 is a medical nursing institution, nearly all beds
#: nursing-type; private and public-private homes sit around half; a township 敬老院 houses
#: mostly self-reliant 特困 residents. The district's share is the bed-weighted sum of these
#: draws: it is computed, never set to the national ≥55 % target (STANDARDS.md §B).
NURSING_SHARE_BY_KIND = {
    "care_home": (0.85, 0.95),
    "nursing_home": (0.42, 0.58),
    "township_home": (0.30, 0.45),
}
#: Rural happiness homes (农村幸福院): local choice.
HAPPINESS_HOMES = 27


# --- 6. population ----------------------------------------------------------------------------


def population(
    geo: DistrictGeo, rng: np.random.Generator
) -> tuple[PopulationGrid, dict[str, list[Any]], list[Any]]:
    minx, miny, maxx, maxy = geo.district.bounds
    x0, y1 = np.floor(minx / CELL_M) * CELL_M, np.ceil(maxy / CELL_M) * CELL_M
    cx = x0 + (np.arange(int(np.ceil((maxx - x0) / CELL_M))) + 0.5) * CELL_M
    cy = y1 - (np.arange(int(np.ceil((y1 - miny) / CELL_M))) + 0.5) * CELL_M
    gx, gy = np.meshgrid(cx, cy)
    shapely.prepare(geo.district)
    shapely.prepare(geo.water_union)
    land = shapely.contains_xy(geo.district, gx, gy)
    land &= ~shapely.intersects_xy(geo.water_union, gx, gy)
    label = sy.label_cells(geo.vil_polys, cx, cy, land, geo.vil_seats)
    density = (
        40.0
        + 9000.0 * sy.gauss_kernel(gx, gy, geo.core, 2200.0)
        + 2500.0 * sy.gauss_kernel(gx, gy, geo.town_seats, 900.0)
        + 900.0 * sy.gauss_kernel(gx, gy, geo.vil_seats, 350.0)
    )
    density *= rng.lognormal(0.0, 0.35, gx.shape) * land
    total = sy.largest_remainder(density.ravel(), POP_TOTAL).reshape(gx.shape)
    urban = land & geo.vil_urban[np.maximum(label, 0)]
    share = np.clip(np.where(urban, 0.09, 0.16) + rng.normal(0.0, 0.015, gx.shape), 0.03, 0.4)
    aged = sy.largest_remainder((total * share).ravel(), POP_60PLUS, cap=total.ravel())
    aged = aged.reshape(gx.shape)
    grid = PopulationGrid(
        pop_total=total.astype(np.float32),
        pop_60plus=aged.astype(np.float32),
        transform=affine.Affine(CELL_M, 0.0, float(x0), 0.0, -CELL_M, float(y1)),
        crs=MEASURE_CRS,
    )
    rows, cols = np.nonzero(total > 0)
    out: dict[str, list[Any]] = {
        "cell_id": [f"P{r:04d}{c:04d}" for r, c in zip(rows, cols, strict=True)],
        "pop_total": total[rows, cols].astype(float).tolist(),
        "pop_60plus": aged[rows, cols].astype(float).tolist(),
        "cell_size_m": [CELL_M] * len(rows),
        "adcode": [geo.vil_codes[v] for v in label[rows, cols]],
    }
    return grid, out, list(shapely.points(gx[rows, cols], gy[rows, cols]))


# --- 7. facilities ----------------------------------------------------------------------------

Rows = tuple[list[dict[str, Any]], list[Any]]


def _finish(
    geo: DistrictGeo, rows: list[dict[str, Any]], xy: list[Any], rng: np.random.Generator
) -> Rows:
    """Set adcode (village at the point, unless given) and address of each row."""
    vil = geo.village_at(np.array(xy))
    for r, v in zip(rows, vil, strict=True):
        r.setdefault("adcode", geo.vil_codes[v])
        town = geo.town_names[geo.vil_town[v]]
        r["address"] = (
            f"江门市蓬江区{town}{sy.short_name(geo.vil_names[v])}{int(rng.integers(1, 200))}号"
        )
    return rows, list(shapely.points(np.array(xy)))


def elder_care(geo: DistrictGeo, rng: np.random.Generator) -> Rows:
    rows: list[dict[str, Any]] = []
    xy: list[np.ndarray] = []

    def add(kind: str, name: str, at: np.ndarray, op_type: str, beds: float = 0.0) -> None:
        rows.append({"kind": kind, "name": name, "operator_type": op_type, "beds": beds})
        xy.append(at)

    def at_village(v: int, rmin: float, rmax: float) -> np.ndarray:
        return sy.near(geo.vil_seats[v], rng, geo.town_land(int(geo.vil_town[v]), 30), rmin, rmax)

    core_t = geo.core_town()
    add("district_centre", "蓬江区养老服务中心",
        sy.near(geo.core, rng, geo.town_land(core_t, 50), 100, 600), "public")  # fmt: skip
    for t, tname in enumerate(geo.town_names):
        at = sy.near(geo.town_seats[t], rng, geo.town_land(t, 50), 50, 300)
        add("town_centre", f"{tname}综合养老服务中心", at, "public_private")
    rural = np.flatnonzero(~geo.vil_urban)
    for v in sorted(rng.choice(rural, HAPPINESS_HOMES, replace=False).tolist()):
        add("rural_happiness_home", f"{sy.short_name(geo.vil_names[v])}农村幸福院",
            at_village(v, 30, 200), "public")  # fmt: skip
    picks = rng.permutation(np.flatnonzero(geo.vil_urban))
    for kind, label, n in (
        ("home_care_centre", "居家养老服务中心", 28),
        ("day_care_centre", "日间照料中心", 16),
        ("meal_point", "长者饭堂", 12),
    ):
        for v in sorted(int(x) for x in picks[:n]):
            op = str(rng.choice(["public", "public_private"]))
            add(kind, f"{sy.short_name(geo.vil_names[v])}{label}", at_village(v, 30, 250), op)
        picks = np.roll(picks, n // 2 + 5)
    for t, tname in enumerate(geo.town_names):
        if tname.endswith("镇"):
            at = sy.near(geo.town_seats[t], rng, geo.town_land(t, 50), 400, 1500)
            add("township_home", f"{sy.specific_name(tname)}敬老院", at, "public",
                rng.uniform(60, 150))  # fmt: skip
    weights = np.where(geo.vil_urban, 3.0, 1.0)
    homes = rng.choice(len(geo.vil_codes), 12, replace=False, p=weights / weights.sum())
    for j, v in enumerate(sorted(homes.tolist())):
        kind = "care_home" if j % 6 == 2 else "nursing_home"
        label = "护理院" if kind == "care_home" else str(rng.choice(["颐养院", "养老院", "颐康园"]))
        op = str(rng.choice(["private", "public_private"]))
        add(kind, f"{sy.specific_name(geo.vil_names[v])}{label}", at_village(v, 200, 800), op,
            rng.uniform(100, 450))  # fmt: skip
    # Beds: exactly BEDS_TOTAL (the stock, an input) over the residential kinds, in proportion
    # to the sizes drawn above. Nursing-type beds: each home's beds times its own draw from
    # NURSING_SHARE_BY_KIND, rounded; their total (and so the district's share) is whatever the
    # draws give, with no rescaling toward a target.
    res = [i for i, r in enumerate(rows) if r["beds"] > 0]
    beds = sy.largest_remainder(np.array([rows[i]["beds"] for i in res]), BEDS_TOTAL)
    home_share = np.array([rng.uniform(*NURSING_SHARE_BY_KIND[rows[i]["kind"]]) for i in res])
    nursing = np.minimum(np.rint(beds * home_share).astype(np.int64), beds)
    for r in rows:
        r["beds"], r["nursing_beds"] = 0, 0
    for i, b, n in zip(res, beds, nursing, strict=True):
        rows[i]["beds"], rows[i]["nursing_beds"] = int(b), int(n)
    day = [i for i, r in enumerate(rows) if r["kind"] in ("home_care_centre", "day_care_centre")]
    planned = set(rng.choice(day, 2, replace=False).tolist())
    vil = geo.village_at(np.array(xy))
    for i, r in enumerate(rows):
        r["facility_id"] = f"EC{i + 1:03d}"
        r["status"] = "planned" if i in planned else "operating"
        r["opened_year"] = None if i in planned else int(rng.integers(1998, 2025))
        if r["operator_type"] == "public":
            town = geo.town_names[geo.vil_town[vil[i]]]
            r["operator"] = "蓬江区民政局" if r["kind"] == "district_centre" else f"{town}人民政府"
        # Places for day services (residential homes: their beds). Fixed per kind, no draws, so
        # the other layers keep their random streams (local choice).
        r["places"] = PLACES_BY_KIND.get(r["kind"], r.get("beds") or 0)
    return _finish(geo, rows, xy, rng)


def shelters(geo: DistrictGeo, rng: np.random.Generator) -> Rows:
    # Areas: 1 large park (I), 3 medium and 14 school/park sites (II), the rest small community
    # sites (III). With 61 shelters and 110,000 m² the mean is 1,803 m², so most must be under
    # GB 21734's 2,000 m² (STANDARDS.md §A; they raise the catalog's warning).
    big = [rng.uniform(11_000, 13_000), *rng.uniform(5_000, 8_000, 3)]
    big = [round(a) for a in [*big, *rng.uniform(2_100, 3_800, 14)]]
    small = sy.largest_remainder(
        rng.uniform(600, 1_900, SHELTERS_N - len(big)), SHELTER_AREA_M2 - sum(big)
    )
    areas = np.array(big + small.tolist(), dtype=np.int64)[rng.permutation(SHELTERS_N)]
    towns = [t for t, n in enumerate(SHELTERS_PER_TOWN) for _ in range(n)]
    used: set[tuple[int, str]] = set()
    rows: list[dict[str, Any]] = []
    xy: list[np.ndarray] = []
    for k, (t, area) in enumerate(zip(towns, areas, strict=True)):
        if area >= 10_000:
            cls, gb, site = "I", "fixed_mid", "park"
        elif area >= 2_000:
            cls, gb = "II", "fixed_short"
            site = str(rng.choice(["school", "park", "stadium"], p=[0.6, 0.25, 0.15]))
        else:
            cls, gb = "III", "emergency"
            site = str(rng.choice(["community_centre", "school", "other"], p=[0.6, 0.3, 0.1]))
        suffix = {"I": {"park": "公园"}, "II": {"school": "中学", "park": "文化广场",
                  "stadium": "体育馆"}, "III": {"community_centre": "综合楼", "school": "小学",
                  "other": "休闲广场"}}[cls][site]  # fmt: skip
        members = [int(v) for v in np.flatnonzero(geo.vil_town == t)]
        v = int(rng.choice([v for v in members if (v, suffix) not in used] or members))
        used.add((v, suffix))
        xy.append(sy.near(geo.vil_seats[v], rng, geo.town_land(t, 30), 80, 400))
        rows.append({
            "shelter_id": f"SH{k + 1:03d}",
            "name": f"{sy.short_name(geo.vil_names[v])}{suffix}应急避难场所",
            "shelter_class": cls,
            "class_gb51143": gb,
            "site_type": site,
            "effective_area_m2": float(area),
            "occupancy_persons": 0,
            "is_open": False,
        })  # fmt: skip
    # Recorded capacity: each site's area over the m² per person its list used, scaled so the 61
    # sum to the plan's SHELTER_CAPACITY. Its draws come from a child stream (Generator.spawn,
    # which leaves the parent's stream untouched), so the other layers keep their draws.
    sub = rng.spawn(1)[0]
    m2pp = sub.uniform(*RECORDED_M2_PER_PERSON, SHELTERS_N)
    indoor = np.array([r["site_type"] == "community_centre" for r in rows])
    head = indoor & (sub.random(SHELTERS_N) < HEADCOUNT_SHARE)
    m2pp[head] = sub.uniform(*HEADCOUNT_M2_PER_PERSON, int(head.sum()))
    capacity = sy.largest_remainder(areas / m2pp, SHELTER_CAPACITY)
    for r, c in zip(rows, capacity, strict=True):
        r["capacity_persons"] = int(c)
    return _finish(geo, rows, xy, rng)


def relief_stores(geo: DistrictGeo, rng: np.random.Generator) -> Rows:
    xy = [sy.near(geo.core, rng, geo.town_land(geo.core_town(), 50), 800, 2000)]
    # County store: floor area within 建标121-2009's 630-800 m² (STANDARDS.md §C, SECONDARY);
    # stock for ~6,000 displaced persons (county norm 0.5-0.7万); a light truck carries ~250
    # kits (local choice).
    rows: list[dict[str, Any]] = [{
        "store_id": "RS01", "name": "蓬江区救灾物资储备仓库", "level": "county",
        "floor_area_m2": 720.0, "stock_kits": 6000, "vehicles_n": 4,
        "vehicle_capacity_kits": 250, "adcode": DISTRICT_ADCODE,
    }]  # fmt: skip
    for t, tname in enumerate(geo.town_names):
        xy.append(sy.near(geo.town_seats[t], rng, geo.town_land(t, 50), 150, 600))
        rows.append({  # town stores: sizes, stock and vans are local choices
            "store_id": f"RS{t + 2:02d}", "name": f"{tname}救灾物资储备点", "level": "township",
            "floor_area_m2": float(round(rng.uniform(120, 300))),
            "stock_kits": int(rng.integers(4, 9)) * 100, "vehicles_n": int(rng.integers(1, 3)),
            "vehicle_capacity_kits": 120, "adcode": geo.town_codes[t],
        })  # fmt: skip
    return _finish(geo, rows, xy, rng)


def burial_sites(
    geo: DistrictGeo, roads: list[Any], classes: list[str], rng: np.random.Generator
) -> Rows:
    # Exclusions (STANDARDS.md §D, Shandong example and weak sources; local choice here):
    # ≥2 km from water, ≥500 m from village seats and primary roads, ≥8 km from the core.
    hilly = [geo.town_codes.index("440703103"), geo.town_codes.index("440703101")]
    region = shapely.union_all([geo.town_land(t, 2000) for t in hilly])
    region = shapely.difference(region, shapely.Point(geo.core).buffer(8000))
    region = shapely.difference(region, shapely.MultiPoint(geo.vil_seats).buffer(500))
    primary = shapely.union_all([g for g, c in zip(roads, classes, strict=True) if c == "primary"])
    region = shapely.difference(region, primary.buffer(500))
    road_tree = shapely.STRtree(roads)
    kinds = ["tree_burial_site", "tree_burial_site", "memorial_hall", "tree_burial_site",
             "memorial_hall"]  # fmt: skip
    polys: list[Any] = []
    centres: list[np.ndarray] = []
    for c in sy.sample_points(region, 2000, rng):
        if len(polys) == len(kinds):
            break
        if any(np.hypot(*(c - o)) < 1500 for o in centres):
            continue
        if kinds[len(polys)] == "tree_burial_site":
            poly = sy.blob(c, rng.uniform(50, 90), rng.uniform(35, 60), rng.uniform(0, np.pi), rng)
        else:
            poly = shapely.affinity.rotate(shapely.box(c[0] - 20, c[1] - 15, c[0] + 20, c[1] + 15),
                                           rng.uniform(0, 90))  # fmt: skip
        if poly.within(region) and not len(road_tree.query(poly.buffer(10), "intersects")):
            polys.append(poly)
            centres.append(c)
    if len(polys) < len(kinds):
        raise RuntimeError(f"only {len(polys)} burial sites fit the exclusion rules")
    rows: list[dict[str, Any]] = []
    for k, (kind, poly, v) in enumerate(
        zip(kinds, polys, geo.village_at(np.array(centres)), strict=True)
    ):
        area, planned = round(poly.area, 1), k == 3
        if kind == "tree_burial_site":  # 0.3 m² plots (≤0.5, §D), ~0.4 plots/m²: local choice
            name, btype, plot = f"{sy.specific_name(geo.vil_names[v])}树葬园", "tree", 0.3
            cap = int(area * 0.4)
        else:  # memorial hall with niches (格位存放): local choice
            town = geo.town_names[geo.vil_town[v]]
            name, btype, plot = f"{sy.specific_name(town)}追思堂", "niche", 0.1
            cap = int(rng.integers(20, 40)) * 100
        rows.append({
            "site_id": f"BS{k + 1:02d}", "name": name, "facility_type": kind,
            "burial_type": btype, "area_m2": area, "plot_area_m2": plot, "capacity_plots": cap,
            "used_plots": 0 if planned else int(cap * rng.uniform(0.15, 0.7)),
            "burials_per_year": 0 if planned else int(rng.integers(60, 300)),
            "hard_structure": False, "status": "planned" if planned else "operating",
            "adcode": geo.vil_codes[v],
        })  # fmt: skip
    return rows, polys


# --- 8-9. markers and place names -------------------------------------------------------------


def markers(geo: DistrictGeo, rng: np.random.Generator) -> Rows:
    rows: list[dict[str, Any]] = []
    pts: list[Any] = []
    statuses = ["intact", "damaged", "missing", "displaced", "obscured"]
    for _, nb in geo.neighbours.iterrows():
        code = str(nb["district_adcode"])
        parts = sy.ordered_parts(shapely.intersection(geo.district.boundary, nb.geometry))
        # Line number: the county segments (digits 5-6) of both adcodes, smaller first; local
        # choice modelled on the recalled provincial rule (STANDARDS.md §E).
        line_no = DISTRICT_ADCODE[4:] + code[4:]
        seq = 0
        for part in parts:
            n = max(1, round(part.length / 1750.0))  # ~1.75 km apart: local choice
            for k in range(n):
                d = np.clip(part.length * (k + 0.5) / n + rng.uniform(-150, 150), 0, part.length)
                seq += 1
                pts.append(part.interpolate(float(d)))
                # Last joint inspection (every 5 years, §E): a day in 2021; local choice.
                day = dt.date(2021, 3, 1) + dt.timedelta(days=int(rng.integers(0, 240)))
                rows.append({
                    "marker_id": f"JZ-{line_no}-{seq:03d}", "number": f"{line_no}{seq:03d}Q",
                    "line_id": f"{DISTRICT_ADCODE}-{code}",
                    "line_name": f"蓬江区—{nb['district_name']}",
                    "side_a_adcode": DISTRICT_ADCODE, "side_b_adcode": code,
                    "marker_type": "single",
                    "status": str(rng.choice(statuses, p=[0.84, 0.06, 0.04, 0.03, 0.03])),
                    "emplaced_year": int(rng.integers(2002, 2006)), "last_inspected": day,
                })  # fmt: skip
    return rows, pts


def place_names(geo: DistrictGeo) -> Rows:
    names = geo.town_names + geo.vil_names
    codes = geo.town_codes + geo.vil_codes
    cats = ["admin_division"] * len(geo.town_names) + ["village_seat"] * len(geo.vil_names)
    rows = [
        {"name_id": f"PN{c}", "name": n, "pinyin": sy.place_pinyin(n), "category": k,
         "adcode": c, "status": "standard"}
        for n, c, k in zip(names, codes, cats, strict=True)
    ]  # fmt: skip
    return rows, list(shapely.points(np.vstack([geo.town_seats, geo.vil_seats])))

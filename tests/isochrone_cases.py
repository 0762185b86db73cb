"""Shared cases of the isochrone tests: coordinates, hand-built roads, the plain reference."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

from geo_mz.network._isochrone_plane import reached_pieces
from geo_mz.network.graph import WALK_SPEED_KMH, Network
from geo_mz.network.isochrone import QUAD_SEGS, points_in_isochrones

X0, Y0 = 500_000.0, 3_400_000.0
CRS = "EPSG:4547"
M_PER_MIN = WALK_SPEED_KMH * 1000 / 60  # 66.7 m/min: 15 min = 1,000 m
BUFFER = 50.0
CHORD = 0.25  # round caps are chords: at most 50 m * (1 - cos(pi/32)) = 0.24 m inside


def xy(x: float, y: float) -> tuple[float, float]:
    return (X0 + x, Y0 + y)


def roads(*rows) -> gpd.GeoDataFrame:
    recs = [
        {
            "road_id": rid,
            "road_class": cls,
            "oneway": oneway,
            "geometry": shapely.LineString([xy(*c) for c in coords]),
        }
        for rid, cls, coords, oneway in rows
    ]
    return gpd.GeoDataFrame(recs, geometry="geometry", crs=CRS)


def node_at(net: Network, p: tuple[float, float]) -> int:
    d = np.hypot(*(net.node_xy - np.array(xy(*p))).T)
    assert d.min() < 1e-6
    return int(d.argmin())


def pts(*coords: tuple[float, float]) -> gpd.GeoSeries:
    return gpd.GeoSeries([shapely.Point(xy(*c)) for c in coords], crs=CRS)


def inside(iso: gpd.GeoDataFrame, *coords: tuple[float, float], k: float = 15.0) -> list[bool]:
    return points_in_isochrones(pts(*coords), iso, k).tolist()


def reference(net: Network, t: np.ndarray, k: float, group: np.ndarray | None = None):
    """The slow, obvious polygon: every reached piece and node buffered, then union_all."""
    group = np.zeros(net.n_nodes, np.int64) if group is None else group
    pc = reached_pieces(net, t, k, group)
    reached = np.flatnonzero(t <= k)  # a node is reached even with no time left to walk on
    geoms = np.concatenate([pc["geometry"], shapely.points(net.node_xy[reached])])
    labels = np.concatenate([pc["group"], group[reached]])
    return {
        int(g): shapely.union_all(shapely.buffer(geoms[labels == g], BUFFER, quad_segs=QUAD_SEGS))
        for g in np.unique(labels)
    }


def assert_same_area(got: shapely.Geometry, ref: shapely.Geometry) -> None:
    """Equal up to the chord approximation of round caps along the boundary."""
    sym = shapely.symmetric_difference(got, ref).area
    assert sym <= CHORD * ref.length, (sym, ref.length, ref.area)

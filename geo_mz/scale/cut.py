"""The cut of a part: the area read around it, and each point's room to the cut's edge.

A part reads the roads, centres and stores within its cut (the convex hull of its area,
buffered) and proves each answer by the point's *room*, its distance to the cut's edge
(:mod:`geo_mz.scale.partition`). The room is taken from the hull, not from the buffered polygon:
a point ``p`` inside a convex hull ``K`` lies at least ``dist(p, ∂K) + r`` from the edge of
GEOS's buffer of ``K`` by ``b`` with ``n`` segments per quarter circle, and a point outside
``K`` at least ``r − dist(p, K)``, with ``r = b·cos(3π/8n)``: every vertex of the buffer's arcs
lies on the true circle of radius ``b`` and GEOS rounds an arc's number of segments to the
nearest whole one, so a chord spans less than 1.5 quantum ``π/2n`` and stays at least ``r``
from ``K``.
For a convex polygon the distance from an inside point to its edge is the smallest distance to
the edges' lines, so the room of thousands of points is a few numpy operations on the hull's
few edges, not a GEOS distance to the buffer's hundreds. The bound is at most 1.1 % of ``b``
short of the exact distance (22 m of 2 km): an answer proven by it is proven by the exact
distance too, and it never says more room than there is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import geopandas as gpd
import numpy as np
import shapely

from geo_mz.core.projection import STORAGE_CRS, geometries_to_crs
from geo_mz.network.graph import Mode, mode_speeds

SLACK_M = 2.0
"""Metres added to every proof radius: node merging (0.5 m) and float rounding."""
QUAD_SEGS = 8
"""Segments per quarter circle of the cut's buffer (shapely's default)."""
_CHUNK = 2_000_000
"""Point-edge pairs per numpy step of :func:`hull_depth_m` (bounded memory for large parts)."""


@dataclass
class Cut:
    """The area read for a part: the convex hull of its core, buffered, in the measuring CRS."""

    crs: str
    polygon: shapely.Geometry
    buffer_m: float
    hull: shapely.Geometry | None = field(default=None, repr=False)
    """The convex hull the cut buffers (``make_cut``), for :meth:`room_m`; None: use ``polygon``."""
    _inside: dict[tuple[float, ...], bool] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """:meth:`contains_extent` per extent (a part asks it of each round's cut more than once)."""

    @cached_property
    def lonlat_bbox(self) -> tuple[float, float, float, float]:
        """The bounding box of the cut in EPSG:4490 (a superset of the cut, for reading).

        The box of :attr:`lonlat_mask`, which holds the cut: a part reads by the mask and
        tests by the box, and one reprojection serves both.
        """
        return tuple(float(v) for v in shapely.bounds(self.lonlat_mask))

    @cached_property
    def lonlat_mask(self) -> shapely.Geometry:
        """A lon/lat polygon holding the cut (for reading its rows, not for the proof).

        The cut's hull buffered 1 m further, its edges cut to 500 m and reprojected: the
        image of a 500 m grid segment bends from its chord by well under a millimetre, so
        every point of the cut lies inside. Without a hull: the polygon buffered 1 m.
        """
        base = self.hull if self.hull is not None else self.polygon
        wider = shapely.buffer(
            base, self.buffer_m + 1.0 if self.hull is not None else 1.0, quad_segs=QUAD_SEGS
        )
        poly = np.array([shapely.segmentize(wider, 500.0)], dtype=object)
        return geometries_to_crs(poly, self.crs, STORAGE_CRS)[0]

    def contains_extent(self, extent: tuple[float, float, float, float]) -> bool:
        """Whether the lon/lat box ``extent`` lies wholly inside the cut (kept per extent)."""
        key = tuple(float(v) for v in extent)
        hit = self._inside.get(key)
        if hit is None:
            hit = self._inside[key] = self._contains_extent(key)
        return hit

    def _contains_extent(self, extent: tuple[float, float, float, float]) -> bool:
        # Reaching 1 km (0.01°) beyond the cut's lon/lat box: not inside (the cut's 500 m edges
        # bulge from that box by far less), said without reprojecting ~2,000 vertices.
        x0, y0, x1, y1 = self.lonlat_bbox
        if min(extent[0] - x0, extent[1] - y0, x1 - extent[2], y1 - extent[3]) < -0.01:
            return False
        box = np.array([shapely.segmentize(shapely.box(*extent), 0.01)], dtype=object)
        return bool(self.polygon.contains(geometries_to_crs(box, STORAGE_CRS, self.crs)[0]))

    def with_buffer(self, buffer_m: float) -> Cut:
        """Return the cut of the same hull with another buffer (no reprojection)."""
        if self.hull is None:
            raise ValueError("a cut without its hull cannot be buffered again")
        poly = shapely.buffer(self.hull, buffer_m, quad_segs=QUAD_SEGS)
        return Cut(self.crs, poly, float(buffer_m), self.hull)

    def room_m(self, xy: np.ndarray) -> np.ndarray:
        """Distance from each point to the edge of the cut, or less (0 outside it).

        A lower bound within 1.1 % of the buffer (see the module docstring) when the cut
        knows its hull, else the exact distance to the polygon's edge.
        """
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        ring = _hull_ring(self.hull)
        if ring is None:
            d = shapely.distance(shapely.boundary(self.polygon), shapely.points(xy))
            return np.where(shapely.contains_xy(self.polygon, xy[:, 0], xy[:, 1]), d, 0.0)
        b = self.buffer_m * np.cos(3 * np.pi / (8 * QUAD_SEGS))
        inside_m = hull_depth_m(ring, xy)
        room = inside_m + b
        # Outside the hull: room b less the distance to it. A point at least b outside an
        # edge's line is at least b from the hull (convex): no room, no GEOS distance (most of
        # a province's centres and stores, asked about by every part).
        out = (inside_m < 0) & (inside_m > -b)
        if out.any():
            away = shapely.distance(self.hull, shapely.points(xy[out]))
            room[out] = b - away
        return np.maximum(room, 0.0)


def _hull_ring(hull: shapely.Geometry | None) -> np.ndarray | None:
    """Return the hull's exterior, counter-clockwise and closed; None when not a polygon."""
    if hull is None or shapely.get_type_id(hull) != 3 or hull.is_empty:
        return None
    ring = shapely.get_coordinates(shapely.orient_polygons(hull).exterior)
    return ring if len(ring) >= 4 else None


def hull_depth_m(ring: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Return each point's depth inside a convex ring: its distance to the nearest edge line.

    Negative outside the ring (then only the sign is meaningful).

    Parameters
    ----------
    ring
        ``(n + 1, 2)`` vertices of a convex polygon, counter-clockwise, first = last.
    xy
        ``(m, 2)`` points.

    Returns
    -------
    numpy.ndarray
        ``(m,)`` distances in the ring's units.
    """
    a, b = ring[:-1], ring[1:]
    edge = b - a
    length = np.hypot(edge[:, 0], edge[:, 1])
    keep = length > 0
    # Left of a counter-clockwise edge is inside: the signed distance to an edge's line is the
    # point's product with the edge's inward unit normal, less the edge's own; one matrix
    # product for all edges. Coordinates are taken from the first vertex so the products stay
    # small (no cancellation of ~10⁶ m grid values).
    origin = a[0] if len(a) else np.zeros(2)
    a, edge, length = a[keep] - origin, edge[keep], length[keep]
    normal = np.stack([-edge[:, 1], edge[:, 0]]) / length  # (2, k)
    offset = (a * normal.T).sum(axis=1)
    out = np.empty(len(xy))
    step = max(1, _CHUNK // max(len(a), 1))
    for i in range(0, len(xy), step):
        p = np.asarray(xy[i : i + step], dtype=float) - origin
        out[i : i + step] = (p @ normal - offset).min(axis=1)
    return out


def make_cut(core: shapely.Geometry, crs: str, buffer_m: float) -> Cut:
    """Return the cut of a part: its core (EPSG:4490) as a convex hull in ``crs``, buffered."""
    hull = geometries_to_crs(np.array([core], dtype=object), STORAGE_CRS, crs)[0].convex_hull
    poly = shapely.buffer(hull, buffer_m, quad_segs=QUAD_SEGS)
    return Cut(crs, poly, float(buffer_m), hull)


class RoadlessCutError(Exception):
    """A cut holds no road the mode can use, and the roads layer reaches beyond it: grow it."""


def need_roads(
    roads: gpd.GeoDataFrame,
    cut: Cut,
    extent: tuple[float, float, float, float],
    *,
    mode: Mode = "walk",
    drive_speeds_kmh: Mapping[str, float | None] | None = None,
) -> None:
    """Raise ``RoadlessCutError`` if a cut holds no usable road short of the layer's extent.

    A part in roadless country (hills, water, a town the roads file does not reach) gets no
    network from its first cut, while the whole run's network lies further out: the part grows
    its cut until it holds roads, and its answers stay exact. A cut that holds the layer's
    whole extent and still no usable road is the whole run's error too, which
    ``network_from_roads`` then raises as it would for the whole area.

    Parameters
    ----------
    roads
        The roads read within the cut (with ``road_class``).
    cut
        The cut.
    extent
        Lon/lat extent of the whole roads layer.
    mode
        ``"walk"`` or ``"drive"``.
    drive_speeds_kmh
        The drive speeds per class (a class without one is not driven), for ``"drive"``.
    """
    if cut.contains_extent(extent) or "road_class" not in roads:
        return
    classes = roads["road_class"].to_numpy(dtype=object)
    _, usable = mode_speeds(mode, classes, None, 1.0, drive_speeds_kmh, 1.0)
    if not usable.any():
        raise RoadlessCutError(f"no road for mode {mode!r} within a {cut.buffer_m:.0f} m cut")

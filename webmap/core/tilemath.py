"""Web-Mercator tile arithmetic (XYZ scheme, 256 px tiles) on lon/lat, without dependencies.

Tile ``z/x/y``: ``x`` counts columns east from 180° W, ``y`` rows south from the top
(85.0511° N), ``2**z`` of each at zoom ``z``; this is the scheme of OpenStreetMap and Leaflet.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

TILE_PX = 256
"""Tile size in pixels the simplification tolerance and buffer are measured against."""
MAX_LAT = math.degrees(math.atan(math.sinh(math.pi)))
"""Latitude of the top edge of tile 0/0/0 (85.0511...)."""
MAX_ZOOM = 22
"""Highest zoom served."""

BBox = tuple[float, float, float, float]


def tile_bounds(z: int, x: int, y: int) -> BBox:
    """Return the lon/lat box ``(west, south, east, north)`` of tile ``z/x/y``."""
    n = 2**z
    if not (0 <= z <= MAX_ZOOM and 0 <= x < n and 0 <= y < n):
        raise ValueError(f"no tile {z}/{x}/{y}")
    west = x / n * 360.0 - 180.0
    east = (x + 1) / n * 360.0 - 180.0
    north = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / n))))
    south = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (y + 1) / n))))
    return (west, south, east, north)


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """Return the ``(x, y)`` of the tile at zoom ``z`` holding a point (clamped to the grid)."""
    n = 2**z
    lat = max(-MAX_LAT, min(MAX_LAT, lat))
    x = math.floor((lon + 180.0) / 360.0 * n)
    rad = math.radians(lat)
    y = math.floor((1 - math.asinh(math.tan(rad)) / math.pi) / 2 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


def tiles_for_bbox(bbox: BBox, z: int) -> Iterator[tuple[int, int]]:
    """Yield the ``(x, y)`` of every tile at zoom ``z`` the box touches (edges included)."""
    west, south, east, north = bbox
    x0, y0 = tile_of(west, north, z)
    x1, y1 = tile_of(east, south, z)
    for x in range(x0, x1 + 1):
        for y in range(y0, y1 + 1):
            yield x, y


def pixel_deg(z: int) -> float:
    """Width of one pixel of a 256 px tile at zoom ``z``, in degrees of longitude."""
    return 360.0 / 2**z / TILE_PX


def simplify_tolerance(z: int) -> float:
    """Simplification tolerance at zoom ``z``: half a pixel, in degrees."""
    return pixel_deg(z) / 2


def buffer_deg(z: int, px: float = 4.0) -> float:
    """Return the margin added around a tile before clipping (``px`` pixels), in degrees."""
    return pixel_deg(z) * px


def expand(bbox: BBox, d: float) -> BBox:
    """Return the box grown by ``d`` on every side."""
    return (bbox[0] - d, bbox[1] - d, bbox[2] + d, bbox[3] + d)


def intersects(a: BBox, b: BBox) -> bool:
    """Whether two boxes share at least a point."""
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def _positions(coords: Any) -> Iterator[tuple[float, float]]:
    if isinstance(coords, (list, tuple)) and coords and isinstance(coords[0], (int, float)):
        yield float(coords[0]), float(coords[1])
    elif isinstance(coords, (list, tuple)):
        for c in coords:
            yield from _positions(c)


def geojson_bbox(geometry: Mapping[str, Any] | None) -> list[float] | None:
    """Return ``[west, south, east, north]`` of a GeoJSON geometry, or None when empty."""
    if not geometry:
        return None
    if geometry.get("type") == "GeometryCollection":
        boxes = [b for g in geometry.get("geometries", []) if (b := geojson_bbox(g))]
        if not boxes:
            return None
        return [min(b[0] for b in boxes), min(b[1] for b in boxes),
                max(b[2] for b in boxes), max(b[3] for b in boxes)]  # fmt: skip
    pts = list(_positions(geometry.get("coordinates")))
    if not pts:
        return None
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return [min(xs), min(ys), max(xs), max(ys)]


def edit_bboxes(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> list[list[float]]:
    """Boxes of an edited feature's old and new geometry (GeoJSON features), for the event.

    A map or a tile cache drops exactly the tiles these boxes touch.
    """
    out: list[list[float]] = []
    for feat in (before, after):
        box = geojson_bbox(feat.get("geometry")) if feat else None
        if box is not None and box not in out:
            out.append(box)
    return out


__all__ = [
    "MAX_ZOOM",
    "TILE_PX",
    "buffer_deg",
    "edit_bboxes",
    "expand",
    "geojson_bbox",
    "intersects",
    "pixel_deg",
    "simplify_tolerance",
    "tile_bounds",
    "tile_of",
    "tiles_for_bbox",
]

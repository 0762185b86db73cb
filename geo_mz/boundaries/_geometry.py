"""Geometry helpers shared by the unit preparation, the coverage QA and the repair.

Package-internal: the polygon parts of a geometry, the length of border a piece shares with a
unit and the units bordering a piece (longest shared border first), the union of a coverage,
and whether the installed shapely has a given (coverage) function; used by
:mod:`geo_mz.boundaries.units`, :mod:`geo_mz.boundaries.topology` and
:mod:`geo_mz.boundaries.coverage_repair`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely

__all__ = [
    "polygonal",
    "polygons",
    "shapely_has",
    "shared_length",
    "units_around",
    "units_union",
]


def shapely_has(name: str) -> bool:
    return hasattr(shapely, name)


def polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return shapely.Polygon()
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def polygons(geom: shapely.Geometry, min_area: float) -> list[shapely.Geometry]:
    return [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and p.area > min_area]


def shared_length(piece: shapely.Geometry, unit: shapely.Geometry, tol: float) -> float:
    """Length of ``piece``'s border that runs along ``unit``'s border (within ``tol``)."""
    box = shapely.buffer(piece, tol * 10).bounds
    near = shapely.clip_by_rect(shapely.boundary(unit), *box)
    if near.is_empty:
        return 0.0
    return float(shapely.intersection(shapely.boundary(piece), shapely.buffer(near, tol)).length)


def units_around(
    piece: shapely.Geometry,
    geoms: np.ndarray,
    tree: shapely.STRtree,
    tol: float,
    candidates: Sequence[int] | None = None,
) -> list[int]:
    """Units bordering ``piece``, longest shared border first."""
    idx = (
        list(candidates)
        if candidates is not None
        else [int(i) for i in tree.query(piece, predicate="dwithin", distance=tol)]
    )
    lens = [(shared_length(piece, geoms[i], tol), i) for i in idx]
    return [i for _, i in sorted(lens, key=lambda t: (-t[0], t[1]))]


def units_union(geoms: np.ndarray, coverage_valid: bool | None) -> shapely.Geometry:
    if coverage_valid:
        return shapely.coverage_union_all(geoms)
    return shapely.union_all(geoms)

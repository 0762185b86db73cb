"""Which units enclose each piece of the plane, counted from the raw rings before any repair.

``make_valid`` and ``buffer(0)`` turn an invalid polygon into a valid one by a rule of their
own, and each rule drops some piece a self-overlapping ring encloses: ``buffer(0)`` the lobes
that wind the wrong way, ``method="linework"`` the pieces wound twice, ``method="structure"``
the part of a hole that sticks out of its shell. When such a piece lies in a neighbour, the
overlap it makes disappears with it. This module counts from the rings as given instead:

1. the rings of a unit (shells and holes of every part) are noded together and polygonized
   into *cells*, the pieces of the plane no ring crosses;
2. for each cell and each ring, the winding number ``w`` and the crossing count of a ray from
   a point inside the cell (:func:`winding_numbers`);
3. a cell **belongs to the unit** by the non-zero rule (shells with ``w ≠ 0`` outnumber holes
   with ``w ≠ 0``) or by the even-odd rule (odd crossings over all the unit's rings); it is a
   **fold** of the unit where the two rules disagree, where it is wound twice (``|w| ≥ 2``, or
   two parts/shells of the unit cover it) or where a ring winds against its own orientation
   (the inverted lobe of a ring that crosses itself).

:func:`unit_cells` does this for one unit and :func:`raw_region` returns the region that belongs
to it and its folded pieces; the topology QA (:func:`geo_mz.boundaries.qa`) then overlays the
raw regions of neighbours, which counts exactly the cells of all units' rings noded together
(every such cell is inside one cell of each unit). :func:`linework_cells` does the joint count
directly, for a small set of units or as a cross-check. A valid polygon's raw region is the
polygon itself (both rules agree and nothing folds), so valid units skip all this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.boundaries._geometry import polygonal

__all__ = [
    "CellCount",
    "count_points",
    "fold_destinations",
    "linework_cells",
    "raw_region",
    "unit_cells",
    "winding_numbers",
]

# Points × segments per block of the winding computation: bounds memory at ~100 MB.
_BLOCK = 4_000_000


def winding_numbers(ring: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Winding number of a closed ring around each point (0 outside, ±1 inside, ±2 wound twice).

    Parameters
    ----------
    ring
        Coordinates ``(n, 2)`` of a closed ring (first = last), as given.
    x, y
        The points; none should lie on the ring (points inside cells never do).

    Returns
    -------
    numpy.ndarray
        Integer winding numbers, positive for counter-clockwise turns. The number of crossings
        of a ray from the point has the parity of the winding number, so the even-odd rule is
        ``w % 2 == 1``.
    """
    xy = np.asarray(ring, dtype=float)[:, :2]
    x0, y0, x1, y1 = xy[:-1, 0], xy[:-1, 1], xy[1:, 0], xy[1:, 1]
    out = np.zeros(len(x), dtype=np.int64)
    step = max(1, _BLOCK // max(1, len(x0)))
    for s in range(0, len(x), step):
        px, py = x[s : s + step, None], y[s : s + step, None]
        left = (x1 - x0) * (py - y0) - (px - x0) * (y1 - y0)
        up = (y0 <= py) & (y1 > py) & (left > 0)
        down = (y0 > py) & (y1 <= py) & (left < 0)
        out[s : s + step] = up.sum(axis=1) - down.sum(axis=1)
    return out


def _rings(geom: shapely.Geometry) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Every ring of every part: coordinates, is-shell flag, part number."""
    rings, shell, part = [], [], []
    for k, p in enumerate(shapely.get_parts(geom)):
        if p.geom_type != "Polygon" or p.is_empty:
            continue
        for j, r in enumerate(shapely.get_rings(p)):
            c = shapely.get_coordinates(r)
            if len(c) >= 4:
                rings.append(c)
                shell.append(j == 0)
                part.append(k)
    return rings, np.array(shell, dtype=bool), np.array(part, dtype=int)


def _signed_area(c: np.ndarray) -> float:
    return 0.5 * float(np.dot(c[:-1, 0], c[1:, 1]) - np.dot(c[1:, 0], c[:-1, 1]))


@dataclass(frozen=True)
class CellCount:
    """How one unit's rings enclose points (:func:`count_points`)."""

    inside: np.ndarray
    """The point belongs to the unit (non-zero or even-odd rule)."""
    fold: np.ndarray
    """The point is in a folded piece of the unit (see the module docstring)."""


def count_points(geom: shapely.Geometry, x: np.ndarray, y: np.ndarray) -> CellCount:
    """Whether each point belongs to ``geom`` by its raw rings, and whether it is in a fold.

    Parameters
    ----------
    geom
        A Polygon or MultiPolygon, valid or not, as given.
    x, y
        Points not on any of its rings.
    """
    rings, shell, _ = _rings(geom)
    n = len(x)
    shells_in = np.zeros(n, dtype=np.int64)
    holes_in = np.zeros(n, dtype=np.int64)
    total_w = np.zeros(n, dtype=np.int64)
    odd = np.zeros(n, dtype=bool)
    inverted = np.zeros(n, dtype=bool)
    twice = np.zeros(n, dtype=bool)
    for c, is_shell in zip(rings, shell, strict=True):
        w = winding_numbers(c, x, y)
        sign = np.sign(_signed_area(c))
        total_w += w
        odd ^= (w % 2) == 1
        (shells_in if is_shell else holes_in)[:] += w != 0
        twice |= np.abs(w) >= 2
        # A lobe wound against the ring's own orientation is where the ring turned over
        # (the small lobe of a bowtie). A ring of zero signed area has no orientation.
        if sign != 0:
            inverted |= (w * sign) < 0
    nonzero = (shells_in - holes_in) >= 1
    inside = nonzero | odd
    fold = (nonzero != odd) | twice | inverted | (shells_in >= 2)
    # A hole that sticks out of its shell is wound by the hole alone: a fold (even-odd keeps it).
    fold |= (holes_in >= 1) & (shells_in == 0)
    return CellCount(inside=inside, fold=fold & inside)


def unit_cells(geom: shapely.Geometry) -> tuple[np.ndarray, CellCount]:
    """Cells of one unit's own rings noded together, and how the unit encloses each.

    Returns
    -------
    tuple
        The cells (polygons that tile the space the rings enclose) and their
        :class:`CellCount`.
    """
    rings, _, _ = _rings(geom)
    lines = [shapely.linestrings(c) for c in rings]
    if len(lines) == 0:
        empty = np.zeros(0, dtype=bool)
        return np.zeros(0, dtype=object), CellCount(empty, empty)
    noded = shapely.node(shapely.multilinestrings(lines))
    cells = np.asarray(shapely.get_parts(shapely.polygonize(shapely.get_parts(noded))))
    cells = cells[shapely.area(cells) > 0]
    pts = shapely.point_on_surface(cells)
    return cells, count_points(geom, shapely.get_x(pts), shapely.get_y(pts))


def raw_region(geom: shapely.Geometry) -> tuple[shapely.Geometry, shapely.Geometry]:
    """Return the region a polygon's raw rings enclose (either rule) and its folded pieces.

    A valid polygon is returned unchanged with an empty fold.

    Parameters
    ----------
    geom
        A Polygon or MultiPolygon as given (any validity), in a projected CRS.

    Returns
    -------
    tuple
        ``(region, fold)``: both valid (Multi)Polygons; ``fold`` lies within ``region``.
    """
    if geom.is_valid:
        return geom, shapely.Polygon()
    cells, cnt = unit_cells(geom)
    region = shapely.coverage_union_all(cells[cnt.inside]) if cnt.inside.any() else None
    fold = shapely.coverage_union_all(cells[cnt.fold]) if cnt.fold.any() else shapely.Polygon()
    return (region if region is not None else shapely.Polygon()), fold


def linework_cells(geoms: Sequence[shapely.Geometry] | np.ndarray) -> gpd.GeoDataFrame:
    """Node all units' rings together and count, per cell, the units that enclose it.

    The direct form of the count the QA makes by overlaying raw regions: quadratic in
    vertices near every cell, meant for a handful of units or as a cross-check.

    Parameters
    ----------
    geoms
        The units' polygons as given (any validity), one CRS, projected.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per cell with ``units`` (tuple of indices into ``geoms`` whose rings enclose
        it), ``folds`` (the subset for which it is a folded piece), ``n_units``, ``area_m2``
        and the cell polygon as ``geometry`` (no CRS: set the units' CRS if needed). Cells
        enclosed by no unit (holes of the arrangement) are kept with ``n_units`` 0.
    """
    arr = np.asarray(geoms, dtype=object)
    lines = [shapely.linestrings(c) for g in arr for c in _rings(g)[0]]
    noded = shapely.union_all(lines)
    cells = np.asarray(shapely.get_parts(shapely.polygonize(shapely.get_parts(noded))))
    cells = cells[shapely.area(cells) > 0]
    pts = shapely.point_on_surface(cells)
    x, y = shapely.get_x(pts), shapely.get_y(pts)
    # Envelopes of all rings: a hole may stick out of its shell.
    tree = shapely.STRtree(shapely.envelope(shapely.boundary(arr)))
    cell_i, unit_i = tree.query(pts, predicate="intersects")
    inside = np.zeros(len(cell_i), dtype=bool)
    fold = np.zeros(len(cell_i), dtype=bool)
    for u in np.unique(unit_i):
        sel = np.flatnonzero(unit_i == u)
        cnt = count_points(arr[u], x[cell_i[sel]], y[cell_i[sel]])
        inside[sel], fold[sel] = cnt.inside, cnt.fold
    units: list[list[int]] = [[] for _ in cells]
    folds: list[list[int]] = [[] for _ in cells]
    for c, u, i, f in zip(cell_i, unit_i, inside, fold, strict=True):
        if i:
            units[c].append(int(u))
        if f:
            folds[c].append(int(u))
    df = pd.DataFrame(
        {
            "units": [tuple(sorted(u)) for u in units],
            "folds": [tuple(sorted(f)) for f in folds],
            "n_units": [len(u) for u in units],
            "area_m2": shapely.area(cells),
        }
    )
    return gpd.GeoDataFrame(df, geometry=list(cells))


def fold_destinations(units: gpd.GeoDataFrame, noise_m2: float = 0.01) -> gpd.GeoDataFrame:
    """Say which unit each folded piece of a unit's ring should go to.

    A piece where unit A's ring folds over itself and that unit B's rings enclose without
    folding is B's: A's ring crossed the border and came back. A piece where both rings fold
    is left to the repair's own rule (longest shared border); a piece no other unit encloses
    stays with A, the only unit whose ring encloses it.

    Parameters
    ----------
    units
        Prepared units (:func:`geo_mz.boundaries.prepare_units`): ``code``, ``name``,
        ``fold`` and the raw-ring region as geometry, in a projected CRS.
    noise_m2
        Pieces smaller than this are dropped.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per piece: ``unit``, ``name`` (the folding unit), ``lies_in`` (codes of the
        other units enclosing it, comma-separated), ``goes_to`` (a code; None when the rings
        of both units fold there and the repair decides), ``goes_to_name``, ``area_m2``,
        ``reason`` and the piece as ``geometry``, in the units' CRS.
    """
    cols = ("unit", "name", "lies_in", "goes_to", "goes_to_name", "area_m2", "reason")
    rows: list[dict] = []
    if "fold" not in units.columns:
        return gpd.GeoDataFrame({c: [] for c in cols}, geometry=[], crs=units.crs)
    geoms = units.geometry.to_numpy()
    folds = units["fold"].to_numpy()
    codes, names = units["code"].to_numpy(), units["name"].to_numpy()
    tree = shapely.STRtree(geoms)
    for i in np.flatnonzero([f is not None and not f.is_empty for f in folds]):
        rest = folds[i]
        for j in tree.query(folds[i], predicate="intersects"):
            if j == i:
                continue
            # Polygonal part only: a mixed collection is no valid input to the next overlay.
            piece = polygonal(shapely.intersection(folds[i], geoms[j]))
            if piece.area <= noise_m2:
                continue
            rest = shapely.difference(rest, geoms[j])
            theirs = folds[j] if folds[j] is not None else shapely.Polygon()
            clean = shapely.difference(piece, theirs)  # B encloses it without folding
            both = shapely.intersection(piece, theirs)
            for part, to, why in (
                (clean, j, "邻单位的环正常包含此处 / the neighbour's ring encloses it unfolded"),
                (
                    both,
                    None,
                    "两单位的环都在此折叠，按最长公共边 / both rings fold here: "
                    "longest shared border",
                ),
            ):
                for p in shapely.get_parts(part):
                    if p.geom_type == "Polygon" and p.area > noise_m2:
                        rows.append(_fold_row(i, j, to, p, why, codes, names))
        for p in shapely.get_parts(rest):
            if p.geom_type == "Polygon" and p.area > noise_m2:
                why = "只有本单位的环包含此处 / only this unit's ring encloses it"
                rows.append(_fold_row(i, None, i, p, why, codes, names))
    if not rows:
        return gpd.GeoDataFrame({c: [] for c in cols}, geometry=[], crs=units.crs)
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=units.crs)


def _fold_row(
    i: int,
    j: int | None,
    to: int | None,
    piece: shapely.Geometry,
    why: str,
    codes: np.ndarray,
    names: np.ndarray,
) -> dict:
    return {
        "unit": codes[i],
        "name": names[i],
        "lies_in": "" if j is None else str(codes[j]),
        "goes_to": None if to is None else codes[to],
        "goes_to_name": None if to is None else names[to],
        "area_m2": float(piece.area),
        "reason": why,
        "geometry": piece,
    }

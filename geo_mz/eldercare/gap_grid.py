"""The gap map's hexagon grid: uncovered people per cell, clusters, ranks and shapes.

:func:`geo_mz.eldercare.gaps` in steps that can run apart, so an area cut into parts gets
the whole area's gap map (``geo_mz.scale``'s ``gaps`` job):

1. :func:`gap_cells` - per hexagon cell of one fixed grid (pointy-top, anchored at the CRS
   origin, so two areas' cells with the same axial ``(q, r)`` are the same hexagon): the
   uncovered people and the sums the mean walk needs. Every column adds up across areas.
2. :func:`rank_gap_cells` - sums the cells of every area by ``(q, r)``, labels clusters
   (connected components of edge-adjacent cells) and ranks cells and clusters.
3. :func:`gap_frame` - the hexagon or cluster rows with their shapes, from ranked cells
   (all of them, or a subset: every cell of a cluster must be there to draw it).
"""

from __future__ import annotations

import math
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from geo_mz.core.errors import CrsError
from geo_mz.eldercare._common import (
    TOL_MIN,
    CoverageError,
    check_gdf,
    check_positive,
    nonneg_numbers,
)

__all__ = [
    "CELL_SUMS",
    "gap_cells",
    "gap_columns",
    "gap_frame",
    "hex_polygons",
    "metric_crs",
    "rank_gap_cells",
]

STORAGE_CRS = "EPSG:4490"

CELL_SUMS: tuple[str, ...] = (
    "uncovered",
    "n_cells",
    "walk_person_min",
    "reachable_pop",
    "unreachable_pop",
)
"""The additive columns of :func:`gap_cells` (``uncovered`` is ``{pop_field}_uncovered``)."""

_SQ3 = math.sqrt(3.0)
# Corners of a pointy-top hexagon as integer multiples: x = (√3/2)s·(2q + r + a), y = (s/2)(3r + b)
_CORNER_A = np.array([1, 0, -1, -1, 0, 1])
_CORNER_B = np.array([1, 2, 1, -1, -2, -1])
_NEIGHBOURS = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, -1), (-1, 1))


def metric_crs(crs: str) -> CRS:
    """Return ``crs`` as a pyproj CRS; raise CrsError unless it is projected in metres."""
    c = CRS.from_user_input(crs)
    if not c.is_projected or c.axis_info[0].unit_name not in ("metre", "meter"):
        raise CrsError(f"`crs` {c.to_string()} is not a projected CRS in metres (e.g. EPSG:4547)")
    return c


def _side_m(cell_size_m: float) -> float:
    """Centre-to-corner size of a hexagon whose flat-to-flat width is ``cell_size_m``."""
    return check_positive("cell_size_m", cell_size_m) / _SQ3


def _hex_axial(xy: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Axial (q, r) of the pointy-top hexagon (centre-to-corner ``s``) holding each point."""
    qf = (_SQ3 / 3.0 * xy[:, 0] - xy[:, 1] / 3.0) / s
    rf = (2.0 / 3.0 * xy[:, 1]) / s
    xf, zf = qf, rf
    yf = -xf - zf
    rx, ry, rz = np.round(xf), np.round(yf), np.round(zf)
    dx, dy, dz = np.abs(rx - xf), np.abs(ry - yf), np.abs(rz - zf)
    fix_x = (dx > dy) & (dx > dz)
    fix_z = ~fix_x & ~(dy > dz)
    rx = np.where(fix_x, -ry - rz, rx)
    rz = np.where(fix_z, -rx - ry, rz)
    return rx.astype(np.int64), rz.astype(np.int64)


def hex_polygons(q: np.ndarray, r: np.ndarray, *, cell_size_m: float) -> np.ndarray:
    """Hexagons of axial cells ``(q, r)``, in the grid's CRS.

    Built from integer corner multiples, so neighbouring cells' shared edges have identical
    coordinates (their union is exact), whichever area drew them.

    Parameters
    ----------
    q, r
        Axial coordinates (integers) of the cells.
    cell_size_m
        The grid's flat-to-flat width, as given to :func:`gap_cells`.

    Returns
    -------
    numpy.ndarray
        Shapely polygons, one per cell.
    """
    s = _side_m(cell_size_m)
    q, r = np.asarray(q, dtype=np.int64), np.asarray(r, dtype=np.int64)
    xs = (_SQ3 / 2.0 * s) * (2 * q[:, None] + r[:, None] + _CORNER_A[None, :])
    ys = (s / 2.0) * (3 * r[:, None] + _CORNER_B[None, :])
    ring = np.stack([xs, ys], axis=-1)
    ring = np.concatenate([ring, ring[:, :1]], axis=1)
    return shapely.polygons(ring)


def gap_columns(pop_field: str = "pop_60plus") -> dict[str, str]:
    """Map the generic names of :data:`CELL_SUMS` to :func:`gap_cells`'s column names."""
    return {c: (f"{pop_field}_uncovered" if c == "uncovered" else c) for c in CELL_SUMS}


def gap_cells(
    times: gpd.GeoDataFrame,
    *,
    crs: str,
    threshold_min: float = 15.0,
    cell_size_m: float = 500.0,
    pop_field: str = "pop_60plus",
) -> pd.DataFrame:
    """Uncovered people summed per hexagon cell of the grid of :func:`geo_mz.eldercare.gaps`.

    Parameters
    ----------
    times
        Output of :func:`geo_mz.eldercare.access_times` (``walk_min``, ``pop_field``).
    crs
        Projected metric CRS of the grid: the same for every area whose cells are combined.
    threshold_min
        Points with ``walk_min > threshold_min`` (inf included) are uncovered.
    cell_size_m
        The grid's flat-to-flat width (the same for every area).
    pop_field
        Population column.

    Returns
    -------
    pandas.DataFrame
        One row per cell holding uncovered people, sorted by ``(q, r)``: ``q``, ``r`` (axial
        coordinates, int64), ``{pop_field}_uncovered``, ``n_cells`` (population points),
        ``walk_person_min`` (walk minutes x people over the reachable ones),
        ``reachable_pop``, ``unreachable_pop``. Every column but ``q``/``r`` adds up across
        areas (:func:`rank_gap_cells` sums them).
    """
    check_gdf(times, "times", ("walk_min", pop_field))
    metric = metric_crs(crs)
    s = _side_m(cell_size_m)
    names = gap_columns(pop_field)
    pop = nonneg_numbers(times, pop_field, "times")
    walk = pd.to_numeric(times["walk_min"]).to_numpy(dtype=float)
    unc = (walk > float(threshold_min) + TOL_MIN) & (pop > 0)
    if not unc.any():
        cols = {"q": np.zeros(0, np.int64), "r": np.zeros(0, np.int64)}
        cols |= {n: np.zeros(0, np.int64 if c == "n_cells" else float) for c, n in names.items()}
        return pd.DataFrame(cols)
    pts = times.geometry[unc].to_crs(metric)
    q, r = _hex_axial(shapely.get_coordinates(np.asarray(pts.values)), s)
    keys, inv = np.unique(np.column_stack([q, r]), axis=0, return_inverse=True)
    inv = inv.ravel()
    h = len(keys)
    p, w = pop[unc], walk[unc]
    reach = np.isfinite(w)
    return pd.DataFrame(
        {
            "q": keys[:, 0],
            "r": keys[:, 1],
            names["uncovered"]: np.bincount(inv, p, h),
            "n_cells": np.bincount(inv, minlength=h),
            "walk_person_min": np.bincount(inv, np.where(reach, w * p, 0.0), h),
            "reachable_pop": np.bincount(inv, p * reach, h),
            "unreachable_pop": np.bincount(inv, p * ~reach, h),
        }
    )


def _by_key(cells: pd.DataFrame, sums: list[str]) -> pd.DataFrame:
    """Cells sorted by ``(q, r)``, summed where several rows hold one cell."""
    if not cells[["q", "r"]].duplicated().any():
        order = np.lexsort((cells["r"].to_numpy(), cells["q"].to_numpy()))
        return cells.iloc[order][["q", "r", *sums]].reset_index(drop=True)
    return cells.groupby(["q", "r"], sort=True)[sums].sum().reset_index()


def rank_gap_cells(cells: pd.DataFrame, *, pop_field: str = "pop_60plus") -> pd.DataFrame:
    """Sum cells by ``(q, r)``, label their clusters and rank cells and clusters.

    Parameters
    ----------
    cells
        :func:`gap_cells` rows of one or several areas (other columns are ignored).
    pop_field
        Population column the cells were made with.

    Returns
    -------
    pandas.DataFrame
        One row per cell, sorted by ``(q, r)``: ``q``, ``r``, the summed columns,
        ``cluster`` (component label of edge-adjacent cells, numbered in ``(q, r)`` order),
        ``rank`` (by uncovered people, descending; ties by ``(q, r)``) and ``cluster_rank``
        (the cluster's rank by its people; ties by label). ``gap_id`` ``H{rank:04d}`` and
        ``cluster_id`` ``C{cluster_rank:03d}`` follow from them (:func:`gap_frame`).
    """
    names = gap_columns(pop_field)
    missing = [c for c in ("q", "r", *names.values()) if c not in cells.columns]
    if missing:
        raise CoverageError(f"`cells` lacks column(s) {missing}: pass gap_cells() rows")
    name = names["uncovered"]
    out = _by_key(cells, list(names.values()))
    h = len(out)
    if h == 0:
        z = np.zeros(0, np.int64)
        return out.assign(cluster=z, rank=z, cluster_rank=z)
    keys = out[["q", "r"]].to_numpy(np.int64)
    index = pd.MultiIndex.from_arrays([keys[:, 0], keys[:, 1]])
    src, dst = [], []
    for dq, dr in _NEIGHBOURS:
        nb = index.get_indexer(pd.MultiIndex.from_arrays([keys[:, 0] + dq, keys[:, 1] + dr]))
        ok = nb >= 0
        src.append(np.flatnonzero(ok))
        dst.append(nb[ok])
    a, b = np.concatenate(src), np.concatenate(dst)
    _, comp = connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(h, h)),
                                   directed=False)  # fmt: skip
    people = out[name].to_numpy()
    order = np.lexsort((np.arange(h), -people))
    rank = np.empty(h, np.int64)
    rank[order] = np.arange(1, h + 1)
    comp_people = pd.Series(people).groupby(comp).sum()
    c_order = np.lexsort((comp_people.index.to_numpy(), -comp_people.to_numpy()))
    c_rank = np.empty(len(c_order), np.int64)
    c_rank[c_order] = np.arange(1, len(c_order) + 1)
    return out.assign(cluster=comp.astype(np.int64), rank=rank, cluster_rank=c_rank[comp])


def _mean_walk(ww: np.ndarray, wp: np.ndarray) -> np.ndarray:
    return np.where(wp > 0, ww / np.where(wp > 0, wp, 1), np.inf)


def gap_frame(
    ranked: pd.DataFrame,
    *,
    crs: str,
    cell_size_m: float = 500.0,
    level: Literal["hex", "cluster"] = "hex",
    pop_field: str = "pop_60plus",
) -> gpd.GeoDataFrame:
    """Hexagon or cluster rows of :func:`geo_mz.eldercare.gaps` from ranked cells.

    Parameters
    ----------
    ranked
        :func:`rank_gap_cells` rows: all of them, or a subset (the rows of those hexagons;
        for clusters, every cell of each cluster wanted).
    crs
        The grid's CRS, as given to :func:`gap_cells`.
    cell_size_m
        The grid's flat-to-flat width.
    level
        ``"hex"`` or ``"cluster"``.
    pop_field
        Population column the cells were made with.

    Returns
    -------
    geopandas.GeoDataFrame
        The rows of :func:`geo_mz.eldercare.gaps` for those hexagons or clusters, in
        EPSG:4490, sorted by rank.
    """
    if level not in ("hex", "cluster"):
        raise CoverageError(f"`level` was {level!r} but is expected to be 'hex' or 'cluster'")
    metric = metric_crs(crs)
    names = gap_columns(pop_field)
    name = names["uncovered"]
    cols = ["gap_id", "rank", name, "n_cells", "mean_walk_min", "unreachable_pop"]
    cols += ["cluster_id"] if level == "hex" else ["n_hex"]
    if len(ranked) == 0:
        empty = {c: pd.Series([], dtype=object if "id" in c else float) for c in cols}
        return gpd.GeoDataFrame(empty, geometry=gpd.GeoSeries([], crs=STORAGE_CRS))
    cells = ranked.iloc[np.lexsort((ranked["r"].to_numpy(), ranked["q"].to_numpy()))]
    cells = cells.reset_index(drop=True)
    polys = hex_polygons(cells["q"].to_numpy(), cells["r"].to_numpy(), cell_size_m=cell_size_m)
    if level == "cluster":
        sums = [names[c] for c in CELL_SUMS]
        agg = cells.groupby("cluster", sort=True).agg(
            **{c: (c, "sum") for c in sums},
            n_hex=(name, "size"),
            rank=("cluster_rank", "first"),
        )
        # Cells of each cluster in (q, r) order: one stable sort, then split (not a mask per
        # cluster, which is quadratic in a province's thousands of clusters).
        comp = cells["cluster"].to_numpy()
        by = np.argsort(comp, kind="stable")
        starts = np.flatnonzero(np.r_[True, comp[by][1:] != comp[by][:-1]])
        groups = np.split(polys[by], starts[1:])
        polys = np.array([shapely.coverage_union_all(g) for g in groups], dtype=object)
        agg["gap_id"] = [f"C{i:03d}" for i in agg["rank"]]
    else:
        agg = cells.copy()
        agg["gap_id"] = [f"H{i:04d}" for i in agg["rank"]]
        agg["cluster_id"] = np.array([f"C{i:03d}" for i in agg["cluster_rank"]], dtype=object)
    agg["mean_walk_min"] = _mean_walk(agg["walk_person_min"].to_numpy(),
                                      agg["reachable_pop"].to_numpy())  # fmt: skip
    out = gpd.GeoDataFrame(agg[cols].reset_index(drop=True), geometry=polys, crs=metric)
    out = out.iloc[np.argsort(out["rank"].to_numpy(), kind="stable")].reset_index(drop=True)
    return out.to_crs(STORAGE_CRS)

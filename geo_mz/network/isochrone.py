"""Isochrone polygons drawn from the reached street network, partial edges cut at the exact point.

One multi-source pass (:func:`geo_mz.network.multi_source_times`) gives every node its time to
the nearest centre. From those node times :func:`reached_edges` cuts the network at ``max_min``
(from a node reached at ``t`` an edge is followed for ``(max_min - t) * speed`` metres, one-way
drive edges only forwards; an edge reached from both ends is whole once the parts meet) and
:func:`isochrones` buffers that reached network by ``buffer_m`` into rings (0-5, 5-10, 10-15
min), merged or per centre. Never a convex hull or a circle around the centre: a place across
a river is inside only if a reached street passes within ``buffer_m`` of it.

Membership rule
---------------
A point is inside the ``k``-minute polygon **iff its distance to the street network reached
within ``k`` minutes is at most ``buffer_m``** (the walk from the street to the doors, not
timed; 50 m is a LOCAL CHOICE). Round caps are chords (``QUAD_SEGS`` = 8 per quarter circle),
at most ``buffer_m * (1 - cos(pi/32))`` = 0.24 m inside the true circle at 50 m. Snapping a
point to its nearest street spot (limit ``buffer_m``) and asking whether that spot is reached
gives the same answer except where another reached street is within ``buffer_m``; snapping to
the nearest *node* (limit ``buffer_m``, node time <= ``k``) covers a subset.

Method
------
Buffering every reached piece and unioning them costs ~0.1 ms a piece in GEOS and grows faster
than linearly. Instead the reached lines are read as a plane graph with numpy (half-edges sorted
by angle at each node, face walks by list ranking), and the polygon is assembled as

    ``(buffer(walls) - cores) ∪ buffer(loose lines)``

* a **wall** is the region a component's outer walk encloses, its dead ends and partial edges
  as zero-width spikes: one polygon buffer per component (GEOS buffers polygons fast);
* a **core** is ``face.buffer(-buffer_m)`` for each bounded face (components nested in a face
  are its holes): the part of a face farther than ``buffer_m`` from the face's boundary. For
  a convex face it is the intersection of the edges' inner half-planes, made with numpy
  (GEOS for the others); a face met again at the next threshold keeps its core. Cores are
  cut ``CORE_GAP_M`` = 1e-7 m deeper, so that one never touches the outline of a smaller
  threshold along a street both are ``buffer_m`` from (areas move by 1e-7 m x perimeter);
* **loose lines** are buffered as lines and added after the cores are cut: dead-end trees
  inside faces, trees and nested components, and edges that cross another edge without a
  junction (bridges, tunnels; found from grid-hashed boxes, cached per network), which would
  break the face walk.

Items that do not touch are never overlaid (clusters). The cores are strictly inside their
wall (``buffer_m`` or more from its edge), so they become interior rings directly, without an
overlay: GEOS overlay spends most of its time placing thousands of holes in one big shell.

Rings
-----
Each threshold's polygon is kept as *filled* parts ``F`` (walls and loose lines, no cores) and
*holes* ``H`` (cores minus loose lines): ``P = F - H``. ``F`` is nested across thresholds
(``F_j`` is unioned into ``F_k`` only where a part of ``F_j`` is not in the interior of one of
``F_k``: chords of an earlier round cap can stick out by 0.24 m) so that rings never overlap.
The ring between ``j < k`` is

    ``P_k - P_j = ((F_k - F_j) - H_k) ∪ (H_j - H_k)``

(``P_j ⊆ P_k``, and ``H_j`` lies inside ``F_j``). A part of ``F_k`` whose parts of ``F_j`` all
lie in its interior needs no overlay: their outlines become its holes, their holes islands
(the usual case: only a network edge or a dead end reached in full makes the outlines meet);
the others are cut with ``shapely.difference``. Holes of ``P_k`` clear of ``F_j`` are added
as rings; ``H_j - H_k`` is empty for an unchanged face (the same core object) and keeps the
part of an old core that streets reached later cover.

Tests compare the result with the plain ``union_all(buffer(...))`` (and each ring with the
difference of two such unions) on hand-made, random and real networks;
``bench/bench_isochrones.py`` measures both.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator, Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

try:  # numpy >= 2
    from numpy._core import multiarray as _np_multiarray
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _np_multiarray

from geo_mz.core.errors import CrsError, GeoMzError
from geo_mz.core.projection import parse_crs
from geo_mz.network._isochrone_geometry import (
    QUAD_SEGS,
    buffer_union,
    nest_filled,
    polygons_of,
    ring_between,
)
from geo_mz.network._isochrone_plane import (
    crossing_edges,
    reach_table,
    reached_pieces,
)
from geo_mz.network.graph import Network

__all__ = [
    "BUFFER_M",
    "QUAD_SEGS",
    "THRESHOLDS_MIN",
    "IsochroneError",
    "isochrones",
    "points_in_isochrones",
    "reached_edges",
]

#: Walk from the street to the doors, m. LOCAL CHOICE (no standard found); configurable.
BUFFER_M = 50.0
#: Rings of the 15-minute elder-care circle (STANDARDS.md §B: GB 50180-2018 5/10/15-min circles).
THRESHOLDS_MIN: tuple[float, ...] = (5.0, 10.0, 15.0)


class IsochroneError(GeoMzError, ValueError):
    """Isochrone inputs are inconsistent (array shapes, thresholds, buffer)."""


def _check_times(net: Network, node_time_min: np.ndarray) -> np.ndarray:
    t = np.asarray(node_time_min, dtype=np.float64)
    if t.shape != (net.n_nodes,):
        raise IsochroneError(f"`node_time_min` has shape {t.shape}, need ({net.n_nodes},)")
    if np.isnan(t).any() or (t < 0).any():
        raise IsochroneError("`node_time_min` must be >= 0 or inf (unreached), never NaN")
    return t


def _check_minutes(name: str, value: float) -> float:
    v = float(value)
    if not np.isfinite(v) or v < 0:
        raise IsochroneError(f"`{name}` was {value!r} but must be a finite number >= 0")
    return v


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cycle collector while the polygons are built, then restore it.

    The build makes a few hundred thousand short-lived shapely objects (no reference cycles);
    each time they fill a generation the collector rescans everything the caller holds, such
    as a network's half a million edge geometries: ~0.1 s of a 1.6 s call measured on a
    250,000-node grid. Reference counting still frees every object at once.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextlib.contextmanager
def _small_pages() -> Iterator[None]:
    """Stop numpy asking for transparent huge pages while the polygons are built, then restore.

    numpy advises the kernel to back arrays of 4 MiB or more with 2 MiB pages; where the
    kernel then compacts memory on a page fault (THP defrag ``madvise``, the Linux default)
    the many short-lived arrays of a call cost system time in bursts: 0.3-0.4 s of a 1.6 s
    call in 2 of 4 calls measured on a 250,000-node grid, 0.03-0.06 s without. Where numpy
    has no such switch this does nothing.
    """
    switch = getattr(_np_multiarray, "_set_madvise_hugepage", None)
    was = switch(False) if switch is not None else None
    try:
        yield
    finally:
        if switch is not None:
            switch(was)


# --------------------------------------------------------------------------- public API


def reached_edges(net: Network, node_time_min: np.ndarray, *, max_min: float) -> gpd.GeoDataFrame:
    """Cut the street network at ``max_min``: reached edges whole, partial ones exactly.

    Parameters
    ----------
    net
        The network the times were computed on.
    node_time_min
        ``(n,)`` minutes from the nearest centre per node (``inf`` unreached): the first result
        of :func:`geo_mz.network.multi_source_times` (run with ``limit_min >= max_min``).
    max_min
        Time budget, minutes.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per reached edge, sorted by ``edge`` (index into the network's edge arrays):
        ``reached_m``, ``length_m``, ``whole`` (reached end to end, from one side or both) and
        ``geometry`` in ``net.crs``: the edge itself when whole, else the reached part(s)
        oriented u -> v (a MultiLineString when reached from both ends without meeting).
    """
    t = _check_times(net, node_time_min)
    pc = reached_pieces(net, t, _check_minutes("max_min", max_min), np.zeros(net.n_nodes, np.int64))
    order = np.argsort(pc["edge"], kind="stable")
    geom = pc["geometry"][order]
    edge, start, count = np.unique(pc["edge"][order], return_index=True, return_counts=True)
    geometry = geom[start].copy()
    two = np.flatnonzero(count == 2)
    if len(two):
        pair = np.stack([start[two], start[two] + 1], axis=1).ravel()
        geometry[two] = shapely.multilinestrings(
            geom[pair], indices=np.repeat(np.arange(len(two)), 2)
        )
    length = net.edge_length_m[edge]
    reached = np.add.reduceat((pc["s1"] - pc["s0"])[order], start) if len(start) else np.empty(0)
    whole = (count == 1) & (pc["tail"][order][start] >= 0) & (pc["head"][order][start] >= 0)
    return gpd.GeoDataFrame(
        {"edge": edge, "reached_m": np.minimum(reached, length), "length_m": length,
         "whole": whole},
        geometry=geometry,
        crs=net.crs,
    )  # fmt: skip


def isochrones(
    net: Network,
    node_time_min: np.ndarray,
    nearest: np.ndarray | None = None,
    *,
    thresholds_min: Sequence[float] = THRESHOLDS_MIN,
    buffer_m: float = BUFFER_M,
    per_source: bool = False,
    crs_out: str = "EPSG:4490",
) -> gpd.GeoDataFrame:
    """Isochrone rings (0-5, 5-10, 10-15 min ...) drawn from the reached street network.

    The ``k``-minute polygon is the network reached within ``k`` minutes (:func:`reached_edges`,
    partial edges cut at the exact point) buffered by ``buffer_m``, and nothing else: a point
    is inside iff a street reached within ``k`` minutes passes within ``buffer_m`` of it (see
    the module docstring for the chord tolerance and how this agrees with snapping).

    Parameters
    ----------
    net
        The network the times were computed on (projected metric CRS).
    node_time_min
        ``(n,)`` minutes per node from :func:`geo_mz.network.multi_source_times`.
    nearest
        ``(n,)`` nearest centre per node (its second result); needed for ``per_source``.
    thresholds_min
        Ring limits in minutes; default ``(5, 10, 15)``, the 15-minute elder-care circle.
    buffer_m
        Walk from the street to the doors, metres; 50 is a LOCAL CHOICE (no standard found).
    per_source
        One polygon per centre: its catchment (the nodes it is nearest to; edges split where
        catchments meet), from the same single pass. Neighbours overlap by up to ``buffer_m``.
    crs_out
        CRS of the returned geometries (default CGCS2000, EPSG:4490).

    Returns
    -------
    geopandas.GeoDataFrame
        One row per ring (and centre: ``source``, index into the centres) with
        ``threshold_min`` (upper limit), ``ring`` (``"0-5 min"``...), ``area_m2`` (in
        ``net.crs``) and ``geometry`` in ``crs_out``. Rings are disjoint; those up to ``k``
        make up the ``k``-minute polygon (which therefore also holds every smaller one).

    Raises
    ------
    IsochroneError
        Bad shapes, thresholds, buffer, or ``per_source`` without ``nearest``.
    CrsError
        ``crs_out`` cannot be parsed.
    """
    t = _check_times(net, node_time_min)
    thr = sorted({_check_minutes("thresholds_min", v) for v in thresholds_min})
    if not thr or thr[0] <= 0:
        raise IsochroneError(f"`thresholds_min` was {thresholds_min!r}; need values > 0")
    if not (np.isfinite(buffer_m) and buffer_m > 0):
        raise IsochroneError(f"`buffer_m` was {buffer_m!r} but must be a positive number")
    out_crs = parse_crs(crs_out)
    if out_crs is None:
        raise CrsError("`crs_out` is required, e.g. EPSG:4490")
    group = np.zeros(net.n_nodes, np.int64)
    if per_source:
        if nearest is None:
            raise IsochroneError("`per_source=True` needs `nearest` from multi_source_times")
        group = np.asarray(nearest)
        if group.shape != (net.n_nodes,) or group.dtype.kind not in "iu":
            raise IsochroneError(f"`nearest` must be ({net.n_nodes},) integers")
        if np.any((group < 0) & np.isfinite(t)):
            raise IsochroneError("`nearest` is -1 at reached nodes: pass both results of a call")
        group = group.astype(np.int64)
    with _gc_paused(), _small_pages():  # ~0.5 M new shapely objects, many big arrays
        table = reach_table(net, t, thr[-1])  # every threshold looks at these edges only
        bad_edge = np.zeros(net.n_edges, bool)  # crossings: once, widest reach
        bad_edge[table["edge"]] = crossing_edges(net, table["edge"], table)
        rows: list[dict[str, object]] = []
        prev = None  # the polygons up to the last threshold, as filled parts and holes
        core_cache: dict = {}  # cores of faces already seen at a smaller threshold
        for lo, k in zip([0.0, *thr[:-1]], thr, strict=True):
            pc = reached_pieces(net, t, k, group, table, lines=False)
            on_line = np.zeros(net.n_nodes, bool)  # nodes reached with no time left: a disc each
            for end in (pc["tail"], pc["head"]):
                ok = end >= 0
                on_line[end[ok][group[end[ok]] == pc["group"][ok]]] = True
            alone = np.flatnonzero((t <= k) & ~on_line)
            disc = shapely.buffer(shapely.points(net.node_xy[alone]), buffer_m, quad_segs=QUAD_SEGS)
            cur = buffer_union(pc, bad_edge[pc["edge"]], buffer_m, disc, group[alone], core_cache)
            if prev is not None:  # F_j ⊆ F_k exactly, and which parts of F_k hold those of F_j
                cur, inner = nest_filled(cur, prev)
            rings = polygons_of(cur) if prev is None else ring_between(cur, prev, inner)
            prev = cur
            for grp, ring in sorted(rings.items()):
                row: dict[str, object] = {"source": grp} if per_source else {}
                row |= {"threshold_min": k, "ring": f"{lo:g}-{k:g} min", "area_m2": ring.area}
                rows.append(row | {"geometry": ring})
    columns = ["threshold_min", "ring", "area_m2", "geometry"]
    frame = gpd.GeoDataFrame(
        pd.DataFrame(rows, columns=(["source"] if per_source else []) + columns),
        geometry="geometry",
        crs=net.crs,
    )
    if per_source:
        frame = frame.sort_values(["source", "threshold_min"], ignore_index=True)
    return frame.to_crs(out_crs)


def points_in_isochrones(
    points: gpd.GeoDataFrame | gpd.GeoSeries, iso: gpd.GeoDataFrame, threshold_min: float
) -> np.ndarray:
    """Mark the points inside the ``threshold_min`` polygon of an :func:`isochrones` result.

    Parameters
    ----------
    points
        Point geometries with a CRS (reprojected to the CRS of ``iso``).
    iso
        Rings from :func:`isochrones` (merged or per source).
    threshold_min
        One of ``iso.threshold_min``; the rings up to it count (their boundary included).

    Returns
    -------
    numpy.ndarray
        Boolean mask, one value per point.
    """
    geoms = points.geometry if isinstance(points, gpd.GeoDataFrame) else points
    if not isinstance(geoms, gpd.GeoSeries):
        raise TypeError(f"`points` must be a GeoDataFrame or GeoSeries, got {type(points)}")
    if geoms.crs is None or iso.crs is None:
        raise CrsError("`points` and `iso` need a CRS; set it with .set_crs(...)")
    levels = np.unique(iso["threshold_min"].to_numpy(dtype=float))
    if not np.isclose(levels, threshold_min).any():
        raise IsochroneError(
            f"`threshold_min` was {threshold_min!r} but is expected to be in {levels.tolist()}"
        )
    if geoms.crs != iso.crs:
        geoms = geoms.to_crs(iso.crs)
    polys = np.asarray(iso.geometry.values)[iso["threshold_min"].to_numpy() <= threshold_min + 1e-9]
    mask = np.zeros(len(geoms), bool)
    hit, _ = shapely.STRtree(polys[~shapely.is_empty(polys)]).query(
        np.asarray(geoms.values), predicate="intersects"
    )
    mask[hit] = True
    return mask

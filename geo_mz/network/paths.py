"""Closures, snapping and shortest paths on a :class:`~geo_mz.network.Network`.

:func:`snap_points` ties points to their nearest node (the straight walk counts),
:func:`multi_source_times` runs one multi-source Dijkstra pass (``min_only``), and
:func:`with_closures` / :func:`closed_edges_by_geometry` close or slow roads without rebuilding
the network; :func:`to_networkx` is the independent cross-check.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from scipy.sparse.csgraph import dijkstra

from geo_mz.network.graph import (
    MIN_PER_M_PER_KMH,
    Network,
    NetworkError,
    Snapped,
    arc_nodes,
    check_positive,
    geoms_in,
)

if TYPE_CHECKING:
    import networkx as nx


def with_closures(
    net: Network, *, closed_edges: np.ndarray | None = None, slow_factor: np.ndarray | None = None
) -> Network:
    """Close edges and/or slow them down, without rebuilding from geometry.

    Only the arc arrays, ``edge_speed_kmh`` and the CSR matrix change; nodes and edges stay (a
    closed edge keeps its row but has no arcs), so node and edge indices remain valid. No
    component is pruned: nodes cut off by the closures are simply unreachable (inf).

    Parameters
    ----------
    net
        The network to modify (not mutated).
    closed_edges
        Boolean ``(e,)`` mask or integer edge indices; their arcs are removed.
    slow_factor
        ``(e,)`` multipliers of travel time (2.0 = half speed; ``inf`` = closed); > 0.

    Returns
    -------
    Network
        A new network sharing the unchanged arrays of ``net``.
    """
    keep = np.ones(net.n_edges, dtype=bool)
    factor = np.ones(net.n_edges)
    if closed_edges is not None:
        ce = np.asarray(closed_edges)
        if ce.dtype == bool:
            if ce.shape != (net.n_edges,):
                raise NetworkError(
                    f"`closed_edges` mask has shape {ce.shape}, need ({net.n_edges},)"
                )
            keep &= ~ce
        else:
            ce = ce.astype(np.int64).ravel()
            if len(ce) and (ce.min() < 0 or ce.max() >= net.n_edges):
                raise NetworkError(f"`closed_edges` indices must be in [0, {net.n_edges})")
            keep[ce] = False
    if slow_factor is not None:
        factor = np.asarray(slow_factor, dtype=float)
        if factor.shape != (net.n_edges,):
            raise NetworkError(f"`slow_factor` has shape {factor.shape}, need ({net.n_edges},)")
        if np.any(np.isnan(factor) | (factor <= 0)):
            raise NetworkError("`slow_factor` values must be > 0 (inf closes the edge)")
        keep &= np.isfinite(factor)
    arc_keep = keep[net.arc_edge]
    arc_edge = net.arc_edge[arc_keep]
    arc_forward = net.arc_forward[arc_keep]
    arc_time = net.arc_time_min[arc_keep] * factor[arc_edge]
    speed = np.where(np.isfinite(factor), net.edge_speed_kmh / factor, net.edge_speed_kmh)
    return dataclasses.replace(
        net,
        edge_speed_kmh=speed,
        arc_edge=arc_edge,
        arc_forward=arc_forward,
        arc_time_min=arc_time,
        graph=_graph_update(net, keep, factor),
    )


def _graph_update(net: Network, keep: np.ndarray, factor: np.ndarray) -> sp.csr_matrix:
    """``net.graph`` with only the entries of changed edges recomputed (no re-sort, no rebuild).

    A closure touches a handful of the millions of entries: their (tail, head) pairs get the
    minimum over their remaining parallel arcs, ``inf`` when none is left (csgraph never relaxes
    an infinite arc, so it acts as absent). Sharing ``indices``/``indptr`` keeps a re-audit after
    one closure from paying for a full CSR construction.
    """
    changed_edge = ~keep | (factor != 1.0)
    arcs = np.flatnonzero(changed_edge[net.arc_edge])
    g = net.graph
    if len(arcs) == 0:
        return g
    tails, heads = arc_nodes(net)
    n = np.int64(net.n_nodes)
    pair = np.unique(tails[arcs] * n + heads[arcs])
    keys, order = net.arc_lookup
    lo, hi = np.searchsorted(keys, pair, side="left"), np.searchsorted(keys, pair, side="right")
    # Every arc of each touched pair (parallel arcs included), with its new time.
    counts = hi - lo
    members = order[
        np.repeat(lo, counts)
        + np.arange(counts.sum())
        - np.repeat(np.cumsum(counts) - counts, counts)
    ]
    e = net.arc_edge[members]
    t = np.where(keep[e], net.arc_time_min[members] * factor[e], np.inf)
    new_w = np.minimum.reduceat(t, np.cumsum(counts) - counts) if len(t) else t
    pt, ph = pair // n, pair % n
    start = g.indptr[pt]
    # Column indices are sorted within each row (built by _csr_min): search each row's slice.
    pos = np.array(
        [
            s + np.searchsorted(g.indices[s:end], h)
            for s, end, h in zip(start, g.indptr[pt + 1], ph, strict=True)
        ],
        dtype=np.int64,
    )
    data = g.data.copy()
    data[pos] = new_w
    return sp.csr_matrix((data, g.indices, g.indptr), shape=g.shape)


def closed_edges_by_geometry(
    net: Network, polygons: gpd.GeoDataFrame | gpd.GeoSeries
) -> np.ndarray:
    """Mark the edges that intersect (touching included) any closure geometry.

    Parameters
    ----------
    net
        The network.
    polygons
        Closure areas (flood extents, incident buffers) with a CRS; reprojected to ``net.crs``.

    Returns
    -------
    numpy.ndarray
        Boolean ``(e,)`` mask, for ``with_closures(net, closed_edges=...)``.
    """
    geoms = geoms_in(net, polygons, "polygons")
    geoms = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    mask = np.zeros(net.n_edges, dtype=bool)
    if len(geoms):
        _, hit = shapely.STRtree(net.edge_geometry).query(geoms, predicate="intersects")
        mask[hit] = True
    return mask


def snap_points(
    net: Network,
    points: gpd.GeoDataFrame | gpd.GeoSeries,
    *,
    max_snap_m: float = 500.0,
    access_speed_kmh: float | None = None,
) -> Snapped:
    """Snap points to their nearest network node (KD-tree) and time the straight leg.

    Parameters
    ----------
    net
        The network.
    points
        Point geometries with a CRS (reprojected to ``net.crs``).
    max_snap_m
        Points farther than this from every node are flagged ``too_far`` (kept, not dropped).
    access_speed_kmh
        Speed of the straight leg point <-> node. Default ``net.access_speed_kmh``: the walking
        speed of a walk network; for a drive network ``WALK_SPEED_KMH`` — a deliberately
        conservative choice (the last leg is off the mapped roads); pass e.g. 20 for a truck.

    Returns
    -------
    Snapped
        Node, offset in metres and minutes, and the ``too_far`` flag per point.
    """
    geoms = geoms_in(net, points, "points")
    xy = shapely.get_coordinates(geoms)  # one row per non-empty point
    if len(xy) != len(geoms) or np.any(shapely.get_type_id(geoms) != 0):
        bad = np.flatnonzero(shapely.is_empty(geoms) | (shapely.get_type_id(geoms) != 0))
        raise NetworkError(
            f"`points` must all be non-empty Points; {len(bad)} are not (rows {bad[:10].tolist()})"
        )
    return snap_xy(net, xy, max_snap_m=max_snap_m, access_speed_kmh=access_speed_kmh)


def snap_xy(
    net: Network,
    xy: np.ndarray,
    *,
    max_snap_m: float = 500.0,
    access_speed_kmh: float | None = None,
) -> Snapped:
    """Snap coordinates in the network's CRS to their nearest nodes (as :func:`snap_points`).

    For callers that hold the points as an ``(n, 2)`` array in ``net.crs`` already (a
    partitioned run reprojects its people once): no geometries are built or read.

    Parameters
    ----------
    net
        The network.
    xy
        ``(n, 2)`` finite coordinates in ``net.crs``.
    max_snap_m, access_speed_kmh
        As for :func:`snap_points`.

    Returns
    -------
    Snapped
        Node, offset in metres and minutes, and the ``too_far`` flag per point.
    """
    speed = check_positive(
        "access_speed_kmh", net.access_speed_kmh if access_speed_kmh is None else access_speed_kmh
    )
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(xy).all():
        bad = np.flatnonzero(~np.isfinite(xy).all(axis=1))
        raise NetworkError(f"`xy` must be finite; rows {bad[:10].tolist()} are not")
    # Threads pay off only for many points; below that their start-up dominates (and a
    # single-threaded Dask worker should not start one per core on every call).
    dist_m, node = net.node_tree.query(xy, workers=-1 if len(xy) >= 50_000 else 1)
    dist_m = np.asarray(dist_m, dtype=np.float64)
    return Snapped(
        node=np.asarray(node, dtype=np.int64),
        offset_m=dist_m,
        offset_min=dist_m * MIN_PER_M_PER_KMH / speed,
        too_far=dist_m > max_snap_m,
    )


def _check_nodes(net: Network, nodes: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(nodes)
    if arr.dtype.kind not in "iu":
        raise NetworkError(f"`{what}` must be integer node indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64).ravel()
    if len(arr) and (arr.min() < 0 or arr.max() >= net.n_nodes):
        raise NetworkError(f"`{what}` must be node indices in [0, {net.n_nodes})")
    return arr


def multi_source_times(
    net: Network,
    sources: np.ndarray,
    *,
    source_offset_min: np.ndarray | None = None,
    limit_min: float = np.inf,
) -> tuple[np.ndarray, np.ndarray]:
    """Time from the nearest source to every node, in one Dijkstra pass.

    Each source ``i`` is a virtual node with one arc of weight ``source_offset_min[i]`` (its own
    walk/drive to the network, default 0) into node ``sources[i]``; one
    ``scipy.sparse.csgraph.dijkstra(min_only=True)`` from all virtual nodes then gives each node
    its best total time and, via ``return_sources``, which source won. Several sources may share a
    node (the smaller offset wins).

    Parameters
    ----------
    net
        The network.
    sources
        ``(k,)`` node indices (e.g. ``snap_points(...).node`` of the facilities).
    source_offset_min
        ``(k,)`` minutes added to each source, >= 0.
    limit_min
        Stop searching beyond this time; nodes farther away get ``inf``.

    Returns
    -------
    tuple of numpy.ndarray
        ``time_min`` ``(n,)`` float64 (inf if unreached or beyond ``limit_min``) and ``nearest``
        ``(n,)`` int64 index into ``sources`` (-1 if unreached). Ties go to either source.
    """
    src = _check_nodes(net, sources, "sources")
    if len(src) == 0:
        raise NetworkError("`sources` is empty")
    if source_offset_min is None:
        offset = np.zeros(len(src))
    else:
        offset = np.asarray(source_offset_min, dtype=np.float64).ravel()
        if offset.shape != src.shape:
            raise NetworkError(
                f"`source_offset_min` has {offset.shape[0]} values for {len(src)} sources"
            )
        if np.any(~np.isfinite(offset) | (offset < 0)):
            raise NetworkError("`source_offset_min` must be finite and >= 0")
    if np.isnan(limit_min) or limit_min < 0:
        raise NetworkError(f"`limit_min` was {limit_min!r} but must be >= 0")
    g = net.graph
    n, k = net.n_nodes, len(src)
    # Virtual rows n..n+k-1, one arc each; explicit zero weights are kept as edges by csgraph
    # for CSR input (tests pin this).
    idx_dtype = g.indices.dtype
    indptr = np.concatenate([g.indptr, g.indptr[-1] + np.arange(1, k + 1, dtype=g.indptr.dtype)])
    aug = sp.csr_matrix(
        (
            np.concatenate([g.data, offset]),
            np.concatenate([g.indices, src.astype(idx_dtype)]),
            indptr.astype(idx_dtype),
        ),
        shape=(n + k, n + k),
    )
    dist, _, winner = dijkstra(
        aug,
        directed=True,
        indices=np.arange(n, n + k),
        min_only=True,
        return_predecessors=True,
        limit=limit_min,
    )
    time_min = np.asarray(dist[:n], dtype=np.float64)
    win = np.asarray(winner[:n], dtype=np.int64)
    nearest = np.where(win >= n, win - n, -1)
    nearest[~np.isfinite(time_min)] = -1
    return time_min, nearest


def shortest_path_arcs(net: Network, source: int, target: int) -> tuple[float, np.ndarray]:
    """Fastest route between two nodes.

    Parameters
    ----------
    net
        The network.
    source, target
        Node indices.

    Returns
    -------
    tuple
        Travel time in minutes (``inf`` if unreachable) and the arc ids in travel order (empty if
        unreachable or ``source == target``); see :func:`route_geometry`.
    """
    s, t = _check_nodes(net, np.array([source, target]), "source/target")
    if s == t:
        return 0.0, np.empty(0, dtype=np.int64)
    dist, pred = dijkstra(net.graph, directed=True, indices=s, return_predecessors=True)
    if not np.isfinite(dist[t]):
        return float("inf"), np.empty(0, dtype=np.int64)
    path = [int(t)]
    while path[-1] != s:
        path.append(int(pred[path[-1]]))
    return float(dist[t]), path_arcs(net, np.array(path[::-1], dtype=np.int64))


def path_arcs(net: Network, nodes: np.ndarray) -> np.ndarray:
    """Find the fastest arc between each pair of consecutive nodes of a path.

    Parameters
    ----------
    net
        The network.
    nodes
        Node indices in travel order (e.g. from a shortest-path tree).

    Returns
    -------
    numpy.ndarray
        Arc ids in travel order (parallel arcs: the fastest), for :func:`route_geometry`.

    Raises
    ------
    NetworkError
        If two consecutive nodes are not joined by an arc.
    """
    nodes = _check_nodes(net, nodes, "nodes")
    if len(nodes) < 2:
        return np.empty(0, dtype=np.int64)
    keys, arcs = net.arc_lookup
    want = nodes[:-1] * np.int64(net.n_nodes) + nodes[1:]
    pos = np.minimum(np.searchsorted(keys, want), max(len(keys) - 1, 0))
    if len(keys) == 0 or np.any(keys[pos] != want):
        raise NetworkError("consecutive path nodes are not joined by an arc")
    return arcs[pos]


def route_geometry(net: Network, arcs: np.ndarray) -> shapely.LineString:
    """Join the geometries of consecutive arcs into one LineString in travel order.

    Parameters
    ----------
    net
        The network.
    arcs
        Arc ids in travel order (as from :func:`shortest_path_arcs`).

    Returns
    -------
    shapely.LineString
        In ``net.crs``; empty for no arcs.
    """
    arcs = np.asarray(arcs, dtype=np.int64).ravel()
    if len(arcs) == 0:
        return shapely.LineString()
    if arcs.min() < 0 or arcs.max() >= net.n_arcs:
        raise NetworkError(f"`arcs` must be arc ids in [0, {net.n_arcs})")
    tails, heads = arc_nodes(net)
    broken = np.flatnonzero(heads[arcs[:-1]] != tails[arcs[1:]])
    if len(broken):
        raise NetworkError(f"arcs {arcs[broken[0]]} and {arcs[broken[0] + 1]} do not connect")
    pieces = []
    for i, a in enumerate(arcs):
        c = shapely.get_coordinates(net.edge_geometry[net.arc_edge[a]])
        if not net.arc_forward[a]:
            c = c[::-1]
        pieces.append(c if i == 0 else c[1:])
    return shapely.LineString(np.vstack(pieces))


def to_networkx(net: Network) -> nx.MultiDiGraph:
    """Convert the network to a networkx MultiDiGraph (the independent cross-check).

    Nodes are ``0..n-1`` with ``x``/``y``; one edge per arc, keyed by arc id, with ``time_min``,
    ``length_m``, ``edge`` (edge index) and ``forward``. ``G.graph`` holds ``crs`` and ``mode``.
    """
    import networkx as nx

    g = nx.MultiDiGraph(crs=net.crs, mode=net.mode)
    g.add_nodes_from(
        (i, {"x": float(x), "y": float(y)}) for i, (x, y) in enumerate(net.node_xy.tolist())
    )
    tails, heads = arc_nodes(net)
    attrs = (
        {"time_min": t, "length_m": x, "edge": e, "forward": f}
        for t, x, e, f in zip(
            net.arc_time_min.tolist(),
            net.edge_length_m[net.arc_edge].tolist(),
            net.arc_edge.tolist(),
            net.arc_forward.tolist(),
            strict=True,
        )
    )
    g.add_edges_from(zip(tails.tolist(), heads.tolist(), range(net.n_arcs), attrs, strict=True))
    return g


def edges_frame(net: Network) -> gpd.GeoDataFrame:
    """One row per edge with its attributes, in ``net.crs``.

    Columns: ``edge_id``, ``road_class``, ``u``, ``v``, ``length_m``, ``speed_kmh``,
    ``forward``/``backward`` (an arc exists in that direction), ``time_forward_min`` /
    ``time_backward_min`` (NaN without an arc), ``geometry``. Index ``edge`` = edge index.
    """
    fwd = np.full(net.n_edges, np.nan)
    bwd = np.full(net.n_edges, np.nan)
    f = net.arc_forward
    fwd[net.arc_edge[f]] = net.arc_time_min[f]
    bwd[net.arc_edge[~f]] = net.arc_time_min[~f]
    return gpd.GeoDataFrame(
        {
            "edge_id": net.edge_id,
            "road_class": net.edge_class,
            "u": net.edge_u,
            "v": net.edge_v,
            "length_m": net.edge_length_m,
            "speed_kmh": net.edge_speed_kmh,
            "forward": ~np.isnan(fwd),
            "backward": ~np.isnan(bwd),
            "time_forward_min": fwd,
            "time_backward_min": bwd,
        },
        geometry=net.edge_geometry,
        crs=net.crs,
        index=pd.RangeIndex(net.n_edges, name="edge"),
    )

"""Road-network engine: walk/drive travel-time graphs, snapping, multi-source shortest paths.

Shared by the elder-care coverage (walk, 15-minute circle) and relief-delivery (drive, 3/5 h
targets, road closures) analyses. A :class:`Network` is a frozen bundle of numpy arrays:

* **nodes** (``node_xy``, metres in a projected CRS), **edges** (one per road piece, with its
  geometry oriented ``u -> v``, length, class and speed) and **arcs** (the directed, traversable
  halves of edges: two per two-way edge, one per one-way edge in drive mode);
* ``graph``, a ``scipy.sparse.csr_matrix`` of arc travel times in minutes (the minimum over
  parallel arcs), used directly by ``scipy.sparse.csgraph.dijkstra``.

Engine choices
--------------
* CSR arrays + ``scipy.sparse.csgraph.dijkstra`` rather than a networkx graph: one multi-source
  pass (``min_only=True``) gives every node its time to the nearest facility in C, for millions of
  nodes, without a Python object per node. Facilities' own walk to the network (their snap offset)
  is honoured by one *virtual node per source* with a single arc of that offset into the
  network; ``return_sources`` then names the winning facility directly.
* networkx only as the independent cross-check (:func:`to_networkx`) and for algorithms that need
  it elsewhere (min-cost flow).
* Points snap to the nearest *node* with ``scipy.spatial.cKDTree``; the straight line from the
  point to the node counts in the travel time (see :func:`snap_points`).
* Closures (:func:`with_closures`) rewrite only the arc arrays and the CSR matrix, so an audit
  can be re-run after a flood without rebuilding from geometry.
* Topology from a roads layer: nodes are line *end points* merged within ``snap_tol_m``; lines
  that cross or touch at interior vertices are NOT connected (like real over/under-passes), so
  the layer must be noded at junctions. Topology from OSM uses the OSM node ids (see
  :mod:`geo_mz.network.osm`).
* Only the largest connected component is kept (weakly connected for walking, *strongly*
  connected for driving so every kept node can reach every other); everything removed is counted
  in ``Network.dropped``, never silently.

Units are in every name: ``_m`` metres, ``_min`` minutes, ``_kmh`` km/h.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from pyproj import CRS, Transformer
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from geo_mz.core.errors import CrsError, GeoMzError
from geo_mz.core.projection import gk_zone_crs, parse_crs

if TYPE_CHECKING:
    pass

Mode = Literal["walk", "drive"]
MODES: tuple[str, ...] = ("walk", "drive")

#: General walking speed. DERIVED (STANDARDS.md §B "Walking speed"): the 15-minute life circle of
#: GB 50180-2018 is 800-1,000 m, so 1,000 m / 15 min = 4.0 km/h.
WALK_SPEED_KMH = 4.0
#: Elderly walking speed. DERIVED (STANDARDS.md §B): 800 m / 15 min = 3.2 km/h; no normative
#: elderly speed was found (UNSOURCED beyond that). The elder-care coverage analysis uses it.
ELDERLY_WALK_SPEED_KMH = 3.2

#: Road classes of the roads layer (layers/roads.toml ``road_class`` codes).
ROAD_CLASSES: tuple[str, ...] = (
    "motorway",
    "trunk",
    "primary",
    "secondary",
    "tertiary",
    "residential",
    "rural",
    "footway",
)
#: Classes open to walking: all but motorways (local choice; both directions always). Trunk roads
#: stay walkable: in Chinese cities 快速路/国道 mostly carry sidewalks (in Wuhan's 光谷 the main
#: avenue is trunk), and excluding them cuts whole districts apart.
WALKABLE_CLASSES: frozenset[str] = frozenset(ROAD_CLASSES) - {"motorway"}

#: Planning driving speeds by road class, km/h. UNSOURCED (recalled), STANDARDS.md §C "Planning
#: vehicle speeds": JTG B01-2014 design speeds (高速 100, 一级 80, 二级 60, 三级 40, 四级 30/20)
#: mapped onto the catalog classes; ``source_verified=False``. A class absent here (footway) is not
#: drivable. A road's own ``speed_kmh`` takes precedence over this table.
DRIVE_SPEEDS_KMH: Mapping[str, float] = MappingProxyType(
    {"motorway": 100.0, "trunk": 80.0, "primary": 60.0, "secondary": 40.0}
    | {"tertiary": 30.0, "residential": 20.0, "rural": 30.0}
)
DRIVE_SPEEDS_SOURCE_VERIFIED = False

# metres / (km/h) -> minutes: 60 min/h / 1000 m/km
MIN_PER_M_PER_KMH = 0.06


class NetworkError(GeoMzError, ValueError):
    """A network cannot be built or queried as asked (bad roads, bad indices, bad options)."""


@dataclass(frozen=True, eq=False, repr=False)
class Network:
    """A travel-time network for one mode, as arrays (see the module docstring).

    ``n`` nodes, ``e`` edges (undirected road pieces), ``m`` arcs (their traversable directions).
    ``dropped`` counts what the build removed: ``nodes``, ``edges`` and ``components`` outside the
    largest component, ``zero_length`` degenerate edges, and ``not_in_mode`` edges whose class the
    mode cannot use (e.g. footways when driving). ``access_speed_kmh`` is the default speed of the
    straight leg point <-> node in :func:`snap_points`: the walking speed a walk network was built
    with, ``WALK_SPEED_KMH`` for drive networks.
    """

    mode: Mode  #: "walk" or "drive"
    crs: str  #: projected metric CRS of every coordinate, e.g. "EPSG:4547"
    node_xy: np.ndarray  #: (n, 2) float64 node coordinates, metres
    edge_u: np.ndarray  #: (e,) int64 node of each edge's first vertex
    edge_v: np.ndarray  #: (e,) int64 node of each edge's last vertex
    edge_length_m: np.ndarray  #: (e,) float64 length along the geometry
    edge_geometry: np.ndarray  #: (e,) shapely LineStrings in crs, oriented u -> v
    edge_id: np.ndarray  #: (e,) object source id: road_id, or the OSM way id as str
    edge_class: np.ndarray  #: (e,) object road-class code (ROAD_CLASSES)
    edge_speed_kmh: np.ndarray  #: (e,) speed for this mode (after disaster/slow factors)
    arc_edge: np.ndarray  #: (m,) int64 edge each directed arc comes from
    arc_forward: np.ndarray  #: (m,) bool: the arc runs u -> v
    arc_time_min: np.ndarray  #: (m,) float64 travel time of each arc, minutes
    graph: sp.csr_matrix  #: (n, n) arc times, minimum over parallel arcs
    dropped: dict[str, int]  #: what the build removed (see above)
    access_speed_kmh: float = WALK_SPEED_KMH  #: default speed of the snap leg

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return int(self.node_xy.shape[0])

    @property
    def n_edges(self) -> int:
        """Number of edges (closed edges included: they just have no arcs)."""
        return int(self.edge_u.shape[0])

    @property
    def n_arcs(self) -> int:
        """Number of directed arcs."""
        return int(self.arc_edge.shape[0])

    @functools.cached_property
    def node_tree(self) -> cKDTree:
        """KD-tree of ``node_xy``, built on first use and kept with this network."""
        return cKDTree(self.node_xy)

    @functools.cached_property
    def arc_lookup(self) -> tuple[np.ndarray, np.ndarray]:
        """Arcs sorted by ``tail * n + head`` (fastest first): keys and arc ids, for paths."""
        tails, heads = arc_nodes(self)
        key = tails * np.int64(self.n_nodes) + heads
        order = np.lexsort((self.arc_time_min, key))
        return key[order], order.astype(np.int64)

    def __repr__(self) -> str:
        return (
            f"Network(mode={self.mode!r}, crs={self.crs!r}, n_nodes={self.n_nodes}, "
            f"n_edges={self.n_edges}, n_arcs={self.n_arcs}, dropped={self.dropped})"
        )


@dataclass(frozen=True, eq=False)
class Snapped:
    """Points snapped to their nearest network node (``k`` points)."""

    node: np.ndarray  #: (k,) int64 nearest node of each point
    offset_m: np.ndarray  #: (k,) float64 straight distance point -> node
    offset_min: np.ndarray  #: (k,) float64 that distance at the access speed
    too_far: np.ndarray  #: (k,) bool offset_m > max_snap_m: reported, never dropped


# --------------------------------------------------------------------------- validation helpers


def check_mode(mode: str) -> None:
    """Raise NetworkError unless ``mode`` is ``"walk"`` or ``"drive"``."""
    if mode not in MODES:
        raise NetworkError(f"`mode` was {mode!r} but is expected to be one of {list(MODES)}")


def check_positive(name: str, value: float) -> float:
    """Return ``value`` as a float; raise NetworkError unless it is positive and finite."""
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise NetworkError(f"`{name}` was {value!r} but must be a positive, finite number")
    return v


def _drive_table(drive_speeds_kmh: Mapping[str, float | None] | None) -> dict[str, float]:
    """Merge user speeds over ``DRIVE_SPEEDS_KMH``; ``None`` marks a class not drivable."""
    table: dict[str, float | None] = dict(DRIVE_SPEEDS_KMH)
    if drive_speeds_kmh:
        unknown = sorted(set(drive_speeds_kmh) - set(ROAD_CLASSES))
        if unknown:
            raise NetworkError(
                f"`drive_speeds_kmh` has unknown road classes {unknown}; "
                f"allowed: {list(ROAD_CLASSES)}"
            )
        table.update(drive_speeds_kmh)
    out = {}
    for cls, speed in table.items():
        if speed is None:
            continue
        out[cls] = check_positive(f"drive_speeds_kmh[{cls!r}]", speed)
    return out


def _crs_string(crs: CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg is not None else crs.to_string()


def _default_measure_crs(gdf: gpd.GeoDataFrame) -> CRS:
    """Return the CGCS2000 GK zone CRS of the layer's centre (as ``measure_crs_for`` does).

    Outside China's GK zones (e.g. the Helsinki test data) the WGS84 UTM zone of the centre.
    Computed from the transformed bounds, not by reprojecting every geometry.
    """
    to_ll = Transformer.from_crs(gdf.crs, "EPSG:4326", always_xy=True)
    w, s, e, n = to_ll.transform_bounds(*gdf.total_bounds)
    lon, lat = (w + e) / 2.0, (s + n) / 2.0
    try:
        return CRS.from_user_input(gk_zone_crs(lon))
    except CrsError:
        infos = query_utm_crs_info(
            datum_name="WGS 84", area_of_interest=AreaOfInterest(lon, lat, lon, lat)
        )
        if not infos:
            raise CrsError(f"no UTM zone found for lon {lon:.3f}, lat {lat:.3f}") from None
        return CRS.from_epsg(int(infos[0].code))


def to_metric(
    gdf: gpd.GeoDataFrame, measure_crs: str | None, what: str
) -> tuple[gpd.GeoDataFrame, str]:
    """Reproject ``gdf`` to ``measure_crs`` (chosen for the data when None), with the CRS."""
    if gdf.crs is None:
        raise CrsError(f"{what} has no CRS; set it with .set_crs(...) before building a network")
    if isinstance(measure_crs, str | int):  # parsed and checked once per process (parts)
        target, name = _metric_target(measure_crs)
    else:
        chosen = parse_crs(measure_crs) if measure_crs is not None else _default_measure_crs(gdf)
        assert chosen is not None
        target, name = _checked_metric(chosen)
    out = gdf if CRS.from_user_input(gdf.crs) == target else gdf.to_crs(target)
    return out, name


def _checked_metric(target: CRS) -> tuple[CRS, str]:
    """Refuse a geographic or non-metre CRS; return it and its name (``EPSG:…``)."""
    if not target.is_projected:
        raise CrsError(
            f"measure_crs {target.to_string()} is geographic; networks need a projected metric "
            "CRS (e.g. the CGCS2000 GK zone from geo_mz.core.projection.gk_zone_crs)"
        )
    if not (target.axis_info and target.axis_info[0].unit_name in ("metre", "meter")):
        raise CrsError(f"measure_crs {target.to_string()} is not in metres")
    return target, _crs_string(target)


@functools.lru_cache(maxsize=32)
def _metric_target(measure_crs: str | int) -> tuple[CRS, str]:
    target = parse_crs(measure_crs)
    assert target is not None
    return _checked_metric(target)


def geoms_in(net: Network, data: gpd.GeoDataFrame | gpd.GeoSeries, what: str) -> np.ndarray:
    """Return the geometries of ``data`` in the network's CRS (a CRS is required)."""
    if isinstance(data, gpd.GeoDataFrame):
        geoms = data.geometry
    elif isinstance(data, gpd.GeoSeries):
        geoms = data
    else:
        raise TypeError(f"`{what}` must be a GeoDataFrame or GeoSeries, got {type(data).__name__}")
    if geoms.crs is None:
        raise CrsError(
            f"`{what}` has no CRS; set it with .set_crs(...) (the network is in {net.crs})"
        )
    if CRS.from_user_input(geoms.crs) != CRS.from_user_input(net.crs):
        geoms = geoms.to_crs(net.crs)
    return np.asarray(geoms.values)


# --------------------------------------------------------------------------- building


def _bool_column(values: pd.Series) -> np.ndarray:
    if isinstance(values.dtype, pd.BooleanDtype):  # as read from a workspace: no copy first
        return values.to_numpy(dtype=bool, na_value=False)
    return values.astype("boolean").fillna(False).to_numpy(dtype=bool)


def _cluster_points(xy: np.ndarray, tol_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Label points merged within ``tol_m`` (single linkage); return labels and cluster means."""
    # Exact duplicates first: each (x, y) viewed as one complex number sorts like the rows of
    # np.unique(xy, axis=0) (x, then y) and gives the same labels, several times faster.
    flat = np.ascontiguousarray(xy, dtype=np.float64).view(np.complex128).ravel()
    uniq_c, inv = np.unique(flat, return_inverse=True)
    uniq = np.column_stack([uniq_c.real, uniq_c.imag])
    inv = inv.ravel()
    if tol_m > 0 and len(uniq) > 1:
        pairs = cKDTree(uniq).query_pairs(tol_m, output_type="ndarray")
        if len(pairs):
            g = sp.coo_matrix(
                (np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(uniq), len(uniq))
            )
            k, lab = connected_components(g, directed=False)
            cnt = np.bincount(lab, minlength=k)
            centres = np.column_stack(
                [np.bincount(lab, uniq[:, i], minlength=k) / cnt for i in range(2)]
            )
            return lab[inv].astype(np.int64), centres
    return inv.astype(np.int64), uniq


def _end_points(parts: np.ndarray) -> np.ndarray:
    """First then last vertex of every line, as a (2k, 2) array (k = len(parts))."""
    coords, owner = shapely.get_coordinates(parts, return_index=True)
    first = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]]) if len(owner) else owner
    if len(first) != len(parts):  # an empty part: the slow path, as before
        return shapely.get_coordinates(
            np.concatenate([shapely.get_point(parts, i) for i in (0, -1)])
        )
    last = np.r_[first[1:] - 1, len(owner) - 1]
    return np.concatenate([coords[first], coords[last]])


def _csr_min(tails: np.ndarray, heads: np.ndarray, w: np.ndarray, n: int) -> sp.csr_matrix:
    """CSR matrix of ``w`` keeping the minimum over duplicate (tail, head) pairs."""
    key = tails.astype(np.int64) * np.int64(n) + heads
    order = np.argsort(key, kind="stable")
    if np.any(key[order][1:] == key[order][:-1]):  # parallel arcs: the fastest first
        order = np.lexsort((w, heads, tails))
    t, h, x = tails[order], heads[order], w[order]
    first = np.ones(len(t), dtype=bool)
    first[1:] = (t[1:] != t[:-1]) | (h[1:] != h[:-1])
    t, h, x = t[first], h[first], x[first]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(t, minlength=n), out=indptr[1:])
    idx_dtype = np.int32 if max(n, len(t)) < np.iinfo(np.int32).max else np.int64
    return sp.csr_matrix(
        (x.astype(np.float64), h.astype(idx_dtype), indptr.astype(idx_dtype)), shape=(n, n)
    )


def _arcs_of(
    edges: np.ndarray, direction: np.ndarray, edge_time_min: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arcs of ``edges``: forward where direction >= 0, backward where <= 0, sorted by edge."""
    fwd = edges[direction[edges] >= 0]
    bwd = edges[direction[edges] <= 0]
    arc_edge = np.concatenate([fwd, bwd])
    arc_forward = np.concatenate([np.ones(len(fwd), bool), np.zeros(len(bwd), bool)])
    order = np.lexsort((~arc_forward, arc_edge))
    arc_edge, arc_forward = arc_edge[order], arc_forward[order]
    return arc_edge, arc_forward, edge_time_min[arc_edge]


def arc_nodes(net: Network) -> tuple[np.ndarray, np.ndarray]:
    """Tail and head node of every arc."""
    u, v = net.edge_u[net.arc_edge], net.edge_v[net.arc_edge]
    return np.where(net.arc_forward, u, v), np.where(net.arc_forward, v, u)


def assemble(
    *,
    mode: Mode,
    crs: str,
    geoms: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    node_xy: np.ndarray,
    edge_id: np.ndarray,
    edge_class: np.ndarray,
    speed_kmh: np.ndarray,
    direction: np.ndarray,
    snap_ends: bool,
    loop_tol_m: float,
    access_speed_kmh: float,
    dropped: dict[str, int],
    keep_all: bool = False,
) -> Network:
    """Build a Network from usable edges whose end nodes are already labelled.

    ``direction``: 0 two-way, 1 only ``u -> v``, -1 only ``v -> u``. With ``snap_ends`` the
    first/last vertex of each geometry is moved onto its (merged) node so routes join exactly.
    """
    if snap_ends:
        coords, owner = shapely.get_coordinates(geoms, return_index=True)
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        ends = np.r_[starts[1:] - 1, len(owner) - 1]
        new_start, new_end = node_xy[u[owner[starts]]], node_xy[v[owner[ends]]]
        moved = np.zeros(len(geoms), dtype=bool)  # only lines whose end moved are rewritten
        moved[owner[starts][(coords[starts] != new_start).any(axis=1)]] = True
        moved[owner[ends][(coords[ends] != new_end).any(axis=1)]] = True
        if moved.any():
            coords[starts] = new_start
            coords[ends] = new_end
            sel = np.flatnonzero(moved)
            geoms = geoms.copy()
            geoms[sel] = shapely.set_coordinates(geoms[sel].copy(), coords[moved[owner]])
    length_m = shapely.length(geoms)
    degenerate = (length_m <= 0) | ((u == v) & (length_m <= 2 * loop_tol_m))
    dropped = {**dropped, "zero_length": int(degenerate.sum())}
    keep = np.flatnonzero(~degenerate)
    if len(keep) == 0:
        raise NetworkError(f"no usable edges for mode {mode!r} (dropped: {dropped})")

    # Components on the nodes the remaining edges use.
    used, inv = np.unique(np.concatenate([u[keep], v[keep]]), return_inverse=True)
    ku, kv = inv[: len(keep)], inv[len(keep) :]
    n = len(used)
    t_all = np.concatenate([ku[direction[keep] >= 0], kv[direction[keep] <= 0]])
    h_all = np.concatenate([kv[direction[keep] >= 0], ku[direction[keep] <= 0]])
    adj = sp.coo_matrix((np.ones(len(t_all)), (t_all, h_all)), shape=(n, n)).tocsr()
    connection = "weak" if mode == "walk" else "strong"
    ncomp, label = connected_components(adj, directed=True, connection=connection)
    big = int(np.argmax(np.bincount(label)))
    in_big = np.ones(n, dtype=bool) if keep_all else label == big
    ekeep = in_big[ku] & in_big[kv]
    dropped = {
        "nodes": int(n - in_big.sum()),
        "edges": int((~ekeep).sum()),
        "components": 0 if keep_all else int(ncomp - 1),
        **dropped,
    }

    sel = keep[ekeep]
    new_index = np.cumsum(in_big) - 1
    eu, ev = new_index[ku[ekeep]], new_index[kv[ekeep]]
    nodes = used[in_big]
    length_m = length_m[sel]
    speed = speed_kmh[sel].astype(np.float64)
    time_min = length_m * MIN_PER_M_PER_KMH / speed
    arc_edge, arc_forward, arc_time = _arcs_of(np.arange(len(sel)), direction[sel], time_min)
    tails = np.where(arc_forward, eu[arc_edge], ev[arc_edge])
    heads = np.where(arc_forward, ev[arc_edge], eu[arc_edge])
    return Network(
        mode=mode,
        crs=crs,
        node_xy=np.ascontiguousarray(node_xy[nodes], dtype=np.float64),
        edge_u=eu.astype(np.int64),
        edge_v=ev.astype(np.int64),
        edge_length_m=length_m.astype(np.float64),
        edge_geometry=geoms[sel],
        edge_id=np.asarray(edge_id, dtype=object)[sel],
        edge_class=np.asarray(edge_class, dtype=object)[sel],
        edge_speed_kmh=speed,
        arc_edge=arc_edge.astype(np.int64),
        arc_forward=arc_forward,
        arc_time_min=arc_time,
        graph=_csr_min(tails, heads, arc_time, len(nodes)),
        dropped=dropped,
        access_speed_kmh=access_speed_kmh,
    )


def mode_speeds(
    mode: Mode,
    classes: np.ndarray,
    own_speed_kmh: np.ndarray | None,
    walk_speed_kmh: float,
    drive_speeds_kmh: Mapping[str, float | None] | None,
    disaster_factor: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Speed of each edge for ``mode`` and whether the mode may use it at all."""
    cls = pd.Series(classes, dtype=object)
    if mode == "walk":
        usable = cls.isin(WALKABLE_CLASSES).to_numpy()
        return np.full(len(cls), walk_speed_kmh), usable
    table = _drive_table(drive_speeds_kmh)
    class_speed = cls.map(table).to_numpy(dtype=float, na_value=np.nan)
    usable = ~np.isnan(class_speed)
    speed = class_speed
    if own_speed_kmh is not None:
        speed = np.where(np.isnan(own_speed_kmh), class_speed, own_speed_kmh)
    return speed * disaster_factor, usable


NETWORK_ROAD_FIELDS = ("road_id", "road_class", "speed_kmh", "oneway")
"""The fields of a roads layer :func:`network_from_roads` reads (a reader may skip the rest)."""


def network_from_roads(
    roads: gpd.GeoDataFrame,
    *,
    mode: Mode,
    measure_crs: str | None = None,
    walk_speed_kmh: float = WALK_SPEED_KMH,
    drive_speeds_kmh: Mapping[str, float | None] | None = None,
    disaster_factor: float = 1.0,
    snap_tol_m: float = 0.5,
    components: str = "largest",
) -> Network:
    """Build a walking or driving network from a roads layer (layers/roads.toml).

    Parameters
    ----------
    roads
        LineStrings/MultiLineStrings with ``road_class`` (catalog codes, required) and optionally
        ``road_id`` (else the index is the id), ``speed_kmh`` (own driving speed, wins over the
        class table) and ``oneway`` (True: drivable only in the drawn direction). Any CRS.
    mode
        ``"walk"``: every class but motorway/trunk, both directions, at ``walk_speed_kmh``.
        ``"drive"``: classes in the speed table (footway excluded), one-way honoured.
    measure_crs
        Projected metric CRS to build in; default the CGCS2000 GK zone of the layer's centre
        (UTM outside China). A geographic CRS is an error.
    walk_speed_kmh
        Walking speed; default ``WALK_SPEED_KMH`` (4.0, DERIVED). Elder-care coverage passes
        ``ELDERLY_WALK_SPEED_KMH`` (3.2). Also the default access speed of :func:`snap_points`.
    drive_speeds_kmh
        Per-class driving speeds merged over ``DRIVE_SPEEDS_KMH`` (UNSOURCED); ``None`` as a value
        makes a class not drivable.
    disaster_factor
        Multiplies every driving speed (relief trucks on damaged roads, e.g. 0.6 as the
        STANDARDS.md §C assumption). Default 1.0 = planning speeds. Ignored for walking.
    snap_tol_m
        End points closer than this are merged into one node (single linkage, so chains of close
        points merge). Interior vertices never connect.
    components
        ``"largest"`` keeps the largest connected component; ``"all"`` keeps every edge. A
        partition of a larger network (:mod:`geo_mz.scale.partition`) needs ``"all"``: which
        component is the largest is a property of the whole network, not of a piece of it.

    Returns
    -------
    Network
        The largest (walk: weakly, drive: strongly) connected component, or everything with
        ``components="all"``; see ``dropped``.

    Raises
    ------
    CrsError
        If ``roads`` has no CRS or ``measure_crs`` is geographic.
    NetworkError
        If the layer lacks ``road_class``, has unknown classes, empty or non-line geometries, or
        non-positive speeds (every problem listed at once).
    """
    if not isinstance(roads, gpd.GeoDataFrame):
        raise TypeError(f"`roads` must be a GeoDataFrame, got {type(roads).__name__}")
    check_mode(mode)
    walk_speed_kmh = check_positive("walk_speed_kmh", walk_speed_kmh)
    disaster_factor = check_positive("disaster_factor", disaster_factor)
    if not np.isfinite(snap_tol_m) or snap_tol_m < 0:
        raise NetworkError(f"`snap_tol_m` was {snap_tol_m!r} but must be >= 0")
    if components not in ("largest", "all"):
        raise NetworkError(f"`components` was {components!r} but must be 'largest' or 'all'")
    problems = []
    geom_arr = np.asarray(roads.geometry.values)
    bad = np.flatnonzero(
        shapely.is_missing(geom_arr)
        | shapely.is_empty(geom_arr)
        | ~np.isin(shapely.get_type_id(geom_arr), (1, 5))
    )
    if len(bad):
        problems.append(
            f"{len(bad)} row(s) have a missing, empty or non-line geometry "
            f"(rows {bad[:10].tolist()}); only LineString/MultiLineString are allowed"
        )
    if "road_class" not in roads.columns:
        problems.append(f"column 'road_class' is missing (catalog codes: {list(ROAD_CLASSES)})")
        classes = np.array([], dtype=object)
    else:
        classes = roads["road_class"].to_numpy(dtype=object)
        unknown = sorted({str(c) for c in classes if c not in ROAD_CLASSES})
        if unknown:
            problems.append(f"unknown road_class values {unknown}; allowed: {list(ROAD_CLASSES)}")
    own_speed = None
    if "speed_kmh" in roads.columns:
        own_speed = pd.to_numeric(roads["speed_kmh"]).to_numpy(dtype=float, na_value=np.nan)
        nonpos = np.flatnonzero(~np.isnan(own_speed) & ~(own_speed > 0))
        if len(nonpos):
            problems.append(f"speed_kmh must be > 0 (rows {nonpos[:10].tolist()})")
    if problems:
        raise NetworkError("roads cannot be built into a network:\n  - " + "\n  - ".join(problems))

    proj, crs = to_metric(roads, measure_crs, "roads")
    geoms = np.asarray(proj.geometry.values)
    if np.all(shapely.get_type_id(geoms) == 1):  # LineStrings only: each row is its own part
        parts, row = geoms, np.arange(len(geoms))
    else:
        parts, row = shapely.get_parts(geoms, return_index=True)
    if shapely.has_z(parts).any():
        parts = shapely.force_2d(parts)
    ids = roads["road_id"] if "road_id" in roads.columns else roads.index.to_series()
    edge_id = ids.to_numpy(dtype=object)[row]
    edge_class = classes[row]
    oneway = _bool_column(roads["oneway"]) if "oneway" in roads.columns else None
    own = None if own_speed is None else own_speed[row]
    speed, usable = mode_speeds(
        mode, edge_class, own, walk_speed_kmh, drive_speeds_kmh, disaster_factor
    )
    direction = np.zeros(len(parts), dtype=np.int8)
    if mode == "drive" and oneway is not None:
        direction[oneway[row]] = 1
    use = np.flatnonzero(usable)
    dropped = {"not_in_mode": int(len(parts) - len(use))}
    if len(use) == 0:
        raise NetworkError(f"no road class in `roads` is usable for mode {mode!r}")
    parts = parts[use]
    ends = _end_points(parts)
    label, node_xy = _cluster_points(ends, snap_tol_m)
    return assemble(
        mode=mode,
        crs=crs,
        geoms=parts,
        u=label[: len(use)],
        v=label[len(use) :],
        node_xy=node_xy,
        edge_id=edge_id[use],
        edge_class=edge_class[use],
        speed_kmh=speed[use],
        direction=direction[use],
        snap_ends=True,
        loop_tol_m=snap_tol_m,
        access_speed_kmh=walk_speed_kmh if mode == "walk" else WALK_SPEED_KMH,
        dropped=dropped,
        keep_all=components == "all",
    )


# --------------------------------------------------------------------------- closures


# --------------------------------------------------------------------------- queries


# --------------------------------------------------------------------------- export

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

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
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
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from geo_mz.core.errors import CrsError, GeoMzError
from geo_mz.core.projection import gk_zone_crs, parse_crs

if TYPE_CHECKING:
    import networkx as nx

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
_MIN_PER_M_PER_KMH = 0.06


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
        tails, heads = _arc_nodes(self)
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


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise NetworkError(f"`mode` was {mode!r} but is expected to be one of {list(MODES)}")


def _check_positive(name: str, value: float) -> float:
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
        out[cls] = _check_positive(f"drive_speeds_kmh[{cls!r}]", speed)
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


def _to_metric(
    gdf: gpd.GeoDataFrame, measure_crs: str | None, what: str
) -> tuple[gpd.GeoDataFrame, str]:
    if gdf.crs is None:
        raise CrsError(f"{what} has no CRS; set it with .set_crs(...) before building a network")
    target = parse_crs(measure_crs) if measure_crs is not None else _default_measure_crs(gdf)
    assert target is not None
    if not target.is_projected:
        raise CrsError(
            f"measure_crs {target.to_string()} is geographic; networks need a projected metric "
            "CRS (e.g. the CGCS2000 GK zone from geo_mz.core.projection.gk_zone_crs)"
        )
    if not (target.axis_info and target.axis_info[0].unit_name in ("metre", "meter")):
        raise CrsError(f"measure_crs {target.to_string()} is not in metres")
    out = gdf if CRS.from_user_input(gdf.crs) == target else gdf.to_crs(target)
    return out, _crs_string(target)


def _geoms_in(net: Network, data: gpd.GeoDataFrame | gpd.GeoSeries, what: str) -> np.ndarray:
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
    return values.astype("boolean").fillna(False).to_numpy(dtype=bool)


def _cluster_points(xy: np.ndarray, tol_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Label points merged within ``tol_m`` (single linkage); return labels and cluster means."""
    uniq, inv = np.unique(xy, axis=0, return_inverse=True)
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


def _csr_min(tails: np.ndarray, heads: np.ndarray, w: np.ndarray, n: int) -> sp.csr_matrix:
    """CSR matrix of ``w`` keeping the minimum over duplicate (tail, head) pairs."""
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


def _arc_nodes(net: Network) -> tuple[np.ndarray, np.ndarray]:
    """Tail and head node of every arc."""
    u, v = net.edge_u[net.arc_edge], net.edge_v[net.arc_edge]
    return np.where(net.arc_forward, u, v), np.where(net.arc_forward, v, u)


def _assemble(
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
        coords[starts] = node_xy[u[owner[starts]]]
        coords[ends] = node_xy[v[owner[ends]]]
        geoms = shapely.set_coordinates(geoms.copy(), coords)
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
    time_min = length_m * _MIN_PER_M_PER_KMH / speed
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


def _mode_speeds(
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
    _check_mode(mode)
    walk_speed_kmh = _check_positive("walk_speed_kmh", walk_speed_kmh)
    disaster_factor = _check_positive("disaster_factor", disaster_factor)
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

    proj, crs = _to_metric(roads, measure_crs, "roads")
    parts, row = shapely.get_parts(np.asarray(proj.geometry.values), return_index=True)
    parts = shapely.force_2d(parts)
    ids = roads["road_id"] if "road_id" in roads.columns else roads.index.to_series()
    edge_id = ids.to_numpy(dtype=object)[row]
    edge_class = classes[row]
    oneway = _bool_column(roads["oneway"]) if "oneway" in roads.columns else None
    own = None if own_speed is None else own_speed[row]
    speed, usable = _mode_speeds(
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
    ends = shapely.get_coordinates(np.concatenate([shapely.get_point(parts, i) for i in (0, -1)]))
    label, node_xy = _cluster_points(ends, snap_tol_m)
    return _assemble(
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


def network_from_osm(
    pbf: str | Path,
    *,
    mode: Mode,
    bounding_box: Sequence[float] | None = None,
    walk_speed_kmh: float = WALK_SPEED_KMH,
    drive_speeds_kmh: Mapping[str, float | None] | None = None,
    disaster_factor: float = 1.0,
    measure_crs: str | None = None,
) -> Network:
    """Build a walking or driving network from an OpenStreetMap PBF extract (via pyrosm).

    Parameters
    ----------
    pbf
        Path of the ``.osm.pbf`` file.
    mode
        ``"walk"`` (pyrosm ``walking``) or ``"drive"`` (pyrosm ``driving``).
    bounding_box
        ``(min_lon, min_lat, max_lon, max_lat)`` to read only part of the file.
    walk_speed_kmh, drive_speeds_kmh, disaster_factor, measure_crs
        As in :func:`network_from_roads`. ``maxspeed`` tags win over the class table.

    Returns
    -------
    Network
        Nodes are OSM nodes (ways sharing an OSM node connect; nothing is merged by distance);
        ``edge_id`` is the OSM way id as str. See :mod:`geo_mz.network.osm` for the tag mapping.
    """
    from geo_mz.network.osm import read_osm_network

    return read_osm_network(
        pbf,
        mode=mode,
        bounding_box=bounding_box,
        walk_speed_kmh=walk_speed_kmh,
        drive_speeds_kmh=drive_speeds_kmh,
        disaster_factor=disaster_factor,
        measure_crs=measure_crs,
    )


# --------------------------------------------------------------------------- closures


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
    tails, heads = _arc_nodes(net)
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
    geoms = _geoms_in(net, polygons, "polygons")
    geoms = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    mask = np.zeros(net.n_edges, dtype=bool)
    if len(geoms):
        _, hit = shapely.STRtree(net.edge_geometry).query(geoms, predicate="intersects")
        mask[hit] = True
    return mask


# --------------------------------------------------------------------------- queries


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
    geoms = _geoms_in(net, points, "points")
    speed = _check_positive(
        "access_speed_kmh", net.access_speed_kmh if access_speed_kmh is None else access_speed_kmh
    )
    xy = shapely.get_coordinates(geoms)  # one row per non-empty point
    if len(xy) != len(geoms) or np.any(shapely.get_type_id(geoms) != 0):
        bad = np.flatnonzero(shapely.is_empty(geoms) | (shapely.get_type_id(geoms) != 0))
        raise NetworkError(
            f"`points` must all be non-empty Points; {len(bad)} are not (rows {bad[:10].tolist()})"
        )
    dist_m, node = net.node_tree.query(xy, workers=-1)
    dist_m = np.asarray(dist_m, dtype=np.float64)
    return Snapped(
        node=np.asarray(node, dtype=np.int64),
        offset_m=dist_m,
        offset_min=dist_m * _MIN_PER_M_PER_KMH / speed,
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
    tails, heads = _arc_nodes(net)
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


# --------------------------------------------------------------------------- export


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
    tails, heads = _arc_nodes(net)
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

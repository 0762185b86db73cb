"""Road disruption scenarios: which edges a flood, hazard or incident closes or slows down.

A :class:`Disruption` is a set of edge-aligned arrays for one :class:`~geo_mz.network.Network`
(``closed``, travel-time ``slow_factor``, a short ``reason`` code per edge and, for floods, the
``max_depth_m`` found along each edge). It is built from

* a list of road ids (:func:`from_edge_ids`, e.g. the roads a traffic police notice closes);
* hazard polygons or buffered incident points/lines (:func:`from_polygons`);
* a flood-depth raster (:func:`from_flood_raster`), sampled along every edge;

combined with :func:`combine` and applied with :meth:`Disruption.apply`, which calls
:func:`geo_mz.network.with_closures` (so node and edge indices stay valid and cut-off nodes are
simply unreachable). :func:`synthetic_flood_raster` writes a seeded, clearly tagged SYNTHETIC depth
raster for demonstrations and tests; it is not a hydraulic model.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.features import rasterize
from rasterio.io import DatasetReader
from rasterio.windows import Window
from scipy.ndimage import distance_transform_edt, gaussian_filter

from geo_mz.core.errors import CrsError, GeoMzError
from geo_mz.core.projection import parse_crs
from geo_mz.network.graph import Network
from geo_mz.network.paths import with_closures

#: Water depth (m) from which a road is closed to ordinary vehicles and light trucks. LOCAL
#: CHOICE / UNSOURCED: common road-safety guidance that ordinary cars should not drive through
#: water deeper than about 30 cm (roughly the sill/exhaust height); no Chinese standard verified.
FLOOD_CLOSE_DEPTH_M = 0.3
#: Water depth (m) from which traffic slows down. LOCAL CHOICE (shallow ponding below ~5 cm is
#: treated as a wet road at normal speed).
FLOOD_SLOW_FROM_M = 0.05
#: Speed share left just below the closing depth (linear loss from ``FLOOD_SLOW_FROM_M``). LOCAL
#: CHOICE: walking pace through water for a vehicle, 20 % of the planning speed.
FLOOD_MIN_SPEED_SHARE = 0.2
#: Nodata value of :func:`synthetic_flood_raster` (the permanent water cells). Local choice.
SYNTHETIC_NODATA = -9999.0


class DisruptionError(GeoMzError, ValueError):
    """A disruption cannot be built or applied as asked (bad ids, inputs or parameters)."""


def _join_reasons(*parts: str) -> str:
    """Join ``;``-separated reason codes, dropping blanks and repeats (first order kept)."""
    return ";".join(dict.fromkeys(c for p in parts for c in str(p).split(";") if c))


@dataclass(frozen=True, eq=False)
class Disruption:
    """Per-edge effect of a scenario on a network (edge-aligned arrays, ``e`` edges)."""

    closed: np.ndarray  #: (e,) bool: the edge cannot be used
    slow_factor: np.ndarray  #: (e,) finite float >= 1, travel-time multiplier (1 = unaffected)
    #: (e,) object: '' or codes joined by ';' ('flood', 'hazard:H01', 'incident:I3', 'edge_list')
    reason: np.ndarray
    max_depth_m: np.ndarray | None = None  #: (e,) deepest water along the edge (0 dry) or None

    def __post_init__(self) -> None:
        closed = np.asarray(self.closed, dtype=bool).ravel()
        slow = np.asarray(self.slow_factor, dtype=np.float64).ravel()
        reason = np.array(["" if r is None else str(r) for r in np.ravel(self.reason)], object)
        depth = None
        if self.max_depth_m is not None:
            depth = np.asarray(self.max_depth_m, dtype=np.float64).ravel()
        sizes = {len(closed), len(slow), len(reason), len(closed if depth is None else depth)}
        if len(sizes) != 1:
            raise DisruptionError(f"Disruption arrays must have one length, got {sorted(sizes)}")
        if np.any(~np.isfinite(slow) | (slow < 1.0)):
            raise DisruptionError("`slow_factor` must be finite and >= 1 (close with `closed`)")
        object.__setattr__(self, "closed", closed)
        object.__setattr__(self, "slow_factor", slow)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "max_depth_m", depth)

    def __len__(self) -> int:
        return len(self.closed)

    @property
    def n_closed(self) -> int:
        """Number of closed edges."""
        return int(self.closed.sum())

    @property
    def n_slowed(self) -> int:
        """Number of open edges with ``slow_factor > 1``."""
        return int((~self.closed & (self.slow_factor > 1.0)).sum())

    def _check(self, net: Network) -> None:
        if len(self) != net.n_edges:
            msg = f"this disruption has {len(self)} edges but the network has {net.n_edges}"
            raise DisruptionError(msg + "; build it from the same network")

    def apply(self, net: Network) -> Network:
        """Return ``net`` with the closures and slow-downs applied (``with_closures``)."""
        self._check(net)
        return with_closures(net, closed_edges=self.closed, slow_factor=self.slow_factor)

    def frame(self, net: Network) -> gpd.GeoDataFrame:
        """Affected edges only (closed, slowed or with a reason), in ``net.crs``.

        Columns ``edge_id``, ``road_class``, ``closed``, ``slow_factor``, ``reason``,
        ``max_depth_m`` (only when known) and ``geometry``; index ``edge`` = edge index.
        """
        self._check(net)
        hit = np.flatnonzero(self.closed | (self.slow_factor > 1.0) | (self.reason != ""))
        cols: dict[str, Any] = {
            "edge_id": net.edge_id[hit],
            "road_class": net.edge_class[hit],
            "closed": self.closed[hit],
            "slow_factor": self.slow_factor[hit],
            "reason": self.reason[hit],
        }
        if self.max_depth_m is not None:
            cols["max_depth_m"] = self.max_depth_m[hit]
        index = pd.Index(hit, name="edge")
        return gpd.GeoDataFrame(cols, geometry=net.edge_geometry[hit], crs=net.crs, index=index)


def no_disruption(net: Network) -> Disruption:
    """Return the empty scenario for ``net``: nothing closed or slowed."""
    e = net.n_edges
    return Disruption(np.zeros(e, bool), np.ones(e), np.full(e, "", dtype=object))


def combine(*ds: Disruption) -> Disruption:
    """Overlay scenarios: closed if any closes, the largest slow factor, all reasons joined.

    ``max_depth_m`` is the maximum over the scenarios that know it (None if none does).
    """
    if not ds:
        raise DisruptionError("combine() needs at least one Disruption")
    sizes = sorted({len(d) for d in ds})
    if len(sizes) != 1:
        raise DisruptionError(f"cannot combine disruptions of different networks (sizes {sizes})")
    closed = np.logical_or.reduce([d.closed for d in ds])
    slow = np.maximum.reduce([d.slow_factor for d in ds])
    reason = ds[0].reason.copy()
    for d in ds[1:]:
        take = (reason == "") & (d.reason != "")
        reason[take] = d.reason[take]
        for i in np.flatnonzero((reason != "") & (d.reason != "") & (reason != d.reason)):
            reason[i] = _join_reasons(reason[i], d.reason[i])
    depths = [d.max_depth_m for d in ds if d.max_depth_m is not None]
    depth = np.maximum.reduce(depths) if depths else None
    return Disruption(closed, slow, reason, depth)


def from_edge_ids(net: Network, ids: Iterable[str], *, reason: str = "edge_list") -> Disruption:
    """Close every edge whose ``edge_id`` (road id / OSM way id) is listed.

    A road split into several edges closes all of them. A bare string counts as one id.

    Raises
    ------
    DisruptionError
        Listing every id absent from the network at once (misspelt, or dropped by the network
        build: footways when driving, pieces outside the largest component).
    """
    wanted = [ids] if isinstance(ids, str) else [str(i) for i in ids]
    have = net.edge_id.astype(str)
    unknown = sorted(set(wanted) - set(have))
    if unknown:
        raise DisruptionError(
            f"{len(unknown)} edge id(s) are not in the network: {unknown} (absent from the roads "
            "or dropped by the network build; see Network.dropped)"
        )
    closed = np.isin(have, wanted)
    return Disruption(closed, np.ones(net.n_edges), np.where(closed, reason, "").astype(object))


def from_polygons(
    net: Network,
    gdf: gpd.GeoDataFrame | gpd.GeoSeries,
    *,
    buffer_m: float = 0.0,
    label_field: str | None = None,
    reason: str = "hazard",
) -> Disruption:
    """Close the edges that intersect (touching included) hazard areas or buffered incidents.

    Parameters
    ----------
    net
        The network.
    gdf
        Polygons (e.g. ``hazards``, filter ``closes_roads`` first if wanted), points (e.g.
        ``incidents``) or lines, with a CRS; reprojected to ``net.crs``.
    buffer_m
        With ``buffer_m > 0`` every geometry is buffered by it (metres, in ``net.crs``) before
        the test: a safety margin around polygons, the blocked reach of a point. Points need it:
        a bare point almost never lies exactly on a road line. Default 0 (local choice).
    label_field
        Column whose value labels the reason, e.g. ``"hazard_id"`` -> ``"hazard:H01"``.
    reason
        Reason code, e.g. ``"hazard"`` or ``"incident"``.

    Raises
    ------
    CrsError
        If ``gdf`` has no CRS.
    DisruptionError
        If it holds points and ``buffer_m`` is 0, ``buffer_m < 0`` or ``label_field`` is missing.
    """
    if not isinstance(gdf, gpd.GeoDataFrame | gpd.GeoSeries):
        raise TypeError(f"`gdf` must be a GeoDataFrame or GeoSeries, got {type(gdf).__name__}")
    if gdf.crs is None:
        raise CrsError(f"`gdf` has no CRS; set it with .set_crs(...) (the network is in {net.crs})")
    if not np.isfinite(buffer_m) or buffer_m < 0:
        raise DisruptionError(f"`buffer_m` was {buffer_m!r} but must be >= 0")
    labels = None
    if label_field is not None:
        if not isinstance(gdf, gpd.GeoDataFrame) or label_field not in gdf.columns:
            raise DisruptionError(f"`label_field` {label_field!r} is not a column of `gdf`")
        labels = gdf[label_field].to_numpy(dtype=object)
    geoms = np.asarray((gdf.geometry if isinstance(gdf, gpd.GeoDataFrame) else gdf).values)
    if CRS.from_user_input(gdf.crs) != CRS.from_user_input(net.crs):
        geoms = np.asarray(gpd.GeoSeries(geoms, crs=gdf.crs).to_crs(net.crs).values)
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    points = np.flatnonzero(ok & np.isin(shapely.get_type_id(geoms), (0, 4)))
    if len(points) and buffer_m == 0:
        raise DisruptionError(
            f"`gdf` has {len(points)} point geometries (rows {points[:10].tolist()}) but "
            "buffer_m is 0: a point never closes a road by itself; pass buffer_m (metres of road "
            "blocked around each point), e.g. buffer_m=30"
        )
    rows = np.flatnonzero(ok)
    geoms = geoms[rows]
    if buffer_m > 0:
        geoms = shapely.buffer(geoms, buffer_m)
    closed = np.zeros(net.n_edges, bool)
    out = np.full(net.n_edges, "", dtype=object)
    if len(geoms):
        src, edge = shapely.STRtree(net.edge_geometry).query(geoms, predicate="intersects")
        closed[edge] = True
        if labels is None:
            out[edge] = reason
        else:
            lab = labels[rows[src]]
            codes = [reason if pd.isna(x) else f"{reason}:{x}" for x in lab]
            pairs = pd.DataFrame({"edge": edge, "code": codes}).drop_duplicates()
            joined = pairs.sort_values(["edge", "code"]).groupby("edge")["code"].agg(";".join)
            out[joined.index.to_numpy()] = joined.to_numpy(dtype=object)
    return Disruption(closed, np.ones(net.n_edges), out)


def _pixel_size_m(ds: DatasetReader, to_net: Transformer) -> float:
    """Shorter side (m, in the network CRS) of the raster's centre pixel."""
    t = ds.transform
    c, r = ds.width // 2, ds.height // 2
    cols = np.array([c, c + 1, c], dtype=float)
    rows = np.array([r, r, r + 1], dtype=float)
    xs = t.a * cols + t.b * rows + t.c
    ys = t.d * cols + t.e * rows + t.f
    x, y = to_net.transform(xs, ys)
    return float(min(np.hypot(x[1] - x[0], y[1] - y[0]), np.hypot(x[2] - x[0], y[2] - y[0])))


def _edge_max_depth(net: Network, ds: DatasetReader, step_m: float | None, band: int) -> np.ndarray:
    """Max depth along every edge (samples every ``step_m``, both ends included)."""
    rcrs = ds.crs
    if rcrs is None:
        raise CrsError(f"flood raster {ds.name!r} has no CRS; depth rasters must be georeferenced")
    net_crs = parse_crs(net.crs)
    same = CRS.from_user_input(rcrs) == net_crs
    if step_m is None:
        to_net = Transformer.from_crs(rcrs, net_crs, always_xy=True)
        step_m = max(1.0, _pixel_size_m(ds, to_net) / 2.0)
    if not np.isfinite(step_m) or step_m <= 0:
        raise DisruptionError(f"`step_m` was {step_m!r} but must be > 0")
    dense = shapely.segmentize(net.edge_geometry, step_m)
    xy, owner = shapely.get_coordinates(dense, return_index=True)
    x, y = xy[:, 0], xy[:, 1]
    if not same:
        x, y = Transformer.from_crs(net_crs, rcrs, always_xy=True).transform(x, y)
    inv = ~ds.transform
    col = np.floor(inv.a * x + inv.b * y + inv.c)
    row = np.floor(inv.d * x + inv.e * y + inv.f)
    inside = (row >= 0) & (row < ds.height) & (col >= 0) & (col < ds.width)  # NaN -> False
    depth = np.zeros(len(x))
    if inside.any():
        ri, ci = row[inside].astype(np.int64), col[inside].astype(np.int64)
        r0, c0 = int(ri.min()), int(ci.min())
        win = Window(c0, r0, int(ci.max()) - c0 + 1, int(ri.max()) - r0 + 1)
        arr = ds.read(band, window=win, masked=True)
        vals = np.ma.filled(arr.astype(np.float64), 0.0)[ri - r0, ci - c0]
        depth[inside] = np.where(np.isfinite(vals), np.maximum(vals, 0.0), 0.0)
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    out = np.zeros(net.n_edges)
    out[owner[starts]] = np.maximum.reduceat(depth, starts)
    return out


def from_flood_raster(
    net: Network,
    raster: str | Path | DatasetReader,
    *,
    close_depth_m: float = FLOOD_CLOSE_DEPTH_M,
    slow_from_m: float = FLOOD_SLOW_FROM_M,
    step_m: float | None = None,
    min_speed_share: float = FLOOD_MIN_SPEED_SHARE,
    band: int = 1,
) -> Disruption:
    """Close or slow edges by the deepest water found along them on a depth raster.

    Each edge is sampled every ``step_m`` metres (``shapely.segmentize``: all vertices, both
    ends and evenly spaced points between), the points are reprojected to the raster CRS and
    looked up by the inverse affine transform in one windowed read of ``band``; nodata, NaN,
    negative values and points outside the raster count as dry (0).

    The speed rule (LOCAL CHOICE) is a linear loss of speed from ``slow_from_m`` to
    ``min_speed_share`` of the planning speed at ``close_depth_m``::

        depth >= close_depth_m               -> closed
        slow_from_m <= depth < close_depth_m -> slow_factor = 1 / max(min_speed_share,
            1 - (depth - slow_from_m) / (close_depth_m - slow_from_m) * (1 - min_speed_share))

    Parameters
    ----------
    net
        The network.
    raster
        Path or open rasterio dataset of water depth in metres, any CRS (it must have one).
    close_depth_m, slow_from_m, min_speed_share
        See above; defaults ``FLOOD_CLOSE_DEPTH_M`` (0.3, UNSOURCED), ``FLOOD_SLOW_FROM_M``
        (0.05) and ``FLOOD_MIN_SPEED_SHARE`` (0.2), local choices.
    step_m
        Sampling step along edges; default half the raster pixel size in metres, at least 1 m.
        A pixel the road only grazes at a corner can be missed.
    band
        Band holding the depth.

    Returns
    -------
    Disruption
        ``reason`` ``'flood'`` on closed and slowed edges; ``max_depth_m`` for every edge.
    """
    if not 0 <= slow_from_m < close_depth_m:
        raise DisruptionError(
            f"need 0 <= slow_from_m < close_depth_m, got {slow_from_m!r} and {close_depth_m!r}"
        )
    if not 0 < min_speed_share <= 1:
        raise DisruptionError(f"`min_speed_share` was {min_speed_share!r}; need 0 < share <= 1")
    if isinstance(raster, str | os.PathLike):
        with rasterio.open(raster) as ds:
            depth = _edge_max_depth(net, ds, step_m, band)
    else:  # an open dataset (DatasetReader, WarpedVRT, MemoryFile dataset): left open
        depth = _edge_max_depth(net, raster, step_m, band)
    closed = depth >= close_depth_m
    slowed = ~closed & (depth >= slow_from_m)
    share = 1.0 - (depth - slow_from_m) / (close_depth_m - slow_from_m) * (1.0 - min_speed_share)
    slow = np.where(slowed, 1.0 / np.maximum(min_speed_share, share), 1.0)
    reason = np.where(closed | slowed, "flood", "").astype(object)
    return Disruption(closed, slow, reason, depth)


def synthetic_flood_raster(
    water: gpd.GeoDataFrame | gpd.GeoSeries,
    bounds_polygon: Any,
    path: str | Path,
    *,
    crs: str = "EPSG:4547",
    cell_m: float = 50.0,
    seed: int = 440703,
    peak_depth_m: float = 1.0,
    reach_m: float = 1000.0,
) -> Path:
    """Write a seeded, SYNTHETIC flood-depth GeoTIFF around water bodies (not a flood model).

    Depth falls linearly from ``peak_depth_m`` at the water's edge to 0 at ``reach_m`` (distance
    of cell centres to the rasterised water, ``scipy.ndimage.distance_transform_edt``) and is
    multiplied by a smooth seeded field in (0, 1) (Gaussian-filtered white noise, correlation
    ~``reach_m / 3``, through ``0.5 * (1 + tanh(1.5 z + 0.5))``), so the footprint is irregular.
    Hence depth <= ``peak_depth_m`` everywhere and 0 beyond ``reach_m``. The permanent water
    cells (``all_touched``) are nodata (``SYNTHETIC_NODATA``): the river itself is not flood on
    a road, and a bridge deck over it stays open unless its approaches flood.

    Parameters
    ----------
    water
        Water polygons (layers/water.toml) with a CRS.
    bounds_polygon
        Area to cover (its bounding box, snapped out to ``cell_m``): a GeoDataFrame/GeoSeries
        with a CRS, or a shapely geometry already in ``crs``. Depth is not clipped to it.
    path
        Output ``.tif`` (overwritten).
    crs
        Projected metric CRS of the raster; default CGCS2000 GK CM 114E (Jiangmen, local choice).
    cell_m, seed, peak_depth_m, reach_m
        Cell size (m), random seed, depth at the water's edge (m) and flood reach (m). LOCAL
        CHOICES (50 m; 440703 = Pengjiang's adcode; 1.0 m; 1,000 m) tuned on the sample district
        (``geo-mz demo``): about 7 % of drive edges closed, 5 % slowed and ten villages cut off
        from every relief store, so the scenario disrupts without closing everything.

    Returns
    -------
    pathlib.Path
        The file: one float32 band, deflate, tags ``SYNTHETIC=yes``, generator, seed, units=m.
    """
    target = parse_crs(crs)
    if target is None or not target.is_projected:
        raise CrsError(f"`crs` {crs!r} must be a projected metric CRS")
    for name, v in (("cell_m", cell_m), ("peak_depth_m", peak_depth_m), ("reach_m", reach_m)):
        if not np.isfinite(v) or v <= 0:
            raise DisruptionError(f"`{name}` was {v!r} but must be > 0")
    if water.crs is None:
        raise CrsError("`water` has no CRS; set it with .set_crs(...)")
    wgeo = (water.geometry if isinstance(water, gpd.GeoDataFrame) else water).to_crs(target)
    wgeo = wgeo[~(wgeo.is_empty | wgeo.isna())]
    if isinstance(bounds_polygon, gpd.GeoDataFrame | gpd.GeoSeries):
        if bounds_polygon.crs is None:
            raise CrsError("`bounds_polygon` has no CRS; set it with .set_crs(...)")
        area = shapely.union_all(np.asarray(bounds_polygon.to_crs(target).geometry.values))
    else:
        area = bounds_polygon
    if len(wgeo) == 0 or not shapely.intersects(area, shapely.union_all(wgeo.values)):
        raise DisruptionError(
            "`water` is empty or does not overlap `bounds_polygon` (a bare shapely geometry must "
            f"already be in {crs})"
        )
    x0, y0, x1, y1 = shapely.bounds(area)
    x0, y0 = np.floor(x0 / cell_m) * cell_m, np.floor(y0 / cell_m) * cell_m
    x1, y1 = np.ceil(x1 / cell_m) * cell_m, np.ceil(y1 / cell_m) * cell_m
    width, height = round((x1 - x0) / cell_m), round((y1 - y0) / cell_m)
    transform = Affine(cell_m, 0.0, x0, 0.0, -cell_m, y1)  # north-up, from the top-left corner
    wet = rasterize(
        ((g, 1) for g in wgeo.values),
        out_shape=(height, width),
        transform=transform,
        all_touched=True,
        dtype="uint8",
    ).astype(bool)
    dist_m = distance_transform_edt(~wet) * cell_m
    rng = np.random.default_rng(seed)
    z = gaussian_filter(rng.standard_normal((height, width)), sigma=max(1.0, reach_m / 3 / cell_m))
    z = z / (z.std() or 1.0)
    share = 0.5 * (1.0 + np.tanh(1.5 * z + 0.5))
    depth = peak_depth_m * np.clip(1.0 - dist_m / reach_m, 0.0, 1.0) * share
    depth = np.where(wet, SYNTHETIC_NODATA, depth).astype(np.float32)
    out = Path(path)
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 1, "crs": target}
    profile |= {"dtype": "float32", "transform": transform, "nodata": SYNTHETIC_NODATA}
    with rasterio.open(out, "w", compress="deflate", **profile) as dst:
        dst.write(depth, 1)
        dst.set_band_description(1, "flood_depth_m")
        dst.update_tags(
            SYNTHETIC="yes",
            generator="geo_mz.network.disruption.synthetic_flood_raster",
            seed=seed,
            units="m",
            description_zh="合成洪水淹没水深（米），仅供演示与测试，非水文模型结果；水体本身为无数据。",
            description_en="SYNTHETIC flood depth (m) for demos and tests, not a hydraulic model "
            f"result; permanent water cells are nodata. peak_depth_m={peak_depth_m}, "
            f"reach_m={reach_m}, cell_m={cell_m}.",
        )
        dst.update_tags(1, units="m")
    return out

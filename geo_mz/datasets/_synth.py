"""Generic helpers of the synthetic sample generators.

Spec-driven frames, exact integer allocation, point sampling, Voronoi tilings, a warped lattice
road graph and chain merging, and a simple place-name romanisation. Everything that draws random
numbers takes a :class:`numpy.random.Generator`, so a seed fixes the output.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import affine
import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from pypinyin import Style, lazy_pinyin
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra, minimum_spanning_tree
from scipy.spatial import cKDTree

from geo_mz.core.catalog import get_spec
from geo_mz.core.errors import LayerSpecError

#: Storage CRS of every layer (CGCS2000, STANDARDS.md §G).
STORAGE_CRS = "EPSG:4490"


# --- population grid and working geography ---------------------------------------------------


@dataclass(frozen=True)
class PopulationGrid:
    """The population raster behind the ``population`` points.

    Attributes
    ----------
    pop_total
        float32 (rows, cols), persons per 100 m cell (integers), 0 outside the district.
    pop_60plus
        float32, same shape, persons aged 60 and over.
    transform
        Affine transform of the grid in ``crs``.
    crs
        ``"EPSG:4547"``.
    """

    pop_total: np.ndarray
    pop_60plus: np.ndarray
    transform: affine.Affine
    crs: str = "EPSG:4547"


def write_population_geotiff(grid: PopulationGrid, path: str | Path) -> Path:
    """Write the population grid as a 2-band float32 GeoTIFF.

    Parameters
    ----------
    grid
        The grid (e.g. of :func:`geo_mz.datasets.pengjiang.build_pengjiang`).
    path
        Output ``.tif`` (overwritten).

    Returns
    -------
    pathlib.Path
        The file written: band 1 ``pop_total``, band 2 ``pop_60plus`` (persons per cell, no
        nodata value: cells outside the district hold 0), CRS ``grid.crs``, deflate-compressed.
    """
    out = Path(path)
    rows, cols = grid.pop_total.shape
    profile = {
        "driver": "GTiff",
        "width": cols,
        "height": rows,
        "count": 2,
        "dtype": "float32",
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": None,
        "compress": "deflate",
    }
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(grid.pop_total.astype(np.float32), 1)
        dst.write(grid.pop_60plus.astype(np.float32), 2)
        for band, name in ((1, "pop_total"), (2, "pop_60plus")):
            dst.set_band_description(band, name)
            dst.update_tags(band, unit="person", cell_size_m=str(grid.transform.a))
    return out


@dataclass
class DistrictGeo:
    """Working geography of a district generator, in a metric CRS.

    Town and village lists are in source order; ``vil_town`` is each village's town index.
    """

    district: Any
    neighbours: gpd.GeoDataFrame
    town_codes: list[str]
    town_names: list[str]
    vil_codes: list[str]
    vil_names: list[str]
    vil_town: np.ndarray
    vil_urban: np.ndarray
    core: np.ndarray
    anchors: np.ndarray
    town_polys: list[Any] = field(default_factory=list)
    town_seats: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))
    vil_polys: list[Any] = field(default_factory=list)
    vil_seats: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))
    water: list[tuple[str, str, Any]] = field(default_factory=list)
    water_union: Any = None
    info: dict[str, int] = field(default_factory=dict)

    def town_land(self, t: int, margin: float = 0.0) -> Any:
        """Land of town ``t`` at least ``margin`` m from water."""
        wet = self.water_union.buffer(margin) if margin > 0 else self.water_union
        return shapely.difference(self.town_polys[t], wet)

    def village_at(self, xy: np.ndarray) -> list[int]:
        """Index of the village containing each point (the first one on a shared edge)."""
        tree = shapely.STRtree(self.vil_polys)
        pts = shapely.points(np.asarray(xy).reshape(-1, 2))
        pairs = tree.query(pts, predicate="intersects")
        first = np.full(len(pts), -1)
        for p, v in sorted(zip(pairs[0], pairs[1], strict=True), reverse=True):
            first[p] = v
        if (first < 0).any():
            miss = np.flatnonzero(first < 0)
            first[miss] = tree.query_nearest(pts[miss], all_matches=False)[1]
        return [int(v) for v in first]

    def core_town(self) -> int:
        """Index of the town holding the core centre."""
        return int(np.argmin([p.distance(shapely.Point(self.core)) for p in self.town_polys]))


# --- frames -----------------------------------------------------------------------------------


def _typed(values: list[Any], ftype: str) -> Any:
    missing = [v is None for v in values]
    if ftype == "string":
        return pd.Series([None if v is None else str(v) for v in values], dtype=object)
    if ftype == "integer":
        if any(missing):
            return pd.array(values, dtype="Int64")
        return np.asarray(values, dtype=np.int64)
    if ftype == "float":
        return np.asarray([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    if ftype == "boolean":
        if any(missing):
            return pd.array(values, dtype="boolean")
        return np.asarray(values, dtype=bool)
    if ftype == "date":
        return pd.Series(values, dtype=object)
    if ftype == "datetime":
        return pd.Series(pd.to_datetime(pd.Series(values, dtype=object)), dtype="datetime64[ms]")
    raise LayerSpecError(f"unknown field type {ftype}")


def spec_frame(
    kind: str,
    columns: Mapping[str, Sequence[Any]],
    geometry: Sequence[Any],
    crs: str,
) -> gpd.GeoDataFrame:
    """Build a layer with exactly the spec's columns, in spec order, typed, in EPSG:4490.

    Parameters
    ----------
    kind
        Catalog layer name.
    columns
        Field name to values; fields not given are all None.
    geometry
        One shapely geometry per feature; polygons are wrapped as MultiPolygon.
    crs
        CRS of ``geometry``.

    Returns
    -------
    geopandas.GeoDataFrame
        Integers int64 (Int64 with gaps), floats float64, booleans bool, strings and dates object,
        date-times datetime64[ms].
    """
    spec = get_spec(kind)
    unknown = sorted(k for k in columns if k not in spec.field_names)
    if unknown:
        raise LayerSpecError(f"layer '{kind}' has no fields {unknown}")
    n = len(geometry)
    data: dict[str, Any] = {}
    for f in spec.fields:
        values = list(columns.get(f.name, [None] * n))
        if len(values) != n:
            raise LayerSpecError(f"{kind}.{f.name}: {len(values)} values for {n} features")
        data[f.name] = _typed(values, f.type)
    geoms = list(geometry)
    if spec.geometry == "Polygon":
        geoms = [shapely.MultiPolygon([g]) if g.geom_type == "Polygon" else g for g in geoms]
    out = gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms, crs=crs), crs=crs)
    out = out.to_crs(STORAGE_CRS)
    bad = ~out.geometry.is_valid.to_numpy()
    if bad.any():
        raise ValueError(f"{kind}: {int(bad.sum())} geometries invalid after reprojection")
    return out


def rows_frame(
    kind: str, rows: Sequence[Mapping[str, Any]], geometry: Sequence[Any], crs: str
) -> gpd.GeoDataFrame:
    """Build a layer like :func:`spec_frame` from one dict per feature (missing keys are None)."""
    names = sorted({k for r in rows for k in r})
    return spec_frame(kind, {k: [r.get(k) for r in rows] for k in names}, geometry, crs)


# --- numbers ----------------------------------------------------------------------------------


def largest_remainder(weights: np.ndarray, total: int, cap: np.ndarray | None = None) -> np.ndarray:
    """Integers proportional to ``weights`` that sum exactly to ``total`` (Hamilton's method).

    Parameters
    ----------
    weights
        Non-negative weights (not all zero).
    total
        The exact sum wanted.
    cap
        Optional per-item upper bound (e.g. the 60+ count of a cell cannot exceed its total).

    Returns
    -------
    numpy.ndarray
        int64 array; ties broken by position, so the result is deterministic.
    """
    w = np.asarray(weights, dtype=np.float64)
    share = w * (total / w.sum())
    out = np.floor(share).astype(np.int64)
    if cap is not None:
        out = np.minimum(out, cap)
    left = int(total - out.sum())
    while left > 0:
        room = np.ones(len(w), bool) if cap is None else out < cap
        room &= w > 0
        if not room.any():
            raise ValueError(f"cannot allocate {total}: caps too small")
        order = np.argsort(-(share - out), kind="stable")
        order = order[room[order]][:left]
        out[order] += 1
        left -= len(order)
    return out


# --- sampling ---------------------------------------------------------------------------------


def sample_points(region: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points drawn uniformly inside ``region`` (rejection sampling), as an (n, 2) array."""
    if n <= 0:
        return np.empty((0, 2))
    minx, miny, maxx, maxy = region.bounds
    shapely.prepare(region)
    out: list[np.ndarray] = []
    got = 0
    ratio = max(region.area / ((maxx - minx) * (maxy - miny)), 0.01)
    while got < n:
        m = int((n - got) / ratio * 1.3) + 16
        xy = np.column_stack([rng.uniform(minx, maxx, m), rng.uniform(miny, maxy, m)])
        xy = xy[shapely.contains_xy(region, xy[:, 0], xy[:, 1])]
        out.append(xy)
        got += len(xy)
    return np.vstack(out)[:n]


def best_candidate(
    region: Any,
    n: int,
    rng: np.random.Generator,
    existing: np.ndarray | None = None,
    k: int = 12,
) -> np.ndarray:
    """``n`` well-spread points in ``region``: each the farthest of ``k`` random candidates."""
    pts = np.empty((0, 2)) if existing is None else np.asarray(existing, float).reshape(-1, 2)
    new: list[np.ndarray] = []
    for _ in range(n):
        cand = sample_points(region, k, rng)
        if len(pts):
            d = np.min(np.linalg.norm(cand[:, None, :] - pts[None, :, :], axis=2), axis=1)
            best = cand[int(np.argmax(d))]
        else:
            best = cand[0]
        pts = np.vstack([pts, best])
        new.append(best)
    return np.array(new).reshape(-1, 2)


def near(
    xy: Sequence[float],
    rng: np.random.Generator,
    region: Any,
    rmin: float,
    rmax: float,
) -> np.ndarray:
    """Return a point ``rmin``-``rmax`` m from ``xy`` in ``region`` (``xy`` if none is found)."""
    x0, y0 = float(xy[0]), float(xy[1])
    ang = rng.uniform(0, 2 * np.pi, 64)
    rad = rng.uniform(rmin, rmax, 64)
    xs, ys = x0 + rad * np.cos(ang), y0 + rad * np.sin(ang)
    ok = shapely.contains_xy(region, xs, ys)
    if ok.any():
        i = int(np.argmax(ok))
        return np.array([xs[i], ys[i]])
    return np.array([x0, y0])


# --- polygons ---------------------------------------------------------------------------------


def polygon_parts(g: Any) -> list[Any]:
    """Return the non-empty Polygon parts of any geometry (collections flattened)."""
    out = []
    for p in shapely.get_parts(g):
        if p.geom_type == "Polygon" and p.area > 0:
            out.append(p)
        elif p.geom_type in ("MultiPolygon", "GeometryCollection"):
            out += polygon_parts(p)
    return out


def clean_polygon(g: Any, min_area: float = 1.0) -> Any:
    """Drop polygon parts and holes smaller than ``min_area`` (overlay slivers).

    Such slivers are valid in metres but may collapse to too few distinct points once
    reprojected to degrees.
    """
    parts = []
    for p in polygon_parts(g):
        if p.area < min_area:
            continue
        holes = [r for r in p.interiors if shapely.Polygon(r).area >= min_area]
        parts.append(shapely.Polygon(p.exterior, holes))
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def voronoi_cells(xy: np.ndarray, clip: Any, margin: float = 5000.0) -> np.ndarray:
    """Voronoi cells of the points, in input order, each intersected with ``clip``."""
    extent = shapely.box(*clip.bounds).buffer(margin)
    coll = shapely.voronoi_polygons(shapely.multipoints(xy), extend_to=extent, ordered=True)
    cells = np.array(list(shapely.get_parts(coll)), dtype=object)
    return shapely.intersection(cells, clip)


def merge_fragments(polys: Sequence[Any], keep: Sequence[Any] | None = None) -> list[Any]:
    """Make every polygon one piece: stray parts go to the neighbour with the longest shared edge.

    Parameters
    ----------
    polys
        Polygonal geometries that tile a region (may be multi-part or collections).
    keep
        Optional point per polygon: the part containing it is the one kept.

    Returns
    -------
    list
        Single-part polygons tiling the same region (a part that touches no neighbour along an
        edge goes to the nearest one, so the union is unchanged).
    """
    main: list[Any] = []
    orphans: list[tuple[float, int, Any]] = []
    for i, g in enumerate(polys):
        parts = polygon_parts(g)
        if not parts:
            raise ValueError(f"polygon {i} is empty")
        idx = int(np.argmax([p.area for p in parts]))
        if keep is not None and keep[i] is not None:
            inside = [j for j, p in enumerate(parts) if p.intersects(keep[i])]
            idx = inside[0] if inside else idx
        main.append(parts[idx])
        orphans += [(-p.area, i, p) for j, p in enumerate(parts) if j != idx]
    orphans.sort(key=lambda t: (t[0], t[1]))
    for _, i, part in orphans:
        shared = [
            (shapely.length(shapely.intersection(part.boundary, m)), j)
            for j, m in enumerate(main)
            if j != i and part.distance(m) < 1e-6
        ]
        shared = [s for s in shared if s[0] > 1e-6]
        if shared:
            j = max(shared, key=lambda t: (t[0], -t[1]))[1]
        else:
            j = min((part.distance(m), j) for j, m in enumerate(main) if j != i)[1]
        merged = shapely.union(main[j], part)
        parts = polygon_parts(merged)
        main[j] = parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)
    return main


# --- lattice road graph -------------------------------------------------------------------------


def _displacement(
    p: np.ndarray, centres: Sequence[tuple[float, float, float, float]]
) -> np.ndarray:
    d_total = np.zeros_like(p)
    for cx, cy, pull, radius in centres:
        d = p - np.array([cx, cy])
        r = np.hypot(d[..., 0], d[..., 1])
        shrink = pull * radius * (1 - np.exp(-r / radius))
        with np.errstate(invalid="ignore", divide="ignore"):
            unit = np.where(r[..., None] > 0, d / r[..., None], 0.0)
        d_total -= unit * shrink[..., None]
    return d_total


def warped_lattice(
    land: Any,
    spacing: float,
    centres: Sequence[tuple[float, float, float, float]],
    rng: np.random.Generator,
    jitter: float = 0.18,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Build a jittered square lattice, densified around centres, cut to the land.

    The lattice (spacing ``spacing``) is mapped through ``x -> x + sum(D_k(x))``, where each
    centre ``(x, y, pull, radius)`` pulls points toward it by ``pull * radius * (1 - exp(-r /
    radius))``: near the centre the spacing shrinks to ``(1 - pull) * spacing``, far away it is
    unchanged. With ``sum(pull) < 1`` the map is one-to-one, so lattice edges never cross.

    Parameters
    ----------
    land
        Polygon the edges must lie in (district minus water).
    spacing
        Lattice spacing far from the centres, m.
    centres
        ``(x, y, pull, radius)`` in the land's CRS; the point ``(x, y)`` itself is a fixed point.
    rng
        Random generator (jitter).
    jitter
        Node jitter as a share of the spacing (uniform, each axis).

    Returns
    -------
    tuple
        Node coordinates (n, 2), node lattice indices (n, 2) as (row, col), and edges (m, 2) of
        node indices (horizontal edges from west to east, vertical from south to north).
    """
    minx, miny, maxx, maxy = land.bounds
    grow = sum(pull * radius for _, _, pull, radius in centres)
    xs = np.arange(minx - grow - spacing, maxx + grow + 2 * spacing, spacing)
    ys = np.arange(miny - grow - spacing, maxy + grow + 2 * spacing, spacing)
    # Lattice-space positions of the centres: solve p + D(p) = c by fixed-point iteration.
    real = np.array([[c[0], c[1]] for c in centres]).reshape(-1, 2)
    lat = real.copy()
    for _ in range(60):
        moved = [(lat[i, 0], lat[i, 1], c[2], c[3]) for i, c in enumerate(centres)]
        lat = real - _displacement(lat, moved)
    moved = [(lat[i, 0], lat[i, 1], c[2], c[3]) for i, c in enumerate(centres)]
    cc, rr = np.meshgrid(np.arange(len(xs)), np.arange(len(ys)))
    p = np.stack([xs[cc], ys[rr]], axis=-1)
    p = p + rng.uniform(-jitter, jitter, p.shape) * spacing
    p = p + _displacement(p, moved)
    shapely.prepare(land)
    inside = shapely.contains_xy(land, p[..., 0], p[..., 1])
    node_id = np.full(inside.shape, -1, dtype=np.int64)
    node_id[inside] = np.arange(int(inside.sum()))
    xy = p[inside]
    idx = np.column_stack([rr[inside], cc[inside]])
    pairs = []
    for a, b in ((node_id[:, :-1], node_id[:, 1:]), (node_id[:-1, :], node_id[1:, :])):
        ok = (a >= 0) & (b >= 0)
        pairs.append(np.column_stack([a[ok], b[ok]]))
    edges = np.vstack(pairs)
    lines = shapely.linestrings(np.stack([xy[edges[:, 0]], xy[edges[:, 1]]], axis=1))
    edges = edges[shapely.contains(land, lines)]
    return xy, idx, edges


def random_spanning_forest(n: int, edges: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of the edges of a random spanning forest (MST under random weights)."""
    w = rng.uniform(1.0, 2.0, len(edges))
    a, b = np.minimum(edges[:, 0], edges[:, 1]), np.maximum(edges[:, 0], edges[:, 1])
    mst = minimum_spanning_tree(coo_matrix((w, (a, b)), shape=(n, n)).tocsr()).tocoo()
    chosen = {(int(i), int(j)) for i, j in zip(mst.row, mst.col, strict=True)}
    return np.array([(int(i), int(j)) in chosen for i, j in zip(a, b, strict=True)])


def components(n: int, edges: np.ndarray) -> np.ndarray:
    """Connected-component label of every node of an undirected edge list."""
    g = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    return connected_components(g, directed=False)[1]


def relax_oneway(n_nodes: int, edges: np.ndarray, oneway: np.ndarray) -> np.ndarray:
    """Make one-way edges two-way until every used node is in one strongly connected component.

    Only edges touching a node outside the largest component are relaxed, so drivers can
    reach and leave every junction.
    """
    oneway = oneway.copy()
    used = np.unique(edges.ravel())
    while True:
        two = edges[~oneway]
        src = np.concatenate([edges[:, 0], two[:, 1]])
        dst = np.concatenate([edges[:, 1], two[:, 0]])
        g = coo_matrix((np.ones(len(src)), (src, dst)), shape=(n_nodes, n_nodes))
        label = connected_components(g, directed=True, connection="strong")[1]
        main = np.bincount(label[used]).argmax()
        bad = oneway & ((label[edges[:, 0]] != main) | (label[edges[:, 1]] != main))
        if not bad.any():
            return oneway
        oneway &= ~bad


def merge_chains(
    n_nodes: int,
    edges: np.ndarray,
    keys: Sequence[Hashable],
    mergeable: np.ndarray,
) -> list[tuple[list[int], int]]:
    """Join runs of edges through degree-2 nodes into polylines.

    Two edges are joined at a node of degree 2 when both are mergeable and have equal keys.

    Returns
    -------
    list
        ``(node path, index of one member edge)`` per polyline; unmergeable edges stay alone
        with their drawn direction.
    """
    inc: list[list[int]] = [[] for _ in range(n_nodes)]
    for i, (a, b) in enumerate(edges):
        inc[a].append(i)
        inc[b].append(i)

    def through(node: int) -> bool:
        es = inc[node]
        return (
            len(es) == 2
            and bool(mergeable[es[0]] and mergeable[es[1]])
            and keys[es[0]] == keys[es[1]]
        )

    seen = np.zeros(len(edges), bool)
    out: list[tuple[list[int], int]] = []
    for e in range(len(edges)):
        if seen[e]:
            continue
        seen[e] = True
        a, b = int(edges[e, 0]), int(edges[e, 1])
        path = deque([a, b])
        if mergeable[e]:
            for forward in (True, False):
                cur, prev = (b, e) if forward else (a, e)
                while through(cur):
                    nxt_e = inc[cur][0] if inc[cur][1] == prev else inc[cur][1]
                    if seen[nxt_e]:
                        break
                    seen[nxt_e] = True
                    u, v = int(edges[nxt_e, 0]), int(edges[nxt_e, 1])
                    nxt = v if u == cur else u
                    if forward:
                        path.append(nxt)
                    else:
                        path.appendleft(nxt)
                    cur, prev = nxt, nxt_e
        out.append((list(path), e))
    return out


# --- names ------------------------------------------------------------------------------------

#: Generic parts (通名) of admin and committee names, with their pinyin words (1984 rules:
#: 专名 and 通名 written separately, each capitalised).
GENERIC_PINYIN: tuple[tuple[str, str], ...] = (
    ("社区居民委员会", "Shequ Jumin Weiyuanhui"),
    ("社区居委会", "Shequ Juweihui"),
    ("村委会", "Cunweihui"),
    ("街道", "Jiedao"),
    ("镇", "Zhen"),
    ("区", "Qu"),
)


def proper_pinyin(text: str) -> str:
    """Tone-less pinyin of a 专名, syllables joined, capitalised, apostrophe before a/o/e."""
    syl = [s for s in lazy_pinyin(text, style=Style.NORMAL, v_to_u=True) if s.strip()]
    if not syl:
        return ""
    word = syl[0] + "".join(("'" + s) if s[0] in "aoe" else s for s in syl[1:])
    return word[0].upper() + word[1:]


def place_pinyin(name: str) -> str:
    """Pinyin of an admin or committee name: ``白沙街道`` -> ``Baisha Jiedao`` (a simple rule)."""
    for suffix, generic in GENERIC_PINYIN:
        if name.endswith(suffix) and len(name) > len(suffix):
            return f"{proper_pinyin(name[: -len(suffix)])} {generic}"
    return proper_pinyin(name)


def rural_committee(code: str) -> bool:
    """Return True for a village committee (村委会) code: digits 10-12 in 200-399 or 500-599.

    The statistical division code rule of STANDARDS.md §F (001-199 居委会, 200-399 村委会,
    400-499 居委会-like, 500-599 村委会-like).
    """
    n = int(code[9:12])
    return 200 <= n < 400 or 500 <= n < 600


def short_name(name: str) -> str:
    """Return a committee's short name, e.g. ``羊桥社区居委会`` -> ``羊桥社区``.

    ``桐井村委会`` -> ``桐井村``; used to build facility names and addresses.
    """
    suffix = "村" if name.endswith("村委会") else "社区" if "社区" in name else ""
    return specific_name(name) + suffix


def specific_name(name: str) -> str:
    """Return the 专名 of a town or committee name: ``羊桥社区居委会`` -> ``羊桥``."""
    for suffix, _ in GENERIC_PINYIN:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


# --- grids, networks, lines -------------------------------------------------------------------


def gauss_kernel(gx: np.ndarray, gy: np.ndarray, points: np.ndarray, sigma: float) -> np.ndarray:
    """Sum of unit-height Gaussian bumps of width ``sigma`` at ``points``, on a grid."""
    k = np.zeros(gx.shape)
    for px, py in np.asarray(points, float).reshape(-1, 2):
        k += np.exp(-((gx - px) ** 2 + (gy - py) ** 2) / (2 * sigma**2))
    return k


def label_cells(
    polys: Sequence[Any], cx: np.ndarray, cy: np.ndarray, mask: np.ndarray, seats: np.ndarray
) -> np.ndarray:
    """Index of the polygon containing each masked cell centre (-1 elsewhere).

    ``cx`` increases and ``cy`` decreases (north-up grid). A centre on a shared edge goes to the
    first polygon; a masked centre in no polygon to the nearest of ``seats``.
    """
    gx, gy = np.meshgrid(cx, cy)
    label = np.full(gx.shape, -1)
    for test in (shapely.contains_xy, shapely.intersects_xy):
        for v, poly in enumerate(polys):
            bx0, by0, bx1, by1 = poly.bounds
            c0, c1 = np.searchsorted(cx, bx0), np.searchsorted(cx, bx1, side="right")
            r0, r1 = np.searchsorted(-cy, -by1), np.searchsorted(-cy, -by0, side="right")
            win = (slice(r0, r1), slice(c0, c1))
            todo = mask[win] & (label[win] < 0)
            if todo.any():
                hit = np.zeros_like(todo)
                hit[todo] = test(poly, gx[win][todo], gy[win][todo])
                label[win][hit] = v
    lost = mask & (label < 0)
    if lost.any():
        label[lost] = cKDTree(seats).query(np.column_stack([gx[lost], gy[lost]]))[1]
    return label


def bridge_sites(
    xy: np.ndarray,
    edges: np.ndarray,
    side_a: np.ndarray,
    side_b: np.ndarray,
    allowed: Any,
    forbidden: Any,
    n: int = 3,
    gap: float = 2500.0,
) -> list[tuple[int, int]]:
    """Pick up to ``n`` short straight links between two node sets, ``gap`` m apart.

    A link must lie in ``allowed``, miss ``forbidden`` and meet existing edges only at its own
    end nodes (so the network stays noded). Shortest links first; the search radius grows from
    700 m to 1,200 m when nothing fits.
    """
    tree = shapely.STRtree(shapely.linestrings(np.stack([xy[edges[:, 0]], xy[edges[:, 1]]], 1)))
    a_ids, b_ids = np.flatnonzero(side_a), np.flatnonzero(side_b)
    chosen: list[tuple[int, int]] = []
    mids: list[np.ndarray] = []
    for radius in (700.0, 1200.0):
        near_b = cKDTree(xy[b_ids]).query_ball_point(xy[a_ids], r=radius)
        cand = sorted(
            (float(np.hypot(*(xy[a_ids[i]] - xy[b_ids[j]]))), int(a_ids[i]), int(b_ids[j]))
            for i, js in enumerate(near_b)
            for j in js
        )
        for _, u, v in cand:
            mid = (xy[u] + xy[v]) / 2
            if len(chosen) == n or any(np.hypot(*(mid - m)) < gap for m in mids):
                continue
            line = shapely.LineString([xy[u], xy[v]])
            if not line.within(allowed) or line.intersects(forbidden):
                continue
            if any(u not in edges[h] and v not in edges[h] for h in tree.query(line, "intersects")):
                continue
            chosen.append((u, v))
            mids.append(mid)
        if chosen:
            break
    return chosen


def route_edges(
    n_nodes: int, edges: np.ndarray, weight: np.ndarray, source: int, targets: Sequence[int]
) -> np.ndarray:
    """Per edge, the first target whose shortest path from ``source`` uses it (-1 if none)."""
    graph = coo_matrix((weight, (edges[:, 0], edges[:, 1])), shape=(n_nodes, n_nodes)).tocsr()
    _, pred = dijkstra(graph, directed=False, indices=source, return_predecessors=True)
    edge_of = {(min(a, b), max(a, b)): i for i, (a, b) in enumerate(edges.tolist())}
    route = np.full(len(edges), -1)
    for t in reversed(range(len(targets))):
        node = int(targets[t])
        while node != source and pred[node] >= 0:
            p = int(pred[node])
            route[edge_of[(min(p, node), max(p, node))]] = t
            node = p
    return route


def ordered_parts(line: Any) -> list[Any]:
    """Parts of a (multi)line, merged, oriented and sorted W→E, or N→S when taller than wide."""
    parts = [p for p in shapely.get_parts(shapely.line_merge(line)) if p.geom_type == "LineString"]
    x0, y0, x1, y1 = shapely.MultiLineString(parts).bounds
    west_east = (x1 - x0) >= (y1 - y0)
    out = []
    for p in parts:
        c = np.asarray(p.coords)
        flip = c[0, 0] > c[-1, 0] if west_east else c[0, 1] < c[-1, 1]
        out.append(shapely.LineString(c[::-1]) if flip else p)
    out.sort(key=lambda p: p.coords[0][0] if west_east else -p.coords[0][1])
    return out


def blob(centre: np.ndarray, a: float, b: float, angle: float, rng: np.random.Generator) -> Any:
    """Return an irregular star-shaped (so valid) polygon: an ellipse with ±15 % radial noise."""
    th = np.linspace(0, 2 * np.pi, 17)[:-1]
    r = rng.uniform(0.85, 1.15, len(th))
    ring = np.column_stack([a * r * np.cos(th), b * r * np.sin(th)])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return shapely.Polygon(ring @ rot.T + centre)

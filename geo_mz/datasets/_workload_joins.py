"""County roads across the borders of a generated workload: the ``joined=True`` option.

Private machinery of :mod:`geo_mz.datasets.county_workload` (its module docstring, step 7,
describes the method). Each pair of neighbouring counties draws from its own
``numpy.random.default_rng([seed, int(code_a), int(code_b), 7])`` (``code_a < code_b``), so the
roads of a pair depend only on the seed and the two counties, whatever else is in the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pyproj
import shapely

from geo_mz.core.projection import STORAGE_CRS, gk_zone_crs
from geo_mz.datasets import _synth as sy

#: Two counties are neighbours when their polygons come this close (the converted echarts
#: polygons leave slivers of a few metres between neighbours) ...
NEIGHBOUR_TOL_M = 100.0
#: ... along at least this much border: a shared corner is not a border a road crosses.
MIN_BORDER_M = 1000.0
#: Roads per pair of neighbours: drawn in 1..3 (county roads: 县道 are few per border).
ROADS_PER_PAIR = (1, 3)
#: Border points tried per pair before giving up on the rest of its roads.
CANDIDATES = 12
#: Classes of the joining roads (roads.toml codes; drive speeds per the network's table).
CLASSES = ("secondary", "tertiary")
_STREAM = 7  # the pair generator's extra seed word, apart from the counties' own streams


@dataclass
class _County:
    code: str
    name: str
    poly: Any  # EPSG:4490
    nodes: np.ndarray  # (n, 2) end points of its largest road component, EPSG:4490
    towns: list[Any]  # town polygons, EPSG:4490


def main_nodes(roads: gpd.GeoDataFrame) -> np.ndarray:
    """Return the distinct end points of the largest connected piece of ``roads`` (their CRS).

    End points are matched exactly: the generator writes every junction from one coordinate.
    """
    if roads.empty:
        return np.empty((0, 2))
    first = shapely.get_point(roads.geometry.values, 0)
    last = shapely.get_point(roads.geometry.values, -1)
    ends = np.vstack([shapely.get_coordinates(first), shapely.get_coordinates(last)])
    xy, idx = np.unique(ends, axis=0, return_inverse=True)
    idx = idx.ravel()
    label = sy.components(len(xy), np.column_stack([idx[: len(roads)], idx[len(roads) :]]))
    return xy[label == np.bincount(label).argmax()]


def _border_points(line: Any, fractions: np.ndarray) -> np.ndarray:
    """Points at ``fractions`` of the total length of a (multi)line, as (k, 2) xy."""
    parts = [p for p in shapely.get_parts(line) if p.geom_type == "LineString" and p.length > 0]
    lengths = np.array([p.length for p in parts])
    at = fractions * lengths.sum()
    ends = np.cumsum(lengths)
    which = np.minimum(np.searchsorted(ends, at), len(parts) - 1)
    along = at - (ends[which] - lengths[which])
    pts = [shapely.line_interpolate_point(parts[w], d) for w, d in zip(which, along, strict=True)]
    return shapely.get_coordinates(pts)


def _to(g: Any, tr: pyproj.Transformer) -> Any:
    """Transform a geometry; valid again if the projection broke it (self-touching rings)."""
    out = shapely.transform(g, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    return out if out.is_valid else shapely.make_valid(out)


def _pair_roads(a: _County, b: _County, seed: int) -> list[tuple[str, str, str, Any]] | None:
    """Draw the county roads of one pair: (road_id, name, class, LineString in EPSG:4490) each.

    ``None`` when the two share no border of ``MIN_BORDER_M``; an empty list when they do but
    no road fits (or one of them has no roads).
    """
    crs = gk_zone_crs((shapely.centroid(a.poly).x + shapely.centroid(b.poly).x) / 2.0)
    fwd = pyproj.Transformer.from_crs(STORAGE_CRS, crs, always_xy=True)
    back = pyproj.Transformer.from_crs(crs, STORAGE_CRS, always_xy=True)
    pa, pb = (_to(g, fwd) for g in (a.poly, b.poly))
    border = shapely.intersection(pa.boundary, pb.buffer(NEIGHBOUR_TOL_M))
    if border.is_empty or border.length < MIN_BORDER_M:
        return None
    if not len(a.nodes) or not len(b.nodes):
        return []
    rng = np.random.default_rng([int(seed), int(a.code), int(b.code), _STREAM])
    want = int(rng.integers(ROADS_PER_PAIR[0], ROADS_PER_PAIR[1] + 1))
    fractions = (rng.permutation(CANDIDATES) + rng.uniform(0.2, 0.8, CANDIDATES)) / CANDIDATES
    klass = rng.choice(CLASSES, CANDIDATES)
    na = np.column_stack(fwd.transform(*a.nodes.T))
    nb = np.column_stack(fwd.transform(*b.nodes.T))
    room = shapely.union_all([pa, pb]).buffer(NEIGHBOUR_TOL_M)
    shapely.prepare(room)
    towns = [_to(t, fwd) for t in (*a.towns, *b.towns)]
    out: list[tuple[str, str, str, Any]] = []
    used: set[tuple[int, int]] = set()
    for p, k in zip(_border_points(border, fractions), klass, strict=True):
        if len(out) >= want:
            break
        ia = int(np.argmin(np.hypot(*(na - p).T)))
        ib = int(np.argmin(np.hypot(*(nb - p).T)))
        if (ia, ib) in used:
            continue
        line = shapely.LineString([na[ia], p, nb[ib]])
        if not room.covers(line):
            continue
        # Clear of every town but the two it starts and ends in (no street crossed unnoded).
        ends = shapely.points([na[ia], nb[ib]])
        if any(not shapely.intersects(t, ends).any() and t.intersects(line) for t in towns):
            continue
        used.add((ia, ib))
        mid = np.column_stack(back.transform(*p[:, None]))[0]
        # The ends keep the streets' own EPSG:4490 coordinates, so the network joins them.
        geom = shapely.LineString([a.nodes[ia], mid, b.nodes[ib]])
        n = len(out) + 1
        out.append((f"{a.code}-J{b.code}-{n}", f"{a.name}至{b.name}县道{n}", str(k), geom))
    return out


def border_roads(
    counties: gpd.GeoDataFrame, roads: gpd.GeoDataFrame, units: gpd.GeoDataFrame, seed: int
) -> tuple[dict[str, list[Any]], list[Any], dict[str, int]]:
    """Draw county roads joining every pair of neighbouring generated counties (step 7).

    Parameters
    ----------
    counties
        The generated counties' rows (``adcode``, ``name``, polygon), EPSG:4490.
    roads
        The generated roads of all of them (ids start with the county's adcode), EPSG:4490.
    units
        The generated ``admin_units`` (towns: level ``town``, ``parent_adcode`` the county).
    seed
        The workload's global seed.

    Returns
    -------
    tuple
        Road columns by name (``road_id``, ``name``, ``road_class``, ``lanes``, ``oneway``,
        ``bridge``, ``tunnel``), their LineStrings (EPSG:4490) and counts: ``border_pairs``
        (neighbour pairs), ``border_roads`` and ``border_pairs_unjoined`` (pairs where no road
        fitted inside the two counties and clear of their other towns).
    """
    county_of = roads["road_id"].astype(str).str[:6].to_numpy()
    town_rows = units[units["level"] == "town"]
    cs = []
    for code, name, poly in zip(counties["adcode"].astype(str), counties["name"],
                                counties.geometry, strict=True):  # fmt: skip
        towns = list(town_rows.geometry[town_rows["parent_adcode"].astype(str) == code])
        cs.append(_County(code, str(name), poly, main_nodes(roads[county_of == code]), towns))
    tree = shapely.STRtree([c.poly for c in cs])
    # Degrees per metre, generously (a pair is checked in metres afterwards).
    left, right = tree.query([c.poly for c in cs], predicate="dwithin",
                             distance=NEIGHBOUR_TOL_M / 90_000.0)  # fmt: skip
    pairs = sorted({(min(cs[i].code, cs[j].code), max(cs[i].code, cs[j].code))
                    for i, j in zip(left, right, strict=True) if i != j})  # fmt: skip
    by_code = {c.code: c for c in cs}
    cols: dict[str, list[Any]] = {k: [] for k in ("road_id", "name", "road_class", "lanes")}
    geoms: list[Any] = []
    joined = neighbours = 0
    for ca, cb in pairs:
        found = _pair_roads(by_code[ca], by_code[cb], seed)
        if found is None:
            continue
        neighbours += 1
        joined += bool(found)
        for rid, name, klass, geom in found:
            cols["road_id"].append(rid)
            cols["name"].append(name)
            cols["road_class"].append(klass)
            cols["lanes"].append(2)
            geoms.append(geom)
    for k in ("oneway", "bridge", "tunnel"):
        cols[k] = [False] * len(geoms)
    counts = {"border_pairs": neighbours, "border_roads": len(geoms),
              "border_pairs_unjoined": neighbours - joined}  # fmt: skip
    return cols, geoms, counts

"""The towns of a generated county workload: street grids, links, population cells, centres.

Private machinery of :mod:`geo_mz.datasets.county_workload`, whose module docstring describes
the method (steps 1-3 and 5-6 are here). Everything works in metres, in the county's
Gauss-Krüger zone, and draws from the county's own random generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely

from geo_mz.datasets import _synth as sy

CELL_M = 100.0
_NEAR_STREET_M = 150.0
_JITTER = 0.15
_KEEP_EXTRA_EDGES = 0.85
_TOWN_MARGIN = 0.6  # town polygon = hull of the streets buffered by this x spacing
_MIN_EDGES_SHARE = 0.25  # a settlement needs this share of its full lattice edges
_DIGITS = "一二三四五六七八九十"

# --------------------------------------------------------------------------- streets


@dataclass
class Settlement:
    """One settlement: its street graph in metres and, once placed, its town polygon."""

    k: int
    centre: np.ndarray
    node_xy: np.ndarray  # kept nodes, metres
    edges: np.ndarray  # (m, 2) indices into node_xy
    klass: list[str]
    names: list[str]
    town: Any = None


def _lattice(
    centre: np.ndarray, n: int, spacing: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Jittered, rotated lattice: node xy, (i, j) per node, edges, and each edge's line index."""
    i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    i, j = i.ravel(), j.ravel()
    local = np.column_stack([i, j]) * spacing - n * spacing / 2.0
    local += rng.uniform(-_JITTER, _JITTER, local.shape) * spacing
    theta = rng.uniform(0.0, np.pi / 2.0)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    xy = local @ rot.T + centre
    idx = i * (n + 1) + j
    horiz = np.column_stack([idx[i < n], idx[i < n] + (n + 1)])  # along i, line = j
    vert = np.column_stack([idx[j < n], idx[j < n] + 1])  # along j, line = i
    edges = np.vstack([horiz, vert])
    line = np.concatenate([j[i < n], i[j < n]])
    along_i = np.concatenate([np.ones(len(horiz), bool), np.zeros(len(vert), bool)])
    return xy, edges, line, along_i


def _street_class(line: int, n: int) -> str:
    if line == n // 2:
        return "primary"
    if line % 4 == 0:
        return "secondary"
    return "residential"


def _settlement(
    k: int,
    centre: np.ndarray,
    county: Any,
    avoid: Any,
    spacing: float,
    extent: float,
    rng: np.random.Generator,
) -> Settlement | None:
    n = max(2, round(extent / spacing))
    xy, edges, line, along_i = _lattice(centre, n, spacing, rng)
    lines = shapely.linestrings(np.stack([xy[edges[:, 0]], xy[edges[:, 1]]], axis=1))
    ok = shapely.contains(county, lines)
    if avoid is not None:
        ok &= ~shapely.intersects(avoid, lines)
    keep = np.flatnonzero(ok)
    if len(keep) < max(4, _MIN_EDGES_SHARE * len(edges)):
        return None
    sub = edges[keep]
    forest = sy.random_spanning_forest(len(xy), sub, rng)
    extra = rng.uniform(size=len(sub)) < _KEEP_EXTRA_EDGES
    keep = keep[forest | extra]
    sub = edges[keep]
    label = sy.components(len(xy), sub)
    used = np.unique(sub)
    counts = np.bincount(label[used], minlength=label.max() + 1)
    big = int(np.argmax(counts))
    keep = keep[label[edges[keep, 0]] == big]
    if len(keep) < max(4, _MIN_EDGES_SHARE * len(edges)):
        return None
    nodes = np.unique(edges[keep])
    remap = np.full(len(xy), -1)
    remap[nodes] = np.arange(len(nodes))
    klass = [_street_class(int(line[e]), n) for e in keep]
    names = [f"纬{int(line[e]) + 1}路" if along_i[e] else f"经{int(line[e]) + 1}路" for e in keep]
    return Settlement(k, centre, xy[nodes], remap[edges[keep]], klass, names)


def _sample_in(region: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points inside ``region``: parts drawn by area, then bounded rejection sampling.

    Unlike plain rejection sampling in the bounding box this stays fast for counties made of
    scattered islands (e.g. 三沙市); a part that rejects every try gives its representative
    point instead.
    """
    parts = [p for p in shapely.get_parts(region) if p.geom_type == "Polygon" and p.area > 0]
    if not parts or n <= 0:
        return np.empty((0, 2))
    areas = np.array([p.area for p in parts])
    counts = rng.multinomial(n, areas / areas.sum())
    out = []
    for part, k in zip(parts, counts, strict=True):
        if k == 0:
            continue
        minx, miny, maxx, maxy = part.bounds
        got: list[np.ndarray] = []
        for _ in range(50):
            xy = np.column_stack(
                [rng.uniform(minx, maxx, 4 * k + 16), rng.uniform(miny, maxy, 4 * k + 16)]
            )
            got.append(xy[shapely.contains_xy(part, xy[:, 0], xy[:, 1])])
            if sum(len(g) for g in got) >= k:
                break
        pts = np.vstack(got)[:k]
        if len(pts) < k:
            rep = shapely.get_coordinates(part.representative_point())
            pts = np.vstack([pts, np.repeat(rep, k - len(pts), axis=0)])
        out.append(pts)
    xy = np.vstack(out)
    return xy[rng.permutation(len(xy))]


def settlements(
    county: Any, settlements: int, spacing: float, extent: float, rng: np.random.Generator
) -> list[Settlement]:
    """Place up to ``settlements`` separate settlements in ``county`` (metres; step 1)."""
    out = _settlements_of(county, settlements, spacing, extent, rng)
    # A county too small or too thin for one full grid gets one smaller settlement.
    for shrink in (2.0, 4.0):
        if out or extent / shrink < 2 * spacing:
            break
        out = _settlements_of(county, 1, spacing, extent / shrink, rng)
    return out


def _settlements_of(
    county: Any, settlements: int, spacing: float, extent: float, rng: np.random.Generator
) -> list[Settlement]:
    margin = _TOWN_MARGIN * spacing
    min_sep = 1.5 * extent + 2 * margin + spacing
    inner = county.buffer(-extent / 4.0)
    region = inner if inner.area > 0.05 * county.area and not inner.is_empty else county
    out: list[Settlement] = []
    towns: list[Any] = []
    for cand in _sample_in(region, 24 * max(settlements, 1), rng):
        if len(out) >= settlements:
            break
        if any(np.hypot(*(cand - s.centre)) < min_sep for s in out):
            continue
        avoid = shapely.union_all(towns) if towns else None
        s = _settlement(len(out) + 1, cand, county, avoid, spacing, extent, rng)
        if s is None:
            continue
        hull = shapely.convex_hull(shapely.multipoints(s.node_xy)).buffer(margin)
        s.town = sy.clean_polygon(shapely.intersection(hull, county))
        if avoid is not None:
            s.town = sy.clean_polygon(shapely.difference(s.town, avoid))
        out.append(s)
        towns.append(s.town)
    return out


def links(county: Any, ss: list[Settlement]) -> list[tuple[int, int, Any]]:
    """Straight rural roads joining settlements, shortest first (Kruskal over all pairs).

    A pair is joined only when it links two still separate groups and the road between their
    closest street nodes stays inside the county and clear of the other towns.
    """
    pairs = []
    for a in range(len(ss)):
        for b in range(a + 1, len(ss)):
            pa, pb = ss[a].node_xy, ss[b].node_xy
            d = np.linalg.norm(pa[:, None, :] - pb[None, :, :], axis=2)
            ia, ib = np.unravel_index(int(np.argmin(d)), d.shape)
            pairs.append((float(d[ia, ib]), a, b, shapely.LineString([pa[ia], pb[ib]])))
    group = list(range(len(ss)))

    def root(i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    out = []
    for _, a, b, line in sorted(pairs, key=lambda p: (p[0], p[1], p[2])):
        ra, rb = root(a), root(b)
        if ra == rb or not county.contains(line):
            continue
        others = [s.town for i, s in enumerate(ss) if i not in (a, b)]
        if others and shapely.union_all(others).intersects(line):
            continue
        group[rb] = ra
        out.append((a, b, line))
    return out


# --------------------------------------------------------------------------- layers


def town_name(k: int) -> str:
    """Name the ``k``-th synthetic town of a county (合成一镇, 合成二镇, ...)."""
    num = _DIGITS[k - 1] if k <= len(_DIGITS) else str(k)
    return f"合成{num}镇"


def population(
    code: str,
    s: Settlement,
    town_code: str,
    share0: float,
    extent: float,
    rng: np.random.Generator,
) -> tuple[dict[str, list[Any]], list[Any]]:
    """Draw the population cells of one town: columns by name and their points (step 5)."""
    minx, miny, maxx, maxy = s.town.bounds
    cx = np.arange(np.floor(minx / CELL_M), np.ceil(maxx / CELL_M)) * CELL_M + CELL_M / 2
    cy = np.arange(np.floor(miny / CELL_M), np.ceil(maxy / CELL_M)) * CELL_M + CELL_M / 2
    gx, gy = np.meshgrid(cx, cy, indexing="ij")
    pts = shapely.points(gx.ravel(), gy.ravel())
    segs = shapely.linestrings(np.stack([s.node_xy[s.edges[:, 0]], s.node_xy[s.edges[:, 1]]], 1))
    streets = shapely.union_all(segs)
    shapely.prepare(s.town)
    shapely.prepare(streets)
    inside = shapely.contains(s.town, pts) & shapely.dwithin(streets, pts, _NEAR_STREET_M)
    r = np.hypot(gx.ravel() - s.centre[0], gy.ravel() - s.centre[1])
    lam = (15.0 + 160.0 * np.exp(-((r / (0.35 * extent)) ** 2))) * rng.lognormal(0, 0.35, len(r))
    total = rng.poisson(lam)
    share = np.clip(share0 + rng.normal(0.0, 0.03, len(r)), 0.05, 0.45)
    aged = np.minimum(np.round(total * share), total)
    keep = np.flatnonzero(inside & (total > 0))
    ii, jj = np.unravel_index(keep, gx.shape)
    cols = {
        "cell_id": [f"{code}-S{s.k}-P{a:03d}{b:03d}" for a, b in zip(ii, jj, strict=True)],
        "pop_total": total[keep].astype(float).tolist(),
        "pop_60plus": aged[keep].astype(float).tolist(),
        "cell_size_m": [CELL_M] * len(keep),
        "adcode": [town_code] * len(keep),
    }
    return cols, list(pts[keep])


def elder_care(
    code: str,
    county_name: str,
    s: Settlement,
    town_code: str,
    town_name: str,
    rng: np.random.Generator,
) -> tuple[list[dict[str, Any]], list[Any]]:
    """Place the elder-care centres of one town at street nodes: rows and points (step 6)."""
    order = np.argsort(np.hypot(*(s.node_xy - s.centre).T))
    central = int(order[0])
    others = rng.permutation([int(i) for i in order[1:]])
    plan: list[tuple[str, str, str]] = [
        ("town_centre", f"{town_name}综合养老服务中心", "operating")
    ]
    for m in range(int(rng.integers(1, 3))):
        kind = "home_care_centre" if m == 0 else "day_care_centre"
        label = "居家养老服务中心" if m == 0 else "日间照料中心"
        status = "planned" if rng.uniform() < 0.25 else "operating"
        plan.append((kind, f"{town_name}第{m + 1}{label}", status))
    plan.append(("nursing_home", f"{town_name}颐养院", "operating"))
    if rng.uniform() < 0.5:
        plan.append(("meal_point", f"{town_name}长者饭堂", "operating"))
    nodes = [central, *[int(x) for x in others[: len(plan) - 1]]]
    rows, geoms = [], []
    for (kind, name, status), node in zip(plan, nodes, strict=False):
        beds = nursing = 0
        places = int(rng.integers(30, 80))
        if kind == "nursing_home":
            beds = int(rng.integers(80, 300))
            nursing = int(beds * rng.uniform(0.4, 0.6))
            places = beds
        operator_type = (
            "public"
            if kind == "town_centre"
            else str(rng.choice(["public", "public_private", "private"]))
        )
        rows.append(
            {
                "facility_id": f"{code}-S{s.k}-EC{len(rows) + 1:02d}",
                "name": name,
                "kind": kind,
                "status": status,
                "beds": beds,
                "nursing_beds": nursing,
                "places": places,
                "operator_type": operator_type,
                "operator": f"{town_name}人民政府" if operator_type == "public" else None,
                "adcode": town_code,
                "address": f"{county_name}{town_name}{int(rng.integers(1, 300))}号",
                "opened_year": None if status == "planned" else int(rng.integers(2000, 2026)),
            }
        )
        geoms.append(shapely.Point(s.node_xy[node]))
    return rows, geoms

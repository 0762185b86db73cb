"""Isochrone-polygon benchmark: geo_mz vs per-centre buffer-and-union, measured in the same run.

Case: a jittered 1,000 x 1,000 street grid (1,000,000 nodes, ~2,000,000 edges, 100 m spacing,
walking 4 km/h, so 15 min = 1,000 m) with 1,000 random centres, ``buffer_m`` = 50, GEOS default
``quad_segs`` = 8 on both sides.

(a) geo_mz: ONE ``multi_source_times`` pass + ``isochrones`` (merged rings). Timed cold (first
    call on the network: it tests the reached edges for crossings and caches the result) and
    warm (second call).
(b) the common approach: for each centre, its own limited Dijkstra
    (``scipy.sparse.csgraph.dijkstra(limit=...)``), its reached edges cut at the exact point
    (same rule as geo_mz; the reached edges are found from the reached nodes' arcs, not by
    scanning the network), ``shapely.buffer`` of the pieces and ``shapely.union_all`` per
    centre; then ``union_all`` of all centres per threshold (the merged isochrone) and, for
    rings, the differences between thresholds. By default every centre is run (the merge of
    1,000 overlapping polygons grows faster than linearly, so it is measured, not
    extrapolated); ``--sample N`` runs N centres and extrapolates every part linearly (which
    underestimates the merge: a lower bound for (b)).

Both (a) and (b) produce the same polygons: the merged 15-minute areas and each ring (b's
ring = its threshold's merge minus the previous one's) are compared (their difference must stay
within the round-cap chord tolerance, 0.25 m times the perimeter).

Times are wall clock (median over ``--repeat`` runs) and, because the box is shared, also the
process CPU seconds of each side (both sides are single-threaded); the load average is printed.
Between runs both sides keep their results as WKB only (live GEOS geometries of one side,
e.g. the merged polygons, fragment the heap and slow the other side's next run).

The grid Network is built from arrays directly (``grid_network``) instead of
``network_from_roads`` on 2 M LineStrings, to save ~1 minute; a 40 x 40 grid is built both
ways first and must give the same isochrones.

Run: ``.venv/bin/python bench/bench_isochrones.py [--side 1000] [--centres 1000] [--sample N]``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import time
import tracemalloc

import geopandas as gpd
import numpy as np
import shapely
from scipy.sparse.csgraph import dijkstra

from geo_mz.network import _isochrone_plane as iso_plane
from geo_mz.network._isochrone_plane import _substrings
from geo_mz.network.graph import Network, _csr_min, network_from_roads
from geo_mz.network.isochrone import QUAD_SEGS, isochrones
from geo_mz.network.paths import multi_source_times

SPACING_M = 100.0
SPEED_KMH = 4.0
BUFFER_M = 50.0
THRESHOLDS_MIN = (5.0, 10.0, 15.0)


def grid_xy(side: int, rng: np.random.Generator) -> np.ndarray:
    """Node coordinates of a side x side grid jittered by +-20 % of the spacing (EPSG:4547)."""
    jj, ii = np.meshgrid(np.arange(side), np.arange(side))
    xy = np.stack([500_000.0 + jj * SPACING_M, 3_300_000.0 + ii * SPACING_M], axis=-1)
    return (xy + rng.uniform(-0.2, 0.2, xy.shape) * SPACING_M).reshape(-1, 2)


def grid_edges(side: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.arange(side * side).reshape(side, side)
    u = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    v = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    return u, v


def grid_network(side: int, rng: np.random.Generator) -> Network:
    """The grid as a walking Network built from arrays (what network_from_roads would build)."""
    node_xy = grid_xy(side, rng)
    u, v = grid_edges(side)
    geoms = shapely.linestrings(np.stack([node_xy[u], node_xy[v]], axis=1))
    length = np.hypot(*(node_xy[v] - node_xy[u]).T)
    e = len(u)
    arc_edge = np.repeat(np.arange(e), 2)
    arc_forward = np.tile([True, False], e)
    arc_time = (length * 0.06 / SPEED_KMH)[arc_edge]
    tails = np.where(arc_forward, u[arc_edge], v[arc_edge])
    heads = np.where(arc_forward, v[arc_edge], u[arc_edge])
    return Network(
        mode="walk",
        crs="EPSG:4547",
        node_xy=node_xy,
        edge_u=u,
        edge_v=v,
        edge_length_m=length,
        edge_geometry=geoms,
        edge_id=np.arange(e).astype(object),
        edge_class=np.full(e, "residential", dtype=object),
        edge_speed_kmh=np.full(e, SPEED_KMH),
        arc_edge=arc_edge,
        arc_forward=arc_forward,
        arc_time_min=arc_time,
        graph=_csr_min(tails, heads, arc_time, side * side),
        dropped={},
        access_speed_kmh=SPEED_KMH,
    )


def check_builder() -> None:
    """The array-built grid gives the same isochrones as network_from_roads on its LineStrings."""
    side = 40
    a = grid_network(side, np.random.default_rng(7))
    u, v = grid_edges(side)
    roads = gpd.GeoDataFrame(
        {"road_id": np.arange(len(u)), "road_class": "residential"},
        geometry=shapely.linestrings(np.stack([a.node_xy[u], a.node_xy[v]], axis=1)),
        crs="EPSG:4547",
    )
    b = network_from_roads(roads, mode="walk", measure_crs="EPSG:4547", walk_speed_kmh=SPEED_KMH)
    assert (a.n_nodes, a.n_edges, a.n_arcs) == (b.n_nodes, b.n_edges, b.n_arcs)
    centres = np.array([5, 700, 1234])
    b_nodes = b.node_tree.query(a.node_xy[centres])[1]
    areas = []
    for net, src in ((a, centres), (b, b_nodes)):
        t, _ = multi_source_times(net, src, limit_min=15)
        areas.append(isochrones(net, t, crs_out=net.crs).area_m2.to_numpy())
    assert np.allclose(areas[0], areas[1], rtol=1e-9), areas


# --------------------------------------------------------------------------- (b) per centre


class PerCentre:
    """The common approach, made as fast as it honestly goes (vectorised per centre)."""

    def __init__(self, net: Network) -> None:
        self.net = net
        tails = np.where(net.arc_forward, net.edge_u[net.arc_edge], net.edge_v[net.arc_edge])
        self.arc_order = np.argsort(tails, kind="stable")
        self.indptr = np.searchsorted(tails[self.arc_order], np.arange(net.n_nodes + 1))
        self.t_dijkstra = 0.0
        self.t_union = dict.fromkeys(THRESHOLDS_MIN, 0.0)

    def polygons(self, centre: int) -> dict[float, shapely.Geometry]:
        net = self.net
        t0 = time.perf_counter()
        dist = dijkstra(net.graph, indices=centre, limit=max(THRESHOLDS_MIN))
        reached = np.flatnonzero(np.isfinite(dist))
        counts = self.indptr[reached + 1] - self.indptr[reached]
        arcs = self.arc_order[
            np.repeat(self.indptr[reached], counts)
            + np.arange(counts.sum())
            - np.repeat(np.cumsum(counts) - counts, counts)
        ]
        edges = np.unique(net.arc_edge[arcs])
        u, v, length = net.edge_u[edges], net.edge_v[edges], net.edge_length_m[edges]
        edge_t = length * 0.06 / net.edge_speed_kmh[edges]  # two-way walk edges
        self.t_dijkstra += time.perf_counter() - t0
        out = {}
        for k in THRESHOLDS_MIN:
            t1 = time.perf_counter()
            with np.errstate(invalid="ignore"):
                a = np.where(dist[u] + edge_t <= k, 1.0, np.clip((k - dist[u]) / edge_t, 0, 1))
                b = np.where(dist[v] + edge_t <= k, 1.0, np.clip((k - dist[v]) / edge_t, 0, 1))
            a, b = np.nan_to_num(a), np.nan_to_num(b)
            whole = a + b >= 1
            pa, pb = ~whole & (a > 0), ~whole & (b > 0)
            g = net.edge_geometry[edges]
            pieces = np.concatenate(
                [
                    g[whole],
                    _substrings(g[pa], np.zeros(pa.sum()), a[pa] * length[pa]),
                    _substrings(g[pb], (1 - b[pb]) * length[pb], length[pb]),
                ]
            )
            out[k] = shapely.union_all(shapely.buffer(pieces, BUFFER_M, quad_segs=QUAD_SEGS))
            self.t_union[k] += time.perf_counter() - t1
        return out


def run_baseline(net: Network, centres: np.ndarray) -> tuple[dict[str, float], dict]:
    pc = PerCentre(net)
    per = [pc.polygons(int(c)) for c in centres]
    merged, t_merge = {}, {}
    for k in THRESHOLDS_MIN:
        t0 = time.perf_counter()
        merged[k] = shapely.union_all(np.array([p[k] for p in per], dtype=object))
        t_merge[k] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rings = {THRESHOLDS_MIN[0]: merged[THRESHOLDS_MIN[0]]}
    for lo, hi in itertools.pairwise(THRESHOLDS_MIN):
        rings[hi] = shapely.difference(merged[hi], merged[lo])
    t_rings = time.perf_counter() - t0
    times = {
        "dijkstra+reach": pc.t_dijkstra,
        **{f"buffer+union {k:g}": pc.t_union[k] for k in THRESHOLDS_MIN},
        **{f"merge {k:g}": t_merge[k] for k in THRESHOLDS_MIN},
        "ring differences": t_rings,
    }
    return times, merged | {("ring", k): r for k, r in rings.items()}


# --------------------------------------------------------------------------- main


def as_wkb(iso: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """A result kept between runs as WKB: live GEOS geometries of one side left in memory
    (the merged 611 km2 polygons) slowed the other side's next run by ~25 % (heap
    fragmentation: 2.1 s instead of 1.65 s CPU measured), so both sides keep WKB only."""
    out = iso.drop(columns="geometry")
    out["wkb"] = shapely.to_wkb(iso.geometry.values)
    return out


def from_wkb(kept: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(kept.drop(columns="wkb"), geometry=shapely.from_wkb(kept["wkb"]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--side", type=int, default=1000)
    ap.add_argument("--centres", type=int, default=1000)
    ap.add_argument("--sample", type=int, default=0, help="baseline on N centres, extrapolated")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs of each side (median)")
    args = ap.parse_args()
    t_start = time.perf_counter()
    load0 = os.getloadavg()
    check_builder()
    rng = np.random.default_rng(2024)
    t0 = time.perf_counter()
    net = grid_network(args.side, rng)
    centres = rng.choice(net.n_nodes, args.centres, replace=False)
    print(
        f"grid {args.side}x{args.side}: {net.n_nodes:,} nodes, {net.n_edges:,} edges (arrays, "
        f"{time.perf_counter() - t0:.1f} s); {len(centres):,} centres; walk {SPEED_KMH} km/h, "
        f"buffer {BUFFER_M:g} m, quad_segs {QUAD_SEGS}, thresholds {THRESHOLDS_MIN}; "
        f"both sides: one warm-up call, {args.repeat} timed run(s) each, median, order "
        "alternating; (a) cold = crossing cache cleared before each run; "
        f"load average {load0[0]:.1f} on {os.cpu_count()} CPUs (other processes)"
    )

    def ours(thresholds: tuple[float, ...], cold: bool) -> tuple[float, float, object, float]:
        if cold:  # forget which edges were tested for crossings (first call on a network)
            iso_plane._CROSSING_CACHE.clear()
        cpu, t_a = time.process_time(), time.perf_counter()
        times, _ = multi_source_times(net, centres, limit_min=max(thresholds))
        t_b = time.perf_counter()
        iso = isochrones(net, times, thresholds_min=thresholds, crs_out=net.crs)
        t_c = time.perf_counter()
        cpu = time.process_time() - cpu
        return t_b - t_a, t_c - t_b, as_wkb(iso), cpu

    sample = centres[: args.sample] if args.sample else centres
    scale = len(centres) / len(sample)
    # Warm-up for both sides, the same: one small call each (imports, GEOS, page faults).
    ours((15.0,), True)
    run_baseline(net, sample[:3])
    rows: list[tuple[str, str, str]] = []
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    runs: dict[str, list] = {"15 min": [], "rings 5/10/15": [], "warm 15 min": [],
                             "warm rings 5/10/15": []}  # fmt: skip
    base_runs: list[tuple[dict[str, float], dict]] = []
    for rep in range(args.repeat):
        # Same repetitions for both sides; the order alternates so neither always runs first.
        sides = ("ours", "base") if rep % 2 == 0 else ("base", "ours")
        for side in sides:
            if side == "base":
                cpu = time.process_time()
                times_b, geoms = run_baseline(net, sample)
                cpu = time.process_time() - cpu
                base_runs.append((times_b, {k: shapely.to_wkb(g) for k, g in geoms.items()}, cpu))
                del geoms
                continue
            for label, thr in (("15 min", (15.0,)), ("rings 5/10/15", THRESHOLDS_MIN)):
                runs[label].append(ours(thr, True))
                runs[f"warm {label}"].append(ours(thr, False))

    def med(rs: list) -> tuple[float, float, float, object, float]:
        tot = [r[0] + r[1] for r in rs]
        i = int(np.argsort(tot)[len(tot) // 2])
        return tot[i], rs[i][0], rs[i][1], rs[i][2], float(np.median([r[3] for r in rs]))

    best = {}
    for label in ("15 min", "rings 5/10/15"):
        cold, warm = med(runs[label]), med(runs[f"warm {label}"])
        best[label] = (cold[0], warm[0], cold[3], cold[4])
        detail = f"multi_source_times {cold[1]:.2f} s + isochrones {cold[2]:.2f} s"
        rows.append(
            (f"(a) geo_mz {label}", f"{cold[0]:.2f} s cold", f"{detail}; CPU {cold[4]:.2f} s")
        )
        rows.append(("", f"{warm[0]:.2f} s warm", "crossing test cached"))
    rss_a = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    ours(THRESHOLDS_MIN, True)
    traced_a = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()

    totals = [sum(t.values()) for t, _, _ in base_runs]
    times_b, merged, _ = base_runs[int(np.argsort(totals)[len(totals) // 2])]
    cpu_b = float(np.median([c for _, _, c in base_runs])) * scale
    times_b = {k: v * scale for k, v in times_b.items()}
    base_15 = times_b["dijkstra+reach"] + times_b["buffer+union 15"] + times_b["merge 15"]
    base_rings = sum(times_b.values())
    how = (
        f"all {len(sample)} centres measured"
        if scale == 1
        else (f"{len(sample)} centres x {scale:g}, linear (merge underestimated)")
    )
    parts = ", ".join(f"{k} {v:.1f}" for k, v in times_b.items())
    rows.append(("(b) per-centre 15 min", f"{base_15:.2f} s", how))
    rows.append(("(b) per-centre rings", f"{base_rings:.2f} s", f"{parts}; CPU {cpu_b:.2f} s"))
    for label, base in (("15 min", base_15), ("rings 5/10/15", base_rings)):
        cold, warm = base / best[label][0], base / best[label][1]
        rows.append((f"ratio {label}", f"{cold:.1f}x cold", f"{warm:.1f}x warm"))
    rows.append(("ratio rings, CPU time", f"{cpu_b / best['rings 5/10/15'][3]:.1f}x cold",
                 "process CPU seconds, both sides (less sensitive to other load)"))  # fmt: skip
    if scale == 1:  # same polygons?
        merged = {k: shapely.from_wkb(g) for k, g in merged.items()}
        ours15, theirs = from_wkb(best["15 min"][2]).geometry.iloc[0], merged[15.0]
        sym = shapely.symmetric_difference(ours15, theirs).area
        tol = 0.25 * theirs.length
        verdict = "OK" if sym <= tol else "FAILED"
        rows.append(("check 15-min polygon", f"|a xor b| {sym:,.0f} m2",
                     f"<= {tol:,.0f} m2 (0.25 m x perimeter) of {theirs.area / 1e6:,.1f} km2: "
                     f"{verdict}"))  # fmt: skip
        ours_rings = from_wkb(best["rings 5/10/15"][2])
        for k, geom in zip(ours_rings.threshold_min, ours_rings.geometry, strict=True):
            theirs = merged[("ring", float(k))]
            sym = shapely.symmetric_difference(geom, theirs).area
            tol = 0.25 * theirs.length
            verdict = "OK" if sym <= tol and geom.is_valid else "FAILED"
            verdict += "" if geom.is_valid else " (invalid polygon)"
            rows.append((f"check ring {ours_rings.ring[ours_rings.threshold_min == k].iloc[0]}",
                         f"|a xor b| {sym:,.0f} m2", f"<= {tol:,.0f} m2 of "
                         f"{theirs.area / 1e6:,.1f} km2: {verdict}"))  # fmt: skip
    rows.append(
        (
            "memory (a) rings",
            f"traced peak {traced_a:,.0f} MiB",
            f"max RSS +{(rss_a - rss0) / 1024:,.0f} MiB over {rss0 / 1024:,.0f} MiB (network)",
        )
    )
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    print()
    for r in rows:
        print(" | ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\nprocess max RSS {rss:,.0f} MiB; total {time.perf_counter() - t_start:.0f} s; "
        f"load average at start {load0}, at end {os.getloadavg()} on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()

"""Relief-audit benchmark: full audit and re-audit after one closure vs peers, in the same run.

Setting (the issue's scale): a jittered 710 x 710 grid drive network (504,100 nodes; every 10th
row and column a primary road, the rest residential), 10 districts of 9 towns each, one county
store per district and one township store per town (100 stores), 5,000 villages at random
points with the codes of the town they fall in, targets county 5 h / township 3 h ("own").

Measured, every side with the same warm-up run and the same repetitions, the order of the
sides rotated from one repetition to the next (median and best reported):

1. ``relief.audit``: snapping, one search per served area (time-limited for "own" stores),
   the per-point table with times, stores, meets/misses and margins (routes excluded);
2. peers on the same graph, given the snapped store nodes for free, each returning the times
   of every store's own villages (checked equal to the audit's):
   - scipy ``dijkstra`` from each store with ``limit`` = the least time that still reaches all
     of that store's own villages (an oracle: the best limit any scipy user could pick);
   - scipy ``dijkstra`` from each store without a limit;
   - networkx ``single_source_dijkstra_path_length`` from each store with ``cutoff`` = the same
     oracle limit (the conversion to networkx is timed once and not counted);
3. ``relief.reaudit`` after closing one road piece on some village's route (five closures)
   vs a fresh ``relief.audit`` on the closed network (each re-audit checked equal to it);
4. memory, in a fresh child process that builds the same inputs: the traced peak
   (tracemalloc) of one audit and the process's peak RSS during one untraced audit
   (``geo_mz.core.memory``), plus the RSS the inputs hold before it.

Run: ``.venv/bin/python bench/bench_relief.py [--side 710] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable

import geopandas as gpd
import networkx as nx
import numpy as np
import scipy
import shapely
from scipy.sparse.csgraph import dijkstra

from geo_mz.core.memory import peak_rss_mib, reset_peak_rss, rss_mib
from geo_mz.network import sptree
from geo_mz.network.disruption import from_edge_ids
from geo_mz.network.graph import network_from_roads
from geo_mz.network.paths import to_networkx
from geo_mz.relief import drive_audit as relief
from geo_mz.relief.drive_audit import ReliefSettings, Target

TARGETS = (Target("county", 5.0, "own", "bench"), Target("township", 3.0, "own", "bench"))
SETTINGS = ReliefSettings(targets=TARGETS)


def rotated(sides: dict[str, Callable[[], object]], repeat: int) -> dict[str, list[float]]:
    """Seconds of each side: one untimed warm-up each, then ``repeat`` rounds, order rotated."""
    names = list(sides)
    for name in names:
        sides[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeat):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            sides[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def grid_roads(side: int, rng: np.random.Generator, spacing_m: float = 100.0) -> gpd.GeoDataFrame:
    jj, ii = np.meshgrid(np.arange(side), np.arange(side))
    xy = np.stack([500_000.0 + jj * spacing_m, 2_500_000.0 + ii * spacing_m], axis=-1)
    xy += rng.uniform(-0.2, 0.2, xy.shape) * spacing_m
    h = np.stack([xy[:, :-1], xy[:, 1:]], axis=2).reshape(-1, 2, 2)
    v = np.stack([xy[:-1, :], xy[1:, :]], axis=2).reshape(-1, 2, 2)
    h_major = np.repeat((np.arange(side) % 10 == 0)[:, None], side - 1, axis=1).ravel()
    v_major = np.repeat((np.arange(side) % 10 == 0)[None, :], side - 1, axis=0).ravel()
    major = np.concatenate([h_major, v_major])
    lines = shapely.linestrings(np.concatenate([h, v]))
    return gpd.GeoDataFrame(
        {
            "road_id": [f"R{i}" for i in range(len(lines))],
            "road_class": np.where(major, "primary", "residential"),
        },
        geometry=lines,
        crs="EPSG:4547",
    )


def layout(side: int, n_villages: int, rng: np.random.Generator):
    """Districts 5 x 2, towns 3 x 3 in each; stores near block centres; villages at random."""
    size = side * 100.0
    x0, y0 = 500_000.0, 2_500_000.0
    dx, dy = size / 5, size / 2
    stores, codes, levels, sxy = [], [], [], []
    for d in range(10):
        cx, cy = x0 + (d % 5 + 0.5) * dx, y0 + (d // 5 + 0.5) * dy
        dcode = f"44{d + 1:04d}"
        stores.append(f"K{d}")
        codes.append(dcode)
        levels.append("county")
        sxy.append((cx + rng.uniform(-500, 500), cy + rng.uniform(-500, 500)))
        for t in range(9):
            tx = x0 + (d % 5) * dx + (t % 3 + 0.5) * dx / 3
            ty = y0 + (d // 5) * dy + (t // 3 + 0.5) * dy / 3
            stores.append(f"T{d}_{t}")
            codes.append(f"{dcode}{t + 1:03d}")
            levels.append("township")
            sxy.append((tx + rng.uniform(-300, 300), ty + rng.uniform(-300, 300)))
    sxy = np.array(sxy)
    st = gpd.GeoDataFrame(
        {"store_id": stores, "name": stores, "level": levels, "adcode": codes},
        geometry=shapely.points(sxy),
        crs="EPSG:4547",
    )
    vx = rng.uniform(x0 + 200, x0 + size - 300, n_villages)
    vy = rng.uniform(y0 + 200, y0 + size - 300, n_villages)
    di = np.minimum((vx - x0) // dx, 4).astype(int) + 5 * np.minimum((vy - y0) // dy, 1).astype(int)
    tx = np.minimum(((vx - x0) % dx) // (dx / 3), 2).astype(int)
    ty = np.minimum(((vy - y0) % dy) // (dy / 3), 2).astype(int)
    town = [f"44{d + 1:04d}{t + 1:03d}" for d, t in zip(di, tx + 3 * ty, strict=True)]
    pts = gpd.GeoDataFrame(
        {
            "point_id": [f"V{i}" for i in range(n_villages)],
            "kind": "village",
            "name": "v",
            "adcode": [f"{t}{i % 999 + 1:03d}" for i, t in enumerate(town)],
            "town_adcode": town,
            "town_name": "",
            "population": rng.integers(500, 5000, n_villages).astype(float),
        },
        geometry=shapely.points(np.column_stack([vx, vy])),
        crs="EPSG:4547",
    )
    return st, pts


def route_edges(a: relief.Audit, k: int, rng: np.random.Generator) -> list[str]:
    """Road ids of ``k`` edges that lie on some village's route (closures that matter)."""
    out = []
    g = a.groups[-1]
    for p in rng.permutation(g.points)[: 10 * k]:
        nodes = sptree.path_to(g.forest, int(a.point_node[p]))
        if len(nodes) > 3:
            u, v = nodes[len(nodes) // 2], nodes[len(nodes) // 2 + 1]
            e = np.flatnonzero(
                ((a.network.edge_u == u) & (a.network.edge_v == v))
                | ((a.network.edge_u == v) & (a.network.edge_v == u))
            )
            out.append(str(a.network.edge_id[e[0]]))
        if len(out) == k:
            break
    return out


def inputs(side: int, villages: int):
    rng = np.random.default_rng(4)
    t0 = time.perf_counter()
    net = network_from_roads(grid_roads(side, rng), mode="drive", disaster_factor=0.6)
    build_s = time.perf_counter() - t0
    stores, pts = layout(side, villages, rng)
    return net, stores, pts, rng, build_s


def memory_child(side: int, villages: int) -> None:
    """Print (JSON) the memory of one audit, in this fresh process."""
    net, stores, pts, _, _ = inputs(side, villages)
    relief.audit(pts.iloc[:50], stores, net, SETTINGS)  # imports and caches, like a warm run
    build_peak = peak_rss_mib()
    held = rss_mib()
    reset = reset_peak_rss()
    a = relief.audit(pts, stores, net, SETTINGS)
    peak_rss = peak_rss_mib()
    forests = sum(g.forest.nbytes for g in a.groups)
    del a
    tracemalloc.start()
    relief.audit(pts, stores, net, SETTINGS)
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out = {"traced_mib": traced / 2**20, "held_rss_mib": held, "peak_rss_mib": peak_rss,
           "build_peak_rss_mib": build_peak, "peak_reset": reset,
           "forests_mib": forests / 2**20}  # fmt: skip
    print(json.dumps(out))


def own_times(a: relief.Audit) -> list[tuple[int, np.ndarray, float, np.ndarray]]:
    """Per search: store node, its own villages' nodes, the oracle limit, the audit's times.

    The limit is the largest network time from the store's node to those villages (the least
    limit that still reaches them all), a hair above it so rounding cannot cut one off.
    """
    out = []
    for g in a.groups:
        (si,) = g.stores
        node = a.point_node[g.points]
        net_min = g.forest.time_at(node) - g.forest.offset_min[0]
        limit = float(net_min.max()) * (1 + 1e-9) + 1e-9
        out.append((int(a.store_node[si]), node, limit, net_min))
    return out


def stats(ts: list[float]) -> tuple[float, float]:
    return float(np.median(ts)), float(min(ts))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--side", type=int, default=710)
    ap.add_argument("--villages", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--closures", type=int, default=5)
    ap.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.side, args.villages)
        return
    # Memory first, in a fresh process: nothing of this one (networkx graph) is counted.
    child = subprocess.run(
        [sys.executable, __file__, "--memory-child", "--side", str(args.side),
         "--villages", str(args.villages)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    mem = json.loads(child.stdout.strip().splitlines()[-1])
    net, stores, pts, rng, build_s = inputs(args.side, args.villages)
    print(
        f"drive grid {args.side}x{args.side}: {net.n_nodes:,} nodes, {net.n_arcs:,} arcs "
        f"(built in {build_s:.1f} s); {len(stores)} stores (10 county, 90 township), "
        f"{len(pts):,} villages; targets county 5 h / township 3 h, own area"
    )
    print(
        f"configuration: every side 1 warm-up + {args.repeat} timed runs, order rotated each run; "
        f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"networkx {nx.__version__}; {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at start (shared machine: figures are noisy)"
    )
    a = relief.audit(pts, stores, net, SETTINGS)
    own = own_times(a)
    t_conv0 = time.perf_counter()
    g = to_networkx(net)
    t_conv = time.perf_counter() - t_conv0

    def scipy_limit():
        return [dijkstra(net.graph, indices=s, limit=lim)[nodes] for s, nodes, lim, _ in own]

    def scipy_full():
        return [dijkstra(net.graph, indices=s)[nodes] for s, nodes, _, _ in own]

    def nx_cutoff():
        out = []
        for s, nodes, lim, _ in own:
            d = nx.single_source_dijkstra_path_length(g, s, cutoff=lim, weight="time_min")
            out.append(np.array([d.get(int(v), np.inf) for v in nodes]))
        return out

    for name, fn in (("scipy limit", scipy_limit), ("scipy", scipy_full), ("networkx", nx_cutoff)):
        for got, (_, _, _, want) in zip(fn(), own, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9, err_msg=name)
    sides = {
        "relief.audit (full)": lambda: relief.audit(pts, stores, net, SETTINGS),
        "scipy dijkstra per store, oracle limit": scipy_limit,
        "scipy dijkstra per store, no limit": scipy_full,
        "networkx per store, oracle cutoff": nx_cutoff,
    }
    times = rotated(sides, args.repeat)
    t_audit = stats(times["relief.audit (full)"])[0]
    met = a.table.groupby("target")["meets"].mean()
    print(f"relief.audit: {len(a.groups)} searches; share meeting: {dict(met)}")

    closures = route_edges(a, args.closures, rng)
    t_re, t_fresh = [], []
    for rid in closures:
        d = from_edge_ids(net, [rid])
        closed = d.apply(net)
        scen = relief.reaudit(a, d)
        fresh = relief.audit(pts, stores, closed, SETTINGS)
        np.testing.assert_allclose(
            scen.table["time_min"].to_numpy(float), fresh.table["time_min"].to_numpy(float)
        )
        tt = rotated(
            {
                "reaudit": lambda d=d: relief.reaudit(a, d),
                "fresh": lambda c=closed: relief.audit(pts, stores, c, SETTINGS),
            },
            args.repeat,
        )
        t_re.append(stats(tt["reaudit"])[0])
        t_fresh.append(stats(tt["fresh"])[0])
        changed = int((scen.table["time_min"] != a.table["time_min"]).sum())
        print(
            f"  close {rid}: reaudit {t_re[-1] * 1000:.0f} ms vs fresh audit {t_fresh[-1]:.2f} s, "
            f"{changed} rows changed, searches repaired {scen.recomputed['repaired']}, "
            f"regrown {scen.recomputed['regrown']} (= fresh audit)"
        )
    t_reaudit, t_fresh_med = float(np.median(t_re)), float(np.median(t_fresh))

    print()
    print(f"{'measure (seconds)':<44}{'median':>9}{'best':>9}{'/ audit':>9}")
    for name, ts in times.items():
        med, best = stats(ts)
        print(f"{name:<44}{med:>9.2f}{best:>9.2f}{med / t_audit:>9.1f}")
    label = f"relief.reaudit, one closure (median of {len(t_re)})"
    print(f"{label:<44}{t_reaudit:>9.3f}{'':>9}{t_reaudit / t_audit:>9.3f}")
    label = "fresh relief.audit on the closed network"
    print(f"{label:<44}{t_fresh_med:>9.2f}{'':>9}{t_fresh_med / t_audit:>9.1f}")
    print(f"(networkx graph built in {t_conv:.1f} s, not counted)")
    nx_ratio = stats(times["networkx per store, oracle cutoff"])[0] / t_audit
    print(
        f"targets: audit >= 50x faster than networkx: {nx_ratio:.0f}x; "
        f"re-audit >= 5x faster than a fresh audit: {t_fresh_med / t_reaudit:.1f}x"
    )
    print(
        f"memory of one audit ({net.n_nodes:,} nodes x {len(stores)} stores, fresh process): "
        f"traced peak {mem['traced_mib']:.0f} MiB (target <= 300; forests kept "
        f"{mem['forests_mib']:.0f} MiB); peak RSS during the audit {mem['peak_rss_mib']:.0f} MiB, "
        f"of which the network and inputs held {mem['held_rss_mib']:.0f} MiB before it"
        + ("" if mem["peak_reset"] else " (peak since process start: not resettable here)")
        + f"; building them peaked at {mem['build_peak_rss_mib']:.0f} MiB"
    )
    print(f"this bench process: peak RSS {peak_rss_mib():.0f} MiB (networkx graph included)")


if __name__ == "__main__":
    main()

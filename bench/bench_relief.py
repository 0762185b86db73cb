"""Relief-audit benchmark: full audit and re-audit after one closure vs peers, in the same run.

Setting (the issue's scale): a jittered 710 x 710 grid drive network (504,100 nodes; every 10th
row and column a primary road, the rest residential), 10 districts of 9 towns each, one county
store per district and one township store per town (100 stores), 5,000 villages at random
points with the codes of the town they fall in, targets county 5 h / township 3 h ("own").

Measured:
1. ``relief.audit`` — snapping, one search per served area (time-limited for "own" stores),
   the per-point table with times, stores, meets/misses and margins (routes excluded);
2. peers on the same graph: scipy ``dijkstra`` from each of the 100 stores (full matrix), and
   networkx ``single_source_dijkstra_path_length`` per store (timed on a few stores and scaled to
   100, because one takes seconds; the scale factor is printed);
3. ``relief.reaudit`` after closing one road piece that lies on some village's route (five
   different closures; each checked against a fresh ``relief.audit`` on the closed network);
4. peak traced memory (tracemalloc) of the audit and the process's max RSS.

Run: ``.venv/bin/python bench/bench_relief.py [--side 300]``.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import geopandas as gpd
import networkx as nx
import numpy as np
import shapely
from scipy.sparse.csgraph import dijkstra

from geo_mz.network import sptree
from geo_mz.network.disruption import from_edge_ids
from geo_mz.network.graph import network_from_roads
from geo_mz.network.paths import to_networkx
from geo_mz.relief import drive_audit as relief
from geo_mz.relief.drive_audit import ReliefSettings, Target

TARGETS = (Target("county", 5.0, "own", "bench"), Target("township", 3.0, "own", "bench"))
SETTINGS = ReliefSettings(targets=TARGETS)


def timed(fn, repeat: int = 1):
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--side", type=int, default=710)
    ap.add_argument("--villages", type=int, default=5000)
    ap.add_argument("--nx-sources", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(4)
    t0 = time.perf_counter()
    net = network_from_roads(grid_roads(args.side, rng), mode="drive", disaster_factor=0.6)
    print(
        f"drive grid {args.side}x{args.side}: {net.n_nodes:,} nodes, {net.n_arcs:,} arcs "
        f"(built in {time.perf_counter() - t0:.1f} s)"
    )
    stores, pts = layout(args.side, args.villages, rng)
    print(f"{len(stores)} stores (10 county, 90 township), {len(pts):,} villages")

    t_audit, a = timed(lambda: relief.audit(pts, stores, net, SETTINGS), repeat=3)
    met = a.table.groupby("target")["meets"].mean()
    print(f"relief.audit: {t_audit:.2f} s ({len(a.groups)} searches); share meeting: {dict(met)}")
    tracemalloc.start()
    relief.audit(pts, stores, net, SETTINGS)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    snodes = a.store_node
    t_scipy, _ = timed(lambda: dijkstra(net.graph, directed=True, indices=snodes))
    print(f"scipy dijkstra per store (100 full searches): {t_scipy:.2f} s")
    t_conv, g = timed(lambda: to_networkx(net))
    k = args.nx_sources
    t_nx_k, _ = timed(
        lambda g=g: [
            nx.single_source_dijkstra_path_length(g, int(s), weight="time_min") for s in snodes[:k]
        ]
    )
    del g
    t_nx = t_nx_k / k * len(snodes)
    print(
        f"networkx per store: {t_nx_k:.2f} s for {k} stores -> {t_nx:.1f} s for {len(snodes)} "
        f"(scaled x{len(snodes) / k:.0f}; conversion to networkx {t_conv:.1f} s not counted)"
    )

    closures = route_edges(a, 5, rng)
    t_re = []
    for rid in closures:
        d = from_edge_ids(net, [rid])
        t, scen = timed(lambda d=d: relief.reaudit(a, d))
        t_re.append(t)
        fresh = relief.audit(pts, stores, d.apply(net), SETTINGS)
        np.testing.assert_allclose(
            scen.table["time_min"].to_numpy(float), fresh.table["time_min"].to_numpy(float)
        )
        changed = int((scen.table["time_min"] != a.table["time_min"]).sum())
        print(
            f"  close {rid}: reaudit {t * 1000:.0f} ms, {changed} rows changed, "
            f"searches repaired {scen.recomputed['repaired']}, regrown {scen.recomputed['regrown']}"
            " (= fresh audit)"
        )
    t_reaudit = float(np.median(t_re))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print()
    print(f"{'measure':<44}{'time':>10}{'ratio':>10}")
    print(f"{'relief.audit (full)':<44}{t_audit:>9.2f}s{1.0:>10.1f}")
    print(f"{'scipy dijkstra per store':<44}{t_scipy:>9.2f}s{t_scipy / t_audit:>10.1f}")
    print(f"{'networkx per store (scaled)':<44}{t_nx:>9.1f}s{t_nx / t_audit:>10.1f}")
    label = "relief.reaudit, one closure (median of 5)"
    print(f"{label:<44}{t_reaudit:>9.3f}s{t_audit / t_reaudit:>10.1f}")
    print(
        f"targets: audit >= 50x faster than networkx: {t_nx / t_audit:.0f}x; "
        f"re-audit >= 5x faster than audit: {t_audit / t_reaudit:.1f}x"
    )
    print(f"peak traced memory of one audit: {peak / 2**20:.0f} MiB; process max RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()

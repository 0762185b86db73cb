"""OSM file -> walking network -> coverage-like multi-source times, vs OSMnx and pyrosm (issue 14).

Pipelines, each peer on the same files in the same run:

* **geo_mz**: ``read_osm_roads(path)`` (GDAL's OSM driver checked by a way-only pyosmium pass,
  split at shared node locations, quality report) -> ``network_from_roads(roads, mode="walk")``
  -> ``multi_source_times`` from 5 random nodes.
* **pyrosm**: ``OSM(pbf).get_network(network_type="walking", nodes=True)`` ->
  ``osm.to_graph(nodes, edges, graph_type="networkx")`` -> networkx
  ``multi_source_dijkstra_path_length`` (weight ``length``) from 5 random nodes. PBF only.
* **osmnx**: ``graph_from_xml(xml)`` (defaults: simplify, largest component) -> drop edges
  without ``highway`` or with motorway/construction -> undirected -> networkx multi-source.
  XML only (OSMnx reads no PBF).

Files: (a) the real Longgang export (../shared/data/real_shenzhen, XML; a PBF copy is written
with pyosmium for pyrosm); (b) a mid-size and (c) a 1 M-way generated city: a seeded, jittered
grid whose streets are ways spanning 2-8 junctions (primary/secondary/residential, 10 %
footways, 2 % one-way, 0.5 % diagonal bridges crossing streets without shared nodes), written
with pyosmium's SimpleWriter to .osm.pbf and .osm.

Protocol: every measurement runs in a fresh subprocess (``--peer``); the subprocess imports its
libraries, runs its whole pipeline once on a small generated file (warm-up), then times the
stages on the target file. Peak memory is the subprocess's ``ru_maxrss`` (resource.getrusage:
imports + warm-up + run; the RSS after imports and warm-up is printed beside it). The same
number of repetitions for every peer on a file (median reported); ratios are "geo_mz vs the
faster peer" on the same file.

Part 2: ``network_from_roads`` on a roads GeoPackage of ~2 M lines (noded grid segments) vs ONE
``pyogrio.read_dataframe`` of that file (target in issue 14: build <= 3x one read), in-process,
best of 2.

Measured on the 2-CPU, 23 GB development machine (shared with other jobs, so +-30 %),
2026-12-06, all peers in one run, 16 GiB address-space cap per subprocess, median of 3.
"geo_mz" is ``network_from_osm(path, mode="walk")`` (file -> network in one call);
"geo_mz_import" the import path (``read_osm_roads`` with its quality report, then
``network_from_roads``), which a bureau runs once to keep the layer in its workspace:

* (a) Longgang (516 ways, XML): file -> walking network geo_mz 0.13 s (import path 0.17 s),
  pyrosm 0.07 s (PBF), OSMnx 0.70 s; peak RSS 330 / 130 / 186 MiB. A file this small is all
  fixed cost (GDAL's driver opens a node index): geo_mz is 1.9x slower than pyrosm here,
  5.4x faster than OSMnx.
* (b) city of 101,289 ways: geo_mz 3.17 s file -> network, 3.23 s with routing; import path
  4.36 s (read 2.60 + build 1.84); pyrosm 14.9 s (get_network 1.9 + to_graph 12.9) + routing
  1.6 s; OSMnx 130 s. geo_mz vs pyrosm: 4.7x faster file -> network, 5.1x the whole
  pipeline (import path 3.4x / 3.7x); peak RSS 0.74 vs 2.1 GiB. Before this session's GDAL
  reader the import path took 7.5 s (1.9x).
* (c) city of 1,007,472 ways: pyrosm and OSMnx both fail with MemoryError under the 16 GiB cap
  while building their networkx graph (pyrosm's get_network alone: 26 s, 3.2 GiB); geo_mz's
  import path completes in ~105 s at 6.6 GiB peak on a loaded machine (not re-measured quiet).
* network_from_roads on 200,344 lines: 1.12 s vs one pyogrio read 1.39 s (0.8x; on 2,002,000
  lines 7.7 s vs 4.8 s, 1.6x; target <= 3x).

Run: ``.venv/bin/python bench/bench_osm.py [--ways 1000000] [--mid-ways 100000] [--repeat 3]
[--big-repeat 1] [--lines 2000000] [--osmnx-timeout 1800] [--mem-cap-gib 16]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LONGGANG = ROOT.parent / "shared" / "data" / "real_shenzhen" / "longgang_osm_map.osm"
SOURCES = 5
DLAT, DLON = 0.0009, 0.00097  # ~100 m at 22.5 N


# --------------------------------------------------------------------------- generator


def generate_city(path: Path, ways_target: int, seed: int, *, xml: Path | None = None) -> dict:
    """Write a jittered grid city with about ``ways_target`` highway ways (PBF, optional XML)."""
    import osmium
    from osmium.osm.mutable import Node, Way

    rng = np.random.default_rng(seed)
    n = max(4, int(math.sqrt(ways_target * 5 / 2)) + 1)  # 2 n (n-1) segments / 5 per way
    jy = rng.uniform(-0.2, 0.2, (n, n))
    jx = rng.uniform(-0.2, 0.2, (n, n))
    ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    lat = 22.5 + (ii + jy) * DLAT
    lon = 114.0 + (jj + jx) * DLON
    node_id = 1 + ii * n + jj
    ways: list[tuple[list[int], dict[str, str]]] = []
    for axis in (0, 1):
        for line in range(n):
            ids = node_id[line, :] if axis == 0 else node_id[:, line]
            cls = "primary" if line % 20 == 0 else "secondary" if line % 5 == 0 else "residential"
            start = 0
            while start < n - 1:
                stop = min(n - 1, start + int(rng.integers(2, 9)))
                tags = {"highway": "footway" if rng.random() < 0.1 else cls}
                if rng.random() < 0.02:
                    tags["oneway"] = "yes"
                ways.append(([int(x) for x in ids[start : stop + 1]], tags))
                start = stop
    extra_nodes: list[tuple[int, float, float]] = []
    next_id = n * n + 1
    for _ in range(max(1, len(ways) // 200)):  # bridges: ends on grid nodes, nothing shared
        i, j = int(rng.integers(0, n - 2)), int(rng.integers(0, n - 2))
        mid = (next_id, (lon[i, j] + lon[i + 2, j + 2]) / 2, (lat[i, j] + lat[i + 2, j + 2]) / 2)
        next_id += 1
        extra_nodes.append(mid)
        tags = {"highway": "secondary", "bridge": "yes", "layer": "1"}
        ways.append(([int(node_id[i, j]), mid[0], int(node_id[i + 2, j + 2])], tags))
    for target in [path] + ([xml] if xml is not None else []):
        if target.exists():
            target.unlink()
        with osmium.SimpleWriter(str(target)) as w:
            for k, x, y in zip(node_id.ravel(), lon.ravel(), lat.ravel(), strict=True):
                w.add_node(Node(id=int(k), location=(float(x), float(y)), version=1))
            for k, x, y in extra_nodes:
                w.add_node(Node(id=k, location=(x, y), version=1))
            for k, (refs, tags) in enumerate(ways, start=1):
                w.add_way(Way(id=k, nodes=refs, tags=tags, version=1))
    return {"side": n, "nodes": n * n + len(extra_nodes), "ways": len(ways)}


def to_pbf(xml: Path, pbf: Path) -> None:
    import osmium

    if pbf.exists():
        pbf.unlink()
    with osmium.SimpleWriter(str(pbf)) as w:
        for obj in osmium.FileProcessor(str(xml)):
            w.add(obj)


# --------------------------------------------------------------------------- peers


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_geo_mz(path: str) -> dict:
    """File -> walking network in one call (``network_from_osm``); "read" is the whole call."""
    from geo_mz.network import multi_source_times
    from geo_mz.network.osm import network_from_osm

    t0 = time.perf_counter()
    net = network_from_osm(path, mode="walk")
    t2 = time.perf_counter()
    src = np.random.default_rng(0).choice(net.n_nodes, SOURCES, replace=False)
    times, _ = multi_source_times(net, src)
    t3 = time.perf_counter()
    return {
        "read_s": t2 - t0,
        "build_s": 0.0,
        "route_s": t3 - t2,
        "nodes": net.n_nodes,
        "edges": net.n_edges,
        "length_km": float(net.edge_length_m.sum() / 1000),
        "reached": int(np.isfinite(times).sum()),
    }


def run_geo_mz_import(path: str) -> dict:
    """The import path: the roads layer with its quality report, then its network."""
    from geo_mz.core.osm_roads import read_osm_roads
    from geo_mz.network import multi_source_times, network_from_roads

    t0 = time.perf_counter()
    roads, report = read_osm_roads(path)
    t1 = time.perf_counter()
    net = network_from_roads(roads, mode="walk")
    t2 = time.perf_counter()
    src = np.random.default_rng(0).choice(net.n_nodes, SOURCES, replace=False)
    times, _ = multi_source_times(net, src)
    t3 = time.perf_counter()
    return {
        "read_s": t1 - t0,
        "build_s": t2 - t1,
        "route_s": t3 - t2,
        "nodes": net.n_nodes,
        "edges": net.n_edges,
        "length_km": float(net.edge_length_m.sum() / 1000),
        "reached": int(np.isfinite(times).sum()),
        "pieces": report.pieces,
    }


def run_pyrosm_edges(path: str) -> dict:
    """Pyrosm's reading alone (``get_network``): its edges, no routable graph."""
    import warnings

    import pyrosm

    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    osm = pyrosm.OSM(path)
    nodes, edges = osm.get_network(network_type="walking", nodes=True)
    t1 = time.perf_counter()
    return {
        "read_s": t1 - t0,
        "build_s": 0.0,
        "route_s": 0.0,
        "nodes": len(nodes),
        "edges": len(edges),
        "length_km": float(edges["length"].sum() / 1000),
        "reached": 0,
    }


def run_pyrosm(path: str) -> dict:
    import warnings

    import networkx as nx
    import pyrosm

    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    osm = pyrosm.OSM(path)
    nodes, edges = osm.get_network(network_type="walking", nodes=True)
    t1 = time.perf_counter()
    g = osm.to_graph(nodes, edges, graph_type="networkx", osmnx_compatible=False)
    t2 = time.perf_counter()
    node_list = list(g.nodes)
    pick = np.random.default_rng(0).choice(len(node_list), SOURCES, replace=False)
    dist = nx.multi_source_dijkstra_path_length(g, {node_list[i] for i in pick}, weight="length")
    t3 = time.perf_counter()
    return {
        "read_s": t1 - t0,
        "build_s": t2 - t1,
        "route_s": t3 - t2,
        "nodes": g.number_of_nodes(),
        "edges": g.number_of_edges(),
        "length_km": float(edges["length"].sum() / 1000),
        "reached": len(dist),
    }


def run_osmnx(path: str) -> dict:
    import warnings

    import networkx as nx
    import osmnx as ox

    warnings.simplefilter("ignore")
    not_walk = {"motorway", "motorway_link", "construction", "proposed", "platform"}
    t0 = time.perf_counter()
    g = ox.graph_from_xml(path)
    drop = [
        (u, v, k)
        for u, v, k, hw in g.edges(keys=True, data="highway")
        if hw is None or (hw if isinstance(hw, str) else hw[0]) in not_walk
    ]
    g.remove_edges_from(drop)
    g.remove_nodes_from([x for x, d in g.degree() if d == 0])
    t1 = time.perf_counter()
    u = ox.convert.to_undirected(g)
    t2 = time.perf_counter()
    node_list = list(u.nodes)
    pick = np.random.default_rng(0).choice(len(node_list), SOURCES, replace=False)
    dist = nx.multi_source_dijkstra_path_length(u, {node_list[i] for i in pick}, weight="length")
    t3 = time.perf_counter()
    return {
        "read_s": t1 - t0,
        "build_s": t2 - t1,
        "route_s": t3 - t2,
        "nodes": u.number_of_nodes(),
        "edges": u.number_of_edges(),
        "length_km": float(sum(d for *_, d in u.edges(data="length")) / 1000),
        "reached": len(dist),
    }


PEERS = {
    "geo_mz": run_geo_mz,
    "geo_mz_import": run_geo_mz_import,
    "pyrosm": run_pyrosm,
    "osmnx": run_osmnx,
    "pyrosm_edges": run_pyrosm_edges,
}


def child(peer: str, path: str, warm: str, cap_gib: float) -> None:
    cap = int(cap_gib * 2**30)  # protects the machine (no swap): an over-hungry peer fails
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    fn = PEERS[peer]
    fn(warm)
    base = _rss_mib()
    out = fn(path)
    out["rss_base_mib"] = base
    out["maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


def measure(
    peer: str, path: Path, warm: Path, repeat: int, timeout_s: float, cap_gib: float
) -> dict | None:
    runs = []
    for _ in range(repeat):
        cmd = [sys.executable, __file__, "--peer", peer, "--file", str(path), "--warm", str(warm)]
        cmd += ["--mem-cap-gib", str(cap_gib)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {"failed": f"timeout after {timeout_s:.0f} s"}
        line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
        if done.returncode != 0 or not line:
            return {"failed": f"exit {done.returncode}: {done.stderr.strip()[-300:]}"}
        runs.append(json.loads(line[-1][7:]))
    out = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    out["total_s"] = statistics.median(r["read_s"] + r["build_s"] + r["route_s"] for r in runs)
    out["net_s"] = statistics.median(r["read_s"] + r["build_s"] for r in runs)
    out["maxrss_mib"] = max(r["maxrss_mib"] for r in runs)
    return out


def report(name: str, results: dict[str, dict | None]) -> None:
    print(f"\n## {name}")
    print("(read: file -> edges (geo_mz: the whole network_from_osm call); build:")
    print(" geo_mz_import network_from_roads, pyrosm to_graph, osmnx to_undirected;")
    print(" route: 5-source multi-source shortest paths)")
    print(
        f"{'peer':13} {'file->net s':>11} {'(read':>8} {'build)':>8} {'route s':>8} "
        f"{'total s':>8} {'maxRSS MiB':>10} {'base MiB':>9} {'nodes':>9} {'edges':>9} "
        f"{'km':>9} {'reached':>9}"
    )
    for peer, r in results.items():
        if r is None:
            continue
        if "failed" in r:
            print(f"{peer:13} FAILED: {r['failed']}")
            continue
        print(
            f"{peer:13} {r['net_s']:11.2f} {r['read_s']:8.2f} {r['build_s']:8.2f} "
            f"{r['route_s']:8.3f} {r['total_s']:8.2f} {r['maxrss_mib']:10.0f} "
            f"{r['rss_base_mib']:9.0f} {r['nodes']:9.0f} {r['edges']:9.0f} "
            f"{r['length_km']:9.1f} {r['reached']:9.0f}"
        )
    mine = results.get("geo_mz")
    imported = results.get("geo_mz_import")
    edges_only = results.get("pyrosm_edges")
    if imported and "failed" not in imported and edges_only and "failed" not in edges_only:
        ratio = edges_only["read_s"] / imported["read_s"]
        said = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
        print(f"reading alone (file -> pieces/edges) vs pyrosm get_network: geo_mz {said}")
    peers = {
        p: r
        for p, r in results.items()
        if p not in ("geo_mz", "geo_mz_import", "pyrosm_edges") and r and "failed" not in r
    }
    for name, ours in (("geo_mz", mine), ("geo_mz_import", imported)):
        if not ours or "failed" in ours or not peers:
            continue
        for key, label in (("net_s", "file->network"), ("total_s", "whole pipeline")):
            best = min(peers, key=lambda p: peers[p][key])
            ratio = peers[best][key] / ours[key]
            said = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
            print(f"{name} vs the faster peer ({best}), {label}: {name} {said}")
    if mine and "failed" not in mine and peers:
        best = min(peers, key=lambda p: peers[p]["maxrss_mib"])
        print(
            f"geo_mz vs leanest peer ({best}), peak RSS: "
            f"{mine['maxrss_mib']:.0f} vs {peers[best]['maxrss_mib']:.0f} MiB"
        )


# --------------------------------------------------------------------------- part 2


def bench_roads_gpkg(lines_target: int, tmp: Path) -> None:
    import geopandas as gpd
    import pyogrio
    import shapely

    from geo_mz.network import network_from_roads

    n = int(math.sqrt(lines_target / 2)) + 1
    rng = np.random.default_rng(7)
    x0, y0 = 500_000.0, 2_500_000.0
    xy = np.stack(np.meshgrid(np.arange(n), np.arange(n), indexing="ij"), -1).astype(float)
    xy = xy * 100.0 + rng.uniform(-20, 20, xy.shape) + (x0, y0)
    a = np.concatenate([xy[:, :-1].reshape(-1, 2), xy[:-1, :].reshape(-1, 2)])
    b = np.concatenate([xy[:, 1:].reshape(-1, 2), xy[1:, :].reshape(-1, 2)])
    geoms = shapely.linestrings(np.stack([a, b], 1))
    k = len(geoms)
    classes = np.where(rng.random(k) < 0.1, "footway", "residential")
    gdf = gpd.GeoDataFrame(
        {"road_id": [f"R{i}" for i in range(k)], "road_class": classes},
        geometry=geoms,
        crs="EPSG:4547",
    )
    path = tmp / "roads_2m.gpkg"
    t = time.perf_counter()
    pyogrio.write_dataframe(gdf, path, layer="roads")
    print(f"\n## network_from_roads on {k:,} lines ({n}x{n} noded grid, EPSG:4547)")
    print(f"written in {time.perf_counter() - t:.1f} s ({path.stat().st_size / 2**20:.0f} MiB)")
    del gdf
    best_read = best_build = np.inf
    for _ in range(2):
        t = time.perf_counter()
        roads = pyogrio.read_dataframe(path)
        best_read = min(best_read, time.perf_counter() - t)
        t = time.perf_counter()
        net = network_from_roads(roads, mode="walk", measure_crs="EPSG:4547")
        best_build = min(best_build, time.perf_counter() - t)
    print(f"one pyogrio read: {best_read:.2f} s; network_from_roads(walk): {best_build:.2f} s")
    print(f"build / read = {best_build / best_read:.2f} (target <= 3); {net!r}")


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer")
    ap.add_argument("--file")
    ap.add_argument("--warm")
    ap.add_argument("--ways", type=int, default=1_000_000)
    ap.add_argument("--mid-ways", type=int, default=100_000)
    ap.add_argument("--mem-cap-gib", type=float, default=16.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--big-repeat", type=int, default=1)
    ap.add_argument("--lines", type=int, default=2_000_000)
    ap.add_argument("--osmnx-timeout", type=float, default=1800.0)
    ap.add_argument("--tmp", default=None)
    ap.add_argument("--no-big", action="store_true", help="skip the 1 M-way city (c)")
    args = ap.parse_args()
    if args.peer:
        child(args.peer, args.file, args.warm, args.mem_cap_gib)
        return
    tmp = Path(args.tmp or tempfile.mkdtemp(prefix="bench_osm_"))
    tmp.mkdir(parents=True, exist_ok=True)
    print(f"# bench_osm: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, tmp {tmp}")
    warm_pbf, warm_xml = tmp / "warm.osm.pbf", tmp / "warm.osm"
    generate_city(warm_pbf, 300, 1, xml=warm_xml)
    lg_pbf = tmp / "longgang.osm.pbf"
    to_pbf(LONGGANG, lg_pbf)
    print(
        f"repetitions: {args.repeat} per peer on Longgang and the mid-size city, "
        f"{args.big_repeat} on the big city; warm-up: each subprocess runs its pipeline once "
        "on a 300-way generated file"
    )
    cap = args.mem_cap_gib
    print(f"address-space cap per subprocess: {cap:g} GiB (RLIMIT_AS; the machine has no swap)")
    results = {
        "geo_mz": measure("geo_mz", LONGGANG, warm_xml, args.repeat, 600, cap),
        "geo_mz_import": measure("geo_mz_import", LONGGANG, warm_xml, args.repeat, 600, cap),
        "pyrosm": measure("pyrosm", lg_pbf, warm_pbf, args.repeat, 600, cap),
        "osmnx": measure("osmnx", LONGGANG, warm_xml, args.repeat, 600, cap),
    }
    report(f"(a) Longgang export: {LONGGANG.name} (XML; PBF copy for pyrosm)", results)
    cities = [("b", args.mid_ways, 15, args.repeat, args.osmnx_timeout)]
    if not args.no_big:
        cities.append(("c", args.ways, 14, args.big_repeat, args.osmnx_timeout))
    for label, ways, seed, reps, osmnx_timeout in cities:
        pbf, xml = tmp / f"city_{ways}.osm.pbf", tmp / f"city_{ways}.osm"
        t = time.perf_counter()
        info = generate_city(pbf, ways, seed, xml=xml)
        print(
            f"\ngenerated city ({label}): {info['side']}x{info['side']} grid, {info['nodes']:,} "
            f"nodes, {info['ways']:,} ways in {time.perf_counter() - t:.0f} s; PBF "
            f"{pbf.stat().st_size / 2**20:.0f} MiB, XML {xml.stat().st_size / 2**20:.0f} MiB"
        )
        results = {
            "geo_mz": measure("geo_mz", pbf, warm_pbf, reps, 3600, cap),
            "geo_mz_import": measure("geo_mz_import", pbf, warm_pbf, reps, 3600, cap),
            "pyrosm": measure("pyrosm", pbf, warm_pbf, reps, 3600, cap),
            "osmnx": measure("osmnx", xml, warm_xml, reps, osmnx_timeout, cap),
            # pyrosm's reading alone: the figure to compare with geo_mz's "read" column
            "pyrosm_edges": measure("pyrosm_edges", pbf, warm_pbf, reps, 3600, cap),
        }
        report(
            f"({label}) generated city, {info['ways']:,} ways, {reps} run(s) per peer "
            "(geo_mz/pyrosm PBF, osmnx XML)",
            results,
        )
    bench_roads_gpkg(args.lines, tmp)


if __name__ == "__main__":
    main()

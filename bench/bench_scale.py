"""Scale-out benchmark: a province's county and city parts vs the whole province in one process.

Sides, all on the same workspace and in the same run:

- ``whole``: the whole area in one process, the same work the parts do (read the four layers
  it uses with the fields the parts read, one walk network, one Dijkstra from every centre,
  the unit tables of every level, and save the times and unit rows as the parts save theirs:
  one part file, the parts' own writer);
- ``parts in-process``: every county part one after the other in this process (``workers=0``);
- ``1 worker`` / ``2 workers``: the parts on a Dask LocalCluster of that many single-threaded
  worker processes. The cluster is started once per side and its start-up is timed apart (it
  is not in the runs' times); the same client serves the warm-up and every timed run;
- ``2 in-process side by side`` (``--ceiling``): two processes, each running every part
  in-process as ``parts in-process`` does, at the same time (no Dask, no shared store). What
  they give over one alone is this machine's ceiling for 2 workers / 1 worker on this work
  (two cores share caches, memory bandwidth and, on a virtual machine, the host); the bench
  prints the Dask ratio as a share of it;
- ``city parts …``: the same counties as city parts (``parts_of(units, "city")``: the counties
  grouped by their 4-digit code prefix, one task per city), in this process and on the same
  1- and 2-worker clusters. Their per-county figures divide by the counties, not the parts.

Every side gets the same warm-up (``--warmup`` untimed runs) and the same repetitions
(``--reps``, median reported); the order of the sides rotates from one repetition to the next.
Each run writes a new run store (nothing is skipped); gathering the results from the store is
timed apart (``gather_s``). With ``--postgis`` the workspace is also copied into a throwaway
PostGIS cluster and the part sides run again with a PostGIS workspace and run store.

Printed: the configuration (CPUs, load, versions, workload), then per side the median wall time,
counties per minute, seconds per county (wall / counties: the drive process's view), CPU
seconds per county (this process plus every worker process, read before and after the run,
less the CPU of hashing the layers for the run key, measured apart: on a shared machine a truer
measure of the work than wall time) and the mean part time inside the workers
(from the store), and the ratios: time per county / whole time per county (wall and CPU), and
2 workers / 1 worker. The machine may be shared: the load average is printed before
and after; compare ratios within one run, not times across runs.

Workload: ``--joined`` generates (or, with ``--workspace``, reuses) the province whose
neighbouring counties' roads are joined by county roads across their borders
(``write_workload(..., joined=True)``); without it every county's roads are their own network
(the "island" workload). Partitioned parts need more proof rounds on the joined one, so a figure
must say which: the configuration block prints ``workload: joined`` or ``workload: island``
(from the workspace's recorded ``workload_summary``, checked against its joining roads: see
:mod:`geo_mz.datasets.workload_kind`). A reused ``--workspace`` that holds the other workload
(or one that cannot be told) is refused with an error naming the file.

Run: ``.venv/bin/python bench/bench_scale.py [--province 44] [--counties N] [--reps 3]
[--warmup 1] [--postgis] [--workspace p44.gpkg] [--joined] [--no-city] [--ceiling]``.

A workspace generated here is ``bench_province.py``'s (``province_44.gpkg`` /
``province_44j.gpkg``, either can be passed as ``--workspace``): the streets, people and centres
of ``write_workload`` plus the villages, relief stores and shelters of ``add_relief_layers``.

Reproduce (the README's figures; idle box; the first run writes the workspace, later ones
reuse it)::

    .venv/bin/python bench/bench_scale.py --workspace p44.gpkg --reps 2 --warmup 1
    .venv/bin/python bench/bench_scale.py --workspace p44j.gpkg --joined --reps 2 --warmup 1

Smoke run (six county parts, one repetition, no city sides; the whole side still computes the
whole province)::

    .venv/bin/python bench/bench_scale.py --workspace p44j.gpkg --joined --counties 6 --reps 1 \
        --warmup 0 --no-city
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from gc_setting import add_gc_option, set_gc
from geopandas.array import GeometryArray

from geo_mz.core.layer_digest import layer_digests
from geo_mz.core.projection import STORAGE_CRS
from geo_mz.core.workspaces import open_workspace
from geo_mz.datasets.workload_kind import WorkloadKindError, require_kind
from geo_mz.eldercare import coverage
from geo_mz.eldercare.circle15 import CircleSettings
from geo_mz.network.graph import NETWORK_ROAD_FIELDS, network_from_roads
from geo_mz.scale import runner as scale
from geo_mz.scale.part_files import write_part_file
from geo_mz.scale.part_inputs import unit_shapes
from geo_mz.scale.partition import TIMES_POP_FIELDS
from geo_mz.scale.store import open_run_store


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def whole_area(ref: str, s: CircleSettings, crs: str, save_to: Path) -> tuple[float, float]:
    """Seconds of the whole area in one process: the same work as all the parts together.

    Computed (read, network, times, unit tables), then saved as the parts save theirs: the
    times of every person and the unit rows with their polygons in one part file (the
    parts' own writer, its fastest way). Returns (compute seconds, save seconds).
    """
    t0 = time.perf_counter()
    ws = open_workspace(ref)
    # Only what the coverage needs, the fields the parts read too (its best way: not every
    # layer and field of the workspace).
    layers = {
        "roads": ws.read("roads", columns=list(NETWORK_ROAD_FIELDS)),
        "population": ws.read("population", columns=list(TIMES_POP_FIELDS)),
        "elder_care": ws.read("elder_care"),
        "admin_units": ws.read("admin_units"),
    }
    net = network_from_roads(layers["roads"], mode="walk", walk_speed_kmh=s.walk_speed_kmh,
                             measure_crs=crs, components="all")  # fmt: skip
    centres = coverage.select_centres(layers["elder_care"], kinds=s.kinds, statuses=s.statuses)
    t = coverage.access_times(net, centres, layers["population"], max_snap_m=s.max_snap_m)
    units = layers["admin_units"]
    levels = set(units["level"].astype(str))
    # Every level in one pass over the points, as the parts make theirs (its best way).
    table = coverage.coverage_by_units(
        t, units, levels=[lv for lv in ("county", "town", "village") if lv in levels],
        thresholds_min=s.thresholds_min, targets=s.targets,
    )  # fmt: skip
    t1 = time.perf_counter()
    shapes = GeometryArray(unit_shapes(units, table["adcode"]), crs=STORAGE_CRS)
    table = gpd.GeoDataFrame(table, geometry=shapes)
    write_part_file(save_to, {"coverage_times": t, "coverage_units": table},
                    {"part": "whole", "status": "done"})  # fmt: skip
    save_to.unlink()
    return t1 - t0, time.perf_counter() - t1


class Side:
    """One way of computing the workload, run the same number of times as the others."""

    def __init__(self, name: str, run: Callable[[int], dict[str, Any]]) -> None:
        self.name, self.run = name, run
        self.results: list[dict[str, Any]] = []


def part_side(
    name: str,
    ws_ref: str,
    parts: list,
    opts: dict,
    store_of: Callable[[int], str],
    client: Any,
    level: str = "county",
) -> Side:
    # The run's key hashes every layer in this process: its CPU is not the parts'. A
    # GeoPackage's digests are kept while the file is unchanged (a run then reads nothing);
    # PostGIS hashes again each run. What a run pays is what a second call costs.
    layer_digests(ws_ref)
    c0 = time.process_time()
    layer_digests(ws_ref)
    digest_cpu_s = time.process_time() - c0

    def run(i: int) -> dict[str, Any]:
        store = store_of(i)
        cpu0 = _cpu(client)
        res = scale.run_partitioned(
            "coverage", ws_ref, parts, store=store, options=opts, level=level,
            workers=0 if client is None else None, client=client,
        )  # fmt: skip
        assert res.ok, res.failed
        cpu_s = _cpu(client) - cpu0 - digest_cpu_s
        rs = open_run_store(store)
        t0 = time.perf_counter()
        n = len(rs.gather(res.run_key, "times"))
        gather_s = time.perf_counter() - t0
        st = rs.status(res.run_key)
        return {"wall_s": res.seconds, "cpu_s": cpu_s, "gather_s": gather_s, "rows": n,
                "worker_part_s": float(st["seconds"].mean()), "workers": res.workers,
                "worker_pids": int(st["worker"].nunique())}  # fmt: skip

    return Side(name, run)


def _in_process_run(ref: str, parts: list, opts: dict, store: str, gc_mode: str) -> float:
    """Run every part in this (pool) process, as ``parts in-process`` does; return its seconds."""
    set_gc(gc_mode)  # once per process: freeze_gc_once does nothing the second time
    res = scale.run_partitioned("coverage", ref, parts, store=store, options=opts,
                                level="county", workers=0)  # fmt: skip
    assert res.ok, res.failed
    return res.seconds


def pair_side(ref: str, parts: list, opts: dict, tmp: Path, pool: Any, gc_mode: str) -> Side:
    """Two processes side by side, each running every part in-process: the machine's ceiling.

    No Dask, no shared store: each process does exactly what ``parts in-process`` does, at the
    same time as the other. Two cores that run two such processes as fast as one give 2.0x;
    whatever they lose (shared caches, memory bandwidth, the host's other tenants) bounds what
    2 Dask workers can give over one on this machine. The wall time is the pair's (both done).
    """

    def run(i: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        futs = [pool.submit(_in_process_run, ref, parts, opts,
                            str(tmp / f"pair{k}_{'w' if i < 0 else 'r'}{abs(i)}.gpkg"), gc_mode)
                for k in (0, 1)]  # fmt: skip
        own = [f.result() for f in futs]
        wall = time.perf_counter() - t0
        # Two provinces' worth of parts in ``wall``: per county, half of it.
        return {"wall_s": wall / 2, "cpu_s": float("nan"), "pair_own_s": max(own)}

    return Side("2 in-process side by side", run)


def _cpu(client: Any) -> float:
    """CPU seconds used so far by this process and the cluster's workers (shared-box proof)."""
    here = time.process_time()
    if client is None:
        return here
    return here + sum(client.run(time.process_time).values())


def _sizes(counties: pd.DataFrame) -> list[int]:
    """Counties per city (4-digit code prefix)."""
    return counties["adcode"].astype(str).str[:4].value_counts().tolist()


def measure(sides: list[Side], reps: int, warmup: int) -> None:
    """Warm every side up, then time ``reps`` rounds with the order rotated each round."""
    for k in range(warmup):
        for side in sides:
            side.run(-1 - k)
    for r in range(reps):
        order = sides[r % len(sides) :] + sides[: r % len(sides)]
        for side in order:
            side.results.append(side.run(r))


def report(sides: list[Side], n_counties: int, whole_name: str = "whole") -> pd.DataFrame:
    rows = []
    for side in sides:
        med = {k: statistics.median(r[k] for r in side.results) for k in side.results[0]}
        rows.append({"side": side.name, "wall_s": round(med["wall_s"], 2),
                     "counties_per_min": round(60 * n_counties / med["wall_s"], 1),
                     "s_per_county": round(med["wall_s"] / n_counties, 4),
                     "cpu_s_per_county": round(med["cpu_s"] / n_counties, 4),
                     "worker_part_s": round(med.get("worker_part_s", float("nan")), 4),
                     "gather_s": round(med.get("gather_s", 0.0), 2),
                     "runs": len(side.results)})  # fmt: skip
    df = pd.DataFrame(rows).set_index("side")
    whole = df.loc[whole_name, "s_per_county"]
    df["per_county_vs_whole"] = (df["s_per_county"] / whole).round(2)
    df["cpu_per_county_vs_whole"] = (
        df["cpu_s_per_county"] / df.loc[whole_name, "cpu_s_per_county"]
    ).round(2)
    print(df.to_string(), flush=True)
    return df


def province(args: argparse.Namespace, tmp: Path) -> None:
    from geo_mz.datasets.china_counties import national_counties
    from geo_mz.datasets.county_relief import add_relief_layers
    from geo_mz.datasets.county_workload import write_workload

    if args.workspace and Path(args.workspace).exists():
        ws = open_workspace(args.workspace)
        # Refused, not measured, when it holds the other workload than the one asked for.
        kind = require_kind(ws, args.joined)
        made = "generated before"
    else:
        counties = national_counties()
        c = counties[
            counties["matched"].astype(bool) & counties["adcode"].str.startswith(args.province)
        ]
        t0 = time.perf_counter()
        name = f"p{args.province}{'j' if args.joined else ''}.gpkg"
        ws = write_workload(Path(args.workspace or tmp / name), c, joined=args.joined)
        # The villages too (and relief layers), as bench_province.py's workload has them: the
        # README's figures are measured on that one (13,216 units, not the 489 towns alone).
        add_relief_layers(ws)
        made = f"{len(c)} counties generated in {time.perf_counter() - t0:.1f} s"
        kind = require_kind(ws, args.joined)
    print(f"   workload: {kind.kind} ({kind.detail}); {ws.path} ({made})")
    rec = ws.layer_records().set_index("layer")["rows"].to_dict()
    ref = str(ws.path)
    units = ws.read("admin_units")
    parts = scale.parts_of(units, "county", codes=[args.province])
    if args.counties:
        parts = parts[: args.counties]
    # The same counties grouped by city (a task per city): their units, by code prefix.
    mine = units[(units["level"] == "county") & units["adcode"].isin([p.code for p in parts])]
    cities = scale.city_parts(mine, names=units)
    s = CircleSettings()
    crs = ws.metadata["measure_crs"]
    opts = {"settings": s, "measure_crs": crs, "roads_bbox": tuple(ws.extent("roads"))}
    print(
        f"rows {rec}; {len(parts)} county parts, {len(cities)} city parts "
        f"(counties per city {min(_sizes(mine))}-{max(_sizes(mine))}); measure CRS {crs}"
    )
    if args.counties:
        print("   (a subset of the counties: the whole side still computes the whole province,"
              " so per_part_vs_whole compares with the province's time per county)")  # fmt: skip
    n_all = len(scale.parts_of(ws.read("admin_units"), "county", codes=[args.province]))

    def whole_run(i: int) -> dict[str, Any]:
        c0 = time.process_time()
        compute, save = whole_area(ref, s, crs, tmp / f"whole_{i}.npz")
        share = len(parts) / n_all  # the whole's time for as many counties as the parts
        return {"wall_s": (compute + save) * share, "cpu_s": (time.process_time() - c0) * share,
                "compute_s": compute * share, "save_s": save * share}  # fmt: skip

    whole = Side("whole", whole_run)
    sides = [whole, part_side("parts in-process", ref, parts, opts,
                              lambda i: str(tmp / f"in_{i}.gpkg"), None)]  # fmt: skip
    clients: list[tuple[int, Any, Any]] = []  # (workers, context manager, client)
    pg_cm = None
    pool = None
    try:
        for n in (1, 2):
            t0 = time.perf_counter()
            cm = scale.dask_client(workers=n)
            clients.append((n, cm, cm.__enter__()))
            up = time.perf_counter() - t0
            print(f"   LocalCluster of {n} worker(s) started in {up:.1f} s (not in the runs)")
        for n, _, client in clients:
            sides.append(part_side(f"{n} worker{'s' * (n > 1)}", ref, parts, opts,
                                   lambda i, n=n: str(tmp / f"w{n}_{i}.gpkg"), client))  # fmt: skip
        if args.ceiling:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))
            sides.append(pair_side(ref, parts, opts, tmp, pool, args.gc))
        if not args.no_city:
            sides.append(part_side("city parts in-process", ref, cities, opts,
                                   lambda i: str(tmp / f"cin_{i}.gpkg"), None, "city"))  # fmt: skip
            for n, _, client in clients:
                sides.append(part_side(f"city parts {n} worker{'s' * (n > 1)}", ref, cities, opts,
                                       lambda i, n=n: str(tmp / f"cw{n}_{i}.gpkg"), client,
                                       "city"))  # fmt: skip
        if args.postgis:
            from geo_mz.core.workspace_postgis import PostgisWorkspace
            from webmap.testing_postgis import temp_cluster

            pg_cm = temp_cluster()
            url = pg_cm.__enter__()
            t0 = time.perf_counter()
            PostgisWorkspace.from_workspace(ws, url, schema="bench", replace=True)
            print(f"   copied into PostGIS in {time.perf_counter() - t0:.1f} s")
            pg_ref = f"{url}#bench"

            def pg_store(tag: str, url: str = url) -> Callable[[int], str]:
                return lambda i: f"{url}#runs_{tag}_{'w' if i < 0 else 'r'}{abs(i)}"

            sides.append(part_side("PostGIS in-process", pg_ref, parts, opts, pg_store("in"),
                                   None))  # fmt: skip
            for n, _, client in clients:
                sides.append(part_side(f"PostGIS {n} worker{'s' * (n > 1)}", pg_ref, parts,
                                       opts, pg_store(f"w{n}"), client))  # fmt: skip
        print(f"   warm-up {args.warmup}, timed runs {args.reps} per side, order rotated; "
              f"load before: {_load()}", flush=True)  # fmt: skip
        measure(sides, args.reps, args.warmup)
        print(f"   load after: {_load()}")
        print(f"   figures on the {kind.kind} workload ({len(parts)} county parts)")
        df = report(sides, len(parts))
        w = {k: statistics.median(r[k] for r in whole.results) for k in ("compute_s", "save_s")}
        per = w["compute_s"] / len(parts)
        print(f"   whole: compute {w['compute_s']:.2f} s + save {w['save_s']:.2f} s (its times and "
              f"unit rows in one part file, as the parts save theirs); compute per county "
              f"{per:.4f} s")  # fmt: skip
        for side in ("parts in-process", "1 worker", "2 workers"):
            part_s = df.loc[side, "worker_part_s"]
            print(f"   {side}: a county part's own seconds (compute, the run table's) "
                  f"{part_s:.4f} = {part_s / per:.2f}x the whole's compute per county")  # fmt: skip
        one, two = df.loc["1 worker", "wall_s"], df.loc["2 workers", "wall_s"]
        print(f"   2 workers / 1 worker (GeoPackage): {one / two:.2f}x")
        if args.ceiling:
            alone = df.loc["parts in-process", "wall_s"]
            ceiling = alone / df.loc["2 in-process side by side", "wall_s"]
            print(f"   machine ceiling: two in-process runs side by side give {ceiling:.2f}x one "
                  f"alone (no Dask, no shared store); 2 workers / 1 worker is "
                  f"{one / two / ceiling:.0%} of it")  # fmt: skip
        if not args.no_city:
            c1, c2 = (
                df.loc["city parts 1 worker", "wall_s"],
                df.loc["city parts 2 workers", "wall_s"],
            )
            cin, pin = (
                df.loc["city parts in-process", "wall_s"],
                df.loc["parts in-process", "wall_s"],
            )
            print(f"   city parts: 2 workers / 1 worker {c1 / c2:.2f}x; county parts' time / city "
                  f"parts' time: in-process {pin / cin:.2f}, 1 worker {one / c1:.2f}, "
                  f"2 workers {two / c2:.2f}")  # fmt: skip
        if args.postgis:
            p1, p2 = df.loc["PostGIS 1 worker", "wall_s"], df.loc["PostGIS 2 workers", "wall_s"]
            pin, gin = df.loc["PostGIS in-process", "wall_s"], df.loc["parts in-process", "wall_s"]
            print(f"   2 workers / 1 worker (PostGIS): {p1 / p2:.2f}x; PostGIS time / GeoPackage "
                  f"time: in-process {pin / gin:.2f}, 1 worker {p1 / one:.2f}, "
                  f"2 workers {p2 / two:.2f}")  # fmt: skip

            # What the user waits for: the run, then its results gathered (a GeoPackage store
            # merges its part files there; PostGIS wrote its rows during the run).
            def whole_cmd(side: str) -> float:
                return float(df.loc[side, "wall_s"] + df.loc[side, "gather_s"])

            print("   run + gather, PostGIS / GeoPackage: " + ", ".join(
                f"{pg} {whole_cmd(pg) / whole_cmd(gp):.2f}" for pg, gp in (
                    ("PostGIS in-process", "parts in-process"), ("PostGIS 1 worker", "1 worker"),
                    ("PostGIS 2 workers", "2 workers"))))  # fmt: skip
    finally:
        if pool is not None:
            pool.shutdown()
        if pg_cm is not None:
            pg_cm.__exit__(None, None, None)
        for _, cm, _ in reversed(clients):
            cm.__exit__(None, None, None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--province", default="44", help="province code (default 44, Guangdong)")
    ap.add_argument("--counties", type=int, default=0, help="only the first N county parts")
    ap.add_argument("--reps", type=int, default=3, help="timed runs per side (median)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs per side first")
    ap.add_argument("--postgis", action="store_true", help="also PostGIS workspace and store")
    ap.add_argument("--workspace", default="", help="reuse (or write) the workload here")
    ap.add_argument("--no-city", action="store_true", help="leave out the city-part sides")
    ap.add_argument(
        "--ceiling",
        action="store_true",
        help="also two in-process runs side by side in two processes (no Dask): what two "
        "cores of this machine give over one for this work, the bound of 2 workers / 1 worker",
    )
    ap.add_argument(
        "--joined",
        action="store_true",
        help="the workload whose counties' roads are joined across their borders (default: "
        "island counties); a reused --workspace must hold it",
    )
    add_gc_option(ap)
    args = ap.parse_args()
    gc_note = set_gc(args.gc)
    import dask
    import pyogrio
    import shapely

    print(f"configuration: {os.cpu_count()} CPUs, load {_load()}, Python "
          f"{platform.python_version()}, pandas {pd.__version__}, shapely {shapely.__version__}, "
          f"pyogrio {pyogrio.__version__} (GDAL {pyogrio.__gdal_version_string__}), "
          f"dask {dask.__version__}; reps {args.reps}, warm-up {args.warmup}")  # fmt: skip
    print(f"   {gc_note}")
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as d:
        try:
            province(args, Path(d))
        except WorkloadKindError as e:
            ap.error(str(e))


if __name__ == "__main__":
    main()

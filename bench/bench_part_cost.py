"""Where a county part's time goes, next to the whole province's same work.

Sides, on the same GeoPackage workspace and in the same run:

- ``whole``: the whole area in one process (as ``bench_scale.py``'s whole side: read the four
  layers it uses with the fields the parts read, one walk network, one Dijkstra from every
  centre, the unit tables of every level), divided by the number of county parts of the
  province;
- ``parts``: ``--parts`` county parts (spread over the province's list), each computed by
  :func:`geo_mz.scale.partition.coverage_part` on a workspace opened for it, as a worker does;
  with ``--by city``, city parts (the counties grouped by their 4-digit code), their times
  divided by the counties they hold.

Each side's time is split, exclusively (a step's time does not include the steps it calls),
into: ``open`` (opening the workspace), ``read`` (``Workspace.read``), ``reproject``
(``to_crs``), ``network`` (building the walk network), ``snap`` (nearest nodes),
``dijkstra`` (the searches of ``access_times``), ``proof`` (:func:`proven`), ``tables``
(``coverage_by_unit``) and ``other`` (the rest: frames, cuts, selection). The wrappers cost
the same per call on both sides; ``--no-split`` times without them.

Both sides get ``--warmup`` untimed runs and ``--reps`` timed ones (median per step; the
ratio is also given paired, each repetition's two sides run back to back, and as the fastest
run of each side); the order of the sides rotates from one repetition to the next. The
configuration and the load average (before, after) are printed: the machine may be shared,
compare ratios within a run.

The configuration block says which generated workload the workspace holds (``workload:
island``, each county's roads their own network, or ``workload: joined``, neighbouring counties'
roads joined across their borders by ``write_workload(..., joined=True)``; ``unknown`` for a
workspace the generator did not write): from its recorded ``workload_summary``, checked against
its joining roads
(:mod:`geo_mz.datasets.workload_kind`). Partitioned parts need more proof rounds on the
joined one, so a figure must say which.

Run: ``.venv/bin/python bench/bench_part_cost.py --workspace p44.gpkg [--parts 20]
[--reps 3] [--warmup 1] [--by city]`` (copy the workspace first: nothing is written to it).

Reproduce (idle box; ``p44.gpkg`` / ``p44j.gpkg`` written by ``bench_scale.py --workspace``
without / with ``--joined``)::

    .venv/bin/python bench/bench_part_cost.py --workspace p44.gpkg
    .venv/bin/python bench/bench_part_cost.py --workspace p44j.gpkg

Smoke run: ``--parts 3 --reps 1 --warmup 0``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import geopandas as gpd
import pandas as pd
from gc_setting import add_gc_option, set_gc

from geo_mz.core import workspace as workspace_mod
from geo_mz.core.workspaces import open_workspace
from geo_mz.datasets.workload_kind import WorkloadKindError, workload_kind
from geo_mz.eldercare import coverage
from geo_mz.eldercare.circle15 import CircleSettings
from geo_mz.network import graph, paths
from geo_mz.network.graph import NETWORK_ROAD_FIELDS
from geo_mz.scale import partition
from geo_mz.scale import runner as scale
from geo_mz.scale.partition import TIMES_POP_FIELDS

STEPS = ("open", "read", "reproject", "network", "snap", "dijkstra", "proof", "tables", "other")


class Clock:
    """Exclusive time per step: a nested step's time is taken off its caller's."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.stack: list[list[Any]] = []

    def wrap(self, step: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            frame = [step, time.perf_counter(), 0.0]
            self.stack.append(frame)
            try:
                return fn(*args, **kwargs)
            finally:
                self.stack.pop()
                spent = time.perf_counter() - frame[1]
                self.totals[step] += spent - frame[2]
                if self.stack:
                    self.stack[-1][2] += spent

        return timed


def install(clock: Clock) -> None:
    """Wrap the steps where every module looks them up (the bench's own process only)."""
    ws_cls = workspace_mod.Workspace
    ws_cls.read = clock.wrap("read", ws_cls.read)
    ws_cls.__init__ = clock.wrap("open", ws_cls.__init__)
    gpd.GeoSeries.to_crs = clock.wrap("reproject", gpd.GeoSeries.to_crs)
    gpd.GeoDataFrame.to_crs = clock.wrap("reproject", gpd.GeoDataFrame.to_crs)
    pi = sys.modules.get("geo_mz.scale.part_inputs")
    if pi is not None and hasattr(pi, "read_layer"):  # units_of_part reads through it
        pi.read_layer = clock.wrap("read", pi.read_layer)
    for mod in (partition, sys.modules.get("geo_mz.scale.part_inputs")):
        if mod is not None and hasattr(mod, "geometries_to_crs"):  # absent before it was made
            mod.geometries_to_crs = clock.wrap("reproject", mod.geometries_to_crs)
    net = clock.wrap("network", graph.network_from_roads)
    partition.network_from_roads = net
    snap = clock.wrap("snap", paths.snap_points)
    if hasattr(partition, "snap_xy"):  # the parts snap coordinates (no geometries) now
        partition.snap_xy = clock.wrap("snap", partition.snap_xy)
    if hasattr(partition, "xy_to_crs"):
        partition.xy_to_crs = clock.wrap("reproject", partition.xy_to_crs)
    coverage.snap_points = snap
    coverage.snap_centres = clock.wrap("snap", coverage.snap_centres)
    coverage.multi_source_times = clock.wrap("dijkstra", coverage.multi_source_times)
    partition.proven = clock.wrap("proof", partition.proven)
    coverage.coverage_by_unit = clock.wrap("tables", coverage.coverage_by_unit)
    coverage.coverage_by_units = clock.wrap("tables", coverage.coverage_by_units)


def whole(ref: str, s: CircleSettings, crs: str) -> None:
    """The whole province's coverage work in one process (as bench_scale.whole_area)."""
    ws = open_workspace(ref)
    # Only what the coverage needs, the fields the parts read too (its best way: not every
    # layer and field of the workspace).
    layers = {
        "roads": ws.read("roads", columns=list(NETWORK_ROAD_FIELDS)),
        "population": ws.read("population", columns=list(TIMES_POP_FIELDS)),
        "elder_care": ws.read("elder_care"),
        "admin_units": ws.read("admin_units"),
    }
    net = partition.network_from_roads(
        layers["roads"], mode="walk", walk_speed_kmh=s.walk_speed_kmh, measure_crs=crs,
        components="all",
    )  # fmt: skip
    centres = coverage.select_centres(layers["elder_care"], kinds=s.kinds, statuses=s.statuses)
    t = coverage.access_times(net, centres, layers["population"], max_snap_m=s.max_snap_m)
    levels = set(layers["admin_units"]["level"].astype(str))
    # Every level in one pass over the points, as the parts make theirs (its best way).
    coverage.coverage_by_units(
        t, layers["admin_units"], levels=[lv for lv in ("county", "town", "village")
                                          if lv in levels],
        thresholds_min=s.thresholds_min, targets=s.targets,
    )  # fmt: skip


def parts_run(ref: str, parts: list[partition.Part], s: CircleSettings, crs: str,
              bbox: tuple[float, float, float, float]) -> None:  # fmt: skip
    for p in parts:
        ws = open_workspace(ref)
        partition.coverage_part(ws, p, settings=s, measure_crs=crs, roads_bbox=bbox)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workspace", required=True)
    ap.add_argument("--province", default="44")
    ap.add_argument("--parts", type=int, default=20)
    ap.add_argument("--by", choices=("county", "city"), default="county")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--no-split", action="store_true", help="time without the step wrappers")
    add_gc_option(ap)
    a = ap.parse_args()
    gc_note = set_gc(a.gc)

    clock = Clock()
    if not a.no_split:
        install(clock)
    ws = open_workspace(a.workspace)
    # Before the timed sides (a few ms: the metadata and the joining roads' ids, no geometry).
    try:
        kind = workload_kind(ws)
    except WorkloadKindError as e:  # its record and its roads disagree: refused, not guessed
        ap.error(str(e))
    crs = ws.metadata["measure_crs"]
    all_parts = scale.parts_of(ws.read("admin_units"), a.by, codes=[a.province])
    counties = scale.parts_of(ws.read("admin_units"), "county", codes=[a.province])
    step = max(1, len(all_parts) // a.parts)
    parts = all_parts[::step][: a.parts]
    # Times are per county on both sides: a city part counts its counties.
    n_parts_side = sum(1 for c in counties for p in parts if c.code.startswith(p.code))
    bbox = partition.roads_extent(ws)
    s = CircleSettings()
    sides: dict[str, tuple[Callable[[], None], int]] = {
        "whole": (lambda: whole(a.workspace, s, crs), len(counties)),
        "parts": (lambda: parts_run(a.workspace, parts, s, crs, bbox), n_parts_side),
    }
    print("configuration")
    print(f"  workspace {a.workspace}: {len(all_parts)} {a.by} parts of {a.province}, "
          f"{len(counties)} counties")  # fmt: skip
    print(f"  workload: {kind.kind} ({kind.detail})")
    print(f"  parts side {len(parts)} (every {step}th, {n_parts_side} counties); "
          f"whole side / {len(counties)}")  # fmt: skip
    print(f"  warmup {a.warmup}, reps {a.reps} (median), order rotated; split "
          f"{'off' if a.no_split else 'on'}")  # fmt: skip
    print(f"  geo_mz from {os.path.dirname(partition.__file__)}; {gc_note}")
    print(f"  CPUs {os.cpu_count()}, Python {platform.python_version()}, "
          f"pandas {pd.__version__}, geopandas {gpd.__version__}")  # fmt: skip
    print(f"  load before {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for _ in range(a.warmup):
        for fn, _n in sides.values():
            fn()
    names = list(sides)
    runs: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for rep in range(a.reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            fn, n = sides[name]
            clock.totals.clear()
            t0 = time.perf_counter()
            fn()
            wall = time.perf_counter() - t0
            split = {k: v / n for k, v in clock.totals.items()}
            split["other"] = wall / n - sum(split.values())
            split["total"] = wall / n
            runs[name].append(split)
    print(f"  load after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    med = {n: {k: statistics.median(r.get(k, 0.0) for r in runs[n]) for k in (*STEPS, "total")}
           for n in names}  # fmt: skip
    print("\nms per county (median of reps)")
    print(f"  {'step':<10} {'whole':>8} {'part':>8} {'part-whole':>11}")
    for k in (*STEPS, "total"):
        w, p = med["whole"][k] * 1e3, med["parts"][k] * 1e3
        print(f"  {k:<10} {w:8.1f} {p:8.1f} {p - w:11.1f}")
    print(f"\nper-part / whole per county: {med['parts']['total'] / med['whole']['total']:.2f}x")
    # The same ratio two steadier ways: each repetition's sides ran back to back (paired), and
    # the fastest run of each side (noise on a shared machine only adds time).
    paired = sorted(p["total"] / w["total"] for p, w in zip(runs["parts"], runs["whole"],
                                                              strict=True))  # fmt: skip
    best = min(r["total"] for r in runs["parts"]) / min(r["total"] for r in runs["whole"])
    mid = statistics.median(paired)
    print(f"  paired per repetition: median {mid:.2f}x (range {paired[0]:.2f}-{paired[-1]:.2f}); "
          f"fastest of each side: {best:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()

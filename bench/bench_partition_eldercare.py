"""Per-part elder-care jobs (capacity, E2SFCA, rings, gaps) against the whole-area run.

Usage: ``.venv/bin/python bench/bench_partition_eldercare.py [--reps 3]``

On the embedded Pengjiang sample (30,781 population cells, six towns as parts): each side is
timed from the workspace (read, walking network, the job), one warm-up run each, then
``reps`` runs with the order of the sides rotated; the best and the median are printed. The
parts run one after another in this process (``run_two_pass_in_process``), each reading its
own cut, as on a worker. Capacity and gaps also time the parts given a coverage run's times
(``part_times``), as in ``scale run all``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from geo_mz.core.standards import RESIDENTIAL_KINDS
from geo_mz.demo import sample_workspace
from geo_mz.eldercare import capacity, coverage
from geo_mz.eldercare.circle15 import CircleSettings
from geo_mz.network import isochrone
from geo_mz.network.graph import network_from_roads
from geo_mz.scale import partition, partition_eldercare, partition_rings
from geo_mz.scale.partition_twopass import run_two_pass_in_process
from geo_mz.scale.runner import parts_of


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    ws, _, _ = sample_workspace(Path(tempfile.mkdtemp()) / "sample.gpkg")
    crs, s = ws.metadata["measure_crs"], CircleSettings()
    parts = parts_of(ws.read("admin_units"), "town")
    opts = {"settings": s, "measure_crs": crs, "roads_bbox": partition.roads_extent(ws)}
    times_by_part = {p.code: partition.coverage_part(ws, p, **opts)[0]["times"] for p in parts}

    def whole(job: str) -> Callable[[], object]:
        def run() -> object:
            layers = ws.read_all()
            net = network_from_roads(layers["roads"], mode="walk", walk_speed_kmh=s.walk_speed_kmh,
                                     measure_crs=crs, components="all")  # fmt: skip
            cen = coverage.select_centres(layers["elder_care"], kinds=s.kinds, statuses=s.statuses)
            if job == "e2sfca":
                res = coverage.select_centres(layers["elder_care"], kinds=RESIDENTIAL_KINDS)
                return capacity.e2sfca(net, res, layers["population"])
            if job == "rings":
                t, near = coverage.node_times(net, cen, max_snap_m=s.max_snap_m)
                return isochrone.isochrones(net, t, near, thresholds_min=s.thresholds_min)
            times = coverage.access_times(net, cen, layers["population"])
            if job == "capacity":
                return capacity.capacity_adjusted_coverage(
                    times, cen, capacity_field="places", demand_per_1000=s.places_per_1000
                )
            return coverage.gaps(times, crs=crs), coverage.gaps(times, crs=crs, level="cluster")

        return run

    def by_part(job: str, given: bool = False) -> Callable[[], object]:
        extra = {"part_times": times_by_part} if given else {}
        if job == "rings":
            return lambda: [partition_rings.rings_part(ws, p, **opts) for p in parts]
        two = partition_eldercare.ELDERCARE_JOBS[job]
        return lambda: run_two_pass_in_process(two, ws, parts, **opts, **extra)

    print(f"sample: {len(ws.read('population'))} population cells, {len(parts)} town parts; "
          f"{args.reps} runs after one warm-up per side, order rotated; "
          "seconds (best/median)")  # fmt: skip
    for job in ("capacity", "e2sfca", "rings", "gaps"):
        sides = {"whole": whole(job), "parts": by_part(job)}
        if job in ("capacity", "gaps"):
            sides["parts, times given"] = by_part(job, given=True)
        names = list(sides)
        for n in names:
            sides[n]()
        got: dict[str, list[float]] = {n: [] for n in names}
        for r in range(args.reps):
            for n in names[r % len(names) :] + names[: r % len(names)]:
                t0 = time.perf_counter()
                sides[n]()
                got[n].append(time.perf_counter() - t0)
        base = statistics.median(got["whole"])
        row = "; ".join(
            f"{n} {min(v):.2f}/{statistics.median(v):.2f}"
            + ("" if n == "whole" else f" ({statistics.median(v) / base:.1f}×)")
            for n, v in got.items()
        )
        print(f"{job:9s} {row}")


if __name__ == "__main__":
    main()

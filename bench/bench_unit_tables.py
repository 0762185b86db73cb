"""The coverage unit tables of a county part and of the whole province, before and after.

Sides, on the same inputs and in the same run:

- ``old``: the first implementation of :func:`geo_mz.eldercare.coverage_by_unit` (pandas
  selection of the units, scipy sparse mode), frozen in ``tests/test_coverage_tables.py``;
- ``new``: :func:`geo_mz.eldercare.coverage.coverage_by_unit`, one call per level (as
  ``part_unit_tables`` calls it);
- ``multi``: :func:`geo_mz.eldercare.coverage.coverage_by_units`, every level in one call.

Inputs are the real ones: ``--parts`` county parts of the workspace are computed once with
:func:`geo_mz.scale.partition.coverage_part` and the arguments of their table calls kept (about
3,200 points and 1 county + a few towns each); with ``--whole`` the whole province's times too
(every layer read, one walk network, one Dijkstra). Every side's output is checked equal to
``old`` before timing. Each side gets ``--warmup`` untimed runs and ``--reps`` timed ones
(median), order rotated from one repetition to the next; the load average is printed (the
machine may be shared: compare ratios within a run).

Run: ``.venv/bin/python bench/bench_unit_tables.py --workspace p44.gpkg [--parts 20]
[--reps 5] [--warmup 1] [--whole]`` (copy the workspace first: nothing is written to it).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the frozen old code is a test's

from geo_mz.core.workspaces import open_workspace
from geo_mz.eldercare import coverage
from geo_mz.eldercare.circle15 import CircleSettings
from geo_mz.scale import partition
from geo_mz.scale import runner as scale
from tests.test_coverage_tables import assert_same, old_coverage_by_unit

Call = tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, list[str], dict[str, Any]]


def part_calls(ref: str, n_parts: int, province: str) -> list[Call]:
    """Per part: its times, its units of every level it tables, the levels and options."""
    ws = open_workspace(ref)
    crs = ws.metadata["measure_crs"]
    all_parts = scale.parts_of(ws.read("admin_units"), "county", codes=[province])
    step = max(1, len(all_parts) // n_parts)
    seen: list[Call] = []
    one, many = coverage.coverage_by_unit, coverage.coverage_by_units

    def keep_one(times: gpd.GeoDataFrame, units: gpd.GeoDataFrame, **kw: Any) -> pd.DataFrame:
        level = kw.pop("level")
        seen.append((times, units, [level], kw))
        return one(times, units, level=level, **kw)

    def keep_many(times: gpd.GeoDataFrame, units: gpd.GeoDataFrame, **kw: Any) -> pd.DataFrame:
        levels = list(kw.pop("levels"))
        seen.append((times, units, levels, kw))
        return many(times, units, levels=levels, **kw)

    # part_unit_tables calls one or the other (per level, or every level at once)
    coverage.coverage_by_unit, coverage.coverage_by_units = keep_one, keep_many
    try:
        bbox = partition.roads_extent(ws)
        for p in all_parts[::step][:n_parts]:
            partition.coverage_part(open_workspace(ref), p, settings=CircleSettings(),
                                    measure_crs=crs, roads_bbox=bbox)  # fmt: skip
    finally:
        coverage.coverage_by_unit, coverage.coverage_by_units = one, many
    calls: list[Call] = []
    for times, units, levels, kw in seen:
        if calls and calls[-1][0] is times:  # per-level calls of one part: one input
            prev = calls[-1]
            calls[-1] = (times, pd.concat([prev[1], units]), [*prev[2], *levels], kw)
        else:
            calls.append((times, units, levels, kw))
    if not calls:
        raise SystemExit("no table call was seen: has part_unit_tables changed its calls?")
    return calls


def whole_call(ref: str) -> Call:
    """The whole province's times and units, as bench_part_cost's whole side makes them."""
    ws = open_workspace(ref)
    s = CircleSettings()
    layers = ws.read_all()
    net = partition.network_from_roads(
        layers["roads"], mode="walk", walk_speed_kmh=s.walk_speed_kmh,
        measure_crs=ws.metadata["measure_crs"], components="all",
    )  # fmt: skip
    centres = coverage.select_centres(layers["elder_care"], kinds=s.kinds, statuses=s.statuses)
    t = coverage.access_times(net, centres, layers["population"], max_snap_m=s.max_snap_m)
    units = layers["admin_units"]
    levels = [lv for lv in ("county", "town", "village") if (units["level"] == lv).any()]
    return t, units, levels, {"thresholds_min": s.thresholds_min, "targets": s.targets}


def sides(calls: list[Call]) -> dict[str, Callable[[], list[pd.DataFrame]]]:
    def per_level(fn: Callable[..., pd.DataFrame]) -> Callable[[], list[pd.DataFrame]]:
        return lambda: [fn(t, u, level=lv, **kw) for t, u, lvs, kw in calls for lv in lvs]

    def multi() -> list[pd.DataFrame]:
        return [coverage.coverage_by_units(t, u, levels=lvs, **kw) for t, u, lvs, kw in calls]

    return {"old": per_level(old_coverage_by_unit), "new": per_level(coverage.coverage_by_unit),
            "multi": multi}  # fmt: skip


def check(calls: list[Call]) -> None:
    """Every side gives the old tables, bit for bit."""
    fns = sides(calls)
    old, new, multi = fns["old"](), fns["new"](), fns["multi"]()
    for a, b in zip(old, new, strict=True):
        assert_same(a, b)
    i = 0
    for (_, _, lvs, _), m in zip(calls, multi, strict=True):
        assert_same(pd.concat(old[i : i + len(lvs)], ignore_index=True), m)
        i += len(lvs)


def timed(name: str, calls: list[Call], reps: int, warmup: int) -> None:
    fns = sides(calls)
    n_calls = sum(len(c[2]) for c in calls)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    names = list(fns)
    runs: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(reps):
        for side in names[rep % len(names) :] + names[: rep % len(names)]:
            t0 = time.perf_counter()
            fns[side]()
            runs[side].append(time.perf_counter() - t0)
    med = {n: statistics.median(r) for n, r in runs.items()}
    sizes = [len(c[0]) for c in calls]
    print(f"\n{name}: {len(calls)} input(s), {n_calls} table calls "
          f"(points per input {min(sizes)}-{max(sizes)})")  # fmt: skip
    print(f"  {'side':<6} {'ms per input':>13} {'ms per call':>12} {'vs old':>7}")
    for n in names:
        print(f"  {n:<6} {med[n] / len(calls) * 1e3:13.2f} {med[n] / n_calls * 1e3:12.2f} "
              f"{med[n] / med['old']:7.2f}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workspace", required=True)
    ap.add_argument("--province", default="44")
    ap.add_argument("--parts", type=int, default=20)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--whole", action="store_true", help="also the whole province (slower)")
    a = ap.parse_args()
    print("configuration")
    print(f"  workspace {a.workspace}, province {a.province}, {a.parts} county parts"
          f"{', whole province' if a.whole else ''}")  # fmt: skip
    print(f"  warmup {a.warmup}, reps {a.reps} (median), order rotated (old, new, multi)")
    print(f"  geo_mz from {os.path.dirname(coverage.__file__)}")
    print(f"  CPUs {os.cpu_count()}, Python {platform.python_version()}, "
          f"pandas {pd.__version__}, geopandas {gpd.__version__}")  # fmt: skip
    parts = part_calls(a.workspace, a.parts, a.province)
    whole = [whole_call(a.workspace)] if a.whole else []
    check(parts + whole)
    print("  outputs: new and multi equal old, bit for bit")
    print(f"  load before {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    timed("county parts", parts, a.reps, a.warmup)
    if whole:
        timed("whole province", whole, max(1, a.reps // 2), a.warmup)
    print(f"\n  load after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

"""A county part's three reads (its units, its own people, its roads), before and now.

Sides, on the same GeoPackage workspace and in the same run, each reading for every part
what :func:`geo_mz.scale.partition.coverage_part` reads (``units_of_part``; ``read_own`` of
``population`` with ``TIMES_POP_FIELDS`` in the box of the part's own units; ``read_box`` of
``roads`` with ``NETWORK_ROAD_FIELDS`` in the first cut's box):

- ``before``: the code of commit ``--before`` (default ``e68f2e8``, before the frames were
  built at once and the units read by the code index), its ``gpkg_read`` and
  ``workspace_read`` loaded from git into this process (their own sqlite3 connections): a
  raw frame, then ``conform_types``'s typed copy; all the units of the part's box, then its
  own and their ancestors kept;
- ``now``: the package's ``Workspace.read`` and ``units_of_part``;
- ``gdal``: ``pyogrio.read_dataframe`` per read (a GDAL open each), typed by the package's
  ``conform_types``, the units kept as ``before``: the way before ``gpkg_read``.

The frames of every side are checked equal (``assert_geodataframe_equal``) in the warm-up.
Every side gets ``--warmup`` untimed passes and ``--reps`` timed ones over the same parts (a
fresh ``Workspace`` a part, as a worker opens one); the order of the sides rotates. Printed:
the configuration, the load average (before, after), per side and read the median ms per
part, and the ratios to ``now``. The machine may be shared: compare the ratios of one run.
Python's cyclic GC stays on (as in a run); ``--no-gc`` times with it off.

With ``--cost``, instead: what ``bench_part_cost.py`` measures (a part's whole coverage
work, :func:`geo_mz.scale.partition.coverage_part`, against the whole area's per county), for
``before`` and ``now`` in one process, so that a shared machine's load weighs on both alike:
four sides (whole and parts, each with the reads of ``before`` swapped in, or ``now``'s),
rotated; printed per side the ms per county and the part/whole ratios.

Run: ``.venv/bin/python bench/bench_part_reads.py --workspace p44.gpkg [--parts 20]
[--reps 5] [--warmup 1] [--by city] [--cost]`` (a copy of the workspace: nothing is written
to it).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from geopandas.testing import assert_geodataframe_equal

from geo_mz.core.catalog import get_spec
from geo_mz.core.workspace import Workspace
from geo_mz.core.workspace_read import conform_types
from geo_mz.network.graph import NETWORK_ROAD_FIELDS
from geo_mz.scale import runner as scale
from geo_mz.scale.part_inputs import own_rows, part_bbox, read_box, read_own, units_of_part
from geo_mz.scale.partition import TIMES_POP_FIELDS, make_cut

READS = ("units", "pop", "roads")
REPO = Path(__file__).resolve().parent.parent


def load_before(commit: str) -> types.ModuleType:
    """The ``workspace_read`` module of ``commit``, with that commit's ``gpkg_read`` under it."""
    mods = {}
    for name in ("gpkg_read", "workspace_read"):
        src = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{commit}:geo_mz/core/{name}.py"],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        src = src.replace("from geo_mz.core.gpkg_read import", "from bench_before_gpkg_read import")
        mod = types.ModuleType(f"bench_before_{name}")
        mod.__file__ = f"<{commit}:{name}.py>"
        sys.modules[mod.__name__] = mod  # dataclasses look their module up
        exec(compile(src, mod.__file__, "exec"), mod.__dict__)
        mods[name] = mod
    return mods["workspace_read"]


def keep_related(units: gpd.GeoDataFrame, code: str) -> gpd.GeoDataFrame:
    """The part's own units and their ancestors (the rule of ``units_of_part``), new index."""
    codes = units["adcode"].astype(str).to_numpy(dtype=object)
    keep = [isinstance(u, str) and (u.startswith(code) or code.startswith(u)) for u in codes]
    return units[np.array(keep, dtype=bool)].reset_index(drop=True)


def _marker(marks: list | None) -> Callable[[], None]:
    """Note the time as a read ends (the same call on every side)."""
    if marks is None:
        return lambda: None
    return lambda: marks.append(time.perf_counter())


def side_before(before: types.ModuleType) -> Callable[[Workspace, Any, str], tuple]:
    def reads(ws: Workspace, part: Any, crs: str, marks: list | None = None) -> tuple:
        mark = _marker(marks)
        names = ws.layers()
        bbox = tuple(shapely.bounds(part.geometry))
        units = keep_related(before.read_layer(ws.path, "admin_units", names, bbox=bbox),
                             part.code)  # fmt: skip
        mark()
        box = part_bbox(units[own_rows(units, part.code)], part)
        own = ("adcode", part.code)
        pop = before.read_layer(ws.path, "population", names, bbox=box, prefix=own,
                                columns=list(TIMES_POP_FIELDS))  # fmt: skip
        mark()
        cut = make_cut(part.geometry, crs, 2000.0)
        roads = before.read_layer(ws.path, "roads", names, bbox=cut.lonlat_bbox,
                                  columns=list(NETWORK_ROAD_FIELDS))  # fmt: skip
        mark()
        return units, pop, roads

    return reads


def reads_now(ws: Workspace, part: Any, crs: str, marks: list | None = None) -> tuple:
    mark = _marker(marks)
    units = units_of_part(ws, part)
    mark()
    box = part_bbox(units[own_rows(units, part.code)], part)
    pop = read_own(ws, "population", box, part.code, columns=list(TIMES_POP_FIELDS))
    mark()
    cut = make_cut(part.geometry, crs, 2000.0)
    roads = read_box(ws, "roads", cut.lonlat_bbox, list(NETWORK_ROAD_FIELDS))
    mark()
    return units, pop, roads


def reads_gdal(ws: Workspace, part: Any, crs: str, marks: list | None = None) -> tuple:
    mark = _marker(marks)

    def read(kind: str, bbox: tuple, columns: list[str] | None = None) -> gpd.GeoDataFrame:
        df = pyogrio.read_dataframe(ws.path, layer=kind, bbox=bbox, fid_as_index=True,
                                    columns=columns)  # fmt: skip
        return conform_types(df.sort_index(kind="stable").reset_index(drop=True), get_spec(kind))

    units = keep_related(read("admin_units", tuple(shapely.bounds(part.geometry))), part.code)
    mark()
    box = part_bbox(units[own_rows(units, part.code)], part)
    pop = read("population", box, list(TIMES_POP_FIELDS))
    pop = pop[own_rows(pop, part.code)].reset_index(drop=True)
    mark()
    cut = make_cut(part.geometry, crs, 2000.0)
    roads = read("roads", cut.lonlat_bbox, list(NETWORK_ROAD_FIELDS))
    mark()
    return units, pop, roads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workspace", required=True)
    ap.add_argument("--province", default="44")
    ap.add_argument("--parts", type=int, default=20)
    ap.add_argument("--by", choices=("county", "city"), default="county")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--before", default="e68f2e8")
    ap.add_argument("--no-gc", action="store_true", help="time with Python's cyclic GC off")
    ap.add_argument("--cost", action="store_true", help="whole coverage parts vs the whole")
    a = ap.parse_args()
    if a.cost:
        cost(a)
        return

    ws = Workspace(a.workspace)
    crs = ws.metadata["measure_crs"]
    counties = scale.parts_of(ws.read("admin_units"), a.by, codes=[a.province])
    step = max(1, len(counties) // a.parts)
    parts = counties[::step][: a.parts]
    before = load_before(a.before)
    sides: dict[str, Callable] = {
        "before": side_before(before), "now": reads_now, "gdal": reads_gdal,
    }  # fmt: skip

    print("configuration")
    print(f"  workspace {a.workspace}: {len(counties)} {a.by} parts of {a.province}")
    print(f"  {len(parts)} parts (every {step}th); before = commit {a.before} (from git)")
    print(f"  warmup {a.warmup}, reps {a.reps} (median), order rotated; "
          f"GC {'off' if a.no_gc else 'on'}")  # fmt: skip
    print(f"  CPUs {os.cpu_count()}, Python {platform.python_version()}, "
          f"pandas {pd.__version__}, geopandas {gpd.__version__}")  # fmt: skip
    print(f"  load before {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    # Warm-up, and the frames of every side checked equal part by part.
    rows = dict.fromkeys(READS, 0)
    for _ in range(max(1, a.warmup)):
        for p in parts:
            got = {n: fn(Workspace(a.workspace), p, crs) for n, fn in sides.items()}
            for i in range(len(READS)):
                for n in ("before", "gdal"):
                    assert_geodataframe_equal(got["now"][i], got[n][i], check_dtype=True,
                                              check_crs=True)  # fmt: skip
    for p in parts:
        for r, frame in zip(READS, reads_now(Workspace(a.workspace), p, crs), strict=True):
            rows[r] += len(frame)
    print("  frames equal on every side and part; rows per part: "
          + ", ".join(f"{r} {rows[r] / len(parts):.0f}" for r in READS))  # fmt: skip

    names = list(sides)
    runs: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    if a.no_gc:
        gc.disable()
    for rep in range(a.reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            runs[name].append(per_read(sides[name], a.workspace, parts, crs))
    gc.enable()
    print(f"  load after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    keys = (*READS, "total")
    med = {n: {k: statistics.median(r[k] for r in runs[n]) * 1e3 / len(parts) for k in keys}
           for n in names}  # fmt: skip
    print("\nms per part (median of reps)")
    print(f"  {'read':<8}" + "".join(f"{n:>10}" for n in names)
          + "".join(f"{n + '/now':>12}" for n in names if n != "now"))  # fmt: skip
    for k in keys:
        line = f"  {k:<8}" + "".join(f"{med[n][k]:10.2f}" for n in names)
        line += "".join(f"{med[n][k] / med['now'][k]:11.2f}x" for n in names if n != "now")
        print(line)


def per_read(reads: Callable, ref: str, parts: list, crs: str) -> dict[str, float]:
    """Seconds per read kind over the parts, and in all (a fresh workspace a part)."""
    out = dict.fromkeys((*READS, "total"), 0.0)
    clock = time.perf_counter
    for p in parts:
        ws = Workspace(ref)
        marks: list[float] = [clock()]
        frames = reads(ws, p, crs, marks)
        out["total"] += marks[-1] - marks[0]
        for r, b, e in zip(READS, marks[:-1], marks[1:], strict=True):
            out[r] += e - b
        del frames
    return out


@contextmanager
def reads_of(before: types.ModuleType | None) -> Iterator[None]:
    """Swap ``before``'s reads into the package (``Workspace.read``, ``units_of_part``)."""
    from geo_mz.core import workspace as workspace_mod
    from geo_mz.scale import partition

    if before is None:
        yield
        return

    def old_units_of_part(ws: Any, part: Any) -> gpd.GeoDataFrame:
        units = ws.read("admin_units", bbox=tuple(shapely.bounds(part.geometry)))
        c = part.code
        codes = units["adcode"].astype(str).to_numpy(dtype=object)
        keep = [isinstance(u, str) and (u.startswith(c) or c.startswith(u)) for u in codes]
        return units[np.array(keep, dtype=bool)]

    saved = (workspace_mod.read_layer, partition.units_of_part)
    workspace_mod.read_layer = before.read_layer
    partition.units_of_part = old_units_of_part
    try:
        yield
    finally:
        workspace_mod.read_layer, partition.units_of_part = saved


def cost(a: argparse.Namespace) -> None:
    """Coverage parts against the whole, before and now, in one process (``--cost``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_part_cost as pc

    from geo_mz.eldercare.circle15 import CircleSettings
    from geo_mz.scale import partition

    ws = Workspace(a.workspace)
    crs = ws.metadata["measure_crs"]
    all_parts = scale.parts_of(ws.read("admin_units"), a.by, codes=[a.province])
    counties = scale.parts_of(ws.read("admin_units"), "county", codes=[a.province])
    step = max(1, len(all_parts) // a.parts)
    parts = all_parts[::step][: a.parts]
    n_side = sum(1 for c in counties for p in parts if c.code.startswith(p.code))
    bbox = partition.roads_extent(ws)
    s = CircleSettings()
    before = load_before(a.before)
    sides: dict[str, tuple[Callable[[], None], int, types.ModuleType | None]] = {
        "whole before": (lambda: pc.whole(a.workspace, s, crs), len(counties), before),
        "whole now": (lambda: pc.whole(a.workspace, s, crs), len(counties), None),
        "parts before": (lambda: pc.parts_run(a.workspace, parts, s, crs, bbox), n_side, before),
        "parts now": (lambda: pc.parts_run(a.workspace, parts, s, crs, bbox), n_side, None),
    }
    print("configuration (--cost)")
    print(f"  workspace {a.workspace}: {len(all_parts)} {a.by} parts of {a.province}, "
          f"{len(counties)} counties; parts side {len(parts)} (every {step}th, {n_side} "
          f"counties); whole side / {len(counties)}")  # fmt: skip
    print(
        f"  before = commit {a.before}'s gpkg_read and workspace_read (from git) and its "
        f"units_of_part, swapped in; warmup {a.warmup}, reps {a.reps} (median), rotated"
    )
    print(f"  CPUs {os.cpu_count()}, Python {platform.python_version()}, "
          f"pandas {pd.__version__}, geopandas {gpd.__version__}; GC "
          f"{'off' if a.no_gc else 'on'}")  # fmt: skip
    print(f"  load before {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    names = list(sides)
    for _ in range(a.warmup):
        for fn, _n, mod in sides.values():
            with reads_of(mod):
                fn()
    times: dict[str, list[float]] = {n: [] for n in names}
    if a.no_gc:
        gc.disable()
    for rep in range(a.reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            fn, n, mod = sides[name]
            with reads_of(mod):
                t0 = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - t0) / n)
    gc.enable()
    print(f"  load after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    med = {n: statistics.median(times[n]) * 1e3 for n in names}
    print("\nms per county (median of reps)")
    for n in names:
        print(f"  {n:<14} {med[n]:8.1f}   (reps: {' '.join(f'{t * 1e3:.1f}' for t in times[n])})")
    for w in ("before", "now"):
        print(f"  per-part / whole per county, {w}: "
              f"{med['parts ' + w] / med['whole ' + w]:.2f}x")  # fmt: skip
    print(f"  parts before / parts now: {med['parts before'] / med['parts now']:.2f}x; "
          f"whole before / whole now: {med['whole before'] / med['whole now']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()

"""Relief parts against the whole province, per county, in one process; A/B against another tree.

Workload: a generated province workspace (``bench/bench_province.py --keep DIR`` writes one;
e.g. Guangdong's 123 counties). The whole side is what ``bench_province.whole()`` times for
relief: every layer read, the drive network, the audit points and the audit, divided by the
number of counties. The parts side calls ``relief_part`` for every county with the options a
run gives it (``job_options`` and the roads' extent computed once, as the runner does), after
one untimed warm-up part. Both sides run ``--repeat`` times in the same process, alternating.

With ``--base DIR`` (a checkout of another commit, e.g. ``git archive HEAD | tar -x -C DIR``)
the same measurement runs in a subprocess on that tree too, the two trees alternating, so
the figures of both come from the same minutes of a shared machine. Each line also gives
the parts that needed a second round (and their share of the parts' time), the roads read by
all parts and the anchor roads added (:mod:`geo_mz.scale.relief_proof`), and the rounds per
part (mean and most).

``--probe-none`` also times this tree's parts with ``probe_m=None`` (the first round at the full
``buffer_m``, as before the probe round), alternating with the default in the same process.
A workload whose counties' roads are joined (``write_workload(..., joined=True)``) shows what
the probe costs when a part's network reaches beyond its cut.

Run: ``.venv/bin/python bench/bench_relief_parts.py WORKSPACE.gpkg [--repeat 2] [--base DIR]
[--probe-none]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def measure(path: str, repeat: int, probe_none: bool = False) -> list[dict[str, float]]:
    """Time the whole run per county and every county part, ``repeat`` times (one process).

    With ``probe_none`` each repetition times the parts twice, with the default options then
    with ``probe_m=None``; the rows say which (``probe``).
    """
    import numpy as np

    from geo_mz.core.workspaces import open_workspace
    from geo_mz.relief import drive_audit as relief
    from geo_mz.scale.part_inputs import roads_extent
    from geo_mz.scale.province import job_options
    from geo_mz.scale.runner import parts_of

    try:
        from geo_mz.scale.partition_relief import relief_part
    except ImportError:  # a tree from before relief_part moved
        from geo_mz.scale.partition import relief_part

    ws = open_workspace(path)
    parts = parts_of(ws.read("admin_units"), "county")
    opts = job_options("relief", ws, "county") | {"roads_bbox": roads_extent(ws)}
    crs = ws.metadata["measure_crs"]

    def whole() -> float:
        t0 = time.perf_counter()
        layers = ws.read_all()
        rs = relief.ReliefSettings(targets=relief.workspace_targets(ws.metadata))
        net = relief.drive_network(layers["roads"], rs, measure_crs=crs, components="all")
        pts = relief.audit_points(layers, measure_crs=crs)
        relief.audit(pts, layers["relief_stores"], net, rs)
        return time.perf_counter() - t0

    relief_part(ws, parts[0], **opts)
    variants = {"default": {}} | ({"none": {"probe_m": None}} if probe_none else {})
    out = []
    for _ in range(repeat):
        w = whole() / len(parts)
        for probe, extra in variants.items():
            ts, logs = [], []
            for p in parts:
                t0 = time.perf_counter()
                logs.append(relief_part(ws, p, **opts, **extra)[1])
                ts.append(time.perf_counter() - t0)
            ts = np.asarray(ts)
            rounds = np.array([lg["rounds"] for lg in logs])
            again = rounds > 1
            out.append({"probe": probe, "whole_ms_per_county": w * 1000,
                        "part_mean_ms": ts.mean() * 1000,
                        "part_median_ms": float(np.median(ts)) * 1000,
                        "ratio": ts.mean() / w, "load": os.getloadavg()[0],
                        "parts_2nd_round": int(again.sum()),
                        "ms_share_2nd_round": float(ts[again].sum() / ts.sum()),
                        "rounds_mean": float(rounds.mean()), "rounds_max": int(rounds.max()),
                        "roads_read": int(sum(lg["roads_read"] for lg in logs)),
                        "anchors": int(sum(lg.get("anchors", 0) for lg in logs))})  # fmt: skip
    return out


def _show(tag: str, rows: list[dict[str, float]]) -> None:
    for r in rows:
        name = tag if r.get("probe", "default") == "default" else f"{tag}/probe=None"
        print(f"{name:>15}: whole {r['whole_ms_per_county']:6.1f} ms/county, parts mean "
              f"{r['part_mean_ms']:6.1f} median {r['part_median_ms']:6.1f} ms, "
              f"parts/whole {r['ratio']:.2f}; parts with a 2nd round {r['parts_2nd_round']} "
              f"({r['ms_share_2nd_round']:.0%} of part time), rounds mean "
              f"{r['rounds_mean']:.2f} max {r['rounds_max']}, roads read {r['roads_read']}, "
              f"anchors {r['anchors']} (load {r['load']:.2f})", flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workspace")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--base", help="another tree to measure alternately (its folder)")
    ap.add_argument("--probe-none", action="store_true",
                    help="also time this tree's parts with probe_m=None")  # fmt: skip
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.json:  # the subprocess side of --base
        print(json.dumps(measure(a.workspace, a.repeat)))
        return
    print(f"relief parts vs whole, {a.workspace}, repeat {a.repeat}, base {a.base}, "
          f"probe_m=None too: {a.probe_none}")  # fmt: skip
    for _ in range(a.repeat):
        if a.base:
            env = os.environ | {"PYTHONPATH": str(Path(a.base).resolve())}
            res = subprocess.run(
                [sys.executable, __file__, a.workspace, "--repeat", "1", "--json"],
                env=env, cwd=a.base, check=True, capture_output=True, text=True,
            )  # fmt: skip
            _show("base", json.loads(res.stdout.strip().splitlines()[-1]))
        _show("this", measure(a.workspace, 1, a.probe_none))


if __name__ == "__main__":
    main()

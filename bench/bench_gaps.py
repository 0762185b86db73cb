"""Gap map by part: the reduce and the whole ``gaps`` run at 1 and 2 workers (issue 19).

Runs ``geo_mz.scale.run_partitioned("gaps", ...)`` over a workspace's counties with a
LocalCluster of 1 and of 2 worker processes (the order alternating over ``--repeat``), each run
into a fresh store; the reduce (in this process) is timed by wrapping the runner's
``reduce_first_pass``. Reported: wall time of the run (cluster start-up excluded), reduce
seconds, pass-2 part seconds, peak RSS of a part (passes 1 and 2), rows out, the 2-worker
speed-up, and the load average before each run (the box may be shared).

Run: ``.venv/bin/python bench/bench_gaps.py WORKSPACE.gpkg [--by county] [--repeat 1]
[--workers 1,2]``. To compare two versions of the code, alternate runs of each checkout
(``PYTHONPATH=<checkout>``) with one worker count at a time.
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from geo_mz.core.workspaces import open_workspace
from geo_mz.scale import runner as scale
from geo_mz.scale.province import job_options
from geo_mz.scale.store import open_run_store


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def one_run(ws_ref: str, parts: list, opts: dict, workers: int, tmp: Path) -> dict:
    timed: dict[str, float] = {}
    inner = scale.reduce_first_pass

    def reduce_timed(job: str, frames: dict) -> object:
        t0 = time.perf_counter()
        out = inner(job, frames)
        timed["reduce_s"] = time.perf_counter() - t0
        # What each part's task is sent: the whole value, or (sliced) its own share.
        timed["shared_mib"] = len(pickle.dumps(out)) / 2**20
        if hasattr(out, "for_part"):
            timed["share_max_mib"] = max(len(pickle.dumps(out.for_part(p.code))) for p in parts)
            timed["share_max_mib"] /= 2**20
        return out

    opener = scale.open_run_store

    def open_timed(ref: object) -> object:
        rs = opener(ref)
        gather = rs.gather

        def gather_timed(key: str, layer: str) -> object:
            t0 = time.perf_counter()
            out = gather(key, layer)
            timed["gather_s"] = timed.get("gather_s", 0.0) + time.perf_counter() - t0
            return out

        rs.gather = gather_timed
        return rs

    scale.reduce_first_pass = reduce_timed
    scale.open_run_store = open_timed
    store = tmp / f"runs_{workers}_{time.time_ns()}.gpkg"
    load = _load()
    try:
        with scale.dask_client(None, workers) as client:
            res = scale.run_partitioned("gaps", ws_ref, parts, store=store, options=opts,
                                        level="county", client=client)  # fmt: skip
    finally:
        scale.reduce_first_pass = inner
        scale.open_run_store = opener
    rs = open_run_store(store)
    st = rs.status()
    st1 = st[st["run_key"] != res.run_key]

    rows = {n: len(rs.gather(res.run_key, n)) for n in ("gaps", "gap_clusters")}
    t = res.parts
    return {"workers": workers, "seconds": res.seconds, "reduce_s": timed.get("reduce_s"),
            "gather1_s": timed.get("gather_s"), "shared_mib": timed.get("shared_mib"),
            "share_max_mib": timed.get("share_max_mib"),
            "pass2_part_s": float(t["seconds"].sum()),
            "peak_rss_pass2_mib": float(t["peak_rss_mib"].max()),
            "failed": int((t["status"] == "failed").sum()), "load": load, "rows": rows,
            "pass1_part_s": float(st1["seconds"].sum())}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workspace")
    ap.add_argument("--by", default="county")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--workers", default="1,2", help="worker counts, e.g. 1,2 or 2")
    a = ap.parse_args()
    ws_ref = str(Path(a.workspace).resolve())
    ws = open_workspace(ws_ref)
    parts = scale.parts_of(ws.read("admin_units"), a.by)
    opts = job_options("gaps", ws, a.by)
    print(f"gaps by {a.by}: {len(parts)} parts of {ws_ref}; grid {opts['grid_crs']}; "
          f"python {platform.python_version()}, {os.cpu_count()} CPUs, load {_load()}")  # fmt: skip
    counts = [int(w) for w in a.workers.split(",")]
    out: dict[int, list[dict]] = {w: [] for w in counts}
    with tempfile.TemporaryDirectory() as d:
        for i in range(a.repeat):
            for w in counts if i % 2 == 0 else counts[::-1]:
                r = one_run(ws_ref, parts, opts, w, Path(d))
                out[w].append(r)
                print(r, flush=True)
    med = {w: float(np.median([r["seconds"] for r in rs])) for w, rs in out.items()}
    red = {w: float(np.median([r["reduce_s"] for r in rs])) for w, rs in out.items()}
    for w in counts:
        print(f"median of {a.repeat}: {w} worker(s) run {med[w]:.1f} s, reduce {red[w]:.2f} s")
    if 1 in med and 2 in med:
        print(f"2 workers vs 1: {med[1] / med[2]:.2f}x")


if __name__ == "__main__":
    main()

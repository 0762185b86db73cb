"""Merges of one GeoPackage run store take turns across processes (``scale run all``'s outputs).

Each job's outputs task gathers its own run on a worker, side by side; GDAL's GeoPackage writer
does not wait for another process's write, so the store's merges hold a lock of their own.
"""

from __future__ import annotations

import multiprocessing as mp
import subprocess
import sys
import time

import geopandas as gpd
import pandas as pd
from geopandas.testing import assert_geodataframe_equal

from geo_mz.scale.store import open_run_store


def _frame(part: str, n: int = 40) -> gpd.GeoDataFrame:
    k = int(part)
    return gpd.GeoDataFrame(
        {"v": [k * 1000 + i for i in range(n)], "name": [f"村{k}-{i}" for i in range(n)]},
        geometry=gpd.points_from_xy([113.0 + 0.001 * i for i in range(n)], [22.0 + k] * n),
        crs="EPSG:4490",
    )


def _saved(path, keys=("a", "b", "c"), parts=8):
    store = open_run_store(path)
    for key in keys:
        store.begin(key, {"job": f"job_{key}"})
        for p in range(1, parts + 1):
            store.save(key, str(p), {"x": _frame(str(p)), "y": _frame(str(p), 3)},
                       {"job": f"job_{key}", "seconds": 0.1})  # fmt: skip
    return store


def _gather(path: str, key: str, out: str) -> None:
    store = open_run_store(path)
    rows = store.gather_layers(key, ["x", "y"])
    pd.to_pickle(rows, out)


def test_side_by_side_gathers_each_get_their_run_whole(tmp_path):
    path = tmp_path / "runs.gpkg"
    _saved(path)
    ref_path = tmp_path / "ref.gpkg"
    ref_store = _saved(ref_path)
    ref = {k: ref_store.gather_layers(k, ["x", "y"]) for k in ("a", "b", "c")}
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_gather, args=(str(path), k, str(tmp_path / f"{k}.pkl")))
        for k in ("a", "b", "c")
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    for k in ("a", "b", "c"):
        got = pd.read_pickle(tmp_path / f"{k}.pkl")
        for layer in ("x", "y"):
            assert len(got[layer]) == (8 * 40 if layer == "x" else 8 * 3)
            assert_geodataframe_equal(got[layer], ref[k][layer])
    store = open_run_store(path)
    assert not store._pending(None)  # every part file merged, none twice
    for k in ("a", "b", "c"):
        assert_geodataframe_equal(store.gather(k, "x"), ref[k]["x"])


def test_a_merge_waits_for_the_lock_holder(tmp_path):
    path = tmp_path / "runs.gpkg"
    store = _saved(path, keys=("a",), parts=3)
    ready = tmp_path / "ready"
    code = (
        "import sys, pathlib\n"
        "from geo_mz.scale.store import open_run_store\n"
        "s = open_run_store(sys.argv[1])\n"
        "pathlib.Path(sys.argv[2]).touch()\n"
        "print(s.merge('a'))\n"
    )
    with store.merging():
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(path), str(ready)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        time.sleep(0.5)
        # Held here: the other process has decoded the files but not merged them.
        assert proc.poll() is None
        assert len(store._pending("a")) == 3
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out.strip() == "3"
    assert not store._pending("a")
    assert sorted(store.gather("a", "x")["part"].unique()) == ["1", "2", "3"]

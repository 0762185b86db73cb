"""A two-pass job's second pass takes the part's first-pass rows from the worker's memory.

E2SFCA's first pass finds each person's centre pairs; its second pass needs them again. The
run keeps them in the process that ran the part (``geo_mz.scale.part_memo``) and sends the
second pass there: the answer must be the one computed again, bit for bit, in this process
and on a two-worker LocalCluster.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from geo_mz.scale import part_memo
from geo_mz.scale import partition_eldercare as pe
from geo_mz.scale.partition import Part
from geo_mz.scale.runner import (
    PARTS_PER_TASK_ENV,
    ScaleError,
    dask_client,
    gather,
    parts_of,
    run_partitioned,
    task_chunks,
)
from geo_mz.scale.store import open_run_store
from tests.test_partition_components import pieces_ws  # noqa: F401  (a fixture)


@pytest.fixture(autouse=True)
def _fresh_memo():
    part_memo.forget_all()
    yield
    part_memo.forget_all()


def _frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"a": range(n), "b": [0.5] * n})


def test_keep_take_and_the_budget(monkeypatch):
    monkeypatch.setenv(part_memo.MEMO_ENV, "1")  # 1 MiB: two frames of ~0.5 MiB at most
    big = {"rows": _frame(30_000)}  # 30,000 x 16 bytes = 0.46 MiB
    assert part_memo.keep_part_rows("k", "01", big)
    assert part_memo.keep_part_rows("k", "02", big)
    assert part_memo.keep_part_rows("k", "03", big)  # the oldest part is forgotten
    assert part_memo.take_part_rows("k", "01") is None
    got = part_memo.take_part_rows("k", "02")
    assert got is not None and got["rows"] is big["rows"]  # the very frames, not copies
    assert part_memo.take_part_rows("k", "02") is None  # taken once
    assert not part_memo.keep_part_rows("k", "04", {"rows": _frame(200_000)})  # over budget
    monkeypatch.setenv(part_memo.MEMO_ENV, "0")
    assert part_memo.memo_options("e2sfca:1", "01", None) == ({}, ())  # off: computed again
    monkeypatch.setenv(part_memo.MEMO_ENV, "lots")
    with pytest.raises(ValueError, match="GEO_MZ_PART_MEMO_MIB"):
        part_memo.memo_budget_mib()


def test_geometries_are_kept_as_wkb_and_come_back_exactly():
    pts = gpd.GeoDataFrame(
        {"id": ["a", "b", "c"], "w": [1.0, 2.0, float("nan")]},
        geometry=[
            shapely.Point(113.123456789012, 22.5),
            shapely.LineString([(0, 0, 1), (1e6 / 3, 2, 3)]),
            None,
        ],
        crs="EPSG:4490",
        index=[7, 3, 5],
    )[["w", "geometry", "id"]]
    part_memo.keep_part_rows("k", "01", {"points": pts})
    ((_, (packed, _)),) = part_memo._MEMO.items()
    assert not any(gc.is_tracked(v) for v in packed["points"].wkb)  # no shapely objects kept
    got = part_memo.take_part_rows("k", "01")["points"]
    assert isinstance(got, gpd.GeoDataFrame) and got.crs == pts.crs
    pd.testing.assert_frame_equal(pd.DataFrame(got), pd.DataFrame(pts), check_exact=True)
    assert shapely.equals_identical(got.geometry.values, pts.geometry.values).sum() == 2


def test_memo_options_by_pass(monkeypatch):
    monkeypatch.delenv(part_memo.MEMO_ENV, raising=False)
    assert part_memo.memo_options("e2sfca:1", "01", None) == (
        {"keep_part_rows": True},
        ("points", "pairs"),
    )
    assert part_memo.memo_options("capacity:1", "01", None)[1] == ("times",)
    assert part_memo.memo_options("gaps:1", "01", None) == ({}, ())  # keeps nothing
    assert part_memo.memo_options("coverage", "01", None) == ({}, ())
    part_memo.keep_part_rows("key1", "01", {"pairs": _frame(3)})
    extra, _ = part_memo.memo_options("e2sfca:2", "01", "key1")
    assert list(extra) == ["first"] and list(extra["first"]) == ["pairs"]
    assert part_memo.worker_preference({"01": "tcp://w:1"}, "01", "key1") == {
        "workers": ["tcp://w:1"],
        "allow_other_workers": True,
    }
    assert part_memo.worker_preference({"01": "tcp://w:1"}, "01", None) == {}


def _run(ws, tmp_path, name, **kw):
    parts = parts_of(ws.read("admin_units"), "town")
    store = tmp_path / f"{name}.gpkg"
    res = run_partitioned("e2sfca", ws.path, parts, store=store, level="town", **kw)
    assert res.ok, res.failed
    frames = {layer: gather(store, res.run_key, layer) for layer in ("population", "centres")}
    infos = [json.loads(r)["info"] for r in open_run_store(store).status(res.run_key)["rows"]]
    return frames, infos, len(parts)


def _same(a: dict[str, gpd.GeoDataFrame], b: dict[str, gpd.GeoDataFrame]) -> None:
    for layer in a:
        x = a[layer].sort_values(list(a[layer].columns[:2])).reset_index(drop=True)
        y = b[layer].sort_values(list(b[layer].columns[:2])).reset_index(drop=True)
        pd.testing.assert_frame_equal(pd.DataFrame(x), pd.DataFrame(y), check_exact=True)


def test_e2sfca_second_pass_reuses_the_pairs_with_the_same_answer(
    pieces_ws,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    calls = []
    real = pe.e2sfca_pairs

    def counted(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(pe, "e2sfca_pairs", counted)
    monkeypatch.setenv(part_memo.MEMO_ENV, "0")
    again, infos0, n = _run(pieces_ws, tmp_path, "again", workers=0)
    assert len(calls) == 2 * n  # the second pass found the pairs again
    assert not any(i.get("first_pass_reused") for i in infos0)
    calls.clear()
    monkeypatch.delenv(part_memo.MEMO_ENV)
    kept, infos1, _ = _run(pieces_ws, tmp_path, "kept", workers=0)
    assert len(calls) == n  # once a part
    assert all(i.get("first_pass_reused") for i in infos1)
    _same(again, kept)


@pytest.mark.slow
def test_on_two_workers_the_second_pass_goes_where_the_rows_are(
    pieces_ws,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    local, _, n = _run(pieces_ws, tmp_path, "local", workers=0)
    # Two parts a task: the tasks group parts (and a second pass only parts of one worker).
    monkeypatch.setenv(PARTS_PER_TASK_ENV, "2")
    with dask_client(workers=2) as client:
        before = client.run(gc.get_freeze_count)
        dask, infos, _ = _run(pieces_ws, tmp_path, "dask", client=client)
        after = client.run(gc.get_freeze_count)
        # The local cluster's workers do not sample their tasks' stacks (LOCAL_CLUSTER_CONFIG).
        profiling = client.run(lambda: __import__("dask").config.get(
            "distributed.worker.profile.enabled"))  # fmt: skip
    assert set(profiling.values()) == {False}
    _same(local, dask)
    reused = sum(bool(i.get("first_pass_reused")) for i in infos)
    assert reused >= n // 2, infos  # a preference, so most parts, whoever ran them
    # The workers took their import-time objects out of the cyclic collector (once each).
    assert all(v == 0 for v in before.values()) and all(v > 0 for v in after.values())


def test_freeze_gc_once_freezes_once_per_process():
    code = (
        "import gc; from geo_mz.core import freeze_gc_once as f; "
        "print(f(), gc.get_freeze_count() > 0, f())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "False"]


def test_task_chunks_hold_every_part_once_and_group_by_worker(monkeypatch):
    parts = [Part(f"44{i:04d}", f"p{i}", None) for i in range(123)]
    monkeypatch.delenv(PARTS_PER_TASK_ENV, raising=False)
    chunks = task_chunks(parts, 2)
    assert sorted(p.code for c in chunks for p in c) == sorted(p.code for p in parts)
    assert len(chunks) >= 24 and max(len(c) for c in chunks) <= 8  # 12 tasks a worker at least
    assert chunks[0][0] is parts[0] and chunks[0][1] is parts[len(chunks)]  # dealt in turn
    assert [len(c) for c in task_chunks(parts[:21], 2)] == [1] * 21  # few parts: one a task
    placed = {p.code: f"w{i % 3}" for i, p in enumerate(parts)}
    for c in task_chunks(parts, 2, placed):
        assert len({placed[p.code] for p in c}) == 1  # a second pass: one worker's parts
    monkeypatch.setenv(PARTS_PER_TASK_ENV, "5")
    assert max(len(c) for c in task_chunks(parts, 2)) == 5
    monkeypatch.setenv(PARTS_PER_TASK_ENV, "0")
    with pytest.raises(ScaleError, match="GEO_MZ_PARTS_PER_TASK"):
        task_chunks(parts, 2)

"""A task's parts saved to PostGIS behind the next part's compute: each part whole or not at all.

``geo_mz.scale.tasks.run_parts`` sends a part's save (one transaction: rows and done-mark) from
a thread of its own while the next part is computed (``PostgisRunStore.save_behind``). The
parts here come from a small job of this file (registered in ``JOBS`` for the test): real
frames, a real run store on the session's PostGIS cluster, the GeoPackage store as reference.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time

import psycopg
import pytest
import shapely

from geo_mz.scale import jobs, store_postgis
from geo_mz.scale.partition import Part, PartitionError
from geo_mz.scale.store import open_run_store
from geo_mz.scale.store_postgis_copy import run_copy_script
from geo_mz.scale.tasks import run_parts
from tests.test_run_store import _assert_same, _frame

JOB = "t_behind"
NUL_PART = "3"  # its text holds NUL: the database refuses the save
BOOM_PART = "5"  # its job raises


def _job(ws, part, **_opts):
    if part.code == BOOM_PART:
        raise PartitionError(f"part {part.code}: no units")
    b = _frame(part.code, n=4)
    if part.code == NUL_PART:
        b = b.assign(名=["a\x00b"] * 4)
    return {"a": _frame(part.code), "b": b}, {"rows": 7}


@pytest.fixture
def job(monkeypatch):
    monkeypatch.setitem(jobs.JOBS, JOB, _job)
    return JOB


def _parts(codes) -> list[Part]:
    return [Part(c, f"part {c}", shapely.box(113, 22, 113.1, 22.1)) for c in codes]


def test_a_task_saves_behind_and_a_failed_save_costs_only_its_part(
    job, pg_url, sample_ws, tmp_path
):
    ref = f"{pg_url}#behind"
    pg = open_run_store(ref)
    pg.begin("k", {"job": job})
    pg.save("k", NUL_PART, {"a": _frame(NUL_PART), "b": _frame(NUL_PART)}, {"job": job})
    threads: list[str] = []
    real = store_postgis.PostgisRunStore._run_one_query

    def spy(self, *args):  # where each one-query save ran
        threads.append(threading.current_thread().name)
        return real(self, *args)

    store_postgis.PostgisRunStore._run_one_query = spy
    try:
        codes = ["1", "2", NUL_PART, "4", BOOM_PART, "6"]
        recs = run_parts(job, str(sample_ws.path), ref, "k", _parts(codes), [{}] * 6)
    finally:
        store_postgis.PostgisRunStore._run_one_query = real
    assert [r["part"] for r in recs] == codes  # one record a part, in the parts' order
    ok = {r["part"]: r["ok"] for r in recs}
    assert ok == {"1": True, "2": True, NUL_PART: False, "4": True, BOOM_PART: False, "6": True}
    bad = {r["part"]: r for r in recs if not r["ok"]}
    assert "0x00" in bad[NUL_PART]["error"] or "NUL" in bad[NUL_PART]["error"]
    assert bad[NUL_PART]["info"]["rows"] == 7 and bad[BOOM_PART]["error"].startswith("Partition")
    assert all("frames" not in r and "frames_again" not in r for r in recs)
    # The saves after the first went behind (the tables known): in the save thread.
    assert threads and all(t.startswith("geo_mz-save") for t in threads), threads
    # Every good part whole; the refused part keeps its earlier rows, as a lone save does.
    assert pg.done("k") == {"1", "2", NUL_PART, "4", "6"}
    gp = open_run_store(tmp_path / "ref.gpkg")
    gp.begin("k", {"job": job})
    gp.save("k", NUL_PART, {"a": _frame(NUL_PART), "b": _frame(NUL_PART)}, {"job": job})
    for part in _parts(["1", "2", "4", "6"]):
        gp.save("k", part.code, _job(None, part)[0], {"job": job})
    for layer in ("a", "b"):
        _assert_same(pg.gather("k", layer), gp.gather("k", layer))


def test_a_store_without_save_behind_saves_each_part_in_turn(job, sample_ws, tmp_path):
    store = str(tmp_path / "gp.gpkg")
    recs = run_parts(job, str(sample_ws.path), store, "k", _parts(["1", "2"]), [{}, {}])
    assert [r["ok"] for r in recs] == [True, True]
    assert not hasattr(open_run_store(store), "save_behind")
    assert open_run_store(store).done("k") == {"1", "2"}


def _die_in_a_save_behind(ref: str, workspace: str) -> None:
    # A worker killed while the server takes part 2's rows (between its two COPYs), part 3
    # being computed meanwhile.
    jobs.JOBS[JOB] = _job
    real, seen = store_postgis.same_types, []

    def then_die(*args):
        seen.append(1)
        if len(seen) == 2 + 2:  # part 1 (the tables known), then part 2's second layer
            os._exit(3)
        return real(*args)

    rs = open_run_store(ref)
    rs.save("k", "1", {"a": _frame("1"), "b": _frame("1")}, {"job": JOB})  # tables known
    store_postgis.same_types = then_die
    run_parts(JOB, workspace, ref, "k", _parts(["1", "2", "4"]), [{}] * 3)


def test_a_worker_killed_mid_save_behind_leaves_the_part_out_whole(pg_url, sample_ws):
    ref = f"{pg_url}#behind_killed"
    rs = open_run_store(ref)
    rs.begin("k", {"job": JOB})
    proc = mp.get_context("spawn").Process(
        target=_die_in_a_save_behind, args=(ref, str(sample_ws.path))
    )
    proc.start()
    proc.join(120)
    assert proc.exitcode == 3
    assert rs.done("k") == {"1"}
    with psycopg.connect(pg_url) as conn:  # no row of part 2 in any table
        for t in (f"{JOB}_a", f"{JOB}_b"):
            q = f"SELECT count(*) FROM behind_killed.{t} WHERE part <> '1'"
            assert conn.execute(q).fetchone()[0] == 0


def test_waiting_for_the_server_lets_other_threads_run(pg_url):
    """A save thread waiting on the server does not hold the GIL (the next part computes)."""
    ended: list[float] = []
    with psycopg.connect(pg_url, autocommit=True) as conn:

        def wait() -> None:
            run_copy_script(conn, b"SELECT pg_sleep(0.6)", lambda _at, _rows: None)
            ended.append(time.perf_counter())

        t0 = time.perf_counter()
        t = threading.Thread(target=wait)
        t.start()
        time.sleep(0.05)
        woke = time.perf_counter()  # reached only when this thread gets the GIL back
        t.join()
    assert ended and ended[0] - t0 >= 0.55
    assert woke - t0 < 0.4, f"this thread woke at {woke - t0:.2f} s: the GIL was held"


READ_JOB = "t_task_reads"


def _read_job(ws, part, **_opts):
    # Which transaction the part read in (now(): the transaction's start) and how many units.
    conn = ws._snapshot_state()[0]  # the snapshot this part's reads use
    started = conn.execute("SELECT now()").fetchone()[0]
    if part.code == BOOM_PART:
        conn.execute("SELECT 1 / 0")  # a failed query: the transaction is aborted
    n = ws.count("admin_units")
    return {"a": _frame("1")}, {"started": str(started), "n": n}


@pytest.fixture(scope="module")
def task_ws(pg_url, sample_ws) -> str:
    from geo_mz.core.workspace_postgis import PostgisWorkspace

    PostgisWorkspace.from_workspace(sample_ws, pg_url, schema="task_ws", replace=True)
    return f"{pg_url}#task_ws"


def test_a_tasks_parts_read_one_snapshot_and_a_failed_part_ends_it(
    job, monkeypatch, pg_url, task_ws, sample_ws
):
    monkeypatch.setitem(jobs.JOBS, READ_JOB, _read_job)
    ref = f"{pg_url}#task_reads"
    open_run_store(ref).begin("k", {"job": READ_JOB})
    codes = ["1", "2", BOOM_PART, "4", "6"]
    recs = run_parts(READ_JOB, task_ws, ref, "k", _parts(codes), [{}] * 5)
    ok = {r["part"]: r["ok"] for r in recs}
    assert ok == {"1": True, "2": True, BOOM_PART: False, "4": True, "6": True}
    assert "DivisionByZero" in {r["part"]: r for r in recs}[BOOM_PART]["error"]
    started = {r["part"]: r["info"].get("started") for r in recs if r["ok"]}
    # One snapshot for parts 1 and 2; the failed part ended it, 4 and 6 share a new one.
    assert started["1"] == started["2"] != started["4"] == started["6"]
    n = len(sample_ws.read("admin_units"))
    assert all(r["info"]["n"] == n for r in recs if r["ok"])
    with psycopg.connect(pg_url, autocommit=True) as conn:  # no lock left behind
        held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
        assert conn.execute(held).fetchone()[0] == 0
    # A GeoPackage workspace: each part opens its own, as before.
    recs = run_parts(job, str(sample_ws.path), ref, "k2", _parts(["1"]), [{}])
    assert recs[0]["ok"], recs

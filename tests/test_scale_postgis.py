"""PostGIS as the shared store of a partitioned run: workers read the workspace and write their
parts from the database, each part in one transaction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import psycopg
import pytest

from geo_mz.relief import drive_audit as relief
from geo_mz.scale import runner as scale
from geo_mz.scale.partition import max_drive_kmh
from geo_mz.scale.store import PostgisRunStore, RunStoreError, open_run_store


@pytest.fixture(scope="module")
def pg_ws(pg_url, sample_ws) -> str:
    from geo_mz.core.workspace_postgis import PostgisWorkspace

    PostgisWorkspace.from_workspace(sample_ws, pg_url, schema="scale_ws", replace=True)
    return f"{pg_url}#scale_ws"


def _relief_opts(ws) -> dict:
    s = relief.ReliefSettings(targets=relief.workspace_targets(ws.metadata))
    return {"settings": s, "measure_crs": ws.metadata["measure_crs"],
            "vmax_kmh": max_drive_kmh(ws.read("roads"), s)}  # fmt: skip


@pytest.mark.slow
def test_cluster_run_on_postgis_equals_the_geopackage_run(pg_url, pg_ws, sample_ws, tmp_path):
    from geo_mz.core.workspaces import open_workspace

    pg = open_workspace(pg_ws)
    parts = scale.parts_of(pg.read("admin_units"), "town")
    opts = _relief_opts(pg)
    store = f"{pg_url}#runs_a"
    res = scale.run_partitioned("relief", pg_ws, parts, store=store, options=opts, workers=2,
                                level="town")  # fmt: skip
    assert res.ok, res.failed
    st = open_run_store(store).status(res.run_key)
    assert st["worker"].nunique() == 2 and (st["status"] == "done").all()
    got = scale.gather(store, res.run_key, "audit")
    whole = relief.run_audit(
        sample_ws.read_all(), opts["settings"], measure_crs=opts["measure_crs"]
    ).table
    key = ["target", "point_id"]
    m = whole.merge(pd.DataFrame(got), on=key, suffixes=("", "_p"), validate="1:1")
    assert len(m) == len(whole)
    np.testing.assert_array_equal(m["time_min"].to_numpy(float), m["time_min_p"].to_numpy(float))
    assert (m["status"] == m["status_p"]).all()
    assert got["meets"].dtype == bool and got["population"].dtype == np.float64
    # The same job on the GeoPackage gives the same rows (the workspaces are equal).
    local = scale.run_partitioned("relief", sample_ws.path, parts, store=tmp_path / "r.gpkg",
                                  options=opts, workers=0)  # fmt: skip
    lg = scale.gather(tmp_path / "r.gpkg", local.run_key, "audit")
    pd.testing.assert_frame_equal(
        pd.DataFrame(lg.drop(columns="geometry")), pd.DataFrame(got.drop(columns="geometry"))
    )


def test_a_part_is_one_transaction_and_a_rerun_replaces_it(pg_url, pg_ws):
    from geo_mz.core.workspaces import open_workspace

    pg = open_workspace(pg_ws)
    parts = scale.parts_of(pg.read("admin_units"), "town")[:2]
    opts = _relief_opts(pg)
    store = f"{pg_url}#runs_b"
    res = scale.run_partitioned("relief", pg_ws, parts, store=store, options=opts, workers=0)
    n = len(scale.gather(store, res.run_key, "audit"))
    rs = PostgisRunStore(pg_url, schema="runs_b")
    # A save that fails half-way (a frame the database cannot take) leaves the old rows.
    bad = {"audit": pd.DataFrame({"x": [1.0]}), "other": pd.DataFrame({"y": ["a\x00b"]})}
    with pytest.raises(psycopg.Error):
        rs.save(res.run_key, parts[0].code, bad, {"job": "relief"})
    assert len(scale.gather(store, res.run_key, "audit")) == n
    assert rs.done(res.run_key) == {p.code for p in parts}
    # Rerun after forgetting one part: only that part is computed, rows replaced not doubled.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM runs_b.geo_mz_run_parts WHERE part = %s", (parts[1].code,))
    again = scale.run_partitioned("relief", pg_ws, parts, store=store, options=opts, workers=0)
    assert dict(zip(again.parts["part"], again.parts["status"], strict=True)) == {
        parts[0].code: "skipped",
        parts[1].code: "done",
    }
    assert len(scale.gather(store, res.run_key, "audit")) == n


def test_unreachable_store_names_the_host_not_the_password():
    with pytest.raises(RunStoreError) as err:
        open_run_store("postgresql://geo:s3cret@127.0.0.1:1/nowhere#runs")
    assert "s3cret" not in str(err.value) and "127.0.0.1" in str(err.value)


def test_cli_push_run_and_status_on_postgis(pg_url, sample_ws, tmp_path):
    from click.testing import CliRunner

    from geo_mz.cli import main

    target = f"{pg_url}#cli_ws"
    r = CliRunner().invoke(main, ["scale", "push", str(sample_ws.path), target, "--replace"])
    assert r.exit_code == 0, r.output
    assert "s3cret" not in r.output and "admin_units" in r.output
    store = f"{pg_url}#cli_runs"
    r = CliRunner().invoke(
        main,
        ["scale", "run", "boundaries", "--workspace", target, "--by", "town", "--store", store,
         "--out", str(tmp_path), "--workers", "0", "--lang", "en"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "Parts done: 6/6" in r.output
    st = CliRunner().invoke(main, ["scale", "status", "--store", store])
    assert st.exit_code == 0 and "'done': 6" in st.output


def _advisory_locks(conn) -> int:
    q = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
    return int(conn.execute(q).fetchone()[0])


def test_reads_reuse_pooled_connections_and_a_snapshot_takes_one_lock(pg_ws, sample_ws):
    from geo_mz.core.errors import WorkspaceError
    from geo_mz.core.workspace_postgis import close_pool, pooled_connection, split_workspace_url
    from geo_mz.core.workspaces import open_workspace

    url, _ = split_workspace_url(pg_ws)
    close_pool()
    pg = open_workspace(pg_ws)
    pg.read("elder_care")
    with pooled_connection(url) as conn:
        pid = conn.info.backend_pid
        # The read gave its shared lock back before its connection went back to the pool.
        assert _advisory_locks(conn) == 0
    for _ in range(5):
        pg.read("elder_care", bbox=(113.0, 22.5, 113.2, 22.7))
    with pooled_connection(url) as conn:
        assert conn.info.backend_pid == pid  # one connection for all those reads
    # A snapshot: every read on one connection, in one transaction, under one lock.
    with pg.snapshot():
        a = pg.read("roads", bbox=(113.0, 22.5, 113.1, 22.6))
        b = pg.read("population", bbox=(113.0, 22.5, 113.1, 22.6))
        with psycopg.connect(url, autocommit=True) as other:
            held = other.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ShareLock'"
            ).fetchone()[0]
        assert held == 1
    ref = sample_ws.read("roads", bbox=(113.0, 22.5, 113.1, 22.6))
    pd.testing.assert_frame_equal(pd.DataFrame(a.drop(columns="geometry")),
                                  pd.DataFrame(ref.drop(columns="geometry")))  # fmt: skip
    assert len(b) == len(sample_ws.read("population", bbox=(113.0, 22.5, 113.1, 22.6)))
    # A read that fails closes its connection (its lock goes with it): a writer is not held.
    with pytest.raises(WorkspaceError, match="no layer"):
        pg.read("no_such_layer")
    with pooled_connection(url) as conn:
        assert _advisory_locks(conn) == 0
        conn.execute("SET lock_timeout = '5s'")
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (0x676D7A, pg.schema))
    assert close_pool() >= 1


def _edges(names: list, flags: list | None = None) -> pd.DataFrame:
    df = pd.DataFrame({"code": pd.Series(names, dtype=object),
                       "name": pd.Series(names, dtype=object),
                       "length_m": np.arange(len(names), dtype=float)})  # fmt: skip
    if flags is not None:
        df["ok"] = pd.Series(flags, dtype=bool)
    return df


@pytest.mark.parametrize("kind", ["gpkg", "postgis"])
def test_a_part_without_rows_does_not_type_the_columns_of_the_others(kind, pg_url, tmp_path):
    # Found at province size: a part whose layer had no rows typed its text columns as float
    # (an empty frame's object column), and the next part's names failed the COPY (PostGIS)
    # or the gather (GeoPackage).
    store = open_run_store(tmp_path / "r.gpkg" if kind == "gpkg" else f"{pg_url}#runs_empty")
    key = f"job-{kind}-empty"
    store.begin(key, {"job": "job"})
    empty = _edges([]).astype({"code": float, "name": float})  # as an empty part reports them
    store.save(key, "p1", {"edges": empty, "none": empty}, {"job": "job"})
    store.save(key, "p2", {"edges": _edges(["甲镇", "乙镇"], [True, False]), "none": empty},
               {"job": "job"})  # fmt: skip
    store.save(key, "p3", {"edges": empty, "none": empty}, {"job": "job"})
    got = store.gather(key, "edges")
    assert got["name"].tolist() == ["甲镇", "乙镇"] and got["part"].tolist() == ["p2", "p2"]
    assert got["ok"].tolist() == [True, False] and got["length_m"].tolist() == [0.0, 1.0]
    assert store.gather(key, "none").empty  # only parts without rows: nothing, no error


def test_capacity_reads_the_coverage_runs_times_from_postgis(pg_url, pg_ws, sample_ws, tmp_path):
    """``run all`` on PostGIS: capacity's parts read the coverage run's times from the store
    (part_rows), and give the rows the GeoPackage run of the same jobs gives."""
    import json

    from geo_mz.core.workspaces import open_workspace
    from geo_mz.scale.province import job_options, run_all

    pg = open_workspace(pg_ws)
    parts = scale.parts_of(pg.read("admin_units"), "town", codes=["440703002", "440703005"])
    jobs = ["coverage", "capacity"]
    opts = {j: job_options(j, pg, "town") for j in jobs}
    store = f"{pg_url}#runs_times"
    res = run_all(pg_ws, parts, store=store, options=opts, jobs=jobs, level="town", workers=0)
    assert res["capacity"].ok
    rs = open_run_store(store)
    runs = rs.runs()
    (key1,) = runs.loc[runs["job"] == "capacity:1", "run_key"]
    logs = [json.loads(r)["info"] for r in rs.status(key1)["rows"]]
    assert [lg["times"] for lg in logs] == ["stored"] * len(parts)
    cov = res["coverage"].run_key
    whole = scale.gather(store, cov, "times")
    for p in parts:
        want = whole[whole["part"] == p.code].reset_index(drop=True)
        pd.testing.assert_frame_equal(pd.DataFrame(rs.part_rows(cov, p.code, "times")),
                                      pd.DataFrame(want))  # fmt: skip
    assert rs.part_rows(cov, "999", "times") is None
    local = run_all(sample_ws.path, parts, store=tmp_path / "r.gpkg", options=opts,
                    jobs=["capacity"], level="town", workers=0)  # fmt: skip
    for layer in ("times", "units", "centres"):
        a = scale.gather(store, res["capacity"].run_key, layer)
        b = scale.gather(tmp_path / "r.gpkg", local["capacity"].run_key, layer)
        pd.testing.assert_frame_equal(pd.DataFrame(a), pd.DataFrame(b))


def test_a_worker_keeps_postgis_sources_under_the_runs_digest(pg_ws):
    """A PostGIS workspace's sources are read once per digest of the run, not once per part."""
    import uuid

    from geo_mz.core.layer_digest import layer_digests
    from geo_mz.core.workspaces import open_workspace
    from geo_mz.scale.part_inputs import run_layer_digests, source_layer

    ws = open_workspace(pg_ws)
    reads = []
    real = ws.read

    def counted(kind, **kw):
        reads.append(kind)
        return real(kind, **kw)

    ws.read = counted
    # A digest no other test's run had (a worker process keeps its sources across runs).
    digests = {**layer_digests(pg_ws), "elder_care": f"digest-{uuid.uuid4()}"}
    source_layer(ws, "elder_care")  # no run digests: read every time
    source_layer(ws, "elder_care")
    assert reads == ["elder_care"] * 2
    with run_layer_digests(digests):
        a = source_layer(ws, "elder_care")
        b = source_layer(ws, "elder_care")
    assert reads == ["elder_care"] * 3  # kept under the digest
    pd.testing.assert_frame_equal(pd.DataFrame(a), pd.DataFrame(b))
    with run_layer_digests({**digests, "elder_care": "another"}):  # other data: read again
        source_layer(ws, "elder_care")
    assert reads == ["elder_care"] * 4

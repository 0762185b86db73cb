"""Partitioned runs: Dask LocalCluster, GeoPackage run store, failures, reruns, the CLI."""

from __future__ import annotations

import sqlite3

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from geo_mz.cli import main
from geo_mz.eldercare import coverage
from geo_mz.eldercare.circle15 import CircleSettings
from geo_mz.network.graph import network_from_roads
from geo_mz.scale import runner as scale
from geo_mz.scale.store import GpkgRunStore, RunStoreError, open_run_store


@pytest.fixture(scope="module")
def sample(sample_ws):
    return sample_ws


@pytest.fixture(scope="module")
def whole_times(sample):
    s = CircleSettings()
    layers = sample.read_all()
    net = network_from_roads(
        layers["roads"],
        mode="walk",
        walk_speed_kmh=s.walk_speed_kmh,
        measure_crs=sample.metadata["measure_crs"],
    )
    centres = coverage.select_centres(layers["elder_care"], kinds=s.kinds, statuses=s.statuses)
    return coverage.access_times(net, centres, layers["population"], max_snap_m=s.max_snap_m)


def _opts(ws) -> dict:
    return {"settings": CircleSettings(), "measure_crs": ws.metadata["measure_crs"]}


def _check_times(got: gpd.GeoDataFrame, whole: gpd.GeoDataFrame) -> None:
    g = got.set_index("cell_id").loc[whole["cell_id"]]
    np.testing.assert_array_equal(g["walk_min"].to_numpy(float), whole["walk_min"].to_numpy())
    assert (g["nearest_centre"].astype(str).to_numpy() == whole["nearest_centre"].astype(str)).all()
    assert g["too_far"].dtype == bool and g["walk_min"].dtype == np.float64


@pytest.mark.slow
def test_local_cluster_run_equals_the_whole_district_and_reruns_nothing(
    sample, whole_times, tmp_path
):
    parts = scale.parts_of(sample.read("admin_units"), "town")
    store = tmp_path / "runs.gpkg"
    seen: list[tuple[int, int, str, str]] = []
    res = scale.run_partitioned(
        "coverage", sample.path, parts, store=store, options=_opts(sample), level="town",
        workers=2, progress=lambda *a: seen.append(a),
    )  # fmt: skip
    assert res.ok and res.workers == 2
    assert sorted(res.parts["status"]) == ["done"] * 6
    assert [s[0] for s in seen] == list(range(1, 7)) and {s[1] for s in seen} == {6}
    # Two worker processes did the work.
    st = open_run_store(store).status(res.run_key)
    assert st["worker"].nunique() == 2
    _check_times(scale.gather(store, res.run_key, "times"), whole_times)
    again = scale.run_partitioned(
        "coverage", sample.path, parts, store=store, options=_opts(sample), level="town",
        workers=2,
    )  # fmt: skip
    assert again.run_key == res.run_key
    assert set(again.parts["status"]) == {"skipped"}


def test_in_process_run_a_failing_part_and_its_rerun(sample, whole_times, tmp_path):
    parts = scale.parts_of(sample.read("admin_units"), "town")
    store = tmp_path / "runs.gpkg"
    opts = _opts(sample)
    # A real failure: a measuring CRS that is geographic is refused by the network builder.
    bad = {**opts, "measure_crs": "EPSG:4490"}
    first = scale.run_partitioned("coverage", sample.path, parts[:2], store=store, options=bad,
                                  workers=0)  # fmt: skip
    assert not first.ok and len(first.failed) == 2
    assert first.failed["error"].str.contains("geographic").all()
    st = open_run_store(store).status(first.run_key)
    assert (st["status"] == "failed").all() and st["error"].str.contains("Traceback").all()
    # Good options: a part that fails while others finish is rerun alone.
    with_bad_part = [*parts[:2], scale.Part("440703999", "无此镇", parts[0].geometry)]
    run1 = scale.run_partitioned("coverage", sample.path, with_bad_part, store=store,
                                 options=opts, workers=0)  # fmt: skip
    status = dict(zip(run1.parts["part"], run1.parts["status"], strict=True))
    assert status == {parts[0].code: "done", parts[1].code: "done", "440703999": "done"}
    run2 = scale.run_partitioned("coverage", sample.path, parts, store=store, options=opts,
                                 workers=0)  # fmt: skip
    assert run2.run_key == run1.run_key
    status = dict(zip(run2.parts["part"], run2.parts["status"], strict=True))
    assert [status[p.code] for p in parts[:2]] == ["skipped", "skipped"]
    assert all(status[p.code] == "done" for p in parts[2:])
    got = scale.gather(store, run2.run_key, "times")
    _check_times(got, whole_times)
    # The empty part is kept as done with no rows, never dropped silently.
    rows = open_run_store(store).status(run2.run_key).set_index("part").loc["440703999", "rows"]
    assert '"times": {"n": 0' in rows


def test_rerun_after_a_crash_between_rows_and_status(sample, tmp_path):
    parts = scale.parts_of(sample.read("admin_units"), "town")[:1]
    store = tmp_path / "runs.gpkg"
    res = scale.run_partitioned("coverage", sample.path, parts, store=store,
                                options=_opts(sample), workers=0)  # fmt: skip
    n = len(scale.gather(store, res.run_key, "times"))
    # As if the process died after writing rows but before marking the part done.
    with sqlite3.connect(store) as db:
        db.execute("DELETE FROM geo_mz_run_parts")
    again = scale.run_partitioned("coverage", sample.path, parts, store=store,
                                  options=_opts(sample), workers=0)  # fmt: skip
    assert list(again.parts["status"]) == ["done"]
    assert len(scale.gather(store, res.run_key, "times")) == n  # replaced, not doubled


def test_changed_data_or_options_start_a_new_run(sample, tmp_path):
    opts = _opts(sample)
    k1 = scale.run_key("coverage", sample, opts, "town")
    k2 = scale.run_key("coverage", sample, {**opts, "buffer_m": 999.0}, "town")
    k3 = scale.run_key("relief", sample, opts, "town")
    assert len({k1, k2, k3}) == 3
    assert k1 == scale.run_key("coverage", sample, dict(opts), "town")


def test_store_round_trips_types_inf_and_nulls(tmp_path):
    rs = GpkgRunStore(tmp_path / "s.gpkg")
    rs.begin("k", {"job": "t"})
    df = gpd.GeoDataFrame(
        {
            "f": [1.5, np.inf, np.nan],
            "i": np.array([1, 2, 3], dtype=np.int64),
            "b": [True, False, True],
            "s": ["a", None, "中文"],
        },
        geometry=gpd.points_from_xy([113.0, 113.1, 113.2], [22.5, 22.6, 22.7]),
        crs="EPSG:4490",
    )
    rs.save("k", "p1", {"x": df, "y": pd.DataFrame({"n": [1.0]})}, {"job": "t", "seconds": 1})
    got = rs.gather("k", "x")
    np.testing.assert_array_equal(got["f"].to_numpy(), df["f"].to_numpy())
    assert got["i"].dtype == np.int64 and got["b"].dtype == bool
    assert got["s"].tolist() == ["a", None, "中文"]
    assert got.geometry.geom_equals_exact(df.geometry, 0).all()
    assert "geometry" not in rs.gather("k", "y").columns
    with pytest.raises(RunStoreError, match=r"run store is a \.gpkg"):
        open_run_store(tmp_path / "x.csv")
    ws_file = tmp_path / "plain.gpkg"
    gpd.GeoDataFrame({"a": [1]}, geometry=df.geometry[:1]).to_file(ws_file)
    with pytest.raises(RunStoreError, match="not a run store"):
        GpkgRunStore(ws_file)


def test_parts_errors_name_the_problem(sample):
    units = sample.read("admin_units")
    with pytest.raises(scale.ScaleError, match="no province units"):
        scale.parts_of(units, "province")
    assert [p.code for p in scale.parts_of(units, "town", codes=["4407031"])] == [
        "440703101",
        "440703102",
        "440703103",
    ]
    with pytest.raises(scale.ScaleError, match="unknown job"):
        scale.run_partitioned("nope", sample.path, [], store="x.gpkg")


@pytest.mark.slow
def test_cli_scale_run_writes_map_gpkg_and_status(sample, tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(
        main,
        ["scale", "run", "relief", "--workspace", str(sample.path), "--by", "town",
         "--out", str(out), "--workers", "0", "--lang", "en"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "Parts done: 6/6" in r.output
    for name in ("scale_relief.gpkg", "scale_relief_map.html", "scale_relief_parts.csv"):
        assert (out / name).stat().st_size > 0
    parts = pd.read_csv(out / "scale_relief_parts.csv")
    assert set(parts["status"]) == {"done"} and parts["kpi"].between(0, 1).all()
    html = (out / "scale_relief_map.html").read_text(encoding="utf-8")
    assert "Partitioned run by part" in html
    st = CliRunner().invoke(main, ["scale", "status", "--store", str(out / "runs.gpkg")])
    assert st.exit_code == 0 and "'done': 6" in st.output
    bad = CliRunner().invoke(
        main, ["scale", "run", "coverage", "--workspace", str(tmp_path / "none.gpkg")]
    )
    assert bad.exit_code == 2 and "no such workspace" in bad.output


@pytest.mark.slow
def test_any_scheduler_by_address_or_environment(sample, whole_times, tmp_path, monkeypatch):
    import logging

    from dask.distributed import LocalCluster

    parts = scale.parts_of(sample.read("admin_units"), "town", codes=["4407030"])
    with LocalCluster(
        n_workers=1, threads_per_worker=1, dashboard_address=":0", silence_logs=logging.ERROR
    ) as cluster:
        addr = cluster.scheduler_address
        res = scale.run_partitioned(
            "coverage", sample.path, parts, store=tmp_path / "a.gpkg", options=_opts(sample),
            scheduler=addr,
        )  # fmt: skip
        assert res.ok and res.workers == 1
        monkeypatch.setenv(scale.SCHEDULER_ENV, addr)
        again = scale.run_partitioned("coverage", sample.path, parts, store=tmp_path / "b.gpkg",
                                      options=_opts(sample))  # fmt: skip
        assert again.ok and again.workers == 1
    got = scale.gather(tmp_path / "b.gpkg", again.run_key, "times")
    ref = whole_times[whole_times["cell_id"].isin(got["cell_id"])]
    _check_times(got, ref)
    monkeypatch.setenv(scale.SCHEDULER_ENV, "tcp://127.0.0.1:9")
    with pytest.raises(scale.ScaleError, match="cannot reach the Dask scheduler"):
        scale.run_partitioned("coverage", sample.path, parts, store=tmp_path / "c.gpkg",
                              options=_opts(sample))  # fmt: skip


def test_points_no_part_computed_are_counted(sample, tmp_path):
    from geo_mz.scale.outputs import points_left_out

    parts = scale.parts_of(sample.read("admin_units"), "town")
    n_pop = int(sample.layer_records().set_index("layer").loc["population", "rows"])
    full = scale.run_partitioned("coverage", sample.path, parts, store=tmp_path / "a.gpkg",
                                 options=_opts(sample), workers=0)  # fmt: skip
    assert points_left_out("coverage", sample, full) == (n_pop, n_pop)
    # Leave one town out: its people are in no part, and the check says how many.
    some = scale.run_partitioned("coverage", sample.path, parts[1:], store=tmp_path / "b.gpkg",
                                 options=_opts(sample), workers=0)  # fmt: skip
    first = sample.read("population")["adcode"].astype(str).str.startswith(parts[0].code).sum()
    assert points_left_out("coverage", sample, some) == (n_pop - first, n_pop)


def _save_parts(store: str, parts: list[str]) -> None:
    # What a worker does: open the store itself, save its parts.
    rs = open_run_store(store)
    for p in parts:
        df = gpd.GeoDataFrame(
            {"part_no": [int(p)] * 3, "x": [0.5, np.inf, np.nan]},
            geometry=gpd.points_from_xy([113.0] * 3, [22.0 + int(p) / 100] * 3),
            crs="EPSG:4490",
        )
        rs.save("k", p, {"times": df}, {"job": "t", "seconds": 0.1})


def test_workers_write_their_own_part_files_merged_into_one_geopackage(tmp_path):
    import multiprocessing as mp

    store = tmp_path / "runs.gpkg"
    rs = GpkgRunStore(store)
    assert rs.writes_on_workers
    rs.begin("k", {"job": "t"})
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_save_parts, args=(str(store), [str(i) for i in range(w, 12, 2)]))
        for w in (0, 1)
    ]  # fmt: skip
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert rs.done("k") == {str(i) for i in range(12)}
    assert len(list((tmp_path / "runs.parts" / "k").glob("*.npz"))) == 12
    got = rs.gather("k", "times")
    # Merged: the part files are gone and the store's own table holds every row, in order.
    assert not list((tmp_path / "runs.parts" / "k").glob("*.npz"))
    assert got["part"].tolist() == sorted([str(i) for i in range(12)] * 3)
    assert (got["part_no"].astype(str) == got["part"]).all()
    np.testing.assert_array_equal(got["x"].to_numpy(), np.tile([0.5, np.inf, np.nan], 12))
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT count(*) FROM t_times").fetchone()[0] == 36
    # Saved again (a rerun): replaced, not doubled; a part with no rows loses its old ones.
    _save_parts(str(store), ["3"])
    rs.save("k", "4", {"times": gpd.GeoDataFrame({"part_no": []}, geometry=[], crs=4490)},
            {"job": "t"})  # fmt: skip
    got = rs.gather("k", "times")
    assert len(got) == 33 and (got["part"] == "3").sum() == 3 and "4" not in set(got["part"])
    # A part that failed after a save not merged yet is not done, and its file not merged
    # (a worker killed before its part file is in place: tests/test_run_store.py).
    _save_parts(str(store), ["5"])
    rs.fail("k", "5", "boom", {"job": "t"})
    assert "5" not in set(rs.gather("k", "times")["part"])


def test_read_conversions_on_whole_arrays_equal_value_by_value():
    # conform_types runs on every read of every part; its array paths must give what the
    # value-by-value definition gives (None if missing else bool(v) / str(v)).
    from types import SimpleNamespace

    from geo_mz.core.workspace import conform_types

    cols = {
        "s_obj": pd.Series(["a", None, np.nan, "中文"], dtype=object),
        "s_mixed": pd.Series([1, "b", None, 2.5], dtype=object),
        "s_num": pd.Series([1.0, np.nan, 3.0, 4.0]),
        "b_float": pd.Series([1.0, 0.0, np.nan, 2.0]),
        "b_bool": pd.Series([True, False, True, False]),
        "b_obj": pd.Series([True, None, False, 1], dtype=object),
        "b_int": pd.Series([0, 1, 5, 0]),
    }
    df = gpd.GeoDataFrame(cols, geometry=gpd.points_from_xy(range(4), range(4)), crs=4490)
    fields = [SimpleNamespace(name=n, type="string" if n[0] == "s" else "boolean") for n in cols]
    spec = SimpleNamespace(fields=fields)  # conform_types needs only the fields' names and types
    got = conform_types(df, spec)
    for n, s in cols.items():
        if n.startswith("s_"):
            want = pd.Series([None if pd.isna(v) else str(v) for v in s], dtype="str")
        else:
            want = pd.Series(pd.array([None if pd.isna(v) else bool(v) for v in s], "boolean"))
        pd.testing.assert_series_equal(got[n], want, check_names=False)

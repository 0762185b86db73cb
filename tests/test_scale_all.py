"""``geo-mz scale run all``: every job over the same parts, one province report and map.

Checks that the province table carries each job's figure as the job's own outputs compute it,
that a rerun skips every part, and that a two-pass job (first pass on every part, a reduce,
then a second pass) gives the whole-area answer.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
from click.testing import CliRunner

from geo_mz.cli import main
from geo_mz.scale import jobs as scale_jobs
from geo_mz.scale.jobs import ALL_ORDER
from geo_mz.scale.outputs import KPI_NAMES
from geo_mz.scale.partition import own_rows
from geo_mz.scale.province import JOB_TITLES
from geo_mz.scale.runner import gather, parts_of, run_partitioned

CODES = "440703002,440703005"  # two street parts (街道): small, so the run takes seconds


@pytest.fixture(scope="module")
def ws_copy(sample_ws, tmp_path_factory):
    path = tmp_path_factory.mktemp("all") / "ws.gpkg"
    shutil.copy(sample_ws.path, path)
    return path


def test_run_all_writes_one_province_table_map_and_report(ws_copy, tmp_path):
    out = tmp_path / "out"
    args = ["scale", "run", "all", "--workspace", str(ws_copy), "--by", "town",
            "--codes", CODES, "--workers", "0", "--out", str(out)]  # fmt: skip
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    table = pyogrio.read_dataframe(out / "scale_all.gpkg", layer="scale_all_parts")
    assert sorted(table["part"]) == sorted(CODES.split(","))
    assert "relief_scenario_status" not in table  # only with --flood/--closures/--close-roads
    for job in ALL_ORDER:
        assert (table[f"{job}_status"] == "done").all(), job
        own = pd.read_csv(out / f"scale_{job}_parts.csv", dtype={"part": str})
        assert (own["kpi_name"] == KPI_NAMES[job]).all()
        mine = table.set_index("part")[f"{job}_kpi"]
        got = mine.reindex(own["part"]).to_numpy(float)
        assert np.allclose(got, own["kpi"], equal_nan=True), job
        assert np.isfinite(got).all(), job
        assert (table[f"{job}_peak_rss_mib"] > 0).all()
    kpi = table.set_index("part")
    # the coverage figure is the share of the part's own aged 60+ within 15 min, from its times
    times = gather(out / "runs.gpkg", _key(out, "coverage"), "times")
    for code, share in kpi["coverage_kpi"].items():
        t = times[times["part"] == code]
        within = t.loc[t["walk_min"] <= 15.0, "pop_60plus"].sum() / t["pop_60plus"].sum()
        assert share == pytest.approx(within, rel=1e-9)
    # capacity: the same people, each counted by the capacity factor of the serving centre
    adj = gather(out / "runs.gpkg", _key(out, "capacity:2"), "times")
    for code, share in kpi["capacity_kpi"].items():
        t = adj[adj["part"] == code]
        assert share == pytest.approx(t["covered_pop_adjusted"].sum() / t["pop_60plus"].sum())
        assert share <= kpi.loc[code, "coverage_kpi"] + 1e-12
    # gaps: every aged 60+ beyond the circle lies in one gap hexagon of one part
    beyond = times.loc[times["walk_min"] > 15.0 + 1e-9, "pop_60plus"].sum()
    assert kpi["gaps_kpi"].sum() == pytest.approx(beyond)
    # shelters: the towns' table has the district total row, summed over both parts
    towns = pyogrio.read_dataframe(out / "scale_shelter_adequacy.gpkg",
                                   layer="shelter_adequacy_towns")  # fmt: skip
    total = towns[towns["level"] == "total"].iloc[0]
    rest = towns[towns["level"] != "total"]
    assert total["population"] == pytest.approx(rest["population"].sum())
    assert total["pop_served_share"] == pytest.approx(
        rest["pop_served"].sum() / rest["population"].sum()
    )
    for r in rest.itertuples():
        assert kpi.loc[r.adcode, "shelter_adequacy_kpi"] == pytest.approx(r.pop_served_share)
    html = (out / "scale_all_map.html").read_text(encoding="utf-8")
    for job in ALL_ORDER:
        assert JOB_TITLES[job][0] in html, job
    # each job's own map draws its layers with their result specs (E2SFCA's centres too)
    e2sfca_map = (out / "scale_e2sfca_map.html").read_text(encoding="utf-8")
    assert "养老机构床位供需比" in e2sfca_map
    # the maps say they are simplified (the GeoPackages keep the geometry whole)
    assert "线、面按约 100 米简化显示" in html and "线、面按约 5 米简化显示" in e2sfca_map
    report = (out / "scale_all_report.html").read_text(encoding="utf-8")
    assert report.count("<tr><td>") == len(ALL_ORDER) and "scale_all_map.html" in report
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    rerun = pyogrio.read_dataframe(out / "scale_all.gpkg", layer="scale_all_parts")
    assert (rerun[[f"{j}_status" for j in ALL_ORDER]] == "skipped").all(axis=None)


def _key(out, job: str) -> str:
    from geo_mz.scale.store import open_run_store

    runs = open_run_store(out / "runs.gpkg").runs()
    return str(runs.loc[runs["job"] == job, "run_key"].iloc[-1])


class _Shares:
    """A two-pass job: each part's share of the whole run's aged 60+ (needs every part)."""

    @staticmethod
    def first(ws, part, **_opts):
        pop = ws.read("population")
        n = float(pop.loc[own_rows(pop, part.code), "pop_60plus"].sum())
        return {"totals": pd.DataFrame({"pop_60plus": [n]})}, {}

    @staticmethod
    def reduce(frames):
        return float(frames["totals"]["pop_60plus"].sum())

    @staticmethod
    def second(ws, part, *, shared, **_opts):
        pop = ws.read("population")
        n = float(pop.loc[own_rows(pop, part.code), "pop_60plus"].sum())
        return {"share": pd.DataFrame({"share": [n / shared]})}, {}


def test_a_two_pass_job_sees_every_part_before_its_second_pass(ws_copy, tmp_path, monkeypatch):
    monkeypatch.setitem(scale_jobs.JOBS, "shares", _Shares)
    units = gpd.read_file(ws_copy, layer="admin_units")
    parts = parts_of(units, "town")
    res = run_partitioned("shares", ws_copy, parts, store=tmp_path / "runs.gpkg", workers=0)
    assert res.ok and res.run_key.startswith("shares:2-")
    shares = gather(tmp_path / "runs.gpkg", res.run_key, "share")
    pop = gpd.read_file(ws_copy, layer="population")
    for p in parts:
        want = pop.loc[own_rows(pop, p.code), "pop_60plus"].sum() / pop["pop_60plus"].sum()
        got = shares.loc[shares["part"] == p.code, "share"].iloc[0]
        assert got == pytest.approx(want, rel=1e-12)
    assert shares["share"].sum() == pytest.approx(1.0)


def test_run_all_digests_the_layers_once_for_every_job(ws_copy, tmp_path, monkeypatch):
    from geo_mz.core import layer_digest
    from geo_mz.core.workspaces import open_workspace
    from geo_mz.scale import province, runner
    from geo_mz.scale.province import job_options, run_all
    from geo_mz.scale.runner import run_key

    calls = []

    def counted(ref, *a, **kw):
        calls.append((ref, *a))
        return layer_digest.layer_digests(ref, *a, **kw)

    assert not hasattr(province, "layer_digests")  # it digests through the runner's
    monkeypatch.setattr(runner, "layer_digests", counted)
    ws = open_workspace(str(ws_copy))
    parts = parts_of(ws.read("admin_units"), "town", codes=CODES.split(","))
    jobs = ["coverage", "boundaries"]
    opts = {j: job_options(j, ws, "town") for j in jobs}
    res = run_all(ws_copy, parts, store=tmp_path / "runs.gpkg", options=opts, jobs=jobs,
                  level="town", workers=0)  # fmt: skip
    assert len(calls) == 1
    # Only the layers the jobs read: not the place names, landuse or incidents.
    assert calls[0][1] == ["admin_units", "elder_care", "population", "roads"]
    # The keys are the ones each job computes alone from the same data.
    monkeypatch.undo()
    for job in jobs:
        assert res[job].run_key == run_key(job, ws_copy, opts[job], "town")


def test_capacity_and_gaps_read_the_coverage_runs_times(ws_copy, tmp_path):
    """In ``run all`` capacity and gaps read each part's times from the coverage run (stored
    in a part file, or merged into the store's tables): the same results as computing them."""
    from geo_mz.core.workspaces import open_workspace
    from geo_mz.scale.province import job_options, run_all
    from geo_mz.scale.store import open_run_store

    ws = open_workspace(str(ws_copy))
    parts = parts_of(ws.read("admin_units"), "town", codes=CODES.split(","))
    jobs = ["coverage", "capacity", "gaps"]
    opts = {j: job_options(j, ws, "town") for j in jobs}
    store = tmp_path / "runs.gpkg"
    res = run_all(ws_copy, parts, store=store, options=opts, jobs=jobs, level="town", workers=0)
    rs = open_run_store(store)
    assert res["capacity"].ok and res["gaps"].ok
    runs = rs.runs()
    for job in ("capacity:1", "capacity:2", "gaps:1"):  # the passes that start from times
        (key,) = runs.loc[runs["job"] == job, "run_key"]
        logs = [json.loads(r)["info"] for r in rs.status(key)["rows"]]
        # Pass 2 takes pass 1's times (read from the store) from this process's memory.
        how = "first_pass_reused" if job == "capacity:2" else "times"
        want = True if job == "capacity:2" else "stored"
        assert len(logs) == len(parts) and all(lg.get(how) == want for lg in logs), logs
    # The times as the store gives them back: part file before a gather, table after it.
    cov = res["coverage"].run_key
    before = {p.code: rs.part_rows(cov, p.code, "times") for p in parts}
    whole = gather(store, cov, "times")
    for p in parts:
        after = rs.part_rows(cov, p.code, "times")
        want = whole[whole["part"] == p.code].reset_index(drop=True)
        pd.testing.assert_frame_equal(pd.DataFrame(before[p.code]), pd.DataFrame(want))
        pd.testing.assert_frame_equal(pd.DataFrame(after), pd.DataFrame(want))
    assert rs.part_rows(cov, "999", "times") is None
    # Without the coverage run before them: computed in the parts, the same rows.
    alone = tmp_path / "alone.gpkg"
    res2 = run_all(ws_copy, parts, store=alone, options=opts, jobs=["capacity", "gaps"],
                   level="town", workers=0)  # fmt: skip
    for job, layers in (("capacity", ("times", "units", "centres")), ("gaps", ("gaps",))):
        assert res2[job].run_key == res[job].run_key  # the same answer: the same key
        for layer in layers:
            a = gather(store, res[job].run_key, layer)
            b = gather(alone, res2[job].run_key, layer)
            assert len(a) > 0 or layer == "gaps"
            pd.testing.assert_frame_equal(pd.DataFrame(a), pd.DataFrame(b))


def test_province_outputs_gather_each_layer_once(ws_copy, tmp_path, monkeypatch):
    """The province table and each job's outputs share one gather of every layer."""
    from geo_mz.core.workspaces import open_workspace
    from geo_mz.scale import outputs
    from geo_mz.scale.province import job_options, run_all, write_province_outputs

    ws = open_workspace(str(ws_copy))
    parts = parts_of(ws.read("admin_units"), "town", codes=CODES.split(","))
    jobs = ["coverage", "e2sfca"]
    opts = {j: job_options(j, ws, "town") for j in jobs}
    res = run_all(ws_copy, parts, store=tmp_path / "runs.gpkg", options=opts, jobs=jobs,
                  level="town", workers=0)  # fmt: skip
    calls: list[tuple[str, str]] = []
    real = outputs.gather_layers

    def counted(rs, key, layers):
        calls.extend((key, layer) for layer in layers)
        return real(rs, key, layers)

    monkeypatch.setattr(outputs, "gather_layers", counted)
    paths = write_province_outputs(res, parts, tmp_path / "out")
    assert sorted(calls) == sorted(set(calls))  # none twice
    assert {layer for _, layer in calls} == {"units", "centres", "population"}
    table = pyogrio.read_dataframe(paths["gpkg"], layer="scale_all_parts")
    assert np.isfinite(table["coverage_kpi"]).all() and np.isfinite(table["e2sfca_kpi"]).all()


def test_run_all_reports_failed_jobs_and_writes_the_others(sample_ws, tmp_path):
    """A workspace without elder-care centres: the elder-care jobs fail (two-pass ones in their
    first pass, so no second pass runs), their errors are shown, the other jobs' outputs are
    written and the province table says which failed (no figure for them)."""
    import sqlite3

    path = tmp_path / "ws.gpkg"
    shutil.copy(sample_ws.path, path)
    with sqlite3.connect(path) as db:  # as a bureau's file without that layer would be
        db.execute("DROP TABLE elder_care")
        db.execute("DELETE FROM gpkg_contents WHERE table_name = 'elder_care'")
        db.execute("DELETE FROM gpkg_geometry_columns WHERE table_name = 'elder_care'")
        db.execute("DELETE FROM geo_mz_layers WHERE layer = 'elder_care'")
    out = tmp_path / "out"
    args = ["scale", "run", "all", "--workspace", str(path), "--by", "town",
            "--codes", CODES, "--workers", "0", "--out", str(out)]  # fmt: skip
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1, res.output
    assert "no layer 'elder_care'" in res.output  # each failed part's reason
    table = pyogrio.read_dataframe(out / "scale_all.gpkg", layer="scale_all_parts")
    assert (table["capacity_status"] == "failed").all() and "capacity_kpi" not in table
    assert (table["relief_status"] == "done").all() and table["relief_kpi"].notna().all()
    assert (out / "scale_relief.gpkg").exists() and not (out / "scale_capacity.gpkg").exists()


def test_outputs_written_by_the_workers_are_the_same(ws_copy, tmp_path):
    """``write_province_outputs(client=)``: each job's outputs a task on a worker, same files."""
    from distributed import get_task_stream

    from geo_mz.core.workspaces import open_workspace
    from geo_mz.scale.province import job_options, run_all, write_province_outputs
    from geo_mz.scale.runner import dask_client

    ws = open_workspace(str(ws_copy))
    parts = parts_of(ws.read("admin_units"), "town", codes=CODES.split(","))
    jobs = ["coverage", "gaps", "shelter_adequacy", "evacuation", "boundaries"]
    opts = {j: job_options(j, ws, "town") for j in jobs}
    store = tmp_path / "runs.gpkg"
    with dask_client(workers=2) as client:
        res = run_all(ws_copy, parts, store=store, options=opts, jobs=jobs, level="town",
                      client=client)  # fmt: skip
        assert client.status == "running"  # run_all leaves a given client open
        with get_task_stream(client) as ts:
            on = write_province_outputs(res, parts, tmp_path / "on", workspace=str(ws_copy),
                                        client=client)  # fmt: skip
    ran = [t["key"] for t in ts.data if "job_outputs" in str(t["key"])]
    assert len(ran) == len(jobs)  # one task a job, on the workers
    here = write_province_outputs(res, parts, tmp_path / "here", workspace=ws)
    assert sorted(on) == sorted(here)
    for key in on:
        a, b = Path(on[key]), Path(here[key])
        assert a.parent == tmp_path / "on" and a.name == b.name and a.stat().st_size > 0
        if a.suffix == ".gpkg":
            for layer in pyogrio.list_layers(a)[:, 0]:
                pd.testing.assert_frame_equal(
                    pyogrio.read_dataframe(a, layer=layer), pyogrio.read_dataframe(b, layer=layer)
                )
        elif a.suffix == ".csv":
            assert a.read_bytes() == b.read_bytes()

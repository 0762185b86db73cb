"""Each job's run key holds the digests of the layers it reads, and of no other layer.

An incident added on the web map or a place name corrected must not make a rerun of the
coverage compute every part again; an edit of a layer a job reads must. The declared layers
(``JOB_LAYERS``) are proven complete here: every job run on a workspace that holds its
layers alone gives the same rows, and the same key, as on the whole workspace.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from geo_mz.core.workspaces import open_workspace
from geo_mz.scale.jobs import ALL_ORDER, JOB_LAYERS, JOBS, SCENARIO_JOB, job_layers
from geo_mz.scale.province import job_options, run_all
from geo_mz.scale.runner import changed_layers, gather, parts_of, read_digests, run_key
from geo_mz.scale.store import open_run_store
from tests.test_scale_rerun import sql_edit

CODES = ["440703002", "440703005"]  # two street parts: small, so each run takes seconds
JOBS_RUN = [*ALL_ORDER, SCENARIO_JOB]
SCENARIO = {"use_incidents": True, "name": "incidents"}


def _options(ws, jobs):
    return {
        j: job_options(j, ws, "town", scenario=SCENARIO if j == SCENARIO_JOB else None)
        for j in jobs
    }


def _strip(src: Path, dst: Path, keep: frozenset[str]) -> list[str]:
    """Copy a workspace holding only the layers ``keep`` (as a bureau's file without the rest)."""
    shutil.copy(src, dst)
    with sqlite3.connect(dst) as db:
        layers = [r[0] for r in db.execute("SELECT layer FROM geo_mz_layers")]
        gone = sorted(set(layers) - keep)
        for name in gone:
            db.execute(f'DROP TABLE "{name}"')
            for rtree in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE ? "
                "AND sql LIKE 'CREATE VIRTUAL%'",  # its shadow tables go with it
                (f"rtree_{name}_%",),
            ).fetchall():
                db.execute(f'DROP TABLE "{rtree[0]}"')
            for table in ("gpkg_contents", "gpkg_geometry_columns", "gpkg_ogr_contents"):
                db.execute(f"DELETE FROM {table} WHERE table_name = ?", (name,))
            db.execute("DELETE FROM gpkg_extensions WHERE table_name = ?", (name,))
            db.execute("DELETE FROM geo_mz_layers WHERE layer = ?", (name,))
    return gone


def _report_incident(ws_path: Path, n: int) -> None:
    """Append an open road_blocked incident on a road of the first part (as QGIS would)."""
    ws = open_workspace(str(ws_path))
    crs = ws.metadata["measure_crs"]
    units = ws.read("admin_units")
    village = units[(units["level"] == "village") & units["adcode"].str.startswith(CODES[0])]
    area = village.to_crs(crs).geometry.iloc[0]
    roads = ws.read("roads").to_crs(crs)
    road = roads.geometry[roads.intersects(area)].iloc[n]
    inc = pyogrio.read_dataframe(ws_path, layer="incidents")
    row = {c: [None] for c in inc.columns if c != "geometry"}
    row |= {"incident_id": [f"INC-{n}"], "kind": ["road_blocked"], "status": ["open"]}
    at = gpd.GeoSeries([road.interpolate(0.5, normalized=True)], crs=crs).to_crs(inc.crs)
    added = gpd.GeoDataFrame(row, geometry=at.values, crs=inc.crs)
    pyogrio.write_dataframe(added, ws_path, layer="incidents", append=True)


@pytest.fixture(scope="module")
def whole(sample_ws, tmp_path_factory):
    """Every job over two towns of the sample workspace, all its layers present."""
    tmp = tmp_path_factory.mktemp("job_layers")
    path = tmp / "ws.gpkg"
    shutil.copy(sample_ws.path, path)
    _report_incident(path, 0)  # so that the scenario closes a road and the incidents matter
    ws = open_workspace(str(path))
    parts = parts_of(ws.read("admin_units"), "town", codes=CODES)
    store = tmp / "runs.gpkg"
    res = run_all(path, parts, store=store, options=_options(ws, JOBS_RUN), jobs=JOBS_RUN,
                  level="town", workers=0)  # fmt: skip
    assert all(r.ok for r in res.values()), {j: r.failed for j, r in res.items()}
    return path, parts, store, res


def test_every_job_declares_its_layers_and_they_exist():
    assert set(JOB_LAYERS) == set(JOBS)
    assert job_layers("e2sfca:2") == JOB_LAYERS["e2sfca"]
    known = {p.stem for p in (Path(__file__).parents[1] / "layers").glob("*.toml")}
    for job, layers in JOB_LAYERS.items():
        assert layers and layers <= known, (job, layers - known)
    assert read_digests("coverage", {"incidents": "a", "roads": "b"}) == {"roads": "b"}
    # What changed since a run, of the layers its job reads only.
    then = {"roads": "a", "population": "b", "shelters": "s", "incidents": "x"}
    now = {"roads": "a", "population": "c", "elder_care": "d", "incidents": "y"}
    assert changed_layers("coverage", then, now) == {"elder_care": "added",
                                                     "population": "edited"}  # fmt: skip
    assert changed_layers("evacuation:2", then, now) == {"population": "edited",
                                                         "shelters": "removed"}  # fmt: skip
    assert changed_layers("boundaries", then, now) == {}
    # A job added without saying what it reads (a plugin's): every layer enters its key.
    assert read_digests("mine:1", {"incidents": "a", "roads": "b"}) == {"incidents": "a",
                                                                        "roads": "b"}  # fmt: skip


def test_an_edit_outside_a_jobs_layers_leaves_its_key(whole, tmp_path):
    path, _, _, res = whole
    ws_path = tmp_path / "ws.gpkg"
    shutil.copy(path, ws_path)
    ws = open_workspace(str(ws_path))
    opts = _options(ws, JOBS_RUN)
    before = {j: run_key(j, ws_path, opts[j], "town") for j in JOBS_RUN}
    # run_key gives the keys the run used (the two-pass jobs' second pass: its own name).
    for j in ("coverage", "relief", "boundaries"):
        assert before[j] == res[j].run_key
    # An incident added (as QGIS or the web map would) and a place name renamed, in place.
    _report_incident(ws_path, 3)
    sql_edit(ws_path, "UPDATE place_names SET name = name || '村' WHERE fid = "
             "(SELECT min(fid) FROM place_names)")  # fmt: skip
    after = {j: run_key(j, ws_path, opts[j], "town") for j in JOBS_RUN}
    changed = {j for j in JOBS_RUN if after[j] != before[j]}
    assert changed == {SCENARIO_JOB}  # the only job that reads the incidents
    # An edit of the people changes every job that reads them, and no other.
    sql_edit(ws_path, "UPDATE population SET pop_60plus = pop_60plus + 1 WHERE fid = "
             "(SELECT min(fid) FROM population)")  # fmt: skip
    again = {j: run_key(j, ws_path, opts[j], "town") for j in JOBS_RUN}
    changed = {j for j in JOBS_RUN if again[j] != after[j]}
    assert changed == {j for j in JOBS_RUN if "population" in JOB_LAYERS[j]}
    assert "boundaries" not in changed and "coverage" in changed


def _groups() -> dict[frozenset[str], list[str]]:
    out: dict[frozenset[str], list[str]] = {}
    for j in JOBS_RUN:
        out.setdefault(JOB_LAYERS[j], []).append(j)
    return out


@pytest.mark.parametrize("layers", list(_groups()), ids=lambda s: "+".join(_groups()[s]))
def test_a_job_on_its_layers_alone_gives_the_same_rows(whole, tmp_path, layers):
    path, parts, store, res = whole
    jobs = _groups()[layers]
    stripped = tmp_path / "only.gpkg"
    gone = _strip(path, stripped, layers)
    assert gone  # the sample holds layers beyond every job's (place names, landuse, ...)
    ws = open_workspace(str(stripped))
    assert set(ws.layers()) == layers & set(open_workspace(str(path)).layers())
    own = tmp_path / "runs.gpkg"
    got = run_all(stripped, parts, store=own, options=_options(ws, jobs), jobs=jobs,
                  level="town", workers=0)  # fmt: skip
    for job in jobs:
        assert got[job].ok, got[job].failed
        assert got[job].run_key == res[job].run_key  # its layers' data, the same key
        rs = open_run_store(own)
        names = sorted(_layers_of(rs, got[job].run_key))
        assert names, job
        rows = 0
        for name in names:
            a = gather(store, res[job].run_key, name)
            b = gather(own, got[job].run_key, name)
            assert len(a) == len(b), (job, name, len(a), len(b))
            rows += len(a)
            geo = [c for c in a.columns if str(a[c].dtype) == "geometry"]
            for c in geo:  # the very same coordinates
                ga, gb = np.asarray(a[c].values), np.asarray(b[c].values)
                assert shapely.equals_exact(ga, gb, 0.0).all(), (job, name, c)
            a, b = pd.DataFrame(a.drop(columns=geo)), pd.DataFrame(b.drop(columns=geo))
            pd.testing.assert_frame_equal(a, b, obj=f"{job}/{name}")
        assert rows > 0, job


def _layers_of(rs, key: str) -> set[str]:
    st = rs.status(key)
    out: set[str] = set()
    for rows in st.loc[st["status"] == "done", "rows"]:
        out |= set(json.loads(rows or "{}").get("layers", {}))
    return out


def test_scale_run_closes_roads_at_incidents_and_reruns_only_the_scenario(whole, tmp_path):
    """``scale run relief_scenario --use-incidents``: roads at an open road_blocked incident
    close in its part; an incident reported later reruns the scenario's parts, while the
    coverage run of the same workspace skips every part."""
    from click.testing import CliRunner

    from geo_mz.cli import main

    path, _, _, _ = whole
    ws_path = tmp_path / "ws.gpkg"
    shutil.copy(path, ws_path)

    out = str(tmp_path / "out")

    def run(job: str, *extra: str):
        args = ["scale", "run", job, "--workspace", str(ws_path), "--by", "town", "--codes",
                ",".join(CODES), "--workers", "0", "--out", out, *extra]  # fmt: skip
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0, res.output
        said.append(res.output)
        return open_run_store(tmp_path / "out" / "runs.gpkg").status()

    said: list[str] = []

    _report_incident(ws_path, 1)
    run("coverage")
    st = run("relief_scenario", "--use-incidents")
    done = st[st["run_key"].str.startswith("relief_scenario-") & (st["status"] == "done")]
    closed = {r.part: json.loads(r.rows)["info"]["closed_edges"] for r in done.itertuples()}
    assert closed[CODES[0]] > 0  # the incident's road is closed in its part
    _report_incident(ws_path, 2)  # reported later on the live map
    assert "data changed since" not in said[-1]  # the first run of its kind
    st2 = run("relief_scenario", "--use-incidents")
    new = st2[~st2["run_key"].isin(set(st["run_key"]))]
    assert set(new.loc[new["status"] == "done", "part"]) == set(CODES)  # computed again
    first = next(k for k in st["run_key"] if k.startswith("relief_scenario-"))
    assert f"data changed since the same run {first} (incidents edited)" in said[-1]
    st3 = run("coverage")
    assert set(st3["run_key"]) == set(st2["run_key"])  # coverage: the same run, parts skipped
    run("relief_scenario", "--use-incidents")  # again: every part skipped, nothing to explain
    assert "data changed since" not in said[-1]
    # scale status tells which runs' data changed since, and how.
    res = CliRunner().invoke(main, ["scale", "status", "--store", out + "/runs.gpkg"])
    assert res.exit_code == 0, res.output
    blocks = {b.split()[0]: b for b in res.output.split("\n") if b and not b.startswith(" ")}
    lines = res.output.splitlines()
    after = {lines[i].split()[0]: lines[i + 1] for i in range(len(lines) - 1)
             if not lines[i].startswith(" ")}  # fmt: skip
    second = next(iter(new["run_key"]))
    cov = next(k for k in st["run_key"] if k.startswith("coverage-"))
    assert set(blocks) == {first, second, cov}
    assert "data changed since: incidents edited" in after[first]
    assert "data unchanged since" in after[second] and "data unchanged since" in after[cov]
    assert "not compared" not in res.output
    # The workspace the runs recorded moved away: said, not passed over.
    ws_path.rename(tmp_path / "moved.gpkg")
    res = CliRunner().invoke(main, ["scale", "status", "--store", out + "/runs.gpkg"])
    assert res.exit_code == 0, res.output
    assert "data unchanged" not in res.output and "3 run(s) not compared" in res.output
    # Without a scenario command the flag is refused where it has no effect.
    res = CliRunner().invoke(main, ["scale", "run", "coverage", "--workspace", str(ws_path),
                                    "--use-incidents", "--workers", "0"])  # fmt: skip
    assert res.exit_code == 2 and "--use-incidents" in res.output

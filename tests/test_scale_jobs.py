"""``geo-mz scale run <job>`` for the jobs whose parts' rows need a join when gathered.

Rings pieces are joined into one row per ring, the evacuation's flows and shelter loads are
gathered as ``gather_evacuation`` does, and a relief scenario with closure areas runs. Two small
street parts of the sample keep each run to seconds.
"""

from __future__ import annotations

import json
import shutil

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from click.testing import CliRunner

from geo_mz.cli import main
from geo_mz.core.workspaces import open_workspace
from geo_mz.scale.partition_evacuation import (
    evacuation_far,
    evacuation_far_reduce,
    evacuation_second,
    far_bound,
)
from geo_mz.scale.partition_shelters import FAR_M, evacuation_part, gather_evacuation
from geo_mz.scale.partition_twopass import concat_frames
from geo_mz.scale.province import job_options
from geo_mz.scale.runner import parts_of
from geo_mz.scale.store import open_run_store

CODES = "440703002,440703005"  # two street parts (街道)


@pytest.fixture(scope="module")
def ws_copy(sample_ws, tmp_path_factory):
    path = tmp_path_factory.mktemp("jobs") / "ws.gpkg"
    shutil.copy(sample_ws.path, path)
    return path


def _run(ws_copy, out, job: str, *extra: str):
    args = ["scale", "run", job, "--workspace", str(ws_copy), "--by", "town",
            "--codes", CODES, "--workers", "0", "--out", str(out), *extra]  # fmt: skip
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    return res


def test_rings_gather_to_one_row_per_ring(ws_copy, tmp_path):
    _run(ws_copy, tmp_path, "rings")
    rings = pyogrio.read_dataframe(tmp_path / "scale_rings.gpkg", layer="rings_rings")
    assert sorted(rings["ring"]) == ["0-5 min", "10-15 min", "5-10 min"]
    assert "part" not in rings.columns
    # The parts' pieces (in the store) add up to the joined rings (they meet along borders).
    runs = open_run_store(tmp_path / "runs.gpkg").runs()
    key = str(runs.loc[runs["job"] == "rings", "run_key"].iloc[-1])
    pieces = open_run_store(tmp_path / "runs.gpkg").gather(key, "rings")
    assert sorted(pieces["part"].unique()) == sorted(CODES.split(","))
    by_ring = pieces.groupby("ring")["area_m2"].sum()
    for r in rings.itertuples():
        assert r.area_m2 == pytest.approx(by_ring[r.ring], rel=1e-6)
    # The figure: area within 15 min of a centre, per part, in km².
    table = pd.read_csv(tmp_path / "scale_rings_parts.csv", dtype={"part": str})
    assert (table["kpi_name"] == "area_15min_km2").all()
    assert table["kpi"].sum() == pytest.approx(rings["area_m2"].sum() / 1e6, rel=1e-6)


def test_evacuation_gathers_as_gather_evacuation(ws_copy, tmp_path):
    _run(ws_copy, tmp_path, "evacuation")
    got = {
        n: pyogrio.read_dataframe(tmp_path / "scale_evacuation.gpkg", layer=f"evacuation_{n}")
        for n in ("load", "lines", "unassigned")
    }
    # The same parts computed here, one after the other (both passes), and joined by
    # gather_evacuation.
    ws = open_workspace(str(ws_copy))
    opts = job_options("evacuation", ws, "town")
    parts = parts_of(ws.read("admin_units"), "town", codes=CODES.split(","))
    shared = evacuation_far_reduce(concat_frames([evacuation_far(ws, p, **opts)[0] for p in parts]))
    frames = [evacuation_second(ws, p, shared=shared, **opts)[0] for p in parts]
    # Two of the district's towns hold only some of its cells: pass 2 assumed FAR_M, as the
    # single pass does, and gives its rows.
    assert far_bound(ws, shared) == (FAR_M, "assumed")
    single = [evacuation_part(ws, p, **opts)[0] for p in parts]
    for f, g in zip(frames, single, strict=True):
        pd.testing.assert_frame_equal(f["lines"], g["lines"])
    order = ws.read("shelters")["shelter_id"].astype(str).tolist()
    want = gather_evacuation(frames, opts["measure_crs"], shelter_order=order)
    assert got["load"]["shelter_id"].tolist() == want["load"]["shelter_id"].tolist()
    assert got["load"]["assigned_persons"].tolist() == want["load"]["assigned_persons"].tolist()
    assert not got["load"]["shelter_id"].duplicated().any()
    cols = ["line_id", "source_id", "adcode", "shelter_id", "persons"]
    pd.testing.assert_frame_equal(
        got["lines"][cols].reset_index(drop=True), want["lines"][cols].reset_index(drop=True),
        check_dtype=False,
    )  # fmt: skip
    assert np.allclose(got["lines"]["walk_min"], want["lines"]["walk_min"], rtol=1e-12)
    un_cols = ["unassigned_id", "adcode", "reason", "persons_unassigned"]
    pd.testing.assert_frame_equal(
        got["unassigned"][un_cols].reset_index(drop=True),
        pd.DataFrame(want["unassigned"][un_cols]).reset_index(drop=True),
        check_dtype=False,
    )
    # The figure: the share of each part's people placed, out of all its people (an
    # independent count: the population cells of the part).
    table = pd.read_csv(tmp_path / "scale_evacuation_parts.csv", dtype={"part": str})
    pop = ws.read("population")
    for r in table.itertuples():
        lines, un = got["lines"], got["unassigned"]
        placed = lines.loc[lines["adcode"].str.startswith(r.part), "persons"].sum()
        people = pop.loc[pop["adcode"].str.startswith(r.part), "pop_total"].sum()
        left = un.loc[un["adcode"].str.startswith(r.part), "persons_unassigned"].sum()
        assert placed + left == pytest.approx(people)
        assert r.kpi == pytest.approx(placed / people, rel=1e-12)


def test_evacuation_over_every_part_measures_the_bound(ws_copy, tmp_path):
    # Every town of the district: pass 1 measured every cell, pass 2 used the measured bound
    # (and a first cut sized from it), recorded in each part's figures.
    args = ["scale", "run", "evacuation", "--workspace", str(ws_copy), "--by", "town",
            "--workers", "0", "--out", str(tmp_path)]  # fmt: skip
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    rs = open_run_store(tmp_path / "runs.gpkg")
    runs = rs.runs()
    assert sorted(runs["job"]) == ["evacuation:1", "evacuation:2"]
    key = str(runs.loc[runs["job"] == "evacuation:2", "run_key"].iloc[-1])
    infos = [json.loads(r)["info"] for r in rs.status(key)["rows"]]
    assert {i["far_source"] for i in infos} == {"measured"}
    assert 0 < infos[0]["far_m"] < FAR_M
    table = pd.read_csv(tmp_path / "scale_evacuation_parts.csv", dtype={"part": str})
    assert (table["status"] == "done").all() and len(table) == len(infos)


def test_relief_scenario_with_closure_areas(ws_copy, tmp_path):
    ws = open_workspace(str(ws_copy))
    crs = ws.metadata["measure_crs"]
    # Close the streets within 600 m of the first part's first village centre.
    units = ws.read("admin_units")
    village = units[(units["level"] == "village") & units["adcode"].str.startswith("440703002")]
    centre = village.to_crs(crs).geometry.iloc[0].representative_point()
    area = gpd.GeoDataFrame(
        {"name": ["closed"]}, geometry=[shapely.buffer(centre, 600.0)], crs=crs
    ).to_crs("EPSG:4490")
    closures = tmp_path / "closed.geojson"
    area.to_file(closures, driver="GeoJSON")
    _run(ws_copy, tmp_path, "relief_scenario", "--closures", str(closures))
    scen = pyogrio.read_dataframe(tmp_path / "scale_relief_scenario.gpkg",
                                  layer="relief_scenario_scenario")  # fmt: skip
    assert set(scen["part"]) == set(CODES.split(","))
    st = open_run_store(tmp_path / "runs.gpkg").status()
    done = st[st["run_key"].str.startswith("relief_scenario-") & (st["status"] == "done")]
    closed = {r.part: json.loads(r.rows)["info"]["closed_edges"] for r in done.itertuples()}
    assert closed["440703002"] > 0  # the closure reached the part's network
    table = pd.read_csv(tmp_path / "scale_relief_scenario_parts.csv", dtype={"part": str})
    per_point = scen.groupby(["part", "point_id"])["meets"].all().groupby(level=0).mean()
    for r in table.itertuples():
        assert r.kpi == pytest.approx(per_point[r.part])
    # The closure file edited in place keys a new run: its parts are computed, not skipped.
    keys = set(st["run_key"])
    bigger = area.to_crs(crs).buffer(900.0).to_crs("EPSG:4490")
    gpd.GeoDataFrame({"name": ["closed"]}, geometry=bigger.values).to_file(
        closures, driver="GeoJSON"
    )
    _run(ws_copy, tmp_path, "relief_scenario", "--closures", str(closures))
    st2 = open_run_store(tmp_path / "runs.gpkg").status()
    new = st2[~st2["run_key"].isin(keys) & st2["run_key"].str.startswith("relief_scenario")]
    assert set(new.loc[new["status"] == "done", "part"]) == set(CODES.split(","))
    # Without a disruption there is no scenario to run; scenario options elsewhere are refused.
    args = ["scale", "run", "relief_scenario", "--workspace", str(ws_copy), "--by", "town",
            "--codes", CODES, "--workers", "0", "--out", str(tmp_path / "none")]  # fmt: skip
    res = CliRunner().invoke(main, args)
    assert res.exit_code != 0 and "--closures" in res.output
    args[2] = "coverage"
    res = CliRunner().invoke(main, [*args, "--closures", str(closures)])
    assert res.exit_code == 2 and "--closures" in res.output

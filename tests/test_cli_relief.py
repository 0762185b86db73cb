"""``geo-mz relief ...`` and ``geo-mz shelters ...`` on the sample workspace, as users run them."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
from click.testing import CliRunner

from geo_mz.cli import main
from geo_mz.demo import sample_workspace
from geo_mz.network.disruption import synthetic_flood_raster


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ws")
    w, sample, _ = sample_workspace(folder / "pengjiang.gpkg")
    units = sample.layers["admin_units"]
    district = units[(units["level"] == "county") & units["in_jurisdiction"].fillna(False)]
    synthetic_flood_raster(sample.layers["water"], district, folder / "flood.tif")
    return w.path


def test_audit_writes_layers_sheets_and_map(ws: Path, tmp_path: Path):
    res = invoke("relief", "audit", "--workspace", str(ws), "--out", str(tmp_path))
    assert res.exit_code == 0, res.output
    assert "3小时" in res.output and "5小时" in res.output  # the workspace's own plan targets
    layers = set(pyogrio.list_layers(tmp_path / "relief.gpkg")[:, 0])
    assert {"relief_audit", "relief_routes"} <= layers
    audit = gpd.read_file(tmp_path / "relief.gpkg", layer="relief_audit")
    assert set(audit["target"]) == {"county_5h", "township_3h"}
    assert (audit.loc[audit["meets"], "margin_min"] >= 0).all()
    with pd.ExcelFile(tmp_path / "relief.xlsx") as xl:
        assert {"指标 KPIs", "镇街 towns", "核查 audit"} <= set(xl.sheet_names)
        towns = pd.read_excel(xl, sheet_name="镇街 towns")
    assert len(towns) == 6 * 2  # six towns, two targets
    html = (tmp_path / "relief_map.html").read_text(encoding="utf-8")
    assert "救灾物资送达时间核查" in html  # the audit layer, titled from its spec
    report = (tmp_path / "relief_report.html").read_text(encoding="utf-8")
    assert 'href="relief_map.html"' in report and "Relief delivery per town" in report


def test_flood_scenario_lists_what_changed(ws: Path, tmp_path: Path):
    flood = ws.parent / "flood.tif"
    res = invoke(
        "relief", "scenario", "--workspace", str(ws), "--out", str(tmp_path), "--flood", str(flood)
    )
    assert res.exit_code == 0, res.output
    changes = gpd.read_file(tmp_path / "scenario.gpkg", layer="relief_changes")
    closures = gpd.read_file(tmp_path / "scenario.gpkg", layer="road_closures")
    assert len(closures) > 0 and set(closures["effect"]) <= {"closed", "slowed"}
    assert len(changes) > 0
    assert set(changes["change"]) <= {"cut_off", "falls_out", "slower", "recovered", "faster"}
    cut = changes[changes["change"] == "cut_off"]
    assert cut["time_after_min"].isna().all() and cut["time_before_min"].notna().all()


def test_closed_road_ids_and_bad_ids(ws: Path, tmp_path: Path):
    roads = gpd.read_file(ws, layer="roads")
    bridges = roads.loc[roads["bridge"].astype(bool), "road_id"].tolist()
    res = invoke(
        "relief",
        "scenario",
        "--workspace",
        str(ws),
        "--out",
        str(tmp_path),
        "--close-roads",
        ",".join(bridges),
    )
    assert res.exit_code == 0, res.output
    bad = invoke(
        "relief", "scenario", "--workspace", str(ws), "--out", str(tmp_path), "--close-roads", "X1"
    )
    assert bad.exit_code == 2 and "X1" in bad.output
    none = invoke("relief", "scenario", "--workspace", str(ws), "--out", str(tmp_path))
    assert none.exit_code == 2 and "--flood" in none.output


def test_preposition_and_plan(ws: Path, tmp_path: Path):
    flood = ws.parent / "flood.tif"
    res = invoke(
        "relief", "preposition", "--workspace", str(ws), "--out", str(tmp_path), "--flood",
        str(flood), "--k", "2",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    sites = gpd.read_file(tmp_path / "preposition.gpkg", layer="proposed_stores")
    assert len(sites) >= 1 and sites["rank"].tolist() == list(range(1, len(sites) + 1))
    plan = invoke(
        "relief", "plan", "--workspace", str(ws), "--out", str(tmp_path), "--towns", "440703005",
        "--time-limit", "0.5",
    )  # fmt: skip
    assert plan.exit_code == 0, plan.output
    stops = gpd.read_file(tmp_path / "plan.gpkg", layer="delivery_stops")
    assert len(stops) > 0 and (stops["kits"] > 0).all()
    nothing = invoke("relief", "plan", "--workspace", str(ws), "--out", str(tmp_path))
    assert nothing.exit_code == 2 and "--towns" in nothing.output


def test_shelter_commands(ws: Path, tmp_path: Path):
    res = invoke("shelters", "adequacy", "--workspace", str(ws), "--out", str(tmp_path))
    assert res.exit_code == 0, res.output
    assert "≥ 15.0" in res.output and "5.3 %" in res.output  # fixed capacity vs the 15 % rule
    units = gpd.read_file(tmp_path / "shelters.gpkg", layer="shelter_units")
    assert {"town", "village"} <= set(units["level"])
    ev = invoke(
        "shelters", "evacuate", "--workspace", str(ws), "--out", str(tmp_path), "--unit", "villages"
    )
    assert ev.exit_code == 0, ev.output
    load = gpd.read_file(tmp_path / "evacuation.gpkg", layer="shelter_load")
    assert (load["assigned_persons"] <= load["capacity_persons"]).all()
    assert load["assigned_persons"].sum() > 0

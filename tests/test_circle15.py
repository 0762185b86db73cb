"""The 15-minute circle job end to end on the Pengjiang sample: tables, files, CLI."""

from pathlib import Path

import geopandas as gpd
import openpyxl
import pyogrio
import pytest
from click.testing import CliRunner

from geo_mz.cli import main
from geo_mz.core.errors import GeoMzError
from geo_mz.core.workspace import Workspace
from geo_mz.datasets.pengjiang import build_pengjiang
from geo_mz.eldercare.circle15 import (
    CircleSettings,
    analyse_circle,
    output_layers,
    propose_sites,
    report_tables,
    siting_kpis,
)
from geo_mz.outputs.eldercare import write_circle_outputs


@pytest.fixture(scope="module")
def layers() -> dict[str, gpd.GeoDataFrame]:
    return build_pengjiang().layers


@pytest.fixture(scope="module")
def result(layers):
    return analyse_circle(layers)


@pytest.fixture(scope="module")
def sites(layers, result):
    return propose_sites(layers, result, k=3)


def test_tables_add_up(result):
    towns, villages = result.table_towns, result.table_villages
    assert (towns["level"] == "town").sum() == 6 and (villages["level"] == "village").sum() == 139
    for table in (towns, villages):
        total = table[table["level"] == "total"].iloc[0]
        assert total["pop_60plus"] == pytest.approx(83_000)
        body = table[table["level"] != "total"]
        assert body["covered_15min"].sum() == pytest.approx(total["covered_15min"])
    # both levels count the same covered people
    assert towns.iloc[-1]["covered_15min"] == pytest.approx(villages.iloc[-1]["covered_15min"])
    assert set(result.centres["kind"]) <= set(CircleSettings().kinds)


def test_capacity_never_adds_coverage(layers, result):
    towns = result.table_towns
    assert (towns["share_capacity_adj"] <= towns["share_15min"] + 1e-12).all()
    short = layers["elder_care"].copy()
    short["places"] = short["places"].where(short["kind"] != "town_centre", 1)
    tight = analyse_circle({**layers, "elder_care": short})
    assert tight.table_towns.iloc[-1]["share_capacity_adj"] < towns.iloc[-1]["share_capacity_adj"]
    assert tight.table_towns.iloc[-1]["share_15min"] == towns.iloc[-1]["share_15min"]


def test_faster_walkers_are_covered_more(layers, result):
    quick = analyse_circle(layers, CircleSettings(walk_speed_kmh=4.0))
    assert quick.table_towns.iloc[-1]["share_15min"] > result.table_towns.iloc[-1]["share_15min"]


def test_sites_add_coverage(result, sites):
    assert list(sites["rank"]) == [1, 2, 3]
    assert (sites["gain_pop_60plus"] > 0).all()
    gains = sites["gain_pop_60plus"].to_numpy()
    assert (gains[:-1] >= gains[1:] - 1e-9).all()
    kpi = {k.label_en: k for k in siting_kpis(sites, result)}
    before = result.table_towns.iloc[-1]["share_15min"] * 100
    assert kpi["15-min share with the new centres"].value > before


def test_outputs_follow_their_specs(tmp_path: Path, layers, result, sites):
    outs = output_layers(result, sites)
    assert set(outs) == {"coverage_units", "isochrones", "coverage_gaps", "proposed_sites"}
    paths = write_circle_outputs(tmp_path, layers, result, sites)
    names = {str(n) for n in pyogrio.list_layers(paths["gpkg"])[:, 0]}
    assert names == set(outs)
    back = gpd.read_file(paths["gpkg"], layer="coverage_units")
    assert len(back) == 6 + 139 and back.crs.to_epsg() == 4490
    book = openpyxl.load_workbook(paths["xlsx"], read_only=True)
    assert {"指标 KPIs", "镇街 towns", "村居 villages", "缺口 gaps", "选址 sites"} <= set(
        book.sheetnames
    )
    header = [c.value for c in next(book["镇街 towns"].iter_rows(max_row=1))]
    assert "15分钟覆盖率 Share within 15 min" in header
    assert paths["map"].stat().st_size > 10_000
    tables = report_tables(result, sites)
    assert tables[0].rows[-1][0] == "合计 total" and len(tables[0].rows) == 7


def test_missing_layers_are_named():
    with pytest.raises(GeoMzError, match="roads"):
        analyse_circle({})


def test_cli_coverage_and_siting(tmp_path: Path, layers):
    minx, miny, maxx, maxy = layers["admin_units"].total_bounds
    ws = Workspace.create(
        tmp_path / "w.gpkg",
        name="江门市蓬江区",
        adcode="440703",
        bounds=(minx - 0.05, miny - 0.05, maxx + 0.05, maxy + 0.05),
    )
    keep = ("roads", "population", "elder_care", "admin_units", "place_names", "water")
    ws.write_layers({k: layers[k] for k in keep}, {k: {"synthetic": True} for k in keep})
    runner = CliRunner()
    res = runner.invoke(
        main,
        ["coverage", "--workspace", str(ws.path), "--out", str(tmp_path / "cov")],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    assert "15" in res.stdout and (tmp_path / "cov" / "coverage.xlsx").is_file()
    res = runner.invoke(
        main,
        ["siting", "--workspace", str(ws.path), "--out", str(tmp_path / "site"), "--k", "2"],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "site" / "siting_map.html").is_file() and " 2. " in res.stdout
    res = runner.invoke(
        main,
        [
            "coverage",
            "--workspace",
            str(ws.path),
            "--out",
            str(tmp_path / "x"),
            "--kinds",
            "spaceship",
        ],
    )
    assert res.exit_code == 2 and "spaceship" in res.stderr

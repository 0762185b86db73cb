"""geo-mz init (any district by code), geo-mz info readiness, and units completed from codes."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner

from geo_mz.cli import main
from geo_mz.core import complete_units, unit_register
from geo_mz.core.readiness import readiness
from geo_mz.datasets.district import (
    DistrictError,
    district_units,
    init_district,
    load_plan_targets,
    lookup_code,
)
from geo_mz.relief import workspace_targets

REPO = Path(__file__).resolve().parents[1]


def _sz_districts(shared_data: Path) -> gpd.GeoDataFrame:
    return gpd.read_file(shared_data / "real_shenzhen" / "sz_districts_transbigdata.json")


# --------------------------------------------------------------------------- the code table


def test_lookup_finds_counties_cities_and_towns_with_their_parents():
    lg = lookup_code("440307")
    assert (lg.name, lg.full_name, lg.level) == ("龙岗区", "广东省深圳市龙岗区", "county")
    assert lookup_code("440300").level == "city"
    town = lookup_code("440307003")
    assert town.level == "town" and town.full_name.startswith("广东省深圳市龙岗区")
    # municipalities: the province is the city ("市辖区" is not a name)
    assert lookup_code("110101").full_name == "北京市东城区"


@pytest.mark.parametrize("code", ["44030", "4403070", "abc", "440399"])
def test_bad_or_unknown_codes_are_named_errors(code):
    with pytest.raises(DistrictError, match=code):
        lookup_code(code)


def test_gazetteer_units_below_a_county_match_the_shipped_tables():
    units = district_units(lookup_code("440307"))
    towns = pd.read_csv(REPO / "layers/sample/streets.csv", dtype=str)
    assert set(units.loc[units.level == "town", "adcode"]) == set(
        towns.loc[towns.areaCode == "440307", "code"]
    )
    vil = units[units.level == "village"]
    assert len(vil) > 100 and (vil["adcode"].str.len() == 12).all()
    assert (vil["parent_adcode"] == vil["adcode"].str[:9]).all()


# --------------------------------------------------------------------------- plan targets


def test_plan_targets_template_is_the_national_default_and_a_copy_can_change_it(tmp_path):
    meta, source = load_plan_targets()
    targets = workspace_targets(meta)
    assert {(t.level, t.hours) for t in targets} == {("county", 6.0), ("city", 8.0)}
    assert "template" in source
    text = (REPO / "layers/rules/plan_targets.toml").read_text(encoding="utf-8")
    local = text.replace('level = "city"\nhours = 8.0', 'level = "township"\nhours = 3.0')
    local = local.replace("hours = 6.0", "hours = 5.0")
    (tmp_path / "plan.toml").write_text(local, encoding="utf-8")
    meta, _ = load_plan_targets(tmp_path / "plan.toml")
    assert {(t.level, t.hours) for t in workspace_targets(meta)} == {
        ("county", 5.0),
        ("township", 3.0),
    }
    (tmp_path / "bad.toml").write_text('[[relief]]\nlevel = "county"\nhours = -1\n')
    with pytest.raises(DistrictError, match="hours"):
        load_plan_targets(tmp_path / "bad.toml")


# --------------------------------------------------------------------------- init


def test_init_from_the_bureaus_boundary_file(shared_data, tmp_path):
    """龙岗 from the real Shenzhen district file (names, not codes): area, register, GK zone."""
    ws, report = init_district(
        "440307",
        tmp_path / "lg.gpkg",
        boundary=shared_data / "real_shenzhen" / "sz_districts_transbigdata.json",
        code_field="qh",
        neighbours=False,
    )
    src = _sz_districts(shared_data)
    expected_km2 = src[src.qh == "龙岗"].to_crs("EPSG:4547").area.sum() / 1e6
    assert report.area_km2 == pytest.approx(expected_km2, rel=1e-6)
    assert 350 < report.area_km2 < 420  # without 大鹏新区 (≈ 388 km² in this source)
    assert report.measure_crs == "EPSG:4547"  # CM 114°E
    au = ws.read("admin_units")
    assert list(au["adcode"]) == ["440307"] and bool(au["in_jurisdiction"].iloc[0])
    reg = unit_register(ws.metadata)
    assert reg is not None and (reg["level"] == "town").sum() == report.towns == 14
    assert ws.metadata["name"] == "广东省深圳市龙岗区"


def test_init_from_national_polygons_with_neighbours(echarts_counties, tmp_path):
    _, counties = echarts_counties
    ws, report = init_district("440307", tmp_path / "lg.gpkg", counties=counties)
    au = ws.read("admin_units")
    neigh = au[~au["in_jurisdiction"].astype(bool)]
    assert report.neighbours == len(neigh) >= 4
    assert {"440304", "440310"} <= set(neigh["adcode"])  # 福田, 坪山 touch 龙岗
    assert "npm echarts" in report.boundary_source and report.notes  # accuracy said
    own = au[au["adcode"] == "440307"].to_crs("EPSG:4547").area.iloc[0] / 1e6
    assert own == pytest.approx(report.area_km2)


def test_init_never_replaces_or_half_writes(shared_data, tmp_path):
    out = tmp_path / "lg.gpkg"
    boundary = shared_data / "real_shenzhen" / "sz_districts_transbigdata.json"
    init_district("440307", out, boundary=boundary, code_field="qh", neighbours=False)
    before = out.read_bytes()
    with pytest.raises(DistrictError, match="exists"):
        init_district("440307", out, boundary=boundary, code_field="qh", neighbours=False)
    with pytest.raises(DistrictError, match="--code-field"):  # 10 features, no field named
        init_district("440307", out, boundary=boundary, neighbours=False, overwrite=True)
    assert out.read_bytes() == before
    with pytest.raises(DistrictError, match="no row"):
        init_district("440703", tmp_path / "x.gpkg", boundary=boundary, code_field="qh",
                      neighbours=False)  # fmt: skip
    assert not (tmp_path / "x.gpkg").exists()
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_init_with_town_polygons(shared_data, tmp_path):
    """Town polygons from the bureau: cut the real district into 3 coded towns."""
    src = _sz_districts(shared_data)
    lg = src[src.qh == "龙岗"].to_crs("EPSG:4547").geometry.iloc[0]
    x0, _, x1, _ = lg.bounds
    cuts = np.linspace(x0, x1, 4)
    codes = ["440307003", "440307004", "440307005"]
    parts = [lg.intersection(shapely.box(a, -1e9, b, 1e9)) for a, b in itertools.pairwise(cuts)]
    towns = gpd.GeoDataFrame({"code": codes}, geometry=parts, crs="EPSG:4547").to_crs(4326)
    towns.to_file(tmp_path / "towns.geojson")
    ws, report = init_district(
        "440307",
        tmp_path / "lg.gpkg",
        boundary=shared_data / "real_shenzhen" / "sz_districts_transbigdata.json",
        code_field="qh",
        units=tmp_path / "towns.geojson",
        neighbours=False,
    )
    assert report.unit_polygons == {"town": 3}
    au = ws.read("admin_units")
    t = au[au.level == "town"].set_index("adcode")
    assert list(t.index) == codes and (t["parent_adcode"] == "440307").all()
    assert t.loc["440307003", "name"] == "平湖街道"  # named from the gazetteer
    bad = towns.assign(code=["440308001", "440307004", "x"])
    bad.to_file(tmp_path / "bad.geojson")
    with pytest.raises(DistrictError, match="440308001"):
        init_district("440307", tmp_path / "b.gpkg", units=tmp_path / "bad.geojson",
                      boundary=shared_data / "real_shenzhen" / "sz_districts_transbigdata.json",
                      code_field="qh", neighbours=False)  # fmt: skip


def test_cli_init_and_info_say_what_each_analysis_needs(shared_data, tmp_path):
    out = tmp_path / "lg.gpkg"
    boundary = shared_data / "real_shenzhen" / "sz_districts_transbigdata.json"
    run = CliRunner().invoke(
        main,
        ["init", "--code", "440307", "--out", str(out), "--boundary", str(boundary),
         "--code-field", "qh", "--no-neighbours"],
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    assert "广东省深圳市龙岗区" in run.output and "EPSG:4547" in run.output
    info = CliRunner().invoke(main, ["info", str(out)])
    assert info.exit_code == 0, info.output
    assert "coverage" in info.output and "道路 ✗" in info.output
    assert "geo-mz import" in info.output  # the next command is named
    data = json.loads(CliRunner().invoke(main, ["info", str(out), "--json"]).output)
    assert data["readiness"]["coverage"]["ready"] is False
    assert data["readiness"]["boundaries"]["ready"] is True
    tmpl = CliRunner().invoke(main, ["init", "--targets-template"])
    assert tmpl.exit_code == 0 and "[[relief]]" in tmpl.output
    bad = CliRunner().invoke(main, ["init", "--code", "449999", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "449999" in bad.output


def test_readiness_of_the_sample_is_complete(sample_ws):
    ready = {r.analysis: r for r in readiness(sample_ws)}
    assert all(r.ready for r in ready.values())
    present = {n.layer: ok for n, ok, _ in ready["coverage"].present}
    assert present["units:village"] and present["population"]


# --------------------------------------------------------------------------- units from codes


def _district_and_points(pengjiang_layers):
    au = pengjiang_layers["admin_units"]
    county = au[au.level == "county"]
    county = county[county["in_jurisdiction"].astype(bool)]
    towns = au[au.level == "town"]
    return county, towns


def test_villages_are_approximated_from_their_seats_inside_their_towns(pengjiang_layers):
    county, towns = _district_and_points(pengjiang_layers)
    seats = pengjiang_layers["place_names"]
    seats = seats[seats["category"] == "village_seat"]
    layers = {"admin_units": pd.concat([county, towns]), "place_names": seats}
    out, notes = complete_units(layers)
    au = out["admin_units"]
    vil = au[au.level == "village"]
    assert len(vil) == seats["adcode"].nunique() and vil["approximate"].all()
    assert not au[au.level != "village"]["approximate"].any()
    assert any("Voronoi" in n for n in notes)
    # each cell lies in its own town, and the cells of a town tile it (areas add up)
    metric = "EPSG:4547"
    for code, group in vil.groupby("parent_adcode"):
        town = towns[towns.adcode == code].to_crs(metric).geometry.iloc[0]
        cells = group.to_crs(metric)
        assert cells.area.sum() == pytest.approx(town.area, rel=1e-5)
        assert (cells.geometry.buffer(1.0).within(town.buffer(2.0))).all()
    # every seat lies in its own cell
    joined = gpd.sjoin(seats[["adcode", "geometry"]], vil[["adcode", "geometry"]], how="left")
    assert (joined["adcode_left"] == joined["adcode_right"]).mean() > 0.97
    assert layers["admin_units"].equals(pd.concat([county, towns]))  # inputs untouched


def test_towns_from_population_by_code_and_nothing_invented(pengjiang_layers):
    county, towns = _district_and_points(pengjiang_layers)
    pop = pengjiang_layers["population"]
    out, _ = complete_units({"admin_units": county, "population": pop})
    got = out["admin_units"]
    t = got[got.level == "town"]
    assert set(t["adcode"]) == set(pop["adcode"].astype(str).str[:9])
    # Voronoi towns of population cells agree with the true towns on most of the area
    metric = "EPSG:4547"
    true = towns.set_index("adcode").to_crs(metric)
    approx = t.set_index("adcode").to_crs(metric)
    overlap = sum(true.geometry[c].intersection(approx.geometry[c]).area for c in approx.index)
    assert overlap / true.area.sum() > 0.9
    # no coded points: the level stays absent and the note says so
    out, notes = complete_units({"admin_units": county})
    assert set(out["admin_units"]["level"]) == {"county"}
    assert any("no polygons and no points" in n for n in notes)

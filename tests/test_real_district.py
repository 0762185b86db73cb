"""A real district brought in as a bureau would: init → OSM roads → shelter list → population.

Real files (../shared/data): the raw OSM export of central 龙岗 (ways unsplit), Shenzhen's 462
shelters (GCJ-02, id + lon/lat only), Shenzhen's district polygons, and 331 Beijing town
polygons with their WorldPop counts. Each step goes through the command line; the figures are
checked against independent geopandas computations.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from geo_mz.cli import main
from geo_mz.core import Workspace, complete_units
from geo_mz.core.projection import gcj02_to_wgs84
from geo_mz.eldercare import CircleSettings, analyse_circle
from geo_mz.network import network_from_roads

pytestmark = pytest.mark.slow


def _run(*args: str) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def longgang(shared_data, tmp_path_factory) -> tuple[Path, Path]:
    """The 龙岗 workspace after init, OSM roads, the clipped shelter list and population."""
    sz = shared_data / "real_shenzhen"
    d = tmp_path_factory.mktemp("longgang")
    ws = d / "lg.gpkg"
    _run(
        "init",
        "--code",
        "440307",
        "--out",
        ws,
        "--boundary",
        sz / "sz_districts_transbigdata.json",
        "--code-field",
        "qh",
        "--no-neighbours",
    )
    _run("import", sz / "longgang_osm_map.osm", "--layer", "roads", "--workspace", ws)
    _run(
        "import",
        sz / "sz_shelters_gcj02_raw.csv",
        "--layer",
        "shelters",
        "--workspace",
        ws,
        "--source-crs",
        "gcj02",
        "--clip",
        "--default",
        "shelter_id=auto",
        "--default",
        "name=应急避难场所",
        "--default",
        "shelter_class=III",
        "--default",
        "effective_area_m2=2000",
        "--default",
        "capacity_persons=1000",
    )
    # district totals (illustrative figures, not an official statistic)
    (d / "pop.csv").write_text(
        "adcode,户籍人口,60岁以上人口\n440307,3979037,218000\n", encoding="utf-8"
    )
    _run("import", d / "pop.csv", "--layer", "population", "--workspace", ws, "--by-unit",
         "--level", "county", "--cell-m", "200")  # fmt: skip
    return ws, sz


def test_osm_roads_make_one_walking_network(longgang):
    ws, _ = longgang
    roads = Workspace(ws).read("roads")
    net = network_from_roads(roads, mode="walk")
    total = net.n_nodes + int(net.dropped.get("nodes", 0))
    # read unsplit, the same ways kept 11 nodes; split at junctions most are one network
    assert net.n_nodes > 500 and net.n_nodes >= 0.85 * total


def test_shelter_list_clipped_to_the_district_after_gcj02_conversion(longgang):
    ws, sz = longgang
    stored = Workspace(ws).read("shelters")
    raw = pd.read_csv(sz / "sz_shelters_gcj02_raw.csv")
    lon, lat = gcj02_to_wgs84(raw["longitude"].to_numpy(), raw["latitude"].to_numpy())
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326")
    lg = gpd.read_file(sz / "sz_districts_transbigdata.json")
    lg = lg[lg["qh"] == "龙岗"]
    inside = gpd.sjoin(pts, lg, predicate="within").index  # independent clip
    assert len(stored) == len(inside) and 0 < len(stored) < len(raw)
    assert stored.to_crs(4326).within(lg.geometry.iloc[0].buffer(1e-9)).all()
    assert (stored["capacity_persons"] == 1000).all()
    assert stored["shelter_id"].isin(raw["sid"]).all() and stored["shelter_id"].is_unique


def test_population_by_unit_keeps_the_total_and_stays_near_roads(longgang):
    ws, _ = longgang
    w = Workspace(ws)
    pop = w.read("population")
    assert int(pop["pop_total"].sum()) == 3979037 and int(pop["pop_60plus"].sum()) == 218000
    assert (pop["pop_60plus"] <= pop["pop_total"]).all()
    roads = w.read("roads").to_crs("EPSG:4547")
    dist = gpd.sjoin_nearest(pop.to_crs("EPSG:4547"), roads, distance_col="d")["d"]
    assert dist.max() <= 500.0 + 1e-6


def test_info_then_shelter_adequacy_and_evacuation_on_the_real_district(longgang, tmp_path):
    ws, _ = longgang
    info = json.loads(_run("info", ws, "--json"))
    assert info["readiness"]["shelters"]["ready"] is True
    assert info["readiness"]["coverage"]["ready"] is False  # no elder-care centres yet
    out = _run("shelters", "adequacy", "--workspace", ws, "--out", tmp_path / "sh")
    assert "路网最大连通分量占比" in out
    towns = gpd.read_file(tmp_path / "sh" / "shelters.gpkg", layer="shelter_units")
    assert list(towns["level"]) == ["county"]  # no towns: the district as a whole
    assert towns["population"].sum() == pytest.approx(3979037)
    assert int(towns["n_shelters_inside"].iloc[0]) == len(Workspace(ws).read("shelters"))
    out = _run("shelters", "evacuate", "--workspace", ws, "--out", tmp_path / "ev")
    load = gpd.read_file(tmp_path / "ev" / "evacuation.gpkg", layer="shelter_load")
    lines = gpd.read_file(tmp_path / "ev" / "evacuation.gpkg", layer="evacuation")
    un = gpd.read_file(tmp_path / "ev" / "evacuation.gpkg", layer="evacuation_unassigned")
    assert (load["assigned_persons"] <= load["capacity_persons"]).all()
    assert lines["persons"].sum() == load["assigned_persons"].sum() > 0
    assert lines["persons"].sum() + un["persons_unassigned"].sum() == 3979037


def test_strict_stops_on_a_collapsed_network(longgang, tmp_path, shared_data):
    """The raw ways read as a plain roads layer (not split) collapse; --strict refuses."""
    ws, sz = longgang
    import pyogrio

    lines = pyogrio.read_dataframe(sz / "longgang_osm_map.osm", layer="lines")
    lines = lines[lines["highway"].notna() & lines["highway"].isin(["primary", "secondary",
                  "tertiary", "residential", "footway", "service", "trunk"])]  # fmt: skip
    roads = gpd.GeoDataFrame(
        {"road_id": [f"R{i}" for i in range(len(lines))], "road_class": "residential"},
        geometry=lines.geometry.values, crs=lines.crs,
    )  # fmt: skip
    bad = tmp_path / "bad.gpkg"
    Workspace(ws).read("admin_units")  # the workspace stays as it is
    import shutil

    shutil.copy(ws, bad)
    roads.to_file(tmp_path / "raw_roads.gpkg")
    _run("import", tmp_path / "raw_roads.gpkg", "--layer", "roads", "--workspace", bad)
    run = CliRunner().invoke(
        main, ["shelters", "adequacy", "--workspace", str(bad), "--out", str(tmp_path / "o"),
               "--strict"],
    )  # fmt: skip
    assert run.exit_code == 2
    assert "network quality" in run.output and not (tmp_path / "o").exists()
    # without --strict the results are written, and the map itself carries the warning
    out = _run("shelters", "adequacy", "--workspace", bad, "--out", tmp_path / "o2")
    assert "✗ 路网最大连通分量占比" in out
    page = (tmp_path / "o2" / "shelters_map.html").read_text(encoding="utf-8")
    assert "geo-mz-network-warning" in page and "路网质量不达标" in page
    report = (tmp_path / "o2" / "shelters_report.html").read_text(encoding="utf-8")
    assert "路网最大连通分量占比" in report


# --------------------------------------------------------------------------- Beijing towns


def _norm(name: str) -> str:
    return re.sub(r"(街道|地区|镇|乡)$", "", name)


def test_beijing_district_with_town_polygons_and_population_by_town(shared_data, tmp_path):
    """海淀区 from the 331 real Beijing town polygons: towns matched to their codes by name."""
    tb = gpd.read_file(shared_data / "towns_beijing" / "beijing_township_boundaries.shp")
    counts = np.load(shared_data / "towns_beijing" / "beijing_township_worldpop.npy")[:, 0]
    tb = tb.drop(columns=["geom"]).assign(pop=counts)
    hd = tb[tb["县"] == "海淀区"].copy()
    gaz = pd.read_csv(Path(__file__).parents[1] / "layers/sample/streets.csv", dtype=str)
    gaz = gaz[gaz["areaCode"] == "110108"]
    code_of = {_norm(n): c for c, n in zip(gaz["code"], gaz["name"], strict=True)}
    hd["adcode"] = hd["乡"].map(lambda n: code_of.get(_norm(n)))
    hd = hd[hd["adcode"].notna()]
    assert len(hd) >= 25
    hd[["adcode", "geometry"]].to_file(tmp_path / "towns.gpkg")
    hd.dissolve()[["geometry"]].to_file(tmp_path / "haidian.gpkg")
    ws = tmp_path / "hd.gpkg"
    _run("init", "--code", "110108", "--out", ws, "--boundary", tmp_path / "haidian.gpkg",
         "--units", tmp_path / "towns.gpkg", "--no-neighbours")  # fmt: skip
    table = pd.DataFrame({"adcode": hd["adcode"], "总人口": hd["pop"].round().astype(int)})
    table["60岁以上"] = (table["总人口"] * 0.21).astype(int)
    table.to_csv(tmp_path / "hd_pop.csv", index=False)
    _run("import", tmp_path / "hd_pop.csv", "--layer", "population", "--workspace", ws,
         "--by-unit", "--cell-m", "250")  # fmt: skip
    pop = Workspace(ws).read("population")
    got = pop.groupby("adcode")[["pop_total", "pop_60plus"]].sum().sort_index()
    want = table.set_index("adcode").sort_index()
    assert list(got.index) == list(want.index)
    assert (got["pop_total"].to_numpy() == want["总人口"].to_numpy()).all()  # every town exactly
    assert (got["pop_60plus"].to_numpy() == want["60岁以上"].to_numpy()).all()
    units = Workspace(ws).read("admin_units")
    joined = gpd.sjoin(pop, units[units.level == "town"][["adcode", "geometry"]],
                       predicate="within")  # fmt: skip
    assert (joined["adcode_left"] == joined["adcode_right"]).mean() > 0.999


# --------------------------------------------------------------------------- towns only


def test_coverage_with_town_polygons_and_village_seats_only(pengjiang_layers):
    """Without village polygons the town figures are unchanged; villages come back approximate."""
    layers = dict(pengjiang_layers)
    s = CircleSettings()
    full = analyse_circle(layers, s)
    au = layers["admin_units"]
    layers["admin_units"] = au[au["level"] != "village"]
    seats = layers["place_names"]
    layers["place_names"] = seats[seats["category"] == "village_seat"]
    part = analyse_circle(layers, s)
    cols = ["adcode", "pop_60plus", "covered_15min", "share_15min"]
    pd.testing.assert_frame_equal(
        full.table_towns[cols].reset_index(drop=True),
        part.table_towns[cols].reset_index(drop=True),
    )
    vil = part.units[part.units["level"] == "village"]
    assert len(vil) > 100 and vil["approximate"].all()
    assert vil["pop_60plus"].sum() == pytest.approx(full.table_villages.iloc[-1]["pop_60plus"])
    assert any("Voronoi" in n for n in part.notes)
    out, _ = complete_units({"admin_units": au})  # untouched when polygons exist
    assert out["admin_units"] is au or out["admin_units"].equals(au)

"""Tree-burial suitability (DEM, slope, exclusions), capacity and the Pengjiang sample inputs."""

from __future__ import annotations

import math
import re
from pathlib import Path

import affine
import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from rasterio.warp import Resampling, reproject, transform_bounds

from geo_mz.burial import (
    BurialRulesError,
    burial_suitability,
    capacity_kpis,
    check_sites,
    default_rules_path,
    load_rules,
    site_capacity,
    town_summary,
)
from geo_mz.cli.burial import burial
from geo_mz.core.catalog import load_catalog
from geo_mz.core.errors import CrsError, GeoMzError
from geo_mz.core.terrain import (
    DemGrid,
    distance_m,
    grid_for_bounds,
    rasterize_mask,
    read_dem,
    region_polygons,
    slope_deg,
    within_m,
    write_raster,
)
from geo_mz.core.validate import check_layer
from geo_mz.core.workspace import Workspace
from geo_mz.datasets.dem import pengjiang_dem, pengjiang_landuse, write_synthetic_dem

M = "EPSG:4547"


# --- slope ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["horn", "central"])
@pytest.mark.parametrize("angle_deg", [0.0, 30.0, 90.0, 137.0])
def test_slope_of_a_planted_plane(method: str, angle_deg: float):
    dx, dy = 30.0, 25.0  # rectangular cells: x and y steps must not be mixed up
    t = affine.Affine(dx, 0, 400_000, 0, -dy, 2_500_000)
    grid = DemGrid(np.zeros((40, 50)), t, M)
    x, y = grid.centres()
    a = math.radians(angle_deg)
    z = 0.1 * (x * math.cos(a) + y * math.sin(a))  # gradient 0.1 in direction a
    s = slope_deg(z, dx, dy, method=method)
    # exact in the interior and, thanks to linear padding, on the edges too
    np.testing.assert_allclose(s, math.degrees(math.atan(0.1)), rtol=0, atol=1e-9)


def test_slope_of_a_plane_read_from_a_geotiff(tmp_path: Path):
    t, shape = grid_for_bounds((400_000, 2_500_000, 403_000, 2_503_000), 30.0)
    grid = DemGrid(np.zeros(shape), t, M)
    x, y = grid.centres()
    z = 5.0 + 0.25 * (x - 400_000) - 0.1 * (y - 2_500_000)
    tif = write_raster(tmp_path / "plane.tif", {"elevation": z}, t, M)
    dem = read_dem(tif, crs=M)  # same lattice: copied, not resampled
    np.testing.assert_array_equal(dem.elevation_m, z.astype(np.float32))
    s = slope_deg(dem.elevation_m, dem.cell_x_m, dem.cell_y_m)
    np.testing.assert_allclose(s, math.degrees(math.atan(math.hypot(0.25, 0.1))), atol=1e-4)


def test_slope_is_nan_next_to_missing_data():
    z = np.arange(100.0).reshape(10, 10)
    z[5, 5] = np.nan
    s = slope_deg(z, 30.0)
    assert np.isnan(s[4:7, 4:7]).all() and np.isfinite(s[0, 0])


# --- exclusion buffers ------------------------------------------------------------------------


@pytest.mark.parametrize(("cell_x", "cell_y"), [(30.0, 30.0), (30.0, 20.0)])
def test_buffers_remove_exactly_the_cells_within_distance(cell_x: float, cell_y: float):
    rng = np.random.default_rng(7)
    shape = (70, 60)
    t = affine.Affine(cell_x, 0, 0, 0, -cell_y, shape[0] * cell_y)
    src = np.zeros(shape, dtype=bool)
    src[rng.integers(0, shape[0], 6), rng.integers(0, shape[1], 6)] = True
    src |= rasterize_mask(
        [shapely.LineString([(100, 300), (1500, 1200)])], t, shape, all_touched=True
    )
    rows, cols = np.indices(shape)
    cx, cy = (cols + 0.5) * cell_x, (rows + 0.5) * cell_y
    sx, sy = cx[src], cy[src]
    brute = np.sqrt((cx[..., None] - sx) ** 2 + (cy[..., None] - sy) ** 2).min(axis=-1)
    np.testing.assert_allclose(distance_m(src, cell_x, cell_y), brute, rtol=1e-12)
    for buffer_m in (0.0, 95.0, 500.0):
        expected = brute <= buffer_m
        np.testing.assert_array_equal(within_m(src, buffer_m, cell_x, cell_y), expected)


@pytest.fixture(scope="module")
def toy_layers() -> dict[str, gpd.GeoDataFrame]:
    """A 6 × 6 km county with one primary road and one village seat, on flat land."""
    county = shapely.box(400_000, 2_500_000, 406_000, 2_506_000)
    units = gpd.GeoDataFrame(
        {"adcode": ["440703"], "name": ["示例区"], "level": ["county"], "in_jurisdiction": [True]},
        geometry=[county],
        crs=M,
    )
    road = shapely.LineString([(400_000, 2_501_234), (406_000, 2_504_321)])
    roads = gpd.GeoDataFrame(
        {"road_id": ["R1", "R2"], "road_class": ["primary", "rural"]},
        geometry=[road, shapely.LineString([(403_000, 2_500_000), (403_000, 2_506_000)])],
        crs=M,
    )
    seats = gpd.GeoDataFrame(
        {"name_id": ["P1"], "category": ["village_seat"]},
        geometry=[shapely.Point(401_000, 2_505_000)],
        crs=M,
    )
    return {"admin_units": units, "roads": roads, "place_names": seats}


def _flat_dem(bounds: tuple[float, float, float, float], z: float = 20.0) -> DemGrid:
    t, shape = grid_for_bounds(bounds, 30.0)
    return DemGrid(np.full(shape, z), t, M)


def test_pipeline_buffers_are_exact_in_cells(toy_layers):
    dem = _flat_dem((397_000, 2_497_000, 409_000, 2_509_000))
    s = burial_suitability(toy_layers, dem, measure_crs=M)
    x, y = dem.centres()
    pts = shapely.points(x, y)
    road = toy_layers["roads"].geometry.iloc[0]
    d_true = shapely.distance(road, pts)
    excl = s.excluded["main_roads"]
    half_diag = math.hypot(15.0, 15.0)
    # against the vector line: exact to within half a cell diagonal either way
    assert excl[d_true <= 500.0 - half_diag].all()
    assert (d_true[excl] <= 500.0 + half_diag + 1e-9).all()
    # and exactly the cells within 500 m of the cells the road touches
    src = rasterize_mask([road], dem.transform, dem.shape, all_touched=True)
    np.testing.assert_array_equal(excl, within_m(src, 500.0, 30.0))
    seat = shapely.distance(toy_layers["place_names"].geometry.iloc[0], pts)
    assert s.excluded["settlement_seats"][seat <= 500.0 - half_diag].all()
    assert not s.excluded["settlement_seats"][seat > 500.0 + half_diag].any()
    # land-use, water and population rules have no layer here: said, not silently ignored
    assert any("landuse" in n for n in s.notes) and any("population" in n for n in s.notes)
    ex = s.exclusions.set_index("rule")
    assert not ex.loc["farmland", "applied"] and ex.loc["main_roads", "applied"]
    assert ex.loc["main_roads", "area_m2"] == pytest.approx((excl & s.inside).sum() * 900.0)
    # candidates: allowed cells only, each ≥ the minimum area, the score in [0, 1]
    assert len(s.candidates) and (s.candidates["area_m2"] >= 3000).all()
    assert s.candidate_area_m2 <= s.allowed.sum() * 900.0 + 1e-6
    assert s.candidates["score_mean"].between(0, 1).all()
    assert list(s.candidates["rank"]) == list(range(1, len(s.candidates) + 1))
    assert s.candidates["score_mean"].is_monotonic_decreasing


def test_slope_rule_and_jurisdiction(toy_layers):
    dem = _flat_dem((397_000, 2_497_000, 409_000, 2_509_000))
    x, _ = dem.centres()
    steep = DemGrid(np.where(x > 404_000, (x - 404_000) * 0.6, 0.0), dem.transform, M)  # 31°
    s = burial_suitability(toy_layers, steep, measure_crs=M)
    inner = (x > 404_100) & s.inside
    assert s.excluded["slope"][inner].all() and not s.excluded["slope"][x < 403_900].any()
    assert s.excluded["outside"][~s.inside].all()
    assert (s.reason[~s.inside] > 0).all() and np.isnan(s.score[~s.inside]).all()


def test_region_polygons_drop_small_regions():
    mask = np.zeros((10, 10), dtype=bool)
    mask[1:4, 1:4] = True  # 9 cells
    mask[7, 7] = True  # 1 cell
    mask[5, 2:9] = True  # 7 cells (touches nothing by an edge)
    t = affine.Affine(10, 0, 0, 0, -10, 100)
    regions, labels = region_polygons(mask, t, M, min_area_m2=500)
    assert sorted(regions["area_m2"]) == [700.0, 900.0]
    assert np.allclose(regions.geometry.area, regions["area_m2"])
    assert labels[7, 7] == 0


# --- DEM input --------------------------------------------------------------------------------


def test_dem_without_crs_or_outside_is_named(tmp_path: Path):
    z = np.ones((5, 5), dtype=np.float32)
    prof = {"driver": "GTiff", "width": 5, "height": 5, "count": 1, "dtype": "float32",
            "transform": affine.Affine(30, 0, 0, 0, -30, 150)}  # fmt: skip
    with rasterio.open(tmp_path / "nocrs.tif", "w", **prof) as dst:
        dst.write(z, 1)
    with pytest.raises(CrsError, match="no CRS"):
        read_dem(tmp_path / "nocrs.tif", crs=M)
    t = affine.Affine(30, 0, 400_000, 0, -30, 2_500_000)
    tif = write_raster(tmp_path / "dem.tif", {"elevation": z}, t, M)
    with pytest.raises(GeoMzError, match="does not overlap"):
        read_dem(tif, crs=M, bounds=(0, 0, 1000, 1000))
    with pytest.raises(CrsError, match="not a projected CRS"):
        read_dem(tif, crs="EPSG:4490")


# --- rules file -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ("max_deg = 25.0", 'max_deg = "steep"', "[slope] max_deg: must be a number"),
        ("max_deg = 25.0", "max_degree = 25.0", "[slope] max_degree: unknown key"),
        ("resolution_m = 30.0", "resolution_m = 0", "[grid] resolution_m: must be a number > 0"),
        ("flat_score = 0.5", "flat_score = 1.5", "[slope] flat_score: must be a number ≥ 0 and"),
        ("buffer_m = 500.0", "buffer_m = -5.0", "('main_roads') buffer_m: must be a number ≥ 0"),
        ('key = "lakes"', 'key = "farmland"', "('farmland') key: used twice"),
        ("weights = { slope = 0.4,", "weights = { slope = -1,", "[score.weights] slope"),
        ('rules = ["settlement_seats", "settlement_cells"]', 'rules = ["settlement_seats", "x"]',
         "[score.settlement] rules: ['x'] are not [[exclusions]] keys"),
        ("zero_m = 2000.0", "zero_m = 100.0", "[score.road_access] zero_m"),
        ('resampling = "bilinear"', 'resampling = "lanczos"', "[grid] resampling: must be"),
        ("[targets]", "[target]", "target: unknown table or key"),
        ("min_area_m2 = 3000.0", "min_area_m2 = [3000]", "[candidates] min_area_m2"),
        ("[candidates]", "[candidates", "cannot read the burial rules"),
        ("# Optional per-town targets", "[targets.towns.440703101]\ntrees = 3\n#",
         "[targets.towns.440703101] trees: unknown key"),
    ],
)  # fmt: skip
def test_rules_errors_name_the_key(tmp_path: Path, old: str, new: str, named: str):
    text = default_rules_path().read_text(encoding="utf-8")
    assert old in text
    bad = tmp_path / "burial_rules.toml"
    bad.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(BurialRulesError, match=re.escape(named)) as exc:
        load_rules(bad)
    assert "burial_rules.toml" in str(exc.value)
    assert isinstance(exc.value, ValueError)


def test_shipped_rules_name_their_sources():
    rules = load_rules()
    assert rules.exclusions and all(r.source for r in rules.exclusions)
    assert sum(rules.weights.values()) == pytest.approx(1.0)
    tags = ("SOURCED", "SECONDARY", "UNSOURCED", "DERIVED", "local choice")
    for r in rules.exclusions:
        assert any(t in r.source for t in tags), r.key
    by_key = {r.key: r for r in rules.exclusions}
    assert by_key["main_roads"].buffer_m == 500.0  # Shandong, STANDARDS.md §D
    assert (
        by_key["water_bodies"].buffer_m == 2000.0 and by_key["protected_areas"].buffer_m == 2000.0
    )
    assert by_key["settlement_seats"].buffer_m == 500.0


def test_rule_field_and_values_are_checked_against_the_layer(tmp_path: Path, toy_layers):
    text = default_rules_path().read_text(encoding="utf-8")
    dem = _flat_dem((397_000, 2_497_000, 409_000, 2_509_000))
    bad = tmp_path / "burial_rules.toml"
    bad.write_text(text.replace('"motorway", "trunk", "primary"', '"motorway", "highway"'))
    with pytest.raises(BurialRulesError, match=r"'main_roads'.*\['highway'\]"):
        burial_suitability(toy_layers, dem, rules=load_rules(bad), measure_crs=M)
    bad.write_text(text.replace('field = "road_class"\nvalues = ["motorway"',
                                'field = "class"\nvalues = ["motorway"'))  # fmt: skip
    with pytest.raises(BurialRulesError, match="'main_roads': layer 'roads' has no field 'class'"):
        burial_suitability(toy_layers, dem, rules=load_rules(bad), measure_crs=M)


# --- capacity ---------------------------------------------------------------------------------


@pytest.fixture
def sites() -> gpd.GeoDataFrame:
    rows = [
        # tree site: own plot area 0.25 m² → 1000 × 0.5 / 0.25 = 2000 plots (no record)
        {"site_id": "S1", "name": "甲", "facility_type": "tree_burial_site", "burial_type": "tree",
         "area_m2": 1000.0, "plot_area_m2": 0.25, "capacity_plots": None, "used_plots": 500,
         "burials_per_year": 300, "status": "operating", "adcode": "440703101201"},
        # tree site without plot area → default 0.5 m²: 1000 plots, recorded 800 wins
        {"site_id": "S2", "name": "乙", "facility_type": "tree_burial_site", "burial_type": "tree",
         "area_m2": 1000.0, "plot_area_m2": None, "capacity_plots": 800, "used_plots": 800,
         "burials_per_year": 0, "status": "full", "adcode": "440703101202"},
        # memorial hall 200 m²: 200 × 1 floor × 0.6 × 5 = 600 niches
        {"site_id": "S3", "name": "丙", "facility_type": "memorial_hall", "burial_type": "niche",
         "area_m2": 200.0, "plot_area_m2": 0.1, "capacity_plots": 0, "used_plots": 150,
         "burials_per_year": 100, "status": "operating", "adcode": "440703103001"},
    ]  # fmt: skip
    geoms = [shapely.box(400_000 + 100 * i, 2_500_000, 400_050 + 100 * i, 2_500_020)
             for i in range(3)]  # fmt: skip
    return gpd.GeoDataFrame(rows, geometry=geoms, crs=M)


def test_capacity_arithmetic(sites):
    cap = site_capacity(sites).set_index("site_id")
    assert list(cap["capacity_est"]) == [2000, 1000, 600]
    assert list(cap["capacity_plots"]) == [2000, 800, 600]
    assert list(cap["capacity_source"]) == ["estimated", "recorded", "estimated"]
    assert list(cap["remaining_plots"]) == [1500, 0, 450]
    assert cap.loc["S1", "years_until_full"] == pytest.approx(5.0)
    assert cap.loc["S3", "years_until_full"] == pytest.approx(4.5)
    assert np.isnan(cap.loc["S2", "years_until_full"])
    assert cap.loc["S1", "full_by_year"] == 2030 and cap.loc["S3", "full_by_year"] == 2029
    assert cap.loc["S1", "share_used"] == pytest.approx(0.25)
    assert list(cap["town_adcode"]) == ["440703101", "440703101", "440703103"]


def test_capacity_town_summary_and_targets(sites, tmp_path: Path):
    text = default_rules_path().read_text(encoding="utf-8")
    custom = tmp_path / "burial_rules.toml"
    custom.write_text(
        text.replace("tree_burial_sites = 100", "tree_burial_sites = 2").replace(
            "# Optional per-town targets",
            "[targets.towns.440703101]\ntree_burial_sites = 3\nmemorial_halls = 1\n#",
        ),
        encoding="utf-8",
    )
    rules = load_rules(custom)
    units = gpd.GeoDataFrame(
        {"adcode": ["440703101", "440703103", "440703102"], "name": ["棠下镇", "杜阮镇", "荷塘镇"],
         "level": ["town"] * 3, "in_jurisdiction": [True] * 3},
        geometry=[shapely.box(0, 0, 1, 1)] * 3, crs=M,
    )  # fmt: skip
    cap = site_capacity(sites, rules=rules, admin_units=units)
    towns = town_summary(cap, units, rules=rules).set_index("town_name")
    assert list(towns.index) == ["棠下镇", "荷塘镇", "杜阮镇", "合计 Total"]
    assert (
        towns.loc["棠下镇", "tree_sites"] == 2 and towns.loc["棠下镇", "tree_sites_operating"] == 1
    )
    assert towns.loc["棠下镇", "capacity_plots"] == 2800
    assert towns.loc["棠下镇", "target_tree_sites"] == 3
    assert towns.loc["荷塘镇", "capacity_plots"] == 0
    total = towns.loc["合计 Total"]
    assert total["remaining_plots"] == 1950 and total["burials_per_year"] == 400
    assert total["years_until_full"] == pytest.approx(1950 / 400)
    kpis = {k.label_en: k for k in capacity_kpis(cap, rules=rules)}
    assert kpis["Tree-burial sites (incl. planned)"].met is True  # 2 ≥ 2
    assert kpis["Memorial halls (incl. planned)"].met is False  # 1 < 12
    assert kpis["Years until full at the current rate"].value == pytest.approx(4.9)


# --- the Pengjiang sample ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample(pengjiang_layers, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("burial")
    layers = dict(pengjiang_layers)
    dem = pengjiang_dem(layers)
    layers["landuse"] = pengjiang_landuse(layers, dem)
    tif = write_synthetic_dem(dem, folder / "dem_30m.tif")
    return {"folder": folder, "layers": layers, "dem": dem, "tif": tif,
            "suit": burial_suitability(layers, tif, measure_crs=M)}  # fmt: skip


def test_sample_dem_is_synthetic_and_hilly_in_the_west(sample):
    with rasterio.open(sample["tif"]) as src:
        assert src.tags()["SYNTHETIC"] == "yes" and src.crs.to_string() == M
        assert src.res == (30.0, 30.0)
    s = sample["suit"]
    towns = sample["layers"]["admin_units"].to_crs(M)
    towns = towns[towns["level"] == "town"].set_index("adcode").geometry
    z = s.grid.elevation_m

    def mean_z(code: str) -> float:
        return float(np.nanmean(z[rasterize_mask([towns[code]], s.grid.transform, s.grid.shape)]))

    assert mean_z("440703103") > 3 * mean_z("440703005")  # 杜阮 hills, 潮连 island plain


def test_sample_landuse_conforms_to_its_spec(sample):
    lu = sample["layers"]["landuse"]
    spec = load_catalog()["landuse"]
    assert list(lu.columns) == [*spec.field_names, "geometry"] and lu.crs.to_epsg() == 4490
    assert lu.geometry.is_valid.all() and (lu.geom_type == "MultiPolygon").all()
    _, problems = check_layer(lu, spec, file="landuse")
    assert not [p for p in problems if p.severity == "error"]
    sites = sample["layers"]["burial_sites"].to_crs(M).geometry
    restrictive = lu[lu["landuse_class"] != "cemetery"].to_crs(M).geometry
    assert min(restrictive.distance(g).min() for g in sites) >= 149.0


def test_sample_sites_fall_in_allowed_land(sample):
    s, layers = sample["suit"], sample["layers"]
    chk = check_sites(s, layers["burial_sites"])
    assert len(chk) == 5 and (chk["cells"] >= 1).all()
    bad = chk[chk["excluded_share"] > 0]
    assert bad.empty, f"{len(bad)} sites in excluded land: {bad.to_dict('records')}"
    assert (chk["slope_mean_deg"] <= 8.5).all()  # graded sites
    classes = set(layers["landuse"]["landuse_class"])
    assert {"farmland", "forest", "water_source", "construction_planned", "cemetery"} <= classes
    assert s.candidate_area_m2 > 1e6 and len(s.candidates) >= 20
    assert (s.candidates["town_name"].dropna().isin(
        ["白沙街道", "潮连街道", "环市街道", "棠下镇", "荷塘镇", "杜阮镇"])).all()  # fmt: skip
    ex = s.exclusions.set_index("rule")
    assert (ex.loc[["farmland", "forest", "water_bodies", "main_roads"], "area_m2"] > 0).all()
    assert not s.notes or all("lakes" in n for n in s.notes)


def test_a_reprojected_dem_gives_the_same_candidate_area(sample):
    # Warp the synthetic DEM to EPSG:4326 (~1 arc-second), then back through the same path.
    tif4326 = sample["folder"] / "dem_4326.tif"
    deg = 1.0 / 3600.0
    with rasterio.open(sample["tif"]) as src:
        w, s_, e, n = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
        width, height = math.ceil((e - w) / deg), math.ceil((n - s_) / deg)
        t = affine.Affine(deg, 0, w, 0, -deg, n)
        out = np.full((height, width), np.nan, dtype=np.float32)
        reproject(rasterio.band(src, 1), out, dst_transform=t, dst_crs="EPSG:4326",
                  resampling=Resampling.bilinear, dst_nodata=np.nan)  # fmt: skip
    write_raster(tif4326, {"elevation": out}, t, "EPSG:4326")
    again = burial_suitability(sample["layers"], tif4326, measure_crs=M)
    base = sample["suit"]
    assert again.grid.transform == base.grid.transform  # the same lattice
    assert not (again.excluded["no_dem"] & again.inside).any()
    assert again.candidate_area_m2 == pytest.approx(base.candidate_area_m2, rel=0.01)
    diff = np.abs(again.grid.elevation_m - base.grid.elevation_m)[base.inside]
    assert np.nanmax(diff) < 30.0 and np.nanmean(diff) < 2.0  # two bilinear passes smooth a bit


def test_cli_suitability_and_capacity(sample, tmp_path: Path):
    layers = sample["layers"]
    minx, miny, maxx, maxy = layers["admin_units"].to_crs(4490).total_bounds
    ws = Workspace.create(tmp_path / "ws.gpkg", name="江门市蓬江区", adcode="440703",
                          bounds=(minx - 0.05, miny - 0.05, maxx + 0.05, maxy + 0.05))  # fmt: skip
    keep = ("admin_units", "water", "roads", "place_names", "population", "burial_sites",
            "landuse")  # fmt: skip
    prov = {k: {"synthetic": True, "source": "test", "method": "test"} for k in keep}
    ws.write_layers({k: layers[k] for k in keep}, prov)
    run = CliRunner().invoke(
        burial,
        ["suitability", "--workspace", str(ws.path), "--dem", str(sample["tif"]), "--out",
         str(tmp_path / "out")],
        catch_exceptions=False,
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    assert "Existing sites in excluded land: 0 / 5" in run.output
    gpkg = tmp_path / "out" / "burial_suitability.gpkg"
    names = set(pyogrio.list_layers(gpkg)[:, 0])
    assert names == {"burial_candidates", "burial_exclusions", "burial_capacity"}
    cand = gpd.read_file(gpkg, layer="burial_candidates")
    assert cand.crs.to_epsg() == 4490 and {"score_mean", "area_m2", "est_plots"} <= set(cand)
    assert cand["area_m2"].sum() == pytest.approx(sample["suit"].candidate_area_m2)
    with pd.ExcelFile(tmp_path / "out" / "burial_suitability.xlsx") as xl:
        assert {"指标 KPIs", "镇街 towns", "排除 exclusions", "候选 candidates"} <= set(
            xl.sheet_names
        )
    report = (tmp_path / "out" / "burial_suitability_report.html").read_text(encoding="utf-8")
    assert "Exclusions by rule" in report and "殡葬管理条例" in report
    html = (tmp_path / "out" / "burial_suitability_map.html").read_text(encoding="utf-8")
    assert "树葬候选地块" in html
    run = CliRunner().invoke(
        burial, ["capacity", "--workspace", str(ws.path), "--out", str(tmp_path / "cap")],
        catch_exceptions=False,
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    assert "Years until full" in run.output and "target ≥ 100" in run.output
    cap = gpd.read_file(tmp_path / "cap" / "burial_capacity.gpkg", layer="burial_capacity")
    assert len(cap) == 5 and (cap["remaining_plots"] >= 0).all()
    run = CliRunner().invoke(
        burial, ["suitability", "--workspace", str(ws.path), "--dem", str(gpkg), "--out",
                 str(tmp_path / "bad")],
    )  # fmt: skip
    assert run.exit_code == 2 and "cannot read the DEM" in run.output

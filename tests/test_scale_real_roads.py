"""Parts by town on a real road network: the raw OSM export of central 龙岗 (../shared/data).

The export covers 3 × 5 km of a 388 km² district, so most towns have no road near them: their
parts must grow their cut until it holds streets (or prove that none is within reach), and a
town where nobody lives must give no rows, not fail. The town polygons are generated (a
Voronoi tiling of the district with six seeds inside the export), the roads are real and
joined across every town border, as real streets are. Each part is compared with the whole
district computed in one piece.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from affine import Affine
from click.testing import CliRunner

from geo_mz.cli import main
from geo_mz.core.workspaces import open_workspace
from geo_mz.eldercare import coverage
from geo_mz.eldercare.circle15 import CircleSettings
from geo_mz.network import isochrone
from geo_mz.network.graph import network_from_roads
from geo_mz.relief import drive_audit as relief
from geo_mz.scale import parts_of
from geo_mz.scale.part_inputs import roads_extent
from geo_mz.scale.partition import coverage_part
from geo_mz.scale.partition_relief import relief_part
from geo_mz.scale.partition_rings import polygonal, rings_part
from geo_mz.scale.province import job_options, run_all

pytestmark = pytest.mark.slow

TOWNS = ["440307003", "440307006", "440307009", "440307010", "440307011", "440307012",
         "440307013", "440307014", "440307015", "440307016", "440307017", "440307018",
         "440307019", "440307020"]  # fmt: skip
OSM_BOX = (114.186, 22.673, 114.232, 22.702)


def _run(*args: object) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _towns(boundary: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Fourteen Voronoi towns of the district, six of them seeded inside the OSM export."""
    metric = "EPSG:4547"
    district = boundary.to_crs(metric).geometry.union_all()
    rng = np.random.default_rng(7)
    x0, y0, x1, y1 = gpd.GeoSeries([shapely.box(*OSM_BOX)], crs=4326).to_crs(metric).total_bounds
    seeds = [shapely.Point(rng.uniform(x0, x1), rng.uniform(y0, y1)) for _ in range(6)]
    near = shapely.box(x0, y0, x1, y1).buffer(2000)
    while len(seeds) < len(TOWNS):
        p = shapely.Point(rng.uniform(*district.bounds[0::2]), rng.uniform(*district.bounds[1::2]))
        if district.contains(p) and not near.contains(p):
            seeds.append(p)
    cells = shapely.voronoi_polygons(shapely.MultiPoint(seeds), extend_to=district.buffer(5000))
    polys = [next(c for c in cells.geoms if c.contains(s)).intersection(district) for s in seeds]
    return gpd.GeoDataFrame(
        {"adcode": TOWNS, "name": [f"街道{i}" for i in range(len(TOWNS))]},
        geometry=polys,
        crs=metric,
    ).to_crs(4326)


def _villages(towns: gpd.GeoDataFrame, shared_data: Path) -> gpd.GeoDataFrame:
    """The register's villages of each town (real codes), as a Voronoi tiling of the town."""
    register = pd.read_csv(shared_data / "placenames" / "villages.csv.gz", dtype=str)
    register = register[register["code"].str.startswith("440307")]
    rng = np.random.default_rng(5)
    rows = []
    for t in towns.to_crs("EPSG:4547").itertuples():
        mine = register[register["code"].str.startswith(t.adcode)]
        g, seeds = t.geometry, []
        while len(seeds) < len(mine):
            p = shapely.Point(rng.uniform(g.bounds[0], g.bounds[2]),
                              rng.uniform(g.bounds[1], g.bounds[3]))  # fmt: skip
            if g.contains(p):
                seeds.append(p)
        cells = shapely.voronoi_polygons(shapely.MultiPoint(seeds), extend_to=g.buffer(1000))
        for (code, name), p in zip(mine[["code", "name"]].itertuples(index=False), seeds,
                                   strict=True):  # fmt: skip
            rows.append((code, name, next(c for c in cells.geoms if c.contains(p)).intersection(g)))
    return gpd.GeoDataFrame(rows, columns=["adcode", "name", "geometry"], crs="EPSG:4547")


@pytest.fixture(scope="module")
def longgang(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two 龙岗 workspaces: people spread from a county table, and from a raster."""
    sz = shared_data / "real_shenzhen"
    d = tmp_path_factory.mktemp("lg_towns")
    boundary = gpd.read_file(sz / "sz_districts_transbigdata.json")
    boundary = boundary[boundary["qh"] == "龙岗"]
    towns = _towns(boundary)
    units = pd.concat([towns, _villages(towns, shared_data).to_crs(4326)], ignore_index=True)
    units.to_file(d / "towns.geojson", driver="GeoJSON")
    ws = d / "lg.gpkg"
    _run("init", "--code", "440307", "--out", ws, "--boundary",
         sz / "sz_districts_transbigdata.json", "--code-field", "qh", "--no-neighbours",
         "--units", d / "towns.geojson")  # fmt: skip
    _run("import", sz / "longgang_osm_map.osm", "--layer", "roads", "--workspace", ws)
    roads = gpd.read_file(ws, layer="roads")
    xy = shapely.get_coordinates(roads.to_crs(4326).geometry.values)
    pick = xy[np.random.default_rng(1).choice(len(xy), 10, replace=False)]
    centres = pd.DataFrame({"facility_id": [f"EC{i}" for i in range(10)], "name": "养老服务站",
                            "kind": "home_care_centre", "status": "operating", "places": 30,
                            "lon": pick[:, 0], "lat": pick[:, 1]})  # fmt: skip
    centres.to_csv(d / "centres.csv", index=False)
    _run("import", d / "centres.csv", "--layer", "elder_care", "--workspace", ws,
         "--source-crs", "EPSG:4326")  # fmt: skip
    # Relief stores on the real roads: the district's, and two of one town, one of another.
    pick = xy[np.random.default_rng(2).choice(len(xy), 4, replace=False)]
    at = gpd.points_from_xy(pick[:, 0], pick[:, 1])
    kinds = {"store_id": [f"RS{i}" for i in range(4)], "name": "储备点",
             "level": ["county"] + ["township"] * 3}  # fmt: skip
    stores = gpd.GeoDataFrame(kinds, geometry=at, crs=4326)
    town_of = gpd.sjoin(stores, towns[["adcode", "geometry"]], predicate="within")["adcode"]
    stores["adcode"] = ["440307", *town_of.reindex(stores.index).iloc[1:]]
    stores.assign(lon=pick[:, 0], lat=pick[:, 1]).drop(columns="geometry").to_csv(
        d / "stores.csv", index=False
    )
    _run("import", d / "stores.csv", "--layer", "relief_stores", "--workspace", ws,
         "--source-crs", "EPSG:4326")  # fmt: skip
    # The city's real shelter list (GCJ-02, ids and coordinates only): no codes.
    _run("import", sz / "sz_shelters_gcj02_raw.csv", "--layer", "shelters", "--workspace", ws,
         "--source-crs", "gcj02", "--clip", "--default", "shelter_id=auto", "--default",
         "name=应急避难场所", "--default", "shelter_class=III", "--default",
         "effective_area_m2=2000", "--default", "capacity_persons=1000")  # fmt: skip
    table, raster = d / "table.gpkg", d / "raster.gpkg"
    table.write_bytes(ws.read_bytes())
    raster.write_bytes(ws.read_bytes())
    (d / "pop.csv").write_text(
        "adcode,户籍人口,60岁以上人口\n440307,3979037,218000\n", encoding="utf-8"
    )
    _run("import", d / "pop.csv", "--layer", "population", "--workspace", table, "--by-unit",
         "--level", "county", "--cell-m", "200")  # fmt: skip
    # A WorldPop-like count raster over the whole district: people far from every road.
    x0, y0, x1, y1 = boundary.total_bounds
    res = 0.004
    w, h = int((x1 - x0) / res) + 1, int((y1 - y0) / res) + 1
    counts = np.random.default_rng(3).gamma(2.0, 40.0, size=(h, w)).astype("float32")
    with rasterio.open(d / "pop.tif", "w", driver="GTiff", height=h, width=w, count=1,
                       dtype="float32", crs="EPSG:4326", nodata=-1,
                       transform=Affine(res, 0, x0, 0, -res, y1)) as dst:  # fmt: skip
        dst.write(counts, 1)
    _run("import", d / "pop.tif", "--layer", "population", "--workspace", raster,
         "--aged-share", "0.2")  # fmt: skip
    return {"table": table, "raster": raster, "dir": d}


@pytest.mark.parametrize("kind", ["table", "raster"])
def test_people_take_the_code_of_the_town_they_live_in(longgang, kind):
    # A county's table or a raster gives no town codes; the points take their town polygon's,
    # so parts by town (which take a part's points by code) hold every one of them.
    ws = open_workspace(longgang[kind])
    pop, units = ws.read("population"), ws.read("admin_units")
    for level in ("town", "village"):
        polys = units[units["level"] == level]
        joined = gpd.sjoin(pop[["geometry"]], polys[["adcode", "geometry"]], predicate="within")
        joined = joined[~joined.index.duplicated()]
        assert len(joined) >= 0.99 * len(pop)
        got = pop.loc[joined.index, "adcode"].astype(str).str[: len(joined["adcode"].iloc[0])]
        assert (got == joined["adcode"].astype(str)).all()
    assert pop["adcode"].astype(str).str.startswith("440307").all()


def _whole_walk(path: Path) -> tuple:
    """The workspace, its layers, the circle settings, its CRS, the whole walking network and
    the centres: what every part is compared with."""
    ws = open_workspace(path)
    layers = ws.read_all()
    s = CircleSettings()
    crs = ws.metadata["measure_crs"]
    net = network_from_roads(layers["roads"], mode="walk", walk_speed_kmh=s.walk_speed_kmh,
                             measure_crs=crs, components="all")  # fmt: skip
    centres = coverage.select_centres(layers["elder_care"], kinds=s.kinds, statuses=s.statuses)
    return ws, layers, s, crs, net, centres


def test_a_shelter_list_without_codes_is_coded_by_where_each_shelter_lies(longgang):
    # Parts take a layer's points by code: a list that gives none is coded at import by the
    # village (or town) polygon each shelter lies in.
    ws = open_workspace(longgang["table"])
    shelters, units = ws.read("shelters"), ws.read("admin_units")
    assert len(shelters) == 96
    villages = units[units["level"] == "village"]
    j = gpd.sjoin(shelters[["geometry"]], villages[["adcode", "geometry"]], predicate="within")
    j = j[~j.index.duplicated()]
    assert len(j) >= 90
    assert (shelters.loc[j.index, "adcode"].astype(str) == j["adcode"].astype(str)).all()
    assert shelters["adcode"].astype(str).str.len().eq(12).all()


@pytest.mark.parametrize("kind", ["table", "raster"])
def test_town_parts_equal_the_whole_on_real_roads(longgang, kind):
    ws, layers, s, crs, net, centres = _whole_walk(longgang[kind])
    whole = coverage.access_times(net, centres, layers["population"], max_snap_m=s.max_snap_m)
    whole = whole.set_index("cell_id")
    ext = roads_extent(ws)
    seen, roadless, empty = 0, 0, 0
    for part in parts_of(layers["admin_units"], "town"):
        frames, log = coverage_part(ws, part, roads_bbox=ext, measure_crs=crs)
        t = frames["times"].set_index("cell_id")
        w = whole.loc[t.index]
        a, b = t["walk_min"].to_numpy(float), w["walk_min"].to_numpy(float)
        assert (np.isclose(a, b, rtol=0, atol=1e-9) | (np.isinf(a) & np.isinf(b))).all()
        a_c = t["nearest_centre"].astype(str).fillna("-")
        b_c = w["nearest_centre"].astype(str).fillna("-")
        assert (a_c == b_c).all(), pd.concat([a_c, b_c], axis=1)[a_c != b_c]
        seen += len(t)
        roadless += log.get("roadless", 0) > 0
        empty += len(t) == 0
    assert seen == len(layers["population"])  # nobody left out
    if kind == "raster":
        assert roadless >= 3  # towns with people but no street in their first cut
    else:
        assert empty >= 3  # people spread near roads only: towns where nobody lives


def test_rings_of_towns_no_street_reaches_are_empty_as_in_the_whole(longgang):
    ws, layers, s, crs, net, centres = _whole_walk(longgang["raster"])
    t, near = coverage.node_times(net, centres, max_snap_m=s.max_snap_m)
    whole = isochrone.isochrones(net, t, near, thresholds_min=s.thresholds_min,
                                 buffer_m=s.isochrone_buffer_m, crs_out=crs)  # fmt: skip
    ref = polygonal(whole.geometry.values)
    ext = roads_extent(ws)
    blank = 0
    for part in parts_of(layers["admin_units"], "town"):
        frames, _ = rings_part(ws, part, roads_bbox=ext, measure_crs=crs)
        mine = polygonal(frames["rings"].to_crs(crs).geometry.values)
        tile = polygonal(gpd.GeoSeries([part.geometry], crs=4490).to_crs(crs).values)[0]
        want = polygonal([shapely.intersection(r, tile, grid_size=1e-6) for r in ref])
        if len(mine) == 0:
            blank += 1
            assert sum(g.area for g in want) == 0.0
            continue
        for a, b in zip(mine, want, strict=True):
            diff = shapely.symmetric_difference(a, b, grid_size=1e-6).area
            assert diff <= 1e-6 * max(b.area, 1.0)
    assert blank >= 3


def test_run_all_jobs_reusing_times_of_towns_where_nobody_lives(longgang):
    # Capacity and gaps read the coverage run's times; a town with nobody stored none.
    ws = open_workspace(longgang["table"])
    parts = parts_of(ws.read("admin_units"), "town")
    jobs = ["coverage", "capacity", "gaps"]
    opts = {j: job_options(j, ws, "town") for j in jobs}
    res = run_all(longgang["table"], parts, store=longgang["dir"] / "runs.gpkg", options=opts,
                  jobs=jobs, level="town", workers=0)  # fmt: skip
    for job, r in res.items():
        assert r.ok, (job, r.failed[["part", "error"]].to_string())


def test_people_coded_coarser_than_the_parts_are_refused_before_the_run(longgang, tmp_path, pg_url):
    # A workspace made before points took their town's code (or edited in another tool):
    # a run by town would leave every point out; it is refused, and says how to mend it.
    import pyogrio

    old = tmp_path / "old.gpkg"
    old.write_bytes(longgang["table"].read_bytes())
    pop = gpd.read_file(old, layer="population")
    pop["adcode"] = "440307"
    pyogrio.write_dataframe(pop, old, layer="population")
    result = CliRunner().invoke(main, ["scale", "run", "coverage", "--workspace", str(old),
                                       "--by", "town", "--workers", "0", "--out",
                                       str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code != 0
    assert f"{len(pop)} population points carry no town code (e.g. '440307'" in result.output
    assert not (tmp_path / "out" / "runs.gpkg").exists()  # refused before anything ran
    # A PostGIS copy of the workspace is refused alike (there the codes are read, not counted
    # in SQL): the same points, the same message.
    from geo_mz.core.workspace_postgis import PostgisWorkspace
    from geo_mz.scale.parts import ScaleError, check_point_codes

    pg = PostgisWorkspace.from_workspace(open_workspace(old), pg_url, schema="lg_old",
                                         replace=True)  # fmt: skip
    parts = parts_of(pg.read("admin_units"), "town")
    with pytest.raises(ScaleError, match=f"{len(pop)} population points carry no town"):
        check_point_codes(pg, parts, ["coverage"], "town")
    # By county the same points are the county's: the run goes ahead.
    _run("scale", "run", "coverage", "--workspace", old, "--by", "county", "--workers", "0",
         "--out", tmp_path / "out_county")  # fmt: skip


def test_relief_town_parts_equal_the_whole_on_real_roads(longgang):
    # Villages and shelters are the audit's points; a town no drivable road reaches grows its
    # cut until one does, and every row equals the whole district's audit.
    ws = open_workspace(longgang["raster"])
    layers = ws.read_all()
    parts = parts_of(layers["admin_units"], "town")
    opts = job_options("relief", ws, "town") | {"roads_bbox": roads_extent(ws)}
    s = opts["settings"]
    crs = ws.metadata["measure_crs"]
    net = relief.drive_network(layers["roads"], s, measure_crs=crs, components="all")
    points = relief.audit_points(layers, measure_crs=crs)
    whole = relief.audit(points, layers["relief_stores"], net, s).table
    whole = whole.set_index(["target", "point_id"])
    seen, roadless = [], 0
    for part in parts:
        frames, log = relief_part(ws, part, **opts)
        got = frames["audit"].set_index(["target", "point_id"])
        ref = whole.loc[got.index]
        assert (ref["status"].to_numpy() == got["status"].to_numpy()).all()
        assert (ref["store_id"].fillna("-") == got["store_id"].fillna("-")).all()
        a, b = ref["time_min"].to_numpy(float), got["time_min"].to_numpy(float)
        assert (np.isclose(a, b, rtol=0, atol=1e-9) | (np.isnan(a) & np.isnan(b))).all()
        seen += list(got.index)
        roadless += log.get("roadless", 0) > 0
    assert sorted(seen) == sorted(whole.index)  # every row once
    assert roadless >= 1


def test_run_all_by_town_on_real_roads_reports_each_cause_once(longgang, tmp_path):
    # Every analysis on the real workspace: all but E2SFCA (it counts nursing homes, and the
    # list has only home-care stations) complete in every town; E2SFCA's one cause is said once,
    # on the terminal and in the report.
    result = CliRunner().invoke(main, ["scale", "run", "all", "--workspace",
                                       str(longgang["table"]), "--by", "town", "--workers", "0",
                                       "--out", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 1, result.exception
    n = len(TOWNS)
    for title in ("15-minute elder-care coverage", "Capacity-adjusted", "isochrone area",
                  "gap hexagons", "Relief delivery", "within reach of a shelter",
                  "placed in a shelter", "Boundary topology"):  # fmt: skip
        line = next((x for x in result.output.splitlines() if title in x), result.output)
        assert f"{n}/{n} 分区 parts" in line, line
    assert result.output.count("NoCentresError") == 1
    assert f"✗ {n} 个分区 parts (440307003, 440307006, 440307009, 440307010, …)" in result.output
    report = (tmp_path / "scale_all_report.html").read_text(encoding="utf-8")
    assert "失败原因 Why parts failed" in report and report.count("NoCentresError") == 1


def test_relief_scenario_with_border_closures_equals_the_whole_on_real_roads(longgang, tmp_path):
    # Real roads that cross town borders closed by id, and a closure area on one: each part
    # must see the closures beyond its border to give the whole district's audit rows.
    from geo_mz.network import disruption as dis
    from geo_mz.scale import partition
    from geo_mz.scale.partition_relief import relief_scenario_part

    ws = open_workspace(longgang["raster"])
    layers = ws.read_all()
    crs = ws.metadata["measure_crs"]
    s = relief.ReliefSettings(targets=relief.workspace_targets(ws.metadata))
    units = layers["admin_units"]
    border = shapely.union_all(units[units["level"] == "town"].to_crs(crs).boundary.values)
    roads = layers["roads"].to_crs(crs)
    cross = roads[roads.geometry.intersects(border) & (roads["road_class"] != "footway")]
    ids = cross["road_id"].astype(str).tolist()[:8]
    middle = cross.geometry.iloc[8].interpolate(0.5, normalized=True)
    gpd.GeoDataFrame(geometry=[middle.buffer(250)], crs=crs).to_file(tmp_path / "closed.gpkg")
    area = gpd.read_file(tmp_path / "closed.gpkg")
    base = relief.run_audit(layers, s, measure_crs=crs)
    d = dis.combine(dis.from_edge_ids(base.network, ids),
                    dis.from_polygons(base.network, area, reason="closure"))  # fmt: skip
    whole = relief.reaudit(base, d, name="x")
    assert d.n_closed >= len(ids) and len(relief.compare(base, whole)) > 0
    vmax = partition.max_drive_kmh(layers["roads"], s)
    got = pd.concat(
        [relief_scenario_part(ws, p, settings=s, measure_crs=crs, vmax_kmh=vmax, name="x",
                              close_roads=ids, closures=tmp_path / "closed.gpkg",
                              roads_bbox=roads_extent(ws))[0]["scenario"]
         for p in parts_of(units, "town")],
        ignore_index=True,
    )  # fmt: skip
    m = whole.table.merge(got, on=["target", "point_id"], suffixes=("", "_p"), validate="1:1")
    assert len(m) == len(whole.table) == len(got)
    np.testing.assert_allclose(m["time_min"].to_numpy(float), m["time_min_p"].to_numpy(float),
                               rtol=1e-12, atol=0)  # fmt: skip
    for col in ("status", "store_id"):
        assert (m[col].astype(str).fillna("-") == m[f"{col}_p"].astype(str).fillna("-")).all()


def test_every_shelter_is_in_the_gathered_evacuation_also_one_added_without_a_code(
    longgang, tmp_path
):
    # Shelters added after the import (on the web map, in QGIS) carry no code: the part whose
    # polygon holds one owns it, so the gathered load table lists every shelter, as the whole
    # district's run does (an unused shelter of no part was never written).
    import pyogrio

    from geo_mz.relief import shelters as shel

    path = tmp_path / "lg.gpkg"
    path.write_bytes(longgang["table"].read_bytes())
    sh = gpd.read_file(path, layer="shelters")
    sh.loc[sh.index[::3], "adcode"] = None
    pyogrio.write_dataframe(sh, path, layer="shelters")
    _run("scale", "run", "evacuation", "--workspace", path, "--by", "town", "--workers", "0",
         "--out", tmp_path / "out")  # fmt: skip
    load = gpd.read_file(tmp_path / "out" / "scale_evacuation.gpkg", layer="evacuation_load")
    ws = open_workspace(path)
    layers = ws.read_all()
    s = shel.ShelterSettings()
    net = network_from_roads(layers["roads"], mode="walk", walk_speed_kmh=s.walk_speed_kmh,
                             measure_crs=ws.metadata["measure_crs"], components="all")  # fmt: skip
    whole = shel.evacuate(layers["population"], layers["shelters"], net, s,
                          units=layers["admin_units"]).load  # fmt: skip
    assert len(load) == len(whole) == len(sh)
    got = load.set_index("shelter_id")["assigned_persons"].sort_index()
    want = whole.set_index("shelter_id")["assigned_persons"].sort_index()
    assert (got.to_numpy() == want.to_numpy()).all()


def test_parts_by_town_without_town_polygons_say_where_to_give_them(longgang):
    from geo_mz.scale.parts import ScaleError

    units = open_workspace(longgang["table"]).read("admin_units")
    county_only = units[units["level"] == "county"]
    with pytest.raises(ScaleError, match="geo-mz init --units"):
        parts_of(county_only, "town")

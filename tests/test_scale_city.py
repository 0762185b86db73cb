"""City parts: one task computes a whole city's counties, with the county parts' results.

A generated workload of six square counties in three cities (代码前四位): 4401 (three
counties side by side), 4406 (one) and 4407 (two counties that do not touch: a MultiPolygon
part), each county its own street networks (two settlements each, so several components).
Every job of the registry runs by county and by city (``parts_of(units, "city")`` derives the
cities from the county codes: the workspace has no city units) and the gathered outputs are
compared row for row; coverage is also compared with one whole-area computation.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner
from scipy.sparse.csgraph import connected_components
from shapely.geometry import box

from geo_mz.cli import main
from geo_mz.datasets.county_relief import add_relief_layers
from geo_mz.datasets.county_workload import write_workload
from geo_mz.eldercare import coverage
from geo_mz.eldercare.circle15 import CircleSettings
from geo_mz.network.graph import network_from_roads
from geo_mz.scale.jobs import ALL_ORDER, JOBS, SCENARIO_JOB
from geo_mz.scale.outputs import (
    OUTPUT_LAYERS,
    gather_kpi_layers,
    gather_outputs,
    part_summary,
)
from geo_mz.scale.province import job_options
from geo_mz.scale.runner import ScaleError, city_parts, part_code, parts_of, run_partitioned

X0, Y0, SIDE_M = 404_000.0, 2_500_000.0, 6_000.0  # near 蓬江, EPSG:4547 metres
CODES = ["440103", "440104", "440106", "440703", "440605", "440705"]  # 2 rows of 3 squares
# Ids the parts number themselves (each part from 1): compared by what they link, not by value.
RUN_IDS = {"line_id", "source_id"}
# Row keys per output layer (``part`` aside, a layer's rows are the same set either way).
ROW_KEYS = ["level", "adcode", "cell_id", "facility_id", "point_id", "kind", "gap_id", "ring",
            "shelter_id", "code", "reason", "unit_a", "unit_b"]  # fmt: skip


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    squares = [
        box(X0 + x * SIDE_M, Y0 + y * SIDE_M, X0 + (x + 1) * SIDE_M, Y0 + (y + 1) * SIDE_M)
        for y in (0, 1)
        for x in (0, 1, 2)
    ]
    counties = gpd.GeoDataFrame(
        {"adcode": CODES, "name": list("甲乙丙丁戊己")}, geometry=squares, crs="EPSG:4547"
    ).to_crs("EPSG:4490")
    w = write_workload(tmp_path_factory.mktemp("city") / "six.gpkg", counties, settlements=2,
                       extent_km=2.0)  # fmt: skip
    add_relief_layers(w)
    return w


def test_city_parts_are_the_counties_grouped_by_code_prefix(ws):
    units = ws.read("admin_units")
    assert not (units["level"] == "city").any()
    parts = parts_of(units, "city")
    assert [p.code for p in parts] == ["4401", "4406", "4407"]
    # Names from the shipped national code table (the workload has no city names).
    assert [p.name for p in parts] == ["广州市", "佛山市", "江门市"]
    counties = units[units["level"] == "county"].set_index("adcode").geometry
    for p in parts:
        mine = counties[counties.index.str.startswith(p.code)]
        assert shapely.equals(p.geometry, mine.union_all())
    assert parts[2].geometry.geom_type == "MultiPolygon"  # 440703 and 440705 do not touch
    # --codes picks cities by their counties' prefix; a city_name field names them.
    assert [p.code for p in parts_of(units, "city", codes=["4407"])] == ["4407"]
    named = city_parts(units[units["level"] == "county"].assign(city_name="某市"))
    assert {p.name for p in named} == {"某市"}
    with pytest.raises(ScaleError, match=r"没有代码以.*no county units"):
        parts_of(units, "city", codes=["45"])


def test_padded_city_and_province_codes_select_by_prefix():
    assert part_code("440100", "city") == "4401"
    assert part_code("440100000000", "city") == "4401"
    assert part_code("440000", "province") == "44"
    assert part_code("441900", "county") == "441900"  # not a city-level unit: kept
    assert part_code("4401", "city") == "4401"
    units = gpd.GeoDataFrame(
        {"adcode": ["440100", "440300", "440103"], "name": ["广州市", "深圳市", "荔湾区"],
         "level": ["city", "city", "county"]},
        geometry=[box(0, 0, 1, 1), box(1, 0, 2, 1), box(0, 0, 0.5, 0.5)], crs="EPSG:4490",
    )  # fmt: skip
    parts = parts_of(units, "city")
    assert [(p.code, p.name) for p in parts] == [("4401", "广州市"), ("4403", "深圳市")]


def _comparable(df: pd.DataFrame) -> pd.DataFrame:
    df = pd.DataFrame(df).drop(columns=["part", *RUN_IDS], errors="ignore")
    if isinstance(df.get("geometry"), gpd.GeoSeries) or "geometry" in df:
        df = df.assign(geometry=shapely.normalize(np.asarray(df["geometry"].values)))
    keys = [k for k in ROW_KEYS if k in df.columns]
    return df.sort_values(keys, kind="stable").reset_index(drop=True)


def _assert_same(job: str, name: str, a: pd.DataFrame, b: pd.DataFrame) -> None:
    a, b = _comparable(a), _comparable(b)
    assert list(a.columns) == list(b.columns), (job, name)
    assert len(a) == len(b), (job, name)
    for col in a.columns:
        x, y = a[col], b[col]
        if col == "geometry":
            gx, gy = np.asarray(x.values), np.asarray(y.values)
            same = shapely.equals_exact(gx, gy, 1e-9) | (
                shapely.is_missing(gx) & shapely.is_missing(gy)
            )
            if job == "rings":  # rings joined from other pieces: the same area, within 1e-6
                same = np.isclose(shapely.area(gx), shapely.area(gy), rtol=1e-6)
                same &= shapely.area(shapely.symmetric_difference(gx, gy)) <= 1e-6 * shapely.area(
                    gx
                )
            assert same.all(), (job, name, col)
        elif pd.api.types.is_float_dtype(x) or pd.api.types.is_float_dtype(y):
            tol = 1e-6 if (job, col) == ("rings", "area_m2") else 1e-12
            np.testing.assert_allclose(x.to_numpy(float), y.to_numpy(float), rtol=tol,
                                       err_msg=f"{job} {name} {col}")  # fmt: skip
        else:
            assert _texts(x) == _texts(y), (job, name, col)


def _texts(s: pd.Series) -> list:
    return [None if pd.isna(v) else str(v) for v in s]


def _options(job: str, ws) -> dict:
    scenario = None
    if job == SCENARIO_JOB:
        # Close every fifth road: the scenario's parts must agree on what the closures do.
        roads = ws.read("roads")
        scenario = {"close_roads": tuple(roads["road_id"].astype(str).iloc[::5])}
    return job_options(job, ws, "county", scenario=scenario)  # the same analyses either way


@pytest.mark.slow
def test_every_job_by_city_gathers_what_it_gathers_by_county(ws, tmp_path):
    units = ws.read("admin_units")
    by = {lvl: parts_of(units, lvl) for lvl in ("county", "city")}
    assert len(by["county"]) == 6 and len(by["city"]) == 3
    assert set(JOBS) == set(ALL_ORDER) | {SCENARIO_JOB}  # a new job must be added here too
    for job in [*ALL_ORDER, SCENARIO_JOB]:
        opts = _options(job, ws)
        runs = {
            lvl: run_partitioned(
                job,
                ws.path,
                parts,
                store=tmp_path / f"{lvl}.gpkg",
                options=opts,
                level=lvl,
                workers=0,
            )
            for lvl, parts in by.items()
        }
        for lvl, r in runs.items():
            assert r.ok, (job, lvl, r.failed[["part", "error"]].to_dict("records"))
        got = {lvl: gather_outputs(job, r, workspace=ws) for lvl, r in runs.items()}
        for name in OUTPUT_LAYERS[job]:
            county, city = got["county"][name], got["city"][name]
            _assert_same(job, name, county, city)
            if job in ("coverage", "relief", "evacuation", "gaps"):
                assert len(county) > 0, (job, name)  # something was compared
        # Each city's figure is its counties' people taken together (coverage: the aged 60+
        # within 15 min, from the gathered times; independent of the parts' own tables).
        summary = part_summary(job, runs["city"], by["city"], gather_kpi_layers(job, runs["city"]))
        assert (summary["status"] == "done").all() and summary["kpi"].notna().all(), job
        if job == "coverage":
            t = run_times(runs["county"])
            for code, share in summary.set_index("part")["kpi"].items():
                mine = t[t["adcode"].str.startswith(code)]
                want = (
                    mine.loc[mine["walk_min"] <= 15.0, "pop_60plus"].sum()
                    / mine["pop_60plus"].sum()
                )
                assert share == pytest.approx(want, rel=1e-12)


def run_times(result) -> pd.DataFrame:
    from geo_mz.scale.runner import gather

    return gather(result.store, result.run_key, "times")


def test_coverage_by_city_equals_the_whole_area(ws, tmp_path):
    units = ws.read("admin_units")
    parts = parts_of(units, "city")
    s = CircleSettings()
    crs = ws.metadata["measure_crs"]
    opts = {"settings": s, "measure_crs": crs}
    r = run_partitioned("coverage", ws.path, parts, store=tmp_path / "runs.gpkg", options=opts,
                        level="city", workers=0)  # fmt: skip
    assert r.ok
    got = run_times(r).set_index("cell_id")
    layers = ws.read_all()
    net = network_from_roads(layers["roads"], mode="walk", walk_speed_kmh=s.walk_speed_kmh,
                             measure_crs=crs, components="all")  # fmt: skip
    n_comp, _ = connected_components(net.graph, directed=True, connection="weak")
    assert n_comp >= 6  # at least one network per county: parts join no components
    centres = coverage.select_centres(layers["elder_care"], kinds=s.kinds, statuses=s.statuses)
    whole = coverage.access_times(net, centres, layers["population"], max_snap_m=s.max_snap_m)
    g = got.loc[whole["cell_id"]]
    np.testing.assert_array_equal(g["walk_min"].to_numpy(float), whole["walk_min"].to_numpy())
    assert (g["nearest_centre"].astype(str).to_numpy() == whole["nearest_centre"].astype(str)).all()
    # The unit tables still give a row per county, town and village of each city.
    tab = gather_outputs("coverage", r)["units"]
    assert sorted(tab.loc[tab["level"] == "county", "adcode"]) == sorted(CODES)
    assert set(tab["part"]) == {"4401", "4406", "4407"}


def test_cli_runs_by_city(ws, tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["scale", "run", "boundaries", "--workspace", str(ws.path),
                                    "--by", "city", "--level", "town", "--workers", "0",
                                    "--out", str(out), "--lang", "en"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "Parts done: 3/3" in res.output
    table = pd.read_csv(out / "scale_boundaries_parts.csv", dtype={"part": str})
    assert sorted(table["part"]) == ["4401", "4406", "4407"]

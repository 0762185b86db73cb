"""Tests of county_workload(joined=True): county roads across the borders of neighbours."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from geo_mz.core.workspace import Workspace
from geo_mz.datasets import county_workload as cw
from geo_mz.datasets.china_counties import read_echarts_counties
from geo_mz.datasets.county_relief import add_relief_layers
from geo_mz.network.graph import network_from_roads

# 蓬江区, 江海区 and 新会区 (Jiangmen) touch each other two by two.
CODES = ("440703", "440704", "440705")
MEASURE = "EPSG:4526"  # CGCS2000 3-degree GK zone 38 (Jiangmen)


@pytest.fixture(scope="module")
def three(shared_data: Path) -> gpd.GeoDataFrame:
    c = read_echarts_counties(shared_data / "boundaries")
    return c[c["adcode"].isin(CODES)].reset_index(drop=True)


@pytest.fixture(scope="module")
def islands(three) -> cw.Workload:
    return cw.county_workload(three)


@pytest.fixture(scope="module")
def joined(three) -> cw.Workload:
    return cw.county_workload(three, joined=True)


def _joins(w: cw.Workload) -> gpd.GeoDataFrame:
    r = w["roads"]
    return r[r["road_id"].str.contains("-J")]


def test_default_is_unchanged_and_joined_only_appends(islands, joined, three):
    assert _joins(islands).empty
    assert "border_roads" not in islands.summary
    for k in ("admin_units", "elder_care", "population"):
        pd.testing.assert_frame_equal(pd.DataFrame(joined[k]), pd.DataFrame(islands[k]))
    n = len(islands["roads"])
    pd.testing.assert_frame_equal(
        pd.DataFrame(joined["roads"].iloc[:n]), pd.DataFrame(islands["roads"])
    )
    # Every county's own rows are still those it gets alone.
    alone = cw.county_layers(three.iloc[[1]])["roads"]
    mine = islands["roads"][islands["roads"]["road_id"].str.startswith(CODES[1])]
    pd.testing.assert_frame_equal(pd.DataFrame(mine.reset_index(drop=True)), pd.DataFrame(alone))


def test_joins_cross_the_shared_border_with_spec_rows(joined, three):
    j = _joins(joined)
    s = joined.summary
    assert s["border_pairs"] == 3 and s["border_pairs_unjoined"] == 0
    assert s["border_roads"] == len(j) and 3 <= len(j) <= 9
    assert joined["roads"]["road_id"].is_unique
    assert list(joined["roads"].columns) == list(cw.county_layers(three.iloc[[0]])["roads"].columns)
    assert joined["roads"].crs.to_epsg() == 4490
    assert set(j["road_class"]) <= {"secondary", "tertiary"}
    assert not j["oneway"].any() and (j["lanes"] == 2).all()
    poly = dict(zip(three["adcode"], three.geometry, strict=True))
    for rid, line in zip(j["road_id"], j.geometry, strict=True):
        a, b = rid.split("-J")[0], rid.split("-J")[1].split("-")[0]
        assert a < b and {a, b} <= set(CODES)
        start, end = shapely.get_point(line, 0), shapely.get_point(line, -1)
        assert poly[a].contains(start) and poly[b].contains(end)
        assert not poly[a].contains(end) and not poly[b].contains(start)
        # The line crosses from one polygon into the other (not round a third county).
        assert line.intersects(poly[a].boundary) and line.intersects(poly[b].boundary)
        others = [poly[c] for c in CODES if c not in (a, b)]
        assert not any(o.buffer(-0.002).intersects(line) for o in others)


def test_one_network_across_the_counties(islands, joined):
    """The largest component holds every county's own largest piece and every join."""
    net = network_from_roads(joined["roads"], mode="drive", measure_crs=MEASURE)
    kept = set(net.edge_id.astype(str))
    assert set(_joins(joined)["road_id"]) <= kept
    for code in CODES:
        own = islands["roads"][islands["roads"]["road_id"].str.startswith(code)]
        alone = network_from_roads(own, mode="drive", measure_crs=MEASURE)
        assert set(alone.edge_id.astype(str)) <= kept, code
    # Without the joins the counties stay islands: the largest piece is one county's.
    net0 = network_from_roads(islands["roads"], mode="drive", measure_crs=MEASURE)
    assert len({e[:6] for e in net0.edge_id.astype(str)}) == 1


def test_joins_are_deterministic_and_depend_on_the_pair_only(three, joined):
    again = cw.county_workload(three.iloc[::-1], joined=True)
    a, b = _joins(joined), _joins(again)
    key = ["road_id"]
    pd.testing.assert_frame_equal(
        pd.DataFrame(a.sort_values(key).reset_index(drop=True)),
        pd.DataFrame(b.sort_values(key).reset_index(drop=True)),
    )
    two = _joins(cw.county_workload(three.iloc[:2], joined=True))
    pair = f"{CODES[0]}-J{CODES[1]}-"
    pd.testing.assert_frame_equal(
        pd.DataFrame(two.reset_index(drop=True)),
        pd.DataFrame(a[a["road_id"].str.startswith(pair)].reset_index(drop=True)),
    )
    other = _joins(cw.county_workload(three, joined=True, seed=7))
    assert not (
        len(other) == len(a)
        and all(x.equals(y) for x, y in zip(other.geometry, a.geometry, strict=True))
    )


def test_written_workspace_takes_relief_layers(three, tmp_path):
    ws = cw.write_workload(tmp_path / "j.gpkg", three, joined=True)
    assert isinstance(ws, Workspace)
    summary = ws.metadata["workload_summary"]  # stored as JSON text
    assert json.loads(summary)["border_roads"] > 0
    roads = ws.read("roads")
    assert roads["road_id"].str.contains("-J").any()
    assert ws.check({"roads": roads})["roads"].ok
    rows = add_relief_layers(ws)
    assert rows and set(ws.layers()) >= {"relief_stores", "shelters"}

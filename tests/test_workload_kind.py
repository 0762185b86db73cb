"""geo_mz.datasets.workload_kind: a joined generated workload told from an island one."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from geo_mz.core.workspace import Workspace
from geo_mz.datasets import county_workload as cw
from geo_mz.datasets.china_counties import read_echarts_counties
from geo_mz.datasets.workload_kind import (
    ISLAND,
    JOINED,
    UNKNOWN,
    WorkloadKindError,
    require_kind,
    workload_kind,
)

# 蓬江区, 江海区 and 新会区 (Jiangmen) touch each other two by two.
CODES = ("440703", "440704", "440705")
PROV = {"synthetic": True, "source": "test", "method": "test"}


@pytest.fixture(scope="module")
def three(shared_data: Path) -> gpd.GeoDataFrame:
    c = read_echarts_counties(shared_data / "boundaries")
    return c[c["adcode"].isin(CODES)].reset_index(drop=True)


@pytest.fixture(scope="module")
def island(three, tmp_path_factory) -> Workspace:
    return cw.write_workload(tmp_path_factory.mktemp("i") / "i.gpkg", three)


@pytest.fixture(scope="module")
def joined(three, tmp_path_factory) -> Workspace:
    return cw.write_workload(tmp_path_factory.mktemp("j") / "j.gpkg", three, joined=True)


def test_kinds_are_told_apart(island, joined):
    assert workload_kind(island).kind == ISLAND
    got = workload_kind(joined)
    n = int(joined.read("roads")["road_id"].str.contains("-J").sum())
    assert got.kind == JOINED and n > 0
    assert got.detail.startswith(f"{n} county roads across ")
    assert require_kind(island, joined=False).kind == ISLAND
    assert require_kind(joined, joined=True).kind == JOINED


def test_the_other_workload_is_refused_naming_the_file(island, joined):
    with pytest.raises(WorkloadKindError, match=r"i\.gpkg: holds the island workload.*--joined"):
        require_kind(island, joined=True)
    with pytest.raises(WorkloadKindError, match=r"j\.gpkg: holds the joined workload.*add"):
        require_kind(joined, joined=False)


def test_a_workspace_not_generated_is_unknown_and_refused(tmp_path):
    ws = Workspace.create(tmp_path / "real.gpkg", name="x", adcode="440703",
                          bounds=(112.0, 22.0, 114.0, 24.0))  # fmt: skip
    assert workload_kind(ws).kind == UNKNOWN
    for flag in (False, True):
        with pytest.raises(WorkloadKindError, match=r"real\.gpkg: holds the unknown workload"):
            require_kind(ws, joined=flag)


def test_record_and_roads_disagreeing_is_an_error(three, island, joined, tmp_path):
    # An island record whose roads hold a joining road (copied from the joined workload).
    roads = island.read("roads")
    j = joined.read("roads")
    extra = j[j["road_id"].str.contains("-J")].head(1)
    bad = cw.write_workload(tmp_path / "bad.gpkg", three)
    bad.write_layers({"roads": gpd.GeoDataFrame(pd.concat([roads, extra], ignore_index=True),
                                                crs=roads.crs)}, {"roads": PROV})  # fmt: skip
    with pytest.raises(WorkloadKindError, match=r"bad\.gpkg: .*island.*1 joining roads"):
        workload_kind(bad)
    # A joined record missing one of its joining roads.
    short = cw.write_workload(tmp_path / "short.gpkg", three, joined=True)
    r = short.read("roads")
    drop = r.index[r["road_id"].str.contains("-J")][0]
    short.write_layers({"roads": r.drop(index=drop)}, {"roads": PROV})
    with pytest.raises(WorkloadKindError, match=r"short\.gpkg: .*joined.*roads hold \d+"):
        workload_kind(short)


def test_postgis_workspace_reads_its_road_ids(island, joined, pg_url):
    from geo_mz.core.workspace_postgis import PostgisWorkspace

    for ws, kind in ((island, ISLAND), (joined, JOINED)):
        pg = PostgisWorkspace.from_workspace(ws, pg_url, schema=f"kind_{kind}", replace=True)
        assert workload_kind(pg) == workload_kind(ws)
        assert require_kind(pg, joined=kind == JOINED).kind == kind

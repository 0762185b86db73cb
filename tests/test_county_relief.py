"""Generated relief stores, shelters and villages for a county workload (so every analysis runs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely

from geo_mz.core.projection import measure_crs_for
from geo_mz.datasets.county_relief import add_relief_layers, relief_layers
from geo_mz.datasets.county_workload import write_workload


@pytest.fixture(scope="module")
def quzhou(echarts_counties, tmp_path_factory):
    _, counties = echarts_counties
    c = counties[counties["matched"].astype(bool) & counties["adcode"].str.startswith("3308")][:3]
    ws = write_workload(tmp_path_factory.mktemp("qz") / "qz.gpkg", c, settlements=2)
    before = ws.read("admin_units")
    written = add_relief_layers(ws)
    return ws, before, written


def test_every_town_gets_a_store_shelters_and_villages_that_tile_it(quzhou):
    ws, before, written = quzhou
    units = ws.read("admin_units")
    towns = units[units["level"] == "town"]
    villages = units[units["level"] == "village"]
    assert written["admin_units"] == len(units) == len(before) + len(villages)
    stores = ws.read("relief_stores")
    assert sorted(stores.loc[stores["level"] == "township", "adcode"]) == sorted(towns["adcode"])
    counties = units.loc[units["level"] == "county", "adcode"]
    assert sorted(stores.loc[stores["level"] == "county", "adcode"]) == sorted(counties)
    crs = measure_crs_for(units)
    t_m = towns.to_crs(crs).set_index("adcode").geometry
    v_m = villages.to_crs(crs)
    for code, poly in t_m.items():
        mine = v_m[v_m["parent_adcode"] == code]
        assert len(mine) >= 1
        # the village cells tile the town: no overlap, no gap
        assert mine.area.sum() == pytest.approx(poly.area, rel=1e-6)
        assert shapely.union_all(mine.geometry.values).area == pytest.approx(poly.area, rel=1e-6)
    seats = ws.read("place_names").to_crs(crs).set_index("adcode").geometry
    vil = v_m.set_index("adcode").geometry
    assert (vil.reindex(seats.index).buffer(1e-6).contains(seats)).all()
    shelters = ws.read("shelters")
    assert (shelters["capacity_persons"] > 0).all()
    assert shelters.groupby("adcode").size().reindex(towns["adcode"]).notna().all()


def test_a_county_alone_gets_the_same_rows_as_in_the_whole_run(quzhou):
    ws, before, _ = quzhou
    roads, pop = ws.read("roads"), ws.read("population")
    whole = relief_layers(before, roads, pop)
    code = str(before.loc[before["level"] == "county", "adcode"].iloc[1])
    alone = relief_layers(before[before["adcode"].astype(str).str.startswith(code)], roads, pop)
    for name in ("relief_stores", "shelters", "place_names"):
        w = whole[name][whole[name]["adcode"].astype(str).str.startswith(code)]
        a = alone[name]
        pd.testing.assert_frame_equal(
            w.drop(columns="geometry").reset_index(drop=True),
            a.drop(columns="geometry").reset_index(drop=True),
        )
        np.testing.assert_allclose(
            shapely.get_coordinates(w.geometry.values), shapely.get_coordinates(a.geometry.values)
        )

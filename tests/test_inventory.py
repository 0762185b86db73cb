import geopandas as gpd
import pandas as pd
import shapely

from geo_mz.outputs.inventory import headline_kpis


def gdf(rows: list[dict], geoms: list) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(pd.DataFrame(rows), geometry=geoms, crs="EPSG:4490")


def test_headline_figures_by_hand():
    box = shapely.box
    towns = gdf(
        [{"adcode": "1", "level": "town"}, {"adcode": "2", "level": "town"}],
        [box(0, 0, 1, 1), box(1, 0, 2, 1)],
    )
    pop = gdf(
        [{"pop_total": 6000.0, "pop_60plus": 600.0}, {"pop_total": 4000.0, "pop_60plus": 400.0}],
        [shapely.Point(0.5, 0.5), shapely.Point(1.5, 0.5)],
    )
    care = gdf(
        [
            {"kind": "nursing_home", "status": "operating", "beds": 30, "nursing_beds": 12},
            {"kind": "care_home", "status": "planned", "beds": 100, "nursing_beds": 100},
            {"kind": "day_care_centre", "status": "operating", "beds": 5, "nursing_beds": 0},
        ],
        [shapely.Point(0.2, 0.2)] * 3,
    )
    shelters = gdf(
        [
            {"capacity_persons": 1000, "effective_area_m2": 2500.0, "class_gb51143": "fixed_short"},
            {"capacity_persons": 500, "effective_area_m2": 500.0, "class_gb51143": "emergency"},
        ],
        [shapely.Point(0.3, 0.3), shapely.Point(0.4, 0.4)],
    )
    stores = gdf(
        [{"level": "county"}, {"level": "township"}, {"level": "township"}],
        [shapely.Point(0.5, 0.5), shapely.Point(0.6, 0.6), shapely.Point(1.6, 0.6)],
    )
    kpis = {
        k.label_en: k
        for k in headline_kpis(
            {
                "admin_units": towns,
                "population": pop,
                "elder_care": care,
                "shelters": shelters,
                "relief_stores": stores,
            }
        )
    }
    assert kpis["Population aged 60+"].value == 1000
    assert kpis["Elder-care beds"].value == 30  # planned and day-care beds do not count
    per_1000 = kpis["Beds per 1,000 aged 60+"]
    assert per_1000.value == 30.0 and per_1000.met is False and "GB 50437" in per_1000.source
    assert (
        kpis["Nursing-type bed share"].value == 40.0 and kpis["Nursing-type bed share"].met is False
    )
    assert kpis["Effective area per person"].value == 2.0 and kpis["Effective area per person"].met
    fixed = kpis["Fixed-shelter capacity / population"]
    assert fixed.value == 10.0 and fixed.met is False  # 1,000 of 10,000 < 15 %
    assert kpis["Towns with a shelter"].value == "1/2" and kpis["Towns with a shelter"].met is False
    assert kpis["Towns with a town store"].value == "2/2" and kpis["Towns with a town store"].met


def test_missing_layers_are_skipped_not_zero():
    assert headline_kpis({}) == []

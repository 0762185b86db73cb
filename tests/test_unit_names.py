"""Town polygons that carry names, not codes: Beijing's 331 real town polygons (../shared/data).

The file names its towns (field 乡) and holds the whole city; ``init --units`` keeps the
district's and finds each town's code in the register, also where the file says 万柳镇 and the
register 万柳地区. Names the register does not know (a town merged or renamed since the file
was drawn) stop the import and are listed.
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from geo_mz.datasets.district import init_district
from geo_mz.datasets.unit_names import UnitNamesError, codes_from_names, town_stem

BEIJING = "towns_beijing/beijing_township_boundaries.shp"


@pytest.mark.parametrize(
    ("name", "stem"),
    [("万柳地区", "万柳"), ("万柳镇", "万柳"), ("上地街道办事处", "上地"), ("上地街道", "上地"),
     ("某某民族乡", "某某"), ("镇", "镇"), ("杨镇镇", "杨镇")],
)  # fmt: skip
def test_town_stem_drops_the_generic_part(name, stem):
    assert town_stem(name) == stem


def _register(*rows):
    return pd.DataFrame(rows, columns=["adcode", "name", "level"])


def test_names_find_codes_exactly_or_by_their_proper_part_and_never_guess():
    reg = _register(("110108023", "万柳地区", "town"), ("110108022", "上地街道", "town"),
                    ("110108100", "东升镇", "town"), ("110108200", "东升乡", "town"))  # fmt: skip
    boxes = [shapely.box(i, 0, i + 1, 1) for i in range(4)]
    units = gpd.GeoDataFrame(geometry=boxes, crs=4490)
    district = shapely.box(0, 0, 3, 1)  # the fourth polygon lies outside
    kept, codes, notes = codes_from_names(
        units, pd.Series(["万柳镇", "上地街道", "东升镇", "别区的镇"]), reg, district, "f.shp"
    )
    assert codes.tolist() == ["110108023", "110108022", "110108100"]
    assert len(kept) == 3
    assert any("1 个单元面不在本辖区内" in n for n in notes)
    assert any("万柳镇→万柳地区" in n for n in notes)
    # 东升 is both a 镇 and a 乡 here: the proper part alone cannot tell which.
    with pytest.raises(UnitNamesError, match="东升街道"):
        codes_from_names(units.iloc[:1], pd.Series(["东升街道"]), reg, district, "f.shp")
    with pytest.raises(UnitNamesError, match="several polygons find one town"):
        codes_from_names(units.iloc[:2], pd.Series(["万柳镇", "万柳地区"]), reg, district, "f.shp")


def test_init_with_a_citys_named_town_polygons(shared_data, echarts_counties, tmp_path):
    _, counties = echarts_counties
    ws, report = init_district(
        "110108", tmp_path / "hd.gpkg", units=shared_data / BEIJING, units_code_field="乡",
        counties=counties, neighbours=False,
    )  # fmt: skip
    units = ws.read("admin_units")
    towns = units[units["level"] == "town"]
    assert report.unit_polygons == {"town": 29}
    assert towns["adcode"].str.startswith("110108").all()
    assert towns["adcode"].is_unique
    # 万柳镇 of the file is the register's 万柳地区, and its polygon is the file's.
    src = gpd.read_file(shared_data / BEIJING)
    wanliu = src.loc[src["乡"] == "万柳镇"].geometry.iloc[0]
    got = towns.loc[towns["adcode"] == "110108023"]
    assert got["name"].iloc[0] == "万柳地区"
    assert got.geometry.iloc[0].symmetric_difference(wanliu).area < 1e-12
    assert any("302 个单元面不在本辖区内" in n for n in report.notes)


def test_names_the_register_does_not_know_stop_the_import(shared_data, echarts_counties, tmp_path):
    _, counties = echarts_counties
    out = tmp_path / "ft.gpkg"
    with pytest.raises(UnitNamesError, match="宛平城镇") as err:
        init_district("110106", out, units=shared_data / BEIJING, units_code_field="乡",
                      counties=counties, neighbours=False)  # fmt: skip
    assert not out.exists()
    # 八宝山街道 is a town of 石景山区 in the register: its polygon's inner point lies inside
    # 丰台's national boundary; the message says where the register has it.
    assert "八宝山街道: 110107001" in str(err.value)


def test_raster_cells_in_slivers_between_town_polygons_take_the_nearest_town(
    shared_data, echarts_counties, tmp_path
):
    # The district's boundary (national polygons) and its towns (another source) differ by up
    # to ~300 m: raster cells inside the one and outside the others still belong to a town.
    import numpy as np
    import rasterio
    from affine import Affine

    from geo_mz.core.import_sources import import_population_raster

    _, counties = echarts_counties
    ws, _ = init_district("110108", tmp_path / "hd.gpkg", units=shared_data / BEIJING,
                          units_code_field="乡", counties=counties, neighbours=False)  # fmt: skip
    units = ws.read("admin_units")
    x0, y0, x1, y1 = units.total_bounds
    res = 0.004
    w, h = int((x1 - x0) / res) + 1, int((y1 - y0) / res) + 1
    with rasterio.open(tmp_path / "pop.tif", "w", driver="GTiff", height=h, width=w, count=1,
                       dtype="float32", crs="EPSG:4326", nodata=-1,
                       transform=Affine(res, 0, x0, 0, -res, y1)) as dst:  # fmt: skip
        dst.write(np.full((h, w), 50.0, dtype="float32"), 1)
    import_population_raster(ws, tmp_path / "pop.tif", aged_share=0.2)
    pop = ws.read("population")
    towns = units[units["level"] == "town"]
    inside = gpd.sjoin(pop[["geometry"]], towns[["geometry"]], predicate="within").index
    gaps = pop.drop(index=inside.unique())
    assert len(gaps) > 0  # cells in slivers exist on these real polygons
    assert pop["adcode"].astype(str).str.len().eq(9).all()  # ... and every cell has its town
    metric = "EPSG:4548"
    for code, cell in zip(gaps["adcode"], gaps.to_crs(metric).geometry, strict=True):
        own = towns.loc[towns["adcode"] == code].to_crs(metric).geometry.iloc[0]
        assert own.distance(cell) <= 500.0

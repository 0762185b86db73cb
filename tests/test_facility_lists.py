"""City-wide facility lists into a district workspace (issue 14), on real Shenzhen data first.

The real case: 462 Shenzhen shelters (GCJ-02, id + lon/lat only) into a workspace of 龙岗
(440307) whose admin_units hold the district polygon (WGS84), with the real OSM roads of central
Longgang as the reference of the datum check. Then the pieces one by one: tolerant headers and
values declared in the specs, XLSX and GBK lists, coordinate columns, defaults, clipping, and the
command line.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from click.testing import CliRunner

from geo_mz.cli import main
from geo_mz.core.catalog import load_spec, text_key
from geo_mz.core.clip import district_from_layers
from geo_mz.core.datum import check_datum
from geo_mz.core.errors import LayerReadError, LayerSpecError, LayerValidationError
from geo_mz.core.projection import gcj02_to_wgs84, wgs84_to_bd09, wgs84_to_gcj02
from geo_mz.core.validate import prepare_layer
from geo_mz.core.workspace import Workspace, file_sha256

SHELTERS = "real_shenzhen/sz_shelters_gcj02_raw.csv"
DISTRICTS = "real_shenzhen/sz_districts_transbigdata.json"
OSM = "real_shenzhen/longgang_osm_map.osm"
#: The <bounds> of the OSM export: the area where its street network is complete.
OSM_BOUNDS = (114.1862, 22.6732, 114.2318, 22.7019)
#: What a shelter list without attributes needs to pass the shelters spec.
FILL = {
    "name": "未命名避难场所",
    "shelter_class": "Ⅲ类",
    "effective_area_m2": "2000",
    "capacity_persons": 1000,
}
#: OSM highway tags onto the roads spec's classes (for the test's reference layer only).
HIGHWAY_CLASS = {
    "motorway": "motorway",
    "motorway_link": "motorway",
    "trunk": "trunk",
    "trunk_link": "trunk",
    "primary": "primary",
    "primary_link": "primary",
    "secondary": "secondary",
    "secondary_link": "secondary",
    "tertiary": "tertiary",
    "tertiary_link": "tertiary",
    "unclassified": "tertiary",
    "residential": "residential",
    "service": "residential",
    "living_street": "residential",
    "pedestrian": "footway",
    "footway": "footway",
    "path": "footway",
    "steps": "footway",
    "cycleway": "footway",
}
PROV = {"synthetic": False, "source": "test", "method": "test"}


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def longgang(shared_data: Path) -> gpd.GeoDataFrame:
    """龙岗's polygon as an admin_units layer (WGS84, from the real transbigdata file)."""
    districts = gpd.read_file(shared_data / DISTRICTS)
    lg = districts[districts["qh"] == "龙岗"]
    assert len(lg) == 1
    return gpd.GeoDataFrame(
        {"adcode": ["440307"], "name": ["龙岗区"], "level": ["county"]},
        geometry=lg.geometry.values,
        crs="EPSG:4326",
    )


@pytest.fixture(scope="module")
def longgang_roads(shared_data: Path) -> gpd.GeoDataFrame:
    """The real OSM ways of central 龙岗 as a roads layer (read with GDAL's OSM driver)."""
    lines = pyogrio.read_dataframe(shared_data / OSM, layer="lines")
    lines = lines[lines["highway"].isin(list(HIGHWAY_CLASS))].reset_index(drop=True)
    assert lines["osm_id"].is_unique and len(lines) > 400
    return gpd.GeoDataFrame(
        {
            "road_id": "w" + lines["osm_id"].astype(str),
            "name": lines["name"],
            "road_class": lines["highway"].map(HIGHWAY_CLASS),
        },
        geometry=lines.geometry.values,
        crs="EPSG:4326",
    )


def make_ws(
    path: Path, units: gpd.GeoDataFrame | None, roads=None, adcode: str = "440307"
) -> Workspace:
    minx, miny, maxx, maxy = (
        units.total_bounds if units is not None else (114.04, 22.58, 114.36, 22.82)
    )
    ws = Workspace.create(
        path,
        name="深圳市龙岗区" if adcode == "440307" else f"深圳 {adcode}",
        adcode=adcode,
        bounds=(minx - 0.02, miny - 0.02, maxx + 0.02, maxy + 0.02),
    )
    layers = {}
    if units is not None:
        layers["admin_units"] = units
    if roads is not None:
        layers["roads"] = roads
    if layers:
        ws.write_layers(layers, {k: PROV for k in layers})
    return ws


def inside_ids(shared_data: Path, units: gpd.GeoDataFrame, *, convert: bool) -> set[str]:
    """Shelter ids inside the district, counted independently with a geopandas sjoin."""
    raw = pd.read_csv(shared_data / SHELTERS)
    x, y = raw["longitude"].to_numpy(), raw["latitude"].to_numpy()
    if convert:
        x, y = gcj02_to_wgs84(x, y)
    pts = gpd.GeoDataFrame(raw[["sid"]], geometry=gpd.points_from_xy(x, y), crs="EPSG:4326")
    joined = gpd.sjoin(pts, units.to_crs("EPSG:4326"), predicate="intersects")
    return set(joined["sid"])


# -- the real case ------------------------------------------------------------------------------


def test_real_city_list_is_clipped_to_longgang(shared_data: Path, tmp_path: Path, longgang):
    ws = make_ws(tmp_path / "lg.gpkg", longgang)
    src = shared_data / SHELTERS
    result = ws.import_file(src, "shelters", source_crs="gcj02", clip=True, defaults=FILL)
    expected = inside_ids(shared_data, longgang, convert=True)
    assert 80 < len(expected) < 120  # 96 of Shenzhen's 462 lie in 龙岗 (without 大鹏)
    kept = set(result.gdf["shelter_id"])
    listed = set(result.clipped["id"])
    assert kept == expected
    assert len(kept) + len(listed) == 462 and not kept & listed  # nothing lost
    # every kept point lies in the district after the GCJ-02 conversion
    district = longgang.geometry.iloc[0]
    assert all(district.covers(p) for p in result.gdf.geometry)
    # the list names the file row, the id and the coordinates as given, and the distance
    raw = pd.read_csv(src)
    for rec in result.clipped.head(20).itertuples():
        assert raw["sid"].iloc[rec.row - 1] == rec.id
        assert raw["longitude"].iloc[rec.row - 1] == pytest.approx(rec.lon)
        assert rec.distance_km > 0
    far = result.clipped.sort_values("distance_km").iloc[-1]
    x, y = gcj02_to_wgs84(np.array([far["lon"]]), np.array([far["lat"]]))
    gk = gpd.GeoSeries([shapely.Point(x[0], y[0]), district], crs=4326).to_crs(4547)
    assert far["distance_km"] == pytest.approx(gk.iloc[0].distance(gk.iloc[1]) / 1000, abs=1e-3)
    notices = {p.code for p in result.problems if p.severity == "notice"}
    assert {"clipped", "outside_district", "default_filled", "normalised_labels"} <= notices
    summary = next(p for p in result.problems if p.code == "clipped")
    assert "440307" in summary.message and f"{len(listed)} rows outside" in summary.message
    per_row = [p for p in result.problems if p.code == "outside_district"]
    assert len(per_row) == len(listed) and {p.feature_id for p in per_row} == listed
    # what is stored: the kept rows, defaults applied and the class as its code
    stored = ws.read("shelters")
    assert len(stored) == len(expected) and set(stored["shelter_class"]) == {"III"}
    assert stored["capacity_persons"].eq(1000).all()
    rec = ws.layer_records().set_index("layer").loc["shelters"]
    assert rec["source_crs"] == "gcj02" and "clipped" in rec["method"]


def test_real_city_list_without_clip_fails_and_changes_nothing(
    shared_data: Path, tmp_path: Path, longgang
):
    ws = make_ws(tmp_path / "lg.gpkg", longgang)
    before = file_sha256(ws.path)
    with pytest.raises(LayerValidationError) as exc:
        ws.import_file(shared_data / SHELTERS, "shelters", source_crs="gcj02", defaults=FILL)
    outside = [p for p in exc.value.problems if p.code == "outside_area"]
    assert len(outside) > 150 and all(p.row and p.feature_id for p in outside)
    assert file_sha256(ws.path) == before and ws.layers() == ["admin_units"]


def test_clip_falls_back_to_the_workspace_bounds(shared_data: Path, tmp_path: Path):
    ws = make_ws(tmp_path / "bare.gpkg", None)
    result = ws.import_file(
        shared_data / SHELTERS, "shelters", source_crs="gcj02", clip=True, defaults=FILL
    )
    assert "bounds" in result.district
    minx, miny, maxx, maxy = ws.bounds
    b = result.gdf.total_bounds
    assert minx <= b[0] and b[2] <= maxx and miny <= b[1] and b[3] <= maxy
    assert len(result.gdf) + len(result.clipped) == 462


def test_district_choice(longgang):
    a = longgang.assign(adcode="440307", level="county")
    town = gpd.GeoDataFrame(
        {"adcode": ["440307001"], "name": ["平湖街道"], "level": ["town"]},
        geometry=[shapely.box(114.1, 22.6, 114.15, 22.65)],
        crs=4326,
    )
    units = pd.concat([a, town], ignore_index=True)
    d = district_from_layers(units, adcode="440307", bounds=(0, 0, 1, 1), measure_crs="EPSG:4547")
    assert d.source == "admin_units" and "龙岗区" in d.label_zh and "county" in d.label_en
    # no row with the workspace's code: the county-level rows inside the jurisdiction
    other = district_from_layers(units, adcode="440300", bounds=(0, 0, 1, 1), measure_crs="x")
    assert other.source == "admin_units" and "1 county-level" in other.label_en
    none = district_from_layers(town, adcode="440300", bounds=(0, 0, 1, 1), measure_crs="x")
    assert none.source == "bounds" and none.geometry.equals(shapely.box(0, 0, 1, 1))


# -- datum check --------------------------------------------------------------------------------


def test_datum_check_on_real_shelters_and_the_real_longgang_roads(
    shared_data: Path, tmp_path: Path, longgang, longgang_roads
):
    """The real list near the real roads: evidence too weak for a verdict, and no false alarm.

    Only about a dozen of the 462 shelters lie within 500 m of this 4.7 × 3.2 km extract; they are
    schools and parks set back from the streets, with a median distance of about 200 m under every
    reading, so no reading fits clearly better. The check must then say so (inconclusive, with the
    figures) and never claim the wrong datum: declared GCJ-02 (right) gives no warning, and read
    as WGS84 (wrong) it must not say the points fit as WGS84.
    """
    ws = make_ws(tmp_path / "lg.gpkg", longgang, longgang_roads)
    src = shared_data / SHELTERS
    right = ws.import_file(src, "shelters", source_crs="gcj02", clip=True, defaults=FILL)
    assert right.datum is not None and right.datum.declared == "gcj02"
    assert right.datum.verdict != "suspect"
    assert not [p for p in right.problems if p.code == "datum_suspect"]
    wrong = ws.import_file(src, "shelters", source_crs="EPSG:4326", clip=True, defaults=FILL)
    assert wrong.datum is not None and wrong.datum.declared == "wgs84"
    assert wrong.datum.verdict != "fits"
    if wrong.datum.verdict == "suspect":
        assert wrong.datum.best == "gcj02"
    assert wrong.datum.points_used >= 5
    assert set(wrong.datum.median_m) == {"wgs84", "gcj02", "bd09"}
    note = next(p for p in wrong.problems if p.code in ("datum_check", "datum_suspect"))
    assert "m" in note.message and "roads" in note.message
    # read as WGS84 the clip keeps the raw positions: counted independently as well
    assert set(wrong.gdf["shelter_id"]) == inside_ids(shared_data, longgang, convert=False)
    # the boundary signal: a city's list crosses a district's boundary both ways (no verdict)
    as_gcj = inside_ids(shared_data, longgang, convert=True)
    as_wgs = inside_ids(shared_data, longgang, convert=False)
    assert wrong.datum.area_crossings["gcj02"] == (len(as_gcj - as_wgs), len(as_wgs - as_gcj))
    assert wrong.datum.area_crossings["gcj02"] == (3, 2)
    assert "district boundary" in note.message


@pytest.fixture(scope="module")
def shenzhen(shared_data: Path) -> gpd.GeoDataFrame:
    """深圳市 (440300) as one admin_units polygon: the union of its real district polygons."""
    districts = gpd.read_file(shared_data / DISTRICTS).to_crs("EPSG:4326")
    return gpd.GeoDataFrame(
        {"adcode": ["440300"], "name": ["深圳市"], "level": ["city"]},
        geometry=[districts.union_all()],
        crs="EPSG:4326",
    )


def test_datum_check_by_the_boundary_of_the_city_whose_list_it_is(
    shared_data: Path, tmp_path: Path, shenzhen
):
    """深圳's own list read in the wrong datum pushes coastal shelters out of 深圳, never in.

    No roads: the boundary alone decides. Read as WGS84, 7 of the 462 Amap-geocoded shelters
    fall outside the city (into Hong Kong or the sea) that lie inside after GCJ-02 → WGS84, and
    none the other way: a one-sided sign test gives p = 0.5^7 = 0.008 <= 0.01, a warning that
    names GCJ-02. Declared right (gcj02), no warning. Counts cross-checked with geopandas.
    """
    ws = make_ws(tmp_path / "sz.gpkg", shenzhen, adcode="440300")
    src = shared_data / SHELTERS
    as_gcj = inside_ids(shared_data, shenzhen, convert=True)
    as_wgs = inside_ids(shared_data, shenzhen, convert=False)
    assert (len(as_gcj - as_wgs), len(as_wgs - as_gcj)) == (7, 0)
    wrong = ws.import_file(src, "shelters", source_crs="EPSG:4326", clip=True, defaults=FILL)
    assert wrong.datum.verdict == "suspect" and wrong.datum.best == "gcj02"
    assert wrong.datum.area_crossings["gcj02"] == (7, 0)
    (w,) = [p for p in wrong.problems if p.code == "datum_suspect"]
    assert w.severity == "warning" and "--source-crs gcj02" in w.message
    assert "p = 0.008" in w.message and "GCJ-02" in w.message
    right = ws.import_file(src, "shelters", source_crs="gcj02", clip=True, defaults=FILL)
    assert right.datum.verdict != "suspect"
    assert right.datum.area_crossings["wgs84"] == (0, 7)
    assert not [p for p in right.problems if p.code == "datum_suspect"]
    assert len(right.gdf) == len(raw_ids(shared_data)) == 462


def raw_ids(shared_data: Path) -> set[str]:
    return set(pd.read_csv(shared_data / SHELTERS)["sid"])


def test_boundary_signal_needs_one_sided_crossings():
    """Synthetic: a square district; points shifted across its edge one way, or both ways."""
    area = shapely.box(114.0, 22.5, 114.1, 22.6)
    rng = np.random.default_rng(3)
    lon = rng.uniform(114.0, 114.1, 200)
    lat = rng.uniform(22.5, 22.6, 200)
    gx, gy = wgs84_to_gcj02(lon, lat)  # an Amap export of points inside the district
    one_way = check_datum(gx, gy, "wgs84", None, area=area)
    a, b = one_way.area_crossings["gcj02"]
    assert one_way.verdict == "suspect" and one_way.best == "gcj02" and a >= 7 and b == 0
    # a list spreading far beyond the district: crossings both ways, no verdict
    lon2 = np.r_[lon, rng.uniform(113.9, 114.2, 400)]
    lat2 = np.r_[lat, rng.uniform(22.4, 22.7, 400)]
    both = check_datum(*wgs84_to_gcj02(lon2, lat2), "wgs84", None, area=area)
    _a2, b2 = both.area_crossings["gcj02"]
    assert b2 > 0 and both.verdict == "not_possible"
    right = check_datum(lon, lat, "wgs84", None, area=area)
    assert right.verdict != "suspect" and right.area_crossings["gcj02"][0] == 0


def points_on_roads(roads: gpd.GeoDataFrame, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Points exactly on the real roads, inside the area the OSM export covers completely."""
    box = gpd.GeoSeries([shapely.box(*OSM_BOUNDS)], crs=4326).to_crs(4547).iloc[0]
    pieces = roads.to_crs(4547).sort_values("road_id").geometry.intersection(box)
    pieces = pieces[~pieces.is_empty & (pieces.length > 50)]
    step = max(1, len(pieces) // n)
    mids = [g.interpolate(0.5, normalized=True) for g in pieces.iloc[::step].iloc[:n]]
    pts = gpd.GeoSeries(mids, crs=4547).to_crs(4326)
    return pts.x.to_numpy(), pts.y.to_numpy()


def write_points(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    pd.DataFrame({"lng": x, "lat": y}).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("given", "declared", "verdict", "best"),
    [
        ("wgs84", "EPSG:4326", "fits", "wgs84"),  # on the roads, declared right
        ("gcj02", "EPSG:4326", "suspect", "gcj02"),  # Amap export taken for WGS84
        ("gcj02", "gcj02", "fits", "gcj02"),
        ("wgs84", "gcj02", "suspect", "wgs84"),  # WGS84 declared gcj02 by mistake
        ("bd09", "EPSG:4490", "suspect", "bd09"),  # Baidu export taken for CGCS2000
    ],
)
def test_datum_check_with_points_on_the_real_roads(
    tmp_path: Path, longgang, longgang_roads, given, declared, verdict, best
):
    x, y = points_on_roads(longgang_roads)
    convert = {"wgs84": lambda a, b: (a, b), "gcj02": wgs84_to_gcj02, "bd09": wgs84_to_bd09}
    src = write_points(tmp_path / "pts.csv", *convert[given](x, y))
    ws = make_ws(tmp_path / "lg.gpkg", longgang, longgang_roads)
    result = ws.import_file(
        src, "shelters", source_crs=declared, defaults={**FILL, "shelter_id": "auto"}
    )
    check = result.datum
    assert (check.verdict, check.best, check.points_used) == (verdict, best, len(x))
    warnings = [p for p in result.problems if p.code == "datum_suspect"]
    if verdict == "fits":
        assert check.median_m[best] < 1 and not warnings
    else:
        (w,) = warnings
        assert (
            w.severity == "warning"
            and f"--source-crs {'EPSG:4490' if best == 'wgs84' else best}" in w.message
        )
        assert check.median_m[best] < 1 < 20 < check.median_m[check.declared]
        lead = {
            "gcj02": "these look like GCJ-02 (Amap, Tencent) coordinates",
            "bd09": "these look like BD-09 (Baidu) coordinates",
            "wgs84": "these look like WGS84/CGCS2000 coordinates already",
        }[best]
        assert lead in w.message and w.message.index("这些坐标像是") < w.message.index(lead)


def test_datum_check_without_a_reference_says_so(tmp_path: Path, longgang):
    x, y = np.array([114.2, 114.21]), np.array([22.69, 22.692])
    src = write_points(tmp_path / "pts.csv", x, y)
    ws = make_ws(tmp_path / "lg.gpkg", longgang)
    result = ws.import_file(
        src, "shelters", source_crs="gcj02", defaults={**FILL, "shelter_id": "auto"}
    )
    assert result.datum.verdict == "not_possible"
    (note,) = [p for p in result.problems if p.code == "datum_check"]
    assert note.severity == "notice" and "no roads layer" in note.message
    # too few points near the reference is not a verdict either
    roads = gpd.GeoDataFrame(
        geometry=[shapely.LineString([(114.2, 22.69), (114.3, 22.69)])], crs=4326
    )
    few = check_datum(x, y, "wgs84", roads)
    assert few.verdict == "not_possible" and few.points_used == 2


# -- tolerant headers and values ----------------------------------------------------------------


def test_shelter_class_spellings_all_map_to_the_code(tmp_path: Path):
    spellings = ["Ⅲ类", "III类", "3", "三类", "三", "ＩＩＩ", "iii", "３类", "Class III", "Ⅲ类场所"]
    others = {"Ⅱ类": "II", "2": "II", "二类": "II", "Ⅰ类": "I", "I类": "I", "一": "I"}
    values = [*spellings, *others, "IV"]
    df = pd.DataFrame(
        {
            "编号": [f"S{i}" for i in range(len(values))],
            "场所名称": [f"场所{i}" for i in range(len(values))],
            "类别": values,
            "有效避难面积(平方米)": 3000,
            "可容纳人数（人）": 2000,
            "详细地址": "龙岗大道",
            "经度": 114.2,
            "纬度": 22.7,
        }
    )
    src = tmp_path / "classes.csv"
    df.to_csv(src, index=False, encoding="utf-8-sig")  # with a BOM, as Excel saves it
    result = prepare_layer(src, "shelters", source_crs="EPSG:4490")
    (err,) = result.errors
    assert (err.row, err.feature_id, err.field, err.code) == (
        len(values),
        f"S{len(values) - 1}",
        "shelter_class",
        "not_allowed",
    )
    classes = result.gdf["shelter_class"].tolist()
    assert classes[: len(spellings)] == ["III"] * len(spellings)
    assert classes[len(spellings) : -1] == list(others.values())
    renamed = {p.field: p.message for p in result.problems if p.code == "renamed_field"}
    assert set(renamed) == {
        "shelter_id",
        "name",
        "shelter_class",
        "effective_area_m2",
        "capacity_persons",
        "address",
    }
    assert "'可容纳人数（人）' read as field 'capacity_persons'" in renamed["capacity_persons"]
    (labels,) = [p for p in result.problems if p.code == "normalised_labels"]
    assert labels.severity == "notice" and "Ⅲ类→III" in labels.message


def test_more_header_aliases_and_value_synonyms(tmp_path: Path):
    units = tmp_path / "units.csv"
    units.write_text(
        "区划代码,名称,级别,上级代码,经度,纬度\n440307001,平湖街道,街道,440307,114.1,22.6\n",
        encoding="utf-8",
    )
    # admin_units are polygons: the point list fails on geometry only, the attributes are read
    result = prepare_layer(units, "admin_units", source_crs="EPSG:4490")
    assert {p.code for p in result.errors} == {"wrong_geometry_type"}
    assert result.gdf[["adcode", "level", "parent_adcode"]].iloc[0].tolist() == [
        "440307001",
        "town",
        "440307",
    ]
    care = tmp_path / "care.csv"
    care.write_text(
        "序号,机构名称,机构类型,运营状态,床位,地址,lng,lat\n"
        "1,龙城长者饭堂,长者饭堂,正常运营,0,龙城街道,114.24,22.72\n"
        "2,坪地敬老院,乡镇敬老院,在建,60,坪地街道,114.3,22.76\n",
        encoding="utf-8",
    )
    result = prepare_layer(care, "elder_care", source_crs="gcj02")
    assert result.ok, result.errors
    assert result.gdf["facility_id"].tolist() == ["1", "2"]
    assert result.gdf["kind"].tolist() == ["meal_point", "township_home"]
    assert result.gdf["status"].tolist() == ["operating", "under_construction"]


def test_spec_aliases_are_checked(tmp_path: Path):
    spec = tmp_path / "shelters.toml"
    text = Path("layers/shelters.toml").read_text(encoding="utf-8")
    spec.write_text(text.replace('"三类", "三"', '"三类", "二"'), encoding="utf-8")
    with pytest.raises(LayerSpecError, match="would mean both"):
        load_spec(spec)
    spec.write_text(
        text.replace('aliases = ["安置人数"', 'aliases = ["容纳人数"'), encoding="utf-8"
    )
    with pytest.raises(LayerSpecError, match="already names field 'capacity_persons'"):
        load_spec(spec)
    spec.write_text(
        text.replace(
            'title = { zh = "名称", en = "Name" }',
            'title = { zh = "名称", en = "Name" }\ndefault = "x"',
        ),
        encoding="utf-8",
    )
    with pytest.raises(LayerSpecError, match="required field cannot have a default"):
        load_spec(spec)
    assert text_key(" Ｃｌａｓｓ　Ⅲ ") == "classiii"


# -- list formats -------------------------------------------------------------------------------


def test_xlsx_with_chinese_headers_title_row_and_sheets(tmp_path: Path):
    from openpyxl import Workbook

    wb = Workbook()
    notes = wb.active
    notes.title = "说明"
    notes.append(["本表为示例"])
    sheet = wb.create_sheet("避难场所")
    sheet.append(["深圳市龙岗区应急避难场所名录"])  # a title above the header
    sheet.append(["场所编号", "场所名称", "类别", "有效面积", "容纳人数", "经度", "纬度"])
    sheet.append(["S1", "龙岗公园", "Ⅱ类", 12000, 8000, 114.25, 22.72])
    sheet.append([None] * 7)  # a blank row between entries
    sheet.append(["S2", "平湖广场", 3, "3000", "2000", "114.1", "22.68"])
    sheet.append(["S3", "坏坐标", "III", 3000, 2000, "东经114", 22.7])
    src = tmp_path / "shelters.xlsx"
    wb.save(src)
    with pytest.raises(LayerReadError, match=r"sheet '说明' holds no table.*--sheet"):
        prepare_layer(src, "shelters", source_crs="EPSG:4490")
    result = prepare_layer(src, "shelters", source_crs="EPSG:4490", layer_name="避难场所")
    assert result.gdf["shelter_id"].tolist() == ["S1", "S2", "S3"]
    assert result.gdf["shelter_class"].tolist() == ["II", "III", "III"]
    assert result.gdf["capacity_persons"].tolist()[:2] == [8000, 2000]
    # rows are counted below the header; the blank row keeps its place
    (err,) = [p for p in result.errors if p.field == "经度"]
    assert (err.row, err.feature_id, err.code) == (
        4,
        "S3",
        "wrong_type",
    ) and "东经114" in err.message
    codes = {p.code for p in result.problems if p.severity == "notice"}
    assert {"skipped_title_rows", "blank_rows", "renamed_field"} <= codes
    with pytest.raises(LayerReadError, match=r"no sheet 'x'; sheets are \['说明', '避难场所'\]"):
        prepare_layer(src, "shelters", layer_name="x")


def test_gbk_csv(tmp_path: Path):
    text = (
        "编号,名称,类别,有效避难面积,可容纳人数,经度,纬度\n"
        "S1,坪山体育中心,Ⅰ类,50000,30000,114.35,22.7\n"
    )
    src = tmp_path / "gbk.csv"
    src.write_bytes(text.encode("gbk"))
    with pytest.raises(LayerReadError, match="--encoding gbk") as exc:
        prepare_layer(src, "shelters", source_crs="EPSG:4490")
    assert str(src) in str(exc.value)
    result = prepare_layer(src, "shelters", source_crs="EPSG:4490", encoding="gbk")
    assert result.ok, result.errors
    assert (
        result.gdf["name"].iloc[0] == "坪山体育中心" and result.gdf["shelter_class"].iloc[0] == "I"
    )


def test_coordinate_columns(tmp_path: Path):
    src = tmp_path / "xy.csv"
    src.write_text("编号,名称,东西,南北\nS1,a,114.2,22.7\n", encoding="utf-8")
    with pytest.raises(LayerReadError) as exc:
        prepare_layer(src, "shelters", source_crs="EPSG:4490")
    message = str(exc.value)
    assert str(src) in message and "--lon-field" in message and "东西" in message
    assert message.index("找不到经度列") < message.index("no longitude column")
    named = prepare_layer(
        src, "shelters", source_crs="EPSG:4490", lon_field="东西", lat_field="南北"
    )
    assert named.gdf.geometry.iloc[0].equals(shapely.Point(114.2, 22.7))
    with pytest.raises(LayerReadError, match="no column 'lon'"):
        prepare_layer(src, "shelters", lon_field="lon", lat_field="南北")
    two = tmp_path / "two.csv"
    two.write_text("id,gcj_lng,gcj_lat,wgs_lng,wgs_lat\nS1,1,2,3,4\n", encoding="utf-8")
    with pytest.raises(LayerReadError, match="several columns could be the longitude"):
        prepare_layer(two, "shelters")
    amap = tmp_path / "amap.csv"
    amap.write_text(
        'id,name,location\nS1,公园,"114.2,22.7"\nS2,广场,"114.21, 22.71"\nS3,坏,no\n',
        encoding="utf-8",
    )
    result = prepare_layer(amap, "shelters", source_crs="gcj02", defaults=FILL)
    assert [(p.row, p.field, p.code) for p in result.errors] == [
        (3, "location", "wrong_type"),
        (3, "geometry", "empty_geometry"),
    ]
    assert result.gdf.geometry.iloc[1].x == pytest.approx(gcj02_to_wgs84(114.21, 22.71)[0])
    ahead = tmp_path / "ahead.csv"
    ahead.write_text("id,经度(GCJ02),高德纬度\nS1,114.2,22.7\n", encoding="utf-8")
    assert prepare_layer(ahead, "shelters", source_crs="gcj02", defaults=FILL).ok


# -- defaults -----------------------------------------------------------------------------------


def test_required_fields_absent_fail_unless_given(tmp_path: Path):
    src = tmp_path / "coords.csv"
    src.write_text("lon,lat\n114.2,22.7\n114.21,22.71\n114.22,22.72\n", encoding="utf-8")
    bare = prepare_layer(src, "shelters", source_crs="gcj02")
    missing = {p.field for p in bare.errors if p.code == "missing_field"}
    assert missing == {
        "shelter_id",
        "name",
        "shelter_class",
        "effective_area_m2",
        "capacity_persons",
    }
    assert all("--default" in p.message for p in bare.errors)
    result = prepare_layer(
        src, "shelters", source_crs="gcj02", defaults={**FILL, "shelter_id": "auto"}
    )
    assert result.ok, result.errors
    assert result.gdf["shelter_id"].tolist() == ["S0001", "S0002", "S0003"]
    notes = {p.field: p.message for p in result.problems if p.code == "default_filled"}
    assert "not in the file, set to 1000 for 3 rows (--default)" in notes["capacity_persons"]
    assert notes["capacity_persons"].startswith("capacity_persons：不在文件中，3 行设为 1000")
    assert "S0001–S0003" in notes["shelter_id"]
    prefixed = prepare_layer(
        src, "shelters", source_crs="gcj02", defaults={**FILL, "shelter_id": "auto:LG-"}
    )
    assert prefixed.gdf["shelter_id"].iloc[0] == "LG-0001"


def test_defaults_fill_empty_cells_and_ids_stay_unique(tmp_path: Path):
    src = tmp_path / "part.csv"
    src.write_text(
        "编号,名称,类别,有效避难面积,可容纳人数,经度,纬度\n"
        "S1,a,III,3000,,114.2,22.7\n"
        ",b,III,3000,500,114.2,22.7\n"
        "S1,c,III,3000,,114.2,22.7\n",
        encoding="utf-8",
    )
    result = prepare_layer(
        src,
        "shelters",
        source_crs="EPSG:4490",
        defaults={"capacity_persons": "1000", "shelter_id": "auto"},
    )
    assert result.gdf["capacity_persons"].tolist() == [1000, 500, 1000]
    assert result.gdf["shelter_id"].tolist() == ["S1", "S0002", "S1"]
    (dup,) = result.errors  # a default never hides a duplicate id
    assert (dup.row, dup.field, dup.code) == (3, "shelter_id", "duplicate_id")
    assert "row 1" in dup.message
    notes = {p.field: p.message for p in result.problems if p.code == "default_filled"}
    assert "2 empty cells set to '1000'" in notes["capacity_persons"]
    with pytest.raises(LayerSpecError, match="only the id field"):
        prepare_layer(src, "shelters", source_crs="EPSG:4490", defaults={"name": "auto"})
    with pytest.raises(LayerSpecError, match="has no field 'colour'"):
        prepare_layer(src, "shelters", source_crs="EPSG:4490", defaults={"colour": "red"})
    # a default may name the field by its Chinese title, and goes through validation
    bad = prepare_layer(src, "shelters", source_crs="EPSG:4490", defaults={"可容纳人数": "很多"})
    assert {(p.row, p.field, p.code) for p in bad.errors} >= {(1, "capacity_persons", "wrong_type")}


def test_spec_defaults_for_absent_optional_fields(tmp_path: Path):
    src = tmp_path / "roads.geojson"
    src.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"路段编号": "R1", "道路等级": "次干路"},
                        "geometry": {
                            "type": "LineString",
                            "coordinates": [[114.2, 22.7], [114.21, 22.7]],
                        },
                    }
                ],
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    result = prepare_layer(src, "roads")
    assert result.ok and result.gdf[["oneway", "bridge", "tunnel"]].iloc[0].tolist() == [False] * 3
    notes = [p for p in result.problems if p.code == "default_filled"]
    assert sorted(p.field for p in notes) == ["bridge", "oneway", "tunnel"]
    assert "spec's default False for 1 rows" in notes[0].message


# -- clip and row numbers -----------------------------------------------------------------------


def test_clip_keeps_file_rows_and_never_drops_bad_coordinates(tmp_path: Path, longgang):
    ws = make_ws(tmp_path / "lg.gpkg", longgang)
    src = tmp_path / "mixed.csv"
    src.write_text(
        "编号,名称,类别,有效避难面积,可容纳人数,经度,纬度\n"
        "S1,福田,III,3000,2000,114.05,22.54\n"  # outside 龙岗
        "S2,龙城,III,3000,2000,114.24,22.72\n"
        "S3,坪地,V类,3000,2000,114.3,22.76\n"  # inside, bad class
        "S4,坏,III,3000,2000,abc,22.7\n",  # bad coordinates: kept, so it is reported
        encoding="utf-8",
    )
    before = file_sha256(ws.path)
    with pytest.raises(LayerValidationError) as exc:
        ws.import_file(src, "shelters", source_crs="EPSG:4490", clip=True)
    errors = {
        (p.row, p.feature_id, p.field, p.code) for p in exc.value.problems if p.severity == "error"
    }
    assert errors == {
        (3, "S3", "shelter_class", "not_allowed"),
        (4, "S4", "经度", "wrong_type"),
        (4, "S4", "geometry", "empty_geometry"),
    }
    assert file_sha256(ws.path) == before  # nothing half-written
    result = prepare_layer(
        src,
        "shelters",
        source_crs="EPSG:4490",
        clip_to=district_from_layers(
            longgang, adcode="440307", bounds=ws.bounds, measure_crs="EPSG:4547"
        ),
    )
    assert result.clipped[["row", "id"]].values.tolist() == [[1, "S1"]]
    assert result.gdf["shelter_id"].tolist() == ["S2", "S3", "S4"]


def test_nothing_inside_the_district_is_an_error(tmp_path: Path, longgang):
    ws = make_ws(tmp_path / "lg.gpkg", longgang)
    src = write_points(tmp_path / "far.csv", np.array([113.9, 113.91]), np.array([22.5, 22.51]))
    with pytest.raises(LayerValidationError, match="no row lies inside the district"):
        ws.import_file(src, "shelters", source_crs="EPSG:4490", clip=True, defaults=FILL)


# -- command line -------------------------------------------------------------------------------


def test_cli_import_with_clip_fields_and_defaults(shared_data: Path, tmp_path: Path, longgang):
    ws = make_ws(tmp_path / "lg.gpkg", longgang)
    src = tmp_path / "sz.csv"
    raw = pd.read_csv(shared_data / SHELTERS)
    raw.rename(columns={"longitude": "东西向", "latitude": "南北向"}).to_csv(src, index=False)
    args = ["import", str(src), "--layer", "shelters", "--workspace", str(ws.path)]
    args += ["--source-crs", "gcj02", "--clip", "--lon-field", "东西向", "--lat-field", "南北向"]
    res = invoke(*args)
    assert res.exit_code == 2 and "--default name=VALUE" in res.stderr
    assert "nothing was changed" in res.stderr
    for k, v in FILL.items():
        args += ["--default", f"{k}={v}"]
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    expected = inside_ids(shared_data, longgang, convert=True)
    assert f"imported {len(expected)} " in res.stdout
    assert f"{462 - len(expected)} rows outside the district" in res.stderr
    listed = [line for line in res.stderr.splitlines() if line.startswith("  ") and "\tsz" in line]
    assert len(listed) == 462 - len(expected)  # the whole list, not cut short
    assert len(Workspace(ws.path).read("shelters")) == len(expected)


def test_cli_validate_with_clip_and_json(shared_data: Path, tmp_path: Path, longgang):
    ws = make_ws(tmp_path / "lg.gpkg", longgang)
    src = str(shared_data / SHELTERS)
    res = invoke("validate", src, "--layer", "shelters", "--source-crs", "gcj02", "--clip")
    assert res.exit_code == 2 and "--clip needs --workspace" in res.stderr
    args = ["validate", src, "--layer", "shelters", "--source-crs", "gcj02", "--json"]
    args += ["--workspace", str(ws.path), "--clip", "--default", "shelter_class=三类"]
    for k in ("name", "effective_area_m2", "capacity_persons"):
        args += ["--default", f"{k}={FILL[k]}"]
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    assert body["rows"] + len(body["clipped"]) == 462
    assert body["datum"] == "not_possible" and "440307" in body["district"]
    res = invoke("validate", src, "--layer", "shelters", "--lon-field", "x")
    assert res.exit_code == 2 and "--lon-field" in res.stderr and src in res.stderr
    res = invoke("validate", src, "--layer", "shelters", "--default", "oops")
    assert res.exit_code == 2 and "FIELD=VALUE" in res.stderr

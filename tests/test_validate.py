"""Every validation error, each triggered by a small bad file and named by file, row and field."""

import json
import warnings
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
import shapely
from click.testing import CliRunner

from geo_mz.core.errors import LayerReadError, LayerValidationError
from geo_mz.core.validate import load_layer, prepare_layer
from geo_mz.core.workspace import Workspace

from .conftest import care_props, feature, point, write_geojson


def write_shp(gdf: gpd.GeoDataFrame, path: Path, encoding: str) -> None:
    """Write a shapefile the way desktop GIS does (names cut to 10 chars, no warnings kept)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GDAL warns about the 10-char DBF names and no CRS
        pyogrio.write_dataframe(gdf, path, encoding=encoding)


BOWTIE = {
    "type": "Polygon",
    "coordinates": [
        [[113.0, 22.6], [113.01, 22.61], [113.01, 22.6], [113.0, 22.61], [113.0, 22.6]]
    ],
}


def unit_props(code: str, **over: object) -> dict:
    p = {"adcode": code, "name": f"单元{code}", "level": "town"}
    p.update(over)
    return p


def codes_at(result, row: int) -> set[tuple[str | None, str]]:
    return {(p.field, p.code) for p in result.problems if p.row == row and p.severity == "error"}


def test_a_good_file_passes(good_care_file: Path):
    result = prepare_layer(good_care_file, "elder_care")
    assert result.ok, result.errors
    assert result.gdf.crs == "EPSG:4490"
    assert str(result.gdf["beds"].dtype) == "Int64"
    assert list(result.gdf.columns[:3]) == ["facility_id", "name", "kind"]


@pytest.mark.parametrize(
    ("props", "geometry", "field", "code"),
    [
        (care_props(1, name=None), point(113.05, 22.6), "name", "missing_required"),
        (care_props(1, name="  "), point(113.05, 22.6), "name", "missing_required"),
        (care_props(1, kind="rocket"), point(113.05, 22.6), "kind", "not_allowed"),
        (care_props(1, beds="lots"), point(113.05, 22.6), "beds", "wrong_type"),
        (care_props(1, beds=10.5), point(113.05, 22.6), "beds", "wrong_type"),
        (care_props(1, beds=-3, nursing_beds=None), point(113.05, 22.6), "beds", "out_of_range"),
        (care_props(1, nursing_beds=500), point(113.05, 22.6), "nursing_beds", "exceeds_field"),
        (care_props(1, adcode="44-07"), point(113.05, 22.6), "adcode", "bad_pattern"),
        (care_props(1, opened_year=1800), point(113.05, 22.6), "opened_year", "out_of_range"),
        (care_props(1), None, "geometry", "empty_geometry"),
        (care_props(1), {"type": "Point", "coordinates": []}, "geometry", "empty_geometry"),
        (
            care_props(1),
            {"type": "LineString", "coordinates": [[113, 22.6], [113.1, 22.6]]},
            "geometry",
            "wrong_geometry_type",
        ),
        (care_props(1), point(22.6, 113.05), "geometry", "outside_area"),
    ],
)
def test_each_error_names_file_row_and_field(tmp_path: Path, props, geometry, field, code):
    good = feature(care_props(0), point(113.04, 22.6))
    src = write_geojson(tmp_path / "bad.geojson", [good, feature(props, geometry)])
    with pytest.raises(LayerValidationError) as exc:
        load_layer(src, "elder_care")
    errors = [p for p in exc.value.problems if p.severity == "error"]
    assert [(p.row, p.field, p.code) for p in errors] == [(2, field, code)]
    assert errors[0].file == str(src)
    assert errors[0].feature_id == "F1"
    assert str(src) in str(exc.value) and "row 2" in str(exc.value) and field in str(exc.value)


def test_all_problems_are_reported_at_once(tmp_path: Path):
    feats = [
        feature(care_props(1, kind="rocket"), point(113.05, 22.6)),
        feature(care_props(2, beds="x", name=None), point(22.6, 113.05)),
        feature(care_props(1), None),
    ]
    src = write_geojson(tmp_path / "many.geojson", feats)
    result = prepare_layer(src, "elder_care")
    assert codes_at(result, 1) == {("kind", "not_allowed")}
    assert codes_at(result, 2) == {
        ("beds", "wrong_type"),
        ("name", "missing_required"),
        ("geometry", "outside_area"),
    }
    assert codes_at(result, 3) == {("facility_id", "duplicate_id"), ("geometry", "empty_geometry")}
    dup = next(p for p in result.problems if p.code == "duplicate_id")
    assert "row 1" in dup.message


def test_missing_required_field_is_named(tmp_path: Path):
    props = care_props(1)
    del props["kind"]
    src = write_geojson(tmp_path / "nofield.geojson", [feature(props, point(113.05, 22.6))])
    result = prepare_layer(src, "elder_care")
    (err,) = result.errors
    assert (err.row, err.field, err.code) == (None, "kind", "missing_field")


def test_invalid_geometry_is_an_error_unless_repair_is_asked(tmp_path: Path):
    src = write_geojson(tmp_path / "bowtie.geojson", [feature(unit_props("440703001"), BOWTIE)])
    result = prepare_layer(src, "admin_units")
    (err,) = result.errors
    assert (err.row, err.field, err.code) == (1, "geometry", "invalid_geometry")
    assert "Self-intersection" in err.message
    repaired = prepare_layer(src, "admin_units", repair=True)
    assert repaired.ok
    warn = [p for p in repaired.problems if p.code == "repaired_geometry"]
    assert len(warn) == 1 and warn[0].row == 1  # never silent
    g = repaired.gdf.geometry.iloc[0]
    assert g.is_valid and g.geom_type == "MultiPolygon"
    assert g.area == pytest.approx(
        shapely.from_geojson(json.dumps(BOWTIE)).buffer(0).area * 2, rel=1e-6
    )


def test_missing_crs_is_an_error(tmp_path: Path):
    gdf = gpd.GeoDataFrame([care_props(1)], geometry=[shapely.Point(113.05, 22.6)], crs=None)
    shp = tmp_path / "nocrs.shp"
    write_shp(gdf, shp, "UTF-8")
    result = prepare_layer(shp, "elder_care")
    assert [(p.field, p.code) for p in result.errors] == [("geometry", "missing_crs")]
    assert prepare_layer(shp, "elder_care", source_crs="EPSG:4490").ok


def test_projected_file_is_converted_to_cgcs2000(tmp_path: Path):
    gdf = gpd.GeoDataFrame([care_props(1)], geometry=[shapely.Point(113.05, 22.6)], crs=4490)
    gpkg = tmp_path / "gk.gpkg"
    gdf.to_crs(4547).to_file(gpkg, layer="care")
    result = prepare_layer(gpkg, "elder_care")
    assert result.ok and result.gdf.crs == "EPSG:4490"
    p = result.gdf.geometry.iloc[0]
    assert p.x == pytest.approx(113.05, abs=1e-8) and p.y == pytest.approx(22.6, abs=1e-8)


def test_crs_conflict_and_legacy_datums_are_refused(tmp_path: Path, good_care_file: Path):
    conflict = prepare_layer(good_care_file, "elder_care", source_crs="EPSG:4547")
    assert [p.code for p in conflict.errors] == ["crs_conflict"]
    gdf = gpd.GeoDataFrame([care_props(1)], geometry=[shapely.Point(113.05, 22.6)], crs=4610)
    old = tmp_path / "xian80.gpkg"
    gdf.to_file(old)
    result = prepare_layer(old, "elder_care")
    assert [p.code for p in result.errors] == ["legacy_datum"]
    assert "Xian 1980" in result.errors[0].message


def test_non_utf8_text_in_geojson_is_located(tmp_path: Path):
    good = json.dumps(care_props(1, name="好"), ensure_ascii=False).encode("utf-8")
    bad = json.dumps(care_props(2, name="白沙"), ensure_ascii=False).encode("utf-8")
    bad = bad.replace("白沙".encode(), "白沙".encode("gbk"))
    geom = b'{"type":"Point","coordinates":[113.05,22.6]}'
    body = (
        b'{"type":"FeatureCollection","features":[{"type":"Feature","properties":'
        + good
        + b',"geometry":'
        + geom
        + b'},{"type":"Feature","properties":'
        + bad
        + b',"geometry":'
        + geom
        + b"}]}"
    )
    src = tmp_path / "gbk.geojson"
    src.write_bytes(body)
    result = prepare_layer(src, "elder_care")
    assert [(p.row, p.field, p.code) for p in result.errors] == [(2, "name", "non_utf8")]
    assert result.gdf["name"].iloc[0] == "好"


def test_gbk_shapefile_without_cpg_is_reported_then_read_with_encoding(tmp_path: Path):
    gdf = gpd.GeoDataFrame(
        [care_props(1, name="蓬江养老院")], geometry=[shapely.Point(113.05, 22.6)], crs=4490
    )
    shp = tmp_path / "gbk.shp"
    write_shp(gdf, shp, "GBK")
    shp.with_suffix(".cpg").unlink(missing_ok=True)
    result = prepare_layer(shp, "elder_care")
    assert {(p.row, p.field, p.code) for p in result.errors} >= {(1, "name", "non_utf8")}
    assert "--encoding gbk" in next(p.message for p in result.errors if p.code == "non_utf8")
    fixed = prepare_layer(shp, "elder_care", encoding="gbk")
    assert fixed.ok and fixed.gdf["name"].iloc[0] == "蓬江养老院"


def test_csv_with_chinese_headers_labels_and_gbk_bytes(tmp_path: Path):
    text = (
        "设施编号,名称,设施类型,状态,床位数,经度,纬度\n"
        "A1,荷塘敬老院,敬老院,运营中,40,113.10,22.65\n"
        "A2,坏行,养老院,operating,10,113.11,zz\n"
    )
    src = tmp_path / "care.csv"
    src.write_bytes(text.encode("utf-8").replace("坏行".encode(), "坏行".encode("gbk")))
    result = prepare_layer(src, "elder_care", source_crs="EPSG:4326")
    assert {(p.row, p.field, p.code) for p in result.errors} == {
        (2, "name", "non_utf8"),
        (2, "纬度", "wrong_type"),
        (2, "geometry", "empty_geometry"),
    }
    assert result.gdf["kind"].iloc[0] == "township_home"
    assert result.gdf["status"].iloc[0] == "operating"
    assert result.errors[0].feature_id == "A2"
    # a CSV has no CRS of its own: it must be stated
    assert [p.code for p in prepare_layer(src, "elder_care").errors].count("missing_crs") == 1


def test_standard_thresholds_are_warnings_with_their_source(tmp_path: Path):
    props = {
        "shelter_id": "S1",
        "name": "小广场",
        "shelter_class": "III",
        "effective_area_m2": 1500,
        "capacity_persons": 1000,
    }
    src = write_geojson(tmp_path / "s.geojson", [feature(props, point(113.05, 22.6))])
    result = prepare_layer(src, "shelters")
    assert result.ok
    (warn,) = [p for p in result.problems if p.severity == "warning"]
    assert warn.code == "below_standard" and "GB 21734-2008 §5.4" in warn.message


@pytest.mark.parametrize("content", [b"", b"\x00\x01garbage\xff", b"not json at all {"])
def test_unreadable_files_raise_a_named_error(tmp_path: Path, content: bytes):
    src = tmp_path / "x.geojson"
    src.write_bytes(content)
    with pytest.raises(LayerReadError, match=r"x\.geojson"):
        prepare_layer(src, "elder_care")


def test_missing_file_and_ambiguous_layers(tmp_path: Path, good_care_file: Path):
    with pytest.raises(LayerReadError, match="no such file"):
        prepare_layer(tmp_path / "nope.gpkg", "elder_care")
    gdf = gpd.read_file(good_care_file)
    two = tmp_path / "two.gpkg"
    gdf.to_file(two, layer="a")
    gdf.to_file(two, layer="b")
    with pytest.raises(LayerReadError, match=r"2 layers"):
        prepare_layer(two, "elder_care")
    assert prepare_layer(two, "elder_care", layer_name="b").ok


def test_real_beijing_township_shapefile(shared_data: Path, tmp_path: Path):
    """331 real town polygons: Chinese DBF text decodes; missing spec fields are named."""
    shp = shared_data / "towns_beijing/beijing_township_boundaries.shp"
    raw = prepare_layer(shp, "admin_units")
    assert len(raw.gdf) == 331
    assert {(p.field, p.code) for p in raw.errors} == {
        ("adcode", "missing_field"),
        ("name", "missing_field"),
        ("level", "missing_field"),
    }
    assert "建外街道" in set(raw.gdf["乡"])
    # the planner's fix: add the fields the spec needs, then it validates
    gdf = gpd.read_file(shp)
    gdf["adcode"] = [f"110000{i:03d}" for i in range(len(gdf))]
    gdf["名称"] = gdf["乡"]  # a Chinese column title maps to the field
    gdf["level"] = "乡级(镇/街道)"  # and a Chinese label to its code
    fixed = tmp_path / "beijing.shp"
    write_shp(gdf, fixed, "UTF-8")
    result = prepare_layer(fixed, "admin_units")
    assert result.ok, result.errors[:3]
    assert "geom_attr" in result.gdf.columns  # the DBF's own 'geom' text column is not lost
    assert set(result.gdf["level"]) == {"town"}
    assert result.gdf.geom_type.eq("MultiPolygon").all()
    minx, miny, maxx, maxy = result.gdf.total_bounds
    ws = Workspace.create(
        tmp_path / "bj.gpkg",
        name="北京市",
        adcode="110000",
        bounds=(minx - 0.1, miny - 0.1, maxx + 0.1, maxy + 0.1),
    )
    ws.import_file(fixed, "admin_units")
    assert len(ws.read("admin_units")) == 331


def test_tolerant_values_in_memory_layers_too(tmp_path: Path):
    """check_layer (web map edits, workspace writes) reads the spec's aliases and full width."""
    from geo_mz.core.catalog import get_spec
    from geo_mz.core.validate import check_layer

    gdf = gpd.GeoDataFrame(
        {
            "编号": ["S1", "S2"],
            "名称": ["a", "b"],
            "类别": ["Ⅲ类", "２类"],
            "有效面积": [3000.0, 3000.0],
            "容纳人数": [10, 10],
        },
        geometry=[shapely.Point(113.05, 22.6), shapely.Point(113.06, 22.6)],
        crs=4490,
    )
    out, problems = check_layer(gdf, get_spec("shelters"), file="edit", row_numbers=[7, 9])
    assert not [p for p in problems if p.severity == "error"]
    assert out["shelter_class"].tolist() == ["III", "II"]
    bad = gdf.assign(类别=["Ⅳ类", "II"])
    _, problems = check_layer(bad, get_spec("shelters"), file="edit", row_numbers=[7, 9])
    (err,) = [p for p in problems if p.severity == "error"]
    assert (err.row, err.feature_id, err.field, err.code) == (
        7,
        "S1",
        "shelter_class",
        "not_allowed",
    )


def test_missing_lon_column_names_an_option_that_exists(tmp_path: Path):
    from geo_mz.cli import main as cli

    src = tmp_path / "list.csv"
    src.write_text("设施编号,名称,设施类型,状态,东经度数,北纬度数\nA1,x,敬老院,运营中,113.1,22.6\n")
    with pytest.raises(LayerReadError) as exc:
        prepare_layer(src, "elder_care", source_crs="EPSG:4490")
    assert str(src) in str(exc.value) and "--lon-field" in str(exc.value)
    help_text = CliRunner().invoke(cli, ["validate", "--help"]).output
    assert "--lon-field" in help_text and "--lat-field" in help_text
    ok = prepare_layer(
        src, "elder_care", source_crs="EPSG:4490", lon_field="东经度数", lat_field="北纬度数"
    )
    assert ok.ok, ok.errors

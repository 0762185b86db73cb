import shutil
from pathlib import Path

import pytest

from geo_mz.core.catalog import default_catalog_dir, get_spec, load_catalog, load_spec
from geo_mz.core.errors import LayerSpecError
from geo_mz.core.validate import prepare_layer

from .conftest import care_props, feature, point, write_geojson

EXPECTED = {
    "elder_care",
    "shelters",
    "relief_stores",
    "burial_sites",
    "admin_units",
    "boundary_markers",
    "place_names",
    "roads",
    "population",
    "hazards",
    "incidents",
}


def test_catalog_has_every_layer_of_the_design():
    catalog = load_catalog()
    assert set(catalog) >= EXPECTED
    for name, spec in catalog.items():
        assert spec.name == name
        assert spec.id_field in spec.field_names
        assert spec.field(spec.id_field).required
        assert spec.title_zh and spec.title_en
        assert spec.geometry in ("Point", "LineString", "Polygon")


def test_elder_care_kinds_have_chinese_and_english_labels():
    kind = get_spec("elder_care").field("kind")
    zh = {v.zh for v in kind.values}
    labels = (
        "居家养老服务中心",
        "日间照料中心",
        "敬老院",
        "养老院",
        "护理院",
        "助餐点",
        "农村幸福院",
    )
    for label in labels:
        assert label in zh
    assert all(v.en for v in kind.values)
    assert kind.lookup()["养老院"] == "nursing_home"
    assert kind.label("nursing_home", "en") == "Nursing home"


def test_numeric_fields_carry_units():
    for spec in load_catalog().values():
        for f in spec.fields:
            if f.type == "float":
                assert f.unit, f"{spec.name}.{f.name} has no unit"


def test_unknown_kind_lists_the_known_ones():
    with pytest.raises(LayerSpecError, match="elder_care"):
        get_spec("eldercare")


def test_adding_a_field_is_an_edit_to_the_spec(tmp_path: Path):
    cat = tmp_path / "catalog"
    shutil.copytree(default_catalog_dir(), cat, ignore=shutil.ignore_patterns("sample"))
    spec_file = cat / "elder_care.toml"
    spec_file.write_text(
        spec_file.read_text(encoding="utf-8")
        + '\n[[fields]]\nname = "meals_per_day"\ntype = "integer"\nrequired = true\nmin = 0\n'
        'title = { zh = "日供餐数", en = "Meals per day" }\n',
        encoding="utf-8",
    )
    src = write_geojson(
        tmp_path / "c.geojson",
        [
            feature(care_props(1, meals_per_day=30), point(113.05, 22.6)),
            feature(care_props(2), point(113.06, 22.6)),
            feature(care_props(3, meals_per_day="many"), point(113.07, 22.6)),
        ],
    )
    result = prepare_layer(src, "elder_care", catalog_dir=cat)
    bad = {(p.row, p.field, p.code) for p in result.errors}
    assert bad == {(2, "meals_per_day", "missing_required"), (3, "meals_per_day", "wrong_type")}
    assert result.gdf["meals_per_day"].iloc[0] == 30
    # the shipped catalog is untouched
    assert "meals_per_day" not in get_spec("elder_care").field_names


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (('type = "integer"', 'type = "int"'), "not one of"),
        (('id_field = "facility_id"', 'id_field = "fid"'), "id_field"),
        (('geometry = "Point"', 'geometry = "Circle"'), "geometry"),
        (('name = "beds"', 'name = "nursing_beds"'), "duplicate field"),
        (("[[fields]]", "[[fields"), "cannot read"),
    ],
)
def test_malformed_specs_are_named(tmp_path: Path, patch: tuple[str, str], message: str):
    text = (default_catalog_dir() / "elder_care.toml").read_text(encoding="utf-8")
    bad = tmp_path / "elder_care.toml"
    bad.write_text(text.replace(*patch, 1), encoding="utf-8")
    with pytest.raises(LayerSpecError, match=message) as exc:
        load_spec(bad)
    assert "elder_care.toml" in str(exc.value)

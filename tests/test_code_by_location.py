"""Points coded at import by where they lie, as the layer spec's ``code_by_location`` says."""

from __future__ import annotations

import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo_mz.core.catalog import default_catalog_dir, get_spec, load_spec
from geo_mz.core.errors import LayerSpecError
from geo_mz.core.projection import gk_zone_crs
from geo_mz.core.unit_coding import code_by_location
from geo_mz.core.units import _nearest_codes
from geo_mz.core.workspaces import open_workspace

# --------------------------------------------------------------------------- the spec key


def test_the_catalog_says_which_layers_are_coded_and_how():
    assert get_spec("shelters").code_by_location == "lies_in"
    assert get_spec("elder_care").code_by_location == "lies_in"
    assert get_spec("relief_stores").code_by_location == "serves_by_level"
    # population and place names carry codes of their own: never recoded at import
    for kind in ("population", "place_names", "roads", "admin_units", "incidents"):
        assert get_spec(kind).code_by_location is None


def _spec_copy(tmp_path: Path, kind: str, edit) -> Path:
    text = (default_catalog_dir() / f"{kind}.toml").read_text(encoding="utf-8")
    path = tmp_path / f"{kind}.toml"
    path.write_text(edit(text), encoding="utf-8")
    return path


def test_an_unknown_rule_is_a_spec_error_naming_the_file(tmp_path):
    path = _spec_copy(
        tmp_path, "relief_stores", lambda t: t.replace('"serves_by_level"', '"nearby"')
    )
    with pytest.raises(LayerSpecError, match=r"relief_stores\.toml.*code_by_location 'nearby'"):
        load_spec(path)
    path = _spec_copy(tmp_path, "shelters", lambda t: t.replace('"lies_in"', "true"))
    with pytest.raises(LayerSpecError, match=r"shelters\.toml.*is not one of"):
        load_spec(path)


def test_a_rule_needs_points_with_the_fields_it_fills(tmp_path):
    # roads: lines without adcode
    path = _spec_copy(tmp_path, "roads", lambda t: 'code_by_location = "lies_in"\n' + t)
    with pytest.raises(LayerSpecError, match=r"roads\.toml.*needs a Point layer"):
        load_spec(path)
    # serves_by_level on a layer without a level field (shelters have none)
    path = _spec_copy(tmp_path, "shelters", lambda t: t.replace('"lies_in"', '"serves_by_level"'))
    with pytest.raises(LayerSpecError, match=r"shelters\.toml.*missing \['level'\]"):
        load_spec(path)
    # and without the key a layer is not coded
    path = _spec_copy(
        tmp_path, "shelters", lambda t: t.replace('code_by_location = "lies_in"\n', "")
    )
    assert load_spec(path).code_by_location is None


# --------------------------------------------------------------------------- relief stores


@pytest.fixture
def pengjiang_ws(sample_ws, tmp_path):
    """A writable copy of the Pengjiang sample workspace (real town and village polygons)."""
    path = tmp_path / "ws.gpkg"
    shutil.copyfile(sample_ws.path, path)
    return open_workspace(path)


def _inside(units: gpd.GeoDataFrame, code: str) -> shapely.Point:
    return units.loc[units["adcode"] == code, "geometry"].iloc[0].representative_point()


def test_stores_without_adcode_take_the_code_of_their_level_where_they_lie(pengjiang_ws, tmp_path):
    units = pengjiang_ws.read("admin_units")
    villages = units[(units["level"] == "village") & units["in_jurisdiction"].astype(bool)]
    vil_tangxia = villages[villages["adcode"].str.startswith("440703101")]["adcode"].iloc[0]
    vil_duruan = villages[villages["adcode"].str.startswith("440703103")]["adcode"].iloc[-1]
    far = _inside(units, "440705")  # 新会区: a neighbour, outside the jurisdiction
    pj = units.loc[units["adcode"] == "440703", "geometry"].iloc[0]
    assert (
        gpd.GeoSeries([far], crs=4490)
        .to_crs(gk_zone_crs(113.0))
        .distance(gpd.GeoSeries([pj], crs=4490).to_crs(gk_zone_crs(113.0)))
        .iloc[0]
        > 2000
    )
    rows = [  # store_id, level, adcode, point
        ("RS01", "区县级", None, _inside(units, vil_tangxia)),
        ("RS02", "镇街级", None, _inside(units, vil_duruan)),
        ("RS03", "township", " ", _inside(units, "440703002")),
        ("RS04", "township", "440703101", _inside(units, "440703002")),  # keeps its code
        ("RS05", "county", None, far),
        ("RS06", "市级", None, _inside(units, "440703005")),
    ]
    csv = tmp_path / "stores.csv"
    pd.DataFrame(
        {
            "编号": [r[0] for r in rows],
            "名称": [f"储备库{r[0]}" for r in rows],
            "级别": [r[1] for r in rows],
            "所属区划代码": [r[2] for r in rows],
            "lon": [r[3].x for r in rows],
            "lat": [r[3].y for r in rows],
        }
    ).to_csv(csv, index=False)
    result = pengjiang_ws.import_file(csv, "relief_stores", source_crs="EPSG:4490")
    stores = pengjiang_ws.read("relief_stores")
    assert len(stores) == 6  # the store lying nowhere is kept, not dropped
    got = dict(zip(stores["store_id"], stores["adcode"].astype(object), strict=True))
    assert got["RS01"] == "440703"  # a county store: the county's 6 digits
    assert got["RS02"] == vil_duruan[:9] == "440703103"  # a township store: its town's 9
    assert got["RS03"] == "440703002"  # a blank code is no code
    assert got["RS04"] == "440703101"
    assert pd.isna(got["RS05"]) and pd.isna(got["RS06"])
    notice = [p for p in result.problems if p.code == "coded_by_location"]
    assert len(notice) == 1 and notice[0].severity == "notice"
    assert "3 rows coded" in notice[0].message and "3 行" in notice[0].message
    warn = [p for p in result.problems if p.code == "not_coded_by_location"]
    assert [(p.severity, p.file, p.row, p.feature_id, p.field) for p in warn] == [
        ("warning", str(csv), 5, "RS05", "adcode")
    ]
    assert "county" in warn[0].message and "所属区划代码为空" in warn[0].message
    higher = [p for p in result.problems if p.code == "not_coded_by_level"]
    assert len(higher) == 1 and "RS06" in higher[0].message and "市级" in higher[0].message


def test_a_county_store_takes_the_head_of_the_town_it_lies_in_without_county_polygons(
    sample_ws,
):
    units = sample_ws.read("admin_units")
    towns_only = units[units["level"] != "county"].reset_index(drop=True)
    spec = get_spec("relief_stores")
    stores = gpd.GeoDataFrame(
        {
            "store_id": ["A", "B", "C"],
            "level": ["county", "township", "township"],
            "adcode": pd.array([None, None, None], dtype="string"),
        },
        geometry=[
            _inside(units, "440703006"),
            _inside(units, "440703102"),
            _inside(units, "440705"),
        ],
        crs="EPSG:4490",
    )
    out, problems = code_by_location(stores, spec, towns_only, file="s.csv", rows=[2, 4, 5])
    assert out["adcode"].tolist()[:2] == ["440703", "440703102"]
    assert pd.isna(out["adcode"].iloc[2])
    assert str(out["adcode"].dtype) == "string"
    assert stores["adcode"].isna().all()  # the input is not changed
    # file rows 1 and 3 were left out (a clip): the third point is file row 5
    (warn,) = [p for p in problems if p.severity == "warning"]
    assert (warn.row, warn.feature_id) == (5, "C")
    assert "town" in warn.message


def test_a_shelter_list_without_codes_is_still_coded_where_each_lies(pengjiang_ws, tmp_path):
    units = pengjiang_ws.read("admin_units")
    vil = units[(units["level"] == "village") & units["in_jurisdiction"].astype(bool)]
    pick = vil.iloc[[0, 40, 80]]
    pts = [g.representative_point() for g in pick.geometry]
    csv = tmp_path / "shelters.csv"
    pd.DataFrame(
        {
            "编号": ["S1", "S2", "S3"],
            "名称": ["甲", "乙", "丙"],
            "lon": [p.x for p in pts],
            "lat": [p.y for p in pts],
        }
    ).to_csv(csv, index=False)
    result = pengjiang_ws.import_file(
        csv,
        "shelters",
        source_crs="EPSG:4490",
        defaults={"shelter_class": "III", "effective_area_m2": 2000, "capacity_persons": 1000},
    )
    assert pengjiang_ws.read("shelters")["adcode"].tolist() == pick["adcode"].tolist()
    assert any(p.code == "coded_by_location" and "3 rows" in p.message for p in result.problems)


# --------------------------------------------------------------------------- vectorised nearest


def _nearest_codes_loop(points, geoms, ucode, own, near_m):
    """The former implementation: one shapely.distance per STRtree pair (the reference)."""
    metric = gk_zone_crs(float(np.mean(shapely.get_coordinates(points.geometry.values)[:, 0])))
    pts = np.asarray(points.geometry.to_crs(metric).values)
    polys = np.asarray(geoms.to_crs(metric).values)
    out = own.copy()
    pi, ui = shapely.STRtree(polys).query(pts, predicate="dwithin", distance=near_m)
    best = np.full(len(pts), np.inf)
    for p, q in zip(pi, ui, strict=True):
        if own[p] is not None and not ucode[q].startswith(own[p]):
            continue
        d = shapely.distance(pts[p], polys[q])
        if d < best[p]:
            best[p], out[p] = d, ucode[q]
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_nearest_equals_the_loop_ties_included(seed):
    rng = np.random.default_rng(seed)
    n_poly, n_pts = 400, 700
    x0, y0 = rng.uniform(113.0, 113.2, n_poly), rng.uniform(22.5, 22.7, n_poly)
    w, h = rng.uniform(0.001, 0.01, n_poly), rng.uniform(0.001, 0.01, n_poly)
    boxes = list(shapely.box(x0, y0, x0 + w, y0 + h))
    boxes[300:] = boxes[:100]  # 100 polygons twice: equal distances, the tie rule decides
    heads = np.array(["440703", "440704", "440705"])[rng.integers(0, 3, n_poly)]
    ucode = np.array([f"{h}{i:03d}" for i, h in enumerate(heads)], dtype=object)
    geoms = gpd.GeoSeries(boxes, crs="EPSG:4490")
    xy = np.column_stack([rng.uniform(112.99, 113.22, n_pts), rng.uniform(22.49, 22.72, n_pts)])
    points = gpd.GeoDataFrame(geometry=shapely.points(xy), crs="EPSG:4490")
    choices = np.array([None, "440703", "440704", "4407", "440705001", "999"], dtype=object)
    own = choices[rng.integers(0, len(choices), n_pts)]
    for near_m in (0.0, 300.0, 2000.0):
        want = _nearest_codes_loop(points, geoms, ucode, own, near_m)
        got = _nearest_codes(points, geoms, ucode, own, near_m)
        assert got.tolist() == want.tolist()
        changed = sum(a != b for a, b in zip(got, own, strict=True))
        assert changed > 20  # not a test of nothing
    # Ties happened: a point inside a doubled polygon meets both copies at distance 0.
    inside = shapely.STRtree(boxes[:100]).query(points.geometry.values, predicate="within")
    assert len(inside[0]) > 5


def test_the_warning_names_the_sheet_row_past_a_blank_row(pengjiang_ws, tmp_path):
    from openpyxl import Workbook

    units = pengjiang_ws.read("admin_units")
    far = _inside(units, "440705")  # 新会区: in no polygon of the jurisdiction
    wb = Workbook()
    sheet = wb.active
    sheet.append(["编号", "名称", "级别", "经度", "纬度"])
    here = _inside(units, "440703002")
    sheet.append(["RS01", "甲库", "镇街级", here.x, here.y])
    sheet.append([None] * 5)  # a blank row between entries, as sheets have
    sheet.append(["RS02", "乙库", "镇街级", far.x, far.y])
    src = tmp_path / "stores.xlsx"
    wb.save(src)
    result = pengjiang_ws.import_file(src, "relief_stores", source_crs="EPSG:4490")
    (warn,) = [p for p in result.problems if p.code == "not_coded_by_location"]
    # Rows are counted below the header and the blank row keeps its place: RS02 is row 3.
    assert (warn.row, warn.feature_id) == (3, "RS02")
    stores = pengjiang_ws.read("relief_stores")
    assert stores.set_index("store_id")["adcode"].astype(object).to_dict()["RS01"] == "440703002"


def test_a_city_store_left_without_a_code_stops_the_audit_naming_it(pengjiang_ws, tmp_path):
    from geo_mz.relief import ReliefError, run_audit

    units = pengjiang_ws.read("admin_units")
    here = _inside(units, "440703002")
    csv = tmp_path / "stores.csv"
    pd.DataFrame(
        {
            "编号": ["RS1", "RS2"],
            "名称": ["镇库", "市库"],
            "级别": ["镇街级", "市级"],
            "lon": [here.x, here.x],
            "lat": [here.y, here.y],
        }
    ).to_csv(csv, index=False)
    pengjiang_ws.import_file(csv, "relief_stores", source_crs="EPSG:4490")
    with pytest.raises(ReliefError, match=r"第 2 行 \(RS2\).*row 2 \(RS2\)") as err:
        run_audit(pengjiang_ws.read_all())
    assert "RS1" not in str(err.value)  # the town store was coded where it lies
    assert "储备库无法核查" in str(err.value) and "cannot be audited" in str(err.value)

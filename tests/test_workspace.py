from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal

import geo_mz.core.workspace as workspace_mod
from geo_mz.core.errors import LayerValidationError, WorkspaceError
from geo_mz.core.workspace import Workspace, file_sha256
from geo_mz.core.workspaces import open_workspace

from .conftest import care_props, feature, point, write_geojson
from .workspace_layers import PENGJIANG, PROV, incidents, markers


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.create(
        tmp_path / "ws.gpkg", name="江门市蓬江区", adcode="440703", bounds=PENGJIANG
    )


def shelters() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "shelter_id": ["S1"],
            "name": ["白沙公园"],
            "shelter_class": ["II"],
            "effective_area_m2": [5000.0],
            "capacity_persons": pd.array([3000], dtype="Int64"),
            "is_open": pd.array([None], dtype="boolean"),
        },
        geometry=[shapely.Point(113.07, 22.6)],
        crs="EPSG:4490",
    )


def test_new_workspace_records_its_crs_and_area(ws: Workspace):
    meta = ws.metadata
    assert meta["storage_crs"] == "EPSG:4490"
    assert meta["measure_crs"] == "EPSG:4547"  # CGCS2000 3-degree GK CM 114E for Pengjiang
    assert meta["bounds"] == PENGJIANG
    assert ws.layers() == []
    assert Path(ws.path).stat().st_mode & 0o777 != 0o600


@pytest.mark.parametrize("make", [markers, incidents, shelters])
def test_round_trip_geodataframe_geopackage(ws: Workspace, make):
    gdf = make()
    kind = {markers: "boundary_markers", incidents: "incidents", shelters: "shelters"}[make]
    ws.write_layers({kind: gdf}, {kind: PROV})
    back = ws.read(kind)
    expected = gdf.reindex(columns=[*ws.read(kind).columns])
    # optional fields absent from the input come back as empty columns of the right type
    for col in expected.columns:
        if expected[col].isna().all() and col != "geometry":
            expected[col] = back[col]
    assert_geodataframe_equal(back, expected, check_dtype=True, check_like=False)
    assert back["geometry"].crs == "EPSG:4490"
    # and the GeoPackage is a plain one: GDAL/QGIS read it without geo_mz
    assert len(pyogrio.read_dataframe(ws.path, layer=kind)) == len(gdf)


def test_failed_import_leaves_the_geopackage_byte_identical(
    ws: Workspace, tmp_path: Path, good_care_file: Path
):
    ws.import_file(good_care_file, "elder_care")
    before = file_sha256(ws.path)
    bad = write_geojson(
        tmp_path / "bad.geojson",
        [
            feature(care_props(1), point(113.05, 22.6)),
            feature(care_props(2, kind="rocket"), point(113.05, 22.6)),
        ],
    )
    with pytest.raises(LayerValidationError):
        ws.import_file(bad, "elder_care")
    assert file_sha256(ws.path) == before
    assert len(ws.read("elder_care")) == 3
    assert sorted(p.name for p in ws.path.parent.glob(".*tmp*")) == []


def test_outside_the_workspace_area_is_refused(ws: Workspace, tmp_path: Path):
    far = write_geojson(tmp_path / "far.geojson", [feature(care_props(1), point(116.4, 39.9))])
    with pytest.raises(LayerValidationError, match="outside the expected area"):
        ws.import_file(far, "elder_care")


def test_a_crash_while_writing_changes_nothing(ws: Workspace, monkeypatch):
    ws.write_layers({"shelters": shelters()}, {"shelters": PROV})
    before = file_sha256(ws.path)
    real = pyogrio.write_dataframe
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(workspace_mod.pyogrio, "write_dataframe", flaky)
    with pytest.raises(WorkspaceError, match="unchanged"):
        ws.write_layers(
            {"boundary_markers": markers(), "incidents": incidents()},
            {"boundary_markers": PROV, "incidents": PROV},
        )
    assert file_sha256(ws.path) == before
    assert ws.layers() == ["shelters"]


def test_one_bad_layer_blocks_the_whole_write(ws: Workspace):
    bad = markers()
    bad.loc[1, "number"] = "12"
    with pytest.raises(LayerValidationError) as exc:
        ws.write_layers(
            {"incidents": incidents(), "boundary_markers": bad},
            {"incidents": PROV, "boundary_markers": PROV},
        )
    (err,) = [p for p in exc.value.problems if p.severity == "error"]
    assert (err.file, err.row, err.field, err.code) == (
        "boundary_markers",
        2,
        "number",
        "bad_pattern",
    )
    assert ws.layers() == []


def test_provenance_and_info(ws: Workspace, good_care_file: Path):
    ws.write_layers({"shelters": shelters()}, {"shelters": PROV})
    ws.import_file(good_care_file, "elder_care")
    info = ws.info()
    assert info["name"] == "江门市蓬江区" and info["adcode"] == "440703"
    recs = {r["layer"]: r for r in info["layers"]}
    assert recs["shelters"]["synthetic"] is True and recs["shelters"]["method"] == "hand-made"
    assert recs["elder_care"]["synthetic"] is False
    assert recs["elder_care"]["sha256"] == file_sha256(good_care_file)
    assert recs["elder_care"]["rows"] == 3 and recs["elder_care"]["title_zh"] == "养老服务设施"


def test_gcj02_import_is_converted_and_recorded(ws: Workspace, tmp_path: Path):
    import numpy as np

    from geo_mz.core.projection import wgs84_to_gcj02

    lon, lat = wgs84_to_gcj02(np.array([113.05]), np.array([22.6]))
    src = write_geojson(
        tmp_path / "amap.geojson", [feature(care_props(1), point(float(lon[0]), float(lat[0])))]
    )
    ws.import_file(src, "elder_care", source_crs="gcj02")
    p = ws.read("elder_care").geometry.iloc[0]
    assert p.x == pytest.approx(113.05, abs=1e-8) and p.y == pytest.approx(22.6, abs=1e-8)
    assert ws.info()["layers"][0]["source_crs"] == "gcj02"


def test_not_a_workspace(tmp_path: Path, good_care_file: Path):
    with pytest.raises(WorkspaceError, match="no such workspace"):
        Workspace(tmp_path / "none.gpkg")
    plain = tmp_path / "plain.gpkg"
    gpd.read_file(good_care_file).to_file(plain)
    with pytest.raises(WorkspaceError, match="not a geo_mz workspace"):
        open_workspace(plain)
    with pytest.raises(WorkspaceError, match="already exists"):
        Workspace.create(plain, name="x", adcode="440703", bounds=PENGJIANG)


def district_units() -> gpd.GeoDataFrame:
    """Pengjiang as one hand-made county polygon and a neighbour outside the jurisdiction."""
    return gpd.GeoDataFrame(
        {
            "adcode": ["440703", "440704"],
            "name": ["蓬江区", "江海区"],
            "level": ["county", "county"],
            "in_jurisdiction": pd.array([True, False], dtype="boolean"),
        },
        geometry=[shapely.box(112.95, 22.5, 113.1, 22.7), shapely.box(113.1, 22.5, 113.2, 22.7)],
        crs="EPSG:4490",
    )


def list_csv(path: Path) -> Path:
    path.write_text(
        "编号,经度,纬度\nP1,113.0,22.6\nP2,113.15,22.6\nP3,113.05,22.65\nP4,113.2,22.8\n",
        encoding="utf-8",
    )
    return path


def test_import_with_clip_and_defaults(ws: Workspace, tmp_path: Path):
    ws.write_layers({"admin_units": district_units()}, {"admin_units": PROV})
    src = list_csv(tmp_path / "list.csv")
    fill = {"name": "x", "shelter_class": "三类", "effective_area_m2": 3000, "capacity_persons": 9}
    result = ws.import_file(src, "shelters", source_crs="EPSG:4490", clip=True, defaults=fill)
    assert result.gdf["shelter_id"].tolist() == ["P1", "P3"]
    assert result.clipped[["row", "id"]].values.tolist() == [[2, "P2"], [4, "P4"]]
    assert result.clipped["distance_km"].iloc[0] == pytest.approx(5.14, abs=0.05)  # 0.05° east
    assert "440703 蓬江区" in result.district
    assert ws.read("shelters")["shelter_class"].tolist() == ["III", "III"]
    assert "clipped to" in ws.layer_records().set_index("layer").loc["shelters", "method"]
    # the datum check had no roads to compare with, and says so
    assert result.datum.verdict == "not_possible"


def test_failed_clipped_import_leaves_the_geopackage_byte_identical(ws: Workspace, tmp_path: Path):
    ws.write_layers({"admin_units": district_units()}, {"admin_units": PROV})
    before = file_sha256(ws.path)
    src = list_csv(tmp_path / "list.csv")
    with pytest.raises(LayerValidationError) as exc:  # no name, class, area or capacity
        ws.import_file(src, "shelters", source_crs="EPSG:4490", clip=True)
    missing = {p.field for p in exc.value.problems if p.code == "missing_field"}
    assert missing == {"name", "shelter_class", "effective_area_m2", "capacity_persons"}
    assert file_sha256(ws.path) == before
    assert sorted(p.name for p in ws.path.parent.glob(".*tmp*")) == []


def test_district_and_reference_of_a_workspace(ws: Workspace):
    from geo_mz.core.workspace import district_of, reference_layer

    d = district_of(ws)
    assert d.source == "bounds" and d.geometry.bounds == PENGJIANG
    assert reference_layer(ws, "shelters") == (None, ("道路", "roads"))
    units = district_units()
    ws.write_layers({"admin_units": units}, {"admin_units": PROV})
    d = district_of(ws)
    assert d.source == "admin_units" and d.geometry.equals(units.geometry.iloc[0])
    assert d.measure_crs == "EPSG:4547"
    # without the workspace's own code, the county units inside the jurisdiction
    ws.write_layers(
        {"admin_units": units.assign(adcode=["440799", "440704"])}, {"admin_units": PROV}
    )
    assert district_of(ws).geometry.equals(units.geometry.iloc[0])


def test_clipped_import_is_the_same_on_postgis(pg_url, ws: Workspace, tmp_path: Path):
    from geo_mz.core.workspace_postgis import PostgisWorkspace

    pws = PostgisWorkspace.create(
        pg_url,
        schema="t_clip",
        name="江门市蓬江区",
        adcode="440703",
        bounds=PENGJIANG,
        replace=True,
    )
    src = list_csv(tmp_path / "list.csv")
    fill = {"name": "x", "shelter_class": "3", "effective_area_m2": 3000, "capacity_persons": 9}
    for w in (ws, pws):
        w.write_layers({"admin_units": district_units()}, {"admin_units": PROV})
    g = ws.import_file(src, "shelters", source_crs="EPSG:4490", clip=True, defaults=fill)
    p = pws.import_file(src, "shelters", source_crs="EPSG:4490", clip=True, defaults=fill)
    assert g.problems == p.problems
    assert p.clipped.equals(g.clipped) and p.district == g.district
    assert pws.read("shelters")["shelter_id"].tolist() == ["P1", "P3"]

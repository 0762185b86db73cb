"""The PostGIS workspace: a real cluster started by the suite, compared with the GeoPackage one."""

from __future__ import annotations

import math
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal

from geo_mz.core.errors import LayerValidationError, WorkspaceError
from geo_mz.core.workspace import Workspace
from geo_mz.core.workspaces import open_workspace

from .workspace_layers import PENGJIANG, PROV, incidents, markers


@pytest.fixture(scope="session")
def sample_gpkg(sample_ws) -> Workspace:
    return sample_ws


@pytest.fixture(scope="session")
def copied(pg_url, sample_gpkg):
    """The sample copied into schema ``sample``, with the copy's time and row count."""
    from geo_mz.core.workspace_postgis import PostgisWorkspace

    lines: list[str] = []
    t0 = time.perf_counter()
    pws = PostgisWorkspace.from_workspace(
        sample_gpkg, pg_url, schema="sample", replace=True, progress=lines.append
    )
    seconds = time.perf_counter() - t0
    rows = sum(int(r) for r in sample_gpkg.layer_records()["rows"])
    print(f"\ncopied the sample ({rows} rows) in {seconds:.2f} s")
    return pws, lines


def assert_same_layer(got: gpd.GeoDataFrame, want: gpd.GeoDataFrame) -> None:
    """Equal frames with dtypes, floats bit-for-bit and geometries coordinate-for-coordinate."""
    assert_geodataframe_equal(got, want, check_dtype=True, check_crs=True)
    pd.testing.assert_frame_equal(
        pd.DataFrame(got.drop(columns=got.geometry.name)),
        pd.DataFrame(want.drop(columns=want.geometry.name)),
        check_exact=True,
    )
    assert (
        shapely.to_wkb(got.geometry.values).tolist()
        == shapely.to_wkb(want.geometry.values).tolist()
    )


def test_copy_reads_back_every_layer_exactly(copied, sample_gpkg):
    pws, lines = copied
    want = sample_gpkg.read_all()
    got = pws.read_all()
    assert list(got) == list(want)
    for kind in want:
        assert_same_layer(got[kind], want[kind])
    assert any(line.startswith("population: ") for line in lines)


def test_metadata_records_and_info_are_copied(copied, sample_gpkg):
    pws, _ = copied
    assert pws.metadata == sample_gpkg.metadata
    assert pws.bounds == sample_gpkg.bounds
    pd.testing.assert_frame_equal(pws.layer_records(), sample_gpkg.layer_records())
    assert pws.layers() == sample_gpkg.layers()
    gi, pi = sample_gpkg.info(), pws.info()
    assert pi["path"].endswith("#sample") and pi.pop("path") != gi.pop("path")
    assert pi == gi


@pytest.mark.parametrize(
    "bbox",
    [
        (113.0, 22.55, 113.08, 22.62),  # inside the district: every kind of geometry
        (112.95, 22.5, 113.2, 22.8),
        (113.3, 22.9, 113.4, 23.0),  # nothing there
    ],
)
def test_bbox_read_equals_the_geopackage(copied, sample_gpkg, bbox):
    pws, _ = copied
    for kind in sample_gpkg.layers():
        want = sample_gpkg.read(kind, bbox=bbox)
        got = pws.read(kind, bbox=bbox)
        assert_same_layer(got, want)


def test_prefix_read_equals_the_geopackage(copied, sample_gpkg):
    """A part's own rows (``prefix``) are left out in the database as the GeoPackage does."""
    pws, _ = copied
    units = sample_gpkg.read("admin_units")
    box = tuple(units.total_bounds)
    town = str(units.loc[units["level"] == "town", "adcode"].iloc[0])
    for code in [town, "44", "9"]:
        for bbox in (box, None):
            want = sample_gpkg.read("population", bbox=bbox, prefix=("adcode", code))
            got = pws.read("population", bbox=bbox, prefix=("adcode", code))
            assert_same_layer(got, want)
    assert 0 < len(pws.read("population", prefix=("adcode", town))) < pws.count("population")
    with pytest.raises(WorkspaceError, match=r"没有字段 'nope'.*no field 'nope'"):
        pws.read("population", prefix=("nope", "44"))


def test_bbox_is_a_true_intersection_like_pyogrio(pg_url, tmp_path):
    """pyogrio (GDAL + GEOS) drops a feature whose envelope, but not its geometry, meets the box."""
    from geo_mz.core.workspace_postgis import PostgisWorkspace

    gws = Workspace.create(tmp_path / "l.gpkg", name="x", adcode="440703", bounds=PENGJIANG)
    pws = PostgisWorkspace.create(
        pg_url, schema="ell", name="x", adcode="440703", bounds=PENGJIANG, replace=True
    )
    roads = gpd.GeoDataFrame(
        {"road_id": ["L", "T"], "road_class": ["primary", "primary"], "speed_kmh": [40.0, 40.0]},
        geometry=[
            shapely.LineString([(113.0, 22.5), (113.1, 22.5), (113.1, 22.6)]),
            shapely.LineString([(113.05, 22.6), (113.1, 22.6)]),
        ],
        crs="EPSG:4490",
    )
    for ws in (gws, pws):
        ws.write_layers({"roads": roads}, {"roads": PROV})
    for bbox, ids in [
        ((113.01, 22.55, 113.04, 22.59), []),  # inside the L's envelope only
        ((113.09, 22.55, 113.2, 22.59), ["L"]),
        ((113.1, 22.6, 113.2, 22.7), ["L", "T"]),  # touching a corner counts
    ]:
        assert gws.read("roads", bbox=bbox)["road_id"].tolist() == ids
        assert pws.read("roads", bbox=bbox)["road_id"].tolist() == ids


def test_extent_equals_the_geopackage(copied, sample_gpkg):
    pws, _ = copied
    for kind in sample_gpkg.layers():
        want, got = sample_gpkg.extent(kind), pws.extent(kind)
        if math.isnan(want[0]):
            assert all(math.isnan(v) for v in got), kind
        else:
            assert got == pytest.approx(want, abs=1e-9), kind
            assert want == pytest.approx(tuple(sample_gpkg.read(kind).total_bounds), abs=0)
    with pytest.raises(WorkspaceError, match="no layer 'nope'"):
        pws.extent("nope")


def shelters(area: float = 5000.0) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "shelter_id": ["S1", "S2", "S3"],
            "name": ["白沙公园", "体育馆", "学校"],
            "shelter_class": ["II", "I", "III"],
            "effective_area_m2": [area, 0.1 + 0.2, 1e300],
            "capacity_persons": pd.array([3000, 2**62, 0], dtype="Int64"),
            "is_open": pd.array([None, True, False], dtype="boolean"),
            "note": ["extra column", None, "三"],
        },
        geometry=[
            shapely.Point(113.07, 22.6),
            shapely.Point(113 + 1 / 30, 22.6 + 1 / 300),
            shapely.Point(113.2, 22.8),
        ],
        crs="EPSG:4490",
    )


@pytest.fixture
def pair(pg_url, tmp_path, request):
    """A fresh GeoPackage and PostGIS workspace with the same metadata."""
    from geo_mz.core.workspace_postgis import PostgisWorkspace

    schema = f"t_{request.node.name.split('[')[0][-40:]}".lower()
    gws = Workspace.create(
        tmp_path / "ws.gpkg", name="江门市蓬江区", adcode="440703", bounds=PENGJIANG
    )
    pws = PostgisWorkspace.create(
        pg_url, schema=schema, name="江门市蓬江区", adcode="440703", bounds=PENGJIANG, replace=True
    )
    return gws, pws


def test_create_mirrors_the_geopackage(pair):
    gws, pws = pair
    gm, pm = gws.metadata, pws.metadata
    assert set(gm) == set(pm)
    for k in ("name", "adcode", "storage_crs", "measure_crs", "bounds", "format"):
        assert pm[k] == gm[k]
    assert pws.layers() == [] and pws.read_all() == {}
    pd.testing.assert_frame_equal(pws.layer_records(), gws.layer_records())
    with pytest.raises(WorkspaceError, match="already exists"):
        type(pws).create(pws._url, schema=pws.schema, name="x", adcode="1", bounds=PENGJIANG)


def test_written_layers_read_back_like_the_geopackage(pair):
    gws, pws = pair
    layers = {"boundary_markers": markers(), "incidents": incidents(), "shelters": shelters()}
    prov = dict.fromkeys(layers, PROV)
    gres, pres = gws.write_layers(layers, prov), pws.write_layers(layers, prov)
    assert {k: r.problems for k, r in gres.items()} == {k: r.problems for k, r in pres.items()}
    for kind in layers:
        assert_same_layer(pws.read(kind), gws.read(kind))
    recs = pws.layer_records()
    assert recs["rows"].tolist() == [2, 2, 3] and recs["synthetic"].all()


def test_floats_round_trip_bit_exactly(pair):
    _, pws = pair
    values = [0.1 + 0.2, 1 / 3, 5e-324, 1.7976931348623157e308, -0.0, math.inf, -math.inf, math.nan]
    gdf = gpd.GeoDataFrame(
        {
            "cell_id": [f"C{i}" for i in range(len(values))],
            "pop_total": values,
            "pop_60plus": [0.0] * len(values),
        },
        geometry=[shapely.Point(113.0 + i / 70, 22.5 + i / 110) for i in range(len(values))],
        crs="EPSG:4490",
    )
    # the workspace check refuses infinities in a spec field: store them as an extra column
    gdf["raw"] = values
    gdf.loc[gdf["pop_total"].abs() == math.inf, "pop_total"] = 1.0
    gdf.loc[gdf["pop_total"].isna(), "pop_total"] = 2.0
    pws.write_layers({"population": gdf}, {"population": PROV})
    back = pws.read("population")
    for col in ("pop_total", "raw"):
        want = gdf[col].to_numpy(dtype="float64")
        got = back[col].to_numpy(dtype="float64")
        assert (
            got.view("int64")[~np.isnan(want)].tolist()
            == want.view("int64")[~np.isnan(want)].tolist()
        )
        assert np.isnan(got[np.isnan(want)]).all()
    assert (
        shapely.to_wkb(back.geometry.values).tolist()
        == shapely.to_wkb(gdf.geometry.values).tolist()
    )


def _snapshot(pws) -> dict[str, gpd.GeoDataFrame]:
    return {k: v.copy() for k, v in pws.read_all().items()}


def test_one_bad_layer_blocks_the_whole_write(pair):
    _, pws = pair
    pws.write_layers({"shelters": shelters()}, {"shelters": PROV})
    before, recs = _snapshot(pws), pws.layer_records()
    bad = markers()
    bad.loc[1, "status"] = None  # a required field
    with pytest.raises(LayerValidationError) as exc:
        pws.write_layers(
            {"shelters": shelters(9000.0), "incidents": incidents(), "boundary_markers": bad},
            {"shelters": PROV, "incidents": PROV, "boundary_markers": PROV},
        )
    (err,) = [p for p in exc.value.problems if p.severity == "error"]
    assert (err.file, err.field, err.code) == ("boundary_markers", "status", "missing_required")
    after = _snapshot(pws)
    assert list(after) == list(before) == ["shelters"]
    assert_same_layer(after["shelters"], before["shelters"])
    pd.testing.assert_frame_equal(pws.layer_records(), recs)


def test_a_database_failure_in_the_middle_leaves_nothing_half_written(pair):
    """The second layer holds a NUL character: valid to geo_mz, refused by PostgreSQL's text."""
    _, pws = pair
    pws.write_layers(
        {"shelters": shelters(), "incidents": incidents()}, {"shelters": PROV, "incidents": PROV}
    )
    before, recs = _snapshot(pws), pws.layer_records()
    bad = markers()
    bad.loc[0, "line_name"] = "蓬江\x00江海"
    with pytest.raises(WorkspaceError, match=r"writing layer 'boundary_markers' failed.*unchanged"):
        pws.write_layers(
            {
                "shelters": shelters(9000.0),
                "incidents": incidents().iloc[:1],
                "boundary_markers": bad,
            },
            {"shelters": PROV, "incidents": PROV, "boundary_markers": PROV},
        )
    after = _snapshot(pws)
    assert list(after) == list(before) == ["incidents", "shelters"]
    for kind in before:
        assert_same_layer(after[kind], before[kind])
    pd.testing.assert_frame_equal(pws.layer_records(), recs)
    assert after["shelters"]["effective_area_m2"].iloc[0] == 5000.0


def test_a_locked_table_times_out_and_rolls_back(pair, pg_url):
    """Another session holds a lock on the second layer: the write gives up, nothing changes."""
    import psycopg

    from geo_mz.core.workspace_postgis import PostgisWorkspace

    _, pws = pair
    pws.write_layers(
        {"shelters": shelters(), "incidents": incidents()}, {"shelters": PROV, "incidents": PROV}
    )
    before = _snapshot(pws)
    impatient = PostgisWorkspace(f"{pg_url}?options=-c%20lock_timeout%3D300", schema=pws.schema)
    with psycopg.connect(pg_url) as other:
        other.execute(f'LOCK TABLE "{pws.schema}"."incidents" IN ACCESS SHARE MODE')
        with pytest.raises(WorkspaceError, match="lock timeout"):
            impatient.write_layers(
                {"shelters": shelters(9000.0), "incidents": incidents().iloc[:1]},
                {"shelters": PROV, "incidents": PROV},
            )
    after = _snapshot(pws)
    for kind in before:
        assert_same_layer(after[kind], before[kind])


def test_import_file_goes_through_the_same_checks(pair, tmp_path):
    from .conftest import care_props, feature, point, write_geojson

    gws, pws = pair
    good = write_geojson(
        tmp_path / "care.geojson",
        [feature(care_props(i), point(113.05 + i / 100, 22.6)) for i in (1, 2, 3)],
    )
    gres, pres = gws.import_file(good, "elder_care"), pws.import_file(good, "elder_care")
    assert gres.problems == pres.problems
    assert_same_layer(pws.read("elder_care"), gws.read("elder_care"))
    assert pws.info()["layers"][0]["sha256"] == gws.info()["layers"][0]["sha256"]
    far = write_geojson(tmp_path / "far.geojson", [feature(care_props(1), point(116.4, 39.9))])
    with pytest.raises(LayerValidationError, match="outside the expected area"):
        pws.import_file(far, "elder_care")
    assert len(pws.read("elder_care")) == 3


def test_open_workspace_dispatches_on_the_url(copied, pg_url):
    from geo_mz.core.workspace_postgis import PostgisWorkspace

    ws = open_workspace(f"{pg_url}#sample")
    assert isinstance(ws, PostgisWorkspace) and ws.schema == "sample"
    assert ws.layers() == copied[0].layers()
    with pytest.raises(WorkspaceError, match="no schema 'geo_mz_ws'"):
        open_workspace(pg_url)
    with pytest.raises(WorkspaceError, match="schema 'public' is not a geo_mz workspace"):
        open_workspace(f"{pg_url}#public")
    ws2 = open_workspace(pg_url.replace("postgresql://", "postgres://") + "#sample")
    assert ws2.metadata == ws.metadata


def test_unreachable_server_names_the_host_not_the_password():
    from webmap.testing_postgis import free_port

    port = free_port()
    url = f"postgresql://alice:s3cr3t-pw@127.0.0.1:{port}/gis#ws1"
    with pytest.raises(WorkspaceError) as exc:
        open_workspace(url)
    msg = str(exc.value)
    assert f"127.0.0.1:{port}" in msg and "ws1" in msg and "alice" in msg
    assert "s3cr3t-pw" not in msg and "s3cr3t" not in repr(exc.value.__cause__ or "")


def test_password_is_hidden_everywhere(pg_url):
    from geo_mz.core.workspace_postgis import redact_url, split_workspace_url

    assert redact_url("postgresql://u:p%40ss@h:5/db?password=x&sslmode=require") == (
        "postgresql://u:***@h:5/db?password=***&sslmode=require"
    )
    assert split_workspace_url("postgresql://h/db?sslmode=disable#my_ws") == (
        "postgresql://h/db?sslmode=disable",
        "my_ws",
    )
    assert split_workspace_url("postgresql://h/db") == ("postgresql://h/db", None)


def test_importing_geo_mz_does_not_import_psycopg():
    import subprocess
    import sys

    code = (
        "import sys, geo_mz, geo_mz.core.workspace, geo_mz.core.workspace_postgis, geo_mz.cli; "
        "assert 'psycopg' not in sys.modules, 'psycopg imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


def test_value_counts_agree_with_the_rows_on_both_backends(copied, sample_gpkg, pair):
    pws, _ = copied
    want = sample_gpkg.read("population")["adcode"].astype("string")
    for ws in (sample_gpkg, pws):
        got = ws.value_counts("population", "adcode")
        assert got.sort_index().to_dict() == want.dropna().value_counts().sort_index().to_dict()
        assert got.attrs["missing"] == int(want.isna().sum())
        with pytest.raises(WorkspaceError, match="has no field 'nope'"):
            ws.value_counts("population", "nope")
        with pytest.raises(WorkspaceError, match="no layer 'nope'"):
            ws.value_counts("nope", "adcode")
    # Missing values and integers, written the same into both.
    gws, new = pair
    layer = shelters()
    for ws in (gws, new):
        ws.write_layers({"shelters": layer}, {"shelters": PROV})
        notes = ws.value_counts("shelters", "note")
        assert notes.to_dict() == {"extra column": 1, "三": 1} and notes.attrs["missing"] == 1
        persons = ws.value_counts("shelters", "capacity_persons")
        assert persons.to_dict() == {"3000": 1, str(2**62): 1, "0": 1}

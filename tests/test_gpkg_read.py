"""Bounding-box reads through sqlite3 and the R-tree equal GDAL's (pyogrio) reads."""

import os
import sqlite3
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal

from geo_mz.core.catalog import get_spec
from geo_mz.core.errors import WorkspaceError
from geo_mz.core.gpkg_read import close_gpkg_connections, read_gpkg_bbox
from geo_mz.core.workspace import conform_types


def gdal(path: Path, layer: str, bbox: tuple) -> gpd.GeoDataFrame:
    """The reference: GDAL's spatial filter, rows in stored (fid) order."""
    df = pyogrio.read_dataframe(path, layer=layer, bbox=bbox, fid_as_index=True)
    return df.sort_index(kind="stable").reset_index(drop=True)


def boxes(bounds: tuple, n: int, seed: int = 0) -> list[tuple]:
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = bounds
    out = [tuple(bounds), (minx - 1, miny - 1, minx - 0.5, miny - 0.5)]
    for _ in range(n):
        cx, cy = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        w = (maxx - minx) * rng.choice([0.002, 0.02, 0.1, 0.4])
        h = (maxy - miny) * rng.choice([0.002, 0.02, 0.1, 0.4])
        out.append((cx - w, cy - h, cx + w, cy + h))
    return out


def test_sample_layers_equal_gdal(sample_ws):
    """Every layer of the sample workspace, many boxes: the same frame, raw and typed."""
    path = sample_ws.path
    rows = fast = 0
    for layer in sample_ws.layers():
        bounds = pyogrio.read_info(path, layer=layer)["total_bounds"] or sample_ws.bounds
        for box in boxes(bounds, 12):
            got = read_gpkg_bbox(path, layer, box)
            want = gdal(path, layer, box)
            if got is None:  # left to GDAL: only layers with date-time columns
                dtypes = pyogrio.read_info(path, layer=layer)["dtypes"]
                assert any(str(d).startswith("datetime") for d in dtypes), layer
            else:
                fast += 1
                assert_geodataframe_equal(got, want, check_dtype=True, check_crs=True)
            typed = sample_ws.read(layer, bbox=box)
            assert_geodataframe_equal(typed, conform_types(want, get_spec(layer)))
            rows += len(want)
    assert rows > 1000 and fast > 50  # the boxes did hold rows, most read here


def _blob_geom(blob: bytes) -> shapely.Geometry:
    flags = blob[3]
    skip = 8 + {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}[(flags >> 1) & 7]
    return shapely.from_wkb(blob[skip:])


def editor(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection with the SQL functions a GeoPackage's R-tree triggers call.

    As another tool (QGIS, a web edit) writes the file in place.
    """
    con = sqlite3.connect(path)
    con.create_function(
        "ST_IsEmpty", 1, lambda b: int(b is None or shapely.is_empty(_blob_geom(b)))
    )
    for i, name in enumerate(("ST_MinX", "ST_MinY", "ST_MaxX", "ST_MaxY")):
        con.create_function(name, 1, lambda b, i=i: float(_blob_geom(b).bounds[i]))
    return con


def names(frame: pd.DataFrame) -> list:
    return frame["name"].astype(object).where(frame["name"].notna(), None).tolist()


@pytest.fixture
def odd(tmp_path: Path) -> Path:
    """A GeoPackage with nulls in integer and boolean columns and lines around a box."""
    lines = [
        shapely.LineString([(0, 0), (10, 10)]),  # crosses the box
        shapely.LineString([(0, 3), (3, 0)]),  # its envelope meets the box, the line does not
        shapely.LineString([(5, 5), (6, 6)]),  # inside
        shapely.LineString([(4, 4), (4, 8)]),  # touches the box's edge
        shapely.LineString([(20, 20), (21, 21)]),  # far away
    ]
    df = gpd.GeoDataFrame(
        {
            "name": ["a", None, "c", "d", "e"],
            "n": pd.array([1, 2, None, 4, 5], dtype="Int64"),
            "flag": pd.array([True, False, None, True, False], dtype="boolean"),
            "x": [1.5, np.nan, 3.0, 4.0, 5.0],
            "k": np.array([1, 2, 3, 4, 5], dtype=np.int32),
        },
        geometry=lines,
        crs="EPSG:4490",
    )
    path = tmp_path / "odd.gpkg"
    pyogrio.write_dataframe(df, path, layer="lines")
    return path


@pytest.mark.parametrize(
    "box",
    [(4, 4, 7, 7), (2.9, 2.9, 7, 7), (5.2, 5.2, 5.8, 5.8), (0, 0, 10, 10), (30, 30, 31, 31)],
)
def test_odd_layer_equal_gdal(odd, box):
    got = read_gpkg_bbox(odd, "lines", box)
    assert got is not None
    assert_geodataframe_equal(got, gdal(odd, "lines", box), check_dtype=True, check_crs=True)


def test_near_miss_left_out(odd):
    """A line whose envelope meets the box but which does not: left out, as GDAL does."""
    got = read_gpkg_bbox(odd, "lines", (2.9, 2.9, 7, 7))
    assert "b" not in set(got["name"].dropna()) and len(got) == 3  # a, c, d


def test_value_of_another_type_falls_back(odd):
    """SQLite lets an integer column hold text: not decoded here, GDAL reads it."""
    with editor(odd) as con:
        con.execute("UPDATE lines SET n = 'many' WHERE fid = 1")
    assert read_gpkg_bbox(odd, "lines", (0, 0, 10, 10)) is None


def test_edit_in_place_and_replace_are_seen(odd, tmp_path):
    box = (0, 0, 10, 10)
    assert names(read_gpkg_bbox(odd, "lines", box)) == ["a", None, "c", "d"]
    # An edit in place (same inode), as a web edit or QGIS makes it.
    ino = odd.stat().st_ino
    with editor(odd) as con:
        con.execute("UPDATE lines SET name = 'z' WHERE fid = 3")
    assert odd.stat().st_ino == ino
    assert names(read_gpkg_bbox(odd, "lines", box)) == ["a", None, "z", "d"]
    # A replaced file (geo_mz writes so): a new inode, new contents.
    other = tmp_path / "other.gpkg"
    df = gdal(odd, "lines", box).iloc[:1]
    pyogrio.write_dataframe(df, other, layer="lines")
    os.replace(other, odd)
    assert names(read_gpkg_bbox(odd, "lines", box)) == ["a"]
    close_gpkg_connections()
    assert names(read_gpkg_bbox(odd, "lines", box)) == ["a"]


def test_prefix_and_unknown_layer(sample_ws):
    units = sample_ws.read("admin_units")
    code = str(units.loc[units["level"] == "town", "adcode"].iloc[0])
    box = tuple(units.total_bounds)
    got = sample_ws.read("population", bbox=box, prefix=("adcode", code))
    every = sample_ws.read("population", bbox=box)
    mine = every[every["adcode"].astype("string").fillna("").str.startswith(code).to_numpy(bool)]
    assert 0 < len(got) < len(every)
    assert_geodataframe_equal(got, mine.reset_index(drop=True))
    with pytest.raises(WorkspaceError, match=r"没有图层 'nope'.*no layer 'nope'"):
        sample_ws.read("nope", bbox=box)


def test_prefix_leaves_out_nulls_and_others(odd):
    box = (0, 0, 10, 10)
    every = gdal(odd, "lines", box)
    mine = every[every["name"].astype("string").fillna("").str.startswith("c").to_numpy(bool)]
    got = read_gpkg_bbox(odd, "lines", box, prefix=("name", "c"))
    assert_geodataframe_equal(got, mine.reset_index(drop=True), check_dtype=True)
    assert read_gpkg_bbox(odd, "lines", box, prefix=("nope", "c")) is None  # no such column


def test_large_boxes_through_gdal_give_the_same_frames(sample_ws, odd, monkeypatch):
    """A box holding many rows goes through GDAL with the same filters: the same frames."""
    import geo_mz.core.gpkg_read as gpkg_read

    units = sample_ws.read("admin_units")
    code = str(units.loc[units["level"] == "town", "adcode"].iloc[0])
    box = tuple(units.total_bounds)
    cases = [
        (sample_ws.path, "population", box, ("adcode", code)),
        (sample_ws.path, "roads", box, None),
        (odd, "lines", (0, 0, 10, 10), ("name", "c")),
    ]
    small = [read_gpkg_bbox(*c[:3], prefix=c[3]) for c in cases]
    monkeypatch.setattr(gpkg_read, "_GDAL_ROWS", 1)
    for (path, layer, bbox, prefix), want in zip(cases, small, strict=True):
        close_gpkg_connections()
        assert want is not None and len(want) > 0
        assert_geodataframe_equal(read_gpkg_bbox(path, layer, bbox, prefix=prefix), want,
                                  check_dtype=True, check_crs=True)  # fmt: skip
    # SQLite's text affinity stores a number written to a text column as text: read as such.
    with editor(odd) as con:
        con.execute("UPDATE lines SET name = 52 WHERE fid = 1")
    close_gpkg_connections()
    got = read_gpkg_bbox(odd, "lines", (0, 0, 10, 10), prefix=("name", "5"))
    assert names(got) == ["52"]
    monkeypatch.setattr(gpkg_read, "_GDAL_ROWS", 25_000)
    close_gpkg_connections()
    small = read_gpkg_bbox(odd, "lines", (0, 0, 10, 10), prefix=("name", "5"))
    assert_geodataframe_equal(got, small, check_dtype=True)


def test_prefix_through_the_code_index_equals_the_rtree_read(sample_ws, odd, tmp_path):
    """An indexed code field: a part's own rows by the index range, the same frame as by box."""
    import shutil

    with sqlite3.connect(sample_ws.path) as con:  # geo_mz's writes index the code field
        idx = [r[1] for r in con.execute("PRAGMA index_list(population)")]
    assert "population_adcode" in idx
    plain = tmp_path / "plain.gpkg"
    shutil.copy(sample_ws.path, plain)
    with sqlite3.connect(plain) as con:
        con.execute("DROP INDEX population_adcode")
    units = sample_ws.read("admin_units")
    codes = [*[str(c) for c in units["adcode"]][:6], "4407", "9", ""]
    for code in codes:
        for box in [tuple(units.total_bounds), *boxes(tuple(units.total_bounds), 4, seed=3)]:
            want = read_gpkg_bbox(plain, "population", box, prefix=("adcode", code))
            got = read_gpkg_bbox(sample_ws.path, "population", box, prefix=("adcode", code))
            assert_geodataframe_equal(got, want, check_dtype=True, check_crs=True)
    # Text with a number or a blob in it: the index is not used, the R-tree read decides.
    with editor(odd) as con:
        con.execute('CREATE INDEX lines_name ON lines ("name")')
    close_gpkg_connections()
    box = (0, 0, 10, 10)
    every = gdal(odd, "lines", box)
    mine = every[every["name"].astype("string").fillna("").str.startswith("c").to_numpy(bool)]
    got = read_gpkg_bbox(odd, "lines", box, prefix=("name", "c"))
    assert_geodataframe_equal(got, mine.reset_index(drop=True), check_dtype=True)
    with editor(odd) as con:
        con.execute("UPDATE lines SET name = x'00' WHERE fid = 5")
    close_gpkg_connections()
    got = read_gpkg_bbox(odd, "lines", box, prefix=("name", "c"))
    assert_geodataframe_equal(got, mine.reset_index(drop=True), check_dtype=True)


def test_columns_read_equal_gdal_and_the_full_read(sample_ws):
    """Only some fields (a walking network's of roads): GDAL's frame with those columns."""
    units = sample_ws.read("admin_units")
    box = tuple(units.total_bounds)
    cols = ["road_class", "road_id", "nope"]  # a field the layer lacks is left out, as GDAL does
    got = read_gpkg_bbox(sample_ws.path, "roads", box, columns=cols)
    want = pyogrio.read_dataframe(sample_ws.path, layer="roads", bbox=box, fid_as_index=True,
                                  columns=cols)  # fmt: skip
    want = want.sort_index(kind="stable").reset_index(drop=True)
    assert list(got.columns) == ["road_id", "road_class", "geometry"]  # the layer's order
    assert_geodataframe_equal(got, want, check_dtype=True, check_crs=True)
    typed = sample_ws.read("roads", bbox=box, columns=cols)
    full = sample_ws.read("roads", bbox=box)
    assert_geodataframe_equal(typed, full[["road_id", "road_class", "geometry"]])
    code = str(units.loc[units["level"] == "town", "adcode"].iloc[0])
    own = sample_ws.read("population", bbox=box, prefix=("adcode", code), columns=["pop_60plus"])
    every = sample_ws.read("population", bbox=box, prefix=("adcode", code))
    assert_geodataframe_equal(own, every[["pop_60plus", "adcode", "geometry"]])

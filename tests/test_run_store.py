"""The GeoPackage run store's part files: every column kind kept, a part done whole or not at all.

The reference for what a part file must give back is the previous way of keeping a part: a
GeoPackage written and read by pyogrio (the merge appends the same rows to the store either way).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sqlite3

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from geo_mz.scale.part_files import (
    PartFileError,
    read_part_file,
    read_part_mark,
    write_part_file,
)
from geo_mz.scale.store import GpkgRunStore, RunStoreError, open_run_store
from geo_mz.scale.store_base import storable_rows

I64 = np.iinfo(np.int64)


def _kinds(n: int = 5) -> gpd.GeoDataFrame:
    """One column of every kind a result layer has, with missing values, in a set order."""
    assert n == 5
    return gpd.GeoDataFrame(
        {
            "zeta": [0.5, np.inf, np.nan, -0.0, 1e300],
            "f32": np.array([1.5, np.nan, 2.0, -3.25, 0.0], dtype="float32"),
            "big": np.array([I64.max, I64.min, 0, -1, 2**53 + 1], dtype="int64"),
            "i32": np.array([1, -2, 3, 2**31 - 1, 0], dtype="int32"),
            "i_na": pd.array([1, None, 3, -4, 2**40], dtype="Int64"),
            "i_full": pd.array([1, 2, 3, 4, 5], dtype="Int64"),
            "flag": [True, False, True, True, False],
            "b_na": pd.array([True, None, False, None, True], dtype="boolean"),
            "b_full": pd.array([True, False, False, True, True], dtype="boolean"),
            "text": pd.array(["a", None, "", "Z", "b c"], dtype="str"),
            "中文名": pd.Series(["佛山市", None, "顺德区 ✓", "e\u0301", "x"], dtype=object),
            "none": pd.Series([None] * 5, dtype=object),
            "mixed": pd.Series([1, "x", None, 2.5, True], dtype=object),
            "when": pd.to_datetime(
                ["2024-01-01", None, "2024-02-03 04:05:06.789", None, None], format="ISO8601"
            ),
        },
        geometry=[
            shapely.Point(113.1, 22.5),
            None,
            shapely.Polygon([(113, 22), (114, 22), (114, 23), (113, 22)]),
            shapely.Point(),
            shapely.MultiLineString([[(1, 2), (3, 4)], [(5, 6), (7, 8)]]),
        ],
        crs="EPSG:4490",
    )


def _pyogrio_way(tmp_path, frame: pd.DataFrame, part: str = "p") -> gpd.GeoDataFrame:
    """What the previous version kept: the rows written to a GeoPackage and read back."""
    path = tmp_path / f"{part}.gpkg"
    path.unlink(missing_ok=True)
    pyogrio.write_dataframe(
        storable_rows(frame, "k", part), path, layer="t_x", driver="GPKG",
        geometry_type="Unknown", promote_to_multi=False, layer_options={"SPATIAL_INDEX": "NO"},
    )  # fmt: skip
    return pyogrio.read_dataframe(path, layer="t_x")


def _assert_same(got: gpd.GeoDataFrame, want: gpd.GeoDataFrame) -> None:
    pd.testing.assert_frame_equal(
        pd.DataFrame(got.drop(columns="geometry")), pd.DataFrame(want.drop(columns="geometry"))
    )
    assert got.crs == want.crs
    a, b = np.asarray(got.geometry.values), np.asarray(want.geometry.values)
    assert (shapely.is_missing(a) == shapely.is_missing(b)).all()
    assert shapely.equals_exact(a, b, tolerance=0)[~shapely.is_missing(a)].all()
    assert (shapely.to_wkb(a) == shapely.to_wkb(b)).all()  # bit for bit, NaN coordinates too


def test_every_kind_reads_back_as_pyogrio_read_the_geopackage(tmp_path):
    frame = _kinds()
    write_part_file(tmp_path / "p.npz", {"t_x": frame}, {"run_key": "k", "part": "p"})
    mark, tables = read_part_file(tmp_path / "p.npz")
    got = tables["t_x"]
    assert mark == {"run_key": "k", "part": "p"} == read_part_mark(tmp_path / "p.npz")
    _assert_same(got, _pyogrio_way(tmp_path, frame))
    # And against the frame itself, independently of pyogrio: order, values, missing.
    assert list(got.columns) == ["run_key", "part", "seq", *frame.columns[:-1], "geometry"]
    np.testing.assert_array_equal(got["big"].to_numpy(), frame["big"].to_numpy())
    np.testing.assert_array_equal(got["zeta"].to_numpy(), frame["zeta"].to_numpy())
    assert np.signbit(got["zeta"].to_numpy()[3])  # -0.0 kept
    assert got["中文名"].tolist()[2:4] == ["顺德区 ✓", "e\u0301"] and pd.isna(got["中文名"][1])
    assert got["none"].tolist() == [None] * 5 and got["text"].tolist()[2] == ""
    np.testing.assert_array_equal(got["i_na"].to_numpy(), [1, np.nan, 3, -4, 2**40])


def test_plain_frames_empty_frames_and_all_missing_geometry(tmp_path):
    plain = pd.DataFrame({"b": ["x", "y"], "a": [1, 2]})
    no_geom = gpd.GeoDataFrame({"v": [1.0, 2.0]}, geometry=[None, None], crs="EPSG:4490")
    empty = gpd.GeoDataFrame({"v": []}, geometry=[], crs="EPSG:4490")
    # The layer with no rows first: the layers kept must still find their own arrays.
    frames = {"t_empty": empty, "t_plain": plain, "t_none": no_geom}
    write_part_file(tmp_path / "p.npz", frames, {"run_key": "k", "part": "p"})
    _, tables = read_part_file(tmp_path / "p.npz")
    assert set(tables) == {"t_plain", "t_none"}  # a layer with no rows adds nothing
    _assert_same(tables["t_plain"], _pyogrio_way(tmp_path, plain))
    _assert_same(tables["t_none"], _pyogrio_way(tmp_path, no_geom))
    assert list(tables["t_plain"].columns) == ["run_key", "part", "seq", "b", "a", "geometry"]


def test_projected_rows_are_kept_in_epsg4490_as_to_crs_gives(tmp_path):
    pts = gpd.GeoDataFrame(
        {"v": [1, 2]}, geometry=gpd.points_from_xy([500000.0, 512345.6], [2500000.0, 2.6e6]),
        crs="EPSG:32649",
    )  # fmt: skip
    write_part_file(tmp_path / "p.npz", {"t_x": pts}, {"run_key": "k", "part": "p"})
    got = read_part_file(tmp_path / "p.npz")[1]["t_x"]
    want = pts.to_crs("EPSG:4490").geometry.values
    assert (shapely.to_wkb(got.geometry.values) == shapely.to_wkb(want)).all()


def test_no_pickle_and_a_damaged_file_is_named(tmp_path):
    frame = _kinds()
    path = write_part_file(tmp_path / "p.npz", {"t_x": frame}, {"run_key": "k", "part": "p"})
    whole = path.read_bytes()
    # The header (after a 32-byte prefix) lists every array's dtype: none holds objects.
    header = json.loads(whole[32 : 32 + int.from_bytes(whole[16:24], "little")])
    assert header["arrays"] and all(np.dtype(d) != object for d, *_ in header["arrays"].values())
    for cut in (300, len(whole) // 2):  # a file cut short (a power cut): at its start, midway
        path.write_bytes(whole[:cut])
        with pytest.raises(PartFileError, match=r"p\.npz") as err:
            read_part_file(path)
        assert "删除" in str(err.value) and "delete it" in str(err.value)
        assert isinstance(err.value, RunStoreError)


def _frame(part: str, n: int = 3, shift: float = 0.0) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"part_no": [int(part)] * n, "x": np.arange(n) + shift, "名": ["甲"] * n},
        geometry=gpd.points_from_xy([113.0] * n, [22.0 + int(part) / 100] * n),
        crs="EPSG:4490",
    )


def _die_before_rename(store: str, part: str) -> None:
    # A worker killed after writing the part's rows, before the file is renamed into place.
    os.replace = lambda *_a: os._exit(3)  # type: ignore[assignment]
    open_run_store(store).save("k", part, {"times": _frame(part, shift=100)}, {"job": "t"})


def test_a_part_killed_before_its_mark_is_not_done_and_the_rerun_replaces_it(tmp_path):
    store = tmp_path / "runs.gpkg"
    rs = GpkgRunStore(store)
    rs.begin("k", {"job": "t"})
    for p in ("1", "2"):
        rs.save("k", p, {"times": _frame(p)}, {"job": "t"})
    assert rs.done("k") == {"1", "2"}
    first = rs.gather("k", "times")
    assert len(first) == 6 and not list(rs.parts_dir.glob("k/*.npz"))  # merged
    proc = mp.get_context("spawn").Process(target=_die_before_rename, args=(str(store), "3"))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 3
    (tmp,) = rs.parts_dir.glob("k/.*.tmp")  # its rows, written, never renamed
    assert rs.done("k") == {"1", "2"}  # part 3 is not done
    assert set(rs.gather("k", "times")["part"]) == {"1", "2"}
    assert tmp.exists()  # it might be a save going on: kept for an hour
    os.utime(tmp, (tmp.stat().st_atime - 3601, tmp.stat().st_mtime - 3601))
    rs.gather("k", "times")
    assert not tmp.exists()
    # The rerun computes 3 and saves 1 again: 3 added, 1 replaced (not doubled).
    rs.save("k", "3", {"times": _frame("3")}, {"job": "t"})
    rs.save("k", "1", {"times": _frame("1", n=2, shift=10)}, {"job": "t"})
    assert rs.done("k") == {"1", "2", "3"}
    st = rs.status("k")
    assert st["part"].tolist() == ["1", "2", "3"] and (st["status"] == "done").all()
    got = rs.gather("k", "times")
    assert got["part"].tolist() == ["1", "1", "2", "2", "2", "3", "3", "3"]
    np.testing.assert_array_equal(got["x"].to_numpy(), [10, 11, 0, 1, 2, 0, 1, 2])
    assert got["名"].tolist() == ["甲"] * 8 and got["part_no"].dtype == np.int64
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT count(*) FROM t_times").fetchone()[0] == 8
        n_done = db.execute("SELECT count(*) FROM geo_mz_run_parts WHERE status = 'done'")
        assert n_done.fetchone()[0] == 3  # the marks are in the store once merged


def test_a_failure_after_a_save_not_merged_wins(tmp_path):
    rs = GpkgRunStore(tmp_path / "runs.gpkg")
    rs.begin("k", {"job": "t"})
    rs.save("k", "1", {"times": _frame("1")}, {"job": "t"})
    rs.save("k", "2", {"times": _frame("2")}, {"job": "t"})
    rs.fail("k", "2", "boom", {"job": "t"})
    assert rs.done("k") == {"1"}
    assert rs.status("k").set_index("part")["status"].to_dict() == {"1": "done", "2": "failed"}
    assert set(rs.gather("k", "times")["part"]) == {"1"}


def _old_save(rs: GpkgRunStore, part: str, frame: gpd.GeoDataFrame) -> None:
    """What the previous version's save did: a GeoPackage per part, then the mark."""
    from geo_mz.scale.store_base import part_row, rows_info

    target = rs.part_file("k", part).with_suffix(".gpkg")
    target.parent.mkdir(parents=True, exist_ok=True)
    pyogrio.write_dataframe(
        storable_rows(frame, "k", part), target, layer="t_times", driver="GPKG",
        geometry_type="Unknown", promote_to_multi=False, layer_options={"SPATIAL_INDEX": "NO"},
    )  # fmt: skip
    with sqlite3.connect(rs.path) as db:
        row = part_row("k", part, "done", None, rows_info({"times": frame}, {}), {})
        db.execute("INSERT OR REPLACE INTO geo_mz_run_parts VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)


def test_part_files_of_the_previous_version_are_still_merged(tmp_path):
    rs = GpkgRunStore(tmp_path / "runs.gpkg")
    rs.begin("k", {"job": "t"})
    _old_save(rs, "1", _frame("1"))
    _old_save(rs, "2", _frame("2"))
    rs.save("k", "3", {"times": _frame("3")}, {"job": "t"})
    rs.save("k", "2", {"times": _frame("2", n=1, shift=7)}, {"job": "t"})  # replaces the old file
    _old_save(rs, "4", _frame("4"))
    with sqlite3.connect(rs.path) as db:  # an old file whose part was never marked done
        db.execute("DELETE FROM geo_mz_run_parts WHERE part = '4'")
    assert rs.done("k") == {"1", "2", "3"}
    got = rs.gather("k", "times")
    assert got["part"].tolist() == ["1", "1", "1", "2", "3", "3", "3"]
    np.testing.assert_array_equal(got["x"].to_numpy(), [0, 1, 2, 7, 0, 1, 2])
    assert [f.name for f in rs.parts_dir.glob("k/*")] == ["4.gpkg"]  # left, as before


def test_postgis_save_replaces_rows_and_marks_in_one_transaction(pg_url):
    from geo_mz.scale.store import PostgisRunStore

    rs = PostgisRunStore(pg_url, schema="store_unit")
    rs.begin("k", {"job": "t"})
    # First part: layer "a" with an all-missing column (created numeric), "b" with no rows.
    a = _frame("1").assign(note=np.nan)
    rs.save("k", "1", {"a": a, "b": _frame("1").iloc[:0]}, {"job": "t", "seconds": 0.5})
    # A later part has text in that column (widened to text) and rows of "b".
    rs.save("k", "2", {"a": _frame("2").assign(note="说明"), "b": _frame("2")}, {"job": "t"})
    rs.save("k", "1", {"a": a.iloc[:2], "b": _frame("1").iloc[:0]}, {"job": "t"})  # a rerun
    assert rs.done("k") == {"1", "2"}
    got = rs.gather("k", "a")
    assert got["part"].tolist() == ["1", "1", "2", "2", "2"]  # replaced, not doubled
    assert got["note"].tolist() == [None, None, "说明", "说明", "说明"]
    assert got["x"].dtype == np.float64 and got["part_no"].dtype == np.int64
    assert rs.gather("k", "b")["part"].tolist() == ["2", "2", "2"]
    st = rs.status("k").set_index("part")
    assert st.loc["1", "status"] == "done" and st.loc["2", "worker"] == ""


def _old_typed_columns(df, schema):
    """typed_columns before its whole-array paths (frozen here as the reference)."""
    for col, kind in schema.items():
        if col not in df.columns:
            continue
        s = df[col]
        if kind == "float":
            df[col] = pd.to_numeric(s).astype("float64")
        elif kind == "integer":
            df[col] = pd.array(pd.to_numeric(s), dtype="Int64")
            if not df[col].isna().any():
                df[col] = df[col].astype("int64")
        elif kind == "boolean":
            vals = [None if pd.isna(v) else bool(v) for v in s.tolist()]
            arr = pd.array(vals, dtype="boolean")
            df[col] = arr.astype(bool) if not arr.isna().any() else arr
        else:
            df[col] = pd.Series(
                [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                 for v in s.tolist()],
                index=df.index, dtype=object,
            )  # fmt: skip
    return df


def test_typed_columns_equal_the_value_by_value_rule():
    from geo_mz.scale.store_base import typed_columns

    rng = np.random.default_rng(5)
    n = 40
    cols = {
        "b_bool": rng.random(n) > 0.5,
        "b_float": np.where(rng.random(n) > 0.8, np.nan, (rng.random(n) > 0.5) * 1.0),
        "b_int": (rng.random(n) > 0.5).astype(np.int64) * 3,
        "b_obj": np.array([True, None, False, 1, 0.0] * 8, dtype=object),
        "b_nullable": pd.array([True, None, False, True] * 10, dtype="boolean"),
        "t_obj": np.array(["a", None, np.nan, "中文", ""] * 8, dtype=object),
        "t_str": pd.array(["x", None, "y", "z"] * 10, dtype="str"),
        "t_mixed": np.array(["a", 1, 2.5, None, pd.NA] * 8, dtype=object),
        "t_npstr": np.array([np.str_("a"), "b", None, np.str_("c")] * 10, dtype=object),
        "t_na": np.array([pd.NA, "a", None, "b"] * 10, dtype=object),
        "t_empty": np.array([None] * n, dtype=object),
        "f_int": np.arange(n),
        "f_obj": np.array([1, 2.5, None, "3"] * 10, dtype=object),
        "i_float": np.where(rng.random(n) > 0.7, np.nan, np.arange(n) * 1.0),
    }
    kinds = {c: {"b": "boolean", "t": "string", "f": "float", "i": "integer"}[c[0]]
             for c in cols}  # fmt: skip
    for sl in (slice(None), slice(0, 0), slice(3, 4)):
        frame = pd.DataFrame({c: v[sl] for c, v in cols.items()})
        got = typed_columns(frame.copy(), kinds)
        want = _old_typed_columns(frame.copy(), kinds)
        pd.testing.assert_frame_equal(got, want, check_exact=True)
        for c in got.columns:  # None stays None, NaN stays NaN, str stays str
            assert [type(v) for v in got[c].tolist()] == [type(v) for v in want[c].tolist()], c


def test_a_first_gather_keeps_the_merged_rows_equal_to_reading_them_back(tmp_path):
    """gather_layers uses the rows a merge just wrote; the same as reading the GeoPackage."""
    import shutil

    from geo_mz.scale.store_base import gather_layers

    kinds = _kinds()
    frames = {
        "1": {"a": kinds, "b": _frame("1")},
        "2": {"a": kinds.iloc[[1, 3]], "b": _frame("2", n=1)},  # missing values only
        "0": {"a": kinds.iloc[:0], "b": _frame("0", n=4, shift=5)},  # no rows of a
    }
    rs = GpkgRunStore(tmp_path / "m" / "runs.gpkg")
    rs.begin("k", {"job": "t"})
    for part, f in frames.items():
        rs.save("k", part, f, {"job": "t"})
    shutil.copytree(tmp_path / "m", tmp_path / "r")
    kept = gather_layers(rs, "k", ["a", "b", "none"])
    assert not list(rs.parts_dir.glob("k/*.npz"))  # merged, once
    back = GpkgRunStore(tmp_path / "r" / "runs.gpkg")
    assert back.merge("k") == 3
    for layer in ("a", "b", "none"):
        want = back.gather("k", layer)  # nothing new to merge: read from the GeoPackage
        got = kept[layer]
        assert list(got.columns) == list(want.columns)
        pd.testing.assert_frame_equal(pd.DataFrame(got), pd.DataFrame(want), check_exact=True)
        for c in got.columns:  # None stays None, NaN stays NaN
            assert [type(v) for v in got[c].tolist()] == [type(v) for v in want[c].tolist()], c
        if "geometry" in got:  # bit for bit
            a, b = np.asarray(got.geometry.values), np.asarray(want.geometry.values)
            assert (shapely.to_wkb(a) == shapely.to_wkb(b)).all()
    assert kept["a"]["part"].tolist() == ["1"] * 5 + ["2"] * 2
    assert kept["none"].empty
    # A layer asked alone, and through a store without gather_layers, gives the same.
    pd.testing.assert_frame_equal(pd.DataFrame(rs.gather("k", "b")), pd.DataFrame(kept["b"]))

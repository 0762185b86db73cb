"""Part files in ``geo_mz.part/2``: the same frames back as from ``geo_mz.part/1``, damage named.

The reference is the previous format's writer (:func:`write_part_file_v1`, kept unchanged):
every frame below is written in both formats and read back, and the two results must be the
same bit for bit (columns, order, dtypes, values, None vs NaN, WKB of the geometry). The rows
against pyogrio's GeoPackage round trip are checked in ``tests/test_run_store.py``.
"""

from __future__ import annotations

import json
import os
import struct
import zlib

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo_mz.scale.part_files import (
    FORMAT,
    PartFileError,
    encode_part,
    read_part_file,
    read_part_mark,
    write_part_file,
)
from geo_mz.scale.part_files_v1 import FORMAT_V1, write_part_file_v1
from geo_mz.scale.store import RunStoreError

MARK = {"run_key": "k", "part": "440103", "status": "done", "rows": '{"t_a": 5}', "seconds": 0.5}


def _every_kind() -> gpd.GeoDataFrame:
    """Each column kind a result layer may have, with missing values where it can."""
    return gpd.GeoDataFrame(
        {
            "f64": [0.5, np.inf, np.nan, -0.0, 1e300],
            "f32": np.array([1.5, np.nan, 2.0, -3.25, 0.0], dtype="float32"),
            "i64": np.array([2**63 - 1, -(2**63), 0, -1, 2**53 + 1], dtype="int64"),
            "i8": np.array([1, -2, 3, 127, -128], dtype="int8"),
            "u8": np.array([0, 1, 255, 3, 4], dtype="uint8"),
            "u64": np.array([0, 1, 2**40, 3, 4], dtype="uint64"),
            "i_na": pd.array([1, None, 3, -4, 2**40], dtype="Int64"),
            "i32_na": pd.array([None, None, 3, None, 5], dtype="Int32"),
            "i_full": pd.array([1, 2, 3, 4, 5], dtype="Int64"),
            "flag": [True, False, True, True, False],
            "b_na": pd.array([True, None, False, None, True], dtype="boolean"),
            "b_full": pd.array([True, False, False, True, True], dtype="boolean"),
            "text": pd.array(["a", None, "", "Z", "b c"], dtype="str"),
            "text_full": pd.array(["445102-S1-P001027", "", "x", "y", "z"], dtype="str"),
            "中文名": pd.Series(["佛山市", None, "顺德区 ✓", "e\u0301", ""], dtype=object),
            "all_na_str": pd.array([None] * 5, dtype="str"),
            "none": pd.Series([None] * 5, dtype=object),
            "nan_obj": pd.Series([np.nan, "x", None, "y", pd.NA], dtype=object),
            "mixed": pd.Series([1, "x", None, 2.5, True], dtype=object),
            "when": pd.to_datetime(
                ["2024-01-01", None, "2024-02-03 04:05:06.789", None, None], format="ISO8601"
            ),
            "when_ns": pd.Series(pd.to_datetime(["2024-01-01 00:00:00.123456789"] * 5)),
            "when_tz": pd.to_datetime(["2024-01-01"] * 5).tz_localize("Asia/Shanghai"),
        },
        geometry=[
            shapely.Point(113.1, 22.5),
            None,
            shapely.Polygon([(113, 22), (114, 22), (114, 23), (113, 22)]),
            shapely.Point(),
            shapely.MultiPolygon(
                [shapely.box(0, 0, 1, 1), shapely.box(2, 2, 3, 3).buffer(0.5, quad_segs=2)]
            ),
        ],
        crs="EPSG:4490",
    )


def _points(n: int, **geom_kw) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(7)
    x, y = 113 + rng.random(n), 22 + rng.random(n)
    return gpd.GeoDataFrame(
        {"cell_id": [f"c{i:06d}" for i in range(n)], "walk_min": rng.random(n) * 60},
        geometry=gpd.points_from_xy(x, y, **geom_kw),
        crs="EPSG:4490",
    )


def _frames() -> dict[str, dict[str, pd.DataFrame]]:
    pts = _points(50)
    pts_na = pts.copy()
    pts_na.loc[[0, 7, 49], "geometry"] = None
    polys = gpd.GeoDataFrame(
        {"name": ["甲", "乙", "丙"]},
        geometry=[shapely.box(0, 0, 1, 1), None, shapely.box(1, 1, 2, 3)],
        crs="EPSG:4490",
    )
    multi = gpd.GeoDataFrame(
        {"v": [1.0, 2.0]},
        geometry=[shapely.MultiPolygon([shapely.box(0, 0, 1, 1)]), shapely.Polygon()],
        crs="EPSG:4490",
    )
    return {
        "every kind": {"t_x": _every_kind()},
        "points": {"t_times": pts, "t_units": polys},
        "points with missing geometry": {"t_times": pts_na},
        "3D points": {"t_z": _points(4, z=np.arange(4.0))},
        "M and empty points": {
            "t_m": gpd.GeoDataFrame(
                {"v": [1, 2, 3]},
                geometry=[
                    shapely.from_wkt("POINT M (1 2 3)"),
                    shapely.Point(1, 2),
                    shapely.Point(),
                ],
                crs="EPSG:4490",
            )
        },
        "multipolygons, empty polygon": {"t_multi": multi},
        "empty layer first, no geometry, plain frame": {
            "t_empty": gpd.GeoDataFrame({"v": []}, geometry=[], crs="EPSG:4490"),
            "t_none": gpd.GeoDataFrame({"v": [1.0, 2.0]}, geometry=[None, None], crs="EPSG:4490"),
            "t_plain": pd.DataFrame({"b": ["x", "y"], "a": [1, 2]}),
        },
        "projected": {
            "t_utm": gpd.GeoDataFrame(
                {"v": [1, 2]},
                geometry=gpd.points_from_xy([500000.0, 512345.6], [2500000.0, 2.6e6]),
                crs="EPSG:32649",
            )
        },
        "text holding NUL": {
            "t_nul": pd.DataFrame({"s": ["a\x00b", None, "c", "\x00", ""], "n": range(5)})
        },
        "all empty strings": {"t_e": pd.DataFrame({"s": ["", "", ""]})},
        "only missing text last": {"t_n": pd.DataFrame({"v": [1.0], "s": pd.array([None], "str")})},
        "no rows at all": {"t_empty": pd.DataFrame({"v": []})},
        "one row": {"t_1": _points(1)},
    }


def _assert_same(got: gpd.GeoDataFrame, want: gpd.GeoDataFrame) -> None:
    a, b = pd.DataFrame(got.drop(columns="geometry")), pd.DataFrame(want.drop(columns="geometry"))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    for col in a.columns:  # None stays None and NaN stays NaN (assert_frame_equal mixes them)
        assert [type(v) for v in a[col].tolist()] == [type(v) for v in b[col].tolist()], col
    assert got.crs == want.crs and got.geometry.name == want.geometry.name
    wa, wb = shapely.to_wkb(got.geometry.values), shapely.to_wkb(want.geometry.values)
    assert wa.tolist() == wb.tolist()


@pytest.mark.parametrize("case", list(_frames()))
def test_the_new_format_reads_back_what_the_old_one_did(tmp_path, case):
    tables = _frames()[case]
    old = write_part_file_v1(tmp_path / "old.npz", tables, MARK)
    new = write_part_file(tmp_path / "new.npz", tables, MARK)
    assert old.read_bytes()[:4] == b"PK\x03\x04" and new.read_bytes()[:13] == b"geo_mz.part/2"
    old_mark, old_tables = read_part_file(old)
    new_mark, new_tables = read_part_file(new)
    assert old_mark == new_mark == MARK == read_part_mark(old) == read_part_mark(new)
    assert list(new_tables) == list(old_tables) == [t for t, f in tables.items() if len(f)]
    for table in old_tables:
        _assert_same(new_tables[table], old_tables[table])


def test_values_kept_as_given(tmp_path):
    """Independently of the old format: the values against the frame written."""
    frame = _every_kind()
    _, tables = read_part_file(write_part_file(tmp_path / "p.npz", {"t_x": frame}, MARK))
    got = tables["t_x"]
    assert list(got.columns) == ["run_key", "part", "seq", *frame.columns[:-1], "geometry"]
    assert got["part"].tolist() == ["440103"] * 5 and got["seq"].tolist() == list(range(5))
    for col in ("f64", "f32", "i64"):
        np.testing.assert_array_equal(got[col].to_numpy(), frame[col].to_numpy())
    assert np.signbit(got["f64"].to_numpy()[3])  # -0.0 kept
    assert got["中文名"].tolist()[2:] == ["顺德区 ✓", "e\u0301", ""] and pd.isna(got["中文名"][1])
    assert got["text"].tolist()[2] == "" and got["none"].tolist() == [None] * 5
    assert got["all_na_str"].tolist() == [None] * 5
    np.testing.assert_array_equal(got["i_na"].to_numpy(), [1, np.nan, 3, -4, 2**40])
    np.testing.assert_array_equal(got["b_na"].to_numpy(), [1.0, np.nan, 0.0, np.nan, 1.0])
    mixed = got["mixed"].tolist()  # each value's text, as pyogrio wrote it
    assert mixed[:2] + mixed[3:] == ["1", "x", "2.5", "True"] and pd.isna(mixed[2])
    geoms = got.geometry.values
    assert shapely.equals_exact(geoms[0], shapely.Point(113.1, 22.5)) and geoms[1] is None
    assert geoms[3].is_empty and geoms[4].geom_type == "MultiPolygon"
    for col, v in (("f64", 7.0), ("i64", 7), ("flag", False)):  # the arrays can be written to
        got.loc[0, col] = v
        assert got[col][0] == v


def test_text_with_nul_round_trips(tmp_path):
    frame = pd.DataFrame({"s": ["a\x00b", None, "c", "\x00", ""]})
    _, tables = read_part_file(write_part_file(tmp_path / "p.npz", {"t": frame}, MARK))
    got = tables["t"]["s"].tolist()
    assert got[0] == "a\x00b" and got[2:] == ["c", "\x00", ""] and pd.isna(got[1])


def test_many_columns_partial_writes_and_no_writev_give_the_same_file(tmp_path, monkeypatch):
    # 700 columns: more buffers than one writev takes (1024).
    rng = np.random.default_rng(1)
    wide = pd.DataFrame(rng.random((30, 700)), columns=[f"c{i}" for i in range(700)])
    wide["s"] = [f"行{i}" for i in range(30)]
    tables = {"t_wide": wide, "t_pts": _points(20)}
    whole = write_part_file(tmp_path / "a.npz", tables, MARK).read_bytes()
    real = os.writev
    monkeypatch.setattr(os, "writev", lambda fd, bufs: real(fd, [bytes(bufs[0])[:7]]))
    assert write_part_file(tmp_path / "b.npz", tables, MARK).read_bytes() == whole
    monkeypatch.delattr(os, "writev")  # as on Windows
    assert write_part_file(tmp_path / "c.npz", tables, MARK).read_bytes() == whole
    _, got = read_part_file(tmp_path / "c.npz")
    # The frame came from one 2D array: its columns were strided views, written contiguous.
    np.testing.assert_array_equal(got["t_wide"][wide.columns[:700]].to_numpy(), wide.iloc[:, :700])


def _layout(raw: bytes) -> tuple[dict, int]:
    n = struct.unpack_from("<Q", raw, 16)[0]
    start = 32 + n + (-(32 + n) % 64)
    return json.loads(raw[32 : 32 + n]), start


def test_the_container_is_as_documented(tmp_path):
    path = write_part_file(tmp_path / "p.npz", {"t_x": _every_kind()}, MARK)
    raw = path.read_bytes()
    header, start = _layout(raw)
    assert raw[:16] == b"geo_mz.part/2\n\x00\x00" and header["format"] == FORMAT
    assert (
        zlib.crc32(raw[32 : 32 + struct.unpack_from("<Q", raw, 16)[0]])
        == struct.unpack_from("<I", raw, 24)[0]
    )
    assert len(raw) == start + header["payload_bytes"]
    assert zlib.crc32(raw[start:]) == header["payload_crc32"]
    _, arrays = encode_part({"t_x": _every_kind()}, MARK)
    assert set(header["arrays"]) == set(arrays)
    for key, (dtype, shape, offset, nbytes) in header["arrays"].items():
        assert offset % 64 == 0 and np.dtype(dtype) != object and nbytes == arrays[key].nbytes
        got = np.frombuffer(raw, dtype, int(np.prod(shape)), start + offset).reshape(shape)
        np.testing.assert_array_equal(got, arrays[key])


def _cuts(size: int, start: int) -> list[int]:
    return sorted({0, 1, 15, 31, 32, 40, start - 1, start, start + 1, size // 2, size - 1})


def test_a_file_cut_short_or_damaged_is_named(tmp_path):
    path = write_part_file(tmp_path / "p.npz", {"t_x": _every_kind(), "t_p": _points(9)}, MARK)
    whole = path.read_bytes()
    _, start = _layout(whole)
    for cut in _cuts(len(whole), start):  # a power cut after the rename: every place
        path.write_bytes(whole[:cut])
        for read in (read_part_file, read_part_mark):
            with pytest.raises(PartFileError, match=r"p\.npz") as err:
                read(path)
            assert "删除" in str(err.value) and "delete it" in str(err.value)
            assert isinstance(err.value, RunStoreError)
    for at in (20, 40, start + 3, len(whole) - 1):  # one byte flipped: prefix, header, rows
        path.write_bytes(whole[:at] + bytes([whole[at] ^ 0x10]) + whole[at + 1 :])
        with pytest.raises(PartFileError, match=r"CRC-32|damaged"):
            read_part_file(path)
    path.write_bytes(whole + b"\x00")  # longer than it says
    with pytest.raises(PartFileError, match="header says"):
        read_part_mark(path)


def test_other_files_and_formats_are_named(tmp_path):
    path = tmp_path / "p.npz"
    path.write_bytes(b"not a part file at all, but long enough to hold a prefix")
    with pytest.raises(PartFileError, match="not a readable part file"):
        read_part_file(path)
    # A newer version's file: the magic of this format, another format in the header.
    write_part_file(path, {"t": _points(3)}, MARK)
    raw = path.read_bytes()
    header, start = _layout(raw)
    text = json.dumps({**header, "format": "geo_mz.part/3"}).encode()
    body = struct.pack("<16sQI4x", raw[:16], len(text), zlib.crc32(text)) + text
    path.write_bytes(body + bytes(-len(body) % 64) + raw[start:])
    with pytest.raises(PartFileError, match=r"geo_mz\.part/3.*is not 'geo_mz\.part/2'"):
        read_part_mark(path)
    # A header of this format that lacks what the reader needs (a CRC that matches).
    text = json.dumps({"format": FORMAT, "mark": {}, "layers": []}).encode()
    path.write_bytes(struct.pack("<16sQI4x", raw[:16], len(text), zlib.crc32(text)) + text)
    with pytest.raises(PartFileError, match="lacks arrays, payload_bytes, payload_crc32"):
        read_part_file(path)
    # An old file cut short is named as before.
    old = write_part_file_v1(tmp_path / "o.npz", {"t": _points(30)}, MARK)
    raw = old.read_bytes()
    assert json.loads(np.load(old)["header"].tobytes())["format"] == FORMAT_V1
    for cut in (300, len(raw) // 2, len(raw) - 10):
        old.write_bytes(raw[:cut])
        with pytest.raises(PartFileError, match=r"o\.npz"):
            read_part_file(old)


def test_a_failed_write_leaves_no_file_and_keeps_the_earlier_one(tmp_path, monkeypatch):
    path = write_part_file(tmp_path / "p.npz", {"t": _points(3)}, MARK)
    before = path.read_bytes()

    def full(fd, bufs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "writev", full)
    with pytest.raises(OSError, match="No space"):
        write_part_file(path, {"t": _points(5)}, {**MARK, "part": "x"})
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["p.npz"]


def test_a_file_not_there_is_not_named_damaged(tmp_path):
    # The store's merge may take a part file while its mark is read: that is no damage.
    for read in (read_part_file, read_part_mark):
        with pytest.raises(FileNotFoundError):
            read(tmp_path / "gone.npz")

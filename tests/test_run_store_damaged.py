"""A damaged part file (a power cut) is set aside and its part computed again, not a stop."""

from __future__ import annotations

import json
import logging
import shutil
import struct
import zlib

import geopandas as gpd
import pytest

from geo_mz.eldercare.circle15 import CircleSettings
from geo_mz.scale import runner as scale
from geo_mz.scale.part_files import DamagedPartFileError, PartFileError, read_part_file
from geo_mz.scale.store import open_run_store
from geo_mz.scale.store_gpkg import DAMAGED_SUFFIX


def _frame(part: str) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"v": [int(part)] * 3}, geometry=gpd.points_from_xy([113.0] * 3, [22.0] * 3),
        crs="EPSG:4490",
    )  # fmt: skip


def _cut_short(path) -> None:
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])


def _saved(tmp_path, parts=("1", "2", "3")):
    store = open_run_store(tmp_path / "runs.gpkg")
    store.begin("k", {"job": "t"})
    for p in parts:
        store.save("k", p, {"x": _frame(p)}, {"job": "t", "seconds": 0.1})
    return store


def test_done_and_status_set_a_damaged_file_aside(tmp_path, caplog):
    store = _saved(tmp_path)
    bad = store.part_file("k", "2")
    _cut_short(bad)
    with pytest.raises(DamagedPartFileError):
        read_part_file(bad)
    with caplog.at_level(logging.WARNING, logger="geo_mz.scale.store_gpkg"):
        assert store.done("k") == {"1", "3"}
    aside = list(bad.parent.glob(f"2.npz.*{DAMAGED_SUFFIX}"))
    assert len(aside) == 1 and not bad.exists()  # kept beside it, for a look
    assert (
        "已损坏" in caplog.text and "computed again" in caplog.text and aside[0].name in caplog.text
    )
    assert set(store.status("k")["part"]) == {"1", "3"}
    # The part saved again (its rerun): done, and gathered with the others.
    store.save("k", "2", {"x": _frame("2")}, {"job": "t", "seconds": 0.1})
    rows = store.gather("k", "x")
    assert sorted(rows["part"].unique()) == ["1", "2", "3"] and len(rows) == 9
    assert aside[0].exists()  # never read as a part


def test_a_file_damaged_before_the_merge_is_not_merged(tmp_path):
    store = _saved(tmp_path)
    _cut_short(store.part_file("k", "3"))
    rows = store.gather("k", "x")  # merges 1 and 2, sets 3 aside
    assert sorted(rows["part"].unique()) == ["1", "2"]
    assert store.done("k") == {"1", "2"}
    assert store.part_rows("k", "3", "x") is None


def test_part_rows_of_a_damaged_file_is_not_done(tmp_path):
    store = _saved(tmp_path, ("1",))
    _cut_short(store.part_file("k", "1"))
    assert store.part_rows("k", "1", "x") is None
    assert store.done("k") == set()


def test_a_newer_format_is_not_set_aside(tmp_path):
    store = _saved(tmp_path, ("1",))
    f = store.part_file("k", "1")
    raw = f.read_bytes()
    n = int.from_bytes(raw[16:24], "little")
    header = json.loads(raw[32 : 32 + n])
    text = json.dumps({**header, "format": "geo_mz.part/3"}).encode()  # another version's
    body = struct.pack("<16sQI4x", raw[:16], len(text), zlib.crc32(text)) + text
    start = 32 + n + (-(32 + n) % 64)
    f.write_bytes(body + bytes(-len(body) % 64) + raw[start:])
    with pytest.raises(PartFileError, match=r"geo_mz\.part/3") as err:
        store.done("k")  # not this version's to set aside: said, and left where it is
    assert not isinstance(err.value, DamagedPartFileError) and f.exists()


def test_a_rerun_computes_a_part_whose_file_was_damaged(tmp_path, sample_ws):
    ws_ref = str(shutil.copy(sample_ws.path, tmp_path / "ws.gpkg"))
    parts = scale.parts_of(sample_ws.read("admin_units"), "town")[:3]
    store = tmp_path / "runs.gpkg"
    opts = {"settings": CircleSettings()}
    first = scale.run_partitioned("coverage", ws_ref, parts, store=store, options=opts, workers=0)
    assert (first.parts["status"] == "done").all()
    victim = parts[1].code
    _cut_short(open_run_store(store).part_file(first.run_key, victim))
    again = scale.run_partitioned("coverage", ws_ref, parts, store=store, options=opts, workers=0)
    st = again.parts.set_index("part")["status"]
    assert st[victim] == "done" and (st.drop(victim) == "skipped").all()
    units = scale.gather(store, again.run_key, "units")
    assert set(units["part"]) == {p.code for p in parts}

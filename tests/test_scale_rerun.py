"""Reruns after the data changed outside geo_mz: the run key follows the layers' data.

A layer edited by another tool (pyogrio, QGIS, an SQL ``UPDATE``) leaves geo_mz's layer
records as they were; the run key must change anyway, so that a rerun computes every part
again rather than reporting the old figures as 'skipped'. Figures after an edit are checked
against one whole-district computation on the edited data.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import struct

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from geo_mz.core.layer_digest import gpkg_layer_digests, layer_digests
from geo_mz.core.workspace import Workspace
from geo_mz.eldercare import coverage
from geo_mz.eldercare.circle15 import CircleSettings
from geo_mz.network.graph import network_from_roads
from geo_mz.scale import runner as scale
from geo_mz.scale.store import open_run_store

STREETS = ["4407030"]  # the three street parts (街道): small, so each run takes a few seconds


# --------------------------------------------------------------------------- helpers


def _gpkg_geometry(blob: bytes) -> shapely.Geometry:
    """The geometry of a GeoPackage geometry blob (header, optional envelope, WKB)."""
    envelope = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}[(blob[3] >> 1) & 0b111]
    return shapely.from_wkb(bytes(blob[8 + envelope :]))


def _gpkg_blob(geom: shapely.Geometry, srs_id: int = 4490) -> bytes:
    """A GeoPackage geometry blob: 'GP', version 0, little-endian flags, no envelope, WKB."""
    return b"GP\x00\x01" + struct.pack("<i", srs_id) + shapely.to_wkb(geom, byte_order=1)


def sql_edit(path, statement: str, params: tuple = ()) -> None:
    """Run one SQL statement on a GeoPackage the way a plain SQLite client does.

    GDAL's R-tree triggers call the GeoPackage SQL functions (``ST_IsEmpty``, ``ST_MinX``, …),
    which GDAL, SpatiaLite and QGIS provide; plain ``sqlite3`` has to be given them, or every
    UPDATE of a layer fails.
    """

    def bound(i: int):
        return lambda b: None if b is None else float(_gpkg_geometry(b).bounds[i])

    with sqlite3.connect(path) as db:
        db.create_function(
            "ST_IsEmpty", 1, lambda b: None if b is None else int(_gpkg_geometry(b).is_empty)
        )
        for i, name in enumerate(("ST_MinX", "ST_MinY", "ST_MaxX", "ST_MaxY")):
            db.create_function(name, 1, bound(i))
        assert db.execute(statement, params).rowcount == 1
    db.close()


def _opts(ws) -> dict:
    return {"settings": CircleSettings(), "measure_crs": ws.metadata["measure_crs"]}


def _run(ws, parts, store, ref=None):
    """Run the coverage job in this process; ``ref``: the workspace's URL (PostGIS)."""
    return scale.run_partitioned(
        "coverage", ref or ws.path, parts, store=store, options=_opts(ws), level="town", workers=0
    )


def _statuses(res) -> dict[str, str]:
    return dict(zip(res.parts["part"], res.parts["status"], strict=True))


def _whole_times(ws) -> pd.DataFrame:
    """Walking times of every population cell, one computation over the whole district."""
    s = CircleSettings()
    layers = ws.read_all()
    net = network_from_roads(layers["roads"], mode="walk", walk_speed_kmh=s.walk_speed_kmh,
                             measure_crs=ws.metadata["measure_crs"])  # fmt: skip
    centres = coverage.select_centres(layers["elder_care"], kinds=s.kinds, statuses=s.statuses)
    return coverage.access_times(net, centres, layers["population"], max_snap_m=s.max_snap_m)


def _times(store, res) -> pd.DataFrame:
    return pd.DataFrame(scale.gather(store, res.run_key, "times")).set_index("cell_id")


def _farthest(times: pd.DataFrame) -> str:
    """The cell with the longest finite walk to a centre."""
    return str(times["walk_min"][np.isfinite(times["walk_min"])].idxmax())


def _check_against_whole(got: pd.DataFrame, ws) -> None:
    whole = _whole_times(ws).set_index("cell_id").loc[got.index]
    np.testing.assert_array_equal(got["walk_min"].to_numpy(float), whole["walk_min"].to_numpy())
    assert (got["nearest_centre"].astype(str) == whole["nearest_centre"].astype(str)).all()


@pytest.fixture
def ws(sample_ws, tmp_path) -> Workspace:
    """A private copy of the sample workspace, to edit."""
    return Workspace(shutil.copy(sample_ws.path, tmp_path / "ws.gpkg"))


# --------------------------------------------------------------------------- digests


def test_digests_follow_the_data_not_the_layer_records(ws, tmp_path):
    d0 = gpkg_layer_digests(ws.path)
    assert set(d0) == set(ws.layers()) and len(set(d0.values())) == len(d0)
    assert layer_digests(ws.path) == d0  # the same data read again
    assert gpkg_layer_digests(shutil.copy(ws.path, tmp_path / "copy.gpkg")) == d0
    records = ws.layer_records()

    # The smallest change a float can take, with plain SQL: only that layer's digest moves.
    fid, v = (
        sqlite3.connect(ws.path)
        .execute("SELECT fid, pop_total FROM population ORDER BY fid LIMIT 1")
        .fetchone()
    )
    sql_edit(ws.path, "UPDATE population SET pop_total = ? WHERE fid = ?",
             (float(np.nextafter(v, np.inf)), fid))  # fmt: skip
    d1 = gpkg_layer_digests(ws.path)
    assert {k for k in d0 if d0[k] != d1[k]} == {"population"}
    pd.testing.assert_frame_equal(ws.layer_records(), records)  # what the old key was built from
    sql_edit(ws.path, "UPDATE population SET pop_total = ? WHERE fid = ?", (v, fid))
    assert gpkg_layer_digests(ws.path) == d0  # the data, not its history

    # A road appended with pyogrio.
    road = ws.read("roads").iloc[[0]].copy()
    road["geometry"] = road.geometry.translate(0.001, 0.001)
    pyogrio.write_dataframe(road, ws.path, layer="roads", append=True)
    d2 = gpkg_layer_digests(ws.path)
    assert {k for k in d0 if d0[k] != d2[k]} == {"roads"}
    pd.testing.assert_frame_equal(ws.layer_records(), records)


def test_digests_see_an_edit_still_in_the_write_ahead_log(ws):
    # QGIS edits GeoPackages in WAL mode: an edit may sit in ws.gpkg-wal, not in the file.
    d0 = gpkg_layer_digests(ws.path)
    with sqlite3.connect(ws.path) as db:
        assert db.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
    # Another connection kept open (QGIS with the layer loaded): closing the editing connection
    # then leaves the WAL in place instead of folding it into the file.
    writer = sqlite3.connect(ws.path)
    writer.execute("SELECT count(*) FROM elder_care").fetchone()
    sql_edit(ws.path, "UPDATE elder_care SET beds = beds + 1 WHERE facility_id = 'EC050'")
    assert ws.path.with_name("ws.gpkg-wal").stat().st_size > 0
    try:
        d1 = gpkg_layer_digests(ws.path)
    finally:
        writer.close()
    assert {k for k in d0 if d0[k] != d1[k]} == {"elder_care"}


def test_digests_are_kept_per_file_state_and_made_again_after_any_edit(ws, tmp_path, monkeypatch):
    """A second digest of an unchanged file reads nothing; any commit or a new file: read."""
    from geo_mz.core import layer_digest

    first = shutil.copy(ws.path, tmp_path / "first.gpkg")
    d0 = gpkg_layer_digests(ws.path)
    reads: list[str] = []
    real = layer_digest._gpkg_table_digest
    monkeypatch.setattr(layer_digest, "_gpkg_table_digest",
                        lambda conn, p, t: reads.append(t) or real(conn, p, t))  # fmt: skip
    assert gpkg_layer_digests(ws.path) == d0 and reads == []  # kept: nothing read
    assert layer_digests(str(ws.path)) == d0 and reads == []
    # An edit that leaves the file's size and time as they were (its time set back): SQLite's
    # data_version still tells.
    st = ws.path.stat()
    sql_edit(ws.path, "UPDATE population SET pop_total = pop_total + 1 WHERE fid = 1")
    os.utime(ws.path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (ws.path.stat().st_size, ws.path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    d1 = gpkg_layer_digests(ws.path)
    assert {k for k in d0 if d0[k] != d1[k]} == {"population"} and len(reads) == len(d0)
    # Another file renamed into place (as a workspace write does): read again.
    os.replace(first, ws.path)
    assert gpkg_layer_digests(ws.path) == d0 and len(reads) == 2 * len(d0)


def test_run_key_of_a_workspace_object_and_of_its_path_agree(ws):
    opts = _opts(ws)
    assert scale.run_key("coverage", ws, opts, "town") == scale.run_key(
        "coverage", str(ws.path), opts, "town"
    )


# --------------------------------------------------------------------------- reruns


def test_reruns_after_edits_outside_geo_mz_recompute_every_part(ws, tmp_path):
    parts = scale.parts_of(ws.read("admin_units"), "town", codes=STREETS)
    assert len(parts) == 3
    store = tmp_path / "runs.gpkg"
    first = _run(ws, parts, store)
    assert first.ok and set(_statuses(first).values()) == {"done"}
    before = _times(store, first)
    same = _run(ws, parts, store)  # nothing changed: nothing to do
    assert same.run_key == first.run_key and set(_statuses(same).values()) == {"skipped"}
    meta = open_run_store(store).runs().set_index("run_key").loc[first.run_key, "meta"]
    assert gpkg_layer_digests(ws.path)["roads"] in meta  # the run record names the data

    # 1. A plain SQL UPDATE of one attribute: the centre nearest to most cells closes.
    busiest = str(before["nearest_centre"].value_counts().index[0])
    served = before.index[before["nearest_centre"] == busiest]
    sql_edit(ws.path, "UPDATE elder_care SET status = 'closed' WHERE facility_id = ?", (busiest,))
    closed = _run(ws, parts, store)
    assert closed.run_key != first.run_key
    assert set(_statuses(closed).values()) == {"done"}  # recomputed, not 'skipped'
    after = _times(store, closed)
    _check_against_whole(after, ws)
    assert busiest not in set(after["nearest_centre"].astype(str))
    old, new = before.loc[served, "walk_min"], after.loc[served, "walk_min"]
    assert (new >= old).all() and (new > old).sum() > len(served) // 2
    others = before.index.difference(served)
    pd.testing.assert_series_equal(after.loc[others, "walk_min"], before.loc[others, "walk_min"])

    # 2. A plain SQL UPDATE of one geometry: the centre moves onto the farthest cell.
    far = _farthest(after)
    nearest_far = str(after.loc[far, "nearest_centre"])
    sql_edit(ws.path, "UPDATE elder_care SET geom = ? WHERE facility_id = ?",
             (_gpkg_blob(after.loc[far, "geometry"]), nearest_far))  # fmt: skip
    moved = _run(ws, parts, store)
    assert moved.run_key not in (first.run_key, closed.run_key)
    assert set(_statuses(moved).values()) == {"done"}
    got = _times(store, moved)
    _check_against_whole(got, ws)
    assert got.loc[far, "walk_min"] < after.loc[far, "walk_min"]
    assert got.loc[far, "nearest_centre"] == nearest_far

    # 3. A centre appended with pyogrio, as QGIS or a script would add one.
    far2 = _farthest(got)
    new_centre = ws.read("elder_care").iloc[[0]].copy()
    new_centre["facility_id"] = "EC900"
    new_centre["kind"] = "home_care_centre"
    new_centre["status"] = "operating"
    new_centre["geometry"] = gpd.GeoSeries([got.loc[far2, "geometry"]], crs="EPSG:4490").values
    pyogrio.write_dataframe(new_centre, ws.path, layer="elder_care", append=True)
    added = _run(ws, parts, store)
    assert set(_statuses(added).values()) == {"done"}
    got2 = _times(store, added)
    _check_against_whole(got2, ws)
    assert got2.loc[far2, "nearest_centre"] == "EC900"
    assert got2.loc[far2, "walk_min"] < got.loc[far2, "walk_min"]

    # 4. A road appended with pyogrio: a new key, every part computed again.
    road = ws.read("roads").iloc[[0]].copy()
    road["geometry"] = road.geometry.translate(0.002, 0.0)
    pyogrio.write_dataframe(road, ws.path, layer="roads", append=True)
    with_road = _run(ws, parts, store)
    assert with_road.run_key != added.run_key
    assert set(_statuses(with_road).values()) == {"done"}
    again = _run(ws, parts, store)
    assert again.run_key == with_road.run_key and set(_statuses(again).values()) == {"skipped"}
    # Each data version keeps its own results: the first run's figures are still there.
    pd.testing.assert_frame_equal(_times(store, first), before)


# --------------------------------------------------------------------------- PostGIS


@pytest.fixture
def pg_ws(pg_url, sample_ws) -> str:
    """The sample copied to a fresh PostGIS schema (its URL, password included)."""
    from geo_mz.core.workspace_postgis import PostgisWorkspace

    PostgisWorkspace.from_workspace(sample_ws, pg_url, schema="rerun_ws", replace=True)
    return f"{pg_url}#rerun_ws"


def _psql(pg_url: str, *statements: tuple[str, tuple]) -> None:
    import psycopg

    with psycopg.connect(pg_url) as conn, conn.transaction():
        for text, params in statements:
            conn.execute(text, params)


def test_postgis_digests_follow_the_data(pg_url, pg_ws):
    import psycopg

    from geo_mz.core.workspaces import open_workspace

    d0 = layer_digests(pg_ws)
    assert set(d0) == set(open_workspace(pg_ws).layers()) and layer_digests(pg_ws) == d0
    records = open_workspace(pg_ws).layer_records()
    with psycopg.connect(pg_url) as conn:
        fid, v = conn.execute(
            "SELECT fid, pop_total FROM rerun_ws.population ORDER BY fid LIMIT 1"
        ).fetchone()
    # The smallest change a float can take (row text rounded to 15 digits would miss it).
    _psql(pg_url, ("UPDATE rerun_ws.population SET pop_total = %s WHERE fid = %s",
                   (float(np.nextafter(v, np.inf)), fid)))  # fmt: skip
    d1 = layer_digests(pg_ws)
    assert {k for k in d0 if d0[k] != d1[k]} == {"population"}
    pd.testing.assert_frame_equal(open_workspace(pg_ws).layer_records(), records)
    _psql(pg_url, ("UPDATE rerun_ws.population SET pop_total = %s WHERE fid = %s", (v, fid)))
    assert layer_digests(pg_ws) == d0
    # A field added (QGIS' "add field"): the table's columns are part of the digest.
    _psql(pg_url, ("ALTER TABLE rerun_ws.water ADD COLUMN note text", ()))
    d2 = layer_digests(pg_ws)
    assert {k for k in d0 if d0[k] != d2[k]} == {"water"}


def test_postgis_reruns_after_sql_edits_recompute_every_part(pg_url, pg_ws):
    from geo_mz.core.workspaces import open_workspace

    ws = open_workspace(pg_ws)
    parts = scale.parts_of(ws.read("admin_units"), "town", codes=STREETS)
    store = f"{pg_url}#rerun_runs"
    first = _run(ws, parts, store, pg_ws)
    assert first.ok and set(_statuses(first).values()) == {"done"}
    same = _run(ws, parts, store, pg_ws)
    assert same.run_key == first.run_key and set(_statuses(same).values()) == {"skipped"}
    before = _times(store, first)

    busiest = str(before["nearest_centre"].value_counts().index[0])
    _psql(pg_url, ("UPDATE rerun_ws.elder_care SET status = 'closed' WHERE facility_id = %s",
                   (busiest,)))  # fmt: skip
    closed = _run(ws, parts, store, pg_ws)
    assert closed.run_key != first.run_key
    assert set(_statuses(closed).values()) == {"done"}
    after = _times(store, closed)
    _check_against_whole(after, ws)
    assert busiest not in set(after["nearest_centre"].astype(str))
    served = before.index[before["nearest_centre"] == busiest]
    assert (after.loc[served, "walk_min"] > before.loc[served, "walk_min"]).any()

    # A road inserted with SQL (a copy of road 0, moved 200 m east).
    _psql(
        pg_url,
        ("CREATE TEMP TABLE new_road ON COMMIT DROP AS "
         "SELECT * FROM rerun_ws.roads WHERE fid = 0", ()),
        ("UPDATE new_road SET fid = (SELECT max(fid) + 1 FROM rerun_ws.roads), "
         "geom = ST_Translate(geom, 0.002, 0)", ()),
        ("INSERT INTO rerun_ws.roads SELECT * FROM new_road", ()),
    )  # fmt: skip
    with_road = _run(ws, parts, store, pg_ws)
    assert with_road.run_key != closed.run_key
    assert set(_statuses(with_road).values()) == {"done"}
    again = _run(ws, parts, store, pg_ws)
    assert again.run_key == with_road.run_key and set(_statuses(again).values()) == {"skipped"}


def test_counts_follow_the_data_not_the_layer_records(ws):
    """points_left_out's totals: a layer appended by another tool is counted as it is now."""
    before = ws.count("shelters")
    assert before == int(ws.layer_records().set_index("layer")["rows"]["shelters"])
    extra = ws.read("shelters").iloc[[0, 1]].copy()
    extra["shelter_id"] = ["X1", "X2"]
    pyogrio.write_dataframe(extra, ws.path, layer="shelters", append=True)
    assert ws.count("shelters") == before + 2 == len(ws.read("shelters"))
    assert int(ws.layer_records().set_index("layer")["rows"]["shelters"]) == before  # stale

"""PostGIS workspace reads in fewer round trips, with the same rows and the same guarantees.

Round trips are counted from libpq's own trace of the connection (one ``ReadyForQuery`` a
round trip). The ``ancestors`` read is compared with the GeoPackage reader's and with the
filter it replaces (:func:`~geo_mz.core.workspace_read.related_to`).
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import shapely

from geo_mz.core.workspace_read import read_layer, related_to

from .test_workspace_postgis import assert_same_layer

psycopg = pytest.importorskip("psycopg")


@pytest.fixture(scope="module")
def pws(pg_url, sample_ws):
    from geo_mz.core.workspace_postgis import PostgisWorkspace

    return PostgisWorkspace.from_workspace(sample_ws, pg_url, schema="trips_ws", replace=True)


@contextmanager
def traced(url: str) -> Iterator[dict]:
    """Count the round trips of this process's next pooled connection (libpq's trace)."""
    from geo_mz.core.workspace_postgis import close_pool, pooled_connection

    close_pool()
    out: dict = {}
    with tempfile.TemporaryFile("w+") as f:
        with pooled_connection(url) as conn:  # back to the pool: the workspace's next one
            conn.pgconn.trace(f.fileno())
            conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
        yield out
        with pooled_connection(url) as conn:
            conn.pgconn.untrace()
        f.seek(0)
        text = f.read()
    out["trips"] = text.count("\tReadyForQuery") + text.count("\tCopyInResponse")
    out["text"] = text
    close_pool()


def test_a_part_snapshot_is_a_round_trip_a_read_and_two_more(pws, sample_ws):
    box = tuple(shapely.bounds(sample_ws.read("admin_units").geometry.values[0]))
    with traced(pws._url) as t, pws.snapshot() as w:
        units = w.read("admin_units", bbox=box)
        w.read("population", bbox=box, prefix=("adcode", "440703"), columns=["pop_total"])
        w.read("roads", bbox=box, columns=["road_class"])
    # Was 8: lock, BEGIN, catalog, the reads, COMMIT, unlock.
    assert t["trips"] == 5, t["text"]
    assert len(units) == len(sample_ws.read("admin_units", bbox=box))
    with traced(pws._url) as t:
        pws.read("elder_care")
    assert t["trips"] == 3, t["text"]  # was 6


@pytest.mark.parametrize(
    ("code", "box"),
    [("440703001", True), ("440703001", False), ("440703", True), ("4407", False),
     ("9", True), ("", False)],
)  # fmt: skip
def test_own_units_and_their_ancestors_equal_the_geopackage(pws, sample_ws, code, box):
    units = sample_ws.read("admin_units")
    village = units[units["adcode"].str.len() > 9].iloc[0]
    code = village["adcode"] if code == "440703001" else code
    bbox = tuple(shapely.bounds(village.geometry)) if box else None
    got = pws.read("admin_units", bbox=bbox, prefix=("adcode", code), ancestors=True)
    whole = sample_ws.read("admin_units", bbox=bbox)
    want = whole[related_to(whole, "adcode", code)].reset_index(drop=True)
    assert_same_layer(got, want)
    if bbox is not None:
        gpkg = read_layer(sample_ws.path, "admin_units", sample_ws.layers(), bbox=bbox,
                          prefix=("adcode", code), ancestors=True)  # fmt: skip
        assert_same_layer(got, gpkg)
    if code == village["adcode"]:
        assert set(got["adcode"]) >= {code, code[:9], code[:6]}  # its town and county too
    with pytest.raises(Exception, match="needs prefix"):
        pws.read("admin_units", ancestors=True)


def test_the_ancestors_read_uses_the_code_index(pws):
    from geo_mz.core._postgis_db import pooled_connection
    from geo_mz.core._postgis_read import layer_query

    query, params = layer_query(pws.schema, "admin_units", [("adcode", "text")], srid=4490,
                                bbox=None, prefix=("adcode", "text", "440703001"),
                                ancestors=True)  # fmt: skip
    with pooled_connection(pws._url) as conn, conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute(b"EXPLAIN " + query.as_bytes(conn), params))
    assert "admin_units_adcode" in plan, plan


def test_each_thread_has_its_own_snapshot(pws):
    seen: dict[str, list] = {"a": [], "b": []}
    a_in, b_done = threading.Event(), threading.Event()

    def reader(name: str, first: threading.Event | None, then: threading.Event | None) -> None:
        with pws.snapshot():
            conn = pws._snapshot_state()[0]
            seen[name].append(conn.info.backend_pid)
            if first is not None:
                first.set()
            if then is not None:
                assert then.wait(10)
            pws.read("elder_care")
            seen[name].append(pws._snapshot_state()[0].info.backend_pid)

    a = threading.Thread(target=reader, args=("a", a_in, b_done))
    a.start()
    assert a_in.wait(10)
    reader("b", None, None)  # a whole snapshot of its own while a's is open
    b_done.set()
    a.join(10)
    assert len(seen["a"]) == 2 and seen["a"][0] == seen["a"][1]  # a kept its transaction
    assert seen["b"][0] == seen["b"][1] != seen["a"][0]
    assert pws._snapshot_state() is None


def test_a_read_waiting_for_a_writer_sees_the_written_table_whole(pws, pg_url):
    """The lock comes before the snapshot: a layer replaced while a read waits is read whole.

    A write replaces the layer's table; a snapshot taken before it committed would find the
    new table (catalogs are read fresh) but not its rows.
    """
    from geo_mz.core.workspace_postgis import close_pool

    close_pool()
    want = pws.read("elder_care")
    keep = 5
    s = pws.schema
    got: dict = {}
    with psycopg.connect(pws._url) as w:
        w.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (0x676D7A, s))
        w.execute(f'CREATE TABLE "{s}".new_care (LIKE "{s}".elder_care INCLUDING ALL)')
        w.execute(f'INSERT INTO "{s}".new_care SELECT * FROM "{s}".elder_care WHERE fid < {keep}')
        t = threading.Thread(target=lambda: got.setdefault("frame", pws.read("elder_care")))
        t.start()
        for _ in range(100):  # the reader is waiting for the lock
            with psycopg.connect(pws._url, autocommit=True) as o:
                waiting = o.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                ).fetchone()[0]
            if waiting:
                break
            time.sleep(0.05)
        assert waiting
        w.execute(f'DROP TABLE "{s}".elder_care')
        w.execute(f'ALTER TABLE "{s}".new_care RENAME TO elder_care')
    t.join(20)
    assert_same_layer(got["frame"], want.iloc[:keep])
    assert np.array_equal(
        got["frame"]["facility_id"].to_numpy(), want["facility_id"].to_numpy()[:keep]
    )


@pytest.mark.parametrize("kind", ["roads", "population", "admin_units"])
def test_a_mask_read_equals_the_geopackages(pws, sample_ws, kind):
    """``mask=``: the rows meeting a polygon (a cut), as the GeoPackage's (pyogrio's) mask."""
    from geo_mz.scale.cut import make_cut
    from geo_mz.scale.part_inputs import part_crs
    from geo_mz.scale.runner import parts_of

    part = parts_of(sample_ws.read("admin_units"), "town")[0]
    cut = make_cut(part.geometry, part_crs(part), 800.0)
    ring = (
        shapely.Point(113.08, 22.6)
        .buffer(0.03)
        .difference(shapely.Point(113.08, 22.6).buffer(0.015))
    )  # fmt: skip  (a hole: not its box)
    for mask in (cut.lonlat_mask, ring, shapely.Polygon()):
        got = pws.read(kind, mask=mask)
        assert_same_layer(got, sample_ws.read(kind, mask=mask))
        box = pws.read(kind, bbox=shapely.bounds(mask)) if not mask.is_empty else got
        assert len(got) <= len(box)
        if kind == "roads" and mask is ring:
            assert 0 < len(got) < len(box)  # the hole and the corners are left out
    cols = ["road_class"] if kind == "roads" else ["adcode"]
    got = pws.read(kind, mask=cut.lonlat_mask, columns=cols)
    assert_same_layer(got, sample_ws.read(kind, mask=cut.lonlat_mask, columns=cols))
    with pytest.raises(Exception, match="not both"):
        pws.read(kind, mask=ring, bbox=(0, 0, 1, 1))

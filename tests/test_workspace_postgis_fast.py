"""PostGIS workspace reads made cheaper, with the same frames and the same guarantees.

Rows are ordered by ``fid`` here, not by the server; a part's own rows are a range of the
``adcode`` index with the box a test of them; a snapshot's end is sent, not waited for; the
catalog query is a prepared statement of each pooled connection. Each is checked against the
GeoPackage's read of the same data (and the rows the previous query gave).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely

from geo_mz.core.workspace_read import conform_types, related_to

from .test_workspace_postgis import assert_same_layer

psycopg = pytest.importorskip("psycopg")


@pytest.fixture(scope="module")
def pws(pg_url, sample_ws):
    from geo_mz.core.workspace_postgis import PostgisWorkspace

    return PostgisWorkspace.from_workspace(sample_ws, pg_url, schema="fast_ws", replace=True)


def _box(sample_ws, code: str) -> tuple[float, float, float, float]:
    units = sample_ws.read("admin_units")
    return tuple(shapely.bounds(units.loc[units["adcode"] == code].geometry.values[0]))


def test_rows_out_of_fid_order_are_read_in_it(pg_url, sample_ws):
    """Rows moved in the table (an UPDATE writes a new version at its end) read in fid order."""
    from geo_mz.core._postgis_db import pooled_connection
    from geo_mz.core._postgis_read import layer_query
    from geo_mz.core.workspace_postgis import PostgisWorkspace

    moved = PostgisWorkspace.from_workspace(sample_ws, pg_url, schema="fast_moved", replace=True)
    with pooled_connection(pg_url) as conn:
        for kind in ("population", "roads", "admin_units"):
            conn.execute(f'UPDATE fast_moved."{kind}" SET fid = fid WHERE fid % 3 = 0')
        query, params = layer_query("fast_moved", "population", [], srid=4490, bbox=None,
                                    prefix=None)  # fmt: skip
        fids = [r[0] for r in conn.execute(query, params).fetchall()]
    assert fids != sorted(fids)  # the server's order is not fid order: the reader sorts
    box = _box(sample_ws, "440703")
    for kind, kw in (("population", {"bbox": box, "prefix": ("adcode", "440703")}),
                     ("population", {}), ("roads", {"bbox": box}),
                     ("roads", {"mask": shapely.box(*box).buffer(-0.001)})):  # fmt: skip
        assert_same_layer(moved.read(kind, **kw), sample_ws.read(kind, **kw))
    units = sample_ws.read("admin_units")
    code = str(units.loc[units["adcode"].str.len() > 9, "adcode"].iloc[0])
    want = units[related_to(units, "adcode", code)].reset_index(drop=True)
    got = moved.read("admin_units", prefix=("adcode", code), ancestors=True)
    assert_same_layer(got, want)


def test_fid_order():
    from geo_mz.core._postgis_read import fid_order

    assert fid_order([]) is None and fid_order([5]) is None and fid_order([1, 2, 9]) is None
    assert fid_order([3, 1, 2]).tolist() == [1, 2, 0]
    assert fid_order((2, 2)).tolist() == [0, 1]  # (no two rows share a fid; stable if they did)


def _plan(conn, query, params) -> str:
    with conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")
        return "\n".join(r[0] for r in conn.execute(b"EXPLAIN " + query.as_bytes(conn), params))


def test_a_part_read_is_a_range_of_the_code_index_and_the_box_a_test(pws, sample_ws):
    from geo_mz.core._postgis_db import pooled_connection
    from geo_mz.core._postgis_read import layer_query

    box = _box(sample_ws, "440703")
    args = {"srid": 4490, "bbox": box, "prefix": ("adcode", "text", "440703")}
    with pooled_connection(pws._url) as conn:
        ranged = _plan(conn, *layer_query(pws.schema, "population", [], indexed=True, **args))
        assert "population_adcode" in ranged and "population_geom_gist" not in ranged, ranged
        assert "IS TRUE" in ranged
        # The same rows either way (the box tested by the server in both).
        rows = [
            sorted(conn.execute(*layer_query(pws.schema, "population", [], indexed=i, **args)))
            for i in (False, True)
        ]
    assert rows[0] == rows[1] and rows[0]
    got = pws.read("population", bbox=box, prefix=("adcode", "440703"))
    assert_same_layer(got, sample_ws.read("population", bbox=box, prefix=("adcode", "440703")))


def test_the_catalog_knows_the_code_indexes(pws, sample_ws, pg_url):
    from geo_mz.core._postgis_db import pooled_connection
    from geo_mz.core._postgis_tables import read_catalog
    from geo_mz.core.workspace_postgis import PostgisWorkspace

    with pooled_connection(pg_url) as conn:
        cat = read_catalog(conn, pws.schema)
        have = {k for k in sample_ws.layers() if "adcode" in sample_ws.read(k).columns}
        assert cat.code_indexes == {(k, "adcode") for k in have}
        # Not a range of one: another collation, two columns, a partial index.
        conn.execute(f'CREATE INDEX fast_name ON {pws.schema}."admin_units" (name)')
        conn.execute(f'CREATE INDEX fast_two ON {pws.schema}."roads" '
                     '(road_id COLLATE "C", name)')  # fmt: skip
        conn.execute(f'CREATE INDEX fast_part ON {pws.schema}."roads" (name COLLATE "C") '
                     "WHERE name IS NOT NULL")  # fmt: skip
        assert read_catalog(conn, pws.schema).code_indexes == cat.code_indexes
        for name in ("fast_name", "fast_two", "fast_part"):
            conn.execute(f"DROP INDEX {pws.schema}.{name}")
    old = PostgisWorkspace.from_workspace(sample_ws, pg_url, schema="fast_noindex", replace=True)
    with pooled_connection(pg_url) as conn:
        conn.execute('DROP INDEX fast_noindex."population_adcode"')
        assert ("population", "adcode") not in read_catalog(conn, old.schema).code_indexes
    kw = {"bbox": _box(sample_ws, "440703"), "prefix": ("adcode", "440703")}
    assert_same_layer(old.read("population", **kw), pws.read("population", **kw))


def test_a_snapshots_end_is_not_waited_for_and_frees_the_lock(pws):
    """The end is sent; a writer gets the lock at once; the pool reads the results later."""
    from geo_mz.core import _postgis_db
    from geo_mz.core._postgis_tables import LOCK_CLASS

    _postgis_db.close_pool()
    with pws.snapshot():
        conn = pws._snapshot_state()[0]
        pws.read("elder_care")
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.ACTIVE  # unread
    assert conn in _postgis_db._ENDING
    with psycopg.connect(pws._url, autocommit=True) as writer:
        got = writer.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))",
                             (LOCK_CLASS, pws.schema)).fetchone()[0]  # fmt: skip
        assert got  # no reader holds it: the end ran without this process reading its result
        writer.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (LOCK_CLASS, pws.schema))
    with _postgis_db.pooled_connection(pws._url) as again:
        assert again is conn  # its results read, it is handed out again, idle
        assert again.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert again.execute("SELECT 1").fetchone() == (1,)
    assert len(pws.read("elder_care")) == len(pws.read("elder_care"))


def test_a_connection_whose_end_failed_is_closed_not_reused(pg_url):
    from geo_mz.core import _postgis_db

    _postgis_db.close_pool()
    with _postgis_db.pooled_connection(pg_url) as conn:
        _postgis_db.end_later(conn, b"SELECT 1; SELECT 1/0")
    with _postgis_db.pooled_connection(pg_url) as other:
        assert other is not conn and conn.closed
        assert other.execute("SELECT 2").fetchone() == (2,)
    _postgis_db.close_pool()


def test_the_catalog_is_prepared_once_a_connection_and_follows_a_new_schema(pg_url, sample_ws):
    from geo_mz.core import _postgis_db
    from geo_mz.core.workspace_postgis import PostgisWorkspace

    ws = PostgisWorkspace.from_workspace(sample_ws, pg_url, schema="fast_prep", replace=True)
    _postgis_db.close_pool()
    with ws.snapshot():
        first = ws._snapshot_state()[0]
        names = ws.layers()
    with ws.snapshot():
        assert ws._snapshot_state()[0] is first
        statements = first.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'geo_mz_catalog_%%'"
        ).fetchone()[0]
    assert statements == 1
    # psycopg deallocates every statement of a connection after a ROLLBACK, DROP or ALTER on
    # it (when it has prepared some of its own): the snapshot then prepares the query again.
    with _postgis_db.pooled_connection(pg_url) as conn:
        assert conn is first
        conn.execute("DEALLOCATE ALL")
    with ws.snapshot():
        assert ws._snapshot_state()[0] is first
        assert ws.layers() == names
    assert len(ws.read("elder_care")) == len(sample_ws.read("elder_care"))
    # The schema made anew with other layers: the prepared query reads the new tables.
    small = sample_ws.read("elder_care")
    ws2 = PostgisWorkspace.create(pg_url, schema="fast_prep", name="x", adcode="440703",
                                  bounds=sample_ws.bounds, replace=True)  # fmt: skip
    ws2.write_layers({"elder_care": small}, {"elder_care": {"synthetic": True, "source": "t"}})
    with ws2.snapshot():
        assert ws2._snapshot_state()[0] is first
        assert ws2.read("elder_care").shape == small.shape
        assert ws2._catalog(first).names == ["elder_care"] != names
    _postgis_db.close_pool()


@pytest.mark.parametrize(
    "values",
    [("a", None, "é", "", "北京"), (), (None, None), ("x",) * 3],
)
def test_text_array_equals_pandas_str(values):
    from geo_mz.core._postgis_read import text_array

    got = pd.Series(text_array(values))
    want = pd.Series(np.array(values, dtype=object), dtype="str")
    pd.testing.assert_series_equal(got, want)


@pytest.mark.parametrize(
    ("values", "pg_type"),
    [((1, None, -(2**63)), "bigint"), ((1, 2), "bigint"), ((True, None), "boolean"),
     ((False, True), "boolean"), ((None,), "bigint")],
)  # fmt: skip
def test_numbers_and_flags_typed_whole_equal_value_by_value(values, pg_type):
    from geo_mz.core._postgis_read import column
    from geo_mz.core._postgis_tables import read_values

    for is_field in (True, False):
        got = pd.Series(column(values, pg_type, is_field))
        want = read_values(list(values), pg_type, is_field)
        if is_field:  # conform_types' types of spec fields
            want = pd.Series(pd.array(list(values), dtype="Int64" if pg_type == "bigint"
                                      else "boolean"))  # fmt: skip
        pd.testing.assert_series_equal(got, want, check_exact=True)


def test_a_read_typed_already_equals_conform_types(pws, sample_ws):
    """``typed_frame`` skips ``conform_types`` only when it would change nothing."""
    from geo_mz.core._postgis_db import pooled_connection
    from geo_mz.core._postgis_read import frame_from_rows, layer_query, typed_frame
    from geo_mz.core._postgis_tables import read_catalog
    from geo_mz.core.catalog import get_spec

    skipped = []
    with pooled_connection(pws._url) as conn:
        cat = read_catalog(conn, pws.schema)
        for kind in sample_ws.layers():
            spec = get_spec(kind)
            stored = [(n, t) for n, t in cat.tables[kind] if n not in ("fid", "geom")]
            query = layer_query(pws.schema, kind, stored, srid=4490, bbox=None, prefix=None)
            rows = conn.cursor(binary=True).execute(*query).fetchall()
            raw = frame_from_rows(rows, stored, spec, cat.storage_crs, None)
            typed = typed_frame(raw, spec)
            assert_same_layer(typed, conform_types(raw, spec))
            assert_same_layer(typed, sample_ws.read(kind))
            if typed is raw:
                skipped.append(kind)
    assert {"population", "roads", "admin_units"} <= set(skipped) < set(sample_ws.layers())


def test_points_from_ewkb_equal_those_from_st_asbinary(pg_url):
    """A point layer's geometries read as EWKB: the same as from WKB, with no SRID."""
    from geo_mz.core._postgis_db import pooled_connection
    from geo_mz.core._postgis_read import geometries, points_of_ewkb

    cases = {
        "points": ["SRID=4490;POINT(113.1 22.6)", "SRID=4490;POINT(-0 1e-300)"],
        "a NULL": ["SRID=4490;POINT(113.1 22.6)", None],
        "an empty point": ["SRID=4490;POINT(1 2)", "SRID=4490;POINT EMPTY"],
        "3D and no SRID": ["SRID=4490;POINT Z (1 2 3)", "POINT(3 4)"],
        "a line": ["SRID=4490;LINESTRING(0 0, 1 1)", "SRID=4490;POINT(1 2)"],
        "none": [],
    }
    with pooled_connection(pg_url) as conn:
        for name, texts in cases.items():
            rows = (
                conn.cursor(binary=True)
                .execute(
                    "SELECT g, ST_AsBinary(g) FROM unnest(%s::text[]::geometry[]) "
                    "WITH ORDINALITY AS t(g, i) ORDER BY i",
                    (texts,),
                )
                .fetchall()
            )
            got = points_of_ewkb(tuple(r[0] for r in rows))
            want = geometries([r[1] for r in rows])
            assert len(got) == len(texts), name
            assert shapely.to_wkb(got).tolist() == shapely.to_wkb(want).tolist(), name
            assert shapely.is_missing(got).tolist() == shapely.is_missing(want).tolist(), name
            assert (shapely.get_srid(got[~shapely.is_missing(got)]) == 0).all(), name


def test_read_many_equals_the_reads_one_by_one_in_one_round_trip(pws, sample_ws):
    from .test_workspace_postgis_trips import traced

    box = _box(sample_ws, "440703")
    units = sample_ws.read("admin_units")
    code = str(units.loc[units["adcode"].str.len() > 9, "adcode"].iloc[0])
    reads = [
        ("admin_units", {"bbox": box, "prefix": ("adcode", code), "ancestors": True}),
        ("population", {"bbox": box, "prefix": ("adcode", "440703"), "columns": ["pop_total"]}),
        ("roads", {"columns": ["road_class"], "mask": shapely.box(*box).buffer(-0.001)}),
        ("incidents", {}),  # dates and timestamps (conform_types)
        ("population", {"bbox": (0.0, 0.0, 1.0, 1.0)}),  # no row
    ]
    with pws.snapshot() as w:
        one_by_one = [w.read(kind, **opts) for kind, opts in reads]
    with traced(pws._url) as t, pws.snapshot() as w:
        together = w.read_many(reads)
    assert t["trips"] == 3, t["text"]  # the start, the reads, the end (not waited for)
    assert len(together) == len(reads)
    for got, want in zip(together, one_by_one, strict=True):
        assert_same_layer(got, want)
    assert len(one_by_one[-1]) == 0 and len(one_by_one[1]) > 0
    assert pws.read_many([]) == []
    # A bad read among them: raised before any is sent, and the workspace reads on.
    for bad, match in ((("no_such_layer", {}), "no_such_layer"),
                       (("roads", {"bbox": box, "mask": shapely.box(*box)}), "not both"),
                       (("roads", {"ancestors": True}), "needs prefix"),
                       (("roads", {"prefix": ("nope", "1")}), "nope")):  # fmt: skip
        with pytest.raises(Exception, match=match):
            pws.read_many([reads[0], bad])
    assert_same_layer(pws.read_many(reads[:1])[0], one_by_one[0])

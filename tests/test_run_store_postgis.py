"""The PostGIS run store's binary save: the same rows as the GeoPackage store, a part whole or not.

The reference for what a gather must give is the GeoPackage run store (its own encoding, its own
reader): both stores keep the same frames and must give them back alike, column for column and
geometry bit for bit.
"""

from __future__ import annotations

import multiprocessing as mp
import os

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import pytest
import shapely

from geo_mz.scale import store_postgis
from geo_mz.scale.store import open_run_store
from geo_mz.scale.store_postgis_copy import copy_buffer, encode_column, geometry_field
from tests.test_run_store import _assert_same, _frame, _kinds


def _both(tmp_path, pg_url, name: str) -> list:
    stores = [open_run_store(tmp_path / f"{name}.gpkg"), open_run_store(f"{pg_url}#{name}")]
    for s in stores:
        s.begin("k", {"job": "j"})
    return stores


def test_every_kind_gathers_as_from_the_geopackage_store(tmp_path, pg_url):
    binary = _kinds().drop(columns=["mixed", "when"])  # every column binary COPY takes
    cases = {
        "bin_kinds": binary,
        "bin_projected": binary.to_crs("EPSG:32649"),
        "bin_plain": pd.DataFrame({"b": ["x", None, "é"], "a": [1, 2, 3]}),
        "bin_lines": gpd.GeoDataFrame(
            {"v": [1.0, 2.0]},
            geometry=[shapely.LineString([(113, 22), (113.5, 22.5)]), shapely.Point(113, 22)],
            crs="EPSG:4490",
        ),
    }
    for name, frame in cases.items():
        gp, pg = _both(tmp_path, pg_url, name)
        for s in (gp, pg):
            # Reversed rows and an empty layer first: order and all-missing columns count.
            s.save("k", "1", {"x": frame, "e": frame.iloc[:0]}, {"job": "j"})
            s.save("k", "2", {"x": frame.iloc[::-1], "e": frame.iloc[:2]}, {"job": "j"})
            s.save("k", "1", {"x": frame.iloc[1:], "e": frame.iloc[:0]}, {"job": "j"})  # rerun
        for layer in ("x", "e"):
            for part in (None, "1", "2"):  # the gather, and each part's rows alone
                if part is None:
                    got, want = pg.gather("k", layer), gp.gather("k", layer)
                else:
                    got, want = pg.part_rows("k", part, layer), gp.part_rows("k", part, layer)
                if "geometry" in want:
                    _assert_same(got, want)
                else:
                    pd.testing.assert_frame_equal(got, want)
        assert pg.gather("k", "x")["part"].tolist()[: len(frame) - 1] == ["1"] * (len(frame) - 1)
    got = open_run_store(f"{pg_url}#bin_kinds").gather("k", "x")
    np.testing.assert_array_equal(got["big"].to_numpy()[-5:], binary["big"].to_numpy()[::-1])
    assert np.signbit(got["zeta"].to_numpy()[1 + 1])  # -0.0 kept (part 1 from its row 1)


def test_values_binary_cannot_take_go_the_text_way(tmp_path, pg_url):
    frame = _kinds()  # "mixed": numbers and text in one column; "when": datetimes as text
    gp, pg = _both(tmp_path, pg_url, "text_way")
    for s in (gp, pg):
        s.save("k", "1", {"x": frame}, {"job": "j"})
    got, want = pg.gather("k", "x"), gp.gather("k", "x")
    _assert_same(got.drop(columns=["mixed", "when"]), want.drop(columns=["mixed", "when"]))
    assert got["mixed"].tolist()[:4] == ["1", "x", None, "2.5"]
    assert got["when"].tolist()[0] == "2024-01-01 00:00:00"


def test_a_binary_row_stream_is_what_psycopg_writes_row_by_row(pg_url):
    # An independent encoder: psycopg's own binary COPY of Python values, one row at a time.
    frame = _kinds().drop(columns=["mixed", "when", "none"])
    types = {"zeta": "float8", "f32": "float8", "big": "int8", "i32": "int8", "i_na": "int8",
             "i_full": "int8", "flag": "bool", "b_na": "bool", "b_full": "bool", "text": "text",
             "中文名": "text"}  # fmt: skip
    fields = [encode_column(frame[c], t) for c, t in types.items()]
    geoms = np.asarray(frame.geometry.values)
    fields.append(geometry_field(geoms, 4490))
    ours = copy_buffer(fields, len(frame))
    cols = ", ".join(f'"{c}" {t}' for c, t in types.items())
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS copy_ref")
        conn.execute(f"CREATE TEMP TABLE copy_ref ({cols}, g geometry)")
        conn.execute("CREATE TEMP TABLE copy_ours (LIKE copy_ref)")
        with conn.cursor().copy("COPY copy_ref FROM STDIN (FORMAT BINARY)") as cp:
            cp.set_types([*types.values(), "bytea"])
            wkb = shapely.to_wkb(shapely.set_srid(geoms, 4490), include_srid=True)
            for i in range(len(frame)):
                row = [frame[c].astype(object).iloc[i] for c in types]
                row = [None if pd.isna(v) else v.item() if hasattr(v, "item") else v for v in row]
                cp.write_row([*row, wkb[i]])
        with conn.cursor().copy("COPY copy_ours FROM STDIN (FORMAT BINARY)") as cp:
            cp.write(ours)
        q = "SELECT *, ST_AsEWKB(g) FROM {} ORDER BY ctid"
        ref = conn.execute(q.format("copy_ref")).fetchall()
        got = conn.execute(q.format("copy_ours")).fetchall()
    assert len(got) == len(frame) and repr(got) == repr(ref)  # repr: NaN equals NaN
    # The points' EWKB laid out by numpy is shapely's, byte for byte (NaN-free, missing NULL).
    pts = np.array([shapely.Point(113.25, 22.5), None, shapely.Point(-1e-300, 1e300)])
    data, lens = geometry_field(pts, 4490)
    want = shapely.to_wkb(shapely.set_srid(pts, 4490), include_srid=True)
    assert lens.tolist() == [25, -1, 25] and data.shape == (3, 25)
    assert bytes(data[0]) == want[0] and bytes(data[2]) == want[2]


@pytest.mark.parametrize("width", ["one", "mixed"])
def test_text_of_one_width_is_laid_out_as_fixed_and_equals_psycopgs_rows(pg_url, width):
    """Codes of one width on every row (a part's ids): one block, no byte moved on its own."""
    n = 7
    codes = [f"4407030{i:02d}" for i in range(n)]
    names = ["蓬江区甲" if i % 2 else "江海区乙" for i in range(n)]  # one width in UTF-8 too
    empty = [""] * n
    if width == "mixed":
        codes[3], names[2], empty[5] = None, "新会", "x"
    frame = pd.DataFrame({"code": codes, "name": names, "empty": empty, "v": np.linspace(0.5, 3, n),
                          "k": np.arange(n, dtype=np.int64)})  # fmt: skip
    types = {"code": "text", "name": "text", "empty": "text", "v": "float8", "k": "int8"}
    pts = shapely.points(np.linspace(113, 114, n), np.full(n, 22.5))
    fields = [encode_column(frame[c], t) for c, t in types.items()]
    fields.append(geometry_field(pts, 4490))
    fixed = [f[0].ndim == 2 for f in fields[:3]]
    assert fixed == ([True] * 3 if width == "one" else [False] * 3)
    ours = copy_buffer(fields, n)
    cols = ", ".join(f'"{c}" {t}' for c, t in types.items())
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE TEMP TABLE w_ref ({cols}, g geometry)")
        conn.execute("CREATE TEMP TABLE w_ours (LIKE w_ref)")
        with conn.cursor().copy("COPY w_ref FROM STDIN (FORMAT BINARY)") as cp:
            cp.set_types([*types.values(), "bytea"])
            wkb = shapely.to_wkb(shapely.set_srid(pts, 4490), include_srid=True)
            for i in range(n):
                row = [frame[c].astype(object).iloc[i] for c in types]
                row = [None if pd.isna(v) else v.item() if hasattr(v, "item") else v for v in row]
                cp.write_row([*row, wkb[i]])
        with conn.cursor().copy("COPY w_ours FROM STDIN (FORMAT BINARY)") as cp:
            cp.write(ours)
        q = "SELECT *, ST_AsEWKB(g) FROM {} ORDER BY ctid"
        ref = conn.execute(q.format("w_ref")).fetchall()
        got = conn.execute(q.format("w_ours")).fetchall()
    assert len(got) == n and got == ref


def test_a_failed_save_leaves_the_part_as_it_was(pg_url):
    rs = open_run_store(f"{pg_url}#fail_save")
    rs.begin("k", {"job": "t"})
    rs.save("k", "1", {"a": _frame("1"), "b": _frame("1")}, {"job": "t"})
    rs.save("k", "2", {"a": _frame("2"), "b": _frame("2")}, {"job": "t"})  # the quick way
    bad = _frame("2", n=4).assign(名=["a\x00b"] * 4)  # NUL: the database refuses the text
    with pytest.raises(psycopg.Error):
        rs.save("k", "2", {"a": _frame("2", n=4), "b": bad}, {"job": "t"})
    assert rs.gather("k", "a")["part"].tolist() == ["1"] * 3 + ["2"] * 3  # old rows, not 4
    assert rs.done("k") == {"1", "2"}
    rs.save("k", "3", {"a": _frame("3"), "b": _frame("3")}, {"job": "t"})  # and on it goes
    assert len(rs.gather("k", "b")) == 9


def _die_mid_save(ref: str) -> None:
    # A worker killed while it lays out its second layer's rows, before the commit (the
    # one-query save lays out every layer first: test_a_part_killed_between_its_copies...).
    from geo_mz.scale import store_postgis_copy

    real, sent = store_postgis_copy.copy_buffer, []

    def then_die(*args):
        if sent:
            os._exit(3)
        sent.append(1)
        return real(*args)

    rs = open_run_store(ref)
    rs.save("k", "1", {"a": _frame("1"), "b": _frame("1")}, {"job": "t"})  # tables known
    store_postgis_copy.copy_buffer = then_die
    rs.save("k", "2", {"a": _frame("2"), "b": _frame("2")}, {"job": "t"})


def test_a_part_killed_mid_save_leaves_nothing_and_reruns_alone(pg_url):
    ref = f"{pg_url}#killed"
    rs = open_run_store(ref)
    rs.begin("k", {"job": "t"})
    proc = mp.get_context("spawn").Process(target=_die_mid_save, args=(ref,))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 3
    assert rs.done("k") == {"1"}
    with psycopg.connect(pg_url) as conn:  # no row of part 2 in any table, committed or not
        for t in ("t_a", "t_b"):
            n = conn.execute(f"SELECT count(*) FROM killed.{t} WHERE part = '2'").fetchone()[0]
            assert n == 0
    rs.save("k", "2", {"a": _frame("2"), "b": _frame("2")}, {"job": "t"})
    assert rs.gather("k", "b")["part"].tolist() == ["1"] * 3 + ["2"] * 3


def _die_after_the_first_copy(ref: str) -> None:
    # Killed when the server asks for the second layer's rows: the first layer's rows are in
    # the database, in the part's transaction (the one-query save), not committed.
    real, seen = store_postgis.same_types, []

    def then_die(*args):
        if seen:
            os._exit(3)
        seen.append(1)
        return real(*args)

    rs = open_run_store(ref)
    rs.save("k", "1", {"a": _frame("1"), "b": _frame("1")}, {"job": "t"})  # tables known
    store_postgis.same_types = then_die
    rs.save("k", "2", {"a": _frame("2"), "b": _frame("2")}, {"job": "t"})


def test_a_part_killed_between_its_copies_leaves_nothing(pg_url):
    ref = f"{pg_url}#killed_copy"
    rs = open_run_store(ref)
    rs.begin("k", {"job": "t"})
    proc = mp.get_context("spawn").Process(target=_die_after_the_first_copy, args=(ref,))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 3
    assert rs.done("k") == {"1"}
    with psycopg.connect(pg_url) as conn:
        for t in ("t_a", "t_b"):
            q = f"SELECT count(*) FROM killed_copy.{t} WHERE part = '2'"
            assert conn.execute(q).fetchone()[0] == 0
    rs.save("k", "2", {"a": _frame("2"), "b": _frame("2")}, {"job": "t"})
    assert rs.gather("k", "a")["part"].tolist() == ["1"] * 3 + ["2"] * 3


def test_a_known_save_is_three_waits_and_keeps_its_rows(pg_url, tmp_path):
    """One simple query: the columns and the first COPY, each COPY's end (was six waits)."""
    import tempfile

    from geo_mz.core.workspace_postgis import close_pool, pooled_connection

    gs, ps = _both(tmp_path, pg_url, "one_query")
    frames = {"a": _frame("1"), "b": _kinds().drop(columns=["mixed", "when"])}  # binary only
    for s in (gs, ps):
        s.save("k", "0", frames, {"job": "j"})  # the tables made, known to this process
    close_pool()
    with tempfile.TemporaryFile("w+") as f:
        with pooled_connection(pg_url) as conn:
            conn.pgconn.trace(f.fileno())
        for s in (gs, ps):
            s.save("k", "1", frames, {"job": "j"})
        with pooled_connection(pg_url) as conn:
            conn.pgconn.untrace()
        f.seek(0)
        text = f.read()
    close_pool()
    assert text.count("\tCopyInResponse") == 2 and text.count("\tReadyForQuery") == 1, text
    for layer in ("a", "b"):
        _assert_same(gs.gather("k", layer), ps.gather("k", layer))
    assert ps.done("k") == {"0", "1"}


def test_a_column_changed_by_another_worker_is_read_in_the_transaction(pg_url):
    rs = open_run_store(f"{pg_url}#widened")
    rs.begin("k", {"job": "t"})
    rs.save("k", "1", {"a": _frame("1").assign(note=np.nan)}, {"job": "t"})  # note: float8
    with psycopg.connect(pg_url, autocommit=True) as conn:  # another worker widened it
        conn.execute("ALTER TABLE widened.t_a ALTER COLUMN note TYPE text")
    # This process saw float8: its numbers must go as text, not as eight bytes of float.
    rs.save("k", "2", {"a": _frame("2").assign(note=1.5)}, {"job": "t"})
    with psycopg.connect(pg_url) as conn:
        notes = conn.execute("SELECT note FROM widened.t_a WHERE part = '2'").fetchall()
    assert notes == [("1.5",)] * 3
    # A schema dropped and made anew under a process that knew it: saved all the same.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA widened CASCADE")
    rs.save("k", "3", {"a": _frame("3")}, {"job": "t"})
    assert rs.done("k") == {"3"}
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM widened.t_a").fetchone()[0] == 3


def test_a_part_failed_after_a_success_is_rerun_without_its_old_rows(pg_url):
    # ``fail`` keeps the rows of the part's earlier success (under a ``failed`` mark); the
    # rerun that succeeds replaces them, and a part whose mark was deleted by hand too.
    rs = open_run_store(f"{pg_url}#failed_rerun")
    rs.begin("k", {"job": "t"})
    rs.save("k", "1", {"a": _frame("1")}, {"job": "t"})
    rs.save("k", "2", {"a": _frame("2")}, {"job": "t"})
    rs.fail("k", "1", "boom", {"job": "t"})
    with psycopg.connect(pg_url, autocommit=True) as conn:
        kept = conn.execute("SELECT count(*) FROM failed_rerun.t_a WHERE part = '1'").fetchone()
        conn.execute("DELETE FROM failed_rerun.geo_mz_run_parts WHERE part = '2'")
    assert kept == (3,) and rs.done("k") == set()
    rs.save("k", "1", {"a": _frame("1", n=2, shift=5)}, {"job": "t"})
    rs.save("k", "2", {"a": _frame("2", n=1, shift=9)}, {"job": "t"})
    got = rs.gather("k", "a")
    assert got["part"].tolist() == ["1", "1", "2"] and got["x"].tolist() == [5.0, 6.0, 9.0]

"""The PostGIS run store: each worker saves its parts in the database, one transaction a part.

Layer tables ``<schema>.<job>_<layer>`` (``run_key``, ``part``, ``seq``, the layer's columns,
``geom`` in EPSG:4490) and ``geo_mz_run_parts`` live in one schema; :meth:`PostgisRunStore.save`
replaces a part's rows of every layer and marks it done in one transaction, so a failed or
killed part leaves no rows behind and can be rerun alone.

A county part of a province run saves ≈ 3,200 rows; what that costs is most of what PostGIS
adds to a part. The rows go as one binary ``COPY`` a layer, the stream built by numpy
(:mod:`geo_mz.scale.store_postgis_copy`; floats bit for bit, geometry as EWKB), not one Python
tuple a row; values that binary cannot take as they are (numbers bound for a column widened to
text, datetimes) go the text way, as they always did. A worker process remembers the tables
it has seen, so a part's save is one simple query: ``BEGIN``, the old rows' deletes, the
columns' check, the mark, a ``COPY ... FROM STDIN`` a layer and ``COMMIT``, in which the
client waits three times (for the columns and the first COPY, then for each COPY's end;
psycopg's own calls waited six). What is left is the database's own insert: for a county
part's ``times`` (≈ 3,200 rows) about 7 ms of the save's ≈ 9 ms in the server, of which the
index on ``(run_key, part)`` is about 3 ms (the same COPY into a copy of the table without
it: 3.8 against 6.6 ms). Kept on purpose: that index (a rerun's delete, a gather and
``part_rows`` find a part's rows by it) and logged tables (an ``UNLOGGED`` table is emptied
by a server crash while the done-marks stay). A commit waits for the WAL to reach the disk
when the server says so (``synchronous_commit``, the server's setting, left as it is): on a
cluster with ``fsync``, ``synchronous_commit`` and ``full_page_writes`` on, a county part's
save took 21.9 ms against 16.7 with them off (one cluster restarted with each, 21
parts a round, 4 rounds).

A worker computing a task's parts does not wait for those three: :meth:`PostgisRunStore
.save_behind` encodes the streams in the worker's thread and sends the transaction from a
thread of its own while the next part is computed (``geo_mz.scale.tasks.run_parts``; the wait
for the server lets go of the GIL), so on one worker the database's insert runs beside the
compute. A part's record still says done only once its transaction committed.

The driver's reads (:meth:`PostgisRunStore.gather`, :meth:`PostgisRunStore.part_rows`) ask for
the run's job by its key (not every run's record), the table's columns (which also say whether
it exists) and the rows.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import geopandas as gpd
import pandas as pd

from geo_mz.scale.store_base import (
    PART_COLUMNS,
    PARTS,
    RUNS,
    RunStoreError,
    finish_gather,
    layer_schemas,
    now_iso,
    part_row,
    part_schema,
    rows_info,
    storable_rows,
)
from geo_mz.scale.store_postgis_copy import (
    COLUMN_TYPES_SQL,
    MARK_SQL,
    copy_text,
    layer_stream,
    needed_columns,
    one_query_script,
    run_copy_script,
    same_types,
    takes_rows,
)

_PG_TYPES = {"float": "double precision", "integer": "bigint", "boolean": "boolean",
             "string": "text"}  # fmt: skip
_TYPNAMES = {"float": "float8", "integer": "int8", "boolean": "bool", "string": "text"}


class PostgisRunStore:
    """Run results in a PostGIS schema; each worker saves its own parts in one transaction."""

    writes_on_workers = True

    def __init__(self, url: str, *, schema: str = "geo_mz_runs") -> None:
        self.url, self.schema = url, schema
        self.ref = f"{url}#{schema}"
        psycopg = _psycopg()
        if (os.getpid(), url, schema) in _READY:
            return  # opened once per part on the workers: this process has seen the tables
        try:
            with self._connect() as conn:
                self._ensure_schema(conn)
        except psycopg.OperationalError as exc:
            from geo_mz.core.workspace_postgis import clean_error, redact_url

            raise RunStoreError(
                f"{redact_url(url)}#{schema}: cannot reach the run store database "
                f"({clean_error(exc, url)})"
            ) from exc

    def _ensure_schema(self, conn: Any) -> None:
        """Make the schema and the runs' and parts' tables if they are not there."""
        schema = self.schema
        there = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (f'"{schema}"."{PARTS}"',)
        ).fetchone()[0]
        if not there:  # no lock and no DDL when it is there
            conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (schema,))
            try:
                conn.execute(self._sql("CREATE SCHEMA IF NOT EXISTS {}").format(self._id(schema)))
                conn.execute(
                    self._sql(
                        "CREATE TABLE IF NOT EXISTS {} (run_key text PRIMARY KEY, job text, "
                        "meta jsonb, started_at text)"
                    ).format(self._id(schema, RUNS))
                )
                conn.execute(
                    self._sql(
                        "CREATE TABLE IF NOT EXISTS {} (run_key text, part text, "
                        "status text, error text, rows jsonb, seconds double precision, "
                        "worker text, finished_at text, PRIMARY KEY (run_key, part))"
                    ).format(self._id(schema, PARTS))
                )
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (schema,))
        _READY.add((os.getpid(), self.url, schema))

    @staticmethod
    def _sql(text: str) -> Any:
        from psycopg import sql

        return sql.SQL(text)

    @staticmethod
    def _id(*names: str) -> Any:
        from psycopg import sql

        return sql.Identifier(*names)

    def _connect(self) -> Any:
        # This process's pool (a worker saves many parts): autocommit, so a write that must
        # be one transaction says so (``conn.transaction()``).
        from geo_mz.core.workspace_postgis import pooled_connection

        return pooled_connection(self.url)

    def begin(self, run_key: str, meta: Mapping[str, Any]) -> None:
        """Record a run (once; a rerun keeps the first record)."""
        with self._connect() as conn:
            conn.execute(
                self._sql(
                    "INSERT INTO {} (run_key, job, meta, started_at) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (run_key) DO NOTHING"
                ).format(self._id(self.schema, RUNS)),
                (run_key, str(meta.get("job")), json.dumps(meta, ensure_ascii=False), now_iso()),
            )

    def done(self, run_key: str) -> set[str]:
        """Parts of the run already done."""
        with self._connect() as conn:
            rows = conn.execute(
                self._sql("SELECT part FROM {} WHERE run_key = %s AND status = 'done'").format(
                    self._id(self.schema, PARTS)
                ),
                (run_key,),
            ).fetchall()
        return {r[0] for r in rows}

    def _column_types(self, conn: Any, tables: list[str]) -> dict[str, dict[str, str]]:
        """Per table, column name to type name (``text``, ``float8``, …); tables not there left out.

        One query for every layer of a part (pg_catalog, not information_schema: index lookups).
        """
        return self._column_types_rows(self._column_types_query(conn, tables).fetchall())

    def _column_types_query(self, conn: Any, tables: list[str]) -> Any:
        return conn.execute(COLUMN_TYPES_SQL, (self.schema, list(tables)))

    @staticmethod
    def _column_types_rows(rows: list[tuple]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for table, col, typ in rows:
            out.setdefault(str(table), {})[str(col)] = str(typ)
        return out

    def _ensure_table(
        self, conn: Any, table: str, need: Mapping[str, str], have: Mapping[str, str]
    ) -> dict[str, str]:
        """Create the layer's table, or add the columns and widen the types the rows need.

        A part with no rows adds no columns: the types of an empty frame say nothing (a text
        column of no rows reads as ``float``); a later part with rows adds them. A text value
        for a column created numeric (by a part whose values were all missing) widens the
        column to text; :meth:`gather` gives every column the type the parts with rows
        recorded. ``need``: the columns the rows need (:func:`needed_columns`); ``have``: the
        table's column types now (empty if there is no table). Returns the table's column
        types after the change.
        """
        if have and takes_rows(need, have):
            return dict(have)  # the common case: no lock, so workers save their parts side by side
        # Creating or widening the table: one worker at a time (held to the end of its save).
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{self.schema}.{table}",))
        conn.execute(
            self._sql(
                "CREATE TABLE IF NOT EXISTS {} (run_key text, part text, seq bigint, "
                "geom geometry(Geometry, 4490))"
            ).format(self._id(self.schema, table))
        )
        conn.execute(
            self._sql("CREATE INDEX IF NOT EXISTS {} ON {} (run_key, part)").format(
                self._id(f"{table}_part_idx"), self._id(self.schema, table)
            )
        )
        have = self._column_types(conn, [table]).get(table, {})  # another worker's, meanwhile
        for col, kind in need.items():
            if col not in have:
                conn.execute(
                    self._sql("ALTER TABLE {} ADD COLUMN {} " + _PG_TYPES[kind]).format(
                        self._id(self.schema, table), self._id(col)
                    )
                )
                have[col] = _TYPNAMES[kind]
            elif kind == "string" and have[col] != "text":
                conn.execute(
                    self._sql("ALTER TABLE {} ALTER COLUMN {} TYPE text USING {}::text").format(
                        self._id(self.schema, table), self._id(col), self._id(col)
                    )
                )
                have[col] = "text"
        return have

    def save(
        self,
        run_key: str,
        part: str,
        frames: Mapping[str, pd.DataFrame],
        info: Mapping[str, Any],
    ) -> None:
        """In one transaction: replace the part's rows in every layer table, mark it done.

        The mark goes in before the rows: nobody sees either until the commit. When this
        process has seen the tables with every column the part needs (every part but a job's
        first few), the whole save is one simple query (``_one_query``); when a
        value must go the text way, the transaction's start, the old rows' deletes, the
        columns' check and the mark go in one round trip (a pipeline), then a COPY per layer
        and the commit. Otherwise (a table to create, a column to add or widen) the tables
        are made ready first, under a lock, as before.
        """
        job = str(info.get("job", "run"))
        layers = [(f"{job}_{name}", frame) for name, frame in frames.items()]
        # The columns each layer's rows need, worked out once a save (they are checked twice).
        needs = {table: needed_columns(frame) for table, frame in layers}
        mark = part_row(run_key, part, "done", None, rows_info(frames, info), info)
        with self._connect() as conn:
            if self._save_known(conn, run_key, part, layers, mark, needs):
                return
            with conn.transaction():
                have = self._column_types(conn, [table for table, _ in layers])
                types = {
                    table: self._ensure_table(conn, table, needs[table], have.get(table, {}))
                    for table, _ in layers
                }
                with conn.pipeline():
                    self._delete_part(conn, run_key, part, [table for table, _ in layers])
                    self._mark_row(conn, mark)
                for table, frame in layers:
                    if len(frame):
                        self._copy(conn, table, frame, types[table], run_key, part)
            _known_tables(self.url, self.schema).update(types)

    def _save_known(
        self,
        conn: Any,
        run_key: str,
        part: str,
        layers: list[tuple[str, pd.DataFrame]],
        mark: tuple,
        needs: Mapping[str, Mapping[str, str]],
    ) -> bool:
        """Save in the fewest round trips if the tables are ready; False (nothing done) if not.

        The columns are read after the deletes: those hold the tables' row locks, which keep
        any other worker from changing a column until this transaction ends, so the binary
        COPY gets the types the table has.
        """
        psycopg = _psycopg()
        known = _known_tables(self.url, self.schema)
        tables = [table for table, _ in layers]
        if not all(t in known and takes_rows(needs[t], known[t]) for t in tables):
            return False
        plan = self._one_query(run_key, part, layers, mark, known)  # None: the text way
        if plan is not None:
            return self._run_one_query(conn, plan, known)
        try:
            with conn.pipeline():
                conn.execute("BEGIN")
                self._delete_part(conn, run_key, part, tables)
                cur = self._column_types_query(conn, tables)
                self._mark_row(conn, mark)
            types = self._column_types_rows(cur.fetchall())
            known.update(types)
            if not all(t in types and takes_rows(needs[t], types[t]) for t in tables):
                _rollback(conn)  # a table or column another process dropped: the slow way
                return False
            for table, frame in layers:
                if len(frame):
                    self._copy(conn, table, frame, types[table], run_key, part)
            conn.execute("COMMIT")
        except psycopg.errors.UndefinedTable:  # dropped since (the schema removed, say)
            _rollback(conn)
            known.clear()
            _READY.discard((os.getpid(), self.url, self.schema))
            self._ensure_schema(conn)
            return False
        except BaseException:
            _rollback(conn)  # nothing of the part is kept; the connection can be reused
            raise
        return True

    def _one_query(
        self,
        run_key: str,
        part: str,
        layers: list[tuple[str, pd.DataFrame]],
        mark: tuple,
        known: Mapping[str, Mapping[str, str]],
    ) -> tuple[Any, list[tuple]] | None:
        """Return the part's save as one simple query and its COPY streams; None: the text way.

        ``BEGIN; DELETE ...; SELECT <columns>; INSERT <mark>; COPY ... FROM STDIN; ...;
        COMMIT`` (:func:`one_query_script`): the server runs the statements in turn and asks
        for each COPY's rows when it reaches it, so the client waits three times (for the
        columns and the first COPY, for each COPY's end) where psycopg's calls wait six (the
        pipeline, each COPY's start and end, the commit). The streams are encoded here (all
        the CPU of the save: numpy, shapely, pyproj) with the column types this process
        knows. None also when a table is no longer known (the caller's slow way).
        """
        copies = []
        for table, frame in layers:
            if len(frame):
                have = known.get(table)  # one lookup: a save thread may clear ``known``
                if have is None:
                    return None
                stream = layer_stream(self.schema, table, frame, have, run_key, part)
                if stream is None:
                    return None
                copies.append((table, frame, dict(have), stream))
        tables = [table for table, _ in layers]
        script = one_query_script(
            self.schema, run_key, part, tables, mark, [c[3][0] for c in copies]
        )
        return script, copies

    def _run_one_query(
        self, conn: Any, plan: tuple[Any, list[tuple]], known: dict[str, dict[str, str]]
    ) -> bool:
        """Run a ``_one_query`` plan; True if saved, False if not (nothing kept).

        The columns the server sends back, read after the deletes (which keep any other
        worker from changing a column until the commit), are checked before any row is sent,
        and a change aborts the COPY (then False: the caller's way). Through libpq itself:
        psycopg runs no COPY among other statements. An error leaves nothing of the part
        (the transaction is rolled back) and is raised; an undefined table (the schema
        dropped since, say) returns False as the caller expects. No CPU-heavy work and no
        pyproj here: :meth:`save_behind` runs this in a thread of its own.
        """
        psycopg = _psycopg()
        script, copies = plan
        state = {"rows": [], "changed": False}

        def rows_of(at: int, rows: list[tuple]) -> bytes | None:
            # The columns came before the first COPY (the SELECT precedes them).
            table, frame, used, (_, data) = copies[at]
            state["rows"] = rows
            types = self._column_types_rows(rows).get(table)
            if state["changed"] or not same_types(frame, used, types):
                state["changed"] = True
                return None
            return data

        error = run_copy_script(conn, script.as_bytes(conn), rows_of)
        rows, changed = state["rows"], state["changed"]
        if error is None and not changed:
            known.update(self._column_types_rows(rows))
            return True
        _rollback(conn)  # nothing of the part is kept; the connection can be reused
        if changed:
            known.update(self._column_types_rows(rows))
            return False
        exc = psycopg.errors.error_from_result(error, encoding=conn.info.encoding)
        if isinstance(exc, psycopg.errors.UndefinedTable):  # dropped since (the schema, say)
            known.clear()
            _READY.discard((os.getpid(), self.url, self.schema))
            self._ensure_schema(conn)
            return False
        raise exc

    def save_behind(
        self,
        run_key: str,
        part: str,
        frames: Mapping[str, pd.DataFrame],
        info: Mapping[str, Any],
    ) -> Callable[[], bool] | None:
        """Prepare a part's save here; return what sends it, to run in another thread.

        A worker computes its task's next part while the server inserts this one's rows
        (``geo_mz.scale.tasks.run_parts``). Here, in the calling thread, goes all the save's
        CPU (the COPY streams, ``_one_query``); the function returned sends them as one
        transaction (``_run_one_query``), True when committed, False when the tables
        changed meanwhile (nothing kept: call :meth:`save`), and raises what the database
        raised (nothing kept). None when the part cannot be saved so (a table to create or
        widen, a value for the text way: call :meth:`save`).
        """
        job = str(info.get("job", "run"))
        layers = [(f"{job}_{name}", frame) for name, frame in frames.items()]
        known = _known_tables(self.url, self.schema)
        for table, frame in layers:
            have = known.get(table)  # one lookup: a save thread may change the dict meanwhile
            if have is None or not takes_rows(needed_columns(frame), have):
                return None
        mark = part_row(run_key, part, "done", None, rows_info(frames, info), info)
        plan = self._one_query(run_key, part, layers, mark, known)
        if plan is None:
            return None

        def send() -> bool:
            with self._connect() as conn:
                return self._run_one_query(conn, plan, known)

        return send

    def _delete_part(self, conn: Any, run_key: str, part: str, tables: list[str]) -> None:
        for table in tables:
            conn.execute(
                self._sql("DELETE FROM {} WHERE run_key = %s AND part = %s").format(
                    self._id(self.schema, table)
                ),
                (run_key, part),
            )

    def _copy(
        self,
        conn: Any,
        table: str,
        frame: pd.DataFrame,
        types: Mapping[str, str],
        run_key: str,
        part: str,
    ) -> None:
        """Send a layer's rows in one binary COPY; the text path for values binary cannot take."""
        stream = layer_stream(self.schema, table, frame, types, run_key, part)
        if stream is None:
            copy_text(conn, self.schema, table, storable_rows(frame, run_key, part))
            return
        with conn.cursor().copy(stream[0]) as cp:
            cp.write(stream[1])

    def _mark_row(self, conn: Any, row: tuple) -> None:
        conn.execute(self._sql(MARK_SQL).format(self._id(self.schema, PARTS)), row)

    def fail(self, run_key: str, part: str, error: str, info: Mapping[str, Any]) -> None:
        """Record a part that failed (its rows from an earlier success are kept)."""
        with self._connect() as conn:
            self._mark_row(conn, part_row(run_key, part, "failed", error, "{}", info))

    def status(self, run_key: str | None = None) -> pd.DataFrame:
        """One row per part: status, error, rows (JSON), seconds, worker, finished_at."""
        q = f"SELECT run_key, {', '.join(PART_COLUMNS)} FROM {{}}"
        args: tuple = ()
        if run_key is not None:
            q += " WHERE run_key = %s"
            args = (run_key,)
        with self._connect() as conn:
            cur = conn.execute(
                self._sql(q + " ORDER BY run_key, part").format(self._id(self.schema, PARTS)),
                args,
            )
            rows = cur.fetchall()
        df = pd.DataFrame(rows, columns=["run_key", *PART_COLUMNS])
        df["rows"] = [json.dumps(r) if not isinstance(r, str) else r for r in df["rows"]]
        return df

    def runs(self) -> pd.DataFrame:
        """Return the runs recorded, oldest first."""
        with self._connect() as conn:
            rows = conn.execute(
                self._sql("SELECT run_key, job, meta::text, started_at FROM {} ORDER BY 4").format(
                    self._id(self.schema, RUNS)
                )
            ).fetchall()
        return pd.DataFrame(rows, columns=["run_key", "job", "meta", "started_at"])

    def _job(self, conn: Any, run_key: str) -> str:
        row = conn.execute(
            self._sql("SELECT job FROM {} WHERE run_key = %s").format(self._id(self.schema, RUNS)),
            (run_key,),
        ).fetchone()
        if row is None:
            raise RunStoreError(f"{self.ref}: no run {run_key!r}")
        return str(row[0])

    def gather(self, run_key: str, layer: str) -> gpd.GeoDataFrame:
        """All done parts' rows of one layer, by part then row order.

        Three queries besides the parts' status: the run's job, the table's columns (none: no
        table) and the rows.
        """
        from psycopg import sql

        st = self.status(run_key)
        schema = layer_schemas(st).get(layer, {})
        cols = ["part", *schema]
        with self._connect() as conn:
            table = f"{self._job(conn, run_key)}_{layer}"
            have = self._column_types(conn, [table]).get(table)
            if have is None:
                return _rows_frame([], cols, schema)
            # A column only parts without rows named was never added: it reads as missing.
            stmt = sql.SQL(
                "SELECT {}, ST_AsBinary(t.geom) FROM {} t JOIN {} p "
                "ON p.run_key = t.run_key AND p.part = t.part AND p.status = 'done' "
                "WHERE t.run_key = %s ORDER BY t.part, t.seq"
            ).format(
                sql.SQL(", ").join(
                    sql.Identifier("t", c) if c in have else sql.SQL("NULL") for c in cols
                ),
                self._id(self.schema, table),
                self._id(self.schema, PARTS),
            )
            rows = conn.cursor(binary=True).execute(stmt, (run_key,)).fetchall()
        return _rows_frame(rows, cols, schema)

    def part_rows(self, run_key: str, part: str, layer: str) -> gpd.GeoDataFrame | None:
        """One done part's rows of a layer, as :meth:`gather` gives them; None if not done."""
        from psycopg import sql

        with self._connect() as conn:
            mark = conn.execute(
                self._sql(
                    "SELECT p.status, p.rows::text, r.job FROM {} p JOIN {} r "
                    "ON r.run_key = p.run_key WHERE p.run_key = %s AND p.part = %s"
                ).format(self._id(self.schema, PARTS), self._id(self.schema, RUNS)),
                (run_key, part),
            ).fetchone()
            if mark is None or mark[0] != "done":
                return None
            schema = part_schema(mark[1], layer)
            if schema is None:
                return None
            table, cols = f"{mark[2]}_{layer}", ["part", *schema]
            rows: list = []
            have = self._column_types(conn, [table]).get(table)  # None: no table
            if have is not None:
                stmt = sql.SQL(
                    "SELECT {}, ST_AsBinary(geom) FROM {} WHERE run_key = %s AND part = %s "
                    "ORDER BY seq"
                ).format(
                    sql.SQL(", ").join(
                        sql.Identifier(c) if c in have else sql.SQL("NULL") for c in cols
                    ),
                    self._id(self.schema, table),
                )
                rows = conn.cursor(binary=True).execute(stmt, (run_key, part)).fetchall()
        return _rows_frame(rows, cols, schema)


def _rows_frame(rows: list[tuple], cols: list[str], schema: Mapping[str, str]) -> gpd.GeoDataFrame:
    """Rows read from a layer table (``cols``, then WKB) as :func:`finish_gather` takes them.

    Built row by row by pandas: typing the columns one by one here (numpy for numbers, objects
    for text) was no faster once ``finish_gather`` had typed them (``bench_postgis_reads``).
    """
    from geo_mz.core.workspace_postgis import wkb_geometries

    df = pd.DataFrame([r[:-1] for r in rows], columns=cols)
    return finish_gather(df, wkb_geometries([r[-1] for r in rows]), schema)


_KNOWN: dict[tuple[int, str, str], dict[str, dict[str, str]]] = {}
_READY: set[tuple[int, str, str]] = set()  # (process, url, schema) whose tables are there


def _known_tables(url: str, schema: str) -> dict[str, dict[str, str]]:
    """Return what this process last saw of the store's tables: table to column types."""
    return _KNOWN.setdefault((os.getpid(), url, schema), {})


def _rollback(conn: Any) -> None:
    """End the transaction this connection has open, if any (the connection may be broken)."""
    psycopg = _psycopg()
    if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        with contextlib.suppress(psycopg.Error):
            conn.execute("ROLLBACK")


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RunStoreError(
            "a PostGIS run store needs psycopg 3: pip install 'geo-mz[postgis]'"
        ) from exc
    return psycopg


__all__ = ["PostgisRunStore"]

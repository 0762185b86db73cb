"""Where partitioned runs keep their results: a GeoPackage on one machine, PostGIS for a cluster.

A run store holds, per run (a job over one workspace with one set of options, named by its
``run_key``):

- ``geo_mz_runs``: the run's job, workspace, options and start time;
- ``geo_mz_run_parts``: one row per part (county, town, province) with ``status`` ``done`` or
  ``failed``, the error, row counts, seconds and the worker;
- one table per result layer, ``<job>_<layer>``, with ``run_key``, ``part`` and ``seq`` (the
  row's order within its part) besides the layer's own columns; geometry in EPSG:4490.

:meth:`RunStore.save` replaces a part's rows of every layer and marks it done, on the worker
that computed the part (``writes_on_workers``), so no single writer holds the run back. In
PostGIS that is one transaction, so a failed or killed part leaves no rows behind and can be
rerun alone. The GeoPackage store gives each part a GeoPackage of its own, written whole and
renamed into place, then marks the part done (one short SQLite write); a crash in between leaves
a part that is not done and is computed again on the rerun. :meth:`GpkgRunStore.gather` merges
the parts done since into the store's tables first, so the store ends as one GeoPackage.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from geo_mz.core.errors import GeoMzError
from geo_mz.core.projection import STORAGE_CRS

RUNS = "geo_mz_runs"
PARTS = "geo_mz_run_parts"
SRID = 4490
_PART_COLUMNS = ["part", "status", "error", "rows", "seconds", "worker", "finished_at"]


class RunStoreError(GeoMzError, RuntimeError):
    """A run store that cannot be opened, or results that cannot be kept."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def _part_row(
    run_key: str, part: str, status: str, error: str | None, rows: str, info: Mapping[str, Any]
) -> tuple:
    """Return the values of one ``geo_mz_run_parts`` row, in column order."""
    seconds = float(info.get("seconds", np.nan))
    return (run_key, part, status, error, rows, seconds, str(info.get("worker", "")), _now())


def _dtype_name(s: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(s):
        return "boolean"
    if pd.api.types.is_integer_dtype(s):
        return "integer"
    if pd.api.types.is_float_dtype(s):
        return "float"
    return "string"


def frame_schema(df: pd.DataFrame) -> dict[str, str]:
    """Column name to ``float``/``integer``/``boolean``/``string`` (geometry left out)."""
    geom = df.geometry.name if isinstance(df, gpd.GeoDataFrame) else None
    return {str(c): _dtype_name(df[c]) for c in df.columns if c != geom}


def _typed(df: pd.DataFrame, schema: Mapping[str, str]) -> pd.DataFrame:
    """Give columns read back from storage the types they were saved with."""
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
                index=df.index,
                dtype=object,
            )  # fmt: skip
    return df


def _storable(frame: pd.DataFrame, run_key: str, part: str) -> gpd.GeoDataFrame:
    """Turn a results frame into rows to keep: run_key, part, seq, columns, EPSG:4490 geometry."""
    if isinstance(frame, gpd.GeoDataFrame) and frame.geometry.name in frame.columns:
        gdf = frame.to_crs(STORAGE_CRS) if frame.crs is not None else frame.set_crs(STORAGE_CRS)
        geom = gdf.geometry.values
        attrs = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    else:
        geom = gpd.GeoSeries([None] * len(frame), crs=STORAGE_CRS).values
        attrs = pd.DataFrame(frame)
    attrs = attrs.reset_index(drop=True)
    attrs.insert(0, "seq", np.arange(len(attrs), dtype=np.int64))
    attrs.insert(0, "part", part)
    attrs.insert(0, "run_key", run_key)
    return gpd.GeoDataFrame(attrs, geometry=geom, crs=STORAGE_CRS)


class RunStore(Protocol):
    """What the runner needs of a store (see the module docstring)."""

    ref: str
    writes_on_workers: bool

    def begin(self, run_key: str, meta: Mapping[str, Any]) -> None:
        """Record a run."""

    def done(self, run_key: str) -> set[str]:
        """Return the parts already done."""
        raise NotImplementedError

    def save(
        self,
        run_key: str,
        part: str,
        frames: Mapping[str, pd.DataFrame],
        info: Mapping[str, Any],
    ) -> None:
        """Replace a part's rows and mark it done."""

    def fail(self, run_key: str, part: str, error: str, info: Mapping[str, Any]) -> None:
        """Record a failed part."""

    def status(self, run_key: str | None = None) -> pd.DataFrame:
        """Return one row per part."""
        raise NotImplementedError

    def gather(self, run_key: str, layer: str) -> gpd.GeoDataFrame:
        """Return every done part's rows of a layer."""
        raise NotImplementedError

    def runs(self) -> pd.DataFrame:
        """Return the runs recorded."""
        raise NotImplementedError


def _schemas(status: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Per layer, the column types recorded with the parts that are done.

    A part with no rows of a layer records the types of an empty frame (an all-missing text
    column reads as ``float``): the types of parts that have rows win over those.
    """
    out: dict[str, dict[str, str]] = {}
    empty: dict[str, dict[str, str]] = {}
    for rows in status.loc[status["status"] == "done", "rows"]:
        for layer, entry in json.loads(rows or "{}").get("layers", {}).items():
            # Pairs, not an object: jsonb does not keep the order of an object's keys.
            into = out if entry.get("n", 1) else empty
            into.setdefault(layer, {}).update(dict(entry.get("columns", [])))
    for layer, cols in empty.items():
        out[layer] = {**cols, **out.get(layer, {})}
    return out


def _rows_info(frames: Mapping[str, pd.DataFrame], info: Mapping[str, Any]) -> str:
    layers = {
        name: {"n": len(f), "columns": list(frame_schema(f).items())} for name, f in frames.items()
    }
    return json.dumps({"layers": layers, "info": dict(info)}, ensure_ascii=False, default=str)


def _finish_gather(df: pd.DataFrame, geoms: Any, schema: Mapping[str, str]) -> gpd.GeoDataFrame:
    df = _typed(df, {"part": "string", **schema})
    gdf = gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs=STORAGE_CRS).values)
    if gdf.geometry.isna().all():
        gdf = gpd.GeoDataFrame(gdf.drop(columns="geometry"))
    return gdf


# --------------------------------------------------------------------------- GeoPackage


class GpkgRunStore:
    """Run results in a GeoPackage; each worker writes its parts to a GeoPackage of their own.

    A part's rows go to ``<store>.parts/<run_key>/<part>.gpkg`` (written whole, then renamed
    into place), and the part is marked done in the store's ``geo_mz_run_parts`` (one short
    SQLite write), so workers save side by side with no single writer. :meth:`gather` first
    moves the parts done since into the store's layer tables (one append per layer), so the
    store ends as one GeoPackage holding every result.
    """

    writes_on_workers = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.ref = str(self.path)
        self.parts_dir = self.path.with_suffix(".parts")
        if self.path.exists():
            try:
                with self._db() as db:
                    names = {
                        str(r[0])
                        for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                    }
            except sqlite3.DatabaseError as exc:
                raise RunStoreError(f"{self.path}: not a GeoPackage run store ({exc})") from exc
            if "gpkg_contents" not in names:
                raise RunStoreError(f"{self.path}: not a GeoPackage run store (no gpkg_contents)")
            if RUNS not in names:
                raise RunStoreError(f"{self.path}: a GeoPackage but not a run store (no {RUNS})")
            if PARTS in names:
                return  # opened once per part on the workers: no write when nothing is new
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            empty = pd.DataFrame(
                {c: pd.Series([], dtype=object) for c in ("run_key", "job", "meta", "started_at")}
            )
            pyogrio.write_dataframe(empty, self.path, layer=RUNS, driver="GPKG")
        with self._db() as db:
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {PARTS} (run_key TEXT, part TEXT, status TEXT, "
                "error TEXT, rows TEXT, seconds REAL, worker TEXT, finished_at TEXT, "
                "PRIMARY KEY (run_key, part))"
            )

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60)

    def _tables(self) -> set[str]:
        with self._db() as db:
            rows = db.execute("SELECT table_name FROM gpkg_contents").fetchall()
        return {str(r[0]) for r in rows}

    def part_file(self, run_key: str, part: str) -> Path:
        """Return the GeoPackage a part's rows are written to until :meth:`gather` merges them."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in part)
        return self.parts_dir / run_key / f"{safe}.gpkg"

    def begin(self, run_key: str, meta: Mapping[str, Any]) -> None:
        """Record a run (once; a rerun keeps the first record)."""
        with self._db() as db:
            if db.execute(f"SELECT 1 FROM {RUNS} WHERE run_key = ?", (run_key,)).fetchone():
                return
            db.execute(
                f"INSERT INTO {RUNS} (run_key, job, meta, started_at) VALUES (?, ?, ?, ?)",
                (run_key, str(meta.get("job")), json.dumps(meta, ensure_ascii=False), _now()),
            )

    def done(self, run_key: str) -> set[str]:
        """Parts of the run already done."""
        with self._db() as db:
            rows = db.execute(
                f"SELECT part FROM {PARTS} WHERE run_key = ? AND status = 'done'", (run_key,)
            ).fetchall()
        return {r[0] for r in rows}

    def save(
        self,
        run_key: str,
        part: str,
        frames: Mapping[str, pd.DataFrame],
        info: Mapping[str, Any],
    ) -> None:
        """Write the part's GeoPackage (replacing an earlier one), then mark the part done.

        Called on the worker that computed the part. A crash before the mark leaves a part
        that is not done: the rerun computes it again and replaces its file.
        """
        job = str(info.get("job", "run"))
        target = self.part_file(run_key, part)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp.gpkg")
        tmp.unlink(missing_ok=True)
        written = False
        for name, frame in frames.items():
            rows = _storable(frame, run_key, part)
            if len(rows) == 0:
                continue
            pyogrio.write_dataframe(
                rows, tmp, layer=f"{job}_{name}", driver="GPKG", append=written,
                geometry_type="Unknown", promote_to_multi=False,
                layer_options={"SPATIAL_INDEX": "NO"},
            )  # fmt: skip
            written = True
        if written:
            os.replace(tmp, target)
        else:
            # No rows at all: no file to merge, so the part's old rows go now.
            target.unlink(missing_ok=True)
            self._delete_rows(run_key, [part])
        self._mark(run_key, part, "done", None, _rows_info(frames, info), info)

    def _delete_rows(self, run_key: str, parts: list[str]) -> None:
        tables = self._tables() - {RUNS}
        marks = ",".join("?" * len(parts))
        with self._db() as db:
            for table in tables:
                db.execute(
                    f'DELETE FROM "{table}" WHERE run_key = ? AND part IN ({marks})',
                    (run_key, *parts),
                )

    def _mark(
        self,
        run_key: str,
        part: str,
        status: str,
        error: str | None,
        rows: str,
        info: Mapping[str, Any],
    ) -> None:
        with self._db() as db:
            db.execute(
                f"INSERT OR REPLACE INTO {PARTS} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                _part_row(run_key, part, status, error, rows, info),
            )

    def fail(self, run_key: str, part: str, error: str, info: Mapping[str, Any]) -> None:
        """Record a part that failed (its rows from an earlier success are kept)."""
        self._mark(run_key, part, "failed", error, json.dumps({}), info)

    def status(self, run_key: str | None = None) -> pd.DataFrame:
        """One row per part: status, error, rows (JSON), seconds, worker, finished_at."""
        with self._db() as db:
            q = f"SELECT run_key, {', '.join(_PART_COLUMNS)} FROM {PARTS}"
            args: tuple = ()
            if run_key is not None:
                q += " WHERE run_key = ?"
                args = (run_key,)
            df = pd.read_sql_query(q + " ORDER BY run_key, part", db, params=args)
        return df

    def runs(self) -> pd.DataFrame:
        """Return the runs recorded, oldest first."""
        with self._db() as db:
            return pd.read_sql_query(
                f"SELECT run_key, job, meta, started_at FROM {RUNS} ORDER BY started_at", db
            )

    def merge(self, run_key: str) -> int:
        """Move the part files of done parts into the store's layer tables; return how many.

        Per layer: the merged parts' old rows are deleted, then all their new rows appended
        at once. A part's file is removed only after its rows are in, so a crash in between
        merges it again (its rows are replaced, not doubled).
        """
        folder = self.parts_dir / run_key
        if not folder.is_dir():
            return 0
        # Only parts marked done: a file whose part failed or was never marked is not merged.
        by_file = {self.part_file(run_key, p): p for p in self.done(run_key)}
        files = {by_file[f]: f for f in sorted(folder.glob("*.gpkg")) if f in by_file}
        if not files:
            return 0
        by_table: dict[str, list[gpd.GeoDataFrame]] = {}
        for f in files.values():
            for name in pyogrio.list_layers(f)[:, 0]:
                by_table.setdefault(str(name), []).append(pyogrio.read_dataframe(f, layer=name))
        self._delete_rows(run_key, list(files))
        tables = self._tables()
        for table, frames in by_table.items():
            rows = pd.concat(frames, ignore_index=True)
            rows = gpd.GeoDataFrame(rows, geometry=rows.geometry.name, crs=STORAGE_CRS)
            pyogrio.write_dataframe(
                rows, self.path, layer=table, driver="GPKG", append=table in tables,
                geometry_type="Unknown", promote_to_multi=False,
            )  # fmt: skip
            tables.add(table)
        for f in files.values():
            f.unlink()
        return len(files)

    def gather(self, run_key: str, layer: str) -> gpd.GeoDataFrame:
        """All done parts' rows of one layer, by part then row order (merging new parts first)."""
        self.merge(run_key)
        st = self.status(run_key)
        schema = _schemas(st).get(layer, {})
        job = self._job(run_key)
        table = f"{job}_{layer}"
        done = set(st.loc[st["status"] == "done", "part"])
        if table not in self._tables():
            return _finish_gather(
                pd.DataFrame({c: pd.Series([], dtype=object) for c in ["part", *schema]}),
                [],
                schema,
            )
        gdf = pyogrio.read_dataframe(
            self.path, layer=table, where=f"run_key = '{run_key.replace(chr(39), '')}'"
        )
        gdf = gdf[gdf["part"].isin(done)].sort_values(["part", "seq"], kind="stable")
        geoms = gdf.geometry.values
        df = pd.DataFrame(gdf.drop(columns=[gdf.geometry.name, "run_key", "seq"]))
        return _finish_gather(df.reset_index(drop=True), geoms, schema)

    def _job(self, run_key: str) -> str:
        with self._db() as db:
            row = db.execute(f"SELECT job FROM {RUNS} WHERE run_key = ?", (run_key,)).fetchone()
        if row is None:
            raise RunStoreError(f"{self.path}: no run {run_key!r}")
        return str(row[0])


# --------------------------------------------------------------------------- PostGIS

_PG_TYPES = {"float": "double precision", "integer": "bigint", "boolean": "boolean",
             "string": "text"}  # fmt: skip


class PostgisRunStore:
    """Run results in a PostGIS schema; each worker saves its own parts in one transaction."""

    writes_on_workers = True

    def __init__(self, url: str, *, schema: str = "geo_mz_runs") -> None:
        self.url, self.schema = url, schema
        self.ref = f"{url}#{schema}"
        psycopg = _psycopg()
        try:
            with self._connect() as conn:
                # Opened once per part on the workers: no lock and no DDL when it is there.
                there = conn.execute(
                    "SELECT to_regclass(%s) IS NOT NULL", (f'"{schema}"."{PARTS}"',)
                ).fetchone()[0]
                if there:
                    return
                conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (schema,))
                try:
                    conn.execute(
                        self._sql("CREATE SCHEMA IF NOT EXISTS {}").format(self._id(schema))
                    )
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
        except psycopg.OperationalError as exc:
            from geo_mz.core.workspace_postgis import clean_error, redact_url

            raise RunStoreError(
                f"{redact_url(url)}#{schema}: cannot reach the run store database "
                f"({clean_error(exc, url)})"
            ) from exc

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
                (run_key, str(meta.get("job")), json.dumps(meta, ensure_ascii=False), _now()),
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

    def _columns(self, conn: Any, table: str) -> set[str]:
        return {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s",
                (self.schema, table),
            ).fetchall()
        }

    def _column_types(self, conn: Any, table: str) -> dict[str, str]:
        return {
            str(r[0]): str(r[1])
            for r in conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s",
                (self.schema, table),
            ).fetchall()
        }

    def _ensure_table(self, conn: Any, table: str, rows: gpd.GeoDataFrame) -> None:
        """Create the layer's table, or add the columns and widen the types the rows need.

        A part with no rows adds no columns: the types of an empty frame say nothing (a text
        column of no rows reads as ``float``); a later part with rows adds them. A text value
        for a column created numeric (by a part whose values were all missing) widens the
        column to text; :meth:`gather` gives every column the type the parts with rows
        recorded.
        """
        schema = frame_schema(pd.DataFrame(rows.drop(columns=rows.geometry.name)))
        if len(rows) == 0:
            schema = {}
        have = self._column_types(conn, table)
        widen = [c for c, k in schema.items() if k == "string" and have.get(c, "text") != "text"]
        if have and set(schema) <= set(have) and not widen:
            return  # the common case: no lock, so workers save their parts side by side
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
        have = self._column_types(conn, table)
        for col, kind in schema.items():
            if col not in have:
                conn.execute(
                    self._sql("ALTER TABLE {} ADD COLUMN {} " + _PG_TYPES[kind]).format(
                        self._id(self.schema, table), self._id(col)
                    )
                )
            elif kind == "string" and have[col] != "text":
                conn.execute(
                    self._sql("ALTER TABLE {} ALTER COLUMN {} TYPE text USING {}::text").format(
                        self._id(self.schema, table), self._id(col), self._id(col)
                    )
                )

    def save(
        self,
        run_key: str,
        part: str,
        frames: Mapping[str, pd.DataFrame],
        info: Mapping[str, Any],
    ) -> None:
        """In one transaction: replace the part's rows in every layer table, mark it done."""
        job = str(info.get("job", "run"))
        with self._connect() as conn, conn.transaction():
            for name, frame in frames.items():
                table = f"{job}_{name}"
                rows = _storable(frame, run_key, part)
                self._ensure_table(conn, table, rows)
                conn.execute(
                    self._sql("DELETE FROM {} WHERE run_key = %s AND part = %s").format(
                        self._id(self.schema, table)
                    ),
                    (run_key, part),
                )
                if len(rows):
                    self._copy(conn, table, rows)
            self._mark(conn, run_key, part, "done", None, _rows_info(frames, info), info)

    def _copy(self, conn: Any, table: str, rows: gpd.GeoDataFrame) -> None:
        cols = [c for c in rows.columns if c != rows.geometry.name]
        geoms = rows.geometry.values
        wkb = shapely.to_wkb(shapely.set_srid(np.asarray(geoms), SRID), hex=True, include_srid=True)
        data = [rows[c].astype(object).where(rows[c].notna(), None).tolist() for c in cols]
        from psycopg import sql

        stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
            self._id(self.schema, table),
            sql.SQL(", ").join([*(sql.Identifier(c) for c in cols), sql.Identifier("geom")]),
        )
        with conn.cursor().copy(stmt) as cp:
            for i in range(len(rows)):
                cp.write_row([*(_plain(col[i]) for col in data), wkb[i]])

    def _mark(
        self,
        conn: Any,
        run_key: str,
        part: str,
        status: str,
        error: str | None,
        rows: str,
        info: Mapping[str, Any],
    ) -> None:
        conn.execute(
            self._sql(
                "INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (run_key, part) DO UPDATE SET status = EXCLUDED.status, "
                "error = EXCLUDED.error, rows = EXCLUDED.rows, seconds = EXCLUDED.seconds, "
                "worker = EXCLUDED.worker, finished_at = EXCLUDED.finished_at"
            ).format(self._id(self.schema, PARTS)),
            _part_row(run_key, part, status, error, rows, info),
        )

    def fail(self, run_key: str, part: str, error: str, info: Mapping[str, Any]) -> None:
        """Record a part that failed (its rows from an earlier success are kept)."""
        with self._connect() as conn:
            self._mark(conn, run_key, part, "failed", error, "{}", info)

    def status(self, run_key: str | None = None) -> pd.DataFrame:
        """One row per part: status, error, rows (JSON), seconds, worker, finished_at."""
        q = f"SELECT run_key, {', '.join(_PART_COLUMNS)} FROM {{}}"
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
        df = pd.DataFrame(rows, columns=["run_key", *_PART_COLUMNS])
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

    def gather(self, run_key: str, layer: str) -> gpd.GeoDataFrame:
        """All done parts' rows of one layer, by part then row order."""
        st = self.status(run_key)
        schema = _schemas(st).get(layer, {})
        runs = self.runs()
        job = runs.loc[runs["run_key"] == run_key, "job"]
        if job.empty:
            raise RunStoreError(f"{self.ref}: no run {run_key!r}")
        table = f"{job.iat[0]}_{layer}"
        cols = ["part", *schema]
        with self._connect() as conn:
            exists = conn.execute("SELECT to_regclass(%s)", (f"{self.schema}.{table}",)).fetchone()
            if not exists or exists[0] is None:
                return _finish_gather(
                    pd.DataFrame({c: pd.Series([], dtype=object) for c in cols}), [], schema
                )
            from psycopg import sql

            # A column only parts without rows named was never added: it reads as missing.
            have = self._columns(conn, table)
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
            rows = conn.execute(stmt, (run_key,)).fetchall()
        df = pd.DataFrame([r[:-1] for r in rows], columns=cols)
        geoms = shapely.from_wkb([None if r[-1] is None else bytes(r[-1]) for r in rows])
        return _finish_gather(df, geoms, schema)


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RunStoreError(
            "a PostGIS run store needs psycopg 3: pip install 'geo-mz[postgis]'"
        ) from exc
    return psycopg


def open_run_store(ref: str | Path) -> RunStore:
    """Open (creating if needed) a run store: a ``.gpkg`` path or ``postgresql://…[#schema]``."""
    text = str(ref)
    if text.startswith(("postgresql://", "postgres://")):
        from geo_mz.core.workspace_postgis import split_workspace_url

        url, schema = split_workspace_url(text)
        return PostgisRunStore(url, schema=schema or "geo_mz_runs")
    if not text.endswith(".gpkg"):
        raise RunStoreError(f"{text}: a run store is a .gpkg file or a postgresql:// URL")
    return GpkgRunStore(text)


__all__ = [
    "GpkgRunStore",
    "PostgisRunStore",
    "RunStore",
    "RunStoreError",
    "frame_schema",
    "open_run_store",
]

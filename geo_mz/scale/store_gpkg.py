"""The GeoPackage run store: each part one file written by its worker, merged at gather.

A part's rows *and* its mark (its ``geo_mz_run_parts`` row) go to one columnar file,
``<store>.parts/<run_key>/<part>.npz`` (:mod:`geo_mz.scale.part_files`, format
``geo_mz.part/2``: no longer a zip, the name kept so earlier runs' files are found), written under a
temporary name and renamed into place. Workers save side by side: none of them writes the
store's GeoPackage, so there is no single writer and no SQLite lock to wait for. A part is done
when its file is there: the rows and the mark arrive together, so a crash leaves the part done
with all its rows or not done at all (the rerun computes it again and replaces the file).

Why a file of our own and not a GeoPackage per part (what this store did before) or one SQLite
file per worker: writing a GeoPackage with pyogrio costs ≈ 30 ms for a county's coverage part,
and any SQLite commit ≈ 12–15 ms here (its journal is synced to disk, two fsyncs or more),
while computing a county's coverage takes ≈ 20–25 ms; the part file costs ≈ 2 ms. A renamed
file is safe against a killed or crashed worker; it is not synced to disk, so a power cut just
after a save can lose the newest parts (they are computed again; a damaged file is named by
the error, to be deleted). No pickle: a store folder may be shared, and unpickling runs code.

:meth:`GpkgRunStore.gather` first merges the parts saved since (:meth:`GpkgRunStore.merge`):
their marks into ``geo_mz_run_parts``, their rows into the store's layer tables, so the store
ends as one GeoPackage. Part files of the previous version (``<part>.gpkg``, marked done in
``geo_mz_run_parts``) are still merged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio

from geo_mz.core.projection import STORAGE_CRS
from geo_mz.scale.part_files import (
    DamagedPartFileError,
    read_part_file,
    read_part_mark,
    write_part_file,
)
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
)

_MARK_COLUMNS = ["run_key", *PART_COLUMNS]


log = logging.getLogger(__name__)

MERGE_LOCK_TIMEOUT_S = 3600.0
"""How long a merge waits for another process's merge of the same store (a nation's is minutes)."""

DAMAGED_SUFFIX = ".damaged"
"""Ending of a part file set aside as damaged (kept for inspection, never read as a part)."""


def set_aside(path: Path, exc: Exception) -> Path | None:
    """Move a damaged part file out of its run, keeping it beside it, and say so.

    A part file is written under a temporary name and renamed, so a damaged one comes from a
    power cut before the disk had its bytes, or a faulty disk. Its part is then not done: the
    next run computes it again (reading it as done would stop every run of the store).

    Parameters
    ----------
    path
        The part file.
    exc
        Why it cannot be read (named in the warning).

    Returns
    -------
    Path or None
        Where the file now is; None when another process moved or merged it first.
    """
    aside = path.with_name(f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}{DAMAGED_SUFFIX}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return None
    log.warning(
        "%s：分区结果文件已损坏，已移到 %s，该分区将重新计算 / the part file is damaged (%s); "
        "moved to %s: the part will be computed again",
        path, aside.name, exc, aside.name,
    )  # fmt: skip
    return aside


class GpkgRunStore:
    """Run results in a GeoPackage; each worker writes its parts to files of their own.

    A part's rows and mark go to ``<store>.parts/<run_key>/<part>.npz`` (written whole, then
    renamed into place), so workers save side by side with no single writer. :meth:`gather`
    first moves the parts saved since into the store's tables, so the store ends as one
    GeoPackage holding every result. See :mod:`geo_mz.scale.store_gpkg`.
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

    @contextlib.contextmanager
    def merging(self) -> Iterator[None]:
        """Hold the store's merge lock: one process at a time merges into it and reads it back.

        ``scale run all`` gathers its jobs side by side on the workers, each merging its own
        run's part files; GDAL's GeoPackage writer does not wait for another process's write
        lock, so merges take turns on a lock of their own: an exclusive SQLite transaction on
        ``<store>.parts/.merge.lock`` (SQLite's file locking, on any platform, waited for up
        to ``MERGE_LOCK_TIMEOUT_S``). The lock file is empty and stays.
        """
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        lock = self.parts_dir / ".merge.lock"
        con = sqlite3.connect(lock, timeout=MERGE_LOCK_TIMEOUT_S, isolation_level=None)
        try:
            try:
                con.execute("BEGIN EXCLUSIVE")
            except sqlite3.OperationalError as exc:
                raise RunStoreError(
                    f"{lock}: 等待其他进程合并运行库超时 / timed out waiting for another "
                    f"process's merge of the run store ({exc})"
                ) from exc
            yield
        finally:
            con.close()  # ends the transaction: the lock is released

    def part_file(self, run_key: str, part: str) -> Path:
        """Return the file a part's rows and mark are kept in until :meth:`gather` merges them."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in part)
        return self.parts_dir / run_key / f"{safe}.npz"

    def _pending(self, run_key: str | None) -> list[Path]:
        """Return the part files saved and not merged yet (a save's temporary files left out)."""
        folders = [self.parts_dir / run_key] if run_key is not None else None
        if folders is None:
            folders = sorted(p for p in self.parts_dir.glob("*") if p.is_dir())
        return [
            f
            for d in folders
            if d.is_dir()
            for f in sorted(d.glob("*.npz"))
            if not f.name.startswith(".")
        ]

    def _pending_marks(self, run_key: str | None) -> pd.DataFrame:
        """Return the marks of the parts saved and not merged yet.

        Read before ``geo_mz_run_parts``: a file merged meanwhile (gone) has its mark there.
        """
        marks = []
        for f in self._pending(run_key):
            try:
                marks.append(read_part_mark(f))
            except FileNotFoundError:
                continue
            except DamagedPartFileError as exc:
                set_aside(f, exc)  # its part is not done: the next run computes it again
        return pd.DataFrame([[m.get(c) for c in _MARK_COLUMNS] for m in marks],
                            columns=_MARK_COLUMNS)  # fmt: skip

    def begin(self, run_key: str, meta: Mapping[str, Any]) -> None:
        """Record a run (once; a rerun keeps the first record)."""
        with self._db() as db:
            if db.execute(f"SELECT 1 FROM {RUNS} WHERE run_key = ?", (run_key,)).fetchone():
                return
            db.execute(
                f"INSERT INTO {RUNS} (run_key, job, meta, started_at) VALUES (?, ?, ?, ?)",
                (run_key, str(meta.get("job")), json.dumps(meta, ensure_ascii=False), now_iso()),
            )

    def done(self, run_key: str) -> set[str]:
        """Parts of the run already done (merged, or saved and waiting to be merged)."""
        pending = set(self._pending_marks(run_key)["part"])
        return self._done_rows(run_key) | pending

    def save(
        self,
        run_key: str,
        part: str,
        frames: Mapping[str, pd.DataFrame],
        info: Mapping[str, Any],
    ) -> None:
        """Write the part's rows and mark to its file (replacing an earlier one): it is done.

        Called on the worker that computed the part; nothing else is written. A crash before
        the file is renamed into place leaves a part that is not done (or done with its earlier
        rows): the rerun computes it again and replaces its file.
        """
        job = str(info.get("job", "run"))
        target = self.part_file(run_key, part)
        target.parent.mkdir(parents=True, exist_ok=True)
        row = part_row(run_key, part, "done", None, rows_info(frames, info), info)
        mark = dict(zip(_MARK_COLUMNS, row, strict=True))
        write_part_file(target, {f"{job}_{name}": f for name, f in frames.items()}, mark)
        # A part file of the previous version would be merged too: the new one replaces it.
        target.with_suffix(".gpkg").unlink(missing_ok=True)

    def _delete_rows(self, db: sqlite3.Connection, run_key: str, parts: list[str]) -> None:
        tables = {str(r[0]) for r in db.execute("SELECT table_name FROM gpkg_contents")}
        marks = ",".join("?" * len(parts))
        for table in sorted(tables - {RUNS}):
            db.execute(
                f'DELETE FROM "{table}" WHERE run_key = ? AND part IN ({marks})',
                (run_key, *parts),
            )

    def _mark(self, db: sqlite3.Connection, row: tuple) -> None:
        db.execute(f"INSERT OR REPLACE INTO {PARTS} VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)

    def fail(self, run_key: str, part: str, error: str, info: Mapping[str, Any]) -> None:
        """Record a part that failed (its rows from an earlier success are kept, not shown)."""
        # A saved part not merged yet would say done: the failure is newer.
        self.part_file(run_key, part).unlink(missing_ok=True)
        with self._db() as db:
            self._mark(db, part_row(run_key, part, "failed", error, json.dumps({}), info))

    def status(self, run_key: str | None = None) -> pd.DataFrame:
        """One row per part: status, error, rows (JSON), seconds, worker, finished_at.

        Parts saved and not merged yet are read from their files (they are done).
        """
        pending = self._pending_marks(run_key)
        with self._db() as db:
            q = f"SELECT run_key, {', '.join(PART_COLUMNS)} FROM {PARTS}"
            args: tuple = ()
            if run_key is not None:
                q += " WHERE run_key = ?"
                args = (run_key,)
            df = pd.read_sql_query(q + " ORDER BY run_key, part", db, params=args)
        if pending.empty:
            return df
        keys = set(zip(pending["run_key"], pending["part"], strict=True))
        kept = df[[k not in keys for k in zip(df["run_key"], df["part"], strict=True)]]
        out = pd.concat([f for f in (kept, pending) if not f.empty], ignore_index=True)
        return out.sort_values(["run_key", "part"], kind="stable").reset_index(drop=True)

    def runs(self) -> pd.DataFrame:
        """Return the runs recorded, oldest first."""
        with self._db() as db:
            return pd.read_sql_query(
                f"SELECT run_key, job, meta, started_at FROM {RUNS} ORDER BY started_at", db
            )

    def _legacy_files(self, run_key: str, folder: Path, new: set[Path]) -> dict[Path, str]:
        """Part GeoPackages of the previous version whose parts are marked done."""
        by_file = {
            self.part_file(run_key, p).with_suffix(".gpkg"): p for p in self._done_rows(run_key)
        }
        return {
            f: by_file[f]
            for f in sorted(folder.glob("*.gpkg"))
            if f in by_file and f.with_suffix(".npz") not in new
        }

    def _done_rows(self, run_key: str) -> set[str]:
        with self._db() as db:
            rows = db.execute(
                f"SELECT part FROM {PARTS} WHERE run_key = ? AND status = 'done'", (run_key,)
            ).fetchall()
        return {r[0] for r in rows}

    def merge(self, run_key: str) -> int:
        """Move the part files saved since into the store's tables; return how many.

        The parts' marks go to ``geo_mz_run_parts``; per layer, the merged parts' old rows are
        deleted, then all their new rows appended at once. A part's file is removed only after
        its rows are in, so a crash in between merges it again (its rows are replaced, not
        doubled). A file replaced by a new save meanwhile is kept for the next merge. Merges
        of one store take turns (:meth:`merging`).
        """
        decoded = self._decoded(run_key)
        with self.merging():
            return len(self._merge(run_key, decoded)[0])

    def _decoded(self, run_key: str) -> dict[Path, tuple[tuple[int, int, int], dict, dict]]:
        """Decode the run's part files waiting to be merged, before taking the merge lock.

        Per file: its identity (inode, time, size) when read, its mark and its tables. The
        merge uses them for the files still there unchanged, and reads any other again: while
        one process waits for the lock, its decoding (a third of a merge) is done.
        """
        out: dict[Path, tuple[tuple[int, int, int], dict, dict]] = {}
        for f in self._pending(run_key):
            try:
                st = f.stat()
                mark, tables = read_part_file(f)
            except (FileNotFoundError, DamagedPartFileError):
                continue  # merged meanwhile, or damaged: the merge sees to it under the lock
            out[f] = ((st.st_ino, st.st_mtime_ns, st.st_size), mark, tables)
        return out

    def _merge(
        self,
        run_key: str,
        decoded: Mapping[Path, tuple[tuple[int, int, int], dict, dict]] | None = None,
    ) -> tuple[set[str], dict[str, gpd.GeoDataFrame]]:
        """Merge as :meth:`merge`; return the parts merged and, per table, the rows appended.

        ``decoded``: :meth:`_decoded`'s files, used when unchanged since.
        """
        folder = self.parts_dir / run_key
        if not folder.is_dir():
            return set(), {}
        _drop_stale_temporaries(folder)
        new = self._pending(run_key)
        legacy = self._legacy_files(run_key, folder, set(new))
        if not new and not legacy:
            return set(), {}
        seen: dict[Path, tuple[int, int, int]] = {}
        marks: list[tuple] = []
        by_file: dict[Path, tuple[str, dict[str, gpd.GeoDataFrame]]] = {}
        for f in new:
            st = f.stat()
            ident = (st.st_ino, st.st_mtime_ns, st.st_size)
            early = (decoded or {}).get(f)
            if early is not None and early[0] == ident:
                mark, tables = early[1], early[2]
            else:
                try:
                    mark, tables = read_part_file(f)
                except DamagedPartFileError as exc:
                    set_aside(f, exc)  # not merged: its part is not done
                    continue
            seen[f] = ident
            if mark.get("run_key") != run_key:
                raise RunStoreError(
                    f"{f}: 分区结果文件属于运行 {mark.get('run_key')!r}，不是 {run_key!r} / the "
                    f"part file belongs to run {mark.get('run_key')!r}, not {run_key!r}"
                )
            marks.append(tuple(mark.get(c) for c in _MARK_COLUMNS))
            by_file[f] = (str(mark["part"]), tables)
        for f, p in legacy.items():
            st = f.stat()
            seen[f] = (st.st_ino, st.st_mtime_ns, st.st_size)
            layers = pyogrio.list_layers(f)[:, 0]
            by_file[f] = (p, {str(n): pyogrio.read_dataframe(f, layer=n) for n in layers})
        by_table: dict[str, list[gpd.GeoDataFrame]] = {}
        for f in sorted(by_file):  # by file name, as before: the first part names the columns
            for table, rows in by_file[f][1].items():
                by_table.setdefault(table, []).append(rows)
        with self._db() as db:
            for row in marks:
                self._mark(db, row)
            self._delete_rows(db, run_key, sorted({p for p, _ in by_file.values()}))
        tables = self._tables()
        appended: dict[str, gpd.GeoDataFrame] = {}
        for table, frames in by_table.items():
            rows = pd.concat(frames, ignore_index=True)
            rows = gpd.GeoDataFrame(rows, geometry=rows.geometry.name, crs=STORAGE_CRS)
            # No R-tree: the store's rows are read by run and part, never by box, and the
            # index's triggers took half of a merge's write (the outputs' GeoPackages keep one).
            pyogrio.write_dataframe(
                rows, self.path, layer=table, driver="GPKG", append=table in tables,
                geometry_type="Unknown", promote_to_multi=False,
                layer_options={"SPATIAL_INDEX": "NO"},
            )  # fmt: skip
            tables.add(table)
            appended[table] = rows
        for f, was in seen.items():
            st = f.stat()
            if (st.st_ino, st.st_mtime_ns, st.st_size) == was:
                f.unlink()
        return {p for p, _ in by_file.values()}, appended

    def gather(self, run_key: str, layer: str) -> gpd.GeoDataFrame:
        """All done parts' rows of one layer, by part then row order (merging new parts first)."""
        return self.gather_layers(run_key, [layer])[layer]

    def gather_layers(self, run_key: str, layers: Sequence[str]) -> dict[str, gpd.GeoDataFrame]:
        """Several layers of a run as :meth:`gather` gives each, merging the new parts once.

        The rows a merge has just appended are the layer's rows of the run when the table holds
        no other part's rows of it (a run's first gather): they are used as they are, not read
        back from the GeoPackage (the part files give them typed as pyogrio reads them). The
        merge and the reads back hold the merge lock (:meth:`merging`): the jobs of one command
        gather side by side.
        """
        decoded = self._decoded(run_key)
        with self.merging():
            return self._gather_layers(run_key, layers, decoded)

    def _gather_layers(
        self, run_key: str, layers: Sequence[str], decoded: Mapping[Path, tuple]
    ) -> dict[str, gpd.GeoDataFrame]:
        merged, appended = self._merge(run_key, decoded)
        st = self.status(run_key)
        schemas = layer_schemas(st)
        job = self._job(run_key)
        done = set(st.loc[st["status"] == "done", "part"])
        tables = self._tables()
        out: dict[str, gpd.GeoDataFrame] = {}
        for layer in layers:
            schema = schemas.get(layer, {})
            table = f"{job}_{layer}"
            if table not in tables:
                empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in ["part", *schema]})
                out[layer] = finish_gather(empty, [], schema)
                continue
            gdf = appended.get(table)
            if gdf is None or self._rows_beyond(table, run_key, merged):
                gdf = pyogrio.read_dataframe(
                    self.path, layer=table, where=f"run_key = '{run_key.replace(chr(39), '')}'"
                )
            gdf = gdf[gdf["part"].isin(done)].sort_values(["part", "seq"], kind="stable")
            geoms = gdf.geometry.values
            df = pd.DataFrame(gdf.drop(columns=[gdf.geometry.name, "run_key", "seq"]))
            out[layer] = finish_gather(df.reset_index(drop=True), geoms, schema)
        return out

    def _rows_beyond(self, table: str, run_key: str, parts: set[str]) -> bool:
        """Whether ``table`` holds rows of the run from parts other than ``parts``."""
        # The parts of the run in the table, compared here: a run may have more parts than
        # SQLite takes variables in one statement (a nation's towns).
        with self._db() as db:
            rows = db.execute(f'SELECT DISTINCT part FROM "{table}" WHERE run_key = ?', (run_key,))
            return any(str(r[0]) not in parts for r in rows)

    def part_rows(self, run_key: str, part: str, layer: str) -> gpd.GeoDataFrame | None:
        """One done part's rows of a layer, as :meth:`gather` gives them; None if not done.

        Read from the part's file while it waits to be merged, else from the store's table:
        a later job of the same command reads a part's results without gathering the run.
        """
        table = f"{self._job(run_key)}_{layer}"
        try:
            mark, tables = read_part_file(self.part_file(run_key, part))
        except FileNotFoundError:  # not saved, or merged already (maybe just now)
            mark = None
        except DamagedPartFileError as exc:
            set_aside(self.part_file(run_key, part), exc)
            return None  # not done: the caller computes the part again
        if mark is not None and mark.get("run_key") == run_key:
            schema = part_schema(mark.get("rows"), layer)
            if schema is None:
                return None
            rows = tables.get(table)
        else:
            with self._db() as db:
                row = db.execute(
                    f"SELECT status, rows FROM {PARTS} WHERE run_key = ? AND part = ?",
                    (run_key, part),
                ).fetchone()
            schema = None if row is None or row[0] != "done" else part_schema(row[1], layer)
            if schema is None:
                return None
            rows = None
            if table in self._tables():
                q = "'" + run_key.replace("'", "''") + "'"
                rows = pyogrio.read_dataframe(
                    self.path, layer=table,
                    where=f"run_key = {q} AND part = '{part.replace(chr(39), chr(39) * 2)}'",
                ).sort_values("seq", kind="stable")  # fmt: skip
        if rows is None or rows.empty:
            empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in ["part", *schema]})
            return finish_gather(empty, [], schema)
        geoms = rows.geometry.values
        df = pd.DataFrame(rows.drop(columns=[rows.geometry.name, "run_key", "seq"]))
        return finish_gather(df.reset_index(drop=True), geoms, schema)

    def _job(self, run_key: str) -> str:
        with self._db() as db:
            row = db.execute(f"SELECT job FROM {RUNS} WHERE run_key = ?", (run_key,)).fetchone()
        if row is None:
            raise RunStoreError(f"{self.path}: no run {run_key!r}")
        return str(row[0])


def _drop_stale_temporaries(folder: Path, older_than_s: float = 3600.0) -> None:
    """Remove the temporary files of saves killed before their rename (an hour old or more).

    A save writes its temporary file in milliseconds: one an hour old belongs to a worker that
    died; a newer one may be a save going on now, and is left alone.
    """
    now = time.time()
    for f in folder.glob(".*.tmp"):
        try:
            if now - f.stat().st_mtime >= older_than_s:
                f.unlink()
        except FileNotFoundError:  # another merge removed it first
            continue


__all__ = ["GpkgRunStore"]

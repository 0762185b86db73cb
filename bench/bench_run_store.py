"""What keeping a part's results costs: the GeoPackage run store's part files, before and now.

Both sides save the same frames: the results of real county coverage parts computed once on a
workspace (by default a copy of the Guangdong workspace, ``p44.gpkg``), then saved the way
``run_part`` saves them on a worker (``open_run_store(store).save(...)`` per part):

- ``gpkg (before)``: the previous version's save, reimplemented here as the peer: the rows made
  with ``to_crs`` and a frame built per layer, written by pyogrio to a GeoPackage per part
  (temporary name, renamed), then the part marked done in the store's ``geo_mz_run_parts``
  (one SQLite commit, synced to disk as SQLite does by default);
- ``npz (before)``: :meth:`GpkgRunStore.save` as the previous version ran it: rows and mark
  in one ``geo_mz.part/1`` file (a ``.npz``, written by ``part_files_v1.write_part_file_v1``,
  the previous writer kept unchanged), renamed;
- ``part2 (now)``: :meth:`GpkgRunStore.save`: rows and mark in one ``geo_mz.part/2`` file (one
  header and the arrays' raw bytes), renamed;
- ``postgis (now)`` (with ``--postgis``): :meth:`PostgisRunStore.save` into a fresh schema of a
  throwaway local PostgreSQL cluster (rows and mark in one transaction, one binary COPY a layer;
  no merge at gather);
- ``pg (before)`` (with ``--postgis``): the previous version's PostGIS save, reimplemented here
  (a text COPY fed one Python tuple a row), into the same kind of fresh schema.

Each repetition saves every part into a fresh store per side (the same warm-up, ``--warmup``
untimed repetitions, and ``--reps`` timed ones for every side; the order rotates),
then gathers ``times`` and ``units`` from each store (the merge of the part files into the
store's tables is timed apart from the reading). The gathered frames of the two sides are
compared bit for bit (columns, dtypes, values, WKB of the geometry): the new files must give
exactly what the old ones gave. Printed: the configuration, per side the median save time per
part (and p90), the median merge and gather time, and the ratios. The machine may be shared:
compare the ratios, not the times across runs.

Then the part files alone, ``geo_mz.part/1`` (``npz v1``) against ``geo_mz.part/2``
(``part2``), on the same frames, with the same warm-up and repetitions, the order rotated: per
part the time to write the file (``write_part_file``: encoding, file, rename), to read it back
whole (``read_part_file``, today's reader, which reads both formats; for the old files it is
the previous reader's code path, ``np.load``) and to read its mark only (``read_part_mark``), and
the file's size. ``part2+fsync`` is the new writer followed by an ``fsync`` of the file and of
its folder: what making each part durable across a power cut would add. The frames read back
from the two formats are compared bit for bit.

Run: ``.venv/bin/python bench/bench_run_store.py --workspace p44.gpkg [--parts 24] [--reps 3]
[--warmup 1] [--postgis]`` (a copy of the workspace: the bench only reads it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from geo_mz.core.projection import STORAGE_CRS
from geo_mz.core.workspaces import open_workspace
from geo_mz.scale import runner as scale
from geo_mz.scale import store_gpkg
from geo_mz.scale.jobs import job_function
from geo_mz.scale.part_files import read_part_file, read_part_mark, write_part_file
from geo_mz.scale.part_files_v1 import write_part_file_v1
from geo_mz.scale.store import GpkgRunStore, open_run_store
from geo_mz.scale.store_base import PARTS, part_row, rows_info, storable_rows

KEY = "bench"


def _old_storable(frame: pd.DataFrame, part: str) -> gpd.GeoDataFrame:
    """The previous version's rows: ``to_crs``, a frame without the geometry, three inserts."""
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
    attrs.insert(0, "run_key", KEY)
    return gpd.GeoDataFrame(attrs, geometry=geom, crs=STORAGE_CRS)


def old_save(store: Path, part: str, frames: Mapping[str, pd.DataFrame], info: dict) -> None:
    """The previous version's ``GpkgRunStore.save``: a GeoPackage per part, then the mark."""
    rs = open_run_store(store)  # as run_part does, once per part
    assert isinstance(rs, GpkgRunStore)
    target = rs.part_file(KEY, part).with_suffix(".gpkg")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp.gpkg")
    tmp.unlink(missing_ok=True)
    written = False
    for name, frame in frames.items():
        rows = _old_storable(frame, part)
        if len(rows) == 0:
            continue
        pyogrio.write_dataframe(
            rows, tmp, layer=f"{info['job']}_{name}", driver="GPKG", append=written,
            geometry_type="Unknown", promote_to_multi=False,
            layer_options={"SPATIAL_INDEX": "NO"},
        )  # fmt: skip
        written = True
    os.replace(tmp, target)
    with sqlite3.connect(rs.path, timeout=60) as db:
        db.execute(
            f"INSERT OR REPLACE INTO {PARTS} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            part_row(KEY, part, "done", None, rows_info(frames, info), info),
        )


def new_save(store: Path | str, part: str, frames: Mapping[str, pd.DataFrame], info: dict) -> None:
    """Today's save, as ``run_part`` calls it (a GeoPackage path or a PostGIS URL)."""
    open_run_store(store).save(KEY, part, frames, info)


def npz_v1_save(store: Path, part: str, frames: Mapping[str, pd.DataFrame], info: dict) -> None:
    """The previous version's ``GpkgRunStore.save``: today's save with the previous writer."""
    today = store_gpkg.write_part_file
    store_gpkg.write_part_file = write_part_file_v1  # the store's only difference then
    try:
        new_save(store, part, frames, info)
    finally:
        store_gpkg.write_part_file = today


def _write_fsync(path: Path, tables: Mapping[str, pd.DataFrame], mark: dict) -> Path:
    """Today's writer, then the file and its folder synced to disk (what durability costs)."""
    write_part_file(path, tables, mark)
    for target, flags in ((path, os.O_RDONLY), (path.parent, os.O_RDONLY | os.O_DIRECTORY)):
        fd = os.open(target, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


FILE_SIDES: dict[str, Callable[..., Path]] = {
    "npz v1 (before)": write_part_file_v1,
    "part2 (now)": write_part_file,
    "part2+fsync": _write_fsync,
}


def file_rep(side: str, work: list, folder: Path) -> dict[str, Any]:
    """Write every part's file with one side's writer, then read each back whole and its mark."""
    write = FILE_SIDES[side]
    here = folder / side.split()[0]
    shutil.rmtree(here, ignore_errors=True)
    here.mkdir()
    files, times = [], {"write": [], "read": [], "mark": []}
    for part, frames, info in work:
        tables = {f"coverage_{name}": f for name, f in frames.items()}
        mark = {"run_key": KEY, "part": part, "status": "done", "worker": info["worker"]}
        path = here / f"{part}.npz"
        t0 = time.perf_counter()
        write(path, tables, mark)
        times["write"].append(time.perf_counter() - t0)
        files.append(path)
    got = []
    for path in files:
        t0 = time.perf_counter()
        got.append(read_part_file(path)[1])
        times["read"].append(time.perf_counter() - t0)
    for path in files:
        t0 = time.perf_counter()
        read_part_mark(path)
        times["mark"].append(time.perf_counter() - t0)
    return {**times, "bytes": [f.stat().st_size for f in files], "got": got}


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def old_postgis_save(
    url: str, schema: str, part: str, frames: Mapping[str, Any], info: dict
) -> None:
    """The previous version's ``PostgisRunStore.save`` (tables there): text COPY row by row.

    As it was: the store opened per part (a query for its tables), then one transaction: a
    query for the tables' columns, the old rows' deletes and the mark (a pipeline), one text
    COPY per layer fed one Python tuple a row (``storable_rows`` first), the commit.
    """
    from psycopg import sql

    from geo_mz.core.workspace_postgis import pooled_connection

    with pooled_connection(url) as conn:
        conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f'"{schema}"."{PARTS}"',)).fetchone()
    layers = [(f"{info['job']}_{name}", storable_rows(frame, KEY, part))
              for name, frame in frames.items()]  # fmt: skip
    with pooled_connection(url) as conn, conn.transaction():
        conn.execute(
            "SELECT c.relname, a.attname, t.typname FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_type t ON t.oid = a.atttypid WHERE n.nspname = %s AND c.relname = ANY(%s) "
            "AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped",
            (schema, [t for t, _ in layers]),
        ).fetchall()
        with conn.pipeline():
            for table, _ in layers:
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE run_key = %s AND part = %s").format(
                        sql.Identifier(schema, table)
                    ),
                    (KEY, part),
                )
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (run_key, part) DO UPDATE SET status = EXCLUDED.status"
                ).format(sql.Identifier(schema, PARTS)),
                part_row(KEY, part, "done", None, rows_info(frames, info), info),
            )
        for table, rows in layers:
            if not len(rows):
                continue
            cols = [c for c in rows.columns if c != rows.geometry.name]
            wkb = shapely.to_wkb(shapely.set_srid(np.asarray(rows.geometry.values), 4490),
                                 hex=True, include_srid=True)  # fmt: skip
            data = []
            for c in cols:
                v = rows[c].astype(object).where(rows[c].notna(), None).tolist()
                data.append([_plain(x) for x in v] if rows[c].dtype == object else v)
            stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(schema, table),
                sql.SQL(", ").join([*map(sql.Identifier, cols), sql.Identifier("geom")]),
            )
            with conn.cursor().copy(stmt) as cp:
                for row in zip(*data, wkb.tolist(), strict=True):
                    cp.write_row(row)


def postgis_rep(url: str, work: list, schema: str, old: bool = False) -> dict[str, Any]:
    """Save every part into a fresh PostGIS run store schema; gather as for the GeoPackage.

    ``old``: the previous version's save, into tables made by today's first (then emptied).
    The server's CPU for the saves (its backends', read from /proc) is kept per part.
    """
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    ref = f"{url}#{schema}"
    rs = open_run_store(ref)
    rs.begin(KEY, {"job": "coverage"})
    if old:
        new_save(ref, *work[0])
        with psycopg.connect(url, autocommit=True) as conn:
            for (t,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename <> %s",
                (schema, "geo_mz_runs"),
            ).fetchall():
                conn.execute(f'DELETE FROM "{schema}"."{t}"')
    per_part = []
    server0 = _server_cpu(url)
    for part, frames, info in work:
        t0 = time.perf_counter()
        if old:
            old_postgis_save(url, schema, part, frames, info)
        else:
            new_save(ref, part, frames, info)
        per_part.append(time.perf_counter() - t0)
    server_s = _server_cpu(url) - server0
    t0 = time.perf_counter()
    got = {layer: rs.gather(KEY, layer) for layer in ("times", "units")}
    return {"per_part": per_part, "merge_s": 0.0, "gather_s": time.perf_counter() - t0, "got": got,
            "server_ms": 1e3 * server_s / len(work)}  # fmt: skip


def _server_cpu(url: str) -> float:
    """CPU seconds the cluster's client backends have used so far (a local cluster: /proc).

    The save's connections are this process's pool, open before the parts are saved.
    """
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        pids = [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "AND pid <> pg_backend_pid()"
        ).fetchall()]  # fmt: skip
    total = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):  # a backend that ended meanwhile
            total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    return total / 1e9


def _same(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame) -> bool:
    try:
        pd.testing.assert_frame_equal(
            pd.DataFrame(a.drop(columns="geometry")), pd.DataFrame(b.drop(columns="geometry"))
        )
    except AssertionError as exc:
        print("   differ:", str(exc).splitlines()[:4])
        return False
    wa, wb = shapely.to_wkb(a.geometry.values), shapely.to_wkb(b.geometry.values)
    return bool(a.crs == b.crs and (wa == wb).all())


def one_rep(
    side: str,
    save: Callable[..., None],
    work: list[tuple[str, dict[str, pd.DataFrame], dict[str, Any]]],
    folder: Path,
) -> dict[str, Any]:
    store = folder / f"{side.split()[0]}.gpkg"
    for p in (store, store.with_suffix(".parts")):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    rs = GpkgRunStore(store)
    rs.begin(KEY, {"job": "coverage"})
    per_part = []
    for part, frames, info in work:
        t0 = time.perf_counter()
        save(store, part, frames, info)
        per_part.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    merged = rs.merge(KEY)
    merge_s = time.perf_counter() - t0
    assert merged == len(work), (side, merged)
    t0 = time.perf_counter()
    got = {layer: rs.gather(KEY, layer) for layer in ("times", "units")}
    gather_s = time.perf_counter() - t0
    return {"per_part": per_part, "merge_s": merge_s, "gather_s": gather_s, "got": got}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", required=True, help="a copy of p44.gpkg (only read)")
    ap.add_argument("--parts", type=int, default=24, help="county parts (largest first)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument(
        "--postgis",
        action="store_true",
        help="also save into a PostGIS run store on a throwaway local cluster",
    )
    ap.add_argument(
        "--files-only", action="store_true", help="only the part files (no store, no merge)"
    )
    args = ap.parse_args()

    ws = open_workspace(args.workspace)
    parts = scale.parts_of(ws.read("admin_units"), "county")[: args.parts]
    fn = job_function("coverage")
    t0 = time.perf_counter()
    work = []
    for p in parts:
        frames, log = fn(open_workspace(args.workspace), p)
        work.append((p.code, frames, {"job": "coverage", "name": p.name, "seconds": 0.0,
                                      "worker": "bench", **log}))  # fmt: skip
    compute_s = time.perf_counter() - t0
    n_rows = {k: sum(len(w[1][k]) for w in work) for k in work[0][1]}
    print("configuration:")
    print(f"  cpus {os.cpu_count()}  load {' '.join(f'{x:.1f}' for x in os.getloadavg())}  "
          f"python {platform.python_version()}  numpy {np.__version__}  pandas {pd.__version__}  "
          f"pyogrio {pyogrio.__version__}  GDAL {pyogrio.__gdal_version_string__}")  # fmt: skip
    print(
        f"  workspace {args.workspace}: {len(work)} county coverage parts, rows {n_rows}, "
        f"computed once in {compute_s:.1f} s ({1e3 * compute_s / len(work):.0f} ms a part)"
    )
    print(
        f"  warm-up {args.warmup}, reps {args.reps} (median), order rotated; a fresh "
        "store per side and repetition; save = open_run_store(store).save per part"
    )

    sides: dict[str, Callable[..., None] | None] = {"gpkg (before)": old_save,
                                                    "npz (before)": npz_v1_save,
                                                    "part2 (now)": new_save}  # fmt: skip
    if args.files_only:
        sides = {}
    with contextlib.ExitStack() as stack:
        url = None
        if args.postgis and sides:
            from webmap.testing_postgis import temp_cluster

            url = stack.enter_context(temp_cluster())
            sides["pg (before)"] = None
            sides["postgis (now)"] = None
            print("  postgis: a throwaway local cluster (webmap.testing_postgis), same machine")
        results: dict[str, list[dict[str, Any]]] = {s: [] for s in sides}
        files: dict[str, list[dict[str, Any]]] = {s: [] for s in FILE_SIDES}
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_rs_")))
        for rep in range(args.warmup + args.reps):
            order = (
                list(sides)[rep % max(len(sides), 1) :] + list(sides)[: rep % max(len(sides), 1)]
            )
            for side in order:
                save = sides[side]
                res = (
                    postgis_rep(str(url), work, f"bench_{side[:2]}_{rep}", old="before" in side)
                    if save is None
                    else one_rep(side, save, work, folder)
                )
                if rep >= args.warmup:
                    results[side].append(res)
        for rep in range(args.warmup + args.reps):
            names = list(FILE_SIDES)
            for side in names[rep % len(names) :] + names[: rep % len(names)]:
                res = file_rep(side, work, folder)
                if rep >= args.warmup:
                    files[side].append(res)
    if sides:
        _print_stores(args, work, results)
    _print_files(work, files)
    print(f"load after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def _print_stores(args: argparse.Namespace, work: list, results: dict[str, list]) -> None:
    last = {s: results[s][-1]["got"] for s in results}
    same = {layer: _same(last["gpkg (before)"][layer], last["part2 (now)"][layer])
            for layer in ("times", "units")}  # fmt: skip
    same_v1 = {layer: _same(last["npz (before)"][layer], last["part2 (now)"][layer])
               for layer in ("times", "units")}  # fmt: skip
    if args.postgis:
        pg_same = {layer: _same(last["part2 (now)"][layer], last["postgis (now)"][layer])
                   for layer in ("times", "units")}  # fmt: skip
        pg_old_same = {layer: _same(last["pg (before)"][layer], last["postgis (now)"][layer])
                       for layer in ("times", "units")}  # fmt: skip

    print(f"\n{'side':<15}{'save ms/part':>13}{'p90':>8}{'merge s':>9}{'gather s':>10}")
    med: dict[str, dict[str, float]] = {}
    for side, runs in results.items():
        per = [x for r in runs for x in r["per_part"]]
        med[side] = {
            "save": 1e3 * statistics.median(per),
            "p90": 1e3 * float(np.percentile(per, 90)),
            "merge": statistics.median(r["merge_s"] for r in runs),
            "gather": statistics.median(r["gather_s"] for r in runs),
        }
        m = med[side]
        print(f"{side:<15}{m['save']:>13.1f}{m['p90']:>8.1f}{m['merge']:>9.2f}{m['gather']:>10.2f}")
    b, v1, n = med["gpkg (before)"], med["npz (before)"], med["part2 (now)"]
    if args.postgis:
        pg, pgb = med["postgis (now)"], med["pg (before)"]
        whole_pg = pg["save"] * len(work) / 1e3 + pg["gather"]
        whole_n = n["save"] * len(work) / 1e3 + n["merge"] + n["gather"]
        print(
            f"\npostgis save / part2 save: {pg['save'] / n['save']:.1f}x (no merge: rows are "
            f"in their tables at once); postgis (save + gather) / part2 (save + merge + gather) "
            f"of the {len(work)} parts: {whole_pg / whole_n:.2f}x"
        )
        print(f"postgis save before/now: {pgb['save'] / pg['save']:.1f}x (both sides gather "
              "with today's gather)")  # fmt: skip
        srv = {k: statistics.median(r["server_ms"] for r in results[k])
               for k in ("pg (before)", "postgis (now)")}  # fmt: skip
        print(f"server CPU a part (its backends, /proc): before {srv['pg (before)']:.2f} ms, "
              f"now {srv['postgis (now)']:.2f} ms")  # fmt: skip
    for name, old in (("gpkg", b), ("npz", v1)):
        print(f"\n{name} before / part2 now: save {old['save'] / n['save']:.2f}x   merge "
              f"{old['merge'] / n['merge']:.2f}x   gather (reading the merged store) "
              f"{old['gather'] / n['gather']:.2f}x", end="")  # fmt: skip
    print(f"\ngathered frames identical bit for bit (times, units): gpkg {same}, npz {same_v1}")
    if args.postgis:
        print(f"postgis gathers the same frames as the GeoPackage store: {pg_same}")
        print(f"postgis now gathers the same frames as before: {pg_old_same}")


def _print_files(work: list, files: dict[str, list]) -> None:
    print(f"\npart files alone, {len(work)} parts, ms per part (median; p90):")
    print(f"{'side':<17}{'write':>7}{'p90':>7}{'read':>7}{'p90':>7}{'mark':>7}{'KB/part':>9}")
    med: dict[str, dict[str, float]] = {}
    for side, runs in files.items():
        m = med[side] = {}
        for what in ("write", "read", "mark"):
            per = [x for r in runs for x in r[what]]
            m[what] = 1e3 * statistics.median(per)
            m[what + "90"] = 1e3 * float(np.percentile(per, 90))
        m["kb"] = statistics.median(x for r in runs for x in r["bytes"]) / 1e3
        print(f"{side:<17}{m['write']:>7.2f}{m['write90']:>7.2f}{m['read']:>7.2f}"
              f"{m['read90']:>7.2f}{m['mark']:>7.3f}{m['kb']:>9.0f}")  # fmt: skip
    o, n, f = med["npz v1 (before)"], med["part2 (now)"], med["part2+fsync"]
    print(f"now / before: write {n['write'] / o['write']:.2f}x   read {n['read'] / o['read']:.2f}x"
          f"   mark {n['mark'] / o['mark']:.2f}x   (fsync of file and folder would add "
          f"{f['write'] - n['write']:.2f} ms a part)")  # fmt: skip
    old, new = files["npz v1 (before)"][-1]["got"], files["part2 (now)"][-1]["got"]
    same = all(_same(a[t], b[t]) for a, b in zip(old, new, strict=True) for t in a)
    same = same and all(list(a) == list(b) for a, b in zip(old, new, strict=True))
    print(f"frames read back from both formats identical bit for bit: {same}")


if __name__ == "__main__":
    main()

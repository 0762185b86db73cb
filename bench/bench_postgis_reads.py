"""What a county part's reads and the driver's gathers cost on PostGIS, against GeoPackage.

Workload: a copy of a province workspace (by default the Guangdong one, ``p44.gpkg``; the bench
copies it into its own temporary folder and reads only the copy), loaded into a throwaway
PostgreSQL cluster (``webmap.testing_postgis.temp_cluster``) with ``PostgisWorkspace
.from_workspace`` (which now makes the ``adcode`` index).

1. Part reads, per county part (every ``--every``-th of the province's counties), as a coverage
   part reads them in one snapshot: its own units and their ancestors (for names), its own
   people by box + code prefix + the four fields the times keep (``TIMES_POP_FIELDS``), the
   roads round it by the 2 km cut's box + the four fields a walking network uses
   (``NETWORK_ROAD_FIELDS``). Sides: ``gpkg`` (the R-tree reader; units through its
   ``adcode`` index with ``ancestors``, as ``units_of_part`` reads them; roads by the cut's
   ``lonlat_mask``, as ``read_box`` reads them), ``pg`` (``PostgisWorkspace`` now: the lock,
   BEGIN and the catalog (a prepared statement of the connection) in one round trip, the end
   and the unlock sent and not waited for; rows put in ``fid`` order here, not by the server;
   own people as a range of the ``adcode`` index with the box a test of its rows; the mask's
   strips one array; columns typed whole, ``conform_types`` skipped when it changes nothing),
   ``pg-many`` (``pg`` with the three reads sent together, ``read_many``: one round trip;
   the own people's box given, found beforehand), ``pg-part`` (``part_inputs.read_part``, the part's
   reads together: the three in one round trip, the own people read as the ``adcode``
   index's range and the box of the units read with them tested here),
   ``pg-before`` (the read before that, frozen here: the server sorts, both indexes ANDed,
   16 ORs for a mask, the catalog planned each time, the end waited for), ``pg-prev`` (the
   snapshot before that, frozen here: lock, BEGIN, catalog, COMMIT and unlock each a round
   trip, the units as every unit of the part's box then ``related_to``, the roads by the
   cut's box; its reads are today's), ``pg-old`` (the read before that, frozen here as the
   peer: the box and prefix tested per row in SQL with ``ST_Intersects`` and
   ``starts_with``, every field, values typed one by one; it had no ``columns=``, so it reads
   them all, as a part on PostGIS did). The frames of ``gpkg``, ``pg``, ``pg-many``,
   ``pg-part``, ``pg-before`` and ``pg-prev`` are compared (equal). Round trips of a part's
   reads are counted from libpq's trace for the PostGIS sides but ``pg-old``.
2. The plan of one part's own-people read (``EXPLAIN ANALYZE``, no planner hints): the
   ``adcode`` index's range, against the same read in a copy without the index.
3. Gathers from the run stores of a coverage run over those parts (computed once per store,
   ``workers=0``): ``gather("units")``, ``gather("times")`` and ``part_rows(...,"times")`` of
   each part; GeoPackage store (its part files merged by a first, untimed gather) vs PostGIS
   store now vs ``pg-old`` (the previous gather and part reads, frozen here: every run's
   record read to find the job, the table's existence asked apart).
4. Saves of those parts' coverage rows (``times`` and ``units``): GeoPackage part file, PostGIS
   store now (one simple query), ``pg-prev`` (its previous save: pipeline, psycopg COPYs,
   COMMIT), each round under a new run key.
5. With ``--province``: ``run_partitioned("coverage", ...)`` over every county part (and,
   with ``--by city`` or ``both``, every city part: counties grouped by code prefix) on a
   LocalCluster of ``--workers`` (1 and 2 by default; start-up left out). Sides: ``gpkg``
   (GeoPackage workspace + store), ``pg`` (PostGIS workspace + store); the order rotating
   over ``--province-reps`` runs. Printed: wall, mean part seconds and what is
   outside the parts (wall minus the parts' sum divided by the workers: the driver, Dask,
   the save of a part's rows, which a part's ``seconds`` do not hold), and the gathers of the
   run's two layers after it (``units``, ``times``: what its outputs read; the GeoPackage
   store's first gather merges its part files into its tables), and run + gathers.
   Durability: the
   bench's PostgreSQL cluster runs with ``fsync=off`` and ``synchronous_commit=off``
   (``temp_cluster``), and the GeoPackage store's part files are not fsynced either: neither
   side waits for the disk.

Every side gets the same warm-up (``--warmup`` untimed rounds) and repetitions (``--reps``), the
order of the sides rotating each round. The machine may be shared: compare the ratios of one
run, not times across runs.

Run: ``.venv/bin/python bench/bench_postgis_reads.py --workspace p44.gpkg [--every 6] [--reps 5]
[--warmup 1] [--province] [--province-reps 2] [--by county|city|both] [--workers 1 2]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


# -- the previous PostGIS read and gathers, frozen as peers ----------------------------------
def old_read(pws: Any, conn: Any, kind: str, bbox=None, prefix=None) -> gpd.GeoDataFrame:
    """The PostGIS read before this change (SQL box test and prefix, values one by one)."""
    from psycopg import sql

    from geo_mz.core._postgis_tables import table_columns
    from geo_mz.core.catalog import get_spec
    from geo_mz.core.workspace_read import conform_types

    spec = get_spec(kind)
    columns = [(n, t) for n, t in table_columns(conn, pws.schema, kind) if n not in ("fid", "geom")]
    crs = conn.execute(
        sql.SQL("SELECT value FROM {} WHERE key = 'storage_crs'").format(
            sql.Identifier(pws.schema, "geo_mz_workspace")
        )
    ).fetchone()[0]
    select = [sql.Identifier(n) for n, _ in columns] + [sql.SQL("ST_AsBinary(geom)")]
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(select), sql.Identifier(pws.schema, kind)
    )
    params: tuple = ()
    if bbox is not None:
        env = sql.SQL("ST_MakeEnvelope(%s, %s, %s, %s, 4490)")
        query += sql.SQL(" WHERE geom && {e} AND ST_Intersects(geom, {e})").format(e=env)
        params = tuple(float(b) for b in bbox) * 2
    if prefix is not None:
        query += sql.SQL(" AND " if bbox is not None else " WHERE ")
        query += sql.SQL("starts_with({}::text, %s)").format(sql.Identifier(prefix[0]))
        params += (str(prefix[1]),)
    with conn.cursor(binary=True) as cur:
        cur.execute(query + sql.SQL(" ORDER BY fid"), params)
        rows = cur.fetchall()
    data = {n: _old_values([r[i] for r in rows], t, n in spec.field_names)
            for i, (n, t) in enumerate(columns)}  # fmt: skip
    wkb = [None if r[-1] is None else bytes(r[-1]) for r in rows]
    geoms = shapely.from_wkb(wkb) if rows else np.array([], dtype=object)
    gdf = gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms), crs=crs)
    return conform_types(gdf, spec)


def _old_values(values: list, pg_type: str, is_field: bool) -> pd.Series:
    if pg_type == "date":
        return pd.Series([None if v is None else v.isoformat() for v in values], dtype=object)
    if is_field or not values:
        return pd.Series(values, dtype=object)
    has_null = any(v is None for v in values)
    if pg_type == "bigint":
        return pd.Series(values, dtype="float64" if has_null else "int64")
    if pg_type == "double precision":
        return pd.Series([np.nan if v is None else v for v in values], dtype="float64")
    if pg_type == "boolean":
        return pd.Series(values, dtype=object if has_null else bool)
    return pd.Series(values, dtype="str")


def old_part_rows(rs: Any, run_key: str, part: str, layer: str) -> gpd.GeoDataFrame | None:
    """``PostgisRunStore.part_rows`` before this change (four queries)."""
    from psycopg import sql

    from geo_mz.scale.store_base import PARTS, RUNS, finish_gather, part_schema

    with rs._connect() as conn:
        mark = conn.execute(
            sql.SQL(
                "SELECT p.status, p.rows::text, r.job FROM {} p JOIN {} r "
                "ON r.run_key = p.run_key WHERE p.run_key = %s AND p.part = %s"
            ).format(sql.Identifier(rs.schema, PARTS), sql.Identifier(rs.schema, RUNS)),
            (run_key, part),
        ).fetchone()
        if mark is None or mark[0] != "done":
            return None
        schema = part_schema(mark[1], layer)
        table, cols = f"{mark[2]}_{layer}", ["part", *schema]
        rows: list = []
        if conn.execute("SELECT to_regclass(%s)", (f"{rs.schema}.{table}",)).fetchone()[0]:
            have = set(rs._column_types(conn, [table]).get(table, {}))
            stmt = sql.SQL(
                "SELECT {}, ST_AsBinary(geom) FROM {} WHERE run_key = %s AND part = %s ORDER BY seq"
            ).format(
                sql.SQL(", ").join(
                    sql.Identifier(c) if c in have else sql.SQL("NULL") for c in cols
                ),
                sql.Identifier(rs.schema, table),
            )
            rows = conn.cursor(binary=True).execute(stmt, (run_key, part)).fetchall()
    df = pd.DataFrame([r[:-1] for r in rows], columns=cols)
    geoms = shapely.from_wkb([None if r[-1] is None else bytes(r[-1]) for r in rows])
    return finish_gather(df, geoms, schema)


def old_gather(rs: Any, run_key: str, layer: str) -> gpd.GeoDataFrame:
    """``PostgisRunStore.gather`` before this change (every run's record read, one query more)."""
    from psycopg import sql

    from geo_mz.scale.store_base import PARTS, finish_gather, layer_schemas

    st = rs.status(run_key)
    schema = layer_schemas(st).get(layer, {})
    runs = rs.runs()
    job = runs.loc[runs["run_key"] == run_key, "job"]
    table = f"{job.iat[0]}_{layer}"
    cols = ["part", *schema]
    with rs._connect() as conn:
        conn.execute("SELECT to_regclass(%s)", (f"{rs.schema}.{table}",)).fetchone()
        have = set(rs._column_types(conn, [table]).get(table, {}))
        stmt = sql.SQL(
            "SELECT {}, ST_AsBinary(t.geom) FROM {} t JOIN {} p "
            "ON p.run_key = t.run_key AND p.part = t.part AND p.status = 'done' "
            "WHERE t.run_key = %s ORDER BY t.part, t.seq"
        ).format(
            sql.SQL(", ").join(
                sql.Identifier("t", c) if c in have else sql.SQL("NULL") for c in cols
            ),
            sql.Identifier(rs.schema, table),
            sql.Identifier(rs.schema, PARTS),
        )
        rows = conn.cursor(binary=True).execute(stmt, (run_key,)).fetchall()
    df = pd.DataFrame([r[:-1] for r in rows], columns=cols)
    geoms = shapely.from_wkb([None if r[-1] is None else bytes(r[-1]) for r in rows])
    return finish_gather(df, geoms, schema)


# -- timing ------------------------------------------------------------------------------------
def rotated(sides: dict[str, Callable[[], Any]], reps: int, warmup: int) -> dict[str, list]:
    """Time each side ``reps`` times after ``warmup`` untimed rounds, the order rotating."""
    names = list(sides)
    times: dict[str, list] = {n: [] for n in names}
    for r in range(warmup + reps):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            t0 = time.perf_counter()
            sides[n]()
            if r >= warmup:
                times[n].append(time.perf_counter() - t0)
    return times


def report(title: str, times: dict[str, list], per: int, ref: str) -> None:
    med = {n: statistics.median(t) / per * 1000 for n, t in times.items()}
    print(f"{title} (median of {len(next(iter(times.values())))} reps, ms per item):")
    for n, m in med.items():
        print(f"   {n:<14} {m:9.2f} ms   {m / med[ref]:.2f}x {ref}")


@contextmanager
def prev_snapshot(pws: Any) -> Iterator[Any]:
    """``PostgisWorkspace.snapshot`` before this change: lock, BEGIN, catalog, COMMIT, unlock.

    Each its own round trip; the reads inside are today's (``_read``, the catalog kept).
    """
    import threading

    from psycopg import IsolationLevel

    from geo_mz.core._postgis_db import pooled_connection
    from geo_mz.core._postgis_tables import LOCK_CLASS, read_catalog

    lock = (LOCK_CLASS, pws.schema)
    with pooled_connection(pws._url) as conn:
        conn.execute("SELECT pg_advisory_lock_shared(%s, hashtext(%s))", lock)
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        try:
            with conn.transaction():
                memo = {"catalog": read_catalog(conn, pws.schema)}
                pws._snapshots[threading.get_ident()] = (conn, memo)
                try:
                    yield pws
                finally:
                    del pws._snapshots[threading.get_ident()]
        finally:
            conn.isolation_level = None
            conn.read_only = None
        conn.execute("SELECT pg_advisory_unlock_shared(%s, hashtext(%s))", lock)


# -- the read before this session's change, frozen as a peer ("pg-before") ------------------
def _before_query(schema, kind, columns, *, srid, bbox, prefix, ancestors=False, boxes=None,
                  indexed=False, ewkb=False):  # fmt: skip
    """``layer_query`` before: sorted by the server, 16 ORs for a mask, both indexes ANDed."""
    from psycopg import sql

    from geo_mz.core._postgis_read import prefix_range

    select = [sql.SQL("fid")] + [sql.Identifier(n) for n, _ in columns]
    select.append(sql.SQL("ST_AsBinary(geom)"))
    query = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(select),
                                                sql.Identifier(schema, kind))  # fmt: skip
    where, params = [], ()
    env = sql.SQL("geom && ST_MakeEnvelope(%s, %s, %s, %s, {})").format(sql.Literal(srid))
    if bbox is not None:
        where.append(env)
        params += tuple(float(b) for b in bbox)
    if boxes is not None:
        if boxes:
            where.append(sql.SQL("(") + sql.SQL(" OR ").join([env] * len(boxes)) + sql.SQL(")"))
            params += tuple(float(v) for b in boxes for v in b)
        else:
            where.append(sql.SQL("false"))
    if prefix is not None:
        field, pg_type, code = prefix
        bounds = prefix_range(code) if pg_type == "text" else None
        up = [code[:k] for k in range(len(code))] if ancestors else []
        if bounds is not None:
            own = '{f} COLLATE "C" >= %s AND {f} COLLATE "C" < %s'
            params += bounds
            if up:
                own = f'({own} OR {{f}} COLLATE "C" = ANY(%s))'
                params += (up,)
        else:
            own = "starts_with({f}::text, %s)"
            params += (code,)
            if up:
                own = f"({own} OR {{f}}::text = ANY(%s))"
                params += (up,)
        where.append(sql.SQL(own).format(f=sql.Identifier(field)))
    if where:
        query += sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where)
    return query + sql.SQL(" ORDER BY fid"), params


def _before_column(values, pg_type, is_field):
    from geo_mz.core._postgis_tables import read_values

    if pg_type == "double precision":
        return np.array(values, dtype=np.float64)
    if pg_type == "text":
        return pd.Series(np.array(values, dtype=object), dtype="str")
    if pg_type in ("bigint", "boolean"):
        arr = np.array(values, dtype=object)
        missing = np.fromiter((v is None for v in arr), dtype=bool, count=len(arr))
        if missing.any():
            arr[missing] = 0
        typed = arr.astype(np.int64 if pg_type == "bigint" else np.bool_)
        if is_field:
            if pg_type == "bigint":
                return pd.arrays.IntegerArray(typed, missing)
            return pd.arrays.BooleanArray(typed, missing)
        if not missing.any():
            return typed
        if pg_type == "bigint":
            out = typed.astype(np.float64)
            out[missing] = np.nan
            return out
        return pd.Series(values, dtype=object)
    return read_values(list(values), pg_type, is_field)


def _before_frame(rows, columns, spec, storage_crs, bbox, mask=None, *, ewkb=False):
    """``frame_from_rows`` before (rows already in fid order; columns typed, frames copied)."""
    from geopandas.array import GeometryArray

    from geo_mz.core._postgis_read import geometries, layer_crs
    from geo_mz.core._postgis_tables import read_values
    from geo_mz.core.gpkg_read import box_mask, to_geoframe

    rows = [r[1:] for r in rows]  # (the fid, which the query before did not read)
    names = [n for n, _ in columns]
    cols = list(zip(*rows, strict=True)) if rows else [()] * (len(columns) + 1)
    geoms = geometries(cols[-1])
    keep = None
    if mask is not None and len(geoms):
        shapely.prepare(mask)
        keep = shapely.intersects(mask, geoms)
    elif bbox is not None and len(geoms):
        keep = box_mask(geoms, bbox)
    if keep is not None and not keep.all():
        geoms = geoms[keep]
        kept = [r for r, k in zip(rows, keep.tolist(), strict=True) if k]
        cols = list(zip(*kept, strict=True)) if kept else [()] * (len(columns) + 1)
    data = {}
    for (name, pg_type), values in zip(columns, cols[:-1], strict=True):
        is_field = name in spec.field_names
        data[name] = (read_values([], pg_type, is_field) if not len(values)
                      else _before_column(values, pg_type, is_field))  # fmt: skip
    crs = layer_crs(storage_crs)
    data["geometry"] = GeometryArray(np.asarray(geoms, dtype=object), crs=crs)
    df = pd.DataFrame(data, columns=[*names, "geometry"], index=pd.RangeIndex(len(geoms)))
    return to_geoframe(df)


@contextmanager
def before_snapshot(pws: Any) -> Iterator[Any]:
    """``snapshot`` and its reads before this session's change.

    Lock, BEGIN and the catalog (not prepared, no index flags) one round trip, the end and the
    unlock one more, waited for; the reads with :func:`_before_query` and :func:`_before_frame`
    then ``conform_types`` (the names in ``workspace_postgis`` and ``_postgis_read`` swapped
    while it lasts).
    """
    import threading

    from psycopg import sql

    from geo_mz.core import _postgis_read as rd
    from geo_mz.core._postgis_db import pooled_connection
    from geo_mz.core._postgis_tables import LOCK_CLASS, Catalog
    from geo_mz.core.workspace_read import conform_types

    schema = pws.schema
    catalog = sql.SQL(
        "SELECT 0, layer, NULL::name, NULL, 0 FROM {l} UNION ALL SELECT 1, value, NULL, NULL, 0 "
        "FROM {m} WHERE key = 'storage_crs' UNION ALL SELECT 2, c.relname, a.attname, "
        "format_type(a.atttypid, NULL), a.attnum FROM pg_attribute a JOIN pg_class c ON "
        "c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = {s} "
        "AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped"
    ).format(l=sql.Identifier(schema, "geo_mz_layers"),
             m=sql.Identifier(schema, "geo_mz_workspace"), s=sql.Literal(schema))  # fmt: skip
    lock = (sql.Literal(LOCK_CLASS), sql.Literal(schema))
    start = sql.SQL("SELECT pg_advisory_lock_shared({}, hashtext({})); COMMIT; BEGIN ISOLATION "
                    "LEVEL REPEATABLE READ READ ONLY; ").format(*lock) + catalog  # fmt: skip
    saved = (rd.layer_query, rd.frame_from_rows, rd.typed_frame)
    with pooled_connection(pws._url) as conn:
        cur = conn.execute(start)
        for _ in range(3):
            cur.nextset()
        rows = cur.fetchall()
        names = sorted(str(r[1]) for r in rows if r[0] == 0)
        crs = next(str(r[1]) for r in rows if r[0] == 1)
        tables: dict = {}
        for r in sorted((r for r in rows if r[0] == 2), key=lambda r: r[4]):
            t = "timestamp" if r[3] == "timestamp without time zone" else str(r[3])
            tables.setdefault(str(r[1]), []).append((str(r[2]), t))
        memo = {"catalog": Catalog(names, crs, tables, frozenset())}
        pws._snapshots[threading.get_ident()] = (conn, memo)
        rd.layer_query, rd.frame_from_rows, rd.typed_frame = (_before_query, _before_frame,
                                                              conform_types)  # fmt: skip
        try:
            yield pws
        finally:
            rd.layer_query, rd.frame_from_rows, rd.typed_frame = saved
            del pws._snapshots[threading.get_ident()]
        conn.execute(sql.SQL("COMMIT; SELECT pg_advisory_unlock_shared({}, hashtext({}))")
                     .format(*lock))  # fmt: skip


def round_trips(url: str, run: Callable[[], Any]) -> int:
    """Round trips of ``run`` on this process's next pooled connection (libpq's trace)."""
    import psycopg

    from geo_mz.core._postgis_db import close_pool, pooled_connection

    close_pool()
    with tempfile.TemporaryFile("w+") as f:
        with pooled_connection(url) as conn:
            conn.pgconn.trace(f.fileno())
            conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
        run()
        with pooled_connection(url) as conn:
            conn.pgconn.untrace()
        f.seek(0)
        text = f.read()
    close_pool()
    return text.count("\tReadyForQuery") + text.count("\tCopyInResponse")


def part_reads(parts, gws, pws, reps: int, warmup: int) -> None:
    from geo_mz.core.workspace_read import read_layer, related_to
    from geo_mz.network.graph import NETWORK_ROAD_FIELDS
    from geo_mz.scale.cut import make_cut
    from geo_mz.scale.part_inputs import own_rows, part_bbox, part_crs, read_part
    from geo_mz.scale.partition import TIMES_POP_FIELDS

    boxes, cuts = [], {}
    for p in parts:
        units = gws.read("admin_units", bbox=tuple(shapely.bounds(p.geometry)))
        core = part_bbox(units[own_rows(units, p.code)], p)
        cut = cuts[p.code] = make_cut(p.geometry, part_crs(p), 2000.0)
        boxes.append((p, tuple(shapely.bounds(p.geometry)), core, cut.lonlat_bbox, cut.lonlat_mask))
    pop_cols, road_cols = list(TIMES_POP_FIELDS), list(NETWORK_ROAD_FIELDS)

    def units_gpkg(p, ubox):  # as units_of_part reads a GeoPackage
        return read_layer(gws.path, "admin_units", gws.layers(), bbox=ubox,
                          prefix=("adcode", p.code), ancestors=True)  # fmt: skip

    def units_pg(p, ubox):
        return pws.read("admin_units", bbox=ubox, prefix=("adcode", p.code), ancestors=True)

    def units_prev(p, ubox):  # as units_of_part reads a PostGIS workspace before this change
        units = pws.read("admin_units", bbox=ubox)
        return units[related_to(units, "adcode", p.code)].reset_index(drop=True)

    def reading(ws, snapshot, units, by_mask):
        def one(p, ubox, core, rbox, mask):
            with snapshot() as w:
                got = [units(p, ubox)]
                got.append(w.read("population", bbox=core, prefix=("adcode", p.code),
                                  columns=pop_cols))  # fmt: skip
                where = {"mask": mask} if by_mask else {"bbox": rbox}
                got.append(w.read("roads", columns=road_cols, **where))
            return got

        def run():
            for b in boxes:
                one(*b)

        return one, run

    def many(p, ubox, core, rbox, mask):  # the three reads sent together (read_many)
        with pws.snapshot() as w:
            return w.read_many([
                ("admin_units", {"bbox": ubox, "prefix": ("adcode", p.code), "ancestors": True}),
                ("population", {"bbox": core, "prefix": ("adcode", p.code), "columns": pop_cols}),
                ("roads", {"columns": road_cols, "mask": mask})])  # fmt: skip

    def run_many():
        for b in boxes:
            many(*b)

    def part(p, ubox, core, rbox, mask):  # read_part: the own people's box found here
        got = read_part(pws, p, own={"population": pop_cols}, cut=cuts[p.code],
                        in_cut={"roads": road_cols})  # fmt: skip
        return [got.units, got.own["population"], got.cut["roads"]]

    def run_part():
        for b in boxes:
            part(*b)

    sides = {"gpkg": reading(gws, lambda: nullcontext(gws), units_gpkg, True),
             "pg-many": (many, run_many),
             "pg-part": (part, run_part),
             "pg": reading(pws, pws.snapshot, units_pg, True),
             "pg-before": reading(pws, lambda: before_snapshot(pws), units_pg, True),
             "pg-prev": reading(pws, lambda: prev_snapshot(pws), units_prev, False)}  # fmt: skip

    def old():
        from geo_mz.core._postgis_db import pooled_connection

        for p, ubox, core, rbox, _ in boxes:  # one transaction a part, as the snapshot
            with pooled_connection(pws._url) as conn, conn.transaction():
                old_read(pws, conn, "admin_units", bbox=ubox)
                old_read(pws, conn, "population", bbox=core, prefix=("adcode", p.code))
                old_read(pws, conn, "roads", bbox=rbox)

    # The same frames: GeoPackage, PostGIS now and before (its roads by the cut's box: the
    # rows meeting the cut are among them).
    for b in boxes[:4]:
        want = sides["gpkg"][0](*b)
        for side in ("pg", "pg-many", "pg-part", "pg-before", "pg-prev"):
            got = sides[side][0](*b)
            if side == "pg-prev":
                keep = shapely.intersects(b[4], got[2].geometry.values)
                got[2] = got[2][keep].reset_index(drop=True)
            for a, c in zip(want, got, strict=True):
                pd.testing.assert_frame_equal(pd.DataFrame(a.drop(columns="geometry")),
                                              pd.DataFrame(c.drop(columns="geometry")))  # fmt: skip
                assert shapely.to_wkb(a.geometry.values).tolist() == shapely.to_wkb(
                    c.geometry.values).tolist()  # fmt: skip
    rows = [len(pws.read("population", bbox=b[2], prefix=("adcode", b[0].code))) for b in boxes]
    trips = {
        s: round_trips(pws._url, lambda s=s: sides[s][0](*boxes[0]))
        for s in ("pg", "pg-many", "pg-part", "pg-before", "pg-prev")
    }
    print(f"part reads: {len(boxes)} county parts, own people {int(np.mean(rows))} rows a part "
          f"on average; frames of gpkg, pg, pg-many, pg-part, pg-before and pg-prev equal; round "
          f"trips a part: pg {trips['pg']} (the last not waited for), pg-many {trips['pg-many']} "
          f"(the same), pg-part {trips['pg-part']} (the same), pg-before {trips['pg-before']}, "
          f"pg-prev {trips['pg-prev']}")  # fmt: skip
    times = rotated({n: f[1] for n, f in sides.items()} | {"pg-old": old}, reps, warmup)
    report("   a part's three reads", times, len(boxes), "gpkg")


def plans(pws, parts, url: str) -> None:
    from geo_mz.core._postgis_db import pooled_connection
    from geo_mz.core._postgis_read import layer_query

    p = parts[len(parts) // 2]
    box = tuple(shapely.bounds(p.geometry))
    with pooled_connection(url) as conn:
        for schema, indexed in ((pws.schema, True), ("noindex", False)):  # as the read asks
            q, a = layer_query(schema, "population", [("adcode", "text")], srid=4490, bbox=box,
                               prefix=("adcode", "text", p.code), indexed=indexed)  # fmt: skip
            plan = conn.execute(b"EXPLAIN ANALYZE " + q.as_bytes(conn), a).fetchall()
            lines = [r[0].strip() for r in plan
                     if any(w in r[0] for w in ("Scan", "Execution", "Filter"))]  # fmt: skip
            print(f"   plan of part {p.code}'s own people ({schema}): " + " | ".join(lines))


def saves(parts, gpath: Path, url: str, tmp: Path, reps: int, warmup: int) -> None:
    """A coverage part's save: GeoPackage part file vs PostGIS now vs PostGIS the previous way.

    ``pg-prev``: this store's previous save (a pipeline for BEGIN, the deletes, the columns and
    the mark, then psycopg's COPY per layer, then COMMIT: six waits), which the store still
    takes when a value must go the text way; ``pg``: one simple query (three waits). The same
    frames (each part's ``times`` and ``units``), saved under a new run key each round.
    """
    from geo_mz.core.workspace import Workspace
    from geo_mz.scale import store_postgis
    from geo_mz.scale.partition import coverage_part
    from geo_mz.scale.province import job_options
    from geo_mz.scale.store import open_run_store

    gws = Workspace(gpath)
    opts = job_options("coverage", gws, "county")
    opts["roads_bbox"] = gws.extent("roads")
    frames = [(p.code, coverage_part(gws, p, **opts)[0]) for p in parts]
    refs = {"gpkg": str(tmp / "saves.gpkg"), "pg": f"{url}#saves", "pg-prev": f"{url}#saves"}
    one = store_postgis.PostgisRunStore._one_query
    rounds = iter(range(10**6))

    def side(name: str) -> Callable[[], None]:
        def run() -> None:
            store_postgis.PostgisRunStore._one_query = (
                one if name != "pg-prev" else (lambda *a, **k: None)
            )
            key = f"{name}-{next(rounds)}"
            for code, fr in frames:
                open_run_store(refs[name]).save(key, code, fr, {"job": "coverage"})
            store_postgis.PostgisRunStore._one_query = one

        return run

    rows = int(np.mean([sum(len(f) for f in fr.values()) for _, fr in frames]))
    for name in refs:  # the stores and tables made, known to this process
        open_run_store(refs[name]).save("warm", "x", frames[0][1], {"job": "coverage"})
    print(f"saves: {len(frames)} county parts' coverage rows ({rows} rows a part on average)")
    times = rotated({n: side(n) for n in refs}, reps, warmup)
    report("   a part's save", times, len(frames), "gpkg")


def gathers(parts, gpath: Path, pg_ref: str, url: str, tmp: Path, reps: int, warmup: int) -> None:
    from geo_mz.core.workspace import Workspace
    from geo_mz.scale import runner as scale
    from geo_mz.scale.province import job_options
    from geo_mz.scale.store import open_run_store

    opts = job_options("coverage", Workspace(gpath), "county")
    stores = {"gpkg": tmp / "runs.gpkg", "pg": f"{url}#runs_bench"}
    keys = {}
    for side, ws_ref in (("gpkg", str(gpath)), ("pg", pg_ref)):
        r = scale.run_partitioned("coverage", ws_ref, parts, store=stores[side], options=opts,
                                  workers=0, level="county")  # fmt: skip
        assert r.ok, r.failed
        keys[side] = r.run_key
    gs, ps = open_run_store(stores["gpkg"]), open_run_store(stores["pg"])
    gk, pk = keys["gpkg"], keys["pg"]
    t0 = time.perf_counter()
    gs.gather(gk, "units")  # merges the part files into the store's tables
    print(f"gathers: coverage of {len(parts)} parts; GeoPackage store's merge (first gather) "
          f"{time.perf_counter() - t0:.2f} s, not counted below")  # fmt: skip
    for layer in ("units", "times"):
        a, b = gs.gather(gk, layer), ps.gather(pk, layer)
        pd.testing.assert_frame_equal(
            pd.DataFrame(a.drop(columns="geometry", errors="ignore")),
            pd.DataFrame(b.drop(columns="geometry", errors="ignore")),
        )
        c = old_gather(ps, pk, layer)
        pd.testing.assert_frame_equal(pd.DataFrame(b), pd.DataFrame(c))
    codes = [p.code for p in parts]
    for layer in ("units", "times"):
        times = rotated({"gpkg": lambda layer=layer: gs.gather(gk, layer),
                         "pg": lambda layer=layer: ps.gather(pk, layer),
                         "pg-old": lambda layer=layer: old_gather(ps, pk, layer)},
                        reps, warmup)  # fmt: skip
        report(f"   gather('{layer}'), {len(gs.gather(gk, layer))} rows", times, 1, "gpkg")
    times = rotated({"gpkg": lambda: [gs.part_rows(gk, c, "times") for c in codes],
                     "pg": lambda: [ps.part_rows(pk, c, "times") for c in codes],
                     "pg-old": lambda: [old_part_rows(ps, pk, c, "times") for c in codes]},
                    reps, warmup)  # fmt: skip
    report("   part_rows(part, 'times')", times, len(codes), "gpkg")


def province(
    gpath: Path, pg_ref: str, url: str, reps: int, levels: list[str], workers: list[int]
) -> None:
    from geo_mz.core.layer_digest import layer_digests
    from geo_mz.core.workspace import Workspace
    from geo_mz.scale import runner as scale
    from geo_mz.scale.province import job_options
    from geo_mz.scale.store import open_run_store

    gws = Workspace(gpath)
    sides = {"gpkg": str(gpath), "pg": pg_ref}
    digests = {s: layer_digests(ref) for s, ref in sides.items()}
    n = 0
    for w in workers:
        with scale.dask_client(workers=w) as client:
            for level in levels:
                parts = scale.parts_of(gws.read("admin_units"), level)
                opts = job_options("coverage", gws, level)
                out: dict[str, list] = {s: [] for s in sides}
                for rep in range(reps):
                    k = rep % len(sides)
                    order = list(sides)[k:] + list(sides)[:k]
                    for s in order:
                        n += 1
                        store = (
                            gpath.parent / f"prov_{n}.gpkg" if s == "gpkg" else f"{url}#prov_{n}"
                        )
                        t0 = time.perf_counter()
                        r = scale.run_partitioned("coverage", sides[s], parts, store=store,
                                                  options=opts, client=client, level=level,
                                                  digests=digests[s])  # fmt: skip
                        wall = time.perf_counter() - t0
                        assert r.ok, r.failed
                        t1 = time.perf_counter()
                        rs = open_run_store(store)
                        for layer in ("units", "times"):  # the run's outputs read back
                            rs.gather(r.run_key, layer)
                        got = time.perf_counter() - t1
                        sec = r.parts["seconds"].to_numpy(float)
                        out[s].append((wall, float(sec.mean()), wall - float(sec.sum()) / w,
                                       got))  # fmt: skip
                print(f"province: coverage over {len(parts)} {level} parts, LocalCluster of "
                      f"{w} worker(s), {reps} run(s) a side alternating (median); load "
                      f"{_load()}:")  # fmt: skip
                med = {s: [statistics.median(v[i] for v in runs) for i in range(4)]
                       for s, runs in out.items()}  # fmt: skip
                med = {s: [*m, statistics.median(v[0] + v[3] for v in out[s])]
                       for s, m in med.items()}  # fmt: skip
                g = med["gpkg"]
                for s, (wall, mean, outside, got, total) in med.items():
                    print(
                        f"   {s:<5} wall {wall:6.2f} s ({wall / g[0]:.2f}x gpkg), mean part "
                        f"{mean:.3f} s ({mean / g[1]:.2f}x), outside the parts {outside:.2f} s; "
                        f"gathers {got:.2f} s; run + gathers {total:.2f} s ({total / g[4]:.2f}x)"
                    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", type=Path, required=True, help="a province GeoPackage")
    ap.add_argument("--every", type=int, default=6, help="every n-th county part")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--province", action="store_true", help="also the coverage run (1 worker)")
    ap.add_argument("--province-reps", type=int, default=2)
    ap.add_argument("--by", choices=["county", "city", "both"], default="county",
                    help="the province runs' parts")  # fmt: skip
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                    help="the province runs' worker counts")  # fmt: skip
    ap.add_argument("--skip-reads", action="store_true", help="only the province runs")
    args = ap.parse_args()
    import geo_mz

    print(f"bench_postgis_reads: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"geo_mz {getattr(geo_mz, '__version__', '?')}; workspace {args.workspace}; every "
          f"{args.every}th county; {args.warmup} warm-up + {args.reps} reps a side, order "
          f"rotating; load {_load()}")  # fmt: skip
    from geo_mz.core._postgis_db import pooled_connection
    from geo_mz.core.workspace import Workspace
    from geo_mz.core.workspace_postgis import PostgisWorkspace, close_pool
    from geo_mz.scale import runner as scale
    from webmap.testing_postgis import temp_cluster

    with tempfile.TemporaryDirectory(prefix="bench_pg_reads_") as d:
        tmp = Path(d)
        gpath = tmp / "workspace.gpkg"
        shutil.copyfile(args.workspace, gpath)
        gws = Workspace(gpath)
        parts = scale.parts_of(gws.read("admin_units"), "county")[:: args.every]
        with temp_cluster() as url:
            t0 = time.perf_counter()
            pws = PostgisWorkspace.from_workspace(gws, url, schema="bench", replace=True)
            print(f"copied into PostGIS in {time.perf_counter() - t0:.1f} s")
            PostgisWorkspace.from_workspace(gws, url, schema="noindex", replace=True)
            with pooled_connection(url) as conn:
                conn.execute('DROP INDEX noindex."population_adcode"')
            if not args.skip_reads:
                part_reads(parts, gws, pws, args.reps, args.warmup)
                plans(pws, parts, url)
                saves(parts, gpath, url, tmp, args.reps, args.warmup)
                gathers(parts, gpath, f"{url}#bench", url, tmp, args.reps, args.warmup)
            if args.province:
                levels = ["county", "city"] if args.by == "both" else [args.by]
                province(gpath, f"{url}#bench", url, args.province_reps, levels, args.workers)
            close_pool()
    print(f"load at the end {_load()}")


if __name__ == "__main__":
    main()

"""A geo_mz workspace in PostGIS: the same interface as the GeoPackage :class:`Workspace`.

Several people and processes can share one workspace in a PostgreSQL database. A workspace is
one schema (``geo_mz_ws`` unless told otherwise) holding:

- ``geo_mz_workspace (key text PRIMARY KEY, value text)``: the metadata, the same keys and text
  values as the GeoPackage's table (``bounds`` is JSON text).
- ``geo_mz_layers``: one row per stored layer, the GeoPackage table's columns (``rows`` as
  ``bigint``, ``synthetic`` as ``boolean``, the rest text).
- one table per layer, named as the layer: ``fid bigint PRIMARY KEY`` (row order: reads return
  rows in the order they were written), one typed column per attribute (string→``text``,
  integer→``bigint``, float→``double precision``, boolean→``boolean``, date→``date``,
  datetime→``timestamp``; extra attributes typed from their dtype) and
  ``geom geometry(Point|LineString|MultiPolygon, <srid>)`` with a GiST index; a layer with an
  ``adcode`` text column also has a B-tree index on it in byte order (``COLLATE "C"``): a
  part's own rows (``read(prefix=...)``) are one range of it. A workspace written before
  that index reads the same rows without it.

Writes are one transaction each (all layers or none). Writers of one workspace take an
exclusive advisory lock; readers take it shared, so a read never sees half a write and a
multi-layer read (:meth:`PostgisWorkspace.read_all`) comes from one snapshot.

Rows are written with binary ``COPY`` (floats bit-exact, infinities kept; NaN, pandas' missing
value, is stored as NULL, as SQLite does) and geometries as EWKB. psycopg 3 is imported only when
a PostGIS workspace is used (``pip install 'geo_mz[postgis]'``).

URLs: ``postgresql://user:password@host:port/dbname`` plus libpq query parameters. The schema
may be given as the URL's fragment, ``postgresql://host/db#my_schema`` (see
:func:`split_workspace_url`); passwords are never shown in messages (:func:`redact_url`).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely

from geo_mz.core._postgis_db import (
    POOL_SIZE,
    clean_error,
    close_pool,
    connect_schema,
    database_error,
    end_later,
    pooled_connection,
    psycopg_module,
    redact_url,
    split_workspace_url,
    sql_module,
)
from geo_mz.core._postgis_read import (
    LayerRead,
    fetch_in_turn,
    fetch_reads,
    gc_paused,
    plan_read,
)
from geo_mz.core._postgis_read import geometries as wkb_geometries
from geo_mz.core._postgis_tables import (
    LOCK_CLASS,
    PG_TYPES,
    Catalog,
    LayerTarget,
    catalog_of,
    catalog_prepared,
    catalog_statement,
    init_schema,
    read_catalog,
    storage_srid,
)
from geo_mz.core.errors import WorkspaceError
from geo_mz.core.projection import STORAGE_CRS
from geo_mz.core.workspace import Workspace
from geo_mz.core.workspace_common import (
    LAYER_COLUMNS,
    LAYERS_TABLE,
    META_TABLE,
    layer_record,
    new_metadata,
    no_field_error,
    no_layer_error,
    value_counts_of,
)

DEFAULT_SCHEMA = "geo_mz_ws"


# -- the workspace ---------------------------------------------------------------------------------
class PostgisWorkspace:
    """A jurisdiction's layers in a PostGIS schema; the interface of :class:`Workspace`.

    Open an existing workspace with ``PostgisWorkspace(url)``; make one with :meth:`create` or
    copy a GeoPackage workspace with :meth:`from_workspace`.

    Parameters
    ----------
    url
        ``postgresql://user:password@host:port/dbname``; a ``#schema`` fragment names the
        schema when ``schema`` is not given.
    schema
        The workspace's schema; ``geo_mz_ws`` when neither this nor the fragment says.

    Raises
    ------
    WorkspaceError
        If the server cannot be reached, the schema does not exist or is not a geo_mz workspace,
        or psycopg is not installed. The message names the URL (password hidden) and schema.
    """

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        self._url, fragment = split_workspace_url(str(url))
        self.schema = schema or fragment or DEFAULT_SCHEMA
        self.url = redact_url(self._url)
        self.path = f"{self.url}#{self.schema}"
        self._snapshots: dict[int, tuple[Any, dict]] = {}  # per thread: its open transaction
        with self._connect() as conn:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s), "
                "to_regclass(%s) IS NOT NULL",
                (self.schema, self._qualified(META_TABLE, conn)),
            ).fetchone()
        if not row[0]:
            raise WorkspaceError(
                f"{self.url}: 数据库中没有模式 '{self.schema}'（请先创建工作空间）/ no schema "
                f"'{self.schema}' (create the workspace with PostgisWorkspace.create or "
                "from_workspace)"
            )
        if not row[1]:
            raise WorkspaceError(
                f"{self.url}: 模式 '{self.schema}' 不是 geo_mz 工作空间（没有 {META_TABLE} 表）/ "
                f"schema '{self.schema}' is not a geo_mz workspace (no {META_TABLE} table)"
            )

    def __repr__(self) -> str:
        return f"PostgisWorkspace({self.url!r}, schema={self.schema!r})"

    # -- connections -------------------------------------------------------------------------
    def _qualified(self, table: str, conn: Any) -> str:
        return sql_module().Identifier(self.schema, table).as_string(conn)

    def _table(self, table: str) -> Any:
        return sql_module().Identifier(self.schema, table)

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        """Yield an autocommit connection of this process's pool; errors become WorkspaceError."""
        psycopg = psycopg_module()
        entered = False
        try:
            with pooled_connection(self._url) as conn:
                entered = True
                yield conn
        except (psycopg.Error, ValueError) as exc:
            if not entered:
                raise database_error(self._url, exc, schema=self.schema, connecting=True) from exc
            if not isinstance(exc, psycopg.Error):
                raise
            raise database_error(self._url, exc, schema=self.schema) from exc

    def _snapshot_state(self) -> tuple[Any, dict] | None:
        """Return (connection, memo) of this thread's open transaction, or None."""
        return self._snapshots.get(threading.get_ident())

    @contextmanager
    def _reading(self, *, catalog: bool = False) -> Iterator[Any]:
        """Yield a read-only repeatable-read transaction no writer of this workspace overlaps.

        Inside :meth:`snapshot`, the snapshot's transaction (no new lock or transaction).
        With ``catalog``, the catalog (:func:`read_catalog`) is read in the same round trip
        as the lock and the transaction's start, and kept while the transaction lasts.
        """
        state = self._snapshot_state()
        if state is not None:
            yield state[0]
            return
        sql = sql_module()
        lock = (sql.Literal(LOCK_CLASS), sql.Literal(self.schema))
        # The shared lock is the session's: taken before the transaction, so the snapshot
        # (taken by the transaction's first query) is after any writer has committed: a
        # writer replaces a layer's table, and a snapshot older than the new table's would
        # see it empty. Given back before the connection returns to the pool; a failure
        # closes the connection instead, which frees it. The lock, the transaction's start
        # and the catalog are one simple query (one round trip): its COMMIT ends the
        # implicit transaction the lock was taken in, before the BEGIN.
        start = sql.SQL(
            "SELECT pg_advisory_lock_shared({}, hashtext({})); COMMIT; "
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        ).format(*lock)
        with self._connect() as conn:
            memo: dict[str, Any] = {}
            if catalog:
                memo["catalog"] = self._begin_with_catalog(conn, start, lock)
            else:
                conn.execute(start)
            ident = threading.get_ident()
            self._snapshots[ident] = (conn, memo)
            try:
                yield conn
            finally:
                del self._snapshots[ident]
            # Reached only when the block ended cleanly (an error closes the connection). Sent,
            # not waited for: the pool reads its results before it hands the connection out.
            end = sql.SQL("COMMIT; SELECT pg_advisory_unlock_shared({}, hashtext({}))")
            end_later(conn, end.format(*lock).as_bytes(conn))

    def _begin_with_catalog(self, conn: Any, start: Any, lock: tuple[Any, Any]) -> Catalog:
        """Run ``start`` and the catalog query (a prepared statement of ``conn``) as one query.

        A connection forgets its prepared statements if psycopg deallocates its own (after a
        ``ROLLBACK``, ``DROP`` or ``ALTER`` on it): the start then fails at the ``EXECUTE``,
        after the lock and ``BEGIN``; both are undone and it runs again with the ``PREPARE``.
        """
        sql = sql_module()
        errors = psycopg_module().errors
        for retry in (False, True):
            prepare, execute = catalog_statement(conn, self.schema, again=retry)
            query = start + sql.SQL("; ") + execute
            if prepare is not None:
                query = prepare + sql.SQL("; ") + query
            try:
                cur = conn.execute(query)
            except errors.InvalidSqlStatementName:
                if retry:
                    raise
                conn.execute(
                    sql.SQL("ROLLBACK; SELECT pg_advisory_unlock_shared({}, hashtext({}))").format(
                        *lock
                    )
                )
                continue
            # PREPARE, the lock's row, COMMIT, BEGIN, then the catalog's rows
            for _ in range(3 if prepare is None else 4):
                cur.nextset()
            found = catalog_of(cur.fetchall())
            if prepare is not None:
                catalog_prepared(conn, self.schema)
            return found
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def snapshot(self) -> Iterator[PostgisWorkspace]:
        """Read several layers from one snapshot, on one connection, under one shared lock.

        ``with ws.snapshot(): ws.read(...); ws.read(...)``: every read inside sees the same
        data (no writer's commit in between) and costs no new connection, transaction or
        lock; a partitioned run reads each part's inputs so. Writers wait until it ends.
        Each thread has its own snapshot. The lock, the transaction's start and the
        catalog (layer names, columns, storage CRS: no writer can change them meanwhile) are
        one round trip; the end and the lock's release another.
        """
        with self._reading(catalog=True):
            yield self

    # -- creation ----------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        url: str,
        *,
        schema: str | None = None,
        name: str,
        adcode: str,
        bounds: tuple[float, float, float, float],
        measure_crs: str | None = None,
        storage_crs: str = STORAGE_CRS,
        replace: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> PostgisWorkspace:
        """Create an empty workspace (see :meth:`Workspace.create` for the metadata).

        Parameters
        ----------
        url, schema
            Database and schema (as in the constructor). The schema must not exist.
        name, adcode, bounds, measure_crs, storage_crs, extra
            As for :meth:`Workspace.create`.
        replace
            Drop an existing geo_mz workspace in that schema first (a schema holding anything
            else is never dropped).
        """
        conn_url, fragment = split_workspace_url(str(url))
        schema = schema or fragment or DEFAULT_SCHEMA
        meta = new_metadata(
            name=name,
            adcode=adcode,
            bounds=bounds,
            measure_crs=measure_crs,
            storage_crs=storage_crs,
            extra=extra,
        )
        with connect_schema(conn_url, schema) as conn, conn.transaction():
            init_schema(conn, conn_url, schema, meta, replace=replace)
        return cls(conn_url, schema=schema)

    @classmethod
    def from_workspace(
        cls,
        ws: Any,
        url: str,
        *,
        schema: str | None = None,
        replace: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> PostgisWorkspace:
        """Copy a workspace (metadata, layer records and every layer) in one transaction.

        Parameters
        ----------
        ws
            A :class:`Workspace` (or another :class:`PostgisWorkspace`).
        url, schema
            Target database and schema (``geo_mz_ws`` by default).
        replace
            Drop an existing geo_mz workspace in that schema (in the same transaction).
        progress
            Called with a line per step.
        """
        say = progress or (lambda _msg: None)
        conn_url, fragment = split_workspace_url(str(url))
        schema = schema or fragment or DEFAULT_SCHEMA
        meta = dict(ws.metadata)
        meta["bounds"] = json.dumps([float(b) for b in meta["bounds"]])
        records = ws.layer_records()
        srid = storage_srid(meta["storage_crs"])
        with connect_schema(conn_url, schema) as conn, conn.transaction():
            init_schema(conn, conn_url, schema, meta, replace=replace)
            target = LayerTarget(conn, conn_url, schema, srid)
            for rec in records.to_dict("records"):
                kind = str(rec["layer"])
                gdf = ws.read(kind)
                say(f"{kind}: {len(gdf)} rows")
                target.write_layer(kind, gdf)
                target.record({c: rec[c] for c in LAYER_COLUMNS})
        say(f"copied {len(records)} layers to {redact_url(conn_url)}#{schema}")
        return cls(conn_url, schema=schema)

    # -- reading -----------------------------------------------------------------------------
    @property
    def metadata(self) -> dict[str, Any]:
        """Workspace metadata (name, adcode, CRSs, bounds, ...)."""
        with self._connect() as conn:
            rows = conn.execute(
                sql_module()
                .SQL('SELECT key, value FROM {} ORDER BY key COLLATE "C"')
                .format(self._table(META_TABLE))
            ).fetchall()
        meta: dict[str, Any] = {str(k): str(v) for k, v in rows}
        meta["bounds"] = tuple(json.loads(meta["bounds"]))
        return meta

    bounds = Workspace.bounds

    def _records(self, conn: Any) -> pd.DataFrame:
        cols = sql_module().SQL(", ").join(sql_module().Identifier(c) for c in LAYER_COLUMNS)
        rows = conn.execute(
            sql_module()
            .SQL('SELECT {} FROM {} ORDER BY layer COLLATE "C"')
            .format(cols, self._table(LAYERS_TABLE))
        ).fetchall()
        if not rows:
            return pd.DataFrame({c: pd.Series([], dtype=object) for c in LAYER_COLUMNS})
        data: dict[str, pd.Series] = {}
        for i, c in enumerate(LAYER_COLUMNS):
            values = [r[i] for r in rows]
            if c == "rows":
                data[c] = pd.Series(values, dtype="int64")
            elif c == "synthetic":
                data[c] = pd.Series(values, dtype=bool)
            else:
                data[c] = pd.Series(["" if v is None else v for v in values], dtype="str")
        return pd.DataFrame(data)

    def _catalog(self, conn: Any) -> Catalog:
        # What a read checks its layer against and builds its query from (names, storage CRS,
        # the tables' columns): one query, kept for the transaction (a part reads four layers).
        state = self._snapshot_state()
        if state is None or state[0] is not conn:
            return read_catalog(conn, self.schema)
        if "catalog" not in state[1]:
            state[1]["catalog"] = read_catalog(conn, self.schema)
        return state[1]["catalog"]

    def _layer_names(self, conn: Any) -> list[str]:
        return list(self._catalog(conn)[0])

    def layer_stamp(self, kind: str) -> str | None:
        """Return a text that changes whenever geo_mz writes the layer (None if not stored).

        The row version of the layer's record (every write replaces the record in the write's
        own transaction) and the layer table's oid: a worker that keeps a layer every part
        reads (the sources of a partitioned run) reads it again only when this changes, as it
        does with a GeoPackage file's time and size. Writes that bypass geo_mz (SQL on the
        table itself) do not change it. Read in the current snapshot, if any.

        Parameters
        ----------
        kind
            Catalog layer name.

        Returns
        -------
        str or None
            The stamp, or None when the layer is not stored.
        """
        with self._reading() as conn:
            row = conn.execute(
                sql_module()
                .SQL("SELECT xmin::text || ':' || coalesce(to_regclass(%s)::oid::text, '') "
                     "FROM {} WHERE layer = %s")
                .format(self._table(LAYERS_TABLE)),
                (self._qualified(kind, conn), kind),
            ).fetchone()  # fmt: skip
        return None if row is None else str(row[0])

    def layer_records(self) -> pd.DataFrame:
        """Return the ``geo_mz_layers`` table: one row per stored layer with its provenance."""
        with self._connect() as conn:
            return self._records(conn)

    def layers(self) -> list[str]:
        """Names of the catalog layers stored in this workspace.

        Inside this thread's :meth:`snapshot`, the snapshot's (its catalog: no query, and
        the names its reads see).
        """
        state = self._snapshot_state()
        if state is not None:
            return list(self._layer_names(state[0]))
        return [str(x) for x in self.layer_records()["layer"].tolist()]

    def count(self, kind: str) -> int:
        """Rows of a layer as stored now (counted, not taken from its layer record)."""
        if kind not in self.layers():
            raise no_layer_error(str(self), kind, self.layers())
        with self._reading() as conn:
            q = sql_module().SQL("SELECT count(*) FROM {}").format(self._table(kind))
            return int(conn.execute(q).fetchone()[0])

    def value_counts(self, kind: str, field: str) -> pd.Series:
        """Rows per value of one field of a layer, counted by the server (no geometry sent).

        As :meth:`geo_mz.core.Workspace.value_counts`: rows per value (as text),
        ``attrs["missing"]`` the rows without a value.
        """
        if kind not in self.layers():
            raise no_layer_error(str(self), kind, self.layers())
        sql = sql_module()
        with self._reading(catalog=True) as conn:
            names = [name for name, _ in self._catalog(conn).tables.get(kind, [])]
            if field not in names:
                raise no_field_error(str(self), kind, field, names)
            q = sql.SQL("SELECT {}::text, count(*) FROM {} GROUP BY 1").format(
                sql.Identifier(field), self._table(kind)
            )
            rows = conn.execute(q).fetchall()
        return value_counts_of(rows)

    def _plan(self, conn: Any, kind: str, names: list[str], *args: Any, **opts: Any) -> LayerRead:
        """Check one read and plan it (:func:`~geo_mz.core._postgis_read.plan_read`)."""
        return plan_read(self._catalog(conn), self.schema, self.path, kind, names, *args, **opts)

    def read(
        self,
        kind: str,
        *,
        bbox: tuple[float, float, float, float] | None = None,
        prefix: tuple[str, str] | None = None,
        columns: list[str] | None = None,
        ancestors: bool = False,
        mask: shapely.Geometry | None = None,
    ) -> gpd.GeoDataFrame:
        """Read one layer, typed as its spec says (as :meth:`Workspace.read`).

        Parameters
        ----------
        kind
            Catalog layer name.
        bbox
            Optional lon/lat filter ``(minx, miny, maxx, maxy)``: the features whose geometry
            intersects the box (its edges included), found with the GiST index; the rows the
            GeoPackage's ``read(bbox=...)`` returns for the same data.
        prefix
            Optional ``(field, code)``: only the rows whose ``field`` (as text) starts with
            ``code``, left out in the database (a part's own people of a box that holds its
            neighbours' too; one range of the ``adcode`` index); as the GeoPackage's
            ``read(prefix=...)``.
        columns
            Optional: read only these fields (those the layer has, and the ``prefix`` field)
            besides the geometry, in the layer's order; as the GeoPackage's
            ``read(columns=...)``.
        ancestors
            With ``prefix``: also the rows whose ``field`` is a proper prefix of ``code`` (a
            part's own units and their ancestors, for their names): the rows
            ``geo_mz.core.workspace_read.related_to`` keeps, found with the ``adcode``
            index, as the GeoPackage reader's ``ancestors`` does.
        mask
            Optional lon/lat polygon, instead of ``bbox``: only the rows whose geometry
            intersects it (a part's cut, ``Cut.lonlat_mask``), as the GeoPackage's
            ``read(mask=...)``: the GiST index is asked for the polygon's strips
            (``geo_mz.core.gpkg_read.mask_strips``), not its whole box, and the rows
            found are tested against the polygon here (GEOS).
        """
        if callable(bbox):
            raise WorkspaceError(
                "bbox 为函数时请用 read_many / a function as bbox is for read_many"
            )
        with self._reading(catalog=True) as conn:
            names = self._layer_names(conn)
            plan = self._plan(conn, kind, names, bbox, prefix, columns, ancestors, mask)
            return fetch_reads(conn, [plan])[0]

    def read_many(self, reads: Sequence[tuple[str, Mapping[str, Any]]]) -> list[gpd.GeoDataFrame]:
        """Read several layers from one snapshot, the queries sent together (one round trip).

        A part's inputs (its units, its own people, the roads round it) cost one wait for the
        server, not one each. Any read's error (an unknown layer or field, ``bbox`` with
        ``mask``) is raised before anything is sent.

        A read's ``bbox`` may be a function that returns the box from the frames (a list) of
        the reads before it whose box is not a function (a part's own people in the box of
        its own units). With a ``prefix`` on a field the workspace's code index holds
        (``adcode``) the read goes with the others: the database gives the prefix's rows and
        the box is tested here, the rows :meth:`read` gives with that box. Else it is sent
        with its box once the others are read (a round trip more, for all such reads).

        Parameters
        ----------
        reads
            ``(kind, options)`` pairs; ``options`` are :meth:`read`'s keywords.

        Returns
        -------
        list of geopandas.GeoDataFrame
            What :meth:`read` returns for each, in order.
        """
        reads = [(kind, dict(opts)) for kind, opts in reads]
        with self._reading(catalog=True) as conn:
            names = self._layer_names(conn)
            plans = [self._plan(conn, kind, names, **opts) for kind, opts in reads]

            def replan(i: int, box: tuple[float, float, float, float]) -> LayerRead:
                return self._plan(conn, reads[i][0], names, **(reads[i][1] | {"bbox": box}))

            return fetch_in_turn(conn, plans, replan)

    def read_all(self) -> dict[str, gpd.GeoDataFrame]:
        """All stored layers by name, read from one snapshot."""
        with self._reading(catalog=True) as conn:
            names = self._layer_names(conn)
            frames = fetch_reads(conn, [self._plan(conn, k, names) for k in names])
            return dict(zip(names, frames, strict=True))

    def extent(self, kind: str) -> tuple[float, float, float, float]:
        """Lon/lat ``(minx, miny, maxx, maxy)`` of a layer's features (``ST_Extent``).

        NaNs when the layer has no features; WorkspaceError for a layer not stored.
        """
        sql = sql_module()
        with self._reading(catalog=True) as conn:
            names = self._layer_names(conn)
            if kind not in names:
                raise no_layer_error(self.path, kind, names)
            row = conn.execute(
                sql.SQL(
                    "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
                    "FROM (SELECT ST_Extent(geom) AS e FROM {}) AS x"
                ).format(self._table(kind))
            ).fetchone()
        if row[0] is None:
            return (math.nan, math.nan, math.nan, math.nan)
        return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))

    # These use only the methods above and _commit, so both backends share them.
    info = Workspace.info
    check = Workspace.check
    write_layers = Workspace.write_layers
    import_file = Workspace.import_file

    # -- writing -----------------------------------------------------------------------------
    def _commit(self, items: Mapping[str, tuple[gpd.GeoDataFrame, Mapping[str, Any]]]) -> None:
        """Write checked layers and their records in one transaction, or change nothing."""
        storage_crs = self.metadata["storage_crs"]
        with self._connect() as conn:
            try:
                with conn.transaction():
                    conn.execute(
                        "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                        (LOCK_CLASS, self.schema),
                    )
                    target = LayerTarget(conn, self._url, self.schema, storage_srid(storage_crs))
                    for kind, (gdf, prov) in items.items():
                        target.write_layer(kind, gdf)
                        target.record(layer_record(kind, len(gdf), prov))
            except psycopg_module().Error as exc:
                raise WorkspaceError(
                    f"{self.path}: 写入失败，工作空间未改变 / the write failed "
                    f"({clean_error(exc, self._url)}); the workspace is unchanged"
                ) from exc


__all__ = [
    "DEFAULT_SCHEMA",
    "PG_TYPES",
    "POOL_SIZE",
    "PostgisWorkspace",
    "clean_error",
    "close_pool",
    "database_error",
    "gc_paused",
    "pooled_connection",
    "redact_url",
    "split_workspace_url",
    "wkb_geometries",
]

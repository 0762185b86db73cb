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
  ``geom geometry(Point|LineString|MultiPolygon, <srid>)`` with a GiST index.

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

import atexit
import datetime as dt
import json
import math
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.core.catalog import LayerSpec, get_spec
from geo_mz.core.errors import WorkspaceError
from geo_mz.core.projection import STORAGE_CRS
from geo_mz.core.workspace import (
    GPKG_GEOMETRY,
    LAYER_COLUMNS,
    LAYERS_TABLE,
    META_TABLE,
    Workspace,
    conform_types,
    new_metadata,
    now_iso,
)

DEFAULT_SCHEMA = "geo_mz_ws"
PG_TYPES = {
    "string": "text",
    "integer": "bigint",
    "float": "double precision",
    "boolean": "boolean",
    "date": "date",
    "datetime": "timestamp",
}
"""Column type of each spec field type."""
_COPY_TYPES = {
    "text": "text",
    "bigint": "int8",
    "double precision": "float8",
    "boolean": "bool",
    "date": "date",
    "timestamp": "timestamp",
}
_LOCK_CLASS = 0x676D7A  # advisory lock space of geo_mz workspaces ("gmz"); key 2 = the schema
CONNECT_TIMEOUT = 10
"""Seconds to wait for the server when the URL does not say (``connect_timeout``)."""


# -- URLs ----------------------------------------------------------------------------------------
def split_workspace_url(url: str) -> tuple[str, str | None]:
    """Split ``postgresql://...#schema`` into the connection URL and the schema (None if absent).

    The fragment is the only place a schema is taken from; libpq never sees it.
    """
    parts = urlsplit(url)
    schema = unquote(parts.fragment) or None
    return urlunsplit(parts._replace(fragment="")), schema


def redact_url(url: str) -> str:
    """Return ``url`` with its password (in the user part or a ``password=`` parameter) hidden."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, hostinfo = netloc.rsplit("@", 1)
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:***@{hostinfo}" if ":" in userinfo else f"{user}@{hostinfo}"
        query = urlencode(
            [
                (k, "***" if k.lower() == "password" else v)
                for k, v in parse_qsl(parts.query, keep_blank_values=True)
            ],
            safe="*",
        )
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:
        return "<unparseable database URL>"


def _password(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    pw = parts.password
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k.lower() == "password":
            pw = v
    return unquote(pw) if pw else None


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise WorkspaceError(
            "PostGIS 工作空间需要 psycopg 3，请安装：pip install 'geo-mz[postgis]' / "
            "PostGIS workspaces need psycopg 3: pip install 'geo-mz[postgis]' "
            "(or 'psycopg[binary]>=3.1')"
        ) from exc
    return psycopg


def _sql() -> Any:
    from psycopg import sql

    return sql


# -- values ----------------------------------------------------------------------------------------
def _srid(storage_crs: str) -> int:
    return int(str(storage_crs).split(":")[-1])


def _column_type(name: str, series: pd.Series, spec: LayerSpec) -> str:
    """PostgreSQL type of a layer column: from the spec, else from the dtype (extras)."""
    if name in spec.field_names:
        return PG_TYPES[spec.field(name).type]
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "bigint"
    if pd.api.types.is_float_dtype(dtype):
        return "double precision"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "timestamp"
    return "text"


def _missing(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, float) and math.isnan(v)


def _copy_values(series: pd.Series, pg_type: str) -> list[Any]:
    """Python values for binary COPY of one column (None for missing)."""
    if pg_type == "timestamp":
        s = pd.to_datetime(series)
        if getattr(s.dt, "tz", None) is not None:
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        return [None if pd.isna(v) else v.to_pydatetime() for v in s.tolist()]
    out: list[Any] = []
    for v in series.tolist():
        if _missing(v):
            out.append(None)
        elif pg_type == "text":
            out.append(str(v))
        elif pg_type == "bigint":
            out.append(int(v))
        elif pg_type == "double precision":
            out.append(float(v))
        elif pg_type == "boolean":
            out.append(bool(v))
        elif pg_type == "date":
            if isinstance(v, str):
                out.append(dt.date.fromisoformat(v[:10]))
            elif isinstance(v, dt.datetime):
                out.append(v.date())
            else:
                out.append(v)
        else:  # pragma: no cover - every type is handled above
            raise WorkspaceError(f"no COPY conversion for {pg_type}")
    return out


def _read_values(values: list[Any], pg_type: str, is_field: bool) -> pd.Series:
    """Type a column read from the database as the GeoPackage reader gives it."""
    if pg_type == "date":
        return pd.Series([None if v is None else v.isoformat() for v in values], dtype=object)
    if is_field or not values:
        return pd.Series(values, dtype=object)
    # extras: the dtypes pyogrio gives the same columns read from a GeoPackage
    has_null = any(v is None for v in values)
    if pg_type == "bigint":
        return pd.Series(values, dtype="float64" if has_null else "int64")
    if pg_type == "double precision":
        return pd.Series([np.nan if v is None else v for v in values], dtype="float64")
    if pg_type == "boolean":
        return pd.Series(values, dtype=object if has_null else bool)
    if pg_type == "timestamp":
        return pd.Series(pd.to_datetime(pd.Series(values, dtype=object))).astype("datetime64[ms]")
    return pd.Series(values, dtype="str")


def _geometries(gdf: gpd.GeoDataFrame, spec: LayerSpec, srid: int) -> list[bytes | None]:
    """EWKB (with SRID) of the layer's geometries; polygons promoted to multipolygons."""
    geoms = np.asarray(gdf.geometry.values, dtype=object).copy()
    if spec.geometry == "Polygon":
        for i, g in enumerate(geoms):
            if g is not None and g.geom_type == "Polygon":
                geoms[i] = shapely.MultiPolygon([g])
    geoms = shapely.set_srid(geoms, srid)
    wkb = shapely.to_wkb(geoms, include_srid=True, output_dimension=2)
    return [None if w is None else bytes(w) for w in wkb]


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
        return _sql().Identifier(self.schema, table).as_string(conn)

    def _table(self, table: str) -> Any:
        return _sql().Identifier(self.schema, table)

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        """Yield an autocommit connection of this process's pool; errors become WorkspaceError."""
        psycopg = _psycopg()
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

    @contextmanager
    def _reading(self) -> Iterator[Any]:
        """Yield a read-only repeatable-read transaction no writer of this workspace overlaps.

        Inside :meth:`snapshot`, the snapshot's transaction (no new lock or transaction).
        """
        snap = getattr(self, "_snapshot_conn", None)
        if snap is not None and snap[0] == threading.get_ident():
            yield snap[1]
            return
        psycopg = _psycopg()
        with self._connect() as conn:
            # The shared lock is the session's: taken before the transaction (so the snapshot
            # is taken after any writer has committed), given back before the connection
            # returns to the pool. A failure closes the connection instead, which frees it.
            conn.execute(
                "SELECT pg_advisory_lock_shared(%s, hashtext(%s))", (_LOCK_CLASS, self.schema)
            )
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            try:
                with conn.transaction():
                    yield conn
            finally:
                # Back to the defaults for the pool's next user; a broken connection is
                # closed by the pool whatever these do.
                with suppress(psycopg.Error):
                    conn.isolation_level = None
                    conn.read_only = None
            conn.execute(
                "SELECT pg_advisory_unlock_shared(%s, hashtext(%s))", (_LOCK_CLASS, self.schema)
            )

    @contextmanager
    def snapshot(self) -> Iterator[PostgisWorkspace]:
        """Read several layers from one snapshot, on one connection, under one shared lock.

        ``with ws.snapshot(): ws.read(...); ws.read(...)``: every read inside sees the same
        data (no writer's commit in between) and costs no new connection, transaction or
        lock; a partitioned run reads each part's inputs so. Writers wait until it ends.
        """
        snap = getattr(self, "_snapshot_conn", None)
        if snap is not None and snap[0] == threading.get_ident():
            yield self
            return
        with self._reading() as conn:
            self._snapshot_conn = (threading.get_ident(), conn)
            try:
                yield self
            finally:
                self._snapshot_conn = None

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
        with _connect(conn_url, schema) as conn, conn.transaction():
            _init_schema(conn, conn_url, schema, meta, replace=replace)
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
        srid = _srid(meta["storage_crs"])
        with _connect(conn_url, schema) as conn, conn.transaction():
            _init_schema(conn, conn_url, schema, meta, replace=replace)
            target = _Target(conn, conn_url, schema, srid)
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
                _sql()
                .SQL('SELECT key, value FROM {} ORDER BY key COLLATE "C"')
                .format(self._table(META_TABLE))
            ).fetchall()
        meta: dict[str, Any] = {str(k): str(v) for k, v in rows}
        meta["bounds"] = tuple(json.loads(meta["bounds"]))
        return meta

    bounds = Workspace.bounds

    def _records(self, conn: Any) -> pd.DataFrame:
        cols = _sql().SQL(", ").join(_sql().Identifier(c) for c in LAYER_COLUMNS)
        rows = conn.execute(
            _sql()
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

    def layer_records(self) -> pd.DataFrame:
        """Return the ``geo_mz_layers`` table: one row per stored layer with its provenance."""
        with self._connect() as conn:
            return self._records(conn)

    def layers(self) -> list[str]:
        """Names of the catalog layers stored in this workspace."""
        return [str(x) for x in self.layer_records()["layer"].tolist()]

    def count(self, kind: str) -> int:
        """Rows of a layer as stored now (counted, not taken from its layer record)."""
        if kind not in self.layers():
            raise _no_layer(str(self), kind, self.layers())
        with self._reading() as conn:
            q = _sql().SQL("SELECT count(*) FROM {}").format(self._table(kind))
            return int(conn.execute(q).fetchone()[0])

    def _read(
        self,
        conn: Any,
        kind: str,
        names: list[str],
        bbox: tuple[float, float, float, float] | None = None,
    ) -> gpd.GeoDataFrame:
        sql = _sql()
        if kind not in names:
            raise _no_layer(self.path, kind, names)
        spec = get_spec(kind)
        columns = [
            (n, t) for n, t in _table_columns(conn, self.schema, kind) if n not in ("fid", "geom")
        ]
        meta = conn.execute(
            sql.SQL("SELECT value FROM {} WHERE key = 'storage_crs'").format(
                self._table(META_TABLE)
            )
        ).fetchone()
        storage_crs = str(meta[0])
        select = [sql.Identifier(n) for n, _ in columns] + [sql.SQL("ST_AsBinary(geom)")]
        query = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(select), self._table(kind))
        params: tuple[Any, ...] = ()
        if bbox is not None:
            minx, miny, maxx, maxy = (float(b) for b in bbox)
            env = sql.SQL("ST_MakeEnvelope(%s, %s, %s, %s, {})").format(
                sql.Literal(_srid(storage_crs))
            )
            # pyogrio's bbox on a GeoPackage: candidates from the R-tree, then GEOS intersects
            query += sql.SQL(" WHERE geom && {e} AND ST_Intersects(geom, {e})").format(e=env)
            params = (minx, miny, maxx, maxy) * 2
        query += sql.SQL(" ORDER BY fid")
        with conn.cursor(binary=True) as cur:
            cur.execute(query, params)
            rows = cur.fetchall()
        data = {
            n: _read_values([r[i] for r in rows], t, n in spec.field_names)
            for i, (n, t) in enumerate(columns)
        }
        wkb = [None if r[-1] is None else bytes(r[-1]) for r in rows]
        geoms = shapely.from_wkb(wkb) if rows else np.array([], dtype=object)
        gdf = gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms), crs=storage_crs)
        return conform_types(gdf, spec)

    def read(
        self, kind: str, *, bbox: tuple[float, float, float, float] | None = None
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
        """
        with self._reading() as conn:
            return self._read(conn, kind, list(self._records(conn)["layer"]), bbox)

    def read_all(self) -> dict[str, gpd.GeoDataFrame]:
        """All stored layers by name, read from one snapshot."""
        with self._reading() as conn:
            names = [str(n) for n in self._records(conn)["layer"]]
            return {k: self._read(conn, k, names) for k in names}

    def extent(self, kind: str) -> tuple[float, float, float, float]:
        """Lon/lat ``(minx, miny, maxx, maxy)`` of a layer's features (``ST_Extent``).

        NaNs when the layer has no features; WorkspaceError for a layer not stored.
        """
        sql = _sql()
        with self._reading() as conn:
            names = [str(n) for n in self._records(conn)["layer"]]
            if kind not in names:
                raise _no_layer(self.path, kind, names)
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
                        (_LOCK_CLASS, self.schema),
                    )
                    target = _Target(conn, self._url, self.schema, _srid(storage_crs))
                    for kind, (gdf, prov) in items.items():
                        spec = get_spec(kind)
                        target.write_layer(kind, gdf)
                        target.record(
                            {
                                "layer": kind,
                                "spec_version": str(spec.version),
                                "rows": len(gdf),
                                "synthetic": bool(prov.get("synthetic")),
                                "source": str(prov.get("source", "")),
                                "method": str(prov.get("method", "")),
                                "source_crs": str(prov.get("source_crs", "")),
                                "sha256": str(prov.get("sha256", "")),
                                "imported_at": now_iso(),
                            }
                        )
            except _psycopg().Error as exc:
                raise WorkspaceError(
                    f"{self.path}: 写入失败，工作空间未改变 / the write failed "
                    f"({clean_error(exc, self._url)}); the workspace is unchanged"
                ) from exc


def clean_error(exc: BaseException, url: str) -> str:
    """Return a one-line message of a database error with any password from ``url`` hidden."""
    msg = " ".join(str(exc).split())
    pw = _password(url)
    if pw:
        msg = msg.replace(pw, "***")
    return msg


def database_error(
    url: str, exc: BaseException, *, schema: str | None = None, connecting: bool = False
) -> WorkspaceError:
    """Return the bilingual error a user sees for a psycopg error (password hidden).

    Parameters
    ----------
    url
        The database URL (shown with its password hidden).
    exc
        The psycopg error (its text is appended on one line).
    schema
        The workspace schema, when there is one.
    connecting
        Whether the connection itself failed (the message then says what to check).

    Returns
    -------
    WorkspaceError
        To raise ``from exc``.
    """
    where = redact_url(url)
    if connecting:
        where += f" (schema '{schema}')" if schema else ""
        what = "无法连接数据库（请检查地址、端口、用户和密码）/ cannot connect to the database"
    else:
        where += f"#{schema}" if schema else ""
        what = "数据库错误 / database error"
    return WorkspaceError(f"{where}: {what} ({clean_error(exc, url)})")


def _no_layer(where: str, kind: str, names: list[str]) -> WorkspaceError:
    return WorkspaceError(
        f"{where}：工作空间没有图层 '{kind}'（现有图层：{'、'.join(names) or '无'}）/ "
        f"{where}: no layer '{kind}'; layers are {names}"
    )


_POOL: dict[tuple[int, str], list[Any]] = {}
_POOL_LOCK = threading.Lock()
POOL_SIZE = 4
"""Idle connections kept per database URL in each process (a Dask worker reuses them)."""


def close_pool() -> int:
    """Close this process's idle pooled connections (also run at exit); return how many."""
    with _POOL_LOCK:
        mine = [k for k in _POOL if k[0] == os.getpid()]
        conns = [c for k in mine for c in _POOL.pop(k)]
    for c in conns:
        c.close()
    return len(conns)


atexit.register(close_pool)


@contextmanager
def pooled_connection(url: str) -> Iterator[Any]:
    """Yield an autocommit connection to ``url`` from this process's pool.

    A worker that reads and writes many parts opens a connection once, not once per read: the
    connection goes back to the pool when the block ends cleanly with no transaction open and
    is closed otherwise (an error, a transaction left open, a full pool). Keyed by the process
    too, so a forked process never shares its parent's sockets. psycopg errors pass through.
    """
    psycopg = _psycopg()
    key = (os.getpid(), url)
    conn = None
    with _POOL_LOCK:
        idle = _POOL.setdefault(key, [])
        while idle and conn is None:
            c = idle.pop()
            if not c.closed and c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                conn = c
            else:
                c.close()
    if conn is None:
        kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in url:
            kwargs["connect_timeout"] = CONNECT_TIMEOUT
        conn = psycopg.connect(url, **kwargs)
    clean = False
    try:
        yield conn
        clean = True
    finally:
        keep = (
            clean
            and not conn.closed
            and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        )
        with _POOL_LOCK:
            idle = _POOL.setdefault(key, [])
            if keep and len(idle) < POOL_SIZE:
                idle.append(conn)
                conn = None
        if conn is not None:
            conn.close()


@contextmanager
def _connect(url: str, schema: str) -> Iterator[Any]:
    """Yield an autocommit connection; psycopg errors become WorkspaceError (password hidden)."""
    psycopg = _psycopg()
    kwargs: dict[str, Any] = {"autocommit": True}
    if "connect_timeout" not in url:
        kwargs["connect_timeout"] = CONNECT_TIMEOUT
    try:
        conn = psycopg.connect(url, **kwargs)
    except (psycopg.Error, ValueError) as exc:
        raise database_error(url, exc, schema=schema, connecting=True) from exc
    with conn:
        try:
            yield conn
        except psycopg.Error as exc:
            raise database_error(url, exc, schema=schema) from exc


def _table_columns(conn: Any, schema: str, table: str) -> list[tuple[str, str]]:
    """``(name, type)`` of a table's columns in order; timestamp without tz as ``timestamp``."""
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, NULL) FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum",
        (schema, table),
    ).fetchall()
    return [
        (str(n), "timestamp" if t == "timestamp without time zone" else str(t)) for n, t in rows
    ]


def _init_schema(
    conn: Any, url: str, schema: str, meta: Mapping[str, Any], *, replace: bool
) -> None:
    """Make the schema and its metadata tables (inside the caller's transaction)."""
    sql = _sql()
    where = f"{redact_url(url)}#{schema}"
    exists = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)", (schema,)
    ).fetchone()[0]
    if exists:
        if not replace:
            raise WorkspaceError(
                f"{where}: 模式已存在（替换请用 replace=True）/ schema already exists "
                "(use replace=True)"
            )
        is_ws = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL",
            (sql.Identifier(schema, META_TABLE).as_string(conn),),
        ).fetchone()[0]
        empty = not conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s)",
            (schema,),
        ).fetchone()[0]
        if not (is_ws or empty):
            raise WorkspaceError(
                f"{where}: 该模式存有其他表，不是 geo_mz 工作空间，未替换 / schema holds other "
                "tables and is not a geo_mz workspace; not replaced"
            )
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_CLASS, schema))
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL("CREATE TABLE {} (key text PRIMARY KEY, value text NOT NULL)").format(
                sql.Identifier(schema, META_TABLE)
            )
        )
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (layer text PRIMARY KEY, spec_version text NOT NULL, "
                "rows bigint NOT NULL, synthetic boolean NOT NULL, source text NOT NULL, "
                "method text NOT NULL, source_crs text NOT NULL, sha256 text NOT NULL, "
                "imported_at text NOT NULL)"
            ).format(sql.Identifier(schema, LAYERS_TABLE))
        )
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL("INSERT INTO {} (key, value) VALUES (%s, %s)").format(
                    sql.Identifier(schema, META_TABLE)
                ),
                [(str(k), str(v)) for k, v in meta.items()],
            )
    except _psycopg().Error as exc:
        msg = f"{where}: 无法创建工作空间 / cannot create the workspace ({clean_error(exc, url)})"
        raise WorkspaceError(msg) from exc


class _Target:
    """Writes layer tables and records inside one open transaction."""

    def __init__(self, conn: Any, url: str, schema: str, srid: int) -> None:
        self.conn, self.url, self.schema, self.srid = conn, url, schema, srid

    def write_layer(self, kind: str, gdf: gpd.GeoDataFrame) -> None:
        """Replace table ``kind`` with ``gdf`` (its rows in order, fid 0, 1, ...)."""
        sql = _sql()
        spec = get_spec(kind)
        frame = gdf.reset_index(drop=True)
        columns = [str(c) for c in frame.columns if c != frame.geometry.name]
        types = [_column_type(c, frame[c], spec) for c in columns]
        gtype = GPKG_GEOMETRY[spec.geometry]
        t = sql.Identifier(self.schema, kind)
        defs = [sql.SQL("fid bigint PRIMARY KEY")]
        defs += [
            sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(ty))
            for c, ty in zip(columns, types, strict=True)
        ]
        defs.append(sql.SQL("geom geometry({}, {})").format(sql.SQL(gtype), sql.Literal(self.srid)))
        try:
            self.conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(t))
            self.conn.execute(sql.SQL("CREATE TABLE {} ({})").format(t, sql.SQL(", ").join(defs)))
            self.conn.execute(
                sql.SQL("CREATE INDEX {} ON {} USING gist (geom)").format(
                    sql.Identifier(f"{kind}_geom_gist"), t
                )
            )
            values = [_copy_values(frame[c], ty) for c, ty in zip(columns, types, strict=True)]
            wkb = _geometries(frame, spec, self.srid)
            names = sql.SQL(", ").join(
                [
                    sql.Identifier("fid"),
                    *(sql.Identifier(c) for c in columns),
                    sql.Identifier("geom"),
                ]
            )
            with (
                self.conn.cursor() as cur,
                cur.copy(
                    sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(t, names)
                ) as copy,
            ):
                copy.set_types(["int8", *(_COPY_TYPES[ty] for ty in types), "bytea"])
                for i, row in enumerate(zip(*values, wkb, strict=True)):
                    copy.write_row((i, *row))
            self.conn.execute(sql.SQL("ANALYZE {}").format(t))
        except _psycopg().Error as exc:
            raise WorkspaceError(
                f"{redact_url(self.url)}#{self.schema}: 写入图层 '{kind}' 失败，工作空间未改变 / "
                f"writing layer '{kind}' failed ({clean_error(exc, self.url)}); the workspace "
                "is unchanged"
            ) from exc

    def record(self, rec: Mapping[str, Any]) -> None:
        """Insert or replace the layer's ``geo_mz_layers`` row."""
        sql = _sql()
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in LAYER_COLUMNS)
        updates = sql.SQL(", ").join(
            sql.SQL("{c} = excluded.{c}").format(c=sql.Identifier(c)) for c in LAYER_COLUMNS[1:]
        )
        values = []
        for c in LAYER_COLUMNS:
            v = rec[c]
            if c == "rows":
                v = int(v)
            elif c == "synthetic":
                v = v if isinstance(v, bool) else str(v).lower() in ("1", "true")
            else:
                v = "" if _missing(v) else str(v)
            values.append(v)
        self.conn.execute(
            sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (layer) DO UPDATE SET {}").format(
                sql.Identifier(self.schema, LAYERS_TABLE),
                cols,
                sql.SQL(", ").join([sql.Placeholder()] * len(LAYER_COLUMNS)),
                updates,
            ),
            values,
        )


__all__ = [
    "DEFAULT_SCHEMA",
    "PG_TYPES",
    "POOL_SIZE",
    "PostgisWorkspace",
    "clean_error",
    "close_pool",
    "database_error",
    "pooled_connection",
    "redact_url",
    "split_workspace_url",
]

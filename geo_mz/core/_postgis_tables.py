"""Layer tables of the PostGIS workspace: column types, values for binary COPY and back, writing.

Private to :mod:`geo_mz.core` (used by :mod:`geo_mz.core.workspace_postgis`). The table layout
is described there.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import weakref
from collections.abc import Mapping
from typing import Any, NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.core._postgis_db import clean_error, psycopg_module, redact_url, sql_module
from geo_mz.core.catalog import LayerSpec, get_spec
from geo_mz.core.errors import WorkspaceError
from geo_mz.core.workspace import (
    GPKG_GEOMETRY,
    LAYER_COLUMNS,
    LAYERS_TABLE,
    META_TABLE,
    PART_CODE_FIELD,
)

PG_TYPES = {
    "string": "text",
    "integer": "bigint",
    "float": "double precision",
    "boolean": "boolean",
    "date": "date",
    "datetime": "timestamp",
}
"""Column type of each spec field type."""
COPY_TYPES = {
    "text": "text",
    "bigint": "int8",
    "double precision": "float8",
    "boolean": "bool",
    "date": "date",
    "timestamp": "timestamp",
}
LOCK_CLASS = 0x676D7A  # advisory lock space of geo_mz workspaces ("gmz"); key 2 = the schema


def storage_srid(storage_crs: str) -> int:
    """Return the EPSG code of a storage CRS such as ``EPSG:4490``."""
    return int(str(storage_crs).split(":")[-1])


def column_type(name: str, series: pd.Series, spec: LayerSpec) -> str:
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


def copy_values(series: pd.Series, pg_type: str) -> list[Any]:
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


def read_values(values: list[Any], pg_type: str, is_field: bool) -> pd.Series:
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


def geometries(gdf: gpd.GeoDataFrame, spec: LayerSpec, srid: int) -> list[bytes | None]:
    """EWKB (with SRID) of the layer's geometries; polygons promoted to multipolygons."""
    geoms = np.asarray(gdf.geometry.values, dtype=object).copy()
    if spec.geometry == "Polygon":
        for i, g in enumerate(geoms):
            if g is not None and g.geom_type == "Polygon":
                geoms[i] = shapely.MultiPolygon([g])
    geoms = shapely.set_srid(geoms, srid)
    wkb = shapely.to_wkb(geoms, include_srid=True, output_dimension=2)
    return [None if w is None else bytes(w) for w in wkb]


def table_columns(conn: Any, schema: str, table: str) -> list[tuple[str, str]]:
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


class Catalog(NamedTuple):
    """What a read checks its layer against and builds its query from (:func:`read_catalog`)."""

    names: list[str]
    """The layer names, in byte order (as ``ORDER BY layer COLLATE "C"``)."""
    storage_crs: str | None
    """The workspace's ``storage_crs`` value (None if absent)."""
    tables: dict[str, list[tuple[str, str]]]
    """Per table, ``(name, type)`` of its columns, as :func:`table_columns` gives them."""
    code_indexes: frozenset[tuple[str, str]]
    """``(table, column)`` of the B-trees in byte order (``COLLATE "C"``, one plain column, no
    predicate): a prefix read is a range of one (the ``adcode`` index a write makes)."""


def read_catalog(conn: Any, schema: str) -> Catalog:
    """Return the layer names, storage CRS, tables' columns and code indexes, in one query.

    What a read checks and builds its query from; a part reads four layers in one snapshot,
    which this makes one round trip instead of one per layer and two more.
    """
    return catalog_of(catalog_query(conn, schema).fetchall())


def catalog_query(conn: Any, schema: str) -> Any:
    """Run :func:`read_catalog`'s query; return its cursor, not yet read."""
    return conn.execute(catalog_sql(schema))


def catalog_sql(schema: str) -> Any:
    """:func:`read_catalog`'s query, the schema in it as a literal (no parameters).

    So it can follow other statements in one simple query (one round trip).
    """
    sql = sql_module()
    return sql.SQL(
        "SELECT 0, layer, NULL::name, NULL, 0, false FROM {layers} "
        "UNION ALL SELECT 1, value, NULL, NULL, 0, false FROM {meta} WHERE key = 'storage_crs' "
        "UNION ALL SELECT 2, c.relname, a.attname, format_type(a.atttypid, NULL), "
        # Has the column a B-tree of its own in byte order (a prefix read's range)? 403 and
        # 950 are the fixed OIDs of the btree access method and of the "C" collation; a
        # correlated test costs less to plan than joining the index catalogs (0.1 vs 0.7 ms).
        "a.attnum, EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid "
        "AND i.indkey[0] = a.attnum AND i.indnkeyatts = 1 AND i.indcollation[0] = 950 "
        "AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL "
        "AND (SELECT relam FROM pg_class WHERE oid = i.indexrelid) = 403) "
        "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = {schema} "
        "AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped"
    ).format(
        layers=sql.Identifier(schema, LAYERS_TABLE),
        meta=sql.Identifier(schema, META_TABLE),
        schema=sql.Literal(schema),
    )


_PREPARED: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
"""Per connection, the schemas whose catalog query it holds as a prepared statement."""


def catalog_statement(conn: Any, schema: str, *, again: bool = False) -> tuple[Any, Any]:
    """Return ``(prepare, execute)``: the catalog query as a prepared statement of ``conn``.

    ``prepare`` makes it (None when the connection holds it already, unless ``again``: it
    was found gone), ``execute`` runs it.
    The query's plan (the catalogs joined) costs twice its execution (0.7 of 1 ms); prepared,
    a connection plans it once (a pooled connection serves every part of a worker). A plan
    follows the tables' names if they are made anew (PostgreSQL analyses it again). Call
    :func:`catalog_prepared` once ``prepare`` has run.
    """
    sql = sql_module()
    digest = hashlib.sha1(schema.encode()).hexdigest()[:16]  # names are cut at 63 bytes
    name = sql.Identifier(f"geo_mz_catalog_{digest}")
    prepare = None
    if again or schema not in _PREPARED.get(conn, ()):
        prepare = sql.SQL("PREPARE {} AS ").format(name) + catalog_sql(schema)
    return prepare, sql.SQL("EXECUTE {}").format(name)


def catalog_prepared(conn: Any, schema: str) -> None:
    """Note that ``conn`` holds the catalog query of ``schema`` (:func:`catalog_statement`)."""
    _PREPARED.setdefault(conn, set()).add(schema)


def catalog_of(rows: list[tuple]) -> Catalog:
    """Return :func:`read_catalog`'s answer from the rows of :func:`catalog_query`."""
    names = sorted(str(r[1]) for r in rows if r[0] == 0)  # code point order: UTF-8 bytes'
    crs = next((str(r[1]) for r in rows if r[0] == 1), None)
    columns: dict[str, list[tuple[str, str]]] = {}
    indexes = set()
    for _, table, name, typ, _num, indexed in sorted(
        (r for r in rows if r[0] == 2), key=lambda r: r[4]
    ):
        typ = "timestamp" if typ == "timestamp without time zone" else str(typ)
        columns.setdefault(str(table), []).append((str(name), typ))
        if indexed:
            indexes.add((str(table), str(name)))
    return Catalog(names, crs, columns, frozenset(indexes))


def init_schema(
    conn: Any, url: str, schema: str, meta: Mapping[str, Any], *, replace: bool
) -> None:
    """Make the schema and its metadata tables (inside the caller's transaction)."""
    sql = sql_module()
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
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_CLASS, schema))
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
    except psycopg_module().Error as exc:
        msg = f"{where}: 无法创建工作空间 / cannot create the workspace ({clean_error(exc, url)})"
        raise WorkspaceError(msg) from exc


class LayerTarget:
    """Writes layer tables and records inside one open transaction."""

    def __init__(self, conn: Any, url: str, schema: str, srid: int) -> None:
        self.conn, self.url, self.schema, self.srid = conn, url, schema, srid

    def write_layer(self, kind: str, gdf: gpd.GeoDataFrame) -> None:
        """Replace table ``kind`` with ``gdf`` (its rows in order, fid 0, 1, ...)."""
        sql = sql_module()
        spec = get_spec(kind)
        frame = gdf.reset_index(drop=True)
        columns = [str(c) for c in frame.columns if c != frame.geometry.name]
        types = [column_type(c, frame[c], spec) for c in columns]
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
            values = [copy_values(frame[c], ty) for c, ty in zip(columns, types, strict=True)]
            wkb = geometries(frame, spec, self.srid)
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
                copy.set_types(["int8", *(COPY_TYPES[ty] for ty in types), "bytea"])
                for i, row in enumerate(zip(*values, wkb, strict=True)):
                    copy.write_row((i, *row))
            if dict(zip(columns, types, strict=True)).get(PART_CODE_FIELD) == "text":
                # A part's own rows are one range of it (``read(prefix=...)``), in byte order
                # whatever the database's collation: built after the rows, in one pass.
                self.conn.execute(
                    sql.SQL('CREATE INDEX {} ON {} ({} COLLATE "C")').format(
                        sql.Identifier(f"{kind}_{PART_CODE_FIELD}"),
                        t,
                        sql.Identifier(PART_CODE_FIELD),
                    )
                )
            self.conn.execute(sql.SQL("ANALYZE {}").format(t))
        except psycopg_module().Error as exc:
            raise WorkspaceError(
                f"{redact_url(self.url)}#{self.schema}: 写入图层 '{kind}' 失败，工作空间未改变 / "
                f"writing layer '{kind}' failed ({clean_error(exc, self.url)}); the workspace "
                "is unchanged"
            ) from exc

    def record(self, rec: Mapping[str, Any]) -> None:
        """Insert or replace the layer's ``geo_mz_layers`` row."""
        sql = sql_module()
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

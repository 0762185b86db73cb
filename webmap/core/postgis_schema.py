"""The PostGIS backend's schema and the import of a GeoPackage workspace into it.

See :mod:`webmap.core.postgis` for the tables and how the server uses them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely

from geo_mz.core import Workspace
from webmap.core.gpkg import stored_value
from webmap.core.layers import CLOSURES, INCIDENTS, closure_spec, layer_spec

SCHEMA = "geo_mz"
CHANNEL = "geo_mz_events"
SRID = 4490
EDIT_LOCK = 0x67656F6D7A  # advisory lock key of edits (local choice: "geomz")


def psycopg_module() -> Any:
    """Return the ``psycopg`` (3) module, or explain how to install it."""
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "the PostGIS backend needs psycopg 3: pip install 'psycopg[binary]>=3.1'"
        ) from exc
    return psycopg


def sql_module() -> Any:
    """Return ``psycopg.sql`` (composing identifiers safely)."""
    from psycopg import sql

    return sql


def layer_table(name: str) -> Any:
    """Return the quoted table name of a layer (``geo_mz."layer_<name>"``)."""
    sql = sql_module()
    return sql.Identifier(SCHEMA, f"layer_{name}")


def props_json(row: pd.Series, columns: list[str]) -> str:
    """Return a feature's attributes as the ``properties`` JSON text (times as naive UTC)."""
    return json.dumps({c: stored_value(row[c]) for c in columns}, ensure_ascii=False)


DDL = f"""
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.workspace (
    id integer PRIMARY KEY CHECK (id = 1),
    metadata jsonb NOT NULL,
    source text NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now()
);
CREATE SEQUENCE IF NOT EXISTS {SCHEMA}.layer_gen;
CREATE TABLE IF NOT EXISTS {SCHEMA}.layers (
    name text PRIMARY KEY,
    id_field text NOT NULL,
    columns jsonb NOT NULL,
    position integer NOT NULL,
    gen bigint NOT NULL DEFAULT nextval('{SCHEMA}.layer_gen')
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.events (
    id bigserial PRIMARY KEY,
    at text NOT NULL,
    data json NOT NULL
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.audit_log (
    id bigserial PRIMARY KEY,
    at text NOT NULL,
    "user" text NOT NULL,
    role text NOT NULL,
    action text NOT NULL,
    layer text NOT NULL,
    fid text NOT NULL,
    version integer NOT NULL,
    before json,
    after json,
    event_id bigint NOT NULL REFERENCES {SCHEMA}.events(id)
);
CREATE INDEX IF NOT EXISTS audit_log_layer ON {SCHEMA}.audit_log (layer, fid);
CREATE TABLE IF NOT EXISTS {SCHEMA}.feature_versions (
    layer text NOT NULL,
    fid text NOT NULL,
    version integer NOT NULL,
    PRIMARY KEY (layer, fid)
);
"""
LIVE_DDL = f"""
CREATE TABLE IF NOT EXISTS {SCHEMA}.live_events (
    seq bigserial PRIMARY KEY,
    origin text NOT NULL,
    chunk text NOT NULL
);
"""


def create_layer_table(cur: Any, name: str) -> None:
    """Create a layer's table and its GiST index."""
    sql = sql_module()
    t = layer_table(name)
    cur.execute(
        sql.SQL(
            "CREATE TABLE {t} (seq bigserial PRIMARY KEY, fid text NOT NULL UNIQUE, "
            "properties jsonb NOT NULL, geom geometry(Geometry, {srid}))"
        ).format(t=t, srid=sql.Literal(SRID))
    )
    cur.execute(
        sql.SQL("CREATE INDEX {i} ON {t} USING gist (geom)").format(
            i=sql.Identifier(f"layer_{name}_geom"), t=t
        )
    )


def import_workspace(conn_url: str, workspace_path: str | Path, *, replace: bool = False) -> int:
    """Load a GeoPackage workspace into PostGIS (schema ``geo_mz``).

    Parameters
    ----------
    conn_url
        ``postgresql://...`` of a database where the ``postgis`` extension exists or may be
        created.
    workspace_path
        The workspace ``.gpkg``.
    replace
        Drop what the database holds already (layers, events, audit log); without it a database
        that holds a workspace is refused.

    Returns
    -------
    int
        Number of layers imported (road closures included, and an empty ``incidents`` layer
        when the workspace has none).
    """
    psycopg = psycopg_module()
    sql = sql_module()
    ws = Workspace(workspace_path)
    meta = dict(ws.metadata)
    names = [n for n in ws.layers() if layer_spec(n) is not None]
    with psycopg.connect(conn_url) as conn, conn.cursor() as cur:
        if replace:
            cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
        cur.execute(DDL + LIVE_DDL)
        cur.execute(f"SELECT count(*) FROM {SCHEMA}.workspace")
        if cur.fetchone()[0]:
            raise ValueError(
                f"the database already holds a workspace (schema {SCHEMA}); import with replace"
            )
        meta["storage_crs"] = f"EPSG:{SRID}"
        cur.execute(
            f"INSERT INTO {SCHEMA}.workspace (id, metadata, source) VALUES (1, %s, %s)",
            (json.dumps(meta, ensure_ascii=False, default=str), str(workspace_path)),
        )
        frames: dict[str, gpd.GeoDataFrame] = {}
        for n in names:
            g = ws.read(n)
            if g.crs is not None and g.crs.to_epsg() not in (SRID, 4326):
                g = g.to_crs(f"EPSG:{SRID}")
            frames[n] = g
        frames[CLOSURES] = gpd.GeoDataFrame(
            {f.name: [] for f in closure_spec().fields},
            geometry=gpd.GeoSeries([], crs=f"EPSG:{SRID}"),
        )
        if INCIDENTS not in frames:  # a workspace made without one: reports need the layer
            spec = layer_spec(INCIDENTS)
            assert spec is not None
            frames[INCIDENTS] = gpd.GeoDataFrame(
                {f.name: [] for f in spec.fields}, geometry=gpd.GeoSeries([], crs=f"EPSG:{SRID}")
            )
        for pos, (n, g) in enumerate(sorted(frames.items())):
            spec = layer_spec(n)
            assert spec is not None
            columns = [c for c in g.columns if c != g.geometry.name]
            cur.execute(
                f"INSERT INTO {SCHEMA}.layers (name, id_field, columns, position) "
                "VALUES (%s, %s, %s, %s)",
                (n, spec.id_field, json.dumps(columns), pos),
            )
            create_layer_table(cur, n)
            geoms = shapely.set_srid(g.geometry.to_numpy(), SRID)
            ewkb = shapely.to_wkb(geoms, hex=True, include_srid=True) if len(g) else []
            ids = g[spec.id_field].astype(str).tolist() if len(g) else []
            copy_sql = sql.SQL("COPY {t} (fid, properties, geom) FROM STDIN").format(
                t=layer_table(n)
            )
            with cur.copy(copy_sql) as copy:
                for i, (_, row) in enumerate(g.iterrows()):
                    copy.write_row((ids[i], props_json(row, columns), ewkb[i]))
        conn.commit()
    return len(frames)


__all__ = [
    "CHANNEL",
    "DDL",
    "EDIT_LOCK",
    "LIVE_DDL",
    "SCHEMA",
    "SRID",
    "create_layer_table",
    "import_workspace",
    "layer_table",
    "props_json",
    "psycopg_module",
    "sql_module",
]

"""The PostGIS backend: several server processes share one database (psycopg 3 + PostGIS).

Schema ``geo_mz`` (made by :func:`import_workspace`):

- ``workspace``: one row, the workspace metadata (``jsonb``).
- ``layers``: one row per served layer: ``name``, ``id_field``, ``columns`` (the attribute
  columns in order, ``jsonb``), ``position`` and ``gen`` (from the sequence ``layer_gen``,
  bumped in every edit of the layer; the :meth:`PostgisStore.token` of the layer).
- ``"layer_<name>"``: one table per layer: ``seq`` (order of the features), ``fid`` (the
  layer's id field as text, unique), ``properties`` (``jsonb``: every attribute, times as naive
  UTC ISO text, dates as ISO dates; typed back with the layer spec on reading) and
  ``geom geometry(Geometry, 4490)`` (CGCS2000 lon/lat, GiST-indexed). Road closures are a layer
  table like the others.
- ``events`` (``bigserial`` id, ``json`` data: the text is kept as written), ``audit_log`` and
  ``feature_versions``: as in the GeoPackage backend's SQLite journal.
- ``live_events``: live-only events one process shares with the others (the relief
  re-analysis after a closure; :meth:`PostgisStore.share_live`), announced as ``live <seq>`` on
  the same channel. Not replayed; only the newest :data:`LIVE_KEEP` are kept.

An edit is one database transaction: a transaction-level advisory lock (so event ids commit in
order and a stream never skips one), ``SELECT ... FOR UPDATE`` of the feature and its version,
the optimistic ``If-Match`` check, the row write, the version, audit row and event, then
``pg_notify('geo_mz_events', '<event id>')``, delivered by PostgreSQL only on commit. Each
process runs one listener thread (``LISTEN geo_mz_events``) that wakes its
:class:`webmap.core.events.EventBus`; the events table is the replay source for
``Last-Event-ID``, so an edit made through any process reaches the maps of every process. The
same listener hands other processes' ``analysis`` events to :meth:`PostgisStore.listen_live`
subscribers, so a map gets them whichever process its stream is on.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from geo_mz.core import conform_types, redact_url
from webmap.core.edits_common import check_preconditions, edit_event
from webmap.core.geojson import features_of, make_etag
from webmap.core.gpkg import lonlat
from webmap.core.layers import layer_spec
from webmap.core.postgis_schema import (
    CHANNEL,
    EDIT_LOCK,
    LIVE_DDL,
    SCHEMA,
    SRID,
    import_workspace,
    layer_table,
    props_json,
    psycopg_module,
    sql_module,
)
from webmap.core.store import Builder, Change, Event, FeatureStore, Op

POOL_IDLE = 8
"""Idle connections kept per process (more are opened under load and closed afterwards)."""
LIVE_PREFIX = "live "
"""Payload prefix of a shared live-only event (``live <seq>``); a plain number is an edit."""
LIVE_KEEP = 100
"""Relayed live-only events kept in ``live_events`` (only the newest is ever read; local choice)."""


def _dumps(obj: Any) -> str | None:
    return None if obj is None else json.dumps(obj, ensure_ascii=False, allow_nan=False)


class _Pool:
    """A minimal connection pool (autocommit connections; broken ones are dropped)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    @contextmanager
    def conn(self) -> Iterator[Any]:
        psycopg = psycopg_module()
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None or conn.closed:
            conn = psycopg.connect(self.url, autocommit=True)
        try:
            yield conn
        except BaseException:
            if not conn.closed and conn.info.transaction_status != 0:  # not IDLE
                conn.close()
            raise
        finally:
            if not conn.closed:
                with self._lock:
                    if len(self._idle) < POOL_IDLE:
                        self._idle.append(conn)
                        conn = None
                if conn is not None:
                    conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for c in idle:
            c.close()


class PostgisStore(FeatureStore):
    """Serve and edit a workspace imported into PostGIS (any number of server processes).

    Parameters
    ----------
    url
        ``postgresql://...`` of a database made by :func:`import_workspace`.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._pool = _Pool(url)
        self._cache_lock = threading.RLock()
        self._cache: dict[str, tuple[int, gpd.GeoDataFrame]] = {}
        self._area: tuple[int, shapely.Geometry | None] | None = None
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        self._subscribers: list[Callable[[int], None]] = []
        self._relays: list[Callable[[str], None]] = []
        self._origin = uuid.uuid4().hex  # this process, so it skips its own relayed events
        with self._pool.conn() as conn:
            missing = (
                "数据库中还没有导入工作空间 / no workspace imported into this database: "
                "geo-mz webmap import WORKSPACE.gpkg --database URL"
            )
            exists = conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.workspace",)).fetchone()
            if exists is None or exists[0] is None:
                raise ValueError(f"{redact_url(url)}: {missing}")
            row = conn.execute(f"SELECT metadata FROM {SCHEMA}.workspace WHERE id = 1").fetchone()
            if row is None:
                raise ValueError(f"{redact_url(url)}: {missing}")
            meta = dict(row[0])
            if isinstance(meta.get("bounds"), list):
                meta["bounds"] = tuple(meta["bounds"])
            self._meta = meta
            with conn.transaction():  # databases imported before live_events existed
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (EDIT_LOCK,))
                conn.execute(LIVE_DDL)
            rows = conn.execute(
                f"SELECT name, id_field, columns FROM {SCHEMA}.layers ORDER BY name"
            ).fetchall()
        self._layers = {str(n): (str(idf), list(cols)) for n, idf, cols in rows}
        self.storage_crs = f"EPSG:{SRID}"

    # -- reading ----------------------------------------------------------------------------
    @property
    def metadata(self) -> dict[str, Any]:
        """Workspace metadata as imported (storage CRS EPSG:4490)."""
        return dict(self._meta)

    def layer_names(self) -> list[str]:
        """Return the served layers, sorted by name (road closures included)."""
        return sorted(self._layers)

    def spec(self, name: str) -> Any:
        """Return the spec of a served layer; KeyError otherwise."""
        spec = layer_spec(name) if name in self._layers else None
        if spec is None:
            raise KeyError(name)
        return spec

    def _gen(self, name: str) -> int:
        with self._pool.conn() as conn:
            row = conn.execute(
                f"SELECT gen FROM {SCHEMA}.layers WHERE name = %s", (name,)
            ).fetchone()
        return int(row[0])

    def _rows_frame(self, name: str, rows: list[tuple[Any, ...]]) -> gpd.GeoDataFrame:
        """Typed frame (storage CRS) of ``(properties, wkb)`` rows."""
        spec = self.spec(name)
        columns = self._layers[name][1]
        data = {c: [p.get(c) for p, _ in rows] for c in columns}
        wkb = [None if w is None else bytes(w) for _, w in rows]
        geoms = shapely.from_wkb(wkb) if rows else np.array([], dtype=object)
        g = gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms), crs=self.storage_crs)
        if not rows:
            g = g.astype({c: object for c in columns})
        return conform_types(g, spec)

    def _read(self, conn: Any, name: str) -> gpd.GeoDataFrame:
        sql = sql_module()
        rows = conn.execute(
            sql.SQL("SELECT properties, ST_AsBinary(geom) FROM {t} ORDER BY seq").format(
                t=layer_table(name)
            )
        ).fetchall()
        return self._rows_frame(name, rows)

    def _cached(self, name: str) -> tuple[int, gpd.GeoDataFrame]:
        self.spec(name)
        gen = self._gen(name)
        with self._cache_lock:
            hit = self._cache.get(name)
            if hit is not None and hit[0] == gen:
                return hit
        with self._pool.conn() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            row = conn.execute(
                f"SELECT gen FROM {SCHEMA}.layers WHERE name = %s", (name,)
            ).fetchone()
            gen, frame = int(row[0]), lonlat(self._read(conn, name))
        with self._cache_lock:
            self._cache[name] = (gen, frame)
        return gen, frame

    def frame(self, name: str) -> gpd.GeoDataFrame:
        """Return the whole layer in CRS84 (cached per process until its generation changes)."""
        return self._cached(name)[1]

    def token(self, name: str) -> int:
        """Return the layer's generation number (shared by every process)."""
        return self._cached(name)[0]

    def jurisdiction(self) -> shapely.Geometry | None:
        """Union of the admin units marked ``in_jurisdiction`` (lon/lat), or None."""
        if "admin_units" not in self._layers:
            return None
        gen, units = self._cached("admin_units")
        with self._cache_lock:
            if self._area is not None and self._area[0] == gen:
                return self._area[1]
        area = None
        if "in_jurisdiction" in units.columns:
            own = units[units["in_jurisdiction"].fillna(False).to_numpy(dtype=bool)]
            if len(own):
                area = shapely.union_all(own.geometry.to_numpy())
                shapely.prepare(area)
        with self._cache_lock:
            self._area = (gen, area)
        return area

    def _version(self, conn: Any, layer: str, fid: str, *, lock: bool = False) -> int:
        row = conn.execute(
            f"SELECT version FROM {SCHEMA}.feature_versions WHERE layer = %s AND fid = %s"
            + (" FOR UPDATE" if lock else ""),
            (layer, fid),
        ).fetchone()
        return int(row[0]) if row else 1

    def _one(self, conn: Any, layer: str, fid: str, *, lock: bool = False) -> Any:
        sql = sql_module()
        q = sql.SQL("SELECT properties, ST_AsBinary(geom) FROM {t} WHERE fid = %s").format(
            t=layer_table(layer)
        )
        if lock:
            q = q + sql.SQL(" FOR UPDATE")
        row = conn.execute(q, (fid,)).fetchone()
        return None if row is None else self._rows_frame(layer, [row])

    def current(self, layer: str, fid: str) -> tuple[dict[str, Any] | None, str | None]:
        """Return the feature ``fid`` as GeoJSON and its ETag (read in one snapshot)."""
        spec = self.spec(layer)
        with self._pool.conn() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            row = self._one(conn, layer, fid)
            if row is None:
                return None, None
            version = self._version(conn, layer, fid)
        feature = features_of(lonlat(row), spec.id_field)[0]
        return feature, make_etag(version, feature)

    # -- editing ----------------------------------------------------------------------------
    def apply(
        self,
        layer: str,
        fid: str,
        *,
        op: Op,
        build: Builder,
        user: str,
        role: str,
        if_match: str | None = None,
    ) -> Change:
        """Apply one edit in one database transaction (see :meth:`FeatureStore.apply`)."""
        sql = sql_module()
        spec = self.spec(layer)
        columns = self._layers[layer][1]
        with self._pool.conn() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (EDIT_LOCK,))
            before_row = self._one(conn, layer, fid, lock=True)
            before = None
            if before_row is not None:
                before = features_of(lonlat(before_row), spec.id_field)[0]
            version = self._version(conn, layer, fid, lock=True)
            etag = make_etag(version, before) if before is not None else None
            check_preconditions(layer, fid, op, before, etag, if_match)
            after_row = build(before_row)
            after = None
            if after_row is not None:
                if after_row.crs is not None and after_row.crs.to_epsg() in (SRID, 4326):
                    after_row = after_row.set_crs(self.storage_crs, allow_override=True)
                else:
                    after_row = after_row.to_crs(self.storage_crs)
                after = features_of(lonlat(after_row), spec.id_field)[0]
                cols = [c for c in columns if c in after_row.columns]
                props = props_json(after_row.iloc[0], cols)
                geom = shapely.to_wkb(after_row.geometry.iloc[0])
                if before_row is None:
                    conn.execute(
                        sql.SQL(
                            "INSERT INTO {t} (fid, properties, geom) "
                            "VALUES (%s, %s, ST_SetSRID(ST_GeomFromWKB(%s), {srid}))"
                        ).format(t=layer_table(layer), srid=sql.Literal(SRID)),
                        (fid, props, geom),
                    )
                else:
                    conn.execute(
                        sql.SQL(
                            "UPDATE {t} SET properties = %s, "
                            "geom = ST_SetSRID(ST_GeomFromWKB(%s), {srid}) WHERE fid = %s"
                        ).format(t=layer_table(layer), srid=sql.Literal(SRID)),
                        (props, geom, fid),
                    )
            else:
                conn.execute(
                    sql.SQL("DELETE FROM {t} WHERE fid = %s").format(t=layer_table(layer)), (fid,)
                )
            data, new_etag = edit_event(
                op=op,
                layer=layer,
                fid=fid,
                version=version + 1,
                before=before,
                after=after,
                user=user,
            )
            at = data["at"]
            event_id = int(
                conn.execute(
                    f"INSERT INTO {SCHEMA}.events (at, data) VALUES (%s, %s) RETURNING id",
                    (at, _dumps(data)),
                ).fetchone()[0]
            )
            conn.execute(
                f'INSERT INTO {SCHEMA}.audit_log (at, "user", role, action, layer, fid, version, '
                "before, after, event_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    at,
                    user,
                    role,
                    op,
                    layer,
                    fid,
                    version + 1,
                    _dumps(before),
                    _dumps(after),
                    event_id,
                ),
            )
            conn.execute(
                f"INSERT INTO {SCHEMA}.feature_versions (layer, fid, version) VALUES (%s, %s, %s) "
                "ON CONFLICT (layer, fid) DO UPDATE SET version = excluded.version",
                (layer, fid, version + 1),
            )
            conn.execute(
                f"UPDATE {SCHEMA}.layers SET gen = nextval('{SCHEMA}.layer_gen') WHERE name = %s",
                (layer,),
            )
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(event_id)))
        return Change(Event(event_id, data), new_etag, after)

    # -- logs -------------------------------------------------------------------------------
    def events_since(self, after_id: int, *, limit: int = 500) -> list[Event]:
        """Events after ``after_id``, oldest first."""
        with self._pool.conn() as conn:
            rows = conn.execute(
                f"SELECT id, data FROM {SCHEMA}.events WHERE id > %s ORDER BY id LIMIT %s",
                (int(after_id), int(limit)),
            ).fetchall()
        return [Event(int(i), d) for i, d in rows]

    def last_event_id(self) -> int:
        """Newest event id (0 when none)."""
        with self._pool.conn() as conn:
            row = conn.execute(f"SELECT max(id) FROM {SCHEMA}.events").fetchone()
        return int(row[0] or 0)

    def audit_rows(
        self, *, limit: int = 100, offset: int = 0, layer: str | None = None
    ) -> list[dict[str, Any]]:
        """Audit rows, newest first (same shape as the GeoPackage backend's)."""
        q = (
            f'SELECT id, at, "user", role, action, layer, fid, version, before, after, event_id '
            f"FROM {SCHEMA}.audit_log"
        )
        params: list[Any] = []
        if layer is not None:
            q += " WHERE layer = %s"
            params.append(layer)
        q += " ORDER BY id DESC LIMIT %s OFFSET %s"
        params += [int(limit), int(offset)]
        with self._pool.conn() as conn:
            rows = conn.execute(q, params).fetchall()
        keys = ("id", "at", "user", "role", "action", "layer", "fid", "version")
        out = []
        for r in rows:
            rec = dict(zip(keys, r[:8], strict=True))
            rec["before"], rec["after"], rec["event_id"] = r[8], r[9], int(r[10])
            rec["id"] = int(rec["id"])
            out.append(rec)
        return out

    # -- live updates across processes ------------------------------------------------------
    def listen(self, publish: Callable[[int], None]) -> None:
        """Call ``publish(event_id)`` for every event committed by any process."""
        self._subscribers.append(publish)
        self._start_listener()

    def listen_live(self, relay: Callable[[str], None]) -> None:
        """Call ``relay(chunk)`` with every live-only event another process shares.

        Parameters
        ----------
        relay
            Gets the event's ``text/event-stream`` text (see :meth:`share_live`), on the
            listener thread; it must return quickly.
        """
        self._relays.append(relay)
        self._start_listener()

    def share_live(self, chunk: str) -> None:
        """Send a live-only event (an ``analysis`` result) to the streams of every other process.

        The text goes in ``live_events`` and its number out on the events channel, delivered on
        commit; each other process's listener reads it and hands it to its ``relay`` functions.
        Not a replayable edit: it has no event id and never enters the ``events`` table.

        Parameters
        ----------
        chunk
            The event's ``text/event-stream`` text.
        """
        with self._pool.conn() as conn, conn.transaction():
            seq = int(
                conn.execute(
                    f"INSERT INTO {SCHEMA}.live_events (origin, chunk) VALUES (%s, %s) "
                    "RETURNING seq",
                    (self._origin, chunk),
                ).fetchone()[0]
            )
            conn.execute(f"DELETE FROM {SCHEMA}.live_events WHERE seq <= %s", (seq - LIVE_KEEP,))
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{LIVE_PREFIX}{seq}"))

    def _start_listener(self) -> None:
        if self._listener is None:
            self._listener = threading.Thread(
                target=self._listen_loop, name="geo-mz-postgis-listen", daemon=True
            )
            self._listener.start()

    def _publish(self, event_id: int) -> None:
        for fn in list(self._subscribers):
            fn(event_id)

    def _relay(self, seq: int) -> None:
        with self._pool.conn() as conn:
            row = conn.execute(
                f"SELECT origin, chunk FROM {SCHEMA}.live_events WHERE seq = %s", (seq,)
            ).fetchone()
        if row is None or row[0] == self._origin:
            return  # pruned already (a newer one follows), or this process's own
        for fn in list(self._relays):
            fn(str(row[1]))

    def _notified(self, payload: str) -> None:
        if payload.startswith(LIVE_PREFIX):
            with contextlib.suppress(ValueError):
                self._relay(int(payload[len(LIVE_PREFIX) :]))
            return
        with contextlib.suppress(ValueError):  # not ours: some other client's notification
            self._publish(int(payload))

    def _listen_loop(self) -> None:
        psycopg = psycopg_module()
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    # (Re)connected: anything committed meanwhile is in the log.
                    self._publish(self.last_event_id())
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._notified(note.payload)
            except psycopg.Error:
                self._stop.wait(1.0)

    def close(self) -> None:
        """Stop the listener thread and close the connections."""
        self._stop.set()
        if self._listener is not None:
            self._listener.join(timeout=5)
        self._pool.close()


__all__ = ["CHANNEL", "LIVE_KEEP", "LIVE_PREFIX", "SCHEMA", "PostgisStore", "import_workspace"]

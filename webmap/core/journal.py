"""The GeoPackage backend's journal: events, audit log, feature versions and road closures.

One SQLite file (WAL mode) beside the workspace. Every edit writes its rows inside one
transaction opened with :meth:`Journal.begin`; readers never block the writer.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    user TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    layer TEXT NOT NULL,
    fid TEXT NOT NULL,
    version INTEGER NOT NULL,
    before TEXT,
    after TEXT,
    event_id INTEGER NOT NULL REFERENCES events(id)
);
CREATE INDEX IF NOT EXISTS audit_log_layer ON audit_log (layer, fid);
CREATE TABLE IF NOT EXISTS feature_versions (
    layer TEXT NOT NULL,
    fid TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (layer, fid)
);
CREATE TABLE IF NOT EXISTS live_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    chunk TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS road_closures (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    closure_id TEXT NOT NULL UNIQUE,
    properties TEXT NOT NULL,
    geometry_wkt TEXT NOT NULL
);
"""


def _dumps(obj: Any) -> str | None:
    return None if obj is None else json.dumps(obj, ensure_ascii=False, allow_nan=False)


class Journal:
    """The journal database (created with its tables on first use).

    Parameters
    ----------
    path
        SQLite file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._open()) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
        self._local = threading.local()

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 10000")
        return conn

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """Yield this thread's reading connection (autocommit; kept open for the next read).

        Opening a SQLite connection in WAL mode (file, ``-shm`` mapping, pragmas) costs more
        than the small reads the event streams make on every edit and reconnect, so each
        thread keeps one (reopened if the file was replaced). Autocommit: every statement reads
        the newest committed state.
        """
        st = self.path.stat()
        ident = (st.st_dev, st.st_ino)  # a journal replaced under the server is opened anew
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "ident", None) != ident:
            if conn is not None:
                conn.close()
            conn = self._local.conn = self._open()
            self._local.ident = ident
        try:
            yield conn
        except sqlite3.Error:
            self._local.conn = None  # do not reuse a connection that failed
            conn.close()
            raise

    @contextmanager
    def begin(self) -> Iterator[sqlite3.Connection]:
        """Open a write transaction (``BEGIN IMMEDIATE``); the caller commits.

        Anything not committed when the block ends is rolled back.
        """
        with closing(self._open()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.rollback()

    # -- versions ---------------------------------------------------------------------------
    @staticmethod
    def version(conn: sqlite3.Connection, layer: str, fid: str) -> int:
        """Edit version of a feature: 1 until the web map first changes it."""
        row = conn.execute(
            "SELECT version FROM feature_versions WHERE layer = ? AND fid = ?", (layer, fid)
        ).fetchone()
        return int(row[0]) if row else 1

    @staticmethod
    def set_version(conn: sqlite3.Connection, layer: str, fid: str, version: int) -> None:
        """Record a feature's new version (kept after a delete, so ids never reuse one)."""
        conn.execute(
            "INSERT INTO feature_versions (layer, fid, version) VALUES (?, ?, ?) "
            "ON CONFLICT (layer, fid) DO UPDATE SET version = excluded.version",
            (layer, fid, int(version)),
        )

    # -- events and audit -------------------------------------------------------------------
    @staticmethod
    def add_event(conn: sqlite3.Connection, at: str, data: dict[str, Any]) -> int:
        """Append an event; return its id (monotonically increasing, never reused)."""
        cur = conn.execute("INSERT INTO events (at, data) VALUES (?, ?)", (at, _dumps(data)))
        return int(cur.lastrowid or 0)

    @staticmethod
    def add_audit(conn: sqlite3.Connection, **row: Any) -> None:
        """Append an audit row.

        Keys: at, user, role, action, layer, fid, version, before, after (GeoJSON features or
        None), event_id.
        """
        conn.execute(
            "INSERT INTO audit_log (at, user, role, action, layer, fid, version, before, after, "
            "event_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row["at"],
                row["user"],
                row["role"],
                row["action"],
                row["layer"],
                row["fid"],
                row["version"],
                _dumps(row["before"]),
                _dumps(row["after"]),
                row["event_id"],
            ),
        )

    def events_since(self, after_id: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """Events after ``after_id``, oldest first."""
        with self.read() as conn:
            rows = conn.execute(
                "SELECT id, data FROM events WHERE id > ? ORDER BY id LIMIT ?",
                (int(after_id), int(limit)),
            ).fetchall()
        return [(int(i), json.loads(d)) for i, d in rows]

    def last_event_id(self) -> int:
        """Newest event id, 0 when empty."""
        with self.read() as conn:
            row = conn.execute("SELECT MAX(id) FROM events").fetchone()
        return int(row[0] or 0)

    # -- live-only events shared between server processes -----------------------------------
    def share_live(self, origin: str, chunk: str, keep: int = 100) -> int:
        """Store a live-only event (an ``analysis`` result) for the other server processes.

        Parameters
        ----------
        origin
            The sending process's id (it skips its own).
        chunk
            The event's ``text/event-stream`` text.
        keep
            How many of the newest are kept (only the newest is ever read).

        Returns
        -------
        int
            The event's sequence number.
        """
        with self.begin() as conn:
            seq = int(
                conn.execute(
                    "INSERT INTO live_events (origin, chunk) VALUES (?, ?)", (origin, chunk)
                ).lastrowid
                or 0
            )
            conn.execute("DELETE FROM live_events WHERE seq <= ?", (seq - keep,))
            conn.commit()
        return seq

    def live_since(self, after_seq: int) -> list[tuple[int, str, str]]:
        """Shared live-only events after ``after_seq``: (seq, origin, chunk), oldest first."""
        with self.read() as conn:
            rows = conn.execute(
                "SELECT seq, origin, chunk FROM live_events WHERE seq > ? ORDER BY seq",
                (int(after_seq),),
            ).fetchall()
        return [(int(q), str(o), str(c)) for q, o, c in rows]

    def last_live_seq(self) -> int:
        """Newest shared live-only event's sequence number, 0 when none."""
        with self.read() as conn:
            row = conn.execute("SELECT MAX(seq) FROM live_events").fetchone()
        return int(row[0] or 0)

    def audit(self, limit: int, offset: int, layer: str | None) -> list[dict[str, Any]]:
        """Audit rows, newest first."""
        sql = (
            "SELECT id, at, user, role, action, layer, fid, version, before, after, event_id "
            "FROM audit_log"
        )
        params: list[Any] = []
        if layer is not None:
            sql += " WHERE layer = ?"
            params.append(layer)
        sql += " ORDER BY id DESC LIMIT ? OFFSET ?"
        params += [int(limit), int(offset)]
        with self.read() as conn:
            rows = conn.execute(sql, params).fetchall()
        keys = ("id", "at", "user", "role", "action", "layer", "id_value", "version")
        out = []
        for r in rows:
            rec = dict(zip(keys, r[:8], strict=True))
            rec["fid"] = rec.pop("id_value")
            rec["before"] = None if r[8] is None else json.loads(r[8])
            rec["after"] = None if r[9] is None else json.loads(r[9])
            rec["event_id"] = r[10]
            out.append(rec)
        return out

    # -- the web map's own road-closure layer -----------------------------------------------
    @staticmethod
    def closure_rows(conn: sqlite3.Connection) -> list[tuple[dict[str, Any], str]]:
        """All stored closures as (properties, WKT), in creation order."""
        rows = conn.execute(
            "SELECT properties, geometry_wkt FROM road_closures ORDER BY seq"
        ).fetchall()
        return [(json.loads(p), str(g)) for p, g in rows]

    @staticmethod
    def put_closure(
        conn: sqlite3.Connection, fid: str, properties: dict[str, Any], wkt: str
    ) -> None:
        """Insert a closure (the id is unique)."""
        conn.execute(
            "INSERT INTO road_closures (closure_id, properties, geometry_wkt) VALUES (?, ?, ?)",
            (fid, _dumps(properties), wkt),
        )

    @staticmethod
    def delete_closure(conn: sqlite3.Connection, fid: str) -> None:
        """Remove a closure."""
        conn.execute("DELETE FROM road_closures WHERE closure_id = ?", (fid,))


__all__ = ["Journal"]

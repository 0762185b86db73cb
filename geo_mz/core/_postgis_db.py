"""PostgreSQL plumbing of the PostGIS workspace: URLs, connections, the pool, and errors.

Private to :mod:`geo_mz.core` (the public names are re-exported by
:mod:`geo_mz.core.workspace_postgis`). psycopg 3 is imported only when a connection is made.
"""

from __future__ import annotations

import atexit
import os
import select
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from geo_mz.core.errors import WorkspaceError

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


def psycopg_module() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise WorkspaceError(
            "PostGIS 工作空间需要 psycopg 3，请安装：pip install 'geo-mz[postgis]' / "
            "PostGIS workspaces need psycopg 3: pip install 'geo-mz[postgis]' "
            "(or 'psycopg[binary]>=3.1')"
        ) from exc
    return psycopg


def sql_module() -> Any:
    from psycopg import sql

    return sql


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


_ENDING: weakref.WeakSet[Any] = weakref.WeakSet()
"""Pooled connections whose last query (:func:`end_later`) has not had its results read."""


def end_later(conn: Any, query: bytes) -> None:
    """Send a simple query that ends a read (its COMMIT, its lock's release); do not wait.

    The server runs it as soon as it arrives, so a writer waiting for the lock goes on at
    once; this process reads its results only when the pool hands the connection out again
    (:func:`pooled_connection`), by which time they have long arrived. A part's reads then
    wait for four round trips, not five. The connection must go back to the pool next (the
    end of its ``pooled_connection`` block): nothing else may use it before.
    """
    pg = conn.pgconn
    pg.send_query(query)
    while pg.flush():  # a non-blocking connection: 1 while some of the query is unsent
        select.select([], [pg.socket], [])
    with _POOL_LOCK:
        _ENDING.add(conn)


def _ended(conn: Any, psycopg: Any) -> bool:
    """Read the results of an :func:`end_later` query; True if all went well and it is idle."""
    # Results taken only once libpq has them (is_busy false), the wait a select: psycopg's
    # get_result holds the GIL while libpq waits, which would stall this process's threads.
    ok, pg = True, conn.pgconn
    try:
        while True:
            pg.consume_input()
            while not pg.is_busy():
                res = pg.get_result()
                if res is None:
                    return ok and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                ok = ok and res.status != psycopg.pq.ExecStatus.FATAL_ERROR
            select.select([pg.socket], [], [])
    except psycopg.Error:
        return False  # (a broken connection: closed by the caller, the server ended it)


@contextmanager
def pooled_connection(url: str) -> Iterator[Any]:
    """Yield an autocommit connection to ``url`` from this process's pool.

    A worker that reads and writes many parts opens a connection once, not once per read: the
    connection goes back to the pool when the block ends cleanly with no transaction open and
    is closed otherwise (an error, a transaction left open, a full pool). Keyed by the process
    too, so a forked process never shares its parent's sockets. psycopg errors pass through.
    A connection given back with its last query's results unread (:func:`end_later`) has them
    read before it is handed out again; one whose query failed is closed instead.
    """
    psycopg = psycopg_module()
    idle_status = psycopg.pq.TransactionStatus.IDLE
    key = (os.getpid(), url)
    conn = None
    while conn is None:
        with _POOL_LOCK:
            idle = _POOL.setdefault(key, [])
            if not idle:
                break
            c = idle.pop()
            ending = c in _ENDING
            _ENDING.discard(c)
        if c.closed:
            continue
        ready = _ended(c, psycopg) if ending else c.info.transaction_status == idle_status
        if ready:
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
        with _POOL_LOCK:
            status = None if conn.closed else conn.info.transaction_status
            ending = conn in _ENDING
            keep = clean and (
                status == idle_status or (ending and status == psycopg.pq.TransactionStatus.ACTIVE)
            )
            idle = _POOL.setdefault(key, [])
            if keep and len(idle) < POOL_SIZE:
                idle.append(conn)
                conn = None
            else:
                _ENDING.discard(conn)
        if conn is not None:
            conn.close()


@contextmanager
def connect_schema(url: str, schema: str) -> Iterator[Any]:
    """Yield an autocommit connection; psycopg errors become WorkspaceError (password hidden)."""
    psycopg = psycopg_module()
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

"""Several server processes: forked workers on ``SO_REUSEPORT`` sockets, one supervisor.

``geo-mz serve --workers N`` runs N copies of the one-process server of :mod:`webmap.asgi`
(uvicorn, flask on worker threads, ``/events`` on the event loop). Why this shape:

* **One listening socket per worker, bound with ``SO_REUSEPORT``** (Linux): the kernel spreads
  new connections evenly over the workers. With one shared socket, asyncio's accept loop lets
  whichever worker wakes first take a whole burst of connections, so 50 keep-alive clients
  could all land on one worker while the other idles. The supervisor opens every socket before
  forking and keeps them open, so a worker that dies leaves its queue of new connections to its
  replacement rather than refusing them. Where ``SO_REUSEPORT`` is missing the workers share
  one socket (still correct, less even).
* **fork, not spawn**: the supervisor has checked the settings and built the app once (and
  closed it) before forking, so a wrong option fails before any worker starts; each worker
  then builds its own app: its own SQLite and PostgreSQL connections, threads and caches.
  Windows has no fork: one process there.
* **The supervisor** only waits: it replaces a worker that died while serving, stops
  everything when workers keep failing at start, and on Ctrl-C / SIGTERM passes SIGTERM on and
  waits for the workers' graceful stop (streams end first; see ``webmap.asgi``).

Live updates across processes. Under PostGIS each worker ``LISTEN``s for every process's
edits. A GeoPackage's journal has no notifications, so each worker polls it
(:func:`watch_journal`: ``PRAGMA data_version`` every 20 ms, a few microseconds) and publishes
other processes' events to its own streams, tells its relief analysis, and drops its cached
road closures (which live in the journal, not in the workspace file it already re-checks).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sqlite3
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

JOURNAL_POLL_S = 0.02
"""How often a GeoPackage worker checks the journal for other processes' edits (local choice:
well under the live-delivery budget; the check is one ``PRAGMA`` on an open connection)."""
START_GRACE_S = 10.0
"""A worker that exits sooner than this after it started counts as failing to start."""
STOP_WAIT_S = 20.0
"""Seconds the supervisor waits for workers to stop before it kills them (uvicorn's own
graceful stop gives requests 5 s)."""
WORKER_HEADER = b"x-worker"
"""Response header naming the worker (1..N) that answered, when there are several."""


def can_fork() -> bool:
    """Whether this platform can run several workers (``os.fork``: Linux, macOS)."""
    return hasattr(os, "fork")


def listen_sockets(
    host: str, port: int, count: int, prepare: Callable[[socket.socket], None]
) -> list[socket.socket]:
    """Open ``count`` listening sockets on one port (``SO_REUSEPORT``), or one shared socket.

    Parameters
    ----------
    host, port
        Address; port 0 picks a free port (the same for every socket).
    count
        Workers.
    prepare
        Called on each socket before it is bound (socket options).

    Returns
    -------
    list of socket.socket
        ``count`` sockets, or one when the platform has no ``SO_REUSEPORT``.
    """
    reuse = getattr(socket, "SO_REUSEPORT", None)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks: list[socket.socket] = []
    try:
        for _ in range(count if reuse is not None else 1):
            sock = socket.socket(family, socket.SOCK_STREAM)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse is not None:
                sock.setsockopt(socket.SOL_SOCKET, reuse, 1)
            prepare(sock)
            sock.bind((host, port))
            port = sock.getsockname()[1]  # port 0: every later socket joins the first's port
            sock.listen(4096)
            sock.set_inheritable(True)
    except OSError:
        for sock in socks:
            sock.close()
        raise
    return socks


def watch_journal(api: Any, stop: threading.Event, interval_s: float = JOURNAL_POLL_S) -> None:
    """Relay other processes' GeoPackage edits to this worker (run in a thread until ``stop``).

    Parameters
    ----------
    api
        This worker's ``WebMapAPI`` (``settings.journal_db``, ``store``, ``bus``, ``analysis``).
    stop
        Set when the worker stops.
    interval_s
        Seconds between checks.
    """
    journal = Path(api.settings.journal_db)
    cursor = api.store.last_event_id()
    conn = sqlite3.connect(journal, timeout=10, check_same_thread=False)
    version = None
    failing = warned = False
    try:
        while not stop.wait(interval_s):
            try:
                now = conn.execute("PRAGMA data_version").fetchone()[0]
                if now == version:
                    continue
                version = now
                layers: set[str] = set()
                while True:
                    events = api.store.events_since(cursor, limit=500)
                    for ev in events:
                        layers.add(str(ev.data.get("layer", "")))
                        cursor = ev.id
                    if len(events) < 500:
                        break
                api.analysis.poll_shared()  # other processes' analysis results (live_events)
                failing = False
            except sqlite3.Error:  # the journal briefly locked or moved: try again next tick
                if not failing:
                    log.exception("读取审计与事件库失败 / reading the journal %s failed", journal)
                failing = True
                continue
            if not layers:
                continue
            forget = getattr(api.store, "forget", None)  # cached road closures (journal rows)
            for layer in layers:
                if callable(forget):
                    forget(layer)
                elif layer == "road_closures" and not warned:
                    warned = True
                    log.warning(
                        "此存储无法丢弃缓存的道路封闭，其他进程的封闭编辑在本进程可能过时；"
                        "GeoPackage 请用 --workers 1 / this store cannot drop its cached road "
                        "closures: other processes' closure edits may look stale here; run a "
                        "GeoPackage with --workers 1"
                    )
                api.analysis.edited(layer)
            api.bus.publish(cursor)
    finally:
        conn.close()


def _die_with_parent() -> None:
    """Linux: have the kernel stop this worker if the supervisor is killed (no orphans)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _worker(index: int, sock: socket.socket, run: Callable[[int, socket.socket], None]) -> int:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: None)  # uvicorn re-raises it after its graceful stop
    _die_with_parent()
    try:
        run(index, sock)
    except KeyboardInterrupt:
        return 0
    except BaseException:  # the supervisor reports a failed worker; show why first
        traceback.print_exc()
        sys.stderr.flush()
        return 1
    return 0


def supervise(
    socks: list[socket.socket], workers: int, run: Callable[[int, socket.socket], None]
) -> int:
    """Fork ``workers`` processes running ``run(index, socket)``; wait, replace, stop them.

    Parameters
    ----------
    socks
        From :func:`listen_sockets`: worker ``i`` serves ``socks[i % len(socks)]``.
    workers
        How many processes.
    run
        What a worker does (serve until told to stop), called with its index (1..N).

    Returns
    -------
    int
        0 after a requested stop; 1 when workers kept failing to start.
    """
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    children: dict[int, tuple[int, float]] = {}  # pid -> (index, started)
    failures = 0
    status = 0

    def start(index: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                code = _worker(index, socks[(index - 1) % len(socks)], run)
            finally:
                os._exit(code)
        children[pid] = (index, time.monotonic())

    try:
        for i in range(1, workers + 1):
            start(i)
        signalled = False
        deadline = float("inf")
        while children:
            if stopping and not signalled:
                signalled = True
                deadline = time.monotonic() + STOP_WAIT_S
                for pid in children:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
            if time.monotonic() > deadline:
                for pid in children:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                deadline = float("inf")
            pid, code = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                time.sleep(0.05)
                continue
            index, started = children.pop(pid)
            if stopping:
                continue
            rc = os.waitstatus_to_exitcode(code)
            quick = time.monotonic() - started < START_GRACE_S
            failures = failures + 1 if quick else 0
            print(
                f"工作进程 {index} 退出（{rc}）/ worker {index} exited ({rc})"
                + ("" if failures < 3 else "; 连续启动失败，停止 / it keeps failing, stopping"),
                file=sys.stderr,
                flush=True,
            )
            if failures >= 3:
                status, stopping = 1, True
                continue
            start(index)
    except BaseException:  # e.g. fork failed: leave no worker behind
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        raise
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    return status


__all__ = [
    "JOURNAL_POLL_S",
    "WORKER_HEADER",
    "can_fork",
    "listen_sockets",
    "supervise",
    "watch_journal",
]

"""Serving the web map: flask for requests, an asyncio stream endpoint for ``/events``, uvicorn.

Why this stack. Under a threaded WSGI server every open map held a server thread for its event
stream, so 70 open maps starved every other request. Here:

* **uvicorn** (ASGI, asyncio) owns the sockets. ``/events`` is a coroutine per open map on one
  event loop (:class:`webmap.core.streams.StreamHub`): no thread per client, one event-log read
  per edit for all of them, heartbeats from one timer.
* **flask stays as it is** for every other request, run by **a2wsgi**'s WSGI-to-ASGI adapter on
  a bounded pool of worker threads. The request handlers are CPU and C-library work (GDAL,
  SQLite, shapely) that must not run on the loop; a thread pool keeps them off it.
* The event bus is a ``threading.Condition`` that flask workers and the PostGIS ``LISTEN``
  thread publish to; the hub subscribes one listener that wakes the loop with
  ``call_soon_threadsafe``. So PostGIS's ``LISTEN/NOTIFY`` (a blocking psycopg connection in its
  own thread) needs no async driver, and each process wakes its streams on any process's edit.
* Not gevent: monkey-patching would put the flask handlers and the streams on one hub, where a
  1,000-feature page or a GDAL call (C code that does not yield) stalls every stream, and
  psycopg/SQLite would need green-thread support. Not waitress: its I/O loop spins over
  connections a worker is still writing, and each stream holds a worker thread.

Opening a stream. A map that reconnects (every ``sse_max_s``, after a network blip, 1,000 of them
after a restart) must not cost a flask request each: ~1 ms of CPU on a worker thread, so 250
reconnects per event took more CPU than the 0.25 s between events. So the common handshake is
checked on the loop (:meth:`WebMapASGI.fast_start`, a few tens of microseconds): no
``Authorization`` header, and either no session cookie or one whose signature flask's own
serializer verified before (remembered until it would expire) and whose user the users database
still has enabled; then :meth:`webmap.core.api.WebMapAPI.events_start` runs the one
authorisation and parameter check that the flask view also runs, and the stream starts with the
headers flask gives it. Everything else (HTTP Basic, a bad or unknown cookie, a removed user, a
permanent session, any error) goes the slow way: the flask request runs on a worker thread with a
marker in the scope, its view checks and records the event id to start after, and answers an
empty 200 whose headers the stream then uses; any error response is passed through unchanged.
So a refusal is always flask's own answer, and both ways decide with the same code.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl

from a2wsgi import WSGIMiddleware
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import BadSignature
from werkzeug.http import parse_cookie

from webmap.app import ASYNC_EVENTS, SESSION_COOKIE
from webmap.core.errors import ApiError
from webmap.core.http import ApiRequest
from webmap.core.security import security_headers
from webmap.core.streams import StreamHub, StreamsFullError
from webmap.workers import WORKER_HEADER, can_fork, listen_sockets, supervise, watch_journal

DEFAULT_THREADS = 16
"""Worker threads for flask requests (event streams need none; local choice: more threads only
contend for the GIL on 2-4 cores)."""
EVENTS_PATH = "/events"
_DROP = frozenset({b"content-length", b"transfer-encoding"})
SLOW_PATH = object()
"""What :meth:`WebMapASGI.fast_start` returns when flask must check the request."""
SESSION_CACHE_MAX = 4096
"""Verified session cookies remembered (local choice: a county's logged-in maps, many times)."""

Scope = dict[str, Any]


class WebMapASGI:
    """The ASGI application: ``/events`` on the event loop, everything else through flask.

    Parameters
    ----------
    app
        The flask application from ``webmap.create_app``.
    threads
        Worker threads for flask requests.
    worker
        This process's number (1..N) when ``geo-mz serve`` runs several; every response then
        names it in an ``X-Worker`` header. 0: the only process, no header.
    """

    def __init__(self, app: Any, *, threads: int = DEFAULT_THREADS, worker: int = 0) -> None:
        api = app.extensions["webmap"]
        s = api.settings
        self.flask = app
        self.api = api
        self.hub = StreamHub(
            api.store,
            api.bus,
            live=api.analysis.live,
            heartbeat_s=s.sse_keepalive_s,
            max_s=s.sse_max_s,
            max_streams=s.sse_max_streams,
            max_per_client=s.sse_max_streams_per_client,
            retry_after_s=s.sse_retry_after_s,
        )
        self.wsgi = WSGIMiddleware(app, workers=threads)
        self.worker_header = (WORKER_HEADER, str(worker).encode()) if worker else None
        self.fast_events = type(app.session_interface) is SecureCookieSessionInterface
        """Check common ``/events`` handshakes on the loop (False: always through flask)."""
        self._signer = app.session_interface.get_signing_serializer(app)
        self._session_max_age_s = int(app.permanent_session_lifetime.total_seconds())
        self._sessions: dict[str, tuple[dict[str, Any], float]] = {}
        # the headers the flask view gives a stream (tests compare them), in its order
        self._stream_headers = [
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
            (b"content-type", b"text/event-stream; charset=utf-8"),
            *((k.lower().encode(), v.encode()) for k, v in security_headers(s).items()),
            (b"vary", b"Cookie"),
        ]

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Serve one ASGI connection (HTTP or lifespan)."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if self.worker_header is not None:
            send = _with_header(send, self.worker_header)
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path = scope["path"]
            root = scope.get("root_path", "")
            if path == EVENTS_PATH or (root and path == root + EVENTS_PATH):
                await self._events(scope, receive, send)
                return
        await self.wsgi(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.hub.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.hub.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _events(self, scope: Scope, receive: Any, send: Any) -> None:
        addr = (scope.get("client") or ("unknown", 0))[0]
        try:
            client = self.hub.admit(addr)
        except StreamsFullError as exc:
            await _refuse(send, str(exc), exc.retry_after_s)
            return
        watcher: asyncio.Task[None] | None = None
        try:
            last_id = self.fast_start(scope) if self.fast_events else SLOW_PATH
            if last_id is not SLOW_PATH:
                headers = self._stream_headers
            else:
                checked = await self._flask_start(scope, receive, send)
                if checked is None:
                    return
                last_id, headers = checked
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            if scope["method"] == "HEAD":
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            watcher = asyncio.create_task(_watch_disconnect(receive, client.end))
            async for text in self.hub.stream(client, last_id):  # type: ignore[arg-type]
                await send({"type": "http.response.body", "body": text.encode(), "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if watcher is not None:
                watcher.cancel()
            self.hub.release(client)

    def fast_start(self, scope: Scope) -> Any:
        """Check a stream request on the loop: the id to replay after, or ``SLOW_PATH``.

        Parameters
        ----------
        scope
            The ASGI scope of a ``GET``/``HEAD /events`` request.

        Returns
        -------
        int, None or SLOW_PATH
            The event id to replay after (None: the next event), or ``SLOW_PATH`` when the
            flask view must check the request. Only a request flask would accept without
            touching its answer's cookies is decided here, by the same
            ``WebMapAPI.events_start``; any doubt goes to flask, whose answer (an error
            included) is then the one sent.
        """
        headers: dict[str, str] = {}
        for key, value in scope.get("headers", ()):
            name = key.decode("latin-1").title()
            if name in headers or name == "Authorization":
                return SLOW_PATH  # HTTP Basic (login throttle and all), or a repeated header
            headers[name] = value.decode("latin-1")
        query = scope.get("query_string", b"")
        if not query.isascii():
            return SLOW_PATH
        user = None
        cookie = parse_cookie(headers.get("Cookie", "")).get(SESSION_COOKIE)
        if cookie:
            data = self._verified_session(cookie)
            if data is None or data.get("_permanent"):
                return SLOW_PATH  # bad or expired signature, or a cookie flask would refresh
            name = data.get("user")
            if isinstance(name, str):
                user = self.api.users.get(name)
                if user is None:
                    return SLOW_PATH  # removed or disabled: flask clears the session cookie
        args: dict[str, str] = {}
        for key, value in parse_qsl(query.decode("ascii"), keep_blank_values=True):
            args.setdefault(key, value)  # the first of repeated keys, like flask's to_dict()
        req = ApiRequest(method=scope["method"], args=args, headers=headers, user=user)
        try:
            return self.api.events_start(req)
        except ApiError:
            return SLOW_PATH  # flask answers the error, exactly as it always has

    def _verified_session(self, cookie: str) -> dict[str, Any] | None:
        """Return the session of a cookie whose signature flask's serializer accepts, else None.

        A verification is remembered (HMAC once per cookie, not per reconnect) until the
        cookie's age would pass flask's limit, ``PERMANENT_SESSION_LIFETIME``.
        """
        now = time.time()
        hit = self._sessions.get(cookie)
        if hit is not None and now - hit[1] <= self._session_max_age_s:
            return hit[0]
        if self._signer is None:
            return None
        try:
            data, signed = self._signer.loads(
                cookie, max_age=self._session_max_age_s, return_timestamp=True
            )
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        if len(self._sessions) >= SESSION_CACHE_MAX:
            self._sessions.clear()
        self._sessions[cookie] = (data, signed.timestamp())
        return data

    async def _flask_start(
        self, scope: Scope, receive: Any, send: Any
    ) -> tuple[int | None, list[tuple[bytes, bytes]]] | None:
        """Check a stream request with the flask view on a worker thread.

        Returns the id to replay after and the headers flask gave, or None once flask's
        error answer has been sent.
        """
        holder: dict[str, Any] = {}
        captured: list[dict[str, Any]] = []

        async def capture(message: dict[str, Any]) -> None:
            captured.append(message)

        await self.wsgi({**scope, ASYNC_EVENTS: holder}, receive, capture)
        start = captured[0] if captured else None
        if "last_id" not in holder or start is None or start.get("status") != 200:
            for message in captured:  # an error (401, 400, ...) exactly as flask made it
                await send(message)
            return None
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in _DROP]
        return holder["last_id"], headers


def _with_header(send: Any, header: tuple[bytes, bytes]) -> Any:
    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), header]}
        await send(message)

    return wrapped


async def _watch_disconnect(receive: Any, on_disconnect: Any) -> None:
    """End the stream as soon as the server reports the client gone (no write needed)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            on_disconnect()
            return


async def _refuse(send: Any, message: str, retry_after_s: int) -> None:
    import json

    body = json.dumps(
        {"code": "too_many_streams", "description": message}, ensure_ascii=False
    ).encode()
    headers = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(retry_after_s).encode()),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _config(asgi: WebMapASGI, *, host: str, port: int, log_level: str) -> Any:
    import uvicorn

    return uvicorn.Config(
        asgi,
        host=host,
        port=port,
        lifespan="on",
        http="h11",  # uvicorn's httptools protocol sends chunked bodies to HTTP/1.0 clients
        ws="none",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
        backlog=4096,
    )


def _server_class() -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn, ending the event streams first when asked to stop (they never end alone)."""

        asgi: WebMapASGI

        def handle_exit(self, sig: int, frame: Any) -> None:
            self.asgi.hub.stop_soon()
            super().handle_exit(sig, frame)

    return Server


def serve(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    threads: int = DEFAULT_THREADS,
    log_level: str = "warning",
    workers: int = 1,
    make_app: Callable[[], Any] | None = None,
) -> None:
    """Serve the web map until Ctrl-C / SIGTERM (what ``geo-mz serve`` runs).

    Parameters
    ----------
    app
        The flask application from ``webmap.create_app``; its API is closed on return (with
        several workers: before they start, each worker building its own with ``make_app``).
    host, port
        Where to listen.
    threads
        Worker threads for flask requests, per process (event streams use none).
    log_level
        uvicorn's log level.
    workers
        Server processes (forked, one ``SO_REUSEPORT`` socket each; see ``webmap.workers``).
    make_app
        Builds a worker's flask application; required when ``workers`` > 1.

    Raises
    ------
    RuntimeError
        Several workers on a platform without ``fork`` (Windows).
    SystemExit
        With status 1 when the workers keep failing to start.
    """
    _raise_open_files_limit()
    if workers > 1:
        if make_app is None or not can_fork():
            app.extensions["webmap"].close()
            raise RuntimeError(
                "此平台不支持多个工作进程，请用 --workers 1 / several workers need fork "
                "(Linux, macOS); use --workers 1"
            )
        _serve_workers(app, make_app, host, port, threads, log_level, workers)
        return
    asgi = WebMapASGI(app, threads=threads)
    sock = _listen(host, port, asgi.hub.heartbeat_s)
    if port == 0:  # the address printed before binding had no port yet
        print(f"端口 / port: {sock.getsockname()[1]}", file=sys.stderr, flush=True)
    _run(asgi, sock, log_level)


def _run(asgi: WebMapASGI, sock: socket.socket, log_level: str) -> None:
    """Serve on ``sock`` in this process until stopped, then release the app."""
    host, port = sock.getsockname()[:2]
    server = _server_class()(_config(asgi, host=host, port=port, log_level=log_level))
    server.asgi = asgi
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the Ctrl-C it handled; the server has stopped cleanly
    finally:
        asgi.wsgi.executor.shutdown(wait=False)
        asgi.api.close()
        sock.close()


def _serve_workers(
    app: Any,
    make_app: Callable[[], Any],
    host: str,
    port: int,
    threads: int,
    log_level: str,
    workers: int,
) -> None:
    api = app.extensions["webmap"]
    heartbeat_s = api.settings.sse_keepalive_s
    poll_journal = not api.settings.database_url  # PostGIS workers LISTEN instead
    api.close()  # the supervisor serves nothing: each worker builds its own app after fork
    socks = listen_sockets(host, port, workers, lambda s: _set_user_timeout(s, heartbeat_s))
    if port == 0:  # the address printed before binding had no port yet
        print(f"端口 / port: {socks[0].getsockname()[1]}", file=sys.stderr, flush=True)

    def run(index: int, sock: socket.socket) -> None:
        for other in socks:
            if other is not sock:
                other.close()
        asgi = WebMapASGI(make_app(), threads=threads, worker=index)
        stop = threading.Event()
        if poll_journal:
            threading.Thread(
                target=watch_journal, args=(asgi.api, stop), name="webmap-journal", daemon=True
            ).start()
        try:
            _run(asgi, sock, log_level)
        finally:
            stop.set()

    try:
        status = supervise(socks, workers, run)
    finally:
        for sock in socks:
            sock.close()
    if status:
        raise SystemExit(status)


@contextlib.contextmanager
def running(app: Any, *, threads: int = 8, host: str = "127.0.0.1") -> Iterator[tuple[str, Any]]:
    """Serve ``app`` exactly as :func:`serve` does, on a free port in a thread (tests, benches).

    Parameters
    ----------
    app
        The flask application.
    threads
        Worker threads for flask requests.
    host
        Loopback address to listen on.

    Yields
    ------
    tuple of (str, WebMapASGI)
        The root URL and the ASGI application (``.hub.open_streams`` counts open streams).
    """
    _raise_open_files_limit()
    asgi = WebMapASGI(app, threads=threads)
    sock = _listen(host, 0, asgi.hub.heartbeat_s)
    port = sock.getsockname()[1]
    server = _server_class()(_config(asgi, host=host, port=port, log_level="warning"))
    server.asgi = asgi
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="webmap-asgi", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("服务器未能启动 / the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}", asgi
    finally:
        asgi.hub.stop_soon()
        server.should_exit = True
        thread.join(timeout=15)
        asgi.wsgi.executor.shutdown(wait=False)
        asgi.api.close()
        sock.close()


def _listen(host: str, port: int, heartbeat_s: float) -> socket.socket:
    """Open the listening socket; connections inherit a give-up time for unacknowledged data.

    A map whose computer vanished (no FIN, no RST) would keep its stream until TCP gives up,
    ~15 minutes: with ``TCP_USER_TIMEOUT`` (Linux) a heartbeat left unacknowledged for two
    heartbeats closes the connection, and the stream is freed.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    _set_user_timeout(sock, heartbeat_s)
    sock.bind((host, port))
    sock.listen(4096)
    sock.set_inheritable(True)
    return sock


def _set_user_timeout(sock: socket.socket, heartbeat_s: float) -> None:
    user_timeout = getattr(socket, "TCP_USER_TIMEOUT", None)
    if user_timeout is not None:
        sock.setsockopt(socket.IPPROTO_TCP, user_timeout, int(2 * heartbeat_s * 1000))


def _raise_open_files_limit() -> None:
    """Each open map is a socket: lift the soft open-files limit to the hard one (Unix)."""
    try:
        import resource
    except ImportError:  # Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 65_536 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


__all__ = ["DEFAULT_THREADS", "SLOW_PATH", "WebMapASGI", "running", "serve"]

"""Helpers for tests of the web map: a sample workspace with users, copied per test.

Building the Pengjiang sample takes a few seconds, so :func:`sample_base` builds it once into a
folder (reused when already there) and :func:`fresh_settings` copies it for a test that edits.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from webmap.settings import Settings

PASSWORD = "correct-horse-9"
"""Password of every test user."""
USERS = {"viewer1": "viewer", "reporter1": "reporter", "commander1": "commander", "admin1": "admin"}
"""Test users by name, one per role."""
SECRET = "test-secret-key-0123456789abcdef"
_WORKSPACE = "pengjiang.gpkg"
_USERS_DB = "pengjiang.users.sqlite"


def sample_base(directory: str | Path) -> Path:
    """Build the Pengjiang sample workspace and its users once into ``directory``.

    Parameters
    ----------
    directory
        Folder for ``pengjiang.gpkg`` and ``pengjiang.users.sqlite``; when both exist already
        they are reused.

    Returns
    -------
    Path
        The folder.
    """
    from geo_mz.demo import sample_workspace
    from webmap.core.users import UserStore

    d = Path(directory)
    done = d / ".complete"
    if done.is_file():
        return d
    d.mkdir(parents=True, exist_ok=True)
    sample_workspace(d / _WORKSPACE)
    users = UserStore(d / _USERS_DB)
    for name, role in USERS.items():
        users.add(name, role, PASSWORD, overwrite=True)
    done.write_text("ok\n", encoding="utf-8")
    return d


def fresh_settings(base: str | Path, target: str | Path, **changes: object) -> Settings:
    """Copy the sample workspace and users into ``target``; return settings for the copy.

    Parameters
    ----------
    base
        A folder made by :func:`sample_base`.
    target
        An empty folder (created).
    **changes
        Settings to change from the defaults (e.g. ``sse_keepalive_s=0.1``).

    Returns
    -------
    Settings
        With a new, empty journal: no events, no audit rows, no closures.
    """
    src, dst = Path(base), Path(target)
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / _WORKSPACE, dst / _WORKSPACE)
    shutil.copy2(src / _USERS_DB, dst / _USERS_DB)
    return Settings(workspace=dst / _WORKSPACE, secret_key=SECRET, **changes)  # type: ignore[arg-type]


@contextmanager
def running_server(app: Any, *, threads: int = 8) -> Iterator[str]:
    """Serve a flask app with waitress on a free loopback port, in a thread, for a test.

    Parameters
    ----------
    app
        The application (from :func:`webmap.create_app`).
    threads
        Waitress worker threads (each open event stream holds one).

    Yields
    ------
    str
        The root URL, e.g. ``http://127.0.0.1:40123``. On exit, event streams are ended and
        the server is closed from its own loop thread (no socket is closed under its feet).
    """
    import waitress

    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=threads)
    thread = threading.Thread(target=server.run, name="webmap-test-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        api = app.extensions.get("webmap")
        if api is not None:
            api.close()
        # Let every request (event streams included) finish first: a worker that writes after
        # the loop closed its wake-up pipe would fail.
        tasks = server.task_dispatcher
        deadline = time.monotonic() + 10
        while (tasks.active_count or tasks.queue) and time.monotonic() < deadline:
            time.sleep(0.02)

        def stop() -> None:
            for channel in list(server._map.values()):
                if channel is not server and channel is not server.trigger:
                    channel.handle_close()
            server.close()

        server.trigger.pull_trigger(stop)
        thread.join(timeout=10)
        server.task_dispatcher.shutdown()


INSIDE = (113.0, 22.7)
"""A lon/lat point inside the Pengjiang sample district."""


def basic_auth(name: str, password: str = PASSWORD) -> dict[str, str]:
    """Return the ``Authorization`` header of HTTP Basic for a test user (a script's login)."""
    token = base64.b64encode(f"{name}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def post_incident(
    root: str,
    description: str,
    *,
    kind: str = "fire",
    lonlat: tuple[float, float] = INSIDE,
    user: str = "reporter1",
    timeout_s: float = 30.0,
) -> tuple[dict[str, Any], int]:
    """Report an incident as a script does (HTTP Basic), not through a page; expect 201.

    Parameters
    ----------
    root
        The server's root URL.
    description
        The report's text.
    kind
        Its ``kind`` code.
    lonlat
        Where, lon/lat.
    user
        A test user (password :data:`PASSWORD`) of role reporter or higher.
    timeout_s
        How long the request may take.

    Returns
    -------
    tuple
        The created feature (GeoJSON) and the event id of the edit (``X-Event-Id``).
    """
    body = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": list(lonlat)},
        "properties": {"kind": kind, "description": description},
    }
    req = urllib.request.Request(
        root + "/collections/incidents/items",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **basic_auth(user)},
    )
    with urllib.request.urlopen(req, timeout=timeout_s) as r:
        if r.status != 201:
            raise AssertionError(f"POST incident answered {r.status}, not 201")
        return json.load(r), int(r.headers["X-Event-Id"])


CLI_CODE = "import sys; from geo_mz.cli import main; sys.exit(main())"
"""Python code that runs the ``geo-mz`` command line (``python -c CLI_CODE serve ...``)."""


class ServerStartError(RuntimeError):
    """A ``geo-mz serve`` process exited, or did not answer in time; the message holds its log."""


def start_serve(
    args: Sequence[str], log: str | Path, *, secret_key: str = SECRET
) -> subprocess.Popen[bytes]:
    """Start ``geo-mz serve ARGS``, the real command line, in a new process.

    Parameters
    ----------
    args
        The command's arguments after ``serve`` (``--workspace``, ``--port``, ...).
    log
        File for the process's output (stdout and stderr).
    secret_key
        Session key (``GEO_MZ_SECRET_KEY``).

    Returns
    -------
    subprocess.Popen
        The process; stop it with ``terminate`` or ``send_signal`` and wait for it.
    """
    cmd = [sys.executable, "-c", CLI_CODE, "serve", *args]
    env = {**os.environ, "GEO_MZ_SECRET_KEY": secret_key}
    with Path(log).open("wb") as fh:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)


def wait_ready(
    root: str, proc: subprocess.Popen[bytes], log: str | Path, *, ready_s: float = 60.0
) -> dict[str, str]:
    """Wait until a server process answers ``GET /conformance`` with 200.

    Parameters
    ----------
    root
        Its root URL, e.g. ``http://127.0.0.1:40123``.
    proc
        The process (from :func:`start_serve`).
    log
        Its output file, quoted when it fails.
    ready_s
        How long it may take.

    Returns
    -------
    dict
        The headers of that answer, names in lower case.

    Raises
    ------
    ServerStartError
        When the process exits first or does not answer within ``ready_s``.
    """
    deadline = time.monotonic() + ready_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = Path(log).read_text(errors="replace")
            raise ServerStartError(f"服务进程已退出 / server exited: {text}")
        try:
            with urllib.request.urlopen(f"{root}/conformance", timeout=2) as r:
                if r.status == 200:
                    return {k.lower(): v for k, v in r.headers.items()}
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    text = Path(log).read_text(errors="replace")
    raise ServerStartError(f"服务未启动 / server did not start: {text}")


__all__ = [
    "CLI_CODE",
    "INSIDE",
    "PASSWORD",
    "SECRET",
    "USERS",
    "ServerStartError",
    "basic_auth",
    "fresh_settings",
    "post_incident",
    "running_server",
    "sample_base",
    "start_serve",
    "wait_ready",
]

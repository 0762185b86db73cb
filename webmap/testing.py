"""Helpers for tests of the web map: a sample workspace with users, copied per test.

Building the Pengjiang sample takes a few seconds, so :func:`sample_base` builds it once into a
folder (reused when already there) and :func:`fresh_settings` copies it for a test that edits.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
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


__all__ = ["PASSWORD", "SECRET", "USERS", "fresh_settings", "running_server", "sample_base"]

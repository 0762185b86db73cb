"""A throwaway PostgreSQL + PostGIS cluster for tests, and web map processes served from it.

:func:`temp_cluster` runs initdb/pg_ctl on a temp dir and a free port; :func:`serve_processes`
starts ``geo-mz serve --database`` processes over it (the multi-process deployment) and
:class:`EventStream` reads their ``/events`` streams.

Needs the server binaries (Debian: ``postgresql-15`` or any ``postgresql-NN``, found under
``/usr/lib/postgresql/*/bin`` or on ``PATH``) and PostGIS (``postgresql-NN-postgis-3``).
PostgreSQL refuses to run as root; as root the cluster runs as the ``postgres`` system user.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from webmap.testing import ServerStartError, start_serve, wait_ready

DB_NAME = "geo_mz_test"
DB_USER = "geo_mz"


class ClusterUnavailableError(RuntimeError):
    """The PostgreSQL binaries or the PostGIS extension are missing."""


def find_bindir() -> Path | None:
    """Directory holding ``initdb`` and ``pg_ctl`` (newest installed version), or None."""
    env = os.environ.get("GEO_MZ_PG_BINDIR")
    if env and (Path(env) / "pg_ctl").is_file():
        return Path(env)
    cands = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name or 0)
    )
    for d in reversed(cands):
        if (Path(d) / "initdb").is_file() and (Path(d) / "pg_ctl").is_file():
            return Path(d)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def free_port() -> int:
    """Return a free loopback TCP port (bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise ClusterUnavailableError(
            "以 root 运行但没有 postgres 用户 / running as root and there is no `postgres` user"
        ) from exc
    return ["runuser", "-u", "postgres", "--"]


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} 失败 / failed:\n{proc.stdout}\n{proc.stderr}")


@contextmanager
def temp_cluster() -> Iterator[str]:
    """Start a cluster with a database where ``postgis`` is created; yield its URL.

    Raises
    ------
    ClusterUnavailableError
        When the binaries or the PostGIS extension are missing.
    """
    bindir = find_bindir()
    if bindir is None:
        raise ClusterUnavailableError(
            "未找到 PostgreSQL 服务程序(initdb、pg_ctl)，请安装 postgresql / no PostgreSQL server "
            "binaries (initdb, pg_ctl)"
        )
    user = _as_user()
    root = Path(tempfile.mkdtemp(prefix="geo_mz_pg_"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if user:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    port = free_port()
    started = False
    try:
        _run([*user, str(bindir / "initdb"), "-D", str(data), "-U", DB_USER, "--auth=trust",
              "-E", "UTF8", "--no-locale"])  # fmt: skip
        opts = (
            f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        _run([*user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w",
              "-t", "60", "-o", opts, "start"])  # fmt: skip
        started = True
        import psycopg

        admin = f"postgresql://{DB_USER}@127.0.0.1:{port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DB_NAME}")
        url = f"postgresql://{DB_USER}@127.0.0.1:{port}/{DB_NAME}"
        with psycopg.connect(url, autocommit=True) as conn:
            try:
                conn.execute("CREATE EXTENSION postgis")
            except psycopg.Error as exc:
                raise ClusterUnavailableError(
                    "无法创建 PostGIS 扩展，请安装 postgis / CREATE EXTENSION postgis failed: "
                    f"{exc}"
                ) from exc
        yield url
    finally:
        if started:
            subprocess.run(
                [*user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
                check=False,
            )
            time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def serve_processes(
    database_url: str,
    users_db: str | Path,
    log_dir: str | Path,
    *,
    secret_key: str,
    count: int = 2,
    threads: int = 8,
    ready_s: float = 60.0,
) -> Iterator[list[str]]:
    """Serve one PostGIS database from ``count`` separate ``geo-mz serve`` processes.

    Each process runs the real command line (``serve --database ... --lang en``) on its own free
    loopback port, its output in ``log_dir/serve_<n>.log``. All are started before any is
    waited for, so they start side by side; all are stopped on exit (terminate, then kill).

    Parameters
    ----------
    database_url
        ``postgresql://`` URL of a database a workspace was imported into.
    users_db
        The users' SQLite file.
    log_dir
        Folder for the logs.
    secret_key
        Session key (``GEO_MZ_SECRET_KEY``), the same for every process.
    count
        Number of processes.
    threads
        ``--threads`` of each process.
    ready_s
        How long each may take to answer ``/conformance``.

    Yields
    ------
    list of str
        The root URL of each process (``http://127.0.0.1:PORT``).

    Raises
    ------
    ServerStartError
        When a process exits or does not answer within ``ready_s``; the message holds its log.
    """
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    roots: list[str] = []
    try:
        for n in range(count):
            port = free_port()
            log = Path(log_dir) / f"serve_{n}.log"
            args = ["--database", database_url, "--users", str(users_db), "--port", str(port),
                    "--threads", str(threads), "--lang", "en"]  # fmt: skip
            procs.append((start_serve(args, log, secret_key=secret_key), log))
            roots.append(f"http://127.0.0.1:{port}")
        for (proc, log), root in zip(procs, roots, strict=True):
            wait_ready(root, proc, log, ready_s=ready_s)
        yield roots
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


class EventStream:
    """A Server-Sent Events reader over urllib, for a web map's ``/events`` stream.

    Parameters
    ----------
    url
        The stream's URL.
    last_id
        Sent as ``Last-Event-ID`` (the server replays what came after it).
    timeout_s
        Socket timeout: how long one read may wait for a line.
    """

    def __init__(self, url: str, *, last_id: int | None = None, timeout_s: float = 60.0) -> None:
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = str(last_id)
        req = urllib.request.Request(url, headers=headers)
        self.resp = urllib.request.urlopen(req, timeout=timeout_s)
        kind = self.resp.headers["Content-Type"] or ""
        first = self.resp.readline()
        if not kind.startswith("text/event-stream") or not first.startswith(b"retry:"):
            self.resp.close()
            raise RuntimeError(f"{url} is not an event stream ({kind!r}, first line {first!r})")

    def next_event(self, deadline: float) -> dict[str, Any] | None:
        """Read the next event before ``deadline`` (``time.monotonic()``), else None.

        Returns ``{"id": int or None, "event": str, "data": parsed JSON}``; comments are skipped.
        """
        fields: dict[str, str] = {}
        while time.monotonic() < deadline:
            line = self.resp.readline().decode().rstrip("\n")
            if line.startswith(":"):
                continue
            if line:
                key, _, value = line.partition(": ")
                fields[key] = value
                continue
            if "event" in fields:
                return {
                    "id": int(fields["id"]) if "id" in fields else None,
                    "event": fields["event"],
                    "data": json.loads(fields.get("data", "null")),
                }
            fields = {}
        return None

    def until(self, kind: str, within_s: float) -> tuple[list[str], Any]:
        """Read until an event ``kind``: the kinds seen before it, and its data (None if none)."""
        seen: list[str] = []
        deadline = time.monotonic() + within_s
        while (event := self.next_event(deadline)) is not None:
            if event["event"] == kind:
                return seen, event["data"]
            seen.append(event["event"])
        return seen, None

    def close(self) -> None:
        """Close the connection."""
        self.resp.close()


__all__ = [
    "DB_NAME",
    "ClusterUnavailableError",
    "EventStream",
    "ServerStartError",
    "find_bindir",
    "free_port",
    "serve_processes",
    "temp_cluster",
]

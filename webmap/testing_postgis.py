"""A throwaway PostgreSQL + PostGIS cluster for tests (initdb/pg_ctl on a temp dir and port).

Needs the server binaries (Debian: ``postgresql-15`` or any ``postgresql-NN``, found under
``/usr/lib/postgresql/*/bin`` or on ``PATH``) and PostGIS (``postgresql-NN-postgis-3``).
PostgreSQL refuses to run as root; as root the cluster runs as the ``postgres`` system user.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
        raise ClusterUnavailableError("running as root and there is no `postgres` user") from exc
    return ["runuser", "-u", "postgres", "--"]


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")


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
        raise ClusterUnavailableError("no PostgreSQL server binaries (initdb, pg_ctl)")
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
                raise ClusterUnavailableError(f"CREATE EXTENSION postgis failed: {exc}") from exc
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


__all__ = ["DB_NAME", "ClusterUnavailableError", "find_bindir", "free_port", "temp_cluster"]

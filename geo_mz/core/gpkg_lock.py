"""Lock a GeoPackage workspace as SQLite does, with locks no other file handle can drop.

SQLite coordinates processes with POSIX advisory locks on a few bytes of the database file
(``PENDING``, ``RESERVED`` and the 510-byte ``SHARED`` range at 1 GiB). Classic POSIX locks
(``F_SETLK``) belong to the *process*: closing *any* descriptor of the file drops them all, and
two handles of one process never conflict. SQLite's own library works around that for its own
connections; GDAL (pyogrio) brings a second SQLite library into the web map's process, which
knows nothing of Python's ``sqlite3``. So a Python write transaction next to GDAL reads of the
same file is unsafe: a GDAL open or close drops the writer's locks (measured: another process
then took the write lock mid-transaction), and a GDAL read in another thread does not conflict
with the writer at all.

Open-file-description locks (``F_OFD_SETLK``, Linux 3.15+) are the fix: they belong to one
``open()`` of the file, survive ``close()`` of every other descriptor, and conflict with
classic locks *even inside one process*. The web map's row writer (``webmap.core.gpkg_rows``) takes
SQLite's exclusive lock with them on a descriptor it keeps open, and then writes through a
SQLite connection that takes no locks of its own (the ``unix-none`` VFS) while it holds it.
Every other SQLite user - GDAL here or in another process, ``sqlite3``, QGIS - sees an ordinary
SQLite writer. Inside this process, threads share the descriptor, so a readers-writer lock
orders them: the web map's own GDAL reads of the workspace hold it shared, the write holds it
exclusively (no GDAL handle is opened or closed in this process during a write).

Without OFD locks (macOS, Windows) :data:`OFD_LOCKS` is False and the row writer keeps the
copy-and-replace write.
"""

from __future__ import annotations

import errno
import os
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

PENDING_BYTE = 0x40000000
"""SQLite's lock bytes (``os_unix.c``), the same for every SQLite library on the machine."""
RESERVED_BYTE = PENDING_BYTE + 1
SHARED_FIRST = PENDING_BYTE + 2
SHARED_SIZE = 510

OFD_LOCKS = fcntl is not None and hasattr(fcntl, "F_OFD_SETLK")
"""Whether this platform has open-file-description locks (Linux)."""
LOCK_TIMEOUT_S = 10.0
"""How long a write waits for readers and other writers (SQLite's busy timeout elsewhere)."""

_F_RDLCK, _F_WRLCK, _F_UNLCK = 0, 1, 2  # <fcntl.h> values on Linux


class WorkspaceBusyError(Exception):
    """The workspace stayed locked by other readers or writers past the timeout."""


def _flock(kind: int, start: int, length: int) -> bytes:
    # struct flock: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid
    # (native alignment pads it to 32 bytes); OFD locks need l_pid = 0.
    return struct.pack("hhqqi4x", kind, os.SEEK_SET, start, length, 0)


def _try(fd: int, kind: int, start: int, length: int) -> bool:
    """Place or release an OFD lock without waiting; False when another holder conflicts."""
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock(kind, start, length))
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _unlock(fd: int) -> None:
    _try(fd, _F_UNLCK, PENDING_BYTE, SHARED_FIRST + SHARED_SIZE - PENDING_BYTE)


class WorkspaceLock:
    """SQLite's exclusive lock on one file for this process's writer; a readers-writer lock.

    Use :func:`workspace_lock` to get the one object per file and process.

    Parameters
    ----------
    path
        The database file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._waiting = 0
        self._mine = threading.local()
        self._fd: int | None = None
        self._ino: int | None = None
        self._owner: int | None = None  # the thread holding ``exclusive`` (it may nest)

    # -- in-process readers-writer lock -----------------------------------------------------
    @contextmanager
    def shared(self) -> Iterator[None]:
        """Hold off this process's writer while GDAL (or anything) reads the file here.

        Re-entrant in one thread; a waiting writer goes before new readers of other threads.
        """
        depth = getattr(self._mine, "depth", 0)
        if depth == 0:
            with self._cond:
                while self._writing or self._waiting:
                    self._cond.wait()
                self._readers += 1
        self._mine.depth = depth + 1
        try:
            yield
        finally:
            self._mine.depth = depth
            if depth == 0:
                with self._cond:
                    self._readers -= 1
                    if self._readers == 0:
                        self._cond.notify_all()

    @contextmanager
    def exclusive(self, *, write: bool = True, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[int]:
        """Hold SQLite's EXCLUSIVE lock on the file (and this process's readers off).

        With ``write=False`` the file lock is SQLite's SHARED instead: nobody writes the file
        while it is held, but GDAL may read it (a whole-layer write copies the file then).
        Yields the locked file's inode (the one the path names: a file replaced while the
        lock was awaited is let go and the new one locked).

        Raises
        ------
        WorkspaceBusyError
            When readers or another writer keep the file past ``timeout_s``.
        """
        if getattr(self._mine, "depth", 0):
            raise RuntimeError(f"{self.path}: a write inside a read of the same thread")
        if self._owner == threading.get_ident():
            # Nested in this thread's own exclusive hold (the web map's whole-layer write calls
            # the workspace's, which locks too): the outer hold already excludes everyone.
            yield int(self._ino)
            return
        with self._cond:
            self._waiting += 1
            try:
                while self._writing or self._readers:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._writing = True
            self._owner = threading.get_ident()
        try:
            while True:
                fd = self._descriptor()
                self._lock_file(fd, write, timeout_s)
                if os.stat(self.path).st_ino == self._ino:
                    break
                _unlock(fd)  # replaced while we waited: lock the file the path names now
            try:
                yield int(self._ino)
            finally:
                _unlock(fd)
        finally:
            with self._cond:
                self._writing = False
                self._owner = None
                self._cond.notify_all()

    # -- the file lock ----------------------------------------------------------------------
    def _descriptor(self) -> int:
        """Return this process's descriptor of the file the path names (reopened if replaced)."""
        st = os.stat(self.path)
        if self._fd is not None and self._ino == st.st_ino:
            return self._fd
        fd = os.open(self.path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        if self._fd is not None:
            # The old file was replaced (a whole-layer write renames a copy over it): nobody
            # writes it in place any more, so dropping this process's locks on it is harmless.
            os.close(self._fd)
        self._fd, self._ino = fd, int(os.fstat(fd).st_ino)
        return fd

    def _lock_file(self, fd: int, write: bool, timeout_s: float) -> None:
        """Lock as SQLite does (``unixLock``).

        EXCLUSIVE: RESERVED, then PENDING (new readers wait), then the SHARED range (the
        readers are gone). SHARED: PENDING (no writer is waiting), the SHARED range, PENDING
        let go again.
        """
        deadline = time.monotonic() + timeout_s
        pause = 0.0005
        held: list[tuple[int, int]] = []
        steps = (
            [(RESERVED_BYTE, 1), (PENDING_BYTE, 1), (SHARED_FIRST, SHARED_SIZE)]
            if write
            else [(PENDING_BYTE, 1), (SHARED_FIRST, SHARED_SIZE)]
        )
        kind = _F_WRLCK if write else _F_RDLCK
        for start, length in steps:
            while not _try(fd, kind, start, length):
                if time.monotonic() > deadline:
                    for s, n in held:
                        _try(fd, _F_UNLCK, s, n)
                    raise WorkspaceBusyError(
                        f"工作空间 {self.path} 被其他读写占用超过 {timeout_s:g} 秒，编辑未写入 / "
                        f"the workspace {self.path} stayed locked by other readers or writers "
                        f"for over {timeout_s:g} s; the edit was not written"
                    )
                time.sleep(pause)
                pause = min(pause * 2, 0.005)
            held.append((start, length))
        if not write:
            _try(fd, _F_UNLCK, PENDING_BYTE, 1)


_LOCKS: dict[str, WorkspaceLock] = {}
_LOCKS_GUARD = threading.Lock()


def workspace_lock(path: str | Path) -> WorkspaceLock:
    """Return this process's lock object of a workspace file (one per file and process).

    Parameters
    ----------
    path
        The workspace ``.gpkg``.
    """
    key = str(Path(path).resolve())
    with _LOCKS_GUARD:
        lock = _LOCKS.get(key)
        if lock is None:
            lock = _LOCKS[key] = WorkspaceLock(Path(key))
        return lock


def _after_fork() -> None:
    # OFD locks belong to the open file description, which a fork shares: a worker must open
    # the file itself or its locks would not exclude its siblings'. The parent's objects (and
    # their thread state) are dropped, not used.
    global _LOCKS_GUARD
    _LOCKS.clear()
    _LOCKS_GUARD = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


__all__ = [
    "LOCK_TIMEOUT_S",
    "OFD_LOCKS",
    "PENDING_BYTE",
    "RESERVED_BYTE",
    "SHARED_FIRST",
    "SHARED_SIZE",
    "WorkspaceBusyError",
    "WorkspaceLock",
    "workspace_lock",
]

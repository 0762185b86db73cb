"""Temporary copies beside a file, each owned by the process writing it; dead owners' are removed.

An atomic write (``Workspace`` writes) goes to a copy ``.<name>.<token>.tmp.gpkg`` beside the
file and replaces the file with one ``os.replace``. A writer killed before that (SIGKILL, power
loss) leaves the copy behind, with SQLite's ``-journal``/``-wal``/``-shm`` files: a whole
workspace, hundreds of MB. So each copy has an owner lock ``.<name>.<token>.tmp.lock`` that the
writer holds with ``fcntl.flock`` for as long as the copy exists and that records the owner
(pid, host, process start, boot id, time). The kernel releases the lock when the owner dies, by
any means. :func:`clean_stale_temps` (run whenever a workspace is opened) removes the copies
whose lock is free, and never one whose lock is held: a live writer's copy stays.

Where ``flock`` is not available (no ``fcntl``, or a filesystem refusing it) the owner record
decides: a copy is removed only when its owner ran on this host and that process is gone.
Copies without a lock (made by geo_mz before locks were added) are removed once nothing has
touched them for :data:`UNOWNED_AGE_S`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: the owner record alone decides
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".tmp.lock"
"""Suffix of a copy's owner lock, after ``.<name>.<token>``."""
SQLITE_SIDECARS = ("-journal", "-wal", "-shm")
"""Files SQLite keeps beside a database while writing it."""
UNOWNED_AGE_S = 3600.0
"""A copy without an owner lock (older geo_mz) is stale once untouched (ctime) this long: a
write rewrites its copy continuously, so an hour without a change means no writer (local
choice)."""

_TOKEN = r"[A-Za-z0-9_]+"


@dataclass(frozen=True)
class Removed:
    """Files of one stale copy that :func:`clean_stale_temps` removed.

    Attributes
    ----------
    files
        The paths removed (the copy, its SQLite sidecars, its lock).
    owner
        The owner record from the lock (``pid``, ``host``, ...); empty for an unlocked copy.
    failed
        Paths that could not be removed, with the reason.
    """

    files: list[Path]
    owner: dict[str, Any]
    failed: list[tuple[Path, str]]


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks since boot (Linux), None when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces; start time is field 22.
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def owner_record() -> dict[str, Any]:
    """Describe this process as the owner of a copy: pid, host, start ticks, boot id, time."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "start_ticks": _start_ticks(os.getpid()),
        "boot_id": _boot_id(),
        "created": time.time(),
    }


def _owner_alive(owner: dict[str, Any]) -> bool:
    """Whether the process in an owner record may still run (True when it cannot be told)."""
    if owner.get("host") != socket.gethostname() or not isinstance(owner.get("pid"), int):
        return True  # another machine's process cannot be checked from here
    boot = _boot_id()
    if boot is not None and owner.get("boot_id") not in (None, boot):
        return False  # written before this machine's last boot
    pid = owner["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    ticks = _start_ticks(pid)
    return ticks is None or owner.get("start_ticks") in (None, ticks)  # else a reused pid


def _flock(fd: int, *, block: bool) -> bool | None:
    """Take an exclusive flock: True when taken, False when held elsewhere, None unsupported."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return None
        raise
    return True


def temp_files(target: str | Path) -> list[Path]:
    """List the temporary copies, sidecars and locks beside ``target`` (any owner).

    Parameters
    ----------
    target
        The file the copies are of (e.g. a workspace ``.gpkg``).

    Returns
    -------
    list of Path
        Sorted by name.
    """
    return sorted(p for group in _groups(Path(target)).values() for p in group)


def _groups(target: Path) -> dict[str, list[Path]]:
    """Return the copy-related files beside ``target``, by token."""
    pattern = re.compile(
        re.escape(f".{target.name}.")
        + f"({_TOKEN})"
        + r"\.tmp\.(?:lock|[A-Za-z0-9]+(?:-journal|-wal|-shm)?)$"
    )
    groups: dict[str, list[Path]] = {}
    try:
        entries = list(os.scandir(target.parent))
    except (FileNotFoundError, PermissionError):
        return groups  # a folder that cannot be listed has no copies this process could remove
    for entry in entries:
        m = pattern.match(entry.name)
        if m:
            groups.setdefault(m[1], []).append(Path(entry.path))
    for files in groups.values():
        files.sort()  # the copy before its sidecars, the lock last
    return groups


@contextmanager
def owned_temp(target: str | Path, suffix: str = ".tmp.gpkg") -> Iterator[Path]:
    """Yield a path for a new temporary copy beside ``target``, owned by this process.

    The owner lock is created already held (so no cleaner can take it for a dead owner's) before
    the copy exists and released only after the copy and its SQLite sidecars are gone. The
    caller creates the copy at the yielded path and usually ``os.replace``-s it over ``target``.

    Parameters
    ----------
    target
        The file the copy is of.
    suffix
        The copy's suffix; must start with ``.tmp.``.

    Yields
    ------
    Path
        A path that does not exist yet.
    """
    target = Path(target)
    if not suffix.startswith(".tmp."):
        raise ValueError(f"suffix {suffix!r} must start with '.tmp.'")
    while True:
        fd, name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=LOCK_SUFFIX, dir=target.parent
        )
        _flock(fd, block=True)
        try:
            same = os.stat(name).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        # A cleaner took the fresh lock file for a dead owner's between mkstemp and flock and
        # removed it: start again with a new one.
        os.close(fd)
    lock = Path(name)
    tmp = lock.with_name(lock.name[: -len(LOCK_SUFFIX)] + suffix)
    try:
        os.fchmod(fd, 0o644)  # others opening the workspace may check the lock (mkstemp: 0600)
        os.write(fd, json.dumps(owner_record()).encode())
        yield tmp
    finally:
        try:
            for p in (tmp, *(Path(f"{tmp}{s}") for s in SQLITE_SIDECARS)):
                p.unlink(missing_ok=True)
            lock.unlink(missing_ok=True)
        finally:
            os.close(fd)  # releases the lock, after the files it guards are gone


def clean_stale_temps(
    target: str | Path, *, unowned_age_s: float = UNOWNED_AGE_S, notify: bool = True
) -> list[Removed]:
    """Remove the temporary copies beside ``target`` whose writer is gone; keep live writers'.

    A copy is stale when its owner lock is free (its writer died: the kernel released it), or,
    where locks are not supported, when its owner ran on this host and is not running; a copy
    without a lock when untouched for ``unowned_age_s``. Each removal is logged (warning, in
    Chinese and English).

    Parameters
    ----------
    target
        The file the copies are of.
    unowned_age_s
        Age (seconds since the last change) after which an unlocked copy is removed.
    notify
        Log what was removed.

    Returns
    -------
    list of Removed
        One per stale copy removed.
    """
    target = Path(target)
    out = []
    for token, files in sorted(_groups(target).items()):
        lock = target.parent / f".{target.name}.{token}{LOCK_SUFFIX}"
        if lock in files:
            removed = _clean_locked(lock, files)
        else:
            removed = _clean_unowned(files, unowned_age_s)
        if removed is not None:
            out.append(removed)
            if notify:
                _notify(target, removed)
    return out


def _clean_locked(lock: Path, files: list[Path]) -> Removed | None:
    try:
        fd = os.open(lock, os.O_RDONLY)  # flock needs no write access
    except FileNotFoundError:
        return None  # its owner finished meanwhile
    except PermissionError:
        return None  # cannot be checked: keep
    try:
        taken = _flock(fd, block=False)
        if taken is False:
            return None  # a live writer holds it
        try:
            if os.stat(lock).st_ino != os.fstat(fd).st_ino:
                return None  # removed by another cleaner meanwhile
        except FileNotFoundError:
            return None
        with os.fdopen(os.dup(fd), "rb") as fh:
            text = fh.read().decode("utf-8", "replace")
        try:
            owner = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError:
            owner = {"record": text[:200]}
        if taken is None and (not owner or _owner_alive(owner)):
            return None  # no lock to tell, and the owner may be alive: keep
        # The lock goes last: while it exists and is held, no other cleaner touches the group.
        return _remove([p for p in files if p != lock] + [lock], owner)
    finally:
        os.close(fd)


def _clean_unowned(files: list[Path], unowned_age_s: float) -> Removed | None:
    now = time.time()
    try:
        newest = max(os.stat(p).st_ctime for p in files)
    except FileNotFoundError:
        return None
    if now - newest < unowned_age_s:
        return None
    return _remove(files, {})


def _remove(files: list[Path], owner: dict[str, Any]) -> Removed:
    done, failed = [], []
    for p in files:
        try:
            p.unlink()
            done.append(p)
        except FileNotFoundError:
            pass
        except OSError as exc:
            failed.append((p, exc.strerror or str(exc)))
    return Removed(done, owner, failed)


def _notify(target: Path, r: Removed) -> None:
    who = (
        f"pid {r.owner.get('pid')} @ {r.owner.get('host')}"
        if "pid" in r.owner
        else "未知 / unknown (no owner lock)"
    )
    if r.files:
        names = ", ".join(p.name for p in r.files)
        log.warning(
            "%s：已删除中断写入留下的临时文件（写入进程 %s 已不在运行）：%s / "
            "removed temporary files of an interrupted write (writer %s no longer runs): %s",
            target,
            who,
            names,
            who,
            names,
        )
    for p, why in r.failed:
        log.warning(
            "%s：无法删除中断写入留下的临时文件 %s（%s），请手动删除 / "
            "could not remove %s, left by an interrupted write (%s); delete it by hand",
            target,
            p,
            why,
            p,
            why,
        )


__all__ = [
    "LOCK_SUFFIX",
    "SQLITE_SIDECARS",
    "UNOWNED_AGE_S",
    "Removed",
    "clean_stale_temps",
    "owned_temp",
    "owner_record",
    "temp_files",
]

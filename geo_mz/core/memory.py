"""Peak memory of the running process, for run tables and benchmarks.

:func:`peak_rss_mib` reads the process's peak resident set size (the most physical memory it
has held at once), :func:`rss_mib` the current one, and :func:`reset_peak_rss` starts a new
peak where the system allows it, so a worker can report the peak of each part it computes::

    reset_peak_rss()
    compute_one_part()
    info["peak_rss_mib"] = peak_rss_mib()

On Linux the peak is ``VmHWM`` of ``/proc/self/status``, which ``reset_peak_rss`` resets
(``/proc/self/clear_refs``, Linux 4.0 and later). Elsewhere it is ``getrusage``'s
``ru_maxrss`` (kibibytes on Linux, bytes on macOS), the peak since the process started, and
:func:`reset_peak_rss` returns False. Windows has neither; there the peak comes from
``psutil`` when it is installed.

Threads share the process: with several parts computed at once in one worker, each part's
peak is the process's peak while it ran (an upper bound for that part).

:func:`freeze_gc_once` takes the objects a worker process holds after its imports out of
Python's cyclic collector (``gc.freeze``), once per process: see its docstring for why.
"""

from __future__ import annotations

import gc
import os
import re
import sys
from pathlib import Path

__all__ = ["freeze_gc_once", "peak_rss_mib", "reset_peak_rss", "rss_mib"]

_FROZEN_IN: int | None = None
"""The process id that froze its objects (a forked child has its own)."""

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_HWM = re.compile(r"^VmHWM:\s+(\d+)\s+kB", re.MULTILINE)
_RSS = re.compile(r"^VmRSS:\s+(\d+)\s+kB", re.MULTILINE)


def _status_kib(pattern: re.Pattern[str] = _HWM) -> int | None:
    """Read a ``Vm...`` line in KiB from ``/proc/self/status``; None where there is no such line."""
    try:
        text = _STATUS.read_text()
    except OSError:
        return None
    m = pattern.search(text)
    return int(m.group(1)) if m else None


def rss_mib() -> float:
    """Resident set size of this process now, in MiB.

    Returns
    -------
    float
        Physical memory held now (``VmRSS`` on Linux, ``psutil`` elsewhere).

    Raises
    ------
    OSError
        Outside Linux when ``psutil`` is not installed.
    """
    kib = _status_kib(_RSS)
    if kib is not None:
        return kib / 1024
    try:
        import psutil
    except ImportError as exc:
        raise OSError(
            "无法读取进程内存：请安装 psutil / cannot read the memory of this process here: "
            "install psutil"
        ) from exc
    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mib() -> float:
    """Peak resident set size of this process, in MiB.

    Returns
    -------
    float
        The most physical memory the process has held at once since it started, or since
        the last :func:`reset_peak_rss` that returned True.

    Raises
    ------
    OSError
        On a system that reports no peak (Windows without ``psutil``).
    """
    kib = _status_kib()
    if kib is not None:
        return kib / 1024
    try:
        import resource
    except ImportError:
        resource = None
    if resource is not None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024
    try:
        import psutil
    except ImportError as exc:
        raise OSError(
            "无法读取进程内存峰值：本系统没有 resource 模块，请安装 psutil / cannot read the "
            "peak memory of this process: no `resource` module here; install psutil"
        ) from exc
    return psutil.Process().memory_info().peak_wset / 2**20


def reset_peak_rss() -> bool:
    """Start a new peak: set the peak resident set size to the current one (Linux only).

    Returns
    -------
    bool
        True if the peak was reset; False where the system keeps one peak for the process's
        lifetime (then :func:`peak_rss_mib` keeps reporting that).
    """
    if _status_kib() is None:
        return False
    try:
        # "5" resets the high-water mark of the resident set (proc(5), Linux >= 4.0).
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def freeze_gc_once() -> bool:
    """Collect, then move every object alive now out of the cyclic collector's reach, once.

    A process that computes part after part (a Dask worker of a partitioned run) holds about
    100,000 objects from its imports (pandas, GeoPandas, shapely, pyproj, Dask) that are never
    garbage. Python's full collections walk all of them, and a part that creates thousands of
    shapely geometries (which the collector tracks) triggers such collections: measured on the
    Guangdong workload, a county coverage part spent 12 ms of its 77 in full collections that
    collected nothing, and parts ran 38 % faster with the import-time objects frozen
    (``gc.freeze``, as the Python documentation advises for long-lived server processes).
    Objects frozen here are still freed when their reference count drops; only a cycle among
    them that later becomes garbage is never collected, which is why a process freezes once,
    right after ``gc.collect``, and only processes that geo_mz runs for parts do.

    Returns
    -------
    bool
        True when this call froze (the first in this process), False after.
    """
    global _FROZEN_IN
    pid = os.getpid()
    if pid == _FROZEN_IN:
        return False
    gc.collect()
    gc.freeze()
    _FROZEN_IN = pid
    return True

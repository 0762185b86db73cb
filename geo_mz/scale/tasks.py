"""What runs on the workers of a partitioned run, and how parts become Dask tasks.

:func:`run_part` computes one part on a worker (or in this process) and saves it to the run
store; :func:`run_parts` computes several, one Dask task; :func:`task_chunks` groups a run's
parts into tasks; :func:`dask_client` starts a local cluster or joins a scheduler. Split out of
:mod:`geo_mz.scale.runner` (which re-exports these names and drives the runs).
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from typing import Any

from geo_mz.core.memory import freeze_gc_once, peak_rss_mib, reset_peak_rss
from geo_mz.scale.jobs import job_function
from geo_mz.scale.part_inputs import run_layer_digests
from geo_mz.scale.part_memo import dask_worker_address, keep_part_rows, memo_options
from geo_mz.scale.partition import Part
from geo_mz.scale.parts import ScaleError
from geo_mz.scale.store import RunStore, open_run_store

SCHEDULER_ENV = "GEO_MZ_DASK_SCHEDULER"
GC_FREEZE_ENV = "GEO_MZ_GC_FREEZE"
"""``0``: workers keep the cyclic collector as Python starts it (default: ``freeze_gc_once``)."""


def run_part(
    job: str,
    workspace: str,
    store: str | None,
    key: str,
    part: Part,
    options: Mapping[str, Any],
    digests: Mapping[str, str] | None = None,
    first_of: str | None = None,
    reads: _TaskReads | None = None,
) -> dict[str, Any]:
    """Compute one part (on a worker); never raises: a failure comes back as a record.

    With ``store`` given the results are saved there by this call; otherwise they come back
    in ``frames`` for the caller to save. ``digests``: the run's layer digests (the worker
    keeps the layers every part reads under them, ``run_layer_digests``). A two-pass job's
    first pass keeps the part's own rows in this process (``geo_mz.scale.part_memo``);
    its second pass, given the first pass's key as ``first_of``, takes them when this process
    has them and computes them again when not. ``reads``: the task's workspace and snapshot
    (``_TaskReads``), else the part opens the workspace itself.
    """
    from geo_mz.core.workspaces import open_workspace

    t0 = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    dask_worker = dask_worker_address()
    if dask_worker is not None and os.environ.get(GC_FREEZE_ENV, "1") != "0":
        freeze_gc_once()  # a worker process: its import-time objects out of the GC
    try:
        ws = reads.workspace() if reads is not None else open_workspace(workspace)
        reset_peak_rss()
        extra, kept_rows = memo_options(job, part.code, first_of)
        with run_layer_digests(digests):
            frames, log = job_function(job)(ws, part, **options, **extra)
        if kept_rows:  # the part's own rows stay here for its second pass, not in the store
            log = log | {"rows_kept": keep_part_rows(key, part.code, frames)}
            frames = {k: v for k, v in frames.items() if k not in kept_rows}
        if "first" in extra:
            log = log | {"first_pass_reused": True}
        info = {"job": job, "name": part.name, "seconds": time.perf_counter() - t0,
                "worker": worker, "peak_rss_mib": round(peak_rss_mib(), 1),
                "dask_worker": dask_worker, **log}  # fmt: skip
        if store is not None:
            worker_store(store).save(key, part.code, frames, info)
            return {"part": part.code, "ok": True, "info": info}
        return {"part": part.code, "ok": True, "info": info, "frames": frames}
    except Exception as exc:
        if reads is not None:
            reads.end(failed=True)  # its transaction may be aborted: the next part opens anew
        seconds = time.perf_counter() - t0
        return _failed(part, exc, {"job": job, "name": part.name, "seconds": seconds,
                                   "worker": worker})  # fmt: skip


def _failed(part: Part, exc: BaseException, info: Mapping[str, Any]) -> dict[str, Any]:
    """Return the record of a part that failed with ``exc`` (its error, trace and log)."""
    return {
        "part": part.code,
        "ok": False,
        "error": f"{type(exc).__name__}: {exc}",
        "trace": "".join(traceback.format_exception(exc, limit=6)),
        "info": dict(info),
    }


def run_parts(
    job: str,
    workspace: str,
    store: str | None,
    key: str,
    parts: Sequence[Part],
    options: Sequence[Mapping[str, Any]],
    digests: Mapping[str, str] | None = None,
    first_of: str | None = None,
) -> list[dict[str, Any]]:
    """Compute several parts one after the other (one Dask task): :func:`run_part` for each.

    Each part has its own record, time, peak memory and error, as when it is a task alone.
    With a store that saves behind (``save_behind``: PostGIS), a part's save is sent by a
    thread of its own while the next part is computed: the database inserts one part's rows
    as the worker computes the next, where the worker used to wait for it. Each save is still
    one transaction (rows and done-mark), and every record comes back only after its save
    ended: ``ok`` means committed; a save that failed makes its part's record a failure
    (nothing of it kept), the other parts' results stay.
    """
    pairs = list(zip(parts, options, strict=True))
    behind = None if store is None else getattr(worker_store(store), "save_behind", None)
    reads = _TaskReads(workspace) if _TaskReads.takes(workspace) else None
    with reads if reads is not None else nullcontext():
        if behind is None:
            return [run_part(job, workspace, store, key, p, o, digests, first_of, reads)
                    for p, o in pairs]  # fmt: skip
        return _run_saving_behind(job, workspace, worker_store(store), behind, key, pairs,
                                  digests, first_of, reads)  # fmt: skip


def _run_saving_behind(
    job: str,
    workspace: str,
    rs: RunStore,
    behind: Callable[..., Any],
    key: str,
    pairs: list[tuple[Part, Mapping[str, Any]]],
    digests: Mapping[str, str] | None,
    first_of: str | None,
    reads: _TaskReads | None,
) -> list[dict[str, Any]]:
    """:func:`run_parts` with a store that saves behind: part k's save beside part k+1."""
    out: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="geo_mz-save") as pool:
        sending: tuple[Part, dict[str, Any], Any] | None = None
        for p, o in pairs:
            rec = run_part(job, workspace, None, key, p, o, digests, first_of, reads)
            send = None  # what sends this part's save, prepared in this thread
            if rec["ok"]:
                try:
                    send = _prepare_save(rs, behind, key, p, rec)
                except Exception as exc:
                    rec = _failed(p, exc, rec["info"])
            if sending is not None:  # the part before: its save has had this part's time
                out.append(_settled(rs, key, *sending))
            sending = None if send is None else (p, rec, pool.submit(send))
            if send is None:
                out.append(rec)
        if sending is not None:
            out.append(_settled(rs, key, *sending))
    return out  # in the parts' order: a part's record follows the one before's


def _prepare_save(
    rs: RunStore, behind: Callable[..., Any], key: str, part: Part, rec: dict[str, Any]
) -> Callable[[], bool] | None:
    """Prepare a computed part's save (its frames leave ``rec``); None: saved here already.

    The store's ``save_behind`` gives what sends the save; when it cannot (a table to
    create or widen: a job's first parts) the part is saved here, the usual way.
    """
    frames = rec.pop("frames")
    send = behind(key, part.code, frames, rec["info"])
    if send is None:
        rs.save(key, part.code, frames, rec["info"])
        return None

    def sent() -> bool:
        if send():
            return True
        rec["frames_again"] = frames  # the tables changed meanwhile: saved the usual way
        return False

    return sent


def _settled(rs: RunStore, key: str, part: Part, rec: dict[str, Any], fut: Any) -> dict[str, Any]:
    """Wait for a part's save sent behind; return its record (a failure if the save failed)."""
    try:
        if not fut.result():
            rs.save(key, part.code, rec.pop("frames_again"), rec["info"])
    except Exception as exc:
        return _failed(part, exc, rec["info"])
    rec.pop("frames_again", None)
    return rec


class _TaskReads:
    """A task's parts read one workspace object in one snapshot (a PostGIS workspace).

    Each part of a PostGIS workspace used to open the workspace (a query) and read its inputs
    in snapshots of its own (a lock, a transaction and the catalog each: 2 round trips and
    ≈ 2.5 ms a snapshot, two a county part). A task's parts share one: the first part's
    read opens it, every part sees the same data (no writer's commit in between: writers
    wait for the task), and a part that fails ends it as an error ends a snapshot (its
    connection closed, the lock with it), so the next part starts a fresh one. A
    GeoPackage is opened by each part as before (``takes`` is False).
    """

    def __init__(self, ref: str) -> None:
        self.ref = ref
        self._ws: Any = None
        self._snapshot: Any = None

    @staticmethod
    def takes(ref: str) -> bool:
        """Whether the workspace ``ref`` is one a task reads so (a PostGIS URL)."""
        return str(ref).startswith(("postgresql://", "postgres://"))

    def workspace(self) -> Any:
        """Return the workspace, its snapshot open (opened by the first call)."""
        if self._snapshot is None:
            from geo_mz.core.workspaces import open_workspace

            ws = open_workspace(self.ref)
            snapshot = ws.snapshot()
            snapshot.__enter__()
            self._ws, self._snapshot = ws, snapshot
        return self._ws

    def end(self, *, failed: bool = False) -> None:
        """End the snapshot, if open: cleanly, or (``failed``) as an error ends it.

        Ended as by an error, the snapshot's connection is closed (which frees its lock), not
        committed: a failed part may have left its transaction aborted.
        """
        snapshot, self._snapshot, self._ws = self._snapshot, None, None
        if snapshot is None:
            return
        if not failed:
            snapshot.__exit__(None, None, None)
            return
        stop = _SnapshotAbandonedError()
        snapshot.__exit__(_SnapshotAbandonedError, stop, None)  # re-raised inside, not here

    def __enter__(self) -> _TaskReads:
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        self.end(failed=exc is not None)


class _SnapshotAbandonedError(Exception):
    """Thrown into a task's snapshot to end it as an error ends it (never raised out)."""


PARTS_PER_TASK_ENV = "GEO_MZ_PARTS_PER_TASK"
"""Parts computed by one Dask task; unset: :func:`task_chunks` chooses."""
TASKS_PER_WORKER = 12
"""At least this many tasks per worker when parts are grouped (load balance at the end)."""
MAX_PARTS_PER_TASK = 8


def task_chunks(
    parts: Sequence[Part], n_workers: int, placed: Mapping[str, str] | None = None
) -> list[list[Part]]:
    """Group parts into Dask tasks: several small parts a task when there are many parts.

    Each task costs the driving process and the scheduler a few milliseconds, as much as a
    county's coverage part; with 123 county parts on 2 workers that time is taken from the
    workers (measured: 2 workers gave 1.63× one). Parts are grouped so that each worker still
    gets at least :data:`TASKS_PER_WORKER` tasks, at most :data:`MAX_PARTS_PER_TASK` parts a
    task (``GEO_MZ_PARTS_PER_TASK`` sets the number). The parts, largest first, are dealt out
    to the tasks in turn, so every task holds large and small ones; a second pass groups only
    parts whose first pass ran on the same worker (``placed``: part code -> worker).

    Parameters
    ----------
    parts
        The parts to compute, largest first.
    n_workers
        Workers of the cluster.
    placed
        Where each part's first pass ran (a second pass goes there); empty or None otherwise.

    Returns
    -------
    list of list
        Every part exactly once.
    """
    given = os.environ.get(PARTS_PER_TASK_ENV, "").strip()
    if given:
        try:
            per = int(given)
        except ValueError:
            per = 0
        if per < 1:
            raise ScaleError(
                f"{PARTS_PER_TASK_ENV}={given!r}：须为正整数 / must be a whole number of "
                "parts, 1 or more"
            )
    else:
        per = len(parts) // (TASKS_PER_WORKER * max(n_workers, 1))
        per = max(1, min(MAX_PARTS_PER_TASK, per))
    groups: dict[str | None, list[Part]] = {}
    for p in parts:
        groups.setdefault((placed or {}).get(p.code), []).append(p)
    chunks: list[list[Part]] = []
    for members in groups.values():
        n = -(-len(members) // per)  # tasks for this group
        chunks += [members[i::n] for i in range(n)]
    return chunks


def worker_store(ref: str) -> RunStore:
    """Return the run store ``ref``, opened once per process (a worker saves part after part).

    Opening a GeoPackage store reads its table list; the store object itself keeps no state
    a save depends on, so one serves every part of this process.
    """
    rs = _WORKER_STORES.get(ref)
    if rs is None:
        rs = _WORKER_STORES[ref] = open_run_store(ref)
    return rs


_WORKER_STORES: dict[str, RunStore] = {}


@contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """Yield a Dask client: to ``scheduler`` (or ``$GEO_MZ_DASK_SCHEDULER``), else a LocalCluster.

    The local cluster has ``workers`` single-threaded worker processes (default: one per CPU),
    no dashboard and quiet logs.
    """
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ScaleError(
            "分区并行计算需要 Dask：pip install 'geo-mz[scale]' / partitioned runs need Dask: "
            "pip install 'geo-mz[scale]'"
        ) from exc
    import logging

    address = scheduler or os.environ.get(SCHEDULER_ENV)
    if address:
        try:
            client = Client(address, timeout="20s")
        except OSError as exc:
            raise ScaleError(
                f"无法连接 Dask 调度器 {address}：{exc} / cannot reach the Dask scheduler at "
                f"{address}: {exc}"
            ) from exc
        try:
            yield client
        finally:
            client.close()
        return
    import dask

    n = workers or os.cpu_count() or 1
    with (
        dask.config.set(LOCAL_CLUSTER_CONFIG),  # the workers' nannies take it with them
        LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.CRITICAL,  # a heartbeat racing the shutdown logs ERROR
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


LOCAL_CLUSTER_CONFIG: dict[str, Any] = {"distributed.worker.profile.enabled": False}
"""Dask settings of the local cluster :func:`dask_client` starts. Each Dask worker samples its
running task's stack every 10 ms for the dashboard's profile; a part is thousands of short
Python calls, and the sampling cost ~8 % of the workers' CPU on the Guangdong coverage run.
A cluster of your own (``--scheduler``) keeps its own settings: set
``distributed.worker.profile.enabled: false`` in its Dask configuration for the same gain."""


__all__ = [
    "GC_FREEZE_ENV",
    "LOCAL_CLUSTER_CONFIG",
    "MAX_PARTS_PER_TASK",
    "PARTS_PER_TASK_ENV",
    "SCHEDULER_ENV",
    "TASKS_PER_WORKER",
    "dask_client",
    "run_part",
    "run_parts",
    "task_chunks",
    "worker_store",
]

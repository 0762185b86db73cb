"""Partitioned runs on Dask: each county (or town, or province) one task, results in a run store.

``run_partitioned("coverage", "ws.gpkg", by="county", store="runs.gpkg")`` cuts the
workspace's units of one level into parts (:mod:`geo_mz.scale.partition`), sends one task per part
to a Dask cluster — a ``LocalCluster`` of this machine by default, any scheduler by address
(``scheduler=`` or ``$GEO_MZ_DASK_SCHEDULER``) — and keeps each part's results in a run store
(:mod:`geo_mz.scale.store`) as soon as it is done. A part that raises is recorded with its error
and the others go on; running the same job again skips the parts already done, so a failed
part is rerun alone. The run's key holds a digest of every layer's data (:func:`run_key`), so
after an edit of the workspace by any tool a rerun computes every part again. ``workers=0``
runs the parts one by one in this process, without Dask (the reference the benchmark compares
with).

Workers open the workspace and the store themselves from their references (a GeoPackage path
every worker can read, or a ``postgresql://`` URL): only the part's code and outline travel
with a task. The workers also write their results: with a PostGIS store each part in one
transaction, with a GeoPackage store one GeoPackage per part, merged into the store by
:func:`gather`.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_mz.core.layer_digest import DIGEST_VERSION, layer_digests
from geo_mz.scale.jobs import (
    JOBS,
    job_function,
    job_layers,
    pass_names,
    reduce_first_pass,
    two_pass,
)
from geo_mz.scale.part_inputs import roads_extent
from geo_mz.scale.part_memo import (
    worker_preference,
)
from geo_mz.scale.partition import Part
from geo_mz.scale.partition_twopass import share_of
from geo_mz.scale.parts import (
    PREFIX_DIGITS,
    ScaleError,
    check_point_codes,
    city_parts,
    part_code,
    parts_of,
    province_parts,
)
from geo_mz.scale.store import RunStore, open_run_store
from geo_mz.scale.store_base import gather_layers
from geo_mz.scale.tasks import (
    GC_FREEZE_ENV,
    LOCAL_CLUSTER_CONFIG,
    PARTS_PER_TASK_ENV,
    SCHEDULER_ENV,
    dask_client,
    run_part,
    run_parts,
    task_chunks,
    worker_store,
)


@dataclass
class RunResult:
    """What a partitioned run did.

    Attributes
    ----------
    job, run_key
        The job and the run's key in the store (same job, workspace data and options: same key).
    store
        The run store's reference.
    parts
        One row per part: ``part``, ``name``, ``status`` (``done``, ``failed`` or ``skipped``:
        done by an earlier run), ``seconds``, ``error``.
    seconds
        Wall time of the run.
    workers
        Dask workers used (0: in this process).
    """

    job: str
    run_key: str
    store: str
    parts: pd.DataFrame
    seconds: float
    workers: int

    @property
    def failed(self) -> pd.DataFrame:
        """The parts that failed, with their errors."""
        return self.parts[self.parts["status"] == "failed"]

    @property
    def ok(self) -> bool:
        """Whether every part is done (now or earlier)."""
        return bool(self.failed.empty)


# --------------------------------------------------------------------------- keys


def _plain(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return _plain(asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in sorted(obj.items())}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, float | int | str | bool) or obj is None:
        return obj
    return str(obj)


def _workspace_ref(workspace: Any) -> str:
    """Return the reference a workspace is opened by: a GeoPackage path or a PostGIS URL."""
    if isinstance(workspace, str | Path):
        text = str(workspace)
        return text if text.startswith("postgres") else str(Path(text).resolve())
    ref = str(workspace.path)
    if ref.startswith("postgres") and "***" in ref:
        # The open workspace shows its URL with the password hidden; the digest needs it.
        raise ScaleError(
            f"{ref}: 请给出工作空间的 URL（含密码）而不是打开的工作空间 / give the workspace's "
            "URL (with its password), not the open workspace, to compute the run key"
        )
    return ref if ref.startswith("postgres") else str(Path(ref).resolve())


def run_key(
    job: str,
    workspace: Any,
    options: Mapping[str, Any],
    level: str,
    *,
    digests: Mapping[str, str] | None = None,
) -> str:
    """Return the run's key: a hash of the job, the level, the options and the workspace's data.

    The data enter as a digest of the stored rows and columns of each layer the job reads
    (``geo_mz.core.layer_digest.layer_digests``; the layers: ``JOB_LAYERS``), not as the
    layer records geo_mz writes on import: such a layer edited by any tool (QGIS, pyogrio,
    SQL) gives a new key, so a rerun computes every part again instead of reporting the
    results of the old data as done, while an edit of a layer the job does not read (an
    incident on the web map, for coverage) leaves its key. Reading the same data again gives
    the same key. The workspace's metadata enter too.

    Parameters
    ----------
    job
        As for :func:`run_partitioned`.
    workspace
        A GeoPackage path, a ``postgresql://…#schema`` URL (with its password, if it needs
        one), or an open GeoPackage workspace.
    options, level
        As for :func:`run_partitioned`.
    digests
        The layer digests when already computed (by ``layer_digests`` of the same workspace).

    Returns
    -------
    str
        ``<job>-<16 hex digits>``.
    """
    from geo_mz.core.workspaces import open_workspace

    ref = _workspace_ref(workspace)
    ws = workspace if not isinstance(workspace, str | Path) else open_workspace(ref)
    if digests is None:
        digests = jobs_digests(ref, ws, [job])
    return _key(job, ws.metadata, options, level, digests)


def jobs_digests(ws_ref: str, ws: Any, jobs: Sequence[str]) -> dict[str, str]:
    """Return the digests of the layers the jobs read (``JOB_LAYERS``), of those in ``ws``.

    Only these enter the jobs' keys, so only these are read (a national place-name table
    is not digested for a coverage run). Every recorded layer when a job does not say.

    Parameters
    ----------
    ws_ref
        The workspace's reference (a GeoPackage path, a PostGIS URL with its password).
    ws
        The workspace opened from it (for its list of layers).
    jobs
        Job names (passes too: ``<job>:1``).

    Returns
    -------
    dict
        Layer name to digest (``geo_mz.core.layer_digest.layer_digests``).
    """
    wanted = [job_layers(j) for j in jobs]
    if any(w is None for w in wanted):
        return layer_digests(ws_ref)
    names = sorted(frozenset().union(*wanted) & set(ws.layers()))
    return layer_digests(ws_ref, names)


def _file_digests(options: Mapping[str, Any]) -> dict[str, str]:
    """Return the SHA-256 of every option that names a file (a flood raster, closures).

    Their contents enter the run key, so a file edited in place is computed again.
    """
    from geo_mz.core.workspace import file_sha256

    out = {}
    for name, value in options.items():
        if isinstance(value, str | Path) and Path(value).is_file():
            out[name] = file_sha256(value)
    return out


def read_digests(job: str, digests: Mapping[str, str]) -> dict[str, str]:
    """Return the digests of the layers ``job`` reads, of those present (``JOB_LAYERS``).

    Every layer for a job that does not say. Only these enter the job's run key: an edit of
    another layer (an incident on the web map, a place name) leaves the key, and the parts
    done, as they were.
    """
    mine = job_layers(job)
    return {k: v for k, v in sorted(digests.items()) if mine is None or k in mine}


def changed_layers(job: str, recorded: Mapping[str, str], now: Mapping[str, str]) -> dict[str, str]:
    """Return how the layers ``job`` reads changed since a run: ``edited``, ``added``, ``removed``.

    Parameters
    ----------
    job
        The run's job (or pass, ``<job>:1``).
    recorded
        The layer digests the run recorded (its meta's ``layers``).
    now
        The workspace's digests now (:func:`jobs_digests`).

    Returns
    -------
    dict
        Layer name to its change, for the layers the job reads (``JOB_LAYERS``); empty when
        the run's data are the workspace's data now.
    """
    then, cur = read_digests(job, recorded), read_digests(job, now)
    out: dict[str, str] = {}
    for name in sorted(set(then) | set(cur)):
        if name not in then:
            out[name] = "added"
        elif name not in cur:
            out[name] = "removed"
        elif then[name] != cur[name]:
            out[name] = "edited"
    return out


def data_changed_since(store: str | Path | RunStore, run_key: str) -> tuple[str, dict] | None:
    """Return the last earlier run of the same job and settings, and how its data changed.

    The same job, level, options and workspace; the changes are those of the layers the job
    reads (:func:`changed_layers`): why a rerun computed every part again when only data
    changed, which ``scale run`` says after the run (``("coverage-…", {"population":
    "edited"})``).

    Parameters
    ----------
    store
        The run store.
    run_key
        The run just made (its meta holds its layers' digests).

    Returns
    -------
    tuple or None
        The earlier run's key and the changes (empty: the same data, other settings excluded
        since they are compared first).
    """
    rs = open_run_store(store) if isinstance(store, str | Path) else store
    runs = rs.runs()
    mine = runs[runs["run_key"] == run_key]
    if mine.empty:
        return None
    me = mine.iloc[-1]
    meta = json.loads(me["meta"] or "{}")
    same = ("level", "options", "workspace")
    earlier = runs[(runs["job"] == me["job"]) & (runs["run_key"] != run_key)]
    earlier = earlier[earlier["started_at"].astype(str) <= str(me["started_at"])]
    for r in earlier.sort_values("started_at", kind="stable").iloc[::-1].itertuples():
        old = json.loads(r.meta or "{}")
        if "layers" in old and all(old.get(k) == meta.get(k) for k in same):
            return str(r.run_key), changed_layers(str(me["job"]), old["layers"],
                                                  meta.get("layers", {}))  # fmt: skip
    return None


def _key(
    job: str,
    metadata: Mapping[str, Any],
    options: Mapping[str, Any],
    level: str,
    digests: Mapping[str, str],
) -> str:
    payload = {
        "job": job,
        "level": level,
        "options": _plain(dict(options)),
        "workspace": _plain(dict(metadata)),
        "digest_version": DIGEST_VERSION,
        "layers": read_digests(job, digests),
    }
    files = _file_digests(options)
    if files:
        payload["files"] = files
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False)
    return f"{job}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


# --------------------------------------------------------------------------- tasks


def _redacted(ref: str) -> str:
    from geo_mz.core.workspace_postgis import redact_url

    return redact_url(ref) if ref.startswith("postgres") else ref


def _largest_first(parts: Sequence[Part]) -> list[Part]:
    # Big parts first, so the last tasks of a run are short ones and no worker idles long.
    return sorted(parts, key=lambda p: -float(p.geometry.area))


def run_partitioned(
    job: str,
    workspace: str | Path,
    parts: Sequence[Part],
    *,
    store: str | Path,
    options: Mapping[str, Any] | None = None,
    level: str = "",
    scheduler: str | None = None,
    workers: int | None = None,
    progress: Callable[[int, int, str, str], None] | None = None,
    client: Any = None,
    digests: Mapping[str, str] | None = None,
    reuse: Mapping[str, Any] | None = None,
) -> RunResult:
    """Run ``job`` over ``parts`` on Dask and keep each part's results in ``store``.

    Parameters
    ----------
    job
        A name in :data:`geo_mz.scale.JOBS` (``coverage``, ``relief``, ``boundaries`` …). A
        two-pass job (:mod:`geo_mz.scale.jobs`) runs its first pass on every part, folds the
        results, then its second pass; the result is the second pass's.
    workspace
        The workspace every worker opens: a GeoPackage path (on a shared disk for a real
        cluster) or a ``postgresql://…#schema`` URL.
    parts
        From :func:`parts_of` / :func:`province_parts`.
    store
        Run store: a ``.gpkg`` path or a ``postgresql://…#schema`` URL.
    options
        Keyword options of the job's part function (settings, measure CRS, buffer).
    level
        The parts' level, recorded with the run.
    scheduler
        Dask scheduler address; None: ``$GEO_MZ_DASK_SCHEDULER`` or a LocalCluster.
    workers
        LocalCluster worker processes (default: one per CPU); 0 runs in this process.
    progress
        Called after each part with (parts finished, parts to run, part code, status).
    client
        A Dask client to use instead of starting one (several jobs on one cluster).
    digests
        The workspace's layer digests (``geo_mz.core.layer_digest.layer_digests``) when the
        caller computed them already, for several jobs of one command: the run keys then
        name the data as it was when the command started. None: computed here (about 3 s for
        a province's layers).
    reuse
        Options handed to every part that save work without changing any answer, so they do
        not enter the run key: ``times_run`` (a coverage run's store and key, whose parts'
        walking times capacity and gaps read instead of computing them again).

    Returns
    -------
    RunResult
    """
    from geo_mz.core.workspaces import open_workspace

    if job not in JOBS:
        raise ScaleError(
            f"未知的分析 {job!r}；可选 {sorted(JOBS)} / unknown job {job!r}; jobs are "
            f"{sorted(JOBS)}"
        )
    if not parts:
        raise ScaleError("没有要计算的分区 / no parts to run")
    ws_ref = (
        str(workspace) if str(workspace).startswith("postgres") else str(Path(workspace).resolve())
    )
    ws = open_workspace(ws_ref)
    opts = dict(options or {})
    t_key = time.perf_counter()
    if digests is None:  # run alone (``run_all`` checks once for all its jobs)
        check_point_codes(ws, parts, [job], level)
    digests = dict(digests) if digests is not None else jobs_digests(ws_ref, ws, [job])
    key_seconds = time.perf_counter() - t_key
    task_opts = {**opts, **dict(reuse or {})}
    steps = pass_names(job) if two_pass(job) else (job,)
    takes_bbox = all("roads_bbox" in inspect.signature(job_function(j)).parameters for j in steps)
    if takes_bbox and "roads_bbox" not in opts:
        # Once here rather than in every part: it reads the roads layer's R-tree or bounds.
        task_opts["roads_bbox"] = roads_extent(ws)
    rs: RunStore = open_run_store(store)
    local = workers == 0 and not scheduler and client is None
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if client is None and not local:
            client = stack.enter_context(dask_client(scheduler, workers))
        run = _Run(ws_ref, rs, parts, client, progress, digests)
        if not two_pass(job):
            key = _key(job, ws.metadata, opts, level, digests)
            table = run.tasks(job, key, task_opts, _meta(job, level, ws_ref, opts, digests,
                                                       len(parts), key_seconds))  # fmt: skip
        else:
            first, second = pass_names(job)
            key1 = _key(first, ws.metadata, opts, level, digests)
            table = run.tasks(first, key1, task_opts, _meta(first, level, ws_ref, opts, digests,
                                                          len(parts), key_seconds))  # fmt: skip
            key = _key(second, ws.metadata, opts, level, digests)
            if (table["status"] != "failed").all():
                layers = sorted(_schemas_of(rs, key1))
                shared = reduce_first_pass(job, gather_layers(rs, key1, layers))
                table = run.tasks(second, key, {**task_opts, "shared": shared},
                                  _meta(second, level, ws_ref, opts, digests, len(parts),
                                        key_seconds), first_of=key1)  # fmt: skip
    return RunResult(job, key, rs.ref, table, time.perf_counter() - t0, run.n_workers)


def _meta(
    job: str,
    level: str,
    ws_ref: str,
    opts: Mapping[str, Any],
    digests: Mapping[str, str],
    n_parts: int,
    key_seconds: float,
) -> dict[str, Any]:
    return {"job": job, "level": level, "workspace": _redacted(ws_ref),
            "options": _plain(opts), "parts": n_parts, "layers": read_digests(job, digests),
            "key_seconds": round(key_seconds, 3)}  # fmt: skip


def _schemas_of(rs: RunStore, key: str) -> set[str]:
    st = rs.status(key)
    names: set[str] = set()
    for rows in st.loc[st["status"] == "done", "rows"]:
        names |= set(json.loads(rows or "{}").get("layers", {}))
    return names


def _part_opts(task_opts: Mapping[str, Any], code: str) -> Mapping[str, Any]:
    # A reduced value can grow with the run (every part's cells): pickled into every task it
    # would cost parts x size, so a value that shares itself out sends each part its share.
    if "shared" not in task_opts:
        return task_opts
    return {**task_opts, "shared": share_of(task_opts["shared"], code)}


class _Run:
    """The tasks of one run: parts sent to Dask (or computed here), results kept as they come."""

    def __init__(
        self,
        ws_ref: str,
        rs: RunStore,
        parts: Sequence[Part],
        client: Any,
        progress: Callable[[int, int, str, str], None] | None,
        digests: Mapping[str, str] | None = None,
    ) -> None:
        self.ws_ref, self.rs, self.parts, self.client = ws_ref, rs, parts, client
        self.digests = dict(digests) if digests is not None else None
        self.say = progress or (lambda *_a: None)
        self.n_workers = 0
        self.placed: dict[str, str] = {}
        """Part code -> the Dask worker that computed it last (its second pass goes there)."""

    def tasks(
        self,
        job: str,
        key: str,
        task_opts: Mapping[str, Any],
        meta: Mapping[str, Any],
        first_of: str | None = None,
    ) -> pd.DataFrame:
        rs, parts = self.rs, self.parts
        rs.begin(key, meta)
        already = rs.done(key)
        todo = _largest_first([p for p in parts if p.code not in already])
        rows = [
            {
                "part": p.code,
                "name": p.name,
                "status": "skipped",
                "seconds": np.nan,
                "error": None,
                "peak_rss_mib": np.nan,
            }
            for p in parts
            if p.code in already
        ]

        def finish(res: Mapping[str, Any], n_done: int) -> None:
            info = dict(res.get("info", {}))
            if info.get("dask_worker"):
                self.placed[res["part"]] = str(info["dask_worker"])
            if res["ok"]:
                if "frames" in res:
                    rs.save(key, res["part"], res["frames"], info)
                status, error = "done", None
            else:
                error = f"{res['error']}\n{res.get('trace', '')}".strip()
                rs.fail(key, res["part"], error, info)
                status, error = "failed", res["error"]
            rows.append({"part": res["part"], "name": info.get("name"), "status": status,
                         "seconds": info.get("seconds", np.nan), "error": error,
                         "peak_rss_mib": info.get("peak_rss_mib", np.nan)})  # fmt: skip
            self.say(n_done, len(todo), res["part"], status)

        if self.client is None:
            for i, p in enumerate(todo, start=1):
                finish(run_part(job, self.ws_ref, None, key, p, _part_opts(task_opts, p.code),
                                self.digests, first_of), i)  # fmt: skip
        elif todo:
            from dask.distributed import as_completed

            client = self.client
            on_workers = rs.ref if rs.writes_on_workers else None
            self.n_workers = len(client.scheduler_info().get("workers", {}))
            chunks = task_chunks(todo, self.n_workers, self.placed if first_of else {})
            futures = {
                client.submit(run_parts, job, self.ws_ref, on_workers, key, chunk,
                              [_part_opts(task_opts, p.code) for p in chunk], self.digests,
                              first_of, key=f"{key}-{chunk[0].code}+{len(chunk) - 1}",
                              pure=False, retries=1,
                              **worker_preference(self.placed, chunk[0].code, first_of)): chunk
                for chunk in chunks
            }  # fmt: skip
            n_done = 0
            for fut in as_completed(futures):
                chunk = futures[fut]
                try:
                    results = fut.result()
                except Exception as exc:  # the task itself was lost (a worker died twice)
                    results = [{"part": p.code, "ok": False,
                                "error": f"{type(exc).__name__}: {exc}",
                                "info": {"job": job, "name": p.name}} for p in chunk]  # fmt: skip
                for res in results:
                    n_done += 1
                    finish(res, n_done)
        columns = ["part", "name", "status", "seconds", "error", "peak_rss_mib"]
        table = pd.DataFrame(rows, columns=columns)
        order = {p.code: i for i, p in enumerate(parts)}
        return table.sort_values("part", key=lambda s: s.map(order)).reset_index(drop=True)


def gather(store: str | Path | RunStore, key: str, layer: str) -> gpd.GeoDataFrame:
    """Every done part's rows of one result layer (``times``, ``units``, ``audit``, …)."""
    rs = open_run_store(store) if isinstance(store, str | Path) else store
    return rs.gather(key, layer)


__all__ = [
    "GC_FREEZE_ENV",
    "LOCAL_CLUSTER_CONFIG",
    "PARTS_PER_TASK_ENV",
    "PREFIX_DIGITS",
    "SCHEDULER_ENV",
    "RunResult",
    "ScaleError",
    "changed_layers",
    "city_parts",
    "dask_client",
    "data_changed_since",
    "gather",
    "jobs_digests",
    "part_code",
    "parts_of",
    "province_parts",
    "run_key",
    "run_part",
    "run_partitioned",
    "run_parts",
    "task_chunks",
    "worker_store",
]

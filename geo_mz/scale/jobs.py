"""The partitioned jobs by name, and how a job of two passes is run.

A job is a part function ``(ws, part, **options) -> (frames, log)``: a dict of result frames
(layer name → rows of the part) and a dict of figures about the run of the part.

A **two-pass job** is an object with three attributes ``first``, ``reduce`` and ``second``, for
analyses whose answer in a part depends on data of other parts (a centre's catchment demand in
E2SFCA reaches across part borders): ``first(ws, part, **options)`` runs on every part,
``reduce(frames_by_layer)`` folds every part's first-pass rows (layer name → all parts' rows)
into something small, and ``second(ws, part, *, shared, **options)`` runs on every part with
it. The runner calls the passes ``<job>:1`` and ``<job>:2``; the second pass starts only when
every part's first pass is done (a partial reduce would be a wrong answer, not a smaller one).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from geo_mz.scale.partition import Part, PartitionError, boundary_part, coverage_part
from geo_mz.scale.partition_eldercare import ELDERCARE_JOBS
from geo_mz.scale.partition_evacuation import EVACUATION
from geo_mz.scale.partition_relief import RELIEF_JOBS, relief_part
from geo_mz.scale.partition_twopass import TwoPassJob

PartFunction = Callable[..., tuple[dict[str, pd.DataFrame], dict[str, Any]]]


def _without_part_column(fn: PartFunction) -> PartFunction:
    """Drop the ``part`` column a part function writes itself: the run store adds it.

    Rings pieces and the two-pass jobs' demand rows name their part in a ``part`` column (their
    reduce reads it); the store keeps every row under its part's code in a column of that name,
    and gathering gives it back with the same values. A ``part`` column holding another code
    would be lost, so it is an error.
    """

    @functools.wraps(fn)  # keeps the signature: the runner looks for roads_bbox, first, …
    def run(ws: Any, part: Part, *args: Any, **kwargs: Any) -> Any:
        frames, log = fn(ws, part, *args, **kwargs)
        out = {}
        for name, df in frames.items():
            if "part" in df.columns:
                other = df["part"].astype(str) != part.code
                if other.any():
                    raise PartitionError(
                        f"{name}: rows name part(s) {sorted(set(df.loc[other, 'part']))[:5]} in "
                        f"part {part.code}; the run store files each row under its own part"
                    )
                df = df.drop(columns="part")
            out[name] = df
        return out, log

    return run


def _store_ready(job: Any) -> Any:
    if all(hasattr(job, a) for a in ("first", "reduce", "second")):
        return TwoPassJob(_without_part_column(job.first), job.reduce,
                          _without_part_column(job.second),
                          tuple(getattr(job, "part_rows", ())))  # fmt: skip
    return _without_part_column(job)


JOBS: dict[str, Any] = {
    "coverage": coverage_part,
    # capacity, e2sfca (two passes), rings, gaps (two passes)
    **{name: _store_ready(job) for name, job in ELDERCARE_JOBS.items()},
    "relief": relief_part,
    # relief_scenario, shelter_adequacy
    **{name: _store_ready(job) for name, job in RELIEF_JOBS.items()},
    # Two passes: the farthest cell from the walking network measured, then the parts with
    # it (``geo_mz.scale.partition_evacuation``).
    "evacuation": _store_ready(EVACUATION),
    "boundaries": boundary_part,
}
"""Every partitioned job by name: a part function or a two-pass job."""

ALL_ORDER: tuple[str, ...] = (
    "coverage",
    "capacity",
    "e2sfca",
    "rings",
    "gaps",
    "relief",
    "shelter_adequacy",
    "evacuation",
    "boundaries",
)
"""The jobs ``scale run all`` runs, in this order: every job that needs no input beyond the
workspace. ``relief_scenario`` needs a flood raster or closures: ``scale run all`` adds it
(after ``relief``) when ``--flood``, ``--closures`` or ``--close-roads`` is given."""

SCENARIO_JOB = "relief_scenario"
"""The job that needs scenario inputs (a flood raster, closures), run only when given."""

_ELDERCARE_LAYERS = frozenset({"roads", "population", "elder_care", "admin_units"})
_SHELTER_LAYERS = frozenset({"roads", "population", "shelters", "admin_units"})
_RELIEF_LAYERS = _SHELTER_LAYERS | {"relief_stores"}

JOB_LAYERS: dict[str, frozenset[str]] = {
    **dict.fromkeys(("coverage", "capacity", "e2sfca", "rings", "gaps"), _ELDERCARE_LAYERS),
    "relief": _RELIEF_LAYERS,
    "relief_scenario": _RELIEF_LAYERS | {"incidents"},  # the command's incidents, if asked
    **dict.fromkeys(("shelter_adequacy", "evacuation"), _SHELTER_LAYERS),
    "boundaries": frozenset({"admin_units"}),
}
"""The workspace layers each job may read: only their digests enter its run key.

An incident added on the web map, a place name corrected or a landuse layer imported leaves
the keys of the jobs that never read that layer as they were, so a rerun skips their parts;
a job that reads a layer absent here would keep results of old data, which
``tests/test_scale_job_layers.py`` rules out by running every job on a workspace holding
these layers alone (the results must be the same)."""

if set(JOB_LAYERS) != set(JOBS):  # a new job must say what it reads
    raise RuntimeError(f"JOB_LAYERS and JOBS differ: {set(JOB_LAYERS) ^ set(JOBS)}")


def job_layers(job: str) -> frozenset[str] | None:
    """Return the layers ``job`` (or one pass of it, ``<job>:1``) reads (:data:`JOB_LAYERS`).

    None for a job added to :data:`JOBS` without saying (a plugin's, a test's): it may read
    any layer, so every layer enters its key.
    """
    return JOB_LAYERS.get(job.split(":")[0])


def two_pass(job: str) -> bool:
    """Return whether ``job`` (a name in :data:`JOBS`) runs in two passes."""
    fn = JOBS[job.split(":")[0]]
    return all(hasattr(fn, a) for a in ("first", "reduce", "second"))


def pass_names(job: str) -> tuple[str, str]:
    """Return the names of the two passes of a two-pass job (``<job>:1``, ``<job>:2``)."""
    return f"{job}:1", f"{job}:2"


def job_function(job: str) -> PartFunction:
    """Return the part function of ``job``, or of one pass of it (``<job>:1``, ``<job>:2``)."""
    name, _, step = job.partition(":")
    fn = JOBS[name]
    if not step:
        if two_pass(name):
            raise KeyError(f"{name} runs in two passes: call {name}:1 and {name}:2")
        return fn
    return {"1": fn.first, "2": fn.second}[step]


def first_pass_rows(job: str) -> tuple[str, ...]:
    """Return the frames a two-pass job's first pass keeps for its second (``part_rows``)."""
    name = job.split(":")[0]
    return tuple(getattr(JOBS[name], "part_rows", ())) if two_pass(name) else ()


def reduce_first_pass(job: str, frames_by_layer: Mapping[str, pd.DataFrame]) -> Any:
    """Fold every part's first-pass rows of a two-pass job into what its second pass needs."""
    return JOBS[job.split(":")[0]].reduce(dict(frames_by_layer))


__all__ = [
    "ALL_ORDER",
    "JOBS",
    "JOB_LAYERS",
    "SCENARIO_JOB",
    "PartFunction",
    "first_pass_rows",
    "job_function",
    "job_layers",
    "pass_names",
    "reduce_first_pass",
    "two_pass",
]

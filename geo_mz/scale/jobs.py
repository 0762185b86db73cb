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

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from geo_mz.scale.partition import boundary_part, coverage_part, relief_part

PartFunction = Callable[..., tuple[dict[str, pd.DataFrame], dict[str, Any]]]

JOBS: dict[str, Any] = {
    "coverage": coverage_part,
    "relief": relief_part,
    "boundaries": boundary_part,
}
"""Every partitioned job by name: a part function or a two-pass job."""

ALL_ORDER: tuple[str, ...] = ("coverage", "relief", "boundaries")
"""The jobs ``scale run all`` runs, in this order."""


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


def reduce_first_pass(job: str, frames_by_layer: Mapping[str, pd.DataFrame]) -> Any:
    """Fold every part's first-pass rows of a two-pass job into what its second pass needs."""
    return JOBS[job.split(":")[0]].reduce(dict(frames_by_layer))


__all__ = [
    "ALL_ORDER",
    "JOBS",
    "PartFunction",
    "job_function",
    "pass_names",
    "reduce_first_pass",
    "two_pass",
]

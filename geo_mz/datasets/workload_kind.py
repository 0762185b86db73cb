"""Which generated workload a workspace holds: island counties or joined ones.

``geo_mz.datasets.county_workload.write_workload`` records the workload's summary in the
workspace metadata (``workload_summary``, JSON text); with ``joined=True`` the summary has the
counts ``border_pairs``, ``border_roads`` and ``border_pairs_unjoined``, without it it has none
of them. The test here reads that record and checks it against the roads themselves: the
joining roads' ids are ``{code_a}-J{code_b}-{n}`` (two 6-digit county codes), and their number
must be the recorded ``border_roads`` (none on an island workload). A file whose record and
roads disagree (edited, or written by another generator) is refused rather than guessed at.

A GeoPackage is asked for the joining roads' ids alone (an SQL filter, no geometry: ~0.05 s on
Guangdong's 104,000 roads); another workspace (PostGIS) reads the ``road_id`` column.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pyogrio

from geo_mz.core.workspace import Workspace

JOINED, ISLAND, UNKNOWN = "joined", "island", "unknown"
GENERATOR = "geo_mz.datasets.county_workload"
#: A joining road's id (``_workload_joins``): ``{code_a}-J{code_b}-{n}``.
JOIN_ID = re.compile(r"^\d{6}-J\d{6}-\d+$")


class WorkloadKindError(ValueError):
    """A workspace is not the workload a benchmark was asked for, or its record is inconsistent."""


@dataclass(frozen=True)
class WorkloadKind:
    """What a workspace holds: ``kind`` (joined / island / unknown) and a line saying why."""

    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} ({self.detail})"


def _joining_roads(ws: Any) -> int:
    """Count the roads of ``ws`` whose id is a joining road's (no geometry read)."""
    if isinstance(ws, Workspace):  # a GeoPackage: ask SQLite for the ids alone
        ids = pyogrio.read_dataframe(
            ws.path, layer="roads", columns=["road_id"], read_geometry=False,
            where="road_id LIKE '%-J%'",
        )["road_id"]  # fmt: skip
    else:
        ids = ws.read("roads", columns=["road_id"])["road_id"]
    return int(ids.astype(str).str.match(JOIN_ID).sum())


def workload_kind(ws: Any) -> WorkloadKind:
    """Tell whether ``ws`` holds a joined or an island generated workload.

    Parameters
    ----------
    ws
        An open workspace (GeoPackage or PostGIS).

    Returns
    -------
    WorkloadKind
        ``joined`` or ``island`` with the recorded counts; ``unknown`` when the workspace was
        not written by the workload generator (no ``workload_summary``, or no ``roads``).

    Raises
    ------
    WorkloadKindError
        If the recorded summary and the roads disagree (joining roads on a workload recorded
        as island, or not as many as recorded).
    """
    meta = ws.metadata
    where = getattr(ws, "path", None) or "the workspace"
    summary = meta.get("workload_summary")
    if meta.get("generator") != GENERATOR or summary is None:
        return WorkloadKind(UNKNOWN, f"not written by {GENERATOR}: no workload_summary")
    if "roads" not in ws.layers():
        return WorkloadKind(UNKNOWN, "no roads layer (a boundaries-only workload?)")
    s = json.loads(summary) if isinstance(summary, str) else dict(summary)
    found = _joining_roads(ws)
    recorded = s.get("border_roads")
    if recorded is None:
        if found:
            raise WorkloadKindError(
                f"{where}: its metadata records an island workload (no border_roads in "
                f"workload_summary) but its roads hold {found} joining roads (ids like "
                f"440103-J440104-1); regenerate it"
            )
        return WorkloadKind(ISLAND, "each county's roads their own network")
    if found != int(recorded):
        raise WorkloadKindError(
            f"{where}: its metadata records a joined workload with {recorded} county roads "
            f"across borders but its roads hold {found} (ids like 440103-J440104-1); "
            f"regenerate it"
        )
    return WorkloadKind(
        JOINED,
        f"{recorded} county roads across {s.get('border_pairs')} county borders, "
        f"{s.get('border_pairs_unjoined')} borders without one",
    )


def require_kind(ws: Any, joined: bool) -> WorkloadKind:
    """Return the workload kind of ``ws``; refuse it unless it is the one asked for.

    Parameters
    ----------
    ws
        An open workspace about to be reused by a benchmark.
    joined
        Whether the benchmark was asked for the joined workload (``--joined``).

    Returns
    -------
    WorkloadKind
        The kind found, equal to the one asked for.

    Raises
    ------
    WorkloadKindError
        Naming the file, if it holds the other workload, one that cannot be told, or one whose
        record and roads disagree.
    """
    got = workload_kind(ws)
    want = JOINED if joined else ISLAND
    if got.kind != want:
        where = getattr(ws, "path", None) or "the workspace"
        flag = "with --joined" if joined else "without --joined"
        fix = {ISLAND: "; or leave out --joined", JOINED: "; or add --joined"}.get(got.kind, "")
        raise WorkloadKindError(
            f"{where}: holds the {got.kind} workload ({got.detail}), but the benchmark was "
            f"run {flag}: it would measure the wrong one. Give another --workspace/--keep path "
            f"(the {want} workload is generated there){fix}"
        )
    return got

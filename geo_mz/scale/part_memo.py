"""A worker's memory of its parts' first-pass rows, for their second pass.

A two-pass job's second pass needs the part's own first-pass rows (E2SFCA: the people and
their centre pairs; capacity: the walking times). Computed in one process the passes hand them
on (:func:`geo_mz.scale.run_two_pass_in_process`); on Dask each pass was a new task that read
the part's inputs and computed them again. Here the worker that ran a part's first pass keeps
those rows in its memory, and the runner sends the part's second pass to that worker (a
preference, not a rule: another worker may take it, and then computes them as before). The
rows are the very frames the first pass made, so the second pass's answer is the same either
way.

Geometries are kept as WKB (exact: the same coordinates come back), not as shapely objects:
Python's cyclic collector walks every live shapely geometry at each full collection, and a
worker holding a province's people as geometries would slow every part it computes.

The memory is bounded per process (``GEO_MZ_PART_MEMO_MIB``, default 256 MiB; 0 turns it off):
past it the oldest parts are forgotten, and their second pass computes again. A part's rows
are forgotten once its second pass has taken them.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.scale.jobs import first_pass_rows

__all__ = [
    "MEMO_ENV",
    "dask_worker_address",
    "forget_all",
    "keep_part_rows",
    "memo_budget_mib",
    "memo_options",
    "take_part_rows",
    "worker_preference",
]

MEMO_ENV = "GEO_MZ_PART_MEMO_MIB"
"""Environment variable: MiB of first-pass rows a process keeps (default 256; 0: none)."""
_DEFAULT_MIB = 256.0

_LOCK = threading.Lock()
_MEMO: OrderedDict[tuple[str, str], tuple[dict[str, Any], int]] = OrderedDict()


def memo_budget_mib() -> float:
    """Return the MiB of first-pass rows this process may keep (``GEO_MZ_PART_MEMO_MIB``)."""
    raw = os.environ.get(MEMO_ENV, "").strip()
    if not raw:
        return _DEFAULT_MIB
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(
            f"环境变量 {MEMO_ENV}={raw!r} 不是数字（MiB）/ {MEMO_ENV}={raw!r} is not a number "
            f"of MiB"
        ) from exc
    return max(value, 0.0)


@dataclass(frozen=True)
class _Packed:
    """A GeoDataFrame kept without shapely objects: its other columns and its geometry WKB."""

    frame: pd.DataFrame
    geometry: str
    wkb: np.ndarray
    crs: Any
    columns: list[str]


def _pack(df: pd.DataFrame) -> pd.DataFrame | _Packed:
    if not isinstance(df, gpd.GeoDataFrame) or df._geometry_column_name not in df.columns:
        return df
    name = df.geometry.name
    wkb = shapely.to_wkb(np.asarray(df.geometry.values))
    return _Packed(pd.DataFrame(df.drop(columns=name)), name, wkb, df.crs, list(df.columns))


def _unpack(kept: pd.DataFrame | _Packed) -> pd.DataFrame:
    if not isinstance(kept, _Packed):
        return kept
    geoms = gpd.GeoSeries(shapely.from_wkb(kept.wkb), index=kept.frame.index, crs=kept.crs)
    out = gpd.GeoDataFrame(kept.frame.assign(**{kept.geometry: geoms}), geometry=kept.geometry,
                           crs=kept.crs)  # fmt: skip
    return out[kept.columns]


def _size_bytes(frames: Mapping[str, pd.DataFrame | _Packed]) -> int:
    """Approximate bytes of the kept frames: their arrays and their geometries' WKB."""
    total = 0
    for df in frames.values():
        if isinstance(df, _Packed):
            total += int(sum(len(b) for b in df.wkb if b is not None))
            df = df.frame
        total += int(df.memory_usage(index=True, deep=False).sum())
    return total


def keep_part_rows(key: str, code: str, frames: Mapping[str, pd.DataFrame]) -> bool:
    """Keep a part's first-pass frames under (run key, part code); False when over budget.

    The columns are kept as given (not copied): the caller must not change them afterwards.
    """
    budget = memo_budget_mib() * 2**20
    packed = {name: _pack(df) for name, df in frames.items()}
    size = _size_bytes(packed)
    if size > budget:
        return False
    with _LOCK:
        _MEMO.pop((key, code), None)
        _MEMO[(key, code)] = (packed, size)
        used = sum(s for _, s in _MEMO.values())
        while used > budget and _MEMO:
            _, (_, s) = _MEMO.popitem(last=False)  # the oldest part first
            used -= s
        return (key, code) in _MEMO


def take_part_rows(key: str, code: str) -> dict[str, pd.DataFrame] | None:
    """Return and forget a part's kept first-pass frames; None when this process has none."""
    with _LOCK:
        hit = _MEMO.pop((key, code), None)
    return None if hit is None else {name: _unpack(df) for name, df in hit[0].items()}


def forget_all() -> None:
    """Forget every kept part (tests; a worker forgets by budget and by taking)."""
    with _LOCK:
        _MEMO.clear()


def memo_options(
    job: str, code: str, first_of: str | None
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Return the part-function options that keep (pass 1) or hand on (pass 2) a part's rows.

    Parameters
    ----------
    job
        The pass run (``<job>:1``, ``<job>:2``) or a one-pass job.
    code
        The part's code.
    first_of
        The first pass's run key, for a second pass (None otherwise).

    Returns
    -------
    tuple
        Extra options (``keep_part_rows=True``, or ``first=`` the kept frames) and the names
        of the frames a first pass keeps here rather than in the store.
    """
    step = job.partition(":")[2]
    rows = first_pass_rows(job) if step == "1" else ()
    if rows and memo_budget_mib() > 0:
        return {"keep_part_rows": True}, rows
    if step == "2" and first_of is not None:
        got = take_part_rows(first_of, code)
        if got is not None:
            return {"first": got}, ()
    return {}, ()


def dask_worker_address() -> str | None:
    """Return the address of the Dask worker running this task (None outside a worker)."""
    try:
        from distributed import get_worker
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    try:
        return str(get_worker().address)
    except ValueError:  # not in a worker task
        return None


def worker_preference(placed: Mapping[str, str], code: str, first_of: str | None) -> dict:
    """Return submit options sending a second pass to the worker of the part's first pass.

    A preference (``allow_other_workers``): another worker may take the part, and then
    computes its rows again.
    """
    addr = placed.get(code) if first_of is not None else None
    return {"workers": [addr], "allow_other_workers": True} if addr else {}

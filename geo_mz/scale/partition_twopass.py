"""Jobs in two passes: a figure summed over every part, then each part with it.

A centre's catchment demand crosses part borders: pass 1 gives each part's contribution,
a reduce sums them (:class:`TwoPassJob`), pass 2 computes each part with the sums. The
runner stores pass 1's frames, calls ``reduce`` once with them (one frame per layer, every
part's rows) and hands its small result to every part of pass 2;
:func:`run_two_pass_in_process` does the same in this process.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import pandas as pd

from geo_mz.scale.partition import Part

Frames = dict[str, pd.DataFrame]


@dataclass(frozen=True)
class TwoPassJob:
    """A job whose parts need a figure summed over all parts (a centre's catchment demand).

    Attributes
    ----------
    first
        ``first(ws, part, **options) -> (frames, log)``: the part's own contributions.
    reduce
        ``reduce(frames_by_layer) -> shared``: every part's first-pass rows, one frame per
        layer, to a small picklable value.
    second
        ``second(ws, part, *, shared, first=None, **options) -> (frames, log)``: the part's
        results; ``first`` (the part's own first-pass frames, when the runner kept them)
        saves computing the part's times again.
    part_rows
        The frames ``first`` adds with ``keep_part_rows=True`` (the part's own rows for its
        second pass, not for the reduce): a Dask run keeps them on the worker that ran the
        part (``geo_mz.scale.part_memo``) and does not store them.
    """

    first: Callable[..., tuple[Frames, dict[str, Any]]]
    reduce: Callable[[Frames], Any]
    second: Callable[..., tuple[Frames, dict[str, Any]]]
    part_rows: tuple[str, ...] = ()


def concat_frames(frames: Sequence[Frames]) -> Frames:
    """Stack the parts' frames layer by layer (GeoDataFrames stay GeoDataFrames)."""
    out: Frames = {}
    for name in dict.fromkeys(k for f in frames for k in f):
        got = [f[name] for f in frames if name in f]
        cat = pd.concat(got, ignore_index=True)
        geo = next((g for g in got if isinstance(g, gpd.GeoDataFrame)), None)
        if geo is not None and not isinstance(cat, gpd.GeoDataFrame):
            cat = gpd.GeoDataFrame(cat, geometry=geo.geometry.name, crs=geo.crs)
        out[name] = cat
    return out


def share_of(shared: Any, code: str) -> Any:
    """Return the reduced value a part's second pass gets: its own share where there is one.

    A reduced value with ``for_part(code)`` (e.g. ``geo_mz.scale.partition_gaps.PartShares``)
    hands each part only its rows; any other value goes to every part whole.
    """
    return shared.for_part(code) if hasattr(shared, "for_part") else shared


def run_two_pass_in_process(
    job: TwoPassJob, ws: Any, parts: Sequence[Part], **options: Any
) -> tuple[Frames, dict[str, Any]]:
    """Run a two-pass job over ``parts`` in this process, one part after another.

    Any object with ``first``, ``reduce`` and ``second`` (``TwoPassJob``) will do; a first
    pass with a ``keep_part_rows`` option is asked to keep the part's own rows, and a second
    pass with a ``first`` option is given them.

    Returns
    -------
    tuple
        The second pass's frames of every part, stacked per layer, and the logs
        (``first``/``second``: part code -> log; ``shared``: the reduced value).
    """
    # A first pass that can keep the part's own rows (times, pairs) for its second pass is
    # asked to (a Dask run does not keep them: its second pass computes them again).
    keep = "keep_part_rows" in inspect.signature(job.first).parameters
    extra = {"keep_part_rows": True} if keep else {}
    firsts = {p.code: job.first(ws, p, **options, **extra) for p in parts}
    shared = job.reduce(concat_frames([f for f, _ in firsts.values()]))
    takes_first = "first" in inspect.signature(job.second).parameters
    seconds = {
        p.code: job.second(ws, p, shared=share_of(shared, p.code), **options,
                           **({"first": firsts[p.code][0]} if takes_first else {}))
        for p in parts
    }  # fmt: skip
    log = {"first": {k: v[1] for k, v in firsts.items()},
           "first_frames": {k: v[0] for k, v in firsts.items()},
           "second": {k: v[1] for k, v in seconds.items()}, "shared": shared}  # fmt: skip
    return concat_frames([f for f, _ in seconds.values()]), log


__all__ = ["Frames", "TwoPassJob", "concat_frames", "run_two_pass_in_process", "share_of"]

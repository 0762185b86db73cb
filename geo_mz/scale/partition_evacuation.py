"""Evacuation in two passes: how far people live from the walking network, then the parts.

An evacuation part (:func:`geo_mz.scale.partition_shelters.evacuation_part`) proves its
sources and shelters with ``far_m``, a bound on every population cell's distance to its
nearest node of the *whole* walking network: a cell of another part that snaps to one of the
part's nodes lies within ``far_m`` of it. A fixed ``FAR_M`` (2 km) is an assumption, checked
by each part for its own cells only, and it sizes every cut: the first buffer grows with
``3·far_m`` (``geo_mz.scale.partition_shelters.evacuation_buffer_m``). This job measures
the bound instead:

- **pass 1** (:func:`evacuation_far`): each part snaps its own cells to the nodes of the
  walking network of a small cut (``MEASURE_CUT_M`` around it) and reports the largest snap
  distance and the number of cells it measured;
- **reduce** (:func:`evacuation_far_reduce`): the largest of them, times ``ZONE_SCALE``
  (each part measures in its own Gauss-Krüger zone) plus ``SLACK_M`` (node merging);
- **pass 2** (:func:`evacuation_second`): ``evacuation_part(..., far_m=measured)``, its first
  buffer sized from it.

**Why a part's snap bounds the whole's.** ``network_from_roads`` makes its nodes of the end
points of the usable (walkable) road lines, merging end points closer than 0.5 m (single
linkage) into their mean. The roads a part reads are whole lines of the layer (every line that
meets its cut, not clipped), and walkability is a property of each line's class, so every end
point of the part's network is one of the whole network's, and its merged group is a subset of
a whole group: each node of the part lies within its group's extent (0.5 m links) of a node
of the whole, the merging that ``SLACK_M`` covers in every proof. The nearest node of the
whole is at least as near as any of them, so a cell's snap distance in the part is an upper
bound of its snap distance in the whole, whatever the cut (a cell near the cut's edge may
only get a loose bound). Cells whose snap circle lies inside the cut (room at least the snap)
get the whole's distance itself; a part whose largest snap is loose measures again with a cut
wide enough for it.

**Cost.** Pass 1 reads the part's own cells (by code) and the roads of a 1 km cut and builds
their network: on the Guangdong workload (123 generated counties) a quarter of the two passes'
time. The measured bound (216 m, against the assumed 2 km) shrinks pass 2's first cut from
12 km to 1.7 km: the two passes of a part took 0.59-0.65 times the single pass's time (both
workloads, A/B in one process), with the same rows.

**When the bound holds for the layer.** Only if every cell was measured: the parts' codes must
be disjoint (no code the prefix of another) and the cells they measured must be all the rows
of ``population``. A run over some codes only (``--codes``), or cells with no code of a
part (no ``adcode``, a code of no part, no point), does not cover the layer: pass 2 then uses
the larger of the measured value and ``FAR_M``, the assumption the single-pass job makes
(``log["far_source"]`` says which: ``measured`` or ``assumed``).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely

from geo_mz.core.projection import geometries_to_crs
from geo_mz.network.graph import network_from_roads
from geo_mz.network.paths import snap_xy
from geo_mz.relief import shelters as shel
from geo_mz.scale.cut import QUAD_SEGS, SLACK_M, RoadlessCutError, make_cut, need_roads
from geo_mz.scale.partition import (
    Part,
    PartitionError,
    part_crs,
    read_own,
    roads_extent,
    roads_in_cut,
)
from geo_mz.scale.partition_shelters import FAR_M, evacuation_part
from geo_mz.scale.partition_twopass import Frames, TwoPassJob

MEASURE_CUT_M = 1000.0
"""Buffer of pass 1's cut (m): a cell's snap is the whole network's when it is shorter than
its room, about this much for a cell of the part (local choice: the cells of the Guangdong
workload lie at most 214 m from a node)."""
MEASURE_ROUNDS = 8
"""Cuts pass 1 tries, doubling, while one holds no walkable road (a part in roadless country)."""
ZONE_SCALE = 1.005
"""Factor on the measured bound: each part measures in its own Gauss-Krüger zone, whose scale
differs from a neighbouring part's zone by about 0.2 % at 4° from its meridian (local margin)."""
FAR_LAYER = "far"
"""The frame of pass 1: one row per part (``cells``, ``far_m``, ``exact``)."""


def _own_cells_xy(ws: Any, part: Part, crs: str) -> np.ndarray:
    """Return the part's own cells (``adcode`` under its code, in its box) in ``crs``."""
    pop = read_own(ws, "population", tuple(shapely.bounds(part.geometry)), part.code, columns=[])
    geoms = geometries_to_crs(np.asarray(pop.geometry.values), pop.crs, crs)
    geoms = geoms[(shapely.get_type_id(geoms) == 0) & ~shapely.is_empty(geoms)]
    return shapely.get_coordinates(geoms)  # a cell without a point is not measured


def _snap_m(
    ws: Any,
    part: Part,
    crs: str,
    s: shel.ShelterSettings,
    xy: np.ndarray,
    buffer_m: float,
    extent: tuple[float, float, float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Return the snap distances of ``xy`` to the network of a cut (grown while it holds no road).

    Returns the distances and whether each is the whole network's (snap circle in the cut).
    """
    b = buffer_m
    for _ in range(MEASURE_ROUNDS):
        cut = make_cut(part.geometry, crs, b)
        # Nodes are the lines' end points and walkability their class: nothing else is read.
        roads = roads_in_cut(ws, cut, None, ["road_class"])
        try:
            need_roads(roads, cut, extent)  # none in the cut: read farther
        except RoadlessCutError:
            b *= 2.0
            continue
        net = network_from_roads(roads, mode="walk", walk_speed_kmh=s.walk_speed_kmh,
                                 measure_crs=crs, components="all")  # fmt: skip
        d = snap_xy(net, xy, max_snap_m=s.max_snap_m).offset_m
        return d, cut.room_m(xy) >= d + SLACK_M
    raise PartitionError(
        f"疏散分区 {part.code}：{b / 2:.0f} m 内没有可步行道路 / evacuation part {part.code}: no "
        f"walkable road within {b / 2:.0f} m of its people"
    )


def evacuation_far(
    ws: Any,
    part: Part,
    *,
    settings: shel.ShelterSettings | None = None,
    measure_crs: str | None = None,
    buffer_m: float | None = None,
    roads_bbox: tuple[float, float, float, float] | None = None,
    engine: str = "ortools",
) -> tuple[Frames, dict[str, Any]]:
    """Pass 1: the largest distance from the part's own cells to the walking network.

    Parameters
    ----------
    ws
        A workspace with ``roads`` and ``population`` (with ``adcode``).
    part
        The part; its cells are those whose ``adcode`` starts with its code.
    settings, measure_crs, roads_bbox
        As for :func:`~geo_mz.scale.partition_shelters.evacuation_part`.
    buffer_m, engine
        Pass 2's options (not used here).

    Returns
    -------
    tuple
        Frame ``far``: one row, ``part``, ``cells`` (measured), ``far_m`` (their largest snap
        distance, an upper bound of the whole network's; NaN without cells) and ``exact`` (it
        is the whole's); and the log (the same figures, ``rounds``).
    """
    del buffer_m, engine  # pass 2's
    s = settings or shel.ShelterSettings()
    crs = part_crs(part, measure_crs)
    xy = _own_cells_xy(ws, part, crs)
    far, exact, rounds = np.nan, True, 0
    if len(xy):
        extent = roads_bbox or roads_extent(ws)
        d, sure = _snap_m(ws, part, crs, s, xy, MEASURE_CUT_M, extent)
        rounds = 1
        if not sure.all():
            # Some cells' nearest node may lie beyond the cut: a cut wide enough for the
            # largest snap holds the snap circles of every cell inside the part's hull.
            wide = (float(d.max()) + 2 * SLACK_M) / np.cos(3 * np.pi / (8 * QUAD_SEGS)) + 1.0
            d, sure = _snap_m(ws, part, crs, s, xy, max(wide, 2 * MEASURE_CUT_M), extent)
            rounds = 2
        far, exact = float(d.max()), bool(sure.all())
    row = {"part": part.code, "cells": len(xy), "far_m": far, "exact": exact}
    log = {"cells": len(xy), "far_m": far, "exact": exact, "rounds": rounds}
    return {FAR_LAYER: pd.DataFrame([row])}, log


def evacuation_far_reduce(frames: Frames) -> dict[str, Any]:
    """Fold pass 1's rows: the largest snap distance (with margins) and the cells measured.

    The bound is the largest distance times ``ZONE_SCALE``, plus ``SLACK_M`` (node merging).

    Returns
    -------
    dict
        ``far_m``, ``cells`` (sum), ``parts`` and ``disjoint`` (no part's code is a prefix of
        another's: then no cell was counted twice).
    """
    d = frames.get(FAR_LAYER)
    if d is None or not len(d):
        return {"far_m": 0.0, "cells": 0, "parts": 0, "disjoint": True}
    codes = sorted(d["part"].astype(str))
    # Sorted, a code and any code it is a prefix of are neighbours, or the codes between
    # them start with it too.
    disjoint = not any(b.startswith(a) for a, b in itertools.pairwise(codes))
    far = pd.to_numeric(d["far_m"]).max()
    return {
        "far_m": float(far) * ZONE_SCALE + SLACK_M if pd.notna(far) else 0.0,
        "cells": int(pd.to_numeric(d["cells"]).sum()),
        "parts": len(codes),
        "disjoint": bool(disjoint),
    }


_ROWS: dict[tuple[Any, ...], int] = {}


def _population_rows(ws: Any) -> int | None:
    """Rows of ``population`` (None when the workspace cannot count them).

    A GeoPackage's count is kept per process while the file is unchanged (every geo_mz write
    replaces it; an edit in place changes its time): counted once, not by every part.
    """
    count = getattr(ws, "count", None)
    if count is None:
        return None
    path = getattr(ws, "path", None)
    if not isinstance(path, Path) or not path.is_file():
        return int(count("population"))
    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_mtime_ns, st.st_size)
    if key not in _ROWS:
        if len(_ROWS) > 16:
            _ROWS.clear()
        _ROWS[key] = int(count("population"))
    return _ROWS[key]


def far_bound(ws: Any, shared: dict[str, Any] | None) -> tuple[float, str]:
    """Return the ``far_m`` pass 2 may use and where it comes from (``measured``/``assumed``).

    Parameters
    ----------
    ws
        The workspace (its ``population`` rows are counted).
    shared
        :func:`evacuation_far_reduce`'s value, or None.

    Returns
    -------
    tuple
        Metres, and ``"measured"`` when every cell of the layer was measured, else
        ``"assumed"`` (the larger of the measured value and ``FAR_M``).
    """
    if shared is None:
        return FAR_M, "assumed"
    far = float(shared["far_m"])
    if not np.isfinite(far) or far < 0:
        raise PartitionError(f"evacuation pass 1 gave far_m = {far!r}")
    if shared["disjoint"] and shared["cells"] == _population_rows(ws):
        return far, "measured"
    return max(far, FAR_M), "assumed"


def evacuation_second(
    ws: Any,
    part: Part,
    *,
    shared: dict[str, Any] | None,
    settings: shel.ShelterSettings | None = None,
    measure_crs: str | None = None,
    buffer_m: float | None = None,
    roads_bbox: tuple[float, float, float, float] | None = None,
    engine: str = "ortools",
) -> tuple[Frames, dict[str, Any]]:
    """Pass 2: :func:`~geo_mz.scale.partition_shelters.evacuation_part` with the measured bound.

    Parameters
    ----------
    ws, part, settings, measure_crs, buffer_m, roads_bbox, engine
        As for ``evacuation_part`` (``buffer_m`` None: sized from the bound).
    shared
        :func:`evacuation_far_reduce`'s value (:func:`far_bound` decides what is used).

    Returns
    -------
    tuple
        ``evacuation_part``'s frames and log, with ``far_m`` and ``far_source``.
    """
    far, source = far_bound(ws, shared)
    frames, log = evacuation_part(
        ws, part, settings=settings, measure_crs=measure_crs, buffer_m=buffer_m,
        roads_bbox=roads_bbox, far_m=far, engine=engine,
    )  # fmt: skip
    return frames, log | {"far_m": round(far, 1), "far_source": source}


EVACUATION = TwoPassJob(evacuation_far, evacuation_far_reduce, evacuation_second)
"""Evacuation in two passes (``scale run evacuation``)."""

__all__ = [
    "EVACUATION",
    "FAR_LAYER",
    "MEASURE_CUT_M",
    "evacuation_far",
    "evacuation_far_reduce",
    "evacuation_second",
    "far_bound",
]

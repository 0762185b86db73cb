"""The gap map by part (the ``gaps`` job): hexagon cells summed across parts, drawn by owners.

:func:`geo_mz.eldercare.gaps` in the steps of :mod:`geo_mz.eldercare.gap_grid`, spread over
the passes of a :class:`~geo_mz.scale.partition_twopass.TwoPassJob`:

1. :func:`gaps_first` - the part's uncovered people (proven walking times) summed per cell
   of the run's one hexagon grid (``grid_crs``, ``cell_size_m``: cells of neighbouring parts
   with the same axial ``(q, r)`` are the same hexagon). A few numbers per cell, no shapes.
2. :func:`gaps_reduce` - sums the cells by ``(q, r)`` over every part, labels clusters
   (connected components of edge-adjacent cells) and ranks cells and clusters: numbers only,
   no geometry. A cell's owner is the lowest part code among the parts with uncovered people
   in it; a cluster's, the lowest owner of its cells. Each part's share (:class:`PartShares`)
   holds the rows of its own cells and of every cell of its own clusters, each row once.
3. :func:`gaps_second` - draws the part's share (hexagons; cluster unions).

Gathered, the rows equal the whole area's :func:`geo_mz.eldercare.gaps` (hexagons and
clusters): same cells, shapes, counts, people, ids and ranks; ``mean_walk_min`` of a cell
that straddles parts agrees to 1e-12 relative (its sums are added in another order).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_mz.eldercare.circle15 import CircleSettings
from geo_mz.eldercare.gap_grid import gap_cells, gap_frame, rank_gap_cells
from geo_mz.scale.partition import Part, PartitionError, proven_times
from geo_mz.scale.partition_twopass import Frames, TwoPassJob

POP = "pop_60plus"


@dataclass(frozen=True)
class PartShares:
    """A reduce's result with one share per part, so a part can be sent only its own.

    Attributes
    ----------
    common
        What every part gets (small: settings).
    by_part
        Part code -> that part's share (a part missing here gets only ``common``).
    """

    common: Mapping[str, Any]
    by_part: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def for_part(self, code: str) -> dict[str, Any]:
        """Return what the part ``code`` needs: ``common`` plus its own share."""
        return {**self.common, **self.by_part.get(code, {})}


def gaps_first(
    ws: Any,
    part: Part,
    *,
    settings: CircleSettings | None = None,
    measure_crs: str | None = None,
    buffer_m: float = 2000.0,
    roads_bbox: tuple[float, float, float, float] | None = None,
    grid_crs: str | None = None,
    part_times: Mapping[str, gpd.GeoDataFrame] | None = None,
    times_run: Mapping[str, str] | None = None,
) -> tuple[Frames, dict[str, Any]]:
    """Pass 1 of the gap map: the part's uncovered people per cell of the run's grid.

    ``grid_crs``: the hexagon grid's CRS, one for the whole run (default ``measure_crs``,
    else the workspace's measuring CRS); ``part_times`` and ``times_run`` as ``proven_times``.

    Returns
    -------
    tuple
        Frames ``gap_cells`` (``geo_mz.eldercare.gap_grid.gap_cells`` rows + ``part``) and
        ``parts`` (the grid settings of the part); the log.
    """
    s = settings or CircleSettings()
    grid = grid_crs or measure_crs or ws.metadata.get("measure_crs")
    if not grid:
        raise PartitionError("缺口网格需要统一的投影坐标系 / the gap grid needs one CRS for "
                             "the whole run: pass grid_crs (e.g. EPSG:4547)")  # fmt: skip
    t, log = proven_times(ws, part, s, measure_crs, buffer_m, roads_bbox, part_times, times_run)
    thr, size = float(max(s.thresholds_min)), float(s.gap_cell_m)
    cells = gap_cells(t, crs=str(grid), threshold_min=thr, cell_size_m=size, pop_field=POP)
    parts = pd.DataFrame([{"part": part.code, "grid_crs": str(grid), "threshold_min": thr,
                           "cell_size_m": size}])  # fmt: skip
    return {"gap_cells": cells.assign(part=part.code), "parts": parts}, log | {
        "gap_cells": len(cells)
    }


def gaps_reduce(frames: Frames) -> PartShares:
    """Sum every part's cells by ``(q, r)``, label clusters, rank; share them out by owner."""
    parts = frames["parts"]
    cfg = parts[["grid_crs", "threshold_min", "cell_size_m"]].drop_duplicates()
    if len(cfg) != 1:
        raise PartitionError(
            f"各分区的缺口网格设置不一致：{cfg.to_dict('records')} / parts disagree on the gap "
            f"grid: {cfg.to_dict('records')}"
        )
    grid, _, size = cfg.iloc[0]
    cells = frames["gap_cells"]
    ranked = rank_gap_cells(cells, pop_field=POP)
    common = {"grid_crs": str(grid), "cell_size_m": float(size)}
    if len(ranked) == 0:
        return PartShares(common)
    # Owners, aligned with ranked (both sorted by (q, r)); the lowest code is the lowest
    # number of the sorted codes (a min over integers: pandas' min over text is per group).
    num, codes = pd.factorize(cells["part"].astype(str), sort=True)
    first = cells[["q", "r"]].assign(_n=num).groupby(["q", "r"], sort=True)["_n"].min()
    own_n = first.to_numpy()
    comp = ranked["cluster"].to_numpy()
    c_own_n = pd.Series(own_n).groupby(comp).min().reindex(comp).to_numpy()
    owner, cell_c_owner = np.asarray(codes, object)[own_n], np.asarray(codes, object)[c_own_n]
    # Each part's rows once: its own cells (own_hex) and every cell of its own clusters
    # (own_cluster), split by one groupby rather than a mask per part (thousands nationally).
    at = np.arange(len(ranked))
    flags = pd.DataFrame(
        {
            "code": np.r_[owner, cell_c_owner],
            "row": np.r_[at, at],
            "own_hex": np.r_[at >= 0, at < 0],
            "own_cluster": np.r_[at < 0, at >= 0],
        }
    )
    flags = flags.groupby(["code", "row"], sort=True).max().reset_index()
    rows = ranked.iloc[flags["row"].to_numpy()].reset_index(drop=True)
    rows[["own_hex", "own_cluster"]] = flags[["own_hex", "own_cluster"]].to_numpy()
    code = flags["code"].to_numpy(object)
    starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]])
    ends = np.r_[starts[1:], len(code)]
    by_part = {str(code[a]): {"cells": rows.iloc[a:b].reset_index(drop=True)}
               for a, b in zip(starts, ends, strict=True)}  # fmt: skip
    return PartShares(common, by_part)


def gaps_second(
    ws: Any, part: Part, *, shared: PartShares | Mapping[str, Any], **_: Any
) -> tuple[Frames, dict[str, Any]]:
    """Pass 2 of the gap map: draw the hexagons and clusters this part owns.

    ``shared`` is the reduce's :class:`PartShares`, or only this part's share of it
    (``PartShares.for_part``).

    Returns
    -------
    tuple
        Frames ``gaps`` (hexagons, as :func:`geo_mz.eldercare.gaps`) and ``gap_clusters``.
    """
    share = shared.for_part(part.code) if isinstance(shared, PartShares) else dict(shared)
    frames: Frames = {}
    cells = share.get("cells")  # a part without gap cells has no share
    for level, name in (("hex", "gaps"), ("cluster", "gap_clusters")):
        rows = pd.DataFrame() if cells is None else cells[cells[f"own_{level}"].to_numpy(bool)]
        frames[name] = gap_frame(rows, crs=share["grid_crs"], cell_size_m=share["cell_size_m"],
                                 level=level, pop_field=POP)  # fmt: skip
    return frames, {"gaps": len(frames["gaps"]), "gap_clusters": len(frames["gap_clusters"])}


GAPS = TwoPassJob(gaps_first, gaps_reduce, gaps_second)
"""The gap map in two passes (cells per part; summed and ranked once; drawn by owners)."""

__all__ = ["GAPS", "PartShares", "gaps_first", "gaps_reduce", "gaps_second"]

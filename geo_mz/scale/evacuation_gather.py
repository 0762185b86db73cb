"""Gathering the evacuation parts' frames into the whole run's layers.

The parts (:func:`geo_mz.scale.partition_shelters.evacuation_part`) each solve the flow
components they own; a shelter that never fills (it holds everyone who can reach it) may take
people from several parts, whose loads are summed here. ``gather_evacuation`` is exported by
``geo_mz.scale.partition_shelters`` too.
"""

from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_mz.core.projection import STORAGE_CRS
from geo_mz.scale.partition import PartitionError

Frames = dict[str, pd.DataFrame]


def _sum_free_shelters(load: pd.DataFrame) -> pd.DataFrame:
    """One row per shelter: a free shelter's loads from several parts summed (the rest once)."""
    dup = load["shelter_id"].duplicated(keep=False).to_numpy()
    if not dup.any():
        return load
    rows = load[dup].copy()
    rows["_pmin"] = rows["mean_walk_min"].fillna(0.0) * rows["assigned_persons"]
    g = rows.groupby("shelter_id", sort=False)
    one = g.first()
    one["assigned_persons"] = g["assigned_persons"].sum()
    one["max_walk_min"] = g["max_walk_min"].max()
    cap, got = one["capacity_persons"].to_numpy(), one["assigned_persons"].to_numpy()
    if (got > cap).any():  # a free shelter holds everyone who can reach it: never
        over = list(one.index[got > cap][:10])
        raise PartitionError(f"空闲避难场所被超额分配：{over} / free shelters over-filled: {over}")
    one["mean_walk_min"] = np.where(got > 0, g["_pmin"].sum() / np.maximum(got, 1), np.nan)
    one["load_share"] = np.where(cap > 0, got / np.maximum(cap, 1), np.nan)
    one["spare_persons"] = cap - got
    one["status"] = np.where(got == 0, "unused", np.where(got >= cap, "full", "partial"))
    merged = one.drop(columns="_pmin").reset_index()[load.columns]
    return pd.concat([load[~dup], merged], ignore_index=True)


def gather_evacuation(
    frames: Sequence[Frames], measure_crs: str, *, shelter_order: Sequence[str] | None = None
) -> dict[str, gpd.GeoDataFrame]:
    """Merge the parts' evacuation frames into the whole run's ``load``, ``lines``, ``unassigned``.

    Parameters
    ----------
    frames
        The frames of ``evacuation_part``, one mapping per part.
    measure_crs
        The CRS the parts gave ``x_m``/``y_m`` in.
    shelter_order
        Shelter ids in the layer's order (the whole run's ``load`` order); by id when None.

    Returns
    -------
    dict
        ``load`` (one row per shelter), ``lines`` (``line_id`` and ``source_id`` numbered
        anew: a part's sources are not numbered as the whole's) and ``unassigned`` (per
        village and reason, people-weighted centres, ``unassigned_id`` as the whole run's).
    """
    load = _sum_free_shelters(pd.concat([f["load"] for f in frames], ignore_index=True))
    order = list(shelter_order) if shelter_order is not None else sorted(load["shelter_id"])
    load = load.set_index("shelter_id").loc[[i for i in order if i in set(load["shelter_id"])]]
    load = gpd.GeoDataFrame(load.reset_index(), geometry="geometry", crs=STORAGE_CRS)
    # A part numbers its own sources: S000001 of two parts are two sources.
    parts = [
        f["lines"].assign(_src=f["lines"]["source_id"] + f"@{i}")
        for i, f in enumerate(frames)
        if len(f["lines"])
    ]
    lines = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if len(lines):
        lines = lines.sort_values(["adcode", "shelter_id", "walk_min"], kind="stable")
        lines["line_id"] = [f"L{i + 1:06d}" for i in range(len(lines))]
        lines["source_id"] = [f"S{i + 1:06d}" for i in pd.factorize(lines.pop("_src"))[0]]
        lines = gpd.GeoDataFrame(lines.reset_index(drop=True), geometry="geometry", crs=STORAGE_CRS)
    un = pd.concat([f["unassigned"] for f in frames], ignore_index=True)
    un = un.assign(wx=un["x_m"] * un["persons_unassigned"], wy=un["y_m"] * un["persons_unassigned"])
    g = un.groupby(["adcode", "reason"], sort=True)[["persons_unassigned", "wx", "wy"]].sum()
    g = g.reset_index()
    unassigned = gpd.GeoDataFrame(
        {
            "unassigned_id": [f"U{n + 1:04d}" for n in range(len(g))],
            "adcode": g["adcode"].to_numpy(dtype=object),
            "persons_unassigned": g["persons_unassigned"].to_numpy(dtype=np.int64),
            "reason": g["reason"].to_numpy(dtype=object),
        },
        geometry=gpd.points_from_xy(
            g["wx"] / g["persons_unassigned"], g["wy"] / g["persons_unassigned"]
        ),
        crs=measure_crs,
    ).to_crs(STORAGE_CRS)
    return {"load": load, "lines": lines, "unassigned": unassigned}


__all__ = ["gather_evacuation"]

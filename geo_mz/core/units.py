"""Reporting units: the administrative units of one level, and which unit each point falls in.

Coverage, shelter adequacy and the relief audit all report per town (镇/街道) or village
(村/社区); they share these two steps so a point counts in the same unit everywhere.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.core.errors import CrsError, UnitsError

__all__ = ["assign_to_units", "units_of_level"]


def _check_units(units: object) -> gpd.GeoDataFrame:
    if not isinstance(units, gpd.GeoDataFrame):
        raise TypeError(f"`units` must be a GeoDataFrame, got {type(units).__name__}")
    if units.crs is None:
        raise CrsError("`units` has no CRS; set it with .set_crs(...), e.g. 'EPSG:4490'")
    missing = [c for c in ("adcode", "name", "level") if c not in units.columns]
    if missing:
        raise UnitsError(f"`units` lacks column(s) {missing}; it has {list(units.columns)}")
    return units


def units_of_level(units: gpd.GeoDataFrame, level: str) -> gpd.GeoDataFrame:
    """Select the units of one level, in jurisdiction, sorted by code, with string adcodes.

    Parameters
    ----------
    units
        The ``admin_units`` layer (``adcode``, ``name``, ``level``; optional
        ``in_jurisdiction`` and ``urban_rural``).
    level
        ``"town"`` or ``"village"`` (any level present in ``units``).

    Returns
    -------
    geopandas.GeoDataFrame
        The units of ``level`` whose ``in_jurisdiction`` is not False, index 0..n-1, with an
        ``urban_rural`` column (None where the layer has none).

    Raises
    ------
    UnitsError
        ``level`` is not in the layer, codes repeat, or codes differ in length.
    """
    _check_units(units)
    levels = sorted(units["level"].dropna().unique().tolist())
    if level not in levels:
        raise UnitsError(f"`level` was {level!r} but `units` has levels {levels}")
    keep = units["level"] == level
    if "in_jurisdiction" in units.columns:
        keep &= units["in_jurisdiction"].astype("boolean").fillna(True)
    u = units.loc[keep.to_numpy(dtype=bool)].sort_values("adcode").reset_index(drop=True)
    u["adcode"] = u["adcode"].astype(str)
    dup = sorted(set(u.loc[u["adcode"].duplicated(), "adcode"]))
    if dup:
        raise UnitsError(f"the {level} units repeat adcodes {dup[:10]}")
    if u["adcode"].str.len().nunique() != 1:
        raise UnitsError(f"the {level} units' adcodes differ in length; cannot join by prefix")
    if "urban_rural" not in u.columns:
        u["urban_rural"] = None
    return u


def assign_to_units(points: gpd.GeoDataFrame, units: gpd.GeoDataFrame) -> np.ndarray:
    """Position of each point's unit in ``units`` (-1: none).

    By the points' ``adcode`` prefix (as long as the units' codes) where a point has one; points
    without an adcode are joined spatially (first unit intersecting them). A point whose adcode
    matches no unit stays unassigned (it belongs to another area), it is not re-joined in space.
    """
    length = len(units["adcode"].iloc[0]) if len(units) else 0
    pos = np.full(len(points), -1, dtype=np.int64)
    has = np.zeros(len(points), dtype=bool)
    if "adcode" in points.columns and len(units):
        fact, uniq = pd.factorize(points["adcode"])  # few distinct codes: slice those only
        ucode = [str(c) for c in uniq]
        upos = pd.Index(units["adcode"]).get_indexer([c[:length] for c in ucode])
        uhas = np.array([len(c) >= length for c in ucode] + [False], dtype=bool)
        has = uhas[fact]  # fact -1 (missing) picks the trailing False
        pos[has] = upos[fact[has]]
    rest = np.flatnonzero(~has)
    if len(rest) and len(units):
        geoms = units.geometry.to_crs(points.crs) if units.crs != points.crs else units.geometry
        tree = shapely.STRtree(np.asarray(geoms.values))
        pi, ui = tree.query(np.asarray(points.geometry.values)[rest], predicate="intersects")
        first = pd.Series(ui).groupby(pi).min()
        pos[rest[first.index.to_numpy()]] = first.to_numpy()
    return pos

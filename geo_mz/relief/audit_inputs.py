"""The relief audit's points: villages (population-weighted centres) and shelters.

:func:`audit_points` places them as :func:`geo_mz.relief.audit` needs them;
:func:`uses_units_as_given` says when no village is made from coded points (then a village's
point depends only on its polygon and the cells coded to it, which is what lets a partitioned
run read only those cells: :mod:`geo_mz.scale.partition_relief`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.core.projection import geometries_to_crs
from geo_mz.core.units import complete_units
from geo_mz.relief.audit_targets import ReliefError

STORAGE_CRS = "EPSG:4490"


def audit_points(
    layers: Mapping[str, gpd.GeoDataFrame],
    *,
    shelters: bool = True,
    measure_crs: str | None = None,
) -> gpd.GeoDataFrame:
    """Villages (population-weighted centres) and shelters to audit.

    Parameters
    ----------
    layers
        Workspace layers: ``admin_units`` (villages: ``level == "village"`` in jurisdiction),
        optionally ``population`` (cells with ``pop_total`` and ``adcode``) and ``shelters``.
    shelters
        Audit the shelters too.
    measure_crs
        Projected CRS of the weighted centres; the GK zone of the villages' centre when None
        (a partitioned run passes the workspace's, so every piece computes the same points).

    Returns
    -------
    geopandas.GeoDataFrame
        ``point_id``, ``kind`` (village/shelter), ``name``, ``adcode``, ``town_adcode``,
        ``town_name``, ``population`` and a Point geometry (EPSG:4490). A village without
        populated cells is placed at its polygon's representative point.
    """
    units = layers.get("admin_units")
    if units is None or units.empty:
        raise ReliefError("admin_units: the layer is missing or empty (villages are audited)")
    if not uses_units_as_given(units):
        # Villages without polygons: approximate areas from village seats / coded population.
        units = complete_units(layers)[0]["admin_units"]
    # Arrays reprojected, not frames (the same coordinates bit for bit as ``to_crs``): a
    # partitioned run places a hundred points per part, and frame overheads dominated.
    geoms = geometries_to_crs(np.asarray(units.geometry.values), units.crs, STORAGE_CRS)
    level = units["level"].to_numpy(dtype=object)
    inj = _in_jurisdiction(units)
    vil_rows = np.flatnonzero((level == "village") & inj)
    if len(vil_rows) == 0:
        raise ReliefError(
            "admin_units: 辖区内没有村居单元可审计 / no village-level units in the jurisdiction to "
            "audit: import village polygons (geo-mz init --units) or village seats with 12-digit "
            "codes (place_names, category village_seat), or population by village code"
        )
    # Column by column, not a frame taken: a frame's take and reset cost more than a part's
    # hundred villages.
    vil_text, vil_name, vil_parent = (
        units[c].take(vil_rows).reset_index(drop=True).astype(str)
        for c in ("adcode", "name", "parent_adcode")
    )
    vil_code = vil_text.to_numpy(dtype=object)
    vil_geom = geoms[vil_rows]
    is_town = level == "town"
    towns = dict(
        zip(units["adcode"].to_numpy()[is_town], units["name"].to_numpy()[is_town], strict=True)
    )
    from geo_mz.core.projection import measure_crs_for

    metric = measure_crs or measure_crs_for(gpd.GeoDataFrame(geometry=vil_geom, crs=STORAGE_CRS))
    pts = shapely.point_on_surface(geometries_to_crs(vil_geom, STORAGE_CRS, metric))
    pop = np.zeros(len(vil_rows))
    pop_layer = layers.get("population")
    if pop_layer is not None and len(pop_layer) and "adcode" in pop_layer.columns:
        w = pd.to_numeric(pop_layer["pop_total"]).fillna(0).to_numpy(float)
        code_text = pop_layer["adcode"].astype(str)
        code = code_text.to_numpy(dtype=object)
        # Only populated cells coded to a village weigh: the others are not reprojected (a
        # cell's centre and the per-village sums, in row order, are what they were).
        use = np.flatnonzero((w > 0) & code_text.isin(vil_text).to_numpy(dtype=bool))
    else:
        use = np.array([], dtype=np.int64)
    # No cell coded to a village (cells by town, as a province's often are): every village
    # stays at its polygon's point with no people, as the sums would leave it.
    if len(use):
        cell = geometries_to_crs(np.asarray(pop_layer.geometry.values)[use], pop_layer.crs, metric)
        if not np.all(shapely.is_missing(cell) | (shapely.get_type_id(cell) == 0)):
            raise ReliefError("population: the cells must be points (their centres)")
        wu = w[use]
        df = pd.DataFrame(
            {
                "code": code[use],
                "w": wu,
                "x": shapely.get_x(cell) * wu,
                "y": shapely.get_y(cell) * wu,
            }
        )
        agg = df.groupby("code")[["w", "x", "y"]].sum()
        hit = vil_text.map(agg["w"]).fillna(0).to_numpy(float)
        has = hit > 0
        codes = vil_code[has]
        sums = agg.loc[codes]
        xy = np.column_stack([sums["x"] / sums["w"], sums["y"] / sums["w"]])
        pts = pts.copy()
        pts[has] = shapely.points(xy)
        pop = hit
    # Columns as arrays, one frame at the end: a frame built costs more than a part's hundred
    # points (the values and dtypes are those the frames of each kind gave, concatenated).
    parent_text = vil_parent
    cols = {
        "point_id": [vil_text],
        "kind": [np.full(len(vil_rows), "village", dtype=object)],
        "name": [vil_name],
        "adcode": [vil_text],
        "town_adcode": [parent_text],
        "population": [pop],
    }
    geom = [geometries_to_crs(pts, metric, STORAGE_CRS)]
    sh = layers.get("shelters")
    if shelters and sh is not None and len(sh):
        sh = sh.reset_index(drop=True)
        sh_geom = geometries_to_crs(np.asarray(sh.geometry.values), sh.crs, STORAGE_CRS)
        code = (
            sh["adcode"].astype("string")
            if "adcode" in sh.columns
            else pd.Series(pd.NA, index=sh.index, dtype="string")
        )
        missing = code.isna() | (code.str.len() < 6)
        if missing.any():
            # Shelters without a village code take the village they stand in.
            joined = gpd.sjoin(
                gpd.GeoDataFrame(geometry=sh_geom, crs=STORAGE_CRS)[missing.to_numpy(bool)],
                gpd.GeoDataFrame({"adcode": vil_text}, geometry=vil_geom, crs=STORAGE_CRS),
                predicate="within",
                how="left",
            )
            joined = joined[~joined.index.duplicated()]
            code[missing] = joined["adcode"].astype("string")
        parent = pd.Series(parent_text.to_numpy(), index=vil_text.to_numpy())
        cols["point_id"].append(sh["shelter_id"].astype(str))
        cols["kind"].append(np.full(len(sh), "shelter", dtype=object))
        cols["name"].append(sh["name"].astype(str))
        cols["adcode"].append(code.fillna("").astype(str))
        cols["town_adcode"].append(
            code.map(parent).fillna(code.str.slice(0, 9)).fillna("").astype(str)
        )
        cols["population"].append(
            pd.to_numeric(sh.get("capacity_persons", 0)).fillna(0).astype(float)
        )
        geom.append(sh_geom)
    # Text columns made ``str`` arrays at once (what ``astype(str)`` of the frame gave, missing
    # values kept missing), the town names looked up in a dict: frame-wide casts and maps cost
    # more than a part's hundred points.
    data: dict[str, Any] = {}
    for k, vs in cols.items():
        if k == "population":
            data[k] = np.concatenate([np.asarray(v, dtype=float) for v in vs])
        else:
            data[k] = pd.array(np.concatenate([np.asarray(v, dtype=object) for v in vs]), dtype=str)
    town_adcode = np.asarray(data["town_adcode"], dtype=object)
    names = [towns.get(c, "") if isinstance(c, str) else "" for c in town_adcode]
    data["town_name"] = pd.array(np.array([n if isinstance(n, str) else "" for n in names],
                                          dtype=object), dtype=str)  # fmt: skip
    data["geometry"] = gpd.array.GeometryArray(np.concatenate(geom), crs=STORAGE_CRS)
    return gpd.GeoDataFrame(pd.DataFrame(data), geometry="geometry", crs=STORAGE_CRS)


def _in_jurisdiction(units: gpd.GeoDataFrame) -> np.ndarray:
    """Per unit: in the jurisdiction (a missing flag counts as in)."""
    inj = units.get("in_jurisdiction", pd.Series(True, index=units.index))
    return inj.fillna(True).astype(bool).to_numpy()


def uses_units_as_given(units: gpd.GeoDataFrame) -> bool:
    """Whether :func:`audit_points` takes the villages of ``units`` as they are.

    :func:`geo_mz.core.units.complete_units` approximates a level only when no unit of it is
    in the jurisdiction (read the same way here), so with towns and villages present no
    village is made from coded points: each village's point is its polygon's, or the weighted
    centre of the population cells coded to it.

    Parameters
    ----------
    units
        Admin units (``level``, optionally ``in_jurisdiction``).

    Returns
    -------
    bool
        True when the units have towns and villages in the jurisdiction.
    """
    # As arrays (every relief part asks, twice): no Series built or indexed.
    inside = units["level"].to_numpy(dtype=object)
    if "in_jurisdiction" in units.columns:
        keep = units["in_jurisdiction"].astype("boolean").fillna(True).to_numpy(dtype=bool)
        inside = inside[keep]
    return bool((inside == "town").any() and (inside == "village").any())


__all__ = ["audit_points", "uses_units_as_given"]

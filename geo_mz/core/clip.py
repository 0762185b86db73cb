"""Keep the rows of a list that lie inside a district and list the others (``--clip``).

A city-wide list (shelters, facilities) brought into one district's workspace is clipped to the
district instead of failing on every row outside it. Nothing is dropped silently: each row left
out is reported with its file row, id, coordinates as given and its distance to the district.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from geo_mz.core.catalog import get_spec
from geo_mz.core.errors import Problem

#: Admin levels from the largest to the smallest unit (``admin_units.level`` codes).
LEVELS: tuple[str, ...] = ("province", "city", "county", "town", "village")

#: Columns of the list of rows left out by a clip.
CLIPPED_COLUMNS: tuple[str, ...] = ("row", "id", "lon", "lat", "distance_km")


@dataclass(frozen=True)
class District:
    """The area a list is clipped to.

    Attributes
    ----------
    geometry
        Polygon(s) or box in lon/lat (the storage CRS, EPSG:4490).
    label_zh, label_en
        What the area is, for messages: e.g. ``行政区划 440307 龙岗区（县级）``.
    source
        ``"admin_units"`` or ``"bounds"`` (the workspace's expected area).
    measure_crs
        Projected CRS used to measure the distance of rows outside it.
    """

    geometry: BaseGeometry
    label_zh: str
    label_en: str
    source: str
    measure_crs: str

    @property
    def label(self) -> str:
        """Both labels, Chinese first."""
        return f"{self.label_zh} / {self.label_en}"


def district_from_layers(
    units: gpd.GeoDataFrame | None,
    *,
    adcode: str,
    bounds: tuple[float, float, float, float],
    measure_crs: str,
) -> District:
    """Choose the district of a workspace from its ``admin_units`` layer, else its bounds.

    The rows whose ``adcode`` equals the workspace's (the smallest level among them, when it
    appears at several); else the county-level rows not marked outside the jurisdiction
    (``in_jurisdiction`` false); else the workspace's expected lon/lat bounds.

    Parameters
    ----------
    units
        The workspace's ``admin_units`` layer (any CRS), or None when it has none.
    adcode
        The workspace's GB/T 2260 code.
    bounds
        The workspace's expected area ``(minx, miny, maxx, maxy)``.
    measure_crs
        Projected CRS for distances.

    Returns
    -------
    District
    """
    if units is not None and len(units):
        g = units.to_crs("EPSG:4490") if units.crs is not None else units
        codes = g["adcode"].astype(str)
        same = g[codes == str(adcode)]
        if len(same):
            rank = same["level"].map({lv: i for i, lv in enumerate(LEVELS)}).fillna(-1)
            same = same[rank == rank.max()]
            name = str(same["name"].iloc[0])
            level = get_spec("admin_units").field("level")
            code = str(same["level"].iloc[0])
            return District(
                shapely.union_all(np.asarray(same.geometry.values)),
                f"行政区划 {adcode} {name}（{level.label(code)}）",
                f"admin unit {adcode} {name} ({level.label(code, 'en').lower()})",
                "admin_units",
                measure_crs,
            )
        county = g[g["level"].astype(str) == "county"]
        if "in_jurisdiction" in county.columns:
            county = county[county["in_jurisdiction"].astype("boolean").fillna(True)]
        if len(county):
            names = "、".join(str(n) for n in county["name"].tolist()[:5])
            more = " ..." if len(county) > 5 else ""
            return District(
                shapely.union_all(np.asarray(county.geometry.values)),
                f"行政区划中的 {len(county)} 个县级单位（{names}{more}）",
                f"the {len(county)} county-level admin unit(s) ({names}{more})",
                "admin_units",
                measure_crs,
            )
    box = shapely.box(*bounds)
    shown = ", ".join(f"{b:g}" for b in bounds)
    return District(
        box,
        f"工作空间范围 [{shown}]（没有本区的行政区划面）",
        f"the workspace bounds [{shown}] (no admin_units polygon of the district)",
        "bounds",
        measure_crs,
    )


def clip_rows(
    points: gpd.GeoSeries,
    district: District,
    *,
    file: str,
    rows: Sequence[int],
    ids: Sequence[str | None],
    source_xy: np.ndarray,
) -> tuple[np.ndarray, pd.DataFrame, list[Problem]]:
    """Split a layer into rows inside the district and rows outside it.

    Rows without a usable geometry are kept, so that validation reports them.

    Parameters
    ----------
    points
        Geometries in the storage CRS (lon/lat).
    district
        The area to keep.
    file
        The source file, for messages.
    rows
        1-based file row of each geometry.
    ids
        Feature id of each row (None when unknown).
    source_xy
        ``(n, 2)`` coordinates as given in the file (NaN when not a point), shown in the list.

    Returns
    -------
    tuple
        A boolean keep mask, the table of rows left out (:data:`CLIPPED_COLUMNS`) and the
        notices: one per row left out and a summary.
    """
    geoms = np.asarray(points.values, dtype=object)
    present = ~shapely.is_missing(geoms)
    present[present] = ~shapely.is_empty(geoms[present])
    shapely.prepare(district.geometry)
    inside = np.ones(len(geoms), dtype=bool)
    inside[present] = shapely.covers(district.geometry, geoms[present])
    out_idx = np.flatnonzero(~inside)
    dist_km = np.zeros(len(out_idx))
    if len(out_idx):
        pts = gpd.GeoSeries(geoms[out_idx], crs="EPSG:4490").to_crs(district.measure_crs)
        area = gpd.GeoSeries([district.geometry], crs="EPSG:4490").to_crs(district.measure_crs)
        dist_km = shapely.distance(np.asarray(pts.values), area.values[0]) / 1000.0
    table = pd.DataFrame(
        {
            "row": [int(rows[i]) for i in out_idx],
            "id": [ids[i] for i in out_idx],
            "lon": source_xy[out_idx, 0] if len(out_idx) else [],
            "lat": source_xy[out_idx, 1] if len(out_idx) else [],
            "distance_km": np.round(dist_km, 3),
        },
        columns=list(CLIPPED_COLUMNS),
    )
    notes = [
        Problem(
            file,
            int(rows[i]),
            ids[i],
            "geometry",
            "outside_district",
            f"({_xy(source_xy[i])}) 在辖区外 {d:.2f} km，未导入 (--clip) / {d:.2f} km outside "
            f"the district, not imported (--clip)",
            "notice",
        )
        for i, d in zip(out_idx, dist_km, strict=True)
    ]
    summary = Problem(
        file,
        None,
        None,
        "geometry",
        "clipped",
        f"--clip：{int(inside.sum())} 行在辖区内导入，{len(out_idx)} 行在辖区外未导入（逐行列出）；"
        f"辖区 = {district.label_zh} / --clip: {int(inside.sum())} rows inside the district "
        f"kept, {len(out_idx)} rows outside left out (listed row by row); district = "
        f"{district.label_en}",
        "notice",
    )
    return inside, table, [summary, *notes]


def _xy(xy: Any) -> str:
    x, y = (float(v) for v in xy)
    return "no coordinates" if np.isnan(x) or np.isnan(y) else f"{x:.6f}, {y:.6f}"


def source_coordinates(geoms: gpd.GeoSeries) -> np.ndarray:
    """``(n, 2)`` lon/lat of point geometries as read (NaN for missing or non-point ones)."""
    arr = np.asarray(geoms.values, dtype=object)
    xy = np.full((len(arr), 2), np.nan)
    ok = ~shapely.is_missing(arr)
    ok[ok] = shapely.get_type_id(arr[ok]) == 0  # Point
    ok[ok] = ~shapely.is_empty(arr[ok])
    xy[ok, 0] = shapely.get_x(arr[ok])
    xy[ok, 1] = shapely.get_y(arr[ok])
    return xy

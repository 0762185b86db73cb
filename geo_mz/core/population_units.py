"""Population points from counts per town or village, spread dasymetrically over each unit.

:func:`population_from_units` reads the household-registration (户籍) counts a bureau holds per
town (9-digit code) or village (12-digit code), from a DataFrame, CSV (UTF-8 or GB18030) or
XLSX with the column names bureaus use, checks every row at once, and spreads each unit's counts
over the cells of a grid inside the unit in proportion to the populated area (within reach of a
road, or building footprints), as integers whose sum per unit equals the table exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import affine
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from geo_mz.core._population_common import (
    AGED_FIELD_ALIASES,
    CODE_FIELD_ALIASES,
    TOTAL_FIELD_ALIASES,
    PopulationError,
    PopulationReport,
    Progress,
    code_text,
    find_column,
    measuring_crs,
    overlap,
    place_points,
    progress_fn,
)
from geo_mz.core.errors import CrsError, GeoMzError
from geo_mz.core.projection import STORAGE_CRS
from geo_mz.core.units import finest_codes, units_of_level

__all__ = ["population_from_units"]

# fmt: off
#: Columns of ``PopulationReport.by_unit`` for a table.
_BY_UNIT = (
    "adcode", "name", "pop_total", "pop_60plus", "points", "weight_basis", "unit_area_m2",
    "eligible_area_m2",
)
# fmt: on

#: Segments per quarter circle of the road buffers (geopandas' default; the polygon lies
#: inside the true circle, at most road_reach_m * (1 - cos(pi / 64)), 0.06 %, short of it).
_QUAD_SEGS = 16


def _largest_remainder(
    weights: np.ndarray, total: int, cap: np.ndarray | None = None
) -> np.ndarray:
    """Integers proportional to ``weights`` summing exactly to ``total`` (Hamilton's method).

    Ties go to the earlier position (deterministic); ``cap`` bounds each integer (the aged 60+
    of a point never exceed its total).
    """
    w = np.asarray(weights, dtype=np.float64)
    if total == 0:
        return np.zeros(len(w), dtype=np.int64)
    quota = w * (total / w.sum())
    out = np.floor(quota).astype(np.int64)
    if cap is not None:
        out = np.minimum(out, cap)
    left = int(total - out.sum())
    while left > 0:
        room = (w > 0) if cap is None else (w > 0) & (out < cap)
        order = np.argsort(-(quota - out), kind="stable")
        order = order[room[order]][:left]
        if not len(order):  # only if the caps cannot hold the total: a bug, not bad input
            raise GeoMzError(f"内部错误: 无法分配 {total} / internal: cannot allocate {total}")
        out[order] += 1
        left -= len(order)
    while left < 0:  # float rounding pushed a floor over (never seen; kept exact anyway)
        order = np.argsort(quota - out, kind="stable")
        order = order[out[order] > 0][:-left]
        out[order] -= 1
        left += len(order)
    return out


def _polygonal(g: Any) -> Any:
    """Keep the polygons of ``g``; an empty polygon if it has none.

    An intersection can add the lines and points where two outlines touch.
    """
    if isinstance(g, shapely.Polygon | shapely.MultiPolygon):
        return g
    polys = [
        p for p in shapely.get_parts(g) if isinstance(p, shapely.Polygon | shapely.MultiPolygon)
    ]
    return shapely.union_all(polys) if polys else shapely.Polygon()


# --- the table ----------------------------------------------------------------------------------


def _count(v: Any) -> float | None:
    if v is None or v is pd.NA or (isinstance(v, str) and not v.strip()):
        return None
    try:
        x = float(str(v).replace(",", "").strip()) if isinstance(v, str) else float(v)
    except (TypeError, ValueError):
        return math.nan
    return None if math.isnan(x) and not isinstance(v, str) else x


def _read_table(table: Any, encoding: str | None) -> tuple[pd.DataFrame, str]:
    if isinstance(table, pd.DataFrame):
        return table.reset_index(drop=True), "<DataFrame>"
    if not isinstance(table, str | Path):
        raise TypeError(
            f"`table` must be a DataFrame or a CSV/XLSX path, got {type(table).__name__}"
        )
    p, file = Path(table), str(table)
    if not p.is_file():
        raise PopulationError(f"{file}: 文件不存在 / no such file")
    suffix = p.suffix.lower()
    try:
        if suffix in (".xlsx", ".xlsm"):
            return pd.read_excel(p, dtype=str), file
        if suffix in (".csv", ".txt"):
            for enc in [encoding] if encoding else ["utf-8-sig", "gb18030"]:
                try:
                    return pd.read_csv(p, dtype=str, encoding=enc, keep_default_na=False), file
                except UnicodeDecodeError:
                    continue
            raise PopulationError(f"{file}: 无法识别文本编码 / cannot decode; give encoding=")
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        if isinstance(exc, PopulationError):
            raise
        raise PopulationError(f"{file}: 无法读取表格 / cannot read the table ({exc})") from exc
    raise PopulationError(
        f"{file}: 表格须为 CSV 或 XLSX(.xls 请另存为 .xlsx) / the table must be .csv or .xlsx "
        "(save an .xls as .xlsx)"
    )


# --- spreading the counts -----------------------------------------------------------------------


@dataclass
class _Row:
    code: str
    total: int
    aged: int


def _parse_rows(df: pd.DataFrame, file: str, code_c: str, total_c: str, aged_c: str) -> list[_Row]:
    problems: list[str] = []
    rows: list[_Row] = []
    seen: dict[str, int] = {}
    for i, (code_v, tot_v, aged_v) in enumerate(
        zip(df[code_c], df[total_c], df[aged_c], strict=True), start=1
    ):
        where = f"{file} 第 {i} 行 / row {i}"
        code = code_text(code_v)
        if code is None and _count(tot_v) is None and _count(aged_v) is None:
            continue  # a blank row (spreadsheets keep some at the end)
        if code is None or not code.isdigit():
            problems.append(f"{where}, '{code_c}': 代码无效 / not a numeric code: {code_v!r}")
            continue
        if code in seen:
            problems.append(
                f"{where}, '{code_c}': 代码 {code} 重复(第 {seen[code]} 行) / duplicate code "
                f"{code} (first in row {seen[code]})"
            )
            continue
        seen[code] = i
        counts = []
        for col, v in ((total_c, tot_v), (aged_c, aged_v)):
            x = _count(v)
            if x is None or math.isnan(x) or x < 0 or not float(x).is_integer():
                problems.append(
                    f"{where} ({code}), '{col}': 须为非负整数 / must be a whole count >= 0, "
                    f"got {v!r}"
                )
                counts.append(None)
            else:
                counts.append(int(x))
        tot, aged = counts
        if tot is not None and aged is not None and aged > tot:
            problems.append(
                f"{where} ({code}): 60岁以上 {aged} 多于总人口 {tot} / aged 60+ {aged} exceed "
                f"the total {tot}"
            )
        if tot is not None and aged is not None:
            rows.append(_Row(code, tot, aged))
    if problems:
        raise PopulationError(
            f"{file}: 人口表有 {len(problems)} 处错误 / errors in the table", problems
        )
    return rows


def _geoms_m(gdf: Any, what: str, kinds: tuple[str, ...], mcrs: CRS) -> np.ndarray | None:
    if gdf is None:
        return None
    if not isinstance(gdf, gpd.GeoDataFrame | gpd.GeoSeries):
        raise TypeError(f"`{what}` must be a GeoDataFrame, got {type(gdf).__name__}")
    if gdf.crs is None:
        raise CrsError(f"{what} 没有坐标系 / `{what}` has no CRS; set it, e.g. .set_crs(4490)")
    g = gdf.geometry.to_crs(mcrs)
    g = g[~(g.isna() | g.is_empty)]
    wrong = sorted(set(g.geom_type) - set(kinds))
    if wrong:
        raise PopulationError(f"`{what}` 的几何类型不对 / must hold {kinds}, has {wrong}")
    geoms = np.asarray(g.to_numpy())
    bad = ~shapely.is_valid(geoms)
    if bad.any():  # e.g. self-touching building outlines: repaired, their polygons kept
        # "structure" for polygons: the default "linework" drops pieces wound twice
        fixed = (
            shapely.make_valid(geoms[bad], method="structure", keep_collapsed=False)
            if "Polygon" in kinds[0]
            else shapely.make_valid(geoms[bad])
        )
        geoms[bad] = [_polygonal(x) if "Polygon" in kinds[0] else x for x in fixed]
    return geoms


def population_from_units(
    table: pd.DataFrame | str | Path,
    units: gpd.GeoDataFrame,
    *,
    level: str,
    code_field: str = "adcode",
    total_field: str | None = None,
    aged_field: str | None = None,
    roads: gpd.GeoDataFrame | None = None,
    buildings: gpd.GeoDataFrame | None = None,
    cell_m: float = 100.0,
    road_reach_m: float = 500.0,
    measure_crs: str | None = None,
    encoding: str | None = None,
    progress: Progress | None = None,
) -> tuple[gpd.GeoDataFrame, PopulationReport]:
    """Make population points from counts per town or village, spread dasymetrically per unit.

    Each unit's counts (户籍 household-registration statistics, or any count per unit) are
    spread over the cells of a ``cell_m`` grid (in the measuring CRS, origin at multiples of
    ``cell_m``) inside the unit's polygon, in proportion to each cell's *populated area*:

    * the part of the cell inside the unit (no ``roads``, no ``buildings``);
    * with ``roads``: the part inside the unit and within ``road_reach_m`` of a road (the
      buffer of the road lines, 16 segments per quarter circle);
    * with ``buildings``: the building footprint area in that part instead (footprints
      within reach of a road when ``roads`` is given too).

    Counts are integers (largest remainder, ties to the earlier cell) whose sum per unit
    equals the table's count exactly; the aged 60+ are spread in proportion to the totals the
    same way, never more than a point's total.

    Parameters
    ----------
    table
        A DataFrame, or a CSV (UTF-8 or GBK/GB18030) or XLSX file, one row per unit: its code
        (9 digits for a town, 12 for a village), total and aged 60+ counts (whole numbers).
        Headers may be the field names or the Chinese ones bureaus use: see
        ``TOTAL_FIELD_ALIASES`` (户籍人口, 总人口, ...), ``AGED_FIELD_ALIASES``
        (60岁以上, 60周岁及以上人口, ...) and ``CODE_FIELD_ALIASES`` (区划代码, ...); a
        trailing unit such as ``(人)`` is ignored. Blank rows are skipped; a total row (合计)
        is an error (no code): remove it. Rows are numbered from 1 under the header.
    units
        The ``admin_units`` layer (``adcode``, ``name``, ``level``, polygons, with a CRS).
    level
        The level of the table's codes: ``"town"`` or ``"village"``.
    code_field, total_field, aged_field
        Column names; the code, total and aged columns are found by their aliases when the
        name given is not a column (or is None).
    roads
        Road lines (any CRS). None: the whole unit area counts.
    buildings
        Building footprints (polygons, any CRS). None: area, not footprints, is the weight.
    cell_m
        Cell size of the grid in metres.
    road_reach_m
        How far from a road people live, in metres (local choice; 500 m by default).
    measure_crs
        Projected CRS for the grid and areas; default the Gauss-Krüger zone of the units'
        centre.
    encoding
        Text encoding of a CSV table when not UTF-8 or GB18030.
    progress
        Called with a short message at each step.

    Returns
    -------
    tuple
        The points (``cell_id`` ``U{adcode}-{k:06d}``, ``pop_total``, ``pop_60plus`` (whole
        numbers as floats), ``cell_size_m``, ``adcode`` of the unit; EPSG:4490) and the
        :class:`PopulationReport` (``by_unit``: counts, points, weight basis and areas per unit).

    Raises
    ------
    PopulationError
        Rows with a bad or duplicate code, a count that is not a whole number ≥ 0, or more aged
        than people (every bad row at once); codes with no unit polygon (all listed); a table
        with nobody in it.
    UnitsError
        ``level`` is not in ``units``, or its codes repeat.

    Notes
    -----
    A unit with no populated area (no road within reach, no building) falls back to its whole
    area, and a unit polygon with no row is left without points: both are named in
    ``PopulationReport.warnings``; a unit's population is never set to zero silently. A point
    lies at its cell centre unless the centre is outside the populated part of the cell; then
    it lies inside that part, so every point is inside its unit (and within reach of a road).
    """
    say = progress_fn(progress)
    if not cell_m > 0 or not road_reach_m > 0:
        raise PopulationError(
            f"cell_m ({cell_m!r}) 与 road_reach_m ({road_reach_m!r}) 须 > 0 / must be > 0"
        )
    df, file = _read_table(table, encoding)
    cols = [str(c) for c in df.columns]
    df.columns = cols
    code_c = find_column(cols, code_field, CODE_FIELD_ALIASES, "code", file)
    total_c = find_column(cols, total_field, TOTAL_FIELD_ALIASES, "total", file)
    aged_c = find_column(cols, aged_field, AGED_FIELD_ALIASES, "aged 60+", file)
    rows = _parse_rows(df, file, code_c, total_c, aged_c)
    u = units_of_level(units, level)
    by_code = {c: i for i, c in enumerate(u["adcode"])}
    length = len(u["adcode"].iloc[0]) if len(u) else 0
    unknown = [r.code for r in rows if r.code not in by_code]
    if unknown:
        raise PopulationError(
            f"{file}: {len(unknown)} 个代码没有对应的{level}区划面 / codes with no {level} polygon "
            f"in `units` ({level} codes there have {length} digits)",
            unknown,
        )
    if sum(r.total for r in rows) == 0:
        raise PopulationError(f"{file}: 表中总人口为 0 / the table has nobody in it")
    warnings: list[str] = []
    no_row = sorted(set(u["adcode"]) - {r.code for r in rows})
    for c in no_row:
        warnings.append(
            f"{c} {u.loc[by_code[c], 'name']} 在表中没有数据, 人口未知(未计为零) / unit {c} has "
            "no row in the table: its population is unknown (no points; not counted as zero)"
        )
    lon = float(np.mean(u.geometry.to_crs(4326).total_bounds[[0, 2]]))
    mcrs = measuring_crs(measure_crs, lon)
    u_m = np.asarray(u.geometry.to_crs(mcrs).to_numpy())
    road_g = _geoms_m(roads, "roads", ("LineString", "MultiLineString"), mcrs)
    bld_g = _geoms_m(buildings, "buildings", ("Polygon", "MultiPolygon"), mcrs)
    road_t = shapely.STRtree(road_g) if road_g is not None else None
    bld_t = shapely.STRtree(bld_g) if bld_g is not None else None
    basis = (["buildings"] if bld_g is not None else []) + (
        [f"roads≤{road_reach_m:g}m"] if road_g is not None else []
    )
    basis_name = "+".join(basis) or "area"
    lack_zh = "".join(
        (["没有建筑"] if bld_g is not None else [])
        + ([f"{road_reach_m:g} 米内没有道路"] if road_g is not None else [])
    )
    lack = " or ".join(
        (["no buildings"] if bld_g is not None else [])
        + ([f"no roads within {road_reach_m:g} m"] if road_g is not None else [])
    )
    pieces: list[pd.DataFrame] = []
    table_rows: list[tuple[Any, ...]] = []
    moved_n = 0
    say(f"分配 {len(rows)} 个单元的人口 spreading {len(rows)} units over {cell_m:g} m cells")
    for k, r in enumerate(sorted(rows, key=lambda x: x.code)):
        if k and k % 50 == 0:
            say(f"  {k}/{len(rows)}")
        i = by_code[r.code]
        unit = (
            u_m[i]
            if u_m[i].is_valid
            else _polygonal(shapely.make_valid(u_m[i], method="structure", keep_collapsed=False))
        )
        name = str(u.loc[i, "name"])
        region, used = unit, basis_name
        if bld_g is not None:
            near_b = bld_g[bld_t.query(unit, predicate="intersects")]
            region = _polygonal(shapely.intersection(region, shapely.union_all(near_b)))
        if road_g is not None:
            reach_box = shapely.buffer(shapely.envelope(unit), road_reach_m)
            near_r = road_g[road_t.query(reach_box, predicate="intersects")]
            # Buffer each road, then union: the same area as buffering the collection at once,
            # hundreds of times faster (GEOS unions the buffers pairwise as a cascade).
            reach = shapely.union_all(shapely.buffer(near_r, road_reach_m, quad_segs=_QUAD_SEGS))
            region = _polygonal(shapely.intersection(region, reach))
        if basis and shapely.area(region) < 1.0:  # under 1 m2: no populated area to speak of
            warnings.append(
                f"{r.code} {name}: {lack_zh}, 按全部面积分配 / unit {r.code} {name} has {lack}: "
                "its counts are spread over its whole area"
            )
            region, used = unit, "area (fallback)"
        n_pts = 0
        if r.total:
            pts, moved = _spread(r, region, cell_m)
            moved_n += moved
            pieces.append(pts)
            n_pts = len(pts)
        table_rows.append((r.code, name, r.total, r.aged, n_pts, used, unit.area, region.area))
    for c in no_row:
        area = u_m[by_code[c]].area
        name = str(u.loc[by_code[c], "name"])
        table_rows.append((c, name, math.nan, math.nan, 0, "unknown (no row)", area, math.nan))
    allpts = pd.concat(pieces, ignore_index=True)
    to_s = Transformer.from_crs(mcrs, CRS.from_user_input(STORAGE_CRS), always_xy=True)
    lon_a, lat_a = to_s.transform(allpts["x"].to_numpy(), allpts["y"].to_numpy())
    gdf = gpd.GeoDataFrame(
        {
            "cell_id": allpts["cell_id"].to_numpy(),
            "pop_total": allpts["pop_total"].to_numpy(dtype=float),
            "pop_60plus": allpts["pop_60plus"].to_numpy(dtype=float),
            "cell_size_m": np.full(len(allpts), float(cell_m)),
            "adcode": allpts["adcode"].to_numpy(),
        },
        geometry=gpd.points_from_xy(lon_a, lat_a),
        crs=STORAGE_CRS,
    )
    # A county's (or town's) points take the code of the finer polygon they lie in, so the
    # per-town figures and parts by town count them (their unit's totals stay as they are).
    gdf["adcode"], refined = finest_codes(gdf, units)
    spread_by = {
        "area": "unit area",
        "buildings": "building footprint area",
    }.get(basis_name, "building footprint area" if bld_g is not None else "road-reachable area")
    reach = f" (≤ {road_reach_m:g} m from a road)" if road_g is not None else ""
    total = float(sum(r.total for r in rows))
    report = PopulationReport(
        method=f"dasymetric: {level} counts spread over {cell_m:g} m cells by {spread_by}{reach},"
        " integers per unit (largest remainder)"
        + (f"; {refined} points coded to the finer unit polygon they lie in" if refined else ""),
        source=file,
        source_crs=CRS.from_user_input(u.crs).to_string(),
        measure_crs=mcrs.to_string(),
        cell_size_m=float(cell_m),
        cells=len(gdf),
        source_total=total,
        inside_total=float(gdf["pop_total"].sum()),
        outside_total=0.0,
        aged_total=float(gdf["pop_60plus"].sum()),
        aged_method=f"表格列 '{aged_c}' / table column '{aged_c}'",
        moved_points=moved_n,
        warnings=tuple(warnings),
        by_unit=pd.DataFrame(table_rows, columns=list(_BY_UNIT)).sort_values(
            "adcode", ignore_index=True
        ),
    )
    say(f"人口点 {len(gdf):,} 个 / {len(gdf):,} population points")
    return gdf, report


def _spread(r: _Row, region: Any, cell_m: float) -> tuple[pd.DataFrame, int]:
    """Cells of the unit's populated ``region`` (measuring CRS) with the unit's counts."""
    minx, miny, maxx, maxy = region.bounds
    x0 = math.floor(minx / cell_m) * cell_m
    y1 = math.ceil(maxy / cell_m) * cell_m
    ncols = max(1, math.ceil((maxx - x0) / cell_m))
    nrows = max(1, math.ceil((y1 - miny) / cell_m))
    t = affine.Affine(cell_m, 0.0, x0, 0.0, -cell_m, y1)
    whole = np.full(nrows, cell_m * cell_m)
    ov = overlap(region, region, t, (nrows, ncols), None, 0.05 * cell_m, None, whole)
    order = np.lexsort((ov.cols, ov.rows))
    rows, cols, area, parts = ov.rows[order], ov.cols[order], ov.area_m2[order], ov.parts[order]
    total = _largest_remainder(area, r.total)
    aged = _largest_remainder(total.astype(float), r.aged, cap=total)
    keep = total > 0
    cx = x0 + (cols[keep] + 0.5) * cell_m
    cy = y1 - (rows[keep] + 0.5) * cell_m
    x, y, moved = place_points(cx, cy, parts[keep], region)
    n = int(keep.sum())
    return (
        pd.DataFrame(
            {
                "cell_id": [f"U{r.code}-{j:06d}" for j in range(1, n + 1)],
                "pop_total": total[keep],
                "pop_60plus": aged[keep],
                "adcode": r.code,
                "x": x,
                "y": y,
            }
        ),
        int(moved.sum()),
    )

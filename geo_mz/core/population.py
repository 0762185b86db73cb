"""Population points from a count raster (WorldPop) or from the counts per town or village.

Two sources give the ``population`` layer (one point per populated cell, ``pop_total`` and
``pop_60plus``, EPSG:4490) that coverage and shelter adequacy sum per unit:

* :func:`population_from_raster`: a raster of people per cell (WorldPop: EPSG:4326, 3"; or any
  projected grid) becomes one point per populated cell, clipped to the district by the exact
  area of each edge cell inside it. The raster is not resampled, so the people inside plus the
  people outside equal the cells read.
* :func:`population_from_units`: the household-registration (户籍) counts a bureau holds per
  town (9-digit code) or village (12-digit code) are spread over cells inside each unit
  dasymetrically: by the unit's area within reach of a road (or by building footprints), with
  integer counts whose sum per unit equals the table exactly.

Both return the points and a :class:`PopulationReport` (totals, what was clipped, how the aged
60+ were derived, warnings), whose :meth:`PopulationReport.lines` the command line prints.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import affine
import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.errors
import rasterio.features
import rasterio.windows
import shapely
from pyproj import CRS, Transformer

from geo_mz.core.display import Lang
from geo_mz.core.errors import CrsError, GeoMzError
from geo_mz.core.projection import STORAGE_CRS, gk_zone_crs, parse_crs
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

Progress = Callable[[str], None]

# fmt: off
#: Column names accepted for a unit table's total count (compared after stripping blanks and a
#: trailing unit in brackets, e.g. ``户籍人口(人)``, case-insensitively).
TOTAL_FIELD_ALIASES: tuple[str, ...] = (
    "pop_total", "total", "population", "户籍人口", "户籍总人口", "户籍人口数",
    "总人口", "人口", "人口数", "人口总数", "常住人口",
)

#: Column names accepted for a unit table's aged 60+ count.
AGED_FIELD_ALIASES: tuple[str, ...] = (
    "pop_60plus", "aged_60plus", "aged", "60岁以上", "60岁及以上", "60周岁以上",
    "60周岁及以上", "60岁以上人口", "60岁及以上人口", "60周岁以上人口",
    "60周岁及以上人口", "60岁以上老年人口", "60岁及以上老年人口",
    "60周岁及以上老年人口", "60周岁以上老年人口", "老年人口",
)

#: Column names accepted for a unit code (GB/T 2260 + statistical 9/12-digit codes).
CODE_FIELD_ALIASES: tuple[str, ...] = (
    "adcode", "code", "区划代码", "统计用区划代码", "行政区划代码", "代码", "编码",
)

#: Column names accepted for the aged 60+ share in an ``aged_share_by_unit`` table.
SHARE_FIELD_ALIASES: tuple[str, ...] = (
    "aged_share", "share", "60岁以上占比", "60岁及以上人口占比",
    "60周岁及以上人口占比", "老年人口占比", "老龄化率",
)

_LEVEL_OF_LENGTH = {6: "county", 9: "town", 12: "village"}

#: Columns of ``PopulationReport.by_unit`` for a table.
_BY_UNIT = (
    "adcode", "name", "pop_total", "pop_60plus", "points", "weight_basis", "unit_area_m2",
    "eligible_area_m2",
)
# fmt: on

#: Chinese gloss of ``PopulationReport.method`` (by its first word) for the command line.
_METHOD_ZH = {
    "raster": "栅格单元按边缘格网的精确面积裁剪到边界, 不重采样 — ",
    "dasymetric": "分区密度法: 按单元内道路可达面积(或建筑面积)分配, 每单元整数合计不变 — ",
}

#: Segments per quarter circle of the road buffers (geopandas' default; the polygon lies
#: inside the true circle, at most road_reach_m * (1 - cos(pi / 64)), 0.06 %, short of it).
_QUAD_SEGS = 16

#: Rows of a raster read at once (x the window's width, at most about 4 M cells per read).
_CHUNK_CELLS = 4_000_000


class PopulationError(GeoMzError, ValueError):
    """Population input that cannot be turned into population points (names the file and cell).

    Attributes
    ----------
    problems
        Every finding, one line each (all of them, not only the first).
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        if self.problems:
            shown = "\n".join(f"  - {p}" for p in self.problems[:50])
            more = len(self.problems) - 50
            message += (
                "\n" + shown + (f"\n  ... 另有 {more} 项 / and {more} more" if more > 0 else "")
            )
        super().__init__(message)


@dataclass(frozen=True, eq=False)
class PopulationReport:
    """What :func:`population_from_raster` or :func:`population_from_units` did, in figures.

    Attributes
    ----------
    method
        How the points were made, e.g. ``"raster cells clipped to the boundary by area"`` or
        ``"dasymetric: ... road-reachable area ..."``.
    source
        The raster file or the table (file path, or ``"<DataFrame>"``).
    source_crs
        CRS of the raster (or of the units layer).
    measure_crs
        The projected CRS in which areas were measured (a CGCS2000 Gauss-Krüger zone).
    cell_size_m
        Cell size in metres (for a geographic raster: the square root of the mean cell area).
    cells
        Number of points made (populated cells, or cell parts per unit).
    source_total
        People in the source: for a raster, every valid cell read (the window over the
        boundary's bounding box; the rest of the file is never read); for a table, its sum.
    inside_total
        People in the points (for a raster: inside the boundary after clipping edge cells).
    outside_total
        People read but outside the boundary (0 for a table).
    aged_total
        Aged 60+ in the points.
    aged_method
        How the aged 60+ were derived (the share and its source, the table column, the raster).
    cells_read
        Raster cells read (the window), 0 for a table.
    moved_points
        Points not at their cell centre: the centre lay outside the boundary (raster) or outside
        the unit's populated area (table), so the point sits inside the part that counts.
    warnings
        Findings that did not stop the run, Chinese first then English (units without a row,
        units without a road in reach, ...).
    by_unit
        Per unit (tables, and rasters with per-unit shares): code, name, counts, points, what
        the counts were spread by and the areas; None otherwise.
    """

    method: str
    source: str
    source_crs: str
    measure_crs: str
    cell_size_m: float
    cells: int
    source_total: float
    inside_total: float
    outside_total: float
    aged_total: float
    aged_method: str
    cells_read: int = 0
    moved_points: int = 0
    warnings: tuple[str, ...] = ()
    by_unit: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def aged_share(self) -> float:
        """Aged 60+ as a share of the people in the points (0–1)."""
        return self.aged_total / self.inside_total if self.inside_total > 0 else math.nan

    def lines(self, lang: Lang = "zh") -> list[str]:
        """Return the report as lines of text for the command line.

        Parameters
        ----------
        lang
            ``"zh"`` (Chinese, the default) or ``"en"``.

        Returns
        -------
        list of str
            Source and method, totals, aged 60+, then each warning.
        """
        zh = lang == "zh"
        read = self.cells_read
        rows = [
            ("人口来源", "Population source", self.source),
            (
                "方法",
                "Method",
                (_METHOD_ZH.get(self.method.split(":")[0], "") if zh else "") + self.method,
            ),
            ("坐标系", "CRS", self.source_crs),
            ("量测坐标系", "Measured in", self.measure_crs),
            ("格网边长约", "Cell size about", f"{self.cell_size_m:,.1f} m"),
            ("人口点", "Population points", f"{self.cells:,}"),
            ("读取栅格单元", "Raster cells read", f"{read:,}" if read else ""),
            ("来源总人口", "Source total", f"{self.source_total:,.1f}"),
            ("边界内(人口点合计)", "Inside (in the points)", f"{self.inside_total:,.1f}"),
            ("边界外(已裁去)", "Outside (clipped off)", f"{self.outside_total:,.1f}"),
            ("60岁及以上", "Aged 60+", f"{self.aged_total:,.1f} ({self.aged_share:.2%})"),
            ("60岁及以上来源", "Aged 60+ from", _half(self.aged_method, zh)),
            ("不在格网中心的点", "Points off their cell centre", f"{self.moved_points:,}"),
        ]
        out = [f"{z if zh else e}: {v}" for z, e, v in rows if v]
        out += [("警告: " if zh else "Warning: ") + _half(w, zh) for w in self.warnings]
        return out


def _half(text: str, zh: bool) -> str:
    """Return the Chinese or the English half of a ``"中文 / English"`` text (all if one)."""
    first, sep, second = text.partition(" / ")
    return text if not sep else (first if zh else second)


# --- shared geometry ----------------------------------------------------------------------------


def _say(progress: Progress | None) -> Progress:
    return progress if progress is not None else (lambda _msg: None)


def _transformer(src: Any, dst: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Coordinate function for :func:`shapely.transform` from ``src`` to ``dst`` (always x, y)."""
    tr = Transformer.from_crs(CRS.from_user_input(src), CRS.from_user_input(dst), always_xy=True)

    def fn(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return fn


def _measure_crs(measure_crs: str | None, lon: float) -> CRS:
    target = parse_crs(measure_crs or gk_zone_crs(lon))
    assert target is not None
    if not target.is_projected:
        raise CrsError(
            f"量测坐标系 {target.to_string()} 不是投影坐标系 / measuring CRS "
            f"{target.to_string()} is geographic; give a projected CRS such as EPSG:4547"
        )
    return target


def _boxes(t: affine.Affine, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Polygons of cells ``(rows, cols)`` of a north-up grid, in the grid's CRS."""
    x0 = t.c + cols * t.a
    y0 = t.f + rows * t.e
    return shapely.box(x0, y0 + t.e, x0 + t.a, y0)


def _window_transform(t: affine.Affine, col0: int, row0: int) -> affine.Affine:
    return affine.Affine(t.a, 0.0, t.c + col0 * t.a, 0.0, t.e, t.f + row0 * t.e)


@dataclass
class _Overlap:
    """Cells of a grid that overlap a polygon, with the area of each inside it."""

    rows: np.ndarray
    cols: np.ndarray
    area_m2: np.ndarray  # part of the cell inside the polygon
    cell_m2: np.ndarray  # the whole cell
    parts: np.ndarray  # object: the inside part (measuring CRS) of partial cells, None if whole


def _burn(geom: Any, t: affine.Affine, shape: tuple[int, int], all_touched: bool) -> np.ndarray:
    if shapely.is_empty(geom) or shape[0] == 0 or shape[1] == 0:
        return np.zeros(shape, dtype=bool)
    out = rasterio.features.rasterize(
        [(geom, 1)], out_shape=shape, transform=t, fill=0, all_touched=all_touched, dtype="uint8"
    )
    return out.astype(bool)


def _overlap(
    poly_grid: Any,
    poly_m: Any,
    t: affine.Affine,
    shape: tuple[int, int],
    candidates: np.ndarray | None,
    band: float,
    to_m: Callable[[np.ndarray], np.ndarray] | None,
    whole_cell_m2: np.ndarray,
) -> _Overlap:
    """Exact overlap of grid cells with a polygon, measured in the measuring CRS.

    Cells whose centre is inside ``poly_grid`` (the polygon in the grid's CRS) and that are
    more than ``band`` (grid units) from its outline are whole (rasterio.features, vectorised);
    only the cells near the outline are cut with shapely in the measuring CRS (``poly_m``), so
    the result does not depend on how the two CRSs bend the outline between its vertices.
    ``whole_cell_m2`` holds the area of a whole cell per grid row.
    """
    cand = np.ones(shape, dtype=bool) if candidates is None else candidates
    inside = _burn(poly_grid, t, shape, all_touched=False)
    near = _burn(shapely.buffer(shapely.boundary(poly_grid), band), t, shape, all_touched=True)
    r1, c1 = np.nonzero(inside & ~near & cand)
    r2, c2 = np.nonzero(near & cand)
    boxes = _boxes(t, r2, c2)
    if to_m is not None and len(boxes):
        boxes = shapely.transform(boxes, to_m)
    shapely.prepare(poly_m)
    whole = shapely.contains(poly_m, boxes)
    part = ~whole & shapely.intersects(poly_m, boxes)
    pieces = _cut(boxes[part], r2[part], c2[part], poly_m)
    piece_m2 = shapely.area(pieces)
    keep = piece_m2 > 0
    box_m2 = shapely.area(boxes)
    parts = np.empty(len(r1) + int(whole.sum()) + int(keep.sum()), dtype=object)
    parts[len(r1) + int(whole.sum()) :] = pieces[keep]
    return _Overlap(
        rows=np.concatenate([r1, r2[whole], r2[part][keep]]),
        cols=np.concatenate([c1, c2[whole], c2[part][keep]]),
        area_m2=np.concatenate([whole_cell_m2[r1], box_m2[whole], piece_m2[keep]]),
        cell_m2=np.concatenate([whole_cell_m2[r1], box_m2[whole], box_m2[part][keep]]),
        parts=parts,
    )


def _cut(boxes: np.ndarray, rows: np.ndarray, cols: np.ndarray, poly_m: Any) -> np.ndarray:
    """Intersect cells with a polygon, cutting the polygon into blocks of 32 x 32 cells first.

    Each cell is then cut against the small piece of its block instead of the whole outline
    (a district or a road buffer can have 10^4-10^5 vertices): same result, far faster.
    """
    if not len(boxes):
        return boxes.copy()
    key = (rows // 32) * (int(cols.max()) // 32 + 1) + cols // 32
    uniq, inv = np.unique(key, return_inverse=True)
    b = shapely.bounds(boxes)
    lo = np.full((len(uniq), 2), np.inf)
    hi = np.full((len(uniq), 2), -np.inf)
    np.minimum.at(lo, inv, b[:, :2])
    np.maximum.at(hi, inv, b[:, 2:])
    local = shapely.intersection(poly_m, shapely.box(lo[:, 0], lo[:, 1], hi[:, 0], hi[:, 1]))
    return shapely.intersection(boxes, local[inv])


def _place_points(
    cx_m: np.ndarray, cy_m: np.ndarray, parts: np.ndarray, region_m: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Place one point per cell: its centre, or inside the part that counts.

    A partial cell whose centre is outside ``region_m`` gets a point inside its part (shapely
    ``point_on_surface``). Returns x, y and the mask of moved points.
    """
    x, y = cx_m.copy(), cy_m.copy()
    is_part = np.array([p is not None for p in parts], dtype=bool)
    idx = np.flatnonzero(is_part)
    shapely.prepare(region_m)
    out = ~shapely.contains_xy(region_m, x[idx], y[idx])
    moved = np.zeros(len(x), dtype=bool)
    if out.any():
        pts = shapely.point_on_surface(parts[idx[out]].astype(object))
        x[idx[out]] = shapely.get_x(pts)
        y[idx[out]] = shapely.get_y(pts)
        moved[idx[out]] = True
    return x, y, moved


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


# --- inputs -------------------------------------------------------------------------------------


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


def _norm(name: Any) -> str:
    s = str(name).strip().removeprefix("\ufeff")
    s = re.sub(r"[(（][^()（）]*[)）]$", "", s).strip()
    return re.sub(r"\s+", "", s).casefold()


def _find_column(
    cols: list[str], wanted: str | None, aliases: tuple[str, ...], what: str, file: str
) -> str:
    if wanted is not None and wanted in cols:
        return wanted
    names = {_norm(a) for a in aliases} | ({_norm(wanted)} if wanted else set())
    hits = [c for c in cols if _norm(c) in names]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise PopulationError(
            f"{file}: {what}列不唯一 {hits} / several columns could be the {what} column: "
            f"{hits}; name the one to use"
        )
    raise PopulationError(
        f"{file}: 找不到{what}列 / no {what} column"
        + (f" '{wanted}'" if wanted else "")
        + f" (accepted names: {list(aliases)}); columns are {cols}"
    )


def _code_text(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return None
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        return str(int(v)) if float(v).is_integer() else str(v)
    s = str(v).strip()
    return s.removesuffix(".0") if re.fullmatch(r"\d+\.0", s) else (s or None)


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
    boxes = _boxes(t, np.arange(rows), np.full(rows, col_mid))
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
        cc = _find_column(cols, None, CODE_FIELD_ALIASES, "code", "aged_share_by_unit")
        sc = _find_column(cols, None, SHARE_FIELD_ALIASES, "share", "aged_share_by_unit")
        table = dict(zip(shares[cc], shares[sc], strict=True))
    elif isinstance(shares, pd.Series):
        table = shares.to_dict()
    elif isinstance(shares, Mapping):
        table = dict(shares)
    else:
        raise TypeError("`aged_share_by_unit` must be a mapping, Series or DataFrame code -> share")
    share = {_code_text(k): _check_share(v, f"aged_share_by_unit[{k}]") for k, v in table.items()}
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
    say = _say(progress)
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
    mcrs = _measure_crs(measure_crs, shapely.centroid(poly_s).x)
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
        acc["nodata_inside"] += int((_burn(poly_r, tw, (rows, width), False) & ~valid).sum())
        row_m2 = _row_areas_m2(tw, rows, width // 2, to_m)
        ov = _overlap(poly_r, poly_m, tw, (rows, width), people, band_r, to_m, row_m2)
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
        x_m, y_m, moved = _place_points(cxy[:, 0], cxy[:, 1], ov.parts, poly_m)
        a = aged[ov.rows, ov.cols] * frac if aged is not None else np.zeros(len(v))
        out.append((ov.rows + r0, ov.cols + col0, v * frac, a, ov.cell_m2, x_m, y_m, moved))
    order_cols = [np.concatenate([o[i] for o in out]) for i in range(8)]
    order = np.lexsort((order_cols[1], order_cols[0]))
    return (*[c[order] for c in order_cols], acc)


# --- units (户籍 statistics) --------------------------------------------------------------------


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
        code = _code_text(code_v)
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
        geoms[bad] = [
            _polygonal(x) if "Polygon" in kinds[0] else x for x in shapely.make_valid(geoms[bad])
        ]
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
    say = _say(progress)
    if not cell_m > 0 or not road_reach_m > 0:
        raise PopulationError(
            f"cell_m ({cell_m!r}) 与 road_reach_m ({road_reach_m!r}) 须 > 0 / must be > 0"
        )
    df, file = _read_table(table, encoding)
    cols = [str(c) for c in df.columns]
    df.columns = cols
    code_c = _find_column(cols, code_field, CODE_FIELD_ALIASES, "code", file)
    total_c = _find_column(cols, total_field, TOTAL_FIELD_ALIASES, "total", file)
    aged_c = _find_column(cols, aged_field, AGED_FIELD_ALIASES, "aged 60+", file)
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
    mcrs = _measure_crs(measure_crs, lon)
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
        unit = u_m[i] if u_m[i].is_valid else _polygonal(shapely.make_valid(u_m[i]))
        name = str(u.loc[i, "name"])
        region, used = unit, basis_name
        if bld_g is not None:
            near_b = bld_g[bld_t.query(unit, predicate="intersects")]
            region = _polygonal(shapely.intersection(region, shapely.union_all(near_b)))
        if road_g is not None:
            reach_box = shapely.buffer(shapely.envelope(unit), road_reach_m)
            near_r = road_g[road_t.query(reach_box, predicate="intersects")]
            reach = shapely.buffer(
                shapely.GeometryCollection(list(near_r)), road_reach_m, quad_segs=_QUAD_SEGS
            )
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
    spread_by = {
        "area": "unit area",
        "buildings": "building footprint area",
    }.get(basis_name, "building footprint area" if bld_g is not None else "road-reachable area")
    reach = f" (≤ {road_reach_m:g} m from a road)" if road_g is not None else ""
    total = float(sum(r.total for r in rows))
    report = PopulationReport(
        method=f"dasymetric: {level} counts spread over {cell_m:g} m cells by {spread_by}{reach},"
        " integers per unit (largest remainder)",
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
    ov = _overlap(region, region, t, (nrows, ncols), None, 0.05 * cell_m, None, whole)
    order = np.lexsort((ov.cols, ov.rows))
    rows, cols, area, parts = ov.rows[order], ov.cols[order], ov.area_m2[order], ov.parts[order]
    total = _largest_remainder(area, r.total)
    aged = _largest_remainder(total.astype(float), r.aged, cap=total)
    keep = total > 0
    cx = x0 + (cols[keep] + 0.5) * cell_m
    cy = y1 - (rows[keep] + 0.5) * cell_m
    x, y, moved = _place_points(cx, cy, parts[keep], region)
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

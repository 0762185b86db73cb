"""What both ways of making population points share: the error, the report and the geometry.

Package-internal (imported only by :mod:`geo_mz.core.population` and
:mod:`geo_mz.core.population_units`): :class:`PopulationError`, :class:`PopulationReport`, the
column-name alias tuples of unit tables, and the helpers both the raster and the dasymetric path
use: the measuring CRS, the exact overlap of grid cells with a polygon (whole interior cells by
rasterising, edge cells cut with shapely), placing one point per cell inside the part that
counts, and finding a table column by its aliases.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import affine
import numpy as np
import pandas as pd
import rasterio
import rasterio.features
import shapely
from pyproj import CRS

from geo_mz.core.display import Lang
from geo_mz.core.errors import CrsError, GeoMzError
from geo_mz.core.projection import gk_zone_crs, parse_crs

__all__ = [
    "AGED_FIELD_ALIASES",
    "CODE_FIELD_ALIASES",
    "SHARE_FIELD_ALIASES",
    "TOTAL_FIELD_ALIASES",
    "Overlap",
    "PopulationError",
    "PopulationReport",
    "Progress",
    "burn",
    "cell_boxes",
    "code_text",
    "find_column",
    "measuring_crs",
    "overlap",
    "place_points",
    "progress_fn",
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
# fmt: on

#: Chinese gloss of ``PopulationReport.method`` (by its first word) for the command line.
_METHOD_ZH = {
    "raster": "栅格单元按边缘格网的精确面积裁剪到边界, 不重采样 — ",
    "dasymetric": "分区密度法: 按单元内道路可达面积(或建筑面积)分配, 每单元整数合计不变 — ",
}


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


def progress_fn(progress: Progress | None) -> Progress:
    """Return ``progress``, or a function that says nothing when it is None."""
    return progress if progress is not None else (lambda _msg: None)


def measuring_crs(measure_crs: str | None, lon: float) -> CRS:
    """Return the projected CRS to measure in: ``measure_crs``, else the GK zone of ``lon``."""
    target = parse_crs(measure_crs or gk_zone_crs(lon))
    assert target is not None
    if not target.is_projected:
        raise CrsError(
            f"量测坐标系 {target.to_string()} 不是投影坐标系 / measuring CRS "
            f"{target.to_string()} is geographic; give a projected CRS such as EPSG:4547"
        )
    return target


def cell_boxes(t: affine.Affine, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Polygons of cells ``(rows, cols)`` of a north-up grid, in the grid's CRS."""
    x0 = t.c + cols * t.a
    y0 = t.f + rows * t.e
    return shapely.box(x0, y0 + t.e, x0 + t.a, y0)


@dataclass
class Overlap:
    """Cells of a grid that overlap a polygon, with the area of each inside it."""

    rows: np.ndarray
    cols: np.ndarray
    area_m2: np.ndarray  # part of the cell inside the polygon
    cell_m2: np.ndarray  # the whole cell
    parts: np.ndarray  # object: the inside part (measuring CRS) of partial cells, None if whole


def burn(geom: Any, t: affine.Affine, shape: tuple[int, int], all_touched: bool) -> np.ndarray:
    """Return the mask of the cells of a grid that ``geom`` covers (rasterio.features)."""
    if shapely.is_empty(geom) or shape[0] == 0 or shape[1] == 0:
        return np.zeros(shape, dtype=bool)
    out = rasterio.features.rasterize(
        [(geom, 1)], out_shape=shape, transform=t, fill=0, all_touched=all_touched, dtype="uint8"
    )
    return out.astype(bool)


def overlap(
    poly_grid: Any,
    poly_m: Any,
    t: affine.Affine,
    shape: tuple[int, int],
    candidates: np.ndarray | None,
    band: float,
    to_m: Callable[[np.ndarray], np.ndarray] | None,
    whole_cell_m2: np.ndarray,
) -> Overlap:
    """Exact overlap of grid cells with a polygon, measured in the measuring CRS.

    Cells whose centre is inside ``poly_grid`` (the polygon in the grid's CRS) and that are
    more than ``band`` (grid units) from its outline are whole (rasterio.features, vectorised);
    only the cells near the outline are cut with shapely in the measuring CRS (``poly_m``), so
    the result does not depend on how the two CRSs bend the outline between its vertices.
    ``whole_cell_m2`` holds the area of a whole cell per grid row.
    """
    cand = np.ones(shape, dtype=bool) if candidates is None else candidates
    inside = burn(poly_grid, t, shape, all_touched=False)
    near = burn(shapely.buffer(shapely.boundary(poly_grid), band), t, shape, all_touched=True)
    r1, c1 = np.nonzero(inside & ~near & cand)
    r2, c2 = np.nonzero(near & cand)
    boxes = cell_boxes(t, r2, c2)
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
    return Overlap(
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


def place_points(
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


# --- table columns ------------------------------------------------------------------------------


def _norm(name: Any) -> str:
    s = str(name).strip().removeprefix("\ufeff")
    s = re.sub(r"[(（][^()（）]*[)）]$", "", s).strip()
    return re.sub(r"\s+", "", s).casefold()


def find_column(
    cols: list[str], wanted: str | None, aliases: tuple[str, ...], what: str, file: str
) -> str:
    """Return the column ``wanted``, else the one column named by one of ``aliases``."""
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


def code_text(v: Any) -> str | None:
    """Return a unit code as text (``110101.0`` -> ``"110101"``), None if blank."""
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return None
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        return str(int(v)) if float(v).is_integer() else str(v)
    s = str(v).strip()
    return s.removesuffix(".0") if re.fullmatch(r"\d+\.0", s) else (s or None)

"""Raster helpers for terrain analyses: read and reproject a DEM, slope, rasterise, distance.

Everything works on one north-up grid in a projected (metre) CRS, described by a
:class:`DemGrid`. A DEM of any CRS (projected or geographic GeoTIFF) is brought onto that grid
by :func:`read_dem` with :func:`rasterio.warp.reproject`; vector layers are burnt onto it with
:func:`rasterize_mask`; distances are exact Euclidean distances between cell centres
(:func:`scipy.ndimage.distance_transform_edt` with the cell size in metres).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import affine
import geopandas as gpd
import numpy as np
import rasterio
import rasterio.errors
import rasterio.features
import rasterio.transform
import rasterio.warp
import rasterio.windows
import shapely
from pyproj import CRS, Transformer
from rasterio.enums import Resampling
from scipy import ndimage

from geo_mz.core.errors import CrsError, GeoMzError

__all__ = [
    "DemGrid",
    "distance_m",
    "grid_for_bounds",
    "mask_polygon",
    "rasterize_mask",
    "read_dem",
    "region_polygons",
    "slope_deg",
    "within_m",
    "write_raster",
]

SlopeMethod = Literal["horn", "central"]

#: Resampling used to bring a DEM onto the working grid: bilinear, the usual choice for a
#: continuous surface (GDAL's gdalwarp documentation; local choice, "cubic" also accepted).
DEFAULT_RESAMPLING = "bilinear"

#: 4-connectivity (cells sharing an edge) for regions, so each region is one valid polygon.
_FOUR = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


@dataclass(frozen=True)
class DemGrid:
    """An elevation raster on a north-up grid in a projected CRS.

    Attributes
    ----------
    elevation_m
        Elevations in metres, float64, shape ``(rows, cols)``; NaN where there is no data.
    transform
        Affine transform of the grid (north-up: no rotation, negative row step).
    crs
        The grid's projected CRS, e.g. ``"EPSG:4547"``.
    """

    elevation_m: np.ndarray
    transform: affine.Affine
    crs: str

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)``."""
        return (int(self.elevation_m.shape[0]), int(self.elevation_m.shape[1]))

    @property
    def cell_x_m(self) -> float:
        """Cell width in metres."""
        return float(abs(self.transform.a))

    @property
    def cell_y_m(self) -> float:
        """Cell height in metres."""
        return float(abs(self.transform.e))

    @property
    def cell_area_m2(self) -> float:
        """Area of one cell in square metres."""
        return self.cell_x_m * self.cell_y_m

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(minx, miny, maxx, maxy)`` of the grid in its CRS."""
        rows, cols = self.shape
        west, south, east, north = rasterio.transform.array_bounds(rows, cols, self.transform)
        return (float(west), float(south), float(east), float(north))

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Cell-centre coordinates ``(x, y)``, each of the grid's shape."""
        rows, cols = self.shape
        t = self.transform
        x = t.c + (np.arange(cols) + 0.5) * t.a
        y = t.f + (np.arange(rows) + 0.5) * t.e
        return np.meshgrid(x, y)


def _projected(crs: Any, what: str) -> CRS:
    try:
        c = CRS.from_user_input(crs)
    except Exception as exc:
        raise CrsError(f"{what}: {crs!r} is not a CRS ({exc})") from exc
    if not c.is_projected:
        raise CrsError(
            f"{what}: {crs!r} is not a projected CRS; slope and distances need metres "
            "(use the workspace's measure CRS, e.g. EPSG:4547)"
        )
    return c


def grid_for_bounds(
    bounds: tuple[float, float, float, float], resolution_m: float
) -> tuple[affine.Affine, tuple[int, int]]:
    """Return a north-up grid covering ``bounds``, its origin snapped to the resolution.

    Snapping puts every grid of one resolution and CRS on the same lattice, so a DEM read twice
    (or two DEMs) line up cell for cell.

    Parameters
    ----------
    bounds
        ``(minx, miny, maxx, maxy)`` in the grid's (projected) CRS.
    resolution_m
        Cell size in metres (> 0).

    Returns
    -------
    tuple
        The affine transform and ``(rows, cols)``.
    """
    if not resolution_m > 0:
        raise GeoMzError(f"resolution_m must be > 0, got {resolution_m!r}")
    minx, miny, maxx, maxy = bounds
    x0 = math.floor(minx / resolution_m) * resolution_m
    y1 = math.ceil(maxy / resolution_m) * resolution_m
    cols = max(1, math.ceil((maxx - x0) / resolution_m - 1e-9))
    rows = max(1, math.ceil((y1 - miny) / resolution_m - 1e-9))
    return affine.Affine(resolution_m, 0.0, x0, 0.0, -resolution_m, y1), (rows, cols)


def _aligned(src: Any, dst_crs: CRS, transform: affine.Affine) -> bool:
    """Tell whether the source grid is the target lattice (same CRS, cell size, phase)."""
    if src.crs is None or CRS.from_user_input(src.crs) != dst_crs:
        return False
    t = src.transform
    if t.b != 0 or t.d != 0 or t.e >= 0:
        return False
    res = transform.a
    if not (math.isclose(t.a, res, rel_tol=1e-9) and math.isclose(-t.e, res, rel_tol=1e-9)):
        return False
    dx, dy = (t.c - transform.c) / res, (transform.f - t.f) / res
    return abs(dx - round(dx)) < 1e-6 and abs(dy - round(dy)) < 1e-6


def _window_transform(t: affine.Affine, col0: int, row0: int) -> affine.Affine:
    """Transform of a window starting at ``(col0, row0)`` (without affine's deprecated ``*``)."""
    return affine.Affine(
        t.a, t.b, t.c + col0 * t.a + row0 * t.b, t.d, t.e, t.f + col0 * t.d + row0 * t.e
    )


def _native_resolution_m(src: Any, dst_crs: CRS) -> float:
    """Return the source's cell size in metres of ``dst_crs`` at its centre (mean of x, y)."""
    t = src.transform
    if CRS.from_user_input(src.crs) == dst_crs:
        return float(math.sqrt(abs(t.a * t.e)))
    to = Transformer.from_crs(src.crs, dst_crs, always_xy=True)
    col, row = src.width / 2, src.height / 2
    xs = [
        t.c + col * t.a + row * t.b,
        t.c + (col + 1) * t.a + row * t.b,
        t.c + col * t.a + (row + 1) * t.b,
    ]
    ys = [
        t.f + col * t.d + row * t.e,
        t.f + (col + 1) * t.d + row * t.e,
        t.f + col * t.d + (row + 1) * t.e,
    ]
    x, y = to.transform(xs, ys)
    dx = math.hypot(x[1] - x[0], y[1] - y[0])
    dy = math.hypot(x[2] - x[0], y[2] - y[0])
    return float(math.sqrt(dx * dy))


def read_dem(
    path: str | Path,
    *,
    crs: str,
    resolution_m: float | None = None,
    bounds: tuple[float, float, float, float] | None = None,
    resampling: str = DEFAULT_RESAMPLING,
    band: int = 1,
) -> DemGrid:
    """Read a DEM GeoTIFF of any CRS onto a north-up grid in a projected CRS.

    Parameters
    ----------
    path
        The DEM (GeoTIFF or any raster GDAL reads), elevations in metres, with a CRS.
    crs
        Target projected CRS, normally the workspace's measure CRS (e.g. ``"EPSG:4547"``).
    resolution_m
        Target cell size in metres. None: the source's own cell size when it is already in
        ``crs``, else the source's cell size at its centre measured in ``crs``.
    bounds
        Area to cover, ``(minx, miny, maxx, maxy)`` in ``crs``; the whole DEM when None. Parts
        of the grid the DEM does not cover are NaN.
    resampling
        ``"bilinear"`` (default), ``"cubic"`` or ``"nearest"``.
    band
        Band holding the elevations.

    Returns
    -------
    DemGrid
        Elevations (NaN for no data) on a grid whose origin is snapped to multiples of the
        resolution (see :func:`grid_for_bounds`).

    Raises
    ------
    CrsError
        If the file has no CRS or ``crs`` is not projected.
    GeoMzError
        If the file cannot be read or does not overlap ``bounds``.

    Notes
    -----
    A source already on the target lattice (same CRS, cell size and phase) is copied without
    resampling. Otherwise only the window covering ``bounds`` is read and warped with
    :func:`rasterio.warp.reproject`.
    """
    dst_crs = _projected(crs, "read_dem crs")
    try:
        how = Resampling[resampling]
    except KeyError:
        raise GeoMzError(f"resampling {resampling!r}: use bilinear, cubic or nearest") from None
    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise GeoMzError(f"{path}: cannot read the DEM ({exc})") from exc
    with src:
        if src.crs is None:
            raise CrsError(f"{path}: the DEM has no CRS; assign one (e.g. gdal_edit.py -a_srs)")
        if resolution_m is None:
            resolution_m = _native_resolution_m(src, dst_crs)
        if bounds is None:
            bounds = rasterio.warp.transform_bounds(src.crs, dst_crs, *src.bounds, densify_pts=21)
        transform, shape = grid_for_bounds(bounds, resolution_m)
        out = np.full(shape, np.nan)
        nodata = src.nodatavals[band - 1]
        if _aligned(src, dst_crs, transform):
            t = src.transform
            col0 = round((transform.c - t.c) / t.a)
            row0 = round((t.f - transform.f) / -t.e)
            # the part of the target grid the source covers (no boundless reads)
            r0, c0 = max(0, row0), max(0, col0)
            r1, c1 = min(src.height, row0 + shape[0]), min(src.width, col0 + shape[1])
            data = out
            if r1 > r0 and c1 > c0:
                win = rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0)
                part = src.read(band, window=win, masked=False).astype(np.float64)
                if nodata is not None and not np.isnan(nodata):
                    part[part == nodata] = np.nan
                data[r0 - row0 : r1 - row0, c0 - col0 : c1 - col0] = part
            if np.isnan(data).all():
                raise GeoMzError(f"{path}: the DEM does not overlap the area {tuple(bounds)}")
            return DemGrid(data, transform, dst_crs.to_string())
        gb = rasterio.transform.array_bounds(shape[0], shape[1], transform)
        sb = rasterio.warp.transform_bounds(dst_crs, src.crs, *gb, densify_pts=21)
        win = rasterio.windows.from_bounds(*sb, transform=src.transform)
        pad = 2  # source cells around the area, for the resampling kernel
        col0 = max(0, math.floor(win.col_off) - pad)
        row0 = max(0, math.floor(win.row_off) - pad)
        col1 = min(src.width, math.ceil(win.col_off + win.width) + pad)
        row1 = min(src.height, math.ceil(win.row_off + win.height) + pad)
        if col1 <= col0 or row1 <= row0:
            raise GeoMzError(f"{path}: the DEM does not overlap the area {tuple(bounds)}")
        win = rasterio.windows.Window(col0, row0, col1 - col0, row1 - row0)
        data = src.read(band, window=win, masked=False).astype(np.float64)
        if nodata is not None and not np.isnan(nodata):
            data[data == nodata] = np.nan
        rasterio.warp.reproject(
            source=data,
            destination=out,
            src_transform=_window_transform(src.transform, col0, row0),
            src_crs=src.crs,
            src_nodata=np.nan,
            dst_transform=transform,
            dst_crs=dst_crs,
            dst_nodata=np.nan,
            resampling=how,
        )
    if np.isnan(out).all():
        raise GeoMzError(f"{path}: the DEM does not overlap the area {tuple(bounds)}")
    return DemGrid(out, transform, dst_crs.to_string())


def write_raster(
    path: str | Path,
    bands: Mapping[str, np.ndarray],
    transform: affine.Affine,
    crs: str,
    *,
    tags: Mapping[str, str] | None = None,
    units: Mapping[str, str] | None = None,
) -> Path:
    """Write float bands as one deflate-compressed float32 GeoTIFF (NaN = no data).

    Parameters
    ----------
    path
        Output ``.tif`` (overwritten; parent folders created).
    bands
        Band description to a 2-D array; all of one shape.
    transform, crs
        Georeferencing.
    tags
        Dataset tags, e.g. ``{"SYNTHETIC": "yes"}``.
    units
        Band description to its unit (``"m"``, ``"degree"``...).

    Returns
    -------
    pathlib.Path
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays = list(bands.values())
    rows, cols = arrays[0].shape
    profile = {
        "driver": "GTiff",
        "width": cols,
        "height": rows,
        "count": len(arrays),
        "dtype": "float32",
        "crs": crs,
        "transform": transform,
        "nodata": float("nan"),
        "compress": "deflate",
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
    }
    with rasterio.open(out, "w", **profile) as dst:
        for i, (name, arr) in enumerate(bands.items(), start=1):
            dst.write(np.asarray(arr, dtype=np.float32), i)
            dst.set_band_description(i, name)
            if units and name in units:
                dst.update_tags(i, unit=units[name])
        if tags:
            dst.update_tags(**dict(tags))
    return out


def _pad_linear(z: np.ndarray) -> np.ndarray:
    """Pad by one cell, extrapolating linearly (exact for a plane, so edges keep its slope)."""
    p = np.pad(z, 1, mode="edge")
    if z.shape[0] > 1:
        p[0, 1:-1] = 2 * z[0] - z[1]
        p[-1, 1:-1] = 2 * z[-1] - z[-2]
    if z.shape[1] > 1:
        p[:, 0] = 2 * p[:, 1] - p[:, 2]
        p[:, -1] = 2 * p[:, -2] - p[:, -3]
    return p


def slope_deg(
    elevation_m: np.ndarray,
    cell_x_m: float,
    cell_y_m: float | None = None,
    *,
    method: SlopeMethod = "horn",
) -> np.ndarray:
    """Slope in degrees of an elevation grid with square or rectangular cells in metres.

    Parameters
    ----------
    elevation_m
        Elevations (m), NaN for no data.
    cell_x_m, cell_y_m
        Cell width and height in metres (height = width when None).
    method
        ``"horn"`` (default): Horn's (1981) 3×3 weighted differences, as GDAL's ``gdaldem
        slope``: ``dz/dx = ((c + 2f + i) - (a + 2d + g)) / (8 dx)`` and likewise for y.
        ``"central"``: central differences of the four edge neighbours (:func:`numpy.gradient`).

    Returns
    -------
    numpy.ndarray
        ``atan(|∇z|)`` in degrees; NaN where the cell or a neighbour it uses is NaN.

    Notes
    -----
    Both methods are exact for a plane. The grid is padded by linear extrapolation, so edge
    cells get the slope of the plane through their neighbours rather than NaN.
    """
    dx = float(cell_x_m)
    dy = float(cell_x_m if cell_y_m is None else cell_y_m)
    if not (dx > 0 and dy > 0):
        raise GeoMzError(f"cell sizes must be > 0 m, got {cell_x_m!r}, {cell_y_m!r}")
    z = np.asarray(elevation_m, dtype=np.float64)
    if z.ndim != 2 or min(z.shape) < 2:
        raise GeoMzError(f"elevation grid must be 2-D and at least 2×2, got shape {z.shape}")
    p = _pad_linear(z)
    if method == "horn":
        a, b, c = p[:-2, :-2], p[:-2, 1:-1], p[:-2, 2:]
        d, f = p[1:-1, :-2], p[1:-1, 2:]
        g, h, i = p[2:, :-2], p[2:, 1:-1], p[2:, 2:]
        gx = ((c + 2 * f + i) - (a + 2 * d + g)) / (8 * dx)
        gy = ((g + 2 * h + i) - (a + 2 * b + c)) / (8 * dy)
    elif method == "central":
        gx = (p[1:-1, 2:] - p[1:-1, :-2]) / (2 * dx)
        gy = (p[2:, 1:-1] - p[:-2, 1:-1]) / (2 * dy)
    else:
        raise GeoMzError(f"slope method {method!r}: use 'horn' or 'central'")
    out = np.degrees(np.arctan(np.hypot(gx, gy)))
    out[np.isnan(z)] = np.nan  # Horn's kernel skips the centre cell: no data stays no data
    return out


def rasterize_mask(
    geoms: Iterable[Any],
    transform: affine.Affine,
    shape: tuple[int, int],
    *,
    all_touched: bool = False,
) -> np.ndarray:
    """Cells covered by geometries (already in the grid's CRS).

    Parameters
    ----------
    geoms
        Shapely geometries (points, lines, polygons); empty and missing ones are skipped.
    transform, shape
        The grid.
    all_touched
        False (default): a polygon takes the cells whose centre lies inside it (lines: the
        cells on GDAL's line path). True: every cell the geometry touches.

    Returns
    -------
    numpy.ndarray
        Boolean mask of ``shape``.
    """
    items = [(g, 1) for g in geoms if g is not None and not shapely.is_empty(g)]
    if not items:
        return np.zeros(shape, dtype=bool)
    burnt = rasterio.features.rasterize(
        items, out_shape=shape, transform=transform, fill=0, all_touched=all_touched, dtype="uint8"
    )
    return burnt.astype(bool)


def distance_m(mask: np.ndarray, cell_x_m: float, cell_y_m: float | None = None) -> np.ndarray:
    """Distance in metres from every cell centre to the nearest centre of a ``mask`` cell.

    Exact Euclidean distance between cell centres (:func:`scipy.ndimage.distance_transform_edt`
    with ``sampling`` = the cell size); 0 on the mask, ``inf`` everywhere when the mask is empty.
    """
    dy = float(cell_x_m if cell_y_m is None else cell_y_m)
    if not mask.any():
        return np.full(mask.shape, np.inf)
    return ndimage.distance_transform_edt(~mask, sampling=(dy, float(cell_x_m)))


def within_m(
    mask: np.ndarray, buffer_m: float, cell_x_m: float, cell_y_m: float | None = None
) -> np.ndarray:
    """Cells whose centre lies within ``buffer_m`` of a ``mask`` cell centre (the mask included)."""
    if buffer_m <= 0:
        return mask.copy()
    return distance_m(mask, cell_x_m, cell_y_m) <= buffer_m


def region_polygons(
    mask: np.ndarray,
    transform: affine.Affine,
    crs: str,
    *,
    min_area_m2: float = 0.0,
) -> tuple[gpd.GeoDataFrame, np.ndarray]:
    """Return connected regions of a mask (cells sharing an edge) as polygons, small ones dropped.

    Parameters
    ----------
    mask
        Boolean grid.
    transform, crs
        The grid.
    min_area_m2
        Regions smaller than this (cells × cell area) are dropped.

    Returns
    -------
    tuple
        A GeoDataFrame with ``region`` (label, 1-based), ``cells`` and ``area_m2`` (exact cell
        area), one polygon per region (holes kept), sorted by label; and the label grid (0 =
        not in a kept region).
    """
    labels, n = ndimage.label(mask, structure=_FOUR)
    cell_area = abs(transform.a * transform.e)
    counts = np.bincount(labels.ravel(), minlength=n + 1)
    keep = np.flatnonzero(counts * cell_area >= min_area_m2)
    keep = keep[keep > 0]
    lut = np.zeros(n + 1, dtype=np.int32)
    lut[keep] = keep
    labels = lut[labels]
    geoms: dict[int, list[Any]] = {}
    if len(keep):
        for geom, value in rasterio.features.shapes(
            labels, mask=labels > 0, connectivity=4, transform=transform
        ):
            geoms.setdefault(int(value), []).append(shapely.geometry.shape(geom))
    ids = sorted(geoms)
    polys = [g[0] if len(g) == 1 else shapely.union_all(g) for g in (geoms[i] for i in ids)]
    out = gpd.GeoDataFrame(
        {
            "region": np.array(ids, dtype=np.int64),
            "cells": counts[ids].astype(np.int64) if ids else np.array([], dtype=np.int64),
            "area_m2": counts[ids] * cell_area if ids else np.array([], dtype=float),
        },
        geometry=gpd.GeoSeries(polys, crs=crs),
        crs=crs,
    )
    return out, labels


def mask_polygon(mask: np.ndarray, transform: affine.Affine) -> Any:
    """All cells of a mask as one (Multi)Polygon (4-connected pieces; empty if none)."""
    if not mask.any():
        return shapely.MultiPolygon()
    parts = [
        shapely.geometry.shape(g)
        for g, _ in rasterio.features.shapes(
            mask.astype(np.uint8), mask=mask, connectivity=4, transform=transform
        )
    ]
    return shapely.MultiPolygon(parts) if len(parts) > 1 else parts[0]

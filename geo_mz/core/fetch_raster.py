"""Fetch a WorldPop-style population count raster: download, check, optionally crop.

:func:`fetch_worldpop` downloads a GeoTIFF of people per cell, refuses a density file by its
name, checks with :func:`check_count_raster` that it is a single-band count raster with a CRS
and no negative cell, and with a lon/lat box keeps only the whole cells touching it (no
resampling, so the crop's total equals the window's). The result is what
:func:`geo_mz.core.population_from_raster` reads. WorldPop data is CC BY 4.0 (cite WorldPop,
www.worldpop.org, and the dataset's DOI).
"""

from __future__ import annotations

import math
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geo_mz.core._fetch_common import (
    FetchContentError,
    FetchError,
    FetchInputError,
    Progress,
    check_bbox,
    check_url,
    download_file,
    snippet,
    temp_beside,
    unlink,
)

__all__ = [
    "RasterFetch",
    "RasterSummary",
    "check_count_raster",
    "fetch_worldpop",
]


@dataclass(frozen=True)
class RasterSummary:
    """A count raster as checked (:func:`check_count_raster`)."""

    crs: str
    width: int
    height: int
    nodata: float | None
    total_count: float


@dataclass(frozen=True)
class RasterFetch:
    """A fetched count raster (:func:`fetch_worldpop`).

    ``total_count`` is the sum of the valid cells of the file written (the crop when ``window``
    is set, which then equals ``window_total_count``, the same cells summed in the download);
    ``full_total_count`` is the sum over the whole download. ``window`` is
    ``(col_off, row_off, width, height)`` in cells of the download.
    """

    path: Path
    url: str
    size_bytes: int
    sha256: str
    sha256_verified: bool
    crs: str
    width: int
    height: int
    nodata: float | None
    total_count: float
    full_total_count: float
    window: tuple[int, int, int, int] | None = None
    window_total_count: float | None = None
    full_path: Path | None = None


def _raster_total(src: Any, window: Any, where: str) -> float:
    """Sum of the valid cells of band 1 in ``window`` (None: all), read in strips of rows."""
    import numpy as np
    from rasterio.windows import Window

    win = window or Window(0, 0, src.width, src.height)
    col_off, row_off = int(win.col_off), int(win.row_off)
    width, height = int(win.width), int(win.height)
    strip = max(1, min(height, (16 << 20) // max(width, 1)))
    total = 0.0
    for r in range(row_off, row_off + height, strip):
        rows = min(strip, row_off + height - r)
        block = src.read(1, window=Window(col_off, r, width, rows), masked=True).astype("float64")
        values = np.ma.masked_invalid(block).compressed()
        if values.size and values.min() < 0:
            raise FetchContentError(
                f"{where}: 有负值（{values.min():g}），不是人数栅格 / negative cell values "
                f"({values.min():g}): not a raster of counts"
            )
        total += float(values.sum())
    return total


def check_count_raster(path: str | Path, *, url: str | None = None) -> RasterSummary:
    """Check that a raster is a single-band count raster with a CRS, and sum it.

    Parameters
    ----------
    path
        A GeoTIFF (any raster GDAL reads).
    url
        Where it came from, for the messages (default: the path).

    Returns
    -------
    RasterSummary
        ``total_count`` is the sum of the cells that are not nodata or NaN.

    Raises
    ------
    FetchContentError
        Not a raster, more than one band, no CRS, not numeric, or a negative valid cell.
    """
    import rasterio
    from rasterio.errors import RasterioIOError

    where = url or str(path)
    try:
        src = rasterio.open(path)
    except RasterioIOError as exc:
        raise FetchContentError(
            f"{where}: 不是可读取的栅格 / not a readable raster: {snippet(Path(path))}"
        ) from exc
    with src:
        problems = []
        if src.count != 1:
            problems.append(f"{src.count} 个波段 bands (需要1个 / need 1)")
        if src.crs is None:
            problems.append("无坐标系 no CRS")
        if src.dtypes[0] not in ("uint8", "uint16", "uint32", "int16", "int32", "int64",
                                 "uint64", "float32", "float64"):  # fmt: skip
            problems.append(f"数据类型 dtype {src.dtypes[0]}")
        if problems:
            raise FetchContentError(
                f"{where}: 不是单波段人数栅格 / not a single-band count raster with a CRS: "
                + "; ".join(problems)
            )
        return RasterSummary(
            crs=src.crs.to_string(),
            width=src.width,
            height=src.height,
            nodata=src.nodata,
            total_count=_raster_total(src, None, where),
        )


def _bbox_window(src: Any, bbox: tuple[float, float, float, float], where: str) -> Any:
    """Return the window of the cells of ``src`` touching a lon/lat box (whole cells)."""
    from rasterio.warp import transform_bounds
    from rasterio.windows import Window, from_bounds

    box = bbox if src.crs.is_geographic else transform_bounds("EPSG:4326", src.crs, *bbox)
    w = from_bounds(*box, transform=src.transform)
    eps = 1e-6
    c0 = max(math.floor(min(w.col_off, w.col_off + w.width) + eps), 0)
    r0 = max(math.floor(min(w.row_off, w.row_off + w.height) + eps), 0)
    c1 = min(math.ceil(max(w.col_off, w.col_off + w.width) - eps), src.width)
    r1 = min(math.ceil(max(w.row_off, w.row_off + w.height) - eps), src.height)
    if c1 <= c0 or r1 <= r0:
        raise FetchContentError(
            f"{where}: 范围 {bbox} 不在栅格内 / the box {bbox} does not overlap the raster "
            f"(bounds {tuple(round(v, 6) for v in src.bounds)})"
        )
    return Window(c0, r0, c1 - c0, r1 - r0)


def _write_crop(src: Any, window: Any, dest: Path) -> None:
    """Copy the cells of ``window`` into a deflate GeoTIFF, in strips of rows."""
    import rasterio
    from affine import Affine
    from rasterio.windows import Window

    width, height = int(window.width), int(window.height)
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 1,
        "dtype": src.dtypes[0],
        "crs": src.crs,
        # not src.window_transform: it multiplies with `*` (PendingDeprecationWarning in affine)
        "transform": src.transform @ Affine.translation(int(window.col_off), int(window.row_off)),
        "nodata": src.nodata,
        "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }
    if width >= 256 and height >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    strip = max(1, min(height, (16 << 20) // max(width, 1)))
    with rasterio.open(dest, "w", **profile) as dst:
        dst.update_tags(**src.tags())
        for r in range(0, height, strip):
            rows = min(strip, height - r)
            part = Window(int(window.col_off), int(window.row_off) + r, width, rows)
            dst.write(src.read(1, window=part), 1, window=Window(0, r, width, rows))


def fetch_worldpop(
    *,
    url: str,
    out: str | Path,
    sha256: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    full_out: str | Path | None = None,
    timeout_s: float = 60.0,
    progress: Progress | None = None,
) -> RasterFetch:
    """Download a WorldPop-style population count GeoTIFF, check it, optionally crop it.

    WorldPop (www.worldpop.org, University of Southampton) publishes people per grid cell per
    country and year, licensed **CC BY 4.0** (cite WorldPop and the dataset's DOI). Files are
    named ``<iso3>_ppp_<year>[_UNadj][_constrained].tif``: ``ppp`` = people per pixel (a count:
    what geo_mz needs), ``UNadj`` = scaled to the UN national total, ``constrained`` = only cells
    with buildings; 3 arc-seconds (~100 m), EPSG:4326, nodata -99999. E.g. China 2020:
    ``chn_ppp_2020_UNadj_constrained.tif`` (copy the exact URL from the dataset's page on
    hub.worldpop.org; the folder layout of data.worldpop.org changes between releases).
    ``<iso3>_pd_<year>_1km.tif`` files are densities (people per km²), not counts, and are
    refused; age/sex files (``chn_f_60_2020.tif``) are counts of one group.

    Parameters
    ----------
    url
        The file's http(s) URL.
    out
        The GeoTIFF to write (the crop when ``bbox`` is given).
    sha256
        Expected sha256 of the download (WorldPop lists none; record the reported one).
    bbox
        ``(min_lon, min_lat, max_lon, max_lat)``: keep only the cells touching this box
        (whole cells, no resampling, so the crop's total is exactly the window's total).
    full_out
        With ``bbox``: also keep the whole download here (default: discarded after the crop).
    timeout_s, progress
        As :func:`download`.

    Returns
    -------
    RasterFetch

    Raises
    ------
    FetchContentError
        Not a single-band count raster with a CRS, a density file, or the box misses the
        raster: the download is removed and ``out`` is not written.
    FetchHTTPError, FetchTimeoutError, ChecksumMismatchError, FetchError
        As :func:`download`.
    """
    import rasterio

    check_url(url)
    name = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1].lower()
    if re.search(r"(^|_)pd(_|\.)", name):
        raise FetchInputError(
            f"{url}: 这是人口密度（人/平方公里），不是人数 / this is a density (people per km²), "
            "not counts: use the ppp (people per pixel) file"
        )
    box = check_bbox(bbox) if bbox is not None else None
    out = Path(out)
    found: list[RasterSummary] = []

    def check(tmp: Path) -> None:
        found.append(check_count_raster(tmp, url=url))

    if box is None:
        got = download_file(
            url, out, sha256=sha256, timeout_s=timeout_s, progress=progress, check=check
        )
        info = found[0]
        return RasterFetch(
            path=got.path,
            url=url,
            size_bytes=got.size_bytes,
            sha256=got.sha256,
            sha256_verified=got.sha256_verified,
            crs=info.crs,
            width=info.width,
            height=info.height,
            nodata=info.nodata,
            total_count=info.total_count,
            full_total_count=info.total_count,
        )
    full = temp_beside(out, "full.")
    crop = temp_beside(out, "crop.")
    try:
        got = download_file(
            url, full, sha256=sha256, timeout_s=timeout_s, progress=progress, check=check
        )
        with rasterio.open(full) as src:
            window = _bbox_window(src, box, url)
            window_total = _raster_total(src, window, url)
            _write_crop(src, window, crop)
        with rasterio.open(crop) as dst:
            crop_total = _raster_total(dst, None, str(out))
            width, height = dst.width, dst.height
        if not math.isclose(crop_total, window_total, rel_tol=1e-9, abs_tol=1e-6):
            raise FetchError(
                f"{out}: 裁剪后总数 {crop_total} 不等于窗口总数 {window_total} / the crop's total "
                f"{crop_total} differs from the window's {window_total}"
            )
        os.replace(crop, out)
        kept = None
        if full_out is not None:
            kept = Path(full_out)
            kept.parent.mkdir(parents=True, exist_ok=True)
            os.replace(full, kept)
    finally:
        unlink(crop)
        unlink(full)
    info = found[0]
    return RasterFetch(
        path=out,
        url=url,
        size_bytes=got.size_bytes,
        sha256=got.sha256,
        sha256_verified=got.sha256_verified,
        crs=info.crs,
        width=width,
        height=height,
        nodata=info.nodata,
        total_count=crop_total,
        full_total_count=info.total_count,
        window=(int(window.col_off), int(window.row_off), int(window.width), int(window.height)),
        window_total_count=window_total,
        full_path=kept,
    )

"""CRS policy: storage CRS, measuring CRS per area, and China's GCJ-02 / BD-09 shims.

GCJ-02 (Amap, Tencent, echarts) and BD-09 (Baidu) are deliberate, nonlinear offsets of WGS84 that
PROJ does not know. They are implemented here in vectorised numpy (the published algorithm, a few
lines, and much faster than the per-point libraries); the tests cross-check them against the
independent ``prcoords`` package and against real boundaries that exist in both datums.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from geo_mz.core.errors import CrsError

#: Storage CRS of every workspace layer: CGCS2000 geographic (STANDARDS.md §G, SOURCED).
STORAGE_CRS = "EPSG:4490"

#: Datums of legacy Chinese data that need a sourced 7-parameter transformation before use.
LEGACY_DATUMS = {4214: "Beijing 1954", 4610: "Xian 1980"}

ChinaDatum = Literal["gcj02", "bd09"]
CHINA_DATUMS: tuple[str, ...] = ("gcj02", "bd09")

# Krasovsky 1940 ellipsoid as used by the GCJ-02 algorithm.
_A = 6378245.0
_EE = 0.00669342162296594323
_BD_X_PI = np.pi * 3000.0 / 180.0


def _out_of_china(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    # The obfuscation is only applied inside this box; outside it GCJ-02 equals WGS84.
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _delta(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = lon - 105.0
    y = lat - 35.0
    sq = np.sqrt(np.abs(x))
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sq
    dlat += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    dlat += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * np.pi) + 320 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sq
    dlon += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    dlon += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    rad = lat / 180.0 * np.pi
    magic = 1 - _EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(rad) * np.pi)
    outside = _out_of_china(lon, lat)
    return np.where(outside, 0.0, dlon), np.where(outside, 0.0, dlat)


def wgs84_to_gcj02(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward GCJ-02 obfuscation of WGS84 longitudes/latitudes (degrees, arrays)."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    dlon, dlat = _delta(lon, lat)
    return lon + dlon, lat + dlat


def _invert(
    forward: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    lon: np.ndarray,
    lat: np.ndarray,
    start: tuple[np.ndarray, np.ndarray],
    tol_deg: float,
    max_iter: int,
) -> tuple[np.ndarray, np.ndarray]:
    # Fixed-point iteration: both offsets are smooth and far smaller than their scale of change,
    # so x <- x - (f(x) - target) converges in 3-5 steps.
    w_lon, w_lat = start
    for _ in range(max_iter):
        f_lon, f_lat = forward(w_lon, w_lat)
        e_lon, e_lat = f_lon - lon, f_lat - lat
        w_lon = w_lon - e_lon
        w_lat = w_lat - e_lat
        if np.all(np.abs(e_lon) < tol_deg) and np.all(np.abs(e_lat) < tol_deg):
            break
    return w_lon, w_lat


def gcj02_to_wgs84(
    lon: np.ndarray, lat: np.ndarray, *, tol_deg: float = 1e-10, max_iter: int = 30
) -> tuple[np.ndarray, np.ndarray]:
    """Invert GCJ-02 to WGS84 by fixed-point iteration (to ~1e-5 m, not the 1-2 m one-step guess).

    Parameters
    ----------
    lon, lat
        GCJ-02 coordinates in degrees.
    tol_deg
        Stop when the forward transform of the estimate is within this of the input.
    max_iter
        Upper bound on iterations; 30 is far more than the 3–5 needed in China.

    Returns
    -------
    tuple of numpy.ndarray
        WGS84 longitudes and latitudes.
    """
    g_lon = np.asarray(lon, dtype=float)
    g_lat = np.asarray(lat, dtype=float)
    return _invert(wgs84_to_gcj02, g_lon, g_lat, (g_lon.copy(), g_lat.copy()), tol_deg, max_iter)


def gcj02_to_bd09(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Baidu's BD-09 from GCJ-02 (degrees, arrays)."""
    x = np.asarray(lon, dtype=float)
    y = np.asarray(lat, dtype=float)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _BD_X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _BD_X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def bd09_to_gcj02(
    lon: np.ndarray, lat: np.ndarray, *, tol_deg: float = 1e-10, max_iter: int = 30
) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 from Baidu's BD-09: the usual closed form (off by up to ~0.1 m), then iterated."""
    b_lon = np.asarray(lon, dtype=float)
    b_lat = np.asarray(lat, dtype=float)
    x = b_lon - 0.0065
    y = b_lat - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _BD_X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _BD_X_PI)
    start = (z * np.cos(theta), z * np.sin(theta))
    return _invert(gcj02_to_bd09, b_lon, b_lat, start, tol_deg, max_iter)


def bd09_to_wgs84(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 from BD-09 (via GCJ-02)."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def wgs84_to_bd09(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BD-09 from WGS84 (via GCJ-02)."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


_TO_WGS84: dict[str, Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "gcj02": gcj02_to_wgs84,
    "bd09": bd09_to_wgs84,
}


def china_datum_to_wgs84(gdf: gpd.GeoDataFrame, source: ChinaDatum) -> gpd.GeoDataFrame:
    """Convert every vertex of a GCJ-02 or BD-09 layer to WGS84 (EPSG:4326).

    Parameters
    ----------
    gdf
        Layer whose coordinates are GCJ-02 or BD-09 degrees, whatever CRS label it carries.
    source
        ``"gcj02"`` or ``"bd09"``.

    Returns
    -------
    geopandas.GeoDataFrame
        A copy in EPSG:4326.
    """
    if source not in _TO_WGS84:
        raise CrsError(f"source datum '{source}' is not one of {list(CHINA_DATUMS)}")
    fn = _TO_WGS84[source]

    def _xy(coords: np.ndarray) -> np.ndarray:
        lon, lat = fn(coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])

    out = gdf.copy()
    out = out.set_geometry(shapely.transform(np.asarray(gdf.geometry.values), _xy))
    return out.set_crs("EPSG:4326", allow_override=True)


def parse_crs(value: str | int | CRS | None) -> CRS | None:
    """Parse a user-given CRS (``EPSG:4490``, ``4490``, WKT, PROJ string); None stays None."""
    if value is None or isinstance(value, CRS):
        return value
    try:
        return CRS.from_user_input(value)
    except CRSError as exc:
        raise CrsError(
            f"cannot understand CRS {value!r}: {exc}. Use e.g. EPSG:4490 (CGCS2000), "
            f"EPSG:4326 (WGS84), or one of {list(CHINA_DATUMS)} for Amap/Baidu coordinates"
        ) from exc


def gk_zone_crs(lon: float) -> str:
    """CGCS2000 3-degree Gauss-Kruger CRS (central-meridian variant) for a longitude.

    The central meridian is ``3 * round(lon / 3)``; EPSG numbers these CRSs sequentially from
    EPSG:4534 (CM 75E) to EPSG:4554 (CM 135E); EPSG:4547 is CM 114E (STANDARDS.md §G).

    Parameters
    ----------
    lon
        Longitude in degrees east, inside China (73.5–135.5).

    Returns
    -------
    str
        e.g. ``"EPSG:4547"``.
    """
    cm = 3 * round(lon / 3)
    if not 75 <= cm <= 135:
        raise CrsError(f"longitude {lon} is outside China's 3-degree Gauss-Kruger zones (75–135E)")
    return f"EPSG:{4534 + (cm - 75) // 3}"


def measure_crs_for(gdf: gpd.GeoDataFrame) -> str:
    """Projected CRS for measuring lengths and areas of ``gdf``: the GK zone of its centre.

    Raises
    ------
    CrsError
        If ``gdf`` has no CRS.
    """
    if gdf.crs is None:
        raise CrsError("layer has no CRS; set it with .set_crs() before measuring")
    minx, _, maxx, _ = gdf.to_crs(4326).total_bounds
    return gk_zone_crs((minx + maxx) / 2.0)


def to_measure_crs(gdf: gpd.GeoDataFrame, measure_crs: str | None = None) -> gpd.GeoDataFrame:
    """Return ``gdf`` in a projected CRS for metric work; refuse geographic targets."""
    target = parse_crs(measure_crs or measure_crs_for(gdf))
    assert target is not None
    if not target.is_projected:
        raise CrsError(f"measuring CRS {target.to_string()} is geographic; use a projected CRS")
    if gdf.crs is None:
        raise CrsError("layer has no CRS; set it with .set_crs() before measuring")
    return gdf.to_crs(target)


@lru_cache(maxsize=64)
def _transformer(src: Any, dst: Any) -> Transformer:
    # As geopandas' to_crs builds it: from CRS objects, always x/y (lon, lat) order. Keyed by
    # what the caller gave (a string or a CRS), not a WKT round trip that could lose the EPSG
    # identity and so pick another operation.
    return Transformer.from_crs(CRS.from_user_input(src), CRS.from_user_input(dst), always_xy=True)


@lru_cache(maxsize=64)
def _parsed(value: str | int) -> CRS:
    return CRS.from_user_input(value)


def _as_crs(value: Any) -> CRS:
    """``CRS.from_user_input``, a text or number parsed once per process (hot paths)."""
    if isinstance(value, CRS):
        return value
    if isinstance(value, str | int):
        return _parsed(value)
    return CRS.from_user_input(value)


def xy_to_crs(xy: np.ndarray, src: Any, dst: Any) -> np.ndarray:
    """Reproject ``(n, 2)`` coordinates as :func:`geometries_to_crs` reprojects geometries.

    The same cached transformer, so the same numbers bit for bit; ``xy`` itself when the two
    CRSs are the same. For points kept as arrays (no geometries built to reproject them).

    Parameters
    ----------
    xy
        ``(n, 2)`` coordinates.
    src, dst
        Source and target CRS.

    Returns
    -------
    numpy.ndarray
        ``(n, 2)`` float64 coordinates in ``dst``.
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    src_crs, dst_crs = _as_crs(src), _as_crs(dst)
    if src_crs.is_exact_same(dst_crs):
        return xy
    x, y = _transformer(src, dst).transform(xy[:, 0], xy[:, 1])
    return np.column_stack([x, y])


def geometries_to_crs(geoms: np.ndarray, src: Any, dst: Any) -> np.ndarray:
    """Reproject an array of 2D shapely geometries as ``GeoSeries.to_crs`` does, cheaper.

    Hot paths (a partitioned run reprojects every part's points and roads) call this instead
    of building a GeoSeries: the transformer is cached per CRS pair, and points are rebuilt
    from their transformed coordinates. The coordinates are the same bit for bit as
    ``GeoSeries(geoms, crs=src).to_crs(dst)`` (same transformer, same arrays); geometries
    with Z go through geopandas.

    Parameters
    ----------
    geoms
        Shapely geometries (missing ones stay missing).
    src, dst
        Source and target CRS.

    Returns
    -------
    numpy.ndarray
        New geometries in ``dst`` (the input itself when the two CRSs are the same).
    """
    geoms = np.asarray(geoms, dtype=object)
    src_crs, dst_crs = _as_crs(src), _as_crs(dst)
    if src_crs.is_exact_same(dst_crs):
        return geoms
    if len(geoms) and shapely.has_z(geoms).any():
        return np.asarray(gpd.GeoSeries(geoms, crs=src_crs).to_crs(dst_crs).values)
    coords = shapely.get_coordinates(geoms)
    new = xy_to_crs(coords, src, dst)
    type_id = shapely.get_type_id(geoms)
    if len(geoms) and (type_id == 0).all() and len(coords) == len(geoms):
        return shapely.points(new)
    return shapely.set_coordinates(geoms.copy(), new)

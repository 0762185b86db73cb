"""OGC API - Features Part 2 (CRS by reference): the ``crs`` and ``bbox-crs`` parameters.

Every layer is served from lon/lat frames (CGCS2000, EPSG:4490, whose coordinates the stores
label CRS84: the two differ by centimetres, below what the web map resolves). A collection offers

- ``CRS84`` (lon/lat; the default, RFC 7946 GeoJSON),
- its storage CRS ``EPSG:4490`` and ``EPSG:4326``, both **lat/lon** as the EPSG registry defines
  their axes (Part 2 /req/crs/crs-uri; GDAL swaps them back for QGIS),
- the workspace's metric CRS (e.g. ``EPSG:4547``, CGCS2000 3-degree Gauss-Kruger, whose EPSG
  axis order is **northing, easting**) and Web Mercator ``EPSG:3857`` (easting, northing).

Coordinates are always written, and ``bbox`` read, in the axis order the EPSG registry gives
the CRS (pyproj's ``axis_info``), as Part 2 requires; only CRS84 is lon/lat.

Responses name their CRS in the ``Content-Crs`` header (``<uri>``), as Part 2 requires.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pyproj
import shapely

from webmap.core.errors import BadRequestError, field_error

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CRS84H = "http://www.opengis.net/def/crs/OGC/0/CRS84h"
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{code}"
STORAGE_EPSG = 4490
"""CGCS2000 geographic, the workspace storage CRS when its metadata names none."""
_GEOGRAPHIC = frozenset({4326, 4490})
"""Geographic EPSG CRSs offered (the storage CRS is one of them)."""
_EXTRA = (4326, 3857)
_URI = re.compile(
    r"^(?:https?://www\.opengis\.net/def/crs/(?P<auth>EPSG|OGC)/(?P<ver>[0-9.]+)/(?P<code>\w+)"
    r"|\[?(?P<cauth>EPSG|OGC):(?P<ccode>\w+)\]?)$",
    re.IGNORECASE,
)
DEGREE_DECIMALS = 7
METRE_DECIMALS = 3


def epsg_of(value: object, default: int = STORAGE_EPSG) -> int:
    """Return the EPSG code of ``EPSG:4490``-like metadata text (``default`` when absent)."""
    if value is None or value == "":
        return default
    try:
        return int(str(value).rsplit(":", 1)[-1])
    except ValueError:
        return default


def storage_crs(metadata: Mapping[str, Any]) -> str:
    """Return the URI of the workspace storage CRS (``storageCrs`` of every collection)."""
    return EPSG_URI.format(code=epsg_of(metadata.get("storage_crs")))


def supported_crs(metadata: Mapping[str, Any]) -> list[str]:
    """Return the CRS URIs every collection offers: CRS84 first, then the storage CRS."""
    codes = [epsg_of(metadata.get("storage_crs"))]
    measure = metadata.get("measure_crs")
    if measure:
        codes.append(epsg_of(measure))
    codes.extend(_EXTRA)
    out = [CRS84]
    for code in codes:
        uri = EPSG_URI.format(code=code)
        if uri not in out:
            out.append(uri)
    return out


def normalise(raw: str) -> str | None:
    """Return the canonical ``http://www.opengis.net/def/crs/...`` URI of ``raw``, or None.

    Accepts the URI (http or https, any version) and the ``EPSG:4490`` / ``[OGC:CRS84]`` forms.
    """
    m = _URI.match(raw.strip())
    if m is None:
        return None
    auth = (m.group("auth") or m.group("cauth")).upper()
    code = m.group("code") or m.group("ccode")
    if auth == "EPSG":
        return EPSG_URI.format(code=code) if code.isdigit() else None
    if code.upper() == "CRS84":
        return CRS84
    if code.upper() == "CRS84H":
        return CRS84H
    return None


def parse_crs(raw: str | None, offered: Sequence[str], name: str = "crs") -> str:
    """Check a ``crs`` / ``bbox-crs`` value against the collection's list (400 otherwise).

    Parameters
    ----------
    raw
        The query parameter, or None (then CRS84).
    offered
        The collection's ``crs`` list (``CRS84h`` is also taken for ``bbox-crs``).
    name
        Parameter name, for the error.

    Returns
    -------
    str
        The canonical URI.
    """
    if raw is None:
        return CRS84
    uri = normalise(raw)
    allowed = list(offered) + ([CRS84H] if name == "bbox-crs" else [])
    if uri is None or uri not in allowed:
        raise BadRequestError(
            f"`{name}` 为 {raw!r}，本图层不支持；可用：{allowed} / `{name}` was {raw!r}, which "
            f"this collection does not offer; use one of {allowed}",
            errors=[field_error(name, "unsupported_crs", "one of the collection's crs list")],
        )
    return uri


def content_crs(uri: str) -> dict[str, str]:
    """Return the ``Content-Crs`` header of a response in ``uri`` (Part 2: ``<uri>``)."""
    return {"Content-Crs": f"<{uri}>"}


def _code(uri: str) -> int | None:
    if uri in (CRS84, CRS84H):
        return None
    return int(uri.rsplit("/", 1)[-1])


@lru_cache(maxsize=32)
def _north_first(code: int) -> bool:
    axes = pyproj.CRS.from_epsg(code).axis_info
    return bool(axes) and axes[0].direction in ("north", "south")


def is_lat_lon(uri: str) -> bool:
    """Whether coordinates in ``uri`` are written north first (EPSG:4490, 4326, 4547...)."""
    code = _code(uri)
    return code is not None and _north_first(code)


def is_projected(uri: str) -> bool:
    """Whether ``uri`` is a projected (metre) CRS."""
    code = _code(uri)
    return code is not None and code not in _GEOGRAPHIC


@lru_cache(maxsize=16)
def _to_projected(code: int) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(STORAGE_EPSG, code, always_xy=True)


@lru_cache(maxsize=16)
def _from_projected(code: int) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(code, STORAGE_EPSG, always_xy=True)


def decimals(uri: str) -> int:
    """Decimals written for coordinates in ``uri``: 7 for degrees (~1 cm), 3 for metres."""
    return METRE_DECIMALS if is_projected(uri) else DEGREE_DECIMALS


def to_crs(geoms: np.ndarray, uri: str) -> np.ndarray:
    """Write lon/lat geometries in ``uri``, in its EPSG axis order."""
    if uri in (CRS84, CRS84H):
        return geoms
    if is_projected(uri):
        transformer = _to_projected(_code(uri))

        def project(xy: np.ndarray) -> np.ndarray:
            x, y = transformer.transform(xy[:, 0], xy[:, 1])  # easting, northing
            return np.column_stack([x, y])

        geoms = shapely.transform(geoms, project)
    if is_lat_lon(uri):
        geoms = shapely.transform(geoms, lambda xy: xy[:, ::-1])
    return geoms


def _bbox_error(raw: str, why: str) -> BadRequestError:
    return BadRequestError(
        f"`bbox` 为 {raw!r}：{why}；应为 minx,miny,maxx,maxy（或含高程的 6 个数），按 bbox-crs "
        f"的轴序 / `bbox` was {raw!r}: {why}; use minx,miny,maxx,maxy (or 6 numbers with "
        "heights) in the axis order of bbox-crs (CRS84: lon,lat; EPSG:4490: lat,lon; "
        "EPSG:4547: northing,easting)",
        errors=[field_error("bbox", "bad_bbox", why)],
    )


def parse_bbox(raw: str | None, bbox_crs: str = CRS84) -> tuple[float, float, float, float] | None:
    """Parse a 2D or 3D ``bbox`` in ``bbox_crs`` into a lon/lat box (400 when malformed).

    Parameters
    ----------
    raw
        ``minx,miny,maxx,maxy`` or ``minx,miny,minz,maxx,maxy,maxz`` (the heights are checked
        and ignored: the layers are 2D), in the axis order of ``bbox_crs``.
    bbox_crs
        Canonical URI from :func:`parse_crs`.

    Returns
    -------
    tuple of float or None
        ``(min lon, min lat, max lon, max lat)``; None when ``raw`` is None.
    """
    if raw is None:
        return None
    try:
        vals = [float(x) for x in raw.split(",")]
    except ValueError:
        raise _bbox_error(raw, "not numbers") from None
    if len(vals) not in (4, 6) or not all(math.isfinite(v) for v in vals):
        raise _bbox_error(raw, "needs 4 or 6 finite numbers")
    if len(vals) == 6:
        if vals[2] > vals[5]:
            raise _bbox_error(raw, "min height above max height")
        vals = [vals[0], vals[1], vals[3], vals[4]]
    a0, a1, b0, b1 = vals
    if a0 > b0 or a1 > b1:
        raise _bbox_error(raw, "a minimum is above its maximum")
    if is_lat_lon(bbox_crs):
        a0, a1, b0, b1 = a1, a0, b1, b0  # north first -> east first
    if is_projected(bbox_crs):
        t = _from_projected(_code(bbox_crs))
        lo_lon, lo_lat, hi_lon, hi_lat = t.transform_bounds(a0, a1, b0, b1, densify_pts=21)
        if not all(math.isfinite(v) for v in (lo_lon, lo_lat, hi_lon, hi_lat)):
            raise _bbox_error(raw, "outside the area of the CRS")
        return lo_lon, lo_lat, hi_lon, hi_lat
    if not (-180 <= a0 <= b0 <= 180 and -90 <= a1 <= b1 <= 90):
        raise _bbox_error(raw, "outside -180..180 / -90..90 degrees")
    return a0, a1, b0, b1


__all__ = [
    "CRS84",
    "CRS84H",
    "EPSG_URI",
    "content_crs",
    "decimals",
    "epsg_of",
    "is_lat_lon",
    "is_projected",
    "normalise",
    "parse_bbox",
    "parse_crs",
    "storage_crs",
    "supported_crs",
    "to_crs",
]

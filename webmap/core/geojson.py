"""GeoJSON in and out: typed layer rows to RFC 7946 features, and strict parsing of submissions."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from webmap.core import ogc_crs
from webmap.core.errors import (
    BadRequestError,
    PayloadTooLargeError,
    UnprocessableError,
    field_error,
)

CRS84 = ogc_crs.CRS84
"""OGC URI of lon/lat WGS84, the default CRS of the GeoJSON the API returns (RFC 7946)."""
COORD_DECIMALS = ogc_crs.DEGREE_DECIMALS
"""Decimals of degrees in responses (1e-7° ≈ 1 cm; local choice)."""

_DEPTH = {
    "Point": 0,
    "LineString": 1,
    "MultiPoint": 1,
    "Polygon": 2,
    "MultiLineString": 2,
    "MultiPolygon": 3,
}


def jsonable(value: Any) -> Any:
    """Turn one stored value into JSON: NA → null, numpy → Python, times → ISO 8601 text."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) or math.isinf(value) else float(value)
    if isinstance(value, pd.Timestamp | dt.datetime):
        ts = pd.Timestamp(value)
        ts = ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts
        return ts.isoformat(timespec="seconds") + "Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def features_of(gdf: gpd.GeoDataFrame, id_field: str, *, crs: str = CRS84) -> list[dict[str, Any]]:
    """GeoJSON features of a lon/lat frame, ``id`` from ``id_field``, coordinates rounded.

    Parameters
    ----------
    gdf
        Features in lon/lat (CRS84 or EPSG:4490/4326 coordinates).
    id_field
        Column holding each feature's id.
    crs
        CRS URI to write the coordinates in (OGC API - Features Part 2): CRS84 (lon/lat, the
        default), EPSG:4490/4326 (lat/lon) or a projected CRS offered by ``ogc_crs``.

    Returns
    -------
    list of dict
        One RFC 7946 Feature per row, in row order.
    """
    if len(gdf) == 0:
        return []
    geoms = ogc_crs.to_crs(gdf.geometry.to_numpy(), crs)
    places = ogc_crs.decimals(crs)
    rounded = shapely.transform(geoms, lambda xy: np.round(xy, places))
    geojson = shapely.to_geojson(rounded)
    columns = [c for c in gdf.columns if c != gdf.geometry.name]
    values = {c: [jsonable(v) for v in gdf[c].tolist()] for c in columns}
    out = []
    for i, g in enumerate(geojson):
        props = {c: values[c][i] for c in columns}
        out.append(
            {
                "type": "Feature",
                "id": None if props.get(id_field) is None else str(props[id_field]),
                "geometry": None if g is None else json.loads(g),
                "properties": props,
            }
        )
    return out


def make_etag(version: int, feature: Mapping[str, Any] | None) -> str:
    """Strong ETag of a feature: its edit version plus a hash of its content.

    The version catches A→B→A edits; the hash catches changes made outside the web map (a
    re-import), so a stale ``If-Match`` is refused either way.
    """
    text = json.dumps(feature, sort_keys=True, ensure_ascii=False, default=str)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    return f'"{int(version)}-{digest}"'


def etag_matches(if_match: str, etag: str | None) -> bool:
    """Whether an ``If-Match`` header value matches ``etag`` (strong comparison, RFC 9110)."""
    tags = [t.strip() for t in if_match.split(",") if t.strip()]
    if etag is None:
        return False
    return "*" in tags or etag in tags


def _position(p: Any, path: str) -> None:
    if not isinstance(p, list) or len(p) not in (2, 3):
        raise BadRequestError(
            "invalid GeoJSON coordinates",
            errors=[field_error(path, "bad_position", f"a position is [lon, lat], got {p!r}")],
            code="invalid_geojson",
        )
    for x in p:
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
            raise BadRequestError(
                "invalid GeoJSON coordinates",
                errors=[field_error(path, "bad_number", f"{x!r} is not a finite number")],
                code="invalid_geojson",
            )


def _walk(coords: Any, depth: int, gtype: str, path: str) -> int:
    """Check nesting, lengths and ring closure; return the number of positions."""
    if depth == 0:
        _position(coords, path)
        return 1
    if not isinstance(coords, list):
        raise BadRequestError(
            "invalid GeoJSON coordinates",
            errors=[field_error(path, "bad_nesting", f"expected an array for a {gtype}")],
            code="invalid_geojson",
        )
    n = sum(_walk(c, depth - 1, gtype, f"{path}[{i}]") for i, c in enumerate(coords))
    line_level = depth == 1 and gtype in ("LineString", "MultiLineString")
    ring_level = depth == 1 and gtype in ("Polygon", "MultiPolygon")
    problem = None
    if line_level and len(coords) < 2:
        problem = "a line needs at least 2 positions"
    elif ring_level and len(coords) < 4:
        problem = "a polygon ring needs at least 4 positions"
    elif ring_level and coords[0][:2] != coords[-1][:2]:
        problem = "a polygon ring must end where it starts"
    elif not coords and gtype != "MultiPoint":
        problem = f"empty coordinate array in a {gtype}"
    if problem:
        raise BadRequestError(
            "invalid GeoJSON geometry",
            errors=[field_error(path, "bad_geometry", problem)],
            code="invalid_geojson",
        )
    return n


def parse_geometry(
    obj: Any, *, allowed: Sequence[str], max_vertices: int, field: str = "geometry"
) -> shapely.Geometry:
    """Parse one GeoJSON geometry strictly.

    Parameters
    ----------
    obj
        The decoded ``geometry`` member.
    allowed
        Geometry types the layer accepts (e.g. ``("Point",)``).
    max_vertices
        Most positions accepted.
    field
        Name used in error messages.

    Returns
    -------
    shapely.Geometry
        Possibly invalid (self-intersecting): validity is checked against the layer spec later.

    Raises
    ------
    BadRequestError
        Not a GeoJSON geometry (400).
    UnprocessableError
        A well-formed geometry of a type the layer does not take (422).
    PayloadTooLargeError
        More than ``max_vertices`` positions (413).
    """
    if not isinstance(obj, dict) or "type" not in obj or "coordinates" not in obj:
        raise BadRequestError(
            "the feature needs a GeoJSON geometry",
            errors=[field_error(field, "missing_geometry", "expected {type, coordinates}")],
            code="invalid_geojson",
        )
    gtype = obj["type"]
    if gtype not in _DEPTH:
        raise BadRequestError(
            f"unknown geometry type {gtype!r}",
            errors=[field_error(f"{field}.type", "bad_type", f"one of {sorted(_DEPTH)}")],
            code="invalid_geojson",
        )
    if gtype not in allowed:
        raise UnprocessableError(
            f"this layer takes {list(allowed)} geometries, not {gtype}",
            errors=[field_error(f"{field}.type", "wrong_geometry_type", f"got {gtype}")],
        )
    n = _walk(obj["coordinates"], _DEPTH[gtype], gtype, f"{field}.coordinates")
    if n > max_vertices:
        raise PayloadTooLargeError(
            f"the geometry has {n} positions; at most {max_vertices} are accepted",
            errors=[field_error(field, "too_many_vertices", f"{n} > {max_vertices}")],
        )
    try:
        return shapely.from_geojson(json.dumps({"type": gtype, "coordinates": obj["coordinates"]}))
    except shapely.errors.GEOSException as exc:
        raise BadRequestError(
            f"unreadable geometry: {exc}",
            errors=[field_error(field, "bad_geometry", str(exc))],
            code="invalid_geojson",
        ) from exc


def parse_feature(obj: Any) -> tuple[dict[str, Any], Any]:
    """Split a submitted GeoJSON Feature into (properties, geometry member), or raise 400."""
    if not isinstance(obj, dict) or obj.get("type") != "Feature":
        raise BadRequestError(
            'the body must be a GeoJSON Feature ({"type": "Feature", ...})',
            errors=[field_error("type", "not_a_feature", f"got {type(obj).__name__}")],
            code="invalid_geojson",
        )
    props = obj.get("properties")
    if props is None:
        props = {}
    if not isinstance(props, dict):
        raise BadRequestError(
            "`properties` must be a JSON object",
            errors=[field_error("properties", "bad_properties", "expected an object")],
            code="invalid_geojson",
        )
    return props, obj.get("geometry")


__all__ = [
    "CRS84",
    "etag_matches",
    "features_of",
    "jsonable",
    "make_etag",
    "parse_feature",
    "parse_geometry",
]

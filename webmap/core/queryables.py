"""Queryables and schemas of a collection (OGC API - Features Part 3 basics, Part 5 shape).

- ``/collections/{id}/queryables``: the properties a client may filter on, as JSON Schema; each
  one is also an ``items`` query parameter (``?kind=flood``, equality; Part 3 conformance class
  *Queryables as Query Parameters*). GDAL's OAPIF driver finds them in the OpenAPI document and
  sends simple ``-where`` equalities to the server.
- ``/collections/{id}/schema``: every property with its type, titles, allowed values and role
  (``x-ogc-role``: ``id``, ``primary-geometry``, ``primary-instant``).
- ``/collections/{id}/schema?profile=geojson``: the same fields as a GeoJSON Feature schema, the
  collection's ``describedby`` link: GDAL (and so QGIS) types the layer's fields from it, even for
  a layer that has no feature yet.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from geo_mz.core import FieldSpec, LayerSpec
from webmap.core.errors import BadRequestError, field_error
from webmap.core.layers import CLOSURE_GEOMETRIES, CLOSURES

SCHEMA_JSON = "application/schema+json"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
SCHEMA_REL = "http://www.opengis.net/def/rel/ogc/1.0/schema"
QUERYABLE_TYPES = frozenset({"string", "integer", "boolean"})
"""Field types offered as equality filters (floats and times: use ranges, i.e. ``datetime``)."""
RESERVED = frozenset({"bbox", "bbox-crs", "crs", "datetime", "f", "lang", "limit", "offset"})

_TYPES = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "float": {"type": "number"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
    "datetime": {"type": "string", "format": "date-time"},
}
_GEOMETRY_FORMATS = {
    "Point": "geometry-point",
    "LineString": "geometry-linestring",
    "Polygon": "geometry-polygon",
    "MultiPoint": "geometry-multipoint",
    "MultiLineString": "geometry-multilinestring",
    "MultiPolygon": "geometry-multipolygon",
}


def queryable_fields(spec: LayerSpec) -> list[FieldSpec]:
    """Fields of ``spec`` that are queryables (and so ``items`` query parameters)."""
    return [f for f in spec.fields if f.type in QUERYABLE_TYPES and f.name not in RESERVED]


def field_schema(f: FieldSpec) -> dict[str, Any]:
    """JSON Schema of one field: type, bilingual title, allowed values, range, pattern."""
    s: dict[str, Any] = dict(_TYPES[f.type])
    s["title"] = f"{f.title_zh} / {f.title_en}"
    if f.values:
        s["enum"] = [v.code for v in f.values]
    if f.min is not None:
        s["minimum"] = f.min
    if f.max is not None:
        s["maximum"] = f.max
    if f.pattern:
        s["pattern"] = f.pattern
    return s


def _geometry_schema(cid: str, spec: LayerSpec) -> dict[str, Any]:
    kinds = CLOSURE_GEOMETRIES if cid == CLOSURES else (spec.geometry,)
    # Lines and polygons may be stored as multi-part (a Polygon layer holds MultiPolygons);
    # point layers hold single points.
    formats: list[str] = []
    for kind in kinds:
        for k in (kind,) if kind == "Point" else (kind, f"Multi{kind}"):
            if k in _GEOMETRY_FORMATS and _GEOMETRY_FORMATS[k] not in formats:
                formats.append(_GEOMETRY_FORMATS[k])
    if len(formats) == 1:
        return {"format": formats[0]}
    return {"oneOf": [{"format": f} for f in formats]}


def _temporal_field(spec: LayerSpec) -> str | None:
    return next((f.name for f in spec.fields if f.type == "datetime"), None)


def queryables_doc(cid: str, spec: LayerSpec, base: str) -> dict[str, Any]:
    """Build the ``/collections/{cid}/queryables`` document (JSON Schema 2020-12)."""
    props: dict[str, Any] = {
        "geometry": {
            "title": "几何 / geometry",
            **_geometry_schema(cid, spec),
            "description": "filter with bbox (and bbox-crs)",
        }
    }
    temporal = _temporal_field(spec)
    if temporal is not None:
        f = next(x for x in spec.fields if x.name == temporal)
        props[temporal] = {**field_schema(f), "description": "filter with datetime"}
    for f in queryable_fields(spec):
        props[f.name] = field_schema(f)
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"{base}collections/{cid}/queryables",
        "type": "object",
        "title": f"{spec.title_zh} / {spec.title_en}",
        "properties": props,
        "additionalProperties": False,
    }


def schema_doc(cid: str, spec: LayerSpec, base: str) -> dict[str, Any]:
    """Build the ``/collections/{cid}/schema`` document: every property with its role."""
    props: dict[str, Any] = {}
    temporal = _temporal_field(spec)
    for f in spec.fields:
        s = field_schema(f)
        if f.name == spec.id_field:
            s["x-ogc-role"] = "id"
        elif f.name == temporal:
            s["x-ogc-role"] = "primary-instant"
        props[f.name] = s
    props["geometry"] = {
        "title": "几何 / geometry",
        **_geometry_schema(cid, spec),
        "x-ogc-role": "primary-geometry",
    }
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"{base}collections/{cid}/schema",
        "type": "object",
        "title": f"{spec.title_zh} / {spec.title_en}",
        "properties": props,
        "required": [f.name for f in spec.fields if f.required],
    }


def feature_schema_doc(cid: str, spec: LayerSpec, base: str) -> dict[str, Any]:
    """Build a GeoJSON Feature schema of the collection (``describedby``; GDAL reads it)."""
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"{base}collections/{cid}/schema?profile=geojson",
        "type": "object",
        "title": f"{spec.title_zh} / {spec.title_en}",
        "required": ["type", "geometry", "properties"],
        "properties": {
            "type": {"type": "string", "enum": ["Feature"]},
            "id": {"type": "string"},
            "geometry": {"type": "object"},
            "properties": {
                "type": "object",
                "properties": {f.name: field_schema(f) for f in spec.fields},
            },
        },
    }


def _bad(name: str, raw: str, expected: str) -> BadRequestError:
    return BadRequestError(
        f"`{name}` 为 {raw!r}，应为{expected} / `{name}` was {raw!r} but must be {expected}",
        errors=[field_error(name, "bad_value", expected)],
    )


def _typed(f: FieldSpec, raw: str) -> Any:
    if f.type == "integer":
        try:
            return int(raw)
        except ValueError:
            raise _bad(f.name, raw, "a whole number") from None
    if f.type == "boolean":
        if raw.lower() not in ("true", "false", "1", "0"):
            raise _bad(f.name, raw, "true or false")
        return raw.lower() in ("true", "1")
    return raw


def filter_mask(g: pd.DataFrame, spec: LayerSpec, args: dict[str, str]) -> np.ndarray | None:
    """Rows of ``g`` equal to every queryable given in ``args`` (None when none is given)."""
    mask: np.ndarray | None = None
    for f in queryable_fields(spec):
        if f.name not in args:
            continue
        value = _typed(f, args[f.name])
        if f.name in g.columns and len(g):
            col = g[f.name]
            if f.type == "string":
                col = col.astype("string")
            hit = (col == value).fillna(False).to_numpy(dtype=bool, copy=True)
        else:
            hit = np.zeros(len(g), dtype=bool)
        mask = hit if mask is None else mask & hit
    return mask


__all__ = [
    "QUERYABLES_REL",
    "QUERYABLE_TYPES",
    "SCHEMA_JSON",
    "SCHEMA_REL",
    "feature_schema_doc",
    "field_schema",
    "filter_mask",
    "queryable_fields",
    "queryables_doc",
    "schema_doc",
]

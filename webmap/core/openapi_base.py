"""Shared parts of the OpenAPI document: references, common components, service paths."""

from __future__ import annotations

from typing import Any

from webmap.core.features import DEFAULT_LIMIT, MAX_LIMIT
from webmap.core.http import JSON

_REF = "#/components/{}/{}"
_ERRORS = {
    "400": "bad request (malformed query, body or GeoJSON)",
    "401": "login required",
    "403": "role not allowed, or CSRF token missing",
    "404": "no such collection or feature",
    "405": "this collection does not take that write",
    "409": "stale If-Match version, or the id exists already",
    "413": "body or geometry too large",
    "415": "body is not JSON",
    "422": "invalid feature: each finding names its field",
    "428": "If-Match missing: PATCH and DELETE need the version they change",
    "429": "too many failed logins from this user or address: wait Retry-After seconds",
    "503": "workspace_busy: the workspace stayed locked by other readers or writers; nothing "
    "was written: send it again after Retry-After seconds",
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before sending the request again",
        "schema": {"type": "integer", "minimum": 0},
    }
}
"""The header the answers that say when to try again carry (429, 503)."""


def ref(kind: str, name: str) -> dict[str, str]:
    """Return a ``$ref`` to ``#/components/<kind>/<name>``."""
    return {"$ref": _REF.format(kind, name)}


def json_body(schema: dict[str, Any], media: str = JSON) -> dict[str, Any]:
    """Return a ``content`` member with one media type and its schema."""
    return {"content": {media: {"schema": schema}}}


def errors(*codes: str) -> dict[str, Any]:
    """Return the shared error responses for these status codes."""
    return {c: ref("responses", f"E{c}") for c in codes}


def base_components() -> dict[str, Any]:
    """Build the components every document has: schemas, parameters, errors, security."""
    link = {
        "type": "object",
        "required": ["href", "rel"],
        "properties": {k: {"type": "string"} for k in ("href", "rel", "type", "title")},
    }
    geometry = {
        "type": "object",
        "required": ["type", "coordinates"],
        "properties": {
            "type": {
                "type": "string",
                "enum": [
                    "Point",
                    "MultiPoint",
                    "LineString",
                    "MultiLineString",
                    "Polygon",
                    "MultiPolygon",
                ],
            },
            "coordinates": {"type": "array", "items": {}},
        },
    }
    feature = {
        "type": "object",
        "required": ["type", "geometry", "properties"],
        "properties": {
            "type": {"type": "string", "enum": ["Feature"]},
            "id": {"type": "string"},
            "geometry": {**geometry, "nullable": True},
            "properties": {"type": "object", "nullable": True},
            "links": {"type": "array", "items": ref("schemas", "link")},
        },
    }
    fc = {
        "type": "object",
        "required": ["type", "features"],
        "properties": {
            "type": {"type": "string", "enum": ["FeatureCollection"]},
            "features": {"type": "array", "items": ref("schemas", "featureGeoJSON")},
            "numberMatched": {"type": "integer", "minimum": 0},
            "numberReturned": {"type": "integer", "minimum": 0},
            "timeStamp": {"type": "string", "format": "date-time"},
            "links": {"type": "array", "items": ref("schemas", "link")},
        },
    }
    exception = {
        "type": "object",
        "required": ["code", "description"],
        "properties": {
            "code": {"type": "string"},
            "description": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {k: {"type": "string"} for k in ("field", "code", "message")},
                },
            },
        },
    }
    collection = {
        "type": "object",
        "required": ["id", "links"],
        "properties": {
            "id": {"type": "string"},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "links": {"type": "array", "items": ref("schemas", "link")},
            "extent": {"type": "object"},
            "itemType": {"type": "string"},
            "crs": {"type": "array", "items": {"type": "string"}},
        },
    }
    q = "query"
    params = {
        "bbox": {
            "name": "bbox",
            "in": q,
            "description": "minx,miny,maxx,maxy (or minx,miny,minz,maxx,maxy,maxz) in the axis "
            "order of bbox-crs (CRS84: lon,lat degrees; EPSG:4490: lat,lon)",
            "style": "form",
            "explode": False,
            "schema": {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
        },
        "limit": {
            "name": "limit",
            "in": q,
            "schema": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_LIMIT,
                "default": DEFAULT_LIMIT,
            },
        },
        "offset": {"name": "offset", "in": q, "schema": {"type": "integer", "minimum": 0}},
        "datetime": {
            "name": "datetime",
            "in": q,
            "description": "RFC 3339 instant or interval (a/b, ../b, a/..)",
            "schema": {"type": "string"},
        },
        "lang": {"name": "lang", "in": q, "schema": {"type": "string", "enum": ["zh", "en"]}},
        "f": {"name": "f", "in": q, "schema": {"type": "string", "enum": ["json", "geojson"]}},
        "featureId": {
            "name": "featureId",
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
        },
        "ifMatch": {
            "name": "If-Match",
            "in": "header",
            "description": "ETag from GET; a stale one is refused with 409",
            "schema": {"type": "string"},
        },
        "csrf": {
            "name": "X-CSRF-Token",
            "in": "header",
            "description": "required with a session cookie (from /login or /session)",
            "schema": {"type": "string"},
        },
    }
    return {
        "schemas": {
            "link": link,
            "geometryGeoJSON": geometry,
            "featureGeoJSON": feature,
            "featureCollectionGeoJSON": fc,
            "exception": exception,
            "collection": collection,
        },
        "parameters": params,
        "responses": {
            f"E{c}": {
                "description": d,
                **json_body(ref("schemas", "exception")),
                **({"headers": _RETRY_AFTER} if c in ("429", "503") else {}),
            }
            for c, d in _ERRORS.items()
        },
        "securitySchemes": {
            "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "session"},
            "basicAuth": {"type": "http", "scheme": "basic"},
        },
    }


def service_paths() -> dict[str, Any]:
    """Build the paths that do not depend on the layers (landing, events, login...)."""
    p = lambda n: ref("parameters", n)  # noqa: E731
    obj = {"type": "object"}
    login = {
        "type": "object",
        "required": ["username", "password"],
        "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
    }
    return {
        "/": {
            "get": {
                "summary": "landing page (JSON); the map page (HTML) with ?f=html or when the "
                "client prefers text/html (a browser)",
                "operationId": "landing",
                "parameters": [
                    {
                        "name": "f",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["json", "geojson", "html"]},
                    },
                    p("lang"),
                ],
                "responses": {
                    "200": {
                        "description": "landing page (JSON), or the map page (HTML)",
                        "content": {
                            JSON: {"schema": obj},
                            "text/html": {"schema": {"type": "string"}},
                        },
                    },
                    **errors("400"),
                },
            }
        },
        "/conformance": {
            "get": {
                "summary": "conformance classes",
                "operationId": "conformance",
                "parameters": [p("f")],
                "responses": {"200": {"description": "conformance", **json_body(obj)}},
            }
        },
        "/collections": {
            "get": {
                "summary": "all layers",
                "operationId": "collections",
                "parameters": [p("lang"), p("f")],
                "responses": {"200": {"description": "collections", **json_body(obj)}},
            }
        },
        "/openapi": {
            "get": {
                "summary": "this document",
                "operationId": "openapi",
                "responses": {"200": {"description": "OpenAPI 3.0 document"}},
            }
        },
        "/events": {
            "get": {
                "summary": "live updates (Server-Sent Events); replays after Last-Event-ID",
                "operationId": "events",
                "parameters": [
                    {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
                    {"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                ],
                "responses": {
                    "200": {
                        "description": "text/event-stream",
                        "content": {"text/event-stream": {}},
                    },
                    **errors("400", "401"),
                },
            }
        },
        "/login": {
            "post": {
                "summary": "log in; sets the session cookie, returns the CSRF token",
                "operationId": "login",
                "requestBody": {"required": True, **json_body(login)},
                "responses": {
                    "200": {"description": "logged in", **json_body(obj)},
                    **errors("400", "401", "413", "429"),
                },
            }
        },
        "/logout": {
            "post": {
                "summary": "log out",
                "operationId": "logout",
                "parameters": [p("csrf")],
                "responses": {"200": {"description": "logged out", **json_body(obj)}},
            }
        },
        "/session": {
            "get": {
                "summary": "who is logged in, and the CSRF token for writes",
                "operationId": "session",
                "responses": {"200": {"description": "the session", **json_body(obj)}},
            }
        },
        "/audit": {
            "get": {
                "summary": "audit log, newest first (admin)",
                "operationId": "audit",
                "security": [{"cookieAuth": []}, {"basicAuth": []}],
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {"name": "layer", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {"description": "audit rows", **json_body(obj)},
                    **errors("400", "401", "403", "429"),
                },
            }
        },
    }


__all__ = ["base_components", "errors", "json_body", "ref", "service_paths"]

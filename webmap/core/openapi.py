"""The OpenAPI 3.0 document: every read and write endpoint, with schemas from the layer specs."""

from __future__ import annotations

from typing import Any

import geo_mz
from geo_mz.core import FieldSpec, LayerSpec
from webmap.core.analysis import analysis_paths
from webmap.core.http import GEOJSON
from webmap.core.layers import WRITE_RULES, allowed_methods, write_rule
from webmap.core.names import names_paths
from webmap.core.ogc_crs import CRS84H, supported_crs
from webmap.core.openapi_base import (
    base_components,
    errors,
    json_body,
    ref,
    service_paths,
)
from webmap.core.queryables import SCHEMA_JSON, field_schema, queryable_fields
from webmap.core.store import FeatureStore
from webmap.core.tiles import tile_paths


def _field_schema(f: FieldSpec) -> dict[str, Any]:
    """Return the field's JSON Schema (as a queryable), ``nullable`` (OpenAPI 3.0) if optional."""
    s = field_schema(f)
    if not f.required:
        s["nullable"] = True
    return s


def properties_schema(spec: LayerSpec, fields: tuple[str, ...] | None = None) -> dict[str, Any]:
    """JSON Schema of a layer's properties (or of the ``fields`` a write accepts)."""
    chosen = [f for f in spec.fields if fields is None or f.name in fields]
    out: dict[str, Any] = {
        "type": "object",
        "properties": {f.name: _field_schema(f) for f in chosen},
    }
    if fields is None:
        out["required"] = [f.name for f in chosen if f.required]
    return out


def _crs_param(name: str, offered: list[str], doc: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "description": doc,
        "style": "form",
        "explode": False,
        "schema": {"type": "string", "format": "uri", "enum": offered},
    }


def _queryable_params(spec: LayerSpec) -> list[dict[str, Any]]:
    out = []
    for f in queryable_fields(spec):
        schema = {k: v for k, v in field_schema(f).items() if k in ("type", "enum")}
        out.append(
            {
                "name": f.name,
                "in": "query",
                "description": f"{f.title_zh} / {f.title_en}: equal to (queryable)",
                "schema": schema,
            }
        )
    return out


def _read_paths(cid: str, spec: LayerSpec, offered: list[str]) -> dict[str, Any]:
    p = lambda n: ref("parameters", n)  # noqa: E731
    fc = ref("schemas", "featureCollectionGeoJSON")
    feat = ref("schemas", "featureGeoJSON")
    title = f"{spec.title_zh} {spec.title_en}"
    content_crs = {
        "Content-Crs": {
            "description": "CRS of the coordinates, as <uri> (OGC API - Features Part 2)",
            "required": True,
            "schema": {"type": "string"},
        }
    }
    crs = _crs_param("crs", offered, "CRS of the response coordinates (default CRS84, lon/lat)")
    bbox_crs = _crs_param(
        "bbox-crs", [*offered, CRS84H], "CRS of bbox, in its axis order (default CRS84)"
    )
    schema_doc = {"content": {SCHEMA_JSON: {"schema": {"type": "object"}}}}
    profile = {
        "name": "profile",
        "in": "query",
        "description": "properties (default; x-ogc-role per property) or geojson (a Feature)",
        "schema": {"type": "string", "enum": ["properties", "geojson"]},
    }
    items_params = [p("bbox"), bbox_crs, crs, p("limit"), p("offset"), p("datetime")]
    return {
        f"/collections/{cid}": {
            "get": {
                "summary": f"{title}: description",
                "operationId": f"describe_{cid}",
                "tags": [cid],
                "parameters": [p("lang"), p("f")],
                "responses": {
                    "200": {
                        "description": "the collection",
                        **json_body(ref("schemas", "collection")),
                    },
                    **errors("400", "404"),
                },
            }
        },
        f"/collections/{cid}/queryables": {
            "get": {
                "summary": f"{title}: queryables (JSON Schema; each is an items parameter)",
                "operationId": f"queryables_{cid}",
                "tags": [cid],
                "parameters": [p("lang"), p("f")],
                "responses": {
                    "200": {"description": "queryables", **schema_doc},
                    **errors("400", "404"),
                },
            }
        },
        f"/collections/{cid}/schema": {
            "get": {
                "summary": f"{title}: schema of the features (JSON Schema)",
                "operationId": f"schema_{cid}",
                "tags": [cid],
                "parameters": [profile, p("f")],
                "responses": {
                    "200": {"description": "schema", **schema_doc},
                    **errors("400", "404"),
                },
            }
        },
        f"/collections/{cid}/items": {
            "get": {
                "summary": f"{title}: features",
                "operationId": f"get_{cid}_items",
                "tags": [cid],
                "parameters": [*items_params, p("lang"), p("f"), *_queryable_params(spec)],
                "responses": {
                    "200": {
                        "description": "a page of features",
                        "headers": content_crs,
                        **json_body(fc, GEOJSON),
                    },
                    **errors("400", "404"),
                },
            }
        },
        f"/collections/{cid}/items/{{featureId}}": {
            "get": {
                "summary": f"{title}: one feature by {spec.id_field}",
                "operationId": f"get_{cid}_item",
                "tags": [cid],
                "parameters": [p("featureId"), crs, p("lang"), p("f")],
                "responses": {
                    "200": {
                        "description": "the feature (ETag header: its version)",
                        "headers": content_crs,
                        **json_body(feat, GEOJSON),
                    },
                    **errors("400", "404"),
                },
            }
        },
    }


def _write_ops(cid: str, spec: LayerSpec, paths: dict[str, Any]) -> None:
    p = lambda n: ref("parameters", n)  # noqa: E731
    feat = ref("schemas", "featureGeoJSON")
    security = [{"cookieAuth": []}, {"basicAuth": []}]
    item_path = f"/collections/{cid}/items/{{featureId}}"
    # 503 workspace_busy: the GeoPackage stayed locked by another reader or writer
    writes = errors("400", "401", "403", "404", "409", "413", "415", "422", "429", "503")
    changes = {**writes, **errors("428")}  # PATCH/DELETE without If-Match
    for method in allowed_methods(cid):
        rule = write_rule(cid, method)
        assert rule is not None
        doc = f"role {rule.role} or higher"
        props = properties_schema(spec, rule.fields)
        if rule.required:
            props["required"] = list(rule.required)
        if method == "POST":
            body = {
                "type": "object",
                "required": ["type", "geometry", "properties"],
                "properties": {
                    "type": {"type": "string", "enum": ["Feature"]},
                    "geometry": ref("schemas", "geometryGeoJSON"),
                    "properties": props,
                },
            }
            paths[f"/collections/{cid}/items"]["post"] = {
                "summary": f"add a feature ({doc})",
                "operationId": f"create_{cid}",
                "tags": [cid],
                "security": security,
                "parameters": [p("csrf")],
                "requestBody": {"required": True, **json_body(body, GEOJSON)},
                "responses": {
                    "201": {"description": "created", **json_body(feat, GEOJSON)},
                    **writes,
                },
            }
        elif method == "PATCH":
            paths[item_path]["patch"] = {
                "summary": f"change {list(rule.fields)} ({doc}); JSON merge patch",
                "operationId": f"patch_{cid}",
                "tags": [cid],
                "security": security,
                "parameters": [p("featureId"), p("ifMatch"), p("csrf")],
                "requestBody": {"required": True, **json_body(props)},
                "responses": {
                    "200": {"description": "updated", **json_body(feat, GEOJSON)},
                    **changes,
                },
            }
        elif method == "DELETE":
            paths[item_path]["delete"] = {
                "summary": f"remove a feature ({doc})",
                "operationId": f"delete_{cid}",
                "tags": [cid],
                "security": security,
                "parameters": [p("featureId"), p("ifMatch"), p("csrf")],
                "responses": {"204": {"description": "deleted"}, **changes},
            }


def openapi_document(store: FeatureStore, base_url: str) -> dict[str, Any]:
    """Build the OpenAPI 3.0.3 document of this service.

    Parameters
    ----------
    store
        Which layers are served (one path set per collection, properties from its spec).
    base_url
        The server URL.

    Returns
    -------
    dict
        The document, JSON-serialisable.
    """
    offered = supported_crs(store.metadata)
    paths = service_paths()
    paths.update(names_paths())
    paths.update(analysis_paths())
    paths.update(tile_paths())
    for cid in store.layer_names():
        spec = store.spec(cid)
        layer_paths = _read_paths(cid, spec, offered)
        _write_ops(cid, spec, layer_paths)
        paths.update(layer_paths)
    meta = store.metadata
    components = base_components()
    for cid in store.layer_names():
        components["schemas"][f"{cid}Properties"] = properties_schema(store.spec(cid))
    return {
        "openapi": "3.0.3",
        "info": {
            "title": f"{meta.get('name', '')} 灾害应急指挥地图 API",
            "version": geo_mz.__version__,
            "description": "OGC API - Features (Part 1 Core, Part 2 CRS, Part 3 queryables) over "
            "the geo_mz workspace, with writes "
            f"({', '.join(f'{r.method} {r.layer}' for r in WRITE_RULES)}), live updates at "
            "/events (SSE) and role-based login.",
        },
        "servers": [{"url": base_url.rstrip("/") or "/"}],
        "paths": paths,
        "components": components,
    }


__all__ = ["openapi_document", "properties_schema"]

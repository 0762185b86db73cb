"""OGC API - Features over a :class:`FeatureStore`: Parts 1, 2 (CRS) and 3 (queryables).

Part 1: Core, GeoJSON, OAS 3.0. Part 2: CRS by reference (``crs``, ``bbox-crs``,
``Content-Crs``). Part 3 basics: queryables, as JSON Schema and as query parameters.

``/conformance`` declares exactly these classes; GDAL's OAPIF driver (QGIS) and OWSLib read every
collection (see ``tests/test_webmap_ogc_clients.py``).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import urlencode

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.core import LayerSpec
from webmap.core import ogc_crs, queryables
from webmap.core.columnar import collection_json
from webmap.core.columnar_cache import page_json
from webmap.core.errors import BadRequestError, NotFoundError, field_error
from webmap.core.geojson import CRS84
from webmap.core.http import GEOJSON, JSON, OPENAPI_JSON, ApiRequest, ApiResponse
from webmap.core.layers import CLOSURE_GEOMETRIES, CLOSURES, allowed_methods
from webmap.core.store import FeatureStore

CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
)
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
"""Items per page: 100 by default, at most 10,000 (OGC lets the server choose; local choice)."""
ITEMS_PARAMS = frozenset({"bbox", "bbox-crs", "crs", "limit", "offset", "datetime", "f", "lang"})
"""Query parameters of ``items`` besides the collection's queryables."""
ITEM_PARAMS = frozenset({"crs", "f", "lang"})
COMMON_PARAMS = frozenset({"f", "lang"})
SCHEMA_PARAMS = frozenset({"f", "profile"})


def lang_of(req: ApiRequest, default: str) -> str:
    """Return the requested label language (``lang`` parameter), checked."""
    lang = req.args.get("lang", default)
    if lang not in ("zh", "en"):
        raise BadRequestError(
            f"`lang` was {lang!r} but must be 'zh' or 'en'",
            errors=[field_error("lang", "bad_value", "zh or en")],
        )
    return lang


def check_params(req: ApiRequest, allowed: frozenset[str]) -> None:
    """Refuse unknown query parameters, a bad ``lang`` and any ``f`` but JSON (400)."""
    unknown = sorted(set(req.args) - allowed)
    if unknown:
        raise BadRequestError(
            f"未知的查询参数 {unknown}，允许的参数：{sorted(allowed)} / unknown query parameter(s) "
            f"{unknown}; allowed: {sorted(allowed)}",
            errors=[field_error(k, "unknown_parameter", "not allowed here") for k in unknown],
        )
    if "lang" in req.args:
        lang_of(req, "zh")
    if req.args.get("f", "json") not in ("json", "geojson"):
        raise BadRequestError(
            "`f` must be json (HTML is the map page at /)",
            errors=[field_error("f", "bad_value", "json")],
        )


def prefers_html(accept: str | None, f: str | None) -> bool:
    """Whether ``/`` should answer with the map page rather than the landing page JSON.

    HTML only for ``f=html`` or when the client prefers ``text/html`` to JSON: a browser does
    (``text/html,...,*/*;q=0.8``); GDAL (``application/json``), OWSLib and curl (``*/*``) and a
    request without ``Accept`` get JSON, as for every other API path.
    """
    if f is not None:
        return f == "html"
    if not accept:
        return False
    q_html = q_json = 0.0
    for part in accept.split(","):
        media, _, params = part.strip().partition(";")
        media = media.strip().lower()
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media in ("text/html", "application/xhtml+xml"):
            q_html = max(q_html, q)
        elif media in (JSON, GEOJSON, "application/*"):
            q_json = max(q_json, q)
        elif media == "*/*":
            q_json = max(q_json, q)  # JSON wins a tie: the API is the default
    return q_html > q_json


def _link(href: str, rel: str, media: str, title: str) -> dict[str, str]:
    return {"href": href, "rel": rel, "type": media, "title": title}


def landing(store: FeatureStore, req: ApiRequest) -> ApiResponse:
    """Describe the service: what this service is and where its parts are."""
    check_params(req, COMMON_PARAMS)
    base = req.base_url
    meta = store.metadata
    return ApiResponse(
        body={
            "title": f"{meta.get('name', '')} 灾害应急指挥地图 / disaster command map",
            "description": "OGC API - Features over the geo_mz workspace "
            f"{meta.get('name', '')} ({meta.get('adcode', '')}), with live updates at /events.",
            "links": [
                _link(f"{base}?f=json", "self", JSON, "this document"),
                _link(f"{base}openapi", "service-desc", OPENAPI_JSON, "API definition"),
                _link(f"{base}conformance", "conformance", JSON, "conformance classes"),
                _link(f"{base}collections", "data", JSON, "collections"),
                _link(f"{base}?f=html", "alternate", "text/html", "地图 map"),
                _link(f"{base}events", "related", "text/event-stream", "live updates (SSE)"),
            ],
        }
    )


def conformance(store: FeatureStore, req: ApiRequest) -> ApiResponse:
    """List the conformance classes this API implements."""
    check_params(req, COMMON_PARAMS)
    return ApiResponse(body={"conformsTo": list(CONFORMANCE)})


def _spec_or_404(store: FeatureStore, cid: str) -> LayerSpec:
    try:
        return store.spec(cid)
    except KeyError:
        raise NotFoundError(
            f"no collection {cid!r}; collections are {store.layer_names()}",
            code="no_collection",
        ) from None


def collection_info(store: FeatureStore, cid: str, base: str, lang: str) -> dict[str, Any]:
    """One collection's description: titles, extent, CRS list, links, writes offered."""
    spec = _spec_or_404(store, cid)
    g = store.frame(cid)
    bounds = store.metadata["bounds"]
    if len(g) and not g.geometry.is_empty.all():
        bounds = [float(x) for x in g.total_bounds]
    temporal = _temporal_field(spec)
    extent: dict[str, Any] = {"spatial": {"bbox": [list(bounds)], "crs": CRS84}}
    if temporal and len(g) and g[temporal].notna().any():
        times = pd.to_datetime(g[temporal].dropna())
        extent["temporal"] = {
            "interval": [[_iso(times.min()), _iso(times.max())]],
            "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
        }
    geometry = "/".join(CLOSURE_GEOMETRIES) if cid == CLOSURES else spec.geometry
    here = f"{base}collections/{cid}"
    schema = queryables.SCHEMA_JSON
    return {
        "id": cid,
        "title": spec.title(lang),
        "description": spec.description,
        "titles": {"zh": spec.title_zh, "en": spec.title_en},
        "itemType": "feature",
        "geometryType": geometry,
        "idField": spec.id_field,
        "numberOfFeatures": len(g),
        "extent": extent,
        "crs": ogc_crs.supported_crs(store.metadata),
        "storageCrs": ogc_crs.storage_crs(store.metadata),
        "writes": allowed_methods(cid),
        "links": [
            _link(here, "self", JSON, spec.title(lang)),
            _link(f"{here}/items", "items", GEOJSON, spec.title(lang)),
            _link(f"{here}/queryables", queryables.QUERYABLES_REL, schema, "queryables"),
            _link(f"{here}/schema", queryables.SCHEMA_REL, schema, "schema"),
            _link(f"{here}/schema?profile=geojson", "describedby", schema, "GeoJSON schema"),
        ],
    }


def _iso(ts: Any) -> str:
    return pd.Timestamp(ts).isoformat(timespec="seconds") + "Z"


def collections(store: FeatureStore, req: ApiRequest, default_lang: str) -> ApiResponse:
    """Every served layer with its catalog titles, extent and CRS."""
    check_params(req, COMMON_PARAMS)
    lang = lang_of(req, default_lang)
    base = req.base_url
    return ApiResponse(
        body={
            "links": [_link(f"{base}collections", "self", JSON, "collections")],
            "collections": [collection_info(store, c, base, lang) for c in store.layer_names()],
        }
    )


def collection(store: FeatureStore, req: ApiRequest, cid: str, default_lang: str) -> ApiResponse:
    """One collection's description."""
    check_params(req, COMMON_PARAMS)
    return ApiResponse(body=collection_info(store, cid, req.base_url, lang_of(req, default_lang)))


def collection_queryables(store: FeatureStore, req: ApiRequest, cid: str) -> ApiResponse:
    """Describe the collection's queryables (JSON Schema); each is an ``items`` parameter too."""
    check_params(req, COMMON_PARAMS)
    spec = _spec_or_404(store, cid)
    return ApiResponse(
        body=queryables.queryables_doc(cid, spec, req.base_url),
        media_type=queryables.SCHEMA_JSON,
    )


def collection_schema(store: FeatureStore, req: ApiRequest, cid: str) -> ApiResponse:
    """Describe the collection's schema; ``profile=geojson``: as a GeoJSON Feature schema."""
    check_params(req, SCHEMA_PARAMS)
    spec = _spec_or_404(store, cid)
    profile = req.args.get("profile", "properties")
    if profile not in ("properties", "geojson"):
        raise BadRequestError(
            f"`profile` 为 {profile!r}，应为 properties 或 geojson / `profile` was {profile!r} "
            "but must be properties or geojson",
            errors=[field_error("profile", "bad_value", "properties or geojson")],
        )
    make = queryables.feature_schema_doc if profile == "geojson" else queryables.schema_doc
    return ApiResponse(body=make(cid, spec, req.base_url), media_type=queryables.SCHEMA_JSON)


def int_param(req: ApiRequest, name: str, default: int, lo: int, hi: int) -> int:
    """Read a whole-number query parameter in ``lo..hi`` (400 otherwise), or ``default``."""
    raw = req.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not lo <= value <= hi:
        raise BadRequestError(
            f"`{name}` was {raw!r} but must be a whole number from {lo} to {hi}",
            errors=[field_error(name, "out_of_range", f"{lo}..{hi}")],
        )
    return value


def parse_bbox(raw: str | None, bbox_crs: str = CRS84) -> tuple[float, float, float, float] | None:
    """Parse a 2D or 3D ``bbox`` (in ``bbox_crs``, CRS84 by default) into a lon/lat box (400)."""
    return ogc_crs.parse_bbox(raw, bbox_crs)


def _parse_instant(text: str) -> pd.Timestamp | None:
    if text in ("", ".."):
        return None
    ts = pd.Timestamp(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts


def parse_datetime(raw: str | None) -> tuple[pd.Timestamp | None, pd.Timestamp | None] | None:
    """Parse an RFC 3339 instant or interval (``a/b``, ``../b``, ``a/..``) into UTC bounds."""
    if raw is None:
        return None
    parts = raw.split("/")
    try:
        if len(parts) == 1:
            t = _parse_instant(parts[0])
            if t is None:
                raise ValueError("empty instant")
            return t, t
        if len(parts) == 2:
            lo, hi = _parse_instant(parts[0]), _parse_instant(parts[1])
            if lo is not None and hi is not None and lo > hi:
                raise ValueError("start after end")
            return lo, hi
        raise ValueError("too many '/'")
    except ValueError as exc:
        raise BadRequestError(
            f"`datetime` was {raw!r}: {exc}; use an RFC 3339 instant or interval a/b, ../b, a/..",
            errors=[field_error("datetime", "bad_datetime", str(exc))],
        ) from None


def _temporal_field(spec: LayerSpec) -> str | None:
    for f in spec.fields:
        if f.type == "datetime":
            return f.name
    return None


def select(
    g: gpd.GeoDataFrame,
    spec: LayerSpec,
    *,
    bbox: tuple[float, float, float, float] | None,
    when: tuple[pd.Timestamp | None, pd.Timestamp | None] | None,
    where: np.ndarray | None = None,
) -> np.ndarray:
    """Row positions of ``g`` matching the filters, in layer order.

    ``where`` is an optional boolean mask of the rows (e.g. the queryables' equalities).
    """
    keep = np.ones(len(g), dtype=bool)
    if where is not None:
        keep &= where
    if bbox is not None and len(g):
        hits = g.sindex.query(shapely.box(*bbox), predicate="intersects")
        mask = np.zeros(len(g), dtype=bool)
        mask[hits] = True
        keep &= mask
    field = _temporal_field(spec)
    if when is not None and field is not None and len(g):
        t = pd.to_datetime(g[field])
        lo, hi = when
        # copy=True: under pandas copy-on-write to_numpy() may hand out a read-only view, and
        # the in-place `&=` below would fail on it ("output array is read-only").
        ok = t.notna().to_numpy(dtype=bool, copy=True)
        if lo is not None:
            ok &= (t >= lo).fillna(False).to_numpy(dtype=bool)
        if hi is not None:
            ok &= (t <= hi).fillna(False).to_numpy(dtype=bool)
        keep &= ok
    return np.flatnonzero(keep)


def _crs_params(store: FeatureStore, req: ApiRequest) -> tuple[str, str]:
    offered = ogc_crs.supported_crs(store.metadata)
    crs = ogc_crs.parse_crs(req.args.get("crs"), offered, "crs")
    bbox_crs = ogc_crs.parse_crs(req.args.get("bbox-crs"), offered, "bbox-crs")
    return crs, bbox_crs


def items(store: FeatureStore, req: ApiRequest, cid: str) -> ApiResponse:
    """Return a page of a collection's features.

    Parameters (query): ``bbox`` (4 or 6 numbers) in ``bbox-crs``, ``datetime``, ``limit``,
    ``offset``, ``crs`` (the response's CRS, named in ``Content-Crs``) and one equality per
    queryable (``?kind=flood``).
    """
    spec = _spec_or_404(store, cid)
    check_params(req, ITEMS_PARAMS | {f.name for f in queryables.queryable_fields(spec)})
    limit = int_param(req, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = int_param(req, "offset", 0, 0, 2**31)
    crs, bbox_crs = _crs_params(store, req)
    bbox = parse_bbox(req.args.get("bbox"), bbox_crs)
    when = parse_datetime(req.args.get("datetime"))
    g = store.frame(cid)
    where = queryables.filter_mask(g, spec, dict(req.args))
    rows = select(g, spec, bbox=bbox, when=when, where=where)
    page = rows[offset : offset + limit]
    feats = page_json(g, spec.id_field, page, crs=crs)  # encoded column by column, as text
    base = f"{req.base_url}collections/{cid}/items"
    keep = {k: v for k, v in req.args.items() if k not in ("offset", "limit")}

    def href(off: int) -> str:
        return f"{base}?{urlencode({**keep, 'limit': limit, 'offset': off})}"

    links = [_link(href(offset), "self", GEOJSON, "this page")]
    if offset + len(page) < len(rows):
        links.append(_link(href(offset + limit), "next", GEOJSON, "next page"))
    if offset > 0:
        links.append(_link(href(max(offset - limit, 0)), "prev", GEOJSON, "previous page"))
    links.append(_link(f"{req.base_url}collections/{cid}", "collection", JSON, spec.title()))
    members = {
        "numberMatched": len(rows),
        "numberReturned": len(page),
        "timeStamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "links": links,
    }
    # The body is the JSON text itself: the features are never turned into dicts to be dumped.
    body = collection_json(feats, members)
    return ApiResponse(body=body, headers=ogc_crs.content_crs(crs), media_type=GEOJSON)


def item(store: FeatureStore, req: ApiRequest, cid: str, fid: str) -> ApiResponse:
    """One feature by its id field, with its ETag (send it back as ``If-Match`` to edit)."""
    check_params(req, ITEM_PARAMS)
    _spec_or_404(store, cid)
    crs, _ = _crs_params(store, req)
    feature, etag = store.current(cid, fid)
    if feature is None:
        raise NotFoundError(f"no feature {fid!r} in collection {cid!r}", code="no_feature")
    feature = dict(feature)
    if crs != CRS84 and feature.get("geometry") is not None:
        geom = shapely.from_geojson(json.dumps(feature["geometry"]))
        moved = ogc_crs.to_crs(np.array([geom]), crs)[0]
        places = ogc_crs.decimals(crs)
        moved = shapely.transform(moved, lambda xy: np.round(xy, places))
        feature["geometry"] = json.loads(shapely.to_geojson(moved))
    feature["links"] = [
        _link(f"{req.base_url}collections/{cid}/items/{fid}", "self", GEOJSON, "this feature"),
        _link(f"{req.base_url}collections/{cid}", "collection", JSON, "collection"),
    ]
    headers = {"ETag": str(etag), **ogc_crs.content_crs(crs)}
    return ApiResponse(body=feature, headers=headers, media_type=GEOJSON)


__all__ = [
    "CONFORMANCE",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "check_params",
    "collection",
    "collection_info",
    "collection_queryables",
    "collection_schema",
    "collections",
    "conformance",
    "int_param",
    "item",
    "items",
    "landing",
    "lang_of",
    "parse_bbox",
    "parse_datetime",
    "prefers_html",
    "select",
]

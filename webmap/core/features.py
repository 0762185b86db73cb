"""OGC API - Features, Part 1 (Core + GeoJSON + OAS 3.0) over a :class:`FeatureStore`."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any
from urllib.parse import urlencode

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.core import LayerSpec
from webmap.core.errors import BadRequestError, NotFoundError, field_error
from webmap.core.geojson import CRS84, features_of
from webmap.core.http import GEOJSON, JSON, OPENAPI_JSON, ApiRequest, ApiResponse
from webmap.core.layers import CLOSURE_GEOMETRIES, CLOSURES, allowed_methods
from webmap.core.store import FeatureStore

CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
)
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
"""Items per page: 100 by default, at most 10,000 (OGC lets the server choose; local choice)."""
STORAGE_CRS_URI = "http://www.opengis.net/def/crs/EPSG/0/{epsg}"
ITEMS_PARAMS = frozenset({"bbox", "limit", "offset", "datetime", "f", "lang"})
COMMON_PARAMS = frozenset({"f", "lang"})


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
            f"unknown query parameter(s) {unknown}; allowed: {sorted(allowed)}",
            errors=[field_error(k, "unknown_parameter", "not allowed here") for k in unknown],
        )
    if "lang" in req.args:
        lang_of(req, "zh")
    if req.args.get("f", "json") not in ("json", "geojson"):
        raise BadRequestError(
            "`f` must be json (HTML is the map page at /)",
            errors=[field_error("f", "bad_value", "json")],
        )


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
                _link(base, "alternate", "text/html", "地图 map"),
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
    """One collection's description: titles, extent, CRS, links, writes offered."""
    spec = _spec_or_404(store, cid)
    g = store.frame(cid)
    bounds = store.metadata["bounds"]
    if len(g) and not g.geometry.is_empty.all():
        bounds = [float(x) for x in g.total_bounds]
    epsg = str(store.metadata.get("storage_crs", "EPSG:4490")).split(":")[-1]
    temporal = _temporal_field(spec)
    extent: dict[str, Any] = {"spatial": {"bbox": [list(bounds)], "crs": CRS84}}
    if temporal and len(g) and g[temporal].notna().any():
        times = pd.to_datetime(g[temporal].dropna())
        extent["temporal"] = {
            "interval": [[_iso(times.min()), _iso(times.max())]],
            "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
        }
    geometry = "/".join(CLOSURE_GEOMETRIES) if cid == CLOSURES else spec.geometry
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
        "crs": [CRS84],
        "storageCrs": STORAGE_CRS_URI.format(epsg=epsg),
        "writes": allowed_methods(cid),
        "links": [
            _link(f"{base}collections/{cid}", "self", JSON, spec.title(lang)),
            _link(f"{base}collections/{cid}/items", "items", GEOJSON, spec.title(lang)),
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


def parse_bbox(raw: str | None) -> tuple[float, float, float, float] | None:
    """Parse ``minx,miny,maxx,maxy`` in CRS84 (400 unless four numbers in lon/lat order)."""
    if raw is None:
        return None
    try:
        vals = [float(x) for x in raw.split(",")]
    except ValueError:
        vals = []
    ok = len(vals) == 4 and all(math.isfinite(v) for v in vals)
    if ok:
        minx, miny, maxx, maxy = vals
        ok = -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90
    if not ok:
        raise BadRequestError(
            f"`bbox` was {raw!r} but must be minx,miny,maxx,maxy in degrees (CRS84), min <= max",
            errors=[field_error("bbox", "bad_bbox", "four numbers lon/lat")],
        )
    return vals[0], vals[1], vals[2], vals[3]


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
) -> np.ndarray:
    """Row positions of ``g`` matching the filters, in layer order."""
    keep = np.ones(len(g), dtype=bool)
    if bbox is not None and len(g):
        hits = g.sindex.query(shapely.box(*bbox), predicate="intersects")
        mask = np.zeros(len(g), dtype=bool)
        mask[hits] = True
        keep &= mask
    field = _temporal_field(spec)
    if when is not None and field is not None and len(g):
        t = pd.to_datetime(g[field])
        lo, hi = when
        ok = t.notna().to_numpy()
        if lo is not None:
            ok &= (t >= lo).fillna(False).to_numpy(dtype=bool)
        if hi is not None:
            ok &= (t <= hi).fillna(False).to_numpy(dtype=bool)
        keep &= ok
    return np.flatnonzero(keep)


def items(store: FeatureStore, req: ApiRequest, cid: str) -> ApiResponse:
    """Return a page of a collection's features (``bbox``, ``datetime``, ``limit``, ``offset``)."""
    check_params(req, ITEMS_PARAMS)
    spec = _spec_or_404(store, cid)
    limit = int_param(req, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = int_param(req, "offset", 0, 0, 2**31)
    bbox = parse_bbox(req.args.get("bbox"))
    when = parse_datetime(req.args.get("datetime"))
    g = store.frame(cid)
    rows = select(g, spec, bbox=bbox, when=when)
    page = rows[offset : offset + limit]
    feats = features_of(g.iloc[page], spec.id_field)
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
    body = {
        "type": "FeatureCollection",
        "features": feats,
        "numberMatched": len(rows),
        "numberReturned": len(feats),
        "timeStamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "links": links,
    }
    return ApiResponse(body=body, media_type=GEOJSON)


def item(store: FeatureStore, req: ApiRequest, cid: str, fid: str) -> ApiResponse:
    """One feature by its id field, with its ETag (send it back as ``If-Match`` to edit)."""
    check_params(req, COMMON_PARAMS)
    _spec_or_404(store, cid)
    feature, etag = store.current(cid, fid)
    if feature is None:
        raise NotFoundError(f"no feature {fid!r} in collection {cid!r}", code="no_feature")
    feature = dict(feature)
    feature["links"] = [
        _link(f"{req.base_url}collections/{cid}/items/{fid}", "self", GEOJSON, "this feature"),
        _link(f"{req.base_url}collections/{cid}", "collection", JSON, "collection"),
    ]
    return ApiResponse(body=feature, headers={"ETag": str(etag)}, media_type=GEOJSON)


__all__ = [
    "CONFORMANCE",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "check_params",
    "collection",
    "collection_info",
    "collections",
    "conformance",
    "int_param",
    "item",
    "items",
    "landing",
    "lang_of",
    "parse_bbox",
    "parse_datetime",
    "select",
]

"""Drawing road closures on the map: the preview of the roads a closure cuts, and its edit.

The preview is computed on the server, by the very rule the relief engine applies to a saved
closure (``Analysis.disruption``: the drive network's edges intersecting the polygon, or the
line buffered ``LINE_BUFFER_M``, through ``geo_mz.network.disruption.from_polygons``). The page
could test the loaded roads itself, but then it would have to re-implement the metric buffer
and the network's edge splitting in JavaScript, and tiled or bbox-loaded road layers are never
complete in the browser: the list it showed could differ from what the saved closure does.

An edit (``PATCH``) replaces the geometry and/or the reason or effect of a closure; ``If-Match``
is required, so two commanders never overwrite each other's drawing unseen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd

from webmap.core.edits import check_row
from webmap.core.edits_common import refuse_unpatchable, require_if_match
from webmap.core.errors import BadRequestError, UnprocessableError, field_error
from webmap.core.geojson import CRS84, features_of, jsonable, parse_geometry
from webmap.core.http import ApiRequest, ApiResponse
from webmap.core.layers import CLOSURES, closure_spec
from webmap.core.store import FeatureStore
from webmap.settings import Settings

if TYPE_CHECKING:
    from webmap.core.analysis import Analysis

CLOSURE_GEOMETRY_TYPES = ("LineString", "Polygon", "MultiPolygon")
PATCHABLE = ("reason", "effect")
"""Properties a closure PATCH may send (besides ``geometry``)."""
PREVIEW_MAX_ROADS = 200
"""Roads listed by name in a preview; all cut edges are still drawn (local choice)."""


def _body(req: ApiRequest, settings: Settings) -> dict[str, Any]:
    body = req.json(max_bytes=settings.max_body_bytes)
    if not isinstance(body, dict):
        raise BadRequestError(
            "请求体须为GeoJSON要素或几何 / the body must be a GeoJSON Feature or geometry",
            errors=[field_error("body", "not_an_object", f"got {type(body).__name__}")],
        )
    return body


def closure_preview(
    analysis: Analysis, store: FeatureStore, settings: Settings, req: ApiRequest
) -> ApiResponse:
    """List the roads a drawn closure would cut (or slow), by the relief engine's rule.

    The body is a GeoJSON Feature (``properties.effect`` ``closed`` or ``slowed``) or a bare
    LineString / Polygon geometry. The answer lists the roads by id and name, the number of
    network edges, and the cut edges as lon/lat GeoJSON lines to highlight.
    """
    body = _body(req, settings)
    geom_obj = body.get("geometry") if body.get("type") == "Feature" else body
    props = body.get("properties") or {} if body.get("type") == "Feature" else {}
    effect = props.get("effect") or "closed"
    if effect not in ("closed", "slowed"):
        raise UnprocessableError(
            f"未知的影响 {effect!r} / unknown effect {effect!r}",
            errors=[field_error("properties.effect", "not_allowed", "closed or slowed")],
        )
    geom = parse_geometry(
        geom_obj, allowed=CLOSURE_GEOMETRY_TYPES, max_vertices=settings.max_vertices
    )
    base = analysis.base_audit()  # the network the relief audit runs on (cached)
    drawn = gpd.GeoDataFrame(
        {"effect": [effect], "source": ["closure"]}, geometry=[geom], crs=CRS84
    )
    d = analysis.disruption(base, drawn)
    hit = d.frame(base.network)
    hit = hit[hit["closed"].to_numpy(bool) | (hit["slow_factor"].to_numpy() > 1.0)]
    lines = hit.to_crs(CRS84)
    names: dict[str, Any] = {}
    if "roads" in store.layer_names() and len(lines):
        roads = store.frame("roads")
        names = dict(zip(roads["road_id"].astype(str), roads["name"], strict=True))
    length = pd.Series(
        gpd.GeoSeries(hit.geometry.values, crs=hit.crs).length.to_numpy(),
        index=hit["edge_id"].astype(str).to_numpy(),
    )
    per_road = length.groupby(level=0).sum().sort_values(ascending=False)
    classes = dict(zip(hit["edge_id"].astype(str), hit["road_class"].astype(str), strict=True))
    road_rows = [
        {
            "road_id": rid,
            "name": jsonable(names.get(rid)),
            "road_class": classes.get(rid),
            "length_m": round(float(m), 1),
        }
        for rid, m in per_road.head(PREVIEW_MAX_ROADS).items()
    ]
    lines = lines.assign(
        edge=np.asarray(hit.index), edge_id=hit["edge_id"].astype(str).to_numpy()
    ).reset_index(drop=True)
    lines["name"] = [names.get(r) for r in lines["edge_id"]]
    feats = features_of(lines[["edge", "edge_id", "name", "closed", "geometry"]], "edge")
    return ApiResponse(
        body={
            "effect": effect,
            "edges": len(hit),
            "roads_count": len(per_road),
            "roads": road_rows,
            "length_m": round(float(per_road.sum()), 1),
            "features": {"type": "FeatureCollection", "features": feats},
        }
    )


def patch_closure(
    store: FeatureStore, settings: Settings, req: ApiRequest, fid: str
) -> ApiResponse:
    """PATCH a closure (commander): a new ``geometry`` and/or ``reason`` / ``effect``.

    The body is a GeoJSON Feature (or an object with ``geometry`` and/or ``properties``);
    ``If-Match`` is required. The closure is checked again like a new one.
    """
    assert req.user is not None
    tag = require_if_match(req.header("If-Match"), CLOSURES, fid)
    body = _body(req, settings)
    # a Feature, {"geometry", "properties"}, or a flat merge patch of the properties
    flat = "geometry" not in body and "properties" not in body
    props = {k: v for k, v in body.items() if k != "type"} if flat else body.get("properties") or {}
    if not isinstance(props, dict):
        raise BadRequestError("`properties` 须为对象 / `properties` must be an object")
    refuse_unpatchable(props, PATCHABLE)
    geom = None
    if body.get("geometry") is not None:
        geom = parse_geometry(
            body["geometry"], allowed=CLOSURE_GEOMETRY_TYPES, max_vertices=settings.max_vertices
        )
    if geom is None and not props:
        raise UnprocessableError(
            "修改内容为空 / empty patch",
            errors=[field_error("body", "empty_patch", "send geometry and/or properties")],
        )

    def build(before: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame:
        assert before is not None
        shape = geom if geom is not None else before.to_crs(CRS84).geometry.iloc[0]
        spec = closure_spec("LineString" if shape.geom_type == "LineString" else "Polygon")
        values = {f.name: before[f.name].iloc[0] for f in spec.fields if f.name in before}
        values.update(props)
        return check_row(spec, values, shape, store)

    change = store.apply(
        CLOSURES,
        fid,
        op="update",
        build=build,
        user=req.user.name,
        role=req.user.role,
        if_match=tag,
    )
    headers = {
        "X-Event-Id": str(change.event.id),
        "Location": f"{req.base_url}collections/{CLOSURES}/items/{fid}",
    }
    if change.etag:
        headers["ETag"] = change.etag
    return ApiResponse(200, change.feature, headers, "application/geo+json")


__all__ = ["CLOSURE_GEOMETRY_TYPES", "PATCHABLE", "PREVIEW_MAX_ROADS", "closure_preview",
           "patch_closure"]  # fmt: skip

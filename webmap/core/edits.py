"""The writes: report an incident, mark or lift a road closure, set a shelter's occupancy.

Every write is checked in full before anything is stored: the body is a GeoJSON Feature (or a
merge patch), only the properties the rule allows, text within the size limit, values allowed
by the layer spec (``geo_mz.core.validate.check_layer``), a valid geometry inside the workspace's
area and touching the jurisdiction. Findings come back together, each naming its field.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import secrets
from collections.abc import Mapping
from typing import Any

import geopandas as gpd
import pandas as pd
import pyproj
import shapely
from geopandas.array import from_shapely

from geo_mz.core import LayerSpec, check_layer
from webmap.core.closure_share import closure_share
from webmap.core.edits_common import require_if_match
from webmap.core.errors import BadRequestError, ConflictError, UnprocessableError, field_error
from webmap.core.geojson import parse_feature, parse_geometry
from webmap.core.http import ApiRequest, ApiResponse
from webmap.core.layers import CLOSURES, INCIDENTS, SHELTERS, WriteRule, closure_spec, write_rule
from webmap.core.store import Change, FeatureStore
from webmap.settings import Settings

JURISDICTION_TOLERANCE_DEG = 0.005
"""How far (degrees, ≈ 500 m) outside the jurisdiction an edit may lie: a closure on the
boundary road or a report from just across it is still ours (local choice)."""
FUTURE_TOLERANCE = dt.timedelta(minutes=10)
"""Clock skew accepted on a client's ``reported_at`` (local choice)."""
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
_LONLAT_EPSG = (4490, 4326)
"""Lon/lat storage CRSs whose coordinates equal a client's CRS84 ones at map precision."""


@functools.lru_cache(maxsize=8)
def _lonlat_label(storage_crs: str | None) -> str:
    """Return the CRS to label a client's lon/lat geometry with, for a store in ``storage_crs``.

    CGCS2000 (EPSG:4490) and WGS84 coordinates are the same numbers at map precision (see
    ``webmap.core.gpkg.lonlat``), so a row for a lon/lat store is labelled with the storage CRS
    directly: the store then has nothing to transform. That is not only tidier: pyproj builds its
    transformers per thread, and the first EPSG:4326 -> 4490 transformation in each of the
    server's worker threads cost 150-180 ms (measured), most of a write's time under load.
    """
    if storage_crs:
        with_epsg = pyproj.CRS.from_user_input(storage_crs).to_epsg()
        if with_epsg in _LONLAT_EPSG:
            return f"EPSG:{with_epsg}"
    return "EPSG:4326"


@functools.lru_cache(maxsize=8)
def _lonlat_crs(storage_crs: str | None) -> pyproj.CRS:
    """Return :func:`_lonlat_label` parsed (once: parsing a CRS costs ~0.1 ms per edit)."""
    return pyproj.CRS.from_user_input(_lonlat_label(storage_crs))


def new_id(prefix: str) -> str:
    """Make a fresh feature id, e.g. ``INC-20250701T081500-3fa9c1`` (time-sortable, unguessable)."""
    return f"{prefix}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def _check_keys(props: Mapping[str, Any], rule: WriteRule, settings: Settings) -> None:
    errors = []
    for key, value in props.items():
        name = f"properties.{key}"
        if key not in rule.fields:
            errors.append(
                field_error(
                    name, "not_editable", f"may not be set here; allowed: {list(rule.fields)}"
                )
            )
        elif value is not None and not isinstance(value, str | int | float | bool):
            errors.append(field_error(name, "wrong_type", "must be text, a number or a boolean"))
        elif isinstance(value, str) and len(value) > settings.max_text_chars:
            errors.append(
                field_error(
                    name, "too_long", f"{len(value)} characters; at most {settings.max_text_chars}"
                )
            )
    for key in rule.required:
        if props.get(key) in (None, ""):
            errors.append(field_error(f"properties.{key}", "missing_required", "is required"))
    if errors:
        raise UnprocessableError(
            f"invalid properties for {rule.method} {rule.layer}", errors=errors
        )


def _client_id(props: Mapping[str, Any], id_field: str, prefix: str) -> str:
    fid = props.get(id_field)
    if fid in (None, ""):
        return new_id(prefix)
    if not isinstance(fid, str) or not _CLIENT_ID.fullmatch(fid):
        raise UnprocessableError(
            "bad feature id",
            errors=[
                field_error(
                    f"properties.{id_field}", "bad_id", "1-64 letters, digits or _ . : - characters"
                )
            ],
        )
    return fid


def check_row(
    spec: LayerSpec,
    values: Mapping[str, Any],
    geometry: shapely.Geometry,
    store: FeatureStore,
) -> gpd.GeoDataFrame:
    """Check one feature against its spec, the workspace area and the jurisdiction.

    Parameters
    ----------
    spec
        The layer spec.
    values
        Field values (missing fields are empty).
    geometry
        Lon/lat geometry.
    store
        Gives the workspace bounds and jurisdiction.

    Returns
    -------
    geopandas.GeoDataFrame
        The typed one-row frame, ready to store: lon/lat, labelled with the store's CRS when
        that is EPSG:4490 or EPSG:4326 (the same numbers), else EPSG:4326.

    Raises
    ------
    UnprocessableError
        With every error found, each naming its field.
    """
    crs = _lonlat_crs(store.metadata.get("storage_crs"))
    columns: dict[str, Any] = {f.name: [values.get(f.name)] for f in spec.fields}
    if "geometry" in columns:  # a field of that name: let geopandas sort the names out
        gdf = gpd.GeoDataFrame(columns, geometry=[geometry], crs=crs)
    else:
        # The same frame as GeoDataFrame(columns, geometry=[geometry], crs=label) in half the
        # time (0.3 vs 0.65 ms): a ready geometry array with a parsed CRS object, no CRS parse.
        columns["geometry"] = from_shapely([geometry], crs=crs)
        gdf = gpd.GeoDataFrame(columns, geometry="geometry")
    out, problems = check_layer(gdf, spec, file=spec.name, area=tuple(store.metadata["bounds"]))
    errors = [
        field_error(
            "geometry"
            if p.field == "geometry"
            else f"properties.{p.field}"
            if p.field
            else "feature",
            p.code,
            p.message,
        )
        for p in problems
        if p.severity == "error"
    ]
    area = store.jurisdiction()
    geom = out.geometry.iloc[0]
    if (
        not errors
        and area is not None
        and not shapely.dwithin(area, geom, JURISDICTION_TOLERANCE_DEG)
    ):
        errors.append(
            field_error(
                "geometry",
                "outside_jurisdiction",
                f"the feature lies outside {store.metadata.get('name', 'the jurisdiction')}",
            )
        )
    if errors:
        raise UnprocessableError(f"the feature does not fit layer '{spec.name}'", errors=errors)
    return out


def feature_response(status: int, change: Change, base_url: str, layer: str) -> ApiResponse:
    """Return an edit's answer: the feature as GeoJSON with its event id, ETag and Location."""
    headers = {"X-Event-Id": str(change.event.id)}
    if change.etag:
        headers["ETag"] = change.etag
    fid = change.event.data["id"]
    headers["Location"] = f"{base_url}collections/{layer}/items/{fid}"
    return ApiResponse(status, change.feature, headers, "application/geo+json")


def _create(
    store: FeatureStore, req: ApiRequest, layer: str, fid: str, row: gpd.GeoDataFrame
) -> ApiResponse:
    """Store a new, checked feature as ``req``'s user and answer 201 with it."""
    assert req.user is not None
    change = store.apply(
        layer,
        fid,
        op="create",
        build=lambda _before: row,
        user=req.user.name,
        role=req.user.role,
    )
    return feature_response(201, change, req.base_url, layer)


def create_incident(store: FeatureStore, settings: Settings, req: ApiRequest) -> ApiResponse:
    """POST an incident report (reporter or higher): a Point with ``kind`` and details."""
    rule = write_rule(INCIDENTS, "POST")
    assert rule is not None and req.user is not None
    props, geom_obj = parse_feature(req.json())
    _check_keys(props, rule, settings)
    geom = parse_geometry(geom_obj, allowed=("Point",), max_vertices=settings.max_vertices)
    spec = store.spec(INCIDENTS)
    fid = _client_id(props, spec.id_field, "INC")
    now = pd.Timestamp.now(tz="UTC").tz_localize(None).floor("s")
    values = {
        **props,
        spec.id_field: fid,
        "reporter": req.user.name,
        "reported_at": props.get("reported_at") or now,
        "status": props.get("status") or "reported",
    }
    row = check_row(spec, values, geom, store)
    reported = row["reported_at"].iloc[0]
    if reported > now + FUTURE_TOLERANCE:
        raise UnprocessableError(
            "the report time is in the future",
            errors=[field_error("properties.reported_at", "in_future", f"{reported} > now")],
        )
    return _create(store, req, INCIDENTS, fid, row)


def create_closure(store: FeatureStore, settings: Settings, req: ApiRequest) -> ApiResponse:
    """POST a road closure (commander or higher): a line or polygon with a ``reason``.

    A closure covering more than ``Settings.closure_confirm_share`` of the district (its area,
    or the length of its roads) is refused with 409 ``confirm_required`` and the share, until
    it is sent again with ``"confirm": true`` beside ``properties`` (commander or higher): a
    slip of the mouse must not close the whole county.
    """
    rule = write_rule(CLOSURES, "POST")
    assert rule is not None and req.user is not None
    body = req.json()
    props, geom_obj = parse_feature(body)
    confirm = body.get("confirm", False)
    if not isinstance(confirm, bool):
        raise BadRequestError(
            "`confirm` must be true or false",
            errors=[field_error("confirm", "wrong_type", f"got {type(confirm).__name__}")],
        )
    _check_keys(props, rule, settings)
    geom = parse_geometry(
        geom_obj,
        allowed=("LineString", "Polygon", "MultiPolygon"),
        max_vertices=settings.max_vertices,
    )
    spec = closure_spec("LineString" if geom.geom_type == "LineString" else "Polygon")
    fid = _client_id(props, spec.id_field, "RC")
    values = {
        **props,
        spec.id_field: fid,
        "effect": props.get("effect") or "closed",
        "created_by": req.user.name,
        "created_at": pd.Timestamp.now(tz="UTC").tz_localize(None).floor("s"),
    }
    row = check_row(spec, values, geom, store)
    confirmed = confirm and req.user.can("commander")
    confirm_large_closure(store, settings, row.geometry.iloc[0], confirmed)
    return _create(store, req, CLOSURES, fid, row)


def confirm_large_closure(
    store: FeatureStore, settings: Settings, geom: shapely.Geometry, confirmed: bool
) -> None:
    """Refuse a closure covering more of the district than allowed, unless confirmed.

    Parameters
    ----------
    store
        The workspace (district, roads).
    settings
        Gives ``closure_confirm_share`` (1: never ask).
    geom
        The closure, lon/lat.
    confirmed
        The client sent ``"confirm": true`` and may (commander or higher).

    Raises
    ------
    ConflictError
        409 ``confirm_required`` with ``share``, ``threshold``, ``area_share`` (polygons) and
        ``road_share`` (when the workspace has roads).
    """
    limit = settings.closure_confirm_share
    if confirmed or limit >= 1:
        return
    shares = closure_share(store, geom)
    share = max(shares.values(), default=0.0)
    if share <= limit:
        return
    pct, lim = f"{share:.0%}", f"{limit:.0%}"
    raise ConflictError(
        f'该封路范围占辖区的 {pct}（超过 {lim}）；确认无误请在请求中加 "confirm": true 后重新提交'
        f" / this closure covers {pct} of the district (more than {lim}); if that is "
        'intended, send it again with "confirm": true',
        code="confirm_required",
        extra={"share": round(share, 6), "threshold": limit}
        | {k: round(v, 6) for k, v in shares.items()},
    )


def delete_closure(
    store: FeatureStore, settings: Settings, req: ApiRequest, fid: str
) -> ApiResponse:
    """DELETE (lift) a road closure (commander or higher); ``If-Match`` required (428)."""
    return delete_feature(store, req, CLOSURES, fid)


def delete_feature(store: FeatureStore, req: ApiRequest, layer: str, fid: str) -> ApiResponse:
    """DELETE feature ``fid`` of ``layer`` as ``req``'s user (role already checked).

    Raises
    ------
    PreconditionRequiredError
        428 when the request has no ``If-Match``.
    """
    assert req.user is not None
    if_match = require_if_match(req.header("If-Match"), layer, fid)
    change = store.apply(
        layer,
        fid,
        op="delete",
        build=lambda _before: None,
        user=req.user.name,
        role=req.user.role,
        if_match=if_match,
    )
    return ApiResponse(204, None, {"X-Event-Id": str(change.event.id)})


def patch_shelter(
    store: FeatureStore, settings: Settings, req: ApiRequest, fid: str
) -> ApiResponse:
    """PATCH a shelter's ``occupancy_persons`` / ``is_open`` (commander or higher).

    The body is a JSON merge patch of the properties, either ``{"occupancy_persons": 120}`` or
    ``{"properties": {...}}``. Occupancy must lie in 0..``capacity_persons``. ``If-Match`` is
    required (428 without it).
    """
    rule = write_rule(SHELTERS, "PATCH")
    assert rule is not None and req.user is not None
    if_match = require_if_match(req.header("If-Match"), SHELTERS, fid)
    body = req.json()
    if not isinstance(body, dict):
        raise BadRequestError(
            "the body must be a JSON object (a merge patch of the properties)",
            errors=[field_error("body", "not_an_object", f"got {type(body).__name__}")],
        )
    patch = body.get("properties", body)
    if not isinstance(patch, dict):
        raise BadRequestError(
            "`properties` must be a JSON object",
            errors=[field_error("properties", "not_an_object", "expected an object")],
        )
    if "properties" in body and set(body) - {"type", "id", "properties"}:
        raise UnprocessableError(
            "only properties can be patched",
            errors=[
                field_error(k, "not_editable", "may not be changed")
                for k in sorted(set(body) - {"type", "id", "properties"})
            ],
        )
    if not patch:
        raise UnprocessableError(
            "empty patch",
            errors=[field_error("properties", "empty_patch", f"send one of {list(rule.fields)}")],
        )
    _check_keys(patch, rule, settings)
    spec = store.spec(SHELTERS)

    def build(before: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame:
        assert before is not None
        values = {f.name: before[f.name].iloc[0] for f in spec.fields if f.name in before}
        values.update(patch)
        row = check_row(spec, values, before.geometry.iloc[0], store)
        occupancy, capacity = row["occupancy_persons"].iloc[0], row["capacity_persons"].iloc[0]
        if not pd.isna(occupancy) and not pd.isna(capacity) and occupancy > capacity:
            raise UnprocessableError(
                "occupancy exceeds the shelter's capacity",
                errors=[
                    field_error(
                        "properties.occupancy_persons",
                        "exceeds_capacity",
                        f"{occupancy} > capacity_persons {capacity}",
                    )
                ],
            )
        return row

    change = store.apply(
        SHELTERS,
        fid,
        op="update",
        build=build,
        user=req.user.name,
        role=req.user.role,
        if_match=if_match,
    )
    return feature_response(200, change, req.base_url, SHELTERS)


__all__ = [
    "FUTURE_TOLERANCE",
    "JURISDICTION_TOLERANCE_DEG",
    "check_row",
    "confirm_large_closure",
    "create_closure",
    "create_incident",
    "delete_closure",
    "delete_feature",
    "feature_response",
    "new_id",
    "patch_shelter",
]

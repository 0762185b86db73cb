"""The incident lifecycle: reported → verified → assigned → resolved → closed.

A reporter creates a report (``POST``, ``webmap.core.edits``). From then on a commander moves it
along :data:`TRANSITIONS` with ``PATCH /collections/incidents/items/{fid}`` and ``If-Match``:
verifies it (or closes it at once as a false report), assigns it to a unit — a town's code
from ``admin_units`` or a named team — marks it resolved and closes it. An admin may delete a
report. Every step is one store edit, so the audit log keeps who and when with the feature
before and after; nothing else is stored for the history.

``confirmed`` and ``handling`` are the status codes of the first incidents spec; reports
carrying them stay valid and move on as ``verified`` and ``assigned`` (:data:`LEGACY`).
Refusals are bilingual ("中文 / English") and name the field, the allowed next states or the
role needed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from webmap.core.edits import check_row, delete_feature, feature_response
from webmap.core.edits_common import refuse_unpatchable, require_if_match
from webmap.core.errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    UnprocessableError,
    field_error,
)
from webmap.core.features import check_params, lang_of
from webmap.core.geojson import features_of, jsonable
from webmap.core.gpkg import lonlat
from webmap.core.http import ApiRequest, ApiResponse
from webmap.core.layers import INCIDENTS
from webmap.core.store import FeatureStore
from webmap.core.users import ROLE_LABELS, Role, User
from webmap.settings import Settings

FLOW = ("reported", "verified", "assigned", "resolved", "closed")
"""The lifecycle's states in order."""
LEGACY = {"confirmed": "verified", "handling": "assigned"}
"""Status codes of incidents spec version 1, read as the state they stand for."""
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "reported": ("verified", "closed"),  # closed at once: a false or duplicate report
    "verified": ("assigned", "closed"),
    "assigned": ("assigned", "resolved"),  # assigned again: handed to another unit
    "resolved": ("closed", "assigned"),  # assigned again: reopened, not really resolved
    "closed": (),
}
"""Allowed next states of each state (local choice, after the 灾情处置 steps of the bureau)."""
TRANSITION_ROLE: Role = "commander"
"""Who verifies, assigns, resolves and closes."""
OPEN_STATES = ("reported", "verified", "assigned")
"""States still needing action (resolved and closed do not count as 未办结)."""
PATCHABLE = ("status", "assigned_to", "description", "people_affected")
"""Properties a PATCH may send."""
MAX_UNIT_CHARS = 64
_TOWN_CODE = re.compile(r"^\d{6,12}$")


def canonical(status: Any) -> str:
    """Return the lifecycle state of a stored status code (old codes mapped by LEGACY)."""
    s = str(status) if status is not None and not pd.isna(status) else "reported"
    return LEGACY.get(s, s)


def towns(store: FeatureStore) -> gpd.GeoDataFrame:
    """Towns (``admin_units`` of level ``town``) in lon/lat: ``adcode``, ``name``, geometry."""
    if "admin_units" not in store.layer_names():
        return gpd.GeoDataFrame({"adcode": [], "name": []}, geometry=[], crs="OGC:CRS84")
    units = store.frame("admin_units")
    sel = units["level"].astype(str).to_numpy() == "town"
    return units.loc[sel, ["adcode", "name", "geometry"]].reset_index(drop=True)


def town_of(store: FeatureStore, points: np.ndarray) -> tuple[list[str | None], list[str | None]]:
    """Return the town code and name of each lon/lat point (None outside every town)."""
    t = towns(store)
    codes: list[str | None] = [None] * len(points)
    names: list[str | None] = [None] * len(points)
    if not len(t) or not len(points):
        return codes, names
    ok = ~(shapely.is_missing(points) | shapely.is_empty(points))
    pts, rows = points[ok], np.flatnonzero(ok)
    src, hit = shapely.STRtree(t.geometry.to_numpy()).query(pts, predicate="intersects")
    for s, h in zip(src, hit, strict=True):  # a point on a shared border: the first town
        i = int(rows[s])
        if codes[i] is None:
            codes[i], names[i] = str(t["adcode"].iloc[h]), str(t["name"].iloc[h])
    return codes, names


def check_unit(store: FeatureStore, value: Any) -> str:
    """Check an ``assigned_to`` value: a town code of the workspace or a team's name.

    Raises
    ------
    UnprocessableError
        Empty, too long, not text, or digits that are no town code here.
    """
    field = "properties.assigned_to"
    if not isinstance(value, str) or not value.strip():
        raise UnprocessableError(
            "派单须指明承办单位 / an assignment names the unit",
            errors=[
                field_error(
                    field,
                    "missing_required",
                    "填写乡镇（街道）代码或队伍名称 / a town code or a team's name",
                )
            ],
        )
    unit = value.strip()
    if len(unit) > MAX_UNIT_CHARS:
        raise UnprocessableError(
            "承办单位名称过长 / the unit's name is too long",
            errors=[field_error(field, "too_long", f"{len(unit)} > {MAX_UNIT_CHARS}")],
        )
    if _TOWN_CODE.fullmatch(unit):
        t = towns(store)
        if unit not in set(t["adcode"].astype(str)):
            known = ", ".join(f"{c} {n}" for c, n in zip(t["adcode"], t["name"], strict=True))
            raise UnprocessableError(
                f"{unit} 不是本辖区的乡镇（街道）代码 / {unit} is not a town code here",
                errors=[field_error(field, "unknown_town", f"乡镇 / towns: {known}")],
            )
    return unit


def _patch_body(req: ApiRequest) -> dict[str, Any]:
    body = req.json()
    if not isinstance(body, dict):
        raise BadRequestError(
            "请求体须为JSON对象 / the body must be a JSON object",
            errors=[field_error("body", "not_an_object", f"got {type(body).__name__}")],
        )
    patch = body.get("properties", body)
    if not isinstance(patch, dict) or not patch:
        raise UnprocessableError(
            "修改内容为空 / empty patch",
            errors=[field_error("properties", "empty_patch", f"send some of {list(PATCHABLE)}")],
        )
    refuse_unpatchable(patch, PATCHABLE)
    return patch


def _check_transition(user: User, before: str, patch: Mapping[str, Any]) -> str | None:
    """Return the new state (None: unchanged); refuse a step not allowed or not the role's."""
    new = patch.get("status")
    if new is None:
        if patch.get("assigned_to") is not None:
            raise UnprocessableError(
                "派单须同时设置状态为“已派单” / assigning sets status 'assigned' too",
                errors=[field_error("properties.status", "missing_required", "send 'assigned'")],
            )
        return None
    if new not in FLOW:
        raise UnprocessableError(
            f"未知状态 {new!r} / unknown status {new!r}",
            errors=[field_error("properties.status", "not_allowed", f"one of {list(FLOW)}")],
        )
    if not user.can(TRANSITION_ROLE):
        raise ForbiddenError(
            f"{ROLE_LABELS[user.role][0]}无权更改灾情状态，须由{ROLE_LABELS[TRANSITION_ROLE][0]}"
            f"办理 / a {user.role} may not change an incident's status; a {TRANSITION_ROLE} does",
            code="role_forbidden",
        )
    allowed = TRANSITIONS.get(before, ())
    if new not in allowed:
        nxt = ", ".join(allowed) or "—"
        raise ConflictError(
            f"状态不能从 {before} 改为 {new}（可改为：{nxt}） / "
            f"status cannot go from {before} to {new} (allowed next: {nxt})",
            code="transition_not_allowed",
            extra={"status": before, "allowed": list(allowed)},
        )
    if new != "assigned" and patch.get("assigned_to") is not None:
        raise UnprocessableError(
            "只有派单时可设置承办单位 / the unit is set only when assigning",
            errors=[field_error("properties.assigned_to", "not_editable", "status 'assigned'")],
        )
    return str(new)


def _check_details(user: User, before: pd.Series, patch: Mapping[str, Any]) -> None:
    """Allow details edits: a commander any time; its reporter while it is still reported."""
    if not ({"description", "people_affected"} & set(patch)) or user.can(TRANSITION_ROLE):
        return
    own = str(before.get("reporter")) == user.name
    if not own or canonical(before.get("status")) != "reported":
        raise ForbiddenError(
            "上报人只能在核实前修改自己的报告 / a reporter may edit only their own report, "
            "before it is verified",
            code="role_forbidden",
        )


def patch_incident(
    store: FeatureStore, settings: Settings, req: ApiRequest, fid: str
) -> ApiResponse:
    """PATCH an incident: a lifecycle step (commander) or its details; ``If-Match`` required.

    The body is a merge patch of the properties (``{"status": "assigned", "assigned_to":
    "440703005"}`` or ``{"properties": {...}}``). See :data:`TRANSITIONS`.
    """
    assert req.user is not None
    user = req.user
    tag = require_if_match(req.header("If-Match"), INCIDENTS, fid)
    patch = _patch_body(req)
    for key in ("description", "assigned_to"):
        v = patch.get(key)
        if isinstance(v, str) and len(v) > settings.max_text_chars:
            raise UnprocessableError(
                "文字过长 / text too long",
                errors=[field_error(f"properties.{key}", "too_long", f"{len(v)} characters")],
            )
    unit = check_unit(store, patch["assigned_to"]) if "assigned_to" in patch else None
    spec = store.spec(INCIDENTS)

    def build(before: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame:
        assert before is not None
        row = before.iloc[0]
        state = canonical(row.get("status"))
        new = _check_transition(user, state, patch)
        _check_details(user, row, patch)
        if new == "assigned" and unit is None:
            check_unit(store, None)  # raises: an assignment names the unit
        values = {f.name: row[f.name] for f in spec.fields if f.name in before}
        values.update({k: v for k, v in patch.items() if k not in ("status", "assigned_to")})
        if new is not None:
            values["status"] = new
        if unit is not None:
            values["assigned_to"] = unit
        return check_row(spec, values, lonlat(before).geometry.iloc[0], store)

    change = store.apply(
        INCIDENTS, fid, op="update", build=build, user=user.name, role=user.role, if_match=tag
    )
    return feature_response(200, change, req.base_url, INCIDENTS)


def delete_incident(
    store: FeatureStore, settings: Settings, req: ApiRequest, fid: str
) -> ApiResponse:
    """DELETE an incident report (admin; ``If-Match`` required). The audit log keeps it."""
    return delete_feature(store, req, INCIDENTS, fid)


def incident_list(store: FeatureStore, req: ApiRequest, default_lang: str) -> ApiResponse:
    """Every incident with its town and labels, counts per town, and the lifecycle rules.

    For the map page's incident panel (filters by kind, status, town and time are applied in
    the page, so a filter change needs no request).
    """
    check_params(req, frozenset({"lang"}))
    lang = lang_of(req, default_lang)
    spec = store.spec(INCIDENTS)
    inc = store.frame(INCIDENTS)
    kind_f, status_f = spec.field("kind"), spec.field("status")
    t = towns(store)
    town_names = dict(zip(t["adcode"].astype(str), t["name"].astype(str), strict=True))
    codes, names = town_of(store, inc.geometry.to_numpy()) if len(inc) else ([], [])
    rows = []
    for feat, code, name in zip(features_of(inc, spec.id_field), codes, names, strict=True):
        p = feat["properties"]
        x, y = feat["geometry"]["coordinates"][:2] if feat["geometry"] else (None, None)
        unit = p.get("assigned_to")
        rows.append(
            {
                "id": feat["id"],
                "kind": p["kind"],
                "kind_label": kind_f.label(p["kind"], lang),
                "color": spec.color_of(p["kind"]),
                "status": p["status"],
                "state": canonical(p["status"]),
                "status_label": status_f.label(p["status"], lang),
                "description": p.get("description"),
                "people_affected": p.get("people_affected"),
                "reported_at": p.get("reported_at"),
                "reporter": p.get("reporter"),
                "assigned_to": unit,
                "assigned_label": town_names.get(str(unit), unit) if unit else None,
                "town": code,
                "town_name": name,
                "lon": x,
                "lat": y,
            }
        )
    rows.sort(key=lambda r: str(r["reported_at"] or ""), reverse=True)
    counts: dict[str, dict[str, Any]] = {}
    for r in rows:
        c = counts.setdefault(
            str(r["town"]), {"town": r["town"], "name": r["town_name"], "total": 0, "open": 0}
        )
        c["total"] += 1
        c["open"] += r["state"] in OPEN_STATES
    kinds = [
        {"code": v.code, "label": kind_f.label(v.code, lang), "color": v.color}
        for v in kind_f.values
    ]
    states = [{"code": c, "label": status_f.label(c, lang)} for c in FLOW]
    body = {
        "incidents": rows,
        "counts_by_town": sorted(counts.values(), key=lambda c: (-c["open"], -c["total"])),
        "towns": [{"code": c, "name": n} for c, n in town_names.items()],
        "kinds": kinds,
        "states": states,
        "transitions": {k: list(v) for k, v in TRANSITIONS.items()},
        "transition_role": TRANSITION_ROLE,
        "last_event_id": jsonable(store.last_event_id()),
    }
    return ApiResponse(body=body)


__all__ = [
    "FLOW",
    "LEGACY",
    "OPEN_STATES",
    "PATCHABLE",
    "TRANSITIONS",
    "TRANSITION_ROLE",
    "canonical",
    "check_unit",
    "delete_incident",
    "incident_list",
    "patch_incident",
    "town_of",
    "towns",
]

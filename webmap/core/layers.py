"""Which layers the web map serves and edits, and who may make which edit.

Workspace layers come from the catalog (``layers/*.toml``). The web map adds one layer of its
own, ``road_closures``: closures a commander marks on the map (line or polygon). Its titles and
symbology are those of the analysis output spec ``layers/results/road_closures.toml``, with two
more fields: who created it and when.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cache

from geo_mz.core import FieldSpec, LayerSpec, load_catalog, result_catalog
from webmap.core.users import Role

INCIDENTS = "incidents"
CLOSURES = "road_closures"
SHELTERS = "shelters"

CLOSURE_GEOMETRIES = ("LineString", "Polygon")
"""A closure is drawn as a road stretch (line) or an area (polygon)."""


@dataclass(frozen=True)
class WriteRule:
    """One allowed write: the method, the least role, and the properties a client may send."""

    layer: str
    method: str
    role: Role
    fields: tuple[str, ...] = ()
    required: tuple[str, ...] = ()


WRITE_RULES: tuple[WriteRule, ...] = (
    WriteRule(
        INCIDENTS,
        "POST",
        "reporter",
        ("incident_id", "kind", "description", "people_affected", "status", "reported_at"),
        ("kind",),
    ),
    # lifecycle steps need a commander, a reporter may correct their own report (incidents.py)
    WriteRule(
        INCIDENTS, "PATCH", "reporter", ("status", "assigned_to", "description", "people_affected")
    ),
    WriteRule(INCIDENTS, "DELETE", "admin"),
    WriteRule(CLOSURES, "POST", "commander", ("closure_id", "reason", "effect"), ("reason",)),
    WriteRule(CLOSURES, "PATCH", "commander", ("reason", "effect")),  # and the geometry
    WriteRule(CLOSURES, "DELETE", "commander"),
    WriteRule(SHELTERS, "PATCH", "commander", ("occupancy_persons", "is_open")),
)
"""Every write the API accepts; anything else is 405."""


def write_rule(layer: str, method: str) -> WriteRule | None:
    """Return the rule for ``method`` on ``layer``, or None when that write is not offered."""
    for rule in WRITE_RULES:
        if rule.layer == layer and rule.method == method:
            return rule
    return None


def allowed_methods(layer: str) -> list[str]:
    """HTTP methods a collection's items accept (for ``Allow`` headers)."""
    return [r.method for r in WRITE_RULES if r.layer == layer]


@cache
def closure_spec(geometry: str = "LineString") -> LayerSpec:
    """Spec of the web map's road-closure layer, for a line or polygon closure.

    Parameters
    ----------
    geometry
        ``"LineString"`` (the stored spec's own) or ``"Polygon"``: a closure is either, so it is
        checked against the spec with that geometry type.
    """
    if geometry not in CLOSURE_GEOMETRIES:
        raise ValueError(f"`geometry` was {geometry!r} but must be one of {CLOSURE_GEOMETRIES}")
    base = result_catalog()[CLOSURES]
    extra = (
        FieldSpec("created_by", "string", "标记人", "Marked by", required=True),
        FieldSpec("created_at", "datetime", "标记时间", "Marked at", required=True),
    )
    keep = tuple(f for f in base.fields if f.name not in ("created_by", "created_at"))
    return dataclasses.replace(base, geometry=geometry, fields=keep + extra)


def layer_spec(name: str) -> LayerSpec | None:
    """Spec of a served layer (workspace catalog, or the web map's closures), or None."""
    if name == CLOSURES:
        return closure_spec()
    return load_catalog().get(name)


__all__ = [
    "CLOSURES",
    "CLOSURE_GEOMETRIES",
    "INCIDENTS",
    "SHELTERS",
    "WRITE_RULES",
    "WriteRule",
    "allowed_methods",
    "closure_spec",
    "layer_spec",
    "write_rule",
]

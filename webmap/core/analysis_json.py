"""Analysis results as JSON for the map: features, KPIs and the relief statuses' legend.

Split from :mod:`webmap.core.analysis` (which computes and caches the results): these turn one
result into what ``/analysis/relief`` and ``/analysis/coverage`` send, and nothing else.
"""

from __future__ import annotations

import re
from typing import Any

import geopandas as gpd

from webmap.core.geojson import features_of, jsonable
from webmap.core.gpkg import lonlat


def frame_json(g: gpd.GeoDataFrame, kind: str, id_field: str) -> list[dict[str, Any]]:
    """Return a result layer's features in lon/lat, each marked with its ``feature_type``.

    Parameters
    ----------
    g
        A result layer (e.g. the relief audit's worst status per point).
    kind
        Its ``feature_type`` on the map (``point``, ``route``).
    id_field
        The column that gives each feature its id.
    """
    g = lonlat(g) if g.crs is not None else g  # lon/lat: relabelled, no per-thread transformer
    feats = features_of(g, id_field)
    for f in feats:
        f["properties"]["feature_type"] = kind
    return feats


def status_styles() -> list[dict[str, Any]]:
    """Return the colours and labels of the ``relief_audit`` status values (its result spec)."""
    from geo_mz.core import result_catalog

    spec = result_catalog()["relief_audit"]
    field = next(f for f in spec.fields if f.name == "status")
    return [{"code": v.code, "zh": v.zh, "en": v.en, "color": v.color} for v in field.values]


_HAN = re.compile("[\u3400-\u9fff]")
UNITS_EN = {
    "人": "people",
    "处": "sites",
    "张": "beds",
    "个": "",
    "m²/人": "m²/person",
    "分钟": "min",
}
"""English for the Chinese units of ``geo_mz`` KPIs (``Kpi.unit`` is stored in Chinese)."""


def kpi_unit(unit: str, lang: str) -> str:
    """Return a KPI's unit in the page's language (``zh``: as stored)."""
    return UNITS_EN.get(unit, unit) if lang == "en" else unit


def kpi_target(target: str, unit: str, lang: str | None = None) -> str:
    """Return a KPI's target as shown in the page's language.

    The half in ``lang`` of a "中文 English" target ("全部 all"), and ``%`` after a bare number
    when the value is a percentage ("≥ 100.0" → "≥ 100%").
    """
    head, _, tail = target.partition(" ")
    if lang and tail.isascii() and _HAN.search(head) and not _HAN.search(tail):
        return head if lang == "zh" else tail
    if unit == "%" and "%" not in target and tail:
        try:
            return f"{head} {float(tail):g}%"
        except ValueError:  # words, not a number: shown as written
            return target
    return target


def kpi_json(k: Any) -> dict[str, Any]:
    """Return one coverage KPI (a dataclass or a mapping) with JSON values."""
    d = k.__dict__ if hasattr(k, "__dict__") else dict(k)
    out = {str(a): jsonable(v) for a, v in d.items()}
    if isinstance(out.get("target"), str):
        out["target"] = kpi_target(out["target"], str(out.get("unit") or ""))
    return out


__all__ = ["frame_json", "kpi_json", "kpi_target", "kpi_unit", "status_styles"]

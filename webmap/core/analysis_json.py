"""Analysis results as JSON for the map: features, KPIs and the relief statuses' legend.

Split from :mod:`webmap.core.analysis` (which computes and caches the results): these turn one
result into what ``/analysis/relief`` and ``/analysis/coverage`` send, and nothing else.
"""

from __future__ import annotations

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


def kpi_json(k: Any) -> dict[str, Any]:
    """Return one coverage KPI (a dataclass or a mapping) with JSON values."""
    d = k.__dict__ if hasattr(k, "__dict__") else dict(k)
    return {str(a): jsonable(v) for a, v in d.items()}


__all__ = ["frame_json", "kpi_json", "status_styles"]

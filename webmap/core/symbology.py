"""Feature styles, legends and popup texts for the web map, taken from ``geo_mz.outputs``.

The notebook/report maps (folium) and the web map must look the same, so the colour, size and
legend logic is not repeated here: :func:`geo_mz.outputs.map_styles.feature_styles` styles a
layer for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import geopandas as gpd

from geo_mz.core import LayerSpec, format_values
from geo_mz.outputs.map_styles import feature_styles


@dataclass(frozen=True)
class Symbology:
    """How one layer is drawn: a style per feature, its legend, and popup field titles."""

    styles: list[dict[str, Any]]
    legend: dict[str, Any]
    fields: list[tuple[str, str]]
    texts: dict[str, list[str]]


def _kind(geom_type: str | None) -> str:
    if geom_type is None:
        return "Point"
    return "Polygon" if "Polygon" in geom_type else "LineString" if "Line" in geom_type else "Point"


def symbolize(gdf: gpd.GeoDataFrame, spec: LayerSpec, lang: str) -> Symbology:
    """Style every feature of a layer as ``geo_mz.outputs.maps`` does, plus legend and popup texts.

    Parameters
    ----------
    gdf
        The whole layer (styles of graduated layers depend on all its values).
    spec
        Its spec (symbology, fields, labels).
    lang
        ``"zh"`` or ``"en"``.

    Returns
    -------
    Symbology
        ``styles[i]`` is a Leaflet path style of row ``i`` (``radius`` for points);
        ``texts[field][i]`` its popup text (plain text, not HTML).
    """
    title = spec.title(lang)
    kinds = [_kind(t) for t in gdf.geom_type.tolist()] if len(gdf) else []
    styles, swatches, fields = feature_styles(gdf, spec, lang, kinds)  # type: ignore[arg-type]
    texts = {
        key: format_values(gdf[col], f, lang)  # type: ignore[arg-type]
        for key, _, f, col in fields
    }
    legend = {
        "title": title,
        "geometry": spec.geometry,
        "swatches": [[c, label] for c, label in swatches],
    }
    return Symbology(styles, legend, [(key, t) for key, t, _, _ in fields], texts)


__all__ = ["Symbology", "symbolize"]

"""Feature styles of a layer from its spec: colours, classes, sizes and popup fields.

Shared by the folium maps (:mod:`geo_mz.outputs.maps`) and the web map
(``webmap.core.symbology``), so both draw a layer the same way: ``graduated`` layers by the
spec's fixed breaks or by quintiles, ``categorical`` ones by the spec's value colours, point
radii by ``size_field``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import geopandas
import numpy as np
import pandas as pd

from geo_mz.core.catalog import FieldSpec, LayerSpec
from geo_mz.core.display import format_number, is_missing, unit_label

Lang = Literal["zh", "en"]

DEFAULT_COLOR = "#3388ff"
"""Leaflet's default path colour, used when a spec gives none (local choice)."""
NO_DATA_COLOR = "#bdbdbd"
"""Colour of features whose graduated value is missing (local choice)."""
GRADUATED_QUANTILES = (0.2, 0.4, 0.6, 0.8)
"""Class breaks of a ``graduated`` layer: quintiles of the field (local choice)."""

_TEXT = {
    "zh": {"no_data": "无数据", "empty": "（空）"},
    "en": {"no_data": "No data", "empty": "(empty)"},
}


def ramp(base: str, n: int) -> list[str]:
    """Return ``n`` colours from a pale tint of ``base`` to ``base`` itself.

    Parameters
    ----------
    base
        ``#rrggbb``: the darkest class's colour.
    n
        How many classes.

    Returns
    -------
    list of str
        ``#rrggbb`` colours, palest first.
    """
    rgb = np.array([int(base.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4)], dtype=float)
    pale = rgb + (255.0 - rgb) * 0.85
    if n == 1:
        return [base]
    out = []
    for t in np.linspace(0.0, 1.0, n):
        c = np.round(pale + (rgb - pale) * t).astype(int)
        out.append("#{:02x}{:02x}{:02x}".format(*c))
    return out


def graduated(
    values: pd.Series,
    base: str,
    unit: str,
    fixed_breaks: Sequence[float] | None = None,
    fixed_colors: Sequence[str] | None = None,
    scale: float = 1.0,
) -> tuple[list[str], list[tuple[str, str]]]:
    """Return a colour per feature by class (the spec's breaks, else quintiles), and swatches.

    Parameters
    ----------
    values
        The field's values (missing or infinite ones get :data:`NO_DATA_COLOR`).
    base
        Colour of the highest class (the ramp's end).
    unit
        Unit text of the legend labels.
    fixed_breaks, fixed_colors
        The spec's class breaks and colours (one more colour than breaks); quintiles of the
        values and :func:`ramp` when None.
    scale
        Factor of the legend's numbers (100 for a share shown as %).

    Returns
    -------
    tuple
        Colour per value, and the legend swatches ``(colour, label)`` of the classes present.
    """
    nums = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan).copy()
    nums[np.isinf(nums)] = np.nan
    valid = ~np.isnan(nums)
    if not valid.any():
        return [NO_DATA_COLOR] * len(nums), []
    if fixed_breaks:
        breaks = np.asarray(fixed_breaks, dtype=float)
        colours = list(fixed_colors or ramp(base, len(breaks) + 1))
        if len(colours) != len(breaks) + 1:
            raise ValueError(f"symbology has {len(breaks)} breaks but {len(colours)} colors")
        lo_hi = [
            min(float(nums[valid].min()), breaks[0]),
            *map(float, breaks),
            max(float(nums[valid].max()), breaks[-1]),
        ]
    else:
        breaks = np.unique(np.quantile(nums[valid], GRADUATED_QUANTILES))
        colours = ramp(base, len(breaks) + 1)
        lo_hi = [float(nums[valid].min()), *map(float, breaks), float(nums[valid].max())]
    classes = np.digitize(nums, breaks, right=True)
    swatches = []
    suffix = f" {unit}" if unit else ""
    for k, colour in enumerate(colours):
        if not np.any(valid & (classes == k)):
            continue
        lo, hi = format_number(lo_hi[k] * scale), format_number(lo_hi[k + 1] * scale)
        swatches.append((colour, f"{lo}{suffix}" if lo == hi else f"{lo} – {hi}{suffix}"))
    per_feature = [
        colours[c] if ok else NO_DATA_COLOR for c, ok in zip(classes, valid, strict=True)
    ]
    return per_feature, swatches


def feature_colours(
    gdf: geopandas.GeoDataFrame, spec: LayerSpec | None, title: str, lang: Lang
) -> tuple[list[str], list[tuple[str, str]]]:
    """Return the colour of every feature and the legend swatches, from the spec's symbology.

    Parameters
    ----------
    gdf
        The layer (graduated classes depend on all its values).
    spec
        Its spec (``single``, ``graduated`` or ``categorical`` style); None: one colour.
    title
        The layer's title (the single style's swatch label).
    lang
        ``"zh"`` or ``"en"``.

    Returns
    -------
    tuple
        Colour per row, and swatches ``(colour, label)``.
    """
    sym = spec.symbology if spec is not None else {}
    style = sym.get("style", "single")
    fname = sym.get("field")
    base = str(sym.get("color", DEFAULT_COLOR))
    if spec is not None and style == "graduated" and fname in gdf.columns:
        f = spec.field(fname)
        share = f.unit == "share"  # stored 0-1, shown as percentages
        colours, swatches = graduated(
            gdf[fname],
            base,
            "%" if share else unit_label(f.unit, lang),
            sym.get("breaks"),
            sym.get("colors"),
            scale=100.0 if share else 1.0,
        )
        if any(c == NO_DATA_COLOR for c in colours):
            swatches.append((NO_DATA_COLOR, _TEXT[lang]["no_data"]))
        field_title = f.title_zh if lang == "zh" else f.title_en
        swatches = [(c, f"{field_title}: {label}") for c, label in swatches]
        return colours, swatches
    if spec is not None and style == "categorical" and fname in gdf.columns:
        f = spec.field(fname)
        raw = gdf[fname].tolist()
        colours = [spec.color_of(None if is_missing(v) else v) for v in raw]
        present = {None if is_missing(v) else v for v in raw}
        swatches = []
        for v in f.values:  # spec order first
            if v.code in present:
                swatches.append((spec.color_of(v.code), v.zh if lang == "zh" else v.en))
                present.discard(v.code)
        for v in sorted(present, key=lambda x: (x is None, str(x))):  # codes outside the spec
            label = _TEXT[lang]["empty"] if v is None else str(v)
            swatches.append((spec.color_of(v), label))
        return colours, swatches
    return [base] * len(gdf), [(base, title)]


def path_style(spec: LayerSpec | None, geometry: str, colour: str) -> dict[str, Any]:
    """Return the Leaflet path style of one feature.

    Parameters
    ----------
    spec
        The layer's spec (its ``weight``, ``fill_color``, ``fill_opacity``, ``radius``).
    geometry
        ``"Point"``, ``"LineString"`` or ``"Polygon"``.
    colour
        The feature's colour (:func:`feature_colours`).

    Returns
    -------
    dict
        Leaflet path options (``radius`` for points).
    """
    sym = spec.symbology if spec is not None else {}
    weight = sym.get("weight", 1 if geometry == "Point" else 2)
    if geometry == "LineString":
        return {"color": colour, "weight": weight, "opacity": 0.9}
    style: dict[str, Any] = {
        "color": colour,
        "weight": weight,
        "opacity": 1.0 if weight else 0.0,
        "fill": True,
        "fillColor": str(sym["fill_color"]) if "fill_color" in sym else colour,
        "fillOpacity": float(sym.get("fill_opacity", 0.8 if geometry == "Point" else 0.2)),
    }
    if geometry == "Point":
        style["radius"] = float(sym.get("radius", 5))
    return style


def size_by_field(styles: list[dict[str, Any]], gdf: Any, spec: LayerSpec) -> None:
    """Scale point radii by ``size_field`` (area ∝ value) from ``radius`` up to ``max_radius``.

    Parameters
    ----------
    styles
        :func:`path_style` per row, changed in place.
    gdf
        The layer.
    spec
        Its spec; nothing changes without a ``size_field`` present in ``gdf``.
    """
    field = spec.symbology.get("size_field")
    if not field or field not in gdf.columns or not len(styles):
        return
    v = pd.to_numeric(gdf[field], errors="coerce").to_numpy(dtype=float)
    top = float(np.nanmax(v, initial=0.0)) or 1.0
    r0 = float(spec.symbology.get("radius", 5))
    r1 = float(spec.symbology.get("max_radius", 3 * r0))
    share = np.sqrt(np.clip(np.nan_to_num(v, nan=0.0), 0.0, None) / top)
    known = v[~np.isnan(v)]
    if len(known) and known.min() == known.max():
        # One value for all (a list whose capacity was filled by a default): size tells
        # nothing, and every symbol at the largest radius hid the district on a phone.
        share = np.zeros(len(v))
    for style, x in zip(styles, share, strict=True):
        style["radius"] = r0 + (r1 - r0) * float(x)


def feature_styles(
    gdf: geopandas.GeoDataFrame,
    spec: LayerSpec,
    lang: Lang,
    kinds: Sequence[str] | None = None,
) -> tuple[list[dict[str, Any]], list[tuple[str, str]], list[tuple[str, str, Any, Any]]]:
    """Style a layer's features from its spec, as the folium maps do (shared with the web map).

    Parameters
    ----------
    gdf
        The whole layer (graduated classes depend on all its values).
    spec
        Its layer spec (symbology, fields, labels).
    lang
        ``"zh"`` or ``"en"`` for legend labels and popup titles.
    kinds
        Geometry kind per row (``"Point"``, ``"LineString"``, ``"Polygon"``); the spec's
        geometry for every row when None.

    Returns
    -------
    tuple
        Leaflet path styles per row (``radius`` for points, sized by ``size_field``), legend
        swatches ``(colour, label)``, and popup fields ``(key, title, field spec, column)``.
    """
    colours, swatches = feature_colours(gdf, spec, spec.title(lang), lang)
    kinds = list(kinds) if kinds is not None else [spec.geometry] * len(colours)
    styles = [path_style(spec, k, c) for k, c in zip(kinds, colours, strict=True)]
    if spec.geometry == "Point":
        size_by_field(styles, gdf, spec)
    return styles, swatches, popup_fields(gdf, spec, lang)


def popup_fields(
    gdf: geopandas.GeoDataFrame, spec: LayerSpec | None, lang: Lang
) -> list[tuple[str, str, FieldSpec | None, Any]]:
    """Return (property key, title in ``lang``, field spec, column) of every popup attribute.

    Parameters
    ----------
    gdf
        The layer.
    spec
        Its spec: its fields present in the data, in spec order; None: every column as is.
    lang
        ``"zh"`` or ``"en"``.

    Returns
    -------
    list of tuple
        One ``(key, title, field spec or None, column)`` per attribute shown.
    """
    geom_col = gdf.geometry.name
    if spec is None:
        return [(str(c), str(c), None, c) for c in gdf.columns if c != geom_col]
    return [
        (f.name, f.title_zh if lang == "zh" else f.title_en, f, f.name)
        for f in spec.fields
        if f.name in gdf.columns
    ]


__all__ = [
    "DEFAULT_COLOR",
    "GRADUATED_QUANTILES",
    "NO_DATA_COLOR",
    "feature_colours",
    "feature_styles",
    "graduated",
    "path_style",
    "popup_fields",
    "ramp",
    "size_by_field",
]

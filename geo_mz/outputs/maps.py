"""Notebook and report maps: workspace layers drawn with folium, styled from the layer catalog.

Every layer becomes one folium ``FeatureGroup`` holding a single ``GeoJson`` FeatureCollection, so
maps with tens of thousands of features stay usable. Colours, sizes and draw order come from the
layer's ``[symbology]`` in ``layers/*.toml``; popups show field titles and enumerated values as
labels in the chosen language (Chinese first), with units.

Notes
-----
By default the map has **no online base map**: command centres often work offline, so the
workspace's own boundaries and roads are the base map. Pass ``tiles`` (e.g. a Tianditu XYZ URL)
to add one.

Maps work **offline**: folium normally loads Leaflet, jQuery, Bootstrap and Font Awesome from
public CDNs; these maps need only Leaflet, which :func:`save_map` inlines from the PyPI package
``xstatic-leaflet`` (with its control images as data URIs), so the saved HTML is one
self-contained file that opens without a network.
"""

from __future__ import annotations

import base64
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import folium
import geopandas
import numpy as np
import pandas as pd
import shapely
import xstatic.pkg.leaflet as xleaflet

from geo_mz.core.catalog import FieldSpec, LayerSpec, load_catalog
from geo_mz.core.display import format_values
from geo_mz.core.errors import CrsError
from geo_mz.outputs import _cartography as carto
from geo_mz.outputs._cartography import html_text, html_texts
from geo_mz.outputs.map_render import (
    TableStyledGeoJson,
    rendered_text_kept,
    simplified_by_part,
)
from geo_mz.outputs.map_styles import (
    DEFAULT_COLOR,
    GRADUATED_QUANTILES,
    feature_colours,
    graduated,
    path_style,
    popup_fields,
    ramp,
    size_by_field,
)

__all__ = ["html_text", "layers_map", "save_map"]

Lang = Literal["zh", "en"]

COORD_DECIMALS = 6
"""Decimals of degrees kept in the embedded GeoJSON (1e-6° ≈ 0.1 m; keeps the HTML small)."""
SIMPLIFIED_DECIMALS = 5
"""Decimals kept for lines and polygons simplified by ``simplify_m`` (1e-5° ≈ 1 m)."""
DEFAULT_Z = 50
"""Draw order of a layer without a spec (catalog z values run from 5 to 90)."""
SIMPLIFY_M = 5.0
"""Simplification of the analyses' offline maps, in metres: under 2 px up to zoom 15, and it
keeps the demo's overview map under 3 MB (local choice)."""


_TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "yes": "是",
        "no": "否",
        "empty": "（空）",
        "no_data": "无数据",
        "legend": "图例 Legend",
        "base_map": "底图",
        "count": "{title} ({n})",
        "thinned": "{title} (显示 {shown}/{total})",
        "shown_note": "显示 {shown}/{total} 个要素",
        "thinned_note": "（超过 {max} 个，均匀抽稀）",
        "no_geometry_note": "（{n} 个无几何）",
        "labels": "地名标注",
    },
    "en": {
        "yes": "Yes",
        "no": "No",
        "empty": "(empty)",
        "no_data": "No data",
        "legend": "Legend 图例",
        "base_map": "Base map",
        "count": "{title} ({n})",
        "thinned": "{title} (showing {shown} of {total})",
        "shown_note": "showing {shown} of {total} features",
        "thinned_note": " (over {max}: evenly thinned)",
        "no_geometry_note": " ({n} without geometry)",
        "labels": "Place labels",
    },
}


@dataclass
class _LegendEntry:
    """What the legend says about one layer."""

    title: str
    geometry: str
    swatches: list[tuple[str, str]] = field(default_factory=list)  # (colour, label)
    note: str = ""
    group: str = ""  # JS name of the layer's FeatureGroup: the block shows while it is on


def _check_lang(lang: str) -> None:
    if lang not in ("zh", "en"):
        raise ValueError(f"`lang` was {lang!r} but is expected to be 'zh' or 'en'")


def _geometry_kind(spec: LayerSpec | None, gdf: geopandas.GeoDataFrame) -> str:
    if spec is not None:
        return spec.geometry
    types = gdf.geometry.geom_type.dropna()
    first = str(types.iloc[0]) if len(types) else "Point"
    return first.removeprefix("Multi") if first != "GeometryCollection" else "Polygon"


def _prepare(name: str, gdf: geopandas.GeoDataFrame) -> tuple[geopandas.GeoDataFrame, int] | None:
    """Check type and CRS, drop features without geometry, convert to EPSG:4326."""
    if not isinstance(gdf, geopandas.GeoDataFrame):
        raise TypeError(
            f"layer '{name}' was a {type(gdf).__name__} but is expected to be a GeoDataFrame"
        )
    total = len(gdf)
    if total == 0:
        return None
    if gdf.crs is None:
        raise CrsError(
            f"layer '{name}' has no CRS; set the one its coordinates are in first, e.g. "
            f"gdf.set_crs('EPSG:4490') (CGCS2000), then map it"
        )
    geoms = gdf.geometry
    keep = ~(geoms.isna() | geoms.is_empty)
    gdf = gdf.loc[keep.to_numpy()]
    if len(gdf) == 0:
        return None
    if gdf.crs.to_epsg() != 4326:
        gdf = gdf.to_crs("EPSG:4326")
    return gdf, total


def _thin(n: int, max_features: int) -> np.ndarray:
    """Positions of at most ``max_features`` features spread evenly over ``n`` (deterministic)."""
    if n <= max_features:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_features).round().astype(np.int64))


def _feature_collection(
    gdf: geopandas.GeoDataFrame,
    fields: Sequence[tuple[str, str, FieldSpec | None, Any]],
    lang: Lang,
    decimals: int = COORD_DECIMALS,
) -> dict[str, Any]:
    """One FeatureCollection; properties are display strings, HTML-escaped.

    Folium's popups insert property values with ``innerHTML``, so every value is escaped here
    (:func:`html_text`): a field report containing markup, or template marks, must show as text.
    """
    geoms = shapely.transform(gdf.geometry.to_numpy(), lambda xy: np.round(xy, decimals))
    columns = {key: html_texts(format_values(gdf[column], f, lang)) for key, _, f, column in fields}
    features = []
    for i, g in enumerate(carto.geojson_geometries(geoms)):
        props = {name: values[i] for name, values in columns.items()}
        features.append({"type": "Feature", "id": i, "properties": props, "geometry": g})
    return {"type": "FeatureCollection", "features": features}


def _legend_html(entries: Sequence[_LegendEntry], lang: Lang) -> str:
    """Build the fixed-position legend box: one block per layer, a swatch per category."""
    esc = html_text
    blocks = []
    for e in entries:
        rows = []
        for colour, label in e.swatches:
            if e.geometry == "Point":
                shape = "border-radius:50%;width:10px;height:10px;"
            elif e.geometry == "LineString":
                shape = "width:16px;height:3px;margin:6px 0;"
            else:
                shape = "width:14px;height:10px;opacity:.8;"
            rows.append(
                '<div class="gm-row"><span class="gm-sw" style="background:'
                f'{esc(colour)};{shape}"></span>{esc(label)}</div>'
            )
        note = f'<div class="gm-note">{esc(e.note)}</div>' if e.note else ""
        data = f' data-gm-group="{esc(e.group)}"' if e.group else ""
        blocks.append(
            f'<div class="gm-layer"{data}><b>{esc(e.title)}</b>{note}{"".join(rows)}</div>'
        )
    return (
        "<style>"
        ".gm-legend{position:fixed;bottom:56px;left:10px;z-index:1000;background:#fff;"
        "padding:6px 10px;border:1px solid #999;border-radius:4px;font:12px/1.4 sans-serif;"
        "max-height:calc(100vh - 160px);max-width:280px;overflow:auto;"
        "box-shadow:0 1px 4px rgba(0,0,0,.3)}"
        ".gm-legend summary{font-weight:bold;cursor:pointer}"
        ".gm-layer{margin-top:4px}.gm-note{color:#a33;font-size:11px}"
        ".gm-row{display:flex;align-items:center;gap:6px;margin-left:4px}"
        ".gm-sw{display:inline-block;flex:none;border:1px solid #555}"
        "</style>"
        f'<div class="gm-legend" lang="{"zh-CN" if lang == "zh" else "en"}">'
        f"<details open><summary>{esc(_TEXT[lang]['legend'])}</summary>"
        f"{''.join(blocks)}</details></div>"
    )


def _add_layer(
    m: folium.Map,
    gdf: geopandas.GeoDataFrame,
    spec: LayerSpec | None,
    geometry: str,
    colours: Sequence[str],
    group_name: str,
    pane: str,
    z: int,
    lang: Lang,
    show: bool = True,
    decimals: int = COORD_DECIMALS,
) -> folium.FeatureGroup:
    """Add one layer as a FeatureGroup holding a single styled GeoJson, in its own pane."""
    _pane(m, pane, z)
    group = folium.FeatureGroup(name=group_name, show=show).add_to(m)
    fields = popup_fields(gdf, spec, lang)
    data = _feature_collection(gdf, fields, lang, decimals)
    styles = [path_style(spec, geometry, c) for c in colours]
    if geometry == "Point" and spec is not None:
        size_by_field(styles, gdf, spec)
    popup = (
        folium.GeoJsonPopup(
            fields=[f[0] for f in fields],
            aliases=[html_text(f[1]) for f in fields],
            max_width=360,
        )
        if fields
        else None
    )
    label_field = spec.symbology.get("label_field") if spec is not None else None
    tooltip = (
        folium.GeoJsonTooltip(fields=[label_field], labels=False)
        if label_field is not None and label_field in gdf.columns
        else None
    )
    marker = None
    if geometry == "Point":
        marker = folium.CircleMarker(radius=float(styles[0].get("radius", 5)))
        marker.options["pane"] = pane  # folium drops unknown path options; Leaflet reads it
    TableStyledGeoJson(
        data,
        styles,
        name=group_name,
        control=False,
        marker=marker,
        popup=popup,
        tooltip=tooltip,
        pane=pane,
    ).add_to(group)
    return group


def _pane(m: folium.Map, pane: str, z: int) -> None:
    folium.map.CustomPane(pane, z_index=400 + min(max(z, 0), 150), pointer_events=True).add_to(m)


def _add_raster(
    m: folium.Map,
    gdf: geopandas.GeoDataFrame,
    spec: LayerSpec | None,
    title: str,
    pane: str,
    z: int,
    lang: Lang,
    show: bool,
) -> tuple[folium.FeatureGroup, list[tuple[str, str]]]:
    """Draw a point layer as a density raster (image overlay); return its group and swatches.

    The value per cell is the mean of the symbology field per point, as a density per km² when
    the points carry their ``cell_size_m`` (a population grid), classed by quintiles on the
    spec's colour ramp.
    """
    sym = spec.symbology if spec is not None else {}
    fname = sym.get("field")
    if fname not in gdf.columns:
        raise ValueError(
            f"图层“{title}”无法绘制为密度栅格：缺少符号化字段 {fname!r}；请检查图层规格 / "
            f"layer '{title}' cannot be drawn as a density raster: its symbology field "
            f"{fname!r} is missing; check the layer spec or leave it out of `rasters`"
        )
    values = carto.numeric(gdf[fname])
    per_km2 = "cell_size_m" in gdf.columns
    if per_km2:
        values = values / carto.numeric(gdf["cell_size_m"]) ** 2 * 1e6
    grid, bounds = carto.density_grid(gdf, values)
    grid[grid <= 0] = np.nan  # cells without people stay clear, as on a dot-density map
    cells = grid[np.isfinite(grid)]
    breaks = np.unique(np.quantile(cells, GRADUATED_QUANTILES)) if len(cells) else np.array([])
    colours = ramp(str(sym.get("color", DEFAULT_COLOR)), len(breaks) + 1)
    _, swatches = graduated(pd.Series(cells), colours[-1], "", list(breaks), colours)
    f = spec.field(fname) if spec is not None else None
    field_title = (f.title_zh if lang == "zh" else f.title_en) if f is not None else str(fname)
    unit = " /km²" if per_km2 else ""
    swatches = [(c, f"{field_title}: {label}{unit}") for c, label in swatches]
    _pane(m, pane, z)
    group = folium.FeatureGroup(name=title, show=show).add_to(m)
    classes = carto.raster_classes(grid, breaks)
    carto.raster_overlay(grid, bounds, classes, colours, title, pane).add_to(group)
    return group, swatches


def layers_map(
    layers: Mapping[str, geopandas.GeoDataFrame],
    *,
    catalog: Mapping[str, LayerSpec] | None = None,
    lang: Lang = "zh",
    tiles: str | None = None,
    tiles_attribution: str | None = None,
    max_features: int = 20000,
    show: Collection[str] | None = None,
    z: Mapping[str, int] | None = None,
    rasters: Collection[str] = (),
    labels: bool = True,
    simplify_m: float = 0.0,
    simplify_by_part: bool = False,
) -> folium.Map:
    """Draw workspace layers on one folium map, styled by the layer catalog.

    Parameters
    ----------
    layers
        Layer name (a catalog name such as ``"elder_care"``) to its features, in any CRS.
        Empty layers are left out. A name the catalog does not know is drawn in one colour,
        with its columns as they are.
    catalog
        Layer specs by name; the shipped catalog when None.
    lang
        Language of layer titles, popups and legend: ``"zh"`` (default) or ``"en"``.
    tiles
        An XYZ tile URL (e.g. Tianditu) or a folium tile name for a base map. None (default):
        no online base map, so the map works offline.
    tiles_attribution
        Attribution of ``tiles``; required for a tile URL.
    max_features
        Most features drawn per layer. A larger layer is thinned to evenly spaced features and
        its name says so (``"显示 N/M"``).
    show
        Names of the layers switched on when the map opens (the map's subject and its
        boundaries); the others are listed in the layer control, off. None (default): all on.
    z
        Draw order per layer name, overriding the catalog's ``z`` for this map (e.g. rings
        above the gaps they explain).
    rasters
        Names of point layers drawn as a density raster (an image of the mean of their
        symbology field per ~250 m cell, per km² for a population grid) instead of one marker
        per point.
    labels
        Label towns (always) and the jurisdiction's villages (from zoom 13) when an
        ``admin_units`` layer is drawn; the labels are a layer of their own in the control.
    simplify_m
        Simplify lines and polygons to about this many metres (0: as they are); a few metres
        are invisible at district zoom and make the file much smaller.
    simplify_by_part
        Simplify each polygon of a multipolygon on its own (its topology kept, not that between
        its polygons, which may then meet or overlap by up to ``simplify_m``). Much faster for
        a few huge multipolygons (a province's merged isochrone rings: 8 s instead of 0.3 s);
        False (default): each geometry simplified whole.

    Returns
    -------
    folium.Map
        One ``FeatureGroup`` per layer (named with its title and feature count), drawn in the
        symbology ``z`` order, with a layer control, a scale bar and a legend; fitted to the
        jurisdiction (``admin_units`` with ``in_jurisdiction``), else to the layers' bounds.

    Raises
    ------
    CrsError
        If a non-empty layer has no CRS.
    TypeError
        If a layer is not a GeoDataFrame.
    ValueError
        If ``lang`` or ``max_features`` is invalid, or a tile URL has no attribution.

    Notes
    -----
    The legend shows the blocks of the layers that are on, and follows the layer control.
    Points are drawn as circle markers sized by ``radius``; lines and polygons by ``weight``,
    ``fill_color`` and ``fill_opacity``. A ``categorical`` layer is coloured per value of its
    symbology field (legend in catalog order), a ``graduated`` one by the field's quintiles on a
    ramp ending in the spec's ``color``. Each layer sits in its own map pane, so toggling layers
    keeps the draw order.
    """
    _check_lang(lang)
    if not isinstance(max_features, int | np.integer) or max_features < 1:
        raise ValueError(f"`max_features` was {max_features!r} but must be a positive integer")
    if tiles is not None and tiles_attribution is None and ("{z}" in tiles or "://" in tiles):
        raise ValueError(
            f"`tiles` was the URL {tiles!r} but `tiles_attribution` is None; tile providers "
            "require an attribution (e.g. '© 天地图 Tianditu')"
        )
    specs = dict(load_catalog() if catalog is None else catalog)
    text = _TEXT[lang]

    prepared = []
    for name, gdf in layers.items():
        ready = _prepare(name, gdf)
        if ready is None:
            continue
        spec = specs.get(name)
        spec_z = int(spec.symbology.get("z", DEFAULT_Z)) if spec is not None else DEFAULT_Z
        prepared.append((carto.z_of(name, spec_z, z), name, spec, *ready))
    prepared.sort(key=lambda item: (item[0], item[1]))

    m = folium.Map(
        location=[0.0, 0.0],
        zoom_start=2,
        tiles=None,
        control_scale=True,
        prefer_canvas=True,
        zoom_snap=0.25,  # fit the jurisdiction closely, not to the next whole zoom below
    )
    # Only Leaflet is needed (no awesome-markers, Bootstrap or jQuery); save_map inlines it.
    m.default_js = [("leaflet", _LEAFLET_JS)]
    m.default_css = [("leaflet_css", _LEAFLET_CSS)]
    if tiles is not None:
        folium.TileLayer(
            tiles=tiles,
            attr=tiles_attribution,
            name=text["base_map"],
            overlay=False,
            control=True,
        ).add_to(m)

    legend: list[_LegendEntry] = []
    bounds: list[np.ndarray] = []
    unknown = sorted(set(rasters) - set(layers))
    if unknown:
        raise ValueError(f"`rasters` names layers that are not given: {unknown}")
    home: np.ndarray | None = None
    for layer_z, name, spec, gdf, total in prepared:
        title = spec.title(lang) if spec is not None else name
        geometry = _geometry_kind(spec, gdf)
        on = show is None or name in show
        pane = f"geo_mz_{len(legend) + 1}"
        if name in rasters:
            group, swatches = _add_raster(m, gdf, spec, title, pane, layer_z, lang, on)
            legend.append(_LegendEntry(title, "Polygon", swatches, group=group.get_name()))
            bounds.append(np.asarray(gdf.total_bounds, dtype=float))
            continue
        if simplify_m > 0 and geometry != "Point":
            tolerance = simplify_m / 111_320.0
            if simplify_by_part:
                gdf = gdf.set_geometry(simplified_by_part(gdf.geometry, tolerance))
            else:
                gdf = gdf.set_geometry(gdf.geometry.simplify(tolerance, preserve_topology=True))
        colours, swatches = feature_colours(gdf, spec, title, lang)
        n_drawable = len(gdf)
        keep = _thin(n_drawable, int(max_features))
        shown = len(keep)
        if shown < n_drawable:
            gdf = gdf.iloc[keep]
            colours = [colours[i] for i in keep]
        if name == "admin_units" and "in_jurisdiction" in gdf.columns:
            # Fit the view to the jurisdiction alone, not to the (much larger) neighbours, rivers
            # or regional layers around it.
            own = gdf[gdf["in_jurisdiction"].fillna(False).astype(bool)]
            if len(own):
                home = np.asarray(own.total_bounds, dtype=float)
            bounds.append(np.asarray((own if len(own) else gdf).total_bounds, dtype=float))
        else:
            bounds.append(np.asarray(gdf.total_bounds, dtype=float))

        if shown < total:
            group_name = text["thinned"].format(title=title, shown=shown, total=total)
            note = text["shown_note"].format(shown=shown, total=total)
            if shown < n_drawable:
                note += text["thinned_note"].format(max=max_features)
            if n_drawable < total:
                note += text["no_geometry_note"].format(n=total - n_drawable)
        else:
            group_name, note = text["count"].format(title=title, n=total), ""
        simplified = simplify_m > 0 and geometry != "Point"
        decimals = SIMPLIFIED_DECIMALS if simplified else COORD_DECIMALS
        group = _add_layer(
            m, gdf, spec, geometry, colours, group_name, pane, layer_z, lang, on, decimals
        )
        legend.append(
            _LegendEntry(group_name, geometry, swatches, note=note, group=group.get_name())
        )
        if name == "admin_units" and labels:
            places = carto.place_labels(gdf)
            if places:
                g = folium.FeatureGroup(name=text["labels"], show=on).add_to(m)
                carto.PlaceLabels(places, m.get_name()).add_to(g)

    if home is not None:
        bounds = [home]
    if bounds:
        b = np.vstack(bounds)
        south, west = float(b[:, 1].min()), float(b[:, 0].min())
        north, east = float(b[:, 3].max()), float(b[:, 2].max())
        m.location = [(south + north) / 2, (west + east) / 2]
        m.fit_bounds([[south, west], [north, east]], max_zoom=16)
    folium.LayerControl(collapsed=False).add_to(m)
    m.get_root().html.add_child(folium.Element(_legend_html(legend[::-1], lang)))
    m.get_root().html.add_child(folium.Element(carto.LABEL_CSS))
    carto.LegendSync([e.group for e in legend]).add_to(m)
    return m


_LEAFLET_JS = "geo_mz-offline:leaflet.js"
_LEAFLET_CSS = "geo_mz-offline:leaflet.css"


def _leaflet_inline() -> tuple[str, str]:
    """Leaflet's JS and CSS from xstatic-leaflet, the CSS's images embedded as data URIs."""
    base = Path(xleaflet.BASE_DIR)
    js = (base / "leaflet.js").read_text(encoding="utf-8")
    css = (base / "leaflet.css").read_text(encoding="utf-8")
    for img in sorted((base / "images").glob("*.png")):
        data = base64.b64encode(img.read_bytes()).decode("ascii")
        css = css.replace(f"images/{img.name}", f"data:image/png;base64,{data}")
    # A literal "</script>" inside inlined JS would end the tag early.
    return js.replace("</script>", "<\\/script>"), css


def save_map(m: folium.Map, path: str | Path) -> Path:
    """Write a map to one self-contained HTML file (UTF-8) that works offline.

    Parameters
    ----------
    m
        The map, e.g. from :func:`layers_map`.
    path
        Target ``.html`` file; overwritten if it exists.

    Returns
    -------
    Path
        The file written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with carto.compact_json(), rendered_text_kept():
        page = m.get_root().render()
    js, css = _leaflet_inline()
    page = page.replace(f'<script src="{_LEAFLET_JS}"></script>', f"<script>{js}</script>")
    page = page.replace(f'<link rel="stylesheet" href="{_LEAFLET_CSS}"/>', f"<style>{css}</style>")
    if _LEAFLET_JS in page or _LEAFLET_CSS in page:
        raise RuntimeError("could not inline Leaflet into the map (folium's template changed?)")
    path.write_text(page, encoding="utf-8")
    return path

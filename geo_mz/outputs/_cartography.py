"""Cartographic parts of the offline folium maps: density rasters, place labels, legend toggling.

Used by :mod:`geo_mz.outputs.maps`; kept apart so that module stays about layers and styles.
"""

from __future__ import annotations

import contextlib
import html
import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import folium
import geopandas
import numpy as np
import pandas as pd
import shapely
from branca.element import MacroElement
from folium.template import Template
from folium.utilities import image_to_url

RASTER_CELL_M = 250.0
"""Smallest cell of a density raster, in Web Mercator metres (≈ 230 m on the ground at 22° N;
coarser than the 100 m population grid so that every cell holds several points)."""
RASTER_MAX_PX = 480
"""Most pixels along a raster's longer side; the cell grows for larger areas (local choice)."""
RASTER_OPACITY = 0.75
"""Opacity of a density raster over the base layers (local choice)."""
VILLAGE_LABEL_ZOOM = 13
"""Zoom from which village names are shown (town names show at every zoom; local choice)."""
MAX_LABELS = 2000
"""Most place labels on one map: villages are left out beyond it, then towns (local choice)."""
LABEL_PANE_Z = 640
"""Labels sit above every layer pane (400 + catalog z ≤ 550) and below popups (700)."""


def _hex_rgb(colour: str) -> tuple[int, int, int]:
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def density_grid(
    points: geopandas.GeoDataFrame, values: np.ndarray, cell_m: float = RASTER_CELL_M
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Mean of ``values`` per cell of a Web Mercator grid over ``points`` (NaN where none).

    Parameters
    ----------
    points
        Point features in any CRS.
    values
        One number per point (NaN ignored).
    cell_m
        Smallest cell size in Web Mercator metres; grown so the grid has at most
        ``RASTER_MAX_PX`` cells along its longer side.

    Returns
    -------
    tuple
        The grid (row 0 at the north) and its bounds ``(south, west, north, east)`` in degrees.
        Leaflet stretches an image overlay linearly in Web Mercator, so the cells are square on
        the map.
    """
    merc = points.to_crs("EPSG:3857")
    x, y = merc.geometry.x.to_numpy(), merc.geometry.y.to_numpy()
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v) & np.isfinite(x) & np.isfinite(y)
    x, y, v = x[ok], y[ok], v[ok]
    minx, maxx, miny, maxy = x.min(), x.max(), y.min(), y.max()
    cell = max(float(cell_m), max(maxx - minx, maxy - miny) / RASTER_MAX_PX)
    # Half a cell of margin so points on the edge fall inside.
    minx, miny = minx - cell / 2, miny - cell / 2
    ncol = int(np.floor((maxx - minx) / cell)) + 1
    nrow = int(np.floor((maxy - miny) / cell)) + 1
    col = np.floor((x - minx) / cell).astype(np.int64)
    row = nrow - 1 - np.floor((y - miny) / cell).astype(np.int64)
    flat = row * ncol + col
    sums = np.bincount(flat, weights=v, minlength=nrow * ncol)
    counts = np.bincount(flat, minlength=nrow * ncol)
    with np.errstate(invalid="ignore", divide="ignore"):
        grid = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan).reshape(nrow, ncol)
    corners = geopandas.GeoSeries(
        geopandas.points_from_xy([minx, minx + ncol * cell], [miny, miny + nrow * cell]),
        crs="EPSG:3857",
    ).to_crs("EPSG:4326")
    west, east = float(corners.x.iloc[0]), float(corners.x.iloc[1])
    south, north = float(corners.y.iloc[0]), float(corners.y.iloc[1])
    return grid, (south, west, north, east)


def raster_overlay(
    grid: np.ndarray,
    bounds: tuple[float, float, float, float],
    classes: np.ndarray,
    colours: Sequence[str],
    name: str,
    pane: str,
) -> folium.raster_layers.ImageOverlay:
    """Build an image overlay (PNG data URL) colouring cells by class; empty cells are clear.

    ``classes`` holds a colour index per cell, -1 for no value.
    """
    rgba = np.zeros((*grid.shape, 4), dtype=np.uint8)
    for k, colour in enumerate(colours):
        rgba[classes == k] = (*_hex_rgb(colour), 255)
    south, west, north, east = bounds
    overlay = folium.raster_layers.ImageOverlay(
        image_to_url(rgba),
        bounds=[[south, west], [north, east]],
        name=name,
        opacity=RASTER_OPACITY,
        interactive=False,
        pixelated=True,
        pane=pane,
        control=False,
    )
    return overlay


def raster_classes(values: np.ndarray, breaks: Sequence[float]) -> np.ndarray:
    """Class index per cell (``np.digitize`` with right-closed breaks); -1 where NaN."""
    classes = np.digitize(values, np.asarray(breaks, dtype=float), right=True)
    return np.where(np.isnan(values), -1, classes)


def place_labels(admin_units: geopandas.GeoDataFrame) -> list[list]:
    """``[lat, lon, name, "t" | "v"]`` of every town, and of every village of the jurisdiction.

    Labels sit on a point inside each unit (``representative_point``), so a crescent-shaped
    town is labelled on itself. Neighbouring villages are left out: they are context only.
    Over ``MAX_LABELS`` labels, villages are left out; over it with towns alone, all are.
    """
    if "level" not in admin_units.columns or "name" not in admin_units.columns:
        return []
    units = admin_units.to_crs("EPSG:4326")
    level = units["level"].astype(str)
    keep = level.eq("town")
    if "in_jurisdiction" in units.columns:
        own = units["in_jurisdiction"].fillna(False).astype(bool)
        keep |= level.eq("village") & own
    else:
        keep |= level.eq("village")
    units = units[keep.to_numpy() & units["name"].notna().to_numpy()]
    if len(units) > MAX_LABELS:  # a province's villages: label its towns only
        units = units[units["level"].astype(str).eq("town").to_numpy()]
    if len(units) > MAX_LABELS:  # a whole country's towns would bury the map
        return []
    pts = units.geometry.representative_point()
    return [
        [round(float(p.y), 5), round(float(p.x), 5), html_text(str(n)), str(lv)[0]]
        for p, n, lv in zip(pts, units["name"], units["level"], strict=True)
    ]


def html_text(value: str) -> str:
    """Return ``value`` as HTML text that no template engine reads as markup.

    ``html.escape``, and braces as character references (``&#123;``, ``&#125;``): branca
    compiles a rendered map's scripts as Jinja templates once more, so a name such as
    ``{{ 7*7 }}`` in a user's file would be evaluated (shown as 49, or worse) if it reached the
    page as it is. The browser shows the same characters.

    Parameters
    ----------
    value
        Text from the data (names, notes, category labels).

    Returns
    -------
    str
        The escaped text.
    """
    return html.escape(value).replace("{", "&#123;").replace("}", "&#125;")


def html_texts(values: Sequence[str]) -> list[str]:
    """:func:`html_text` of each value, escaped as one text (a map's column at a time).

    Parameters
    ----------
    values
        Display texts (no NUL characters; a column holding one is escaped value by value).

    Returns
    -------
    list of str
        The escaped texts, in order.
    """
    values = list(values)
    joined = "\x00".join(values)
    if not values or joined.count("\x00") != len(values) - 1:
        return [html_text(v) for v in values]
    return html_text(joined).split("\x00")


class PlaceLabels(MacroElement):
    """Town names always, village names from ``VILLAGE_LABEL_ZOOM``; add to a FeatureGroup."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
            var group = {{ this._parent.get_name() }}, map = {{ this.map_name }};
            if (!map.getPane("gm_labels")) {
                var pane = map.createPane("gm_labels");
                pane.style.zIndex = {{ this.pane_z }};
                pane.style.pointerEvents = "none";
            }
            {{ this.data|tojson }}.forEach(function (d) {
                L.marker([d[0], d[1]], {
                    pane: "gm_labels", interactive: false, keyboard: false,
                    icon: L.divIcon({className: "gm-label gm-label-" + d[3],
                                     html: "<span>" + d[2] + "</span>", iconSize: null})
                }).addTo(group);
            });
            function byZoom() {
                map.getContainer().classList.toggle(
                    "gm-show-villages", map.getZoom() >= {{ this.village_zoom }});
            }
            map.on("zoomend", byZoom);
            map.whenReady(byZoom);
        })();
        {% endmacro %}
        """
    )

    def __init__(self, labels: list[list], map_name: str) -> None:
        super().__init__()
        self._name = "PlaceLabels"
        self.data = labels
        self.map_name = map_name
        self.pane_z = LABEL_PANE_Z
        self.village_zoom = VILLAGE_LABEL_ZOOM


LABEL_CSS = (
    "<style>"
    ".gm-label{background:none;border:none;white-space:nowrap}"
    ".gm-label>span{display:inline-block;transform:translate(-50%,-50%);"
    "font:12px/1.2 sans-serif;color:#222;text-shadow:0 0 3px #fff,0 0 3px #fff,0 0 2px #fff}"
    ".gm-label-t>span{font-weight:bold;font-size:14px;color:#000}"
    ".gm-label-v{display:none}.gm-label-v>span{font-size:11px;color:#333}"
    ".gm-show-villages .gm-label-v{display:block}"
    "</style>"
)


class LegendSync(MacroElement):
    """Show a legend block only while its layer is on (``data-gm-group`` names the group)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
            var map = {{ this._parent.get_name() }};
            var groups = { {%- for g in this.groups %}{{ g|tojson }}: {{ g }},{% endfor -%} };
            function sync() {
                document.querySelectorAll(".gm-layer[data-gm-group]").forEach(function (el) {
                    var g = groups[el.getAttribute("data-gm-group")];
                    el.style.display = g && map.hasLayer(g) ? "" : "none";
                });
            }
            map.on("overlayadd overlayremove", sync);
            sync();
        })();
        {% endmacro %}
        """
    )

    def __init__(self, groups: Sequence[str]) -> None:
        super().__init__()
        self._name = "LegendSync"
        self.groups = list(groups)


@contextlib.contextmanager
def compact_json() -> Iterator[None]:
    """Render folium's embedded JSON without spaces and with Chinese as UTF-8 (not escaped).

    Folium's templates share one Jinja environment whose ``tojson`` adds ``", "`` separators
    and escapes every non-ASCII character (6 bytes for each Chinese character). The same data
    written compactly is a third of the size. ``tojson`` still escapes ``<``, ``>``, ``&`` and
    ``'``, so the JSON stays safe inside ``<script>``. The setting is restored afterwards.
    """
    env = folium.GeoJson._template.environment
    before = env.policies.get("json.dumps_kwargs")
    env.policies["json.dumps_kwargs"] = {
        "sort_keys": True,
        "separators": (",", ":"),
        "ensure_ascii": False,
    }
    try:
        yield
    finally:
        env.policies["json.dumps_kwargs"] = before


_GEOJSON_TYPES = {0: "Point", 1: "LineString", 3: "Polygon", 4: "MultiPoint",
                  5: "MultiLineString", 6: "MultiPolygon"}  # fmt: skip


def _nest(items: list, offsets: np.ndarray) -> list:
    """Group ``items`` by ``offsets`` (a ragged array's: group k is items[o[k]:o[k+1]])."""
    o = offsets.tolist()
    return [items[a:b] for a, b in itertools.pairwise(o)]


def geojson_geometries(geoms: np.ndarray) -> list[dict[str, Any]]:
    """GeoJSON geometry objects of shapely geometries, as ``json.loads(shapely.to_geojson(g))``.

    Built from the coordinate arrays of each geometry type (``shapely.to_ragged_array``)
    instead of writing every geometry as text and parsing it back: a province map's layers
    took 2 s of ``json.loads`` that way. The same objects, float for float (tested);
    geometry collections go the text way.

    Parameters
    ----------
    geoms
        Shapely geometries (none missing or empty).

    Returns
    -------
    list of dict
        One ``{"type": ..., "coordinates": ...}`` per geometry, in order.
    """
    geoms = np.asarray(geoms, dtype=object)
    out: list[Any] = [None] * len(geoms)
    type_ids = shapely.get_type_id(geoms)
    has_z = shapely.has_z(geoms)
    for tid, z in {(t, h) for t, h in zip(type_ids.tolist(), has_z.tolist(), strict=True)}:
        at = np.flatnonzero((type_ids == tid) & (has_z == z))
        name = _GEOJSON_TYPES.get(tid)
        if name is None:  # a collection: its members may be of any type
            for i in at.tolist():
                out[i] = json.loads(shapely.to_geojson(geoms[i]))
            continue
        # One type, with or without heights: arrays as GEOS writes them.
        _, xy, offsets = shapely.to_ragged_array(geoms[at], include_z=z)
        coords: list = xy.tolist()
        for off in offsets:  # innermost first: points into rings, rings into polygons …
            coords = _nest(coords, off)
        for i, c in zip(at.tolist(), coords, strict=True):
            out[i] = {"type": name, "coordinates": c}
    return out


def numeric(values: pd.Series) -> np.ndarray:
    """Numbers of a column as floats (NaN for missing or non-numeric)."""
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def z_of(name: str, spec_z: int, overrides: Mapping[str, int] | None) -> int:
    """Draw order of a layer: the map's override, else the catalog's ``z``."""
    if overrides and name in overrides:
        return int(overrides[name])
    return spec_z

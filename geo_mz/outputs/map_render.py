"""What makes a big offline map cheaper to draw and write, with the same result.

:func:`simplified_by_part` simplifies each polygon of a multipolygon alone
(``layers_map(simplify_by_part=True)``); :func:`rendered_text_kept` keeps branca from compiling
each element's rendered text as a Jinja template again while :func:`geo_mz.outputs.save_map`
renders (the same page, byte for byte).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

import branca.element
import folium
import geopandas
import numpy as np
import shapely
from folium.utilities import get_obj_in_upper_tree

_KEEP_COORDS = 50_000
"""Geometries of at least this many coordinates are kept simplified (:func:`simplified_by_part`)."""
_KEPT: OrderedDict[tuple[float, bytes], np.ndarray] = OrderedDict()
_KEPT_MAX = 8
_KEPT_LOCK = threading.Lock()


def simplified_by_part(geoms: geopandas.GeoSeries, tolerance: float) -> geopandas.GeoSeries:
    """``simplify(tolerance, preserve_topology=True)``, each polygon of a multipolygon alone.

    Large inputs are kept simplified, by the digest of their WKB and the tolerance, for the
    maps drawn after: a province run's parts (155,000 vertices) are drawn on every job's map
    and on the province map, and simplifying them took 0.16 s each time, hashing them 5 ms.
    """
    arr = np.asarray(geoms.values, dtype=object)
    key = None
    if int(shapely.get_num_coordinates(arr).sum()) >= _KEEP_COORDS:
        wkb = shapely.to_wkb(arr)
        h = hashlib.blake2b(digest_size=20)
        for w in wkb:  # WKB is self-delimiting; a missing geometry is marked apart
            h.update(b"\x00" if w is None else w)
        key = (float(tolerance), h.digest())
        with _KEPT_LOCK:  # outputs may be drawn in several threads of a worker
            hit = _KEPT.get(key)
            if hit is not None:
                _KEPT.move_to_end(key)
        if hit is not None:
            return geopandas.GeoSeries(hit.copy(), index=geoms.index, crs=geoms.crs,
                                       name=geoms.name)  # fmt: skip
    out = _simplified(arr, tolerance)
    if key is not None:
        with _KEPT_LOCK:
            _KEPT[key] = out.copy()
            while len(_KEPT) > _KEPT_MAX:
                _KEPT.popitem(last=False)
    return geopandas.GeoSeries(out, index=geoms.index, crs=geoms.crs, name=geoms.name)


def _simplified(arr: np.ndarray, tolerance: float) -> np.ndarray:
    out = arr.copy()
    multi = shapely.get_type_id(out) == 6
    out[~multi] = shapely.simplify(out[~multi], tolerance, preserve_topology=True)
    if multi.any():
        parts, index = shapely.get_parts(out[multi], return_index=True)
        parts = shapely.simplify(parts, tolerance, preserve_topology=True)
        joined = np.full(int(multi.sum()), shapely.MultiPolygon(), dtype=object)
        has = np.unique(index)  # an empty multipolygon has no parts: stays empty
        joined[has] = shapely.multipolygons(parts, indices=np.searchsorted(has, index))
        out[multi] = joined
    return out


class TableStyledGeoJson(folium.GeoJson):
    """folium's ``GeoJson`` whose features take their style from a table, one row per style.

    folium writes its styler as a ``switch`` with a ``case`` per feature of every style but
    the commonest, each id put through Jinja's ``tojson`` (a province's 13,216 villages
    coloured by a share: 1.24× folium's render speed here, 0.1 MB less page,
    ``bench/bench_map_styles.py``). Here the
    distinct styles (as folium keys them: JSON, keys sorted) and each feature's row are two
    arrays written before the layer's script, and the styler looks the style up: the same
    style for every feature. The features' ``id`` must be their positions (as
    ``geo_mz.outputs.maps`` numbers them).

    Parameters
    ----------
    data
        A FeatureCollection whose features' ids are 0..n-1.
    styles
        The style of each feature, in order.
    **kwargs
        As for ``folium.GeoJson`` (no ``style_function``).
    """

    def __init__(self, data: dict, styles: Sequence[dict[str, Any]], **kwargs: Any) -> None:
        features = data["features"]
        if [f.get("id") for f in features] != list(range(len(features))):
            raise ValueError("TableStyledGeoJson: the features' ids must be 0..n-1")
        if len(styles) != len(features):
            raise ValueError(f"{len(styles)} styles for {len(features)} features")
        taken = {"style_function", "highlight_function"} & set(kwargs)
        if taken:  # its render writes the styler itself and no highlighter
            raise TypeError(f"TableStyledGeoJson takes its styles as a table, not {sorted(taken)}")
        keys = [json.dumps(dict(st), sort_keys=True) for st in styles]
        self._rows, self._index = np.unique(np.asarray(keys, dtype=object), return_inverse=True)
        # A style function (never called here) makes folium write a styler at all.
        super().__init__(data, style_function=lambda f: {}, **kwargs)

    def render(self, **kwargs: Any) -> None:
        """Write the style table, then the layer (folium's own, with a styler by table)."""
        self.parent_map = get_obj_in_upper_tree(self, folium.Map)
        name = self.get_name()
        if self.data["features"]:
            table = "[" + ",".join(self._rows.tolist()) + "]"
            rows = json.dumps(self._index.astype(int).tolist(), separators=(",", ":"))
            # "<" written as \u003c, as folium escapes JSON in a page: no "</script>" inside
            js = f"var {name}_styles = {table};\nvar {name}_style_of = {rows};"
            self.get_root().script.add_child(
                branca.element.Element(js.replace("<", "\\u003c")), name=f"{name}_style_table"
            )
            self.style_map = {"default": f"{name}_styles[{name}_style_of[feature.id]]"}
        # folium's GeoJson.render would key every feature's style again: skip to its parent's.
        super(folium.GeoJson, self).render(**kwargs)


_JINJA_MARKS = ("{{", "{%", "{#")


class RenderedText(branca.element.Element):
    """An element's rendered text, kept as Jinja would render it, not compiled again.

    Branca puts each element's rendered script in a new ``Element``, which compiles it as a
    template and renders it once more. A layer's script holds its whole GeoJSON: Jinja's lexer
    takes ~75 ns a byte (2.5 s for a province map of 32 MB). Text without a Jinja mark renders
    as itself with its line ends made LF and one final line end dropped: that is what is
    kept. Text with a mark (folium's style maps name other elements so) is compiled as before.
    """

    def __init__(self, template: str | None = None, template_name: str | None = None) -> None:
        text = template
        if text is not None and not any(mark in text for mark in _JINJA_MARKS):
            super().__init__(None, template_name)
            self._template_str = text
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            self._text: str | None = text[:-1] if text.endswith("\n") else text
        else:
            super().__init__(template, template_name)
            self._text = None

    def render(self, **kwargs: Any) -> str:
        """Return the text (as a template without marks renders), or render the template."""
        if self._text is not None and not self._children:
            return self._text
        return super().render(**kwargs)


_RENDER_LOCK = threading.RLock()


@contextlib.contextmanager
def rendered_text_kept() -> Iterator[None]:
    """While a map renders, branca keeps rendered text as it is (:class:`RenderedText`).

    ``MacroElement.render`` makes its ``Element`` from branca's module name, swapped here for
    the subclass; the lock keeps two renders from restoring each other's swap.
    """
    with _RENDER_LOCK:
        before = branca.element.Element
        branca.element.Element = RenderedText  # type: ignore[misc]
        try:
            yield
        finally:
            branca.element.Element = before  # type: ignore[misc]


__all__ = ["RenderedText", "TableStyledGeoJson", "rendered_text_kept", "simplified_by_part"]

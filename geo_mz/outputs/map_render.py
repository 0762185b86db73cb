"""What makes a big offline map cheaper to draw and write, with the same result.

:func:`simplified_by_part` simplifies each polygon of a multipolygon alone
(``layers_map(simplify_by_part=True)``); :func:`rendered_text_kept` keeps branca from compiling
each element's rendered text as a Jinja template again while :func:`geo_mz.outputs.save_map`
renders (the same page, byte for byte).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import branca.element
import geopandas
import numpy as np
import shapely


def simplified_by_part(geoms: geopandas.GeoSeries, tolerance: float) -> geopandas.GeoSeries:
    """``simplify(tolerance, preserve_topology=True)``, each polygon of a multipolygon alone."""
    out = np.asarray(geoms.values, dtype=object).copy()
    multi = shapely.get_type_id(out) == 6
    out[~multi] = shapely.simplify(out[~multi], tolerance, preserve_topology=True)
    if multi.any():
        parts, index = shapely.get_parts(out[multi], return_index=True)
        parts = shapely.simplify(parts, tolerance, preserve_topology=True)
        joined = np.full(int(multi.sum()), shapely.MultiPolygon(), dtype=object)
        has = np.unique(index)  # an empty multipolygon has no parts: stays empty
        joined[has] = shapely.multipolygons(parts, indices=np.searchsorted(has, index))
        out[multi] = joined
    return geopandas.GeoSeries(out, index=geoms.index, crs=geoms.crs, name=geoms.name)


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


__all__ = ["RenderedText", "rendered_text_kept", "simplified_by_part"]

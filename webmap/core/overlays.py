"""Read-only boundary overlays computed from the workspace: lines, QA findings, marker checks.

:class:`OverlayStore` wraps any :class:`webmap.core.store.FeatureStore` and serves four more
layers, each with its analysis output spec (``layers/results/*.toml``, via
:func:`geo_mz.core.result_catalog`), so OGC API items, the OpenAPI document and the map page
treat them like any other layer. They have no write rules: every write to them is 405.

- ``boundary_lines``: shared lines and outer borders of the county-level and town-level units
  (:func:`geo_mz.boundaries.extract_lines`, :func:`~geo_mz.boundaries.lines_layer`).
- ``boundary_findings``: coverage QA of the town level (against the workspace's own county) and
  of the village level (:func:`geo_mz.boundaries.qa`, :func:`~geo_mz.boundaries.findings_layer`);
  finding ids are prefixed with the level (``town-F0001``) so both levels fit one layer.
- ``boundary_marker_report`` and ``boundary_line_issues``: the joint-inspection checks of the
  boundary markers along the county lines (:func:`geo_mz.boundaries.inspect_lines`).

Each is computed on first use and cached until a layer it is built from changes (the inner
store's :meth:`~webmap.core.store.FeatureStore.token`, which changes when the workspace file
changes). A workspace the analysis cannot handle raises :class:`OverlayError` (HTTP 500 with
a "中文 / English" message naming the overlay, its source layers and the cause), cached like a
result until a source layer changes: a failed computation is never served as an empty overlay,
which would read as "no findings". An overlay that was computed and found nothing is empty.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.core import LayerSpec
from webmap.core.errors import ComputationFailedError
from webmap.core.geojson import features_of, make_etag
from webmap.core.store import Builder, Change, Event, FeatureStore, Op

log = logging.getLogger(__name__)

LINES = "boundary_lines"
FINDINGS = "boundary_findings"
MARKERS = "boundary_marker_report"
LINE_ISSUES = "boundary_line_issues"
OVERLAYS = (LINES, FINDINGS, MARKERS, LINE_ISSUES)
"""The overlay layers, served read-only."""
VISIBLE_BY_DEFAULT = frozenset({LINES})
"""Overlays drawn when the map page opens; the others are off until ticked."""

UNITS = "admin_units"
MARKER_LAYER = "boundary_markers"
LINE_LEVELS = ("county", "town")
QA_LEVELS = ("town", "village")
_NEEDS: dict[str, tuple[str, ...]] = {
    LINES: (UNITS,),
    FINDINGS: (UNITS,),
    MARKERS: (UNITS, MARKER_LAYER),
    LINE_ISSUES: (UNITS, MARKER_LAYER),
}
_GROUP = {LINES: "lines", FINDINGS: "findings", MARKERS: "markers", LINE_ISSUES: "markers"}


class OverlayError(ComputationFailedError):
    """A boundary overlay could not be computed from the workspace (HTTP 500).

    The JSON body has ``code`` ``overlay_failed``, ``description`` ("中文 / English": which
    overlay, which layers it is built from, the cause, what to do), ``layer`` (the overlay),
    ``sources`` (its workspace layers) and ``cause`` (the analysis's own message).
    """

    code = "overlay_failed"


def overlay_failure(group: str, exc: BaseException) -> OverlayError:
    """Build the error of an overlay group (``lines``, ``findings``, ``markers``) that failed."""
    names = [n for n, g in _GROUP.items() if g == group]
    sources = _NEEDS[names[0]]
    zh = "、".join(overlay_spec(n).title_zh for n in names)
    en = ", ".join(overlay_spec(n).title_en for n in names)
    cause = f"{type(exc).__name__}: {exc}"
    layers = "、".join(sources)
    return OverlayError(
        f"{zh}（{'、'.join(names)}）无法计算：{cause}。"
        f"请检查工作区图层 {layers} 的几何与属性（例如 geo-mz boundaries qa），修正后重新导入。"
        f" / {en} ({', '.join(names)}) could not be computed: {cause}. "
        f"Check the geometries and fields of the workspace layer(s) {', '.join(sources)} "
        "(e.g. with geo-mz boundaries qa), fix them and import them again.",
        extra={"layer": names[0], "layers": names, "sources": list(sources), "cause": cause},
    )


def visible_by_default(name: str) -> bool:
    """Whether the map page draws this layer at start (every non-overlay layer; boundary lines)."""
    return name not in OVERLAYS or name in VISIBLE_BY_DEFAULT


def overlay_spec(name: str) -> LayerSpec:
    """Return the result spec of an overlay layer."""
    from geo_mz.core import result_catalog

    return result_catalog()[name]


def _empty(name: str) -> gpd.GeoDataFrame:
    spec = overlay_spec(name)
    data = {f.name: pd.Series([], dtype=object) for f in spec.fields}
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries([], crs="OGC:CRS84"))


def _lonlat(g: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    from webmap.core.gpkg import lonlat

    return lonlat(g).reset_index(drop=True)


def _level(units: gpd.GeoDataFrame, level: str) -> gpd.GeoDataFrame:
    if "level" not in units.columns:
        return units.iloc[0:0]
    return units[units["level"].astype(str).to_numpy() == level]


def _concat(parts: list[gpd.GeoDataFrame], name: str) -> gpd.GeoDataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        return _empty(name)
    g = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return _lonlat(gpd.GeoDataFrame(g, geometry=parts[0].geometry.name, crs=parts[0].crs))


def compute_lines(units: gpd.GeoDataFrame) -> dict[str, gpd.GeoDataFrame]:
    """``boundary_lines`` of the county and town levels of ``units`` (any CRS)."""
    from geo_mz.boundaries import extract_lines, lines_layer, prepare_units

    parts = []
    for level in LINE_LEVELS:
        u = _level(units, level)
        if len(u):
            parts.append(lines_layer(extract_lines(prepare_units(u))))
    return {LINES: _concat(parts, LINES)}


def compute_findings(units: gpd.GeoDataFrame, adcode: str) -> dict[str, gpd.GeoDataFrame]:
    """``boundary_findings`` of the town level (within county ``adcode``) and village level."""
    from geo_mz.boundaries import findings_layer, qa

    parts = []
    for level in QA_LEVELS:
        u = _level(units, level)
        if not len(u):
            continue
        extent = None
        if level == "town" and "adcode" in units.columns:
            own = units[units["adcode"].astype(str).to_numpy() == adcode]
            extent = own if len(own) else None
        f = findings_layer(qa(u, extent=extent))
        f["finding_id"] = [f"{level}-{x}" for x in f["finding_id"].astype(str)]
        parts.append(f)
    return {FINDINGS: _concat(parts, FINDINGS)}


def compute_markers(
    units: gpd.GeoDataFrame, markers: gpd.GeoDataFrame
) -> dict[str, gpd.GeoDataFrame]:
    """``boundary_marker_report`` and ``boundary_line_issues`` along the county lines."""
    from geo_mz.boundaries import (
        extract_lines,
        inspect_lines,
        issues_layer,
        marker_layer,
        prepare_units,
    )

    county = _level(units, "county")
    if not len(county) or not len(markers):
        return {MARKERS: _empty(MARKERS), LINE_ISSUES: _empty(LINE_ISSUES)}
    u = prepare_units(county)
    ins = inspect_lines(extract_lines(u), markers, units=u)
    return {MARKERS: _lonlat(marker_layer(ins)), LINE_ISSUES: _lonlat(issues_layer(ins))}


class OverlayStore(FeatureStore):
    """A feature store plus the read-only boundary overlays.

    Parameters
    ----------
    inner
        The store of the workspace layers (GeoPackage or PostGIS); everything but the overlays
        is passed to it, attributes included (``store.ws``, ``store.journal``...).
    """

    def __init__(self, inner: FeatureStore) -> None:
        self.inner = inner
        self._lock = threading.RLock()
        self._gen = itertools.count(1)
        # group -> (source tokens, generation, layers by name, or the error they failed with)
        self._cache: dict[
            str, tuple[tuple[Any, ...], int, dict[str, gpd.GeoDataFrame] | OverlayError]
        ] = {}

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not found here: the inner store's own (ws, journal...).
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    # -- which layers -----------------------------------------------------------------------
    def overlay_names(self) -> list[str]:
        """List the overlays this workspace can give (those whose source layers are served)."""
        names = set(self.inner.layer_names())
        return [o for o in OVERLAYS if set(_NEEDS[o]) <= names]

    def layer_names(self) -> list[str]:
        """List the inner store's layers plus the overlays, sorted by name."""
        return sorted({*self.inner.layer_names(), *self.overlay_names()})

    def spec(self, name: str) -> LayerSpec:
        """Return the layer's spec; an overlay's is its result spec."""
        if name in OVERLAYS:
            if name not in self.overlay_names():
                raise KeyError(name)
            return overlay_spec(name)
        return self.inner.spec(name)

    def frame(self, name: str) -> gpd.GeoDataFrame:
        """Return the layer in lon/lat; overlays are computed on first use and cached.

        Raises
        ------
        OverlayError
            The overlay could not be computed from the workspace (until its sources change).
        """
        if name in OVERLAYS:
            return self._overlay(name)[1]
        return self.inner.frame(name)

    def token(self, name: str) -> int:
        """Return a number that changes whenever the layer (or an overlay's sources) changes.

        Raises :class:`OverlayError` for an overlay that could not be computed.
        """
        if name in OVERLAYS:
            return self._overlay(name)[0]
        return self.inner.token(name)

    def overlay_error(self, name: str) -> OverlayError | None:
        """Return the error of an overlay that could not be computed, None when it was.

        Computes the overlay when it is not cached; for listings that show every layer and
        mark a failed one instead of failing as a whole.
        """
        try:
            self._overlay(name)
        except OverlayError as exc:
            return exc
        return None

    # -- overlays ---------------------------------------------------------------------------
    def _overlay(self, name: str) -> tuple[int, gpd.GeoDataFrame]:
        self.spec(name)  # KeyError when not served
        group = _GROUP[name]
        needs = _NEEDS[name]
        with self._lock:
            key = (*(self.inner.token(n) for n in needs), self.inner.metadata.get("adcode"))
            hit = self._cache.get(group)
            if hit is None or hit[0] != key:
                hit = (key, next(self._gen), self._compute(group))
                self._cache[group] = hit
            result = hit[2]
            if isinstance(result, OverlayError):
                # a fresh instance per request: one raised exception is not shared by threads
                raise OverlayError(result.message, extra=result.extra) from result.__cause__
            return hit[1], result[name]

    def _compute(self, group: str) -> dict[str, gpd.GeoDataFrame] | OverlayError:
        """Compute an overlay group; return (not raise) its error so that it is cached too."""
        jobs: dict[str, Callable[[], dict[str, gpd.GeoDataFrame]]] = {
            "lines": lambda: compute_lines(self.inner.frame(UNITS)),
            "findings": lambda: compute_findings(
                self.inner.frame(UNITS), str(self.inner.metadata.get("adcode", ""))
            ),
            "markers": lambda: compute_markers(
                self.inner.frame(UNITS), self.inner.frame(MARKER_LAYER)
            ),
        }
        try:
            return jobs[group]()
        except Exception as exc:  # any failure of the analysis or of reading its layers
            log.exception("boundary overlay %r could not be computed", group)
            err = overlay_failure(group, exc)
            err.__cause__ = exc
            return err

    # -- reading one feature ----------------------------------------------------------------
    def current(self, layer: str, fid: str) -> tuple[dict[str, Any] | None, str | None]:
        """Return the feature ``fid`` as GeoJSON and its ETag (overlays: version 0)."""
        if layer not in OVERLAYS:
            return self.inner.current(layer, fid)
        spec = self.spec(layer)
        g = self.frame(layer)
        hit = np.flatnonzero(g[spec.id_field].astype(str).to_numpy() == fid) if len(g) else []
        if not len(hit):
            return None, None
        feature = features_of(g.iloc[hit[:1]], spec.id_field)[0]
        return feature, make_etag(0, feature)

    # -- everything else is the inner store's -----------------------------------------------
    @property
    def metadata(self) -> dict[str, Any]:
        """Workspace metadata."""
        return self.inner.metadata

    def jurisdiction(self) -> shapely.Geometry | None:
        """Return the inner store's jurisdiction."""
        return self.inner.jurisdiction()

    def apply(
        self,
        layer: str,
        fid: str,
        *,
        op: Op,
        build: Builder,
        user: str,
        role: str,
        if_match: str | None = None,
    ) -> Change:
        """Apply an edit in the inner store (overlays are never edited: no write rule)."""
        if layer in OVERLAYS:
            raise KeyError(f"{layer} is read-only")
        return self.inner.apply(
            layer, fid, op=op, build=build, user=user, role=role, if_match=if_match
        )

    def events_since(self, after_id: int, *, limit: int = 500) -> list[Event]:
        """Return the inner store's events."""
        return self.inner.events_since(after_id, limit=limit)

    def last_event_id(self) -> int:
        """Return the inner store's newest event id."""
        return self.inner.last_event_id()

    def audit_rows(
        self, *, limit: int = 100, offset: int = 0, layer: str | None = None
    ) -> list[dict[str, Any]]:
        """Return the inner store's audit log."""
        return self.inner.audit_rows(limit=limit, offset=offset, layer=layer)


def with_overlays(store: FeatureStore) -> FeatureStore:
    """Wrap a store in :class:`OverlayStore` (once)."""
    return store if isinstance(store, OverlayStore) else OverlayStore(store)


__all__ = [
    "FINDINGS",
    "LINES",
    "LINE_ISSUES",
    "MARKERS",
    "OVERLAYS",
    "VISIBLE_BY_DEFAULT",
    "OverlayError",
    "OverlayStore",
    "compute_findings",
    "compute_lines",
    "compute_markers",
    "overlay_failure",
    "overlay_spec",
    "visible_by_default",
    "with_overlays",
]

"""What the map page needs beyond OGC API: layer list, styled layers, headline figures.

Styled layers are computed once per layer version and language (graduated colours depend on
the whole layer) and then cut to the page's view box, at most ``max_map_features`` features
(evenly thinned beyond that; vector tiles replace this in a later step).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd

from geo_mz.outputs import headline_kpis
from webmap.core.analysis_json import kpi_target, kpi_unit
from webmap.core.errors import ComputationFailedError
from webmap.core.features import check_params, lang_of, parse_bbox, select
from webmap.core.geojson import features_of, jsonable
from webmap.core.http import ApiRequest, ApiResponse
from webmap.core.layers import CLOSURES, INCIDENTS, SHELTERS, allowed_methods, layer_spec
from webmap.core.overlays import FINDINGS, visible_by_default
from webmap.core.store import FeatureStore
from webmap.core.symbology import Symbology, symbolize
from webmap.core.tiles import TILED_MIN_FEATURES
from webmap.core.users import ROLE_LABELS
from webmap.settings import Settings

INCIDENT_LIST_MAX = 50
"""Incidents listed in the side panel, newest first (local choice)."""
_KPI_LAYERS = ("population", "elder_care", "shelters", "relief_stores", "admin_units")
BASE_POLYGON_MAX_Z = 20
"""Polygon layers drawn below this ``z`` (water, land use, admin units) are the base map: drawn
non-interactive so a click never opens their popup instead of a shelter's (issue 16)."""


def pane_of(name: str, geometry: str, z: int, tiled: bool) -> tuple[str, bool]:
    """Choose the map pane a layer is drawn in and whether its features take clicks.

    Parameters
    ----------
    name
        Layer id.
    geometry
        ``"Point"``, ``"LineString"`` or ``"Polygon"``.
    z
        Draw order of its symbology.
    tiled
        Loaded by tile (large point layers are drawn as non-interactive dots).

    Returns
    -------
    tuple[str, bool]
        Pane name (``polygons`` < ``findings`` < ``dots`` < ``lines`` < ``closures`` <
        ``points`` < ``incidents``; the page gives each a z-index) and interactivity.
    """
    if name == INCIDENTS:
        return "incidents", True
    if name == CLOSURES:
        return "closures", True
    if geometry == "Polygon":
        if name == FINDINGS:
            return "findings", True
        return "polygons", z >= BASE_POLYGON_MAX_Z
    if geometry == "LineString":
        return "lines", True
    return ("dots", False) if tiled else ("points", True)


class MapData:
    """Map-page data over a store, cached per layer version.

    Parameters
    ----------
    store
        The feature store.
    settings
        Limits and tile configuration.
    """

    def __init__(self, store: FeatureStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self._lock = threading.Lock()
        self._sym: dict[tuple[str, str], tuple[int, Symbology]] = {}
        self._kpi_cache: dict[tuple[Any, ...], list[dict[str, Any]]] = {}

    def symbology(self, cid: str, lang: str) -> Symbology:
        """Return the layer's styles, legend and popup texts for its current version."""
        token = self.store.token(cid)
        key = (cid, lang)
        with self._lock:
            hit = self._sym.get(key)
            if hit is not None and hit[0] == token:
                return hit[1]
        sym = symbolize(self.store.frame(cid), self.store.spec(cid), lang)
        with self._lock:
            self._sym[key] = (token, sym)
        return sym

    def config(self, req: ApiRequest) -> ApiResponse:
        """Describe layers (titles, counts, draw order), tiles, area and form choices."""
        check_params(req, frozenset({"lang"}))
        lang = lang_of(req, self.settings.default_lang)
        meta = self.store.metadata
        layers = []
        for name in self.store.layer_names():
            spec = self.store.spec(name)
            try:
                n, error = len(self.store.frame(name)), None
            except ComputationFailedError as exc:  # listed with its error; the page shows it
                n, error = 0, exc.body()
            z = int(spec.symbology.get("z", 50))
            pane, interactive = pane_of(name, spec.geometry, z, n > TILED_MIN_FEATURES)
            layers.append(
                {
                    "id": name,
                    "title": {"zh": spec.title_zh, "en": spec.title_en},
                    "geometry": spec.geometry,
                    "count": None if error else n,
                    "z": z,
                    "pane": pane,  # drawn above lower panes whatever the load order
                    "interactive": interactive,
                    "big": n > self.settings.max_map_features,
                    "tiled": n > TILED_MIN_FEATURES,  # the page loads it by tile
                    "visible": n <= self.settings.max_map_features and visible_by_default(name),
                    "writes": allowed_methods(name),
                    "error": error,  # a layer that could not be computed (overlays)
                }
            )
        layers.sort(key=lambda x: x["z"])
        incidents = layer_spec(INCIDENTS)
        assert incidents is not None
        choices = {
            f.name: [{"code": v.code, "zh": v.zh, "en": v.en, "color": v.color} for v in f.values]
            for f in incidents.fields
            if f.values
        }
        area = self.store.jurisdiction()
        view = list(area.bounds) if area is not None else [float(b) for b in meta["bounds"]]
        tiles = None
        if self.settings.tiles_url:
            tiles = {"url": self.settings.tiles_url, "attribution": self.settings.tiles_attribution}
        return ApiResponse(
            body={
                "name": meta.get("name", ""),
                "adcode": meta.get("adcode", ""),
                "bounds": [float(b) for b in meta["bounds"]],
                "view": [float(b) for b in view],
                "lang": lang,
                "tiles": tiles,
                "layers": layers,
                "incident_choices": choices,
                "roles": {k: {"zh": zh, "en": en} for k, (zh, en) in ROLE_LABELS.items()},
                "last_event_id": self.store.last_event_id(),
            }
        )

    def layer(self, req: ApiRequest, cid: str) -> ApiResponse:
        """One layer, styled, with popup texts and legend, cut to ``bbox``."""
        check_params(req, frozenset({"lang", "bbox"}))
        lang = lang_of(req, self.settings.default_lang)
        spec = self.store.spec(cid)  # KeyError → 404 in the API
        g = self.store.frame(cid)
        sym = self.symbology(cid, lang)
        rows = select(g, spec, bbox=parse_bbox(req.args.get("bbox")), when=None)
        shown = rows
        cap = self.settings.max_map_features
        if len(rows) > cap:
            shown = rows[np.unique(np.linspace(0, len(rows) - 1, cap).round().astype(np.int64))]
        feats = features_of(g.iloc[shown][[g.geometry.name]], spec.id_field)
        ids = g[spec.id_field].astype(str).to_numpy()
        for feat, i in zip(feats, shown, strict=True):
            feat["id"] = str(ids[i])
            feat["properties"] = {
                "s": sym.styles[i],
                "p": {k: sym.texts[k][i] for k, _ in sym.fields if sym.texts[k][i] != ""},
            }
        return ApiResponse(
            body={
                "type": "FeatureCollection",
                "features": feats,
                "fields": [list(f) for f in sym.fields],
                "legend": sym.legend,
                "total": len(g),
                "matched": len(rows),
                "shown": len(shown),
            },
            media_type="application/geo+json",
        )

    def _kpis(self, lang: str) -> list[dict[str, Any]]:
        names = [n for n in _KPI_LAYERS if n in self.store.layer_names()]
        key = (lang, *((n, self.store.token(n)) for n in names))
        with self._lock:
            if key in self._kpi_cache:
                return self._kpi_cache[key]
        kpis = headline_kpis({n: self.store.frame(n) for n in names})
        out = [
            {
                "label": k.label(lang),  # type: ignore[arg-type]
                "value": jsonable(k.value) if not isinstance(k.value, str) else k.value,
                "unit": kpi_unit(k.unit, lang),
                "target": kpi_target(k.target, k.unit, lang),
                "met": k.met,
            }
            for k in kpis
        ]
        with self._lock:
            self._kpi_cache[key] = out
        return out

    def summary(self, req: ApiRequest) -> ApiResponse:
        """Headline figures, live command figures and the newest incidents."""
        check_params(req, frozenset({"lang"}))
        lang = lang_of(req, self.settings.default_lang)
        names = self.store.layer_names()
        live: dict[str, Any] = {"closures": len(self.store.frame(CLOSURES))}
        if SHELTERS in names:
            sh = self.store.frame(SHELTERS)
            open_ = sh["is_open"].fillna(True).to_numpy(dtype=bool) if len(sh) else []
            # places free over the open shelters; over all of them when none is open yet
            basis = "open" if np.any(open_) or not len(sh) else "all"
            sel = open_ if basis == "open" else np.ones(len(sh), dtype=bool)
            cap = pd.to_numeric(sh["capacity_persons"]).fillna(0).to_numpy()[sel]
            occ = pd.to_numeric(sh["occupancy_persons"]).fillna(0).to_numpy()[sel]
            live.update(
                shelters_total=len(sh),
                shelters_open=int(np.sum(open_)),
                shelter_places_basis=basis,
                shelter_capacity=int(cap.sum()),
                shelter_occupancy=int(occ.sum()),
                shelter_places_free=int(np.clip(cap - occ, 0, None).sum()),
            )
        incidents: list[dict[str, Any]] = []
        if INCIDENTS in names:
            inc = self.store.frame(INCIDENTS)
            live["incidents_total"] = len(inc)
            done = inc["status"].astype(str).isin(["resolved", "closed"]) if len(inc) else None
            live["incidents_open"] = int((~done).sum()) if done is not None else 0
            spec = self.store.spec(INCIDENTS)
            order = inc.sort_values("reported_at", ascending=False).head(INCIDENT_LIST_MAX)
            kind_f, status_f = spec.field("kind"), spec.field("status")
            for feat in features_of(order, spec.id_field):
                p = feat["properties"]
                x, y = feat["geometry"]["coordinates"][:2] if feat["geometry"] else (None, None)
                incidents.append(
                    {
                        "id": feat["id"],
                        "kind": p["kind"],
                        "kind_label": kind_f.label(p["kind"], lang),
                        "color": spec.color_of(p["kind"]),
                        "status": p["status"],
                        "status_label": status_f.label(p["status"], lang),
                        "description": p.get("description"),
                        "people_affected": p.get("people_affected"),
                        "reported_at": p.get("reported_at"),
                        "reporter": p.get("reporter"),
                        "lon": x,
                        "lat": y,
                    }
                )
        return ApiResponse(
            body={
                "kpis": self._kpis(lang),
                "live": live,
                "incidents": incidents,
                "last_event_id": self.store.last_event_id(),
            }
        )


__all__ = ["BASE_POLYGON_MAX_Z", "INCIDENT_LIST_MAX", "MapData", "pane_of"]

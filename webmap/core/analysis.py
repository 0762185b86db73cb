"""Analysis endpoints: the relief audit with the current road closures, and coverage KPIs.

The normal relief audit (``geo_mz.relief.drive_audit.run_audit``) runs once per process on first
use and is
kept. The current closures — the ``road_closures`` layer plus the open ``road_blocked``
incidents, buffered :data:`INCIDENT_BUFFER_M` — become a ``geo_mz.network.disruption`` scenario and
``geo_mz.relief.drive_audit.reaudit`` repairs only the searches they touch. Results are cached by
the
source layers' tokens, so any process (PostGIS too) answers with the current closures.

After a closure or incident edit, made through this process or (under PostGIS) any other, the
scenario is recomputed in a background thread (bursts coalesce into one run;
:mod:`webmap.core.analysis_live`, once the analysis has been used in this process: the map page
reads it when it opens) and a **live-only** SSE event ``analysis`` with the summary is pushed to
this process's streams and, under PostGIS, relayed to every other process's. Analysis events
carry no ``id:`` (they are derived, not edits):
they are not stored in the event log, are not replayed on reconnect, and do not move the
client's ``Last-Event-ID``; a page that (re)connects reads ``/analysis/relief`` instead.
When that background run fails, the event is ``analysis_error`` with the error's JSON body.

An analysis that cannot be computed from the workspace is an error, never an empty result:
a missing layer is 409 (:class:`AnalysisUnavailableError`), a failure of the computation is
500 (:class:`AnalysisFailedError`, "中文 / English" naming the analysis, its source layers and
the cause). A failure is cached like a result, until one of its source layers changes.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from webmap.core.analysis_json import frame_json, kpi_json, status_styles
from webmap.core.analysis_live import DEBOUNCE_S as DEBOUNCE_S
from webmap.core.analysis_live import LiveAnalysis
from webmap.core.errors import ApiError, ComputationFailedError
from webmap.core.events import EventBus
from webmap.core.geojson import features_of, jsonable
from webmap.core.gpkg import lonlat
from webmap.core.http import ApiResponse
from webmap.core.layers import CLOSURES, INCIDENTS
from webmap.core.openapi_base import errors, json_body, ref
from webmap.core.store import FeatureStore

log = logging.getLogger(__name__)

INCIDENT_BUFFER_M = 30.0
"""Road blocked around an open ``road_blocked`` incident, metres (local choice)."""
LINE_BUFFER_M = 5.0
"""Tolerance around a closure line drawn on the map, metres (local choice: drawing precision)."""
SLOW_FACTOR = 2.0
"""Travel-time factor of a closure with ``effect = slowed`` (local choice: half speed)."""
RELIEF_LAYERS = ("roads", "relief_stores", "admin_units", "villages", "population", "shelters")
CIRCLE_LAYERS = ("roads", "population", "elder_care", "admin_units")
CIRCLE_OVERLAYS = ("isochrones", "coverage_gaps")
"""Result layers of the 15-minute circle served by ``/analysis/coverage/layers``."""
SHARE_15MIN_KPI = "Aged 60+ within 15 min walk"
"""``label_en`` of the circle KPI shown as the side panel's coverage share."""


class AnalysisUnavailableError(ApiError):
    """The workspace lacks what an analysis needs: 409 naming the layer."""

    status = 409
    code = "analysis_unavailable"


class AnalysisFailedError(ComputationFailedError):
    """An analysis could not be computed from the workspace's layers (HTTP 500).

    The JSON body has ``code`` ``analysis_failed``, ``description`` ("中文 / English"),
    ``analysis`` (``relief`` or ``coverage``), ``sources`` (the layers it reads) and ``cause``.
    """

    code = "analysis_failed"


_ANALYSES = {
    "relief": ("救灾物资送达核查", "relief audit", RELIEF_LAYERS),
    "coverage": ("15分钟养老服务圈", "15-minute elder-care circle", CIRCLE_LAYERS),
}


def analysis_failure(analysis: str, exc: BaseException) -> AnalysisFailedError:
    """Build the error of an analysis (``relief`` or ``coverage``) whose computation raised."""
    zh, en, layers = _ANALYSES[analysis]
    cause = f"{type(exc).__name__}: {exc}"
    err = AnalysisFailedError(
        f"{zh}无法计算：{cause}。请检查工作区图层 {'、'.join(layers)} 的几何与属性，"
        f"修正后重新导入。 / The {en} could not be computed: {cause}. Check the geometries and "
        f"fields of the workspace layers {', '.join(layers)}, fix them and import them again.",
        extra={"analysis": analysis, "sources": list(layers), "cause": cause},
    )
    err.__cause__ = exc
    return err


def _raise_if_failed(result: Any) -> Any:
    """Return a cached result, or raise (a copy of) the cached failure."""
    if isinstance(result, AnalysisFailedError):
        # a fresh instance per request: one raised exception is not shared by threads
        raise AnalysisFailedError(result.message, extra=result.extra) from result.__cause__
    return result


class Analysis:
    """Relief audit and coverage results for one store, cached and pushed live.

    Parameters
    ----------
    store
        The feature store (layers in lon/lat).
    bus
        The event bus; :meth:`EventBus.poke` wakes the streams for a live ``analysis`` event.
    """

    def __init__(self, store: FeatureStore, bus: EventBus) -> None:
        self.store = store
        self.bus = bus
        self._lock = threading.RLock()
        self._base: tuple[tuple[Any, ...], Any] | None = None
        self._scenario: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        # (source tokens, result or the AnalysisFailedError it failed with)
        self._coverage: tuple[tuple[Any, ...], Any] | None = None
        self._feed = LiveAnalysis(
            store,
            bus,
            self.summary,
            lambda: self._base is not None,
            lambda exc: analysis_failure("relief", exc),
        )

    # -- inputs ---------------------------------------------------------------------------------
    def _layers(self, names: tuple[str, ...]) -> dict[str, gpd.GeoDataFrame]:
        have = set(self.store.layer_names())
        crs = str(self.store.metadata.get("storage_crs") or "EPSG:4490")
        return {n: self.store.frame(n).to_crs(crs) for n in names if n in have}

    def _tokens(self, names: tuple[str, ...]) -> tuple[Any, ...]:
        have = set(self.store.layer_names())
        return tuple(self.store.token(n) if n in have else None for n in names)

    def base_audit(self) -> Any:
        """Return the normal relief audit (run once, again only if its source layers change)."""
        from geo_mz.relief import drive_audit as relief

        key = self._tokens(RELIEF_LAYERS)
        with self._lock:
            if self._base is None or self._base[0] != key:
                meta = self.store.metadata
                try:
                    targets = relief.workspace_targets(meta)
                    a = relief.run_audit(
                        self._layers(RELIEF_LAYERS),
                        relief.ReliefSettings(targets=targets),
                        measure_crs=meta.get("measure_crs"),
                    )
                except relief.ReliefError as exc:
                    raise AnalysisUnavailableError(str(exc)) from exc
                except Exception as exc:  # e.g. roads that make no network: cached, reported
                    log.exception("relief audit failed")
                    a = analysis_failure("relief", exc)
                self._base = (key, a)
                self._feed.start_watching()  # from now on, edits re-run it
            return _raise_if_failed(self._base[1])

    def closures_frame(self) -> gpd.GeoDataFrame:
        """Return the current closures (lon/lat): road_closures plus open road_blocked incidents."""
        parts = []
        names = set(self.store.layer_names())
        if CLOSURES in names:
            c = self.store.frame(CLOSURES)
            if len(c):
                effect = c["effect"] if "effect" in c else pd.Series("closed", index=c.index)
                parts.append(
                    gpd.GeoDataFrame(
                        {"effect": effect.fillna("closed").astype(str), "source": "closure"},
                        geometry=c.geometry.values,
                        crs=c.crs,
                    )
                )
        if INCIDENTS in names:
            i = self.store.frame(INCIDENTS)
            if len(i) and "kind" in i:
                status = i["status"] if "status" in i else pd.Series("", index=i.index)
                # a resolved (road reopened) or closed report no longer cuts the road
                done = status.astype(str).isin(["resolved", "closed"])
                keep = (i["kind"].astype(str) == "road_blocked") & ~done
                if keep.any():
                    n = int(keep.sum())
                    parts.append(
                        gpd.GeoDataFrame(
                            {"effect": ["closed"] * n, "source": ["incident"] * n},
                            geometry=i.geometry.values[keep.to_numpy()],
                            crs=i.crs,
                        )
                    )
        if not parts:
            return gpd.GeoDataFrame({"effect": [], "source": []}, geometry=[], crs="OGC:CRS84")
        return gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=parts[0].crs)

    def disruption(self, base: Any, closures: gpd.GeoDataFrame) -> Any:
        """Turn the closures into a disruption scenario on the base audit's network."""
        from geo_mz.network import disruption as dis

        net = base.network
        out = [dis.no_disruption(net)]
        gtype = closures.geom_type.to_numpy().astype(str)
        src = closures["source"].to_numpy().astype(str)
        eff = closures["effect"].to_numpy().astype(str)
        point = np.isin(gtype, ("Point", "MultiPoint"))
        line = np.char.find(gtype, "LineString") >= 0
        for mask, buf in (
            (point, INCIDENT_BUFFER_M),
            (line & ~point, LINE_BUFFER_M),
            (~point & ~line, 0.0),
        ):
            for effect in ("closed", "slowed"):
                sel = mask & (eff == effect)
                if not sel.any():
                    continue
                reason = "incident" if (src[sel] == "incident").all() else "closure"
                d = dis.from_polygons(net, closures[sel], buffer_m=buf, reason=reason)
                if effect == "slowed":
                    d = dis.Disruption(
                        np.zeros(len(d), bool),
                        np.where(d.closed, SLOW_FACTOR, 1.0),
                        np.where(d.closed, "slowed", "").astype(object),
                    )
                out.append(d)
        return dis.combine(*out)

    # -- relief ---------------------------------------------------------------------------------
    def relief(self) -> dict[str, Any]:
        """Return the relief audit with the current closures as JSON (cached per layer tokens)."""
        base = self.base_audit()
        key = (*(self._base[0] if self._base else ()), *self._tokens((CLOSURES, INCIDENTS)))
        with self._lock:
            if self._scenario is None or self._scenario[0] != key:
                try:
                    result: Any = self._compute(base, key)
                except Exception as exc:  # e.g. closures the network cannot take: reported
                    log.exception("relief audit with the current closures failed")
                    result = analysis_failure("relief", exc)
                self._scenario = (key, result)
            return _raise_if_failed(self._scenario[1])

    def _compute(self, base: Any, key: tuple[Any, ...]) -> dict[str, Any]:
        from geo_mz.outputs import relief as relief_outputs
        from geo_mz.relief import drive_audit as relief

        closures = self.closures_frame()
        d = self.disruption(base, closures)
        scen = (
            relief.reaudit(base, d, name="current closures") if d.n_closed or d.n_slowed else base
        )
        table = scen.table
        villages = table[table["kind"].astype(str) == "village"]
        counts: dict[str, dict[str, int]] = {}
        counts_all: dict[str, dict[str, int]] = {}
        for t in scen.settings.targets:
            counts[t.key] = {
                s: int(((villages["target"] == t.key) & (villages["status"] == s)).sum())
                for s in relief.STATUSES
            }
            counts_all[t.key] = {
                s: int(((table["target"] == t.key) & (table["status"] == s)).sum())
                for s in relief.STATUSES
            }
        changes = relief.compare(base, scen)
        vchg = changes[changes["kind"].astype(str) == "village"]
        falls_out = sorted(set(vchg.loc[vchg["change"] == "falls_out", "point_id"].astype(str)))
        cut_off = sorted(set(vchg.loc[vchg["change"] == "cut_off", "point_id"].astype(str)))
        late_or_cut = sorted(
            set(villages.loc[villages["status"] != "meets", "point_id"].astype(str))
        )
        worst = relief_outputs.worst_per_point(scen)
        changed_ids = set(changes["point_id"].astype(str))
        worst["changed"] = worst["point_id"].astype(str).isin(changed_ids)
        feats = frame_json(worst, "point", "row_id")
        if len(changes):
            feats += frame_json(relief_outputs.detour_layer(base, scen), "route", "route_id")
        cols = ["point_id", "kind", "name", "town_name", "target", "status_before",
                "status_after", "time_before_min", "time_after_min", "change"]  # fmt: skip
        change_rows = [
            {c: jsonable(v) for c, v in zip(cols, row, strict=True)}
            for row in changes[cols].itertuples(index=False)
        ]
        summary = {
            "scenario": "normal" if scen is base else scen.scenario,
            "version": ":".join("-" if k is None else str(k) for k in key),
            "closures": len(closures),
            "edges_closed": int(d.n_closed),
            "edges_slowed": int(d.n_slowed),
            "villages": int(villages["point_id"].nunique()),
            "villages_late_or_cut_off": len(late_or_cut),
            "falls_out": len(falls_out),
            "cut_off": len(cut_off),
            "counts": counts,
        }
        return {
            **summary,
            "targets": [
                {
                    "key": t.key,
                    "level": t.level,
                    "hours": t.hours,
                    "match": t.match,
                    "source": t.source,
                }
                for t in scen.settings.targets
            ],
            "counts_all_points": counts_all,
            "falls_out_ids": falls_out,
            "cut_off_ids": cut_off,
            "changes": change_rows,
            "recomputed": {k: int(v) for k, v in scen.recomputed.items()},
            "features": {"type": "FeatureCollection", "features": feats},
            "statuses": status_styles(),
        }

    def summary(self) -> dict[str, Any]:
        """Return the headline part of :meth:`relief` (what the live event carries)."""
        r = self.relief()
        keys = ("scenario", "version", "closures", "edges_closed", "edges_slowed", "villages",
                "villages_late_or_cut_off", "falls_out", "cut_off", "counts")  # fmt: skip
        return {k: r[k] for k in keys}

    # -- coverage -------------------------------------------------------------------------------
    def _circle(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Run the 15-minute circle once per source-layer tokens: KPIs and result layers."""
        from geo_mz.eldercare import analyse_circle, output_layers

        key = self._tokens(CIRCLE_LAYERS)
        with self._lock:
            if self._coverage is None or self._coverage[0] != key:
                layers = self._layers(CIRCLE_LAYERS)
                missing = [n for n in CIRCLE_LAYERS if n not in layers or layers[n].empty]
                if missing:
                    raise AnalysisUnavailableError(
                        f"the 15-minute circle analysis needs the layers {missing}"
                    )
                entry: Any
                try:
                    result = analyse_circle(layers)
                    out = output_layers(result)
                    entry = {
                        "kpis": [kpi_json(k) for k in result.kpis],
                        "frames": {n: lonlat(out[n]) for n in CIRCLE_OVERLAYS},
                        "json": {},  # per language, built on first request
                    }
                except Exception as exc:  # e.g. elder-care points without geometry: reported
                    log.exception("15-minute circle failed")
                    entry = analysis_failure("coverage", exc)
                self._coverage = (key, entry)
            return self._coverage[0], _raise_if_failed(self._coverage[1])

    def coverage(self) -> list[dict[str, Any]]:
        """KPIs of the 15-minute elder-care circle (cached per source-layer tokens)."""
        return self._circle()[1]["kpis"]

    def coverage_share(self) -> dict[str, Any] | None:
        """Return the KPI "aged 60+ within 15 min walk" (the panel's coverage share), if any."""
        return next((k for k in self.coverage() if k.get("label_en") == SHARE_15MIN_KPI), None)

    def coverage_layers(self, lang: str) -> dict[str, Any]:
        """Return the circle's ``isochrones`` and ``coverage_gaps`` as styled CRS84 GeoJSON.

        Styles, legend and popup texts come from the layers' result specs
        (``geo_mz.core.results.result_catalog``) through :func:`webmap.core.symbology.symbolize`,
        as for the map's own layers. Cached with the KPIs (same run, same tokens).
        """
        from geo_mz.core import result_catalog
        from webmap.core.symbology import symbolize

        key, entry = self._circle()
        with self._lock:
            hit = entry["json"].get(lang)
        if hit is not None:
            return hit
        specs = result_catalog()
        layers: dict[str, Any] = {}
        for name in CIRCLE_OVERLAYS:
            g, spec = entry["frames"][name], specs[name]
            sym = symbolize(g, spec, lang)
            feats = features_of(g, spec.id_field)
            for i, f in enumerate(feats):
                f["style"] = sym.styles[i]
                f["popup"] = {k: sym.texts[k][i] for k, _ in sym.fields if sym.texts[k][i] != ""}
            layers[name] = {
                "type": "FeatureCollection",
                "id": name,
                "title": {"zh": spec.title_zh, "en": spec.title_en},
                "symbology": dict(spec.symbology),
                "legend": sym.legend,
                "fields": [list(f) for f in sym.fields],
                "features": feats,
            }
        body = {
            "version": ":".join("-" if k is None else str(k) for k in key),
            "lang": lang,
            "layers": layers,
        }
        with self._lock:
            entry["json"][lang] = body
        return body

    # -- live updates ---------------------------------------------------------------------------
    def edited(self, layer: str) -> None:
        """Note a committed write: recompute in the background if it can change the relief audit."""
        self._feed.edited(layer)

    def relay(self, chunk: str) -> None:
        """Send an ``analysis`` event computed by another server process to this one's streams."""
        self._feed.relay(chunk)

    def poll_shared(self) -> None:
        """Relay results other processes shared through a GeoPackage journal (see there)."""
        self._feed.poll_shared()

    def live(self, after: int | None) -> tuple[int, list[str]]:
        """For an event stream: the newest analysis event after sequence ``after``.

        ``after=None`` starts a stream: returns the current sequence and nothing.
        """
        return self._feed.live(after)

    def close(self) -> None:
        """Stop the background thread."""
        self._feed.close()


def relief_response(analysis: Analysis) -> ApiResponse:
    """``GET /analysis/relief``."""
    return ApiResponse(body=analysis.relief())


def coverage_response(analysis: Analysis) -> ApiResponse:
    """``GET /analysis/coverage``: the KPIs and, apart, the 15-minute coverage share."""
    return ApiResponse(
        body={"kpis": analysis.coverage(), "share_60plus_15min": analysis.coverage_share()}
    )


def coverage_layers_response(analysis: Analysis, lang: str) -> ApiResponse:
    """``GET /analysis/coverage/layers``."""
    return ApiResponse(body=analysis.coverage_layers(lang))


def analysis_paths() -> dict[str, Any]:
    """OpenAPI paths of ``/analysis/relief``, ``/analysis/coverage`` and its ``/layers``."""
    counts = {"type": "object", "additionalProperties": {"type": "object"}}
    integer = {"type": "integer"}
    relief_body = {
        "type": "object",
        "required": ["scenario", "targets", "counts", "falls_out", "cut_off", "features"],
        "properties": {
            "scenario": {"type": "string"},
            "version": {"type": "string"},
            "closures": integer,
            "edges_closed": integer,
            "edges_slowed": integer,
            "villages": integer,
            "villages_late_or_cut_off": integer,
            "falls_out": integer,
            "cut_off": integer,
            "counts": counts,
            "counts_all_points": counts,
            "targets": {"type": "array", "items": {"type": "object"}},
            "falls_out_ids": {"type": "array", "items": {"type": "string"}},
            "cut_off_ids": {"type": "array", "items": {"type": "string"}},
            "changes": {"type": "array", "items": {"type": "object"}},
            "recomputed": {"type": "object"},
            "features": {"type": "object"},
            "statuses": {"type": "array", "items": {"type": "object"}},
        },
    }
    unavailable = {
        "description": "the workspace lacks a layer the analysis needs",
        **json_body(ref("schemas", "exception")),
    }
    failed = {
        "description": "the analysis could not be computed from the workspace's layers "
        "(`analysis_failed`: the body names the analysis, its source layers and the cause)",
        **json_body(ref("schemas", "exception")),
    }
    return {
        "/analysis/relief": {
            "get": {
                "summary": "relief audit (3 h / 5 h delivery targets) with the current road "
                "closures and open road_blocked incidents: counts per target and status, "
                "villages falling out or cut off versus normal, worst status per point and the "
                "changed routes (GeoJSON, CRS84); live updates as SSE `analysis` events",
                "operationId": "analysisRelief",
                "responses": {
                    "200": {"description": "the audit", **json_body(relief_body)},
                    **errors("401"),
                    "409": unavailable,
                    "500": failed,
                },
            }
        },
        "/analysis/coverage": {
            "get": {
                "summary": "15-minute elder-care circle KPIs (geo_mz.eldercare.circle15)",
                "operationId": "analysisCoverage",
                "responses": {
                    "200": {
                        "description": "the KPIs",
                        **json_body(
                            {
                                "type": "object",
                                "properties": {
                                    "kpis": {"type": "array", "items": {"type": "object"}},
                                    "share_60plus_15min": {
                                        "type": ["object", "null"],
                                        "description": "the KPI 'Aged 60+ within 15 min walk'",
                                    },
                                },
                            }
                        ),
                    },
                    **errors("401"),
                    "409": unavailable,
                    "500": failed,
                },
            }
        },
        "/analysis/coverage/layers": {
            "get": {
                "summary": "15-minute elder-care circle result layers as GeoJSON (CRS84): "
                "`isochrones` (0-5 / 5-10 / 10-15 min walking rings) and `coverage_gaps`, each "
                "a FeatureCollection with its spec symbology and legend; every feature carries "
                "its Leaflet `style` and `popup` texts (computed with the KPIs, cached)",
                "operationId": "analysisCoverageLayers",
                "parameters": [ref("parameters", "lang")],
                "responses": {
                    "200": {
                        "description": "the layers",
                        **json_body(
                            {
                                "type": "object",
                                "required": ["layers"],
                                "properties": {
                                    "version": {"type": "string"},
                                    "lang": {"type": "string"},
                                    "layers": {
                                        "type": "object",
                                        "properties": {
                                            n: {"type": "object"} for n in CIRCLE_OVERLAYS
                                        },
                                    },
                                },
                            }
                        ),
                    },
                    **errors("400", "401"),
                    "409": unavailable,
                    "500": failed,
                },
            }
        },
    }


__all__ = [
    "INCIDENT_BUFFER_M",
    "Analysis",
    "AnalysisFailedError",
    "AnalysisUnavailableError",
    "analysis_failure",
    "analysis_paths",
    "coverage_layers_response",
    "coverage_response",
    "relief_response",
]

"""Large layers by tile: features of one Web-Mercator tile, clipped and simplified by zoom.

``GET /map/tiles/{layer}/{z}/{x}/{y}.json`` answers a GeoJSON FeatureCollection (CRS84) of the
layer's features meeting tile ``z/x/y`` (XYZ scheme): lines and polygons clipped to the tile
grown by a few pixels and simplified to half a pixel
(:func:`webmap.core.tilemath.simplify_tolerance`, topology kept), points unchanged and each
in exactly one tile. Properties are those of ``/map/layers/{id}`` (``s`` style, ``p`` popup
texts), so the page draws both alike.

Tiles are cached as encoded bytes with an ETag (304 on ``If-None-Match``), LRU-bounded. An
edit drops exactly the cached tiles its old and new geometry boxes touch (``after_write``),
re-stamping the others for the layer's new token; any other change of a layer's token (the
file changed outside, another process's edit) makes all its cached tiles misses.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely

from webmap.core.errors import NotFoundError, field_error
from webmap.core.features import check_params, lang_of
from webmap.core.geojson import features_of
from webmap.core.http import GEOJSON, ApiRequest, ApiResponse
from webmap.core.store import FeatureStore
from webmap.core.tilemath import (
    MAX_ZOOM,
    BBox,
    buffer_deg,
    expand,
    geojson_bbox,
    intersects,
    simplify_tolerance,
    tile_bounds,
)

MAX_TILES = 5000
"""Tiles kept in the cache (least recently used dropped first)."""
TILED_MIN_FEATURES = 5000
"""The map page loads layers with more features than this by tile."""
BUFFER_PX = 4.0
"""Margin around a tile, in pixels, kept when clipping (so strokes meet across tile edges)."""

Key = tuple[str, int, int, int, str]
"""(layer, z, x, y, lang)."""


@dataclass
class _Entry:
    token: int
    body: bytes
    etag: str


@dataclass
class _Index:
    token: int
    tree: shapely.STRtree
    ids: np.ndarray
    point: bool
    styles: dict[str, dict[str, str]]  # lang -> fid -> style json, for edit checks


class TileCache:
    """Tiles of every layer of a store, computed on demand and cached.

    Parameters
    ----------
    store
        The feature store (with overlays).
    symbology
        ``symbology(layer, lang)`` as :meth:`webmap.core.mapdata.MapData.symbology`.
    max_tiles
        Cache bound.
    """

    def __init__(self, store: FeatureStore, symbology: Any, *, max_tiles: int = MAX_TILES) -> None:
        self.store = store
        self._symbology = symbology
        self.max_tiles = int(max_tiles)
        self._lock = threading.Lock()
        self._cache: OrderedDict[Key, _Entry] = OrderedDict()
        self._index: dict[str, _Index] = {}
        self.stats = {"hits": 0, "misses": 0, "not_modified": 0, "invalidated": 0, "dropped": 0}

    # -- inspection -------------------------------------------------------------------------
    def cached(self, layer: str | None = None) -> set[tuple[str, int, int, int]]:
        """Return the ``(layer, z, x, y)`` of the valid cached tiles (of one layer when given)."""
        tokens: dict[str, int] = {}
        with self._lock:
            items = list(self._cache.items())
        out = set()
        for (lyr, z, x, y, _), e in items:
            if layer is not None and lyr != layer:
                continue
            if lyr not in tokens:
                tokens[lyr] = self.store.token(lyr)
            if e.token == tokens[lyr]:
                out.add((lyr, z, x, y))
        return out

    # -- index --------------------------------------------------------------------------------
    def _layer_index(self, layer: str, token: int) -> _Index:
        with self._lock:
            idx = self._index.get(layer)
        if idx is not None and idx.token == token:
            return idx
        g = self.store.frame(layer)
        spec = self.store.spec(layer)
        geoms = g.geometry.to_numpy()
        point = spec.geometry.lower().endswith("point")
        idx = _Index(
            token, shapely.STRtree(geoms), g[spec.id_field].astype(str).to_numpy(), point, {}
        )
        with self._lock:
            self._index[layer] = idx
            # the layer changed: its tiles computed before are no use any more
            for k in [k for k, e in self._cache.items() if k[0] == layer and e.token != token]:
                del self._cache[k]
                self.stats["dropped"] += 1
        return idx

    def token(self, layer: str) -> int:
        """Return the layer's current token (read before an edit, for :meth:`after_write`)."""
        return self.store.token(layer)

    # -- tiles --------------------------------------------------------------------------------
    def build(self, layer: str, z: int, x: int, y: int, lang: str) -> tuple[int, bytes]:
        """Compute one tile: ``(token, encoded GeoJSON)``."""
        token = self.store.token(layer)
        idx = self._layer_index(layer, token)
        g = self.store.frame(layer)
        spec = self.store.spec(layer)
        sym = self._symbology(layer, lang)
        west, south, east, north = tile_bounds(z, x, y)
        grown = expand((west, south, east, north), buffer_deg(z, BUFFER_PX))
        rows = np.sort(idx.tree.query(shapely.box(*grown), predicate="intersects"))
        geoms = g.geometry.to_numpy()[rows]
        if idx.point and len(rows):
            # each point in exactly one tile: west and north edges in, east and south out
            px, py = shapely.get_x(geoms), shapely.get_y(geoms)
            keep = (px >= west) & (px < east) & (py > south) & (py <= north)
            if x == 2**z - 1:
                keep |= (px == east) & (py > south) & (py <= north)
            rows, geoms = rows[keep], geoms[keep]
        elif len(rows):
            geoms = shapely.clip_by_rect(geoms, *grown)
            geoms = shapely.simplify(geoms, simplify_tolerance(z), preserve_topology=True)
            keep = ~shapely.is_empty(geoms)
            rows, geoms = rows[keep], geoms[keep]
        sub = g.iloc[rows][[g.geometry.name]].copy()
        sub[g.geometry.name] = geoms
        sub[spec.id_field] = idx.ids[rows]
        feats = features_of(sub, spec.id_field)
        for feat, i in zip(feats, rows, strict=True):
            feat["id"] = str(idx.ids[i])
            feat["properties"] = {
                "s": sym.styles[i],
                "p": {k: sym.texts[k][i] for k, _ in sym.fields if sym.texts[k][i] != ""},
            }
        body = {
            "type": "FeatureCollection",
            "features": feats,
            "tile": {"z": z, "x": x, "y": y, "bbox": [west, south, east, north]},
            "fields": [list(f) for f in sym.fields],
            "legend": sym.legend,
            "total": len(g),
        }
        if lang not in idx.styles and idx.token == token:  # kept to check edits against
            styles = {
                str(i): json.dumps(st, sort_keys=True)
                for i, st in zip(idx.ids, sym.styles, strict=True)
            }
            with self._lock:
                idx.styles.setdefault(lang, styles)
        return token, json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")

    def tile(self, req: ApiRequest, layer: str, z: int, x: int, y: int) -> ApiResponse:
        """Answer ``GET /map/tiles/{layer}/{z}/{x}/{y}.json`` (ETag, 304)."""
        check_params(req, frozenset({"lang"}))
        lang = lang_of(req, "zh") if req.args.get("lang") else "zh"
        n = 2**z if 0 <= z <= MAX_ZOOM else 0
        if not (0 <= x < n and 0 <= y < n):
            raise NotFoundError(
                f"no tile {z}/{x}/{y}: zoom 0..{MAX_ZOOM}, x and y 0..2^z-1",
                code="no_tile",
                errors=[field_error("z/x/y", "bad_tile", f"zoom 0..{MAX_ZOOM}")],
            )
        key: Key = (layer, z, x, y, lang)
        token = self.store.token(layer)
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None and entry.token == token:
                self._cache.move_to_end(key)
                self.stats["hits"] += 1
                state = "hit"
            else:
                entry = None
        if entry is None:
            built_token, body = self.build(layer, z, x, y, lang)
            etag = '"t' + hashlib.sha1(body).hexdigest()[:20] + '"'
            entry = _Entry(built_token, body, etag)
            with self._lock:
                self.stats["misses"] += 1
                self._cache[key] = entry
                self._cache.move_to_end(key)
                while len(self._cache) > self.max_tiles:
                    self._cache.popitem(last=False)
            state = "miss"
        headers = {"ETag": entry.etag, "Cache-Control": "no-cache", "X-Tile-Cache": state}
        sent = req.header("If-None-Match")
        if sent and entry.etag in [s.strip() for s in sent.split(",")]:
            with self._lock:
                self.stats["not_modified"] += 1
            return ApiResponse(304, None, headers, GEOJSON)
        return ApiResponse(200, entry.body.decode("utf-8"), headers, GEOJSON)

    # -- invalidation -----------------------------------------------------------------------
    def invalidate(self, layer: str, boxes: Iterable[BBox]) -> list[tuple[int, int, int]]:
        """Drop the layer's cached tiles (any zoom) that the boxes touch; return their z/x/y."""
        boxes = [tuple(float(v) for v in b) for b in boxes]
        dropped = []
        with self._lock:
            for key in list(self._cache):
                lyr, z, x, y, _ = key
                if lyr != layer:
                    continue
                grown = expand(tile_bounds(z, x, y), buffer_deg(z, BUFFER_PX))
                if any(intersects(grown, b) for b in boxes):  # type: ignore[arg-type]
                    del self._cache[key]
                    dropped.append((z, x, y))
            self.stats["invalidated"] += len(dropped)
        return sorted(set(dropped))

    def after_write(self, layer: str, token_before: int, event_id: int) -> None:
        """Drop exactly the tiles an edit of ``layer`` (committed as event ``event_id``) touched.

        Tiles its old and new geometry boxes touch are dropped; the layer's other tiles, when
        computed at ``token_before``, stay valid under the new token (unless the edit changed
        other features' styles, e.g. graduated class breaks: then all go).
        """
        events = self.store.events_since(event_id - 1, limit=1)
        data = events[0].data if events and events[0].id == event_id else {}
        boxes: list[BBox] = [tuple(b) for b in data.get("bboxes") or []]  # type: ignore[misc]
        fid = str(data.get("id", ""))
        with self._lock:
            idx = self._index.get(layer)
        if not boxes:  # an event without boxes: old geometry from the index, new from the event
            if idx is not None and idx.token == token_before:
                for i in np.flatnonzero(idx.ids == fid):  # the tree keeps the old geometry
                    boxes.append(tuple(shapely.bounds(idx.tree.geometries[i])))  # type: ignore[arg-type]
            new = geojson_bbox((data.get("feature") or {}).get("geometry"))
            if new is not None:
                boxes.append(tuple(new))  # type: ignore[arg-type]
        self.invalidate(layer, boxes)
        token_after = self.store.token(layer)
        keep = idx is not None and idx.token == token_before and self._styles_same(layer, idx, fid)
        with self._lock:
            for key, e in list(self._cache.items()):
                if key[0] != layer:
                    continue
                if keep and e.token == token_before:
                    e.token = token_after
                elif e.token != token_after:
                    del self._cache[key]
                    self.stats["dropped"] += 1

    def _styles_same(self, layer: str, idx: _Index, fid: str) -> bool:
        """Whether features other than ``fid`` keep their styles after the edit."""
        langs = list(idx.styles) or ["zh"]
        new_g = self.store.frame(layer)
        spec = self.store.spec(layer)
        new_ids = new_g[spec.id_field].astype(str).to_numpy()
        for lang in langs:
            old_sym = idx.styles.get(lang)
            if old_sym is None:
                return False
            new_sym = self._symbology(layer, lang)
            new_map = {
                i: json.dumps(s, sort_keys=True)
                for i, s in zip(new_ids, new_sym.styles, strict=True)
            }
            for i, s in old_sym.items():
                if i != fid and new_map.get(i, s) != s:
                    return False
        return True


def tile_paths() -> dict[str, Any]:
    """Return the OpenAPI path of the tile endpoint."""
    whole = {"type": "integer", "minimum": 0}
    params = [
        {"name": "layer", "in": "path", "required": True, "schema": {"type": "string"}},
        {"name": "z", "in": "path", "required": True, "schema": {**whole, "maximum": MAX_ZOOM}},
        {"name": "x", "in": "path", "required": True, "schema": whole},
        {"name": "y", "in": "path", "required": True, "schema": whole},
        {"name": "lang", "in": "query", "schema": {"type": "string", "enum": ["zh", "en"]}},
        {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}},
    ]
    return {
        "/map/tiles/{layer}/{z}/{x}/{y}.json": {
            "get": {
                "summary": "one Web-Mercator tile (XYZ) of a layer for the map page: features "
                "meeting the tile, clipped to it (plus 4 px) and simplified to half a pixel; "
                "properties as /map/layers/{id}; cached, exact invalidation on edits",
                "operationId": "map_tile",
                "tags": ["map"],
                "parameters": params,
                "responses": {
                    "200": {
                        "description": "GeoJSON FeatureCollection (CRS84), with ETag",
                        "content": {GEOJSON: {"schema": {"type": "object"}}},
                    },
                    "304": {"description": "not modified (If-None-Match)"},
                    "400": {"description": "unknown query parameter"},
                    "401": {"description": "login required"},
                    "404": {"description": "no such layer or tile"},
                },
            }
        }
    }


__all__ = ["MAX_TILES", "TILED_MIN_FEATURES", "TileCache", "tile_paths"]

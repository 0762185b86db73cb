"""Pages of features from texts encoded once per layer frame: a page is one ``str.join``.

The stores hand out one cached frame per layer until it changes (a change makes a new frame
object), so the text of each feature, made column by column by
:func:`webmap.core.columnar.feature_texts`, stays valid as long as that frame object lives.
The first request that sees a frame a **second** time starts encoding the whole layer in the
requested CRS in a background thread; once done, pages only pick their rows' texts. Frames
seen once (or larger than the budget) are encoded page by page. Entries die with their frame
(weak references, dropped at the next insert); the least recently used go past ``MAX_BYTES``.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections import OrderedDict

import geopandas as gpd
import numpy as np

from webmap.core.columnar import feature_texts, features_json
from webmap.core.geojson import CRS84

MAX_BYTES = 256 * 2**20
"""Memory for encoded features, per process (local choice: a 100k-point layer takes ~40 MB)."""
MAX_ROWS = 1_000_000
"""Larger frames are always encoded page by page."""

_Key = tuple[int, str, str]
_lock = threading.Lock()
_entries: OrderedDict[_Key, tuple[weakref.ref, np.ndarray, int]] = OrderedDict()
_seen: OrderedDict[_Key, weakref.ref] = OrderedDict()  # frames met once
_building: set[_Key] = set()  # layers being encoded now
_total_bytes = 0


def _live(key: _Key, gdf: gpd.GeoDataFrame) -> np.ndarray | None:
    """Return the cached texts of this very frame (not of a dead one whose id was reused)."""
    hit = _entries.get(key)
    if hit is None or hit[0]() is not gdf:
        return None
    _entries.move_to_end(key)
    return hit[1]


def _insert(key: _Key, gdf: gpd.GeoDataFrame, texts: np.ndarray, size: int) -> None:
    global _total_bytes
    for k in [k for k, (ref, _, _) in _entries.items() if ref() is None or k == key]:
        _total_bytes -= _entries.pop(k)[2]
    _entries[key] = (weakref.ref(gdf), texts, size)
    _total_bytes += size
    while _total_bytes > MAX_BYTES and len(_entries) > 1:
        _total_bytes -= _entries.popitem(last=False)[1][2]


def _seen_before(key: _Key, gdf: gpd.GeoDataFrame) -> bool:
    ref = _seen.get(key)
    if ref is not None and ref() is gdf:
        return True
    _seen[key] = weakref.ref(gdf)
    _seen.move_to_end(key)
    while len(_seen) > 256:
        _seen.popitem(last=False)
    return False


def _texts(gdf: gpd.GeoDataFrame, id_field: str, crs: str) -> np.ndarray | None:
    key = (id(gdf), id_field, crs)
    with _lock:
        found = _live(key, gdf)
        if found is not None:
            return found
        if len(gdf) > MAX_ROWS or key in _building or not _seen_before(key, gdf):
            return None
        _building.add(key)
    # Encoded in the background (about a second per 100k points): no request waits for it,
    # pages are encoded one by one meanwhile.
    worker = threading.Thread(
        target=_build, args=(key, gdf, id_field, crs), name="webmap-encode", daemon=True
    )
    worker.start()
    return None


def _build(key: _Key, gdf: gpd.GeoDataFrame, id_field: str, crs: str) -> None:
    try:
        texts = feature_texts(gdf, id_field, crs=crs)
        size = int(sum(map(sys.getsizeof, texts.tolist()))) + texts.nbytes
        with _lock:
            if size <= MAX_BYTES:
                _insert(key, gdf, texts, size)
    finally:
        with _lock:
            _building.discard(key)


def page_json(gdf: gpd.GeoDataFrame, id_field: str, rows: np.ndarray, *, crs: str = CRS84) -> str:
    """Return the JSON array text of the features at ``rows`` of a store's cached frame.

    Parameters
    ----------
    gdf
        A layer frame as the store caches it (lon/lat); it must not be changed in place.
    id_field
        Column holding each feature's id.
    rows
        Row positions of the page, in order.
    crs
        CRS URI to write the coordinates in.

    Returns
    -------
    str
        Equal to :func:`webmap.core.columnar.features_json` of the same rows.
    """
    if len(rows) == 0:
        return "[]"
    texts = _texts(gdf, id_field, crs)
    if texts is None:
        return features_json(gdf, id_field, crs=crs, rows=rows)
    return "[" + ",".join(texts[rows].tolist()) + "]"


def cached_bytes() -> int:
    """Return the memory taken by encoded features now (bytes, estimated)."""
    with _lock:
        return _total_bytes


__all__ = ["MAX_BYTES", "MAX_ROWS", "cached_bytes", "page_json"]

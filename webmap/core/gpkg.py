"""The GeoPackage backend: a :class:`geo_mz.core.Workspace` plus a SQLite journal.

An edit of a workspace layer (incidents, shelters, ...) writes its one row in place, in one
SQLite transaction (``webmap.core.gpkg_rows``; the whole layer through
``Workspace.write_layers`` when the table does not fit a one-row write). This store's GDAL
reads of the workspace hold the file's in-process lock shared (``geo_mz.core.gpkg_lock``), so
no GDAL handle opens or closes in this process while a row is written; a read that another
process's edit overlapped (the file's stamp moved during it) is read again. The web
map's road closures, the feature versions, the audit log and the events live in the journal.
One edit at a time (a process-wide lock): the journal transaction is opened first, the
workspace is written, then the journal commits; if that commit fails the workspace layer is
written back, so an edit is never half-applied. Several server processes on one workspace
(``geo-mz serve --workers N``): the journal's write transaction serialises their edits, each
store notices another's workspace writes by the file's stamp, and the worker's journal watcher
(``webmap.workers.watch_journal``) calls :meth:`GpkgStore.forget` for layers kept in the journal
(road closures) that another process edited.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio.errors
import pyproj
import shapely

from geo_mz.core import (
    LayerReadError,
    LayerValidationError,
    Workspace,
    WorkspaceError,
    conform_types,
)
from geo_mz.core.gpkg_lock import workspace_lock
from webmap.core.edits_common import check_preconditions, edit_event
from webmap.core.errors import UnprocessableError, field_error
from webmap.core.geojson import features_of, jsonable, make_etag
from webmap.core.gpkg_rows import EDIT_METHOD, RowWriteUnsupported, recover, write_row
from webmap.core.journal import Journal
from webmap.core.layers import CLOSURES, INCIDENTS, closure_spec, layer_spec
from webmap.core.store import Builder, Change, Event, FeatureStore, Op

LONLAT = "OGC:CRS84"
_LONLAT_STORAGE = (4490, 4326)
_READ_TRIES = 4
RECENT_OWN_EVENTS = 500
"""Events this process committed, kept for :meth:`GpkgStore.recent_events` (local choice)."""
_READ_ERRORS = (
    pyogrio.errors.DataSourceError,
    pyogrio.errors.DataLayerError,
    pyogrio.errors.FeatureError,
    WorkspaceError,
    LayerReadError,
)
T = TypeVar("T")

INCIDENTS_ADDED = {
    "synthetic": False,
    "source": "empty: no incident reports yet",
    "method": "added empty by the web map (geo-mz serve) to take incident reports",
}
"""Provenance of the empty ``incidents`` layer the web map adds to a workspace without one."""


def lonlat(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Return the frame with CRS84 coordinates.

    CGCS2000 (EPSG:4490) and WGS84 coordinates are the same numbers at map precision (pyproj's
    transformation between them is the identity), so lon/lat storage is only relabelled.
    """
    if gdf.crs is not None and gdf.crs.to_epsg() in _LONLAT_STORAGE:
        return gdf.set_crs(LONLAT, allow_override=True)
    return gdf.to_crs(LONLAT)


def _concat(parts: list[gpd.GeoDataFrame], like: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        return like.iloc[0:0]
    out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return gpd.GeoDataFrame(out, geometry=like.geometry.name, crs=like.crs)


def stored_value(value: Any) -> Any:
    """JSON value for the closure table: like the API's, but times as naive UTC ISO text."""
    if isinstance(value, pd.Timestamp) and value is not pd.NaT:
        return value.isoformat(timespec="seconds")
    return jsonable(value)


class GpkgStore(FeatureStore):
    """Serve and edit a GeoPackage workspace (one server process).

    Parameters
    ----------
    workspace
        The workspace ``.gpkg``.
    journal
        The journal SQLite file (created when missing).
    """

    def __init__(self, workspace: str | Path, journal: str | Path) -> None:
        recover(workspace)  # an edit killed mid-write: read-only opens refuse its hot journal
        self.ws = Workspace(workspace)
        self._lock = workspace_lock(self.ws.path)
        self.journal = Journal(journal)
        self._meta: dict[str, Any] = self._read(lambda: self.ws.metadata)
        self.storage_crs = str(self._meta["storage_crs"])
        # lon/lat storage (every geo_mz workspace): the cached CRS84 frame holds the file's numbers
        self._lonlat_storage = pyproj.CRS(self.storage_crs).to_epsg() in _LONLAT_STORAGE
        self._specs: dict[str, Any] = {}
        self._own_events: collections.deque[Event] = collections.deque(maxlen=RECENT_OWN_EVENTS)
        self._own_lock = threading.Lock()  # not the cache lock: the event loop asks, briefly
        self._cache_lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._gen = itertools.count(1)
        self._cache: dict[str, tuple[int, gpd.GeoDataFrame]] = {}
        self._names: list[str] | None = None
        self._area: tuple[shapely.Geometry | None] | None = None
        self.added_incidents = self._add_incidents_layer()
        self._stamp = self._file_stamp()

    def _add_incidents_layer(self) -> bool:
        """Add an empty ``incidents`` layer to a workspace made without one; True if added.

        ``geo-mz init`` and ``import`` build workspaces with no incident reports layer; without
        it a reporter's page would offer a form whose every report fails. A read-only file is
        served as it is (its edits fail anyway).
        """
        if INCIDENTS in self._read(self.ws.layers) or not os.access(self.ws.path, os.W_OK):
            return False
        spec = layer_spec(INCIDENTS)
        assert spec is not None  # a catalog layer
        empty = gpd.GeoDataFrame(
            {f.name: [] for f in spec.fields}, geometry=gpd.GeoSeries([]), crs=self.storage_crs
        )
        # another server process may be adding it too: look again under the file lock
        with self._lock.exclusive(write=False):
            if INCIDENTS in self.ws.layers():
                return False
            self.ws.write_layers(
                {INCIDENTS: conform_types(empty, spec)}, {INCIDENTS: INCIDENTS_ADDED}
            )
        return True

    # -- cache ------------------------------------------------------------------------------
    def _file_stamp(self) -> tuple[int, int, int]:
        st = os.stat(self.ws.path)
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _read(self, what: Callable[[], T]) -> T:
        """Read the workspace with GDAL, whole: again if another process wrote meanwhile.

        Each of GDAL's statements reads one committed state, but a layer read is several
        (its feature count, then its rows); an edit committed in between is seen by the file's
        stamp (every in-place write moves it) and the read is repeated. This process's own
        writes wait for the read (the in-process lock, held shared).
        """
        for attempt in range(_READ_TRIES):
            recover(self.ws.path)  # a process killed mid-edit left its journal (one stat)
            before = self._file_stamp()
            try:
                with self._lock.shared():
                    out = what()
            except _READ_ERRORS:
                if self._file_stamp() == before or attempt == _READ_TRIES - 1:
                    raise
                continue
            if self._file_stamp() == before:
                break
        return out

    def _sync(self) -> None:
        """Forget what was read from the workspace if the file changed outside this store."""
        stamp = self._file_stamp()
        if stamp != self._stamp:
            self._cache = {k: v for k, v in self._cache.items() if k == CLOSURES}
            self._names, self._area = None, None
            self._meta = self._read(lambda: self.ws.metadata)
            self._stamp = stamp

    def forget(self, layer: str) -> None:
        """Drop the cached copy of ``layer``: another server process edited it.

        Road closures live in the journal, not the workspace file, so the file stamp does not
        say when another process changed them.
        """
        with self._cache_lock:
            self._cache.pop(layer, None)

    @property
    def metadata(self) -> dict[str, Any]:
        """Workspace metadata (name, adcode, CRSs, lon/lat bounds...)."""
        with self._cache_lock:
            self._sync()
            return dict(self._meta)

    def layer_names(self) -> list[str]:
        """List the stored catalog layers plus ``road_closures``, sorted by name."""
        with self._cache_lock:
            self._sync()
            if self._names is None:
                names = [n for n in self._read(self.ws.layers) if layer_spec(n) is not None]
                self._names = sorted({*names, CLOSURES})
            return list(self._names)

    def spec(self, name: str) -> Any:
        """Return the spec of a served layer; KeyError otherwise."""
        if name not in self.layer_names():
            raise KeyError(name)
        spec = self._specs.get(name)
        if spec is None:  # looked up once: the catalog is read from disk each time
            spec = layer_spec(name)
            if spec is None:
                raise KeyError(name)
            self._specs[name] = spec
        return spec

    def frame(self, name: str) -> gpd.GeoDataFrame:
        """Return the whole layer in CRS84 (cached until it changes)."""
        return self._cached(name)[1]

    def token(self, name: str) -> int:
        """Return the generation number of the cached layer."""
        return self._cached(name)[0]

    def _cached(self, name: str) -> tuple[int, gpd.GeoDataFrame]:
        self.spec(name)
        with self._cache_lock:
            self._sync()
            if name not in self._cache:
                if name == CLOSURES:
                    with self.journal.read() as conn:
                        storage = self._closures(conn)
                else:
                    storage = self._read(lambda: self.ws.read(name))
                self._cache[name] = (next(self._gen), lonlat(storage))
            return self._cache[name]

    def jurisdiction(self) -> shapely.Geometry | None:
        """Union of the admin units marked ``in_jurisdiction`` (lon/lat), or None."""
        with self._cache_lock:
            self._sync()
            if self._area is None:
                area = None
                if "admin_units" in self.layer_names():
                    units = self.frame("admin_units")
                    if "in_jurisdiction" in units.columns:
                        own = units[units["in_jurisdiction"].fillna(False).to_numpy(dtype=bool)]
                        if len(own):
                            area = shapely.union_all(own.geometry.to_numpy())
                            shapely.prepare(area)
                self._area = (area,)
            return self._area[0]

    # -- reading one feature ----------------------------------------------------------------
    def current(self, layer: str, fid: str) -> tuple[dict[str, Any] | None, str | None]:
        """Return the feature ``fid`` as GeoJSON and its ETag."""
        spec = self.spec(layer)
        g = self.frame(layer)
        hit = np.flatnonzero(g[spec.id_field].astype(str).to_numpy() == fid)
        if not len(hit):
            return None, None
        feature = features_of(g.iloc[hit[:1]], spec.id_field)[0]
        with self.journal.read() as conn:
            version = Journal.version(conn, layer, fid)
        return feature, make_etag(version, feature)

    # -- storage ----------------------------------------------------------------------------
    def _closures(self, conn: sqlite3.Connection) -> gpd.GeoDataFrame:
        spec = closure_spec()
        rows = Journal.closure_rows(conn)
        data = {f.name: [p.get(f.name) for p, _ in rows] for f in spec.fields}
        geoms = shapely.from_wkt([w for _, w in rows]) if rows else np.array([], dtype=object)
        g = gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms), crs=self.storage_crs)
        return conform_types(g, spec)

    def _provenance(self, layer: str) -> dict[str, Any]:
        recs = self._read(self.ws.layer_records)
        rec = recs[recs["layer"] == layer].iloc[0].to_dict()
        method = str(rec.get("method") or "")
        return {
            "synthetic": bool(rec.get("synthetic")),
            "source": str(rec.get("source") or ""),
            "method": method if EDIT_METHOD in method else f"{method}; {EDIT_METHOD}",
            "source_crs": str(rec.get("source_crs") or ""),
            "sha256": str(rec.get("sha256") or ""),
        }

    def _write_feature(
        self,
        layer: str,
        fid: str,
        after_row: gpd.GeoDataFrame | None,
        new: gpd.GeoDataFrame,
    ) -> tuple[int, int, int]:
        """Write the one changed row (``webmap.core.gpkg_rows``), else the whole layer.

        Returns the file's stamp right after the write: taken while this edit still holds the
        journal's write lock, so no other process's edit is in it (its layers must be re-read).
        """
        try:
            write_row(self.ws.path, layer, self.spec(layer), fid, after_row, EDIT_METHOD)
        except RowWriteUnsupported:
            self._write_workspace(layer, new)  # e.g. a spec field the stored table lacks
        return self._file_stamp()

    def _write_workspace(self, layer: str, frame: gpd.GeoDataFrame) -> None:
        if self._lonlat_storage:  # a CRS84 frame from the cache: the same numbers
            frame = frame.set_crs(self.storage_crs, allow_override=True)
        prov = self._provenance(layer)
        try:
            # This process's GDAL handles wait; nobody writes the file while it is copied.
            with self._lock.exclusive(write=False):
                self.ws.write_layers({layer: frame.reset_index(drop=True)}, {layer: prov})
        except LayerValidationError as exc:
            errors = [
                field_error(f"properties.{p.field}" if p.field else "feature", p.code, p.message)
                for p in exc.problems
                if p.severity == "error"
            ]
            raise UnprocessableError(
                f"the layer '{layer}' would break its spec; nothing was changed", errors=errors
            ) from exc

    # -- editing ----------------------------------------------------------------------------
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
        """Apply one edit atomically (see :meth:`FeatureStore.apply`)."""
        spec = self.spec(layer)
        own = layer == CLOSURES
        with self._write_lock, self.journal.begin() as conn:
            with self._cache_lock:
                self._sync()  # notice outside changes before this edit moves the stamp on
            shown = not own and self._lonlat_storage  # storage: the cached CRS84 frame
            if own:
                storage = self._closures(conn)
            elif shown:
                storage = self.frame(layer)  # the file's (synced above); same numbers
            else:
                storage = self._read(lambda: self.ws.read(layer))
            ids = storage[spec.id_field].astype(str).to_numpy()
            hit = np.flatnonzero(ids == fid)
            before_row = storage.iloc[hit[:1]] if len(hit) else None
            if before_row is not None and shown:
                before_row = before_row.set_crs(self.storage_crs, allow_override=True)
            before = None
            if before_row is not None:
                before = features_of(lonlat(before_row), spec.id_field)[0]
            version = Journal.version(conn, layer, fid)
            etag = make_etag(version, before) if before is not None else None
            check_preconditions(layer, fid, op, before, etag, if_match)
            after_row = build(before_row)
            if after_row is not None:
                after_row = after_row.to_crs(self.storage_crs)
            i = int(hit[0]) if len(hit) else len(storage)
            middle = [] if after_row is None else [lonlat(after_row) if shown else after_row]
            new = _concat([storage.iloc[:i], *middle, storage.iloc[i + 1 :]], storage)
            after = None
            if after_row is not None:
                after = features_of(lonlat(after_row), spec.id_field)[0]
            data, new_etag = edit_event(
                op=op,
                layer=layer,
                fid=fid,
                version=version + 1,
                before=before,
                after=after,
                user=user,
            )
            at = data["at"]
            event_id = Journal.add_event(conn, at, data)
            Journal.add_audit(
                conn,
                at=at,
                user=user,
                role=role,
                action=op,
                layer=layer,
                fid=fid,
                version=version + 1,
                before=before,
                after=after,
                event_id=event_id,
            )
            Journal.set_version(conn, layer, fid, version + 1)
            if own:
                if before_row is not None:
                    Journal.delete_closure(conn, fid)
                if after_row is not None:
                    props = {
                        f.name: stored_value(after_row[f.name].iloc[0])
                        for f in spec.fields
                        if f.name in after_row.columns
                    }
                    Journal.put_closure(conn, fid, props, after_row.geometry.iloc[0].wkt)
                conn.commit()
            else:
                stamp = self._write_feature(layer, fid, after_row, new)
                try:
                    conn.commit()
                except sqlite3.Error:
                    self._write_feature(layer, fid, before_row, storage)  # put the row back
                    raise
            new = new.reset_index(drop=True)
            # as the log will give it back (JSON), for recent_events
            own_event = Event(event_id, json.loads(json.dumps(data, ensure_ascii=False)))
            with self._own_lock:
                self._own_events.append(own_event)
            with self._cache_lock:
                if not own:
                    self._stamp = stamp  # our own write: the other layers stay valid
                self._cache[layer] = (next(self._gen), new if shown else lonlat(new))
        return Change(Event(event_id, data), new_etag, after)

    # -- logs -------------------------------------------------------------------------------
    def recent_events(self, after_id: int) -> list[Event] | None:
        """Events after ``after_id`` from memory, without a query; None when unsure.

        This process keeps the events it committed. They answer only when they continue
        ``after_id`` without a gap: an id missing in between is another process's event, which
        only the log has. The live-stream hub asks here first (on the event loop, no thread).
        """
        with self._own_lock:
            own = list(self._own_events)
        if not own or own[-1].id <= after_id:
            return None
        out = [ev for ev in own if ev.id > after_id]
        if out[0].id != after_id + 1 or out[-1].id - out[0].id != len(out) - 1:
            return None
        return out

    def events_since(self, after_id: int, *, limit: int = 500) -> list[Event]:
        """Events after ``after_id``, oldest first."""
        return [Event(i, d) for i, d in self.journal.events_since(after_id, limit)]

    def last_event_id(self) -> int:
        """Newest event id (0 when none)."""
        return self.journal.last_event_id()

    def audit_rows(
        self, *, limit: int = 100, offset: int = 0, layer: str | None = None
    ) -> list[dict[str, Any]]:
        """Audit rows, newest first."""
        return self.journal.audit(limit, offset, layer)


__all__ = ["GpkgStore", "lonlat"]

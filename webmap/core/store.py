"""The storage interface the API talks to; GeoPackage today, PostGIS next (same methods).

A store serves typed layers in lon/lat, and applies one edit at a time **atomically**: the
feature, its new version, the audit-log row and the event are written together or not at all.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import geopandas as gpd
import shapely

from geo_mz.core import LayerSpec

Op = Literal["create", "update", "delete"]

Builder = Callable[[gpd.GeoDataFrame | None], gpd.GeoDataFrame | None]
"""Makes the new row from the current one, under the store's write lock.

It gets the current feature as a one-row frame in the storage CRS (None when creating) and
returns the new one-row frame, checked against the layer spec (None when deleting). It raises
:class:`webmap.core.errors.ApiError` to refuse the edit; nothing is written then.
"""


@dataclass(frozen=True)
class Event:
    """One entry of the event log: a monotonically increasing id and a JSON payload."""

    id: int
    data: dict[str, Any]


@dataclass(frozen=True)
class Change:
    """A committed edit, as recorded in the audit log and sent as an event."""

    event: Event
    etag: str | None
    feature: dict[str, Any] | None


class FeatureStore(ABC):
    """Layers, edits, versions, audit log and event log of one workspace.

    Implementations: :class:`webmap.core.gpkg.GpkgStore` (a GeoPackage workspace plus a
    SQLite journal; one server process). A PostGIS store keeps the same contract in one
    database transaction per edit and feeds :meth:`events_since` from ``LISTEN/NOTIFY``.
    """

    @property
    @abstractmethod
    def metadata(self) -> dict[str, Any]:
        """Workspace metadata: at least ``name``, ``adcode`` and lon/lat ``bounds``."""

    @abstractmethod
    def layer_names(self) -> list[str]:
        """Names of the layers served, in catalog order."""

    @abstractmethod
    def spec(self, name: str) -> LayerSpec:
        """Return the layer's spec (titles, fields, symbology); KeyError when not served."""

    @abstractmethod
    def frame(self, name: str) -> gpd.GeoDataFrame:
        """Return the whole layer in lon/lat (CRS84), typed as its spec says; treat as read-only."""

    @abstractmethod
    def token(self, name: str) -> int:
        """Return a number that changes whenever the layer changes (for caches built on it)."""

    @abstractmethod
    def jurisdiction(self) -> shapely.Geometry | None:
        """Return the area edits must touch (lon/lat), or None when the workspace has no units."""

    @abstractmethod
    def current(self, layer: str, fid: str) -> tuple[dict[str, Any] | None, str | None]:
        """Return the feature with id ``fid`` as GeoJSON and its ETag, or ``(None, None)``."""

    @abstractmethod
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
        """Apply one edit atomically.

        Parameters
        ----------
        layer, fid
            What is edited (the id is the layer's id field).
        op
            ``create`` (409 when the id exists), ``update`` or ``delete`` (404 when missing).
        build
            See :data:`Builder`.
        user, role
            Who edits, for the audit log and the event.
        if_match
            The client's ``If-Match``; a stale one raises
            :class:`webmap.core.errors.ConflictError`.

        Returns
        -------
        Change
        """

    @abstractmethod
    def events_since(self, after_id: int, *, limit: int = 500) -> list[Event]:
        """Events with an id greater than ``after_id``, oldest first."""

    @abstractmethod
    def last_event_id(self) -> int:
        """Id of the newest event (0 when there is none)."""

    @abstractmethod
    def audit_rows(
        self, *, limit: int = 100, offset: int = 0, layer: str | None = None
    ) -> list[dict[str, Any]]:
        """Audit-log rows, newest first: who, when, what, before and after (GeoJSON)."""


__all__ = ["Builder", "Change", "Event", "FeatureStore", "Op"]

"""Backend selection: a PostGIS database when ``settings.database_url`` is set, else GeoPackage."""

from __future__ import annotations

from collections.abc import Callable

from webmap.core.store import FeatureStore
from webmap.settings import Settings


def open_store(settings: Settings) -> FeatureStore:
    """Open the feature store the settings name (same API either way)."""
    if settings.database_url:
        from webmap.core.postgis import PostgisStore

        return PostgisStore(settings.database_url)
    from webmap.core.gpkg import GpkgStore

    assert settings.workspace is not None and settings.journal_db is not None
    return GpkgStore(settings.workspace, settings.journal_db)


def listen(store: FeatureStore, publish: Callable[[int], None]) -> None:
    """Have ``publish(event_id)`` called for edits made by other processes (PostGIS only)."""
    fn = getattr(store, "listen", None)
    if callable(fn):
        fn(publish)


def close(store: FeatureStore) -> None:
    """Release the store's threads and connections, if it holds any."""
    fn = getattr(store, "close", None)
    if callable(fn):
        fn()


__all__ = ["close", "listen", "open_store"]

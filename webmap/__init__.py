"""The live web map for disaster command: a thin flask adapter over a framework-neutral core.

Importing this package does nothing but define names: no flask import, no files, no threads.
Build an application explicitly::

    from webmap import Settings, create_app

    app = create_app(Settings(workspace="pengjiang.gpkg", secret_key="..."))

``webmap.core`` answers OGC API - Features, the writes and the live-update stream as plain
Python objects (:class:`webmap.core.api.WebMapAPI`); ``webmap.app`` wraps it in flask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from webmap.settings import Settings, SettingsError

if TYPE_CHECKING:
    from webmap.app import create_app
    from webmap.core.api import WebMapAPI

__all__ = ["Settings", "SettingsError", "WebMapAPI", "create_app"]


def __getattr__(name: str) -> Any:
    """Import the heavy parts (flask, geopandas) only when first used."""
    if name == "create_app":
        from webmap.app import create_app

        return create_app
    if name == "WebMapAPI":
        from webmap.core.api import WebMapAPI

        return WebMapAPI
    raise AttributeError(f"module 'webmap' has no attribute {name!r}")

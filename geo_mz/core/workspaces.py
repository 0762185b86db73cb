"""Open a workspace by what the user gives: a GeoPackage path or a PostGIS URL.

Kept apart from both backends so that neither imports the other's module to dispatch
(the GeoPackage workspace needs no database driver).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from geo_mz.core.workspace import Workspace

if TYPE_CHECKING:
    from geo_mz.core.workspace_postgis import PostgisWorkspace

__all__ = ["open_workspace"]


def open_workspace(path: str | Path) -> Workspace | PostgisWorkspace:
    """Open a workspace: a GeoPackage path, or a PostGIS URL.

    ``postgresql://user:password@host:port/dbname#schema`` (or ``postgres://``) opens a
    :class:`geo_mz.core.PostgisWorkspace`; the ``#schema`` fragment names the
    workspace's schema (``geo_mz_ws`` when absent) and is stripped before connecting. Needs the
    ``postgis`` extra (psycopg 3).
    """
    if str(path).startswith(("postgresql://", "postgres://")):
        from geo_mz.core.workspace_postgis import PostgisWorkspace

        return PostgisWorkspace(str(path))
    return Workspace(path)

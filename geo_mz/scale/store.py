"""Where partitioned runs keep their results: a GeoPackage on one machine, PostGIS for a cluster.

A run store holds, per run (a job over one workspace with one set of options, named by its
``run_key``):

- ``geo_mz_runs``: the run's job, workspace, options and start time;
- ``geo_mz_run_parts``: one row per part (county, town, province) with ``status`` ``done`` or
  ``failed``, the error, row counts, seconds and the worker;
- one table per result layer, ``<job>_<layer>``, with ``run_key``, ``part`` and ``seq`` (the
  row's order within its part) besides the layer's own columns; geometry in EPSG:4490.

:meth:`RunStore.save` replaces a part's rows of every layer and marks it done, on the worker
that computed the part (``writes_on_workers``), so no single writer holds the run back. In
PostGIS (:mod:`geo_mz.scale.store_postgis`) that is one transaction, so a failed or killed part
leaves no rows behind and can be rerun alone. The GeoPackage store
(:mod:`geo_mz.scale.store_gpkg`) gives each part a file of its own holding its rows and its
mark, written whole and renamed into place (:mod:`geo_mz.scale.part_files`); a crash leaves a
part done with all its rows or not done. :meth:`GpkgRunStore.gather` merges the parts saved
since into the store's tables first, so the store ends as one GeoPackage.

This module opens a store from its reference (:func:`open_run_store`) and keeps every name
that was imported from it.
"""

from __future__ import annotations

from pathlib import Path

from geo_mz.scale.store_base import PARTS, RUNS, SRID, RunStore, RunStoreError, frame_schema
from geo_mz.scale.store_gpkg import GpkgRunStore
from geo_mz.scale.store_postgis import PostgisRunStore


def open_run_store(ref: str | Path) -> RunStore:
    """Open (creating if needed) a run store: a ``.gpkg`` path or ``postgresql://…[#schema]``."""
    text = str(ref)
    if text.startswith(("postgresql://", "postgres://")):
        from geo_mz.core.workspace_postgis import split_workspace_url

        url, schema = split_workspace_url(text)
        return PostgisRunStore(url, schema=schema or "geo_mz_runs")
    if not text.endswith(".gpkg"):
        raise RunStoreError(f"{text}: a run store is a .gpkg file or a postgresql:// URL")
    return GpkgRunStore(text)


__all__ = [
    "PARTS",
    "RUNS",
    "SRID",
    "GpkgRunStore",
    "PostgisRunStore",
    "RunStore",
    "RunStoreError",
    "frame_schema",
    "open_run_store",
]

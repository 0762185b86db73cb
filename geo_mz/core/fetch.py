"""Fetch roads (OpenStreetMap) and population rasters (WorldPop) where there is internet.

Optional: geo_mz runs offline, and every analysis reads files the bureau already has. Where the
machine has internet, this module saves the two inputs most districts lack:

* **Roads**: :func:`fetch_osm` posts an Overpass QL query (:func:`overpass_query`: every
  ``highway`` way of a lon/lat bounding box and its nodes) to an Overpass endpoint and saves the
  answer as OSM XML, or downloads a ready extract (``.osm.pbf``, e.g. from Geofabrik or BBBike)
  and checks its sha256. The file is what :func:`geo_mz.core.osm_roads.read_osm_roads` (and
  ``geo-mz import FILE --layer roads``) reads.
* **Population**: :func:`fetch_worldpop` downloads a WorldPop-style GeoTIFF of people per cell,
  checks it is a single-band count raster with a CRS, and optionally crops it to a bounding box.

This module gathers the public names; the code lives in :mod:`geo_mz.core.overpass` (roads),
:mod:`geo_mz.core.fetch_raster` (population rasters) and a package-internal download core
(:func:`download`, :func:`download_file`, the errors).

Every download (:func:`download`) streams into a temporary file beside the destination, checks
the sha256 when one is given and the content (OSM XML with ways, a count raster), and only then
renames it into place: a failed or rejected fetch leaves no file, partial or temporary.
Errors (:class:`FetchError` and its subclasses) name the URL, Chinese first, then English.

Nothing is fetched at import time. The Overpass endpoint is the ``endpoint`` argument, else the
environment variable ``GEO_MZ_OVERPASS_URL``, else :data:`DEFAULT_OVERPASS`. Proxies come from
the usual ``http_proxy``/``https_proxy``/``no_proxy`` variables (urllib's rules).

Data licences: OpenStreetMap data is ODbL 1.0 (© OpenStreetMap contributors; attribute it on
every map and report). WorldPop data is CC BY 4.0 (cite WorldPop, www.worldpop.org).
"""

from __future__ import annotations

from geo_mz.core._fetch_common import (
    ChecksumMismatchError,
    Downloaded,
    FetchContentError,
    FetchError,
    FetchHTTPError,
    FetchInputError,
    FetchTimeoutError,
    Progress,
    download,
    download_file,
)
from geo_mz.core.fetch_raster import (
    RasterFetch,
    RasterSummary,
    check_count_raster,
    fetch_worldpop,
)
from geo_mz.core.overpass import (
    DEFAULT_OVERPASS,
    OVERPASS_ENV,
    OsmFetch,
    OsmSummary,
    check_osm_xml,
    fetch_osm,
    overpass_endpoint,
    overpass_query,
)

__all__ = [
    "DEFAULT_OVERPASS",
    "OVERPASS_ENV",
    "ChecksumMismatchError",
    "Downloaded",
    "FetchContentError",
    "FetchError",
    "FetchHTTPError",
    "FetchInputError",
    "FetchTimeoutError",
    "OsmFetch",
    "OsmSummary",
    "Progress",
    "RasterFetch",
    "RasterSummary",
    "check_count_raster",
    "check_osm_xml",
    "download",
    "download_file",
    "fetch_osm",
    "fetch_worldpop",
    "overpass_endpoint",
    "overpass_query",
]

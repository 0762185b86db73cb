"""OpenStreetMap files as :class:`geo_mz.network.Network` networks, straight from the file.

:func:`network_from_osm` reads with the roads importer's reader and profile by default
(:func:`geo_mz.core.read_osm_roads`: GDAL's OSM driver checked by pyosmium, access tags applied,
ways split at shared node locations), building the network from the projected pieces without
writing a layer. ``reader="pyrosm"`` keeps the pyrosm reader described below.

Topology comes from OSM itself: pyrosm (``get_network(nodes=True)``) splits every way into one
segment per pair of consecutive intersection nodes, with ``u``/``v`` OSM node ids; ways connect
exactly where they share an OSM node, so bridges and tunnels crossing other roads stay apart.

Tag mapping: the profile of :mod:`geo_mz.core.osm_profile`, shared with the roads importer
:func:`geo_mz.core.osm_roads.read_osm_roads`:

* ``highway`` -> catalog road class (``OSM_HIGHWAY_CLASSES``, derived from ``OSM_PROFILE``):
  ``*_link`` as its road; ``unclassified`` and ``track`` -> ``rural``;
  ``living_street``/``service``/``road`` -> ``residential``; paths, steps, pedestrian areas,
  corridors, elevators -> ``footway``; anything else pyrosm returns -> ``residential``.
* ``oneway`` (drive only): ``yes``/``true``/``1`` -> drawn direction only, ``-1``/``reverse`` ->
  against it, ``junction=roundabout|circular`` without ``oneway`` -> drawn direction; the rest
  two-way. Walking ignores ``oneway``.
* ``maxspeed`` (drive only): the first number, ``mph`` converted; ``none``/``signals``/zone codes
  fall back to the class speed.

Access tags (``foot=no``, ``access=private``) are left to pyrosm's own network filters here; the
roads importer applies them itself.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import pandas as pd
import shapely

from geo_mz.core.osm_profile import (
    ONEWAY_BACKWARD,
    ONEWAY_FORWARD,
    ROUNDABOUT_JUNCTIONS,
    highway_classes,
    maxspeed_kmh,
)
from geo_mz.core.osm_roads import read_osm_roads
from geo_mz.network.graph import (
    WALK_SPEED_KMH,
    Mode,
    Network,
    NetworkError,
    assemble,
    check_mode,
    check_positive,
    mode_speeds,
    network_from_roads,
    to_metric,
)

#: OSM ``highway`` value -> catalog road class: the classes of ``OSM_PROFILE`` (see the module
#: docstring); values it excludes or lacks fall back to ``residential`` (pyrosm's own filters
#: already leave out construction, proposed, ... ways).
OSM_HIGHWAY_CLASSES: Mapping[str, str] = MappingProxyType(highway_classes())
_FALLBACK_CLASS = "residential"


def parse_maxspeed_kmh(values: pd.Series) -> np.ndarray:
    """OSM ``maxspeed`` strings as km/h floats (NaN when absent or not numeric).

    ``"50"`` -> 50, ``"30 mph"`` -> 48.28, ``"40;60"`` -> 40 (the first), ``"none"`` -> NaN.
    """
    out = np.full(len(values), np.nan)
    for i, raw in enumerate(values.to_numpy(dtype=object)):
        kmh = maxspeed_kmh(raw)
        if kmh is not None:
            out[i] = kmh
    return out


def oneway_direction(oneway: pd.Series, junction: pd.Series | None = None) -> np.ndarray:
    """Travel direction code from OSM tags: 1 drawn direction only, -1 against it, 0 both."""
    ow = oneway.astype(object).where(oneway.notna(), "").astype(str).str.strip().str.lower()
    out = np.zeros(len(ow), dtype=np.int8)
    out[ow.isin(ONEWAY_FORWARD).to_numpy()] = 1
    out[ow.isin(ONEWAY_BACKWARD).to_numpy()] = -1
    if junction is not None:
        jn = junction.astype(object).where(junction.notna(), "").astype(str).str.lower()
        out[((ow == "") & jn.isin(ROUNDABOUT_JUNCTIONS)).to_numpy()] = 1
    return out


def read_osm_network(
    pbf: str | Path,
    *,
    mode: Mode,
    bounding_box: Sequence[float] | None = None,
    walk_speed_kmh: float = WALK_SPEED_KMH,
    drive_speeds_kmh: Mapping[str, float | None] | None = None,
    disaster_factor: float = 1.0,
    measure_crs: str | None = None,
) -> Network:
    """Build a network from an OSM extract; see :func:`geo_mz.network.network_from_osm`."""
    check_mode(mode)
    walk_speed_kmh = check_positive("walk_speed_kmh", walk_speed_kmh)
    disaster_factor = check_positive("disaster_factor", disaster_factor)
    path = Path(pbf)
    if not path.is_file():
        raise FileNotFoundError(f"OSM extract {path} does not exist")
    if bounding_box is not None and len(bounding_box) != 4:
        raise NetworkError(
            f"`bounding_box` was {bounding_box!r}; expected (min_lon, min_lat, max_lon, max_lat)"
        )
    import pyrosm

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        osm = pyrosm.OSM(
            str(path), bounding_box=None if bounding_box is None else list(bounding_box)
        )
        result = osm.get_network(
            network_type="walking" if mode == "walk" else "driving",
            nodes=True,
            extra_attributes=["junction"] if mode == "drive" else None,
        )
    edges = result[1] if isinstance(result, tuple) else result
    if edges is None or len(edges) == 0:
        notes = "; ".join(str(w.message) for w in caught)
        raise NetworkError(f"no {mode} network in {path} (bounding_box={bounding_box}) {notes}")
    for w in caught:  # nothing is hidden: pyrosm's own warnings are passed on
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if edges.crs is None:
        edges = edges.set_crs("EPSG:4326")
    proj, crs = to_metric(edges, measure_crs, f"OSM network of {path.name}")
    geoms = shapely.force_2d(np.asarray(proj.geometry.values))
    highway = edges["highway"].astype(object).where(edges["highway"].notna(), "")
    classes = highway.map(lambda h: OSM_HIGHWAY_CLASSES.get(h, _FALLBACK_CLASS)).to_numpy(object)
    maxspeed = (
        parse_maxspeed_kmh(edges["maxspeed"])
        if mode == "drive" and "maxspeed" in edges.columns
        else None
    )
    speed, usable = mode_speeds(
        mode, classes, maxspeed, walk_speed_kmh, drive_speeds_kmh, disaster_factor
    )
    direction = np.zeros(len(edges), dtype=np.int8)
    if mode == "drive" and "oneway" in edges.columns:
        junction = edges["junction"] if "junction" in edges.columns else None
        direction = oneway_direction(edges["oneway"], junction)
    use = np.flatnonzero(usable & ~shapely.is_empty(geoms))
    if len(use) == 0:
        raise NetworkError(f"no way in {path} is usable for mode {mode!r}")
    osm_ids, label = np.unique(
        np.concatenate([edges["u"].to_numpy(np.int64)[use], edges["v"].to_numpy(np.int64)[use]]),
        return_inverse=True,
    )
    u, v = label[: len(use)], label[len(use) :]
    node_xy = np.empty((len(osm_ids), 2))
    node_xy[u] = shapely.get_coordinates(shapely.get_point(geoms[use], 0))
    node_xy[v] = shapely.get_coordinates(shapely.get_point(geoms[use], -1))
    return assemble(
        mode=mode,
        crs=crs,
        geoms=geoms[use],
        u=u,
        v=v,
        node_xy=node_xy,
        edge_id=edges["id"].astype(str).to_numpy(dtype=object)[use],
        edge_class=classes[use],
        speed_kmh=speed[use],
        direction=direction[use],
        snap_ends=False,
        loop_tol_m=0.0,
        access_speed_kmh=walk_speed_kmh if mode == "walk" else WALK_SPEED_KMH,
        dropped={"not_in_mode": int(len(edges) - len(use))},
    )


def network_from_osm(
    path: str | Path,
    *,
    mode: Mode,
    reader: Literal["geo_mz", "pyrosm"] = "geo_mz",
    bounding_box: Sequence[float] | None = None,
    clip: Any = None,
    margin_m: float = 0.0,
    walk_speed_kmh: float = WALK_SPEED_KMH,
    drive_speeds_kmh: Mapping[str, float | None] | None = None,
    disaster_factor: float = 1.0,
    measure_crs: str | None = None,
    components: Literal["largest", "all"] = "largest",
    progress: Any = None,
) -> Network:
    """Build a walking or driving network straight from an OpenStreetMap file.

    Parameters
    ----------
    path
        With ``reader="geo_mz"`` (default): any file :func:`geo_mz.core.read_osm_roads` reads
        (``.osm``, ``.osm.pbf``, ``.o5m``, compressed XML, GeoJSON/GPKG of OSM lines). With
        ``reader="pyrosm"``: an ``.osm.pbf`` file.
    mode
        ``"walk"`` or ``"drive"``.
    reader
        ``"geo_mz"``: the roads importer's reader and tag profile (the same network as
        ``network_from_roads(read_osm_roads(path))``, access tags applied, ways split at shared
        node locations), without writing a layer or measuring its quality, and without a second
        reprojection. ``"pyrosm"``: pyrosm's ``get_network`` and its own filters (see
        :mod:`geo_mz.network.osm`).
    bounding_box
        ``(min_lon, min_lat, max_lon, max_lat)``: only roads touching it (pyrosm: read only
        that part of the file).
    clip, margin_m, progress
        ``reader="geo_mz"`` only, as in :func:`geo_mz.core.read_osm_roads` (``clip`` wins
        over ``bounding_box``); the margin defaults to 0 here.
    walk_speed_kmh, drive_speeds_kmh, disaster_factor, measure_crs
        As in :func:`network_from_roads`. ``maxspeed`` tags win over the class table.
    components
        As in :func:`network_from_roads` (``reader="geo_mz"``; pyrosm keeps the largest).

    Returns
    -------
    Network
        ``reader="geo_mz"``: ``edge_id`` is the importer's ``road_id`` (``w<way id>-<piece>``).
        ``reader="pyrosm"``: nodes are OSM nodes, ``edge_id`` the OSM way id as str.

    Raises
    ------
    NetworkError
        Unknown reader, an option the reader does not take, no usable way.
    geo_mz.core.OsmImportError
        The file cannot be read as OSM roads (``reader="geo_mz"``).
    """
    if reader == "pyrosm":
        if clip is not None or components != "largest":
            raise NetworkError(
                "reader='pyrosm' takes no `clip` and keeps the largest component; use "
                "reader='geo_mz'"
            )
        return read_osm_network(
            path,
            mode=mode,
            bounding_box=bounding_box,
            walk_speed_kmh=walk_speed_kmh,
            drive_speeds_kmh=drive_speeds_kmh,
            disaster_factor=disaster_factor,
            measure_crs=measure_crs,
        )
    if reader != "geo_mz":
        raise NetworkError(f"`reader` was {reader!r}; expected 'geo_mz' or 'pyrosm'")
    check_mode(mode)
    if clip is None and bounding_box is not None:
        if len(bounding_box) != 4:
            raise NetworkError(
                f"`bounding_box` was {bounding_box!r}; expected (min_lon, min_lat, max_lon, "
                "max_lat)"
            )
        clip = shapely.box(*(float(b) for b in bounding_box))
    roads, report = read_osm_roads(
        path,
        clip=clip,
        margin_m=margin_m,
        measure_crs=measure_crs,
        progress=progress,
        quality=False,
        in_measure_crs=True,
    )
    return network_from_roads(
        roads,
        mode=mode,
        walk_speed_kmh=walk_speed_kmh,
        drive_speeds_kmh=drive_speeds_kmh,
        disaster_factor=disaster_factor,
        measure_crs=report.measure_crs,
        components=components,
    )

"""Road networks and the engines that run on them.

Graphs from a roads layer or OpenStreetMap,
snapping, multi-source shortest paths, shortest-path forests, isochrones, road closures and
floods, min-cost flow, vehicle routing, and location models (MCLP, LSCP) for siting.

The location models live here, not with one analysis, because both the elder-care circle
(new centres) and relief (new stores) site facilities with them.
"""

from geo_mz.network.disruption import (
    Disruption,
    DisruptionError,
    combine,
    from_edge_ids,
    from_flood_raster,
    from_polygons,
    no_disruption,
    synthetic_flood_raster,
)
from geo_mz.network.flow import (
    Assignment,
    FlowError,
    assign,
)
from geo_mz.network.graph import (
    Network,
    NetworkError,
    Snapped,
    arc_nodes,
    assemble,
    check_mode,
    check_positive,
    geoms_in,
    mode_speeds,
    network_from_roads,
    to_metric,
)
from geo_mz.network.isochrone import (
    IsochroneError,
    isochrones,
    points_in_isochrones,
    reached_edges,
)
from geo_mz.network.osm import (
    network_from_osm,
    oneway_direction,
    parse_maxspeed_kmh,
    read_osm_network,
)
from geo_mz.network.paths import (
    closed_edges_by_geometry,
    edges_frame,
    multi_source_times,
    path_arcs,
    route_geometry,
    shortest_path_arcs,
    snap_points,
    snap_xy,
    to_networkx,
    with_closures,
)
from geo_mz.network.quality import (
    NetworkQuality,
    network_quality,
)
from geo_mz.network.siting import (
    SitingError,
    SitingResult,
    coverage_matrix,
    lscp,
    mclp,
    site_centres,
)
from geo_mz.network.sptree import (
    Forest,
    changed_pairs,
    grow,
    path_to,
    repair,
)
from geo_mz.network.vrp import (
    LATE_PER_S,
    SPAN_PER_S,
    RoutingModelError,
    pieces,
    solve_trip,
    visits,
)

__all__ = [
    "LATE_PER_S",
    "SPAN_PER_S",
    "Assignment",
    "Disruption",
    "DisruptionError",
    "FlowError",
    "Forest",
    "IsochroneError",
    "Network",
    "NetworkError",
    "NetworkQuality",
    "RoutingModelError",
    "SitingError",
    "SitingResult",
    "Snapped",
    "arc_nodes",
    "assemble",
    "assign",
    "changed_pairs",
    "check_mode",
    "check_positive",
    "closed_edges_by_geometry",
    "combine",
    "coverage_matrix",
    "edges_frame",
    "from_edge_ids",
    "from_flood_raster",
    "from_polygons",
    "geoms_in",
    "grow",
    "isochrones",
    "lscp",
    "mclp",
    "mode_speeds",
    "multi_source_times",
    "network_from_osm",
    "network_from_roads",
    "network_quality",
    "no_disruption",
    "oneway_direction",
    "parse_maxspeed_kmh",
    "path_arcs",
    "path_to",
    "pieces",
    "points_in_isochrones",
    "reached_edges",
    "read_osm_network",
    "repair",
    "route_geometry",
    "shortest_path_arcs",
    "site_centres",
    "snap_points",
    "snap_xy",
    "solve_trip",
    "synthetic_flood_raster",
    "to_metric",
    "to_networkx",
    "visits",
    "with_closures",
]

"""Is a built network fit for analysis? Kept vs dropped, largest component, population snapping.

:func:`network_quality` looks at a :class:`~geo_mz.network.Network` after the build: how much of
the usable roads the kept component holds (``Network.dropped`` counts the nodes and edges left
out; the dropped *length* needs the roads layer it was built from), how many components remain
when the network was built with ``components="all"``, and which share of the population snaps
to a node within ``max_snap_m``. The thresholds are those of :mod:`geo_mz.core.roads_quality`
(``MIN_LARGEST_SHARE``, ``MIN_POP_REACH``; local choices). The command line warns with
``problems`` and fails under ``--strict`` when ``ok`` is False.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse.csgraph import connected_components

from geo_mz.core.roads_quality import (
    MIN_POP_REACH,
    problem_lines,
    reach_problem,
    share_problems,
)
from geo_mz.network.graph import Network, NetworkError, mode_speeds
from geo_mz.network.paths import snap_points

__all__ = ["NetworkQuality", "network_quality"]


@dataclass(frozen=True)
class NetworkQuality:
    """Figures of a built network (see :func:`network_quality`).

    Shares are of what the mode could use: ``node_share`` of the nodes (kept + dropped),
    ``length_share`` of the usable road length (None without the roads layer).
    """

    mode: str  #: "walk" or "drive"
    nodes: int  #: nodes in the largest component of the network
    nodes_total: int  #: nodes before the build dropped components (kept + dropped)
    node_share: float  #: nodes / nodes_total
    edges: int  #: edges in the largest component
    edges_dropped: int  #: edges the build dropped (outside the largest component)
    components: int  #: components before the build (dropped + the ones still in the network)
    length_km: float  #: length of the largest component
    length_share: float | None  #: length_km / usable length of ``roads`` (None without roads)
    population_snapped: float | None  #: share of population within max_snap_m of a node
    max_snap_m: float  #: the snapping distance used
    problems: list[str] = field(default_factory=list)  #: "中文 / English" per threshold missed

    @property
    def ok(self) -> bool:
        """True when every threshold is met."""
        return not self.problems

    def lines(self, lang: Literal["zh", "en"] = "zh") -> list[str]:
        """Human-readable summary lines in one language (problems last).

        Parameters
        ----------
        lang
            ``"zh"`` or ``"en"``.

        Returns
        -------
        list of str
        """
        zh = lang == "zh"
        share = "" if self.length_share is None else f"{self.length_share:.1%}"
        if zh:
            m = "步行" if self.mode == "walk" else "车行"
            out = [
                f"{m}路网：保留 {self.nodes}/{self.nodes_total} 个节点（{self.node_share:.1%}），"
                f"{self.edges} 条边，{self.length_km:.2f} km"
                + (f"（占可用道路长度 {share}）" if share else "")
                + f"；原有 {self.components} 个连通分量"
            ]
            if self.population_snapped is not None:
                out.append(
                    f"{self.max_snap_m:.0f} m 内可接入路网的人口占 {self.population_snapped:.1%}"
                )
        else:
            out = [
                f"{self.mode} network: {self.nodes} of {self.nodes_total} nodes kept "
                f"({self.node_share:.1%}), {self.edges} edges, {self.length_km:.2f} km"
                + (f" ({share} of the usable road length)" if share else "")
                + f"; {self.components} connected components before the build"
            ]
            if self.population_snapped is not None:
                out.append(
                    f"population within {self.max_snap_m:.0f} m of a node: "
                    f"{self.population_snapped:.1%}"
                )
        return out + problem_lines(self.problems, "zh" if zh else "en")


def _usable_length_m(net: Network, roads: gpd.GeoDataFrame) -> float:
    """Length of the pieces of ``roads`` the network's mode may use, in the network's CRS."""
    if not isinstance(roads, gpd.GeoDataFrame) or "road_class" not in roads.columns:
        raise NetworkError(
            "`roads` must be the roads layer the network was built from (a GeoDataFrame with "
            "'road_class')"
        )
    if roads.crs is None:
        raise NetworkError("`roads` has no CRS; set it with .set_crs(...)")
    classes = roads["road_class"].to_numpy(dtype=object)
    own = None
    if net.mode == "drive" and "speed_kmh" in roads.columns:
        own = pd.to_numeric(roads["speed_kmh"]).to_numpy(dtype=float, na_value=np.nan)
    _, usable = mode_speeds(net.mode, classes, own, 1.0, None, 1.0)
    geoms = np.asarray(roads.geometry.to_crs(net.crs).values)[usable]
    return float(shapely.length(geoms[~shapely.is_missing(geoms)]).sum())


def network_quality(
    net: Network,
    *,
    roads: gpd.GeoDataFrame | None = None,
    population: gpd.GeoDataFrame | None = None,
    max_snap_m: float = 500.0,
) -> NetworkQuality:
    """Check a built network: largest component vs everything usable, population snapping.

    Parameters
    ----------
    net
        A network from :func:`~geo_mz.network.network_from_roads` or
        :func:`~geo_mz.network.network_from_osm` (``components="largest"`` or ``"all"``).
    roads
        Optional: the roads layer ``net`` was built from. Gives ``length_share`` (the build
        drops nodes and edges, whose length ``Network.dropped`` does not record); without it the
        node share stands in for the length share.
    population
        Optional population points (``pop_total`` weights, else 1 per point): fills
        ``population_snapped``, the share snapping to a node within ``max_snap_m``.
    max_snap_m
        Snapping distance, metres (default 500, as :func:`~geo_mz.network.snap_points`).

    Returns
    -------
    NetworkQuality
        ``ok`` False with ``problems`` naming each threshold missed: the largest component's
        share of the length (``MIN_LARGEST_SHARE``), of the nodes when no roads are given, and
        the population share (``MIN_POP_REACH``).

    Raises
    ------
    NetworkError
        If ``roads`` is not a roads layer with a CRS.
    """
    if not isinstance(net, Network):
        raise NetworkError(f"`net` must be a Network, got {type(net).__name__}")
    connection = "weak" if net.mode == "walk" else "strong"
    ncomp, label = connected_components(net.graph, directed=True, connection=connection)
    counts = np.bincount(label, minlength=max(ncomp, 1))
    big = int(np.argmax(counts)) if net.n_nodes else 0
    in_big = label == big
    edge_in = in_big[net.edge_u] & in_big[net.edge_v]
    dropped_nodes = int(net.dropped.get("nodes", 0))
    nodes_total = net.n_nodes + dropped_nodes
    nodes = int(in_big.sum())
    length_m = float(net.edge_length_m[edge_in].sum())
    length_share = None
    if roads is not None:
        usable_m = _usable_length_m(net, roads)
        length_share = length_m / usable_m if usable_m > 0 else 0.0
    components = int(net.dropped.get("components", 0)) + int(ncomp)
    node_share = nodes / nodes_total if nodes_total else 0.0
    problems = share_problems(
        length_share if length_share is not None else node_share,
        components,
        mode=net.mode,
        what="length" if length_share is not None else "nodes",
    )
    snapped = None
    if population is not None:
        snapped = _snapped_share(net, population, max_snap_m)
        if snapped < MIN_POP_REACH:
            problems.append(reach_problem(snapped, max_snap_m, "node"))
    return NetworkQuality(
        mode=net.mode,
        nodes=nodes,
        nodes_total=nodes_total,
        node_share=node_share,
        edges=int(edge_in.sum()),
        edges_dropped=int(net.dropped.get("edges", 0)) + int((~edge_in).sum()),
        components=components,
        length_km=length_m / 1000.0,
        length_share=length_share,
        population_snapped=snapped,
        max_snap_m=float(max_snap_m),
        problems=problems,
    )


def _snapped_share(net: Network, population: gpd.GeoDataFrame, max_snap_m: float) -> float:
    if len(population) == 0:
        return float("nan")
    snapped = snap_points(net, population, max_snap_m=max_snap_m)
    if "pop_total" in population.columns:
        w = pd.to_numeric(population["pop_total"]).to_numpy(dtype=float, na_value=0.0)
    else:
        w = np.ones(len(population))
    total = float(w.sum())
    return float(w[~snapped.too_far].sum() / total) if total > 0 else float("nan")

"""Is a roads layer a usable network? Components, length share, dangling ends, population reach.

Any roads layer (layers/roads.toml: LineStrings with ``road_class``; ``oneway`` optional) is read
with the topology :func:`geo_mz.network.network_from_roads` will give it: nodes are line *end
points* merged within ``snap_tol_m``, interior vertices never connect; walking uses every class
but ``motorway``, both directions; driving every class but ``footway``, ``oneway`` honoured and
*strongly* connected components. Whatever the network build would drop (everything outside the
component with the most nodes) is measured here first, so a layer that is not split at its
junctions (a raw OpenStreetMap export, issue 14) is caught before any analysis runs on it.

The thresholds are module constants, both local choices (no standard names a figure).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from pyproj import CRS, Transformer
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from geo_mz.core.errors import CrsError, GeoMzError
from geo_mz.core.projection import gk_zone_crs, parse_crs

QualityMode = Literal["walk", "drive", "all"]

#: The largest connected component must hold at least this share of the usable road length
#: (and of the nodes). LOCAL CHOICE: a real street network splits into a few islands at the edge
#: of an extract (gated estates, a footbridge cut by the boundary), never into a tenth of itself.
MIN_LARGEST_SHARE = 0.90
#: At least this share of the population (``pop_total`` of the population points) must lie within
#: ``REACH_DIST_M`` of a usable road. LOCAL CHOICE: below half, the roads do not cover the district
#: (a clipped or partial file), whatever their topology.
MIN_POP_REACH = 0.50
#: Distance from a population point to the nearest road that counts as reached, metres. LOCAL
#: CHOICE, equal to the default ``max_snap_m`` of :func:`geo_mz.network.snap_points`.
REACH_DIST_M = 500.0
#: End points closer than this are one node, metres; the default ``snap_tol_m`` of
#: :func:`geo_mz.network.network_from_roads`.
SNAP_TOL_M = 0.5

# Catalog classes each mode may use, as network.graph decides (core cannot import network).
_NOT_WALKED = frozenset({"motorway"})
_NOT_DRIVEN = frozenset({"footway"})


class RoadsQualityError(GeoMzError, ValueError):
    """A roads or population layer cannot be checked (no CRS, missing column, no lines)."""


@dataclass(frozen=True)
class RoadsQuality:
    """Network figures of a roads layer for one mode (see :func:`roads_quality`).

    ``largest_*`` describe the component the network build keeps (the one with the most nodes).
    ``population_reach`` is None when no population was given. ``problems`` holds one
    ``"中文 / English"`` sentence per threshold missed; ``ok`` is True when there is none.
    """

    mode: str  #: "walk", "drive" or "all"
    pieces: int  #: usable line pieces (MultiLineStrings exploded, zero-length left out)
    nodes: int  #: distinct end points after merging within snap_tol_m
    length_km: float  #: total usable length
    components: int  #: connected components (walk/all weak, drive strong)
    largest_nodes: int  #: nodes of the kept component
    largest_node_share: float  #: largest_nodes / nodes
    largest_length_share: float  #: length inside the kept component / length_km
    dangling_ends: int  #: nodes of degree 1 (a dead end, or a junction the layer is not split at)
    population_reach: float | None = None  #: share of pop_total within reach_dist_m of a road
    reach_dist_m: float = REACH_DIST_M  #: the distance used for population_reach
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
        mode = {"walk": ("步行", "walking"), "drive": ("车行", "driving"), "all": ("全部", "all")}
        m = mode.get(self.mode, (self.mode, self.mode))[0 if zh else 1]
        if zh:
            out = [
                f"{m}路网：{self.pieces} 段，{self.nodes} 个节点，{self.length_km:.2f} km；"
                f"{self.components} 个连通分量，最大分量含 {self.largest_length_share:.1%} 的长度、"
                f"{self.largest_node_share:.1%} 的节点；{self.dangling_ends} 个断头端点",
            ]
            if self.population_reach is not None:
                out.append(
                    f"{self.reach_dist_m:.0f} m 内有道路的人口占 {self.population_reach:.1%}"
                )
        else:
            out = [
                f"{m} network: {self.pieces} pieces, {self.nodes} nodes, {self.length_km:.2f} km; "
                f"{self.components} connected components, the largest holds "
                f"{self.largest_length_share:.1%} of the length and {self.largest_node_share:.1%} "
                f"of the nodes; {self.dangling_ends} dangling ends",
            ]
            if self.population_reach is not None:
                out.append(
                    f"population within {self.reach_dist_m:.0f} m of a road: "
                    f"{self.population_reach:.1%}"
                )
        return out + problem_lines(self.problems, "zh" if zh else "en")


def default_measure_crs(lon: float, lat: float) -> str:
    """Projected metric CRS for a place: its CGCS2000 Gauss-Kruger zone, UTM outside China.

    Parameters
    ----------
    lon, lat
        Degrees (WGS84/CGCS2000).

    Returns
    -------
    str
        e.g. ``"EPSG:4547"`` (GK CM 114E) or ``"EPSG:32635"`` (UTM 35N, Helsinki).
    """
    try:
        return gk_zone_crs(lon)
    except CrsError:
        infos = query_utm_crs_info(
            datum_name="WGS 84", area_of_interest=AreaOfInterest(lon, lat, lon, lat)
        )
        if not infos:
            raise CrsError(f"no UTM zone found for lon {lon:.3f}, lat {lat:.3f}") from None
        return f"EPSG:{infos[0].code}"


def _metric_target(gdf: gpd.GeoSeries, measure_crs: str | None, what: str) -> CRS:
    if gdf.crs is None:
        raise CrsError(f"{what} 没有坐标系 / {what} has no CRS; set it with .set_crs(...)")
    if measure_crs is not None:
        target = parse_crs(measure_crs)
        assert target is not None
    else:
        to_ll = Transformer.from_crs(gdf.crs, "EPSG:4326", always_xy=True)
        w, s, e, n = to_ll.transform_bounds(*gdf.total_bounds)
        target = CRS.from_user_input(default_measure_crs((w + e) / 2.0, (s + n) / 2.0))
    if not target.is_projected:
        raise CrsError(
            f"measure_crs {target.to_string()} 是地理坐标系 / is geographic; "
            "give a projected metric CRS"
        )
    return target


def _cluster_ends(xy: np.ndarray, tol_m: float) -> np.ndarray:
    """Node label of each point: exact duplicates and chains closer than ``tol_m`` merge."""
    flat = np.ascontiguousarray(xy, dtype=np.float64).view(np.complex128).ravel()
    # (x, y) as one hashable number; hashing, not sorting: labels only need to be distinct
    inv, uniq_c = pd.factorize(flat)
    if tol_m > 0 and len(uniq_c) > 1:
        uniq = np.column_stack([uniq_c.real, uniq_c.imag])
        pairs = cKDTree(uniq).query_pairs(tol_m, output_type="ndarray")
        if len(pairs):
            n = len(uniq)
            g = sp.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
            _, lab = connected_components(g, directed=False)
            return lab[inv].astype(np.int64)
    return inv.astype(np.int64)


def _mode_rows(roads: gpd.GeoDataFrame, mode: str) -> np.ndarray:
    if mode == "all":
        return np.ones(len(roads), dtype=bool)
    if "road_class" not in roads.columns:
        raise RoadsQualityError(
            "道路图层缺少 'road_class' 字段 / the roads layer has no 'road_class' column "
            f"(needed to know which roads the {mode} network uses; columns: "
            f"{[c for c in roads.columns if c != roads.geometry.name]})"
        )
    cls = roads["road_class"].astype(object)
    excluded = _NOT_WALKED if mode == "walk" else _NOT_DRIVEN
    return (~cls.isin(excluded) & cls.notna()).to_numpy()


def population_within_m(
    roads: gpd.GeoDataFrame | gpd.GeoSeries,
    population: gpd.GeoDataFrame,
    *,
    dist_m: float = REACH_DIST_M,
    measure_crs: str | None = None,
) -> float:
    """Share of the population within ``dist_m`` of any of ``roads``.

    Parameters
    ----------
    roads
        Road lines with a CRS (all rows count; filter by mode first if needed).
    population
        Points with a CRS; weighted by ``pop_total`` when the column exists, else each point 1.
    dist_m
        Reach, metres (default ``REACH_DIST_M``, local choice).
    measure_crs
        Projected CRS to measure in; default the GK zone (UTM outside China) of the roads.

    Returns
    -------
    float
        In [0, 1]; NaN when the population is empty or sums to 0.

    Raises
    ------
    RoadsQualityError, CrsError
        Without CRS, or when ``pop_total`` is not numeric.
    """
    geoms = roads.geometry if isinstance(roads, gpd.GeoDataFrame) else roads
    target = _metric_target(geoms, measure_crs, "roads")
    if population.crs is None:
        raise CrsError("人口图层没有坐标系 / the population layer has no CRS; set it first")
    if len(population) == 0:
        return float("nan")
    pts = np.asarray(population.geometry.to_crs(target).values)
    if "pop_total" in population.columns:
        try:
            w = pd.to_numeric(population["pop_total"]).to_numpy(dtype=float, na_value=0.0)
        except (TypeError, ValueError) as exc:
            raise RoadsQualityError(
                f"人口图层 'pop_total' 不是数值 / 'pop_total' of the population is not numeric: "
                f"{exc}"
            ) from exc
    else:
        w = np.ones(len(pts))
    total = float(w.sum())
    if total <= 0:
        return float("nan")
    lines = np.asarray(geoms.to_crs(target).values)
    lines = lines[~(shapely.is_missing(lines) | shapely.is_empty(lines))]
    if len(lines) == 0:
        return 0.0
    tree = shapely.STRtree(lines)
    hit_pts, _ = tree.query(pts, predicate="dwithin", distance=float(dist_m))
    reached = np.zeros(len(pts), dtype=bool)
    reached[hit_pts] = True
    return float(w[reached].sum() / total)


def roads_quality(
    roads: gpd.GeoDataFrame,
    *,
    population: gpd.GeoDataFrame | None = None,
    mode: QualityMode = "walk",
    reach_dist_m: float = REACH_DIST_M,
    snap_tol_m: float = SNAP_TOL_M,
    measure_crs: str | None = None,
) -> RoadsQuality:
    """Components, length share, dangling ends and population reach of any roads layer.

    Parameters
    ----------
    roads
        Roads layer with a CRS: (Multi)LineStrings, ``road_class`` (unless ``mode="all"``),
        ``oneway`` optional (drawn direction, used by ``mode="drive"``).
    population
        Optional population points (``pop_total`` weights): fills ``population_reach``.
    mode
        ``"walk"`` (default: the 15-minute circle's network), ``"drive"`` or ``"all"`` (every
        row, undirected).
    reach_dist_m
        Reach for the population share, metres.
    snap_tol_m
        End points closer than this are one node (as ``network_from_roads``).
    measure_crs
        Projected CRS to measure in; default the GK zone of the layer's centre (UTM outside
        China).

    Returns
    -------
    RoadsQuality
        With ``problems`` naming the threshold missed (``MIN_LARGEST_SHARE`` of the length,
        ``MIN_POP_REACH``).

    Raises
    ------
    RoadsQualityError
        Not a GeoDataFrame, ``road_class`` missing, or no usable line.
    CrsError
        Without CRS.
    """
    return roads_qualities(
        roads,
        modes=(mode,),
        population=population,
        reach_dist_m=reach_dist_m,
        snap_tol_m=snap_tol_m,
        measure_crs=measure_crs,
    )[mode]


def roads_qualities(
    roads: gpd.GeoDataFrame,
    *,
    modes: tuple[QualityMode, ...] = ("walk", "drive"),
    population: gpd.GeoDataFrame | None = None,
    reach_dist_m: float = REACH_DIST_M,
    snap_tol_m: float = SNAP_TOL_M,
    measure_crs: str | None = None,
    metric_coords: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, RoadsQuality]:
    """:func:`roads_quality` for several modes, projecting the layer once.

    Parameters
    ----------
    roads, population, reach_dist_m, snap_tol_m, measure_crs
        As in :func:`roads_quality`.
    modes
        The modes to check, e.g. ``("walk", "drive")``.
    metric_coords
        Optional ``(xy, row)``: the vertices of every row of ``roads`` (single LineStrings,
        none empty) already in ``measure_crs`` (required then), and the row of each vertex, as
        :func:`shapely.get_coordinates` with ``return_index`` gives them. Saves reprojecting
        a layer the caller has just built from projected coordinates.

    Returns
    -------
    dict
        Mode -> RoadsQuality.

    Raises
    ------
    RoadsQualityError
        Not a GeoDataFrame, unknown mode, ``road_class`` missing, or no usable line in a mode.
    CrsError
        Without CRS.
    """
    if not isinstance(roads, gpd.GeoDataFrame):
        raise RoadsQualityError(f"`roads` must be a GeoDataFrame, got {type(roads).__name__}")
    bad = [m for m in modes if m not in ("walk", "drive", "all")]
    if bad or not modes:
        raise RoadsQualityError(f"`modes` was {modes!r}; expected 'walk', 'drive' or 'all'")
    if metric_coords is not None and measure_crs is None:
        raise RoadsQualityError("`metric_coords` needs the `measure_crs` they are in")
    target = _metric_target(roads.geometry, measure_crs, "roads")
    usable = {m: _mode_rows(roads, m) for m in modes}
    if metric_coords is not None:
        coords, vpart = metric_coords
        rows = owner = np.arange(len(roads))
        k_all = len(roads)
    else:
        geoms = np.asarray(roads.geometry.values)
        rows = np.flatnonzero(
            np.isin(shapely.get_type_id(geoms), (1, 5)) & ~shapely.is_empty(geoms)
        )
        parts, owner = geoms[rows], np.arange(len(rows))
        if (shapely.get_type_id(parts) == 5).any():
            parts, owner = shapely.get_parts(parts, return_index=True)
            nonempty = ~shapely.is_empty(parts)
            parts, owner = parts[nonempty], owner[nonempty]
        # Measured on coordinate arrays, not on reprojected geometries: a 5 M-piece layer stays
        # a few arrays of floats instead of a second copy of every geometry.
        coords, vpart = shapely.get_coordinates(parts, return_index=True)
        if CRS(roads.crs) != target:
            tr = Transformer.from_crs(roads.crs, target, always_xy=True)
            coords = np.column_stack(tr.transform(coords[:, 0], coords[:, 1]))
        k_all = len(parts)
    seg = np.hypot(*np.diff(coords, axis=0).T)
    seg[vpart[1:] != vpart[:-1]] = 0.0
    length_m = np.bincount(vpart[1:], weights=seg, minlength=k_all)
    first = np.flatnonzero(np.r_[True, vpart[1:] != vpart[:-1]])
    last = np.r_[first[1:] - 1, len(vpart) - 1]
    ends = np.concatenate([coords[first], coords[last]])  # every part is a non-empty line
    part_row = rows[owner]
    one = np.zeros(k_all, dtype=bool)
    if "oneway" in roads.columns:
        oneway = roads["oneway"].astype("boolean").fillna(False).to_numpy(dtype=bool)
        one = oneway[part_row]
    out = {}
    for mode in modes:
        sel = np.flatnonzero(usable[mode][part_row] & (length_m > 0))
        if len(sel) == 0:
            raise RoadsQualityError(
                f"道路图层没有可用于{mode}的线 / no usable {mode} line in roads"
            )
        lines = None
        if population is not None:  # metric lines of this mode, for the reach query
            in_sel = np.zeros(k_all, dtype=bool)
            in_sel[sel] = True
            vsel = in_sel[vpart]
            lines = shapely.linestrings(coords[vsel], indices=np.cumsum(in_sel)[vpart[vsel]] - 1)
        out[mode] = _quality(
            mode,
            np.concatenate([ends[sel], ends[k_all + sel]]),
            length_m[sel],
            one[sel] if mode == "drive" else np.zeros(len(sel), dtype=bool),
            lines,
            target,
            population,
            reach_dist_m,
            snap_tol_m,
        )
    return out


def _quality(
    mode: str,
    ends: np.ndarray,
    length_m: np.ndarray,
    one: np.ndarray,
    parts: np.ndarray | None,
    target: CRS,
    population: gpd.GeoDataFrame | None,
    reach_dist_m: float,
    snap_tol_m: float,
) -> RoadsQuality:
    label = _cluster_ends(ends, snap_tol_m)
    k = len(length_m)
    used, inv = np.unique(label, return_inverse=True)
    u, v = inv[:k], inv[k:]
    n = len(used)
    degree = np.bincount(inv, minlength=n)
    tails = np.concatenate([u, v[~one]])
    heads = np.concatenate([v, u[~one]])
    adj = sp.coo_matrix((np.ones(len(tails)), (tails, heads)), shape=(n, n)).tocsr()
    ncomp, comp = connected_components(
        adj, directed=True, connection="strong" if mode == "drive" else "weak"
    )
    big = int(np.argmax(np.bincount(comp)))
    in_big = comp == big
    edge_in = in_big[u] & in_big[v]
    total_m = float(length_m.sum())
    reach = None
    if population is not None and parts is not None:
        reach = population_within_m(
            gpd.GeoSeries(parts, crs=target),
            population,
            dist_m=reach_dist_m,
            measure_crs=target.to_string(),
        )
    q = RoadsQuality(
        mode=mode,
        pieces=int(k),
        nodes=int(n),
        length_km=total_m / 1000.0,
        components=int(ncomp),
        largest_nodes=int(in_big.sum()),
        largest_node_share=float(in_big.sum() / n),
        largest_length_share=float(length_m[edge_in].sum() / total_m),
        dangling_ends=int((degree == 1).sum()),
        population_reach=reach,
        reach_dist_m=float(reach_dist_m),
    )
    return _with_problems(q)


def _with_problems(q: RoadsQuality) -> RoadsQuality:
    problems = share_problems(q.largest_length_share, q.components, mode=q.mode)
    if q.population_reach is not None and q.population_reach < MIN_POP_REACH:
        problems.append(reach_problem(q.population_reach, q.reach_dist_m, "road"))
    return replace(q, problems=problems)


def share_problems(
    share: float, components: int, *, mode: str, what: Literal["length", "nodes"] = "length"
) -> list[str]:
    """Problem sentence ("中文 / English") for a largest component below ``MIN_LARGEST_SHARE``.

    Parameters
    ----------
    share
        Share of the usable length (or of the nodes) in the largest component.
    components
        Number of connected components, for the message.
    mode
        ``"walk"``, ``"drive"`` or ``"all"``: driving adds the other usual cause (one-way roads
        cut at the edge of the file).
    what
        ``"length"`` (the threshold's measure) or ``"nodes"`` (when lengths are unknown).

    Returns
    -------
    list of str
        Empty when ``share`` meets the threshold, else one sentence.
    """
    if share >= MIN_LARGEST_SHARE:
        return []
    of_zh, of_en = ("道路长度", "road length") if what == "length" else ("节点", "nodes")
    hint_zh = "道路多半没有在路口打断（原始 OSM 导出须用 read_osm_roads 导入）"
    hint_en = (
        "the roads are probably not split at junctions (import a raw OSM export with "
        "geo_mz.core.osm_roads.read_osm_roads)"
    )
    if mode == "drive":
        hint_zh += "，或单行道在文件边界被切断"
        hint_en += ", or one-way roads are cut at the edge of the file"
    return [
        f"最大连通分量只含 {share:.1%} 的{of_zh}（低于 {MIN_LARGEST_SHARE:.0%}，共 {components} "
        f"个分量）：{hint_zh} / the largest connected component holds only {share:.1%} of the "
        f"{of_en} (below {MIN_LARGEST_SHARE:.0%}, {components} components): {hint_en}"
    ]


def problem_lines(problems: list[str], lang: Literal["zh", "en"]) -> list[str]:
    """Return ``"中文 / English"`` problem sentences in one language (the English part for en).

    Parameters
    ----------
    problems
        Sentences as :func:`share_problems` and :func:`reach_problem` give them.
    lang
        ``"zh"`` or ``"en"``; a sentence with no English part is kept whole.

    Returns
    -------
    list of str
    """
    out = []
    for p in problems:
        zh_text, _, en_text = p.partition(" / ")
        out.append(zh_text if lang == "zh" else (en_text or zh_text))
    return out


def reach_problem(share: float, dist_m: float, what: Literal["road", "node"]) -> str:
    """Problem sentence ("中文 / English") for a population share below ``MIN_POP_REACH``.

    Parameters
    ----------
    share
        Share of the population reached.
    dist_m
        The reach distance, metres.
    what
        ``"road"`` (within reach of a road) or ``"node"`` (snapping to a network node).

    Returns
    -------
    str
    """
    zh = "道路" if what == "road" else "路网节点"
    en = "a road" if what == "road" else "a network node"
    return (
        f"只有 {share:.1%} 的人口在{zh} {dist_m:.0f} m 以内（低于 {MIN_POP_REACH:.0%}）："
        f"道路没有覆盖本区 / only {share:.1%} of the population lies within {dist_m:.0f} m of "
        f"{en} (below {MIN_POP_REACH:.0%}): the roads do not cover the district"
    )

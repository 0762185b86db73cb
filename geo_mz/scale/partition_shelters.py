"""Shelter adequacy and evacuation of one part, proven equal to the whole-area run.

Built on ``geo_mz.scale.partition`` (read its docstring: the cut, the proof rule
``s + 2·t·v_max ≤ room``, complete components, the doubling buffer). Walking networks keep
every component, as the parts must (``geo_mz.scale.partition``).

**Shelter adequacy** (``shelter_adequacy_part``). A cell is within reach of a shelter when
its walk is at most the shelter's service time; every such walk is at most ``L`` (the largest
service time of the layer), so a cell with room ``s + 2·L·v`` (or a complete component) has the
whole run's set of shelters in reach. The part's town and village rows are those of the whole
run (the ``total`` row is the part's; ``gather_adequacy_totals`` sums the whole's).

**Evacuation** (``evacuation_part``) is one global min-cost max-flow, but it splits exactly
into the connected components of the bipartite graph "population source - shelter within its
service distance": no flow crosses components, and the optimum of the whole is the union of the
components' optima. A part gathers the components of its own people (with the people and
shelters of other parts they hold: the halo) and grows its cut until every source and shelter
of them is proven complete, i.e. has all its pairs and (for a source) all its cells:

- a source (cells sharing a nearest node and a village) at node ``n``: ``room(n) ≥ 2·L·v +
  2·far_m`` (its shelters, their snaps and paths lie inside, and so does every cell that
  snaps to ``n``, because no population cell is farther than ``far_m`` from the network: each
  part checks this of its own cells, so it holds for the whole layer when the parts cover it;
  ``scale run evacuation`` measures it first, :mod:`geo_mz.scale.partition_evacuation`);
- a shelter at point ``k``: ``room(k) ≥ snap + L·v + 2·far_m`` (every source reaching it is
  complete and inside).

The first cut is the least that can prove a part's own people and the shelters they reach,
``(2·L·v + 3·far_m)`` and slack (``evacuation_buffer_m``): 1.7 km with the measured bound
of the Guangdong workload (L·v = 500 m, far_m = 216 m), 12 km before; it doubles from there.

A shelter that holds everyone who can reach it (proven: all its people are in the part's
problem) never fills, so it couples nobody: its people are split into components as if it were
unlimited, each component offers it at full capacity, and ``gather_evacuation`` sums its loads
(and raises if they ever exceeded its capacity). Only shelters that can fill chain people
together.

Each component is solved once, by the part holding its smallest source code (the others skip
it), so the gathered flows are an optimum of the whole problem: the same people placed and the
same total cost at the solver's resolution (0.01 min). That is what is guaranteed. Where the
optimum is not unique the solver may pick another equally good assignment than the whole run
did: on the Pengjiang sample people of two villages at one node swap shelters at equal cost,
so a few shelters' mean walks differ, while the loads per shelter and the people left
unplaced per village came out equal. A part whose people share shelters with the whole area
(one city-wide chain of components) grows to the whole area: exact, but not cheaper
(``log["halo_sources"]``, ``log["rounds"]`` show it).
Only ``unit="cells"`` is partitioned (``"villages"`` moves a source to its village centre).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from geo_mz.core.projection import STORAGE_CRS, geometries_to_crs
from geo_mz.network.graph import NETWORK_ROAD_FIELDS, Network, network_from_roads
from geo_mz.network.paths import snap_points, snap_xy
from geo_mz.relief import shelters as shel
from geo_mz.scale.cut import QUAD_SEGS, RoadlessCutError, need_roads
from geo_mz.scale.evacuation_gather import gather_evacuation
from geo_mz.scale.part_inputs import own_located
from geo_mz.scale.partition import (
    MAX_ROUNDS,
    SLACK_M,
    Cut,
    Part,
    PartitionError,
    make_cut,
    own_rows,
    part_bbox,
    part_crs,
    part_sources,
    proven,
    read_box,
    read_own,
    roads_extent,
    roads_in_cut,
    source_layer,
    to_cut_crs,
    units_of_part,
)

Frames = dict[str, pd.DataFrame]
_NO_LINES = gpd.GeoDataFrame(
    {c: pd.Series(dtype=t) for c, t in (
        ("line_id", object), ("source_id", object), ("adcode", object),
        ("village_name", object), ("shelter_id", object), ("shelter_name", object),
        ("persons", "int64"), ("walk_min", float),
    )},
    geometry=gpd.GeoSeries([], crs=STORAGE_CRS),
)  # fmt: skip
"""The ``lines`` of a part that places nobody (the columns ``evacuate`` writes)."""
FAR_M = 2000.0
"""Farthest a population cell may lie from the walking network for evacuation parts (m)."""


def _xy(gdf: gpd.GeoDataFrame, crs: str) -> np.ndarray:
    return shapely.get_coordinates(gdf.geometry.to_crs(crs).values)


# --------------------------------------------------------------------------- shelters


def _walk_net(roads: gpd.GeoDataFrame, s: shel.ShelterSettings, crs: str) -> Network:
    return network_from_roads(
        roads, mode="walk", walk_speed_kmh=s.walk_speed_kmh, measure_crs=crs, components="all"
    )


def _shelter_inputs(
    ws: Any, part: Part, s: shel.ShelterSettings, crs: str, *, cells: bool = True
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame | None, gpd.GeoDataFrame, gpd.GeoDataFrame,
           np.ndarray, float]:  # fmt: skip
    """Read the part's units, (``cells``) cells and every shelter, as read and with capacities.

    Returns the units, cells, shelters, their ``shel.shelter_capacity`` table (computed once
    here, not again by the caller), their points in ``crs`` and the longest service time.
    """
    units = units_of_part(ws, part)
    own_units = units[own_rows(units, part.code)]
    pop = None
    if cells:
        pop = read_own(ws, "population", part_bbox(own_units, part), part.code)
    # Every shelter (a small layer, kept per worker while unchanged): the largest service time
    # and the snap-circle proof use the whole layer's, and shelters inside a unit count
    # wherever the cut ends.
    # Their capacities and points too: the same for every part (``part_sources``; the
    # settings' repr names them).
    sheltered = source_layer(ws, "shelters")
    caps = part_sources(ws, "shelters", crs, lambda g: shel.shelter_capacity(g, s), repr(s))
    cap = caps.frame
    reach_min = float(cap["service_min"].max()) if len(cap) else 0.0
    return own_units, pop, sheltered, cap, caps.xy, reach_min


def _grow_until(
    part: Part,
    crs: str,
    buffer_m: float,
    what: str,
    attempt: Callable[[Cut], tuple[bool, Any]],
) -> tuple[Any, dict[str, Any]]:
    """Call ``attempt(cut)`` with doubling buffers until it says its answer is proven.

    An attempt whose cut holds no walkable road raises ``RoadlessCutError``
    (:func:`geo_mz.scale.cut.need_roads`): nothing is proven, the buffer doubles.
    """
    b = float(buffer_m)
    log: dict[str, Any] = {"rounds": 0, "buffer_m": []}
    for _ in range(MAX_ROUNDS):
        try:
            done, answer = attempt(make_cut(part.geometry, crs, b))
        except RoadlessCutError:  # no street in the cut yet (a small first cut): read farther
            log["roadless"] = log.get("roadless", 0) + 1
            done, answer = False, None
        log["rounds"] += 1
        log["buffer_m"].append(b)
        if done:
            return answer, log
        b *= 2.0
    raise PartitionError(
        f"{what}：经 {MAX_ROUNDS} 轮（缓冲 {b / 2:.0f} m）仍未证明与全域一致 / {what}: not "
        f"proven exact after {MAX_ROUNDS} rounds (buffer {b / 2:.0f} m)"
    )


def shelter_adequacy_part(
    ws: Any,
    part: Part,
    *,
    settings: shel.ShelterSettings | None = None,
    measure_crs: str | None = None,
    buffer_m: float = 6000.0,
    roads_bbox: tuple[float, float, float, float] | None = None,
) -> tuple[Frames, dict[str, Any]]:
    """Shelter adequacy rows of one part's towns and villages, as the whole run gives them.

    Parameters
    ----------
    ws
        A workspace with ``roads``, ``population``, ``shelters`` and ``admin_units``.
    part
        The part; its units and cells are those whose codes start with its code.
    settings
        Shelter options.
    measure_crs
        Projected CRS; the workspace's, else the GK zone of the part.
    buffer_m
        First buffer (doubled until every cell is proven). 6 km: twice the longest default
        service distance (2.5 km) and a snap.
    roads_bbox
        Lon/lat extent of the whole roads layer; read when None.

    Returns
    -------
    tuple
        Frames ``towns`` and ``villages`` (rows of :func:`geo_mz.relief.shelter_adequacy`'s
        tables for the part's units, without the ``total`` row) and ``units`` (its unit layer
        rows), and round figures.
    """
    s = settings or shel.ShelterSettings()
    crs = part_crs(part, measure_crs)
    own_units, pop, sheltered, _, shelter_xy, reach_min = _shelter_inputs(ws, part, s, crs)
    extent = roads_bbox or roads_extent(ws)
    cells_m = to_cut_crs(pop, crs).geometry  # reprojected once, for every round's snap
    cell_xy = shapely.get_coordinates(cells_m.values)
    own_shelters = own_located(sheltered, part)

    def attempt(cut: Cut) -> tuple[bool, Any]:
        roads = roads_in_cut(ws, cut, None, list(NETWORK_ROAD_FIELDS))
        need_roads(roads, cut, extent)
        net = _walk_net(roads, s, crs)
        near = shapely.intersects(cut.polygon, shapely.points(shelter_xy)) | own_shelters
        sn = snap_points(net, cells_m, max_snap_m=s.max_snap_m)
        ok = proven(
            net,
            cut,
            cell_xy,
            sn.node,
            sn.offset_m,
            np.full(len(pop), reach_min),
            s.walk_speed_kmh,
            cut.contains_extent(extent),
            source_xy=shelter_xy,
        )
        if not ok.all():
            return False, int((~ok).sum())
        return True, shel.shelter_adequacy(sheltered[near], own_units, pop, net, s)

    ad, log = _grow_until(part, crs, buffer_m, f"shelter adequacy part {part.code}", attempt)
    frames = {
        "towns": ad.table_towns.iloc[:-1],
        "villages": ad.table_villages.iloc[:-1],
        "units": ad.units,
    }
    log |= {"cells": len(pop), "crs": crs, "reach_min": reach_min}
    return frames, log


def gather_adequacy_totals(table: pd.DataFrame) -> pd.Series:
    """Return the ``total`` row of gathered town (or village) rows, as the whole run sums it."""
    num = [
        "population",
        "n_shelters_inside",
        "capacity_persons",
        "fixed_capacity_persons",
        "pop_served",
        "effective_area_m2",
    ]
    # Object dtype: the counts stay whole numbers beside the ratios (an int64 sum would not
    # take a ratio: pandas deprecates that upcast).
    tot = table[num].sum().astype(object)
    pop = tot["population"] if tot["population"] > 0 else np.nan
    tot["capacity_ratio"] = tot["capacity_persons"] / pop
    tot["fixed_capacity_share"] = tot["fixed_capacity_persons"] / pop
    tot["pop_served_share"] = tot["pop_served"] / pop
    tot["pop_unserved"] = tot["population"] - tot["pop_served"]
    tot["area_per_person_m2"] = tot["effective_area_m2"] / pop
    return tot


# --------------------------------------------------------------------------- evacuation


def _cell_sources(
    pop: gpd.GeoDataFrame, xy: np.ndarray, net: Network, s: shel.ShelterSettings
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Group cells as ``evacuate(unit="cells")`` does: per node, village and too-far flag.

    ``xy``: the cells' points in ``net.crs``. Returns the sources (``node``, ``adcode``,
    ``people``, ``offset`` minutes, sorted by node, village and flag as ``evacuate`` groups
    them), each cell's source (-1 for cells without people) and each cell's snap distance (m).
    """
    sn = snap_xy(net, xy, max_snap_m=s.max_snap_m)
    people = np.rint(pd.to_numeric(pop[s.people]).to_numpy(float)).astype(np.int64)
    rank, codes = pd.factorize(pop["adcode"].astype("string").fillna(""), sort=True)
    # One integer per (node, village, flag), ordered as the tuples: numpy groups it.
    key = (sn.node * max(len(codes), 1) + rank) * 2 + sn.too_far
    uniq, group = np.unique(key, return_inverse=True)
    w = people + 1e-9
    people_g = np.bincount(group, weights=people, minlength=len(uniq))
    offset = np.bincount(group, sn.offset_min * w, len(uniq)) / np.bincount(group, w, len(uniq))
    live = people_g > 0
    keep = np.cumsum(live) - 1
    cell_src = np.where(live[group], keep[group], -1)
    node_rank = uniq[live] // 2
    src = pd.DataFrame(
        {
            "node": node_rank // max(len(codes), 1),
            "adcode": np.asarray(codes, dtype=object)[node_rank % max(len(codes), 1)],
            "people": np.rint(people_g[live]).astype(np.int64),
            "offset": offset[live],
        }
    )
    return src, cell_src, sn.offset_m


def _cells_in_cut(pop: gpd.GeoDataFrame, cut: Cut) -> tuple[gpd.GeoDataFrame, np.ndarray]:
    """Return the cells that meet the cut (new index) and their points in the cut's CRS.

    Reprojected once (``in_cut`` would, and the snap again): the points are ``to_crs``'s.
    """
    moved = geometries_to_crs(np.asarray(pop.geometry.values), pop.crs, cut.crs)
    shapely.prepare(cut.polygon)
    keep = np.flatnonzero(shapely.intersects(cut.polygon, moved))
    xy = shapely.get_coordinates(moved[keep])
    if len(xy) != len(keep) or np.any(shapely.get_type_id(moved[keep]) != 0):
        raise PartitionError("population cells must all be non-empty Points")
    return pop.take(keep).reset_index(drop=True), xy


def _pairs(
    net: Network, src: pd.DataFrame, k_node: np.ndarray, k_off: np.ndarray, k_lim: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (source, shelter) within the shelter's service time, with a hair of slack.

    A superset of ``evacuate``'s pairs by at most the float tolerance: components built on it
    can only be larger, never split a component of the whole.
    """
    g = net.graph.T.tocsr()
    si, ki = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    node, off = src["node"].to_numpy(np.int64), src["offset"].to_numpy(float)
    # Shelters a chunk: the dense chunk × nodes array stays under 4 M values (32 MiB).
    chunk = max(1, 4_000_000 // max(net.n_nodes, 1))
    for start in range(0, len(k_node), chunk):
        kk = np.arange(start, min(start + chunk, len(k_node)))
        budget = float((k_lim[kk] - k_off[kk]).max())
        if budget < 0:
            continue
        d = dijkstra(g, directed=True, indices=k_node[kk], limit=budget + 1e-6)
        walk = d[:, node] + k_off[kk, None] + off[None, :]
        r, c = np.nonzero(walk <= k_lim[kk, None] + 1e-6)
        ki.append(kk[r])
        si.append(c.astype(np.int64))
    return np.concatenate(si), np.concatenate(ki)


def _idle_load(cap: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Load rows of shelters nobody can reach (as ``evacuate`` writes unused shelters)."""
    load = cap.copy()
    load["capacity_persons"] = cap["capacity_used_persons"].to_numpy(np.int64)
    load["class_gb51143"] = load["class_gb51143_used"]
    load["assigned_persons"] = 0
    load["load_share"] = np.where(load["capacity_persons"] > 0, 0.0, np.nan)
    load["spare_persons"] = load["capacity_persons"]
    load["status"] = "unused"
    load["mean_walk_min"] = np.nan
    load["max_walk_min"] = np.nan
    return load.to_crs(STORAGE_CRS)


def evacuation_buffer_m(reach_m: float, far_m: float) -> float:
    """Return the least first buffer that can prove a part's own people and their shelters.

    An own cell lies in the part's hull, its node within ``far_m`` of it, so the node has
    room ``b·cos(3π/64) - far_m`` (:mod:`geo_mz.scale.cut`) and needs ``2·reach + 2·far_m``;
    a shelter it reaches lies within ``reach`` (plus its snap) of the node and needs
    ``reach + 2·far_m`` (plus its snap). Both hold from ``2·reach + 3·far_m`` (and slack) on;
    people who share shelters with other parts' need more, and the part grows its cut.

    Parameters
    ----------
    reach_m
        The longest walk to a shelter (its service time at the walking speed), m.
    far_m
        The bound on every cell's distance from the walking network, m.

    Returns
    -------
    float
        Metres.
    """
    return (2.0 * reach_m + 3.0 * far_m + 2.0 * SLACK_M) / np.cos(3.0 * np.pi / (8 * QUAD_SEGS))


def evacuation_part(
    ws: Any,
    part: Part,
    *,
    settings: shel.ShelterSettings | None = None,
    measure_crs: str | None = None,
    buffer_m: float | None = None,
    roads_bbox: tuple[float, float, float, float] | None = None,
    far_m: float = FAR_M,
    engine: str = "ortools",
) -> tuple[Frames, dict[str, Any]]:
    """Evacuate the flow components one part owns: exact pieces of the whole optimum.

    Parameters
    ----------
    ws
        A workspace with ``roads``, ``population`` (with ``adcode``), ``shelters`` and
        ``admin_units``.
    part
        The part; it solves the components whose smallest source code starts with its code.
    settings
        Shelter options.
    measure_crs
        Projected CRS; the workspace's, else the GK zone of the part.
    buffer_m
        First buffer (doubled until the part's components are proven whole); None: the
        least that can prove the part's own people and the shelters they reach
        (``evacuation_buffer_m``).
    roads_bbox
        Lon/lat extent of the whole roads layer; read when None.
    far_m
        No population cell lies farther than this from the walking network (checked for the
        part's cells; see the module docstring). The two-pass job
        (``geo_mz.scale.partition_evacuation``) measures it.
    engine
        Min-cost-flow solver (:func:`geo_mz.relief.evacuate`).

    Returns
    -------
    tuple
        Frames ``load`` (shelters of the owned components and unreachable own shelters),
        ``lines`` (flows; ids renumbered by ``gather_evacuation``) and ``unassigned``
        (per village and reason, ``x_m``/``y_m`` the people-weighted centre in
        ``measure_crs``), and figures: ``components`` owned, ``halo_sources`` (sources of
        other parts in them), ``shared_components`` (holding own people, owned elsewhere).
    """
    s = settings or shel.ShelterSettings()
    crs = part_crs(part, measure_crs)
    own_units, _, sheltered, cap_all, shelter_xy, reach_min = _shelter_inputs(
        ws, part, s, crs, cells=False
    )
    extent = roads_bbox or roads_extent(ws)
    caps = cap_all["capacity_used_persons"].to_numpy(np.int64)
    v = s.walk_speed_kmh * 1000.0 / 60.0
    # Only what the sources, the flows and the figures use (not the cells' other counts, nor
    # their ids: read only to name a cell in an error).
    pop_fields = list(dict.fromkeys(["adcode", s.people]))
    own_k = own_located(sheltered, part)

    def attempt(cut: Cut) -> tuple[bool, Any]:
        roads = roads_in_cut(ws, cut, None, list(NETWORK_ROAD_FIELDS))
        need_roads(roads, cut, extent)
        net = _walk_net(roads, s, crs)
        pop, xy = _cells_in_cut(read_box(ws, "population", cut.lonlat_bbox, pop_fields, cut), cut)
        src, cell_src, cell_off_m = _cell_sources(pop, xy, net, s)
        shapely.prepare(cut.polygon)
        kin = np.flatnonzero(shapely.intersects_xy(cut.polygon, *shelter_xy.T))
        ks = snap_xy(net, shelter_xy[kin], max_snap_m=s.max_snap_m)
        lim = cap_all["service_min"].to_numpy(float)[kin]
        pi, pk = _pairs(net, src, ks.node, ks.offset_min, lim)
        n = len(src)
        # Everything read: the cut holds every road and every cell (read the latter only then).
        full = cut.contains_extent(extent) and cut.contains_extent(ws.extent("population"))
        room_src = cut.room_m(net.node_xy[src["node"].to_numpy()])
        ok_src = room_src >= 2 * reach_min * v + 2 * far_m + SLACK_M
        ok_k = cut.room_m(shelter_xy[kin]) >= ks.offset_m + reach_min * v + 2 * far_m + SLACK_M
        # A proven shelter that holds everyone who can reach it never fills: it joins nobody.
        reach_people = np.bincount(
            pk, weights=src["people"].to_numpy(float)[pi], minlength=len(kin)
        )
        free = (full | ok_k) & (caps[kin] >= reach_people)
        bind = ~free[pk]
        adj = coo_matrix(
            (np.ones(int(bind.sum())), (pi[bind], n + pk[bind])), shape=(n + len(kin),) * 2
        )
        _, comp = connected_components(adj, directed=False)
        own_src = src["adcode"].astype(str).str.startswith(part.code).to_numpy()
        mine = np.isin(comp, comp[:n][own_src])
        mine[n:] |= own_k[kin]  # own shelters, reachable or not
        mine[n + pk[free[pk] & mine[:n][pi]]] = True  # free shelters of those people
        ok = full or bool(ok_src[mine[:n]].all() and ok_k[mine[n:]].all())
        if not ok:
            return False, None
        if full:  # every road and cell read: nothing rests on far_m
            return True, (net, pop, xy, src, cell_src, comp, kin, own_src, pi, pk, free)
        cells = np.flatnonzero(np.isin(cell_src, np.flatnonzero(mine[:n])))
        far = cells[cell_off_m[cells] > far_m]
        if not (cut.room_m(xy[far]) >= cell_off_m[far] + SLACK_M).all():
            return False, None  # the snap itself is not yet the whole network's
        if len(far):
            # Other parts' proofs rest on far_m (a cell that far snaps to their nodes).
            ids = read_box(ws, "population", cut.lonlat_bbox, ["cell_id"], cut)
            ids, _ = _cells_in_cut(ids, cut)  # the same rows, in the same order
            first = ids["cell_id"].iloc[far[0]] if "cell_id" in ids else far[0]
            raise PartitionError(
                f"疏散分区 {part.code}：{len(far)} 个人口格网距步行路网超过 {far_m:g} m / "
                f"evacuation part {part.code}: {len(far)} population cell(s) (e.g. cell_id "
                f"{first}) lie more than {far_m:g} m from the walking network; pass a larger "
                "far_m to every part"
            )
        return True, (net, pop, xy, src, cell_src, comp, kin, own_src, pi, pk, free)

    if buffer_m is None:
        buffer_m = evacuation_buffer_m(reach_min * v, far_m)
    (net, pop, xy, src, cell_src, comp, kin, own_src, pi, pk, free), log = _grow_until(
        part, crs, buffer_m, f"evacuation part {part.code}", attempt
    )
    n = len(src)
    codes = src["adcode"].astype(str).to_numpy()
    # The owner of a component: the part of its smallest source code (ranks: no string min).
    rank, uniq = pd.factorize(codes, sort=True)
    low = np.full(comp.max() + 1 if len(comp) else 0, len(uniq), dtype=np.int64)
    np.minimum.at(low, comp[:n], rank)
    mine_code = np.array([str(c).startswith(part.code) for c in uniq] + [False])
    owned = set(np.flatnonzero(mine_code[low]).tolist())
    solve_src = np.isin(comp[:n], list(owned))
    solve_k = mine_code[low[comp[n:]]]  # binding shelters of owned components
    solve_k[pk[free[pk] & solve_src[pi]]] = True  # and the free ones their people reach
    has_pair = np.isin(np.arange(n), pi)
    flow_src = solve_src & has_pair
    loads, lines = [], []
    unassigned = []
    if flow_src.any() and caps[kin[solve_k]].sum() > 0:
        ev = shel.evacuate(
            pop.iloc[np.flatnonzero(np.isin(cell_src, np.flatnonzero(flow_src)))],
            sheltered.iloc[kin[solve_k]],
            net,
            s,
            unit="cells",
            engine=engine,
            units=own_units,
        )
        loads.append(ev.load)
        lines.append(ev.lines)
        un = ev.unassigned.to_crs(crs)
        unassigned.append(
            pd.DataFrame(
                {
                    "adcode": un["adcode"],
                    "reason": un["reason"],
                    "persons_unassigned": un["persons_unassigned"],
                    "x_m": un.geometry.x,
                    "y_m": un.geometry.y,
                }
            )
        )
    else:
        flow_src[:] = False
    idle_k = own_k[kin] & ~np.isin(np.arange(len(kin)), pk)  # reached by nobody at all
    rest = solve_src & ~flow_src  # no shelter within reach (or none with room)
    if rest.any():
        reason = np.where(has_pair[rest], "shelters_full", "no_shelter_within")
        cells = np.flatnonzero(np.isin(cell_src, np.flatnonzero(rest)))
        p = np.rint(pd.to_numeric(pop[s.people]).to_numpy(float)[cells])
        df = pd.DataFrame(
            {
                "adcode": codes[cell_src[cells]],
                "reason": reason[np.searchsorted(np.flatnonzero(rest), cell_src[cells])],
                "persons_unassigned": p,
                "x_m": xy[cells, 0] * p,
                "y_m": xy[cells, 1] * p,
            }
        )
        df = df[df["persons_unassigned"] > 0].groupby(["adcode", "reason"], as_index=False).sum()
        df["x_m"] /= df["persons_unassigned"]
        df["y_m"] /= df["persons_unassigned"]
        unassigned.append(df)
    if idle_k.any() or (solve_k.any() and not flow_src.any()):
        idle = idle_k | (solve_k & ~flow_src.any())
        loads.append(_idle_load(cap_all.iloc[kin[idle]]))
    frames = {
        "load": pd.concat(loads, ignore_index=True) if loads else _idle_load(cap_all.iloc[:0]),
        "lines": pd.concat(lines, ignore_index=True) if lines else _NO_LINES.copy(),
        "unassigned": pd.concat(unassigned, ignore_index=True)
        if unassigned
        else pd.DataFrame(columns=["adcode", "reason", "persons_unassigned", "x_m", "y_m"]),
    }
    log |= {
        "cells": int(own_rows(pop, part.code).sum()),
        "crs": crs,
        "components": len(owned),
        "halo_sources": int((solve_src & ~own_src).sum()),
        "shared_components": len(set(comp[:n][own_src].tolist()) - owned),
        "free_shelters": int((solve_k & free).sum()),
    }
    return frames, log


__all__ = [
    "FAR_M",
    "evacuation_buffer_m",
    "evacuation_part",
    "gather_adequacy_totals",
    "gather_evacuation",
    "shelter_adequacy_part",
]

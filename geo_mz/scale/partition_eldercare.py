"""The rest of the 15-minute circle per part: capacity, E2SFCA, isochrone rings and gaps.

Each builds on the proof rules of :mod:`geo_mz.scale.partition` (a time is the whole
network's when ``s + 2·t·v_max`` fits in the cut, or its component is complete):

- **capacity-adjusted coverage** and **E2SFCA** need every person within a centre's catchment,
  wherever they live, so they run in two passes
  (:class:`geo_mz.scale.partition_twopass.TwoPassJob`): pass 1 gives each centre's demand
  from the part's own proven people, a reduce sums it over all parts, pass 2 uses the sums.
  E2SFCA's (centre, point) pairs within the catchment ``t0`` are proven per point with
  ``t = t0``: every route and centre that could be within ``t0`` of the point then lies in
  the cut;
- **isochrone rings** are drawn per part and clipped to its polygon
  (:mod:`geo_mz.scale.partition_rings`);
- **gap hexagons**: each part sums its uncovered people (proven times) per cell of the run's
  one hexagon grid, a reduce sums the cells over parts, labels clusters and ranks them, and
  each cell's or cluster's owner draws it (:mod:`geo_mz.scale.partition_gaps`).

Rows that belong to no single part (a centre, a hexagon, a cluster) are written by one
owner: the part whose polygon holds the centre (lowest code on a shared border), else the
lowest code among the parts that gave it demand or people, else the lowest code of the run.

What "equal" means: times, pairs, cells, counts, ids, ranks and people (integer counts) are
the same values; sums of float products (demand, access, mean walk) agree to 1e-12 relative
(the parts add them in another order); rings agree to 1e-6 of their area.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.core.projection import STORAGE_CRS
from geo_mz.core.standards import BEDS_PER_1000_MIN, RESIDENTIAL_KINDS
from geo_mz.eldercare import capacity, coverage
from geo_mz.eldercare.circle15 import CircleSettings
from geo_mz.network.graph import network_from_roads
from geo_mz.network.paths import snap_points
from geo_mz.scale.cut import need_roads
from geo_mz.scale.partition import (
    SLACK_M,
    Part,
    PartitionError,
    make_cut,
    own_bbox,
    part_crs,
    part_unit_tables,
    prove_rounds,
    proven,
    proven_times,
    read_own,
    roads_extent,
    roads_in_cut,
    to_cut_crs,
    units_of_part,
)
from geo_mz.scale.partition_gaps import GAPS, gaps_first, gaps_reduce, gaps_second
from geo_mz.scale.partition_rings import rings_part
from geo_mz.scale.partition_twopass import Frames, TwoPassJob

TOL_MIN = capacity.TOL_MIN
"""Inclusive thresholds, as in :mod:`geo_mz.eldercare` (absorbs float noise only)."""
POP = "pop_60plus"


def _part_row(part: Part, **extra: Any) -> pd.DataFrame:
    return pd.DataFrame([{"part": part.code, **extra}])


def _weighted_counts(at: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    """``np.bincount`` with weights, always float (numpy gives int64 when there are none)."""
    return np.bincount(at, weights, n).astype(float)


def _owners(rows: pd.DataFrame, parts: pd.DataFrame) -> dict[str, Any]:
    """Owner of each key (see the module docstring): inside first, then contributors."""
    r = rows.assign(_out=~rows["inside"].astype(bool)).sort_values(["_out", "part"])
    owner = r.drop_duplicates("key").set_index("key")["part"].to_dict()
    return {"owner": owner, "default_owner": str(parts["part"].min())}


def _is_owner(keys: Sequence[Any], shared: Mapping[str, Any], part: Part) -> np.ndarray:
    own = shared["owner"]
    return np.array([own.get(k, shared["default_owner"]) == part.code for k in keys], dtype=bool)


def _ids(centres: gpd.GeoDataFrame) -> np.ndarray:
    col = centres["facility_id"] if "facility_id" in centres.columns else centres.index.to_series()
    return col.to_numpy(dtype=object)


def _capacity(centres: gpd.GeoDataFrame, field: str) -> np.ndarray:
    if field not in centres.columns:
        raise PartitionError(
            f"elder_care 缺少容量字段 {field!r} / elder_care has no {field!r} field"
        )
    x = pd.to_numeric(centres[field], errors="coerce").to_numpy(float, na_value=np.nan)
    bad = ~(x >= 0)
    if bad.any():
        ids = _ids(centres)[bad][:10].tolist()
        raise PartitionError(
            f"elder_care 字段 {field!r} 须为非负数：设施 {ids} / elder_care field {field!r} "
            f"must be a number >= 0; facilities {ids} are not"
        )
    return x


def _inside(centres: gpd.GeoDataFrame, part: Part) -> np.ndarray:
    pts = centres.geometry.to_crs(STORAGE_CRS).values
    return shapely.covers(part.geometry, np.asarray(pts))


# --------------------------------------------------------------------------- capacity


def capacity_first(
    ws: Any,
    part: Part,
    *,
    settings: CircleSettings | None = None,
    measure_crs: str | None = None,
    buffer_m: float = 2000.0,
    roads_bbox: tuple[float, float, float, float] | None = None,
    capacity_field: str = "places",
    part_times: Mapping[str, gpd.GeoDataFrame] | None = None,
    times_run: Mapping[str, str] | None = None,
    keep_part_rows: bool = False,
) -> tuple[Frames, dict[str, Any]]:
    """Pass 1 of capacity-adjusted coverage: covered aged 60+ per serving centre.

    Options as :func:`geo_mz.scale.coverage_part`; ``capacity_field`` the centres'
    places; ``part_times`` and ``times_run`` as ``proven_times``; ``keep_part_rows`` adds the
    part's ``times`` for its own second pass (its ``first``), not for the reduce.

    Returns
    -------
    tuple
        Frames ``demand`` (``part``, ``key`` = centre id, ``inside``, ``covered_pop``),
        ``parts`` (and ``times``); the log.
    """
    s = settings or CircleSettings()
    times, log = proven_times(ws, part, s, measure_crs, buffer_m, roads_bbox, part_times, times_run)
    centres = coverage.select_centres(ws.read("elder_care"), kinds=s.kinds, statuses=s.statuses)
    _capacity(centres, capacity_field)
    ids = pd.Index(_ids(centres))
    covered = times["walk_min"].to_numpy(float) <= max(s.thresholds_min) + TOL_MIN
    j = ids.get_indexer(pd.Index(times["nearest_centre"].to_numpy(object)[covered]))
    if (j < 0).any():
        bad = sorted({str(x) for x in times["nearest_centre"].to_numpy(object)[covered][j < 0]})
        raise PartitionError(
            f"部分 {part.code} 的步行时间指向不在所选设施中的中心 {bad[:10]} / part {part.code}: "
            f"times name centres not among the selected ones {bad[:10]} (other settings?)"
        )
    pop = times[POP].to_numpy(float)[covered]
    demand = _weighted_counts(j, pop, len(ids))
    inside = _inside(centres, part)
    keep = (np.bincount(j, minlength=len(ids)) > 0) | inside
    rows = pd.DataFrame({"part": part.code, "key": ids[keep], "inside": inside[keep],
                         "covered_pop": demand[keep]})  # fmt: skip
    frames = {"demand": rows, "parts": _part_row(part)}
    return frames | ({"times": times} if keep_part_rows else {}), log


def capacity_reduce(frames: Frames) -> dict[str, Any]:
    """Sum the parts' covered aged 60+ per centre; name each centre's owner."""
    d = frames["demand"]
    total = d.groupby("key", sort=False)["covered_pop"].sum()
    return {"covered_pop": total.to_dict(), **_owners(d, frames["parts"])}


def capacity_second(
    ws: Any,
    part: Part,
    *,
    shared: Mapping[str, Any],
    first: Frames | None = None,
    settings: CircleSettings | None = None,
    measure_crs: str | None = None,
    buffer_m: float = 2000.0,
    roads_bbox: tuple[float, float, float, float] | None = None,
    capacity_field: str = "places",
    part_times: Mapping[str, gpd.GeoDataFrame] | None = None,
    times_run: Mapping[str, str] | None = None,
) -> tuple[Frames, dict[str, Any]]:
    """Pass 2: :func:`geo_mz.eldercare.capacity_adjusted_coverage` with the run's demand.

    The whole function computes the factors: it is given the part's points (with no people,
    so they add no demand) and one point per centre holding the run's covered people.

    Returns
    -------
    tuple
        Frames ``times`` (+ ``capacity_factor``, ``covered_pop``, ``covered_pop_adjusted``),
        ``units`` (coverage rows with ``covered_capacity_adj``/``share_capacity_adj``) and
        ``centres`` (the centres this part owns: ``capacity``, ``covered_pop``,
        ``demand_places``, ``capacity_factor``); the log.
    """
    s = settings or CircleSettings()
    log: dict[str, Any] = {}
    first = first or {}
    if "times" in first:
        times = first["times"]
    else:
        times, tlog = proven_times(ws, part, s, measure_crs, buffer_m, roads_bbox, part_times,
                                   times_run)  # fmt: skip
        log["times"] = tlog.get("times", "computed")
    centres = coverage.select_centres(ws.read("elder_care"), kinds=s.kinds, statuses=s.statuses)
    ids = _ids(centres)
    need = float(s.places_per_1000)
    glob = pd.Series(shared["covered_pop"], dtype=float).reindex(ids).fillna(0.0).to_numpy()
    ghost = gpd.GeoDataFrame({"walk_min": 0.0, "nearest_centre": ids, POP: glob},
                             geometry=centres.geometry.values, crs=centres.crs)  # fmt: skip
    mine = gpd.GeoDataFrame({"walk_min": times["walk_min"].to_numpy(float),
                             "nearest_centre": times["nearest_centre"].to_numpy(object), POP: 0.0},
                            geometry=times.geometry.values, crs=times.crs)  # fmt: skip
    both = gpd.GeoDataFrame(pd.concat([mine, ghost.to_crs(times.crs)], ignore_index=True),
                            crs=times.crs)  # fmt: skip
    adj = capacity.capacity_adjusted_coverage(
        both, centres, capacity_field=capacity_field, demand_per_1000=need,
        threshold_min=max(s.thresholds_min),
    )  # fmt: skip
    f = adj["capacity_factor"].to_numpy(float)
    pop = times[POP].to_numpy(float)
    covered = ~np.isnan(f[: len(times)])  # the factor is NaN exactly when not covered
    out = times.copy()
    out["capacity_factor"] = f[: len(times)]
    out["covered_pop"] = pop * covered
    out["covered_pop_adjusted"] = np.where(covered, pop * np.nan_to_num(f[: len(times)]), 0.0)
    units = part_unit_tables(out, units_of_part(ws, part), part, s)
    own = _is_owner(ids, shared, part)
    factor = f[len(times) :]
    c = centres[own]
    c_out = gpd.GeoDataFrame(
        {"facility_id": ids[own], "name": c.get("name"),
         "capacity": _capacity(c, capacity_field), "covered_pop": glob[own],
         "demand_places": glob[own] * need / 1000.0, "capacity_factor": factor[own]},
        geometry=c.geometry.to_crs(STORAGE_CRS).values, crs=STORAGE_CRS,
    )  # fmt: skip
    return {"times": out, "units": units, "centres": c_out}, log | {"centres_owned": int(own.sum())}


CAPACITY = TwoPassJob(capacity_first, capacity_reduce, capacity_second, ("times",))
"""Capacity-adjusted coverage in two passes."""


# --------------------------------------------------------------------------- E2SFCA


def _residential(ws: Any, s: CircleSettings, kinds: Sequence[str]) -> gpd.GeoDataFrame:
    return coverage.select_centres(ws.read("elder_care"), kinds=tuple(kinds), statuses=s.statuses)


def e2sfca_pairs(
    ws: Any,
    part: Part,
    centres: gpd.GeoDataFrame,
    *,
    settings: CircleSettings,
    crs: str,
    catchment_min: float,
    buffer_m: float,
    roads_bbox: tuple[float, float, float, float] | None,
    max_block_mb: float = 256.0,
) -> tuple[gpd.GeoDataFrame, pd.DataFrame, dict[str, Any]]:
    """Return the part's people and every proven (centre, point) pair within the catchment.

    Returns
    -------
    tuple
        The part's population rows (+ ``snap_m``, ``too_far``), pairs (``point`` position,
        ``centre`` position in ``centres``, ``time_min``, as :func:`geo_mz.eldercare.e2sfca`
        adds them) and the round figures.
    """
    s = settings
    t0 = float(catchment_min)
    units = units_of_part(ws, part)
    bbox = own_bbox(units, part)
    pop = read_own(ws, "population", bbox, part.code)
    # Reprojected once (snapping then finds them in the network's CRS).
    pop_m, centres_m = to_cut_crs(pop, crs), to_cut_crs(centres, crs)
    xy = shapely.get_coordinates(pop_m.geometry.values)
    c_xy = shapely.get_coordinates(centres_m.geometry.values)
    extent = roads_bbox or roads_extent(ws)

    def compute(todo: np.ndarray, b: float) -> tuple[pd.DataFrame, np.ndarray, dict]:
        if not len(todo):  # nobody lives in the part
            empty = pd.DataFrame({"_pos": todo, "centre": todo, "time_min": np.zeros(0),
                                  "snap_m": np.zeros(0), "too_far": np.zeros(0, bool)})  # fmt: skip
            return empty, np.zeros(0, dtype=bool), {}
        cut = make_cut(part.geometry, crs, b)
        roads = roads_in_cut(ws, cut)
        need_roads(roads, cut, extent)
        net = network_from_roads(roads, mode="walk", walk_speed_kmh=s.walk_speed_kmh,
                                 measure_crs=crs, components="all")  # fmt: skip
        v = float(net.access_speed_kmh)
        ps = snap_points(net, pop_m.iloc[todo], max_snap_m=s.max_snap_m, access_speed_kmh=v)
        pos = np.flatnonzero(shapely.intersects(cut.polygon, shapely.points(c_xy)))
        j, i, t = np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
        if len(pos):
            cs = snap_points(net, centres_m.iloc[pos], max_snap_m=s.max_snap_m,
                             access_speed_kmh=v)  # fmt: skip
            # The whole run's pair search (same blocks' arithmetic and tolerance).
            jj, i, t = capacity.pairs_within(net, cs, ps, t0, max_block_mb)
            j = pos[jj]
        ok = proven(net, cut, xy[todo], ps.node, ps.offset_m, np.full(len(todo), t0 + TOL_MIN),
                    v, cut.contains_extent(extent), source_xy=c_xy)  # fmt: skip
        # One row per point (centre -1) so that a point with no pair is proven too.
        none, nan = np.full(len(todo), -1), np.full(len(j), np.nan)
        out = pd.DataFrame({"_pos": np.r_[todo, todo[i]], "centre": np.r_[none, j],
                            "time_min": np.r_[none * np.nan, t], "snap_m": np.r_[ps.offset_m, nan],
                            "too_far": np.r_[ps.too_far, np.zeros(len(j), bool)]})  # fmt: skip
        return out, np.r_[ok, ok[i]], {"roads_read": len(roads)}

    rows, log = prove_rounds(len(pop), compute, buffer_m, f"e2sfca part {part.code}")
    head = rows[rows["centre"] < 0].sort_values("_pos")
    pop["snap_m"] = head["snap_m"].to_numpy(float)
    pop["too_far"] = head["too_far"].to_numpy(bool)
    pairs = rows[rows["centre"] >= 0].rename(columns={"_pos": "point"})
    # e2sfca adds each point's terms in centre order: the same order here.
    pairs = pairs.sort_values(["centre", "point"], kind="stable")[["point", "centre", "time_min"]]
    return pop, pairs.reset_index(drop=True), log


def e2sfca_first(
    ws: Any,
    part: Part,
    *,
    settings: CircleSettings | None = None,
    measure_crs: str | None = None,
    buffer_m: float = 2000.0,
    roads_bbox: tuple[float, float, float, float] | None = None,
    kinds: Sequence[str] = RESIDENTIAL_KINDS,
    capacity_field: str = "beds",
    catchment_min: float = 15.0,
    decay: str = "gaussian",
    demand_per_1000: float = BEDS_PER_1000_MIN,
    keep_part_rows: bool = False,
) -> tuple[Frames, dict[str, Any]]:
    """Pass 1 of E2SFCA: each centre's demand ``Σ P_i W(t_ij)`` from the part's own people.

    Options as :func:`geo_mz.eldercare.e2sfca` (its defaults) and
    :func:`geo_mz.scale.coverage_part`; ``kinds`` selects the centres; ``keep_part_rows``
    adds the part's ``points`` and ``pairs`` for its own second pass (not for the reduce).

    Returns
    -------
    tuple
        Frames ``demand`` (``part``, ``key`` = centre id, ``inside``, ``demand_weighted``,
        ``demand_pop``) and ``parts`` (and ``points``, ``pairs``); the round figures.
    """
    s = settings or CircleSettings()
    if decay not in ("gaussian", "linear", "step"):
        raise PartitionError(
            f"衰减函数 decay={decay!r} 无效，应为 'gaussian'、'linear' 或 'step' / `decay` was "
            f"{decay!r}; expected 'gaussian', 'linear' or 'step'"
        )
    crs = part_crs(part, measure_crs)
    centres = _residential(ws, s, kinds)
    _capacity(centres, capacity_field)
    pop, pairs, log = e2sfca_pairs(ws, part, centres, settings=s, crs=crs,
                                   catchment_min=catchment_min, buffer_m=buffer_m,
                                   roads_bbox=roads_bbox)  # fmt: skip
    j, i = pairs["centre"].to_numpy(np.int64), pairs["point"].to_numpy(np.int64)
    w = capacity.decay_weight(pairs["time_min"].to_numpy(float), float(catchment_min), decay)
    p = pd.to_numeric(pop[POP]).to_numpy(float)
    n = len(centres)
    inside = _inside(centres, part)
    keep = (np.bincount(j, minlength=n) > 0) | inside
    demand = pd.DataFrame({"part": part.code, "key": _ids(centres)[keep], "inside": inside[keep],
                           "demand_weighted": _weighted_counts(j, p[i] * w, n)[keep],
                           "demand_pop": _weighted_counts(j, p[i], n)[keep]})  # fmt: skip
    frames = {"demand": demand, "parts": _part_row(part)}
    if keep_part_rows:
        frames |= {"points": pop, "pairs": pairs.assign(weight=w)}
    return frames, log | {"points": len(pop), "pairs": len(pairs), "crs": crs}


def e2sfca_reduce(frames: Frames) -> dict[str, Any]:
    """Sum the parts' demand per centre; name each centre's owner."""
    d = frames["demand"]
    g = d.groupby("key", sort=False)
    sums = {c: g[c].sum().to_dict() for c in ("demand_weighted", "demand_pop")}
    return sums | _owners(d, frames["parts"])


def e2sfca_second(
    ws: Any,
    part: Part,
    *,
    shared: Mapping[str, Any],
    first: Frames | None = None,
    settings: CircleSettings | None = None,
    measure_crs: str | None = None,
    buffer_m: float = 2000.0,
    roads_bbox: tuple[float, float, float, float] | None = None,
    kinds: Sequence[str] = RESIDENTIAL_KINDS,
    capacity_field: str = "beds",
    catchment_min: float = 15.0,
    decay: str = "gaussian",
    demand_per_1000: float = BEDS_PER_1000_MIN,
) -> tuple[Frames, dict[str, Any]]:
    """Pass 2 of E2SFCA: ``A_i = Σ_j R_j W(t_ij)`` with the run's ratios ``R_j``.

    Returns
    -------
    tuple
        Frames ``population`` (the part's people + ``access_score``, ``centres_in_reach``,
        ``snap_m``, ``too_far``) and ``centres`` (the centres this part owns, with the columns
        of :func:`geo_mz.eldercare.e2sfca`'s centres); the log.
    """
    s = settings or CircleSettings()
    log: dict[str, Any] = {}
    if first is None or "pairs" not in first:
        first, log = e2sfca_first(ws, part, settings=s, measure_crs=measure_crs,
                                  buffer_m=buffer_m, roads_bbox=roads_bbox, kinds=kinds,
                                  capacity_field=capacity_field, catchment_min=catchment_min,
                                  decay=decay, keep_part_rows=True)  # fmt: skip
    centres = _residential(ws, s, kinds)
    ids, cap = _ids(centres), _capacity(centres, capacity_field)
    dw = pd.Series(shared["demand_weighted"], dtype=float).reindex(ids).fillna(0.0).to_numpy()
    dp = pd.Series(shared["demand_pop"], dtype=float).reindex(ids).fillna(0.0).to_numpy()
    ratio = np.where(dw > 0, cap / np.where(dw > 0, dw, 1.0), np.nan)
    pop, pairs = first["points"], first["pairs"]
    j, i, w = (pairs[c].to_numpy() for c in ("centre", "point", "weight"))
    p_out = pop.copy()
    p_out["access_score"] = np.bincount(i, np.nan_to_num(ratio)[j] * w, len(pop)) * 1000.0
    p_out["centres_in_reach"] = np.bincount(i, w > 0, len(pop)).astype(np.int64)
    own = _is_owner(ids, shared, part)
    need = float(demand_per_1000)
    places = dw[own] * need / 1000.0
    c_out = centres[own].assign(
        capacity=cap[own], demand_pop=dp[own], demand_weighted=dw[own], demand_places=places,
        supply_ratio=ratio[own], supply_per_1000=ratio[own] * 1000.0,
        over_capacity=places > cap[own] + 1e-9,
    )  # fmt: skip
    snap, snap_log = centre_snaps(ws, part, c_out, settings=s, crs=part_crs(part, measure_crs),
                                  buffer_m=buffer_m, roads_bbox=roads_bbox)  # fmt: skip
    c_out["snap_m"], c_out["too_far"] = snap["snap_m"].to_numpy(), snap["too_far"].to_numpy()
    return {"population": p_out, "centres": c_out.reset_index(drop=True)}, log | {
        "centres_owned": int(own.sum()), "centre_snap_rounds": snap_log["rounds"]}  # fmt: skip


def centre_snaps(
    ws: Any,
    part: Part,
    centres: gpd.GeoDataFrame,
    *,
    settings: CircleSettings,
    crs: str,
    buffer_m: float,
    roads_bbox: tuple[float, float, float, float] | None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Each centre's snap to the whole network: proven once its snap circle lies in the cut."""
    if len(centres) == 0:
        return pd.DataFrame({"snap_m": [], "too_far": []}), {"rounds": 0}
    centres_m = to_cut_crs(centres, crs)
    xy = shapely.get_coordinates(centres_m.geometry.values)
    extent = roads_bbox or roads_extent(ws)
    core = shapely.union_all([part.geometry, *centres.geometry.to_crs(STORAGE_CRS).values])

    def compute(todo: np.ndarray, b: float) -> tuple[pd.DataFrame, np.ndarray, dict]:
        cut = make_cut(core, crs, b)
        roads = roads_in_cut(ws, cut)
        need_roads(roads, cut, extent)
        net = network_from_roads(roads, mode="walk", walk_speed_kmh=settings.walk_speed_kmh,
                                 measure_crs=crs, components="all")  # fmt: skip
        sn = snap_points(net, centres_m.iloc[todo], max_snap_m=settings.max_snap_m)
        ok = (sn.offset_m + SLACK_M <= cut.room_m(xy[todo])) | cut.contains_extent(extent)
        rows = pd.DataFrame({"_pos": todo, "snap_m": sn.offset_m, "too_far": sn.too_far})
        return rows, ok, {}

    rows, log = prove_rounds(len(centres), compute, buffer_m, f"centre snaps {part.code}")
    return rows.sort_values("_pos").reset_index(drop=True), log


E2SFCA = TwoPassJob(e2sfca_first, e2sfca_reduce, e2sfca_second, ("points", "pairs"))
"""E2SFCA in two passes."""


ELDERCARE_JOBS: Mapping[str, TwoPassJob | Callable[..., tuple[Frames, dict[str, Any]]]] = {
    "capacity": CAPACITY,
    "e2sfca": E2SFCA,
    "rings": rings_part,
    "gaps": GAPS,
}
"""The elder-care jobs by name: part functions or two-pass jobs (``TwoPassJob``)."""

__all__ = [
    "CAPACITY",
    "E2SFCA",
    "ELDERCARE_JOBS",
    "GAPS",
    "capacity_first",
    "capacity_reduce",
    "capacity_second",
    "centre_snaps",
    "e2sfca_first",
    "e2sfca_pairs",
    "e2sfca_reduce",
    "e2sfca_second",
    "gaps_first",
    "gaps_reduce",
    "gaps_second",
    "proven_times",
]

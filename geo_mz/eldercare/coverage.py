"""Elder-care coverage: walking times to centres, coverage per unit, gaps, beds and E2SFCA.

The 15-minute elder-care circle (15分钟养老服务圈, STANDARDS.md §B) on a walking
:class:`~geo_mz.network.Network`:

* :func:`access_times` - ONE multi-source Dijkstra pass from all centres gives every node its
  time to the nearest centre; a population point's time = its straight walk to its node + that
  node time (which includes the centre's own straight walk to its node). Times run from the
  centre outwards; on walk networks (two-way arcs) that equals the walk to the centre.
* :func:`coverage_by_unit` / :func:`coverage_kpis` - aged-60+ population within 5/10/15 min per
  town or village against the plan targets, plus a district total row.
* :func:`gaps` - uncovered aged-60+ people in hexagons, and hexagon clusters, ranked by people.
* capacity (beds per 1,000, E2SFCA) is in :mod:`geo_mz.eldercare.capacity`.

Thresholds are **inclusive**: a point is covered within ``t`` minutes when
``walk_min <= t + 1e-9`` (the tolerance only absorbs float noise), so a point exactly 15.0 min
away is inside the 15-min circle. Unreachable points have ``walk_min = inf``; points farther than
``max_snap_m`` from the network are flagged ``too_far`` and kept (their long straight walk
counts). Speeds: the network's own (build it with ``ELDERLY_WALK_SPEED_KMH`` = 3.2 km/h, DERIVED
in STANDARDS.md §B, so 15 min = 800 m, the strict end of GB 50180's 800-1,000 m) unless
``walk_speed_kmh`` re-times a walk network. Inputs are never mutated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_mz.core.results import Kpi
from geo_mz.core.standards import COVERAGE_THRESHOLDS_MIN, RESIDENTIAL_KINDS, TARGET_SHARE
from geo_mz.core.units import assign_by_codes, point_codes
from geo_mz.eldercare._common import (
    CoverageError,
    NoCentresError,
    centre_ids,
    check_gdf,
    check_positive,
    coverage_positions,
    pct,
    retimed,
    snap_centres,
)
from geo_mz.eldercare._coverage_tables import head_rows, point_sums, table_frame, unit_rows
from geo_mz.eldercare.gap_grid import gap_cells, gap_frame, rank_gap_cells
from geo_mz.network.graph import Network, Snapped
from geo_mz.network.paths import multi_source_times, snap_points

__all__ = [
    "COMMUNITY_KINDS",
    "COVERAGE_THRESHOLDS_MIN",
    "ELDER_CARE_KINDS",
    "RESIDENTIAL_KINDS",
    "TARGET_SHARE",
    "CentreWalks",
    "CoverageError",
    "NoCentresError",
    "access_times",
    "centre_walks",
    "coverage_by_unit",
    "coverage_by_units",
    "coverage_kpis",
    "gaps",
    "node_times",
    "select_centres",
]

#: Kind codes of layers/elder_care.toml.
ELDER_CARE_KINDS: tuple[str, ...] = (
    "district_centre",
    "town_centre",
    "home_care_centre",
    "day_care_centre",
    "township_home",
    "nursing_home",
    "care_home",
    "meal_point",
    "rural_happiness_home",
)
#: Kinds that count as a community elder-care centre (社区养老服务设施) for the 15-min circle
#: (local choice): the district and town comprehensive centres, home-care and day-care centres
#: and rural happiness homes all offer day services to elders living at home. Excluded: meal
#: points (助餐点: one service only) and the residential institutions (敬老院/养老院/护理院),
#: which serve their residents; their beds count in :func:`beds_by_unit` and :func:`e2sfca`.
COMMUNITY_KINDS: tuple[str, ...] = (
    "district_centre",
    "town_centre",
    "home_care_centre",
    "day_care_centre",
    "rural_happiness_home",
)

STORAGE_CRS = "EPSG:4490"


# --------------------------------------------------------------------------- centres and times


def select_centres(
    facilities: gpd.GeoDataFrame,
    *,
    kinds: Sequence[str] | None = None,
    statuses: Sequence[str] | None = ("operating",),
) -> gpd.GeoDataFrame:
    """Filter elder-care facilities by kind and status.

    Parameters
    ----------
    facilities
        The ``elder_care`` layer (``kind`` and ``status`` columns).
    kinds
        Kind codes to keep; None keeps every kind. ``COMMUNITY_KINDS`` for the 15-min circle.
    statuses
        Status codes to keep; default only ``"operating"`` (existing centres); None keeps all.

    Returns
    -------
    geopandas.GeoDataFrame
        The selected rows (a copy, same index and CRS).

    Raises
    ------
    NoCentresError
        If nothing is left; the message names the filter and what the layer holds.
    """
    check_gdf(facilities, "facilities", ("kind", "status"))
    for name, vals, allowed in (
        ("kinds", kinds, ELDER_CARE_KINDS),
        ("statuses", statuses, ("operating", "under_construction", "planned", "closed")),
    ):
        if isinstance(vals, str):
            raise TypeError(f"`{name}` must be a sequence of codes, not the string {vals!r}")
        unknown = sorted(set(vals or ()) - set(allowed))
        if unknown:
            raise CoverageError(f"`{name}` has unknown codes {unknown}; allowed: {list(allowed)}")
    keep = np.ones(len(facilities), dtype=bool)
    if kinds is not None:
        keep &= facilities["kind"].isin(list(kinds)).to_numpy()
    if statuses is not None:
        keep &= facilities["status"].isin(list(statuses)).to_numpy()
    if not keep.any():
        held = facilities.groupby(["kind", "status"]).size().to_dict()
        raise NoCentresError(
            f"no facility matches kinds={None if kinds is None else list(kinds)} and "
            f"statuses={None if statuses is None else list(statuses)}; the layer holds "
            f"{held or 'nothing'} (kind, status): count"
        )
    return facilities.loc[keep].copy()


def node_times(
    net: Network,
    centres: gpd.GeoDataFrame,
    *,
    max_snap_m: float = 500.0,
    walk_speed_kmh: float | None = None,
    limit_min: float = np.inf,
) -> tuple[np.ndarray, np.ndarray]:
    """Time from the nearest centre to every node, in one multi-source pass (for isochrones).

    Parameters
    ----------
    net
        A walking network.
    centres
        Centre points with a CRS.
    max_snap_m
        Centres farther from every node are ``too_far`` (kept; their straight walk counts).
    walk_speed_kmh
        Re-time the walk network and the snap legs at this speed; None keeps the network's.
    limit_min
        Stop beyond this time (nodes farther get ``inf``).

    Returns
    -------
    tuple of numpy.ndarray
        ``time_min`` per node (inf if unreached) and the positional index into ``centres`` of the
        nearest centre (-1 if unreached).
    """
    net2, v = retimed(net, walk_speed_kmh)
    cs = snap_centres(net2, centres, max_snap_m, v)
    return multi_source_times(net2, cs.node, source_offset_min=cs.offset_min, limit_min=limit_min)


def walk_times(
    net: Network,
    centres: gpd.GeoDataFrame,
    snapped: Snapped,
    *,
    max_snap_m: float = 500.0,
    access_speed_kmh: float | None = None,
    id_field: str = "facility_id",
) -> tuple[np.ndarray, np.ndarray]:
    """Time snapped points' walks to their nearest centre (the core of :func:`access_times`).

    For a caller that has snapped its points already (a partitioned run snaps its people once
    for the times and the proof): the centres are snapped at the network's access speed and
    one Dijkstra runs from all of them.

    Parameters
    ----------
    net
        A walking network, timed at the speed wanted (``access_speed_kmh`` too).
    centres
        Centre points, any CRS.
    snapped
        The points' snaps on ``net`` (:func:`geo_mz.network.snap_points` or ``snap_xy``).
    max_snap_m
        Snap limit of the centres, in metres.
    access_speed_kmh
        Speed of the centres' snap walks; default the network's ``access_speed_kmh`` (give the
        speed the points were snapped at).
    id_field
        Centre id column (the index if absent).

    Returns
    -------
    tuple
        ``walk_min`` (float, inf if unreachable: snap walk + network + centre's snap walk) and
        ``nearest_centre`` (object: the id, or None) per point.
    """
    w = centre_walks(net, centres, snapped, max_snap_m=max_snap_m,
                     access_speed_kmh=access_speed_kmh, id_field=id_field)  # fmt: skip
    return w.walk_min, w.nearest_centre


class CentreWalks(NamedTuple):
    """Points' walks to their nearest centre (:func:`centre_walks`)."""

    walk_min: np.ndarray  #: minutes per point (inf if unreachable)
    nearest_centre: np.ndarray  #: the nearest centre's id per point (object; None if none)
    centre_pos: np.ndarray  #: its position in the centres given (int64; -1 if none)
    centre_snaps: Snapped  #: the centres' own snaps


def centre_walks(
    net: Network,
    centres: gpd.GeoDataFrame,
    snapped: Snapped,
    *,
    max_snap_m: float = 500.0,
    access_speed_kmh: float | None = None,
    id_field: str = "facility_id",
) -> CentreWalks:
    """Time snapped points' walks to their nearest centre, with the centre's position and snap.

    :func:`walk_times` with more of the winning centre than its id: a partitioned run checks
    that the winner snapped as on the whole network.

    Parameters
    ----------
    net
        A walking network, timed at the speed wanted (``access_speed_kmh`` too).
    centres
        Centre points, any CRS.
    snapped
        The points' snaps on ``net``.
    max_snap_m
        Snap limit of the centres, in metres.
    access_speed_kmh
        Speed of the centres' snap walks; default the network's ``access_speed_kmh``.
    id_field
        Centre id column (the index if absent).

    Returns
    -------
    CentreWalks
        Times, nearest centre ids and positions per point, and the centres' snaps.
    """
    v = float(net.access_speed_kmh if access_speed_kmh is None else access_speed_kmh)
    cs = snap_centres(net, centres, max_snap_m, v)
    ids = centre_ids(centres, id_field)
    t_node, near = multi_source_times(net, cs.node, source_offset_min=cs.offset_min)
    idx = near[snapped.node]
    nearest = np.full(len(idx), None, dtype=object)
    nearest[idx >= 0] = ids[idx[idx >= 0]]
    return CentreWalks(t_node[snapped.node] + snapped.offset_min, nearest, idx, cs)


def access_times(
    net: Network,
    centres: gpd.GeoDataFrame,
    population: gpd.GeoDataFrame,
    *,
    max_snap_m: float = 500.0,
    walk_speed_kmh: float | None = None,
    id_field: str = "facility_id",
) -> gpd.GeoDataFrame:
    """Time every population point's walk to its nearest centre (one Dijkstra pass).

    Parameters
    ----------
    net
        A walking network (built at ``ELDERLY_WALK_SPEED_KMH`` for elder care).
    centres
        Centre points (e.g. from :func:`select_centres`), any CRS.
    population
        Population points, any CRS (reprojected internally, returned as given).
    max_snap_m
        Snap limit in metres (local choice 500): farther points are flagged, never dropped.
    walk_speed_kmh
        Re-time the walk network and the snap legs at this speed; None keeps the network's.
    id_field
        Centre id column (default ``facility_id``; the index if absent).

    Returns
    -------
    geopandas.GeoDataFrame
        ``population`` (same index and CRS) plus ``walk_min`` (float, inf if unreachable) =
        point's snap walk + network time + centre's snap walk, ``nearest_centre`` (id or None),
        ``snap_m`` (the point's straight walk to its node) and ``too_far`` (snap > max_snap_m).
    """
    check_gdf(population, "population")
    net2, v = retimed(net, walk_speed_kmh)
    ps = snap_points(net2, population, max_snap_m=max_snap_m, access_speed_kmh=v)
    walk, nearest = walk_times(net2, centres, ps, max_snap_m=max_snap_m, access_speed_kmh=v,
                               id_field=id_field)  # fmt: skip
    out = population.copy()
    out["walk_min"] = walk
    out["nearest_centre"] = pd.Series(nearest, index=out.index, dtype=object)
    out["snap_m"] = ps.offset_m
    out["too_far"] = ps.too_far
    return out


# --------------------------------------------------------------------------- units


def coverage_by_unit(
    times: gpd.GeoDataFrame,
    units: gpd.GeoDataFrame,
    *,
    level: str,
    thresholds_min: Sequence[float] = COVERAGE_THRESHOLDS_MIN,
    targets: Mapping[str, float] = TARGET_SHARE,
    target_min: float = 15.0,
    pop_field: str = "pop_60plus",
) -> pd.DataFrame:
    """Coverage table per town or village, plus a district total row.

    Parameters
    ----------
    times
        Output of :func:`access_times` (``walk_min``, ``nearest_centre``, ``pop_field``).
    units
        ``admin_units`` (adcode, name, level, urban_rural); rows with ``in_jurisdiction`` False
        are ignored.
    level
        ``"town"`` or ``"village"`` (any level present in ``units``).
    thresholds_min
        Circles in minutes, inclusive (see the module docstring).
    targets
        Target share within ``target_min`` by ``urban_rural``; a unit with another or no value
        gets the strictest target (local choice).
    target_min
        The circle the target applies to; must be one of ``thresholds_min``.
    pop_field
        Population column to count.

    Returns
    -------
    pandas.DataFrame
        One row per unit (sorted by adcode; units without people have NaN shares and NA
        ``meets_target``), then an ``unassigned`` row if some points fall in no unit, then the
        ``total`` row = the sum of the rows above. Columns: level, adcode, name, urban_rural,
        ``pop_field``, covered_{t}min / share_{t}min per threshold, target_share, meets_target,
        shortfall_persons (ceil(target x pop) - covered, >= 0; the total sums the units, so a
        surplus in one unit never offsets another), mean_walk_min (population-weighted, reachable
        points only), nearest_centre (the centre nearest to most of the unit's people),
        unreachable_pop, too_far_pop; with ``covered_pop_adjusted`` in ``times`` (from
        :func:`capacity_adjusted_coverage`) also covered_capacity_adj / share_capacity_adj.

    Notes
    -----
    Points join units by the first digits of their 12-digit ``adcode`` (9 for towns, 12 for
    villages); points without an adcode join spatially.
    """
    return coverage_by_units(
        times, units, levels=(level,), thresholds_min=thresholds_min, targets=targets,
        target_min=target_min, pop_field=pop_field,
    )  # fmt: skip


def coverage_by_units(
    times: gpd.GeoDataFrame,
    units: gpd.GeoDataFrame,
    *,
    levels: Sequence[str],
    thresholds_min: Sequence[float] = COVERAGE_THRESHOLDS_MIN,
    targets: Mapping[str, float] = TARGET_SHARE,
    target_min: float = 15.0,
    pop_field: str = "pop_60plus",
    totals: bool = True,
) -> pd.DataFrame:
    """Coverage tables of several levels at once, one after the other.

    The same rows as :func:`coverage_by_unit` for each level in turn, made in one pass over
    the points: the per-point sums, the nearest centres and the points' codes are worked out
    once for all levels.

    Parameters
    ----------
    times
        Output of :func:`access_times` (``walk_min``, ``nearest_centre``, ``pop_field``).
    units
        ``admin_units`` (adcode, name, level, urban_rural); rows with ``in_jurisdiction`` False
        are ignored.
    levels
        Levels present in ``units``, e.g. ``("county", "town", "village")``.
    thresholds_min
        Circles in minutes, inclusive.
    targets
        Target share within ``target_min`` by ``urban_rural``.
    target_min
        The circle the target applies to; must be one of ``thresholds_min``.
    pop_field
        Population column to count.
    totals
        False leaves out each level's ``unassigned`` and ``total`` rows (a partitioned run
        keeps only the unit rows of its parts).

    Returns
    -------
    pandas.DataFrame
        For each level in order, the :func:`coverage_by_unit` table of that level (its unit
        rows, ``unassigned`` row if any and ``total`` row), index 0..n-1.
    """
    check_gdf(times, "times", ("walk_min", "nearest_centre", pop_field))
    ths = sorted({check_positive("thresholds_min", t) for t in thresholds_min})
    if float(target_min) not in ths:
        raise CoverageError(f"`target_min` {target_min!r} must be one of {ths}")
    if not targets or any(not 0 <= float(x) <= 1 for x in targets.values()):
        raise CoverageError(f"`targets` must map urban_rural codes to shares in [0, 1]: {targets}")
    if isinstance(levels, str):
        raise TypeError(f"`levels` must be a sequence of levels, not the string {levels!r}")
    if not len(levels):
        raise CoverageError("`levels` is empty: name at least one level")
    chosen = [(lv, *coverage_positions(units, lv)) for lv in levels]
    factors = point_codes(times)
    joins = [
        assign_by_codes(times, codes, lambda p=p: units.geometry.take(p), factors)
        for _, p, codes in chosen
    ]
    pts = point_sums(times, ths, pop_field)
    rows = [
        unit_rows(pts, units, lv, p, codes, pos, ths, targets, target_min, pop_field)
        for (lv, p, codes), pos in zip(chosen, joins, strict=True)
    ]
    if not totals:  # the unit rows come first in every level's columns
        rows = [head_rows(cols, len(p)) for cols, (_, p, _) in zip(rows, chosen, strict=True)]
    return table_frame(rows)


_SRC_CIRCLE = (
    '《"十四五"公共服务规划》15分钟养老服务圈; GB 50180-2018 life circles (STANDARDS.md §B)'
)
_SRC_TARGET = "local plan targets 100 % urban / 95 % rural (DESIGN.md), configurable"
_LEVEL_ZH = {"town": ("镇街", "towns/streets"), "village": ("村居", "villages/communities")}


def coverage_kpis(
    table: pd.DataFrame, *, pop_field: str = "pop_60plus", target_min: float = 15.0
) -> list[Kpi]:
    """Headline coverage figures of a :func:`coverage_by_unit` table.

    Parameters
    ----------
    table
        The coverage table (its ``total`` row and unit rows are used).
    pop_field
        The population column of the table.
    target_min
        The circle the target applies to.

    Returns
    -------
    list of Kpi
        District share within each circle (the target one against the population-weighted
        target), units meeting the target, uncovered and shortfall persons, mean walk time,
        unreachable people.
    """
    need = ["level", pop_field, f"share_{float(target_min):g}min", "meets_target"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise CoverageError(f"`table` lacks column(s) {missing}: pass a coverage_by_unit table")
    tot = table[table["level"] == "total"].iloc[0]
    units = table[~table["level"].isin(["total", "unassigned"])]
    level = str(units["level"].iloc[0]) if len(units) else "unit"
    zh, en = _LEVEL_ZH.get(level, (level, level))
    out: list[Kpi] = []
    for col in [c for c in table.columns if c.startswith("share_") and c.endswith("min")]:
        t = col[len("share_") : -len("min")]
        share = float(tot[col])
        if float(t) == float(target_min):
            tgt = float(tot["target_share"])
            met = bool(tot["meets_target"]) if not pd.isna(tot["meets_target"]) else None
            out.append(
                Kpi(f"{t}分钟养老服务圈覆盖率(60岁以上)", f"Aged 60+ within {t} min walk",
                    pct(share), "%", f"≥ {pct(tgt)}", met, f"{_SRC_CIRCLE}; {_SRC_TARGET}")
            )  # fmt: skip
        else:
            out.append(
                Kpi(f"{t}分钟步行覆盖率(60岁以上)", f"Aged 60+ within {t} min walk",
                    pct(share), "%", "", None, "GB 50180-2018 life circles (STANDARDS.md §B)")
            )  # fmt: skip
    with_pop = units[units[pop_field] > 0]
    n_ok = int(with_pop["meets_target"].fillna(False).astype(bool).sum())
    out.append(
        Kpi(f"覆盖达标{zh}", f"{en.capitalize()} meeting the target", f"{n_ok}/{len(with_pop)}",
            "", f"{len(with_pop)}/{len(with_pop)}", n_ok == len(with_pop), _SRC_TARGET)
    )  # fmt: skip
    uncovered = float(tot[pop_field] - tot[f"covered_{float(target_min):g}min"])
    out.append(Kpi("未覆盖老年人口", "Aged 60+ not covered", round(uncovered), "人"))
    out.append(
        Kpi("达标缺口人数", "Persons short of the target", round(float(tot["shortfall_persons"])),
            "人", "0", float(tot["shortfall_persons"]) <= 0, _SRC_TARGET)
    )  # fmt: skip
    mean = float(tot["mean_walk_min"])
    out.append(Kpi("平均步行时间", "Mean walk to nearest centre", round(mean, 1), "分钟"))
    if float(tot["unreachable_pop"]) > 0:
        out.append(
            Kpi("路网不可达老年人口", "Aged 60+ unreachable on the network",
                round(float(tot["unreachable_pop"])), "人")
        )  # fmt: skip
    return out


# --------------------------------------------------------------------------- gaps


def gaps(
    times: gpd.GeoDataFrame,
    *,
    crs: str,
    threshold_min: float = 15.0,
    cell_size_m: float = 500.0,
    level: Literal["hex", "cluster"] = "hex",
    pop_field: str = "pop_60plus",
) -> gpd.GeoDataFrame:
    """Uncovered aged-60+ people in hexagons, or clusters of adjacent hexagons, ranked by people.

    Parameters
    ----------
    times
        Output of :func:`access_times`.
    crs
        Projected metric CRS of the hexagon grid, e.g. ``"EPSG:4547"``.
    threshold_min
        Points with ``walk_min > threshold_min`` (inf included) are uncovered.
    cell_size_m
        Distance between the centres of neighbouring hexagons (flat-to-flat width; local
        choice 500 m). Pointy-top hexagons on a fixed grid anchored at the CRS origin.
    level
        ``"hex"``: one row per hexagon holding uncovered people. ``"cluster"``: edge-adjacent
        hexagons merged (connected components of the hex adjacency), one row per cluster.
    pop_field
        Population column.

    Returns
    -------
    geopandas.GeoDataFrame
        In EPSG:4490, ranked by uncovered people (descending; ties by id): ``gap_id`` (``H0001``
        / ``C001``), ``rank``, ``{pop_field}_uncovered``, ``n_cells`` (population points),
        ``mean_walk_min`` (population-weighted over the reachable uncovered people; ``inf`` =
        every uncovered person there is unreachable), ``unreachable_pop``; hex rows also carry
        ``cluster_id``, cluster rows ``n_hex``.
    """
    # In three steps that can also run apart, per part of a wider area (geo_mz.scale's gaps
    # job): cells per area, summed and ranked once, then shapes (eldercare.gap_grid).
    cells = gap_cells(times, crs=crs, threshold_min=threshold_min, cell_size_m=cell_size_m,
                      pop_field=pop_field)  # fmt: skip
    return gap_frame(rank_gap_cells(cells, pop_field=pop_field), crs=crs,
                     cell_size_m=cell_size_m, level=level, pop_field=pop_field)  # fmt: skip

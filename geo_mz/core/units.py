"""Reporting units: the administrative units of one level, and which unit each point falls in.

Coverage, shelter adequacy and the relief audit all report per town (镇/街道) or village
(村/社区); they share these two steps so a point counts in the same unit everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.core.errors import CrsError, UnitsError
from geo_mz.core.projection import gk_zone_crs

__all__ = [
    "assign_by_codes",
    "assign_to_units",
    "complete_units",
    "finest_codes",
    "level_positions",
    "point_codes",
    "unit_register",
    "units_of_level",
]


def _check_units(units: object) -> gpd.GeoDataFrame:
    if not isinstance(units, gpd.GeoDataFrame):
        raise TypeError(
            f"区划单元须为 GeoDataFrame，实为 {type(units).__name__} / `units` must be a "
            f"GeoDataFrame, got {type(units).__name__}"
        )
    if units.crs is None:
        raise CrsError(
            "区划单元没有坐标系，请先设置，如 .set_crs('EPSG:4490') / `units` has no CRS; set it "
            "with .set_crs(...), e.g. 'EPSG:4490'"
        )
    missing = [c for c in ("adcode", "name", "level") if c not in units.columns]
    if missing:
        raise UnitsError(
            f"区划单元 admin_units 缺少字段 {missing}，请在导入的文件中补上 / the admin_units "
            f"layer lacks field(s) {missing} (it has {list(units.columns)}); add them to the "
            "imported file"
        )
    return units


def _equal_to(col: pd.Series, value: str) -> np.ndarray:
    """``col == value`` as a numpy mask (missing values are False)."""
    if col.dtype == object or isinstance(col.dtype, pd.StringDtype):
        # numpy compares object arrays element by element: much cheaper than pandas' == on
        # the few rows of a county part; missing values become None so no NA reaches bool().
        return col.to_numpy(dtype=object, na_value=None) == value
    return (col == value).to_numpy(dtype=bool)


def _jurisdiction(col: pd.Series) -> np.ndarray:
    """``in_jurisdiction`` as a mask, missing values counting as in."""
    if col.dtype == bool or isinstance(col.dtype, pd.BooleanDtype):
        return col.to_numpy(dtype=bool, na_value=True)
    return col.astype("boolean").fillna(True).to_numpy(dtype=bool)


def level_positions(units: gpd.GeoDataFrame, level: str) -> tuple[np.ndarray, np.ndarray]:
    """Row positions and codes of the units of one level, as :func:`units_of_level` selects them.

    The selection without building the frame, for callers that need only a few columns.

    Parameters
    ----------
    units
        The ``admin_units`` layer (as for :func:`units_of_level`).
    level
        ``"town"`` or ``"village"`` (any level present in ``units``).

    Returns
    -------
    tuple of numpy.ndarray
        Positions in ``units`` of the units of ``level`` in jurisdiction, in the order of
        :func:`units_of_level` (by code), and their codes (object array, as
        :func:`units_of_level` gives them: strings).

    Raises
    ------
    UnitsError
        ``level`` is not in the layer, codes repeat, or codes differ in length.
    """
    _check_units(units)
    keep = _equal_to(units["level"], level)
    if not keep.any():
        levels = sorted(units["level"].dropna().unique().tolist())
        raise UnitsError(
            f"区划单元 admin_units 中没有 {level} 级单元 (现有 {levels})，请导入该级区划面或改用"
            f"现有级别 / the admin_units layer has no {level} units (it has {levels}): import "
            f"the {level} polygons (geo-mz import FILE --layer admin_units), or choose one of "
            f"{levels}"
        )
    if "in_jurisdiction" in units.columns:
        keep = keep & _jurisdiction(units["in_jurisdiction"])
    pos = np.flatnonzero(keep)
    col = units["adcode"]
    vals = col.to_numpy(dtype=object)[pos]
    if all(type(c) is str for c in vals):
        # Plain strings: any sort gives the one order of distinct codes (equal codes are an
        # error below), so numpy's argsort stands in for DataFrame.sort_values.
        order = np.argsort(vals, kind="stable")
        pos, codes = pos[order], vals[order]
        dup = sorted(set(codes[1:][codes[1:] == codes[:-1]]))
        lengths = {len(c) for c in codes}
    else:  # numbers, missing codes: pandas' own sort and string conversion, as ever
        sub = col.iloc[pos].reset_index(drop=True).sort_values()
        pos = pos[sub.index.to_numpy()]
        code_s = sub.reset_index(drop=True).astype(str)
        codes = code_s.to_numpy(dtype=object)
        dup = sorted(set(code_s[code_s.duplicated()]))
        lengths = set(code_s.str.len().dropna())
    if dup:
        raise UnitsError(
            f"{level} 级区划代码重复 {dup[:10]}，请在 admin_units 中每个代码只保留一个单元 / the "
            f"{level} units repeat adcodes {dup[:10]}; keep one unit per code in admin_units"
        )
    if len(lengths) != 1:
        raise UnitsError(
            f"{level} 级区划代码长度不一，无法按代码前缀归属，请统一为 GB/T 2260 代码 (乡镇9位、"
            f"村居12位) / the {level} units' adcodes differ in length, so points cannot be "
            "joined by code prefix; use GB/T 2260 codes of one length (9 digits for towns, 12 "
            "for villages)"
        )
    return pos, codes


def units_of_level(units: gpd.GeoDataFrame, level: str) -> gpd.GeoDataFrame:
    """Select the units of one level, in jurisdiction, sorted by code, with string adcodes.

    Parameters
    ----------
    units
        The ``admin_units`` layer (``adcode``, ``name``, ``level``; optional
        ``in_jurisdiction`` and ``urban_rural``).
    level
        ``"town"`` or ``"village"`` (any level present in ``units``).

    Returns
    -------
    geopandas.GeoDataFrame
        The units of ``level`` whose ``in_jurisdiction`` is not False, index 0..n-1, with an
        ``urban_rural`` column (None where the layer has none).

    Raises
    ------
    UnitsError
        ``level`` is not in the layer, codes repeat, or codes differ in length.
    """
    pos, _ = level_positions(units, level)
    u = units.take(pos).reset_index(drop=True)
    u["adcode"] = u["adcode"].astype(str)
    if "urban_rural" not in u.columns:
        u["urban_rural"] = None
    return u


def point_codes(points: pd.DataFrame) -> tuple[np.ndarray, list[str]] | None:
    """Factorise the points' ``adcode`` column: a code number per point (-1: none), the codes.

    Parameters
    ----------
    points
        Points with an optional ``adcode`` column.

    Returns
    -------
    tuple or None
        Per point the position of its code in the list (-1 where it has none), and the distinct
        codes as strings; None without an ``adcode`` column.
    """
    if "adcode" not in points.columns:
        return None
    # few distinct codes: slice those only; plain objects factorise faster than pandas' str
    fact, uniq = pd.factorize(points["adcode"].to_numpy(dtype=object))
    return fact, [str(c) for c in uniq]


def assign_by_codes(
    points: gpd.GeoDataFrame,
    codes: Any,
    geometry: Callable[[], gpd.GeoSeries],
    factors: tuple[np.ndarray, list[str]] | None = None,
) -> np.ndarray:
    """Position of each point's unit among units given by their codes (-1: none).

    :func:`assign_to_units` for callers holding the units' codes, not a frame: the polygons
    are asked for (``geometry()``) only when some point has no adcode.

    Parameters
    ----------
    points
        Points with a CRS and an optional ``adcode`` column.
    codes
        The units' codes, all of one length (strings).
    geometry
        Returns the units' polygons (a GeoSeries with a CRS), in the order of ``codes``.
    factors
        :func:`point_codes` of ``points`` when already computed.

    Returns
    -------
    numpy.ndarray
        Per point the position of its unit in ``codes``, -1 for none.
    """
    codes = list(codes)
    n = len(codes)
    length = len(codes[0]) if n else 0
    lookup = dict(zip(codes, range(n), strict=True))  # cheaper than an Index for a few codes
    pos = np.full(len(points), -1, dtype=np.int64)
    has = np.zeros(len(points), dtype=bool)
    if factors is None and n:
        factors = point_codes(points)
    if factors is not None and n:
        fact, ucode = factors
        if len(lookup) < n:  # repeated codes: pandas' index refuses them, as it always did
            pd.Index(codes).get_indexer(codes)
        upos = np.array([lookup.get(c[:length], -1) for c in ucode], dtype=np.intp)
        uhas = np.array([len(c) >= length for c in ucode] + [False], dtype=bool)
        has = uhas[fact]  # fact -1 (missing) picks the trailing False
        pos[has] = upos[fact[has]]
    rest = np.flatnonzero(~has)
    if len(rest) and n:
        geoms = geometry()
        geoms = geoms.to_crs(points.crs) if geoms.crs != points.crs else geoms
        # The points in a tree, each polygon asked once: GEOS prepares the polygon it is
        # asked with, so every point is tested against a prepared polygon (a third cheaper
        # than asking with each point; the same pairs).
        tree = shapely.STRtree(np.asarray(points.geometry.values)[rest])
        ui, pi = tree.query(np.asarray(geoms.values), predicate="intersects")
        # The first (lowest) unit a point meets; numpy, not a pandas groupby, for a few pairs.
        first = np.full(len(rest), n, dtype=np.int64)
        np.minimum.at(first, pi, ui)
        met = first < n
        pos[rest[met]] = first[met]
    return pos


def assign_to_units(points: gpd.GeoDataFrame, units: gpd.GeoDataFrame) -> np.ndarray:
    """Position of each point's unit in ``units`` (-1: none).

    By the points' ``adcode`` prefix (as long as the units' codes) where a point has one; points
    without an adcode are joined spatially (first unit intersecting them). A point whose adcode
    matches no unit stays unassigned (it belongs to another area), it is not re-joined in space.
    """
    return assign_by_codes(points, units["adcode"], lambda: units.geometry)


NEAR_UNIT_M = 500.0
"""How far outside a unit polygon a point may lie and take its code (:func:`finest_codes`)."""


def finest_codes(
    points: gpd.GeoDataFrame, units: gpd.GeoDataFrame, *, near_m: float = NEAR_UNIT_M
) -> tuple[np.ndarray, int]:
    """Each point's code refined to the finest unit polygon it lies in, under its own code.

    A point spread from a county's table, or cut from a raster, carries the county's code (or
    none) although the workspace has town or village polygons: per-town figures and parts by
    town (``geo-mz scale run --by town``, which take a part's points by code) would leave it
    out. Level by level (coarse to fine), a point whose code is missing or shorter than the
    level's takes the code of the first in-jurisdiction unit of that level it lies in, if that
    code starts with its own; else of the nearest such polygon within ``near_m`` (a cell
    centre inside the district's boundary but in a sliver between town polygons drawn from
    another source: on Beijing's real towns 303 of 11,785 raster cells of 海淀, at most
    309 m out). A point farther from every polygon of the level (a level that covers only some
    towns) keeps the code it has.

    Parameters
    ----------
    points
        Points with a CRS and an optional ``adcode`` column.
    units
        The ``admin_units`` layer (polygons, ``adcode``, ``level``; optional
        ``in_jurisdiction``).
    near_m
        How far outside a polygon a point may lie and still take its code (metres).

    Returns
    -------
    tuple
        The codes (object array: strings, None where a point has none) and how many points
        got a finer code.
    """
    if "adcode" in points:
        raw = points["adcode"].astype(object).to_numpy()
        codes = np.array([None if pd.isna(c) else str(c) for c in raw], dtype=object)
    else:
        codes = np.full(len(points), None, dtype=object)
    before = codes.copy()
    levels = [lv for lv in ("county", "town", "village") if _equal_to(units["level"], lv).any()]
    xy = np.asarray(points.geometry.values)
    for level in levels:
        u = units_of_level(units, level)
        u = u[~(u.geometry.isna() | u.geometry.is_empty)]
        if u.empty:
            continue
        length = len(u["adcode"].iloc[0])
        todo = np.flatnonzero([c is None or len(c) < length for c in codes])
        if not len(todo):
            continue
        geoms = u.geometry.to_crs(points.crs) if u.crs != points.crs else u.geometry
        tree = shapely.STRtree(xy[todo])
        ui, pi = tree.query(np.asarray(geoms.values), predicate="intersects")
        ucode = u["adcode"].to_numpy()
        ok = _under_own(ucode, codes[todo], pi, ui)
        ui, pi = ui[ok], pi[ok]
        first = np.full(len(todo), len(u), dtype=np.int64)
        np.minimum.at(first, pi, ui)  # the first (lowest-coded) unit a point meets
        met = first < len(u)
        codes[todo[met]] = ucode[first[met]]
        gap = todo[~met]
        if len(gap) and near_m > 0:
            codes[gap] = _nearest_codes(points.iloc[gap], geoms, ucode, codes[gap], near_m)
    return codes, int(sum(a != b for a, b in zip(codes, before, strict=True)))


def _nearest_codes(
    points: gpd.GeoDataFrame,
    geoms: gpd.GeoSeries,
    ucode: np.ndarray,
    own: np.ndarray,
    near_m: float,
) -> np.ndarray:
    """Return the code of the nearest polygon within ``near_m`` under each point's own code.

    Of polygons at equal distance (a point in two overlapping polygons) the first pair the
    tree gives wins, as a loop over the pairs keeping the strictly nearer would pick.
    """
    metric = gk_zone_crs(float(np.mean(shapely.get_coordinates(points.geometry.values)[:, 0])))
    pts = np.asarray(points.geometry.to_crs(metric).values)
    polys = np.asarray(geoms.to_crs(metric).values)
    out = own.copy()
    pi, ui = shapely.STRtree(polys).query(pts, predicate="dwithin", distance=near_m)
    ok = _under_own(ucode, own, pi, ui)
    pi, ui = pi[ok], ui[ok]
    dist = shapely.distance(pts[pi], polys[ui])
    finite = dist < np.inf  # NaN (an empty geometry) never counts as nearer
    pi, ui, dist = pi[finite], ui[finite], dist[finite]
    # Per point the smallest distance, then the earliest pair: sort by point, distance, pair.
    order = np.lexsort((np.arange(len(pi)), dist, pi))
    pi, ui = pi[order], ui[order]
    first = np.ones(len(pi), dtype=bool)
    first[1:] = pi[1:] != pi[:-1]
    out[pi[first]] = ucode[ui[first]]
    return out


def _under_own(ucode: np.ndarray, own: np.ndarray, pi: np.ndarray, ui: np.ndarray) -> np.ndarray:
    """Per pair (point ``pi``, unit ``ui``): the point has no code or the unit's starts with it."""
    length = np.array([-1 if c is None else len(c) for c in own], dtype=np.int64)[pi]
    ok = length < 0
    # One comparison of code heads per length of the points' codes (a few: 6, 9 digits).
    for n in np.unique(length[~ok]).tolist():
        head = np.array([c[:n] for c in ucode], dtype=object)
        sel = length == n
        ok[sel] = head[ui[sel]] == own[pi[sel]]
    return ok


def unit_register(metadata: Mapping[str, Any]) -> pd.DataFrame | None:
    """Return the towns and villages a workspace was initialised with (``geo-mz init``).

    Parameters
    ----------
    metadata
        ``Workspace.metadata``.

    Returns
    -------
    pandas.DataFrame or None
        ``adcode``, ``name``, ``level`` (``town``/``village``), ``parent_adcode`` from the
        national gazetteer, polygons or not; None for a workspace made without a register.
    """
    data, cols = metadata.get("unit_register"), metadata.get("unit_register_columns")
    if not data or not cols:
        return None
    try:
        rows = json.loads(data) if isinstance(data, str) else data
        columns = json.loads(cols) if isinstance(cols, str) else cols
        return pd.DataFrame(rows, columns=columns).astype(str)
    except (ValueError, TypeError) as exc:
        raise UnitsError(
            f"工作空间元数据 unit_register 无法读取，请用 geo-mz init 重建工作空间 / the "
            f"workspace's unit_register metadata is unreadable ({exc}); rebuild the workspace "
            "with geo-mz init"
        ) from exc


_SEED_CATEGORIES = ("village_seat", "admin_division")


def _seeds(layers: Mapping[str, gpd.GeoDataFrame], digits: int) -> gpd.GeoDataFrame:
    """Points that carry a unit code of ``digits`` digits: place names, then population cells."""
    parts = []
    names = layers.get("place_names")
    if names is not None and len(names) and "adcode" in names.columns:
        sel = names[names["category"].isin(_SEED_CATEGORIES)] if "category" in names else names
        code = sel["adcode"].astype("string")
        sel = sel[code.str.len() == digits]
        parts.append(gpd.GeoDataFrame({"adcode": sel["adcode"].astype(str).to_numpy(),
                                       "name": sel["name"].astype(str).to_numpy()},
                                      geometry=sel.geometry.to_numpy(), crs=sel.crs))  # fmt: skip
    pop = layers.get("population")
    if pop is not None and len(pop) and "adcode" in pop.columns:
        code = pop["adcode"].astype("string")
        sel = pop[code.str.len() >= digits]
        parts.append(gpd.GeoDataFrame({"adcode": sel["adcode"].astype(str).str[:digits].to_numpy(),
                                       "name": None},
                                      geometry=sel.geometry.to_numpy(), crs=sel.crs))  # fmt: skip
    parts = [p.to_crs("EPSG:4490") for p in parts if len(p)]
    if not parts:
        return gpd.GeoDataFrame({"adcode": [], "name": []}, geometry=[], crs="EPSG:4490")
    return pd.concat(parts, ignore_index=True)


def _cells(seeds: gpd.GeoDataFrame, within: shapely.Geometry, metric: str) -> gpd.GeoDataFrame:
    """Voronoi cells of the seeds inside ``within``, dissolved per code (area in metres)."""
    pts = seeds.to_crs(metric)
    xy = shapely.get_coordinates(pts.geometry.to_numpy())
    xy, first = np.unique(np.round(xy, 3), axis=0, return_index=True)  # one cell per location
    codes = pts["adcode"].to_numpy()[first]
    area = gpd.GeoSeries([within], crs="EPSG:4490").to_crs(metric).iloc[0]
    if len(xy) == 1:
        cells = np.array([area])
    else:
        env = shapely.box(*area.buffer(1000.0).bounds)
        coll = shapely.voronoi_polygons(shapely.multipoints(xy), extend_to=env, ordered=True)
        cells = shapely.intersection(np.asarray(shapely.get_parts(coll)), area)
    out = gpd.GeoDataFrame({"adcode": codes}, geometry=cells, crs=metric).dissolve("adcode")
    return out.reset_index().to_crs("EPSG:4490")


def complete_units(
    layers: Mapping[str, gpd.GeoDataFrame], register: pd.DataFrame | None = None
) -> tuple[dict[str, gpd.GeoDataFrame], list[str]]:
    """Add approximate town and village areas where a workspace has only codes and points.

    Few bureaus hold village polygons, and many not even town polygons. Where a level has no
    polygon in ``admin_units`` but points carry its codes — village/community seats in
    ``place_names`` (12-digit ``adcode``), or population cells with 9/12-digit codes (a
    population imported by unit) — each unit gets the union of the Voronoi cells of its points,
    inside its town (villages) or the district, marked ``approximate = True``. Units are never
    invented: a level with neither polygons nor coded points stays absent (and is noted).

    Parameters
    ----------
    layers
        Workspace layers (``admin_units``, optionally ``place_names`` and ``population``).
    register
        The workspace's unit register (:func:`unit_register`): names for the units.

    Returns
    -------
    tuple
        The layers with ``admin_units`` completed (a new dict; inputs are not changed), and
        notes saying what was added or is missing (Chinese and English).
    """
    admin = layers.get("admin_units")
    if admin is None or admin.empty:
        return dict(layers), []
    from geo_mz.core.projection import measure_crs_for

    admin = admin.to_crs("EPSG:4490")
    inj = admin.get("in_jurisdiction", pd.Series(True, index=admin.index))
    inside = admin[inj.astype("boolean").fillna(True).to_numpy(dtype=bool)]
    names = {} if register is None else dict(zip(register["adcode"], register["name"], strict=True))
    notes: list[str] = []
    added = []
    top = inside[~inside["level"].isin(["town", "village"])]
    if top.empty:
        return dict(layers), ["admin_units: 没有辖区边界 / no jurisdiction polygon above towns"]
    district = shapely.union_all(top.geometry.to_numpy())
    metric = measure_crs_for(top)
    for level, digits, parent_digits in (("town", 9, 6), ("village", 12, 9)):
        if (inside["level"] == level).any():
            continue
        seeds = _seeds(layers, digits)
        if seeds.empty:
            n_reg = 0 if register is None else int((register["level"] == level).sum())
            notes.append(
                f"{level}: 没有面，也没有带{digits}位代码的点 / no polygons and no points with "
                f"{digits}-digit codes" + (f" ({n_reg} in the register)" if n_reg else "")
            )
            continue
        parents = pd.concat([inside, *added], ignore_index=True)
        parents = parents[parents["adcode"].astype(str).str.len() == parent_digits]
        pieces = []
        for code, group in seeds.groupby(seeds["adcode"].str[:parent_digits]):
            hit = parents[parents["adcode"].astype(str) == code]
            within = hit.geometry.iloc[0] if len(hit) else district
            pieces.append(_cells(group, shapely.intersection(within, district), metric))
        cells = pd.concat(pieces, ignore_index=True)
        cells = cells[~cells.geometry.is_empty]
        seed_names = seeds.dropna(subset=["name"]).drop_duplicates("adcode")
        seed_names = dict(zip(seed_names["adcode"], seed_names["name"], strict=True))
        new = gpd.GeoDataFrame(
            {
                "adcode": cells["adcode"].to_numpy(),
                "name": [names.get(c) or seed_names.get(c) or c for c in cells["adcode"]],
                "level": level,
                "parent_adcode": cells["adcode"].str[:parent_digits].to_numpy(),
                "in_jurisdiction": True,
                "approximate": True,
            },
            geometry=cells.geometry.to_numpy(),
            crs="EPSG:4490",
        )
        added.append(new)
        notes.append(
            f"{level}: {len(new)} 个单元用其点的泰森多边形近似(approximate) / {len(new)} units "
            "approximated by the Voronoi cells of their points (marked approximate)"
        )
    out = dict(layers)
    if added:
        if "approximate" not in admin.columns:
            admin = admin.assign(approximate=False)
        out["admin_units"] = pd.concat([admin, *added], ignore_index=True)
    return out, notes

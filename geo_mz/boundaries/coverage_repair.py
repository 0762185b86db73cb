"""Repair proposal for one level of administrative units: a clean coverage, never applied.

:func:`repair` proposes a topologically clean version of a coverage: overlaps go to the unit
with the longest border along them, gaps narrower than :data:`GAP_WIDTH_M` (a local choice, as
every tolerance of the boundary checks) to the neighbour with the longest shared border, and
shared edges end up identical; :func:`repair_kpis`, :func:`repairs_layer` (per-unit changes)
and :func:`repaired_layer` (the proposed units) report it. The proposal is never applied
silently: it is returned, and written, as separate layers. It uses ``shapely.coverage_clean``
(shapely ≥ 2.2 with GEOS ≥ 3.14) where available; without it the repair falls back to noding
all borders and re-assigning the faces (``method="polygonize"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.boundaries._geometry import (
    polygonal,
    polygons,
    shapely_has,
    shared_length,
    units_around,
    units_union,
)
from geo_mz.boundaries.linework import fold_destinations
from geo_mz.boundaries.topology import QA_DEFAULTS, enclosed_gaps
from geo_mz.boundaries.units import CODE_FIELDS, NAME_FIELDS, BoundaryError, prepare_units
from geo_mz.core.errors import LayerValidationError, Problem
from geo_mz.core.results import Kpi

__all__ = [
    "Repair",
    "repair",
    "repair_kpis",
    "repaired_layer",
    "repairs_layer",
]


@dataclass(frozen=True)
class Repair:
    """A repair proposal (:func:`repair`): never applied to the source data.

    Attributes
    ----------
    before
        The units as checked (measuring CRS, made valid).
    after
        The proposed units (same rows and codes), a valid coverage.
    changes
        Per unit: ``unit``, ``name``, ``area_before_m2``, ``area_after_m2``, ``delta_m2``,
        ``added_m2``, ``removed_m2``, ``changed_m2``, ``n_added``, ``n_removed`` and the changed
        area (symmetric difference) as geometry; only units that changed.
    coverage_valid
        ``coverage_is_valid`` of ``after`` (None when the function is not available).
    gaps_left
        Gap pieces left (wider than ``gap_width_m``) as polygons.
    method
        ``"coverage_clean"`` or ``"polygonize"``.
    gap_width_m, snap_m
        The tolerances used.
    folds
        Where a unit's ring folds over itself, per piece: ``unit``, ``name``, ``lies_in``,
        ``goes_to`` (the unit proposed to get the piece; None where both units' rings fold
        and the longest-border rule decides), ``goes_to_name``, ``area_m2``, ``reason``,
        geometry (:func:`geo_mz.boundaries.fold_destinations`).
    """

    before: gpd.GeoDataFrame
    after: gpd.GeoDataFrame
    changes: gpd.GeoDataFrame
    coverage_valid: bool | None
    gaps_left: gpd.GeoSeries
    method: str
    gap_width_m: float
    snap_m: float | None
    folds: gpd.GeoDataFrame | None = None


#: Gaps narrower than this are merged into a neighbour by :func:`repair`: 20 m (local choice:
#: above digitising noise, below a street block; quantised web-map data needs about one grid
#: step, e.g. ~110 m for echarts' 1/1024°).
GAP_WIDTH_M = 20.0


def repair(
    units: gpd.GeoDataFrame,
    *,
    gap_width_m: float = GAP_WIDTH_M,
    snap_m: float | None = None,
    method: Literal["auto", "coverage_clean", "polygonize"] = "auto",
    code_field: str | None = None,
    name_field: str | None = None,
    measure_crs: str | None = None,
    noise_m2: float = QA_DEFAULTS.noise_m2,
    source: str = "units",
) -> Repair:
    """Propose a topologically clean version of a coverage; the input is left untouched.

    A piece where a unit's ring folds over itself into a neighbour that encloses it without
    folding goes to the neighbour (``Repair.folds`` lists every folded piece and where it
    goes). Other overlaps go to the unit with the longest border along the overlap, gaps
    narrower than ``gap_width_m`` to the neighbour with the longest shared border (wider gaps
    are left and listed), and shared edges end up identical.

    Parameters
    ----------
    units
        Polygons of one level, any CRS, or the ``units`` of a :class:`geo_mz.boundaries.Qa`.
    gap_width_m
        Gaps narrower than this are closed (``GAP_WIDTH_M``, local choice).
    snap_m
        Vertices closer than this are snapped together; None lets GEOS choose a tiny distance
        from the data's extent (``coverage_clean``) or disables snapping (``polygonize``).
    method
        ``"coverage_clean"`` (``shapely.coverage_clean``, shapely ≥ 2.2), ``"polygonize"``
        (node all borders, assign each face; slower, for older shapely) or ``"auto"``.
    code_field, name_field, measure_crs
        As for :func:`geo_mz.boundaries.prepare_units`.
    noise_m2
        Changed pieces smaller than this are not counted
        (:data:`geo_mz.boundaries.QA_DEFAULTS`).
    source
        The units' file or table, named in errors.

    Returns
    -------
    Repair

    Raises
    ------
    LayerValidationError
        Before any computation, when a unit's code is empty: one problem per row of
        ``units`` (its index label, the 0-based row of the file read), naming the code column.
    """
    _check_codes(units, code_field, name_field, source)
    u = units if "valid_input" in units.columns else None
    if u is None:
        u = prepare_units(
            units, code_field=code_field, name_field=name_field, measure_crs=measure_crs
        )
    if method == "auto":
        method = "coverage_clean" if shapely_has("coverage_clean") else "polygonize"
    folds = fold_destinations(u, noise_m2)
    geoms = _give_folds_away(u, folds)
    if method == "coverage_clean":
        snap = -1.0 if snap_m is None else float(snap_m)
        new = shapely.coverage_clean(geoms, gap_width=float(gap_width_m), snapping_distance=snap)
        new = np.array([polygonal(g) for g in new], dtype=object)
    elif method == "polygonize":
        new = _repair_polygonize(geoms, gap_width_m, snap_m)
    else:
        raise BoundaryError(f"repair method {method!r} is not auto, coverage_clean or polygonize")
    after = u[["code", "name"]].copy()
    after = gpd.GeoDataFrame(after, geometry=list(new), crs=u.crs)
    valid = bool(shapely.coverage_is_valid(new)) if shapely_has("coverage_is_valid") else None
    union = units_union(new, valid)
    holes = enclosed_gaps(union, noise_m2)
    return Repair(
        u,
        after,
        _changes(u, after, noise_m2),
        valid,
        gpd.GeoSeries(holes, crs=u.crs),
        method,
        float(gap_width_m),
        snap_m,
        folds,
    )


def _give_folds_away(u: gpd.GeoDataFrame, folds: gpd.GeoDataFrame) -> np.ndarray:
    """Take each folded piece that belongs to a neighbour out of the folding unit."""
    geoms = u.geometry.to_numpy().copy()
    away = folds[folds["goes_to"].notna() & (folds["goes_to"] != folds["unit"])]
    if len(away) == 0:
        return geoms
    at = {str(c): k for k, c in enumerate(u["code"])}
    for code, grp in away.groupby("unit"):
        k = at[str(code)]
        geoms[k] = polygonal(shapely.difference(geoms[k], shapely.union_all(grp.geometry.values)))
    return geoms


def _column(units: gpd.GeoDataFrame, wanted: str | None, names: tuple[str, ...]) -> str | None:
    """Return the column ``prepare_units`` takes for the code or name (None: there is none)."""
    if wanted is not None:
        return wanted if wanted in units.columns else None
    cols = {str(c).casefold(): str(c) for c in units.columns if c != units.geometry.name}
    return next((cols[n.casefold()] for n in names if n.casefold() in cols), None)


def _check_codes(
    units: gpd.GeoDataFrame, code_field: str | None, name_field: str | None, source: str
) -> None:
    """Refuse units with an empty code, naming the input row and column.

    The output layers need a code per unit: found there, after the computation, the error
    would name an output row instead.
    """
    if "valid_input" in units.columns:  # prepared already: its rows are the units
        field, name_c = "code", "name"
    else:
        field = _column(units, code_field, CODE_FIELDS)
        name_c = _column(units, name_field, NAME_FIELDS)
    if field is None:
        return  # no code column: prepare_units says so
    codes = units[field]
    empty = codes.isna().to_numpy() | (codes.astype(str).str.strip() == "").to_numpy()
    problems = []
    for pos in np.flatnonzero(empty):
        label = units.index[pos]
        row = int(label) if isinstance(label, int | np.integer) else int(pos)
        name = units[name_c].iloc[pos] if name_c else None
        name = "" if name is None or pd.isna(name) else str(name)
        problems.append(
            Problem(
                source,
                row,
                None,
                field,
                "empty_unit_code",
                f"区划代码为空{f'（{name}）' if name else ''}：请补上代码，或指定代码列"
                f"（code_field / --code-field） / the unit code is empty"
                f"{f' ({name})' if name else ''}: fill it in, or name the code column "
                "(code_field / --code-field)",
            )
        )
    if problems:
        raise LayerValidationError(problems)


def _repair_polygonize(geoms: np.ndarray, gap_width_m: float, snap_m: float | None) -> np.ndarray:
    """Node every border, polygonize, give each face to one unit, dissolve per unit."""
    grid = float(snap_m) if snap_m else None
    g = shapely.set_precision(geoms, grid) if grid else geoms
    edges = shapely.union_all(shapely.boundary(g), grid_size=grid)
    faces = np.asarray(shapely.get_parts(shapely.polygonize(shapely.get_parts(edges))))
    faces = faces[shapely.area(faces) > 0]
    tree = shapely.STRtree(g)
    pts = shapely.point_on_surface(faces)
    owner = np.full(len(faces), -1)
    fi, ui = tree.query(pts, predicate="within")
    for f in np.unique(fi):
        cands = ui[fi == f]
        if len(cands) == 1:
            owner[f] = cands[0]
        else:  # overlap: the unit whose border runs longest along this face keeps it
            lens = [shared_length(faces[f], g[c], 1e-6 * max(1.0, grid or 1.0)) for c in cands]
            owner[f] = cands[int(np.argmax(lens))]
    tol = max(1e-6, grid or 0.0)
    for f in np.flatnonzero(owner < 0):
        per = faces[f].length
        width = 2.0 * faces[f].area / per if per else 0.0
        if width >= gap_width_m or faces[f].area <= 0:
            continue
        around = units_around(faces[f], g, tree, tol)
        if around:
            owner[f] = around[0]
    out = np.empty(len(g), dtype=object)
    for i in range(len(g)):
        mine = faces[owner == i]
        out[i] = polygonal(shapely.coverage_union_all(mine)) if len(mine) else shapely.Polygon()
    return out


def _changes(before: gpd.GeoDataFrame, after: gpd.GeoDataFrame, noise: float) -> gpd.GeoDataFrame:
    rows = []
    for (_, b), a in zip(before.iterrows(), after.geometry, strict=True):
        g0 = b.geometry
        added = polygons(shapely.difference(a, g0), noise)
        removed = polygons(shapely.difference(g0, a), noise)
        if not added and not removed:
            continue
        add_a = float(sum(p.area for p in added))
        rem_a = float(sum(p.area for p in removed))
        rows.append(
            {
                "unit": b["code"],
                "name": b["name"],
                "area_before_m2": float(g0.area),
                "area_after_m2": float(a.area),
                "delta_m2": float(a.area - g0.area),
                "added_m2": add_a,
                "removed_m2": rem_a,
                "changed_m2": add_a + rem_a,
                "n_added": len(added),
                "n_removed": len(removed),
                "geometry": shapely.MultiPolygon(added + removed),
            }
        )
    cols = (
        "unit",
        "name",
        "area_before_m2",
        "area_after_m2",
        "delta_m2",
        "added_m2",
        "removed_m2",
        "changed_m2",
        "n_added",
        "n_removed",
    )
    if not rows:
        return gpd.GeoDataFrame(
            {c: pd.Series([], dtype=object) for c in cols}, geometry=[], crs=before.crs
        )
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=before.crs)


def repair_kpis(r: Repair) -> list[Kpi]:
    """Headline figures of a repair proposal."""
    c = r.changes
    return [
        Kpi("修改的单位", "Units changed", len(c)),
        Kpi("并入面积", "Area added to units", round(float(c["added_m2"].sum()), 1), "m²"),
        Kpi("划出面积", "Area taken from units", round(float(c["removed_m2"].sum()), 1), "m²"),
        Kpi(
            "修复后构成有效覆盖",
            "Proposal is a valid coverage",
            "—" if r.coverage_valid is None else ("是 yes" if r.coverage_valid else "否 no"),
            target="是 yes",
            met=r.coverage_valid,
            source="shapely.coverage_is_valid",
        ),
        Kpi(
            f"保留的缝隙(宽 ≥ {r.gap_width_m:g} m)",
            f"Gaps left (≥ {r.gap_width_m:g} m wide)",
            len(r.gaps_left),
            source="本地取值 local choice",
        ),
        Kpi("方法", "Method", r.method),
    ]


def repairs_layer(r: Repair) -> gpd.GeoDataFrame:
    """Return the per-unit changes as the ``boundary_repairs`` layer (EPSG:4490)."""
    from geo_mz.core.results import conform, result_catalog

    return conform("boundary_repairs", r.changes, result_catalog())


def repaired_layer(r: Repair) -> gpd.GeoDataFrame:
    """Return the proposed coverage as the ``boundary_repaired`` layer (EPSG:4490)."""
    from geo_mz.core.results import conform, result_catalog

    a = r.after.rename(columns={"code": "unit"})
    a["area_m2"] = a.area.to_numpy()
    a["changed"] = a["unit"].isin(set(r.changes["unit"]))
    a = a[~a.geometry.is_empty]
    return conform("boundary_repaired", a, result_catalog())

"""Topology QA and repair of one level of administrative units (a polygon coverage).

A level of admin units (all towns of a county, all counties of a province) should be a
*coverage*: valid polygons that do not overlap, leave no gaps, and whose shared edges are
identical. Real boundary data rarely is one: coordinates quantised by a web map, digitised by
two sides separately, or converted between datums disagree along shared borders. This module
finds where (:func:`qa`) and proposes a clean version (:func:`repair`), which is never applied
silently: it is returned, and written, as a separate layer.

Every length and area is measured in a projected CRS (the CGCS2000 3-degree Gauss-Krüger zone
of the data's centre, :func:`geo_mz.core.measure_crs_for`, unless one is given).

Tolerances
----------
No standard found gives tolerances for coverage QA of admin boundaries (STANDARDS.md §E lists
the marker tolerances as UNSOURCED), so every tolerance here is a **local choice**, named in
:data:`QA_DEFAULTS` and configurable per call and on the command line.

Shapely
-------
Uses shapely 2's coverage functions where the installed version has them:
``coverage_is_valid`` / ``coverage_invalid_edges`` (shapely ≥ 2.1) as the fast path of QA and
the edge-match check, ``coverage_union_all`` for the union, and ``coverage_clean`` (shapely ≥
2.2 with GEOS ≥ 3.14) for the repair; without it the repair falls back to noding all borders
and re-assigning the faces (:func:`repair` with ``method="polygonize"``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.core.errors import CrsError, GeoMzError
from geo_mz.core.projection import STORAGE_CRS, china_datum_to_wgs84, measure_crs_for, parse_crs
from geo_mz.core.results import Kpi

__all__ = [
    "QA_DEFAULTS",
    "BoundaryError",
    "Qa",
    "QaSettings",
    "Repair",
    "enclosed_gaps",
    "findings_layer",
    "number_findings",
    "prepare_units",
    "qa",
    "qa_kpis",
    "read_layer_file",
    "repair",
    "repair_kpis",
    "repaired_layer",
    "repairs_layer",
]

Kind = Literal["invalid", "overlap", "gap", "sliver", "not_touching"]
KINDS: tuple[str, ...] = ("invalid", "overlap", "gap", "sliver", "not_touching")
CODE_FIELDS = ("adcode", "code", "id", "区划代码", "gb")
NAME_FIELDS = ("name", "名称", "NAME")


class BoundaryError(GeoMzError, ValueError):
    """Units that cannot be checked: no code field, non-polygon rows, no CRS."""


@dataclass(frozen=True)
class QaSettings:
    """Tolerances of the topology QA; all are local choices (no standard gives them).

    Attributes
    ----------
    sliver_tol_m2
        Overlap and gap pieces smaller than this are reported as ``sliver`` (digitising noise
        rather than a disputed area). 100 m² (local choice: one 10 m × 10 m cell, far below a
        1:10,000 map's drawing accuracy of ~5 m times any real border length).
    near_tol_m
        Neighbours closer than this that do not touch, with empty space between them, are
        reported as ``not_touching``. 10 m (local choice).
    noise_m2
        Overlay pieces smaller than this are floating-point noise and dropped. 0.01 m²
        (local choice: 10 cm × 10 cm).
    touch_tol_m
        Distance within which a gap piece counts as bordering a unit. 0.01 m (local choice).
    mark_radius_m
        Radius of the circle drawn around an invalid geometry's error location. 25 m (local
        choice: visible at 1:10,000).
    """

    sliver_tol_m2: float = 100.0
    near_tol_m: float = 10.0
    noise_m2: float = 0.01
    touch_tol_m: float = 0.01
    mark_radius_m: float = 25.0


#: The default tolerances (every one a local choice; see :class:`QaSettings`).
QA_DEFAULTS = QaSettings()


@dataclass(frozen=True)
class Qa:
    """The outcome of :func:`qa`.

    Attributes
    ----------
    units
        The checked units in the measuring CRS: ``code``, ``name``, ``valid_input``,
        ``invalid_reason``, ``geometry`` (made valid where the input was not).
    findings
        One row per finding, in the measuring CRS: ``finding_id``, ``kind`` (one of
        ``invalid, overlap, gap, sliver, not_touching``), ``sliver_of``, ``unit_a``,
        ``name_a``, ``unit_b``, ``name_b``, ``units`` (every unit around, comma-separated),
        ``area_m2``, ``width_m`` (2·area/perimeter), ``distance_m``, ``detail``, ``geometry``
        (the overlap or gap polygon; a circle round an invalid geometry's error; the strip
        between units that do not touch).
    coverage_valid
        ``shapely.coverage_is_valid`` of the (made-valid) units: no overlaps and identical
        shared edges. None when the installed shapely has no coverage functions.
    invalid_edges
        Per unit with edges that do not match a neighbour's exactly
        (``shapely.coverage_invalid_edges``): ``code``, ``name``, ``length_m``, ``geometry``.
    settings
        The tolerances used.
    extent_used
        Whether gaps were measured against a given extent (else: the space the units enclose).
    """

    units: gpd.GeoDataFrame
    findings: gpd.GeoDataFrame
    coverage_valid: bool | None
    invalid_edges: gpd.GeoDataFrame
    settings: QaSettings = field(default_factory=QaSettings)
    extent_used: bool = False


def _has(name: str) -> bool:
    return hasattr(shapely, name)


# --- reading ----------------------------------------------------------------------------------


def read_layer_file(
    path: str | Path, *, source_crs: str | None = None, layer: str | None = None
) -> gpd.GeoDataFrame:
    """Read any GIS file into EPSG:4490, converting GCJ-02/BD-09 coordinates when told.

    Parameters
    ----------
    path
        GeoPackage, GeoJSON, Shapefile or CSV (read with :func:`geo_mz.core.read_source`).
    source_crs
        ``"gcj02"`` / ``"bd09"`` for Amap/echarts/Baidu coordinates (converted with
        :func:`geo_mz.core.china_datum_to_wgs84`), any CRS PROJ understands to override
        the file's, or None to use the file's.
    layer
        Layer name inside a multi-layer file.

    Returns
    -------
    geopandas.GeoDataFrame
        In EPSG:4490 (WGS84 and CGCS2000 agree to well under a metre, STANDARDS.md §G).

    Raises
    ------
    CrsError
        If the file has no CRS and none is given.
    """
    from geo_mz.core.io import read_source

    gdf = read_source(path, layer=layer).gdf
    if source_crs in ("gcj02", "bd09"):
        gdf = china_datum_to_wgs84(gdf, source_crs)  # type: ignore[arg-type]
    elif source_crs is not None:
        gdf = gdf.set_crs(parse_crs(source_crs), allow_override=True)
    if gdf.crs is None:
        raise CrsError(f"{path}: no CRS; give one (e.g. EPSG:4490, or gcj02 for Amap/echarts)")
    return gdf.to_crs(STORAGE_CRS)


def _pick_field(gdf: gpd.GeoDataFrame, wanted: str | None, names: Sequence[str], what: str) -> str:
    cols = [c for c in gdf.columns if c != gdf.geometry.name]
    if wanted is not None:
        if wanted not in cols:
            raise BoundaryError(f"no column '{wanted}' for the unit {what}; columns are {cols}")
        return wanted
    low = {str(c).casefold(): c for c in cols}
    for n in names:
        if n.casefold() in low:
            return str(low[n.casefold()])
    raise BoundaryError(f"no unit {what} column (looked for {list(names)}); columns are {cols}")


_REASON_XY = re.compile(r"\[\s*([-+\d.eE]+)[ ,]+([-+\d.eE]+)")


def prepare_units(
    units: gpd.GeoDataFrame,
    *,
    code_field: str | None = None,
    name_field: str | None = None,
    measure_crs: str | None = None,
) -> gpd.GeoDataFrame:
    """Units in the measuring CRS with ``code``, ``name`` and valid polygonal geometry.

    Rows sharing a code are merged into one unit (a unit split over several rows).

    Parameters
    ----------
    units
        Polygons of one level, in any CRS.
    code_field, name_field
        Columns of the unit code and name; found among ``adcode, code, id, 区划代码`` and
        ``name, 名称`` when None (a missing name column gives empty names).
    measure_crs
        Projected CRS for lengths and areas; the GK zone of the data's centre when None.

    Returns
    -------
    geopandas.GeoDataFrame
        Index 0..n-1; ``code``, ``name``, ``valid_input`` (validity of the geometry as given),
        ``invalid_reason``, ``error_x``, ``error_y`` (error location in the measuring CRS),
        ``geometry`` (``make_valid(method="structure")`` where needed).

    Raises
    ------
    BoundaryError
        No units, no code column, empty or non-polygon geometry.
    CrsError
        No CRS.
    """
    if units.crs is None:
        raise CrsError("units have no CRS; set one before checking them")
    if len(units) == 0:
        raise BoundaryError("no units to check")
    code_c = _pick_field(units, code_field, CODE_FIELDS, "code")
    try:
        name_c: str | None = _pick_field(units, name_field, NAME_FIELDS, "name")
    except BoundaryError:
        if name_field is not None:
            raise
        name_c = None
    geoms = np.asarray(units.geometry.values, dtype=object)
    bad = [
        i
        for i, g in enumerate(geoms)
        if g is None or g.is_empty or g.geom_type not in ("Polygon", "MultiPolygon")
    ]
    if bad:
        raise BoundaryError(
            f"{len(bad)} unit(s) without polygon geometry (rows {bad[:10]}); "
            "a coverage is made of polygons"
        )
    target = parse_crs(measure_crs or measure_crs_for(units))
    assert target is not None
    if not target.is_projected:
        raise CrsError(f"measuring CRS {target.to_string()} is geographic; use a projected CRS")
    reasons = shapely.is_valid_reason(geoms)
    valid = shapely.is_valid(geoms)
    locs = []
    for g, r in zip(geoms, reasons, strict=True):
        m = _REASON_XY.search(str(r))
        locs.append(shapely.Point(float(m[1]), float(m[2])) if m else g.representative_point())
    loc_m = gpd.GeoSeries(locs, crs=units.crs).to_crs(target)
    metric = gpd.GeoSeries(geoms, crs=units.crs).to_crs(target).to_numpy()
    fix = ~shapely.is_valid(metric)
    if fix.any():
        metric[fix] = [
            _polygonal(g)
            for g in shapely.make_valid(metric[fix], method="structure", keep_collapsed=False)
        ]
    df = pd.DataFrame(
        {
            "code": units[code_c].astype(str).to_numpy(),
            "name": units[name_c].astype(str).to_numpy() if name_c else "",
            "valid_input": valid,
            "invalid_reason": np.where(valid, "", reasons.astype(str)),
            "error_x": loc_m.x.to_numpy(),
            "error_y": loc_m.y.to_numpy(),
        }
    )
    out = gpd.GeoDataFrame(df, geometry=list(metric), crs=target)
    if out["code"].duplicated().any():
        out = _merge_duplicate_codes(out)
    return out.reset_index(drop=True)


def _merge_duplicate_codes(g: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    rows = []
    for code, grp in g.groupby("code", sort=False):
        first = grp.iloc[0]
        rows.append(
            {
                "code": code,
                "name": first["name"],
                "valid_input": bool(grp["valid_input"].all()),
                "invalid_reason": "; ".join(r for r in grp["invalid_reason"] if r),
                "error_x": first["error_x"],
                "error_y": first["error_y"],
                "geometry": _polygonal(shapely.union_all(grp.geometry.to_numpy())),
            }
        )
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=g.crs)


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return shapely.Polygon()
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


# --- QA -----------------------------------------------------------------------------------------


def _polygons(geom: shapely.Geometry, min_area: float) -> list[shapely.Geometry]:
    return [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and p.area > min_area]


def _finding(
    kind: str,
    geom: shapely.Geometry,
    units: gpd.GeoDataFrame,
    around: Sequence[int],
    *,
    area: float = np.nan,
    distance: float = np.nan,
    detail: str = "",
) -> dict:
    codes = units["code"].to_numpy()
    names = units["name"].to_numpy()
    a = around[0] if len(around) > 0 else None
    b = around[1] if len(around) > 1 else None
    per = geom.length if geom.geom_type in ("Polygon", "MultiPolygon") else 0.0
    return {
        "kind": kind,
        "unit_a": codes[a] if a is not None else None,
        "name_a": names[a] if a is not None else None,
        "unit_b": codes[b] if b is not None else None,
        "name_b": names[b] if b is not None else None,
        "units": ",".join(str(codes[i]) for i in around),
        "area_m2": area,
        "width_m": 2.0 * area / per if per > 0 and np.isfinite(area) else np.nan,
        "distance_m": distance,
        "detail": detail,
        "geometry": geom,
    }


def _shared_length(piece: shapely.Geometry, unit: shapely.Geometry, tol: float) -> float:
    """Length of ``piece``'s border that runs along ``unit``'s border (within ``tol``)."""
    box = shapely.buffer(piece, tol * 10).bounds
    near = shapely.clip_by_rect(shapely.boundary(unit), *box)
    if near.is_empty:
        return 0.0
    return float(shapely.intersection(shapely.boundary(piece), shapely.buffer(near, tol)).length)


def _around(
    piece: shapely.Geometry,
    geoms: np.ndarray,
    tree: shapely.STRtree,
    tol: float,
    candidates: Sequence[int] | None = None,
) -> list[int]:
    """Units bordering ``piece``, longest shared border first."""
    idx = (
        list(candidates)
        if candidates is not None
        else [int(i) for i in tree.query(piece, predicate="dwithin", distance=tol)]
    )
    lens = [(_shared_length(piece, geoms[i], tol), i) for i in idx]
    return [i for _, i in sorted(lens, key=lambda t: (-t[0], t[1]))]


def _overlaps(units: gpd.GeoDataFrame, tree: shapely.STRtree, s: QaSettings) -> list[dict]:
    geoms = units.geometry.to_numpy()
    left, right = tree.query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    if len(left) == 0:
        return []
    # Interiors intersect in 2 dimensions: an overlap (touching pairs are dropped cheaply).
    two_d = shapely.relate_pattern(geoms[left], geoms[right], "2********")
    out = []
    for i, j in zip(left[two_d], right[two_d], strict=True):
        inter = shapely.intersection(geoms[i], geoms[j])
        for p in _polygons(inter, s.noise_m2):
            kind = "overlap" if p.area >= s.sliver_tol_m2 else "sliver"
            f = _finding(kind, p, units, [int(i), int(j)], area=p.area)
            f["sliver_of"] = "overlap" if kind == "sliver" else None
            out.append(f)
    return out


def _union(geoms: np.ndarray, coverage_valid: bool | None) -> shapely.Geometry:
    if coverage_valid:
        return shapely.coverage_union_all(geoms)
    return shapely.union_all(geoms)


def enclosed_gaps(union: shapely.Geometry, min_area: float = 0.0) -> list[shapely.Geometry]:
    """Areas enclosed by a union of units but in none of them.

    Holes of the union's polygons, and also spaces closed off where separate parts of the union
    touch at two or more points (which are no polygon's hole): the faces of the noded union
    boundary that lie outside the union.
    """
    edges = shapely.union_all(shapely.get_parts(shapely.boundary(union)))
    faces = np.asarray(shapely.get_parts(shapely.polygonize(shapely.get_parts(edges))))
    if len(faces) == 0:
        return []
    shapely.prepare(union)
    inside = shapely.covers(union, shapely.point_on_surface(faces))
    return [f for f in faces[~inside] if f.area > min_area]


def _gaps(
    units: gpd.GeoDataFrame,
    tree: shapely.STRtree,
    union: shapely.Geometry,
    extent: shapely.Geometry | None,
    s: QaSettings,
) -> list[dict]:
    geoms = units.geometry.to_numpy()
    if extent is not None:
        pieces = _polygons(shapely.difference(extent, union), s.noise_m2)
    else:
        pieces = enclosed_gaps(union, s.noise_m2)
    out = []
    for p in pieces:
        around = _around(p, geoms, tree, s.touch_tol_m)
        kind = "gap" if p.area >= s.sliver_tol_m2 else "sliver"
        f = _finding(kind, p, units, around, area=p.area)
        f["sliver_of"] = "gap" if kind == "sliver" else None
        out.append(f)
    return out


def _not_touching(units: gpd.GeoDataFrame, tree: shapely.STRtree, s: QaSettings) -> list[dict]:
    geoms = units.geometry.to_numpy()
    left, right = tree.query(geoms, predicate="dwithin", distance=s.near_tol_m)
    keep = left < right
    left, right = left[keep], right[keep]
    if len(left) == 0:
        return []
    apart = ~shapely.intersects(geoms[left], geoms[right])
    out = []
    for i, j in zip(left[apart], right[apart], strict=True):
        line = shapely.shortest_line(geoms[i], geoms[j])
        d = float(line.length)
        others = [int(k) for k in tree.query(line, predicate="intersects") if k not in (i, j)]
        free = line if not others else shapely.difference(line, shapely.union_all(geoms[others]))
        # Units legitimately apart have another unit between them; report only empty space.
        if d <= s.touch_tol_m or free.length < 0.5 * d:
            continue  # touching within tolerance, or another unit lies between them
        strip = shapely.buffer(line, max(d / 2.0, 0.5))
        out.append(
            _finding(
                "not_touching",
                strip,
                units,
                [int(i), int(j)],
                distance=d,
                detail=f"最近相距 {d:.2f} m apart at the closest point",
            )
        )
    return out


def _invalid(units: gpd.GeoDataFrame, s: QaSettings) -> list[dict]:
    out = []
    for i in np.flatnonzero(~units["valid_input"].to_numpy(bool)):
        r = units.iloc[i]
        mark = shapely.Point(r["error_x"], r["error_y"]).buffer(s.mark_radius_m)
        out.append(_finding("invalid", mark, units, [int(i)], detail=str(r["invalid_reason"])))
    return out


def qa(
    units: gpd.GeoDataFrame,
    *,
    code_field: str | None = None,
    name_field: str | None = None,
    extent: gpd.GeoDataFrame | gpd.GeoSeries | None = None,
    settings: QaSettings = QA_DEFAULTS,
    measure_crs: str | None = None,
) -> Qa:
    """Check one level of admin units as a coverage.

    Parameters
    ----------
    units
        Polygons of one level (e.g. the towns of a county), any CRS.
    code_field, name_field
        Columns of the unit code and name (detected when None, see :func:`prepare_units`).
    extent
        The area the units should tile (e.g. their parent county). When given, gaps are the
        parts of it no unit covers, including notches along its edge; otherwise gaps are the
        spaces the units enclose but none covers (:func:`enclosed_gaps`: the union's holes and
        spaces closed off where parts touch at points).
    settings
        Tolerances, :data:`QA_DEFAULTS` by default (all local choices).
    measure_crs
        Projected CRS for lengths and areas; the GK zone of the data's centre when None.

    Returns
    -------
    Qa
        Findings of kind ``invalid`` (geometry not valid as given: each is then repaired with
        ``make_valid`` for the rest of the checks), ``overlap`` (area in two units, one row per
        connected piece and pair), ``gap`` (area in none; units around ranked by shared
        border), ``sliver`` (an overlap or gap piece under ``sliver_tol_m2``; ``sliver_of``
        says which) and ``not_touching`` (units within ``near_tol_m`` of each other that do
        not touch, with no other unit in between).

    Notes
    -----
    When ``shapely.coverage_is_valid`` says the units form a valid coverage, the overlap
    search is skipped (there can be none) and the union is the fast ``coverage_union_all``.
    Pairs come from an ``STRtree`` query, so the work grows with the number of neighbours,
    not with all pairs.
    """
    u = units if "valid_input" in units.columns else None
    if u is None:
        u = prepare_units(
            units, code_field=code_field, name_field=name_field, measure_crs=measure_crs
        )
    geoms = u.geometry.to_numpy()
    tree = shapely.STRtree(geoms)
    cov_valid = bool(shapely.coverage_is_valid(geoms)) if _has("coverage_is_valid") else None
    rows = _invalid(u, settings)
    if not cov_valid:
        rows += _overlaps(u, tree, settings)
    ext = None
    if extent is not None:
        ext = shapely.union_all(extent.to_crs(u.crs).geometry.to_numpy())
    rows += _gaps(u, tree, _union(geoms, cov_valid), ext, settings)
    rows += _not_touching(u, tree, settings)
    findings = _findings_frame(rows, u.crs)
    return Qa(u, findings, cov_valid, _invalid_edges(u, cov_valid), settings, ext is not None)


_FINDING_COLS = (
    "finding_id",
    "kind",
    "sliver_of",
    "unit_a",
    "name_a",
    "unit_b",
    "name_b",
    "units",
    "area_m2",
    "width_m",
    "distance_m",
    "detail",
)


def _findings_frame(rows: list[dict], crs: object) -> gpd.GeoDataFrame:
    if not rows:
        empty = {c: pd.Series([], dtype=object) for c in _FINDING_COLS}
        return gpd.GeoDataFrame(empty, geometry=[], crs=crs)
    df = pd.DataFrame(rows)
    if "sliver_of" not in df:
        df["sliver_of"] = None
    order = df["kind"].map({k: i for i, k in enumerate(KINDS)})
    df = df.assign(_o=order, _a=-df["area_m2"].fillna(0.0)).sort_values(
        ["_o", "_a", "unit_a"], kind="stable"
    )
    df = df.drop(columns=["_o", "_a"]).reset_index(drop=True)
    df.insert(0, "finding_id", [f"F{i + 1:04d}" for i in range(len(df))])
    df["sliver_of"] = df["sliver_of"].astype(object).where(df["sliver_of"].notna(), None)
    return gpd.GeoDataFrame(df[[*_FINDING_COLS, "geometry"]], geometry="geometry", crs=crs)


def number_findings(findings: pd.DataFrame) -> gpd.GeoDataFrame:
    """Sort findings as :func:`qa` does and number them ``F0001``… (e.g. gathered from parts).

    Parameters
    ----------
    findings
        Finding rows (with or without ``finding_id``) and their geometry, one CRS.
    """
    rows = pd.DataFrame(findings.drop(columns=["finding_id"], errors="ignore")).to_dict("records")
    return _findings_frame(rows, getattr(findings, "crs", None))


def _invalid_edges(u: gpd.GeoDataFrame, cov_valid: bool | None) -> gpd.GeoDataFrame:
    cols = {"code": [], "name": [], "length_m": []}
    geoms: list = []
    if cov_valid is False and _has("coverage_invalid_edges"):
        edges = shapely.coverage_invalid_edges(u.geometry.to_numpy())
        for i, e in enumerate(edges):
            if e is not None and not e.is_empty:
                cols["code"].append(u["code"].iat[i])
                cols["name"].append(u["name"].iat[i])
                cols["length_m"].append(float(e.length))
                geoms.append(e)
    return gpd.GeoDataFrame(cols, geometry=geoms, crs=u.crs)


def qa_kpis(q: Qa) -> list[Kpi]:
    """Headline figures: units, coverage validity, counts and areas of each finding kind."""
    f = q.findings
    k = f["kind"]

    def n(kind: str) -> int:
        return int((k == kind).sum())

    def area(kind: str) -> float:
        return round(float(f.loc[k == kind, "area_m2"].sum()), 1)

    src = "本地取值 local choice"
    s = q.settings
    return [
        Kpi("单位数", "Units checked", len(q.units)),
        Kpi(
            "构成有效覆盖(无重叠、公共边一致)",
            "Valid coverage (no overlaps, shared edges identical)",
            "—" if q.coverage_valid is None else ("是 yes" if q.coverage_valid else "否 no"),
            target="是 yes",
            met=q.coverage_valid,
            source="shapely.coverage_is_valid",
        ),
        Kpi("几何无效", "Invalid geometries", n("invalid"), target="0", met=n("invalid") == 0),
        Kpi("重叠", "Overlaps", n("overlap"), target="0", met=n("overlap") == 0),
        Kpi("重叠面积", "Overlap area", area("overlap"), "m²"),
        Kpi("缝隙", "Gaps", n("gap"), target="0", met=n("gap") == 0),
        Kpi("缝隙面积", "Gap area", area("gap"), "m²"),
        Kpi(
            f"碎片(< {s.sliver_tol_m2:g} m²)",
            f"Slivers (< {s.sliver_tol_m2:g} m²)",
            n("sliver"),
            source=src,
        ),
        Kpi(
            f"应相接未相接(< {s.near_tol_m:g} m)",
            f"Should touch, do not (< {s.near_tol_m:g} m)",
            n("not_touching"),
            target="0",
            met=n("not_touching") == 0,
            source=src,
        ),
        Kpi(
            "公共边不一致长度",
            "Length of unmatched edges",
            round(float(q.invalid_edges["length_m"].sum()), 1),
            "m",
            source="shapely.coverage_invalid_edges",
        ),
    ]


def findings_layer(q: Qa) -> gpd.GeoDataFrame:
    """Return the findings as the ``boundary_findings`` layer (EPSG:4490, with lon/lat of each)."""
    from geo_mz.core.results import conform, result_catalog

    f = q.findings.copy()
    pts = gpd.GeoSeries(shapely.point_on_surface(f.geometry.to_numpy()), crs=f.crs)
    ll = pts.to_crs(STORAGE_CRS)
    f["lon"] = ll.x.round(7).to_numpy() if len(f) else []
    f["lat"] = ll.y.round(7).to_numpy() if len(f) else []
    return conform("boundary_findings", f, result_catalog())


# --- repair -------------------------------------------------------------------------------------


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
    """

    before: gpd.GeoDataFrame
    after: gpd.GeoDataFrame
    changes: gpd.GeoDataFrame
    coverage_valid: bool | None
    gaps_left: gpd.GeoSeries
    method: str
    gap_width_m: float
    snap_m: float | None


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
) -> Repair:
    """Propose a topologically clean version of a coverage; the input is left untouched.

    Overlaps go to the unit with the longest border along the overlap, gaps narrower than
    ``gap_width_m`` to the neighbour with the longest shared border (wider gaps are left and
    listed), and shared edges end up identical.

    Parameters
    ----------
    units
        Polygons of one level, any CRS, or the ``units`` of a :class:`Qa`.
    gap_width_m
        Gaps narrower than this are closed (:data:`GAP_WIDTH_M`, local choice).
    snap_m
        Vertices closer than this are snapped together; None lets GEOS choose a tiny distance
        from the data's extent (``coverage_clean``) or disables snapping (``polygonize``).
    method
        ``"coverage_clean"`` (``shapely.coverage_clean``, shapely ≥ 2.2), ``"polygonize"``
        (node all borders, assign each face; slower, for older shapely) or ``"auto"``.
    code_field, name_field, measure_crs
        As for :func:`prepare_units`.
    noise_m2
        Changed pieces smaller than this are not counted (:data:`QA_DEFAULTS`).

    Returns
    -------
    Repair
    """
    u = units if "valid_input" in units.columns else None
    if u is None:
        u = prepare_units(
            units, code_field=code_field, name_field=name_field, measure_crs=measure_crs
        )
    if method == "auto":
        method = "coverage_clean" if _has("coverage_clean") else "polygonize"
    geoms = u.geometry.to_numpy()
    if method == "coverage_clean":
        snap = -1.0 if snap_m is None else float(snap_m)
        new = shapely.coverage_clean(geoms, gap_width=float(gap_width_m), snapping_distance=snap)
        new = np.array([_polygonal(g) for g in new], dtype=object)
    elif method == "polygonize":
        new = _repair_polygonize(geoms, gap_width_m, snap_m, noise_m2)
    else:
        raise BoundaryError(f"repair method {method!r} is not auto, coverage_clean or polygonize")
    after = u[["code", "name"]].copy()
    after = gpd.GeoDataFrame(after, geometry=list(new), crs=u.crs)
    valid = bool(shapely.coverage_is_valid(new)) if _has("coverage_is_valid") else None
    union = _union(new, valid)
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
    )


def _repair_polygonize(
    geoms: np.ndarray, gap_width_m: float, snap_m: float | None, noise_m2: float
) -> np.ndarray:
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
            lens = [_shared_length(faces[f], g[c], 1e-6 * max(1.0, grid or 1.0)) for c in cands]
            owner[f] = cands[int(np.argmax(lens))]
    tol = max(1e-6, grid or 0.0)
    for f in np.flatnonzero(owner < 0):
        per = faces[f].length
        width = 2.0 * faces[f].area / per if per else 0.0
        if width >= gap_width_m or faces[f].area <= 0:
            continue
        around = _around(faces[f], g, tree, tol)
        if around:
            owner[f] = around[0]
    out = np.empty(len(g), dtype=object)
    for i in range(len(g)):
        mine = faces[owner == i]
        out[i] = _polygonal(shapely.coverage_union_all(mine)) if len(mine) else shapely.Polygon()
    return out


def _changes(before: gpd.GeoDataFrame, after: gpd.GeoDataFrame, noise: float) -> gpd.GeoDataFrame:
    rows = []
    for (_, b), a in zip(before.iterrows(), after.geometry, strict=True):
        g0 = b.geometry
        added = _polygons(shapely.difference(a, g0), noise)
        removed = _polygons(shapely.difference(g0, a), noise)
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

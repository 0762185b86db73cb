"""Topology QA of one level of administrative units (a polygon coverage).

A level of admin units (all towns of a county, all counties of a province) should be a
*coverage*: valid polygons that do not overlap, leave no gaps, and whose shared edges are
identical. Real boundary data rarely is one: coordinates quantised by a web map, digitised by
two sides separately, or converted between datums disagree along shared borders. This module
finds where (:func:`qa`), with headline figures (:func:`qa_kpis`) and the ``boundary_findings``
layer (:func:`findings_layer`); a clean version is proposed by :func:`geo_mz.boundaries.repair`,
which is never applied silently: it is returned, and written, as a separate layer.

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
the edge-match check, and ``coverage_union_all`` for the union (the repair's use of
``coverage_clean`` is described in :mod:`geo_mz.boundaries.coverage_repair`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.boundaries._geometry import polygons, shapely_has, units_around, units_union
from geo_mz.boundaries.linework import fold_destinations
from geo_mz.boundaries.units import prepare_units
from geo_mz.core.projection import STORAGE_CRS
from geo_mz.core.results import Kpi

__all__ = [
    "QA_DEFAULTS",
    "Qa",
    "QaSettings",
    "enclosed_gaps",
    "findings_layer",
    "number_findings",
    "qa",
    "qa_kpis",
]

Kind = Literal["invalid", "overlap", "gap", "sliver", "not_touching"]
KINDS: tuple[str, ...] = ("invalid", "overlap", "gap", "sliver", "not_touching")


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
        ``invalid_reason``, ``fold``, ``fold_m2`` and ``geometry`` (where the input was
        invalid: the region its rings enclose as given, see
        :func:`geo_mz.boundaries.prepare_units`).
    findings
        One row per finding, in the measuring CRS: ``finding_id``, ``kind`` (one of
        ``invalid, overlap, gap, sliver, not_touching``), ``sliver_of``, ``unit_a``,
        ``name_a``, ``unit_b``, ``name_b``, ``units`` (every unit around, comma-separated),
        ``area_m2``, ``width_m`` (2·area/perimeter), ``distance_m``, ``detail``, ``geometry``
        (the overlap or gap polygon; the folded piece of an invalid geometry, or a circle round
        its error; the strip between units that do not touch).
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


def _overlaps(units: gpd.GeoDataFrame, tree: shapely.STRtree, s: QaSettings) -> list[dict]:
    geoms = units.geometry.to_numpy()
    left, right = tree.query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    if len(left) == 0:
        return []
    # Interiors intersect in 2 dimensions: an overlap (touching pairs are dropped cheaply).
    two_d = shapely.relate_pattern(geoms[left], geoms[right], "2********")
    folds = units["fold"].to_numpy() if "fold" in units.columns else [None] * len(units)
    out = []
    for i, j in zip(left[two_d], right[two_d], strict=True):
        inter = shapely.intersection(geoms[i], geoms[j])
        for p in polygons(inter, s.noise_m2):
            kind = "overlap" if p.area >= s.sliver_tol_m2 else "sliver"
            f = _finding(
                kind,
                p,
                units,
                [int(i), int(j)],
                area=p.area,
                detail=_fold_note(p, units, folds, (i, j), s),
            )
            f["sliver_of"] = "overlap" if kind == "sliver" else None
            out.append(f)
    return out


def _fold_note(
    piece: shapely.Geometry,
    units: gpd.GeoDataFrame,
    folds: Sequence,
    pair: tuple[int, int],
    s: QaSettings,
) -> str:
    """Say which unit's folded ring made (part of) an overlap piece."""
    notes = []
    for k in pair:
        f = folds[k]
        if f is None:
            continue
        a = shapely.intersection(piece, f).area
        if a > s.noise_m2:
            code, name = units["code"].iat[k], units["name"].iat[k]
            notes.append(
                f"{_m2(a)} m² 由 {code} {name} 的环自身折叠造成 / {_m2(a)} m² made by "
                f"{code} {name}'s ring folding over itself"
            )
    return "; ".join(notes)


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
        pieces = polygons(shapely.difference(extent, union), s.noise_m2)
    else:
        pieces = enclosed_gaps(union, s.noise_m2)
    out = []
    for p in pieces:
        around = units_around(p, geoms, tree, s.touch_tol_m)
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


def _m2(a: float) -> str:
    return f"{a:,.0f}" if a >= 10 else f"{a:.2f}"


def _invalid(units: gpd.GeoDataFrame, s: QaSettings) -> list[dict]:
    """One finding per invalid unit: its folded pieces when its rings fold, else a circle."""
    out = []
    code_at = {str(c): k for k, c in enumerate(units["code"])}
    dest = fold_destinations(units, s.noise_m2)
    for i in np.flatnonzero(~units["valid_input"].to_numpy(bool)):
        r = units.iloc[i]
        mine = dest[dest["unit"] == r["code"]]
        detail = str(r["invalid_reason"])
        if len(mine) == 0:
            mark = shapely.Point(r["error_x"], r["error_y"]).buffer(s.mark_radius_m)
            out.append(_finding("invalid", mark, units, [int(i)], detail=detail))
            continue
        fold = shapely.union_all(mine.geometry.to_numpy())
        around = [int(i)] + [code_at[c] for c in dict.fromkeys(mine["lies_in"]) if c]
        go = []
        for (to, to_name), grp in mine.groupby(["goes_to", "goes_to_name"], dropna=False):
            area = _m2(float(grp["area_m2"].sum()))
            if to is None or pd.isna(to):
                go.append(
                    (
                        f"{area} m² 两单位都折叠，按最长公共边",
                        f"{area} m² folded by both: longest shared border",
                    )
                )
            elif to == r["code"]:
                go.append((f"{area} m² 留在本单位", f"{area} m² stays with this unit"))
            else:
                go.append(
                    (f"{area} m² 应划归 {to} {to_name}", f"{area} m² should go to {to} {to_name}")
                )
        detail += (
            f"; 环自身折叠 {_m2(fold.area)} m²：{'；'.join(z for z, _ in go)} / the ring folds "
            f"over itself, {_m2(fold.area)} m²: {'; '.join(e for _, e in go)}"
        )
        out.append(_finding("invalid", fold, units, around, area=fold.area, detail=detail))
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
        Columns of the unit code and name (detected when None, see
        :func:`geo_mz.boundaries.prepare_units`).
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
        Findings of kind ``invalid`` (geometry not valid as given; the finding is the piece
        where the unit's ring folds over itself, with its area and the unit it should go to,
        or a circle round the error where nothing folds; the other checks use the region the
        rings enclose as given, by the non-zero or the even-odd rule, so a fold into a
        neighbour is an overlap of the two), ``overlap`` (area in two units, one row per
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
    cov_valid = bool(shapely.coverage_is_valid(geoms)) if shapely_has("coverage_is_valid") else None
    rows = _invalid(u, settings)
    if not cov_valid:
        rows += _overlaps(u, tree, settings)
    ext = None
    if extent is not None:
        ext = shapely.union_all(extent.to_crs(u.crs).geometry.to_numpy())
    rows += _gaps(u, tree, units_union(geoms, cov_valid), ext, settings)
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
    if cov_valid is False and shapely_has("coverage_invalid_edges"):
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
        Kpi(
            "环自身折叠的面积",
            "Area where rings fold over themselves",
            round(float(f.loc[k == "invalid", "area_m2"].fillna(0.0).sum()), 1),
            "m²",
            source="非零环绕或奇偶规则 non-zero or even-odd rule of the raw rings",
        ),
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

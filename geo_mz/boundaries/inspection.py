"""Joint inspection (界线联检) of boundary lines: markers, numbering, spacing and changes.

:func:`inspect_lines` checks each boundary line of :func:`geo_mz.boundaries.extract_lines`:
its boundary markers (界桩, with the checks of :mod:`geo_mz.boundaries.markers`) and its
course compared with the previous inspection's line; it returns an :class:`Inspection`, which
:func:`inspection_kpis`, :func:`marker_layer` and :func:`issues_layer` report. The same line
is jointly inspected every 5 years (STANDARDS.md §E, SOURCED): ``next = last + 5 years``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.boundaries._inspect import LineIssues, col
from geo_mz.boundaries.lines import normalise_line_id
from geo_mz.boundaries.markers import (
    InspectSettings,
    inspect_markers,
    markers_frame,
    match_markers,
    prepare_markers,
)
from geo_mz.core.results import Kpi

__all__ = [
    "Inspection",
    "inspect_lines",
    "inspection_kpis",
    "issues_layer",
    "marker_layer",
]


@dataclass(frozen=True)
class Inspection:
    """The outcome of :func:`inspect_lines` (all frames in the lines' measuring CRS).

    Attributes
    ----------
    lines
        The inspected lines (one row per part, as :func:`geo_mz.boundaries.extract_lines`).
    summary
        One row per line: ids, names, length, marker counts by status, marker issues,
        spacing gaps, number jumps, whether numbering runs reversed, ``hausdorff_m`` to the
        previous line (when the previous lines carry line ids), ``moved_length_m`` and
        ``max_shift_m`` (length and largest shift of the pieces moved beyond ``change_tol_m``;
        0 when none did), last inspection and the next one due.
    markers
        One row per marker: ``marker_id``, ``number``, ``line_id`` (matched),
        ``register_line_id``, ``status``, ``seq``, ``type_code``, ``order``, ``chainage_m``,
        ``offset_m``, ``side``, ``displacement_m``, ``spacing_prev_m``, ``check``
        (``ok``/``issue``/``unmatched``), ``issues`` (comma-separated codes).
    issues
        Line stretches with an issue: ``issue_id``, ``line_id``, ``kind``, ``from_m``,
        ``to_m``, ``length_m``, ``max_offset_m``, ``detail``, ``geometry``.
    settings
        The tolerances used.
    """

    lines: gpd.GeoDataFrame
    summary: pd.DataFrame
    markers: gpd.GeoDataFrame
    issues: gpd.GeoDataFrame
    settings: InspectSettings = field(default_factory=InspectSettings)


def _previous_by_line(
    previous: gpd.GeoDataFrame | None,
    lines: gpd.GeoDataFrame,
    line_geoms: pd.Series,
    s: InspectSettings,
) -> tuple[dict[str, shapely.Geometry], dict[str, shapely.Geometry]]:
    """Previous linework per current line id, and previous lines no longer present."""
    if previous is None or len(previous) == 0:
        return {}, {}
    p = previous.to_crs(lines.crs)
    poly = p.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
    if poly.any():  # the previous inspection's units: compare with their borders
        p = p.set_geometry(np.where(poly, p.boundary.to_numpy(), p.geometry.to_numpy()))
    lc = col(p, "line_id", "界线编号")
    if lc:
        p = p.assign(_lid=[normalise_line_id(v) for v in p[lc]])
        by = {k: shapely.union_all(g.geometry.to_numpy()) for k, g in p.groupby("_lid")}
        gone = {k: v for k, v in by.items() if k not in line_geoms.index}
        return {k: by[k] for k in line_geoms.index if k in by}, gone
    allp = shapely.union_all(p.geometry.to_numpy())
    reach = max(10.0 * s.change_tol_m, s.marker_search_m)
    out = {}
    for k, g in line_geoms.items():
        near = shapely.intersection(allp, shapely.buffer(g, reach))
        if not near.is_empty:
            out[k] = near
    return out, {}


def _max_offset(piece: shapely.Geometry, other: shapely.Geometry, step: float) -> float:
    pts = shapely.points(shapely.get_coordinates(shapely.segmentize(piece, step)))
    return float(shapely.distance(pts, other).max())


def _compare(
    lid: str,
    cur: shapely.Geometry,
    prev: shapely.Geometry | None,
    s: InspectSettings,
    iss: LineIssues,
    by_id: bool,
) -> tuple[float, float, float]:
    """Hausdorff distance (when matched by id), moved length and largest shift of a line."""
    if prev is None:
        return np.nan, np.nan, np.nan
    h = float(shapely.hausdorff_distance(cur, prev)) if by_id else np.nan
    moved = shapely.difference(cur, shapely.buffer(prev, s.change_tol_m))
    pieces = [
        q
        for q in shapely.get_parts(shapely.line_merge(moved) if not moved.is_empty else moved)
        if q.geom_type == "LineString" and q.length > 0
    ]
    total, worst = 0.0, 0.0
    for q in pieces:
        off = _max_offset(q, prev, max(s.change_tol_m, 1.0))
        total += q.length
        worst = max(worst, off)
        iss.add(
            lid,
            "moved",
            [q],
            max_offset=off,
            detail=f"较上次联检界线偏移最大 {off:.1f} m / moved up to {off:.1f} m",
        )
    return h, total, worst


def inspect_lines(
    lines: gpd.GeoDataFrame,
    markers: gpd.GeoDataFrame | None = None,
    previous: gpd.GeoDataFrame | None = None,
    *,
    registered: gpd.GeoDataFrame | None = None,
    units: gpd.GeoDataFrame | None = None,
    settings: InspectSettings | None = None,
) -> Inspection:
    r"""Joint-inspection checks of each boundary line: markers, numbering, spacing, changes.

    Parameters
    ----------
    lines
        From :func:`geo_mz.boundaries.extract_lines` (measuring CRS).
    markers
        Boundary markers (any CRS) with ``number`` (GB/T 17796), and where known
        ``marker_id``, ``line_id`` (the register's line), ``status``, ``marker_type``,
        ``last_inspected`` (the ``boundary_markers`` layer has them all).
    previous
        The previous inspection's lines (any CRS), with ``line_id`` where known; without it
        each line is compared with the previous linework near it.
    registered
        Registered marker positions (界桩登记表, with ``number``) to check displacement.
    units
        The units (any CRS, ``code`` or ``adcode``), to say on which side a marker stands.
    settings
        Tolerances, :class:`geo_mz.boundaries.InspectSettings` defaults when None.

    Returns
    -------
    Inspection
        Marker issue codes: ``bad_number`` (not ``^\d{4}\d{3}[QABCDE]$``), ``out_of_order``
        (not in the longest run of numbers increasing along the line), ``wrong_line_number``
        (line number differs from the line's majority), ``type_mismatch`` (type code vs
        ``marker_type``), ``type_conflict`` / ``incomplete_group`` (Q shares its number, or an
        A/B pair or C/D/E triple is incomplete), ``duplicate_number``, ``off_line``,
        ``far_from_line``, ``displaced``. Line issues: ``spacing_gap``, ``number_jump`` (numbers
        skipped: where the register expects a marker), ``reversed_numbering``, ``no_markers``
        (a shared line without markers), ``moved``, ``new_line``, ``line_gone``.
    """
    s = settings or InspectSettings()
    iss = LineIssues()
    by_line = {k: g.sort_values("part") for k, g in lines.groupby("line_id", sort=False)}
    line_geoms = pd.Series(
        {k: shapely.MultiLineString(list(g.geometry)) for k, g in by_line.items()}
    )
    mk_all = None
    if markers is not None and len(markers):
        mk_all = prepare_markers(markers, lines.crs, registered)
        mk_all["line_id"] = match_markers(mk_all, line_geoms, s.marker_search_m)
        dup = mk_all["number"].duplicated(keep=False) & (mk_all["number"] != "")
        mk_all["_dup"] = dup.to_numpy()
    prev_by, gone = _previous_by_line(previous, lines, line_geoms, s)
    prev_has_ids = previous is not None and col(previous, "line_id", "界线编号") is not None
    rows, done = [], []
    for lid, g in by_line.items():
        parts = list(g.geometry)
        starts = g["chainage_start_m"].to_numpy()
        length = float(g["line_length_m"].iat[0])
        first = g.iloc[0]
        rec = {
            "line_id": lid,
            "line_name": first["line_name"],
            "kind": first["kind"],
            "unit_a": first["unit_a"],
            "name_a": first["name_a"],
            "unit_b": first["unit_b"],
            "name_b": first["name_b"],
            "length_m": length,
            "n_parts": int(first["n_parts"]),
            "n_markers": 0,
        }
        if mk_all is not None:
            mk = mk_all[mk_all["line_id"] == lid]
            if len(mk):
                mk, stats = inspect_markers(lid, mk, parts, starts, length, s, iss)
                done.append(mk)
                rec.update(stats)
                rec["n_markers"] = len(mk)
                for st in ("intact", "damaged", "missing", "displaced", "obscured"):
                    rec[f"n_{st}"] = int((mk["status"].astype(str) == st).sum())
                last = pd.to_datetime(mk["last_inspected"], errors="coerce").max()
                if pd.notna(last):
                    rec["last_inspected"] = last.date()
                    rec["next_inspection"] = _add_years(last.date(), s.inspection_years)
            elif first["kind"] == "shared":
                iss.add(lid, "no_markers", parts, c0=0.0, c1=length, detail="无界桩 / no markers")
        prev = prev_by.get(lid)
        if prev is None and prev_has_ids:
            iss.add(lid, "new_line", parts, c0=0.0, c1=length, detail="上次联检无此界线 / new")
        h, moved, worst = _compare(lid, line_geoms[lid], prev, s, iss, prev_has_ids)
        rec["hausdorff_m"] = h
        rec["moved_length_m"] = moved
        rec["max_shift_m"] = worst
        rows.append(rec)
    for lid, g in gone.items():
        pieces = [q for q in shapely.get_parts(shapely.line_merge(g)) if q.length > 0]
        iss.add(lid, "line_gone", pieces, detail="本次无此界线 / no longer a line")
    markers_out = markers_frame(mk_all, done, lines.crs, units)
    summary = pd.DataFrame(rows)
    if len(markers_out):
        n_iss = markers_out.groupby("line_id")["issues"].apply(lambda x: int((x != "").sum()))
        summary["n_marker_issues"] = summary["line_id"].map(n_iss).fillna(0).astype(int)
    issues = _issues_frame(iss.rows, lines.crs)
    return Inspection(lines, summary, markers_out, issues, s)


def _add_years(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


def _issues_frame(rows: list[dict], crs: object) -> gpd.GeoDataFrame:
    cols = ["issue_id", "line_id", "kind", "from_m", "to_m", "length_m", "max_offset_m", "detail"]
    if not rows:
        return gpd.GeoDataFrame(
            {c: pd.Series([], dtype=object) for c in cols}, geometry=[], crs=crs
        )
    df = pd.DataFrame(rows)
    df.insert(0, "issue_id", [f"L{i + 1:04d}" for i in range(len(df))])
    return gpd.GeoDataFrame(df[cols], geometry=df["geometry"].to_list(), crs=crs)


def inspection_kpis(ins: Inspection) -> list[Kpi]:
    """Headline figures of a joint inspection."""
    sm, mk, iss = ins.summary, ins.markers, ins.issues
    shared = sm[sm["kind"] == "shared"]

    def n_iss(kind: str) -> int:
        return int((iss["kind"] == kind).sum()) if len(iss) else 0

    s = ins.settings
    out = [
        Kpi("共有界线", "Shared lines", len(shared)),
        Kpi(
            "共有界线总长",
            "Shared lines, total length",
            round(shared["length_m"].sum() / 1e3, 2),
            "km",
        ),
        Kpi("界桩", "Markers", len(mk)),
        Kpi(
            "有问题的界桩",
            "Markers with issues",
            int((mk["check"] == "issue").sum()) if len(mk) else 0,
            target="0",
            met=not (len(mk) and (mk["check"] == "issue").any()),
        ),
        Kpi(
            "未匹配界线的界桩",
            "Markers on no line",
            int((mk["check"] == "unmatched").sum()) if len(mk) else 0,
        ),
        Kpi(
            "登记为丢失的界桩",
            "Markers recorded missing",
            int((mk["status"].astype(str) == "missing").sum()) if len(mk) else 0,
        ),
        Kpi(
            f"界桩间距过大(> {s.max_spacing_m:g} m)",
            f"Spacing gaps (> {s.max_spacing_m:g} m)",
            n_iss("spacing_gap"),
            source="本地取值 local choice",
        ),
        Kpi(
            "界桩缺号",
            "Numbering jumps",
            n_iss("number_jump"),
            target="0",
            met=n_iss("number_jump") == 0,
        ),
        Kpi(
            f"界线位移(> {s.change_tol_m:g} m)",
            f"Pieces moved (> {s.change_tol_m:g} m)",
            n_iss("moved"),
            source="本地取值 local choice",
        ),
    ]
    if "next_inspection" in sm and sm["next_inspection"].notna().any():
        out.append(
            Kpi(
                "下次联检(最早)",
                "Next joint inspection due (earliest)",
                str(sm["next_inspection"].dropna().min()),
                source="每5年 every 5 years: 《省级行政区域界线联合检查实施办法》第六条",
            )
        )
    return out


def marker_layer(ins: Inspection) -> gpd.GeoDataFrame:
    """Return the marker checks as the ``boundary_marker_report`` layer (EPSG:4490)."""
    from geo_mz.core.results import conform, result_catalog

    return conform("boundary_marker_report", ins.markers, result_catalog())


def issues_layer(ins: Inspection) -> gpd.GeoDataFrame:
    """Return the line issues as the ``boundary_line_issues`` layer (EPSG:4490)."""
    from geo_mz.core.results import conform, result_catalog

    return conform("boundary_line_issues", ins.issues, result_catalog())

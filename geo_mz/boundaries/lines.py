r"""Boundary lines of a coverage and their joint inspection (界线联检).

:func:`extract_lines` cuts a clean coverage of admin units into its boundary lines: the shared
line of every pair of neighbours (the unit of the joint inspection) and each unit's outer
border. :func:`inspect_lines` checks each line's boundary markers (界桩) and compares the line
with the previous inspection's.

Conventions (STANDARDS.md §E)
-----------------------------
* Each line is a numbering unit; markers are numbered from 001 along the line, **W→E or N→S**
  (GB/T 17796-2009, SOURCED). A line runs W→E when its extent is at least as wide as tall,
  else N→S; chainage (m) is measured from its start in that direction, over its parts in
  order (the space between parts is not counted).
* A marker number is 8 characters: 4-digit line number, 3-digit sequence, type code
  ``Q`` (single), ``A``/``B`` (same-number pair), ``C``/``D``/``E`` (same-number triple):
  ``^\d{4}\d{3}[QABCDE]$`` (SOURCED; the line number's make-up is UNSOURCED).
* The same line is jointly inspected every 5 years (SOURCED): ``next = last + 5 years``.
* Tolerances are UNSOURCED: configurable, with local-choice defaults (:class:`InspectSettings`).

A line's id is ``"<smaller code>-<larger code>"`` (``"<code>-outer"`` for an outer border),
which is how the Pengjiang sample's marker register names its lines.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.ops import substring

from geo_mz.boundaries.topology import GAP_WIDTH_M, BoundaryError, prepare_units, repair
from geo_mz.core.projection import STORAGE_CRS
from geo_mz.core.results import Kpi

__all__ = [
    "MARKER_NUMBER",
    "InspectSettings",
    "Inspection",
    "extract_lines",
    "inspect_lines",
    "inspection_kpis",
    "issues_layer",
    "line_summary",
    "lines_layer",
    "marker_layer",
    "normalise_line_id",
]

#: GB/T 17796-2009 marker number (STANDARDS.md §E, SOURCED via exam notes).
MARKER_NUMBER = re.compile(r"^(\d{4})(\d{3})([QABCDE])$")
_TYPE_OF = {"Q": "single", "A": "double", "B": "double", "C": "triple", "D": "triple"}
_TYPE_OF["E"] = "triple"
_GROUPS = {"double": {"A", "B"}, "triple": {"C", "D", "E"}}


# --- extraction -------------------------------------------------------------------------------


def _segments(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every ring segment of every unit as (x0, y0, x1, y1), endpoints in canonical order."""
    rings, ring_unit = [], []
    for i, g in enumerate(geoms):
        for p in shapely.get_parts(g):
            for r in [p.exterior, *p.interiors]:
                rings.append(np.asarray(r.coords))
                ring_unit.append(i)
    segs = [np.hstack([c[:-1], c[1:]]) for c in rings]
    unit = np.concatenate([np.full(len(s), u) for s, u in zip(segs, ring_unit, strict=True)])
    seg = np.vstack(segs)
    swap = (seg[:, 0] > seg[:, 2]) | ((seg[:, 0] == seg[:, 2]) & (seg[:, 1] > seg[:, 3]))
    seg[swap] = seg[swap][:, [2, 3, 0, 1]]
    keep = (seg[:, 0] != seg[:, 2]) | (seg[:, 1] != seg[:, 3])
    return seg[keep], unit[keep]


def _edge_owners(geoms: np.ndarray) -> pd.DataFrame:
    """Each distinct segment with the unit(s) on its sides: ``a``, ``b`` (-1: outer)."""
    seg, unit = _segments(geoms)
    uniq, inv = np.unique(seg, axis=0, return_inverse=True)
    inv = inv.ravel()
    df = pd.DataFrame({"s": inv, "u": unit}).drop_duplicates()
    g = df.groupby("s")["u"]
    a, b, n = g.min(), g.max(), g.size()
    if (n > 2).any():
        raise BoundaryError(
            f"{int((n > 2).sum())} edge(s) shared by more than two units: not a clean coverage"
        )
    b = b.where(n == 2, -1)
    return pd.DataFrame({"a": a.to_numpy(), "b": b.to_numpy()}, index=a.index).join(
        pd.DataFrame(uniq, columns=["x0", "y0", "x1", "y1"])
    )


def _orient(parts: list[shapely.LineString]) -> tuple[list[shapely.LineString], str]:
    """Orient parts W→E (or N→S when taller than wide) and sort them along that direction."""
    x0, y0, x1, y1 = shapely.MultiLineString(parts).bounds
    we = (x1 - x0) >= (y1 - y0)
    out = []
    for p in parts:
        c = np.asarray(p.coords)
        if p.is_closed:
            k = int(np.argmin(c[:-1, 0]) if we else np.argmax(c[:-1, 1]))
            c = np.vstack([c[k:-1], c[: k + 1]])
        elif (we and c[0, 0] > c[-1, 0]) or (not we and c[0, 1] < c[-1, 1]):
            c = c[::-1]
        out.append(shapely.LineString(c))
    out.sort(key=lambda p: p.coords[0][0] if we else -p.coords[0][1])
    return out, "W-E" if we else "N-S"


def extract_lines(
    units: gpd.GeoDataFrame,
    *,
    code_field: str | None = None,
    name_field: str | None = None,
    measure_crs: str | None = None,
    include_outer: bool = True,
    repair_first: bool | None = None,
    gap_width_m: float = GAP_WIDTH_M,
) -> gpd.GeoDataFrame:
    """Boundary lines of a coverage: each neighbour pair's shared line and each outer border.

    Parameters
    ----------
    units
        Polygons of one level (any CRS), or the ``units`` of a :class:`geo_mz.boundaries.Qa`.
    code_field, name_field, measure_crs
        As for :func:`geo_mz.boundaries.prepare_units`.
    include_outer
        Also return each unit's border that no other unit shares.
    repair_first
        Lines need a clean coverage (identical shared edges). None (default): if the units
        are not one, extract from the :func:`geo_mz.boundaries.repair` proposal and mark the
        rows ``from_repair``; True: always; False: raise instead.
    gap_width_m
        Passed to the repair.

    Returns
    -------
    geopandas.GeoDataFrame
        In the measuring CRS, one row per connected part: ``segment_id`` (``line_id#part``),
        ``line_id``, ``line_name``, ``kind`` (``shared``/``outer``), ``unit_a``, ``name_a``,
        ``unit_b``, ``name_b`` (A has the smaller code), ``part``, ``n_parts``, ``length_m``,
        ``line_length_m``, ``chainage_start_m``, ``direction`` (``W-E``/``N-S``),
        ``start_x/y``, ``end_x/y`` (measuring CRS), ``from_repair``.

    Notes
    -----
    Every ring segment of every unit is keyed by its two end points: in a clean coverage a
    shared edge appears exactly twice (once per side) with identical vertices, an outer edge
    once. Segments are grouped by their pair of units and merged into lines with
    ``shapely.line_merge``; lengths are planar in the measuring CRS.
    """
    u = units if "valid_input" in units.columns else None
    if u is None:
        u = prepare_units(
            units, code_field=code_field, name_field=name_field, measure_crs=measure_crs
        )
    geoms = u.geometry.to_numpy()
    valid = (
        bool(shapely.coverage_is_valid(geoms)) if hasattr(shapely, "coverage_is_valid") else True
    )
    from_repair = bool(repair_first) or (repair_first is None and not valid)
    if not valid and repair_first is False:
        raise BoundaryError(
            "the units are not a clean coverage (overlaps or unmatched edges); run the repair "
            "proposal first or allow it (repair_first=None)"
        )
    if from_repair:
        geoms = repair(u, gap_width_m=gap_width_m).after.geometry.to_numpy()
    owners = _edge_owners(geoms)
    if not include_outer:
        owners = owners[owners["b"] >= 0]
    codes, names = u["code"].to_numpy(), u["name"].to_numpy()
    rows = []
    for (a, b), grp in owners.groupby(["a", "b"], sort=False):
        coords = grp[["x0", "y0", "x1", "y1"]].to_numpy().reshape(-1, 2, 2)
        merged = shapely.line_merge(shapely.MultiLineString(list(coords)))
        parts, direction = _orient(list(shapely.get_parts(merged)))
        if b >= 0 and codes[b] < codes[a]:
            a, b = b, a
        shared = b >= 0
        line_id = f"{codes[a]}-{codes[b]}" if shared else f"{codes[a]}-outer"
        lens = np.array([p.length for p in parts])
        starts = np.concatenate([[0.0], np.cumsum(lens)[:-1]])
        for k, (p, ln, st) in enumerate(zip(parts, lens, starts, strict=True)):
            (sx, sy), (ex, ey) = p.coords[0], p.coords[-1]
            rows.append(
                {
                    "segment_id": f"{line_id}#{k + 1}",
                    "line_id": line_id,
                    "line_name": f"{names[a]}—{names[b]}" if shared else f"{names[a]} 外围界线",
                    "kind": "shared" if shared else "outer",
                    "unit_a": codes[a],
                    "name_a": names[a],
                    "unit_b": codes[b] if shared else None,
                    "name_b": names[b] if shared else None,
                    "part": k + 1,
                    "n_parts": len(parts),
                    "length_m": float(ln),
                    "line_length_m": float(lens.sum()),
                    "chainage_start_m": float(st),
                    "direction": direction,
                    "start_x": sx,
                    "start_y": sy,
                    "end_x": ex,
                    "end_y": ey,
                    "from_repair": from_repair,
                    "geometry": p,
                }
            )
    out = gpd.GeoDataFrame(rows, geometry="geometry", crs=u.crs)
    return out.sort_values(["kind", "line_id", "part"], ascending=[False, True, True]).reset_index(
        drop=True
    )


def line_summary(lines: gpd.GeoDataFrame) -> pd.DataFrame:
    """One row per line: ids, units, length, parts and end points in lon/lat (EPSG:4490)."""
    first = lines.sort_values("part").groupby("line_id", sort=False).first()
    last = lines.sort_values("part").groupby("line_id", sort=False).last()
    ends = gpd.GeoSeries(
        list(shapely.points(first[["start_x", "start_y"]].to_numpy()))
        + list(shapely.points(last[["end_x", "end_y"]].to_numpy())),
        crs=lines.crs,
    ).to_crs(STORAGE_CRS)
    n = len(first)
    out = first[["line_name", "kind", "unit_a", "name_a", "unit_b", "name_b", "direction"]].copy()
    out["length_m"] = first["line_length_m"]
    out["n_parts"] = first["n_parts"]
    out["start_lon"] = ends.x.to_numpy()[:n].round(7)
    out["start_lat"] = ends.y.to_numpy()[:n].round(7)
    out["end_lon"] = ends.x.to_numpy()[n:].round(7)
    out["end_lat"] = ends.y.to_numpy()[n:].round(7)
    return out.reset_index()


def lines_layer(lines: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Return the lines as the ``boundary_lines`` layer (EPSG:4490, end points in lon/lat)."""
    from geo_mz.core.results import conform, result_catalog

    g = lines.copy()
    for end in ("start", "end"):
        pts = gpd.GeoSeries(
            shapely.points(g[[f"{end}_x", f"{end}_y"]].to_numpy()), crs=g.crs
        ).to_crs(STORAGE_CRS)
        g[f"{end}_lon"] = pts.x.round(7).to_numpy()
        g[f"{end}_lat"] = pts.y.round(7).to_numpy()
    return conform("boundary_lines", g, result_catalog())


# --- inspection ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class InspectSettings:
    """Tolerances of the joint-inspection checks (STANDARDS.md §E calls them UNSOURCED).

    Attributes
    ----------
    marker_search_m
        Markers within this of a line belong to it when the register does not say which
        line they are on. 200 m (local choice).
    marker_to_line_tol_m
        A single (``Q``) marker farther than this from its line is flagged ``off_line``;
        pairs and triples stand off the line by design (on both banks of a river) and are not.
        1.0 m (STANDARDS.md §E suggestion, UNSOURCED).
    marker_displacement_tol_m
        A marker farther than this from its registered position is flagged ``displaced``.
        1.0 m (STANDARDS.md §E suggestion, UNSOURCED).
    max_spacing_m
        Stretches of line longer than this without a marker (line ends included) are
        ``spacing_gap`` issues. 3,000 m (local choice).
    change_tol_m
        Pieces of the line farther than this from the previous inspection's line are
        ``moved``. 5 m (local choice: about the drawing accuracy of a 1:10,000 map).
    inspection_years
        Years between joint inspections of the same line: 5 (SOURCED, STANDARDS.md §E,
        《省级行政区域界线联合检查实施办法》第六条).
    """

    marker_search_m: float = 200.0
    marker_to_line_tol_m: float = 1.0
    marker_displacement_tol_m: float = 1.0
    max_spacing_m: float = 3000.0
    change_tol_m: float = 5.0
    inspection_years: int = 5


@dataclass(frozen=True)
class Inspection:
    """The outcome of :func:`inspect_lines` (all frames in the lines' measuring CRS).

    Attributes
    ----------
    lines
        The inspected lines (one row per part, as :func:`extract_lines`).
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


def normalise_line_id(value: object) -> str | None:
    """``"440704-440703"`` and ``"440703—440704"`` → ``"440703-440704"``; others as given."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    s = str(value).strip()
    codes = re.findall(r"\d{6,12}", s)
    if len(codes) == 2:
        return "-".join(sorted(codes))
    return s or None


def _col(df: pd.DataFrame, *names: str) -> str | None:
    low = {str(c).casefold(): c for c in df.columns}
    for n in names:
        if n.casefold() in low:
            return str(low[n.casefold()])
    return None


def _non_decreasing_lis(values: Sequence[int]) -> np.ndarray:
    """Mask of one longest non-decreasing subsequence (patience sorting, O(n log n))."""
    import bisect

    n = len(values)
    tails: list[int] = []
    tails_idx: list[int] = []
    prev = [-1] * n
    for i, v in enumerate(values):
        k = bisect.bisect_right(tails, v)
        if k == len(tails):
            tails.append(v)
            tails_idx.append(i)
        else:
            tails[k] = v
            tails_idx[k] = i
        prev[i] = tails_idx[k - 1] if k > 0 else -1
    mask = np.zeros(n, bool)
    i = tails_idx[-1] if tails_idx else -1
    while i >= 0:
        mask[i] = True
        i = prev[i]
    return mask


def _stretch(
    parts: Sequence[shapely.LineString], starts: np.ndarray, c0: float, c1: float
) -> list[shapely.LineString]:
    """Pieces of a multi-part line between chainages ``c0`` and ``c1``."""
    out = []
    for p, st in zip(parts, starts, strict=True):
        a, b = max(c0, st), min(c1, st + p.length)
        if b > a:
            piece = substring(p, a - st, b - st)
            if piece.geom_type == "LineString" and piece.length > 0:
                out.append(piece)
    return out


class _Issues:
    """Collects line issues (rows) while lines are inspected."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(
        self,
        line_id: str,
        kind: str,
        pieces: Sequence[shapely.Geometry],
        *,
        c0: float = np.nan,
        c1: float = np.nan,
        max_offset: float = np.nan,
        detail: str = "",
    ) -> None:
        for p in pieces:
            self.rows.append(
                {
                    "line_id": line_id,
                    "kind": kind,
                    "from_m": c0,
                    "to_m": c1,
                    "length_m": float(p.length),
                    "max_offset_m": max_offset,
                    "detail": detail,
                    "geometry": p,
                }
            )


def _prepare_markers(
    markers: gpd.GeoDataFrame, crs: object, registered: gpd.GeoDataFrame | None
) -> gpd.GeoDataFrame:
    m = markers.to_crs(crs).reset_index(drop=True)
    num_c = _col(m, "number", "界桩号", "marker_number")
    id_c = _col(m, "marker_id", "id")
    line_c = _col(m, "line_id", "界线编号")
    out = gpd.GeoDataFrame(
        {
            "number": m[num_c].astype(str).str.strip() if num_c else "",
            "register_line_id": [normalise_line_id(v) for v in m[line_c]] if line_c else None,
            "status": m[_col(m, "status")] if _col(m, "status") else None,
            "marker_type": m[_col(m, "marker_type")] if _col(m, "marker_type") else None,
            "last_inspected": m[_col(m, "last_inspected")] if _col(m, "last_inspected") else None,
        },
        geometry=m.geometry.values,
        crs=crs,
    )
    ids = m[id_c].astype(str) if id_c else out["number"].where(out["number"] != "", None)
    out.insert(0, "marker_id", [i if i else f"M{k + 1}" for k, i in enumerate(ids.fillna(""))])
    parsed = out["number"].str.extract(MARKER_NUMBER)
    out["line_no"] = parsed[0]
    out["seq"] = pd.to_numeric(parsed[1], errors="coerce").astype("Int64")
    out["type_code"] = parsed[2]
    out["displacement_m"] = np.nan
    if registered is not None and len(registered):
        r = registered.to_crs(crs)
        rc = _col(r, "number", "界桩号")
        if rc:
            pos = dict(zip(r[rc].astype(str).str.strip(), r.geometry, strict=True))
            out["displacement_m"] = [
                float(g.distance(pos[n])) if n in pos else np.nan
                for n, g in zip(out["number"], out.geometry, strict=True)
            ]
    return out


def _match(m: gpd.GeoDataFrame, line_geoms: pd.Series, search_m: float) -> np.ndarray:
    """Line id of each marker: the register's when it names a known line, else the nearest."""
    ids = line_geoms.index.to_numpy()
    known = set(ids)
    out = np.array(
        [r if r in known else None for r in m["register_line_id"].fillna("")], dtype=object
    )
    todo = np.flatnonzero(pd.isna(out))
    if len(todo):
        tree = shapely.STRtree(line_geoms.to_numpy())
        (pi, li), _ = tree.query_nearest(
            m.geometry.to_numpy()[todo], max_distance=search_m, return_distance=True
        )
        seen: set[int] = set()
        for p, li_ in zip(pi, li, strict=True):
            if p not in seen:
                seen.add(int(p))
                out[todo[p]] = ids[li_]
    return out


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
    lc = _col(p, "line_id", "界线编号")
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
    iss: _Issues,
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


def _fmt(line_no: str | None, seq: int, t: str = "Q") -> str:
    return f"{line_no or '????'}{seq:03d}{t}"


def _inspect_markers(
    lid: str,
    mk: gpd.GeoDataFrame,
    parts: list[shapely.LineString],
    starts: np.ndarray,
    length: float,
    s: InspectSettings,
    iss: _Issues,
) -> tuple[gpd.GeoDataFrame, dict]:
    """Chainage, offset, order and numbering checks of the markers of one line."""
    pts = mk.geometry.to_numpy()
    d = np.column_stack([shapely.distance(pts, p) for p in parts])
    k = d.argmin(axis=1)
    mk = mk.assign(
        offset_m=d.min(axis=1),
        chainage_m=[float(starts[j] + parts[j].project(pt)) for j, pt in zip(k, pts, strict=True)],
    )
    mk = mk.sort_values("chainage_m", kind="stable")
    mk["order"] = np.arange(1, len(mk) + 1)
    issues: list[list[str]] = [[] for _ in range(len(mk))]
    ok_num = mk["seq"].notna().to_numpy()
    line_no = Counter(mk.loc[ok_num, "line_no"]).most_common(1)
    line_no = line_no[0][0] if line_no else None
    reversed_ = False
    seqs = mk.loc[ok_num, "seq"].astype(int).to_list()
    fwd = _non_decreasing_lis(seqs)
    rev = _non_decreasing_lis(seqs[::-1])[::-1]
    if rev.sum() > fwd.sum():
        reversed_ = True
        fwd = rev
        iss.add(
            lid,
            "reversed_numbering",
            parts,
            c0=0.0,
            c1=length,
            detail="界桩编号方向与 GB/T 17796 规定(自西向东/自北向南)相反 / numbering runs "
            "against GB/T 17796's W→E / N→S direction",
        )
    in_order = np.zeros(len(mk), bool)
    in_order[np.flatnonzero(ok_num)] = fwd
    for i, r in enumerate(mk.itertuples()):
        if not ok_num[i]:
            issues[i].append("bad_number")
            continue
        if not in_order[i]:
            issues[i].append("out_of_order")
        if line_no and r.line_no != line_no:
            issues[i].append("wrong_line_number")
        want = _TYPE_OF.get(r.type_code)
        if isinstance(r.marker_type, str) and r.marker_type and r.marker_type != want:
            issues[i].append("type_mismatch")
    # Same-number groups: Q alone; A+B; C+D+E.
    for _, grp in mk[ok_num].groupby("seq"):
        types = set(grp["type_code"])
        bad = None
        if "Q" in types and len(types) > 1:
            bad = "type_conflict"
        elif types and not types & {"Q"}:
            kind = _TYPE_OF[next(iter(types))]
            if types != _GROUPS[kind]:
                bad = "incomplete_group"
        if bad:
            for idx in grp.index:
                issues[mk.index.get_loc(idx)].append(bad)
    q_like = mk["type_code"].isin(["Q"]).to_numpy() | ~ok_num
    for i, (off, disp) in enumerate(zip(mk["offset_m"], mk["displacement_m"], strict=True)):
        if off > s.marker_search_m:
            issues[i].append("far_from_line")
        elif q_like[i] and off > s.marker_to_line_tol_m:
            issues[i].append("off_line")
        if np.isfinite(disp) and disp > s.marker_displacement_tol_m:
            issues[i].append("displaced")
    # Numbering jumps along the line (in numbering direction, among markers in order).
    ch = mk["chainage_m"].to_numpy()
    order_idx = np.flatnonzero(in_order)
    if reversed_:
        order_idx = order_idx[::-1]
    jumps = 0
    prev_seq, prev_c = 0, (length if reversed_ else 0.0)
    for i in order_idx:
        sq = int(mk["seq"].iat[i])
        if sq > prev_seq + 1:
            jumps += 1
            lo, hi = sorted((prev_c, ch[i]))
            gone = f"{_fmt(line_no, prev_seq + 1)}–{_fmt(line_no, sq - 1)}"
            if sq - prev_seq == 2:
                gone = _fmt(line_no, prev_seq + 1)
            iss.add(
                lid,
                "number_jump",
                _stretch(parts, starts, lo, hi) or parts[:1],
                c0=lo,
                c1=hi,
                detail=f"缺号 missing numbers: {gone}",
            )
        prev_seq, prev_c = max(prev_seq, sq), ch[i]
    # Spacing: markers standing on the ground (a marker recorded missing does not mark the line).
    standing = (mk["status"].astype(str) != "missing").to_numpy()
    cs = np.concatenate([[0.0], ch[standing], [length]])
    gaps = 0
    for c0, c1 in itertools.pairwise(cs):
        if c1 - c0 > s.max_spacing_m:
            gaps += 1
            iss.add(
                lid,
                "spacing_gap",
                _stretch(parts, starts, c0, c1),
                c0=c0,
                c1=c1,
                detail=f"{c1 - c0:.0f} m 无界桩 / without a marker (> {s.max_spacing_m:g} m)",
            )
    mk["spacing_prev_m"] = np.concatenate([[np.nan], np.diff(ch)]) if len(ch) else []
    mk["issues"] = [",".join(dict.fromkeys(x)) for x in issues]
    mk["check"] = np.where(mk["issues"] == "", "ok", "issue")
    spacing = np.diff(cs)
    stats = {
        "reversed": reversed_,
        "n_number_jumps": jumps,
        "n_spacing_gaps": gaps,
        "max_spacing_m": float(spacing.max()) if len(spacing) else np.nan,
    }
    return mk, stats


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
        From :func:`extract_lines` (measuring CRS).
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
        Tolerances, :class:`InspectSettings` defaults when None.

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
    iss = _Issues()
    by_line = {k: g.sort_values("part") for k, g in lines.groupby("line_id", sort=False)}
    line_geoms = pd.Series(
        {k: shapely.MultiLineString(list(g.geometry)) for k, g in by_line.items()}
    )
    mk_all = None
    if markers is not None and len(markers):
        mk_all = _prepare_markers(markers, lines.crs, registered)
        mk_all["line_id"] = _match(mk_all, line_geoms, s.marker_search_m)
        dup = mk_all["number"].duplicated(keep=False) & (mk_all["number"] != "")
        mk_all["_dup"] = dup.to_numpy()
    prev_by, gone = _previous_by_line(previous, lines, line_geoms, s)
    prev_has_ids = previous is not None and _col(previous, "line_id", "界线编号") is not None
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
                mk, stats = _inspect_markers(lid, mk, parts, starts, length, s, iss)
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
    markers_out = _markers_frame(mk_all, done, lines.crs, units)
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


def _markers_frame(
    mk_all: gpd.GeoDataFrame | None,
    done: list[gpd.GeoDataFrame],
    crs: object,
    units: gpd.GeoDataFrame | None,
) -> gpd.GeoDataFrame:
    cols = [
        "marker_id",
        "number",
        "line_id",
        "register_line_id",
        "status",
        "seq",
        "type_code",
        "order",
        "chainage_m",
        "offset_m",
        "side",
        "displacement_m",
        "spacing_prev_m",
        "check",
        "issues",
    ]
    if mk_all is None:
        return gpd.GeoDataFrame(
            {c: pd.Series([], dtype=object) for c in cols}, geometry=[], crs=crs
        )
    rest = mk_all[mk_all["line_id"].isna()].copy()
    rest["issues"] = "unmatched"
    rest["check"] = "unmatched"
    out = pd.concat([*done, rest]) if done or len(rest) else rest
    dup = out["_dup"].to_numpy(bool)
    out["issues"] = [
        ",".join(x for x in (i, "duplicate_number" if d else "") if x)
        for i, d in zip(out["issues"].fillna(""), dup, strict=True)
    ]
    out["check"] = np.where(
        out["check"] == "unmatched", "unmatched", np.where(out["issues"] == "", "ok", "issue")
    )
    for c in cols:
        if c not in out.columns:
            out[c] = np.nan
    out["side"] = None
    if units is not None and len(units):
        uu = units.to_crs(crs)
        code_c = "code" if "code" in uu.columns else _col(uu, "adcode", "id")
        if code_c:
            pi, ui = shapely.STRtree(uu.geometry.to_numpy()).query(
                out.geometry.to_numpy(), predicate="within"
            )
            side = np.full(len(out), None, dtype=object)
            side[pi] = uu[code_c].astype(str).to_numpy()[ui]
            out["side"] = side
    out = out.sort_values(["line_id", "order"], na_position="last", kind="stable")
    out = out.reset_index(drop=True)
    return gpd.GeoDataFrame(out[cols], geometry=out.geometry.values, crs=crs)


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

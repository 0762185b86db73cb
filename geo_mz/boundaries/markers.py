r"""Boundary markers (界桩) of the joint inspection: numbers, tolerances and per-line checks.

A marker register (any CRS) is read into one form (:func:`prepare_markers`), each marker is
matched to its boundary line (:func:`match_markers`: the register's line, else the nearest),
the markers of one line are checked for position, numbering order, number jumps, type groups
and spacing (:func:`inspect_markers`), and the results are gathered into the marker report
(:func:`markers_frame`); :func:`geo_mz.boundaries.inspect_lines` runs them line by line, with
the tolerances of :class:`InspectSettings`.

Conventions (STANDARDS.md §E)
-----------------------------
* Markers are numbered from 001 along the line, **W→E or N→S** (GB/T 17796-2009, SOURCED;
  the line's direction and chainage are those of :func:`geo_mz.boundaries.extract_lines`).
* A marker number is 8 characters: 4-digit line number, 3-digit sequence, type code
  ``Q`` (single), ``A``/``B`` (same-number pair), ``C``/``D``/``E`` (same-number triple):
  ``^\d{4}\d{3}[QABCDE]$`` (SOURCED; the line number's make-up is UNSOURCED).
* Tolerances are UNSOURCED: configurable, with local-choice defaults (:class:`InspectSettings`).
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.ops import substring

from geo_mz.boundaries._inspect import LineIssues, col
from geo_mz.boundaries.lines import normalise_line_id

__all__ = [
    "MARKER_NUMBER",
    "InspectSettings",
    "inspect_markers",
    "markers_frame",
    "match_markers",
    "prepare_markers",
]

#: GB/T 17796-2009 marker number (STANDARDS.md §E, SOURCED via exam notes).
MARKER_NUMBER = re.compile(r"^(\d{4})(\d{3})([QABCDE])$")
_TYPE_OF = {"Q": "single", "A": "double", "B": "double", "C": "triple", "D": "triple"}
_TYPE_OF["E"] = "triple"
_GROUPS = {"double": {"A", "B"}, "triple": {"C", "D", "E"}}


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


def prepare_markers(
    markers: gpd.GeoDataFrame, crs: object, registered: gpd.GeoDataFrame | None
) -> gpd.GeoDataFrame:
    """Markers in ``crs`` in one form: ids, number and its parts, register line, displacement."""
    m = markers.to_crs(crs).reset_index(drop=True)
    num_c = col(m, "number", "界桩号", "marker_number")
    id_c = col(m, "marker_id", "id")
    line_c = col(m, "line_id", "界线编号")
    out = gpd.GeoDataFrame(
        {
            "number": m[num_c].astype(str).str.strip() if num_c else "",
            "register_line_id": [normalise_line_id(v) for v in m[line_c]] if line_c else None,
            "status": m[col(m, "status")] if col(m, "status") else None,
            "marker_type": m[col(m, "marker_type")] if col(m, "marker_type") else None,
            "last_inspected": m[col(m, "last_inspected")] if col(m, "last_inspected") else None,
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
        rc = col(r, "number", "界桩号")
        if rc:
            pos = dict(zip(r[rc].astype(str).str.strip(), r.geometry, strict=True))
            out["displacement_m"] = [
                float(g.distance(pos[n])) if n in pos else np.nan
                for n, g in zip(out["number"], out.geometry, strict=True)
            ]
    return out


def match_markers(m: gpd.GeoDataFrame, line_geoms: pd.Series, search_m: float) -> np.ndarray:
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


def _fmt(line_no: str | None, seq: int, t: str = "Q") -> str:
    return f"{line_no or '????'}{seq:03d}{t}"


def inspect_markers(
    lid: str,
    mk: gpd.GeoDataFrame,
    parts: list[shapely.LineString],
    starts: np.ndarray,
    length: float,
    s: InspectSettings,
    iss: LineIssues,
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


def markers_frame(
    mk_all: gpd.GeoDataFrame | None,
    done: list[gpd.GeoDataFrame],
    crs: object,
    units: gpd.GeoDataFrame | None,
) -> gpd.GeoDataFrame:
    """Gather the marker report: the checked markers of every line, then those on no line."""
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
        code_c = "code" if "code" in uu.columns else col(uu, "adcode", "id")
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

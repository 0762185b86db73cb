"""Boundary lines of a coverage: the shared line of each pair of neighbours, the outer borders.

:func:`extract_lines` cuts a clean coverage of admin units into its boundary lines: the shared
line of every pair of neighbours (the unit of the joint inspection,
:func:`geo_mz.boundaries.inspect_lines`) and each unit's outer border; :func:`line_summary`
and :func:`lines_layer` report them.

Conventions (STANDARDS.md §E)
-----------------------------
* Each line is a numbering unit; markers are numbered from 001 along the line, **W→E or N→S**
  (GB/T 17796-2009, SOURCED). A line runs W→E when its extent is at least as wide as tall,
  else N→S; chainage (m) is measured from its start in that direction, over its parts in
  order (the space between parts is not counted).

A line's id is ``"<smaller code>-<larger code>"`` (``"<code>-outer"`` for an outer border),
which is how the Pengjiang sample's marker register names its lines
(:func:`normalise_line_id` brings other spellings to it).
"""

from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.boundaries.coverage_repair import GAP_WIDTH_M, repair
from geo_mz.boundaries.units import BoundaryError, prepare_units
from geo_mz.core.projection import STORAGE_CRS

__all__ = [
    "extract_lines",
    "line_summary",
    "lines_layer",
    "normalise_line_id",
]


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


def normalise_line_id(value: object) -> str | None:
    """``"440704-440703"`` and ``"440703—440704"`` → ``"440703-440704"``; others as given."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    s = str(value).strip()
    codes = re.findall(r"\d{6,12}", s)
    if len(codes) == 2:
        return "-".join(sorted(codes))
    return s or None

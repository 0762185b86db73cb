"""Isochrone polygons from reached pieces: walls minus cores plus loose lines, and the rings.

Private helpers of :mod:`geo_mz.network.isochrone` (see its module docstring for the method).
"""

from __future__ import annotations

import itertools

import numpy as np
import shapely
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from geo_mz.network._isochrone_plane import (
    _EPS_M,
    Arrays,
    _line_vertices,
    _member,
    _rings,
    _walk_lines,
    _walk_vertices,
    _walks,
)

#: Segments per quarter circle of round caps and joins (the GEOS default).
QUAD_SEGS = 8
_AREA_MIN_M2 = 0.01  # walks enclosing less are outer walks (buffered as lines if need be)
_SLIVER_M2 = 1e-3  # polygon parts smaller than this are overlay noise

# --------------------------------------------------------------------------- polygons


def _buffer_union(pc: Arrays, bad: np.ndarray, buffer_m: float, extra, extra_group):
    """``union_all(buffer(pieces, buffer_m) ∪ extra)`` per group (see the module docstring).

    ``bad`` marks pieces that may cross others; ``extra`` are polygons added as they are.
    """
    buf = {"quad_segs": QUAD_SEGS}
    lines, tail, head, group = pc["geometry"], pc["tail"], pc["head"], pc["group"]
    walls, wall_group = np.empty(0, object), np.empty(0, np.int64)
    loose = [extra, shapely.buffer(lines[bad], buffer_m, **buf)]
    loose_group = [extra_group, group[bad]]
    cores, core_wall = np.empty(0, object), np.empty(0, np.int64)
    x = np.flatnonzero(~bad)
    if len(x):
        lines, g = lines[x].copy(), group[x]
        poly = shapely.get_num_coordinates(lines) > 2
        lines[poly] = shapely.remove_repeated_points(lines[poly], _EPS_M)
        coords, fx, lx = _line_vertices(lines)
        # nodes per group; every cut end is a node of its own
        n_real = int(max(tail.max(), head.max())) + 1
        cut = n_real + np.arange(2 * len(x))
        tx = np.where(tail[x] >= 0, tail[x], cut[0::2])
        hx = np.where(head[x] >= 0, head[x], cut[1::2])
        if g.max() > 0:
            big = n_real + 2 * len(x)
            _, node = np.unique(np.concatenate([g * big + tx, g * big + hx]), return_inverse=True)
            tx, hx = node[: len(x)], node[len(x) :]
        n_node = int(max(tx.max(), hx.max())) + 1
        adj = sparse.coo_matrix((np.ones(len(x), np.int8), (tx, hx)), shape=(n_node, n_node))
        comp = connected_components(adj, directed=False)[1][tx]  # component of each line
        w = _walks(coords, fx, lx, tx, hx)
        walk, seq, area = w["walk"], w["seq"], w["area_m2"]
        wg, wcomp = g[w["first"] >> 1], comp[w["first"] >> 1]
        # bounded faces without their dead ends (bridges leave holes)
        face_ids = np.flatnonzero(area > _AREA_MIN_M2)
        rings, owner = _rings(coords, fx, lx, w, face_ids)
        shell = shapely.is_ccw(rings)
        faces, face_walk = shapely.polygons(rings[shell]), owner[shell]
        face_of = np.full(len(area), -1)
        face_of[face_walk] = np.arange(len(faces))
        holes: dict[int, list] = {}
        for r, c in zip(rings[~shell], owner[~shell], strict=True):
            holes.setdefault(int(face_of[c]), []).append(r)
        # outer walks; a component inside a face of another is a hole of that face
        outer = np.flatnonzero(area <= _AREA_MIN_M2)
        parent = np.arange(int(comp.max()) + 1)
        nested = np.zeros(len(area), bool)
        if len(faces) and len(outer):
            h0 = w["first"][outer]
            v0 = coords[np.where(h0 & 1, lx[h0 >> 1], fx[h0 >> 1])]
            pi, fi = shapely.STRtree(faces).query(shapely.points(v0), "within")
            ok = wg[outer[pi]] == wg[face_walk[fi]]
            o = np.lexsort((shapely.area(faces[fi[ok]]), pi[ok]))  # innermost face first
            pi, fi = pi[ok][o], fi[ok][o]
            one = np.r_[True, pi[1:] != pi[:-1]][: len(pi)]
            pi, fi = outer[pi[one]], fi[one]
            nested[pi] = True
            parent[wcomp[pi]] = wcomp[face_walk[fi]]
            into = dict(zip(pi.tolist(), fi.tolist(), strict=True))
            for r, c in zip(*_rings(coords, fx, lx, w, pi), strict=True):
                holes.setdefault(into[int(c)], []).append(r)
        fix = np.zeros(len(faces), bool)
        for f, hs in holes.items():
            faces[f] = shapely.Polygon(faces[f].exterior, hs)
            fix[f] = True
        fix |= ~shapely.is_valid(faces)
        for f in np.flatnonzero(fix):  # pinched rings, touching holes
            parts = shapely.get_parts(shapely.make_valid(faces[f]))
            faces[f] = shapely.union_all(parts[shapely.get_type_id(parts) == 3])
        # walls: one polygon buffer per component; trees and nested ones buffered as lines
        flat = (area >= -_AREA_MIN_M2) | nested
        wall_ids, line_ids = outer[~flat[outer]], outer[flat[outer]]
        wall_of = np.full(len(parent), -1)
        if len(wall_ids):
            ws = seq[_member(walk[seq], wall_ids, len(area))]
            verts, vl = _walk_vertices(fx, lx, ws, walk[ws])
            idx = np.cumsum(np.r_[True, vl[1:] != vl[:-1]]) - 1
            polys = shapely.polygons(shapely.linearrings(coords[verts], indices=idx))
            walls, wall_group = shapely.buffer(polys, buffer_m, **buf), wg[wall_ids]
            wall_of[wcomp[wall_ids]] = np.arange(len(wall_ids))
        if len(line_ids):
            fo = seq[_member(walk[seq], line_ids, len(area))]
            loose.append(
                shapely.buffer(_walk_lines(coords, fx, lx, w, fo, walk[fo]), buffer_m, **buf)
            )
            loose_group.append(wg[line_ids])
        if len(faces):  # each core is cut from the wall of its outermost component
            cores, core_face = _cores(faces, buffer_m, np.where(fix, None, rings[shell]))
            while not np.array_equal(parent[parent], parent):
                parent = parent[parent]
            core_wall = wall_of[parent[wcomp[face_walk[core_face]]]]
        # dead-end trees inside faces: one open path per tree
        f = seq[_member(walk[seq], face_ids, len(area))]
        sf = w["spike"][f >> 1]
        run_start = sf & np.r_[True, ~sf[:-1] | (walk[f][1:] != walk[f][:-1])]
        if sf.any():
            paths = _walk_lines(coords, fx, lx, w, f[sf], np.cumsum(run_start)[sf])
            loose.append(shapely.buffer(paths, buffer_m, **buf))
            loose_group.append(g[f[run_start] >> 1])
    loose_all, loose_g = np.concatenate(loose), np.concatenate(loose_group)
    return _assemble(walls, wall_group, loose_all, loose_g, cores, core_wall)


def _cores(faces: np.ndarray, buffer_m: float, shells: np.ndarray) -> tuple[np.ndarray, ...]:
    """Non-empty ``face.buffer(-buffer_m)`` and the face of each.

    Faces that cannot hold a circle of radius ``buffer_m`` are skipped: narrower bounding box,
    less area, or (``shells`` given: plain CCW faces) convex with ``2 area / perimeter <=
    buffer_m``, the inradius bound of convex polygons.
    """
    box, area = shapely.bounds(faces), shapely.area(faces)
    wide = np.minimum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]) > 2 * buffer_m
    wide &= area > np.pi * buffer_m**2
    c, owner = shapely.get_coordinates(shells, return_index=True)
    inside = owner[1:] == owner[:-1]
    e, eo = np.diff(c, axis=0)[inside], owner[:-1][inside]  # ring edges in order
    nxt = np.arange(1, len(e) + 1)
    ring_end = np.r_[eo[1:] != eo[:-1], True]
    nxt[ring_end] = np.flatnonzero(np.r_[True, ring_end[:-1]])
    reflex = np.zeros(len(faces), bool)
    reflex[eo[e[:, 0] * e[nxt, 1] - e[:, 1] * e[nxt, 0] < 0]] = True
    convex = (shells != None) & ~reflex  # noqa: E711
    wide &= ~convex | (2 * area / shapely.length(faces) > buffer_m)
    idx = np.flatnonzero(wide)
    cores = shapely.buffer(faces[idx], -buffer_m, quad_segs=QUAD_SEGS)
    keep = ~shapely.is_empty(cores)
    return cores[keep], idx[keep]


def _assemble(walls, wall_group, loose, loose_group, cores, core_wall) -> dict[int, object]:
    """``(union(walls) - union(cores)) ∪ union(loose)`` per group, cluster by cluster.

    Items that do not intersect are never overlaid: each connected set of intersecting items
    is unioned on its own and the disjoint results are collected into a MultiPolygon.
    """
    geoms = np.concatenate([walls, loose])
    group = np.concatenate([wall_group, loose_group])
    is_wall = np.arange(len(geoms)) < len(walls)
    if len(geoms) == 0:
        return {}
    tree = shapely.STRtree(geoms)
    lost = np.flatnonzero(core_wall < 0)
    if len(lost):  # not expected (a face lies in a component with a wall): find it
        ci, hi = tree.query(shapely.point_on_surface(cores[lost]), predicate="within")
        core_wall = core_wall.copy()
        core_wall[lost[ci[is_wall[hi]]]] = hi[is_wall[hi]]
        cores, core_wall = cores[core_wall >= 0], core_wall[core_wall >= 0]
    a, b = tree.query(geoms, predicate="intersects")
    ok = group[a] == group[b]
    n = len(geoms)
    adj = sparse.coo_matrix((np.ones(int(ok.sum()), np.int8), (a[ok], b[ok])), shape=(n, n))
    cluster = connected_components(adj, directed=False)[1]
    n_cl = int(cluster.max()) + 1
    hull, rest = _union_by(geoms, cluster, is_wall, n_cl), _union_by(geoms, cluster, ~is_wall, n_cl)
    if len(cores):  # disjoint cores: one MultiPolygon per cluster, one vectorised difference
        parts, pidx = shapely.get_parts(cores, return_index=True)
        cut, inv = np.unique(cluster[core_wall][pidx], return_inverse=True)
        o = np.argsort(inv, kind="stable")
        hull[cut] = shapely.difference(hull[cut], shapely.multipolygons(parts[o], indices=inv[o]))
    has_h, has_r = hull != None, rest != None  # noqa: E711
    merged = np.where(has_h, hull, rest)
    merged[has_h & has_r] = shapely.union(hull[has_h & has_r], rest[has_h & has_r])
    cl_group = np.zeros(n_cl, np.int64)
    cl_group[cluster] = group
    return {int(g): _multipolygon(merged[cl_group == g]) for g in np.unique(cl_group)}


def _union_by(geoms: np.ndarray, label: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    """Union of the ``mask`` geometries per label (``None`` where a label has none)."""
    out = np.full(n, None, dtype=object)
    idx = np.flatnonzero(mask)
    single = np.bincount(label[idx], minlength=n)[label[idx]] == 1
    out[label[idx[single]]] = geoms[idx[single]]
    multi = idx[~single][np.argsort(label[idx[~single]], kind="stable")]
    bounds = np.flatnonzero(np.r_[True, np.diff(label[multi]) != 0, True]) if len(multi) else []
    for lo, hi in itertools.pairwise(bounds):
        out[label[multi[lo]]] = shapely.union_all(geoms[multi[lo:hi]])
    return out


def _multipolygon(geoms: np.ndarray) -> shapely.MultiPolygon:
    """Disjoint polygonal pieces as one MultiPolygon, without overlay slivers (< 1e-3 m²).

    Left in, such slivers can make GEOS 3.14 ``union_all`` of the results return a wrong area.
    """
    parts = shapely.get_parts(geoms)
    return shapely.multipolygons(
        parts[(shapely.get_type_id(parts) == 3) & (shapely.area(parts) >= _SLIVER_M2)]
    )


def _by_part(outer, inner, *, union: bool) -> shapely.MultiPolygon:
    """``outer - inner`` or ``outer ∪ inner`` part by part (``inner`` lies inside ``outer``)."""
    op, ip = shapely.get_parts(outer), shapely.get_parts(inner)
    i, o = shapely.STRtree(op).query(shapely.point_on_surface(ip), predicate="intersects")
    i, first = np.unique(i, return_index=True)
    o = o[first]
    order = np.argsort(o, kind="stable")
    i, o = i[order], o[order]
    cut, idx = np.unique(o, return_inverse=True)
    out = op.copy()
    if len(cut):
        other = shapely.multipolygons(ip[i], indices=idx)
        out[cut] = (shapely.union if union else shapely.difference)(op[cut], other)
    if union:  # an inner part outside every outer part (not expected) stays as it is
        out = np.concatenate([out, np.delete(ip, i)])
    return _multipolygon(out)

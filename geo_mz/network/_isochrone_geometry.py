"""Isochrone polygons from reached pieces: walls minus cores plus loose lines, and the rings.

Private helpers of :mod:`geo_mz.network.isochrone` (see its module docstring for the method).
"""

from __future__ import annotations

import itertools

import numpy as np
import shapely
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from geo_mz.network._isochrone_cores import QUAD_SEGS, face_cores
from geo_mz.network._isochrone_plane import (
    Arrays,
    face_rings,
    face_walks,
    member,
    walk_lines,
    walk_vertices,
)

_AREA_MIN_M2 = 0.01  # walks enclosing less are outer walks (buffered as lines if need be)
_SLIVER_M2 = 1e-3  # polygon parts smaller than this are overlay noise

# --------------------------------------------------------------------------- polygons


def buffer_union(
    pc: Arrays, bad: np.ndarray, buffer_m: float, extra, extra_group, core_cache: dict
) -> Arrays:
    """``union_all(buffer(pieces, buffer_m) ∪ extra)`` per group (see the module docstring).

    ``bad`` marks pieces that may cross others; ``extra`` are polygons added as they are.
    ``core_cache`` keeps the cores of plain faces from one threshold to the next (a face
    bounded within 5 minutes is bounded within 10): keep one dict per ``buffer_m``.
    """
    buf = {"quad_segs": QUAD_SEGS}
    tail, head, group = pc["tail"], pc["head"], pc["group"]
    coords, first, last = pc["xy"], pc["first"], pc["last"]
    walls, wall_group = np.empty(0, object), np.empty(0, np.int64)
    b = np.flatnonzero(bad)
    n_v = last[b] - first[b] + 1
    vb = np.repeat(first[b], n_v) + np.arange(n_v.sum()) - np.repeat(np.cumsum(n_v) - n_v, n_v)
    bad_lines = shapely.linestrings(coords[vb], indices=np.repeat(np.arange(len(b)), n_v))
    loose = [extra, shapely.buffer(bad_lines, buffer_m, **buf)]
    loose_group = [extra_group, group[bad]]
    cores, core_wall, core_uid = np.empty(0, object), np.empty(0, np.int64), np.empty(0, np.int64)
    x = np.flatnonzero(~bad)
    if len(x):
        g, fx, lx = group[x], first[x], last[x]
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
        w = face_walks(coords, fx, lx, tx, hx)
        walk, seq, area = w["walk"], w["seq"], w["area_m2"]
        wg, wcomp = g[w["first"] >> 1], comp[w["first"] >> 1]
        face_ids = np.flatnonzero(area > _AREA_MIN_M2)
        outer = np.flatnonzero(area <= _AREA_MIN_M2)
        h0 = w["first"][outer]
        v0 = coords[np.where(h0 & 1, lx[h0 >> 1], fx[h0 >> 1])]
        # the region each component's outer walk encloses (its wall before buffering); a
        # component with a vertex in another one's lies in one of its faces (rare): only
        # then are all faces made, else only those wide enough for a core
        cand = outer[area[outer] < -_AREA_MIN_M2]
        cand_poly = np.empty(0, object)
        maybe_nested = False
        if len(cand):
            ws = seq[member(walk[seq], cand, len(area))]
            verts, vl = walk_vertices(fx, lx, ws, walk[ws])
            idx = np.cumsum(np.r_[True, vl[1:] != vl[:-1]]) - 1
            cand_poly = shapely.polygons(shapely.linearrings(coords[verts], indices=idx))
            if len(outer) > 1:
                cp, op = shapely.STRtree(shapely.points(v0)).query(cand_poly, "contains")
                other = (wg[cand[cp]] == wg[outer[op]]) & (wcomp[cand[cp]] != wcomp[outer[op]])
                maybe_nested = bool(other.any())
        # bounded faces without their dead ends (bridges leave holes)
        if maybe_nested:
            rings, owner, odd = face_rings(coords, fx, lx, w, face_ids)
        else:
            wide = face_ids[area[face_ids] > np.pi * buffer_m**2]
            rings, owner, odd = face_rings(coords, fx, lx, w, wide, 2 * buffer_m)
        shell = shapely.is_ccw(rings)
        faces, face_walk = shapely.polygons(rings[shell]), owner[shell]
        face_of = np.full(len(area), -1)
        face_of[face_walk] = np.arange(len(faces))
        holes: dict[int, list] = {}
        for r, c in zip(rings[~shell], owner[~shell], strict=True):
            holes.setdefault(int(face_of[c]), []).append(r)
        # outer walks; a component inside a face of another is a hole of that face
        parent = np.arange(int(comp.max()) + 1)
        nested = np.zeros(len(area), bool)
        if maybe_nested and len(faces):
            pi, fi = shapely.STRtree(faces).query(shapely.points(v0), "within")
            ok = wg[outer[pi]] == wg[face_walk[fi]]
            o = np.lexsort((shapely.area(faces[fi[ok]]), pi[ok]))  # innermost face first
            pi, fi = pi[ok][o], fi[ok][o]
            one = np.r_[True, pi[1:] != pi[:-1]][: len(pi)]
            pi, fi = outer[pi[one]], fi[one]
            nested[pi] = True
            parent[wcomp[pi]] = wcomp[face_walk[fi]]
            into = dict(zip(pi.tolist(), fi.tolist(), strict=True))
            for r, c in zip(*face_rings(coords, fx, lx, w, pi)[:2], strict=True):
                holes.setdefault(into[int(c)], []).append(r)
        fix = np.zeros(len(faces), bool)
        for f, hs in holes.items():
            faces[f] = shapely.Polygon(faces[f].exterior, hs)
            fix[f] = True
        # the lines touch only at shared nodes (crossing ones are loose): only a ring that
        # passes a node twice, or one chained across bridges, can be invalid
        odd_face = np.zeros(len(faces), bool)
        odd_face[face_of[owner[odd & shell]]] = True
        odd_face[fix] = False
        fix[odd_face] = ~shapely.is_valid(faces[odd_face])
        for f in np.flatnonzero(fix):  # pinched rings, touching holes
            parts = shapely.get_parts(shapely.make_valid(faces[f]))
            faces[f] = shapely.union_all(parts[shapely.get_type_id(parts) == 3])
        # walls: one polygon buffer per component; trees and nested ones buffered as lines
        flat = (area >= -_AREA_MIN_M2) | nested
        wall_ids, line_ids = outer[~flat[outer]], outer[flat[outer]]
        wall_of = np.full(len(parent), -1)
        if len(wall_ids):
            polys = cand_poly[np.searchsorted(cand, wall_ids)]
            walls, wall_group = shapely.buffer(polys, buffer_m, **buf), wg[wall_ids]
            wall_of[wcomp[wall_ids]] = np.arange(len(wall_ids))
        if len(line_ids):
            fo = seq[member(walk[seq], line_ids, len(area))]
            loose.append(
                shapely.buffer(walk_lines(coords, fx, lx, w, fo, walk[fo]), buffer_m, **buf)
            )
            loose_group.append(wg[line_ids])
        if len(faces):  # each core is cut from the wall of its outermost component
            cores, core_face, core_uid = face_cores(
                faces, buffer_m, np.where(fix, None, rings[shell]), core_cache
            )
            while not np.array_equal(parent[parent], parent):
                parent = parent[parent]
            core_wall = wall_of[parent[wcomp[face_walk[core_face]]]]
        # dead-end trees inside faces: one open path per tree
        f = seq[member(walk[seq], face_ids, len(area))]
        sf = w["spike"][f >> 1]
        run_start = sf & np.r_[True, ~sf[:-1] | (walk[f][1:] != walk[f][:-1])]
        if sf.any():
            paths = walk_lines(coords, fx, lx, w, f[sf], np.cumsum(run_start)[sf])
            loose.append(shapely.buffer(paths, buffer_m, **buf))
            loose_group.append(g[f[run_start] >> 1])
    loose_all, loose_g = np.concatenate(loose), np.concatenate(loose_group)
    return _assemble(walls, wall_group, loose_all, loose_g, cores, core_wall, core_uid)


def _assemble(walls, wall_group, loose, loose_group, cores, core_wall, core_uid) -> Arrays:
    """``union(walls) ∪ union(loose)`` per group, and the cores minus the loose lines as holes.

    Items that do not intersect are never overlaid: each connected set of intersecting items
    is unioned on its own. Returns the disjoint ``filled`` polygons and their ``group``, and
    the ``holes`` (each strictly inside one filled polygon, ``buffer_m`` or more from its
    edge: a core lies in a face, and the face in the wall it is cut from) with theirs. The
    polygon is ``filled - holes`` = ``(union(walls) - cores) ∪ union(loose)``; see
    :func:`_with_holes`.
    """
    geoms = np.concatenate([walls, loose])
    group = np.concatenate([wall_group, loose_group])
    is_wall = np.arange(len(geoms)) < len(walls)
    if len(geoms) == 0:
        return _shapes()
    tree = shapely.STRtree(geoms)
    lost = np.flatnonzero(core_wall < 0)
    plain = core_wall >= 0  # a core in its wall, untouched by loose lines: strictly inside
    if len(lost):  # not expected (a face lies in a component with a wall): find it
        ci, hi = tree.query(shapely.point_on_surface(cores[lost]), predicate="within")
        core_wall = core_wall.copy()
        core_wall[lost[ci[is_wall[hi]]]] = hi[is_wall[hi]]
        cores, plain, core_uid, core_wall = (
            x[core_wall >= 0] for x in (cores, plain, core_uid, core_wall)
        )
    shapely.prepare(walls)  # queried twice; and kept by the parts that are a wall as it is
    a, b = tree.query(geoms, predicate="intersects")
    ok = group[a] == group[b]
    # loose items strictly inside a wall add nothing to the union (most lines in faces)
    wl = np.flatnonzero(ok & is_wall[a] & ~is_wall[b])
    absorbed = np.zeros(len(geoms), bool)
    absorbed[b[wl[shapely.contains_properly(geoms[a[wl]], geoms[b[wl]])]]] = True
    n = len(geoms)
    adj = sparse.coo_matrix((np.ones(int(ok.sum()), np.int8), (a[ok], b[ok])), shape=(n, n))
    cluster = connected_components(adj, directed=False)[1]
    n_cl = int(cluster.max()) + 1
    hull = _union_by(geoms, cluster, is_wall, n_cl)
    rest = _union_by(geoms, cluster, ~is_wall & ~absorbed, n_cl)
    has_h, has_r = hull != None, rest != None  # noqa: E711
    filled = np.where(has_h, hull, rest)
    filled[has_h & has_r] = shapely.union(hull[has_h & has_r], rest[has_h & has_r])
    cl_group = np.zeros(n_cl, np.int64)
    cl_group[cluster] = group
    parts, pidx = shapely.get_parts(filled, return_index=True)
    single = shapely.get_type_id(filled) == 3
    parts[single[pidx]] = filled[pidx[single[pidx]]]  # the same (prepared) object
    keep = (shapely.get_type_id(parts) == 3) & (shapely.area(parts) >= _SLIVER_M2)
    part_of_cl = _unique_position(pidx[keep], n_cl)  # the one part of a cluster, or -1
    holes, hole_group, hole_plain = np.empty(0, object), np.empty(0, np.int64), np.empty(0, bool)
    hole_part, hole_id = np.empty(0, np.int64), np.empty((0, 2), np.int64)
    if len(cores):  # loose lines that reach into a core cover part of it
        c_cl = cluster[core_wall]
        ci, li = _pairs(geoms[len(walls) :], group[len(walls) :], cores, group[core_wall])
        li = li + len(walls)
        hit = cluster[li] == c_cl[ci]
        ci, li = ci[hit], li[hit]
        cores = cores.copy()
        if len(ci):
            o = np.argsort(ci, kind="stable")
            ci, li = ci[o], li[o]
            cut, start = np.unique(ci, return_index=True)
            cover = [shapely.union_all(geoms[g]) for g in np.split(li, start[1:])]
            cores[cut] = shapely.difference(cores[cut], np.asarray(cover, dtype=object))
            plain = plain.copy()
            plain[cut] = False
        holes, hidx = shapely.get_parts(cores, return_index=True)
        ok = (shapely.get_type_id(holes) == 3) & (shapely.area(holes) >= _SLIVER_M2)
        holes, hole_group, hole_plain = holes[ok], cl_group[c_cl[hidx[ok]]], plain[hidx[ok]]
        hole_part = np.where(hole_plain, part_of_cl[c_cl[hidx[ok]]], -1)
        # a cached core not cut by loose lines: the same object at every threshold
        ordinal = np.arange(len(hidx)) - np.searchsorted(hidx, hidx)
        hole_id = np.stack([np.where(plain, core_uid, -1)[hidx], ordinal], axis=1)[ok]
    return {"filled": parts[keep], "group": cl_group[pidx[keep]], "holes": holes,
            "hole_group": hole_group, "hole_plain": hole_plain,
            "hole_part": hole_part, "hole_id": hole_id}  # fmt: skip


def _unique_position(label: np.ndarray, n: int) -> np.ndarray:
    """Per label ``0..n-1`` its position in ``label`` if it occurs exactly once, else -1."""
    out = np.full(n, -1)
    once = np.bincount(label, minlength=n)[label] == 1
    out[label[once]] = np.flatnonzero(once)
    return out


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
    single = shapely.get_type_id(geoms) == 3
    parts = geoms if single.all() else shapely.get_parts(geoms)  # no copy when all are single
    return shapely.multipolygons(
        parts[(shapely.get_type_id(parts) == 3) & (shapely.area(parts) >= _SLIVER_M2)]
    )


def _shapes() -> Arrays:
    """No polygons, as ``filled`` parts minus ``holes`` (see :func:`_assemble`)."""
    return {"filled": np.empty(0, dtype=object), "group": np.empty(0, np.int64),
            "holes": np.empty(0, dtype=object), "hole_group": np.empty(0, np.int64),
            "hole_plain": np.empty(0, bool), "hole_part": np.empty(0, np.int64),
            "hole_id": np.empty((0, 2), np.int64)}  # fmt: skip


def _with_holes(
    parts: np.ndarray, group: np.ndarray, holes: np.ndarray, hole_group, plain=None, part=None
) -> np.ndarray:
    """``parts`` with the ``holes`` cut out; each hole lies inside one part of its group.

    A hole with no holes of its own, strictly inside its part, is added as an interior ring
    (no overlay: GEOS overlay spends most of its time placing thousands of holes in one big
    shell). The others are cut out with ``shapely.difference``. ``plain`` marks holes known
    to be strictly inside some part (cores no loose line reached, see :func:`_assemble`):
    their part is found from one vertex (or given: ``part``, -1 if not known), the others are
    tested whole.
    """
    if len(holes) == 0:
        return parts
    plain = np.zeros(len(holes), bool) if plain is None else plain
    part = np.full(len(holes), -1) if part is None else part
    one = plain & (shapely.get_num_interior_rings(holes) == 0)
    known = np.flatnonzero(one & (part >= 0))
    e, r = np.flatnonzero(one & (part < 0)), np.flatnonzero(~one)
    # the big polygons are the query side: GEOS prepares them once
    pe, he = shapely.STRtree(shapely.get_point(shapely.get_exterior_ring(holes[e]), 0)).query(
        parts, predicate="contains"
    )
    pr, hr = shapely.STRtree(holes[r]).query(parts, predicate="contains_properly")
    pi, hi = np.concatenate([pe, pr]), np.concatenate([e[he], r[hr]])
    ok = group[pi] == hole_group[hi]
    hi, first = np.unique(hi[ok], return_index=True)
    pi, hi = np.concatenate([pi[ok][first], part[known]]), np.concatenate([hi, known])
    inside = np.zeros(len(holes), bool)
    inside[hi] = True
    ring = inside & (shapely.get_num_interior_rings(holes) == 0)
    out = parts.copy()
    if ring.any():
        rings, ridx = shapely.get_rings(parts, return_index=True)
        part_of = np.full(len(holes), -1)
        part_of[hi] = pi
        add = np.flatnonzero(ring)
        all_r = np.concatenate([rings, shapely.get_exterior_ring(holes[add])])
        all_i = np.concatenate([ridx, part_of[add]])
        o = np.argsort(all_i, kind="stable")  # each part's shell first, then its holes
        out = shapely.polygons(all_r[o], indices=all_i[o])
    rest = np.flatnonzero(~ring)  # not expected often: holes with islands, or touching
    hi, pi = _pairs(out, group, holes[rest], hole_group[rest])
    return _cut(out, pi, holes[rest[hi]])


def polygons_of(sh: Arrays) -> dict[int, shapely.MultiPolygon]:
    """One MultiPolygon per group: ``filled - holes``."""
    polys = _with_holes(
        sh["filled"], sh["group"], sh["holes"], sh["hole_group"], sh["hole_plain"], sh["hole_part"]
    )
    return {int(g): _multipolygon(polys[sh["group"] == g]) for g in np.unique(sh["group"])}


def ring_between(cur: Arrays, prev: Arrays, inner: np.ndarray) -> dict[int, shapely.MultiPolygon]:
    """``P_k - P_j`` per group, where ``P_k`` = ``cur`` and ``P_j`` = ``prev`` (``j < k``).

    ``cur`` comes from :func:`nest_filled` (``F_j ⊆ F_k``), ``inner`` too: per part of ``F_j``
    the part of ``F_k`` whose interior holds it, or -1. ``P = F - H`` (filled parts minus
    holes). Since ``P_j ⊆ P_k`` and ``F_j - P_j = H_j``:

        ``P_k - P_j = (P_k - F_j) ∪ (P_k ∩ H_j)``, disjoint (``H_j`` lies inside ``F_j``),

    * ``P_k - F_j = (F_k - F_j) - H_k``. A part of ``F_k`` whose parts of ``F_j`` all lie in
      its interior needs no overlay: their outlines become its holes and their holes
      islands (unless a hole of ``F_k`` lies in one); other parts are cut with
      ``shapely.difference``. Holes of ``P_k`` inside ``F_j`` do not matter, those clear of
      ``F_j`` are added as rings afterwards, and those touching ``F_j`` are added as rings
      before the overlay, which merges them with the new edge (cores are cut ``CORE_GAP_M``
      deeper so that they do not touch ``F_j`` along a street both are 50 m from);
    * ``P_k ∩ H_j = H_j - H_k`` (``H_j`` lies inside ``F_k``, where ``P_k = F_k - H_k``):
      empty for a hole of ``P_j`` that is also a hole of ``P_k`` (the same face and core,
      found by the id of the cached core), else ``h - (holes of P_k that meet h)``: the part
      of an old core that streets reached later cover.
    """
    fk, gk, hk, hgk = cur["filled"], cur["group"], cur["holes"], cur["hole_group"]
    fj, gj, hj, hgj = prev["filled"], prev["group"], prev["holes"], prev["hole_group"]
    ik, ij = cur["hole_id"], prev["hole_id"]
    same_k, same_j = _same(ik, hgk, ij, hgj), _same(ij, hgj, ik, hgk)
    new = np.flatnonzero(~same_k)  # holes of P_k: inside F_j, touching it, or clear of it
    meets = np.zeros(len(hk), bool)
    shapely.prepare(fj)  # queried twice
    meets[new[_pairs(fj, gj, hk[new], hgk[new])[0]]] = True
    inside = np.zeros(len(hk), bool)
    m = np.flatnonzero(meets)  # few: cores are cut a little deeper than F_j's edge
    inside[m[_pairs(fj, gj, hk[m], hgk[m], "contains_properly")[0]]] = True
    touch, clear = np.flatnonzero(meets & ~inside), np.flatnonzero(~same_k & ~meets)
    slow = np.zeros(len(fk), bool)  # parts of F_k that need an overlay
    if len(touch):  # these go in before the overlay, which then merges them with its edge
        slow[_pairs(hk[touch], hgk[touch], fk, gk)[0]] = True
        fk = _with_holes(
            fk, gk, hk[touch], hgk[touch], cur["hole_plain"][touch], cur["hole_part"][touch]
        )
    child = np.where(inner >= 0, inner, 0)
    child = np.where((inner >= 0) & ~slow[child], inner, -1)
    rest = np.flatnonzero(child < 0)
    ji, ki = _pairs(fk, gk, fj[rest], gj[rest])
    ji = rest[ji]
    slow[ki] = True
    fast_kid = np.flatnonzero(child >= 0)
    islands, island_part, bad = _islands(fk, fj, fast_kid, child[fast_kid])
    slow[bad] = True
    moved = fast_kid[slow[child[fast_kid]]]  # parts of F_j in a part that needs an overlay
    ji, ki = np.concatenate([ji, moved]), np.concatenate([ki, child[moved]])
    fast_kid = fast_kid[~slow[child[fast_kid]]]
    ok = ~slow[island_part]
    islands, island_part = islands[ok], island_part[ok]
    main = fk.copy()
    # holes of P_k clear of F_j in a part that needs no overlay and holds no island (all
    # parts of F_j in it have no holes, so the hole is outside their outlines): added with
    # those outlines; the other clear holes afterwards
    # (a clear hole lies in an island, a hole of F_j, or else in its part minus F_j)
    in_island = np.full(len(clear), -1)
    if len(islands) and len(clear):
        pts = shapely.get_point(shapely.get_exterior_ring(hk[clear]), 0)
        ii, hi = shapely.STRtree(pts).query(islands, predicate="contains")
        ok = gk[island_part[ii]] == hgk[clear[hi]]
        in_island[hi[ok]] = ii[ok]
    hp = cur["hole_part"][clear]
    early = (hp >= 0) & cur["hole_plain"][clear] & (shapely.get_num_interior_rings(hk[clear]) == 0)
    early &= ~slow[np.maximum(hp, 0)] & (in_island < 0)
    early_at = clear[early]
    if len(fast_kid) or len(early_at):  # the outlines of the parts of F_j become holes
        host = np.unique(np.concatenate([child[fast_kid], hp[early]]))
        rings, ridx = shapely.get_rings(fk[host], return_index=True)
        all_r = np.concatenate(
            [
                rings,
                shapely.get_exterior_ring(fj[fast_kid]),
                shapely.get_exterior_ring(hk[early_at]),
            ]
        )
        all_i = np.concatenate([host[ridx], child[fast_kid], hp[early]])
        o = np.argsort(all_i, kind="stable")  # each part's shell first, then its holes
        main[host] = shapely.polygons(all_r[o], indices=np.unique(all_i[o], return_inverse=True)[1])
    clear, in_island = clear[~early], in_island[~early]
    main = _cut(main, ki, fj[ji])
    main = np.concatenate([main, islands])
    mgroup = np.concatenate([gk, gk[island_part]])
    main_parts, midx = shapely.get_parts(main, return_index=True)
    keep = (shapely.get_type_id(main_parts) == 3) & (shapely.area(main_parts) >= _SLIVER_M2)
    main_parts, main_group = main_parts[keep], mgroup[midx[keep]]
    # its island, or its piece of its part of F_k in P_k - F_j: the hole (strictly inside
    # the part, clear of F_j) lies in one piece; the largest unless a point of it is in
    # one of the others (small: cheap to test)
    mk = midx[keep]
    piece = _unique_position(mk, len(main))
    hole_part = cur["hole_part"][clear]
    hole_part = np.where(in_island >= 0, len(fk) + in_island, hole_part)
    multi = np.flatnonzero(np.bincount(mk, minlength=len(main))[mk] > 1)
    if len(multi) and len(clear):
        o = multi[np.lexsort((-shapely.area(main_parts[multi]), mk[multi]))]
        largest = np.r_[True, mk[o][1:] != mk[o][:-1]]
        piece[mk[o[largest]]] = o[largest]
        others = o[~largest]
        ask = np.flatnonzero(hole_part >= 0)
        pts = shapely.get_point(shapely.get_exterior_ring(hk[clear[ask]]), 0)
        oi, hi = shapely.STRtree(pts).query(main_parts[others], predicate="contains")
        ok = mk[others[oi]] == hole_part[ask[hi]]
        found = np.full(len(clear), -1)
        found[ask[hi[ok]]] = others[oi[ok]]
    else:
        found = np.full(len(clear), -1)
    hole_part = np.where(hole_part >= 0, piece[np.maximum(hole_part, 0)], -1)
    hole_part = np.where(found >= 0, found, hole_part)
    polys = _with_holes(
        main_parts, main_group, hk[clear], hgk[clear], cur["hole_plain"][clear], hole_part
    )
    # old holes that are no longer holes: covered wholly or in part by P_k
    old = np.flatnonzero(~same_j)
    oi, ki = _pairs(hk, hgk, hj[old], hgj[old])
    extra = _cut(hj[old], oi, hk[ki])
    extra_group = hgj[old]
    all_p = np.concatenate([polys, extra])
    all_g = np.concatenate([main_group, extra_group])
    groups = np.union1d(gk, all_g)  # a group reached in full earlier gets an empty ring
    return {int(g): _multipolygon(all_p[all_g == g]) for g in groups}


def _islands(fk: np.ndarray, fj: np.ndarray, kids: np.ndarray, part: np.ndarray):
    """Holes of ``fj[kids]`` as polygons and their part ``part`` of ``fk``, and the bad parts.

    A hole of a part of ``F_j`` that lies in the interior of a part of ``F_k`` is in ``F_k``
    (an island of the ring) unless a hole of that part of ``F_k`` lies in it (``F_k``'s holes
    miss ``F_j``): such parts are returned as bad (they need an overlay).
    """
    rings, ridx = shapely.get_rings(fj[kids], return_index=True)
    hole = np.r_[False, ridx[1:] == ridx[:-1]][: len(ridx)]
    islands, island_part = shapely.polygons(rings[hole]), part[ridx[hole]]
    host = np.unique(part)
    krings, kidx = shapely.get_rings(fk[host], return_index=True)
    khole = np.r_[False, kidx[1:] == kidx[:-1]][: len(kidx)]
    bad = np.empty(0, np.int64)
    if khole.any() and len(islands):
        holes_k, hpart = shapely.polygons(krings[khole]), host[kidx[khole]]
        ii, hi = shapely.STRtree(islands).query(holes_k, predicate="intersects")
        bad = np.unique(hpart[ii][hpart[ii] == island_part[hi]])
    return islands, island_part, bad


def nest_filled(cur: Arrays, prev: Arrays) -> tuple[Arrays, np.ndarray]:
    """``cur`` with its filled parts grown by ``prev``'s: the polygons up to ``k`` nest exactly.

    ``F_j ⊆ F_k`` holds for the streets, but the chords of a ``j`` round cap can stick out of
    the ``k`` chords by up to 0.24 m; without this union a later ring would overlap an
    earlier one by such slivers. Parts of ``F_j`` in the interior of a part of ``F_k`` (most)
    need no union. Also returns, per part of ``F_j``, the part of the result whose interior
    holds it (-1: none, or a part that was grown).
    """
    fk, gk, fj, gj = cur["filled"], cur["group"], prev["filled"], prev["group"]
    shapely.prepare(fk)  # queried twice
    ji, ki = _pairs(fk, gk, fj, gj, "contains_properly")
    inner = np.full(len(fj), -1)
    inner[ji] = ki
    rest = np.flatnonzero(inner < 0)
    ji, ki = _pairs(fk, gk, fj[rest], gj[rest])
    ji = rest[ji]
    out = fk.copy()
    grown = np.zeros(len(fk), bool)
    if len(ki):
        o = np.argsort(ki, kind="stable")
        cut, inv = np.unique(ki[o], return_inverse=True)
        out[cut] = shapely.union(fk[cut], shapely.multipolygons(fj[ji[o]], indices=inv))
        grown[cut] = True
    lone = np.setdiff1d(rest, ji)  # not expected: a part outside every new one
    parts, idx = shapely.get_parts(np.concatenate([out, fj[lone]]), return_index=True)
    group = np.concatenate([gk, gj[lone]])[idx]
    keep = (shapely.get_type_id(parts) == 3) & (shapely.area(parts) >= _SLIVER_M2)
    parts, group, idx = parts[keep], group[keep], idx[keep]
    new_pos = np.full(len(fk) + len(lone), -1)
    same = idx < len(fk)
    same[same] = ~grown[idx[same]]  # an unchanged part is still one polygon
    new_pos[idx[same]] = np.flatnonzero(same)
    parts[same] = fk[idx[same]]  # the same objects: prepared already for the next ring step
    inner = np.where(inner >= 0, new_pos[np.maximum(inner, 0)], -1)
    hole_part = cur["hole_part"]  # a grown part still holds its holes strictly inside
    hole_part = np.where(hole_part >= 0, _unique_position(idx, len(new_pos))[hole_part], -1)
    return cur | {"filled": parts, "group": group, "hole_part": hole_part}, inner


def _pairs(
    tree_geoms, tree_group, geoms, group, predicate: str = "intersects"
) -> tuple[np.ndarray, np.ndarray]:
    """Find pairs, same group only: ``predicate(tree_geoms[j], geoms[i])`` gives ``(i, j)``."""
    if len(tree_geoms) == 0 or len(geoms) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    # the tree holds ``geoms``: GEOS prepares each query geometry (``tree_geoms``, the big ones)
    j, i = shapely.STRtree(geoms).query(tree_geoms, predicate=predicate)
    ok = tree_group[j] == group[i]
    return i[ok], j[ok]


def _cut(geoms: np.ndarray, target: np.ndarray, cutters: np.ndarray) -> np.ndarray:
    """``geoms`` with each ``cutters[i]`` taken out of ``geoms[target[i]]`` (disjoint cutters)."""
    out = geoms.copy()
    if len(target):
        o = np.argsort(target, kind="stable")
        cut, inv = np.unique(target[o], return_inverse=True)
        out[cut] = shapely.difference(geoms[cut], shapely.multipolygons(cutters[o], indices=inv))
    return out


def _same(a_id: np.ndarray, a_group: np.ndarray, b_id: np.ndarray, b_group) -> np.ndarray:
    """Which holes ``a`` are also holes ``b``: the same part of the same cached core object.

    Holes without such an id (cores cut by loose lines, faces not cached) count as new; the
    ring step then handles them the general way (a hole of both lies inside ``F_j``).
    """
    in_b = set(zip(b_group.tolist(), *b_id.T.tolist(), strict=True))
    keys = zip(a_group.tolist(), *a_id.T.tolist(), strict=True)
    return np.fromiter((k in in_b for k in keys), bool, len(a_id)) & (a_id[:, 0] >= 0)

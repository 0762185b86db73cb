"""Cores of faces for isochrones: the part of a face farther than ``buffer_m`` from its edges.

Private helpers of :mod:`geo_mz.network.isochrone` (see its module docstring): convex faces
with numpy (the intersection of their edges' inner half-planes), the rest with GEOS, and a
cache so that a face seen at one threshold is not cut again at the next.
"""

from __future__ import annotations

import numpy as np
import shapely

from geo_mz.network._isochrone_plane import member

#: Segments per quarter circle of round caps and joins (the GEOS default).
QUAD_SEGS = 8
#: Cores are cut this much deeper than ``buffer_m``: a core then never touches the outline of
#: a smaller threshold along a street both are ``buffer_m`` from, and the ring step can put
#: that outline in as a hole without an overlay. Moves areas by this times the perimeter.
CORE_GAP_M = 1e-7


def face_cores(
    faces: np.ndarray, buffer_m: float, shells: np.ndarray, cache: dict
) -> tuple[np.ndarray, ...]:
    """Non-empty ``face.buffer(-buffer_m)``, the face of each, and an id of each core.

    Faces that cannot hold a circle of radius ``buffer_m`` are skipped: narrower bounding box,
    less area, or (``shells`` given: plain CCW faces) convex with ``2 area / perimeter <=
    buffer_m``, the inradius bound of convex polygons. The cores of plain faces are looked up
    in ``cache`` first, by their vertex set (any start, to 1e-6 m), and stored there: the same
    face at the next threshold gets the same core object, which ``_same`` then recognises.
    The id of a core kept in ``cache`` is its row there (the same core object at every
    threshold), -1 for the others.
    """
    box, area = shapely.bounds(faces), shapely.area(faces)
    wide = np.minimum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]) > 2 * buffer_m
    wide &= area > np.pi * buffer_m**2
    w0 = np.flatnonzero(wide)  # the rest is only for these
    c, owner = shapely.get_coordinates(shells[w0], return_index=True)
    owner = w0[owner]
    inside = owner[1:] == owner[:-1]
    e, eo = np.diff(c, axis=0)[inside], owner[:-1][inside]  # ring edges in order
    nxt = np.arange(1, len(e) + 1)
    ring_end = np.r_[eo[1:] != eo[:-1], True][: len(e)]
    nxt[ring_end] = np.flatnonzero(np.r_[True, ring_end[:-1]])
    reflex = np.zeros(len(faces), bool)
    reflex[eo[e[:, 0] * e[nxt, 1] - e[:, 1] * e[nxt, 0] < 0]] = True
    convex = (shells != None) & ~reflex  # noqa: E711
    wide[w0] &= ~convex[w0] | (2 * area[w0] / shapely.length(faces[w0]) > buffer_m)
    idx = np.flatnonzero(wide)
    # key of a plain face: its vertices (without the closing one) summed as integers, so
    # that neither the start vertex nor the summation order matters
    sel = member(owner[:-1], idx, len(faces)) & inside
    v, vo = c[:-1][sel], owner[:-1][sel]
    q = np.round(v * 1e6).astype(np.int64)
    start = np.flatnonzero(np.r_[True, vo[1:] != vo[:-1]]) if len(vo) else np.empty(0, int)
    with np.errstate(over="ignore"):  # wrapping sums are still a fine key
        sums = np.add.reduceat(np.stack([q[:, 0], q[:, 1], q[:, 0] * q[:, 1]], 1), start, axis=0)
    n_v = np.diff(np.r_[start, len(vo)])
    key = np.concatenate([n_v[:, None], sums], axis=1)  # per keyed face, in face order
    at = np.searchsorted(idx, vo[start])  # its position in idx
    old_keys = cache.get("keys", np.empty((0, 4), np.int64))
    old_cores = cache.get("cores", np.empty(0, dtype=object))
    _, inv = np.unique(np.concatenate([old_keys, key]), axis=0, return_inverse=True)
    row_of = np.full(len(old_keys) + len(key), -1)
    row_of[inv[: len(old_keys)]] = np.arange(len(old_keys))
    row = np.full(len(idx), -1)  # the face's row in the cache (its id), -1: no key
    row[at] = row_of[inv[len(old_keys) :]]
    hit = row >= 0
    cores = np.empty(len(idx), dtype=object)
    cores[hit] = old_cores[row[hit]]
    miss = np.flatnonzero(~hit)
    depth = buffer_m + CORE_GAP_M
    cx = miss[convex[idx[miss]]]
    state, easy = convex_cores(v, vo, idx[cx], depth)
    cores[cx[state == 1]] = easy
    cores[cx[state == 0]] = shapely.Polygon()
    made = np.zeros(len(idx), bool)
    made[cx[state >= 0]] = True
    hard = miss[~made[miss]]
    cores[hard] = shapely.buffer(faces[idx[hard]], -depth, quad_segs=QUAD_SEGS)
    new = np.flatnonzero(row[at] < 0)  # keyed faces not cached yet (each face once)
    row[at[new]] = len(old_keys) + np.arange(len(new))
    cache["keys"] = np.concatenate([old_keys, key[new]])
    cache["cores"] = np.concatenate([old_cores, cores[at[new]]])
    keep = ~shapely.is_empty(cores)
    uid = row
    return cores[keep], idx[keep], uid[keep]


def convex_cores(v: np.ndarray, vo: np.ndarray, faces: np.ndarray, depth: float):
    """``face.buffer(-depth)`` of convex CCW faces with numpy, where that is sure.

    ``v`` are the faces' vertices without the closing one, ``vo`` the face of each (sorted).
    The inner offset of a convex polygon is the intersection of its edges' inner half-planes
    (the distance to a convex polygon's edge is the distance to its line): where no offset
    edge turns round, corner ``i`` is where the offset lines of edges ``i - 1`` and ``i``
    meet, as GEOS makes it. Where some turn round they are dropped once and the corners
    recomputed from the lines left; the result is kept if it is inside every half-plane.
    A quadrilateral is empty if the triangle of three of its edge lines has an inradius
    below ``depth`` (the triangle holds it). The rest is left to GEOS. Returns per face of
    ``faces`` 1 (core made), 0 (empty) or -1 (left to GEOS), and the cores made. GEOS
    simplifies the input lines by 1 % of the distance first, so the two differ by up to
    ~0.5 m around nearly straight corners; this is the exact one.
    """
    n_face = int(vo.max()) + 1 if len(vo) else 0
    sel = member(vo, faces, n_face)
    p, ring = v[sel], vo[sel]
    state = np.full(n_face, -1)
    if len(p) == 0:
        return state[faces], np.empty(0, dtype=object)
    d = np.roll(p, -1, axis=0) - p
    last = np.r_[ring[1:] != ring[:-1], True]
    first = np.r_[True, ring[1:] != ring[:-1]]
    d[last] = p[np.flatnonzero(first)] - p[last]
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.stack([-d[:, 1], d[:, 0]], axis=1) / np.hypot(d[:, 0], d[:, 1])[:, None]
    c = (p * n).sum(axis=1) + depth  # inner offset line i: x . n_i = c_i
    live = np.isfinite(n).all(axis=1)
    state[quads_too_thin(n, c, ring, live, depth)] = 0
    out = []
    for _ in range(2):
        idx = np.flatnonzero(live & (state[ring] < 0))  # lines left, ring order
        if len(idx) == 0:
            break
        r = ring[idx]
        f = np.r_[True, r[1:] != r[:-1]]
        lst = np.r_[r[1:] != r[:-1], True]
        prv = np.arange(-1, len(idx) - 1)
        prv[f] = np.flatnonzero(lst)
        nxt = np.arange(1, len(idx) + 1)
        nxt[lst] = np.flatnonzero(f)
        det = _cross(n[idx[prv]], n[idx])
        w = _meet(n[idx[prv]], c[idx[prv]], n[idx], c[idx])
        along = ((w[nxt] - w) * n[idx][:, ::-1] * [1, -1]).sum(axis=1)  # along each edge
        turn = ~(np.isfinite(w).all(axis=1) & (det > 0) & (along > 0))
        bad = np.zeros(n_face, bool)
        bad[r[turn]] = True
        good = np.flatnonzero(~bad[r])
        if len(good):  # every corner inside every half-plane of its face
            gi = good
            rr = r[gi]
            pair_r = np.flatnonzero(member(ring, rr, n_face))
            # each corner against each line of its face (faces are small)
            cnt = np.bincount(ring[pair_r], minlength=n_face)
            k = cnt[rr]
            corner = np.repeat(gi, k)
            start = np.searchsorted(ring, rr)
            line = np.repeat(start, k) + np.arange(k.sum()) - np.repeat(np.cumsum(k) - k, k)
            inside = (w[corner] * n[line]).sum(axis=1) >= c[line] - 1e-9
            miss = np.zeros(n_face, bool)
            miss[ring[line[~inside]]] = True
            done = gi[~miss[rr]]
            if len(done):
                state[np.unique(r[done])] = 1
                _, inv = np.unique(r[done], return_inverse=True)
                out.append((np.unique(r[done]), shapely.linearrings(w[done], indices=inv)))
        live[idx[turn]] = False  # drop the lines that turned round and try again
    state[faces[state[faces] < 0]] = -1
    if not out:
        return state[faces], np.empty(0, dtype=object)
    ids = np.concatenate([o[0] for o in out])
    rings = np.concatenate([o[1] for o in out])
    core_of = np.full(n_face, None, dtype=object)
    core_of[ids] = shapely.polygons(rings)
    return state[faces], core_of[faces[state[faces] == 1]]


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]


def _meet(u: np.ndarray, cu: np.ndarray, v: np.ndarray, cv: np.ndarray) -> np.ndarray:
    """Where lines ``x . u = cu`` and ``x . v = cv`` meet (inf/nan if parallel)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        xy = np.stack([cu * v[:, 1] - cv * u[:, 1], u[:, 0] * cv - v[:, 0] * cu], axis=1)
        return xy / _cross(u, v)[:, None]


def quads_too_thin(n: np.ndarray, c: np.ndarray, ring: np.ndarray, live, depth: float):
    """Quadrilaterals (lines ``x . n = c - depth``) with no point ``depth`` from all edges.

    Any three of a convex quadrilateral's edge lines whose normals span the plane bound a
    triangle that holds it; its inradius ``2 area / perimeter`` bounds the quadrilateral's.
    """
    n_face = int(ring.max()) + 1
    four = np.flatnonzero(np.bincount(ring[live], minlength=n_face) == 4)
    four = four[np.bincount(ring, minlength=n_face)[four] == 4]
    if len(four) == 0:
        return four
    start = np.searchsorted(ring, four)
    nn = n[start[:, None] + np.arange(4)]  # (f, 4, 2)
    cc = c[start[:, None] + np.arange(4)] - depth
    best = np.full(len(four), np.inf)
    for skip in range(4):
        k = [i for i in range(4) if i != skip]
        a, b, d = nn[:, k[0]], nn[:, k[1]], nn[:, k[2]]
        ca, cb, cd = cc[:, k[0]], cc[:, k[1]], cc[:, k[2]]
        span = (_cross(a, b) > 0) & (_cross(b, d) > 0) & (_cross(d, a) > 0)
        p, q, r = _meet(d, cd, a, ca), _meet(a, ca, b, cb), _meet(b, cb, d, cd)
        with np.errstate(invalid="ignore"):
            area2 = _cross(q - p, r - p)
            per = np.hypot(*(q - p).T) + np.hypot(*(r - q).T) + np.hypot(*(p - r).T)
            inr = np.where(span & (area2 > 0), area2 / per, np.inf)
        best = np.minimum(best, inr)
    return four[best < depth * (1 - 1e-9)]

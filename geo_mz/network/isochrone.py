"""Isochrone polygons drawn from the reached street network, partial edges cut at the exact point.

One multi-source pass (:func:`geo_mz.network.multi_source_times`) gives every node its time to
the nearest centre. From those node times :func:`reached_edges` cuts the network at ``max_min``
(from a node reached at ``t`` an edge is followed for ``(max_min - t) * speed`` metres, one-way
drive edges only forwards; an edge reached from both ends is whole once the parts meet) and
:func:`isochrones` buffers that reached network by ``buffer_m`` into rings (0-5, 5-10, 10-15
min), merged or per centre. Never a convex hull or a circle around the centre: a place across
a river is inside only if a reached street passes within ``buffer_m`` of it.

Membership rule
---------------
A point is inside the ``k``-minute polygon **iff its distance to the street network reached
within ``k`` minutes is at most ``buffer_m``** (the walk from the street to the doors, not
timed; 50 m is a LOCAL CHOICE). Round caps are chords (``QUAD_SEGS`` = 8 per quarter circle),
at most ``buffer_m * (1 - cos(pi/32))`` = 0.24 m inside the true circle at 50 m. Snapping a
point to its nearest street spot (limit ``buffer_m``) and asking whether that spot is reached
gives the same answer except where another reached street is within ``buffer_m``; snapping to
the nearest *node* (limit ``buffer_m``, node time <= ``k``) covers a subset.

Method
------
Buffering every reached piece and unioning them costs ~0.1 ms a piece in GEOS and grows faster
than linearly. Instead the reached lines are read as a plane graph with numpy (half-edges sorted
by angle at each node, face walks by list ranking), and the polygon is assembled as

    ``(buffer(walls) - cores) ∪ buffer(loose lines)``

* a **wall** is the region a component's outer walk encloses, its dead ends and partial edges
  as zero-width spikes: one polygon buffer per component (GEOS buffers polygons fast);
* a **core** is ``face.buffer(-buffer_m)`` for each bounded face (components nested in a face
  are its holes): the part of a face farther than ``buffer_m`` from the face's boundary;
* **loose lines** are buffered as lines and added after the cores are cut: dead-end trees
  inside faces, trees and nested components, and edges that cross another edge without a
  junction (bridges, tunnels; found with an STRtree, cached per network), which would break
  the face walk.

Items that do not touch are never overlaid (clusters). Tests compare the result with the plain
``union_all(buffer(...))`` on hand-made, random and real networks; ``bench/bench_isochrones.py``
measures both.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from geo_mz.core.errors import CrsError, GeoMzError
from geo_mz.core.projection import parse_crs
from geo_mz.network.graph import Network

#: Walk from the street to the doors, m. LOCAL CHOICE (no standard found); configurable.
BUFFER_M = 50.0
#: Rings of the 15-minute elder-care circle (STANDARDS.md §B: GB 50180-2018 5/10/15-min circles).
THRESHOLDS_MIN: tuple[float, ...] = (5.0, 10.0, 15.0)
#: Segments per quarter circle of round caps and joins (the GEOS default).
QUAD_SEGS = 8
_EPS_M = 1e-6  # closer than this counts as touching
_AREA_MIN_M2 = 0.01  # walks enclosing less are outer walks (buffered as lines if need be)
_SLIVER_M2 = 1e-3  # polygon parts smaller than this are overlay noise

Arrays = dict[str, np.ndarray]


class IsochroneError(GeoMzError, ValueError):
    """Isochrone inputs are inconsistent (array shapes, thresholds, buffer)."""


def _check_times(net: Network, node_time_min: np.ndarray) -> np.ndarray:
    t = np.asarray(node_time_min, dtype=np.float64)
    if t.shape != (net.n_nodes,):
        raise IsochroneError(f"`node_time_min` has shape {t.shape}, need ({net.n_nodes},)")
    if np.isnan(t).any() or (t < 0).any():
        raise IsochroneError("`node_time_min` must be >= 0 or inf (unreached), never NaN")
    return t


def _check_minutes(name: str, value: float) -> float:
    v = float(value)
    if not np.isfinite(v) or v < 0:
        raise IsochroneError(f"`{name}` was {value!r} but must be a finite number >= 0")
    return v


# --------------------------------------------------------------------------- reach


def _substrings(geoms: np.ndarray, s0: np.ndarray, s1: np.ndarray) -> np.ndarray:
    """Part of each line between distances ``s0 < s1`` (metres from its first vertex)."""
    if len(geoms) == 0:
        return np.empty(0, dtype=object)
    coords, owner = shapely.get_coordinates(geoms, return_index=True)
    seg = np.hypot(*np.diff(coords, axis=0).T)
    seg[owner[1:] != owner[:-1]] = 0.0
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    first = np.searchsorted(owner, np.arange(len(geoms)))
    last = np.r_[first[1:], len(owner)] - 1
    cum -= cum[first][owner]
    inner = (cum > s0[owner] + _EPS_M) & (cum < s1[owner] - _EPS_M)  # vertices strictly inside
    size = np.bincount(owner[inner], minlength=len(geoms)) + 2
    start = np.cumsum(size) - size
    out = np.empty((int(size.sum()), 2))
    a, b = np.empty((len(geoms), 2)), np.empty((len(geoms), 2))
    bent = np.flatnonzero(last - first > 1)  # GEOS for polylines, numpy for straight lines
    a[bent] = shapely.get_coordinates(shapely.line_interpolate_point(geoms[bent], s0[bent]))
    b[bent] = shapely.get_coordinates(shapely.line_interpolate_point(geoms[bent], s1[bent]))
    st = np.flatnonzero(last - first == 1)
    p, d = coords[first[st]], coords[last[st]] - coords[first[st]]
    a[st] = p + d * (s0[st] / cum[last[st]])[:, None]
    b[st] = p + d * (s1[st] / cum[last[st]])[:, None]
    out[start] = np.where((s0 <= _EPS_M)[:, None], coords[first], a)  # ends exactly on nodes
    out[start + size - 1] = np.where((s1 >= cum[last] - _EPS_M)[:, None], coords[last], b)
    io = owner[inner]
    out[start[io] + 1 + np.arange(len(io)) - np.searchsorted(io, io)] = coords[inner]
    return shapely.linestrings(out, indices=np.repeat(np.arange(len(geoms)), size))


def _edge_reach(net: Network, t: np.ndarray, max_min: float) -> tuple[np.ndarray, ...]:
    """Reached fraction of each edge from u (forwards) and from v, and the two arc times."""
    e, f, ae = net.n_edges, net.arc_forward, net.arc_edge
    t_tail = t[np.where(f, net.edge_u[ae], net.edge_v[ae])]
    live = np.flatnonzero(t_tail < max_min)  # arcs whose tail has time left
    tt, arc_t, fl, el = t_tail[live], net.arc_time_min[live], f[live], ae[live]
    frac = np.where(tt + arc_t <= max_min, 1.0, np.minimum((max_min - tt) / arc_t, 1.0))
    a, b, tf, tb = np.zeros(e), np.zeros(e), np.full(e, np.inf), np.full(e, np.inf)
    a[el[fl]], b[el[~fl]], tf[el[fl]], tb[el[~fl]] = frac[fl], frac[~fl], arc_t[fl], arc_t[~fl]
    return a, b, tf, tb


def _pieces(net: Network, t: np.ndarray, max_min: float, group: np.ndarray) -> Arrays:
    """Reached pieces: whole edges, edges split where two groups meet, cut partial edges.

    ``group`` labels nodes (0 everywhere when merged). Returns ``edge``, ``s0``/``s1`` (metres
    from u), ``group``, ``tail``/``head`` (node, -1 at a cut end) and ``geometry`` (u -> v).
    """
    a, b, tf, tb = _edge_reach(net, t, max_min)
    u, v, length = net.edge_u, net.edge_v, net.edge_length_m
    gu, gv = group[u], group[v]
    whole = ((a > 0) | (b > 0)) & (a + b >= 1.0)
    split = whole & (a > 0) & (b > 0) & (gu != gv)  # per source: cut where times are equal
    keep, sp = np.flatnonzero(whole & ~split), np.flatnonzero(split)
    with np.errstate(invalid="ignore"):
        meet = (t[v[sp]] - t[u[sp]] + tb[sp]) / (tf[sp] + tb[sp])
    meet = np.clip(np.nan_to_num(meet, nan=0.5), 1.0 - b[sp], a[sp])
    fu, fv = np.flatnonzero(~whole & (a > 0)), np.flatnonzero(~whole & (b > 0))
    cut = np.concatenate([sp, sp, fu, fv])
    lo = np.concatenate([np.zeros(len(sp)), meet, np.zeros(len(fu)), 1.0 - b[fv]]) * length[cut]
    hi = np.concatenate([meet, np.ones(len(sp)), a[fu], np.ones(len(fv))]) * length[cut]
    from_u = np.repeat([True, False, True, False], [len(sp), len(sp), len(fu), len(fv)])
    return {
        "edge": np.concatenate([keep, cut]),
        "s0": np.concatenate([np.zeros(len(keep)), lo]),
        "s1": np.concatenate([length[keep], hi]),
        "group": np.concatenate(
            [np.where(a[keep] > 0, gu[keep], gv[keep]), np.where(from_u, gu[cut], gv[cut])]
        ),
        "tail": np.concatenate([u[keep], np.where(from_u, u[cut], -1)]),
        "head": np.concatenate([v[keep], np.where(from_u, -1, v[cut])]),
        "geometry": np.concatenate(
            [net.edge_geometry[keep], _substrings(net.edge_geometry[cut], lo, hi)]
        ),
    }


# --------------------------------------------------------------------------- plane graph


def _line_vertices(lines: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All vertices, and the index of each line's first and last vertex."""
    coords, owner = shapely.get_coordinates(lines, return_index=True)
    nv = np.bincount(owner, minlength=len(lines))
    first = np.cumsum(nv) - nv
    return coords, first, first + nv - 1


#: Per network: which edges were tested for crossings and which cross (weak keys: no leak).
_CROSSING_CACHE: weakref.WeakKeyDictionary[Network, tuple[np.ndarray, np.ndarray]]
_CROSSING_CACHE = weakref.WeakKeyDictionary()


def _crossing_edges(net: Network, edges: np.ndarray) -> np.ndarray:
    """Which ``edges`` touch another edge anywhere but at a shared node, or themselves.

    Such edges break the face walk, so they are buffered on their own. Straight edges are
    tested with numpy (within ``_EPS_M`` counts as touching), polylines with GEOS predicates.
    Results are kept per network; a later call tests only new edges (against all tested).
    """
    n = net.n_edges
    checked, bad = _CROSSING_CACHE.get(net) or (np.zeros(n, bool), np.zeros(n, bool))
    new = edges[~checked[edges]]
    if len(new):
        checked = checked.copy()
        checked[new] = True
        pool = np.flatnonzero(checked)
        fresh = np.isin(pool, new, assume_unique=True)
        lines = net.edge_geometry[pool]
        coords, first, last = _line_vertices(lines)
        tail, head = net.edge_u[pool], net.edge_v[pool]
        poly = (last - first) > 1
        bad = bad.copy()
        bad[pool[poly & fresh]] = ~shapely.is_simple(lines[poly & fresh])
        left, right = shapely.STRtree(lines).query(lines[fresh])
        left = np.flatnonzero(fresh)[left]
        keep = (left != right) & ((left < right) | ~fresh[right])  # each pair once
        left, right = left[keep], right[keep]
        ta, ha, tb, hb = tail[left], head[left], tail[right], head[right]
        t_sh, h_sh = (ta == tb) | (ta == hb), (ha == tb) | (ha == hb)
        n_sh = t_sh.astype(np.int8) + h_sh
        straight = ~(poly[left] | poly[right])
        pair_bad = straight & (n_sh == 2)  # two straight segments between the same nodes
        p0, p1 = coords[first], coords[last]
        length = np.hypot(*(p1 - p0).T)
        with np.errstate(invalid="ignore", divide="ignore"):  # closed polylines: length 0
            unit = (p1 - p0) / length[:, None]
        i = np.flatnonzero(straight & (n_sh == 1))  # bad if they leave the node the same way
        ua = unit[left[i]] * np.where(t_sh[i], 1.0, -1.0)[:, None]
        ub = unit[right[i]] * np.where((tb[i] == ta[i]) | (tb[i] == ha[i]), 1.0, -1.0)[:, None]
        cross = np.abs(ua[:, 0] * ub[:, 1] - ua[:, 1] * ub[:, 0])
        short = np.minimum(length[left[i]], length[right[i]])
        pair_bad[i] = (cross * short <= _EPS_M) & ((ua * ub).sum(axis=1) > 0)
        i = np.flatnonzero(straight & (n_sh == 0))  # no shared node: any contact is bad
        pair_bad[i] = _segments_touch(p0[left[i]], p1[left[i]], p0[right[i]], p1[right[i]])
        i = np.flatnonzero(~straight)  # polylines: contact only end to end at shared nodes
        ga, gb = lines[left[i]], lines[right[i]]
        pair_bad[i] = np.where(
            n_sh[i] == 0, shapely.intersects(ga, gb), ~shapely.relate_pattern(ga, gb, "FF*F0****")
        )
        bad[pool[left[pair_bad]]] = bad[pool[right[pair_bad]]] = True
        _CROSSING_CACHE[net] = (checked, bad)
    return bad[edges]


def _segments_touch(p1: np.ndarray, p2: np.ndarray, q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Tell whether closed segments p1-p2 and q1-q2 cross or touch (within ``_EPS_M``)."""

    def side(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        ab, ac = b - a, c - a
        dist = (ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0]) / np.hypot(ab[:, 0], ab[:, 1])
        return np.where(np.abs(dist) <= _EPS_M, 0.0, np.sign(dist))

    def on(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        return ((c >= np.minimum(a, b) - _EPS_M) & (c <= np.maximum(a, b) + _EPS_M)).all(axis=1)

    o1, o2, o3, o4 = side(p1, p2, q1), side(p1, p2, q2), side(q1, q2, p1), side(q1, q2, p2)
    return (
        ((o1 * o2 < 0) & (o3 * o4 < 0))
        | ((o1 == 0) & on(p1, p2, q1))
        | ((o2 == 0) & on(p1, p2, q2))
        | ((o3 == 0) & on(q1, q2, p1))
        | ((o4 == 0) & on(q1, q2, p2))
    )


def _walks(coords: np.ndarray, first: np.ndarray, last: np.ndarray, tail, head) -> Arrays:
    """Face walks of a plane line graph as half-edge cycles (face on the left; numpy only).

    Half-edge ``2i`` runs line ``i`` forwards, ``2i+1`` backwards. At each node the outgoing
    half-edges are sorted by angle; a walk goes on with the one just clockwise of the way back.
    Returns per half-edge its ``walk`` and ``tail`` node, per line ``spike`` (the same walk on
    both sides: a dead end or a bridge), the half-edges in walk order ``seq`` (grouped by walk,
    each starting on a non-spike half-edge if it has one; ``first`` = the start) and the signed
    ``area_m2`` of each walk (> 0 a bounded face, otherwise a component's outer walk).
    """
    m2 = 2 * len(first)
    h = np.arange(m2)
    he_tail = np.empty(m2, np.int64)
    he_tail[0::2], he_tail[1::2] = tail, head
    d = np.empty((m2, 2))
    d[0::2], d[1::2] = coords[first + 1] - coords[first], coords[last - 1] - coords[last]
    order = np.argsort(he_tail * 8.0 + (np.arctan2(d[:, 1], d[:, 0]) + np.pi))  # node, angle
    st = he_tail[order]
    new, end = np.r_[True, st[1:] != st[:-1]], np.r_[st[1:] != st[:-1], True]
    grp_last = np.minimum.accumulate(np.where(end, h, m2)[::-1])[::-1]
    rot_prev = np.empty(m2, np.int64)
    rot_prev[order] = order[np.where(new, grp_last, h - 1)]
    nxt = rot_prev[h ^ 1]
    graph = sparse.csr_matrix((np.ones(m2, np.int8), (h, nxt)), shape=(m2, m2))
    n_walk, walk = connected_components(graph, directed=True, connection="weak")
    spike = walk[0::2] == walk[1::2]
    key = h + m2 * np.repeat(spike, 2)
    best = np.full(n_walk, 2 * m2)
    np.minimum.at(best, walk, key)
    is_start = key == best[walk]
    prv = np.empty(m2, np.int64)
    prv[nxt] = h
    rank, ptr = (~is_start).astype(np.int64), np.where(is_start, h, prv)
    while True:  # Wyllie list ranking: log2(longest walk) rounds
        ptr2 = ptr[ptr]
        if np.array_equal(ptr2, ptr):
            break
        rank += rank[ptr]
        ptr = ptr2
    size = np.bincount(walk, minlength=n_walk)
    offset = np.cumsum(size) - size
    seq = np.empty(m2, np.int64)
    seq[offset[walk] + rank] = h
    verts, vw = _walk_vertices(first, last, seq, walk[seq])
    xy = coords[verts] - coords[verts].mean(axis=0)
    start = np.r_[True, vw[1:] != vw[:-1]]
    nxt_v = np.r_[np.arange(1, len(verts)), 0]
    nxt_v[np.r_[start[1:], True]] = np.flatnonzero(start)
    area = np.bincount(vw, xy[:, 0] * xy[nxt_v, 1] - xy[nxt_v, 0] * xy[:, 1], n_walk) / 2
    return {"walk": walk, "tail": he_tail, "spike": spike, "seq": seq, "first": seq[offset],
            "area_m2": area}  # fmt: skip


def _walk_vertices(first, last, seq: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, ...]:
    """Vertex indices along consecutive half-edges ``seq`` (each without its end vertex)."""
    line, rev = seq >> 1, (seq & 1).astype(bool)
    cnt = last[line] - first[line]
    k = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    base = np.repeat(np.where(rev, last[line], first[line]), cnt)
    return base + np.where(np.repeat(rev, cnt), -k, k), np.repeat(label, cnt)


def _walk_lines(coords, first, last, w: Arrays, seq: np.ndarray, label: np.ndarray):
    """One open LineString per run of ``label`` in ``seq`` (walks around dead-end trees).

    A run back to its start leaves out its last stretch, which it went along the other way
    before (or, for a nested component, its container covers): GEOS buffers a *closed* line
    that retraces itself as a ring, wrongly. Other runs (along a bridge) keep their end.
    """
    verts, vl = _walk_vertices(first, last, seq, label)
    starts = np.flatnonzero(np.r_[True, label[1:] != label[:-1]])
    ends = np.r_[starts[1:], len(seq)] - 1
    open_ = w["tail"][seq[starts]] != w["tail"][seq[ends] ^ 1]
    tip = seq[ends[open_]]
    all_v = np.concatenate([verts, np.where(tip & 1, first[tip >> 1], last[tip >> 1])])
    all_l = np.concatenate([vl, label[ends[open_]]])
    o = np.argsort(all_l, kind="stable")
    idx = np.cumsum(np.r_[True, all_l[o][1:] != all_l[o][:-1]]) - 1
    return shapely.linestrings(coords[all_v[o]], indices=idx)


def _member(values: np.ndarray, ids: np.ndarray, n: int) -> np.ndarray:
    mask = np.zeros(n, bool)
    mask[ids] = True
    return mask[values]


def _rings(coords, first, last, w: Arrays, walks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rings of ``walks`` without their spikes, and the walk of each ring.

    Dead ends vanish; a walk split by bridges gives one ring per side (a face with holes).
    """
    he_tail, seq = w["tail"], w["seq"]
    sel = seq[_member(w["walk"][seq], walks, len(w["area_m2"])) & ~w["spike"][seq >> 1]]
    if len(sel) == 0:
        return np.empty(0, dtype=object), np.empty(0, np.int64)
    lab, head = w["walk"][sel], he_tail[sel ^ 1]
    new_walk = np.r_[True, lab[1:] != lab[:-1]]
    run_start = new_walk | np.r_[True, he_tail[sel][1:] != head[:-1]]
    w_first = np.flatnonzero(new_walk)
    w_last = np.r_[w_first[1:], len(sel)] - 1
    simple = np.add.reduceat(run_start.astype(np.int64), w_first) == 1
    simple &= head[w_last] == he_tail[sel][w_first]
    ok = simple[np.cumsum(new_walk) - 1]
    verts, vl = _walk_vertices(first, last, sel[ok], lab[ok])
    rings = list(
        shapely.linearrings(coords[verts], indices=np.cumsum(np.r_[True, np.diff(vl) != 0]) - 1)
    )
    owner = list(lab[ok][np.r_[True, lab[ok][1:] != lab[ok][:-1]]])
    for k in np.flatnonzero(~simple):  # rare: chain the runs of a walk split by bridges
        idx = np.arange(w_first[k], w_last[k] + 1)
        runs = np.split(sel[idx], np.flatnonzero(run_start[idx])[1:])
        by_start = {int(he_tail[r[0]]): i for i, r in enumerate(runs)}
        todo = set(range(len(runs)))
        while todo:
            chain, i = [], todo.pop()
            while True:
                chain.append(runs[i])
                i = by_start.get(int(he_tail[runs[i][-1] ^ 1]), -1)
                if i not in todo:
                    break
                todo.discard(i)
            hs = np.concatenate(chain)
            v, _ = _walk_vertices(first, last, hs, np.zeros(len(hs), np.int64))
            if len(v) >= 3:
                rings.append(shapely.linearrings(coords[v]))
                owner.append(lab[idx[0]])
    return np.asarray(rings, dtype=object), np.asarray(owner, dtype=np.int64)


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


# --------------------------------------------------------------------------- public API


def reached_edges(net: Network, node_time_min: np.ndarray, *, max_min: float) -> gpd.GeoDataFrame:
    """Cut the street network at ``max_min``: reached edges whole, partial ones exactly.

    Parameters
    ----------
    net
        The network the times were computed on.
    node_time_min
        ``(n,)`` minutes from the nearest centre per node (``inf`` unreached): the first result
        of :func:`geo_mz.network.multi_source_times` (run with ``limit_min >= max_min``).
    max_min
        Time budget, minutes.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per reached edge, sorted by ``edge`` (index into the network's edge arrays):
        ``reached_m``, ``length_m``, ``whole`` (reached end to end, from one side or both) and
        ``geometry`` in ``net.crs``: the edge itself when whole, else the reached part(s)
        oriented u -> v (a MultiLineString when reached from both ends without meeting).
    """
    t = _check_times(net, node_time_min)
    pc = _pieces(net, t, _check_minutes("max_min", max_min), np.zeros(net.n_nodes, np.int64))
    order = np.argsort(pc["edge"], kind="stable")
    geom = pc["geometry"][order]
    edge, start, count = np.unique(pc["edge"][order], return_index=True, return_counts=True)
    geometry = geom[start].copy()
    two = np.flatnonzero(count == 2)
    if len(two):
        pair = np.stack([start[two], start[two] + 1], axis=1).ravel()
        geometry[two] = shapely.multilinestrings(
            geom[pair], indices=np.repeat(np.arange(len(two)), 2)
        )
    length = net.edge_length_m[edge]
    reached = np.add.reduceat((pc["s1"] - pc["s0"])[order], start) if len(start) else np.empty(0)
    whole = (count == 1) & (pc["tail"][order][start] >= 0) & (pc["head"][order][start] >= 0)
    return gpd.GeoDataFrame(
        {"edge": edge, "reached_m": np.minimum(reached, length), "length_m": length,
         "whole": whole},
        geometry=geometry,
        crs=net.crs,
    )  # fmt: skip


def isochrones(
    net: Network,
    node_time_min: np.ndarray,
    nearest: np.ndarray | None = None,
    *,
    thresholds_min: Sequence[float] = THRESHOLDS_MIN,
    buffer_m: float = BUFFER_M,
    per_source: bool = False,
    crs_out: str = "EPSG:4490",
) -> gpd.GeoDataFrame:
    """Isochrone rings (0-5, 5-10, 10-15 min ...) drawn from the reached street network.

    The ``k``-minute polygon is the network reached within ``k`` minutes (:func:`reached_edges`,
    partial edges cut at the exact point) buffered by ``buffer_m``, and nothing else: a point
    is inside iff a street reached within ``k`` minutes passes within ``buffer_m`` of it (see
    the module docstring for the chord tolerance and how this agrees with snapping).

    Parameters
    ----------
    net
        The network the times were computed on (projected metric CRS).
    node_time_min
        ``(n,)`` minutes per node from :func:`geo_mz.network.multi_source_times`.
    nearest
        ``(n,)`` nearest centre per node (its second result); needed for ``per_source``.
    thresholds_min
        Ring limits in minutes; default ``(5, 10, 15)``, the 15-minute elder-care circle.
    buffer_m
        Walk from the street to the doors, metres; 50 is a LOCAL CHOICE (no standard found).
    per_source
        One polygon per centre: its catchment (the nodes it is nearest to; edges split where
        catchments meet), from the same single pass. Neighbours overlap by up to ``buffer_m``.
    crs_out
        CRS of the returned geometries (default CGCS2000, EPSG:4490).

    Returns
    -------
    geopandas.GeoDataFrame
        One row per ring (and centre: ``source``, index into the centres) with
        ``threshold_min`` (upper limit), ``ring`` (``"0-5 min"``...), ``area_m2`` (in
        ``net.crs``) and ``geometry`` in ``crs_out``. Rings are disjoint; those up to ``k``
        make up the ``k``-minute polygon (which therefore also holds every smaller one).

    Raises
    ------
    IsochroneError
        Bad shapes, thresholds, buffer, or ``per_source`` without ``nearest``.
    CrsError
        ``crs_out`` cannot be parsed.
    """
    t = _check_times(net, node_time_min)
    thr = sorted({_check_minutes("thresholds_min", v) for v in thresholds_min})
    if not thr or thr[0] <= 0:
        raise IsochroneError(f"`thresholds_min` was {thresholds_min!r}; need values > 0")
    if not (np.isfinite(buffer_m) and buffer_m > 0):
        raise IsochroneError(f"`buffer_m` was {buffer_m!r} but must be a positive number")
    out_crs = parse_crs(crs_out)
    if out_crs is None:
        raise CrsError("`crs_out` is required, e.g. EPSG:4490")
    group = np.zeros(net.n_nodes, np.int64)
    if per_source:
        if nearest is None:
            raise IsochroneError("`per_source=True` needs `nearest` from multi_source_times")
        group = np.asarray(nearest)
        if group.shape != (net.n_nodes,) or group.dtype.kind not in "iu":
            raise IsochroneError(f"`nearest` must be ({net.n_nodes},) integers")
        if np.any((group < 0) & np.isfinite(t)):
            raise IsochroneError("`nearest` is -1 at reached nodes: pass both results of a call")
        group = group.astype(np.int64)
    a, b, _, _ = _edge_reach(net, t, thr[-1])  # crossings: tested once, at the widest reach
    touched = np.flatnonzero((a > 0) | (b > 0))
    bad_edge = np.zeros(net.n_edges, bool)
    bad_edge[touched] = _crossing_edges(net, touched)
    rows: list[dict[str, object]] = []
    prev: dict[int, shapely.Geometry] = {}
    for lo, k in zip([0.0, *thr[:-1]], thr, strict=True):
        pc = _pieces(net, t, k, group)
        on_line = np.zeros(net.n_nodes, bool)  # nodes reached with no time left: a disc each
        for end in (pc["tail"], pc["head"]):
            ok = end >= 0
            on_line[end[ok][group[end[ok]] == pc["group"][ok]]] = True
        alone = np.flatnonzero((t <= k) & ~on_line)
        disc = shapely.buffer(shapely.points(net.node_xy[alone]), buffer_m, quad_segs=QUAD_SEGS)
        cur = _buffer_union(pc, bad_edge[pc["edge"]], buffer_m, disc, group[alone])
        for grp in sorted(cur):
            inner = prev.get(grp)  # nest exactly: the k polygon holds everything up to k-1
            ring = cur[grp] if inner is None else _by_part(cur[grp], inner, union=False)
            if k != thr[-1]:
                prev[grp] = cur[grp] if inner is None else _by_part(cur[grp], inner, union=True)
            row: dict[str, object] = {"source": grp} if per_source else {}
            row |= {"threshold_min": k, "ring": f"{lo:g}-{k:g} min", "area_m2": ring.area}
            rows.append(row | {"geometry": ring})
    columns = ["threshold_min", "ring", "area_m2", "geometry"]
    frame = gpd.GeoDataFrame(
        pd.DataFrame(rows, columns=(["source"] if per_source else []) + columns),
        geometry="geometry",
        crs=net.crs,
    )
    if per_source:
        frame = frame.sort_values(["source", "threshold_min"], ignore_index=True)
    return frame.to_crs(out_crs)


def points_in_isochrones(
    points: gpd.GeoDataFrame | gpd.GeoSeries, iso: gpd.GeoDataFrame, threshold_min: float
) -> np.ndarray:
    """Mark the points inside the ``threshold_min`` polygon of an :func:`isochrones` result.

    Parameters
    ----------
    points
        Point geometries with a CRS (reprojected to the CRS of ``iso``).
    iso
        Rings from :func:`isochrones` (merged or per source).
    threshold_min
        One of ``iso.threshold_min``; the rings up to it count (their boundary included).

    Returns
    -------
    numpy.ndarray
        Boolean mask, one value per point.
    """
    geoms = points.geometry if isinstance(points, gpd.GeoDataFrame) else points
    if not isinstance(geoms, gpd.GeoSeries):
        raise TypeError(f"`points` must be a GeoDataFrame or GeoSeries, got {type(points)}")
    if geoms.crs is None or iso.crs is None:
        raise CrsError("`points` and `iso` need a CRS; set it with .set_crs(...)")
    levels = np.unique(iso["threshold_min"].to_numpy(dtype=float))
    if not np.isclose(levels, threshold_min).any():
        raise IsochroneError(
            f"`threshold_min` was {threshold_min!r} but is expected to be in {levels.tolist()}"
        )
    if geoms.crs != iso.crs:
        geoms = geoms.to_crs(iso.crs)
    polys = np.asarray(iso.geometry.values)[iso["threshold_min"].to_numpy() <= threshold_min + 1e-9]
    mask = np.zeros(len(geoms), bool)
    hit, _ = shapely.STRtree(polys[~shapely.is_empty(polys)]).query(
        np.asarray(geoms.values), predicate="intersects"
    )
    mask[hit] = True
    return mask

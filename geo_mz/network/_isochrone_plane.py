"""Reached pieces of a street network and the plane graph they form (numpy, for isochrones).

Private helpers of :mod:`geo_mz.network.isochrone`: the pieces of edges reached within a time
budget (partial edges cut at the exact point), the test for edges that cross without a junction
(cached per network), and face walks of the reached lines as a plane graph (half-edges sorted by
angle at each node, walks by list ranking). See the module docstring of
:mod:`geo_mz.network.isochrone` for how they make the polygons.
"""

from __future__ import annotations

import weakref

import numpy as np
import shapely
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from geo_mz.network.graph import Network

EPS_M = 1e-6  # closer than this counts as touching

Arrays = dict[str, np.ndarray]

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
    inner = (cum > s0[owner] + EPS_M) & (cum < s1[owner] - EPS_M)  # vertices strictly inside
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
    out[start] = np.where((s0 <= EPS_M)[:, None], coords[first], a)  # ends exactly on nodes
    out[start + size - 1] = np.where((s1 >= cum[last] - EPS_M)[:, None], coords[last], b)
    io = owner[inner]
    out[start[io] + 1 + np.arange(len(io)) - np.searchsorted(io, io)] = coords[inner]
    return shapely.linestrings(out, indices=np.repeat(np.arange(len(geoms)), size))


def live_arcs(net: Network, t: np.ndarray, max_min: float) -> np.ndarray:
    """Arcs whose tail is reached with time left: the only ones :func:`edge_reach` needs."""
    f, ae = net.arc_forward, net.arc_edge
    return np.flatnonzero(t[np.where(f, net.edge_u[ae], net.edge_v[ae])] < max_min)


def edge_reach(
    net: Network, t: np.ndarray, max_min: float, arcs: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """Reached fraction of each edge from u (forwards) and from v, and the two arc times.

    ``arcs``: look only at these (from :func:`live_arcs` with a budget >= ``max_min``).
    """
    e, f, ae, arc_t = net.n_edges, net.arc_forward, net.arc_edge, net.arc_time_min
    if arcs is not None:
        f, ae, arc_t = f[arcs], ae[arcs], arc_t[arcs]
    t_tail = t[np.where(f, net.edge_u[ae], net.edge_v[ae])]
    live = np.flatnonzero(t_tail < max_min)  # arcs whose tail has time left
    tt, arc_t, fl, el = t_tail[live], arc_t[live], f[live], ae[live]
    frac = np.where(tt + arc_t <= max_min, 1.0, np.minimum((max_min - tt) / arc_t, 1.0))
    a, b, tf, tb = np.zeros(e), np.zeros(e), np.full(e, np.inf), np.full(e, np.inf)
    a[el[fl]], b[el[~fl]], tf[el[fl]], tb[el[~fl]] = frac[fl], frac[~fl], arc_t[fl], arc_t[~fl]
    return a, b, tf, tb


def reached_pieces(
    net: Network, t: np.ndarray, max_min: float, group: np.ndarray, arcs: np.ndarray | None = None
) -> Arrays:
    """Reached pieces: whole edges, edges split where two groups meet, cut partial edges.

    ``group`` labels nodes (0 everywhere when merged); ``arcs`` as in :func:`edge_reach`.
    Returns ``edge``, ``s0``/``s1`` (metres from u), ``group``, ``tail``/``head`` (node, -1
    at a cut end) and ``geometry`` (u -> v).
    """
    a, b, tf, tb = edge_reach(net, t, max_min, arcs)
    edge = np.flatnonzero((a > 0) | (b > 0))  # the rest works on these only
    a, b, tf, tb = a[edge], b[edge], tf[edge], tb[edge]
    u, v, length = net.edge_u[edge], net.edge_v[edge], net.edge_length_m[edge]
    gu, gv = group[u], group[v]
    whole = a + b >= 1.0
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
        "edge": edge[np.concatenate([keep, cut])],
        "s0": np.concatenate([np.zeros(len(keep)), lo]),
        "s1": np.concatenate([length[keep], hi]),
        "group": np.concatenate(
            [np.where(a[keep] > 0, gu[keep], gv[keep]), np.where(from_u, gu[cut], gv[cut])]
        ),
        "tail": np.concatenate([u[keep], np.where(from_u, u[cut], -1)]),
        "head": np.concatenate([v[keep], np.where(from_u, -1, v[cut])]),
        "geometry": np.concatenate(
            [net.edge_geometry[edge[keep]], _substrings(net.edge_geometry[edge[cut]], lo, hi)]
        ),
    }


# --------------------------------------------------------------------------- plane graph


def line_vertices(lines: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All vertices, and the index of each line's first and last vertex."""
    coords, owner = shapely.get_coordinates(lines, return_index=True)
    nv = np.bincount(owner, minlength=len(lines))
    first = np.cumsum(nv) - nv
    return coords, first, first + nv - 1


#: Per network: which edges were tested for crossings and which cross (weak keys: no leak).
_CROSSING_CACHE: weakref.WeakKeyDictionary[Network, tuple[np.ndarray, np.ndarray]]
_CROSSING_CACHE = weakref.WeakKeyDictionary()


def crossing_edges(net: Network, edges: np.ndarray) -> np.ndarray:
    """Which ``edges`` touch another edge anywhere but at a shared node, or themselves.

    Such edges break the face walk, so they are buffered on their own. Straight edges are
    tested with numpy (within ``EPS_M`` counts as touching), polylines with GEOS predicates.
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
        coords, first, last = line_vertices(lines)
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
        pair_bad[i] = (cross * short <= EPS_M) & ((ua * ub).sum(axis=1) > 0)
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
    """Tell whether closed segments p1-p2 and q1-q2 cross or touch (within ``EPS_M``)."""

    def side(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        ab, ac = b - a, c - a
        dist = (ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0]) / np.hypot(ab[:, 0], ab[:, 1])
        return np.where(np.abs(dist) <= EPS_M, 0.0, np.sign(dist))

    def on(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        return ((c >= np.minimum(a, b) - EPS_M) & (c <= np.maximum(a, b) + EPS_M)).all(axis=1)

    o1, o2, o3, o4 = side(p1, p2, q1), side(p1, p2, q2), side(q1, q2, p1), side(q1, q2, p2)
    return (
        ((o1 * o2 < 0) & (o3 * o4 < 0))
        | ((o1 == 0) & on(p1, p2, q1))
        | ((o2 == 0) & on(p1, p2, q2))
        | ((o3 == 0) & on(q1, q2, p1))
        | ((o4 == 0) & on(q1, q2, p2))
    )


def face_walks(coords: np.ndarray, first: np.ndarray, last: np.ndarray, tail, head) -> Arrays:
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
    verts, vw = walk_vertices(first, last, seq, walk[seq])
    xy = coords[verts] - coords[verts].mean(axis=0)
    start = np.r_[True, vw[1:] != vw[:-1]]
    nxt_v = np.r_[np.arange(1, len(verts)), 0]
    nxt_v[np.r_[start[1:], True]] = np.flatnonzero(start)
    area = np.bincount(vw, xy[:, 0] * xy[nxt_v, 1] - xy[nxt_v, 0] * xy[:, 1], n_walk) / 2
    return {"walk": walk, "tail": he_tail, "spike": spike, "seq": seq, "first": seq[offset],
            "area_m2": area}  # fmt: skip


def walk_vertices(first, last, seq: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, ...]:
    """Vertex indices along consecutive half-edges ``seq`` (each without its end vertex)."""
    line, rev = seq >> 1, (seq & 1).astype(bool)
    cnt = last[line] - first[line]
    k = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    base = np.repeat(np.where(rev, last[line], first[line]), cnt)
    return base + np.where(np.repeat(rev, cnt), -k, k), np.repeat(label, cnt)


def walk_lines(coords, first, last, w: Arrays, seq: np.ndarray, label: np.ndarray):
    """One open LineString per run of ``label`` in ``seq`` (walks around dead-end trees).

    A run back to its start leaves out its last stretch, which it went along the other way
    before (or, for a nested component, its container covers): GEOS buffers a *closed* line
    that retraces itself as a ring, wrongly. Other runs (along a bridge) keep their end.
    """
    verts, vl = walk_vertices(first, last, seq, label)
    starts = np.flatnonzero(np.r_[True, label[1:] != label[:-1]])
    ends = np.r_[starts[1:], len(seq)] - 1
    open_ = w["tail"][seq[starts]] != w["tail"][seq[ends] ^ 1]
    tip = seq[ends[open_]]
    all_v = np.concatenate([verts, np.where(tip & 1, first[tip >> 1], last[tip >> 1])])
    all_l = np.concatenate([vl, label[ends[open_]]])
    o = np.argsort(all_l, kind="stable")
    idx = np.cumsum(np.r_[True, all_l[o][1:] != all_l[o][:-1]]) - 1
    return shapely.linestrings(coords[all_v[o]], indices=idx)


def member(values: np.ndarray, ids: np.ndarray, n: int) -> np.ndarray:
    mask = np.zeros(n, bool)
    mask[ids] = True
    return mask[values]


def face_rings(coords, first, last, w: Arrays, walks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rings of ``walks`` without their spikes, and the walk of each ring.

    Dead ends vanish; a walk split by bridges gives one ring per side (a face with holes).
    """
    he_tail, seq = w["tail"], w["seq"]
    sel = seq[member(w["walk"][seq], walks, len(w["area_m2"])) & ~w["spike"][seq >> 1]]
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
    verts, vl = walk_vertices(first, last, sel[ok], lab[ok])
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
            v, _ = walk_vertices(first, last, hs, np.zeros(len(hs), np.int64))
            if len(v) >= 3:
                rings.append(shapely.linearrings(coords[v]))
                owner.append(lab[idx[0]])
    return np.asarray(rings, dtype=object), np.asarray(owner, dtype=np.int64)

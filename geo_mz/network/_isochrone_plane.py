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


def reach_table(net: Network, t: np.ndarray, max_min: float, *, coords: bool = True) -> Arrays:
    """List the edges an arc with time left leads onto, for any budget up to ``max_min``.

    Per edge (sorted ``edge``): its nodes ``u``/``v`` and their times ``tu``/``tv``, the
    times ``tf``/``tb`` of its arcs from u and from v that leave a node reached before
    ``max_min`` (``inf`` if none) and ``length``; with ``coords`` also the edge's vertices
    ``xy`` (``vfirst``/``vlast`` per edge) and ``cum``, each vertex's distance along it.
    """
    f, ae, arc_t = net.arc_forward, net.arc_edge, net.arc_time_min
    live = np.flatnonzero(t[np.where(f, net.edge_u[ae], net.edge_v[ae])] < max_min)
    el, fl, arc_t = ae[live], f[live], arc_t[live]
    mark = np.zeros(net.n_edges, bool)
    mark[el] = True
    edge = np.flatnonzero(mark)
    pos = np.empty(net.n_edges, np.int64)
    pos[edge] = np.arange(len(edge))
    tf, tb = np.full(len(edge), np.inf), np.full(len(edge), np.inf)
    tf[pos[el[fl]]], tb[pos[el[~fl]]] = arc_t[fl], arc_t[~fl]
    u, v = net.edge_u[edge], net.edge_v[edge]
    tab = {"edge": edge, "u": u, "v": v, "tu": t[u], "tv": t[v], "tf": tf, "tb": tb,
           "length": net.edge_length_m[edge]}  # fmt: skip
    if coords:
        xy, owner = shapely.get_coordinates(net.edge_geometry[edge], return_index=True)
        n_v = np.bincount(owner, minlength=len(edge))
        vfirst = np.cumsum(n_v) - n_v
        seg = np.hypot(*np.diff(xy, axis=0).T)
        seg[owner[1:] != owner[:-1]] = 0.0
        cum = np.concatenate([[0.0], np.cumsum(seg)])[: len(xy)]
        cum -= cum[vfirst][owner]
        tab |= {"xy": xy, "vfirst": vfirst, "vlast": vfirst + n_v - 1, "cum": cum}
    return tab


def _fractions(tab: Arrays, max_min: float) -> tuple[np.ndarray, np.ndarray]:
    """Reached fraction of each edge of ``tab`` from u (forwards) and from v."""
    out = []
    for tt, arc_t in ((tab["tu"], tab["tf"]), (tab["tv"], tab["tb"])):
        with np.errstate(invalid="ignore"):
            frac = np.where(tt + arc_t <= max_min, 1.0, np.minimum((max_min - tt) / arc_t, 1.0))
        out.append(np.where(tt < max_min, frac, 0.0))
    return out[0], out[1]


def reached_pieces(
    net: Network,
    t: np.ndarray,
    max_min: float,
    group: np.ndarray,
    table: Arrays | None = None,
    *,
    lines: bool = True,
) -> Arrays:
    """Reached pieces: whole edges, edges split where two groups meet, cut partial edges.

    ``group`` labels nodes (0 everywhere when merged); ``table``: :func:`reach_table` for a
    budget >= ``max_min`` (made here if not given). Returns ``edge``, ``s0``/``s1`` (metres
    from u), ``group``, ``tail``/``head`` (node, -1 at a cut end) and, with ``lines``, the
    ``geometry`` (u -> v, GEOS); else the vertices: ``xy``, ``first``/``last`` per piece
    (numpy, from the table's vertices; points closer than ``EPS_M`` merged).
    """
    tab = reach_table(net, t, max_min, coords=not lines) if table is None else table
    a, b = _fractions(tab, max_min)
    row = np.flatnonzero((a > 0) | (b > 0))  # the rest works on these only
    a, b, tf, tb = a[row], b[row], tab["tf"][row], tab["tb"][row]
    u, v, length = tab["u"][row], tab["v"][row], tab["length"][row]
    gu, gv = group[u], group[v]
    whole = a + b >= 1.0
    split = whole & (a > 0) & (b > 0) & (gu != gv)  # per source: cut where times are equal
    keep, sp = np.flatnonzero(whole & ~split), np.flatnonzero(split)
    with np.errstate(invalid="ignore"):
        meet = (tab["tv"][row[sp]] - tab["tu"][row[sp]] + tb[sp]) / (tf[sp] + tb[sp])
    meet = np.clip(np.nan_to_num(meet, nan=0.5), 1.0 - b[sp], a[sp])
    fu, fv = np.flatnonzero(~whole & (a > 0)), np.flatnonzero(~whole & (b > 0))
    cut = np.concatenate([sp, sp, fu, fv])
    lo = np.concatenate([np.zeros(len(sp)), meet, np.zeros(len(fu)), 1.0 - b[fv]]) * length[cut]
    hi = np.concatenate([meet, np.ones(len(sp)), a[fu], np.ones(len(fv))]) * length[cut]
    from_u = np.repeat([True, False, True, False], [len(sp), len(sp), len(fu), len(fv)])
    edge = tab["edge"][row]
    out = {
        "edge": edge[np.concatenate([keep, cut])],
        "s0": np.concatenate([np.zeros(len(keep)), lo]),
        "s1": np.concatenate([length[keep], hi]),
        "group": np.concatenate(
            [np.where(a[keep] > 0, gu[keep], gv[keep]), np.where(from_u, gu[cut], gv[cut])]
        ),
        "tail": np.concatenate([u[keep], np.where(from_u, u[cut], -1)]),
        "head": np.concatenate([v[keep], np.where(from_u, -1, v[cut])]),
    }
    if lines:
        out["geometry"] = np.concatenate(
            [net.edge_geometry[edge[keep]], _substrings(net.edge_geometry[edge[cut]], lo, hi)]
        )
    else:
        out |= _piece_vertices(tab, np.concatenate([row[keep], row[cut]]), out["s0"], out["s1"])
    return out


def _piece_vertices(tab: Arrays, row: np.ndarray, s0: np.ndarray, s1: np.ndarray) -> Arrays:
    """Vertices of the parts ``s0 < s1`` (metres from u) of the table's edges ``row``.

    As :func:`_substrings` (ends exactly on the nodes within ``EPS_M``), in numpy; then
    vertices within ``EPS_M`` of the previous one are dropped (lines of 3+ vertices).
    """
    xy, cum, vf, vl = tab["xy"], tab["cum"], tab["vfirst"][row], tab["vlast"][row]
    length = cum[vl]
    head_on, tail_on = s0 <= EPS_M, s1 >= length - EPS_M
    lo, hi = vf + 1, vl - 1  # inner vertices kept: all of them for whole pieces
    bent = np.flatnonzero(~(head_on & tail_on) & (vl - vf > 1))
    if len(bent):  # parts of polylines: the inner vertices strictly between s0 and s1
        if "key" not in tab:  # a global increasing key: edge offset + distance along it
            base = np.zeros(len(tab["vfirst"]))
            base[1:] = np.cumsum(cum[tab["vlast"]] + 1.0)[:-1]
            tab["base"] = base
            tab["key"] = base[
                np.repeat(np.arange(len(base)), np.diff(np.r_[tab["vfirst"], len(xy)]))
            ]
            tab["key"] += cum
        key, base = tab["key"], tab["base"][row[bent]]
        lo, hi = lo.copy(), hi.copy()
        lo[bent] = np.maximum(np.searchsorted(key, base + s0[bent] + EPS_M, "right"), lo[bent])
        hi[bent] = np.minimum(np.searchsorted(key, base + s1[bent] - EPS_M, "left") - 1, hi[bent])
    n_in = np.maximum(hi - lo + 1, 0)
    size = n_in + 2
    start = np.cumsum(size) - size
    out = np.empty((int(size.sum()), 2))
    out[start], out[start + size - 1] = xy[vf], xy[vl]
    k = np.arange(int(n_in.sum())) - np.repeat(np.cumsum(n_in) - n_in, n_in)
    out[np.repeat(start + 1, n_in) + k] = xy[np.repeat(lo, n_in) + k]
    for on, s, pos in ((head_on, s0, start), (tail_on, s1, start + size - 1)):
        i = np.flatnonzero(~on)  # a cut end: on the segment that holds it
        j = vf[i]
        if len(bent):
            b = np.flatnonzero(vl[i] - vf[i] > 1)
            j = j.copy()
            j[b] = np.searchsorted(tab["key"], tab["base"][row[i[b]]] + s[i[b]], "right") - 1
            j = np.clip(j, vf[i], vl[i] - 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            f = np.nan_to_num((s[i] - cum[j]) / (cum[j + 1] - cum[j]))
        out[pos[i]] = xy[j] + (xy[j + 1] - xy[j]) * f[:, None]
    # repeated points (lines of 3+ vertices): drop one within EPS_M of the one before
    # (the one before instead at a line's end, so that its ends stay)
    long_ = np.flatnonzero(size > 2)
    if len(long_) == 0:
        return {"xy": out, "first": start, "last": start + 1}
    owner = np.repeat(np.arange(len(row)), size)
    close = np.zeros(len(out), bool)
    close[1:] = np.hypot(*np.diff(out, axis=0).T) <= EPS_M
    close[start] = False
    close &= size[owner] > 2
    end = start + size - 1
    at_end = end[close[end]]
    close[at_end] = False
    close[at_end - 1] = (at_end - 1) != start[owner[at_end]]
    keep = ~close
    n_keep = np.bincount(owner[keep], minlength=len(row))
    first = np.cumsum(n_keep) - n_keep
    return {"xy": out[keep], "first": first, "last": first + n_keep - 1}


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


def crossing_edges(net: Network, edges: np.ndarray, table: Arrays | None = None) -> np.ndarray:
    """Which ``edges`` touch another edge anywhere but at a shared node, or themselves.

    Such edges break the face walk, so they are buffered on their own. Straight edges are
    tested with numpy (within ``EPS_M`` counts as touching), polylines with GEOS predicates.
    Results are kept per network; a later call tests only new edges (against all tested).
    ``table``: a :func:`reach_table` with vertices, used when it holds exactly the edges to test.
    """
    n = net.n_edges
    checked, bad = _CROSSING_CACHE.get(net) or (np.zeros(n, bool), np.zeros(n, bool))
    new = edges[~checked[edges]]
    if len(new):
        checked = checked.copy()
        checked[new] = True
        pool = np.flatnonzero(checked)
        is_new = np.zeros(n, bool)
        is_new[new] = True
        fresh = is_new[pool]
        if table is not None and "xy" in table and np.array_equal(table["edge"], pool):
            coords, first, last = table["xy"], table["vfirst"], table["vlast"]
        else:
            coords, first, last = line_vertices(net.edge_geometry[pool])
        tail, head = net.edge_u[pool], net.edge_v[pool]
        poly = (last - first) > 1
        bad = bad.copy()
        bad[pool[poly & fresh]] = ~shapely.is_simple(net.edge_geometry[pool[poly & fresh]])
        box = np.concatenate(
            [np.minimum.reduceat(coords, first), np.maximum.reduceat(coords, first)], axis=1
        )
        left, right = _box_pairs(box + np.array([-EPS_M, -EPS_M, EPS_M, EPS_M]))
        keep = fresh[left] | fresh[right]  # each pair once, new edges against all tested
        left, right = left[keep], right[keep]
        ta, ha, tb, hb = tail[left], head[left], tail[right], head[right]
        t_sh, h_sh = (ta == tb) | (ta == hb), (ha == tb) | (ha == hb)
        n_sh = t_sh.astype(np.int8) + h_sh
        straight = ~(poly[left] | poly[right])
        pair_bad = straight & (n_sh == 2)  # two straight segments between the same nodes
        p0, p1 = coords[first], coords[last]
        dx, dy = (p1 - p0).T
        length, angle = np.hypot(dx, dy), np.arctan2(dy, dx)
        i = np.flatnonzero(straight & (n_sh == 1))  # bad if they leave the node the same way
        turn = angle[left[i]] - angle[right[i]]  # between the directions away from the node
        turn += np.where(t_sh[i], 0.0, np.pi) - np.where(
            (tb[i] == ta[i]) | (tb[i] == ha[i]), 0.0, np.pi
        )
        short = np.minimum(length[left[i]], length[right[i]])
        pair_bad[i] = (np.abs(np.sin(turn)) * short <= EPS_M) & (np.cos(turn) > 0)
        i = np.flatnonzero(straight & (n_sh == 0))  # no shared node: any contact is bad
        pair_bad[i] = _segments_touch(p0[left[i]], p1[left[i]], p0[right[i]], p1[right[i]])
        i = np.flatnonzero(~straight)  # polylines: contact only end to end at shared nodes
        ga, gb = net.edge_geometry[pool[left[i]]], net.edge_geometry[pool[right[i]]]
        pair_bad[i] = np.where(
            n_sh[i] == 0, shapely.intersects(ga, gb), ~shapely.relate_pattern(ga, gb, "FF*F0****")
        )
        bad[pool[left[pair_bad]]] = bad[pool[right[pair_bad]]] = True
        _CROSSING_CACHE[net] = (checked, bad)
    return bad[edges]


def _box_pairs(box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``i < j`` of boxes ``(x0, y0, x1, y1)`` that overlap or touch, each pair once.

    Grid hashing in numpy (an STRtree query returned each pair twice and took 3x as long on a
    street grid): boxes go into the square cells they cover (cells the median box size),
    pairs are formed within a cell and kept in the first cell both boxes cover. Boxes
    covering more than 16 cells are paired with all boxes by an STRtree.
    """
    n = len(box)
    if n < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    x0, y0, x1, y1 = (np.ascontiguousarray(box[:, k]) for k in range(4))
    cell = max(float(np.median(np.maximum(x1 - x0, y1 - y0))), EPS_M)
    ox, oy = x0.min(), y0.min()
    ix0, ix1 = ((x0 - ox) // cell).astype(np.int64), ((x1 - ox) // cell).astype(np.int64)
    iy0, iy1 = ((y0 - oy) // cell).astype(np.int64), ((y1 - oy) // cell).astype(np.int64)
    nx = ix1 - ix0 + 1
    cnt = nx * (iy1 - iy0 + 1)
    small = cnt <= 16
    sm = np.flatnonzero(small)
    cnt = cnt[sm]
    rep = np.repeat(sm, cnt)
    k = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    m = int(iy1.max()) + 1
    key = (ix0[rep] + k % nx[rep]) * m + iy0[rep] + k // nx[rep]
    o = np.argsort(key)
    key, line = key[o], rep[o]
    start = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    size = np.diff(np.r_[start, len(key)])
    c = np.repeat(start + size, size) - 1 - np.arange(len(key))  # later entries of the cell
    a = np.repeat(np.arange(len(key)), c)
    i, j = line[a], line[a + 1 + np.arange(len(a)) - np.repeat(np.cumsum(c) - c, c)]
    once = np.maximum(ix0[i], ix0[j]) * m + np.maximum(iy0[i], iy0[j]) == key[a]
    i, j = i[once], j[once]
    ok = (x0[i] <= x1[j]) & (x0[j] <= x1[i]) & (y0[i] <= y1[j]) & (y0[j] <= y1[i])
    i, j = i[ok], j[ok]
    big = np.flatnonzero(~small)
    if len(big):  # long lines: against every box
        q, t = shapely.STRtree(shapely.box(*box.T)).query(shapely.box(*box[big].T))
        q = big[q]
        keep = (q != t) & (small[t] | (q < t))
        i, j = np.concatenate([i, q[keep]]), np.concatenate([j, t[keep]])
    return np.minimum(i, j), np.maximum(i, j)


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
    c = coords[first[0]] if len(first) else np.zeros(2)  # a point near all: few lost digits
    a0, a1 = coords[first] - c, coords[last] - c
    d = np.empty((m2, 2))
    d[0::2] = a1 - a0  # straight lines; polylines below
    d[1::2] = a0 - a1
    bent = np.flatnonzero(last - first > 1)
    d[2 * bent] = coords[first[bent] + 1] - coords[first[bent]]
    d[2 * bent + 1] = coords[last[bent] - 1] - coords[last[bent]]
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
    act = np.flatnonzero(~is_start)
    act = act[~is_start[ptr[act]]]
    while len(act):  # Wyllie list ranking: log2(longest walk) rounds, on the unfinished only
        p = ptr[act]
        pp = ptr[p]
        rank[act] += rank[p]
        ptr[act] = pp
        act = act[~is_start[pp]]
    size = np.bincount(walk, minlength=n_walk)
    offset = np.cumsum(size) - size
    seq = np.empty(m2, np.int64)
    seq[offset[walk] + rank] = h
    # shoelace sum of each line, then per walk
    line_sum = a0[:, 0] * a1[:, 1] - a1[:, 0] * a0[:, 1]
    if len(bent):  # polylines: every segment
        cnt = last[bent] - first[bent]
        v = np.repeat(first[bent] - np.cumsum(cnt) + cnt, cnt) + np.arange(cnt.sum())
        a, b = coords[v] - c, coords[v + 1] - c
        line_sum[bent] = np.bincount(
            np.repeat(np.arange(len(bent)), cnt), a[:, 0] * b[:, 1] - b[:, 0] * a[:, 1], len(bent)
        )
    area = np.bincount(walk, np.repeat(line_sum, 2) * np.tile([1.0, -1.0], len(first)), n_walk) / 2
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


def face_rings(
    coords, first, last, w: Arrays, walks: np.ndarray, min_side: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rings of ``walks`` without their spikes, the walk of each ring, and which may be invalid.

    Dead ends vanish; a walk split by bridges gives one ring per side (a face with holes).
    A ring of lines that touch only at shared nodes is simple unless it passes a node twice
    (pinched); such rings and those chained across bridges are flagged ``maybe_invalid``.
    ``min_side``: leave out the simple rings whose bounding box is not wider than this.
    """
    he_tail, seq = w["tail"], w["seq"]
    sel = seq[member(w["walk"][seq], walks, len(w["area_m2"])) & ~w["spike"][seq >> 1]]
    if len(sel) == 0:
        return np.empty(0, dtype=object), np.empty(0, np.int64), np.empty(0, bool)
    lab, head = w["walk"][sel], he_tail[sel ^ 1]
    new_walk = np.r_[True, lab[1:] != lab[:-1]]
    run_start = new_walk | np.r_[True, he_tail[sel][1:] != head[:-1]]
    w_first = np.flatnonzero(new_walk)
    w_last = np.r_[w_first[1:], len(sel)] - 1
    simple = np.add.reduceat(run_start.astype(np.int64), w_first) == 1
    simple &= head[w_last] == he_tail[sel][w_first]
    ok = simple[np.cumsum(new_walk) - 1]
    # a node passed twice: sort (walk, node) pairs and look for neighbours that are equal
    key = np.sort(lab[ok] * (int(he_tail.max()) + 1) + he_tail[sel[ok]])
    twice = np.unique(key[1:][key[1:] == key[:-1]] // (int(he_tail.max()) + 1))
    verts, vl = walk_vertices(first, last, sel[ok], lab[ok])
    start = np.flatnonzero(np.r_[True, vl[1:] != vl[:-1]]) if len(vl) else np.empty(0, int)
    size = np.diff(np.r_[start, len(vl)])
    if min_side is not None and len(start):
        xy = coords[verts]
        span = np.maximum.reduceat(xy, start) - np.minimum.reduceat(xy, start)
        wide = span.min(axis=1) > min_side
        keep = np.repeat(wide, size)
        verts, vl, size = verts[keep], vl[keep], size[wide]
        start = np.cumsum(size) - size
    owner = vl[start]
    ring_arr = shapely.linearrings(coords[verts], indices=np.repeat(np.arange(len(start)), size))
    rings, owner, maybe = [ring_arr], [owner], [np.isin(owner, twice)]
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
                rings.append(np.array([shapely.linearrings(coords[v])], dtype=object))
                owner.append(np.array([lab[idx[0]]], np.int64))
                maybe.append(np.ones(1, bool))
    return np.concatenate(rings), np.concatenate(owner), np.concatenate(maybe)

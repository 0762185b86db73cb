"""Shortest-path forests on a CSR travel-time graph, repaired incrementally after closures.

:func:`grow` runs one multi-source Dijkstra (``scipy.sparse.csgraph.dijkstra``, ``min_only``)
with one *virtual node per source* whose single arc carries that source's offset (its own leg to
the network), exactly as :func:`geo_mz.network.multi_source_times` does, and keeps the result
as a :class:`Forest`: best time, predecessor and winning source of every node it *reached*.

Memory: a forest stores only its reached nodes (sorted int32 ids, float64 times, int32
predecessor positions, int32 sources: 20 bytes a node), not whole-graph arrays, because a
province audit keeps thousands of time-limited searches that each reach a small part of the
graph (one relief audit of 504k nodes x 100 stores: 1.16 GiB traced with whole-graph arrays,
59 MiB with these). Each search still needs csgraph's whole-graph output for a moment.

:func:`repair` updates a forest after arc weights only *increased* (road closures, slow-downs
from :func:`geo_mz.network.with_closures`), the decremental case of Ramalingam and Reps'
dynamic shortest paths:

1. :func:`changed_pairs` lists the arcs whose weight rose or that vanished (position by
   position in the rows that kept their arc count, by sorted keys in the few rows that lost
   arcs; linear numpy passes, no sorting of the whole graph). An arc that is not in the
   forest cannot matter: no time can shrink, and every tree path avoiding changed tree arcs
   keeps its length, so it stays optimal.
2. The *affected* set ``D`` is every forest descendant of the heads of changed tree arcs (one
   breadth-first search over the tree, stored as a CSR matrix, from a virtual root linked to
   those heads). Nodes outside ``D`` keep their time, predecessor and source.
3. Each ``d`` in ``D`` gets a seed: the best ``dist[x] + w'(x, d)`` over its in-arcs from
   reached nodes ``x`` outside ``D``, or its own source offset if ``d`` is a source node.
4. One Dijkstra on the subgraph induced by ``D`` plus a virtual root whose arcs carry these
   (absolute) seeds, under the same limit, gives the new times; predecessors are mapped back to
   global node ids and winning sources follow by pointer jumping up the new predecessors.

Why: a re-audit after one closure only touches the nodes whose fastest route used it, usually
a tiny part of a city, so the cost is that of ``D`` and its in-arcs plus a few linear numpy
passes over the arrays, instead of a full O(n log n) Dijkstra. Decreases or new arcs may
shorten routes anywhere, so :func:`repair` refuses them (use :func:`grow`).

Times are minutes; a forest is any valid shortest-path forest (ties go to either side).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order, dijkstra

__all__ = ["Forest", "changed_pairs", "grow", "path_to", "repair"]


@dataclass(frozen=True, eq=False)
class Forest:
    """A shortest-path forest from several sources (see the module docstring).

    Only the nodes the search *reached* are stored, in ascending order, each with its time,
    its predecessor (as a position in ``nodes``) and its winning source: 20 bytes per reached
    node, so a time-limited search costs memory in proportion to what it explored, not to the
    graph. Read times, sources and predecessors of any nodes with :meth:`time_at`,
    :meth:`source_at` and :meth:`pred_at`; :attr:`dist_min`, :attr:`pred` and :attr:`source`
    expand them to whole-graph arrays (a new ``(n,)`` array on every access).
    """

    sources: np.ndarray  #: (k,) int64 node indices of the sources
    offset_min: np.ndarray  #: (k,) float64 time added at each source (its own leg), >= 0
    limit_min: float  #: search limit used (inf = none)
    n_nodes: int  #: number of nodes of the graph
    nodes: np.ndarray  #: (m,) int32 reached nodes, ascending
    node_time_min: np.ndarray  #: (m,) float64 best time from any source of each reached node
    node_pred_pos: np.ndarray  #: (m,) int32 position in ``nodes`` of the predecessor; -1 = root
    node_source: np.ndarray  #: (m,) int32 index into ``sources`` of the winner

    @property
    def nbytes(self) -> int:
        """Bytes held by the per-node arrays (``nodes`` and the three arrays beside it)."""
        arrays = (self.nodes, self.node_time_min, self.node_pred_pos, self.node_source)
        return int(sum(a.nbytes for a in arrays))

    def positions(self, nodes: np.ndarray) -> np.ndarray:
        """Positions in ``nodes`` of the given node indices; -1 for unreached ones.

        Parameters
        ----------
        nodes
            Node indices in ``[0, n_nodes)``.

        Returns
        -------
        numpy.ndarray
            int64 positions, the shape of ``nodes``.
        """
        q = np.asarray(nodes)
        if len(self.nodes) == 0:
            return np.full(q.shape, -1, dtype=np.int64)
        inside = (q >= 0) & (q < self.n_nodes)
        q32 = np.where(inside, q, 0).astype(np.int32)  # same dtype: no copy of ``nodes``
        pos = np.minimum(np.searchsorted(self.nodes, q32), len(self.nodes) - 1)
        return np.where(inside & (self.nodes[pos] == q32), pos, -1).astype(np.int64)

    def time_at(self, nodes: np.ndarray) -> np.ndarray:
        """Best times (float64 minutes) of the given nodes; ``inf`` where unreached."""
        return _take(self.node_time_min, self.positions(nodes), np.inf, np.float64)

    def source_at(self, nodes: np.ndarray) -> np.ndarray:
        """Winning sources (int64 indices into ``sources``) of the given nodes; -1 if unreached."""
        return _take(self.node_source, self.positions(nodes), -1, np.int64)

    def pred_at(self, nodes: np.ndarray) -> np.ndarray:
        """Predecessor nodes (int64) of the given nodes; -1 for roots and unreached nodes."""
        pp = _take(self.node_pred_pos, self.positions(nodes), -1, np.int64)
        return _take(self.nodes, pp, -1, np.int64)

    @property
    def dist_min(self) -> np.ndarray:
        """(n,) float64 best time of every node; ``inf`` if unreached (built on each access)."""
        out = np.full(self.n_nodes, np.inf)
        out[self.nodes] = self.node_time_min
        return out

    @property
    def pred(self) -> np.ndarray:
        """(n,) int64 predecessor of every node; -1 for roots and unreached (built on access)."""
        out = np.full(self.n_nodes, -1, dtype=np.int64)
        pp = self.node_pred_pos
        out[self.nodes] = np.where(pp >= 0, self.nodes[np.maximum(pp, 0)], -1)
        return out

    @property
    def source(self) -> np.ndarray:
        """(n,) int64 winning source of every node; -1 if unreached (built on each access)."""
        out = np.full(self.n_nodes, -1, dtype=np.int64)
        out[self.nodes] = self.node_source
        return out


def _take(values: np.ndarray, pos: np.ndarray, fill: float, dtype: type) -> np.ndarray:
    """``values[pos]`` as ``dtype``, ``fill`` where ``pos < 0``."""
    out = np.full(pos.shape, fill, dtype=dtype)
    hit = pos >= 0
    out[hit] = values[pos[hit]]
    return out


def _compact(
    src: np.ndarray,
    off: np.ndarray,
    limit: float,
    dist: np.ndarray,
    pred: np.ndarray,
    win: np.ndarray | int,
    n: int,
    add_min: float = 0.0,
    win_base: int = 0,
) -> Forest:
    """Keep the reached nodes among the first ``n`` of a search's whole-graph output.

    ``dist`` are times (``add_min`` is added to them), ``pred`` predecessor nodes (negative
    or ``>= n``: entered from a source), ``win`` the winning source of each node (minus
    ``win_base``: the virtual source nodes' ids), or one source for all.
    """
    reached = np.flatnonzero(np.isfinite(dist[:n]))
    nodes = reached.astype(np.int32)
    p = np.asarray(pred[reached])
    root = (p < 0) | (p >= n)
    # Position of each reached node; only those entries are written (and read: every
    # predecessor is itself reached), so the rest of this whole-graph array is never touched.
    where = np.empty(n, dtype=np.int32)
    where[reached] = np.arange(len(reached), dtype=np.int32)
    pos = where[np.where(root, reached, p)]
    pos[root] = -1
    if isinstance(win, np.ndarray):
        source = (win[reached].astype(np.int64) - win_base).astype(np.int32)
    else:
        source = np.full(len(reached), win, dtype=np.int32)
    time = np.asarray(dist[reached], dtype=np.float64)
    if add_min:
        time += add_min
    return Forest(src, off, limit, n, nodes, time, pos, source)


def _as_csr(graph: sp.spmatrix | sp.sparray, name: str, check: bool = True) -> sp.csr_matrix:
    """Square float64 CSR view of ``graph``; reject non-sparse input, NaN or negative weights."""
    if not sp.issparse(graph):
        raise ValueError(f"`{name}` must be a scipy sparse matrix, got {type(graph).__name__}")
    g = graph.tocsr()
    if g.shape[0] != g.shape[1]:
        raise ValueError(f"`{name}` must be square, got shape {g.shape}")
    if g.dtype != np.float64:
        g = g.astype(np.float64)
    if check and not np.all(g.data >= 0):
        raise ValueError(f"`{name}` has NaN or negative weights; travel times must be >= 0")
    return g


#: Forests index nodes with int32 (as csgraph does).
_MAX_NODES = int(np.iinfo(np.int32).max)
_ONLY_UP = "repair handles only weight increases and closures; use grow on the new graph"
#: Up to this many rows whose arc count changed, diff the blocks between them as slices.
_MAX_BLOCKS = 1500


def _entries(g: sp.csr_matrix, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique ``tail * n + head`` keys of the finite arcs of ``g`` (of ``rows``), weights.

    Duplicate entries count as parallel arcs (the minimum wins, as in csgraph); ``inf`` entries
    count as absent.
    """
    n = g.shape[0]
    cnt = np.diff(g.indptr)
    if rows is None:
        tails, keys, w = np.repeat(np.arange(n), cnt), g.indices, g.data
    else:
        cnt = cnt[rows]
        pos = np.arange(cnt.sum()) + np.repeat(g.indptr[rows] - (np.cumsum(cnt) - cnt), cnt)
        tails, keys, w = np.repeat(rows, cnt), g.indices[pos], g.data[pos]
    keys = tails.astype(np.int64) * n + keys
    if not g.has_canonical_format:
        order = np.lexsort((w, keys))
        keys, w = keys[order], w[order]
        first = np.r_[True, keys[1:] != keys[:-1]]
        keys, w = keys[first], w[first]
    finite = np.isfinite(w)
    return keys[finite], w[finite]


def _merge(ko: np.ndarray, wo: np.ndarray, kn: np.ndarray, wn: np.ndarray) -> np.ndarray:
    """Keys of ``ko`` that vanished from or grew in ``kn`` (both sorted unique)."""
    pos = np.minimum(np.searchsorted(ko, kn), max(len(ko) - 1, 0))
    if len(kn) and (len(ko) == 0 or np.any(ko[pos] != kn)):
        raise ValueError(f"new_graph has arcs absent from old_graph; {_ONLY_UP}")
    if np.any(wn < wo[pos]):
        raise ValueError(f"some arc weights decreased in new_graph; {_ONLY_UP}")
    gone = np.ones(len(ko), dtype=bool)  # vanished, or kept with a larger weight
    gone[pos] = wn > wo[pos]
    return ko[gone]


def changed_pairs(
    old_graph: sp.csr_matrix, new_graph: sp.csr_matrix
) -> tuple[np.ndarray, np.ndarray]:
    """Arcs whose weight increased or vanished from ``old_graph`` to ``new_graph``.

    Parameters
    ----------
    old_graph, new_graph
        ``(n, n)`` sparse travel-time matrices (``inf`` entries count as absent).

    Returns
    -------
    tuple of numpy.ndarray
        ``(tails, heads)``, int64, sorted by tail then head.

    Raises
    ------
    ValueError
        On a shape mismatch, or if any weight decreased or an arc appeared (only increases are
        handled incrementally; use :func:`grow` on the new graph instead).
    """
    old, new = _as_csr(old_graph, "old_graph"), _as_csr(new_graph, "new_graph")
    if old.shape != new.shape:
        raise ValueError(f"graph shapes differ: old {old.shape}, new {new.shape}")
    return _changed(old, new)


def _grew(
    old: sp.csr_matrix, new: sp.csr_matrix, po: slice | np.ndarray, pn: slice | np.ndarray
) -> np.ndarray | None:
    """Keys of the arcs at old positions ``po`` (new ``pn``) that grew; None if columns differ."""
    if not np.array_equal(old.indices[po], new.indices[pn]):
        return None
    wo, wn = old.data[po], new.data[pn]
    if np.any(wn < wo):
        raise ValueError(f"some arc weights decreased in new_graph; {_ONLY_UP}")
    idx = np.flatnonzero(wn > wo)
    up = (po.start + idx if isinstance(po, slice) else po[idx]).astype(old.indptr.dtype)
    tails = np.searchsorted(old.indptr, up, side="right") - 1  # same dtypes: no haystack copy
    return tails.astype(np.int64) * old.shape[0] + old.indices[up]


def _changed(old: sp.csr_matrix, new: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """:func:`changed_pairs` of two validated CSR matrices of the same shape.

    Rows keeping their arc count sit at a constant shift between the two matrices in blocks
    between the few rows whose count changed (closures only remove entries), so they are
    compared position by position: as slices for a few blocks, else in one vectorised pass.
    Only the rows whose count changed, or non-canonical input, are diffed by sorted keys.
    """
    n = old.shape[0]
    cnt_o, cnt_n = np.diff(old.indptr), np.diff(new.indptr)
    odd = np.flatnonzero(cnt_o != cnt_n)
    hits: list[np.ndarray | None] = []
    if not (old.has_canonical_format and new.has_canonical_format):
        hits.append(None)
    elif len(odd) <= _MAX_BLOCKS:
        for a, b in zip(np.r_[0, odd + 1], np.r_[odd, n], strict=True):
            oa, ob, na = old.indptr[a], old.indptr[b], new.indptr[a]
            if a < b and oa < ob:
                hits.append(_grew(old, new, slice(oa, ob), slice(na, na + ob - oa)))
    else:
        jump = np.zeros(old.nnz + 1, dtype=np.int64)  # shift old -> new position after odd rows
        np.add.at(jump, old.indptr[odd + 1], cnt_n[odd] - cnt_o[odd])
        mark = np.zeros(old.nnz + 1, dtype=np.int64)  # entries of odd rows
        np.add.at(mark, old.indptr[odd], 1)
        np.add.at(mark, old.indptr[odd + 1], -1)
        po = np.flatnonzero(np.cumsum(mark[:-1]) == 0)
        hits.append(_grew(old, new, po, po + np.cumsum(jump[:-1])[po]))
    if any(h is None for h in hits):
        hit = _merge(*_entries(old), *_entries(new))
    else:
        hits.append(_merge(*_entries(old, odd), *_entries(new, odd)))
        hit = np.sort(np.concatenate(hits))
    return hit // n, hit % n


def grow(
    graph: sp.csr_matrix,
    sources: np.ndarray,
    offset_min: np.ndarray | None = None,
    *,
    limit_min: float = np.inf,
    check_weights: bool = True,
) -> Forest:
    """Shortest-path forest from several sources in one Dijkstra pass.

    Parameters
    ----------
    graph
        ``(n, n)`` sparse matrix of arc travel times in minutes (explicit zeros are arcs).
    sources
        ``(k,)`` node indices, k >= 1; several may share a node (the smaller offset wins).
    offset_min
        ``(k,)`` minutes added at each source, finite and >= 0 (default 0).
    limit_min
        Stop searching beyond this time; farther nodes are unreached (``inf``).
    check_weights
        Scan every arc for NaN or negative weights (an O(arcs) pass). Many time-limited
        searches on one graph already checked (a network's own graph) may skip it: the
        search itself then costs about what it explores, plus csgraph's setup.

    Returns
    -------
    Forest
        Times, predecessors and winning sources of the reached nodes.
    """
    g = _as_csr(graph, "graph", check_weights)
    n = g.shape[0]
    src = np.asarray(sources)
    if src.size and not np.issubdtype(src.dtype, np.integer):
        raise ValueError(f"`sources` must be integer node indices, got dtype {src.dtype}")
    src = src.astype(np.int64).ravel()
    k = len(src)
    if k == 0 or src.min() < 0 or src.max() >= n:
        raise ValueError(f"`sources` must be a non-empty array of node indices in [0, {n})")
    off = np.zeros(k) if offset_min is None else np.asarray(offset_min, np.float64).ravel()
    if off.shape != src.shape or not np.all(np.isfinite(off) & (off >= 0)):
        raise ValueError(f"`offset_min` must be {k} finite values >= 0")
    limit = float(limit_min)
    if not limit >= 0:
        raise ValueError(f"`limit_min` was {limit_min!r} but must be >= 0")
    if n > _MAX_NODES:
        raise ValueError(
            f"graph has {n} nodes; forests index nodes as int32 (at most {_MAX_NODES})"
        )
    if len(np.unique(src)) == 1:
        # One source node (the common case: one store per area): search from it directly and
        # add the offset, instead of copying the whole graph to append a virtual node.
        best = int(np.argmin(off))
        if limit < off[best]:
            return _compact(src, off, limit, np.full(0, np.inf), np.zeros(0, np.int64), best, n)
        dist, pred = dijkstra(
            g, indices=int(src[0]), return_predecessors=True, limit=max(limit - off[best], -0.0)
        )
        return _compact(src, off, limit, dist, pred, best, n, add_min=off[best])
    # Keep the index dtype of the graph (int32) so csgraph takes the copy as it is.
    idx = np.int32 if g.nnz + k <= _MAX_NODES and n + k <= _MAX_NODES else np.int64
    indptr = np.concatenate([g.indptr, g.indptr[-1] + np.arange(1, k + 1)]).astype(idx)
    aug = sp.csr_matrix(
        (np.concatenate([g.data, off]), np.concatenate([g.indices, src]).astype(idx), indptr),
        shape=(n + k, n + k),
    )
    dist, pred, win = dijkstra(
        aug, indices=np.arange(n, n + k), min_only=True, return_predecessors=True, limit=limit
    )
    del aug
    return _compact(src, off, limit, dist, pred, win, n, win_base=n)


def _descendants(forest: Forest, heads: np.ndarray) -> np.ndarray:
    """Positions of all forest descendants of the positions ``heads`` (included), by one BFS."""
    m = len(forest.nodes)
    child = np.flatnonzero(forest.node_pred_pos >= 0)
    rows = np.concatenate([forest.node_pred_pos[child], np.full(len(heads), m)])
    cols = np.concatenate([child, np.sort(heads)])
    tree = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(m + 1, m + 1))
    order = breadth_first_order(tree, m, directed=True, return_predecessors=False)
    return np.asarray(order[1:], dtype=np.int64)


def repair(
    forest: Forest,
    old_graph: sp.csr_matrix,
    new_graph: sp.csr_matrix,
    *,
    changed: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[Forest, np.ndarray]:
    """Update a forest grown on ``old_graph`` for ``new_graph`` (weights only increased).

    Parameters
    ----------
    forest
        Forest valid for ``old_graph`` (from :func:`grow` or an earlier :func:`repair`).
    old_graph, new_graph
        ``(n, n)`` travel-time matrices; ``new_graph`` may only have larger weights or missing
        arcs (e.g. :func:`geo_mz.network.with_closures` of the old network).
    changed
        ``changed_pairs(old_graph, new_graph)`` when already known: repairing many forests
        after one closure compares the graphs once, and a forest none of whose tree arcs
        changed then costs only a lookup of those pairs.

    Returns
    -------
    tuple
        The forest valid for ``new_graph`` (``forest`` itself if no tree arc changed) and the
        int64 nodes whose time changed (newly unreachable ones included).

    Raises
    ------
    ValueError
        On a shape mismatch, or if a weight decreased or an arc appeared (use :func:`grow`).
    """
    n = forest.n_nodes
    if changed is not None:
        tails, heads = (np.asarray(x, dtype=np.int64) for x in changed)
        if len(heads) == 0 or not np.any(forest.pred_at(heads) == tails):
            return forest, np.empty(0, dtype=np.int64)
    old, new = _as_csr(old_graph, "old_graph"), _as_csr(new_graph, "new_graph")
    if old.shape != (n, n) or new.shape != (n, n):
        raise ValueError(
            f"graph shapes old {old.shape}, new {new.shape} do not match the forest's {n} nodes"
        )
    if changed is None:
        tails, heads = _changed(old, new)
    heads = heads[forest.pred_at(heads) == tails]
    if len(heads) == 0:
        return forest, np.empty(0, dtype=np.int64)
    f = forest
    aff_pos = _descendants(f, f.positions(heads))  # positions in the forest's arrays
    aff = f.nodes[aff_pos].astype(np.int64)
    m = len(aff)
    loc = np.full(n, -1, dtype=np.int64)
    loc[aff] = np.arange(m)
    in_d = loc >= 0
    # In-arcs of D (scan of the head column of every arc; tails from indptr, sorted entries).
    ent = np.flatnonzero(in_d[new.indices]).astype(new.indptr.dtype)
    et = np.searchsorted(new.indptr, ent, side="right").astype(np.int64) - 1
    eh, ew = loc[new.indices[ent]], new.data[ent]
    inner = in_d[et]
    # Seeds: boundary arcs from reached nodes outside D, and the virtual arcs of sources in D.
    out_d = et[~inner]
    t_out = f.time_at(out_d)
    b = np.isfinite(t_out)
    eb = out_d[b]
    s_in = np.flatnonzero(in_d[f.sources])
    c_loc = np.concatenate([eh[~inner][b], loc[f.sources[s_in]]])
    c_val = np.concatenate([t_out[b] + ew[~inner][b], f.offset_min[s_in]])
    c_pred = np.concatenate([eb, np.full(len(s_in), -1)])
    c_src = np.concatenate([f.source_at(eb), s_in])
    order = np.lexsort((c_val, c_loc))
    first = order[np.r_[True, c_loc[order][1:] != c_loc[order][:-1]]] if len(order) else order
    first = first[np.isfinite(c_val[first])]
    seed_pred, seed_src = np.full((2, m), -1, dtype=np.int64)
    seed_pred[c_loc[first]], seed_src[c_loc[first]] = c_pred[first], c_src[first]
    # Subgraph induced by D plus a virtual root m carrying the seeds, as CSR (zeros kept).
    r = np.concatenate([loc[et[inner]], np.full(len(first), m)])
    c = np.concatenate([eh[inner], c_loc[first]])
    w = np.concatenate([ew[inner], c_val[first]])
    o = np.argsort(r, kind="stable")
    indptr = np.zeros(m + 2, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=m + 1), out=indptr[1:])
    sub = sp.csr_matrix((w[o], c[o], indptr), shape=(m + 1, m + 1))
    sd, sp_ = dijkstra(sub, indices=m, return_predecessors=True, limit=f.limit_min)
    sd, sp_ = np.asarray(sd[:m], np.float64), np.asarray(sp_[:m], np.int64)
    reached = np.isfinite(sd)
    inside = reached & (sp_ >= 0) & (sp_ < m)
    from_root = reached & (sp_ == m)
    new_pred = np.where(inside, aff[np.clip(sp_, 0, m - 1)], np.where(from_root, seed_pred, -1))
    # Winners: pointer jumping up the new predecessors until leaving D.
    up = np.where(inside, sp_, np.arange(m))
    while not np.array_equal(nxt := up[up], up):
        up = nxt
    new_src = np.where(reached, np.where(from_root, seed_src, -1)[up], -1)
    changed = np.sort(aff[sd != f.node_time_min[aff_pos]])
    return _replaced(f, aff_pos, sd, f.positions(new_pred), new_src), changed


def _replaced(
    f: Forest, at: np.ndarray, time: np.ndarray, pred_pos: np.ndarray, source: np.ndarray
) -> Forest:
    """``f`` with the entries at positions ``at`` replaced; those now unreached dropped.

    ``pred_pos`` are positions in ``f`` (-1 = root). A kept node never hangs on a dropped one
    (a dropped node's descendants were all in ``at``), so positions only shift down.
    """
    nodes, pos = f.nodes, f.node_pred_pos.copy()
    t2, s2 = f.node_time_min.copy(), f.node_source.copy()
    t2[at], pos[at], s2[at] = time, pred_pos, source
    gone = at[~np.isfinite(time)]
    if len(gone):
        keep = np.ones(len(nodes), dtype=bool)
        keep[gone] = False
        shift = np.cumsum(~keep)
        pos = np.where(pos >= 0, pos - shift[np.maximum(pos, 0)], -1)[keep].astype(np.int32)
        nodes, t2, s2 = nodes[keep], t2[keep], s2[keep]
    return Forest(f.sources, f.offset_min, f.limit_min, f.n_nodes, nodes, t2, pos, s2)


def path_to(forest: Forest, node: int) -> np.ndarray:
    """Node sequence from the winning source's node to ``node`` (empty if unreached).

    Parameters
    ----------
    forest
        The forest.
    node
        Target node index.

    Returns
    -------
    numpy.ndarray
        int64 nodes, source node first and ``node`` last.
    """
    n = forest.n_nodes
    v = int(node)
    if not 0 <= v < n:
        raise ValueError(f"`node` was {node!r} but must be in [0, {n})")
    p = int(forest.positions(np.array([v]))[0])
    up = forest.node_pred_pos
    out = []
    while p >= 0:
        out.append(p)
        p = int(up[p])
    return forest.nodes[out[::-1]].astype(np.int64)

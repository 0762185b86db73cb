"""Fast gazetteer search: the match tiers over an index's lookup tables, without pandas.

:func:`search_arrays` runs the tiers of :func:`geo_mz.names.search` (characters, Latin
names, pinyin, initials, fuzzy) on the tables of :mod:`geo_mz.names.index`, each tier
adding its best rows until ``limit`` is reached.  The tiers and the fuzzy tier's budget are
described in the module docstring of :mod:`geo_mz.names.gazetteer` (Search tiers, Speed).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np

from geo_mz.names.index import (
    LEVELS,
    PY_COL,
    GazetteerIndex,
    bigram_key,
    bisect_left,
    char_key,
    index_objects,
    index_tables,
    index_take,
    level_ranks,
    prefix_slice,
)
from geo_mz.names.pinyin import HAN, name_pinyin, toneless

__all__ = ["FUZZY_BUDGET", "FUZZY_CUTOFF", "FUZZY_SCORED", "clean_query", "search_arrays"]

#: Minimum rapidfuzz ``ratio`` (0-100) for a fuzzy hit.
FUZZY_CUTOFF: float = 60.0
#: Most names a fuzzy search collects as candidates (see :func:`search`, Notes).
FUZZY_BUDGET: int = 12_000
#: Most distinct names or readings a fuzzy search scores with rapidfuzz.
FUZZY_SCORED: int = 2_000

TIER = {
    "exact": 100.0,
    "prefix": 90.0,
    "contains": 80.0,
    "pinyin_exact": 70.0,
    "pinyin_syllable_prefix": 65.0,
    "pinyin_prefix": 60.0,
    "initials_exact": 55.0,
    "initials_prefix": 50.0,
}
FUZZY_SCALE = 0.45
OUT_COLUMNS = ["code", "name", "level", "full_name", "match", "score"]
#: Up to this many units in the search area the fuzzy tier scores every one of them.
_FUZZY_DIRECT_MAX = 5_000


def latin_query(query: str) -> str:
    """Normalise a Latin query: tones, tone digits, spaces and apostrophes removed."""
    q = toneless(query)
    return re.sub(r"[\s'’\-_1-5]", "", q)


def ends_on_syllable(syllables: str, n: int) -> bool:
    """Whether the first ``n`` letters of ``syllables`` (spaces not counted) end a syllable."""
    total = 0
    for syl in syllables.split(" "):
        total += len(syl)
        if total >= n:
            return total == n
    return False


def _rank_ranges(
    index: GazetteerIndex,
    t: dict[str, Any],
    code_prefix: str | None,
    levels: Sequence[str] | None,
) -> list[tuple[int, int]]:
    """Rank ranges (one per level at most) of the units a search may return."""
    wanted = range(len(LEVELS))
    if levels is not None:
        wanted = sorted(set(level_ranks(levels)))  # type: ignore[assignment]
    bounds = t["level_bounds"]
    sl = prefix_slice(index._raw("code"), code_prefix) if code_prefix else None
    out = []
    for lv in wanted:
        a, b = int(bounds[lv]), int(bounds[lv + 1])
        if sl is not None:
            block = t["by_rank"][a:b]  # code positions of this level, ascending
            a, b = (
                a + int(np.searchsorted(block, sl.start)),
                a + int(np.searchsorted(block, sl.stop)),
            )
        if a < b:
            out.append((a, b))
    return out


def _range_mask(ranks: np.ndarray, ranges: list[tuple[int, int]] | None) -> np.ndarray:
    """Which ranks fall in one of the ranges (all when ``ranges`` is None)."""
    if ranges is None:
        return np.ones(len(ranks), dtype=bool)
    mask = np.zeros(len(ranks), dtype=bool)
    for a, b in ranges:
        mask |= (ranks >= a) & (ranks < b)
    return mask


def _in_ranges(ranks: np.ndarray, ranges: list[tuple[int, int]] | None) -> np.ndarray:
    return ranks if ranges is None else ranks[_range_mask(ranks, ranges)]


def _slice_sorted(ranks: np.ndarray, ranges: list[tuple[int, int]] | None) -> np.ndarray:
    """Return the part of a sorted rank array inside the ranges (kept sorted)."""
    if ranges is None:
        return ranks
    parts = [ranks[np.searchsorted(ranks, a) : np.searchsorted(ranks, b)] for a, b in ranges]
    return np.concatenate(parts) if parts else ranks[:0]


class _Hits:
    """Results collected tier by tier, best first."""

    def __init__(self, limit: int) -> None:
        self.need = limit
        self.ranks: list[np.ndarray] = []
        self.scores: list[np.ndarray] = []
        self.matches: list[np.ndarray] = []
        self.seen = np.zeros(0, dtype=np.int64)

    def drop_seen(self, ranks: np.ndarray) -> np.ndarray:
        if len(self.seen) and len(ranks):
            return ranks[~np.isin(ranks, self.seen)]
        return ranks

    def add(self, ranks: np.ndarray, scores: np.ndarray | float, match: np.ndarray | str) -> None:
        """Add hits already in result order and free of seen ranks; keep what is needed."""
        ranks = ranks[: max(self.need, 0)]
        if len(ranks) == 0:
            return
        k = len(ranks)
        sc = scores[:k] if isinstance(scores, np.ndarray) else np.full(k, float(scores))
        mt = np.full(k, match, dtype=object) if isinstance(match, str) else match[:k]
        self.ranks.append(ranks.astype(np.int64))
        self.scores.append(np.asarray(sc, dtype=float))
        self.matches.append(mt)
        self.seen = np.concatenate([self.seen, ranks.astype(np.int64)])
        self.need -= k

    def take_best(
        self, ranks: np.ndarray, tier: np.ndarray, scores: np.ndarray, match: np.ndarray | str
    ) -> None:
        """Add the best of unordered hits: by ``tier`` (0 best), then rank."""
        if self.need <= 0 or len(ranks) == 0:
            return
        keep = ~np.isin(ranks, self.seen) if len(self.seen) else slice(None)
        ranks, tier, scores = ranks[keep], tier[keep], scores[keep]
        if isinstance(match, np.ndarray):
            match = match[keep]
        if len(ranks) > self.need:
            key = (tier.astype(np.int64) << 32) | ranks.astype(np.int64)
            part = np.argpartition(key, self.need - 1)[: self.need]
            order = part[np.argsort(key[part], kind="stable")]
        else:
            order = np.lexsort((ranks, tier))
        self.add(
            ranks[order],
            scores[order],
            match[order] if isinstance(match, np.ndarray) else match,
        )


def _key_range(keys: Any, prefix: str) -> tuple[int, int]:
    return bisect_left(keys, prefix), bisect_left(keys, prefix + "\U0010ffff")


def _tier_characters(t: dict[str, Any], q: str, hits: _Hits, ranges: Any) -> None:
    """Add the exact, prefix and contains tiers of a query with Han characters."""
    a, b = _key_range(t["nm_key"], q)
    off, items = t["nm_off"], t["nm_items"]
    if a < b and t["nm_key"][a] == q:
        hits.add(_slice_sorted(items[off[a] : off[a + 1]], ranges), TIER["exact"], "exact")
        a += 1
    if hits.need <= 0:
        return
    if a < b:
        pre = hits.drop_seen(_in_ranges(items[off[a] : off[b]], ranges))
        hits.add(np.sort(pre), TIER["prefix"], "prefix")
    if hits.need <= 0:
        return
    # contains: scan the rarest character pair's postings in rank order, checking each name
    keys, poff, pitems = t["post_key"], t["post_off"], t["post_items"]
    if len(q) == 1:
        wanted = [char_key(q)]
    else:
        wanted = [bigram_key(q[i], q[i + 1]) for i in range(len(q) - 1)]
    lists = []
    for key in wanted:
        i = int(np.searchsorted(keys, key))
        if i >= len(keys) or keys[i] != key:
            return  # a pair of the query occurs in no name
        lists.append((int(poff[i + 1] - poff[i]), i))
    _, i = min(lists)
    cand = _slice_sorted(pitems[poff[i] : poff[i + 1]], ranges)
    name_r = t["name_r"]
    verify = len(q) > 2
    found: list[np.ndarray] = []
    need = hits.need
    step = 512
    start = 0
    while start < len(cand) and need > 0:
        chunk = hits.drop_seen(cand[start : start + step])
        start += step
        step = min(step * 4, 65_536)
        if verify and len(chunk):
            ok = np.fromiter((q in s for s in index_take(name_r, chunk)), bool, count=len(chunk))
            chunk = chunk[ok]
        found.append(chunk[:need])
        need -= len(found[-1])
    if found:
        hits.add(np.concatenate(found), TIER["contains"], "contains")


def _tier_latin_names(t: dict[str, Any], query: str, hits: _Hits, ranges: Any) -> None:
    """Add the exact and contains tiers of a Latin query (names with non-Han characters)."""
    low = query.lower()
    ranks, tiers = [], []
    for r, s in zip(t["latin_r"].tolist(), t["latin_low"], strict=True):
        if low in s:
            ranks.append(r)
            tiers.append(0 if s == low else 1)
    if not ranks:
        return
    r_arr = np.array(ranks, dtype=np.int64)
    tier = np.array(tiers, dtype=np.int64)
    keep = _range_mask(r_arr, ranges)
    r_arr, tier = r_arr[keep], tier[keep]
    scores = np.where(tier == 0, TIER["exact"], TIER["contains"])
    match = np.where(tier == 0, "exact", "contains").astype(object)
    hits.take_best(r_arr, tier, scores, match)


def _tier_pinyin(t: dict[str, Any], qpy: str, index: GazetteerIndex, hits: _Hits, ranges: Any):
    """Add the pinyin tiers: same reading (70), prefix on a syllable end (65), other prefix (60)."""
    a, b = _key_range(t["py_key"], qpy)
    if a >= b:
        return
    n = len(qpy)
    g = np.arange(a, b)
    if n <= 64:
        bound = ((t["py_ends"][g] >> np.uint64(n - 1)) & np.uint64(1)).astype(bool)
    else:
        bound = np.zeros(len(g), dtype=bool)
    long_ = np.flatnonzero(t["py_long"][g])
    if n > 64 and len(long_):
        first = t["by_rank"][t["py_items"][t["py_off"][g[long_]]]]
        syl = index_take(index._raw("syllables"), first)
        bound[long_] = [ends_on_syllable(s, n) for s in syl]
    tier = np.where(t["py_len"][g] == n, 0, np.where(bound, 1, 2))
    off = t["py_off"]
    items = t["py_items"][off[a] : off[b]].astype(np.int64)
    item_tier = np.repeat(tier, np.diff(off[a : b + 1]))
    if ranges is not None:
        keep = _range_mask(items, ranges)
        items, item_tier = items[keep], item_tier[keep]
    scores = np.array(
        [TIER["pinyin_exact"], TIER["pinyin_syllable_prefix"], TIER["pinyin_prefix"]]
    )[item_tier]
    hits.take_best(items, item_tier, scores, "pinyin")


def _tier_initials(t: dict[str, Any], qpy: str, hits: _Hits, ranges: Any) -> None:
    """Add the initials tiers: equal (55), prefix (50)."""
    a, b = _key_range(t["ini_key"], qpy)
    if a >= b:
        return
    g = np.arange(a, b)
    tier = np.where(t["ini_len"][g] == len(qpy), 0, 1)
    off = t["ini_off"]
    items = t["ini_items"][off[a] : off[b]].astype(np.int64)
    item_tier = np.repeat(tier, np.diff(off[a : b + 1]))
    if ranges is not None:
        keep = _range_mask(items, ranges)
        items, item_tier = items[keep], item_tier[keep]
    scores = np.where(item_tier == 0, TIER["initials_exact"], TIER["initials_prefix"])
    hits.take_best(items, item_tier, scores.astype(float), "initials")


def _fuzzy_scores(target: str, choices: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Indexes and rapidfuzz ``ratio`` of the choices that reach :data:`FUZZY_CUTOFF`."""
    from rapidfuzz import fuzz, process

    if not choices:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    res = process.extract(target, choices, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF, limit=None)
    idx = np.array([h[2] for h in res], dtype=np.int64)
    return idx, np.array([h[1] for h in res], dtype=float)


def _length_window(n: int, lengths: np.ndarray) -> np.ndarray:
    """Lengths for which ``ratio`` can reach the cutoff at all (2·min/(n+m) ≥ cutoff)."""
    c = FUZZY_CUTOFF / 100.0
    return (2 * np.minimum(lengths, n) + 1e-9 >= c * (lengths + n)) & (lengths > 0)


def _char_posts(t: dict[str, Any], target: str) -> list[tuple[int, int, np.ndarray]]:
    """(size, count in query, postings) of the query's characters that occur, rarest first."""
    keys, poff, pitems = t["post_key"], t["post_off"], t["post_items"]
    weights: dict[str, int] = {}
    for ch in target:
        weights[ch] = weights.get(ch, 0) + 1
    posts = []
    for ch, w in weights.items():
        i = int(np.searchsorted(keys, char_key(ch)))
        if i < len(keys) and keys[i] == char_key(ch):
            posts.append((int(poff[i + 1] - poff[i]), w, pitems[poff[i] : poff[i + 1]]))
    posts.sort(key=lambda p: p[0])
    return posts


def _fuzzy_han(
    t: dict[str, Any], target: str, hits: _Hits, ranges: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Fuzzy candidates of a Han query over the whole set, and their scores.

    A name can only reach the cutoff if its longest common subsequence with the query is at
    least ``c/2 * (n + m)`` (``n``, ``m`` the lengths), and that is at most the summed
    query-counts of the query characters it contains.  So, per name length ``m``, the most
    common query characters whose counts add up to less than that bound can be ignored when
    collecting candidates (prefix filtering); where the postings of the rest are longer than
    the list of all names of length ``m``, that list is scanned instead.  When even that
    exceeds :data:`FUZZY_BUDGET` names (queries made of common characters only, such as a full
    ``…村村民委员会`` name), only the names sharing the query's rarer characters (within the
    budget) are collected.
    """
    c = FUZZY_CUTOFF / 100.0
    n = len(target)
    posts = _char_posts(t, target)
    empty = np.zeros(0, dtype=np.int64), np.zeros(0)
    if not posts:
        return empty
    len_off = t["len_off"]
    max_len = len(len_off) - 2
    window = np.arange(1, min(max_len, int(n * (2 - c) / c) + 1) + 1)
    window = window[_length_window(n, window)]
    by_keep: dict[int, list[int]] = {}
    for m in window.tolist():
        need = c / 2 * (n + m)
        dropped, keep_n = 0.0, len(posts)
        while keep_n > 1 and dropped + posts[keep_n - 1][1] < need - 1e-9:
            dropped += posts[keep_n - 1][1]
            keep_n -= 1
        by_keep.setdefault(keep_n, []).append(m)
    plan = []
    for keep_n, ms in by_keep.items():
        from_posts = sum(p[0] for p in posts[:keep_n])
        from_lengths = sum(int(len_off[m + 1] - len_off[m]) for m in ms)
        plan.append((keep_n, ms, from_posts <= from_lengths, min(from_posts, from_lengths)))
    if sum(p[3] for p in plan) > FUZZY_BUDGET:
        # too common to be exhaustive: the names sharing the rarer characters, within budget
        keep_n, total = 0, 0
        while keep_n < len(posts) and (keep_n == 0 or total + posts[keep_n][0] <= FUZZY_BUDGET):
            total += posts[keep_n][0]
            keep_n += 1
        plan = [(keep_n, window.tolist(), True, total)]
    parts = []
    for keep_n, ms, use_posts, _ in plan:
        if use_posts:
            cand = np.unique(np.concatenate([p[2] for p in posts[:keep_n]])).astype(np.int64)
            cand = cand[np.isin(t["len_r"][cand], ms)]
        else:
            cand = np.concatenate([t["by_len"][len_off[m] : len_off[m + 1]] for m in ms])
        parts.append(cand.astype(np.int64))
    cand = np.unique(np.concatenate(parts)) if len(parts) > 1 else np.sort(parts[0])
    cand = hits.drop_seen(_in_ranges(cand, ranges))
    bound = np.zeros(len(cand))
    for _, w, arr in posts:
        if len(cand) == 0:
            break
        j = np.searchsorted(arr, cand).clip(max=len(arr) - 1)
        bound += w * (arr[j] == cand)
    lens = t["len_r"][cand].astype(float)
    keep = bound + 1e-9 >= c / 2 * (lens + n)
    cand, bound, lens = cand[keep], bound[keep], lens[keep]
    if len(cand) == 0:
        return empty
    ids, inverse = np.unique(t["nm_of_rank"][cand], return_inverse=True)
    if len(ids) > FUZZY_SCORED:
        # score the names with the best upper bounds only
        upper = np.zeros(len(ids))
        np.maximum.at(upper, inverse, np.minimum(bound, np.minimum(lens, n)) / (lens + n))
        top = np.argpartition(-upper, FUZZY_SCORED - 1)[:FUZZY_SCORED]
        chosen = np.zeros(len(ids), dtype=bool)
        chosen[top] = True
        keep = chosen[inverse]
        cand = cand[keep]
        ids, inverse = np.unique(t["nm_of_rank"][cand], return_inverse=True)
    idx, sc = _fuzzy_scores(target, index_take(t["nm_key"], ids))
    score_of = np.full(len(ids), -1.0)
    score_of[idx] = sc
    item_sc = score_of[inverse]
    hit = item_sc >= 0
    return cand[hit], item_sc[hit]


def _fuzzy_pinyin(
    t: dict[str, Any], target: str, hits: _Hits, ranges: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Fuzzy candidates of a Latin query (spaceless pinyin of every distinct reading).

    A letter-count bound on the longest common subsequence prunes the readings that cannot
    reach the cutoff; of the rest, the :data:`FUZZY_SCORED` with the best bound are scored.
    """
    c = FUZZY_CUTOFF / 100.0
    n = len(target)
    if ranges is None or sum(hi - lo for lo, hi in ranges) > t["n"] // 4:
        sub = None
        lens = t["pyd_len"]
    else:  # only the readings of units in the search area
        allowed = np.concatenate([np.arange(a, b) for a, b in ranges])
        sub = np.unique(t["pyd_of_rank"][allowed])
        lens = t["pyd_len"][sub]
    bound = np.zeros(len(lens), dtype=np.int32)
    counts: dict[int, int] = {}
    for ch in target:
        col = int(PY_COL[ord(ch)]) if ord(ch) < 256 else -1
        if col >= 0:
            counts[col] = counts.get(col, 0) + 1
    for col, w in counts.items():
        column = t["pyd_counts"][col]
        bound += np.minimum(column if sub is None else column[sub], w)
    ok = _length_window(n, lens) & (bound + 1e-9 >= c / 2 * (lens + n))
    keys = np.flatnonzero(ok)
    if len(keys) > FUZZY_SCORED:
        upper = np.minimum(bound[keys], np.minimum(lens[keys], n)) / (lens[keys] + n)
        keys = np.sort(keys[np.argpartition(-upper, FUZZY_SCORED - 1)[:FUZZY_SCORED]])
    if sub is not None:
        keys = sub[keys]
    idx, sc = _fuzzy_scores(target, index_take(t["pyd_key"], keys))
    keys, pyd_g, off = keys[idx], t["pyd_g"], t["py_off"]
    lo, hi = off[pyd_g[keys]], off[pyd_g[keys + 1]]
    sizes = (hi - lo).astype(np.int64)
    if sizes.sum() == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    starts = np.repeat(lo - np.cumsum(sizes) + sizes, sizes)
    pos = starts + np.arange(int(sizes.sum()))
    ranks = t["py_items"][pos].astype(np.int64)
    sc = np.repeat(sc, sizes)
    keep = _range_mask(ranks, ranges)
    if len(hits.seen):
        keep &= ~np.isin(ranks, hits.seen)
    return ranks[keep], sc[keep]


def _tier_fuzzy(
    t: dict[str, Any], target: str, is_han: bool, hits: _Hits, ranges: Any, allowed: int
) -> None:
    """Add the fuzzy tier: names (Han query) or spaceless pinyin (Latin query)."""
    if not target:
        return
    if allowed <= _FUZZY_DIRECT_MAX:
        # few candidates: score every allowed unit's string
        if ranges is None:
            cand = np.arange(t["n"], dtype=np.int64)
        else:
            cand = np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in ranges])
        cand = hits.drop_seen(cand)
        idx, sc = _fuzzy_scores(target, index_take(t["name_r"] if is_han else t["pinyin_r"], cand))
        ranks = cand[idx]
    elif is_han:
        ranks, sc = _fuzzy_han(t, target, hits, ranges)
    else:
        ranks, sc = _fuzzy_pinyin(t, target, hits, ranges)
    if len(ranks) == 0:
        return
    order = np.lexsort((ranks, -sc))[: hits.need]
    hits.add(ranks[order], sc[order] * FUZZY_SCALE, "fuzzy")


def clean_query(query: str, limit: int) -> str:
    """Return a search's query NFKC-folded and stripped (full-width ０ is 0).

    Raises
    ------
    ValueError
        If ``limit`` is negative.
    """
    if limit < 0:
        raise ValueError("limit must be >= 0")
    return unicodedata.normalize("NFKC", query).strip()


def search_arrays(
    index: GazetteerIndex,
    query: str,
    *,
    code_prefix: str | None = None,
    levels: Sequence[str] | None = None,
    limit: int = 20,
    fuzzy: bool = True,
) -> dict[str, np.ndarray]:
    """:func:`search` without pandas: the same result as a dict of column arrays.

    Parameters
    ----------
    index, query, code_prefix, levels, limit, fuzzy
        As for :func:`search`.

    Returns
    -------
    dict of str to numpy.ndarray
        Keys ``code``, ``name``, ``level``, ``full_name``, ``match`` and ``score``.

    Raises
    ------
    ValueError
        If ``levels`` names an unknown level or ``limit`` is negative.
    """
    query = clean_query(query, limit)
    empty = {c: np.zeros(0, dtype=float if c == "score" else object) for c in OUT_COLUMNS}
    if not query or limit == 0 or len(index) == 0:
        return empty
    t = index_tables(index)
    if levels is None and not code_prefix:
        ranges = None
        allowed = len(index)
    else:
        ranges = _rank_ranges(index, t, code_prefix, levels)
        allowed = sum(b - a for a, b in ranges)
        if allowed == 0:
            return empty

    hits = _Hits(limit)
    is_han = bool(HAN.search(query))
    if is_han:
        _tier_characters(t, query, hits, ranges)
        qpy = name_pinyin(query).replace(" ", "") if hits.need > 0 else ""
    else:
        qpy = latin_query(query)
        _tier_latin_names(t, query, hits, ranges)
    if qpy and hits.need > 0:
        _tier_pinyin(t, qpy, index, hits, ranges)
        if not is_han and hits.need > 0:
            _tier_initials(t, qpy, hits, ranges)
    if fuzzy and hits.need > 0:
        _tier_fuzzy(t, query if is_han else qpy, is_han, hits, ranges, allowed)

    if not hits.ranks:
        return empty
    ranks = np.concatenate(hits.ranks)
    sel = t["by_rank"][ranks].astype(np.int64)
    return {
        "code": index_objects(index_take(index._raw("code"), sel)),
        "name": index_objects(index_take(index._raw("name"), sel)),
        "level": index_objects([LEVELS[r] for r in index.level_rank[sel].tolist()]),
        "full_name": index_objects(index_take(index._raw("full_name"), sel)),
        "match": np.concatenate(hits.matches).astype(object),
        "score": np.round(np.concatenate(hits.scores), 2),
    }

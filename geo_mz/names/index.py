"""The gazetteer's search index: columns sorted by code, and the lookup tables of search.

:class:`GazetteerIndex` holds the columns as object arrays, or packed in one UTF-8 buffer
(:class:`StringTable`, memory-mapped from the cache) that is decoded only where read.
:func:`index_tables` builds the integer lookup tables of :func:`geo_mz.names.search` (sorted
keys, posting lists of characters and character pairs) on first use; :func:`index_frame` and
:func:`subtree` turn an index back into a table.  Searching is in :mod:`geo_mz.names.search_tiers`,
the on-disk cache in :mod:`geo_mz.names.cache`.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pandas is imported where it is used: `geo-mz names search` does without it
    import pandas as pd

__all__ = ["LEVELS", "GazetteerIndex", "build_index", "index_frame", "level_ranks", "subtree"]

#: Levels from highest to lowest; the position is the tie-break rank.
LEVELS: tuple[str, ...] = ("province", "city", "county", "town", "village")


def level_ranks(levels: Sequence[str]) -> list[int]:
    """Return the rank (position in :data:`LEVELS`) of each of ``levels``.

    Raises
    ------
    ValueError
        If a level is not one of :data:`LEVELS`.
    """
    unknown = set(levels) - set(LEVELS)
    if unknown:
        raise ValueError(f"unknown levels {sorted(unknown)}; use {LEVELS}")
    return [LEVELS.index(lv) for lv in levels]


class StringTable:
    """UTF-8 strings packed in one buffer: random access without building every ``str``.

    ``buf`` holds the strings each followed by a newline; ``off[i]`` is where string ``i``
    starts (``off[-1]`` is the end).  The arrays may be memory-mapped from the cache.
    """

    def __init__(self, buf: np.ndarray, off: np.ndarray, *, has_newline: bool = False) -> None:
        self.buf = buf
        self.off = off
        self.has_newline = has_newline
        self._mv = memoryview(buf).cast("B") if len(buf) else memoryview(b"")
        self._array: np.ndarray | None = None

    @classmethod
    def pack(cls, values: Sequence[str]) -> StringTable:
        """Pack strings into one buffer."""
        items = [str(v) for v in values]
        data = [v.encode("utf-8", "surrogatepass") + b"\n" for v in items]
        lengths = np.fromiter((len(d) for d in data), dtype=np.int64, count=len(data))
        off = np.zeros(len(data) + 1, dtype=np.int64)
        np.cumsum(lengths, out=off[1:])
        if off[-1] < 2**31:
            off = off.astype(np.int32)
        buf = np.frombuffer(b"".join(data), dtype=np.uint8)
        return cls(buf, off, has_newline=any("\n" in v for v in items))

    def __len__(self) -> int:
        return len(self.off) - 1

    def __getitem__(self, i: int) -> str:
        return str(self._mv[self.off[i] : self.off[i + 1] - 1], "utf-8", "surrogatepass")

    def take(self, idx: np.ndarray) -> list[str]:
        """Decode the strings at positions ``idx`` (all of them once many are asked for)."""
        idx = np.asarray(idx, dtype=np.int64)
        if self._array is None and len(idx) > max(_BULK_TAKE, len(self) // 100):
            self.materialize()
        if self._array is not None:
            return self._array[idx].tolist()
        mv = self._mv
        return [
            str(mv[a : b - 1], "utf-8", "surrogatepass")
            for a, b in zip(self.off[idx].tolist(), self.off[idx + 1].tolist(), strict=True)
        ]

    def materialize(self) -> np.ndarray:
        """Decode every string into an object array (kept for later calls)."""
        if self._array is not None:
            return self._array
        if self.has_newline:
            items = self.take(np.arange(len(self)))
        else:
            text = str(self._mv, "utf-8", "surrogatepass")
            items = text.split("\n")[:-1] if text else []
        out = np.empty(len(items), dtype=object)
        out[:] = items
        self._array = out
        return out


class _View:
    """Strings of a :class:`StringTable` (or object array) in another order: ``base[idx[i]]``."""

    def __init__(self, base: StringTable | np.ndarray, idx: np.ndarray) -> None:
        self.base = base
        self.idx = np.asarray(idx, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, i: int) -> str:
        return str(self.base[int(self.idx[i])])

    def take(self, j: np.ndarray) -> list[str]:
        """Decode the strings at positions ``j`` of the view."""
        return index_take(self.base, self.idx[np.asarray(j, dtype=np.int64)])


def index_take(col: Any, idx: np.ndarray) -> list[str]:
    """Strings of an object array, :class:`StringTable` or :class:`_View` at ``idx``."""
    if isinstance(col, np.ndarray):
        return col[np.asarray(idx, dtype=np.int64)].tolist()
    return col.take(idx)


def bisect_left(keys: Any, q: str) -> int:
    if isinstance(keys, np.ndarray):
        return int(np.searchsorted(keys, q, side="left"))
    return bisect.bisect_left(keys, q)


#: A take of more strings than this decodes the whole packed column once.
_BULK_TAKE = 50_000


def _column(name: str, doc: str) -> property:
    def get(self: GazetteerIndex) -> np.ndarray:
        value = self._data[name]
        if not isinstance(value, np.ndarray):
            value = self._data[name] = value.materialize()
        return value

    return property(get, doc=doc)


class GazetteerIndex:
    """Column arrays of a gazetteer, sorted by code, for :func:`search`.

    Attributes
    ----------
    code, name, full_name, level : numpy.ndarray
        Object arrays, sorted lexicographically by ``code`` so that a code prefix is a slice.
    level_rank : numpy.ndarray
        Position of ``level`` in :data:`LEVELS` (0 = province).
    pinyin : numpy.ndarray
        Tone-less pinyin with the spaces removed (``"tangxiazhen"``).
    syllables : numpy.ndarray
        Tone-less pinyin with spaces (``"tang xia zhen"``), to tell syllable boundaries.
    initials : numpy.ndarray
        First letters of the syllables (``"txz"``).

    Notes
    -----
    :func:`search` keeps its lookup tables (sorted keys, posting lists) in a private dictionary
    beside these arrays; they are built on the first search, or read from the cache by
    :func:`load_index`.  An index read from the cache keeps its strings packed (memory-mapped)
    and builds an array only when the attribute is first read, so that a search costs no more
    than decoding its result rows.  :attr:`origin` tells where the index came from.
    """

    def __init__(
        self,
        code: Any,
        name: Any,
        full_name: Any,
        level: Any,
        level_rank: np.ndarray,
        pinyin: Any,
        syllables: Any,
        initials: Any,
    ) -> None:
        self._data: dict[str, Any] = {
            "code": code,
            "name": name,
            "full_name": full_name,
            "level": level,
            "level_rank": level_rank,
            "pinyin": pinyin,
            "syllables": syllables,
            "initials": initials,
        }
        self._aux: dict[str, Any] = {}

    code = _column("code", "Codes (object array, sorted).")
    name = _column("name", "Names (object array).")
    full_name = _column("full_name", "Names from province down to the unit, space-separated.")
    level = _column("level", "Level names (object array, one of :data:`LEVELS`).")
    level_rank = _column("level_rank", "Position of the level in :data:`LEVELS` (int8).")
    pinyin = _column("pinyin", "Tone-less pinyin without spaces.")
    syllables = _column("syllables", "Tone-less pinyin with spaces between syllables.")
    initials = _column("initials", "First letters of the syllables.")

    def __len__(self) -> int:
        return len(self._data["level_rank"])

    def __repr__(self) -> str:
        return f"GazetteerIndex({len(self)} units)"

    def _raw(self, name: str) -> Any:
        """Return a column as stored: an object array or packed :class:`StringTable`."""
        return self._data[name]

    @property
    def origin(self) -> dict[str, Any]:
        """How :func:`load_index` got this index.

        Returns
        -------
        dict
            ``from_cache`` (bool), ``cache_path`` (str or None), ``key`` (the cache key) and
            ``seconds`` (time to load or build); empty for an index from :func:`build_index`.
        """
        return dict(self._aux.get("origin", {}))


def build_index(gaz: pd.DataFrame) -> GazetteerIndex:
    """Build the search index of a gazetteer.

    Parameters
    ----------
    gaz : pandas.DataFrame
        The table from :func:`load_gazetteer`.

    Returns
    -------
    GazetteerIndex
        Arrays sorted by code.
    """
    g = gaz.iloc[np.argsort(gaz["code"].to_numpy(dtype=str), kind="stable")]
    rank = {lvl: i for i, lvl in enumerate(LEVELS)}
    return GazetteerIndex(
        code=g["code"].to_numpy(dtype=object),
        name=g["name"].to_numpy(dtype=object),
        full_name=g["full_name"].to_numpy(dtype=object),
        level=g["level"].to_numpy(dtype=object),
        level_rank=g["level"].map(rank).to_numpy(dtype=np.int8),
        pinyin=g["pinyin"].str.replace(" ", "", regex=False).to_numpy(dtype=object),
        syllables=g["pinyin"].to_numpy(dtype=object),
        initials=g["initials"].to_numpy(dtype=object),
    )


def prefix_slice(codes: Any, prefix: str) -> slice:
    lo = bisect_left(codes, prefix)
    hi = bisect_left(codes, prefix + "\U0010ffff")
    return slice(lo, hi)


# --------------------------------------------------------------------------- fast search
#
# The lookup tables live in ``index._aux`` and are all integer arrays (plus string arrays that
# are rebuilt from the index's own columns), so that they can be cached as a plain ``.npz``.
# Items are addressed by *rank*: the position in (level, code) order, which is the tie-break
# order of the results.  A code prefix is then one contiguous rank range per level.

_LATIN_NAME = re.compile(r"[^\u3400-\u9fff\uf900-\ufaff]")
#: Letters and digits of the pinyin columns, for the letter-count filter of the fuzzy tier.
_PY_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
PY_COL = np.full(256, -1, dtype=np.int16)
for _i, _c in enumerate(_PY_ALPHABET):
    PY_COL[ord(_c)] = _i
_BIGRAM_FLAG = np.int64(1) << np.int64(42)

AUX_ARRAYS = (
    "by_rank",
    "level_bounds",
    "nm_off",
    "nm_items",
    "nm_of_rank",
    "py_off",
    "py_items",
    "py_len",
    "py_ends",
    "py_long",
    "pyd_g",
    "pyd_len",
    "pyd_counts",
    "pyd_of_rank",
    "ini_off",
    "ini_items",
    "ini_len",
    "post_key",
    "post_off",
    "post_items",
    "latin_r",
    "len_r",
    "by_len",
    "len_off",
)


def _group(keys_by_rank: np.ndarray, order_keys: list[Any] | None = None) -> dict[str, Any]:
    """Group ranks by key: sorted distinct keys, offsets and the ranks of each key in order."""
    import pandas as pd

    distinct = pd.unique(keys_by_rank)
    distinct_sorted = sorted(distinct.tolist(), key=order_keys.__getitem__ if order_keys else None)
    keys = np.empty(len(distinct_sorted), dtype=object)
    keys[:] = distinct_sorted
    ids = pd.Index(keys).get_indexer(keys_by_rank).astype(np.int32)
    items = np.argsort(ids, kind="stable").astype(np.int32)
    off = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum(np.bincount(ids, minlength=len(keys)), out=off[1:])
    return {"keys": keys, "ids": ids, "off": off, "items": items}


def _syllable_ends(syllables: str) -> tuple[int, bool]:
    """Bit mask of the syllable ends (bit i: a syllable ends after i+1 letters), and overflow."""
    mask, total = 0, 0
    for syl in syllables.split(" "):
        total += len(syl)
        if 0 < total <= 64:
            mask |= 1 << (total - 1)
    return mask, total > 64


def _build_aux(index: GazetteerIndex) -> dict[str, Any]:
    """Compute the lookup tables of :func:`search` (integer arrays only)."""
    n = len(index)
    by_rank = np.argsort(index.level_rank, kind="stable").astype(np.int32)
    ranked_levels = index.level_rank[by_rank]
    level_bounds = np.searchsorted(ranked_levels, np.arange(len(LEVELS) + 1)).astype(np.int64)

    name_r = index.name[by_rank]
    nm = _group(name_r)

    # pinyin groups: distinct spaced readings, ordered by the spaceless reading
    syl_r = index.syllables[by_rank]
    import pandas as pd

    distinct_syl = pd.unique(syl_r).tolist()
    spaceless = {s: s.replace(" ", "") for s in distinct_syl}
    order = {s: (spaceless[s], s) for s in distinct_syl}
    py = _group(syl_r, order)  # type: ignore[arg-type]
    py_keys = [spaceless[s] for s in py["keys"]]
    py_len = np.array([len(k) for k in py_keys], dtype=np.int32)
    ends = [_syllable_ends(s) for s in py["keys"]]
    py_ends = np.array([e[0] for e in ends], dtype=np.uint64)
    py_long = np.array([e[1] for e in ends], dtype=bool)
    # distinct spaceless readings are runs of adjacent groups
    starts = [0] + [i for i in range(1, len(py_keys)) if py_keys[i] != py_keys[i - 1]]
    pyd_g = np.array([*starts, len(py_keys)], dtype=np.int64)
    pyd_keys = [py_keys[i] for i in starts]
    pyd_len = np.array([len(k) for k in pyd_keys], dtype=np.int32)
    pyd_counts = _letter_counts(pyd_keys, pyd_len)
    group_pyd = np.searchsorted(pyd_g, np.arange(len(py_keys)), side="right") - 1
    pyd_of_rank = np.empty(n, dtype=np.int32)
    pyd_of_rank[py["items"]] = np.repeat(group_pyd, np.diff(py["off"]))

    ini = _group(index.initials[by_rank])
    ini_len = np.array([len(k) for k in ini["keys"]], dtype=np.int32)

    post_key, post_off, post_items = _postings(name_r)
    len_r = np.fromiter((len(x) for x in name_r), dtype=np.int32, count=n)
    by_len = np.argsort(len_r, kind="stable").astype(np.int32)
    len_off = np.zeros(int(len_r.max(initial=0)) + 2, dtype=np.int64)
    np.cumsum(np.bincount(len_r, minlength=len(len_off) - 1), out=len_off[1:])
    latin_r = np.array(
        [r for r, s in enumerate(name_r.tolist()) if _LATIN_NAME.search(s)], dtype=np.int32
    )
    return {
        "n": n,
        "by_rank": by_rank,
        "level_bounds": level_bounds,
        "nm_off": nm["off"],
        "nm_items": nm["items"],
        "nm_of_rank": nm["ids"],
        "py_off": py["off"],
        "py_items": py["items"],
        "py_len": py_len,
        "py_ends": py_ends,
        "py_long": py_long,
        "pyd_g": pyd_g,
        "pyd_len": pyd_len,
        "pyd_counts": pyd_counts,
        "pyd_of_rank": pyd_of_rank,
        "ini_off": ini["off"],
        "ini_items": ini["items"],
        "ini_len": ini_len,
        "post_key": post_key,
        "post_off": post_off,
        "post_items": post_items,
        "latin_r": latin_r,
        "len_r": len_r,
        "by_len": by_len,
        "len_off": len_off,
    }


def _letter_counts(keys: list[str], lengths: np.ndarray) -> np.ndarray:
    """Count each letter/digit of :data:`_PY_ALPHABET` per key: shape (36, len(keys))."""
    k = len(keys)
    buf = np.frombuffer("".join(keys).encode("ascii", "replace"), dtype=np.uint8)
    cols = PY_COL[buf].astype(np.int64)
    owner = np.repeat(np.arange(k, dtype=np.int64), lengths)
    ok = cols >= 0
    flat = np.bincount(cols[ok] * k + owner[ok], minlength=len(_PY_ALPHABET) * k)
    return np.minimum(flat, 255).astype(np.uint8).reshape(len(_PY_ALPHABET), k)


def _codepoints(names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Code points of all names joined, and the owner (rank) of each."""
    lengths = np.fromiter((len(s) for s in names), dtype=np.int64, count=len(names))
    cps = np.frombuffer("".join(names.tolist()).encode("utf-32-le"), dtype=np.uint32)
    owner = np.repeat(np.arange(len(names), dtype=np.int64), lengths)
    return cps.astype(np.int64), owner


def _postings(name_r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Build posting lists (sorted ranks) of every character and character pair in the names."""
    cps, owner = _codepoints(name_r)
    pair = owner[:-1] == owner[1:]
    bigram = _BIGRAM_FLAG | (cps[:-1][pair] << 21) | cps[1:][pair]
    keys = np.concatenate([cps, bigram])
    items = np.concatenate([owner, owner[:-1][pair]])
    order = np.lexsort((items, keys))
    keys, items = keys[order], items[order]
    keep = np.ones(len(keys), dtype=bool)
    keep[1:] = (keys[1:] != keys[:-1]) | (items[1:] != items[:-1])
    keys, items = keys[keep], items[keep]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    post_off = np.append(starts, len(keys)).astype(np.int64)
    return keys[starts], post_off, items.astype(np.int32)


def char_key(ch: str) -> int:
    return ord(ch)


def bigram_key(a: str, b: str) -> int:
    return int(_BIGRAM_FLAG) | (ord(a) << 21) | ord(b)


def _finish_aux(index: GazetteerIndex, aux: dict[str, Any]) -> dict[str, Any]:
    """Add the string views (rebuilt from the index's columns) to integer tables."""
    by_rank = aux["by_rank"].astype(np.int64)
    name, pinyin = index._raw("name"), index._raw("pinyin")
    py_first = by_rank[aux["py_items"][aux["py_off"][:-1]]]
    aux["name_r"] = _reorder(name, by_rank)
    aux["pinyin_r"] = _reorder(pinyin, by_rank)
    aux["nm_key"] = _reorder(name, by_rank[aux["nm_items"][aux["nm_off"][:-1]]])
    aux["py_key"] = _reorder(pinyin, py_first)
    aux["pyd_key"] = _reorder(pinyin, py_first[aux["pyd_g"][:-1]])
    aux["ini_key"] = _reorder(
        index._raw("initials"), by_rank[aux["ini_items"][aux["ini_off"][:-1]]]
    )
    aux["latin_low"] = [s.lower() for s in index_take(name, by_rank[aux["latin_r"]])]
    return aux


def _reorder(col: Any, idx: np.ndarray) -> Any:
    """``col`` taken at ``idx``: an object array, or a lazy :class:`_View` of packed strings."""
    if isinstance(col, np.ndarray):
        return col[idx]
    return _View(col, idx)


def index_tables(index: GazetteerIndex) -> dict[str, Any]:
    """Return the search tables of ``index``, built on first use."""
    aux = index._aux
    if "by_rank" not in aux or aux.get("n") != len(index):
        aux.update(_finish_aux(index, _build_aux(index)))
    elif "name_r" not in aux:
        _finish_aux(index, aux)
    return aux


def index_objects(values: list[str]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def index_frame(index: GazetteerIndex) -> pd.DataFrame:
    """Rebuild the gazetteer table of an index, as :func:`load_gazetteer` returns it.

    Parameters
    ----------
    index : GazetteerIndex
        From :func:`build_index` or :func:`load_index`.

    Returns
    -------
    pandas.DataFrame
        Columns ``code``, ``name``, ``level``, ``parent_code``, ``full_name``, ``pinyin`` and
        ``initials``, sorted by code.  ``parent_code`` follows the code structure (GB/T 2260
        and GB/T 10114: 2/4/6/9/12 digits, the parent is the code cut to the parent level's
        length; None for provinces), which is what the shipped tables give.
    """
    import pandas as pd

    cut = np.array([0, 2, 4, 6, 9], dtype=np.int64)[index.level_rank.astype(np.int64)]
    parent = pd.Series(
        [c[:k] if k else None for c, k in zip(index.code.tolist(), cut.tolist(), strict=True)],
        dtype=object,
    )
    return pd.DataFrame(
        {
            "code": index.code,
            "name": index.name,
            "level": index.level,
            "parent_code": parent,
            "full_name": index.full_name,
            "pinyin": index.syllables,
            "initials": index.initials,
        }
    )


def subtree(
    index: GazetteerIndex, code_prefix: str = "", levels: Sequence[str] | None = None
) -> pd.DataFrame:
    """Return the units whose code starts with ``code_prefix``, decoding only those rows.

    Parameters
    ----------
    index : GazetteerIndex
        From :func:`build_index` or :func:`load_index`.
    code_prefix : str, default ""
        Code prefix (``""``: the whole country).
    levels : sequence of str, optional
        Only these levels.

    Returns
    -------
    pandas.DataFrame
        Columns ``code``, ``name``, ``level``, ``parent_code``, ``full_name``, ``pinyin`` and
        ``initials`` as in :func:`index_frame`, sorted by code.

    Raises
    ------
    ValueError
        If ``levels`` names an unknown level.
    """
    import pandas as pd

    sl = prefix_slice(index._raw("code"), code_prefix) if code_prefix else slice(0, len(index))
    pos = np.arange(sl.start, sl.stop, dtype=np.int64)
    if levels is not None:
        wanted = level_ranks(levels)
        pos = pos[np.isin(np.asarray(index.level_rank)[pos], wanted)]
    rank = np.asarray(index.level_rank)[pos].astype(np.int64)
    codes = index_take(index._raw("code"), pos)
    cut = [0, 2, 4, 6, 9]
    return pd.DataFrame(
        {
            "code": index_objects(codes),
            "name": index_objects(index_take(index._raw("name"), pos)),
            "level": index_objects([LEVELS[r] for r in rank.tolist()]),
            "parent_code": index_objects(
                [c[: cut[r]] if cut[r] else None for c, r in zip(codes, rank.tolist(), strict=True)]
            ),
            "full_name": index_objects(index_take(index._raw("full_name"), pos)),
            "pinyin": index_objects(index_take(index._raw("syllables"), pos)),
            "initials": index_objects(index_take(index._raw("initials"), pos)),
        }
    )

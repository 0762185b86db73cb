"""Place-name gazetteer: load the GB/T 2260 division tables and search them.

The data folder holds ``provinces.csv``, ``cities.csv``, ``areas.csv``, ``streets.csv`` and
``villages.csv(.gz)`` (see :func:`load_gazetteer`).  Every unit gets a tone-less pinyin reading and
its initials so that a search box can take characters, pinyin or initials.

Pinyin
------
Readings come from pypinyin.  Doing ``lazy_pinyin`` on ~720,000 names costs ~70 µs a name, so the
work is cached: each distinct character is read once (its default reading), and a name is only
handed to ``lazy_pinyin`` (which uses pypinyin's phrase dictionary) when it contains a phrase whose
phrase reading differs from the characters' default readings.  The result is identical to calling
``lazy_pinyin`` on every name.  Afterwards :data:`PLACE_READINGS` is applied by substring: place
names have readings of their own (六安 *lu an*, 番禺 *pan yu* ...) that a general dictionary gets
wrong.  Because the override is by substring, a village called 六安村 also reads *lu an cun*.

ü is written ``v`` (pypinyin's tone-less convention).  〇 reads ``ling``.  Other non-Han letters and
digits are NFKC-folded (full-width ０ -> 0) and kept as lower-case tokens of their own;
punctuation is dropped.

Search tiers
------------
:func:`search` gives every candidate the best tier it reaches; higher tiers always outrank lower
ones, whatever the score within a tier:

============  =====  ==========================================================================
match         score  meaning
============  =====  ==========================================================================
exact         100    name equals the query
prefix        90     name starts with the query
contains      80     name contains the query
pinyin        70     same tone-less pinyin (a homophone: 不/布/部), so *below* any character match
pinyin        65     pinyin starts with the query's pinyin, ending on a syllable boundary
                     (``tangxia`` → tang xia zhen, but not tang xian)
pinyin        60     pinyin starts with the query's pinyin (spaces ignored)
initials      55/50  initials equal / start with the query (Latin queries only)
fuzzy         27-45  rapidfuzz ``ratio`` on names (Chinese query) or pinyin (Latin query), at
                     least :data:`FUZZY_CUTOFF`, scaled by 0.45
============  =====  ==========================================================================

Ties are broken by level (province first) and then by code.

Speed
-----
:func:`search` does not scan the names: it keeps sorted keys (names, readings, initials) and
posting lists of every character and character pair, addressed by each unit's place in
(level, code) order, so that a code prefix is one range per level and each tier yields its best
rows first (1-10 ms a query on the ~665,000 national units; ``bench/bench_names.py``).  The
fuzzy tier scores every name that could reach :data:`FUZZY_CUTOFF` (a bound on the longest
common subsequence from shared characters or letter counts prunes the rest) unless that set is
too large: then it scores the names sharing the query's rarer characters (at most
:data:`FUZZY_BUDGET`) and, of those, the :data:`FUZZY_SCORED` with the best bound.  Only then
can it differ from :func:`search_scan`, which scores every name.

Cache
-----
:func:`load_index` builds the index once (~15-20 s nationally) and keeps it as plain ``.npy``
arrays in the user cache folder (:func:`default_cache_dir`), keyed by the data files' sha256 and
the code version (:func:`index_cache_key`); later loads memory-map it in milliseconds and decode
only the strings a search returns.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import re
import shutil
import time
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pandas is imported where it is used: `geo-mz names search` does without it
    import pandas as pd

__all__ = [
    "FUZZY_BUDGET",
    "FUZZY_CUTOFF",
    "FUZZY_SCORED",
    "INDEX_CACHE_FORMAT",
    "LEVELS",
    "PLACE_READINGS",
    "GazetteerIndex",
    "build_index",
    "default_cache_dir",
    "index_cache_key",
    "index_cache_path",
    "index_frame",
    "load_gazetteer",
    "load_index",
    "name_pinyin",
    "names_pinyin",
    "search",
    "search_arrays",
    "search_scan",
    "subtree",
]

#: Levels from highest to lowest; the position is the tie-break rank.
LEVELS: tuple[str, ...] = ("province", "city", "county", "town", "village")

#: Names that stand for a parent level without being a place; left out of ``full_name``.
_SKIP_IN_FULL_NAME = frozenset({"市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划"})

#: Known place-name readings that differ from pypinyin's general readings, applied by substring
#: after the dictionary reading.  Sources: the official romanisations of these divisions.
PLACE_READINGS: dict[str, tuple[str, ...]] = {
    "六安": ("lu", "an"),  # 安徽六安市
    "六合": ("lu", "he"),  # 南京六合区
    "蚌埠": ("beng", "bu"),  # 安徽蚌埠市
    "丽水": ("li", "shui"),  # 浙江丽水市
    "番禺": ("pan", "yu"),  # 广州番禺区
    "涡阳": ("guo", "yang"),  # 安徽涡阳县
    "铅山": ("yan", "shan"),  # 江西铅山县
    "台州": ("tai", "zhou"),  # 浙江台州市
    "天台": ("tian", "tai"),  # 浙江天台县
    "东莞": ("dong", "guan"),  # 广东东莞市
    "尉氏": ("yu", "shi"),  # 河南尉氏县
    "浚县": ("xun", "xian"),  # 河南浚县
    "单县": ("shan", "xian"),  # 山东单县
    "洪洞": ("hong", "tong"),  # 山西洪洞县
    "厦门": ("xia", "men"),  # 福建厦门市
    "乐清": ("yue", "qing"),  # 浙江乐清市
    "乐亭": ("lao", "ting"),  # 河北乐亭县
    "蔚县": ("yu", "xian"),  # 河北蔚县
    "莘县": ("shen", "xian"),  # 山东莘县
    "筠连": ("jun", "lian"),  # 四川筠连县
    "珲春": ("hun", "chun"),  # 吉林珲春市
    "枞阳": ("zong", "yang"),  # 安徽枞阳县
    "歙县": ("she", "xian"),  # 安徽歙县
}

#: Minimum rapidfuzz ``ratio`` (0-100) for a fuzzy hit.
FUZZY_CUTOFF: float = 60.0
#: Most names a fuzzy search collects as candidates (see :func:`search`, Notes).
FUZZY_BUDGET: int = 12_000
#: Most distinct names or readings a fuzzy search scores with rapidfuzz.
FUZZY_SCORED: int = 2_000

_TIER = {
    "exact": 100.0,
    "prefix": 90.0,
    "contains": 80.0,
    "pinyin_exact": 70.0,
    "pinyin_syllable_prefix": 65.0,
    "pinyin_prefix": 60.0,
    "initials_exact": 55.0,
    "initials_prefix": 50.0,
}
_FUZZY_SCALE = 0.45
_OUT_COLUMNS = ["code", "name", "level", "full_name", "match", "score"]
_ASCII_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


# --------------------------------------------------------------------------- pinyin


def _toneless(reading: str) -> str:
    """Strip tone marks from a pinyin reading; ü becomes ``v``."""
    reading = reading.replace("ü", "v").replace("ǖ", "v").replace("ǘ", "v")
    reading = reading.replace("ǚ", "v").replace("ǜ", "v")
    decomposed = unicodedata.normalize("NFD", reading)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


#: Readings of single characters already looked up (filled from the index cache as well).
_CHAR_TOKENS: dict[str, str] = {}
#: :func:`_divergent_phrases` once computed (or read from the index cache).
_DIVERGENT: frozenset[str] | None = None
_PHRASE_TABLES: tuple[frozenset[str], dict[str, tuple[str, ...]]] | None = None


def _char_token(ch: str) -> str:
    """Tone-less default reading of one character ('' for punctuation).

    Han characters get pypinyin's default reading (dropped if pypinyin has none), 〇 reads
    ``ling``, and other characters are NFKC-folded (full-width ０ -> 0) and kept only if they
    are ASCII letters or digits.  Readings are memoised in :data:`_CHAR_TOKENS`.
    """
    tok = _CHAR_TOKENS.get(ch)
    if tok is None:
        tok = _CHAR_TOKENS[ch] = _char_token_uncached(ch)
    return tok


def _char_token_uncached(ch: str) -> str:
    from pypinyin import lazy_pinyin

    if ch == "〇":
        return "ling"
    if _HAN.match(ch):
        reading = lazy_pinyin(ch)[0].lower()
        return reading if reading.isascii() and reading.isalnum() else ""
    return "".join(c for c in unicodedata.normalize("NFKC", ch).lower() if c in _ASCII_ALNUM)


def _divergent_phrases() -> frozenset[str]:
    """Phrases of pypinyin's dictionary whose reading differs from their characters' defaults."""
    global _DIVERGENT
    if _DIVERGENT is None:
        _DIVERGENT = _compute_divergent_phrases()
    return _DIVERGENT


def _compute_divergent_phrases() -> frozenset[str]:
    from pypinyin.phrases_dict import phrases_dict

    cache: dict[str, str] = {}
    out = set()
    for phrase, readings in phrases_dict.items():
        default = []
        for ch in phrase:
            if ch not in cache:
                cache[ch] = _char_token(ch)
            default.append(cache[ch])
        if [_toneless(r[0]) for r in readings] != default:
            out.add(phrase)
    return frozenset(out)


def _tokens(name: str, char_map: dict[str, str], use_phrases: bool) -> list[str]:
    """Per-character tokens of ``name`` ('' for dropped characters), overrides applied."""
    if use_phrases:
        from pypinyin import lazy_pinyin

        toks = [t.lower() for t in lazy_pinyin(name, errors=list)]
        if len(toks) != len(name):  # should not happen; fall back to character readings
            toks = [char_map[c] for c in name]
        pairs = zip(toks, name, strict=True)
        toks = [
            t if _HAN.match(c) and t.isascii() and t.isalnum() else char_map[c] for t, c in pairs
        ]
    else:
        toks = [char_map[c] for c in name]
    for key, reading in PLACE_READINGS.items():
        start = name.find(key)
        while start >= 0:
            toks[start : start + len(key)] = reading
            start = name.find(key, start + len(key))
    return toks


def _by_first_char(phrases: frozenset[str] | set[str]) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for ph in phrases:
        out.setdefault(ph[0], []).append(ph)
    return {k: tuple(v) for k, v in out.items()}


def _needs_phrases(name: str, bigrams: frozenset[str], first: dict[str, tuple[str, ...]]) -> bool:
    """Whether ``name`` contains one of the phrases (all of length >= 2) in ``first``.

    ``bigrams`` holds the phrases' first two characters: a cheap pre-filter.
    """
    if not any(name[i : i + 2] in bigrams for i in range(len(name) - 1)):
        return False
    for i, ch in enumerate(name):
        cands = first.get(ch)
        if cands and any(name.startswith(ph, i) for ph in cands):
            return True
    return False


def _phrase_tables() -> tuple[frozenset[str], dict[str, tuple[str, ...]]]:
    """First-two-character pre-filter and phrases by first character, built once."""
    global _PHRASE_TABLES
    if _PHRASE_TABLES is None:
        phrases = {p for p in _divergent_phrases() if len(p) >= 2} | set(PLACE_READINGS)
        _PHRASE_TABLES = (frozenset(p[:2] for p in phrases), _by_first_char(phrases))
    return _PHRASE_TABLES


def _read_names(distinct: list[str]) -> tuple[list[str], list[str]]:
    """Pinyin (space-separated) and initials of distinct names."""
    chars = set("".join(distinct))
    char_map = {c: _char_token(c) for c in chars}
    bigrams, first = _phrase_tables()
    get = char_map.__getitem__
    pys, inis = [], []
    for name in distinct:
        if _needs_phrases(name, bigrams, first):
            toks = [t for t in _tokens(name, char_map, True) if t]
        else:
            toks = [t for t in map(get, name) if t]
        pys.append(" ".join(toks))
        inis.append("".join([t[0] for t in toks]))
    return pys, inis


def _pinyin_many(names: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Pinyin and initials of many names, computed once per distinct name."""
    import pandas as pd

    distinct = pd.unique(names.astype(str).to_numpy(dtype=object)).tolist()
    pys, inis = _read_names(distinct)
    py_map = pd.Series(pys, index=distinct, dtype=object)
    ini_map = pd.Series(inis, index=distinct, dtype=object)
    return names.map(py_map), names.map(ini_map)


def name_pinyin(name: str) -> str:
    """Tone-less, space-separated pinyin of one name, as stored by :func:`load_gazetteer`.

    Parameters
    ----------
    name : str
        A place name in Chinese characters.

    Returns
    -------
    str
        E.g. ``"lu an shi"`` for 六安市.
    """
    return _read_names([str(name)])[0][0]


# --------------------------------------------------------------------------- loading


def _read(folder: Path, stem: str) -> pd.DataFrame:
    import pandas as pd

    for suffix in (".csv", ".csv.gz"):
        path = folder / f"{stem}{suffix}"
        if path.exists():
            return pd.read_csv(path, dtype=str, keep_default_na=False)
    raise FileNotFoundError(f"{folder} has no {stem}.csv or {stem}.csv.gz")


def load_gazetteer(folder: str | Path) -> pd.DataFrame:
    """Load the five division tables into one gazetteer table.

    Parameters
    ----------
    folder : str or Path
        Folder with ``provinces.csv`` (code,name), ``cities.csv`` (code,name,provinceCode),
        ``areas.csv`` (code,name,cityCode,provinceCode), ``streets.csv``
        (code,name,areaCode,provinceCode,cityCode) and ``villages.csv`` or ``villages.csv.gz``
        (code,name,streetCode,provinceCode,cityCode,areaCode).  Codes are read as strings.

    Returns
    -------
    pandas.DataFrame
        One row per unit, sorted by code, with columns ``code``, ``name``, ``level`` (one of
        :data:`LEVELS`), ``parent_code`` (``None`` for provinces), ``full_name`` (the names from
        province down to the unit, space-separated, leaving out placeholders such as 市辖区),
        ``pinyin`` (tone-less, lower case, space-separated syllables) and ``initials``.

    Raises
    ------
    FileNotFoundError
        If one of the five tables is missing.
    """
    import pandas as pd

    folder = Path(folder)
    prov = _read(folder, "provinces")
    city = _read(folder, "cities")
    area = _read(folder, "areas")
    street = _read(folder, "streets")
    village = _read(folder, "villages")

    all_names = pd.concat(
        [t[["code", "name"]] for t in (prov, city, area, street, village)], ignore_index=True
    )
    display = all_names["name"].where(~all_names["name"].isin(_SKIP_IN_FULL_NAME), "")
    display_map = pd.Series(display.to_numpy(), index=all_names["code"].to_numpy())

    def chain(df: pd.DataFrame, ancestors: list[str]) -> pd.Series:
        cols = [df[col].map(display_map).fillna("").to_numpy(dtype=object) for col in ancestors]
        cols.append(df["name"].to_numpy(dtype=object))
        return pd.Series(
            [" ".join(filter(None, parts)) for parts in zip(*cols, strict=True)], dtype=object
        )

    frames = []
    spec = [
        (prov, "province", None, []),
        (city, "city", "provinceCode", ["provinceCode"]),
        (area, "county", "cityCode", ["provinceCode", "cityCode"]),
        (street, "town", "areaCode", ["provinceCode", "cityCode", "areaCode"]),
        (village, "village", "streetCode", ["provinceCode", "cityCode", "areaCode", "streetCode"]),
    ]
    for df, level, parent, ancestors in spec:
        frames.append(
            pd.DataFrame(
                {
                    "code": df["code"].to_numpy(),
                    "name": df["name"].to_numpy(),
                    "level": level,
                    "parent_code": df[parent].to_numpy() if parent else None,
                    "full_name": chain(df, ancestors).to_numpy() if ancestors else df["name"],
                }
            )
        )
    gaz = pd.concat(frames, ignore_index=True)
    gaz["pinyin"], gaz["initials"] = _pinyin_many(gaz["name"])
    gaz = gaz.sort_values("code", kind="stable", ignore_index=True)
    return gaz


# --------------------------------------------------------------------------- index


class _Strings:
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
    def pack(cls, values: Sequence[str]) -> _Strings:
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
    """Strings of a :class:`_Strings` (or object array) in another order: ``base[idx[i]]``."""

    def __init__(self, base: _Strings | np.ndarray, idx: np.ndarray) -> None:
        self.base = base
        self.idx = np.asarray(idx, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, i: int) -> str:
        return str(self.base[int(self.idx[i])])

    def take(self, j: np.ndarray) -> list[str]:
        """Decode the strings at positions ``j`` of the view."""
        return _take(self.base, self.idx[np.asarray(j, dtype=np.int64)])


def _take(col: Any, idx: np.ndarray) -> list[str]:
    """Strings of an object array, :class:`_Strings` or :class:`_View` at ``idx``."""
    if isinstance(col, np.ndarray):
        return col[np.asarray(idx, dtype=np.int64)].tolist()
    return col.take(idx)


def _bisect_left(keys: Any, q: str) -> int:
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
        """Return a column as stored: an object array or packed :class:`_Strings`."""
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


# --------------------------------------------------------------------------- search


def _latin_query(query: str) -> str:
    """Normalise a Latin query: tones, tone digits, spaces and apostrophes removed."""
    q = _toneless(query)
    return re.sub(r"[\s'’\-_1-5]", "", q)


def _ends_on_syllable(syllables: str, n: int) -> bool:
    """Whether the first ``n`` letters of ``syllables`` (spaces not counted) end a syllable."""
    total = 0
    for syl in syllables.split(" "):
        total += len(syl)
        if total >= n:
            return total == n
    return False


def _prefix_slice(codes: Any, prefix: str) -> slice:
    lo = _bisect_left(codes, prefix)
    hi = _bisect_left(codes, prefix + "\U0010ffff")
    return slice(lo, hi)


def search_scan(
    index: GazetteerIndex,
    query: str,
    *,
    code_prefix: str | None = None,
    levels: Sequence[str] | None = None,
    limit: int = 20,
    fuzzy: bool = True,
) -> pd.DataFrame:
    """Search like :func:`search`, by a plain pandas/rapidfuzz scan of every name (reference).

    Kept to check :func:`search` against and to benchmark it (``bench/bench_names.py``); it
    takes 0.3-1 s a query on the national set.  Results differ only in the fuzzy tier: this
    keeps rapidfuzz's best ``max(50 * limit, 1000)`` hits, :func:`search` ranks every hit of
    the candidates it scores (see the module docstring, Speed).

    Parameters
    ----------
    index : GazetteerIndex
        From :func:`build_index`.
    query : str
        Chinese characters (``"棠下"``), pinyin with or without spaces and tones (``"tangxia"``,
        ``"táng xià"``, ``"tang2 xia4"``) or initials (``"txz"``).
    code_prefix : str, optional
        Only units whose code starts with this (e.g. ``"440703"`` for 蓬江区 and everything in it).
    levels : sequence of str, optional
        Only these levels (from :data:`LEVELS`).
    limit : int, default 20
        Maximum number of rows returned.
    fuzzy : bool, default True
        Add rapidfuzz matches (tier ``"fuzzy"``) when the other tiers give fewer than ``limit``.

    Returns
    -------
    pandas.DataFrame
        Columns ``code``, ``name``, ``level``, ``full_name``, ``match`` (``"exact"``,
        ``"prefix"``, ``"contains"``, ``"pinyin"``, ``"initials"`` or ``"fuzzy"``) and ``score``,
        best first; see the module docstring for the tiers.

    Raises
    ------
    ValueError
        If ``levels`` names an unknown level or ``limit`` is negative.
    """
    import pandas as pd

    if limit < 0:
        raise ValueError("limit must be >= 0")
    query = unicodedata.normalize("NFKC", query).strip()
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in _OUT_COLUMNS})
    if not query or limit == 0 or len(index) == 0:
        return empty

    sl = _prefix_slice(index.code, code_prefix) if code_prefix else slice(0, len(index))
    pos = np.arange(sl.start, sl.stop)
    if levels is not None:
        unknown = set(levels) - set(LEVELS)
        if unknown:
            raise ValueError(f"unknown levels {sorted(unknown)}; use {LEVELS}")
        wanted = np.array([LEVELS.index(lv) for lv in levels], dtype=np.int8)
        pos = pos[np.isin(index.level_rank[pos], wanted)]
    if len(pos) == 0:
        return empty

    names = pd.Series(index.name[pos], dtype="string")
    pys = pd.Series(index.pinyin[pos], dtype="string")
    score = np.full(len(pos), -1.0)
    match = np.full(len(pos), "", dtype=object)

    def assign(mask: np.ndarray, tier: str, values: np.ndarray | float) -> None:
        take = mask & (score < 0)
        score[take] = values[take] if isinstance(values, np.ndarray) else values
        match[take] = tier

    is_han = bool(_HAN.search(query))
    if is_han:
        contains = names.str.contains(query, regex=False).to_numpy(bool)
        idx = np.flatnonzero(contains)
        sub = names.iloc[idx]
        exact = np.zeros(len(pos), bool)
        prefix = np.zeros(len(pos), bool)
        exact[idx] = (sub == query).to_numpy(bool)
        prefix[idx] = sub.str.startswith(query).to_numpy(bool)
        assign(exact, "exact", _TIER["exact"])
        assign(prefix, "prefix", _TIER["prefix"])
        assign(contains, "contains", _TIER["contains"])
        qpy = name_pinyin(query).replace(" ", "")
    else:
        qpy = _latin_query(query)
        low = names.str.lower()
        contains = low.str.contains(query.lower(), regex=False).to_numpy(bool)
        assign(contains & (low == query.lower()).to_numpy(bool), "exact", _TIER["exact"])
        assign(contains, "contains", _TIER["contains"])

    if qpy:
        pstart = pys.str.startswith(qpy).to_numpy(bool)
        idx = np.flatnonzero(pstart)
        n = len(qpy)
        sylls = index.syllables[pos[idx]]
        ends = np.array([_ends_on_syllable(s, n) for s in sylls], dtype=bool)
        full = np.array([len(s) - s.count(" ") == n for s in sylls], dtype=bool)
        pexact = np.zeros(len(pos), bool)
        pbound = np.zeros(len(pos), bool)
        pexact[idx] = full
        pbound[idx] = ends
        assign(pexact, "pinyin", _TIER["pinyin_exact"])
        assign(pbound, "pinyin", _TIER["pinyin_syllable_prefix"])
        assign(pstart, "pinyin", _TIER["pinyin_prefix"])
        if not is_han:
            inis = pd.Series(index.initials[pos], dtype="string")
            istart = inis.str.startswith(qpy).to_numpy(bool)
            iexact = istart & (inis.str.len().to_numpy(float) == n)
            assign(iexact, "initials", _TIER["initials_exact"])
            assign(istart, "initials", _TIER["initials_prefix"])

    if fuzzy and int((score >= 0).sum()) < limit:
        from rapidfuzz import fuzz, process

        choices = index.name[pos] if is_han else index.pinyin[pos]
        target = query if is_han else qpy
        if target:
            hits = process.extract(
                target,
                choices,
                scorer=fuzz.ratio,
                score_cutoff=FUZZY_CUTOFF,
                limit=max(limit * 50, 1000),
            )
            if hits:
                where = np.array([h[2] for h in hits], dtype=np.int64)
                vals = np.zeros(len(pos))
                vals[where] = [h[1] * _FUZZY_SCALE for h in hits]
                mask = np.zeros(len(pos), bool)
                mask[where] = True
                assign(mask, "fuzzy", vals)

    hit = np.flatnonzero(score >= 0)
    if len(hit) == 0:
        return empty
    gpos = pos[hit]
    order = np.lexsort((index.code[gpos].astype(str), index.level_rank[gpos], -score[hit]))
    order = order[:limit]
    sel = gpos[order]
    return pd.DataFrame(
        {
            "code": index.code[sel],
            "name": index.name[sel],
            "level": index.level[sel],
            "full_name": index.full_name[sel],
            "match": match[hit][order],
            "score": np.round(score[hit][order], 2),
        }
    )


# --------------------------------------------------------------------------- fast search
#
# The lookup tables live in ``index._aux`` and are all integer arrays (plus string arrays that
# are rebuilt from the index's own columns), so that they can be cached as a plain ``.npz``.
# Items are addressed by *rank*: the position in (level, code) order, which is the tie-break
# order of the results.  A code prefix is then one contiguous rank range per level.

_LATIN_NAME = re.compile(r"[^\u3400-\u9fff\uf900-\ufaff]")
#: Up to this many units in the search area the fuzzy tier scores every one of them.
_FUZZY_DIRECT_MAX = 5_000
#: Letters and digits of the pinyin columns, for the letter-count filter of the fuzzy tier.
_PY_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_PY_COL = np.full(256, -1, dtype=np.int16)
for _i, _c in enumerate(_PY_ALPHABET):
    _PY_COL[ord(_c)] = _i
_BIGRAM_FLAG = np.int64(1) << np.int64(42)

_AUX_ARRAYS = (
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
    cols = _PY_COL[buf].astype(np.int64)
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


def _char_key(ch: str) -> int:
    return ord(ch)


def _bigram_key(a: str, b: str) -> int:
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
    aux["latin_low"] = [s.lower() for s in _take(name, by_rank[aux["latin_r"]])]
    return aux


def _reorder(col: Any, idx: np.ndarray) -> Any:
    """``col`` taken at ``idx``: an object array, or a lazy :class:`_View` of packed strings."""
    if isinstance(col, np.ndarray):
        return col[idx]
    return _View(col, idx)


def _tables(index: GazetteerIndex) -> dict[str, Any]:
    """Return the search tables of ``index``, built on first use."""
    aux = index._aux
    if "by_rank" not in aux or aux.get("n") != len(index):
        aux.update(_finish_aux(index, _build_aux(index)))
    elif "name_r" not in aux:
        _finish_aux(index, aux)
    return aux


def _rank_ranges(
    index: GazetteerIndex,
    t: dict[str, Any],
    code_prefix: str | None,
    levels: Sequence[str] | None,
) -> list[tuple[int, int]]:
    """Rank ranges (one per level at most) of the units a search may return."""
    wanted = range(len(LEVELS))
    if levels is not None:
        unknown = set(levels) - set(LEVELS)
        if unknown:
            raise ValueError(f"unknown levels {sorted(unknown)}; use {LEVELS}")
        wanted = sorted({LEVELS.index(lv) for lv in levels})  # type: ignore[assignment]
    bounds = t["level_bounds"]
    sl = _prefix_slice(index._raw("code"), code_prefix) if code_prefix else None
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
    return _bisect_left(keys, prefix), _bisect_left(keys, prefix + "\U0010ffff")


def _tier_characters(t: dict[str, Any], q: str, hits: _Hits, ranges: Any) -> None:
    """Add the exact, prefix and contains tiers of a query with Han characters."""
    a, b = _key_range(t["nm_key"], q)
    off, items = t["nm_off"], t["nm_items"]
    if a < b and t["nm_key"][a] == q:
        hits.add(_slice_sorted(items[off[a] : off[a + 1]], ranges), _TIER["exact"], "exact")
        a += 1
    if hits.need <= 0:
        return
    if a < b:
        pre = hits.drop_seen(_in_ranges(items[off[a] : off[b]], ranges))
        hits.add(np.sort(pre), _TIER["prefix"], "prefix")
    if hits.need <= 0:
        return
    # contains: scan the rarest character pair's postings in rank order, checking each name
    keys, poff, pitems = t["post_key"], t["post_off"], t["post_items"]
    if len(q) == 1:
        wanted = [_char_key(q)]
    else:
        wanted = [_bigram_key(q[i], q[i + 1]) for i in range(len(q) - 1)]
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
            ok = np.fromiter((q in s for s in _take(name_r, chunk)), bool, count=len(chunk))
            chunk = chunk[ok]
        found.append(chunk[:need])
        need -= len(found[-1])
    if found:
        hits.add(np.concatenate(found), _TIER["contains"], "contains")


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
    scores = np.where(tier == 0, _TIER["exact"], _TIER["contains"])
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
        syl = _take(index._raw("syllables"), first)
        bound[long_] = [_ends_on_syllable(s, n) for s in syl]
    tier = np.where(t["py_len"][g] == n, 0, np.where(bound, 1, 2))
    off = t["py_off"]
    items = t["py_items"][off[a] : off[b]].astype(np.int64)
    item_tier = np.repeat(tier, np.diff(off[a : b + 1]))
    if ranges is not None:
        keep = _range_mask(items, ranges)
        items, item_tier = items[keep], item_tier[keep]
    scores = np.array(
        [_TIER["pinyin_exact"], _TIER["pinyin_syllable_prefix"], _TIER["pinyin_prefix"]]
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
    scores = np.where(item_tier == 0, _TIER["initials_exact"], _TIER["initials_prefix"])
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
        i = int(np.searchsorted(keys, _char_key(ch)))
        if i < len(keys) and keys[i] == _char_key(ch):
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
    idx, sc = _fuzzy_scores(target, _take(t["nm_key"], ids))
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
        col = int(_PY_COL[ord(ch)]) if ord(ch) < 256 else -1
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
    idx, sc = _fuzzy_scores(target, _take(t["pyd_key"], keys))
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
        idx, sc = _fuzzy_scores(target, _take(t["name_r"] if is_han else t["pinyin_r"], cand))
        ranks = cand[idx]
    elif is_han:
        ranks, sc = _fuzzy_han(t, target, hits, ranges)
    else:
        ranks, sc = _fuzzy_pinyin(t, target, hits, ranges)
    if len(ranks) == 0:
        return
    order = np.lexsort((ranks, -sc))[: hits.need]
    hits.add(ranks[order], sc[order] * _FUZZY_SCALE, "fuzzy")


def _objects(values: list[str]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


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
    if limit < 0:
        raise ValueError("limit must be >= 0")
    query = unicodedata.normalize("NFKC", query).strip()
    empty = {c: np.zeros(0, dtype=float if c == "score" else object) for c in _OUT_COLUMNS}
    if not query or limit == 0 or len(index) == 0:
        return empty
    t = _tables(index)
    if levels is None and not code_prefix:
        ranges = None
        allowed = len(index)
    else:
        ranges = _rank_ranges(index, t, code_prefix, levels)
        allowed = sum(b - a for a, b in ranges)
        if allowed == 0:
            return empty

    hits = _Hits(limit)
    is_han = bool(_HAN.search(query))
    if is_han:
        _tier_characters(t, query, hits, ranges)
        qpy = name_pinyin(query).replace(" ", "") if hits.need > 0 else ""
    else:
        qpy = _latin_query(query)
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
        "code": _objects(_take(index._raw("code"), sel)),
        "name": _objects(_take(index._raw("name"), sel)),
        "level": _objects([LEVELS[r] for r in index.level_rank[sel].tolist()]),
        "full_name": _objects(_take(index._raw("full_name"), sel)),
        "match": np.concatenate(hits.matches).astype(object),
        "score": np.round(np.concatenate(hits.scores), 2),
    }


def search(
    index: GazetteerIndex,
    query: str,
    *,
    code_prefix: str | None = None,
    levels: Sequence[str] | None = None,
    limit: int = 20,
    fuzzy: bool = True,
) -> pd.DataFrame:
    """Search place names by characters, pinyin or initials.

    Parameters
    ----------
    index : GazetteerIndex
        From :func:`build_index` or :func:`load_index`.
    query : str
        Chinese characters (``"棠下"``), pinyin with or without spaces and tones (``"tangxia"``,
        ``"táng xià"``, ``"tang2 xia4"``) or initials (``"txz"``).
    code_prefix : str, optional
        Only units whose code starts with this (e.g. ``"440703"`` for 蓬江区 and everything in it).
    levels : sequence of str, optional
        Only these levels (from :data:`LEVELS`).
    limit : int, default 20
        Maximum number of rows returned.
    fuzzy : bool, default True
        Add rapidfuzz matches (tier ``"fuzzy"``) when the other tiers give fewer than ``limit``.

    Returns
    -------
    pandas.DataFrame
        Columns ``code``, ``name``, ``level``, ``full_name``, ``match`` (``"exact"``,
        ``"prefix"``, ``"contains"``, ``"pinyin"``, ``"initials"`` or ``"fuzzy"``) and ``score``,
        best first; see the module docstring for the tiers.

    Raises
    ------
    ValueError
        If ``levels`` names an unknown level or ``limit`` is negative.

    Notes
    -----
    The first search of an index built by :func:`build_index` builds the lookup tables (a few
    seconds for the national set); :func:`load_index` reads them from its cache.  The result
    equals :func:`search_scan`'s, which scans every name, except where the fuzzy tier works
    within its budget (see the module docstring, Speed).
    """
    import pandas as pd

    cols = search_arrays(
        index, query, code_prefix=code_prefix, levels=levels, limit=limit, fuzzy=fuzzy
    )
    if len(cols["code"]) == 0:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in _OUT_COLUMNS})
    return pd.DataFrame(cols)


# --------------------------------------------------------------------------- cache

#: Bumped whenever the layout of the cache file changes.
INDEX_CACHE_FORMAT = 1
_DATA_STEMS = ("provinces", "cities", "areas", "streets", "villages")
_STRING_COLUMNS = ("code", "name", "full_name", "pinyin", "syllables", "initials")
_KEEP_CACHES = 4


def default_cache_dir() -> Path:
    """Folder of the gazetteer index cache.

    Returns
    -------
    pathlib.Path
        ``$GEO_MZ_CACHE_DIR`` when set; else the user cache folder of ``geo_mz``
        (``platformdirs.user_cache_dir`` when platformdirs is installed, otherwise
        ``$XDG_CACHE_HOME/geo_mz`` or ``~/.cache/geo_mz``).  Not created here.
    """
    env = os.environ.get("GEO_MZ_CACHE_DIR")
    if env:
        return Path(env)
    try:
        from platformdirs import user_cache_dir
    except ImportError:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "geo_mz"
    return Path(user_cache_dir("geo_mz", appauthor=False))


def _data_files(folder: Path) -> list[Path]:
    out = []
    for stem in _DATA_STEMS:
        for suffix in (".csv", ".csv.gz"):
            path = folder / f"{stem}{suffix}"
            if path.exists():
                out.append(path)
                break
        else:
            raise FileNotFoundError(f"{folder} has no {stem}.csv or {stem}.csv.gz")
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def index_cache_key(folder: str | Path) -> str:
    """Cache key of the index of a data folder.

    Parameters
    ----------
    folder : str or Path
        Folder with the five division tables (see :func:`load_gazetteer`).

    Returns
    -------
    str
        sha256 (hex) over :data:`INDEX_CACHE_FORMAT`, the geo_mz version, the sha256 of this
        module's source, the pypinyin version (readings depend on it) and the name and sha256
        of each data file.  Any change to one of them gives a new key.

    Raises
    ------
    FileNotFoundError
        If one of the five tables is missing.
    """
    from importlib.metadata import PackageNotFoundError, version

    import geo_mz

    try:
        pypinyin_version = version("pypinyin")
    except PackageNotFoundError:  # pragma: no cover - pypinyin is a dependency
        pypinyin_version = "?"
    parts = [
        f"format={INDEX_CACHE_FORMAT}",
        f"geo_mz={geo_mz.__version__}",
        f"module={_sha256(Path(__file__))}",
        f"pypinyin={pypinyin_version}",
    ]
    parts += [f"{p.name}={_sha256(p)}" for p in _data_files(Path(folder))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _save_cache(path: Path, index: GazetteerIndex, meta: dict[str, Any]) -> None:
    """Write the index as a folder of ``.npy`` files (renamed into place when complete)."""
    aux = _tables(index)
    arrays: dict[str, np.ndarray] = {"level_rank": np.asarray(index.level_rank)}
    packed = {
        "divergent": _Strings.pack(sorted(_divergent_phrases())),
        "token_chars": _Strings.pack(list(_CHAR_TOKENS)),
        "token_values": _Strings.pack(list(_CHAR_TOKENS.values())),
    }
    for col in _STRING_COLUMNS:
        raw = index._raw(col)
        packed[col] = raw if isinstance(raw, _Strings) else _Strings.pack(raw.tolist())
    newline = []
    for key, st in packed.items():
        arrays[f"s_{key}"] = np.asarray(st.buf)
        arrays[f"o_{key}"] = np.asarray(st.off)
        if st.has_newline:
            newline.append(key)
    for key in _AUX_ARRAYS:
        arrays[f"a_{key}"] = np.asarray(aux[key])
    meta = {**meta, "has_newline": newline, "arrays": sorted(arrays)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{path.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for key, arr in arrays.items():
            np.save(tmp / f"{key}.npy", arr, allow_pickle=False)
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
        try:
            os.rename(tmp, path)
        except OSError:
            if not (path / "meta.json").is_file():  # another process did not win the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # keep the newest few caches only
    old = sorted(
        (q for q in path.parent.glob("gazetteer-*") if q.is_dir()),
        key=lambda q: q.stat().st_mtime,
    )
    for q in old[:-_KEEP_CACHES]:
        if q != path:
            shutil.rmtree(q, ignore_errors=True)


def _read_cache(path: Path, key: str) -> GazetteerIndex | None:
    """Read the index stored at ``path``; None when it is missing, stale or unreadable."""
    global _DIVERGENT
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        if meta.get("key") != key or meta.get("format") != INDEX_CACHE_FORMAT:
            return None
        arrays = {
            k: np.load(path / f"{k}.npy", mmap_mode="r", allow_pickle=False) for k in meta["arrays"]
        }
        newline = set(meta.get("has_newline", []))
        strings = {
            k[2:]: _Strings(arrays[k], arrays[f"o_{k[2:]}"], has_newline=k[2:] in newline)
            for k in arrays
            if k.startswith("s_")
        }
        n = int(meta["n"])
        level_rank = np.asarray(arrays["level_rank"])
        if len(level_rank) != n or any(len(strings[c]) != n for c in _STRING_COLUMNS):
            return None
        aux = {k: arrays[f"a_{k}"] for k in _AUX_ARRAYS}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    levels = np.empty(len(LEVELS), dtype=object)
    levels[:] = LEVELS
    index = GazetteerIndex(
        code=strings["code"],
        name=strings["name"],
        full_name=strings["full_name"],
        level=levels[level_rank],
        level_rank=level_rank,
        pinyin=strings["pinyin"],
        syllables=strings["syllables"],
        initials=strings["initials"],
    )
    index._aux.update(aux, n=n)
    if _DIVERGENT is None:
        _DIVERGENT = frozenset(strings["divergent"].materialize().tolist())
    chars = strings["token_chars"].materialize().tolist()
    for ch, tok in zip(chars, strings["token_values"].materialize().tolist(), strict=True):
        _CHAR_TOKENS.setdefault(ch, tok)
    return index


def _default_folder(folder: str | Path | None) -> Path:
    if folder is None:
        from geo_mz.datasets import sample_dir

        return sample_dir()
    return Path(folder)


def index_cache_path(folder: str | Path | None = None, cache_dir: str | Path | None = None) -> Path:
    """Return the folder where :func:`load_index` keeps (or would keep) the index of ``folder``.

    Parameters
    ----------
    folder : str or Path, optional
        Data folder; default the shipped ``layers/sample``.
    cache_dir : str or Path, optional
        Cache folder; default :func:`default_cache_dir`.

    Returns
    -------
    pathlib.Path
        ``<cache_dir>/gazetteer-<first 24 hex digits of the key>``; it exists once built.

    Raises
    ------
    FileNotFoundError
        If one of the five tables is missing.
    """
    key = index_cache_key(_default_folder(folder))
    return Path(cache_dir or default_cache_dir()) / f"gazetteer-{key[:24]}"


def load_index(
    folder: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    rebuild: bool = False,
    use_cache: bool = True,
) -> GazetteerIndex:
    """Load the search index of a data folder, from the cache when it is current.

    The first call builds the index (:func:`load_gazetteer`, :func:`build_index` and the
    search tables: ~20 s for the national set) and stores it as
    ``<cache_dir>/gazetteer-<key>/`` (plain ``.npy`` arrays, memory-mapped with
    ``allow_pickle=False``); later calls map it back in milliseconds.  The key
    (:func:`index_cache_key`) covers the data files' sha256 and the code version, so changed
    data or code never reads a stale cache.  The arrays equal those of
    ``build_index(load_gazetteer(folder))``.

    Parameters
    ----------
    folder : str or Path, optional
        Folder with the division tables; default the shipped ``layers/sample``.
    cache_dir : str or Path, optional
        Cache folder; default :func:`default_cache_dir`.
    rebuild : bool, default False
        Build the index even if a current cache exists (and replace the cache).
    use_cache : bool, default True
        False: neither read nor write a cache.

    Returns
    -------
    GazetteerIndex
        With :attr:`GazetteerIndex.origin` telling whether it came from the cache.

    Raises
    ------
    FileNotFoundError
        If one of the five tables is missing.
    """
    start = time.perf_counter()
    folder = _default_folder(folder)
    key = index_cache_key(folder)
    path = Path(cache_dir or default_cache_dir()) / f"gazetteer-{key[:24]}"
    index = None
    if use_cache and not rebuild and path.is_dir():
        index = _read_cache(path, key)
    from_cache = index is not None
    if index is None:
        index = build_index(load_gazetteer(folder))
        _tables(index)
        if use_cache:
            meta = {"key": key, "format": INDEX_CACHE_FORMAT, "n": len(index)}
            meta["folder"] = str(folder.resolve())
            try:
                _save_cache(path, index, meta)
            except OSError:
                path = None  # type: ignore[assignment]  # read-only cache folder: go on
    index._aux["origin"] = {
        "from_cache": from_cache,
        "cache_path": str(path) if use_cache and path is not None else None,
        "key": key,
        "seconds": round(time.perf_counter() - start, 3),
    }
    return index


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


# ---------------------------------------------------------------- helpers for names_check


def names_pinyin(names: Sequence[str]) -> list[str]:
    """Tone-less, space-separated pinyin of many names (as :func:`name_pinyin` gives each).

    Parameters
    ----------
    names : sequence of str
        Names in Chinese characters; each distinct name is read once.

    Returns
    -------
    list of str
        One reading per name, in order.
    """
    distinct = list(dict.fromkeys(str(n) for n in names))
    pys, _ = _read_names(distinct)
    reading = dict(zip(distinct, pys, strict=True))
    return [reading[str(n)] for n in names]


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

    sl = _prefix_slice(index._raw("code"), code_prefix) if code_prefix else slice(0, len(index))
    pos = np.arange(sl.start, sl.stop, dtype=np.int64)
    if levels is not None:
        unknown = set(levels) - set(LEVELS)
        if unknown:
            raise ValueError(f"unknown levels {sorted(unknown)}; use {LEVELS}")
        wanted = [LEVELS.index(lv) for lv in levels]
        pos = pos[np.isin(np.asarray(index.level_rank)[pos], wanted)]
    rank = np.asarray(index.level_rank)[pos].astype(np.int64)
    codes = _take(index._raw("code"), pos)
    cut = [0, 2, 4, 6, 9]
    return pd.DataFrame(
        {
            "code": _objects(codes),
            "name": _objects(_take(index._raw("name"), pos)),
            "level": _objects([LEVELS[r] for r in rank.tolist()]),
            "parent_code": _objects(
                [c[: cut[r]] if cut[r] else None for c, r in zip(codes, rank.tolist(), strict=True)]
            ),
            "full_name": _objects(_take(index._raw("full_name"), pos)),
            "pinyin": _objects(_take(index._raw("syllables"), pos)),
            "initials": _objects(_take(index._raw("initials"), pos)),
        }
    )

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
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "FUZZY_CUTOFF",
    "LEVELS",
    "PLACE_READINGS",
    "GazetteerIndex",
    "build_index",
    "load_gazetteer",
    "name_pinyin",
    "search",
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


def _char_token(ch: str) -> str:
    """Tone-less default reading of one character ('' for punctuation).

    Han characters get pypinyin's default reading (dropped if pypinyin has none), 〇 reads
    ``ling``, and other characters are NFKC-folded (full-width ０ -> 0) and kept only if they
    are ASCII letters or digits.
    """
    from pypinyin import lazy_pinyin

    if ch == "〇":
        return "ling"
    if _HAN.match(ch):
        reading = lazy_pinyin(ch)[0].lower()
        return reading if reading.isascii() and reading.isalnum() else ""
    return "".join(c for c in unicodedata.normalize("NFKC", ch).lower() if c in _ASCII_ALNUM)


@lru_cache(maxsize=1)
def _divergent_phrases() -> frozenset[str]:
    """Phrases of pypinyin's dictionary whose reading differs from their characters' defaults."""
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


def _pinyin_many(names: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Pinyin and initials of many names, computed once per distinct name."""
    distinct = pd.unique(names.astype(str).to_numpy(dtype=object)).tolist()
    chars = set("".join(distinct))
    char_map = {c: _char_token(c) for c in chars}
    phrases = {p for p in _divergent_phrases() if len(p) >= 2} | set(PLACE_READINGS)
    first = _by_first_char(phrases)
    bigrams = frozenset(p[:2] for p in phrases)
    get = char_map.__getitem__
    pys, inis = [], []
    for name in distinct:
        if _needs_phrases(name, bigrams, first):
            toks = [t for t in _tokens(name, char_map, True) if t]
        else:
            toks = [t for t in map(get, name) if t]
        pys.append(" ".join(toks))
        inis.append("".join([t[0] for t in toks]))
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
    py, _ = _pinyin_many(pd.Series([name], dtype=object))
    return str(py.iloc[0])


# --------------------------------------------------------------------------- loading


def _read(folder: Path, stem: str) -> pd.DataFrame:
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


@dataclass(frozen=True)
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
    """

    code: np.ndarray
    name: np.ndarray
    full_name: np.ndarray
    level: np.ndarray
    level_rank: np.ndarray
    pinyin: np.ndarray
    syllables: np.ndarray
    initials: np.ndarray

    def __len__(self) -> int:
        return len(self.code)


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


def _prefix_slice(codes: np.ndarray, prefix: str) -> slice:
    lo = int(np.searchsorted(codes, prefix, side="left"))
    hi = int(np.searchsorted(codes, prefix + "\U0010ffff", side="left"))
    return slice(lo, hi)


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

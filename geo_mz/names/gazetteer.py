"""Place-name gazetteer: load the GB/T 2260 division tables and search them.

The data folder holds ``provinces.csv``, ``cities.csv``, ``areas.csv``, ``streets.csv`` and
``villages.csv(.gz)`` (see :func:`load_gazetteer`).  Every unit gets a tone-less pinyin reading and
its initials so that a search box can take characters, pinyin or initials.

Pinyin
------
Readings come from pypinyin.  Doing ``lazy_pinyin`` on ~665,000 names costs ~70 µs a name, so the
work is cached: each distinct character is read once (its default reading), and a name is only
handed to ``lazy_pinyin`` (which uses pypinyin's phrase dictionary) when it contains a phrase whose
phrase reading differs from the characters' default readings (the same result as calling
``lazy_pinyin`` on every name).  Afterwards the place-name lexicon
(``layers/rules/place_readings.csv``, :func:`place_readings`) is applied: place names read
polyphones their own way, and a general dictionary gets them wrong (长治 *chang zhi*, 都匀 *du
yun*, 勒流 *le liu*, 石佛 *shi fo*, 新圩 *xin xu* in Guangdong, 六安 *lu an* ...).  An entry
is a character (its reading in every place name) or a phrase (longer phrases first), may hold
in a region only (code prefixes: 圩 *xu* in 44/45/46/35 ..., *wei* elsewhere; 六合 *lu he*
only in Nanjing 3201), and cites its source (《现代汉语词典》 place-name readings, the
official romanisation of county-level names).  Names read without a code (a search query)
take the entry without regions, else the first regional one.

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

Modules
-------
This module is the public API (everything below is importable from here); the machinery lives
beside it: :mod:`geo_mz.names.pinyin` (readings), :mod:`geo_mz.names.index` (the index
and its lookup tables), :mod:`geo_mz.names.search_tiers` (the fast search tiers) and
:mod:`geo_mz.names.cache` (the on-disk cache).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from geo_mz.names.cache import (
    INDEX_CACHE_FORMAT,
    default_cache_dir,
    default_folder,
    index_cache_key,
    index_cache_path,
    read_cache,
    save_cache,
)
from geo_mz.names.index import (
    LEVELS,
    GazetteerIndex,
    build_index,
    index_frame,
    index_tables,
    level_ranks,
    prefix_slice,
    subtree,
)
from geo_mz.names.pinyin import (
    HAN,
    PlaceReading,
    name_pinyin,
    names_pinyin,
    pinyin_many,
    place_readings,
)
from geo_mz.names.search_tiers import (
    FUZZY_BUDGET,
    FUZZY_CUTOFF,
    FUZZY_SCALE,
    FUZZY_SCORED,
    OUT_COLUMNS,
    TIER,
    clean_query,
    ends_on_syllable,
    latin_query,
    search_arrays,
)

if TYPE_CHECKING:  # pandas is imported where it is used: `geo-mz names search` does without it
    import pandas as pd

__all__ = [
    "FUZZY_BUDGET",
    "FUZZY_CUTOFF",
    "FUZZY_SCORED",
    "INDEX_CACHE_FORMAT",
    "LEVELS",
    "GazetteerIndex",
    "PlaceReading",
    "build_index",
    "default_cache_dir",
    "index_cache_key",
    "index_cache_path",
    "index_frame",
    "load_gazetteer",
    "load_index",
    "name_pinyin",
    "names_pinyin",
    "place_readings",
    "search",
    "search_arrays",
    "search_scan",
    "subtree",
]

#: Names that stand for a parent level without being a place; left out of ``full_name``.
_SKIP_IN_FULL_NAME = frozenset({"市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划"})


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
    gaz["pinyin"], gaz["initials"] = pinyin_many(gaz["name"], gaz["code"])
    gaz = gaz.sort_values("code", kind="stable", ignore_index=True)
    return gaz


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
        Cache folder; default :func:`geo_mz.core.default_cache_dir`.
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
    folder = default_folder(folder)
    key = index_cache_key(folder)
    path = Path(cache_dir or default_cache_dir()) / f"gazetteer-{key[:24]}"
    index = None
    if use_cache and not rebuild and path.is_dir():
        index = read_cache(path, key)
    from_cache = index is not None
    if index is None:
        index = build_index(load_gazetteer(folder))
        index_tables(index)
        if use_cache:
            meta = {"key": key, "format": INDEX_CACHE_FORMAT, "n": len(index)}
            meta["folder"] = str(folder.resolve())
            try:
                save_cache(path, index, meta)
            except OSError:
                path = None  # type: ignore[assignment]  # read-only cache folder: go on
    index._aux["origin"] = {
        "from_cache": from_cache,
        "cache_path": str(path) if use_cache and path is not None else None,
        "key": key,
        "seconds": round(time.perf_counter() - start, 3),
    }
    return index


# --------------------------------------------------------------------------- search


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
        return pd.DataFrame({c: pd.Series(dtype=object) for c in OUT_COLUMNS})
    return pd.DataFrame(cols)


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
    index, query, code_prefix, levels, limit, fuzzy
        As for :func:`search`.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`search`, best first.

    Raises
    ------
    ValueError
        If ``levels`` names an unknown level or ``limit`` is negative.
    """
    import pandas as pd

    query = clean_query(query, limit)
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in OUT_COLUMNS})
    if not query or limit == 0 or len(index) == 0:
        return empty

    sl = prefix_slice(index.code, code_prefix) if code_prefix else slice(0, len(index))
    pos = np.arange(sl.start, sl.stop)
    if levels is not None:
        wanted = np.array(level_ranks(levels), dtype=np.int8)
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

    is_han = bool(HAN.search(query))
    if is_han:
        contains = names.str.contains(query, regex=False).to_numpy(bool)
        idx = np.flatnonzero(contains)
        sub = names.iloc[idx]
        exact = np.zeros(len(pos), bool)
        prefix = np.zeros(len(pos), bool)
        exact[idx] = (sub == query).to_numpy(bool)
        prefix[idx] = sub.str.startswith(query).to_numpy(bool)
        assign(exact, "exact", TIER["exact"])
        assign(prefix, "prefix", TIER["prefix"])
        assign(contains, "contains", TIER["contains"])
        qpy = name_pinyin(query).replace(" ", "")
    else:
        qpy = latin_query(query)
        low = names.str.lower()
        contains = low.str.contains(query.lower(), regex=False).to_numpy(bool)
        assign(contains & (low == query.lower()).to_numpy(bool), "exact", TIER["exact"])
        assign(contains, "contains", TIER["contains"])

    if qpy:
        pstart = pys.str.startswith(qpy).to_numpy(bool)
        idx = np.flatnonzero(pstart)
        n = len(qpy)
        sylls = index.syllables[pos[idx]]
        ends = np.array([ends_on_syllable(s, n) for s in sylls], dtype=bool)
        full = np.array([len(s) - s.count(" ") == n for s in sylls], dtype=bool)
        pexact = np.zeros(len(pos), bool)
        pbound = np.zeros(len(pos), bool)
        pexact[idx] = full
        pbound[idx] = ends
        assign(pexact, "pinyin", TIER["pinyin_exact"])
        assign(pbound, "pinyin", TIER["pinyin_syllable_prefix"])
        assign(pstart, "pinyin", TIER["pinyin_prefix"])
        if not is_han:
            inis = pd.Series(index.initials[pos], dtype="string")
            istart = inis.str.startswith(qpy).to_numpy(bool)
            iexact = istart & (inis.str.len().to_numpy(float) == n)
            assign(iexact, "initials", TIER["initials_exact"])
            assign(istart, "initials", TIER["initials_prefix"])

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
                vals[where] = [h[1] * FUZZY_SCALE for h in hits]
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

"""Tone-less pinyin readings of place names, as the gazetteer stores and searches them.

Readings come from pypinyin, cached per character; a name goes through pypinyin's phrase
dictionary only when it holds a phrase whose reading differs from its characters' defaults, and
:data:`PLACE_READINGS` then fixes known place-name readings by substring.  The rules are in the
module docstring of :mod:`geo_mz.names.gazetteer` (Pinyin); the index cache
(:mod:`geo_mz.names.cache`) stores and restores the memos kept here.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PLACE_READINGS", "name_pinyin", "names_pinyin"]

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

_ASCII_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def toneless(reading: str) -> str:
    """Strip tone marks from a pinyin reading; ü becomes ``v``."""
    reading = reading.replace("ü", "v").replace("ǖ", "v").replace("ǘ", "v")
    reading = reading.replace("ǚ", "v").replace("ǜ", "v")
    decomposed = unicodedata.normalize("NFD", reading)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


#: Readings of single characters already looked up (filled from the index cache as well).
CHAR_TOKENS: dict[str, str] = {}
#: :func:`divergent_phrases` once computed (or read from the index cache).
_DIVERGENT: frozenset[str] | None = None
_PHRASE_TABLES: tuple[frozenset[str], dict[str, tuple[str, ...]]] | None = None


def _char_token(ch: str) -> str:
    """Tone-less default reading of one character ('' for punctuation).

    Han characters get pypinyin's default reading (dropped if pypinyin has none), 〇 reads
    ``ling``, and other characters are NFKC-folded (full-width ０ -> 0) and kept only if they
    are ASCII letters or digits.  Readings are memoised in :data:`CHAR_TOKENS`.
    """
    tok = CHAR_TOKENS.get(ch)
    if tok is None:
        tok = CHAR_TOKENS[ch] = _char_token_uncached(ch)
    return tok


def _char_token_uncached(ch: str) -> str:
    from pypinyin import lazy_pinyin

    if ch == "〇":
        return "ling"
    if HAN.match(ch):
        reading = lazy_pinyin(ch)[0].lower()
        return reading if reading.isascii() and reading.isalnum() else ""
    return "".join(c for c in unicodedata.normalize("NFKC", ch).lower() if c in _ASCII_ALNUM)


def divergent_phrases() -> frozenset[str]:
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
        if [toneless(r[0]) for r in readings] != default:
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
            t if HAN.match(c) and t.isascii() and t.isalnum() else char_map[c] for t, c in pairs
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
        phrases = {p for p in divergent_phrases() if len(p) >= 2} | set(PLACE_READINGS)
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


def pinyin_many(names: pd.Series) -> tuple[pd.Series, pd.Series]:
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


def seed_memos(divergent: Callable[[], list[str]], chars: list[str], tokens: list[str]) -> None:
    """Fill the reading memos from the index cache; what is already computed is kept.

    ``divergent`` (the phrases of :func:`divergent_phrases`) is called only when those have
    not been computed yet; ``chars`` and ``tokens`` are :data:`CHAR_TOKENS`' keys and values.
    """
    global _DIVERGENT
    if _DIVERGENT is None:
        _DIVERGENT = frozenset(divergent())
    for ch, tok in zip(chars, tokens, strict=True):
        CHAR_TOKENS.setdefault(ch, tok)

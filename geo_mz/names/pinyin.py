"""Tone-less pinyin readings of place names, as the gazetteer stores and searches them.

Readings come from pypinyin, cached per character; a name goes through pypinyin's phrase
dictionary only when it holds a phrase whose reading differs from its characters' defaults.  The
place-name lexicon (``layers/rules/place_readings.csv``, read by :func:`place_readings`) is then
applied: place names read polyphones their own way (长 *chang*, 都 *du*, 勒 *le*, 佛 *fo*, 圩
*xu* in the south and *wei* elsewhere, 六安 *lu an* ...).  Each entry is a character (its
reading in any place name) or a phrase (its reading wherever it occurs), may be limited to code
prefixes (a region), and names its source.

The lexicon is applied after pypinyin rather than loaded into pypinyin's dictionaries
(``load_phrases_dict``/``load_single_dict``): those are process-wide, so they would change the
readings of every other caller of pypinyin, and they cannot say that a reading holds in one
region only.  The rules are in the module docstring of :mod:`geo_mz.names.gazetteer` (Pinyin);
the index cache (:mod:`geo_mz.names.cache`) stores and restores the memos kept here.
"""

from __future__ import annotations

import csv
import hashlib
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PlaceReading", "name_pinyin", "names_pinyin", "place_readings"]


@dataclass(frozen=True)
class PlaceReading:
    """One entry of the place-name reading lexicon.

    Attributes
    ----------
    text
        A character (its reading in any place name) or a phrase (its reading wherever it occurs).
    syllables
        Tone-less pinyin, one syllable per character of ``text``.
    regions
        Code prefixes where the entry holds (``()``: everywhere).  For one text, the entry with
        the longest prefix of the unit's code wins; an entry without regions is the fallback.
    source
        Where the reading is documented.
    note
        Why the entry is needed.
    """

    text: str
    syllables: tuple[str, ...]
    regions: tuple[str, ...]
    source: str
    note: str = ""


def place_readings_path() -> Path:
    """Path of the shipped ``layers/rules/place_readings.csv``."""
    from geo_mz.core.catalog import default_catalog_dir

    return default_catalog_dir() / "rules" / "place_readings.csv"


def place_readings(path: str | Path | None = None) -> tuple[PlaceReading, ...]:
    """Read the place-name reading lexicon.

    Parameters
    ----------
    path : str or Path, optional
        A CSV with the columns ``text``, ``reading``, ``regions``, ``source`` and ``note``
        (``#`` lines are comments); default the shipped ``layers/rules/place_readings.csv``.

    Returns
    -------
    tuple of PlaceReading
        In file order.

    Raises
    ------
    ValueError
        If a row has no source, a reading whose syllable count differs from its text's length,
        or a syllable that is not lower-case ASCII.
    """
    return _read_lexicon(str(Path(path) if path else place_readings_path()))


@lru_cache(maxsize=4)
def _read_lexicon(path_str: str) -> tuple[PlaceReading, ...]:
    path = Path(path_str)
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if not ln.startswith("#")]
    out = []
    for k, row in enumerate(csv.DictReader(lines), start=2):
        text = (row.get("text") or "").strip()
        syl = tuple((row.get("reading") or "").split())
        where = f"{path} (数据行 data row {k - 1}, {text!r})"
        if not text or len(syl) != len(text):
            raise ValueError(
                f"地名读音表 {where}: 读音音节数须与字数相同 / the reading needs one syllable "
                f"per character: {row.get('reading')!r}"
            )
        if not all(s.isascii() and s.isalpha() and s.islower() for s in syl):
            raise ValueError(
                f"地名读音表 {where}: 读音须为小写无调拼音 / the reading must be lower-case "
                f"tone-less pinyin: {row.get('reading')!r}"
            )
        if not (row.get("source") or "").strip():
            raise ValueError(f"地名读音表 {where}: 缺少出处 / the source column is empty")
        out.append(
            PlaceReading(
                text=text,
                syllables=syl,
                regions=tuple((row.get("regions") or "").split()),
                source=row["source"].strip(),
                note=(row.get("note") or "").strip(),
            )
        )
    return tuple(out)


def lexicon_digest() -> str:
    """sha256 of the shipped lexicon file (part of the index cache key)."""
    return hashlib.sha256(place_readings_path().read_bytes()).hexdigest()


@dataclass(frozen=True)
class _Lexicon:
    chars: dict[str, tuple[PlaceReading, ...]]
    #: first character -> (text, entries) longest text first
    phrases: dict[str, tuple[tuple[str, tuple[PlaceReading, ...]], ...]]
    trigger: re.Pattern[str]
    #: texts that have an entry limited to a region (the unit's code matters)
    regional: re.Pattern[str] | None
    prefix_len: int


@lru_cache(maxsize=1)
def _lexicon() -> _Lexicon:
    by_text: dict[str, list[PlaceReading]] = {}
    for e in place_readings():
        by_text.setdefault(e.text, []).append(e)
    chars = {t: tuple(v) for t, v in by_text.items() if len(t) == 1}
    firsts: dict[str, list[tuple[str, tuple[PlaceReading, ...]]]] = {}
    for t in sorted((t for t in by_text if len(t) > 1), key=lambda t: (-len(t), t)):
        firsts.setdefault(t[0], []).append((t, tuple(by_text[t])))
    trigger = re.compile("[" + "".join(sorted({t[0] for t in by_text})) + "]")
    regional_texts = sorted({e.text for es in by_text.values() for e in es if e.regions})
    regional = re.compile("|".join(map(re.escape, regional_texts))) if regional_texts else None
    plen = max((len(r) for es in by_text.values() for e in es for r in e.regions), default=0)
    return _Lexicon(chars, {k: tuple(v) for k, v in firsts.items()}, trigger, regional, plen)


def _pick(entries: tuple[PlaceReading, ...], code: str | None) -> PlaceReading | None:
    """Pick the entry for a unit's code: the longest matching region, else the fallback.

    Without a code (a search query, a proposed name) the fallback is used, and where a text has
    regional entries only, the first of them: 六安 read alone is the city's *lu an*.
    """
    if code is None:
        plain = [e for e in entries if not e.regions]
        return plain[-1] if plain else entries[0]
    best, best_len, fallback = None, -1, None
    for e in entries:
        if not e.regions:
            fallback = e
        elif code:
            for r in e.regions:
                if code.startswith(r) and len(r) > best_len:
                    best, best_len = e, len(r)
    return best or fallback


def _apply_lexicon(name: str, toks: list[str], code: str | None, lex: _Lexicon) -> None:
    """Overwrite the per-character tokens of ``name`` with the lexicon's readings (in place)."""
    for i, ch in enumerate(name):
        entries = lex.chars.get(ch)
        if entries and toks[i]:
            e = _pick(entries, code)
            if e is not None:
                toks[i] = e.syllables[0]
    i = 0
    while i < len(name):
        step = 1
        for text, entries in lex.phrases.get(name[i], ()):
            if name.startswith(text, i):
                e = _pick(entries, code)
                if e is not None:
                    toks[i : i + len(text)] = e.syllables
                    step = len(text)
                    break
        i += step


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
    """Per-character tokens of ``name`` ('' for dropped characters), before the lexicon."""
    if not use_phrases:
        return [char_map[c] for c in name]
    from pypinyin import lazy_pinyin

    toks = [t.lower() for t in lazy_pinyin(name, errors=list)]
    if len(toks) != len(name):  # should not happen; fall back to character readings
        return [char_map[c] for c in name]
    pairs = zip(toks, name, strict=True)
    return [t if HAN.match(c) and t.isascii() and t.isalnum() else char_map[c] for t, c in pairs]


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
        phrases = {p for p in divergent_phrases() if len(p) >= 2}
        _PHRASE_TABLES = (frozenset(p[:2] for p in phrases), _by_first_char(phrases))
    return _PHRASE_TABLES


def _read_names(
    distinct: list[str], codes: Sequence[str | None] | None = None
) -> tuple[list[str], list[str]]:
    """Pinyin (space-separated) and initials of names (each with its unit code, if known)."""
    chars = set("".join(distinct))
    char_map = {c: _char_token(c) for c in chars}
    bigrams, first = _phrase_tables()
    lex = _lexicon()
    trigger = lex.trigger.search
    pys, inis = [], []
    for k, name in enumerate(distinct):
        toks = _tokens(name, char_map, _needs_phrases(name, bigrams, first))
        if trigger(name):
            _apply_lexicon(name, toks, codes[k] if codes is not None else None, lex)
        toks = [t for t in toks if t] if "" in toks else toks
        pys.append(" ".join(toks))
        inis.append("".join([t[0] for t in toks]))
    return pys, inis


def _distinct_keys(names: list[str], codes: list[str] | None) -> list[tuple[str, str | None]]:
    """(name, region) per name: the region (a code prefix) only where the lexicon needs it."""
    lex = _lexicon()
    if codes is None or lex.regional is None:
        return [(n, None) for n in names]
    regional = lex.regional.search
    need = {n: bool(regional(n)) for n in dict.fromkeys(names)}
    return [
        (n, str(c)[: lex.prefix_len] if need[n] and c is not None else None)
        for n, c in zip(names, codes, strict=True)
    ]


def _read_keys(keys: list[tuple[str, str | None]]) -> dict[tuple[str, str | None], str]:
    distinct = list(dict.fromkeys(keys))
    pys, _ = _read_names([k[0] for k in distinct], [k[1] for k in distinct])
    return dict(zip(distinct, pys, strict=True))


def pinyin_many(names: pd.Series, codes: pd.Series | None = None) -> tuple[pd.Series, pd.Series]:
    """Pinyin and initials of many names, computed once per distinct name (and region)."""
    import pandas as pd

    name_list = names.astype(str).tolist()
    code_list = None if codes is None else codes.astype(str).tolist()
    keys = _distinct_keys(name_list, code_list)
    reading = _read_keys(keys)
    py = [reading[k] for k in keys]
    ini = ["".join(s[0] for s in r.split(" ") if s) for r in py]
    # the dtype pandas infers for strings (as Series.map gives): the index cache restores that
    return pd.Series(py, index=names.index), pd.Series(ini, index=names.index)


def name_pinyin(name: str, code: str | None = None) -> str:
    """Tone-less, space-separated pinyin of one name, as stored by :func:`load_gazetteer`.

    Parameters
    ----------
    name : str
        A place name in Chinese characters.
    code : str, optional
        The unit's division code (or a prefix of it, e.g. the province ``"44"``): readings that
        hold in one region only (圩 *xu* in Guangdong, *wei* in Jiangsu) need it.  Without it,
        the lexicon's fallback readings are used.

    Returns
    -------
    str
        E.g. ``"lu an shi"`` for 六安市 (code ``"3415"``).
    """
    return _read_names([str(name)], [code])[0][0]


def names_pinyin(names: Sequence[str], codes: Sequence[str | None] | None = None) -> list[str]:
    """Tone-less, space-separated pinyin of many names (as :func:`name_pinyin` gives each).

    Parameters
    ----------
    names : sequence of str
        Names in Chinese characters; each distinct name (and region) is read once.
    codes : sequence of str, optional
        The units' division codes, one per name (see :func:`name_pinyin`).

    Returns
    -------
    list of str
        One reading per name, in order.
    """
    name_list = [str(n) for n in names]
    code_list = None if codes is None else [None if c is None else str(c) for c in codes]
    keys = _distinct_keys(name_list, code_list)  # type: ignore[arg-type]
    reading = _read_keys(keys)
    return [reading[k] for k in keys]


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

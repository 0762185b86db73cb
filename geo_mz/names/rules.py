"""Place-name standardisation rules and name parsing: what :mod:`geo_mz.names.check` checks against.

:func:`load_rules` reads ``layers/rules/placename_rules.toml`` (word lists, generic parts,
committee titles, code ranges and the sources they come from) into :class:`Rules`;
:func:`parse_name` splits a name into 专名, 通名 and committee title by those rules, and
:func:`specific_pinyin` reads the 专名.  The checks are in :mod:`geo_mz.names.check`, the
reports in :mod:`geo_mz.names.report`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from geo_mz.core.errors import GeoMzError
from geo_mz.names.gazetteer import LEVELS, names_pinyin

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CHECKS",
    "CheckSpec",
    "NamesError",
    "ParsedName",
    "Rules",
    "TermList",
    "load_rules",
    "parse_name",
    "rules_path",
]

#: Check keys in report order.
CHECKS: tuple[str, ...] = (
    "duplicate",
    "homophone",
    "big",
    "foreign",
    "transliteration",
    "odd_word",
    "vulgar",
    "pun",
    "generic_mismatch",
    "traditional",
    "rare_char",
    "hard_to_read",
    "mixed_script",
    "number_name",
    "missing_generic",
    "code_type",
)

SCOPE_ZH = {
    "national": "全国",
    "city": "市内",
    "county": "县(市、区)内",
    "town": "乡镇(街道)内",
    "name": "名称",
}


class NamesError(GeoMzError, ValueError):
    """Bad input to a place-name check (unknown level or parent, empty name, bad rules)."""


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class CheckSpec:
    """One check as the rules file describes it."""

    key: str
    zh: str
    en: str
    flag: str
    rule: str
    source: str


@dataclass(frozen=True)
class TermList:
    """A word list of the 大/洋/怪 checks, with the rule and source it comes from."""

    name: str
    check: str
    source: str
    condition: str
    terms: tuple[str, ...]
    provinces: tuple[str, ...] = ()
    homophones: bool = False


@dataclass(frozen=True)
class Rules:
    """The standardisation rules read from ``placename_rules.toml``.

    Attributes
    ----------
    checks
        Check key -> :class:`CheckSpec` (heading, flag, rule, resolved source text).
    lists
        Word lists of the big / foreign / odd_word checks.
    exemptions
        Names (or 专名) exempt from the word lists.
    generic
        Level -> generic parts (通名), longest first.
    placeholders
        Names of the division tables that stand for a level and are not checked.
    committee
        (title suffix, implied class) pairs, longest first.
    village_category, town_category
        Generic part -> class.
    code_ranges
        Level -> class -> ranges of the last code segment.
    traditional
        Traditional or variant character -> simplified character.
    allow_chars
        Characters the character checks accept (``allow`` and the regional standard place-name
        characters of ``regional_table``: 滘, 垱, 碶 ...).
    path
        The file read.
    """

    checks: Mapping[str, CheckSpec]
    lists: tuple[TermList, ...]
    exemptions: frozenset[str]
    generic: Mapping[str, tuple[str, ...]]
    placeholders: frozenset[str]
    committee: tuple[tuple[str, str], ...]
    village_category: Mapping[str, str]
    town_category: Mapping[str, str]
    code_ranges: Mapping[str, Mapping[str, tuple[tuple[int, int], ...]]]
    traditional: Mapping[str, str]
    allow_chars: frozenset[str]
    path: Path = field(default=Path())


def rules_path() -> Path:
    """Path of the shipped ``placename_rules.toml``."""
    from geo_mz.core.catalog import default_catalog_dir

    return default_catalog_dir() / "rules" / "placename_rules.toml"


def _longest_first(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(items), key=lambda s: (-len(s), s)))


def load_rules(path: str | Path | None = None) -> Rules:
    """Read the standardisation rules.

    Parameters
    ----------
    path : str or Path, optional
        A rules TOML file; default the shipped ``layers/rules/placename_rules.toml``.

    Returns
    -------
    Rules

    Raises
    ------
    NamesError
        If the file is missing or malformed (unknown check, source or level).
    """
    return _load_rules(str(Path(path) if path else rules_path()))


@lru_cache(maxsize=8)
def _load_rules(path_str: str) -> Rules:
    path = Path(path_str)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise NamesError(f"cannot read the place-name rules {path}: {exc}") from exc
    try:
        sources = dict(data["sources"])

        def src(keys: str | Sequence[str]) -> str:
            keys = [keys] if isinstance(keys, str) else list(keys)
            missing = [k for k in keys if k not in sources]
            if missing:
                raise NamesError(f"{path}: unknown source key(s) {missing}")
            return "; ".join(sources[k] for k in keys)

        checks = {}
        for key in CHECKS:
            c = data["checks"][key]
            checks[key] = CheckSpec(key, c["zh"], c["en"], c["flag"], c["rule"], src(c["source"]))
        lists = []
        for item in data.get("lists", []):
            if item["check"] not in ("big", "foreign", "odd_word"):
                raise NamesError(f"{path}: list {item['name']} has unknown check {item['check']}")
            lists.append(
                TermList(
                    name=item["name"],
                    check=item["check"],
                    source=src(item["source"]),
                    condition=item.get("condition", ""),
                    terms=tuple(item["terms"]),
                    provinces=tuple(item.get("provinces", ())),
                    homophones=bool(item.get("homophones", False)),
                )
            )
        gen = data["generic"]
        generic = {lv: _longest_first(gen[lv]) for lv in LEVELS}
        committee = tuple(sorted(data["committee"].items(), key=lambda kv: (-len(kv[0]), kv[0])))
        code_ranges = {
            lv: {cat: tuple((int(a), int(b)) for a, b in rs) for cat, rs in cats.items()}
            for lv, cats in data.get("code_ranges", {}).items()
        }
        chars = data.get("characters", {})
        table = chars.get("traditional_table")
        traditional = _read_char_table(path.parent / table) if table else {}
        regional = chars.get("regional_table")
        allow = set(chars.get("allow", ""))
        if regional:
            allow |= {c for c in _read_char_table(path.parent / regional) if len(c) == 1}
    except KeyError as exc:
        raise NamesError(f"{path}: missing key {exc}") from exc
    return Rules(
        checks=checks,
        lists=tuple(lists),
        exemptions=frozenset(data.get("exemptions", {}).get("names", [])),
        generic=generic,
        placeholders=frozenset(gen.get("placeholders", [])),
        committee=committee,
        village_category=dict(data.get("village_category", {})),
        town_category=dict(data.get("town_category", {})),
        code_ranges=code_ranges,
        traditional=traditional,
        allow_chars=frozenset(allow),
        path=path,
    )


def _read_char_table(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        trad, simp = line.split("\t")[:2]
        out[trad] = simp
    return out


# --------------------------------------------------------------------------- names


@dataclass(frozen=True)
class ParsedName:
    """A name split into its parts.

    Attributes
    ----------
    name
        The name as given.
    specific
        专名: the proper part, compared by the duplicate and homophone checks.
    generic
        通名 found at the end (``""`` when none).
    committee
        Committee title stripped from a village name (``"村委会"``), or ``""``.
    category
        Class within which duplicates count: ``村``/``社区``/``其他`` for villages, ``乡级`` for
        towns, ``县级及以上`` for counties and cities, ``省级`` for provinces.
    kind
        Town or village type for the code-range check (``街道``, ``镇``, ``乡``, ``社区``,
        ``村``) or ``""``.
    """

    name: str
    specific: str
    generic: str
    committee: str
    category: str
    kind: str


def parse_name(name: str, level: str, rules: Rules | None = None) -> ParsedName:
    """Split a name into 专名, 通名 and committee title.

    Parameters
    ----------
    name : str
        The name.
    level : str
        One of :data:`geo_mz.names.LEVELS`.
    rules : Rules, optional
        Default :func:`load_rules`.

    Returns
    -------
    ParsedName

    Raises
    ------
    NamesError
        If ``level`` is unknown.
    """
    if level not in LEVELS:
        raise NamesError(f"unknown level {level!r}; use one of {LEVELS}")
    return parse_parts(str(name), level, rules or load_rules())


def parse_parts(name: str, level: str, rules: Rules) -> ParsedName:
    base, committee, implied = name, "", ""
    if level == "village":
        for suffix, cat in rules.committee:
            if name.endswith(suffix) and len(name) > len(suffix):
                base, committee, implied = name[: -len(suffix)], suffix, cat
                break
    generic = ""
    for g in rules.generic[level]:
        if base.endswith(g) and len(base) > len(g):
            # a committee title fixes the class: 门头村社区居委会 is the community 门头村
            own = rules.village_category.get(g, "其他") if level == "village" else ""
            if implied in ("村", "社区") and own != implied:
                continue
            generic = g
            break
    specific = base[: -len(generic)] if generic else base
    kind = ""
    if level == "village":
        category = implied if implied in ("村", "社区") else ""
        category = category or rules.village_category.get(generic, "") or "其他"
        kind = category if category in ("村", "社区") else ""
    elif level == "town":
        category = "乡级"
        kind = rules.town_category.get(generic, "")
    elif level in ("county", "city"):
        category = "县级及以上"
    else:
        category = "省级"
    return ParsedName(name, specific, generic, committee, category, kind)


def parse_table(t: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """Add specific/generic/committee/category/kind and the 专名 pinyin."""
    pairs = list(dict.fromkeys(zip(t["name"], t["level"], strict=True)))
    parsed = {p: parse_parts(p[0], p[1], rules) for p in pairs}
    keys = list(zip(t["name"], t["level"], strict=True))
    for col in ("specific", "generic", "committee", "category", "kind"):
        t[col] = [getattr(parsed[k], col) for k in keys]
    t["specific_pinyin"] = specific_pinyin(t["name"], t["specific"], t["pinyin"])
    return t


def specific_pinyin(names: Iterable[str], specifics: Iterable[str], pinyin: Iterable[str]) -> list:
    """Read the 专名: the first syllables of the name's own reading.

    When every character of the name has one syllable the 专名's syllables are taken from the
    name's reading (the gazetteer's); otherwise the 专名 is read on its own.
    """
    out: list[str | None] = []
    redo = []
    for k, (name, spec, py) in enumerate(zip(names, specifics, pinyin, strict=True)):
        toks = py.split(" ") if py else []
        if len(toks) == len(name):
            out.append(" ".join(toks[: len(spec)]))
        else:
            out.append(None)
            redo.append(k)
    if redo:
        specs = list(specifics) if not isinstance(specifics, list) else specifics
        read = names_pinyin([specs[k] for k in redo])
        for k, r in zip(redo, read, strict=True):
            out[k] = r
    return out

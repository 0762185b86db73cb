"""Name classes (行政区划, 村, 居民区, 道路, 建筑物, 桥梁, 广场 ...) and their 大/洋/怪 lexicons.

:func:`load_class_rules` reads ``layers/rules/placename_classes.toml``: for every class its
通名 and the scope of the duplicate check, and the lexicons of the 不规范地名 checks that go
beyond the administrative divisions (夸大 words and their variant spellings, foreign place and
personal names, a transliteration detector, vulgar and ominous words, puns on idioms, hard-to-read
characters, generic parts that do not fit the class).  :func:`geo_mz.names.check_class_names`
checks a table of names of any class and :func:`geo_mz.names.check_class_proposal` one proposed
name; :func:`geo_mz.names.check_names` runs the same lexicons over the division tables (class
``admin`` for provinces to towns, ``village`` for villages).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geo_mz.names.rules import NamesError

if TYPE_CHECKING:
    from geo_mz.names.rules import Rules

__all__ = [
    "NAME_CLASSES",
    "ClassRules",
    "Lexicon",
    "NameClass",
    "class_rules_path",
    "load_class_rules",
]

#: Classes of place names the checks know, in the order of the rules file.
NAME_CLASSES: tuple[str, ...] = (
    "admin",
    "village",
    "residential",
    "road",
    "building",
    "bridge",
    "square",
    "park",
    "station",
)


@dataclass(frozen=True)
class NameClass:
    """One class of place names: its heading, 通名 (longest first) and duplicate scope."""

    key: str
    zh: str
    generic: tuple[str, ...]
    dup_scope: str


@dataclass(frozen=True)
class Lexicon:
    """A word list of the class checks.

    Attributes
    ----------
    name, check
        List name and the check key it reports under (``big``, ``foreign``, ``vulgar``).
    source
        Resolved source text.
    condition
        What the list stands for (shown in the finding).
    classes
        Classes it applies to (``()``: every class).
    terms
        Terms and their variant spellings.
    origin
        Variant spelling -> the listed term it writes (``{"缔景": "帝景"}``).
    suggestion
        Suggested fix, ``{matched}`` standing for the matched part.
    """

    name: str
    check: str
    source: str
    condition: str
    classes: tuple[str, ...]
    terms: tuple[str, ...]
    origin: Mapping[str, str]
    suggestion: str

    def applies(self, name_class: str) -> bool:
        """Whether the list applies to ``name_class``."""
        return not self.classes or name_class in self.classes


@dataclass(frozen=True)
class ClassRules:
    """The class rules read from ``placename_classes.toml``.

    Attributes
    ----------
    classes
        Class key -> :class:`NameClass`.
    lexicons
        The 大/洋/怪 word lists.
    foreign_exempt
        Names exempt from the foreign lists.
    dup_source
        Source of the duplicate and homophone scopes of the classes (``dup_rule_classes``).
    variant_exempt
        Words masked before the lists are matched (凤凰: its 凰 is no spelling of 皇).
    translit, pun, hard_to_read, mismatch
        Settings of the transliteration detector, the pun check, the hard-to-read check and the
        generic-part checks (each with its resolved ``source``).
    path
        The file read.
    """

    classes: Mapping[str, NameClass]
    lexicons: tuple[Lexicon, ...]
    foreign_exempt: frozenset[str]
    variant_exempt: tuple[str, ...]
    dup_source: str
    translit: Mapping[str, Any]
    pun: Mapping[str, Any]
    hard_to_read: Mapping[str, Any]
    mismatch: Mapping[str, Any]
    path: Path = field(default=Path())


def class_rules_path() -> Path:
    """Path of the shipped ``layers/rules/placename_classes.toml``."""
    from geo_mz.core.catalog import default_catalog_dir

    return default_catalog_dir() / "rules" / "placename_classes.toml"


def load_class_rules(path: str | Path | None = None) -> ClassRules:
    """Read the name classes and their lexicons.

    Parameters
    ----------
    path : str or Path, optional
        A TOML file; default the shipped ``layers/rules/placename_classes.toml``.

    Returns
    -------
    ClassRules

    Raises
    ------
    NamesError
        If the file is missing or malformed (unknown class or source key).
    """
    return _load(str(Path(path) if path else class_rules_path()))


def _variants(term: str, variants: Mapping[str, Sequence[str]]) -> list[str]:
    """Spellings of ``term`` with one character replaced by one of its listed variants.

    Single characters have none: 凰 alone is 凤凰, not a spelling of 皇.
    """
    out: list[str] = []
    if len(term) < 2:
        return out
    for i, ch in enumerate(term):
        for v in variants.get(ch, ()):
            out.append(term[:i] + v + term[i + 1 :])
    return out


@lru_cache(maxsize=4)
def _load(path_str: str) -> ClassRules:
    path = Path(path_str)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise NamesError(
            f"无法读取地名类别规则 / cannot read the class rules {path}: {exc}"
        ) from exc
    from geo_mz.names.rules import load_rules

    sources = {**_admin_sources(load_rules()), **dict(data.get("sources", {}))}

    def src(keys: str | Sequence[str]) -> str:
        keys = [keys] if isinstance(keys, str) else list(keys)
        missing = [k for k in keys if k not in sources]
        if missing:
            raise NamesError(f"{path}: 未知出处 / unknown source key(s) {missing}")
        return "; ".join(sources[k] for k in keys)

    try:
        classes = {}
        for key in NAME_CLASSES:
            c = data["classes"][key]
            gen = tuple(sorted(set(c["generic"]), key=lambda s: (-len(s), s)))
            classes[key] = NameClass(key, c["zh"], gen, c.get("dup_scope", "county"))
        lexicons = []
        for check, section in (("big", "big"), ("foreign", "foreign"), ("vulgar", "vulgar")):
            for item in data.get(section, []):
                unknown = set(item.get("classes", [])) - set(NAME_CLASSES)
                if unknown:
                    raise NamesError(f"{path}: list {item['name']}: unknown classes {unknown}")
                origin: dict[str, str] = {}
                for term in item["terms"]:
                    origin.setdefault(term, term)
                    for v in _variants(term, item.get("variants", {})):
                        origin.setdefault(v, term)
                lexicons.append(
                    Lexicon(
                        name=item["name"],
                        check=check,
                        source=src(item["source"]),
                        condition=item.get("condition", ""),
                        classes=tuple(item.get("classes", [])),
                        terms=tuple(sorted(origin, key=lambda s: (-len(s), s))),
                        origin=origin,
                        suggestion=item.get("suggestion", ""),
                    )
                )
        settings = {}
        for section in ("transliteration", "pun", "hard_to_read", "generic_mismatch"):
            item = dict(data[section])
            item["source"] = src(item["source"])
            for key in ("latin_source", "improper_source"):
                if key in item:
                    item[key] = src(item[key])
            settings[section] = item
    except KeyError as exc:
        raise NamesError(f"{path}: 缺少键 / missing key {exc}") from exc
    return ClassRules(
        classes=classes,
        lexicons=tuple(lexicons),
        foreign_exempt=frozenset(data.get("foreign_exempt", {}).get("names", [])),
        variant_exempt=tuple(data.get("variant_exempt", {}).get("words", [])),
        dup_source=src("dup_rule_classes"),
        translit=settings["transliteration"],
        pun=settings["pun"],
        hard_to_read=settings["hard_to_read"],
        mismatch=settings["generic_mismatch"],
        path=path,
    )


def _admin_sources(rules: Rules) -> dict[str, str]:
    """Read the source keys of ``placename_rules.toml`` (criteria_2018 ...)."""
    data = tomllib.loads(rules.path.read_text(encoding="utf-8")) if rules.path.is_file() else {}
    return dict(data.get("sources", {}))

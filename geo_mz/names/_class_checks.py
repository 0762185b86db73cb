"""The class checks (大/洋/怪 lexicons, transliterations, puns, generic parts, 重 by class).

Package-internal part of :func:`geo_mz.names.check_class_names` and
:func:`geo_mz.names.check_names`.  Every function takes a prepared table (``code``, ``name``,
``full_name``, ``level``, ``county_code``, ``county_name``, ``name_class``, ``specific``,
``pinyin``) and a mask of the rows to report, and returns finding rows (see
:func:`geo_mz.names._name_checks.finding`) that name the matched part and a suggested fix.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from geo_mz.names._name_checks import (
    FINDING_COLUMNS,
    character_findings,
    finding,
    number_findings,
    term_findings,
)
from geo_mz.names.classes import NAME_CLASSES, ClassRules
from geo_mz.names.pinyin import names_pinyin
from geo_mz.names.rules import CHECKS, NamesError, Rules, load_rules

__all__ = [
    "generic_findings",
    "hard_findings",
    "lexicon_findings",
    "pun_findings",
    "run_class_checks",
    "translit_findings",
]

CLASS_CHECKS = (
    "big",
    "foreign",
    "transliteration",
    "vulgar",
    "pun",
    "generic_mismatch",
    "hard_to_read",
)


def _fmt(template: str, **kw: str) -> str:
    out = template
    for k, v in kw.items():
        out = out.replace("{" + k + "}", v)
    return out


def lexicon_findings(t: pd.DataFrame, rules: Rules, crules: ClassRules, report: np.ndarray) -> list:
    """大/洋/怪 word lists of the class rules (terms and their variant spellings)."""
    sub = t[report & ~t["name"].isin(rules.placeholders) & ~t["name"].isin(rules.exemptions)]
    hits: list[tuple[Any, Any, list[str]]] = []
    for lex in crules.lexicons:
        rows = sub[sub["name_class"].map(lex.applies)]
        if lex.check == "foreign":
            rows = rows[~rows["name"].isin(crules.foreign_exempt)]
        if rows.empty:
            continue
        pattern = re.compile("|".join(re.escape(term) for term in lex.terms))
        for _, row in rows[rows["name"].str.contains(pattern)].iterrows():
            masked = row["name"]
            for word in crules.variant_exempt:
                masked = masked.replace(word, "\u3000" * len(word))
            found = list(dict.fromkeys(pattern.findall(masked)))
            if found:
                hits.append((row, lex, found))
    # a word inside a longer word found by another list is not reported again (帝 in 帝景)
    words: dict[tuple[str, str], set[str]] = {}
    for row, lex, found in hits:
        words.setdefault((row["code"], lex.check), set()).update(found)
    out: list[dict[str, Any]] = []
    for row, lex, found in hits:
        same = words[(row["code"], lex.check)]
        found = [f for f in found if not any(f != w and f in w for w in same)]
        if not found:
            continue
        shown = [
            f if lex.origin[f] == f else f"{f} (“{lex.origin[f]}”的谐音/异体写法)" for f in found
        ]
        matched = "、".join(found)
        out.append(
            finding(
                row,
                lex.check,
                rules,
                detail=f"含“{'、'.join(shown)}” ({lex.condition})",
                rule=f"{rules.checks[lex.check].rule} [{lex.name}]",
                source=lex.source,
                matched=matched,
                suggestion=_fmt(lex.suggestion, matched=matched),
            )
        )
    return out


def translit_findings(
    t: pd.DataFrame, rules: Rules, crules: ClassRules, report: np.ndarray
) -> list:
    """洋: transliteration runs in the proper part (classes listed) and Latin words (all).

    A run of characters of the transliteration table with one of the ``strong`` ones; a word of
    Latin letters (外文) in any class.
    """
    cfg = crules.translit
    out = _latin_findings(t[report], rules, cfg)
    sub = t[report & t["name_class"].isin(cfg["classes"])]
    sub = sub[~sub["name"].isin(crules.foreign_exempt)]
    if sub.empty:
        return out
    chars, strong = set(cfg["chars"]), set(cfg["strong"])
    run_re = re.compile("[" + "".join(sorted(chars)) + "]{" + str(int(cfg["min_run"])) + ",}")
    for _, row in sub.iterrows():
        runs = [
            m.group(0)
            for m in run_re.finditer(row["specific"] or row["name"])
            if sum(c in strong for c in m.group(0)) >= int(cfg["min_strong"])
        ]
        if not runs:
            continue
        matched = "、".join(runs)
        out.append(
            finding(
                row,
                "transliteration",
                rules,
                detail=f"“{matched}”由外语译音用字组成",
                source=cfg["source"],
                matched=matched,
                suggestion=_fmt(cfg["suggestion"], matched=matched),
            )
        )
    return out


def _latin_findings(t: pd.DataFrame, rules: Rules, cfg: Any) -> list:
    """洋 (外文): a run of Latin letters (after NFKC: Ｐａｒｋ is Park) of ``latin_run`` or more."""
    n = int(cfg.get("latin_run", 0))
    if not n or t.empty:
        return []
    folded = t["name"].map(lambda s: unicodedata.normalize("NFKC", s))
    pattern = re.compile("[A-Za-z]{" + str(n) + ",}")
    out = []
    for (_, row), name in zip(t.iterrows(), folded, strict=True):
        words = pattern.findall(name)
        if not words:
            continue
        matched = "、".join(dict.fromkeys(words))
        out.append(
            finding(
                row,
                "foreign",
                rules,
                detail=f"含外文“{matched}”",
                rule=f"{rules.checks['foreign'].rule} [foreign_script]",
                source=cfg.get("latin_source", ""),
                matched=matched,
                suggestion=_fmt(cfg.get("latin_suggestion", ""), matched=matched),
            )
        )
    return out


@lru_cache(maxsize=4)
def _idioms(length: int, listed: tuple[str, ...]) -> dict[str, str]:
    """Toned pinyin (TONE3, space-joined) -> idiom: the listed ones and pypinyin's phrases."""
    from pypinyin import Style, lazy_pinyin
    from pypinyin.phrases_dict import phrases_dict

    out: dict[str, str] = {}
    for idiom in listed:
        key = lazy_pinyin(idiom, style=Style.TONE3, neutral_tone_with_five=True)
        out.setdefault(" ".join(key), idiom)
    for phrase, readings in phrases_dict.items():
        if len(phrase) == length and all("\u4e00" <= c <= "\u9fff" for c in phrase):
            out.setdefault(" ".join(_tone3(r[0]) for r in readings), phrase)
    return out


def _tone3(mark: str) -> str:
    """Convert a tone-marked syllable to TONE3 (``shí`` -> ``shi2``)."""
    from pypinyin.contrib.tone_convert import to_tone3

    return str(to_tone3(mark))


def pun_findings(t: pd.DataFrame, rules: Rules, crules: ClassRules, report: np.ndarray) -> list:
    """怪 (谐音): a four-character idiom written with other characters of the same sound."""
    from pypinyin import Style, lazy_pinyin
    from pypinyin.phrases_dict import phrases_dict

    cfg = crules.pun
    n = int(cfg["length"])
    sub = t[report & t["name_class"].isin(cfg["classes"])]
    sub = sub[sub["specific"].str.len() >= n]
    if sub.empty:
        return []
    listed = tuple(cfg.get("idioms", ()))
    idioms = _idioms(n, listed)
    known = set(listed) | set(phrases_dict)
    out = []
    for _, row in sub.iterrows():
        spec = row["specific"]
        tones = lazy_pinyin(spec, style=Style.TONE3, neutral_tone_with_five=True)
        if len(tones) != len(spec):
            continue
        for i in range(len(spec) - n + 1):
            window = spec[i : i + n]
            idiom = idioms.get(" ".join(tones[i : i + n]))
            if not idiom or idiom == window or window in known:
                continue
            if sum(a != b for a, b in zip(window, idiom, strict=True)) > n // 2:
                continue
            out.append(
                finding(
                    row,
                    "pun",
                    rules,
                    detail=f"“{window}”谐音“{idiom}”",
                    source=cfg["source"],
                    matched=window,
                    suggestion=_fmt(cfg["suggestion"], matched=window, idiom=idiom),
                )
            )
            break
    return out


def _level(ch: str) -> int:
    """GB 2312 level of a character: 1 (common), 2 (less common), 0 (outside GB 2312)."""
    try:
        b = ch.encode("gb2312")
    except UnicodeEncodeError:
        return 0
    if len(b) != 2:
        return 1  # ASCII: not a Han character
    return 1 if b[0] < 0xD8 else 2


def hard_findings(t: pd.DataFrame, rules: Rules, crules: ClassRules, report: np.ndarray) -> list:
    """怪 (难读): characters outside GB 2312 level 1 in the proper part (classes listed)."""
    cfg = crules.hard_to_read
    sub = t[report & t["name_class"].isin(cfg["classes"])]
    out = []
    for _, row in sub.iterrows():
        hard = [
            c
            for c in dict.fromkeys(row["specific"] or row["name"])
            if "\u3400" <= c <= "\U0003ffff"
            and c not in rules.allow_chars
            and c not in rules.traditional
            and _level(c) != 1
        ]
        if len(hard) < int(cfg["min_chars"]):
            continue
        matched = "、".join(hard)
        out.append(
            finding(
                row,
                "hard_to_read",
                rules,
                severity="notice",
                detail=f"次常用字或生僻字 {matched}",
                source=cfg["source"],
                matched=matched,
                suggestion=_fmt(cfg["suggestion"], matched=matched),
            )
        )
    return out


def generic_findings(t: pd.DataFrame, rules: Rules, crules: ClassRules, report: np.ndarray) -> list:
    """大 (通名夸大) and 怪 (通名叠用) of the generic parts of non-admin names."""
    cfg = crules.mismatch
    sub = t[report & ~t["name_class"].isin(["admin", "village"])]
    others = sorted(
        {
            g
            for c in crules.classes.values()
            if c.key not in ("admin", "village")
            for g in c.generic
        },
        key=lambda s: (-len(s), s),
    )
    long_generic = [g for g in others if len(g) >= 2]
    exempt = set(cfg["stacked_exempt"])
    big = sorted(cfg["big"], key=lambda s: (-len(s), s))
    improper = {
        k: sorted(v, key=lambda s: (-len(s), s)) for k, v in cfg.get("improper", {}).items()
    }
    out = []
    for _, row in sub.iterrows():
        name, cls = row["name"], row["name_class"]
        own = crules.classes[cls].generic
        if cls in cfg["big_classes"]:
            tail = next((g for g in big if name.endswith(g) and len(name) > len(g)), "")
            if tail and tail not in own:
                out.append(
                    finding(
                        row,
                        "big",
                        rules,
                        detail=f"{crules.classes[cls].zh}以“{tail}”为通名 (通名夸大)",
                        rule=f"{rules.checks['big'].rule} [generic_mismatch]",
                        source=cfg["source"],
                        matched=tail,
                        suggestion=_fmt(cfg["suggestion"], matched=tail),
                    )
                )
        bad = next(
            (g for g in improper.get(cls, ()) if name.endswith(g) and len(name) > len(g)), ""
        )
        if bad:
            out.append(
                finding(
                    row,
                    "generic_mismatch",
                    rules,
                    detail=f"{crules.classes[cls].zh}以“{bad}”为通名 (通名不当)",
                    source=cfg.get("improper_source", cfg["source"]),
                    matched=bad,
                    suggestion=_fmt(
                        cfg.get("improper_suggestion", ""),
                        matched=bad,
                        **{"class": crules.classes[cls].zh},
                    ),
                )
            )
        g2 = next((g for g in long_generic if name.endswith(g) and len(name) > len(g)), "")
        if not g2 or g2 in exempt:
            continue
        head = name[: -len(g2)]
        g1 = next((g for g in long_generic if head.endswith(g) and len(head) > len(g)), "")
        if g1 and g1 != g2 and g1 + g2 not in exempt and g1 not in exempt:
            out.append(
                finding(
                    row,
                    "generic_mismatch",
                    rules,
                    detail=f"通名叠用“{g1}”+“{g2}”",
                    source=cfg["source"],
                    matched=g1 + g2,
                    suggestion=_fmt(cfg["stacked_suggestion"], matched=g1 + g2),
                )
            )
    return out


def class_checks(
    t: pd.DataFrame, rules: Rules, crules: ClassRules, report: np.ndarray, wanted: set[str]
) -> list[dict[str, Any]]:
    """Every per-name class check in ``wanted`` over a prepared table."""
    rows: list[dict[str, Any]] = []
    if wanted & {"big", "foreign", "vulgar"}:
        rows += lexicon_findings(t, rules, crules, report)
    if "transliteration" in wanted:
        rows += translit_findings(t, rules, crules, report)
    if "pun" in wanted:
        rows += pun_findings(t, rules, crules, report)
    if "hard_to_read" in wanted:
        rows += hard_findings(t, rules, crules, report)
    if wanted & {"big", "generic_mismatch"}:
        rows += generic_findings(t, rules, crules, report)
    return [r for r in rows if r["check"] in wanted]


# --------------------------------------------------------------------------- tables of names


def _prepare(table: pd.DataFrame, name_class: str | None, crules: ClassRules) -> pd.DataFrame:
    if "name" not in table.columns:
        raise NamesError("地名表缺少 name 列 / the names table lacks the column 'name'")
    t = pd.DataFrame({"name": table["name"].astype(str).str.strip().to_numpy()})
    if name_class is not None:
        t["name_class"] = name_class
    elif "class" in table.columns:
        t["name_class"] = table["class"].astype(str).str.strip().to_numpy()
    else:
        raise NamesError(
            "请给出地名类别 (--class) 或在表中加 class 列 / give the class (--class) or a "
            f"'class' column (one of {', '.join(NAME_CLASSES)})"
        )
    unknown = sorted(set(t["name_class"]) - set(NAME_CLASSES))
    if unknown:
        raise NamesError(
            f"未知地名类别 / unknown class(es) {unknown}; use one of {', '.join(NAME_CLASSES)}"
        )
    empty = t.index[t["name"].isin(["", "nan", "None"])]
    if len(empty):
        raise NamesError(
            f"地名表第 {int(empty[0]) + 2} 行名称为空 / row {int(empty[0]) + 2}: empty name"
        )
    code = (
        table["code"].astype(str).to_numpy()
        if "code" in table.columns
        else np.array([f"#{k + 1}" for k in range(len(t))], dtype=object)
    )
    t["code"] = code
    division = pd.Series(code).str.fullmatch(r"\d{6,12}").to_numpy()
    if "county_code" in table.columns:
        county = table["county_code"].astype(str).to_numpy()
    elif division.any():
        county = np.where(division, pd.Series(code).str[:6], None)
    else:  # no codes at all: the table is the names of one area
        county = np.full(len(t), "*", dtype=object)
    t["county_code"] = county
    t["city_code"] = (
        table["city_code"].astype(str).to_numpy()
        if "city_code" in table.columns
        else pd.Series(county).str[:4].to_numpy()
    )
    t["county_name"] = (
        table["county_name"].astype(str).to_numpy() if "county_name" in table.columns else ""
    )
    t["full_name"] = (
        table["full_name"].astype(str).to_numpy() if "full_name" in table.columns else t["name"]
    )
    t["level"] = t["name_class"]
    t["generic"] = [
        next((g for g in crules.classes[c].generic if n.endswith(g) and len(n) > len(g)), "")
        for n, c in zip(t["name"], t["name_class"], strict=True)
    ]
    t["specific"] = [n[: -len(g)] if g else n for n, g in zip(t["name"], t["generic"], strict=True)]
    t["committee"] = ""
    t["kind"] = ""
    codes = [c if c and c != "None" else None for c in t["county_code"]]
    t["pinyin"] = names_pinyin(t["name"].tolist(), codes)
    return t


def _dup_findings(t: pd.DataFrame, rules: Rules, crules: ClassRules, homophone: bool) -> list:
    """重: the same name (or the same reading) within a class and its scope (county or city)."""
    check = "homophone" if homophone else "duplicate"
    out = []
    scope_of = {k: c.dup_scope for k, c in crules.classes.items()}
    t = t.assign(_scope=[scope_of[c] for c in t["name_class"]])
    t["_scope_code"] = np.where(t["_scope"] == "city", t["city_code"], t["county_code"])
    key = "pinyin" if homophone else "name"
    groups = t[t["_scope_code"].notna()].groupby(["name_class", "_scope_code", key], sort=True)
    for (cls, scope_code, _), g in groups:
        if len(g) < 2 or (homophone and g["name"].nunique() < 2):
            continue
        for _, row in g.iterrows():
            others = g[g["name"] != row["name"]] if homophone else g[g["code"] != row["code"]]
            if others.empty:
                continue
            what = "同音" if homophone else "同名"
            area = "市" if scope_of[cls] == "city" else "县(市、区)"
            out.append(
                finding(
                    row,
                    check,
                    rules,
                    severity="error",
                    scope="city" if scope_of[cls] == "city" else "county",
                    scope_code=scope_code,
                    related_codes=";".join(others["code"]),
                    related_names=";".join(others["full_name"]),
                    detail=f"同一{area}内{crules.classes[cls].zh}{what}: "
                    + "、".join(dict.fromkeys(others["name"])),
                    rule=f"{rules.checks[check].rule} [{crules.classes[cls].zh}]",
                    source=crules.dup_source,
                    matched=row["name"],
                    suggestion="更名以示区别: 用当地历史地名、地理特征或区片名, 不加序数",
                )
            )
    return out


def run_class_checks(
    table: pd.DataFrame,
    *,
    name_class: str | None,
    rules: Rules | None,
    class_rules: ClassRules,
    checks: Sequence[str] | None,
) -> pd.DataFrame:
    """:func:`geo_mz.names.check_class_names` (documented there)."""
    rules = rules or load_rules()
    wanted = set(CHECKS if checks is None else checks)
    if wanted - set(CHECKS):
        raise NamesError(f"unknown checks {sorted(wanted - set(CHECKS))}; use {CHECKS}")
    t = _prepare(table, name_class, class_rules)
    report = np.ones(len(t), dtype=bool)
    rows: list[dict[str, Any]] = []
    if "duplicate" in wanted:
        rows += _dup_findings(t, rules, class_rules, homophone=False)
    if "homophone" in wanted:
        rows += _dup_findings(t, rules, class_rules, homophone=True)
    if wanted & {"big", "foreign", "odd_word"}:  # the lists of placename_rules.toml hold too
        rows += [r for r in term_findings(t, rules, report) if r["check"] in wanted]
    seen = {(r["code"], r["check"], r["matched"]) for r in rows}
    rows += [
        r
        for r in class_checks(t, rules, class_rules, report, wanted)
        if (r["code"], r["check"], r["matched"]) not in seen
    ]
    if wanted & {"traditional", "rare_char", "mixed_script"}:
        rows += [r for r in character_findings(t, rules, report) if r["check"] in wanted]
    if "number_name" in wanted:
        rows += number_findings(t, rules, report)
    out = pd.DataFrame(rows, columns=list(FINDING_COLUMNS))
    if out.empty:
        return out.astype(object)
    order = {c: i for i, c in enumerate(CHECKS)}
    out = out.assign(
        _o=out["check"].map(order), _n=out["code"].map({c: i for i, c in enumerate(t["code"])})
    )
    return (
        out.sort_values(["_n", "_o"], kind="stable")
        .drop(columns=["_o", "_n"])
        .reset_index(drop=True)
    )

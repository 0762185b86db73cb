"""The per-name standardisation checks: restricted words, odd characters and name structure.

Package-internal part of :func:`geo_mz.names.check_names` and :func:`geo_mz.names.check_proposal`.
Each check looks at one name at a time, over a parsed names table (``name``, ``specific``,
``generic``, ``committee``, ``kind``, ``pinyin`` ...) and a mask of the rows to report:
:func:`term_findings` the 大/洋/怪 word lists of the rules (words and their homophones),
:func:`character_findings` traditional or variant, rare (outside GB 2312) and non-Han
characters, :func:`structure_findings` number-only 专名, a missing 通名 and a code range that
does not fit the 通名. :func:`finding` builds one row of the findings table; the duplicate and
homophone checks, which compare names within a scope, are in :mod:`geo_mz.names.check`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from geo_mz.names.gazetteer import names_pinyin
from geo_mz.names.rules import Rules, TermList

__all__ = [
    "FINDING_COLUMNS",
    "character_findings",
    "finding",
    "number_findings",
    "structure_findings",
    "term_findings",
]

#: Columns of the findings table.
FINDING_COLUMNS: tuple[str, ...] = (
    "code",
    "name",
    "full_name",
    "level",
    "county_code",
    "county_name",
    "check",
    "check_zh",
    "flag",
    "severity",
    "scope",
    "scope_code",
    "related_codes",
    "related_names",
    "detail",
    "rule",
    "source",
    "matched",
    "suggestion",
)

_NUMERALS = frozenset("一二三四五六七八九十百千万零〇两壹贰叁肆伍陆柒捌玖拾第")
HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0003ffff]")
_LATIN = re.compile(r"[A-Za-z]")
_DIGIT = re.compile(r"[0-9]")


def finding(row: Mapping[str, Any], check: str, rules: Rules, **kw: Any) -> dict[str, Any]:
    spec = rules.checks[check]
    out = {
        "code": row["code"],
        "name": row["name"],
        "full_name": row["full_name"],
        "level": row["level"],
        "county_code": row["county_code"],
        "county_name": row["county_name"],
        "check": check,
        "check_zh": spec.zh,
        "flag": spec.flag,
        "severity": "warning",
        "scope": "name",
        "scope_code": None,
        "related_codes": "",
        "related_names": "",
        "detail": "",
        "rule": spec.rule,
        "source": spec.source,
        "matched": "",
        "suggestion": "",
    }
    out.update(kw)
    return out


def term_findings(t: pd.DataFrame, rules: Rules, report: np.ndarray) -> list[dict[str, Any]]:
    out = []
    sub = t[report & ~t["name"].isin(rules.placeholders)]
    sub = sub[~sub["name"].isin(rules.exemptions) & ~sub["specific"].isin(rules.exemptions)]
    names = sub["name"]
    for tl in rules.lists:
        pattern = "|".join(re.escape(term) for term in tl.terms)
        hit = names.str.contains(pattern, regex=True)
        if tl.provinces:
            hit &= sub["code"].str[:2].isin(tl.provinces)
        rows = sub[hit]
        for _, row in rows.iterrows():
            found = [term for term in tl.terms if term in row["name"]]
            detail = f"含“{'、'.join(found)}” ({tl.condition})"
            out.append(_term_finding(row, tl, rules, detail, "、".join(found)))
        if tl.homophones:
            readings = names_pinyin(list(tl.terms))
            syl = " " + sub["pinyin"].fillna("") + " "
            for term, reading in zip(tl.terms, readings, strict=True):
                sound = syl.str.contains(f" {reading} ", regex=False)
                rows = sub[sound & ~names.str.contains(term, regex=False)]
                for _, row in rows.iterrows():
                    detail = f"与“{term}”谐音 ({reading}) ({tl.condition})"
                    out.append(_term_finding(row, tl, rules, detail, _sounding(row, reading)))
    return out


def _sounding(row: Mapping[str, Any], reading: str) -> str:
    """Find the characters of ``row``'s name that read ``reading`` (a homophone's match)."""
    syl = str(row["pinyin"]).split(" ")
    want = reading.split(" ")
    name = str(row["name"])
    if len(syl) != len(name):
        return reading
    for i in range(len(syl) - len(want) + 1):
        if syl[i : i + len(want)] == want:
            return name[i : i + len(want)]
    return reading


def _term_finding(
    row: Mapping[str, Any], tl: TermList, rules: Rules, detail: str, matched: str
) -> dict:
    return finding(
        row,
        tl.check,
        rules,
        detail=detail,
        rule=f"{rules.checks[tl.check].rule} [{tl.name}]",
        source=tl.source,
        matched=matched,
        suggestion=(
            f"去掉“{matched}”, 改用中文词语命名, 不用外国地名、人名 (历史、纪念、友好地名除外)"
            if tl.check == "foreign"
            else f"去掉“{matched}”, 以反映当地地理、历史、文化特征的词语命名"
        ),
    )


def _char_classes(chars: Iterable[str], rules: Rules) -> dict[str, str]:
    """Class of each character that a check reports: traditional, rare, latin, digit, symbol."""
    out = {}
    for ch in chars:
        if ch in rules.allow_chars or ch == "〇":
            continue
        if ch in rules.traditional:
            out[ch] = "traditional"
        elif HAN.match(ch):
            try:
                ch.encode("gb2312")
            except UnicodeEncodeError:
                out[ch] = "rare"
        else:
            folded = unicodedata.normalize("NFKC", ch)
            if _LATIN.fullmatch(folded or " "):
                out[ch] = "latin"
            elif _DIGIT.fullmatch(folded or " "):
                out[ch] = "digit"
            else:
                out[ch] = "symbol"
    return out


def character_findings(t: pd.DataFrame, rules: Rules, report: np.ndarray) -> list[dict]:
    out = []
    sub = t[report & ~t["name"].isin(rules.placeholders)]
    classes = _char_classes(set("".join(sub["name"])), rules)
    if not classes:
        return out
    odd = re.compile("[" + "".join(re.escape(c) for c in classes) + "]")
    for _, row in sub[sub["name"].str.contains(odd)].iterrows():
        found: dict[str, list[str]] = {}
        for ch in dict.fromkeys(odd.findall(row["name"])):
            found.setdefault(classes[ch], []).append(ch)
        if "traditional" in found:
            pairs = "、".join(f"{c}→{rules.traditional[c]}" for c in found["traditional"])
            fixed = "".join(rules.traditional.get(c, c) for c in row["name"])
            out.append(
                finding(
                    row,
                    "traditional",
                    rules,
                    detail=f"繁体/异体字 {pairs}",
                    matched="、".join(found["traditional"]),
                    suggestion=f"改用规范字: {fixed}",
                )
            )
        if "rare" in found:
            chars = "、".join(f"{c} (U+{ord(c):04X})" for c in found["rare"])
            out.append(
                finding(
                    row,
                    "rare_char",
                    rules,
                    detail=f"GB 2312 以外的汉字 {chars}",
                    matched="、".join(found["rare"]),
                    suggestion="改用规范常用字 (地方标准地名用字可列入规则文件的 allow)",
                )
            )
        parts = []
        for cls, zh in (("latin", "字母"), ("digit", "数字"), ("symbol", "符号")):
            if cls in found:
                parts.append(f"{zh} {' '.join(found[cls])}")
        if parts:
            odd_chars = [c for cls in ("latin", "digit", "symbol") for c in found.get(cls, [])]
            out.append(
                finding(
                    row,
                    "mixed_script",
                    rules,
                    detail="；".join(parts),
                    matched="".join(odd_chars),
                    suggestion="专名用汉字, 不用字母、阿拉伯数字和符号",
                )
            )
    return out


def _is_number(specific: str) -> bool:
    s = unicodedata.normalize("NFKC", specific)
    return bool(s) and all(c.isdigit() or c in _NUMERALS for c in s)


def number_findings(t: pd.DataFrame, rules: Rules, report: np.ndarray) -> list[dict]:
    """Names whose 专名 is a number only."""
    out = []
    sub = t[report & ~t["name"].isin(rules.placeholders)]
    for _, row in sub[sub["specific"].map(_is_number)].iterrows():
        out.append(
            finding(
                row,
                "number_name",
                rules,
                detail=f"专名“{row['specific']}”",
                matched=row["specific"],
                suggestion="以反映地理特征、历史文化的词语作专名, 不用序数",
            )
        )
    return out


def structure_findings(t: pd.DataFrame, rules: Rules, report: np.ndarray) -> list[dict]:
    out = number_findings(t, rules, report)
    sub = t[report & ~t["name"].isin(rules.placeholders)]
    missing = sub[(sub["generic"] == "") & (sub["committee"] == "")]
    for _, row in missing.iterrows():
        expected = "、".join(rules.generic[row["level"]][:8])
        out.append(
            finding(
                row,
                "missing_generic",
                rules,
                detail=f"未以本级通名结尾 (如 {expected})",
                suggestion=f"加本级通名, 如 {row['name']}{rules.generic[row['level']][0]}",
            )
        )
    for level, width in (("town", 3), ("village", 3)):
        ranges = rules.code_ranges.get(level, {})
        rows = sub[(sub["level"] == level) & sub["kind"].isin(list(ranges))]
        seg = rows["code"].str[-width:]
        ok = pd.Series(False, index=rows.index)
        for kind, rs in ranges.items():
            is_kind = rows["kind"] == kind
            num = pd.to_numeric(seg, errors="coerce")
            inside = pd.Series(False, index=rows.index)
            for a, b in rs:
                inside |= (num >= a) & (num <= b)
            ok |= is_kind & inside
        for _, row in rows[~ok].iterrows():
            want = ", ".join(f"{a:03d}-{b:03d}" for a, b in ranges[row["kind"]])
            detail = f"“{row['kind']}”的代码段应为 {want}，实为 {row['code'][-width:]}" + (
                f" ({row['generic']})" if row["generic"] else ""
            )
            out.append(
                finding(
                    row,
                    "code_type",
                    rules,
                    severity="notice",
                    detail=detail,
                    matched=row["code"][-width:],
                    suggestion="核对区划代码段或通名, 使二者一致",
                )
            )
    return out

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

__all__ = ["character_findings", "finding", "structure_findings", "term_findings"]

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
            out.append(_term_finding(row, tl, rules, f"含“{'、'.join(found)}” ({tl.condition})"))
        if tl.homophones:
            readings = names_pinyin(list(tl.terms))
            syl = " " + sub["pinyin"].fillna("") + " "
            for term, reading in zip(tl.terms, readings, strict=True):
                sound = syl.str.contains(f" {reading} ", regex=False)
                rows = sub[sound & ~names.str.contains(term, regex=False)]
                for _, row in rows.iterrows():
                    detail = f"与“{term}”谐音 ({reading}) ({tl.condition})"
                    out.append(_term_finding(row, tl, rules, detail))
    return out


def _term_finding(row: Mapping[str, Any], tl: TermList, rules: Rules, detail: str) -> dict:
    return finding(
        row,
        tl.check,
        rules,
        detail=detail,
        rule=f"{rules.checks[tl.check].rule} [{tl.name}]",
        source=tl.source,
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
            out.append(finding(row, "traditional", rules, detail=f"繁体/异体字 {pairs}"))
        if "rare" in found:
            chars = "、".join(f"{c} (U+{ord(c):04X})" for c in found["rare"])
            out.append(finding(row, "rare_char", rules, detail=f"GB 2312 以外的汉字 {chars}"))
        parts = []
        for cls, zh in (("latin", "字母"), ("digit", "数字"), ("symbol", "符号")):
            if cls in found:
                parts.append(f"{zh} {' '.join(found[cls])}")
        if parts:
            out.append(finding(row, "mixed_script", rules, detail="；".join(parts)))
    return out


def _is_number(specific: str) -> bool:
    s = unicodedata.normalize("NFKC", specific)
    return bool(s) and all(c.isdigit() or c in _NUMERALS for c in s)


def structure_findings(t: pd.DataFrame, rules: Rules, report: np.ndarray) -> list[dict]:
    out = []
    sub = t[report & ~t["name"].isin(rules.placeholders)]
    for _, row in sub[sub["specific"].map(_is_number)].iterrows():
        out.append(finding(row, "number_name", rules, detail=f"专名“{row['specific']}”"))
    missing = sub[(sub["generic"] == "") & (sub["committee"] == "")]
    for _, row in missing.iterrows():
        expected = "、".join(rules.generic[row["level"]][:8])
        out.append(
            finding(row, "missing_generic", rules, detail=f"未以本级通名结尾 (如 {expected})")
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
            out.append(finding(row, "code_type", rules, severity="notice", detail=detail))
    return out

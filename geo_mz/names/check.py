"""Place-name standardisation checks (不规范地名清理) and naming-proposal checks.

:func:`check_names` runs every check over a gazetteer table
(:func:`geo_mz.names.load_gazetteer`, :func:`geo_mz.names.index_frame`, or any table
with ``code``, ``name`` and ``level``) and
returns one row per finding; :func:`check_proposal` checks a proposed new name against the same
rules and the existing names of its area (and, given a point, the place names nearby).

The rules, their word lists and the sources they come from are data, not code:
``layers/rules/placename_rules.toml`` (see :func:`load_rules`).

Checks
------
==================  ==========  ===============================================================
check               flag        what
==================  ==========  ===============================================================
duplicate           DUP (重)    same 专名 (proper part), same class, same scope: county-level and
                                above nationally; towns within a county; villages within a town
                                (errors); villages of different towns of one county (notices)
homophone           DUP (重)    same tone-less pinyin of the 专名, other characters, same scopes
big                 BIG (大)    restricted words (宇宙, 中央, 天安门 and its homophones ...)
foreign             FOREIGN     foreign place names (维也纳, 巴黎 ...)
odd_word            ODD (怪)    feudal words (皇帝, 帝都 ...)
traditional         ODD (怪)    traditional or variant characters (OpenCC character table)
rare_char           ODD (怪)    Han characters outside GB 2312
mixed_script        ODD (怪)    Latin letters, Arabic digits or symbols (·, -, brackets ...)
number_name         ODD (怪)    a 专名 of numerals only
missing_generic     GENERIC     no 通名 of its level (村/社区, 镇/乡/街道, 区/县/市/旗 ...)
code_type           CODE        the code range of a town or village does not fit its 通名
==================  ==========  ===============================================================

A name is split into its committee title (村民委员会, 居委会 ...: stripped, but it implies the
class), its 通名 (the longest generic part of its level at the end) and its 专名 (the rest).
Village classes are 村 and 社区 (others: 其他); towns form one class (乡、镇、街道 names must
differ within a county whatever their 通名); county- and city-level units form one class.

Modules
-------
This module holds the checks and re-exports the rest of the public API:
:mod:`geo_mz.names.rules` reads the rules and parses names, :mod:`geo_mz.names.report` writes
the reports (:func:`county_summary`, :func:`report_tables`; the files are written by
:func:`geo_mz.outputs.write_names_report`).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from geo_mz.names.gazetteer import LEVELS, GazetteerIndex, names_pinyin, subtree
from geo_mz.names.report import county_summary, report_tables
from geo_mz.names.rules import (
    CHECKS,
    SCOPE_ZH,
    NamesError,
    ParsedName,
    Rules,
    TermList,
    load_rules,
    parse_name,
    parse_parts,
    parse_table,
    specific_pinyin,
)
from geo_mz.names.rules import CheckSpec as CheckSpec
from geo_mz.names.rules import rules_path as rules_path

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = [
    "CHECKS",
    "FINDING_COLUMNS",
    "NamesError",
    "ParsedName",
    "ProposalResult",
    "Reason",
    "Rules",
    "check_names",
    "check_proposal",
    "county_summary",
    "load_rules",
    "parse_name",
    "report_tables",
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
)

_NUMERALS = frozenset("一二三四五六七八九十百千万零〇两壹贰叁肆伍陆柒捌玖拾第")
HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0003ffff]")
_LATIN = re.compile(r"[A-Za-z]")
_DIGIT = re.compile(r"[0-9]")


# --------------------------------------------------------------------------- checks


def _prepare(table: pd.DataFrame) -> pd.DataFrame:
    missing = {"code", "name", "level"} - set(table.columns)
    if missing:
        raise NamesError(f"the names table lacks the column(s) {sorted(missing)}")
    unknown = set(table["level"]) - set(LEVELS)
    if unknown:
        raise NamesError(f"unknown levels {sorted(unknown)}; use {LEVELS}")
    t = table[["code", "name", "level"]].astype({"code": str, "name": str}).copy()
    t["parent_code"] = (
        table["parent_code"].where(table["parent_code"].notna(), None)
        if "parent_code" in table
        else _parent_by_code(t)
    )
    # town and county of every unit through the parent chain
    parent = pd.Series(t["parent_code"].to_numpy(), index=t["code"].to_numpy())
    lvl = t["level"].to_numpy()
    code = t["code"].to_numpy()
    par = t["parent_code"].to_numpy()
    town = np.where(lvl == "village", par, np.where(lvl == "town", code, None))
    county = np.where(
        lvl == "village",
        pd.Series(town).map(parent).to_numpy(),
        np.where(lvl == "town", par, np.where(lvl == "county", code, None)),
    )
    t["town_code"] = town
    t["county_code"] = county
    names = pd.Series(t["name"].to_numpy(), index=t["code"].to_numpy())
    t["county_name"] = pd.Series(county).map(names).to_numpy()
    if "full_name" in table:
        t["full_name"] = table["full_name"].astype(str).to_numpy()
    else:
        t["full_name"] = _full_names(t, names, parent)
    return t.reset_index(drop=True)


def _parent_by_code(t: pd.DataFrame) -> pd.Series:
    cut = t["level"].map({"province": 0, "city": 2, "county": 4, "town": 6, "village": 9})
    return pd.Series(
        [c[:k] if k else None for c, k in zip(t["code"], cut, strict=True)],
        index=t.index,
        dtype=object,
    )


def _full_names(t: pd.DataFrame, names: pd.Series, parent: pd.Series) -> np.ndarray:
    out = []
    for code, name in zip(t["code"], t["name"], strict=True):
        chain = [name]
        p = parent.get(code)
        while p is not None and p in names.index and len(chain) < 6:
            chain.append(names[p])
            p = parent.get(p)
        out.append(" ".join(reversed(chain)))
    return np.array(out, dtype=object)


def _finding(row: Mapping[str, Any], check: str, rules: Rules, **kw: Any) -> dict[str, Any]:
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


def _scope_groups(t: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame, str]]:
    """(scope, severity, rows, column of the scope code) for the duplicate/homophone checks."""
    lvl = t["level"]
    return [
        ("national", "error", t[lvl.isin(["city", "county"])], ""),
        ("county", "error", t[lvl == "town"], "county_code"),
        ("town", "error", t[lvl == "village"], "town_code"),
        ("county", "notice", t[lvl == "village"], "county_code"),
    ]


def _group_findings(
    t: pd.DataFrame,
    rules: Rules,
    report: np.ndarray,
    *,
    homophone: bool,
) -> list[dict[str, Any]]:
    out = []
    check = "homophone" if homophone else "duplicate"
    report_s = pd.Series(report, index=t.index)
    for scope, severity, rows, scope_col in _scope_groups(t):
        rows = rows[~rows["name"].isin(rules.placeholders)]
        key = "specific_pinyin" if homophone else "specific"
        if homophone:
            rows = rows[rows["specific_pinyin"] != ""]
        by = [scope_col, "category", key] if scope_col else ["category", key]
        if scope_col:
            rows = rows[rows[scope_col].notna()]
        multi = rows[rows.duplicated(by, keep=False)]
        if homophone:
            n_spec = multi.groupby(by, sort=False)["specific"].transform("nunique")
            multi = multi[n_spec > 1]
        if multi.empty:
            continue
        gid = multi.groupby(by, sort=False).ngroup().to_numpy()
        order = np.argsort(gid, kind="stable")
        bounds = np.flatnonzero(np.r_[True, gid[order][1:] != gid[order][:-1], True])
        col = {c: multi[c].to_numpy() for c in ("code", "name", "full_name", "specific")}
        town = multi["town_code"].to_numpy()
        scope_codes = multi[scope_col].to_numpy() if scope_col else None
        flags = report_s.loc[multi.index].to_numpy()
        records = multi.to_dict("records")
        for a, b in itertools.pairwise(bounds):
            members = order[a:b].tolist()
            for i in members:
                if not flags[i]:
                    continue
                me_code, me_spec = col["code"][i], col["specific"][i]
                others = [j for j in members if j != i]
                if homophone:
                    others = [j for j in others if col["specific"][j] != me_spec]
                if scope == "national":  # a city and its own county-level namesake: one place
                    others = [
                        j
                        for j in others
                        if not (
                            col["code"][j].startswith(me_code) or me_code.startswith(col["code"][j])
                        )
                    ]
                if severity == "notice":  # villages of other towns only
                    others = [j for j in others if town[j] != town[i]]
                if not others:
                    continue
                row = records[i]
                if homophone:
                    specs = "、".join(sorted({col["specific"][j] for j in others}))
                    detail = f"专名 {me_spec} 与 {specs} 同音 ({row['specific_pinyin']})"
                elif all(col["name"][j] == row["name"] for j in others):
                    detail = f"同名 ({len(others) + 1} 处)"
                else:
                    names_ = "、".join(sorted({col["name"][j] for j in others}))
                    detail = f"专名“{me_spec}”相同，全称不同 ({names_})"
                if severity == "notice":
                    detail += "；不同乡镇，县内重名 (提示)"
                out.append(
                    _finding(
                        row,
                        check,
                        rules,
                        severity=severity if not homophone or severity == "notice" else "warning",
                        scope=scope,
                        scope_code=scope_codes[i] if scope_codes is not None else None,
                        related_codes=";".join(col["code"][j] for j in others),
                        related_names=";".join(col["full_name"][j] for j in others),
                        detail=detail,
                    )
                )
    return out


def _term_findings(t: pd.DataFrame, rules: Rules, report: np.ndarray) -> list[dict[str, Any]]:
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
    return _finding(
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


def _character_findings(t: pd.DataFrame, rules: Rules, report: np.ndarray) -> list[dict]:
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
            out.append(_finding(row, "traditional", rules, detail=f"繁体/异体字 {pairs}"))
        if "rare" in found:
            chars = "、".join(f"{c} (U+{ord(c):04X})" for c in found["rare"])
            out.append(_finding(row, "rare_char", rules, detail=f"GB 2312 以外的汉字 {chars}"))
        parts = []
        for cls, zh in (("latin", "字母"), ("digit", "数字"), ("symbol", "符号")):
            if cls in found:
                parts.append(f"{zh} {' '.join(found[cls])}")
        if parts:
            out.append(_finding(row, "mixed_script", rules, detail="；".join(parts)))
    return out


def _is_number(specific: str) -> bool:
    s = unicodedata.normalize("NFKC", specific)
    return bool(s) and all(c.isdigit() or c in _NUMERALS for c in s)


def _structure_findings(t: pd.DataFrame, rules: Rules, report: np.ndarray) -> list[dict]:
    out = []
    sub = t[report & ~t["name"].isin(rules.placeholders)]
    for _, row in sub[sub["specific"].map(_is_number)].iterrows():
        out.append(_finding(row, "number_name", rules, detail=f"专名“{row['specific']}”"))
    missing = sub[(sub["generic"] == "") & (sub["committee"] == "")]
    for _, row in missing.iterrows():
        expected = "、".join(rules.generic[row["level"]][:8])
        out.append(
            _finding(row, "missing_generic", rules, detail=f"未以本级通名结尾 (如 {expected})")
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
            out.append(_finding(row, "code_type", rules, severity="notice", detail=detail))
    return out


def check_names(
    table: pd.DataFrame | GazetteerIndex,
    *,
    code_prefix: str | None = None,
    rules: Rules | None = None,
    checks: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Run the standardisation checks over a table of names.

    Parameters
    ----------
    table : pandas.DataFrame or GazetteerIndex
        Columns ``code``, ``name``, ``level`` (one of :data:`geo_mz.names.LEVELS`), and
        optionally ``parent_code`` (else taken from the code structure), ``full_name`` (else
        built from the parent chain); e.g. :func:`geo_mz.names.load_gazetteer`.  An index
        is read with :func:`geo_mz.names.subtree`.
    code_prefix : str, optional
        Report only units whose code starts with this (e.g. ``"440703"``).  The scopes still use
        the whole table: county-level names are compared nationally, villages within their
        county.
    rules : Rules, optional
        Default :func:`load_rules`.
    checks : sequence of str, optional
        Only these checks (from :data:`CHECKS`).

    Returns
    -------
    pandas.DataFrame
        One row per finding with the columns :data:`FINDING_COLUMNS`, ordered by county, code,
        check.  ``related_codes`` / ``related_names`` (``;``-separated, full names) list the
        other units of a duplicate or homophone group.

    Raises
    ------
    NamesError
        If a column is missing, a level or check is unknown.
    """
    rules = rules or load_rules()
    wanted = set(CHECKS if checks is None else checks)
    if wanted - set(CHECKS):
        raise NamesError(f"unknown checks {sorted(wanted - set(CHECKS))}; use {CHECKS}")
    if isinstance(table, GazetteerIndex):
        table = _working_set(table, code_prefix)
    t = _prepare(table)
    if code_prefix:
        # the scopes need the unit's county and all county-level names; the rest is not read
        county = code_prefix[:6]
        keep = t["code"].str.startswith(county) | t["level"].isin(["province", "city", "county"])
        t = t[keep].reset_index(drop=True)
    if "pinyin" in table.columns:
        t["pinyin"] = table.set_index("code")["pinyin"].reindex(t["code"]).to_numpy()
    else:
        t["pinyin"] = names_pinyin(t["name"].tolist())
    t = parse_table(t, rules)
    report = (
        t["code"].str.startswith(code_prefix).to_numpy()
        if code_prefix
        else np.ones(len(t), dtype=bool)
    )
    rows: list[dict[str, Any]] = []
    if "duplicate" in wanted:
        rows += _group_findings(t, rules, report, homophone=False)
    if "homophone" in wanted:
        rows += _group_findings(t, rules, report, homophone=True)
    if wanted & {"big", "foreign", "odd_word"}:
        rows += [r for r in _term_findings(t, rules, report) if r["check"] in wanted]
    if wanted & {"traditional", "rare_char", "mixed_script"}:
        rows += [r for r in _character_findings(t, rules, report) if r["check"] in wanted]
    if wanted & {"number_name", "missing_generic", "code_type"}:
        rows += [r for r in _structure_findings(t, rules, report) if r["check"] in wanted]
    out = pd.DataFrame(rows, columns=list(FINDING_COLUMNS))
    if out.empty:
        return out.astype(object)
    order = out["check"].map({c: i for i, c in enumerate(CHECKS)})
    out = out.assign(_o=order, _l=out["level"].map(LEVELS.index))
    out = out.sort_values(["county_code", "_l", "code", "_o", "scope"], na_position="first")
    return out.drop(columns=["_o", "_l"]).reset_index(drop=True)


def _working_set(index: GazetteerIndex, code_prefix: str | None) -> pd.DataFrame:
    if not code_prefix:
        from geo_mz.names.gazetteer import index_frame

        return index_frame(index)
    upper = subtree(index, "", ["province", "city", "county"])
    county = code_prefix[:6]
    below = subtree(index, county, ["town", "village"])
    return pd.concat([upper, below], ignore_index=True).sort_values("code", ignore_index=True)


# --------------------------------------------------------------------------- proposals


@dataclass(frozen=True)
class Reason:
    """Why a proposed name is refused or needs attention.

    Attributes
    ----------
    check
        Key from :data:`CHECKS`, or ``"nearby"`` for a name found near the given point.
    severity
        ``"refuse"`` (blocks approval) or ``"warn"`` (reported, does not block).
    message
        What was found, naming the existing places with their full chain.
    rule, source
        The rule and where it comes from.
    related_codes, related_names
        The existing places concerned.
    """

    check: str
    severity: Literal["refuse", "warn"]
    message: str
    rule: str
    source: str
    related_codes: tuple[str, ...] = ()
    related_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProposalResult:
    """Verdict on a proposed name (:func:`check_proposal`).

    Attributes
    ----------
    name, level, parent_code
        The proposal.
    parent_full_name
        The parent's full chain (``"广东省 江门市 蓬江区 棠下镇"``).
    parsed
        The proposal split into 专名/通名.
    reasons
        Every finding; ``ok`` is False when one of them is ``"refuse"``.
    """

    name: str
    level: str
    parent_code: str
    parent_full_name: str
    parsed: ParsedName
    reasons: tuple[Reason, ...]

    @property
    def ok(self) -> bool:
        """True when no reason refuses the name."""
        return not any(r.severity == "refuse" for r in self.reasons)

    def to_frame(self) -> pd.DataFrame:
        """Return the reasons as a table."""
        return pd.DataFrame(
            [
                {
                    "check": r.check,
                    "severity": r.severity,
                    "message": r.message,
                    "rule": r.rule,
                    "source": r.source,
                    "related_codes": ";".join(r.related_codes),
                }
                for r in self.reasons
            ],
            columns=["check", "severity", "message", "rule", "source", "related_codes"],
        )


def _scope_table(
    gazetteer: pd.DataFrame | GazetteerIndex, prefix: str, levels: Sequence[str]
) -> pd.DataFrame:
    if isinstance(gazetteer, GazetteerIndex):
        return subtree(gazetteer, prefix, levels)
    g = gazetteer
    sub = g[g["code"].astype(str).str.startswith(prefix) & g["level"].isin(list(levels))]
    return sub.reset_index(drop=True)


def _unit(gazetteer: pd.DataFrame | GazetteerIndex, code: str) -> Mapping[str, Any] | None:
    sub = _scope_table(gazetteer, code, LEVELS)
    sub = sub[sub["code"] == code]
    if sub.empty:
        return None
    row = sub.iloc[0].to_dict()
    if "full_name" not in row:
        row["full_name"] = row["name"]
    return row


def check_proposal(
    name: str,
    level: str,
    parent_code: str,
    gazetteer: pd.DataFrame | GazetteerIndex,
    *,
    point: Any = None,
    place_names: gpd.GeoDataFrame | None = None,
    radius_m: float = 1000.0,
    rules: Rules | None = None,
) -> ProposalResult:
    """Check a proposed new name before approval.

    The proposal is refused when, within the scope of its level (villages: the town; towns:
    the county; counties and cities: the whole country), an existing unit of the same class has
    the same 专名 (duplicate) or the same pinyin (homophone); when it uses a restricted word
    (大/洋/怪 lists), a traditional, rare or non-Han character, a number-only 专名, or lacks the
    通名 of its level; and, given ``point`` and ``place_names``, when a place name within
    ``radius_m`` has the same name.  A same-name village elsewhere in the county and a
    same-sound name nearby are warnings.

    Parameters
    ----------
    name : str
        Proposed name, e.g. ``"新安村"``.
    level : str
        Level of the new unit: ``"village"``, ``"town"``, ``"county"`` or ``"city"``.
    parent_code : str
        Code of the unit it will belong to (a town for a village, a county for a town ...).
    gazetteer : pandas.DataFrame or GazetteerIndex
        Existing names: :func:`geo_mz.names.load_index` (fast) or a table with ``code``,
        ``name``, ``level`` (and ``full_name``).
    point : shapely Point or (lon, lat), optional
        Where the place is (EPSG:4490/4326).
    place_names : geopandas.GeoDataFrame, optional
        Point place names (``name`` column; the ``place_names`` layer) to compare nearby.
    radius_m : float, default 1000
        Radius for ``place_names``.
    rules : Rules, optional
        Default :func:`load_rules`.

    Returns
    -------
    ProposalResult

    Raises
    ------
    NamesError
        If the name is empty, the level unknown or the parent missing or of the wrong level.
    """
    rules = rules or load_rules()
    name = unicodedata.normalize("NFC", str(name)).strip()
    if not name:
        raise NamesError("the proposed name is empty")
    if level not in LEVELS or level == "province":
        raise NamesError(f"level must be one of {LEVELS[1:]}, not {level!r}")
    want_parent = LEVELS[LEVELS.index(level) - 1]
    parent = _unit(gazetteer, str(parent_code))
    if parent is None:
        raise NamesError(f"parent code {parent_code} is not in the gazetteer")
    if parent["level"] != want_parent:
        raise NamesError(
            f"a {level} belongs to a {want_parent}; {parent_code} ({parent['name']}) is a "
            f"{parent['level']}"
        )
    parsed = parse_parts(name, level, rules)
    name_reading = names_pinyin([name])[0]
    reading = specific_pinyin([name], [parsed.specific], [name_reading])[0]
    reasons: list[Reason] = []
    chain = f"{parent['full_name']} {name}"

    # scopes: (table, refuse?, scope label)
    if level == "village":
        scopes = [(str(parent_code), "town", "refuse"), (str(parent_code)[:6], "county", "warn")]
        levels_: tuple[str, ...] = ("village",)
    elif level == "town":
        scopes = [(str(parent_code), "county", "refuse")]
        levels_ = ("town",)
    else:
        scopes = [("", "national", "refuse")]
        levels_ = ("city", "county")
    seen: set[str] = set()
    for prefix, scope, severity in scopes:
        existing = _scope_table(gazetteer, prefix, levels_)
        existing = existing[~existing["name"].isin(rules.placeholders)]
        existing = existing[~existing["code"].isin(seen)]
        if existing.empty:
            continue
        parts = [
            parse_parts(n, lv, rules)
            for n, lv in zip(existing["name"], existing["level"], strict=True)
        ]
        spec = np.array([p.specific for p in parts], dtype=object)
        cat = np.array([p.category for p in parts], dtype=object)
        same_class = cat == parsed.category
        dup = same_class & (spec == parsed.specific)
        py = existing["pinyin"] if "pinyin" in existing else names_pinyin(existing["name"])
        sounds = np.array(specific_pinyin(existing["name"], spec.tolist(), py), dtype=object)
        hom = same_class & (sounds == reading) & (spec != parsed.specific) & bool(reading)
        full = existing["full_name"] if "full_name" in existing else existing["name"]
        for mask, check in ((dup, "duplicate"), (hom, "homophone")):
            if not mask.any():
                continue
            hit = existing[mask]
            codes = tuple(hit["code"])
            names_ = tuple(full[mask])
            seen.update(codes)
            where = SCOPE_ZH[scope]
            if check == "duplicate":
                msg = f"{where}已有同名(专名“{parsed.specific}”)地名: " + "；".join(
                    f"{n} ({c})" for c, n in zip(codes, names_, strict=True)
                )
            else:
                msg = f"{where}已有同音(“{reading}”)地名: " + "；".join(
                    f"{n} ({c})" for c, n in zip(codes, names_, strict=True)
                )
            spec_ = rules.checks[check]
            reasons.append(
                Reason(check, severity, msg, spec_.rule, spec_.source, codes, names_)  # type: ignore[arg-type]
            )

    row = {
        "code": "",
        "name": name,
        "full_name": chain,
        "level": level,
        "county_code": None,
        "county_name": None,
        "specific": parsed.specific,
        "generic": parsed.generic,
        "committee": parsed.committee,
        "category": parsed.category,
        "kind": parsed.kind,
        "pinyin": name_reading,
        "specific_pinyin": reading,
        "town_code": None,
    }
    one = pd.DataFrame([row])
    one["code"] = str(parent_code) + "?"
    flags = np.ones(1, dtype=bool)
    found = _term_findings(one, rules, flags) + _character_findings(one, rules, flags)
    found += [f for f in _structure_findings(one, rules, flags) if f["check"] != "code_type"]
    for f in found:
        reasons.append(Reason(f["check"], "refuse", f["detail"], f["rule"], f["source"]))

    if point is not None and place_names is not None and len(place_names):
        reasons += _nearby(parsed, reading, name, level, point, place_names, radius_m, rules)
    return ProposalResult(
        name, level, str(parent_code), str(parent["full_name"]), parsed, tuple(reasons)
    )


def _nearby(
    parsed: ParsedName,
    reading: str,
    name: str,
    level: str,
    point: Any,
    place_names: gpd.GeoDataFrame,
    radius_m: float,
    rules: Rules,
) -> list[Reason]:
    import geopandas as gpd
    from shapely.geometry import Point

    from geo_mz.core.projection import gk_zone_crs

    if not isinstance(point, Point):
        point = Point(float(point[0]), float(point[1]))
    crs = gk_zone_crs(point.x)
    here = gpd.GeoSeries([point], crs="EPSG:4490").to_crs(crs).iloc[0]
    gdf = place_names if place_names.crs is not None else place_names.set_crs("EPSG:4490")
    near = gdf.to_crs(crs)
    dist = near.geometry.distance(here)
    near = gdf[(dist <= radius_m).to_numpy()].assign(_d=dist[dist <= radius_m].to_numpy())
    if near.empty:
        return []
    others = [parse_parts(str(n), level, rules) for n in near["name"]]
    spec = np.array([p.specific for p in others], dtype=object)
    sounds = np.array(names_pinyin(spec.tolist()), dtype=object)
    same = (near["name"].astype(str).to_numpy() == name) | (spec == parsed.specific)
    homo = ~same & (sounds == reading) & bool(reading)
    out = []
    id_col = "name_id" if "name_id" in near else None
    for mask, severity, what in ((same, "refuse", "同名"), (homo, "warn", "同音")):
        if not mask.any():
            continue
        hit = near[mask]
        codes = tuple(str(v) for v in (hit[id_col] if id_col else hit.index))
        names_ = tuple(str(v) for v in hit["name"])
        msg = f"{radius_m:g} 米内已有{what}地名: " + "；".join(
            f"{n} ({d:.0f} 米)" for n, d in zip(names_, hit["_d"], strict=True)
        )
        spec_ = rules.checks["duplicate" if what == "同名" else "homophone"]
        out.append(
            Reason("nearby", severity, msg, spec_.rule, spec_.source, codes, names_)  # type: ignore[arg-type]
        )
    return out

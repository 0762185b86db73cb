"""Place-name standardisation checks (不规范地名清理) and naming-proposal checks.

:func:`check_names` runs every check over a gazetteer table
(:func:`geo_mz.names.load_gazetteer`, :func:`geo_mz.names.index_frame`, or any table
with ``code``, ``name`` and ``level``) and
returns one row per finding; :func:`geo_mz.names.check_proposal` checks a proposed new name
against the same rules and the existing names of its area (and, given a point, the place names
nearby).

The rules, their word lists and the sources they come from are data, not code:
``layers/rules/placename_rules.toml`` (see :func:`load_rules`) and, for the lexicons of every
class of name (居民区, 道路, 建筑物 ...), ``layers/rules/placename_classes.toml`` (see
:func:`geo_mz.names.load_class_rules`; tables of such names are checked by
:func:`geo_mz.names.check_class_names`).  Every finding names its category (``flag``), the
rule and its source, the matched part (``matched``) and a suggested fix (``suggestion``).

Checks
------
==================  ==========  ===============================================================
check               flag        what
==================  ==========  ===============================================================
duplicate           DUP (重)    same 专名 (proper part), same class, same scope: county-level and
                                above nationally; towns within a county; villages within a town
                                (errors); villages of different towns of one county (notices)
homophone           DUP (重)    same tone-less pinyin of the 专名, other characters, same scopes
big                 BIG (大)    restricted words (宇宙, 中央, 天安门 and its homophones; 帝景, 皇庭,
                                至尊 and their variant spellings 缔景, 凰庭 ...); a residential
                                compound or building called 城/广场/中心
foreign             FOREIGN     foreign place and personal names (维也纳, 巴黎, 拿破仑 ...)
transliteration     FOREIGN     a run of transliteration characters (non-admin classes)
odd_word            ODD (怪)    feudal words (皇帝, 帝都 ...)
vulgar              ODD (怪)    vulgar or ominous words (屎, 尿, 鬼, 死人 ...)
pun                 ODD (怪)    an idiom written with other characters of the same sound
generic_mismatch    ODD (怪)    stacked generic parts (XX广场花园)
traditional         ODD (怪)    traditional or variant characters (OpenCC character table)
rare_char           ODD (怪)    Han characters outside GB 2312 (regional standard place-name
                                characters such as 滘, 垱, 碶 excepted)
hard_to_read        ODD (怪)    two or more characters outside GB 2312 level 1 (non-admin classes)
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
This module holds :func:`check_names`, the preparation of the table and the duplicate and
homophone checks, which compare the names within a scope; the checks of one name at a time (大、
洋、怪, characters, structure) are in the package-internal :mod:`geo_mz.names._name_checks`, and
the proposal checks (:func:`geo_mz.names.check_proposal`) in :mod:`geo_mz.names.proposal`. It
re-exports the rest of the public API: :mod:`geo_mz.names.rules` reads the rules and parses
names, :mod:`geo_mz.names.report` writes the reports (:func:`county_summary`,
:func:`report_tables`; the files are written by :func:`geo_mz.outputs.write_names_report`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from geo_mz.names._class_checks import class_checks
from geo_mz.names._name_checks import (
    FINDING_COLUMNS,
    character_findings,
    finding,
    structure_findings,
    term_findings,
)
from geo_mz.names.classes import ClassRules, load_class_rules
from geo_mz.names.gazetteer import LEVELS, GazetteerIndex, names_pinyin, subtree
from geo_mz.names.proposal import ProposalResult, Reason, check_proposal
from geo_mz.names.report import county_summary, report_tables
from geo_mz.names.rules import (
    CHECKS,
    NamesError,
    ParsedName,
    Rules,
    load_rules,
    parse_name,
    parse_table,
)
from geo_mz.names.rules import CheckSpec as CheckSpec
from geo_mz.names.rules import rules_path as rules_path

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
                    finding(
                        row,
                        check,
                        rules,
                        severity=severity if not homophone or severity == "notice" else "warning",
                        scope=scope,
                        scope_code=scope_codes[i] if scope_codes is not None else None,
                        related_codes=";".join(col["code"][j] for j in others),
                        related_names=";".join(col["full_name"][j] for j in others),
                        detail=detail,
                        matched=me_spec,
                        suggestion="更名以示区别: 用当地历史地名、地理特征或区片名, 不加序数",
                    )
                )
    return out


def check_names(
    table: pd.DataFrame | GazetteerIndex,
    *,
    code_prefix: str | None = None,
    rules: Rules | None = None,
    checks: Sequence[str] | None = None,
    class_rules: ClassRules | None = None,
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
    class_rules : ClassRules, optional
        The lexicons of every class; default :func:`geo_mz.names.load_class_rules` (divisions
        are checked as class ``admin``, villages as ``village``).

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
        t["pinyin"] = names_pinyin(t["name"].tolist(), t["code"].tolist())
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
        rows += [r for r in term_findings(t, rules, report) if r["check"] in wanted]
    # the class lexicons (夸大 compounds, foreign names, vulgar words ...) for divisions/villages
    t["name_class"] = np.where(t["level"] == "village", "village", "admin")
    seen = {(r["code"], r["check"], r["matched"]) for r in rows}
    extra = class_checks(t, rules, class_rules or load_class_rules(), report, wanted)
    rows += [r for r in extra if (r["code"], r["check"], r["matched"]) not in seen]
    if wanted & {"traditional", "rare_char", "mixed_script"}:
        rows += [r for r in character_findings(t, rules, report) if r["check"] in wanted]
    if wanted & {"number_name", "missing_generic", "code_type"}:
        rows += [r for r in structure_findings(t, rules, report) if r["check"] in wanted]
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

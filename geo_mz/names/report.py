"""Place-name check reports: summary per county, report tables, Excel workbook and HTML report.

The writers take the findings table of :func:`geo_mz.names.check_names`; headings, rules
and sources come from :class:`geo_mz.names.Rules`.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd

from geo_mz.core.results import ReportTable
from geo_mz.names.rules import CHECKS, SCOPE_ZH, Rules, load_rules

__all__ = ["check_label", "county_summary", "report_tables"]

_SEVERITY_ORDER = {"error": 0, "warning": 1, "notice": 2}


def county_summary(findings: pd.DataFrame) -> pd.DataFrame:
    """Count the findings per county: one row per county, one column per check, a total.

    Parameters
    ----------
    findings : pandas.DataFrame
        From :func:`check_names`.

    Returns
    -------
    pandas.DataFrame
        ``county_code``, ``county_name``, one column per check of :data:`CHECKS` (number of
        findings), ``total`` and ``units`` (distinct units with a finding); sorted by county
        code.  City- and province-level findings are counted under ``county_code`` ``""``.
    """
    cols = ["county_code", "county_name", *CHECKS, "total", "units"]
    if findings.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    f = findings.assign(
        county_code=findings["county_code"].fillna(""),
        county_name=findings["county_name"].fillna("(县级以上 above county)"),
    )
    counts = pd.crosstab([f["county_code"], f["county_name"]], f["check"])
    counts = counts.reindex(columns=list(CHECKS), fill_value=0)
    counts["total"] = counts.sum(axis=1)
    counts["units"] = f.groupby(["county_code", "county_name"])["code"].nunique()
    return counts.reset_index()[cols].sort_values("county_code", ignore_index=True)


def check_label(check: str, rules: Rules, lang: str) -> str:
    """Return the bilingual title of a check, ``lang``'s first."""
    spec = rules.checks[check]
    return f"{spec.zh} {spec.en}" if lang == "zh" else f"{spec.en} {spec.zh}"


def report_tables(
    findings: pd.DataFrame,
    *,
    rules: Rules | None = None,
    lang: Literal["zh", "en"] = "zh",
    max_cases: int = 100,
    max_counties: int = 300,
) -> list[ReportTable]:
    """Tables of the place-name report: summary per check, per county, and the cases.

    Parameters
    ----------
    findings : pandas.DataFrame
        From :func:`check_names`.
    rules : Rules, optional
        For the headings, rules and sources; default :func:`load_rules`.
    lang : {"zh", "en"}
        Language first in the headings.
    max_cases : int, default 100
        Cases listed per check (errors first); the note says how many more there are.
    max_counties : int, default 300
        Counties listed (most findings first).

    Returns
    -------
    list of geo_mz.outputs.report.ReportTable
    """
    rules = rules or load_rules()
    tables = []
    by_check = findings["check"].value_counts() if not findings.empty else pd.Series(dtype=int)
    units = (
        findings.groupby("check")["code"].nunique() if not findings.empty else pd.Series(dtype=int)
    )
    rows = []
    for check in CHECKS:
        spec = rules.checks[check]
        rows.append(
            (
                check_label(check, rules, lang),
                spec.flag,
                f"{int(by_check.get(check, 0)):,}",
                f"{int(units.get(check, 0)):,}",
                spec.rule,
                spec.source,
            )
        )
    tables.append(
        ReportTable(
            "检查汇总",
            "Findings by check",
            ("检查 Check", "类型 Flag", "问题 Findings", "地名 Units", "规则 Rule", "依据 Source"),
            tuple(rows),
            note="重名/同音: 一组中每个地名各记一条 / each member of a group is one finding.",
        )
    )
    summary = county_summary(findings)
    if not summary.empty:
        top = summary.sort_values(["total", "county_code"], ascending=[False, True])
        top = top.head(max_counties)
        heads = ("代码 Code", "县 County", *(rules.checks[c].zh for c in CHECKS), "合计 Total")
        body = tuple(
            (
                str(r["county_code"]),
                str(r["county_name"]),
                *(f"{int(r[c]):,}" for c in CHECKS),
                f"{int(r['total']):,}",
            )
            for _, r in top.iterrows()
        )
        more = len(summary) - len(top)
        tables.append(
            ReportTable(
                "按县统计",
                "Findings per county",
                heads,
                body,
                note=f"另有 {more} 个县未列出 / {more} more counties not listed" if more else "",
            )
        )
    for check in CHECKS:
        sub = findings[findings["check"] == check] if not findings.empty else findings
        if sub.empty:
            continue
        sub = sub.assign(_s=sub["severity"].map(_SEVERITY_ORDER)).sort_values(
            ["_s", "county_code", "code"], na_position="first"
        )
        shown = sub.head(max_cases)
        body = tuple(
            (
                str(r["code"]),
                str(r["full_name"]),
                str(r["severity"]),
                SCOPE_ZH.get(str(r["scope"]), str(r["scope"])),
                str(r["detail"]),
                _short(str(r["related_names"])),
            )
            for _, r in shown.iterrows()
        )
        more = len(sub) - len(shown)
        spec = rules.checks[check]
        tables.append(
            ReportTable(
                f"{spec.zh}：问题清单",
                f"{spec.en}: cases",
                (
                    "代码 Code",
                    "地名 Name",
                    "级别 Severity",
                    "范围 Scope",
                    "说明 Detail",
                    "相关 Related",
                ),
                body,
                note=(f"另有 {more:,} 条见 Excel / {more:,} more in the workbook. " if more else "")
                + f"依据 Source: {spec.source}",
            )
        )
    return tables


def _short(text: str, limit: int = 4) -> str:
    parts = [p for p in text.split(";") if p]
    if len(parts) <= limit:
        return "；".join(parts)
    return "；".join(parts[:limit]) + f" …(+{len(parts) - limit})"

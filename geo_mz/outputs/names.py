"""Files of the non-standard place-name check: Excel findings, CSV, and the HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pandas as pd

from geo_mz.core.results import Kpi
from geo_mz.names.report import check_label, county_summary, report_tables
from geo_mz.names.rules import CHECKS, Rules, load_rules
from geo_mz.outputs.report import write_report

_EXCEL_HEADINGS = {
    "code": "代码 code",
    "name": "名称 name",
    "full_name": "全称 full name",
    "level": "层级 level",
    "county_code": "县代码 county code",
    "county_name": "县 county",
    "check": "检查 check",
    "check_zh": "检查(中) check (zh)",
    "flag": "类型 flag",
    "severity": "级别 severity",
    "scope": "范围 scope",
    "scope_code": "范围代码 scope code",
    "related_codes": "相关代码 related codes",
    "related_names": "相关地名 related names",
    "detail": "说明 detail",
    "rule": "规则 rule",
    "source": "依据 source",
}


_EXCEL_MAX_ROWS = 1_000_000


def write_excel(findings: pd.DataFrame, path: str | Path, *, rules: Rules | None = None) -> Path:
    """Write the findings as an Excel workbook.

    Sheets: ``汇总 summary`` (per check), ``按县 counties`` (:func:`county_summary`) and
    ``问题 findings`` (every finding; cut at 1,000,000 rows).

    Parameters
    ----------
    findings : pandas.DataFrame
        From :func:`geo_mz.names.check_names`.
    path : str or Path
        Target ``.xlsx`` (parent folders are created).
    rules : Rules, optional
        For the check headings and sources.

    Returns
    -------
    Path
    """
    rules = rules or load_rules()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = pd.DataFrame(
        [
            {
                "检查 check": c,
                "名称 name": check_label(c, rules, "zh"),
                "类型 flag": rules.checks[c].flag,
                "问题 findings": int((findings["check"] == c).sum()) if len(findings) else 0,
                "规则 rule": rules.checks[c].rule,
                "依据 source": rules.checks[c].source,
            }
            for c in CHECKS
        ]
    )
    counties = county_summary(findings).rename(
        columns={c: rules.checks[c].zh + " " + c for c in CHECKS}
    )
    with pd.ExcelWriter(path, engine="openpyxl") as xl:
        summary.to_excel(xl, sheet_name="汇总 summary", index=False)
        counties.to_excel(xl, sheet_name="按县 counties", index=False)
        findings.head(_EXCEL_MAX_ROWS).rename(columns=_EXCEL_HEADINGS).to_excel(
            xl, sheet_name="问题 findings", index=False
        )
    return path


def write_names_report(
    findings: pd.DataFrame,
    out_dir: str | Path,
    *,
    name: str,
    adcode: str = "",
    units_checked: int | None = None,
    lang: Literal["zh", "en"] = "zh",
    rules: Rules | None = None,
) -> dict[str, Path]:
    """Write the place-name report: HTML, Excel workbook and findings CSV.

    Parameters
    ----------
    findings : pandas.DataFrame
        From :func:`geo_mz.names.check_names`.
    out_dir : str or Path
        Output folder (created).
    name : str
        Area name for the title (``"蓬江区"``).
    adcode : str, default ""
        Area code shown in the report.
    units_checked : int, optional
        Number of units checked, shown as an indicator.
    lang : {"zh", "en"}
        Language first.
    rules : Rules, optional
        Default :func:`geo_mz.names.load_rules`.

    Returns
    -------
    dict of str to Path
        ``html`` (names_report.html), ``xlsx`` (names_findings.xlsx), ``csv``
        (names_findings.csv, UTF-8 with BOM for Excel).
    """
    rules = rules or load_rules()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kpis = []
    if units_checked is not None:
        kpis.append(Kpi("检查地名数", "Units checked", int(units_checked)))
    kpis.append(Kpi("问题数", "Findings", len(findings)))
    kpis.append(
        Kpi(
            "有问题的地名",
            "Units with findings",
            int(findings["code"].nunique()) if len(findings) else 0,
        )
    )
    for flag in ("DUP", "BIG", "FOREIGN", "ODD", "GENERIC", "CODE"):
        n = int((findings["flag"] == flag).sum()) if len(findings) else 0
        zh = {
            "DUP": "重",
            "BIG": "大",
            "FOREIGN": "洋",
            "ODD": "怪",
            "GENERIC": "通名",
            "CODE": "代码",
        }[flag]
        kpis.append(Kpi(f"{zh} ({flag})", f"{flag} findings", n, source="placename_rules.toml"))
    title = (
        f"{name} 地名规范化检查 Place-name check"
        if lang == "zh"
        else f"{name} place-name check 地名规范化检查"
    )
    html = write_report(
        out / "names_report.html",
        info={"name": name, "adcode": adcode, "layers": [], "path": str(rules.path)},
        validation=[],
        kpis=kpis,
        lang=lang,
        title=title,
        tables=report_tables(findings, rules=rules, lang=lang),
    )
    xlsx = write_excel(findings, out / "names_findings.xlsx", rules=rules)
    csv = out / "names_findings.csv"
    findings.to_csv(csv, index=False, encoding="utf-8-sig")
    return {"html": html, "xlsx": xlsx, "csv": csv}


__all__ = ["write_excel", "write_names_report"]

"""The workspace report: one self-contained HTML page of KPIs, layers, validation and the map.

:func:`write_report` renders ``templates/report.html.j2`` (inline CSS, no external resources,
UTF-8, Chinese first with English after) from what ``Workspace.info()`` returns, the validation
outcome of every layer (:class:`LayerCheck`) and the planning indicators (:class:`Kpi`).
Everything is HTML-escaped (jinja2 autoescape).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import jinja2

from geo_mz.core.catalog import load_catalog
from geo_mz.core.display import format_kpi_value
from geo_mz.core.errors import LayerSpecError
from geo_mz.core.results import Kpi, LayerCheck, ReportTable

__all__ = ["MAX_PROBLEMS_SHOWN", "render_report", "write_report"]

Lang = Literal["zh", "en"]

MAX_PROBLEMS_SHOWN = 200
"""Problems listed per layer; the rest are counted (local choice: keeps reports readable)."""
OPEN_PROBLEMS_UP_TO = 20
"""A layer's problem list starts expanded when it has at most this many problems."""

_SEVERITY_ORDER = {"error": 0, "warning": 1, "notice": 2}
_TEMPLATES = Path(__file__).resolve().parent / "templates"


def _bi(zh: str, en: str, lang: Lang) -> dict[str, str]:
    """Make a bilingual text: the primary language first, the other after."""
    return {"first": zh, "second": en} if lang == "zh" else {"first": en, "second": zh}


_HEADINGS: dict[str, tuple[str, str]] = {
    "workspace": ("工作空间", "Workspace"),
    "summary": ("概况", "Summary"),
    "kpis": ("指标", "Indicators"),
    "layers": ("图层清单", "Layer inventory"),
    "validation": ("数据检查", "Validation"),
    "problems": ("问题清单", "Problems"),
    "map": ("地图", "Map"),
    "name": ("名称", "Name"),
    "adcode": ("区划代码", "Admin code"),
    "path": ("文件", "File"),
    "storage_crs": ("存储坐标系", "Storage CRS"),
    "measure_crs": ("量算坐标系", "Measuring CRS"),
    "created_at": ("创建时间", "Created"),
    "version": ("软件版本", "geo_mz version"),
    "generated": ("报告生成时间", "Report generated"),
    "indicator": ("指标", "Indicator"),
    "value": ("数值", "Value"),
    "target": ("目标", "Target"),
    "met": ("达标", "Met"),
    "source": ("依据", "Source"),
    "data_source": ("数据来源", "Source"),
    "not_met": ("未达标", "Not met"),
    "layer": ("图层", "Layer"),
    "geometry": ("几何类型", "Geometry"),
    "features": ("要素数", "Features"),
    "origin": ("数据性质", "Data"),
    "method": ("生成/处理方法", "Method"),
    "imported_at": ("导入时间", "Imported"),
    "file": ("文件", "File"),
    "rows": ("行数", "Rows"),
    "errors": ("错误", "Errors"),
    "warnings": ("警告", "Warnings"),
    "notices": ("提示", "Notices"),
    "status": ("结论", "Status"),
    "row": ("行号", "Row"),
    "id": ("要素编号", "Feature ID"),
    "field": ("字段", "Field"),
    "severity": ("级别", "Severity"),
    "code": ("代码", "Code"),
    "message": ("说明", "Message"),
    "synthetic": ("合成", "synthetic"),
    "real": ("真实", "real"),
    "unknown": ("未说明", "not stated"),
    "passed": ("通过", "passed"),
    "failed": ("有错误", "has errors"),
    "no_problems": ("未发现问题", "No problems found"),
    "no_kpis": ("未计算指标", "No indicators computed"),
    "no_layers": ("工作空间中没有图层", "The workspace has no layers"),
    "no_checks": ("未进行数据检查", "No validation was run"),
    "open_map": ("在新窗口打开地图", "Open the map in a new window"),
    "total": ("合计", "Total"),
    "layers_n": ("图层数", "Layers"),
    "problems_total": ("问题", "Problems"),
    "not_applicable": ("无目标", "no target"),
    "error": ("错误", "error"),
    "warning": ("警告", "warning"),
    "notice": ("提示", "notice"),
}


def _texts(lang: Lang) -> dict[str, dict[str, str]]:
    return {key: _bi(zh, en, lang) for key, (zh, en) in _HEADINGS.items()}


def _more_text(n: int, lang: Lang) -> dict[str, str]:
    return _bi(
        f"另有 {n:,} 条未列出（仅列前 {MAX_PROBLEMS_SHOWN} 条）",
        f"{n:,} more not listed (first {MAX_PROBLEMS_SHOWN} shown)",
        lang,
    )


def _check_rows(
    validation: Sequence[LayerCheck], titles: Mapping[str, tuple[str, str]], lang: Lang
) -> list[dict[str, Any]]:
    rows = []
    for check in validation:
        ordered = sorted(check.problems, key=lambda p: _SEVERITY_ORDER.get(p.severity, 3))
        more = max(len(ordered) - MAX_PROBLEMS_SHOWN, 0)
        zh, en = titles.get(check.layer, (check.layer, check.layer))
        rows.append(
            {
                "check": check,
                "title": _bi(zh, en, lang),
                "shown": ordered[:MAX_PROBLEMS_SHOWN],
                "more": more,
                "more_text": _more_text(more, lang) if more else None,
                "open": 0 < len(ordered) <= OPEN_PROBLEMS_UP_TO,
            }
        )
    return rows


def _catalog_titles() -> dict[str, tuple[str, str]]:
    """Titles (zh, en) of the shipped layer kinds, for checks of layers not in ``info``."""
    try:
        return {name: (s.title_zh, s.title_en) for name, s in load_catalog().items()}
    except LayerSpecError:  # no catalog shipped: the report still renders, with names
        return {}


def _check_href(map_href: str | None) -> None:
    if map_href is not None and map_href.strip().lower().startswith(("javascript:", "data:")):
        raise ValueError(f"`map_href` was {map_href!r} but must be a file path or http(s) URL")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = format_kpi_value
    return env


def render_report(
    *,
    info: Mapping[str, Any],
    validation: Sequence[LayerCheck],
    kpis: Sequence[Kpi] = (),
    map_href: str | None = None,
    lang: Lang = "zh",
    title: str | None = None,
    generated_at: datetime | None = None,
    tables: Sequence[ReportTable] = (),
) -> str:
    """Render the report HTML as a string; see :func:`write_report` for the parameters.

    Parameters
    ----------
    info
        What ``Workspace.info()`` returns.
    validation
        The validation outcome of each layer.
    kpis
        Planning indicators.
    map_href
        Link (relative path or URL) to the map HTML, shown as a link and an embedded frame.
    lang
        Primary language, ``"zh"`` or ``"en"``; the other follows it.
    title
        Page title; built from the workspace name when None.
    generated_at
        Time stamp printed in the report; now (UTC) when None.

    Returns
    -------
    str
        The complete HTML document.
    """
    if lang not in ("zh", "en"):
        raise ValueError(f"`lang` was {lang!r} but is expected to be 'zh' or 'en'")
    _check_href(map_href)
    layers = list(info.get("layers") or [])
    titles = _catalog_titles()
    titles |= {
        str(item.get("layer", "")): (
            str(item.get("title_zh") or item.get("layer", "")),
            str(item.get("title_en") or item.get("layer", "")),
        )
        for item in layers
    }
    name = str(info.get("name") or info.get("path") or "geo_mz")
    if title is None:
        title = (
            f"{name} 工作空间报告 Workspace report"
            if lang == "zh"
            else f"{name} workspace report 工作空间报告"
        )
    stamp = (generated_at or datetime.now(UTC)).isoformat(timespec="seconds")
    totals = {
        "errors": sum(c.errors for c in validation),
        "warnings": sum(c.warnings for c in validation),
        "notices": sum(c.notices for c in validation),
        "rows": sum(c.rows for c in validation),
    }
    template = _environment().get_template("report.html.j2")
    return template.render(
        lang=lang,
        html_lang="zh-CN" if lang == "zh" else "en",
        title=title,
        info=info,
        name=name,
        layers=layers,
        kpis=list(kpis),
        tables=list(tables),
        checks=_check_rows(validation, titles, lang),
        totals=totals,
        features_total=sum(int(item.get("rows") or 0) for item in layers),
        map_href=map_href,
        generated_at=stamp,
        t=_texts(lang),
    )


def write_report(
    path: str | Path,
    *,
    info: Mapping[str, Any],
    validation: Sequence[LayerCheck],
    kpis: Sequence[Kpi] = (),
    map_href: str | None = None,
    lang: Lang = "zh",
    title: str | None = None,
    tables: Sequence[ReportTable] = (),
) -> Path:
    """Write the workspace report as one self-contained HTML file.

    Parameters
    ----------
    path
        Target ``.html`` file (UTF-8); parent folders are created, an existing file replaced.
    info
        What ``Workspace.info()`` returns: ``name``, ``adcode``, ``storage_crs``, ``measure_crs``,
        ``created_at``, ``geo_mz_version``, ``path`` and ``layers`` (one mapping per layer with
        ``layer``, ``title_zh``, ``title_en``, ``geometry``, ``rows``, ``synthetic``, ``source``,
        ``method``, ``imported_at``, ``sha256``). Missing keys show as "—".
    validation
        The validation outcome of each layer: counts per severity and the problem list (the
        first :data:`MAX_PROBLEMS_SHOWN` per layer, errors first; the rest are counted).
    kpis
        Planning indicators with their targets; an unmet target is marked ✗ in red.
    map_href
        Link to the map HTML (best relative to the report), shown as a link and an iframe.
    lang
        Primary language, ``"zh"`` (default) or ``"en"``; headings carry both.
    tables
        Result tables (e.g. coverage per town) shown after the indicators.
    title
        Page title; ``"<name> 工作空间报告 Workspace report"`` when None.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ValueError
        If ``lang`` is not ``"zh"``/``"en"`` or ``map_href`` is a ``javascript:``/``data:`` URL.
    """
    text = render_report(
        info=info,
        validation=validation,
        kpis=kpis,
        map_href=map_href,
        lang=lang,
        title=title,
        tables=tables,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path

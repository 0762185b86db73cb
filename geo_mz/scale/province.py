"""Every analysis over every part on one cluster, and one province report and map of them all.

``geo-mz scale run all`` calls :func:`run_all`: the jobs of :data:`geo_mz.scale.ALL_ORDER` one
after the other on one Dask cluster (started once), each into the same run store, then
:func:`write_province_outputs` writes each job's own outputs (as ``scale run <job>`` does) and
``scale_all.gpkg`` / ``scale_all_parts.csv`` / ``scale_all_map.html`` / ``scale_all_report.html``:
one row per part with every job's status, headline figure, seconds and peak memory, and a map
with one layer per job (the parts coloured by that job's figure).
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_mz.core.projection import STORAGE_CRS
from geo_mz.core.workspaces import open_workspace
from geo_mz.scale.jobs import ALL_ORDER, JOBS
from geo_mz.scale.outputs import (
    CHINA_ALBERS,
    JOB_TITLES,
    KPI_NAMES,
    OUTPUT_LAYERS,
    gather_kpi_layers,
    has_results,
    part_summary,
    parts_spec,
    run_map,
    write_run_outputs,
)
from geo_mz.scale.partition import Part
from geo_mz.scale.parts import check_point_codes
from geo_mz.scale.runner import (
    RunResult,
    ScaleError,
    dask_client,
    jobs_digests,
    run_partitioned,
)

Lang = Literal["zh", "en"]

#: Job titles in the province report and map (Chinese, English).

#: Short job names for the column headings of the per-part table.
SHORT_TITLES = {
    "coverage": ("覆盖", "coverage"),
    "capacity": ("容量覆盖", "capacity"),
    "e2sfca": ("可达性", "E2SFCA"),
    "rings": ("等时圈", "rings"),
    "gaps": ("缺口", "gaps"),
    "relief": ("救灾", "relief"),
    "relief_scenario": ("情景", "scenario"),
    "shelter_adequacy": ("避难", "shelters"),
    "evacuation": ("疏散", "evacuation"),
    "boundaries": ("边界", "boundaries"),
}

#: Jobs whose headline figure is a share (shown in %).
SHARE_JOBS = frozenset(
    {"coverage", "capacity", "e2sfca", "relief", "relief_scenario", "shelter_adequacy",
     "evacuation"}
)  # fmt: skip


#: Simplification of the parts' outlines on the province map, in metres: under 1.5 px up to
#: zoom 11, where one county fills the screen (local choice). The map draws the parts once per
#: analysis (nine layers of the same polygons): Guangdong's 123 county outlines at 5 m were a
#: 22 MB page, at 100 m a third of the vertices. ``scale_all.gpkg`` keeps them whole.
PROVINCE_MAP_SIMPLIFY_M = 100.0

#: The level a boundary QA checks inside a part of each level (local choice: one level down).
QA_LEVEL_BELOW = {"province": "county", "city": "county", "county": "town", "town": "village"}
#: Wider than one 3° Gauss–Krüger zone: measure each part in its own zone (a single zone
#: distorts lengths by more than 1 % some 700 km from its meridian).
ONE_ZONE_DEG = 3.0


def _measure_crs(ws: Any) -> str | None:
    minx, _, maxx, _ = ws.bounds
    if maxx - minx > ONE_ZONE_DEG:
        return None
    return ws.metadata.get("measure_crs")


def job_options(
    job: str,
    ws: Any,
    by: str,
    level: str | None = None,
    buffer_km: float | None = None,
    *,
    scenario: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the default part-function options of ``job`` for a workspace.

    Parameters
    ----------
    job
        A name in :data:`geo_mz.scale.JOBS`.
    ws
        The workspace (its bounds, metadata and roads are read).
    by
        The parts' level (the boundary QA checks the level below it unless ``level`` says).
    level
        Level the boundary QA checks.
    buffer_km
        First buffer round each part; the job's default when None.
    scenario
        The ``relief_scenario`` disruption: ``flood`` (a raster path), ``close_depth_m``,
        ``close_roads`` (road ids), ``closures`` (a file path), ``closure_buffer_m``,
        ``use_incidents``, ``name`` (see ``geo_mz.scale.partition_relief.scenario_disruption``).

    Returns
    -------
    dict
        ``measure_crs`` (the workspace's, or None for an area wider than one GK zone: each part
        then measures in its own), the job's settings, and ``buffer_m`` when given.
    """
    opts: dict[str, Any] = {"measure_crs": _measure_crs(ws)}
    if buffer_km is not None:
        opts["buffer_m"] = buffer_km * 1000.0
    if job in ("coverage", "capacity", "e2sfca", "rings", "gaps"):
        from geo_mz.eldercare.circle15 import CircleSettings

        opts["settings"] = CircleSettings()
        if job == "gaps":
            # One hexagon grid for the whole run, whatever each part measures in (hexagon
            # cells must line up across parts): China's Albers when nothing else is set.
            opts["grid_crs"] = opts["measure_crs"] or ws.metadata.get("measure_crs") or CHINA_ALBERS
    elif job in ("relief", "relief_scenario"):
        from geo_mz.relief.drive_audit import ReliefSettings, workspace_targets
        from geo_mz.scale.partition import max_drive_kmh

        s = ReliefSettings(targets=workspace_targets(ws.metadata))
        opts["settings"] = s
        opts["vmax_kmh"] = max_drive_kmh(ws.read("roads"), s)
        if job == "relief_scenario":
            sc = {k: v for k, v in dict(scenario or {}).items() if v not in (None, (), [], "")}
            if not any(k in sc for k in ("flood", "close_roads", "closures", "use_incidents")):
                raise ScaleError(
                    "relief_scenario 需要 --flood、--closures、--close-roads 或 --use-incidents / "
                    "relief_scenario needs --flood, --closures, --close-roads or --use-incidents"
                )
            for k in ("flood", "closures"):
                if k in sc:  # a path: the run key then names the file, not its rows
                    sc[k] = str(Path(sc[k]).resolve())
            if "close_roads" in sc:
                sc["close_roads"] = tuple(str(r) for r in sc["close_roads"])
            opts |= sc
    elif job in ("shelter_adequacy", "evacuation"):
        from geo_mz.relief.shelters import ShelterSettings

        opts["settings"] = ShelterSettings()
    elif job == "boundaries":
        opts["level"] = level or QA_LEVEL_BELOW.get(by, "village")
    return opts


def run_all(
    workspace: str | Path,
    parts: Sequence[Part],
    *,
    store: str | Path,
    options: Mapping[str, Mapping[str, Any]],
    jobs: Sequence[str] | None = None,
    level: str = "",
    scheduler: str | None = None,
    workers: int | None = None,
    progress: Callable[[str, int, int, str, str], None] | None = None,
    client: Any = None,
) -> dict[str, RunResult]:
    """Run several partitioned jobs over the same parts on one Dask cluster.

    The workspace's layers are digested once, at the start, for every job's run key (the key
    names the data as the command found it; an edit during the command keys the next one).

    Parameters
    ----------
    workspace, parts, store, level, scheduler, workers
        As for :func:`geo_mz.scale.run_partitioned`.
    options
        Options per job name (each job's part-function options).
    jobs
        The jobs to run, in order; :data:`geo_mz.scale.ALL_ORDER` when None.
    progress
        Called after each part with (job, parts finished, parts to run, part code, status).
    client
        A Dask client to run on (kept open: :func:`write_province_outputs` can use it too);
        None starts one from ``scheduler``/``workers`` for the runs.

    Returns
    -------
    dict
        Job name → :class:`geo_mz.scale.RunResult`, in the order run. A job whose parts fail
        does not stop the others (each is rerun alone by the same command).
    """
    names = list(jobs or ALL_ORDER)
    unknown = [j for j in names if j not in JOBS]
    if unknown:
        raise ScaleError(
            f"未知的分析 {unknown}；可选 {sorted(JOBS)} / unknown job(s) {unknown}; jobs are "
            f"{sorted(JOBS)}"
        )
    results: dict[str, RunResult] = {}
    # The layers' digests once for every job: each run_partitioned would read every layer again
    # (about 3 s for a province), while the workers wait for their first part.
    ws_ref = str(workspace) if str(workspace).startswith("postgres") else str(Path(workspace))
    ws = open_workspace(ws_ref)
    check_point_codes(ws, parts, names, level)
    digests = jobs_digests(ws_ref, ws, names)
    with contextlib.ExitStack() as stack:
        if client is None and (workers != 0 or scheduler):
            client = stack.enter_context(dask_client(scheduler, workers))
        for job in names:
            say = None
            if progress is not None:
                say = (lambda j: lambda *a: progress(j, *a))(job)  # bind the job's name
            results[job] = run_partitioned(
                job, workspace, parts, store=store, options=options.get(job, {}), level=level,
                workers=0 if client is None else None, client=client, progress=say,
                digests=digests, reuse=times_reuse(job, results, options, store),
            )  # fmt: skip
    return results


TIMES_JOBS = ("capacity", "gaps")
"""Jobs whose parts start from the coverage job's walking times (``proven_times``)."""
_TIMES_OPTIONS = ("settings", "measure_crs", "buffer_m")


def times_reuse(
    job: str,
    results: Mapping[str, RunResult],
    options: Mapping[str, Mapping[str, Any]],
    store: str | Path,
) -> dict[str, Any] | None:
    """Return the ``reuse`` of ``job``: the coverage run's times when it computed the same.

    Capacity and gaps start from every part's walking times; when ``scale run all`` ran the
    coverage job before them with the same circle settings, CRS and buffer, their parts read
    those times from the store (a part the coverage run did not finish computes them again).
    """
    cov = results.get("coverage")
    if job not in TIMES_JOBS or cov is None:
        return None
    mine, theirs = options.get(job, {}), options.get("coverage", {})
    if any(mine.get(k) != theirs.get(k) for k in _TIMES_OPTIONS):
        return None
    return {"times_run": {"store": str(store), "run_key": cov.run_key}}


def province_table(
    results: Mapping[str, RunResult],
    parts: Sequence[Part],
    gathered: Mapping[str, Mapping[str, pd.DataFrame]] | None = None,
    summaries: Mapping[str, pd.DataFrame | None] | None = None,
) -> gpd.GeoDataFrame:
    """One row per part: for every job its status, headline figure, seconds and peak memory.

    Columns ``<job>_status``, ``<job>_kpi`` (the figure :data:`geo_mz.scale.outputs.KPI_NAMES`
    names), ``<job>_seconds`` and ``<job>_peak_rss_mib``, plus ``part``, ``name`` and the part
    polygons (EPSG:4490). ``gathered``: job → its layers as ``gather_kpi_layers`` gives them,
    where the caller has gathered them already (else gathered here).
    """
    table = pd.DataFrame({"part": [p.code for p in parts], "name": [p.name for p in parts]})
    for job, res in results.items():
        # A job with nothing stored (its parts failed) has no figure: its status says why.
        if summaries is not None:  # each job's figures, made where its outputs were written
            gathered_job = None
        elif gathered is not None:
            gathered_job = gathered.get(job)
        else:
            gathered_job = gather_kpi_layers(job, res) if has_results(res) else None
        summary = None if summaries is None else summaries.get(job)
        if job in KPI_NAMES and gathered_job is not None:
            summary = part_summary(job, res, parts, gathered_job)
        st = res.parts.set_index("part")
        table[f"{job}_status"] = [
            str(st.loc[p.code, "status"]) if p.code in st.index else "failed" for p in parts
        ]
        if summary is not None:
            table[f"{job}_kpi"] = summary["kpi"].to_numpy(float)
        table[f"{job}_seconds"] = st["seconds"].reindex(table["part"]).to_numpy(float)
        if "peak_rss_mib" in st:
            table[f"{job}_peak_rss_mib"] = st["peak_rss_mib"].reindex(table["part"]).to_numpy(float)
    return gpd.GeoDataFrame(table, geometry=[p.geometry for p in parts], crs=STORAGE_CRS)


def _job_layer(table: gpd.GeoDataFrame, job: str) -> gpd.GeoDataFrame:
    kpi = table.get(f"{job}_kpi", pd.Series(np.nan, index=table.index))
    return gpd.GeoDataFrame(
        {
            "part": table["part"],
            "name": table["name"],
            "status": table[f"{job}_status"],
            "kpi": kpi.to_numpy(float),
            "kpi_name": KPI_NAMES.get(job, job),
            "seconds": table[f"{job}_seconds"],
        },
        geometry=table.geometry.values,
        crs=table.crs,
    )


def job_outputs(
    job: str,
    result: RunResult,
    parts: Sequence[Part],
    out_dir: str | Path,
    lang: Lang = "zh",
    workspace: Any = None,
) -> tuple[dict[str, Path], pd.DataFrame | None]:
    """Write one job's outputs and return them with its per-part figures (a Dask task).

    ``workspace``: an open workspace or its reference (opened here: a worker's own), for the
    shelters' order of the evacuation's layers. Returns the paths written (``gpkg``, ``csv``,
    ``map``; none for a job without outputs of its own) and :func:`part_summary`'s rows for
    the province table (None for a job without a headline figure).
    """
    if isinstance(workspace, str | Path):
        workspace = open_workspace(str(workspace))
    gathered = gather_kpi_layers(job, result)
    # Made once, for the job's own outputs and the province table.
    summary = part_summary(job, result, parts, gathered) if job in KPI_NAMES else None
    written: dict[str, Path] = {}
    if job in OUTPUT_LAYERS:
        written = write_run_outputs(job, result, parts, out_dir, lang=lang, workspace=workspace,
                                    gathered=gathered, summary=summary)  # fmt: skip
    return written, summary


def _workspace_ref(workspace: Any) -> str | None:
    """Return the reference a worker opens the workspace by; None when there is none to give.

    A path or URL as given, a GeoPackage workspace's path; an open PostGIS workspace shows
    its URL without the password, so the caller should give the URL itself.
    """
    from geo_mz.core.workspace import Workspace

    if isinstance(workspace, str | Path):
        return str(workspace)
    if isinstance(workspace, Workspace):
        return str(workspace.path)
    return None


def _outputs_on_cluster(
    client: Any,
    results: Mapping[str, RunResult],
    jobs: Sequence[str],
    parts: Sequence[Part],
    out: Path,
    lang: Lang,
    workspace: Any,
) -> dict[str, tuple[dict[str, Path], pd.DataFrame | None]]:
    """Each job's outputs as a task of its own on the cluster's workers (largest first).

    Each task gathers its own run; a GeoPackage run store's merges of the part files take
    turns on the store's merge lock (``GpkgRunStore.merging``), while the other tasks draw
    their maps: the merge is no longer a serial step of this process before them.
    """
    # The jobs with a row per person first: they take longest, the others fill in around them.
    heavy = ("coverage", "capacity", "e2sfca", "gaps", "rings")
    order = sorted(jobs, key=lambda j: j not in heavy)
    futures = {
        job: client.submit(job_outputs, job, results[job], list(parts), str(out), lang, workspace,
                           pure=False)
        for job in order
    }  # fmt: skip
    return {job: futures[job].result() for job in jobs}


def write_province_outputs(
    results: Mapping[str, RunResult],
    parts: Sequence[Part],
    out_dir: str | Path,
    *,
    lang: Lang = "zh",
    workspace: Any = None,
    client: Any = None,
) -> dict[str, Path]:
    """Write each job's outputs and the province's: GeoPackage, CSV, map and report.

    Each job's outputs are :func:`geo_mz.scale.write_run_outputs`'s (``workspace``, optional,
    gives the shelters' order of the evacuation's layers).

    Parameters
    ----------
    results, parts
        :func:`run_all`'s runs and their parts.
    out_dir
        Output folder.
    lang
        Language of maps and report.
    workspace
        The open workspace (or its path or URL), optional.
    client
        A Dask client: each job's outputs are then written by a task of their own on its
        workers, side by side (the same files as in this process; the workers must see
        ``out_dir`` and the store, and open the workspace by its path or URL: give an open
        PostGIS workspace's URL itself, else the outputs are written here); None writes them
        one after the other here.

    Returns
    -------
    dict
        ``<job>_gpkg``, ``<job>_csv``, ``<job>_map`` per job with outputs, and ``gpkg``,
        ``csv``, ``map``, ``report`` of the province.
    """
    from geo_mz.outputs.files import write_gpkg
    from geo_mz.outputs.maps import save_map

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    jobs = [job for job, res in results.items() if has_results(res)]
    ref = _workspace_ref(workspace)
    if client is not None and len(jobs) > 1 and (workspace is None or ref is not None):
        done = _outputs_on_cluster(client, results, jobs, parts, out, lang, ref)
    else:
        done = {job: job_outputs(job, results[job], parts, out, lang, workspace) for job in jobs}
    for job in jobs:
        for name, path in done[job][0].items():
            paths[f"{job}_{name}"] = Path(path)
    table = province_table(results, parts, summaries={job: done[job][1] for job in jobs})
    paths["gpkg"] = write_gpkg(out / "scale_all.gpkg", {"scale_all_parts": table})
    csv = out / "scale_all_parts.csv"
    table.drop(columns="geometry").to_csv(csv, index=False, encoding="utf-8-sig")
    paths["csv"] = csv
    catalog: dict[str, Any] = {}
    shown: dict[str, gpd.GeoDataFrame] = {}
    for job in results:
        if f"{job}_status" not in table:
            continue
        zh, en = JOB_TITLES.get(job, (job, job))
        name = f"scale_parts_{job}"
        catalog[name] = dataclasses.replace(parts_spec(job), name=name, title_zh=zh, title_en=en)
        shown[name] = _job_layer(table, job)
    first = next(iter(shown), None)
    m = run_map(shown, catalog=catalog, lang=lang, show=[first] if first else None,
                simplify_m=PROVINCE_MAP_SIMPLIFY_M)  # fmt: skip
    paths["map"] = save_map(m, out / "scale_all_map.html")
    paths["report"] = _write_report(out / "scale_all_report.html", table, results, lang)
    return paths


def _write_report(
    path: Path, table: gpd.GeoDataFrame, results: Mapping[str, RunResult], lang: Lang
) -> Path:
    """Write a one-page HTML report: per job its parts done/failed, time, speed and figures."""
    zh = lang == "zh"
    rows = []
    for job, res in results.items():
        st = res.parts["status"]
        run = int((st != "skipped").sum())
        per_min = 60.0 * run / res.seconds if res.seconds > 0 and run else float("nan")
        kpi = table.get(f"{job}_kpi")
        med = float(kpi.median()) if kpi is not None and kpi.notna().any() else float("nan")
        med_text = f"{100 * med:.1f} %" if job in SHARE_JOBS else f"{med:.3g}"
        med_text = "—" if np.isnan(med) else med_text
        peak = table.get(f"{job}_peak_rss_mib")
        peak_max = float(peak.max()) if peak is not None and peak.notna().any() else float("nan")
        title = JOB_TITLES.get(job, (job, job))[0 if zh else 1]
        rows.append(
            f"<tr><td>{html.escape(title)}</td><td>{int((st != 'failed').sum())}/{len(st)}</td>"
            f"<td>{int((st == 'failed').sum())}</td><td>{res.seconds:.1f}</td>"
            f"<td>{_num(per_min, '.1f')}</td><td>{med_text}</td><td>{_num(peak_max, '.0f')}</td>"
            f"<td><code>{html.escape(res.run_key)}</code></td></tr>"
        )
    head = (
        ["分析 Analysis", "完成 Done", "失败 Failed", "用时 s", "分区/分钟 parts/min",
         "指标中位数 median figure", "峰值内存 MiB peak", "运行 run"]
        if zh
        else ["Analysis 分析", "Done 完成", "Failed 失败", "Seconds 用时", "Parts/min 分区/分钟",
              "Median figure 指标中位数", "Peak MiB 峰值内存", "Run 运行"]
    )  # fmt: skip
    shown = table.drop(columns="geometry").copy()
    names = {"part": "代码 code", "name": "名称 name"}
    for job in results:
        label = SHORT_TITLES.get(job, (job, job))[0 if zh else 1]
        pct = job in SHARE_JOBS
        if f"{job}_kpi" in shown and pct:
            shown[f"{job}_kpi"] = 100 * shown[f"{job}_kpi"]
        names |= {f"{job}_status": f"{label} · 状态 status",
                  f"{job}_kpi": f"{label} · {'%' if pct else '数 n'}",
                  f"{job}_seconds": f"{label} · 秒 s",
                  f"{job}_peak_rss_mib": f"{label} · MiB"}  # fmt: skip
    parts_html = shown.rename(columns=names).to_html(
        index=False, na_rep="—", float_format=lambda v: f"{v:.3g}", border=0
    )
    title = "分区运行总报告 Province run report" if zh else "Province run report 分区运行总报告"
    text = (
        "<!doctype html><html lang='{lang}'><head><meta charset='utf-8'>"
        "<title>{title}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px;"
        "text-align:right;white-space:nowrap}}td.wrap{{text-align:left;white-space:normal;"
        "max-width:40em}}</style></head><body><h1>{title}</h1>"
        "<p><a href='scale_all_map.html'>{map}</a></p><table><tr>{head}</tr>{rows}</table>"
        "{failures}<h2>{per_part}</h2>{parts}</body></html>"
    ).format(
        failures=_failures_html(results, zh),
        lang="zh-CN" if zh else "en",
        title=title,
        map="地图 Map" if zh else "Map 地图",
        head="".join(f"<th>{html.escape(h)}</th>" for h in head),
        rows="".join(rows),
        per_part="各分区 Parts" if zh else "Parts 各分区",
        parts=parts_html,
    )
    path.write_text(text, encoding="utf-8")
    return path


def _num(v: float, fmt: str) -> str:
    """Format a figure; a missing one (no part ran) as a dash, not ``nan``."""
    return "—" if np.isnan(v) else format(v, fmt)


def _failures_html(results: Mapping[str, RunResult], zh: bool) -> str:
    """Return the causes of failed parts: a row per job and error (a shared cause once)."""
    rows = []
    for job, res in results.items():
        title = JOB_TITLES.get(job, (job, job))[0 if zh else 1]
        for error, bad in res.failed.groupby("error", sort=False):
            codes = ", ".join(bad["part"].astype(str).head(10)) + (", …" if len(bad) > 10 else "")
            rows.append(
                f"<tr><td>{html.escape(title)}</td><td>{len(bad)}</td>"
                f"<td class='wrap'>{html.escape(codes)}</td>"
                f"<td class='wrap'>{html.escape(str(error))}</td></tr>"
            )
    if not rows:
        return ""
    head = (["分析 Analysis", "分区数 parts", "分区 codes", "原因 cause"] if zh
            else ["Analysis 分析", "Parts 分区数", "Codes 分区", "Cause 原因"])  # fmt: skip
    cells = "".join(f"<th>{h}</th>" for h in head)
    heading = "失败原因 Why parts failed" if zh else "Why parts failed 失败原因"
    return f"<h2>{heading}</h2><table><tr>{cells}</tr>{''.join(rows)}</table>"


__all__ = [
    "JOB_TITLES",
    "ONE_ZONE_DEG",
    "PROVINCE_MAP_SIMPLIFY_M",
    "QA_LEVEL_BELOW",
    "SHARE_JOBS",
    "SHORT_TITLES",
    "job_options",
    "job_outputs",
    "province_table",
    "run_all",
    "write_province_outputs",
]

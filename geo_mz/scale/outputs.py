"""What a partitioned run hands to people: a map of its parts, a GeoPackage, a status table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_mz.core.projection import STORAGE_CRS
from geo_mz.core.results import Kpi
from geo_mz.scale.partition import Part
from geo_mz.scale.runner import RunResult, gather
from geo_mz.scale.store import open_run_store

Lang = Literal["zh", "en"]

#: Result layers gathered into the output GeoPackage per job. Per-point coverage times stay in
#: the run store (millions of rows on a national run); ``gather(store, key, "times")`` reads them.
OUTPUT_LAYERS = {
    "coverage": ("units",),
    "relief": ("audit",),
    "boundaries": ("findings", "invalid_edges"),
}
KPI_NAMES = {
    "coverage": "share_15min",
    "relief": "share_meets_all",
    "boundaries": "findings",
}


def _part_kpi(job: str, gathered: dict[str, pd.DataFrame], parts: Sequence[Part]) -> pd.Series:
    codes = [p.code for p in parts]
    if job == "coverage":
        u = gathered["units"]
        if u.empty:
            return pd.Series(np.nan, index=codes)
        own = u[u["adcode"].astype(str) == u["part"].astype(str)]
        return own.set_index("part")["share_15min"].reindex(codes).astype(float)
    if job == "relief":
        a = gathered["audit"]
        if a.empty:
            return pd.Series(np.nan, index=codes)
        per_point = a.groupby(["part", "point_id"])["meets"].all()
        return per_point.groupby(level=0).mean().reindex(codes).astype(float)
    f = gathered["findings"]
    counts = f.groupby("part").size() if not f.empty else pd.Series(dtype=float)
    return counts.reindex(codes).fillna(0).astype(float)


def points_left_out(job: str, ws: Any, result: RunResult) -> tuple[int, int] | None:
    """Points of the workspace that no part computed, for a run over every part.

    A part takes the points whose code starts with its own (read within its bounding box);
    a point with no such code, or lying outside its part's box, belongs to none. Returns
    (points in the parts, points in the workspace), or None for jobs without points.
    """
    if job not in ("coverage", "relief") or not result.ok:
        return None
    st = open_run_store(result.store).status(result.run_key)
    done = st[st["status"] == "done"]
    n = int(sum(json.loads(r or "{}").get("info", {}).get("points", 0) for r in done["rows"]))
    # counted now, not from the layer records: a layer edited by another tool has stale records
    layers = set(ws.layers())
    if job == "coverage":
        total = ws.count("population") if "population" in layers else 0
    else:
        units = ws.read("admin_units")
        inj = units.get("in_jurisdiction", pd.Series(True, index=units.index)).fillna(True)
        total = int(((units["level"] == "village") & inj.astype(bool)).sum())
        total += ws.count("shelters") if "shelters" in layers else 0
    return n, total


def part_summary(
    job: str, result: RunResult, parts: Sequence[Part], gathered: dict[str, pd.DataFrame]
) -> gpd.GeoDataFrame:
    """One row per part: status, seconds, error and the job's headline figure (``kpi``)."""
    kpi = _part_kpi(job, gathered, parts)
    table = result.parts.set_index("part")
    rows = []
    for p in parts:
        r = table.loc[p.code] if p.code in table.index else None
        rows.append(
            {
                "part": p.code,
                "name": p.name,
                "status": "failed" if r is None else str(r["status"]),
                "kpi": float(kpi.get(p.code, np.nan)),
                "kpi_name": KPI_NAMES[job],
                "seconds": np.nan if r is None else float(r["seconds"]),
                "error": None if r is None or pd.isna(r["error"]) else str(r["error"]),
            }
        )
    return gpd.GeoDataFrame(rows, geometry=[p.geometry for p in parts], crs=STORAGE_CRS)


def run_kpis(job: str, result: RunResult, summary: gpd.GeoDataFrame) -> list[Kpi]:
    """Headline figures of the run: parts done/failed, throughput, the job's figure overall."""
    st = result.parts["status"]
    n_run = int((st != "skipped").sum())
    per_min = 60.0 * n_run / result.seconds if result.seconds > 0 and n_run else float("nan")
    failed = int((st == "failed").sum())
    kpis = [
        Kpi("完成分区", "Parts done", f"{int((st != 'failed').sum())}/{len(st)}", "", "", None, ""),
        Kpi("失败分区", "Parts failed", failed, "", "0", failed == 0, "rerun the same command"),
        Kpi("吞吐量", "Throughput", round(per_min, 1), "个/分钟 parts/min", "", None,
            f"{result.workers or 'in-process'} worker(s); parts done earlier not counted"),
    ]  # fmt: skip
    k = summary["kpi"].dropna()
    if job == "boundaries":
        kpis.append(Kpi("拓扑问题", "Topology findings", int(k.sum()), "", "", None, ""))
    elif len(k):
        label = (
            ("15分钟覆盖率(分区中位数)", "15-min share, median part")
            if job == "coverage"
            else ("全部时限达标的点(分区中位数)", "Points meeting all targets, median part")
        )
        kpis.append(Kpi(*label, round(100 * float(k.median()), 1), "%", "", None, ""))
    return kpis


def write_run_outputs(
    job: str,
    result: RunResult,
    parts: Sequence[Part],
    out_dir: str | Path,
    *,
    lang: Lang = "zh",
) -> dict[str, Path]:
    """Write ``scale_<job>.gpkg`` (parts + gathered layers), ``…_parts.csv`` and a map.

    Returns
    -------
    dict
        ``gpkg``, ``csv`` and ``map`` paths.
    """
    from geo_mz.core.results import result_catalog
    from geo_mz.outputs.files import write_gpkg
    from geo_mz.outputs.maps import layers_map, save_map

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gathered = {name: gather(result.store, result.run_key, name) for name in OUTPUT_LAYERS[job]}
    summary = part_summary(job, result, parts, gathered)
    layers: dict[str, gpd.GeoDataFrame] = {"scale_parts": summary}
    for name, df in gathered.items():
        if isinstance(df, gpd.GeoDataFrame) and len(df):
            layers[f"{job}_{name}"] = df
        elif len(df):
            layers[f"{job}_{name}"] = gpd.GeoDataFrame(df)
    paths = {"gpkg": write_gpkg(out / f"scale_{job}.gpkg", layers)}
    csv = out / f"scale_{job}_parts.csv"
    summary.drop(columns="geometry").to_csv(csv, index=False, encoding="utf-8-sig")
    paths["csv"] = csv
    catalog = result_catalog()
    shown = {"scale_parts": summary}
    # The job's own layers, drawn with their result specs (villages, points, findings).
    spec_of = {"units": "coverage_units", "audit": "relief_audit", "findings": "boundary_findings"}
    for name, df in gathered.items():
        if name in spec_of and isinstance(df, gpd.GeoDataFrame) and len(df):
            shown[spec_of[name]] = df
    m = layers_map(shown, catalog=catalog, lang=lang)
    paths["map"] = save_map(m, out / f"scale_{job}_map.html")
    return paths


__all__ = ["OUTPUT_LAYERS", "part_summary", "points_left_out", "run_kpis", "write_run_outputs"]

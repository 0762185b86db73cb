"""What a partitioned run hands to people: a map of its parts, a GeoPackage, a status table."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_mz.core.projection import STORAGE_CRS
from geo_mz.core.results import Kpi
from geo_mz.scale.partition import Part
from geo_mz.scale.runner import RunResult
from geo_mz.scale.store import open_run_store
from geo_mz.scale.store_base import gather_layers

Lang = Literal["zh", "en"]

#: Result layers gathered into the output GeoPackage per job. Per-point rows (coverage and
#: capacity times, E2SFCA people) stay in the run store (millions of rows on a national run);
#: ``gather(store, key, "times")`` reads them.
OUTPUT_LAYERS = {
    "coverage": ("units",),
    "capacity": ("units", "centres"),
    "e2sfca": ("centres",),
    "rings": ("rings",),
    "gaps": ("gaps", "gap_clusters"),
    "relief": ("audit",),
    "relief_scenario": ("scenario", "changes"),
    "shelter_adequacy": ("towns", "villages", "units"),
    "evacuation": ("load", "lines", "unassigned"),
    "boundaries": ("findings", "invalid_edges"),
}
#: Layers read only for a job's headline figure (not written: one row per population cell).
KPI_LAYERS = {"e2sfca": ("population",)}
#: The headline figure of each job, per part (``kpi`` of the parts table):
#:
#: - ``share_15min``: share of the part's aged 60+ within 15 min of a centre;
#: - ``share_capacity_adj``: the same, each person counted by min(1, places / demand) of the
#:   serving centre;
#: - ``share_access_40``: share of the part's aged 60+ whose E2SFCA access (beds per 1,000 in
#:   reach, decayed) is at least 40 (GB 50437 §3.2.1);
#: - ``area_15min_km2``: area of the part within 15 min of a centre (the rings' pieces);
#: - ``pop_60plus_in_gaps``: aged 60+ in the gap hexagons the part owns (a hexagon on a
#:   border belongs to the lowest part code holding its people);
#: - ``share_meets_all``: share of the part's points (villages, shelters) whose every delivery
#:   target is met (under the scenario for ``relief_scenario``);
#: - ``pop_served_share``: share of the part's people with a shelter within service distance;
#: - ``share_placed``: share of the part's people (by their village code) placed in a shelter;
#: - ``findings``: boundary topology findings.
KPI_NAMES = {
    "coverage": "share_15min",
    "capacity": "share_capacity_adj",
    "e2sfca": "share_access_40",
    "rings": "area_15min_km2",
    "gaps": "pop_60plus_in_gaps",
    "relief": "share_meets_all",
    "relief_scenario": "share_meets_all",
    "shelter_adequacy": "pop_served_share",
    "evacuation": "share_placed",
    "boundaries": "findings",
}
JOB_TITLES = {
    "coverage": ("15分钟养老服务圈覆盖率", "15-minute elder-care coverage"),
    "capacity": ("按床位容量折算的15分钟覆盖率", "Capacity-adjusted 15-minute coverage"),
    "e2sfca": ("床位可达性达标人口比例（E2SFCA）", "Aged 60+ with enough beds in reach (E2SFCA)"),
    "rings": ("15分钟步行等时圈面积", "15-minute walking isochrone area"),
    "gaps": ("服务圈缺口中的老年人口", "Aged 60+ in coverage-gap hexagons"),
    "relief": ("救灾物资送达时限达标率", "Relief delivery within target"),
    "relief_scenario": ("灾情情景下送达时限达标率", "Relief delivery within target, scenario"),
    "shelter_adequacy": ("服务距离内有避难场所的人口比例", "People within reach of a shelter"),
    "evacuation": ("疏散安置率", "People placed in a shelter"),
    "boundaries": ("边界拓扑问题", "Boundary topology findings"),
}

#: The gap hexagons' and merged rings' CRS when the parts measure in different ones (wider
#: than one Gauss–Krüger zone): China's Albers equal-area (local choice).
CHINA_ALBERS = "+proj=aea +lat_0=0 +lon_0=105 +lat_1=25 +lat_2=47 +ellps=GRS80 +units=m +no_defs"
RING_MIN = 15.0
"""The ring that ``area_15min_km2`` counts up to (minutes)."""
PEOPLE = "pop_60plus"


LEVELS_DOWN = ("province", "city", "county", "town", "village")
"""Unit levels from the top: a part's figure is read from its highest level."""


def _own_unit_share(units: pd.DataFrame, field: str, codes: list[str]) -> pd.Series:
    """Return the share ``field`` of each part's own unit, or of its top-level units together.

    A part that is a unit (a county part) has its own row. A part derived from several units
    (a city part of a workspace without city units) has none: its share is the aged-60+
    weighted mean of its highest-level rows (its counties), which is the covered people of
    all its counties over all their people.
    """
    if units.empty or field not in units:
        return pd.Series(np.nan, index=codes)
    own = units[units["adcode"].astype(str) == units["part"].astype(str)]
    out = own.set_index("part")[field].reindex(codes).astype(float)
    for code in out.index[out.isna()]:
        rows = units[units["part"].astype(str) == code]
        top = next((lv for lv in LEVELS_DOWN if (rows["level"] == lv).any()), None)
        if top is None or PEOPLE not in rows:
            continue
        rows = rows[rows["level"] == top]
        n = pd.to_numeric(rows[PEOPLE]).to_numpy(float)
        v = pd.to_numeric(rows[field]).to_numpy(float)
        has = n > 0
        if has.any():
            out[code] = float((v[has] * n[has]).sum() / n[has].sum())
    return out


def _share_meets_all(rows: pd.DataFrame, codes: list[str]) -> pd.Series:
    if rows.empty:
        return pd.Series(np.nan, index=codes)
    per_point = rows.groupby(["part", "point_id"])["meets"].all()
    return per_point.groupby(level=0).mean().reindex(codes).astype(float)


def _by_code_prefix(df: pd.DataFrame, field: str, codes: list[str]) -> pd.Series:
    """Sum ``field`` per part by the rows' ``adcode`` (a part solves other parts' people too)."""
    if df.empty:
        return pd.Series(0.0, index=codes)
    code = df["adcode"].astype(str)
    vals = pd.to_numeric(df[field]).to_numpy(float)
    return pd.Series([float(vals[code.str.startswith(c).to_numpy()].sum()) for c in codes],
                     index=codes)  # fmt: skip


def _part_kpi(job: str, gathered: dict[str, pd.DataFrame], parts: Sequence[Part]) -> pd.Series:
    """Each part's headline figure (:data:`KPI_NAMES`) from the gathered per-part rows."""
    codes = [p.code for p in parts]
    nan = pd.Series(np.nan, index=codes)
    if job == "coverage":
        return _own_unit_share(gathered["units"], "share_15min", codes)
    if job == "capacity":
        return _own_unit_share(gathered["units"], "share_capacity_adj", codes)
    if job == "e2sfca":
        p = gathered["population"]
        if p.empty:
            return nan
        from geo_mz.core.standards import BEDS_PER_1000_MIN

        n = pd.to_numeric(p[PEOPLE]).astype(float)
        ok = pd.to_numeric(p["access_score"]).to_numpy(float) >= BEDS_PER_1000_MIN - 1e-9
        g = pd.DataFrame({"part": p["part"], "all": n, "ok": n * ok}).groupby("part").sum()
        return (g["ok"] / g["all"].where(g["all"] > 0)).reindex(codes).astype(float)
    if job == "rings":
        r = gathered["rings"]
        if r.empty:
            return nan
        r = r[pd.to_numeric(r["threshold_min"]) <= RING_MIN + 1e-9]
        return (r.groupby("part")["area_m2"].sum() / 1e6).reindex(codes).fillna(0.0)
    if job == "gaps":
        g = gathered["gaps"]
        if g.empty:
            return pd.Series(0.0, index=codes)
        return g.groupby("part")["pop_60plus_uncovered"].sum().reindex(codes).fillna(0.0)
    if job == "relief":
        return _share_meets_all(gathered["audit"], codes)
    if job == "relief_scenario":
        return _share_meets_all(gathered["scenario"], codes)
    if job == "shelter_adequacy":
        t = gathered["towns"]
        if t.empty:
            return nan
        t = t[t["level"] != "total"]
        g = t.groupby("part")[["pop_served", "population"]].sum()
        return (g["pop_served"] / g["population"].where(g["population"] > 0)).reindex(codes)
    if job == "evacuation":
        placed = _by_code_prefix(gathered["lines"], "persons", codes)
        left = _by_code_prefix(gathered["unassigned"], "persons_unassigned", codes)
        total = placed + left
        return (placed / total.where(total > 0)).astype(float)
    f = gathered["findings"]
    counts = f.groupby("part").size() if not f.empty else pd.Series(dtype=float)
    return counts.reindex(codes).fillna(0).astype(float)


def part_infos(result: RunResult) -> dict[str, dict[str, Any]]:
    """Each done part's round figures (the part function's log: ``crs``, ``rounds`` …)."""
    st = open_run_store(result.store).status(result.run_key)
    done = st[st["status"] == "done"]
    return {
        str(p): json.loads(r or "{}").get("info", {})
        for p, r in zip(done["part"], done["rows"], strict=True)
    }


def _one_crs(result: RunResult) -> str:
    """Return the CRS every part measured in, or China's Albers when they differ."""
    crs = {str(i["crs"]) for i in part_infos(result).values() if i.get("crs")}
    return crs.pop() if len(crs) == 1 else CHINA_ALBERS


def gather_outputs(
    job: str, result: RunResult, *, workspace: Any = None
) -> dict[str, pd.DataFrame]:
    """Return the output layers of a run (:data:`OUTPUT_LAYERS`), joined as the whole run's.

    Most layers are the parts' rows stacked. Three need a join:

    - ``rings``: the parts' pieces of each ring, joined into one row per ring
      (:func:`geo_mz.scale.merge_rings`);
    - ``evacuation``: shelters filled from several parts summed, flows and sources numbered
      anew, people not placed per village
      (:func:`geo_mz.scale.gather_evacuation`; ``workspace`` gives the
      shelters' order, else by id);
    - ``shelter_adequacy``: the district ``total`` row of the towns and villages tables
      (:func:`geo_mz.scale.gather_adequacy_totals`).

    Parameters
    ----------
    job
        A name in :data:`OUTPUT_LAYERS`.
    result
        The run.
    workspace
        The open workspace (only read for the shelters' order of ``evacuation``).

    Returns
    -------
    dict
        Layer name → rows.
    """
    raw = gather_layers(open_run_store(result.store), result.run_key, OUTPUT_LAYERS[job])
    return _joined(job, raw, result, workspace)


def _joined(
    job: str, raw: dict[str, pd.DataFrame], result: RunResult, workspace: Any
) -> dict[str, pd.DataFrame]:
    from geo_mz.scale.partition_rings import merge_rings
    from geo_mz.scale.partition_shelters import gather_adequacy_totals, gather_evacuation

    out = dict(raw)
    if job == "rings" and len(raw["rings"]):
        out["rings"] = merge_rings(raw["rings"].drop(columns="part"), _one_crs(result))
    elif job == "shelter_adequacy":
        for name in ("towns", "villages"):
            t = raw[name]
            if len(t):
                tot = gather_adequacy_totals(t).to_dict()
                first = str(t["adcode"].iloc[0])[:6]
                row = {**tot, "level": "total", "adcode": first, "name": "合计 total"}
                out[name] = pd.concat([t, pd.DataFrame([row])], ignore_index=True)
    elif job == "evacuation" and len(raw["load"]):
        out = _gather_evacuation(raw, result, workspace, gather_evacuation)
    return out


def _gather_evacuation(
    raw: dict[str, pd.DataFrame], result: RunResult, workspace: Any, join: Any
) -> dict[str, pd.DataFrame]:
    infos = part_infos(result)
    crs = _one_crs(result)
    frames = []
    codes = pd.concat([df["part"].astype(str) for df in raw.values()], ignore_index=True)
    for code in dict.fromkeys(codes):
        f = {n: df[df["part"].astype(str) == code].drop(columns="part") for n, df in raw.items()}
        un = f["unassigned"]
        own = infos.get(code, {}).get("crs") or crs
        if len(un) and own != crs:
            # The parts measured in different zones: bring their centres into one CRS.
            pts = gpd.GeoSeries(gpd.points_from_xy(un["x_m"], un["y_m"]), crs=own).to_crs(crs)
            f["unassigned"] = un.assign(x_m=pts.x.to_numpy(), y_m=pts.y.to_numpy())
        frames.append(f)
    order = None
    if workspace is not None and "shelters" in workspace.layers():
        order = workspace.read("shelters")["shelter_id"].astype(str).tolist()
    return join(frames, crs, shelter_order=order)


def points_left_out(job: str, ws: Any, result: RunResult) -> tuple[int, int] | None:
    """Points of the workspace that no part computed, for a run over every part.

    A part takes the points whose code starts with its own (read within its bounding box);
    a point with no such code, or lying outside its part's box, belongs to none. Returns
    (points in the parts, points in the workspace), or None for jobs without points.
    """
    if job not in ("coverage", "relief", "relief_scenario") or not result.ok:
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


#: How the run's figure sums up the parts' (Chinese, English, unit, "median" or "sum").
RUN_FIGURES = {
    "coverage": ("15分钟覆盖率(分区中位数)", "15-min share, median part", "%", "median"),
    "capacity": ("容量折算覆盖率(分区中位数)", "Capacity-adjusted share, median part", "%",
                 "median"),
    "e2sfca": ("可达床位达标老人比例(分区中位数)", "Aged 60+ with ≥ 40 beds/1,000 in reach, "
               "median part", "%", "median"),
    "rings": ("15分钟等时圈面积(合计)", "15-min isochrone area, all parts", "km²", "sum"),
    "gaps": ("缺口中的老年人口(合计)", "Aged 60+ in gap hexagons, all parts", "人", "sum"),
    "relief": ("全部时限达标的点(分区中位数)", "Points meeting all targets, median part", "%",
               "median"),
    "relief_scenario": ("情景下全部时限达标的点(分区中位数)",
                        "Points meeting all targets under the scenario, median part", "%",
                        "median"),
    "shelter_adequacy": ("服务距离内有避难场所的人口(分区中位数)",
                         "People within reach of a shelter, median part", "%", "median"),
    "evacuation": ("疏散安置率(分区中位数)", "People placed in a shelter, median part", "%",
                   "median"),
    "boundaries": ("拓扑问题", "Topology findings", "", "sum"),
}  # fmt: skip


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
    if not len(k) or job not in RUN_FIGURES:
        return kpis
    zh, en, unit, how = RUN_FIGURES[job]
    if how == "sum":
        value = float(k.sum())
        kpis.append(Kpi(zh, en, round(value) if unit != "km²" else round(value, 2),
                        unit, "", None, ""))  # fmt: skip
    else:
        kpis.append(Kpi(zh, en, round(100 * float(k.median()), 1), unit, "", None, ""))
    return kpis


def _spatial(df: pd.DataFrame) -> bool:
    """Whether ``df`` has an active geometry column (a gathered table is a GeoDataFrame without)."""
    return isinstance(df, gpd.GeoDataFrame) and df._geometry_column_name in df.columns


#: The result spec each output layer is drawn with on the run's map (layers/results/).
MAP_SPECS = {
    ("coverage", "units"): "coverage_units",
    ("capacity", "units"): "coverage_units",
    ("e2sfca", "centres"): "e2sfca_centres",
    ("rings", "rings"): "isochrones",
    ("gaps", "gaps"): "coverage_gaps",
    ("relief", "audit"): "relief_audit",
    ("relief_scenario", "scenario"): "relief_audit",
    ("relief_scenario", "changes"): "relief_changes",
    ("shelter_adequacy", "units"): "shelter_units",
    ("evacuation", "load"): "shelter_load",
    ("evacuation", "lines"): "evacuation",
    ("evacuation", "unassigned"): "evacuation_unassigned",
    ("boundaries", "findings"): "boundary_findings",
}


def write_run_outputs(
    job: str,
    result: RunResult,
    parts: Sequence[Part],
    out_dir: str | Path,
    *,
    lang: Lang = "zh",
    workspace: Any = None,
    gathered: Mapping[str, pd.DataFrame] | None = None,
    summary: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """Write ``scale_<job>.gpkg`` (parts + gathered layers), ``…_parts.csv`` and a map.

    The layers are those of :func:`gather_outputs` (joined as the whole run's).

    Parameters
    ----------
    job, result, parts
        The job, its run and its parts.
    out_dir
        Output folder.
    lang
        Map language.
    workspace
        The open workspace (the shelters' order of ``evacuation``), optional.
    gathered
        The run's layers as ``gather_kpi_layers`` gives them, when the caller has them
        (``scale run all`` gathers each job once for its outputs and the province table).
    summary
        :func:`part_summary` of the run, when the caller has made it (else made here).

    Returns
    -------
    dict
        ``gpkg``, ``csv`` and ``map`` paths.
    """
    from geo_mz.core.results import result_catalog
    from geo_mz.outputs.files import write_gpkg
    from geo_mz.outputs.maps import save_map

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    raw = dict(gathered) if gathered is not None else gather_kpi_layers(job, result)
    if summary is None:
        summary = part_summary(job, result, parts, raw)
    gathered = _joined(job, {n: raw[n] for n in OUTPUT_LAYERS[job]}, result, workspace)
    layers: dict[str, gpd.GeoDataFrame] = {"scale_parts": summary}
    for name, df in gathered.items():
        if _spatial(df) and len(df):
            layers[f"{job}_{name}"] = df
        elif len(df):  # a table (towns, villages): an empty geometry column for the GeoPackage
            none = gpd.GeoSeries([None] * len(df), index=df.index, crs=STORAGE_CRS)
            layers[f"{job}_{name}"] = gpd.GeoDataFrame(pd.DataFrame(df), geometry=none)
    paths = {"gpkg": write_gpkg(out / f"scale_{job}.gpkg", layers)}
    csv = out / f"scale_{job}_parts.csv"
    summary.drop(columns="geometry").to_csv(csv, index=False, encoding="utf-8-sig")
    paths["csv"] = csv
    catalog = {**result_catalog(), "scale_parts": parts_spec(job)}
    shown = {"scale_parts": summary}
    # The job's own layers, drawn with their result specs (villages, points, findings).
    for name, df in gathered.items():
        spec = MAP_SPECS.get((job, name))
        if spec and _spatial(df) and len(df):
            shown[spec] = df
    m = run_map(shown, catalog=catalog, lang=lang)
    paths["map"] = save_map(m, out / f"scale_{job}_map.html")
    return paths


def run_map(
    layers: Mapping[str, gpd.GeoDataFrame],
    *,
    catalog: Mapping[str, Any],
    lang: Lang = "zh",
    show: Sequence[str] | None = None,
    simplify_m: float | None = None,
) -> Any:
    """Draw a partitioned run's map: lines and polygons simplified, and the map says so.

    A province's map draws every village or county polygon of the run; at the zoom that shows
    a province, their full outlines are invisible detail and most of the file (and of the time
    to write it). They are drawn simplified to about ``SIMPLIFY_M`` metres, as the analyses'
    own offline maps are (``geo_mz.outputs.maps.SIMPLIFY_M``), each polygon of a
    multipolygon on its own (a province's merged rings are three multipolygons of some
    700,000 vertices: simplified whole, they take 9 s); the GeoPackage beside the map keeps
    them whole. A note on the map says so.

    Parameters
    ----------
    layers
        Layer name (a catalog name) to its features.
    catalog
        Layer specs by name.
    lang
        ``zh`` or ``en``.
    show
        Layers switched on when the map opens (None: all).
    simplify_m
        Simplification in metres; ``SIMPLIFY_M`` when None.

    Returns
    -------
    folium.Map
        The map, as ``geo_mz.outputs.maps.layers_map`` draws it, with the note.
    """
    import html

    import folium

    from geo_mz.outputs.maps import SIMPLIFY_M, layers_map

    tol = SIMPLIFY_M if simplify_m is None else float(simplify_m)
    m = layers_map(
        layers, catalog=catalog, lang=lang, show=show, simplify_m=tol, simplify_by_part=True
    )
    zh = f"线、面按约 {tol:g} 米简化显示，GeoPackage 中为完整几何"
    en = f"Lines and polygons drawn simplified to about {tol:g} m; the GeoPackage keeps them whole"
    note = f"{zh} / {en}" if lang == "zh" else f"{en} / {zh}"
    # Above Leaflet's attribution line, which would cover its end.
    m.get_root().html.add_child(
        folium.Element(
            '<div class="gm-simplified" style="position:fixed;bottom:24px;right:8px;z-index:1000;'
            'background:rgba(255,255,255,.8);padding:1px 6px;font:11px sans-serif;color:#555">'
            f"{html.escape(note)}</div>"
        )
    )
    return m


def parts_spec(job: str) -> Any:
    """Return the ``scale_parts`` spec for one job's parts: its figure named, with its unit.

    The catalog's ``kpi`` field is a bare number; on a job's map its legend and popups name the
    job's figure (``JOB_TITLES``) and write a share as a percentage (1.9 %, not 0.019).
    """
    import dataclasses

    from geo_mz.core.results import result_catalog

    base = result_catalog()["scale_parts"]
    zh, en = JOB_TITLES.get(job, (None, None))
    name = KPI_NAMES.get(job, "")
    unit = "share" if "share" in name else ("person" if name.startswith("pop_") else None)
    fields = tuple(
        dataclasses.replace(f, unit=unit, title_zh=zh or f.title_zh, title_en=en or f.title_en)
        if f.name == "kpi"
        else f
        for f in base.fields
    )
    return dataclasses.replace(base, fields=fields)


def has_results(result: RunResult) -> bool:
    """Return whether the run stored any part's results.

    False when every part failed, or when a two-pass job's first pass failed somewhere, so its
    second pass never ran.
    """
    if not (result.parts["status"] != "failed").any():
        return False
    return result.run_key in set(open_run_store(result.store).runs()["run_key"].astype(str))


def gather_kpi_layers(job: str, result: RunResult) -> dict[str, pd.DataFrame]:
    """Return the gathered per-part rows a job's headline figure is computed from."""
    names = (*OUTPUT_LAYERS.get(job, ()), *KPI_LAYERS.get(job, ()))
    # All at once: the GeoPackage store merges the run's part files once and keeps their rows.
    return gather_layers(open_run_store(result.store), result.run_key, names)


__all__ = [
    "CHINA_ALBERS",
    "JOB_TITLES",
    "KPI_LAYERS",
    "KPI_NAMES",
    "MAP_SPECS",
    "OUTPUT_LAYERS",
    "RING_MIN",
    "RUN_FIGURES",
    "gather_kpi_layers",
    "gather_outputs",
    "has_results",
    "part_infos",
    "part_summary",
    "parts_spec",
    "points_left_out",
    "run_kpis",
    "run_map",
    "write_run_outputs",
]

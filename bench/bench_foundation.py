"""Foundation benchmarks, printed as ratios against a peer measured in the same run.

1. GCJ-02 -> WGS84: geo_mz's vectorised numpy inverse vs the per-point ``prcoords`` library
   (its exact iterative inverse, ``gcj_wgs_bored``), on the same points.
2. Checking a layer against its spec: ``geo_mz.core.validate.prepare_layer`` vs a bare
   ``pyogrio.read_dataframe`` of the same GeoPackage (the cost of validation over reading).

Run: ``make bench`` (or ``python bench/bench_foundation.py [n_points]``).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import prcoords
import pyogrio

from geo_mz.core.projection import gcj02_to_wgs84, wgs84_to_gcj02
from geo_mz.core.validate import prepare_layer


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_gcj(n: int) -> None:
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(112.9, 113.2, n), rng.uniform(22.5, 22.8, n)
    glon, glat = wgs84_to_gcj02(lon, lat)
    t_np = best_of(lambda: gcj02_to_wgs84(glon, glat))
    m = min(n, 20_000)
    t_pr = best_of(
        lambda: [prcoords.gcj_wgs_bored((a, o)) for o, a in zip(glon[:m], glat[:m], strict=True)], 1
    )
    t_pr_scaled = t_pr * n / m
    wlon, _ = gcj02_to_wgs84(glon, glat)
    err_m = float(np.max(np.abs(wlon - lon))) * 111_000
    print(
        f"GCJ-02->WGS84 {n:,} points: numpy {t_np:.3f} s, prcoords {t_pr_scaled:.2f} s "
        f"(measured on {m:,}); ratio {t_pr_scaled / t_np:.0f}x; max round-trip error {err_m:.1e} m"
    )


def bench_validate(n: int) -> None:
    rng = np.random.default_rng(1)
    pop = rng.uniform(0, 300, n).round()
    gdf = gpd.GeoDataFrame(
        {
            "cell_id": [f"P{i:07d}" for i in range(n)],
            "pop_total": pop,
            "pop_60plus": (pop * 0.12).round(),
            "cell_size_m": 100.0,
            "adcode": "440703002101",
        },
        geometry=gpd.points_from_xy(rng.uniform(112.9, 113.2, n), rng.uniform(22.5, 22.8, n)),
        crs="EPSG:4490",
    )
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "pop.gpkg"
        gdf.to_file(path, layer="population")
        t_read = best_of(lambda: pyogrio.read_dataframe(path))
        t_val = best_of(lambda: prepare_layer(path, "population"))
    print(
        f"validate {n:,} population points: bare read {t_read:.2f} s, read + full spec check "
        f"{t_val:.2f} s; ratio {t_val / t_read:.1f}x the bare read "
        f"({n / t_val:,.0f} features/s)"
    )


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    bench_gcj(n)
    bench_validate(n // 2)

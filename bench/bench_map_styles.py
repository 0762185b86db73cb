"""Writing a styled map layer: geo_mz's style table against folium's own per-feature styler.

``geo_mz.outputs.map_render.TableStyledGeoJson`` writes each feature's style as a row of a
table of distinct styles; ``folium.GeoJson`` with a ``style_function`` writes a ``switch``
with a ``case`` per feature (its best configuration for per-feature styles: folium has no
other way to give each feature its own). Both sides render the same FeatureCollection (the
villages of a generated province, or ``--n`` buffered points) with the same styles, a
continuous colour per feature as a choropleth of shares gives, into a page (``get_root().
render()``, as ``save_map`` does); the same warm-up and repetitions, the order rotated, the
median reported. The page's size is printed too.

Run: ``.venv/bin/python bench/bench_map_styles.py [--n 13216] [--reps 5] [--warmup 1]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import folium
import numpy as np
import shapely

from geo_mz.outputs.map_render import TableStyledGeoJson, rendered_text_kept


def _data(n: int, rng: np.random.Generator) -> tuple[dict, list[dict]]:
    xy = rng.uniform([110.0, 21.0], [117.0, 25.0], (n, 2))
    geoms = shapely.buffer(shapely.points(xy), 0.01, quad_segs=2)
    feats = [
        {"type": "Feature", "id": i, "properties": {"n": str(i)},
         "geometry": shapely.geometry.mapping(g)}
        for i, g in enumerate(geoms)
    ]  # fmt: skip
    share = rng.uniform(0, 1, n).round(3)  # a continuous share per village
    styles = [
        {"color": "#555555", "weight": 1, "fillOpacity": 0.7,
         "fillColor": f"#{int(255 * s):02x}{int(255 * (1 - s)):02x}40"}
        for s in share
    ]  # fmt: skip
    return {"type": "FeatureCollection", "features": feats}, styles


def _render(table: bool, data: dict, styles: list[dict]) -> int:
    m = folium.Map(tiles=None, prefer_canvas=True)
    if table:
        TableStyledGeoJson(data, styles).add_to(m)
    else:
        folium.GeoJson(data, style_function=lambda f: dict(styles[f["id"]])).add_to(m)
    with rendered_text_kept():
        return len(m.get_root().render())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=13_216, help="features (Guangdong's villages)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    a = ap.parse_args()
    data, styles = _data(a.n, np.random.default_rng(2026))
    print(f"configuration: {a.n} polygons, {len({str(s) for s in styles})} distinct styles; "
          f"warm-up {a.warmup}, reps {a.reps}, order rotated, median; CPUs {os.cpu_count()}, "
          f"Python {platform.python_version()}, folium {folium.__version__}; load "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    sides = {"folium style_function": False, "geo_mz style table": True}
    times: dict[str, list[float]] = {k: [] for k in sides}
    size: dict[str, int] = {}
    for _ in range(a.warmup):
        for table in sides.values():
            _render(table, data, styles)
    names = list(sides)
    for rep in range(a.reps):
        for name in names[rep % 2 :] + names[: rep % 2]:
            t0 = time.perf_counter()
            size[name] = _render(sides[name], data, styles)
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["folium style_function"])
    for name in names:
        med = statistics.median(times[name])
        print(f"  {name:<22} {med:6.3f} s  page {size[name] / 1e6:5.2f} MB  "
              f"{base / med:4.2f}x folium's speed")  # fmt: skip


if __name__ == "__main__":
    main()

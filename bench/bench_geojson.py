"""GeoJSON encoding of OGC API item pages: the old per-row encoder vs the columnar one, and peers.

A synthetic layer of ``--n`` points (default 100,000) with the shelters layer's schema (text
with Chinese, floats, nullable integers and booleans, some missing values) is made in memory
around Pengjiang (lon/lat). In the same run, with the same warm-up and repetitions and the
order of the sides rotated every round, it times:

1. **Encoders alone** on one page of ``--limit`` rows (default 1,000), to a JSON text:
   ``per-row`` (``features_of`` then ``json.dumps`` of the collection, the items handler before
   the columnar encoder), ``columnar`` (``features_json`` + ``collection_json``),
   ``gdf.to_json()`` (geopandas) and ``pyogrio`` (GDAL's GeoJSON writer into memory). The peers
   do not round coordinates nor write the same members: they are anchors, not equals.
2. **The items handler alone** (``webmap.core.features.items``, no HTTP; the response text
   made as the server makes it): pages ``limit=1000`` at random offsets, and ``bbox`` queries
   ``limit=100`` in random 0.02° boxes; old encoder vs new, as requests per second.

The items handler now takes ``columnar_cache.page_json``: the layer's features are encoded
once (on the second request that sees the frame) and a page is a join of their texts; the
per-page columnar encoder is timed too. ``--profile`` also prints cProfile's top functions of
the handler on 1,000-row pages for each. The machine is shared: figures are noisy; compare
the ratios of the same run.

Run: ``.venv/bin/python bench/bench_geojson.py [--n 100000] [--limit 1000] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import platform
import pstats
import statistics
import time
from collections.abc import Callable
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.core import LayerSpec
from geo_mz.core.catalog import get_spec
from webmap.core import features
from webmap.core.columnar import collection_json, features_json
from webmap.core.geojson import features_of
from webmap.core.http import ApiRequest, ApiResponse

LAYER = "shelters"
SPEC = get_spec(LAYER)
BOX = (112.85, 22.45, 113.25, 22.85)  # lon/lat around Pengjiang


def synthetic_layer(n: int, seed: int) -> gpd.GeoDataFrame:
    """``n`` shelter-like points with the shelters layer's columns and some missing values."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(BOX[0], BOX[2], n)
    lat = rng.uniform(BOX[1], BOX[3], n)
    cap = pd.array(rng.integers(50, 5000, n), dtype="Int64")
    cap[rng.random(n) < 0.1] = pd.NA
    is_open = pd.array(rng.random(n) < 0.5, dtype="boolean")
    is_open[rng.random(n) < 0.05] = pd.NA
    area = rng.uniform(100, 20000, n).round(1)
    area[rng.random(n) < 0.05] = np.nan
    names = np.array(["蓬江区避难场所", 'Shelter "A"', "学校 操场", "公园\\广场"], dtype=object)
    return gpd.GeoDataFrame(
        {
            "shelter_id": pd.array([f"SH{i:06d}" for i in range(n)], dtype="str"),
            "name": pd.array(names[rng.integers(0, len(names), n)], dtype="str"),
            "shelter_class": pd.array(rng.choice(["I", "II", "III"], n), dtype="str"),
            "class_gb51143": pd.array(rng.choice(["emergency", "fixed_short"], n), dtype="str"),
            "site_type": pd.array(rng.choice(["school", "park", "square"], n), dtype="str"),
            "effective_area_m2": area,
            "capacity_persons": cap,
            "occupancy_persons": pd.array(rng.integers(0, 50, n), dtype="Int64"),
            "is_open": is_open,
            "adcode": pd.array(rng.choice(["440703001", "440703002"], n), dtype="str"),
            "address": pd.array(rng.choice(["蓬江区 1 号", None], n), dtype="str"),
        },
        geometry=shapely.points(lon, lat),
        crs="OGC:CRS84",
    )


class MemoryStore:
    """The part of a FeatureStore the items handler reads, over one in-memory layer."""

    def __init__(self, frame: gpd.GeoDataFrame) -> None:
        self._frame = frame
        self.metadata = {"storage_crs": "EPSG:4490", "measure_crs": "EPSG:4547"}

    def spec(self, cid: str) -> LayerSpec:
        if cid != LAYER:
            raise KeyError(cid)
        return SPEC

    def frame(self, cid: str) -> gpd.GeoDataFrame:
        self.spec(cid)
        return self._frame

    def layer_names(self) -> list[str]:
        return [LAYER]


def per_row_page(g: gpd.GeoDataFrame, id_field: str, rows: np.ndarray, *, crs: str) -> Any:
    """The handler's encoder before the columnar one (``g.iloc[page]``, a dict per feature)."""
    return features_of(g.iloc[rows], id_field, crs=crs)


def per_row_collection(feats: list[dict[str, Any]], members: dict[str, Any]) -> str:
    """The handler's body before: a dict dumped as the server dumped it."""
    body = {"type": "FeatureCollection", "features": feats, **members}
    return json.dumps(body, ensure_ascii=False, allow_nan=False)


def columnar_page(g: gpd.GeoDataFrame, id_field: str, rows: np.ndarray, *, crs: str) -> str:
    """The columnar encoder on the page's rows only (no texts kept between requests)."""
    return features_json(g, id_field, crs=crs, rows=rows)


ENCODERS = {
    "per-row (old)": (per_row_page, per_row_collection),
    "columnar, per page": (columnar_page, collection_json),
    "columnar, cached texts": (features.page_json, collection_json),
}
"""The encoder calls the items handler makes: before, now without and with the layer's texts."""


def handler(store: MemoryStore, encoder: str) -> Callable[[ApiRequest], str]:
    """The items handler with one of ``ENCODERS``, returning the response text."""
    page, collection = ENCODERS[encoder]

    def run(req: ApiRequest) -> str:
        saved = features.page_json, features.collection_json
        features.page_json, features.collection_json = page, collection
        try:
            resp: ApiResponse = features.items(store, req, LAYER)  # type: ignore[arg-type]
        finally:
            features.page_json, features.collection_json = saved
        assert resp.status == 200, resp.body
        return resp.text()

    return run


def requests(kind: str, n_rows: int, count: int, seed: int) -> list[ApiRequest]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        if kind == "page":
            args = {"limit": "1000", "offset": str(int(rng.integers(0, n_rows - 1000)))}
        else:
            x = rng.uniform(BOX[0], BOX[2] - 0.02)
            y = rng.uniform(BOX[1], BOX[3] - 0.02)
            args = {"limit": "100", "bbox": f"{x:.4f},{y:.4f},{x + 0.02:.4f},{y + 0.02:.4f}"}
        out.append(ApiRequest(args=args))
    return out


def pyogrio_text(page: gpd.GeoDataFrame) -> str:
    import pyogrio

    buf = io.BytesIO()
    pyogrio.write_dataframe(page, buf, driver="GeoJSON", layer="page")
    return buf.getvalue().decode("utf-8")


def timed_rounds(sides: dict[str, Callable[[], Any]], rounds: int, reps: int) -> dict[str, float]:
    """Median seconds per call of each side; warm-up once each, order rotated every round."""
    names = list(sides)
    for name in names:
        sides[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            for _ in range(reps):
                sides[name]()
            times[name].append((time.perf_counter() - t0) / reps)
    return {name: statistics.median(v) for name, v in times.items()}


def profile(run: Callable[[ApiRequest], str], reqs: list[ApiRequest], title: str) -> None:
    prof = cProfile.Profile()
    prof.enable()
    for req in reqs:
        run(req)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(12)
    print(f"\n--- cProfile, {title}: {len(reqs)} requests, top functions by own time ---")
    print("\n".join(out.getvalue().splitlines()[4:24]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="points in the layer")
    parser.add_argument("--limit", type=int, default=1000, help="rows of the encoder page")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=5, help="calls per side per round")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    g = synthetic_layer(args.n, args.seed)
    g.sindex  # noqa: B018 - built once, as the store's cached frame keeps it
    store = MemoryStore(g)
    print(
        f"config: {args.n} points, {len(g.columns) - 1} properties (shelters schema), page "
        f"{args.limit} rows; {args.rounds} rounds x {args.reps} calls per side after 1 warm-up, "
        f"order rotated; median per call. python {platform.python_version()}, numpy "
        f"{np.__version__}, pandas {pd.__version__}, shapely {shapely.__version__}, geopandas "
        f"{gpd.__version__}; shared 2-core machine: noisy"
    )

    start = args.n // 3
    page = g.iloc[start : start + args.limit]
    crs84 = features.CRS84
    sides = {
        "per-row (old)": lambda: per_row_collection(features_of(page, "shelter_id", crs=crs84), {}),
        "columnar (new)": lambda: collection_json(features_json(page, "shelter_id", crs=crs84), {}),
        "gdf.to_json()": page.to_json,
        "pyogrio GeoJSON": lambda: pyogrio_text(page),
    }
    assert json.loads(sides["per-row (old)"]()) == json.loads(sides["columnar (new)"]())
    res = timed_rounds(sides, args.rounds, args.reps)
    base = res["columnar (new)"]
    print(f"\n1. encoders, one page of {args.limit} rows, CRS84 (ms per page; x = time / columnar)")
    for name, s in res.items():
        print(f"   {name:18s} {s * 1e3:8.2f} ms   x{s / base:5.2f}")

    print("\n2. items handler alone (no HTTP), response text made; req/s (higher is better)")
    runs = {name: handler(store, name) for name in ENCODERS}
    from webmap.core.columnar_cache import cached_bytes

    deadline = time.monotonic() + 120
    while cached_bytes() == 0 and time.monotonic() < deadline:  # the background encode
        runs["columnar, cached texts"](ApiRequest(args={"limit": "10"}))
        time.sleep(0.05)
    for kind, count in (("page", 20), ("bbox", 100)):
        reqs = requests(kind, args.n, count, args.seed)
        first = [json.loads(runs["per-row (old)"](r))["features"] for r in reqs[:3]]
        for name, run in runs.items():
            assert [json.loads(run(r))["features"] for r in reqs[:3]] == first, name
        res = timed_rounds(
            {
                name: (lambda run=run, reqs=reqs: [run(r) for r in reqs])
                for name, run in runs.items()
            },
            args.rounds,
            1,
        )
        label = "pages limit=1000" if kind == "page" else "bbox 0.02 deg limit=100"
        old = count / res["per-row (old)"]
        print(f"   {label}:")
        for name, s in res.items():
            print(f"      {name:24s} {count / s:8.1f} req/s   x{count / s / old:.2f}")
    from webmap.core.columnar import feature_texts

    t0 = time.perf_counter()
    feature_texts(g, "shelter_id")
    print(
        f"\n   one-off: encoding the whole layer's texts took {time.perf_counter() - t0:.2f} s; "
        f"cached texts now take {cached_bytes() / 2**20:.0f} MB"
    )
    if args.profile:
        reqs = requests("page", args.n, 20, args.seed + 1)
        for name, run in runs.items():
            profile(run, reqs, f"{name}, pages limit=1000")


if __name__ == "__main__":
    main()

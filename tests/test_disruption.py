"""Tests of geo_mz.network.disruption on hand-made networks and hand-made rasters."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.warp import Resampling, calculate_default_transform, reproject

from geo_mz.core.errors import CrsError, GeoMzError
from geo_mz.network.disruption import (
    FLOOD_CLOSE_DEPTH_M,
    FLOOD_SLOW_FROM_M,
    Disruption,
    DisruptionError,
    combine,
    from_edge_ids,
    from_flood_raster,
    from_polygons,
    no_disruption,
    synthetic_flood_raster,
)
from geo_mz.network.graph import Network, network_from_roads
from geo_mz.network.paths import multi_source_times

X0, Y0 = 500_000.0, 3_400_000.0  # EPSG:4547 (CGCS2000 GK CM 114E)
CRS = "EPSG:4547"


def xy(x: float, y: float) -> tuple[float, float]:
    return (X0 + x, Y0 + y)


def road(rid: str, coords, cls: str = "secondary") -> dict:
    return {
        "road_id": rid,
        "road_class": cls,
        "geometry": shapely.LineString([xy(*c) for c in coords]),
    }


def network(rows: list[dict]) -> Network:
    return network_from_roads(gpd.GeoDataFrame(rows, crs=CRS), mode="drive")


def edge(net: Network, rid: str) -> int:
    (i,) = np.flatnonzero(net.edge_id == rid)
    return int(i)


def node_at(net: Network, p) -> int:
    d = np.hypot(*(net.node_xy - np.array(xy(*p))).T)
    assert d.min() < 1e-6
    return int(d.argmin())


# A 10 x 10 raster of 10 m cells, top-left (X0, Y0 + 100). In the lower half (rows 5-9, y < 50)
# column 2 (20 <= x < 30) is 0.5 m deep and column 6 (60 <= x < 70) 0.1 m; the rest is dry.
# The comb network: a dry top road y=85, three dry legs down to y=25, and two bottom roads:
# f1 crosses the 0.5 band, f2 only the 0.1 band; o1/o2 run outside the raster.
P0, P1, P2, P3, P4, P5 = (5, 85), (45, 85), (95, 85), (5, 25), (45, 25), (95, 25)
P6, P7 = (300, 25), (300, 300)
COMB = [
    road("t1", [P0, P1]),
    road("t2", [P1, P2]),
    road("s1", [P0, P3]),
    road("s2", [P1, P4]),
    road("s3", [P2, P5]),
    road("f1", [P3, P4]),
    road("f2", [P4, P5]),
    road("o1", [P5, P6]),
    road("o2", [P6, P7]),
]
SHALLOW = float(np.float32(0.1))
SHALLOW_FACTOR = 1.0 / (
    1.0 - (SHALLOW - FLOOD_SLOW_FROM_M) / (FLOOD_CLOSE_DEPTH_M - FLOOD_SLOW_FROM_M) * (1.0 - 0.2)
)


def from_origin(x: float, y: float, dx: float, dy: float) -> Affine:
    # rasterio.transform.from_origin multiplies Affines with `*` (PendingDeprecationWarning)
    return Affine(dx, 0.0, x, 0.0, -dy, y)


def depth_grid() -> np.ndarray:
    a = np.zeros((10, 10), np.float32)
    a[5:, 2] = 0.5
    a[5:, 6] = 0.1
    return a


def write_tif(path: Path, arr: np.ndarray, *, transform=None, crs=CRS, nodata=None) -> Path:
    transform = transform or from_origin(X0, Y0 + 100, 10, 10)
    h, w = arr.shape
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=w,
        height=h,
        count=1,
        dtype="float32",
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as dst:
        dst.write(arr.astype(np.float32), 1)
    return path


@pytest.fixture(scope="module")
def comb() -> Network:
    return network(COMB)


@pytest.fixture
def tif(tmp_path) -> Path:
    return write_tif(tmp_path / "depth.tif", depth_grid())


def by_id(net: Network, values: np.ndarray) -> dict[str, object]:
    return dict(zip(net.edge_id.tolist(), np.asarray(values).tolist(), strict=True))


# --------------------------------------------------------------------------- flood raster


def test_flood_raster_closes_slows_and_measures(comb, tif):
    d = from_flood_raster(comb, tif)
    assert set(comb.edge_id[d.closed]) == {"f1"}
    depth = by_id(comb, d.max_depth_m)
    assert depth["f1"] == 0.5 and depth["f2"] == SHALLOW
    assert all(depth[k] == 0 for k in ("t1", "t2", "s1", "s2", "s3", "o1", "o2"))
    slow = by_id(comb, d.slow_factor)
    assert slow["f2"] == pytest.approx(SHALLOW_FACTOR, rel=1e-12)
    assert all(slow[k] == 1.0 for k in slow if k != "f2")
    assert (d.n_closed, d.n_slowed) == (1, 1)
    assert by_id(comb, d.reason) == {k: "flood" if k in ("f1", "f2") else "" for k in slow}
    # an open dataset works too, and a step coarser than the band misses it (documented)
    with rasterio.open(tif) as ds:
        same = from_flood_raster(comb, ds)
        assert not ds.closed
    np.testing.assert_array_equal(same.max_depth_m, d.max_depth_m)
    coarse = from_flood_raster(comb, tif, step_m=50)  # f1 sampled only at x = 5 and 45
    assert coarse.max_depth_m[edge(comb, "f1")] == 0


def test_frame_lists_affected_edges(comb, tif):
    d = from_flood_raster(comb, tif)
    f = d.frame(comb)
    assert f.crs == CRS and f.index.name == "edge"
    assert sorted(f.edge_id) == ["f1", "f2"]
    assert list(f.columns) == [
        "edge_id",
        "road_class",
        "closed",
        "slow_factor",
        "reason",
        "max_depth_m",
        "geometry",
    ]
    assert f.loc[edge(comb, "f1"), "closed"] and f.loc[edge(comb, "f1"), "max_depth_m"] == 0.5
    assert "max_depth_m" not in from_edge_ids(comb, ["t1"]).frame(comb).columns
    assert len(no_disruption(comb).frame(comb)) == 0


# rasterio.warp.calculate_default_transform multiplies Affines with `*`
@pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")
def test_flood_raster_in_geographic_crs_gives_same_closures(comb, tif, tmp_path):
    with rasterio.open(tif) as src:
        t, w, h = calculate_default_transform(src.crs, "EPSG:4326", 10, 10, *src.bounds)
        dst_arr = np.full((h, w), -1.0, np.float32)
        reproject(
            src.read(1),
            dst_arr,
            src_transform=src.transform,
            src_crs=src.crs,
            dst_transform=t,
            dst_crs="EPSG:4326",
            resampling=Resampling.nearest,
            dst_nodata=-1.0,
        )
    geo = write_tif(tmp_path / "geo.tif", dst_arr, transform=t, crs="EPSG:4326", nodata=-1.0)
    d0, d1 = from_flood_raster(comb, tif), from_flood_raster(comb, geo)
    np.testing.assert_array_equal(d1.closed, d0.closed)
    np.testing.assert_array_equal(d1.slow_factor, d0.slow_factor)
    np.testing.assert_array_equal(d1.max_depth_m, d0.max_depth_m)


def test_nodata_nan_and_outside_are_dry(comb, tmp_path):
    a = depth_grid()
    a[5:, 2] = -9999.0  # nodata
    a[5:, 6] = np.nan
    d = from_flood_raster(comb, write_tif(tmp_path / "nd.tif", a, nodata=-9999.0))
    assert d.n_closed == d.n_slowed == 0 and (d.max_depth_m == 0).all()
    far = from_origin(X0 + 10_000, Y0 + 10_000, 10, 10)  # nowhere near the network
    d = from_flood_raster(comb, write_tif(tmp_path / "far.tif", depth_grid(), transform=far))
    assert d.n_closed == d.n_slowed == 0 and (d.max_depth_m == 0).all()
    # negative depths count as dry
    d = from_flood_raster(comb, write_tif(tmp_path / "neg.tif", -depth_grid()))
    assert (d.max_depth_m == 0).all()


def test_flood_raster_parameters(comb, tif):
    d = from_flood_raster(comb, tif, close_depth_m=0.6, slow_from_m=0.0, min_speed_share=0.5)
    slow = by_id(comb, d.slow_factor)
    assert d.n_closed == 0
    assert slow["f1"] == pytest.approx(1 / (1 - 0.5 / 0.6 * 0.5))
    assert slow["f2"] == pytest.approx(1 / (1 - SHALLOW / 0.6 * 0.5))
    assert slow["t1"] == 1.0  # dry edges at depth 0 = slow_from_m are not slowed
    with pytest.raises(DisruptionError, match="slow_from_m"):
        from_flood_raster(comb, tif, close_depth_m=0.1, slow_from_m=0.2)
    with pytest.raises(DisruptionError, match="min_speed_share"):
        from_flood_raster(comb, tif, min_speed_share=0)
    with pytest.raises(DisruptionError, match="step_m"):
        from_flood_raster(comb, tif, step_m=-1)


def test_flood_raster_needs_a_crs(comb, tmp_path):
    p = write_tif(tmp_path / "nocrs.tif", depth_grid(), crs=None)
    with pytest.raises(CrsError, match="no CRS"):
        from_flood_raster(comb, p)


# --------------------------------------------------------------------------- ids and polygons


def test_from_edge_ids(comb):
    d = from_edge_ids(comb, ["f1", "t2"])
    assert set(comb.edge_id[d.closed]) == {"f1", "t2"}
    assert set(d.reason[d.closed]) == {"edge_list"} and set(d.reason[~d.closed]) == {""}
    assert from_edge_ids(comb, "f1").n_closed == 1  # a bare string is one id
    with pytest.raises(DisruptionError) as err:
        from_edge_ids(comb, ["f1", "nope", "R999"])
    assert "nope" in str(err.value) and "R999" in str(err.value) and "f1" not in str(err.value)
    assert isinstance(err.value, GeoMzError) and isinstance(err.value, ValueError)


def test_polygon_closes_exactly_what_it_intersects(comb):
    box = shapely.box(*xy(15, 15), *xy(30, 35))  # crosses f1 only
    touch = shapely.box(*xy(90, 50), *xy(95, 60))  # touches s3 at x = 95
    hz = gpd.GeoDataFrame({"hazard_id": ["H01", "H02"]}, geometry=[box, touch], crs=CRS)
    d = from_polygons(comb, hz, label_field="hazard_id")
    assert set(comb.edge_id[d.closed]) == {"f1", "s3"}
    assert by_id(comb, d.reason)["f1"] == "hazard:H01"
    assert by_id(comb, d.reason)["s3"] == "hazard:H02"
    assert from_polygons(comb, hz).reason[edge(comb, "f1")] == "hazard"
    # any CRS: the crossing polygon in EPSG:4326 (the merely touching one may move off s3)
    d4326 = from_polygons(comb, hz.iloc[:1].to_crs("EPSG:4326"))
    assert set(comb.edge_id[d4326.closed]) == {"f1"}
    # one edge hit by two labelled polygons
    both = gpd.GeoDataFrame({"hazard_id": ["H2", "H1"]}, geometry=[box, box], crs=CRS)
    assert from_polygons(comb, both, label_field="hazard_id").reason[edge(comb, "f1")] == (
        "hazard:H1;hazard:H2"
    )
    with pytest.raises(DisruptionError, match="label_field"):
        from_polygons(comb, hz, label_field="nope")


def test_point_incidents_need_a_buffer(comb):
    pts = gpd.GeoDataFrame(
        {"incident_id": ["I3", "I4"]},
        geometry=[shapely.Point(xy(70, 28)), shapely.Point(xy(200, 200))],  # 3 m from f2; far
        crs=CRS,
    )
    d = from_polygons(comb, pts, buffer_m=5, label_field="incident_id", reason="incident")
    assert set(comb.edge_id[d.closed]) == {"f2"}
    assert by_id(comb, d.reason)["f2"] == "incident:I3"
    assert from_polygons(comb, pts, buffer_m=2).n_closed == 0
    with pytest.raises(DisruptionError, match="buffer_m"):
        from_polygons(comb, pts)
    with pytest.raises(DisruptionError, match="buffer_m"):
        from_polygons(comb, pts, buffer_m=-1)
    with pytest.raises(CrsError):
        from_polygons(comb, gpd.GeoDataFrame(geometry=[shapely.Point(xy(70, 28))]), buffer_m=5)


# --------------------------------------------------------------------------- combine and apply

# Mainland A-B (with a loop A-E-B), bridge B-C, island C-D. The bridge is 100 m at 40 km/h.
A, B, C, D, E = (0, 0), (100, 0), (200, 0), (300, 0), (50, 80)
ISLAND = [
    road("m1", [A, B]),
    road("m2", [A, E]),
    road("m3", [E, B]),
    road("bridge", [B, C]),
    road("i1", [C, D]),
]


def bridge_raster(tmp_path: Path, depth: float) -> Path:
    # 6 x 6 cells of 10 m over x 120..180, y -30..30: only the bridge's middle is in it
    a = np.full((6, 6), depth, np.float32)
    return write_tif(
        tmp_path / f"b{depth}.tif", a, transform=from_origin(X0 + 120, Y0 + 30, 10, 10)
    )


@pytest.fixture(scope="module")
def island() -> Network:
    return network(ISLAND)


def test_closing_the_bridge_cuts_off_the_island(island, tmp_path):
    src = np.array([node_at(island, A)])
    t0, _ = multi_source_times(island, src)
    assert np.isfinite(t0).all()
    mid = gpd.GeoSeries([shapely.box(*xy(140, -5), *xy(160, 5))], crs=CRS)
    scenarios = {
        "ids": from_edge_ids(island, ["bridge"]),
        "polygon": from_polygons(island, mid),
        "raster": from_flood_raster(island, bridge_raster(tmp_path, 0.4)),
    }
    for name, d in scenarios.items():
        assert set(island.edge_id[d.closed]) == {"bridge"}, name
        t, near = multi_source_times(d.apply(island), src)
        for p in (C, D):
            assert np.isinf(t[node_at(island, p)]) and near[node_at(island, p)] == -1, name
        assert t[node_at(island, B)] == pytest.approx(t0[node_at(island, B)]), name
    assert island.n_arcs == 10  # the original network is not mutated


def test_slow_factor_scales_time_exactly(island, tmp_path):
    src = np.array([node_at(island, A)])
    t0, _ = multi_source_times(island, src)
    d = from_flood_raster(island, bridge_raster(tmp_path, 0.2))
    f = d.slow_factor[edge(island, "bridge")]
    assert f == pytest.approx(1 / (1 - (np.float32(0.2) - 0.05) / 0.25 * 0.8))
    t, _ = multi_source_times(d.apply(island), src)
    bridge_min = 100 / (40 * 1000 / 60)
    for p in (C, D):
        extra = t[node_at(island, p)] - t0[node_at(island, p)]
        assert extra == pytest.approx((f - 1) * bridge_min, rel=1e-12)


def test_combine(island, tmp_path):
    slow = from_flood_raster(island, bridge_raster(tmp_path, 0.2))
    ids = from_edge_ids(island, ["i1", "bridge"])
    hz = gpd.GeoDataFrame({"hazard_id": ["H1"]}, geometry=[shapely.box(*xy(0, -5), *xy(10, 5))])
    poly = from_polygons(island, hz.set_crs(CRS), label_field="hazard_id")
    c = combine(slow, ids, poly, no_disruption(island))
    np.testing.assert_array_equal(c.closed, slow.closed | ids.closed | poly.closed)
    np.testing.assert_array_equal(c.slow_factor, slow.slow_factor)
    np.testing.assert_array_equal(c.max_depth_m, slow.max_depth_m)
    r = by_id(island, c.reason)
    assert r["bridge"] == "flood;edge_list" and r["i1"] == "edge_list"
    assert r["m1"] == "hazard:H1" and r["m2"] == "hazard:H1" and r["m3"] == ""
    assert combine(ids, ids).reason[edge(island, "bridge")] == "edge_list"
    assert combine(ids, poly).max_depth_m is None
    assert c.n_closed == 4 and c.n_slowed == 0  # the slowed bridge is now closed
    with pytest.raises(DisruptionError):
        combine()
    with pytest.raises(DisruptionError, match="different networks"):
        combine(ids, no_disruption(network(COMB)))
    with pytest.raises(DisruptionError, match="network has"):
        ids.apply(network(COMB))


def test_disruption_validates_its_arrays():
    with pytest.raises(DisruptionError, match="one length"):
        Disruption(np.zeros(2, bool), np.ones(3), np.array(["", ""], object))
    with pytest.raises(DisruptionError, match="slow_factor"):
        Disruption(np.zeros(2, bool), np.array([1.0, 0.5]), np.array(["", ""], object))
    with pytest.raises(DisruptionError, match="slow_factor"):
        Disruption(np.zeros(1, bool), np.array([np.inf]), np.array([""], object))


# --------------------------------------------------------------------------- synthetic raster


def river_inputs():
    water = gpd.GeoDataFrame(
        {"water_id": ["W1"]}, geometry=[shapely.box(*xy(0, 2000), *xy(6000, 2300))], crs=CRS
    )
    area = gpd.GeoSeries([shapely.box(*xy(0, 0), *xy(6000, 5000))], crs=CRS).to_crs("EPSG:4490")
    return water, area


def test_synthetic_flood_raster(tmp_path):
    water, area = river_inputs()
    kw = {"cell_m": 50.0, "reach_m": 600.0, "peak_depth_m": 0.9, "seed": 7}
    p1 = synthetic_flood_raster(water, area, tmp_path / "a.tif", **kw)
    p2 = synthetic_flood_raster(water.geometry, area, tmp_path / "b.tif", **kw)
    p3 = synthetic_flood_raster(water, area, tmp_path / "c.tif", **{**kw, "seed": 8})
    with rasterio.open(p1) as a, rasterio.open(p2) as b, rasterio.open(p3) as c:
        assert a.tags()["SYNTHETIC"] == "yes" and a.tags()["seed"] == "7"
        assert a.tags()["units"] == "m" and a.compression.name == "deflate"
        assert a.crs.to_epsg() == 4547 and a.res == (50.0, 50.0)
        x1, x2 = a.read(1), b.read(1)
        assert x1.dtype == np.float32 and x1.tobytes() == x2.tobytes()  # deterministic
        assert x1.tobytes() != c.read(1).tobytes()
        m = a.read(1, masked=True)
        rows, cols = np.indices(a.shape)
        cx, cy = rasterio.transform.xy(a.transform, rows.ravel(), cols.ravel())
        dist = shapely.distance(
            shapely.points(cx, cy), shapely.union_all(water.geometry.values)
        ).reshape(a.shape)
    assert m.mask[dist == 0].all()  # the river itself is nodata
    assert m.max() <= 0.9 and m.max() > 0.3 and m.min() >= 0
    assert (m[dist > 600 + 50].filled(0) == 0).all()  # nothing beyond reach (plus one cell)
    assert (m[(dist > 0) & (dist < 400)] > 0).mean() > 0.9  # the near bank is wet


def test_synthetic_flood_raster_checks_inputs(tmp_path):
    water, area = river_inputs()
    with pytest.raises(DisruptionError, match="overlap"):  # bare geometry in degrees
        synthetic_flood_raster(water, area.iloc[0], tmp_path / "x.tif")
    with pytest.raises(CrsError):
        synthetic_flood_raster(water.set_crs(None, allow_override=True), area, tmp_path / "x.tif")
    with pytest.raises(DisruptionError, match="reach_m"):
        synthetic_flood_raster(water, area, tmp_path / "x.tif", reach_m=0)


def test_synthetic_raster_feeds_from_flood_raster(comb, tmp_path):
    water = gpd.GeoDataFrame(geometry=[shapely.box(*xy(-50, 40), *xy(150, 60))], crs=CRS)
    area = shapely.box(*xy(-100, -100), *xy(400, 400))  # a bare geometry in the raster CRS
    p = synthetic_flood_raster(water, area, tmp_path / "s.tif", cell_m=5, reach_m=200, seed=1)
    d = from_flood_raster(comb, p)
    assert d.max_depth_m.max() <= 1.0 and d.n_closed + d.n_slowed > 0

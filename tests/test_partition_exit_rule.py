"""The exit rule for walking times: a route that leaves the cut is no faster than its way back.

A hand-built road inside a cut, a sure centre at one end, a point at the other; a centre the
part lacks (outside the cut) whose nearest node is inside it decides whether the point's time is
the whole's. Then generated counties whose roads are joined across their borders: every part
equals the whole network's answer, and the rule proves in the first round what the room rule
left to a second.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import LineString, box

from geo_mz.eldercare import coverage
from geo_mz.eldercare.circle15 import CircleSettings
from geo_mz.network.graph import network_from_roads
from geo_mz.network.paths import snap_xy
from geo_mz.scale import exit_rule, partition

METRIC = "EPSG:4547"
WALK_KMH = 3.2
M_PER_MIN = WALK_KMH * 1000.0 / 60.0


@pytest.fixture(scope="module")
def line():
    # A road of 100 m pieces from x=-600 (outside the cut) to x=1500; the cut's edge is at
    # x=-500, so the piece from -600 is the only way in.
    xs = np.arange(-600, 1500, 100)
    roads = gpd.GeoDataFrame(
        {"road_id": [f"r{i}" for i in range(len(xs))], "road_class": "residential"},
        geometry=[LineString([(x, 0), (x + 100, 0)]) for x in xs],
        crs=METRIC,
    )
    net = network_from_roads(roads, mode="walk", walk_speed_kmh=WALK_KMH, measure_crs=METRIC,
                             components="all")  # fmt: skip
    cut = partition.Cut(METRIC, box(-500, -500, 2000, 500), 500.0)
    return net, cut


def _point(net, xy):
    sn = snap_xy(net, np.asarray(xy, dtype=float), max_snap_m=500.0)
    return sn


def test_a_centre_the_part_lacks_bounds_the_answer(line):
    net, cut = line
    p = np.array([[1500.0, 10.0]])
    sn = _point(net, p)
    # The sure centre at (0, 5): 5 m leg, 1,500 m of road, the point's 10 m leg.
    travel = np.array([(5.0 + 1500.0 + 10.0) / M_PER_MIN])
    args = (net, cut, p, sn.node, sn.offset_m, sn.offset_min, travel, np.array([True]), WALK_KMH)
    # Without centres the part lacks, the way in (from x=-500, 2,000 m away) is slower:
    # proven, although the room rule asks for 2·28 min of walking.
    assert exit_rule.walk_exit_proven(*args, np.empty((0, 2))).tolist() == [True]
    assert not partition.proven(net, cut, p, sn.node, sn.offset_m, travel, WALK_KMH,
                                full=False).any()  # fmt: skip
    # A centre outside the cut (y=700 > 500) whose nearest node (1500, 0) is inside it walks
    # 700 m onto the road at the point's own node: 13 min, faster than 28. Not proven.
    near_absent = np.array([[1500.0, 700.0]])
    assert exit_rule.walk_exit_proven(*args, near_absent).tolist() == [False]
    # The same centre 3 km away: its leg alone (56 min) is slower; proven.
    far_absent = np.array([[1500.0, 3000.0]])
    assert exit_rule.walk_exit_proven(*args, far_absent).tolist() == [True]
    # An unsure winner, or a point whose snap circle leaves the cut, is never proven here.
    unsure = (*args[:7], np.array([False]), WALK_KMH)
    assert exit_rule.walk_exit_proven(*unsure, np.empty((0, 2))).tolist() == [False]


def test_answers_beyond_the_cap_need_only_be_shown_so(line):
    net, cut = line
    p = np.array([[1500.0, 10.0], [1500.0, 10.0]])
    sn = _point(net, p)
    none = np.empty((0, 2))
    # Unreachable in the part (no centre), unsure or not: the way in from x=-500 takes 37 min.
    travel = np.array([np.inf, np.inf])
    args = (net, cut, p, sn.node, sn.offset_m, sn.offset_min, travel, np.array([False, True]))
    # With no cap the whole could reach the point from outside: not proven.
    assert not exit_rule.walk_exit_proven(*args, WALK_KMH, none).any()
    # Capped at 30 min: nothing reaches it sooner on the whole network either.
    assert exit_rule.walk_exit_proven(*args, WALK_KMH, none, cap_min=30.0).all()
    # Capped at 40 min: the way in (37 min) might: not proven.
    assert not exit_rule.walk_exit_proven(*args, WALK_KMH, none, cap_min=40.0).any()
    # A centre the part lacks 700 m off the point's node reaches it in 13 min.
    near_absent = np.array([[1500.0, 700.0]])
    assert not exit_rule.walk_exit_proven(*args, WALK_KMH, near_absent, cap_min=30.0).any()


def test_exit_times_are_the_time_from_the_way_in(line):
    net, cut = line
    t = exit_rule.exit_times(net, cut)
    x = net.node_xy[:, 0]
    # The nodes at x=-600 and x=-500 (on the edge: not strictly inside) are sources.
    np.testing.assert_allclose(t, np.maximum(x + 500.0, 0.0) / M_PER_MIN, atol=1e-9)
    # A limit leaves the farther nodes unreached (inf), the nearer ones exact.
    lim = exit_rule.exit_times(net, cut, limit_min=10.0)
    near = t <= 10.0
    np.testing.assert_allclose(lim[near], t[near])
    assert np.isinf(lim[~near]).all()
    # Extra sources start after their legs.
    node = int(np.argmin(np.abs(x - 1000.0)))
    also = exit_rule.exit_times(net, cut, also=(np.array([node]), np.array([2.0])))
    assert also[node] == pytest.approx(2.0)
    assert also[0] == pytest.approx(min(t[0], 2.0 + abs(x[0] - 1000.0) / M_PER_MIN))


@pytest.fixture(scope="module")
def joined(tmp_path_factory):
    """Four generated counties whose roads are joined across their borders."""
    from geo_mz.datasets.county_workload import write_workload

    x0, y0 = 404_000.0, 2_500_000.0
    squares = [box(x0 + x, y0 + y, x0 + x + 10_000, y0 + y + 10_000)
               for x in (0, 10_000) for y in (0, 10_000)]  # fmt: skip
    counties = gpd.GeoDataFrame(
        {"adcode": ["440703", "440704", "440705", "440781"], "name": ["甲", "乙", "丙", "丁"]},
        geometry=squares,
        crs=METRIC,
    ).to_crs("EPSG:4490")
    ws = write_workload(tmp_path_factory.mktemp("joined") / "four.gpkg", counties, joined=True)
    return ws, ws.read_all(), ws.metadata["measure_crs"]


def test_joined_counties_equal_the_whole_in_one_round(joined):
    # The room rule left points with long walks to a second round; the exit rule proves them
    # in the first.
    from geo_mz.scale.runner import parts_of

    ws, layers, crs = joined
    s = CircleSettings()
    net = network_from_roads(layers["roads"], mode="walk", walk_speed_kmh=s.walk_speed_kmh,
                             measure_crs=crs, components="all")  # fmt: skip
    centres = coverage.select_centres(layers["elder_care"], kinds=s.kinds, statuses=s.statuses)
    whole = coverage.access_times(net, centres, layers["population"], max_snap_m=s.max_snap_m)
    got, logs = [], []
    for part in parts_of(layers["admin_units"], "county"):
        frames, log = partition.coverage_part(ws, part, settings=s, measure_crs=crs)
        got.append(frames["times"])
        logs.append(log)
    g = pd.concat(got).set_index("cell_id").loc[whole["cell_id"]]
    np.testing.assert_array_equal(g["walk_min"].to_numpy(float), whole["walk_min"].to_numpy())
    assert (g["nearest_centre"].astype(str) == whole["nearest_centre"].astype(str).values).all()
    assert all(lg["rounds"] == 1 for lg in logs)
    assert sum(lg["proven_by_exit"] for lg in logs) > 0  # the rule did the proving


def test_joined_counties_rings_equal_the_whole_in_one_round(joined):
    # The rings depend on the nodes within 15 min·v + 50 m of the county: the joining roads
    # run far beyond the cut, so the old rule (every street near the county inside the cut)
    # grew the cut 4-6 times on Guangdong; the exit rule proves those nodes in the first.
    from geo_mz.network import isochrone
    from geo_mz.scale import partition_rings
    from geo_mz.scale.runner import parts_of

    ws, layers, crs = joined
    s = CircleSettings()
    net = network_from_roads(layers["roads"], mode="walk", walk_speed_kmh=s.walk_speed_kmh,
                             measure_crs=crs, components="all")  # fmt: skip
    centres = coverage.select_centres(layers["elder_care"], kinds=s.kinds, statuses=s.statuses)
    t, near = coverage.node_times(net, centres, max_snap_m=s.max_snap_m)
    whole = isochrone.isochrones(net, t, near, thresholds_min=s.thresholds_min,
                                 buffer_m=s.isochrone_buffer_m, crs_out=crs)  # fmt: skip
    ref = partition_rings.polygonal(whole.geometry.values)
    for part in parts_of(layers["admin_units"], "county"):
        frames, log = partition_rings.rings_part(ws, part, settings=s, measure_crs=crs)
        assert log["rounds"] == 1, (part.code, log)
        mine = partition_rings.polygonal(frames["rings"].to_crs(crs).geometry.values)
        tile = gpd.GeoSeries([part.geometry], crs="EPSG:4490").to_crs(crs).iloc[0]
        for a, b in zip(mine, ref, strict=True):
            want = partition_rings.polygonal([shapely.intersection(b, tile, grid_size=1e-6)])[0]
            assert want.area > 1e4
            diff = shapely.symmetric_difference(a, want, grid_size=1e-6).area
            assert diff <= 1e-6 * want.area, (part.code, diff, want.area)

"""Tests of network.isochrone: hand networks, a river, the Pengjiang sample, the contract.

Random and odd networks against independent references: ``test_isochrones_random.py``.
"""

from __future__ import annotations

import functools

import geopandas as gpd
import numpy as np
import pytest
import shapely

from geo_mz.core.errors import CrsError, GeoMzError
from geo_mz.datasets._pengjiang_geography import CHAOLIAN
from geo_mz.datasets.pengjiang import build_pengjiang
from geo_mz.network.graph import Network, network_from_roads
from geo_mz.network.isochrone import (
    QUAD_SEGS,
    IsochroneError,
    isochrones,
    points_in_isochrones,
    reached_edges,
)
from geo_mz.network.paths import multi_source_times, snap_points

from .isochrone_cases import (
    BUFFER,
    CHORD,
    CRS,
    M_PER_MIN,
    Y0,
    assert_same_area,
    inside,
    node_at,
    pts,
    reference,
    roads,
    xy,
)

# --------------------------------------------------------------------------- hand networks


@pytest.fixture(scope="module")
def street() -> Network:
    """One straight 1,000 m street (15 min at 4 km/h)."""
    return network_from_roads(roads(("s", "residential", [(0, 0), (1000, 0)], False)), mode="walk")


def test_partial_edge_is_cut_at_the_exact_point(street):
    a = node_at(street, (0, 0))
    t, _ = multi_source_times(street, np.array([a]))
    re = reached_edges(street, t, max_min=5.0)
    assert len(re) == 1 and not re.whole.iloc[0]
    assert re.reached_m.iloc[0] == pytest.approx(1000 / 3, abs=1e-6)
    c = shapely.get_coordinates(re.geometry.iloc[0])
    ends = [p for p in (c[0], c[-1]) if np.hypot(*(p - xy(0, 0))) > 1e-9]
    assert np.hypot(*(ends[0] - xy(1000 / 3, 0))) < 1e-6  # the cut point, within 1e-6 m
    iso = isochrones(street, t, thresholds_min=(5,), crs_out=CRS)
    cut = 1000 / 3
    assert inside(iso, (cut + 49, 0), (200, 49), (200, -49), (-49, 0), k=5) == [True] * 4
    assert inside(iso, (cut + 51, 0), (200, 51), (200, -51), (-51, 0), k=5) == [False] * 4
    stadium = shapely.LineString([xy(0, 0), xy(cut, 0)]).buffer(BUFFER, quad_segs=QUAD_SEGS)
    assert iso.area_m2.iloc[0] == pytest.approx(stadium.area, rel=1e-9)


def test_edge_reached_from_both_ends(street):
    ends = np.array([node_at(street, (0, 0)), node_at(street, (1000, 0))])
    t, nearest = multi_source_times(street, ends)
    re = reached_edges(street, t, max_min=5.0)
    assert re.geometry.iloc[0].geom_type == "MultiLineString"
    assert re.reached_m.iloc[0] == pytest.approx(2000 / 3, abs=1e-6) and not re.whole.iloc[0]
    re = reached_edges(street, t, max_min=8.0)  # 533 m from each end: the parts meet
    assert re.whole.iloc[0] and re.reached_m.iloc[0] == pytest.approx(1000)
    assert re.geometry.iloc[0].equals(street.edge_geometry[0])
    iso = isochrones(street, t, nearest, thresholds_min=(8,), per_source=True, crs_out=CRS)
    assert sorted(iso.source) == [0, 1]
    src0, src1 = (iso[iso.source == s] for s in (0, 1))  # each owns its half (meet at 500 m)
    assert inside(src0, (440, 0), (540, 0), (560, 0), k=8) == [True, True, False]
    assert inside(src1, (440, 0), (460, 0), (560, 0), k=8) == [False, True, True]


def test_one_way_edges_only_forwards_when_driving():
    layer = roads(
        ("r1", "residential", [(0, 0), (1000, 0)], True),  # A -> B only, 3 min at 20 km/h
        ("r2", "residential", [(1000, 0), (1000, 2000), (0, 2000), (0, 0)], False),
    )
    drive, walk = (network_from_roads(layer, mode=m) for m in ("drive", "walk"))
    t, _ = multi_source_times(drive, np.array([node_at(drive, (1000, 0))]))  # from B
    re = reached_edges(drive, t, max_min=2.0).set_index("edge")
    assert list(drive.edge_id[re.index]) == ["r2"]  # not backwards along r1
    assert re.reached_m.iloc[0] == pytest.approx(2 * 20_000 / 60)
    iso = isochrones(drive, t, thresholds_min=(2,), crs_out=CRS)
    assert inside(iso, (960, 0), (900, 0), k=2) == [True, False]  # only B's own 50 m
    t, _ = multi_source_times(drive, np.array([node_at(drive, (0, 0))]))  # from A: forwards
    re = reached_edges(drive, t, max_min=2.0).set_index("edge")
    assert re.loc[int(np.flatnonzero(drive.edge_id == "r1")[0]), "reached_m"] == pytest.approx(
        666.667, abs=1e-3
    )
    t, _ = multi_source_times(walk, np.array([node_at(walk, (1000, 0))]))  # walking: both ways
    re = reached_edges(walk, t, max_min=2.0)
    assert sorted(walk.edge_id[re.edge]) == ["r1", "r2"]
    assert np.allclose(re.reached_m, 2 * M_PER_MIN)
    iso = isochrones(walk, t, thresholds_min=(2,), crs_out=CRS)
    assert inside(iso, (900, 0), k=2) == [True]


# --------------------------------------------------------------------------- river


def test_far_bank_of_a_river_stays_outside():
    """Two streets 100 m apart, water between, the only bridge 2 km away."""
    layer = roads(
        ("s1a", "residential", [(-3000, 0), (0, 0)], False),
        ("s1b", "residential", [(0, 0), (2000, 0)], False),
        ("s1c", "residential", [(2000, 0), (3000, 0)], False),
        ("s2a", "residential", [(-3000, 100), (2000, 100)], False),
        ("s2b", "residential", [(2000, 100), (3000, 100)], False),
        ("bridge", "residential", [(2000, 0), (2000, 100)], False),
    )
    water = shapely.box(*xy(-3000, 10), *xy(3000, 90))
    assert list(layer.road_id[layer.intersects(water)]) == ["bridge"]
    net = network_from_roads(layer, mode="walk")
    centre = node_at(net, (0, 0))
    t, _ = multi_source_times(net, np.array([centre]))
    far_bank = (0, 100)  # 100 m away in a straight line, 4,100 m by the network
    assert t[node_at(net, (2000, 100))] + 2000 / M_PER_MIN > 60
    iso = isochrones(net, t, crs_out=CRS)
    assert inside(iso, far_bank) == [False]
    straight = shapely.Point(xy(0, 0)).buffer(15 * M_PER_MIN)  # what a straight buffer draws
    assert straight.contains(shapely.Point(xy(*far_bank)))
    assert inside(iso, (-990, 0), (990, 0), (1060, 0)) == [True, True, False]
    assert iso.total_bounds[3] <= Y0 + BUFFER + 1e-6  # nothing beyond the near bank's 50 m


# --------------------------------------------------------------------------- Pengjiang sample


@functools.cache
def sample():
    ws = build_pengjiang()
    layers = {k: v.to_crs("EPSG:4547") for k, v in ws.layers.items()}
    net = network_from_roads(layers["roads"], mode="walk")
    care = layers["elder_care"][layers["elder_care"].status == "operating"]
    sc = snap_points(net, care)
    t, nearest = multi_source_times(net, sc.node, source_offset_min=sc.offset_min, limit_min=30.0)
    return layers, net, t, nearest


@functools.cache
def sample_iso(per_source: bool = False) -> gpd.GeoDataFrame:
    _, net, t, nearest = sample()
    return isochrones(net, t, nearest, per_source=per_source, crs_out=net.crs)


def test_chaolian_channel_points_across_are_outside():
    layers, net, _, _ = sample()
    au = layers["admin_units"]
    island = au.geometry[au.adcode == CHAOLIAN].iloc[0]
    canal = layers["water"].geometry[layers["water"].kind == "canal"].iloc[0]
    pop = layers["population"]
    pxy = shapely.get_coordinates(pop.geometry.values)
    mainland = ~shapely.contains(island, pop.geometry.values)
    snapped = snap_points(net, pop)
    nodes = shapely.points(net.node_xy)
    shore = np.flatnonzero(shapely.contains(island, nodes) & (shapely.distance(canal, nodes) < 300))
    assert len(shore) > 5

    def across(c):  # mainland people within 1 km in a straight line, > 15 min by the network
        t, _ = multi_source_times(net, np.array([c]), limit_min=120)
        near = mainland & (np.hypot(*(pxy - net.node_xy[c]).T) < 15 * M_PER_MIN)
        return t, near & (t[snapped.node] + snapped.offset_min > 15)

    c = max(shore, key=lambda n: across(n)[1].sum())  # the shore node facing most of them
    t, far = across(c)
    assert far.sum() >= 20
    iso = isochrones(net, t, thresholds_min=(15,), crs_out="EPSG:4490")
    straight = shapely.Point(net.node_xy[c]).buffer(15 * M_PER_MIN)  # would include them all
    assert shapely.contains(straight, pop.geometry.values[far]).all()
    assert not points_in_isochrones(pop[far], iso, 15).any()


def test_node_and_point_coverage_agree_with_the_polygon():
    """What agrees exactly: inside the polygon <=> within 50 m of the street reached in 15 min.

    Nodes: every node with t <= 15 is inside; a node with t > 15 + 50 m / speed is inside only
    when another reached street passes within 50 m. People (60+): snapping to the nearest
    street with a 50 m limit and asking whether that spot is reached gives the polygon's share
    minus the people whose nearest street is not reached there but another reached one is
    within 50 m; snapping to the nearest node (50 m limit) covers a subset.
    """
    layers, net, t, _ = sample()
    iso = sample_iso()
    reached = shapely.union_all(reached_edges(net, t, max_min=15.0).geometry.values)
    nodes = gpd.GeoSeries(shapely.points(net.node_xy), crs=net.crs)
    node_in = points_in_isochrones(nodes, iso, 15)
    d_node = shapely.distance(reached, nodes.values)
    sure = np.abs(d_node - BUFFER) > CHORD
    assert node_in[t <= 15].all() and (t <= 15).sum() > 1000
    late = t > 15 + BUFFER / M_PER_MIN
    assert late.sum() > 1000
    assert (d_node[late & node_in] <= BUFFER + CHORD).all()
    assert (node_in[sure] == (d_node[sure] <= BUFFER)).all()

    pop = layers["population"]
    w = pop.pop_60plus.to_numpy(dtype=float)
    in_poly = points_in_isochrones(pop, iso, 15)
    d_pop = shapely.distance(reached, pop.geometry.values)
    sure = np.abs(d_pop - BUFFER) > CHORD
    assert (in_poly[sure] == (d_pop[sure] <= BUFFER)).all()
    # snap to the nearest street (its nearest spot), 50 m limit
    (_, e), d_street = shapely.STRtree(net.edge_geometry).query_nearest(
        pop.geometry.values, return_distance=True, all_matches=False
    )
    g = net.edge_geometry[e]
    spot = shapely.line_interpolate_point(g, shapely.line_locate_point(g, pop.geometry.values))
    by_street = (d_street <= BUFFER) & shapely.dwithin(reached, spot, 1e-6)
    assert not (by_street & ~in_poly).any()
    other_street = in_poly & ~by_street
    assert (d_pop[other_street] <= BUFFER).all()
    share_poly, share_street = w[in_poly].sum() / w.sum(), w[by_street].sum() / w.sum()
    assert share_poly - share_street == pytest.approx(w[other_street].sum() / w.sum())
    assert 0 <= share_poly - share_street < 0.03, (share_poly, share_street)
    # snap to the nearest node, 50 m limit: a subset
    sn = snap_points(net, pop, max_snap_m=BUFFER)
    by_node = ~sn.too_far & (t[sn.node] <= 15)
    assert not (by_node & ~in_poly & (sn.offset_m < BUFFER - CHORD)).any()
    assert 0 < w[by_node].sum() < w[in_poly].sum()


def test_rings_are_disjoint_and_make_up_the_polygon():
    """Rings are disjoint and their union is the 15-min polygon.

    The rings nest the polygons exactly: the 15-min polygon returned is the union of the
    buffered reach at 5, 10 and 15 min. Computed alone, the 15-min polygon misses only the
    slivers where a 5- or 10-min round join's chord vertices stick out of the 15-min chords
    (< 0.24 m wide), so the two agree within the chord tolerance (here ~1e-6 relative).
    """
    _, net, t, _ = sample()
    iso = sample_iso()
    assert iso.ring.tolist() == ["0-5 min", "5-10 min", "10-15 min"]
    assert iso.threshold_min.tolist() == [5.0, 10.0, 15.0]
    g = iso.geometry.values
    total = shapely.union_all(g)
    for i in range(3):
        assert shapely.area(g[i]) == pytest.approx(iso.area_m2.iloc[i])
        for j in range(i + 1, 3):
            assert shapely.intersection(g[i], g[j]).area <= 1e-9 * total.area
    assert total.area == pytest.approx(iso.area_m2.sum(), rel=1e-6)
    alone = isochrones(net, t, thresholds_min=(15,), crs_out=net.crs).geometry.iloc[0]
    assert shapely.difference(alone, total).area <= 1e-9 * total.area  # nothing lost
    assert_same_area(total, alone)
    assert total.area == pytest.approx(alone.area, rel=5e-6)
    assert_same_area(alone, reference(net, t, 15.0)[0])


def test_per_source_polygons_match_each_catchment():
    _, net, t, nearest = sample()
    iso = sample_iso(per_source=True)
    assert set(iso.source) <= set(range(nearest.max() + 1)) and len(set(iso.source)) > 50
    ref = reference(net, t, 10.0, nearest)
    got = {
        s: shapely.union_all(f.geometry.values)
        for s, f in iso[iso.threshold_min <= 10].groupby("source")
    }
    assert set(got) == set(ref)
    sym = sum(shapely.symmetric_difference(got[s], ref[s]).area for s in ref)
    assert sym <= CHORD * sum(r.length for r in ref.values())


# --------------------------------------------------------------------------- contract, errors


def test_output_contract(street):
    t, nearest = multi_source_times(street, np.array([0]))
    iso = isochrones(street, t, nearest)
    assert list(iso.columns) == ["threshold_min", "ring", "area_m2", "geometry"]
    assert iso.crs == "EPSG:4490" and (iso.geom_type == "MultiPolygon").all()
    per = isochrones(street, t, nearest, per_source=True)
    assert list(per.columns) == ["source", "threshold_min", "ring", "area_m2", "geometry"]
    re = reached_edges(street, t, max_min=15)
    assert list(re.columns) == ["edge", "reached_m", "length_m", "whole", "geometry"]
    assert re.crs == street.crs


def test_bad_inputs_are_refused(street):
    t, _ = multi_source_times(street, np.array([0]))
    with pytest.raises(IsochroneError, match="shape"):
        isochrones(street, t[:1])
    with pytest.raises(IsochroneError, match="NaN"):
        isochrones(street, np.full_like(t, np.nan))
    with pytest.raises(IsochroneError, match="thresholds_min"):
        isochrones(street, t, thresholds_min=(0,))
    with pytest.raises(IsochroneError, match="buffer_m"):
        isochrones(street, t, buffer_m=-1)
    with pytest.raises(IsochroneError, match="nearest"):
        isochrones(street, t, per_source=True)
    with pytest.raises(CrsError):
        isochrones(street, t, crs_out="EPSG:not-a-crs")
    iso = isochrones(street, t)
    with pytest.raises(IsochroneError, match="threshold_min"):
        points_in_isochrones(pts((0, 0)), iso, 7)
    with pytest.raises(CrsError):
        points_in_isochrones(gpd.GeoSeries([shapely.Point(0, 0)]), iso, 5)
    with pytest.raises(GeoMzError):
        reached_edges(street, t, max_min=-1)


def test_nothing_reached_gives_no_rings_and_a_bare_centre_a_disc(street):
    t = np.full(street.n_nodes, np.inf)
    assert len(isochrones(street, t)) == 0 and len(reached_edges(street, t, max_min=5)) == 0
    t[node_at(street, (0, 0))] = 5.0  # reached with no time left: only the walk to the doors
    iso = isochrones(street, t, thresholds_min=(5,), crs_out=CRS)
    disc = shapely.Point(xy(0, 0)).buffer(BUFFER, quad_segs=QUAD_SEGS)
    assert iso.area_m2.iloc[0] == pytest.approx(disc.area)

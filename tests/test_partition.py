"""Partitioned analyses equal the whole-area ones: a hand-built case and the sample workspace."""

from __future__ import annotations

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import LineString, Point, box

from geo_mz.boundaries import topology as boundaries
from geo_mz.core.workspace import Workspace
from geo_mz.eldercare import coverage
from geo_mz.eldercare.circle15 import CircleSettings
from geo_mz.network.graph import network_from_roads
from geo_mz.relief import drive_audit as relief
from geo_mz.scale import partition
from geo_mz.scale.partition_relief import relief_part

METRIC = "EPSG:4547"  # CGCS2000 3° GK, CM 114°E: the sample's measuring CRS
X0, Y0 = 404_000.0, 2_500_000.0  # near Pengjiang


def _lonlat(geoms: list, **cols: list) -> gpd.GeoDataFrame:
    g = gpd.GeoDataFrame(cols, geometry=geoms, crs=METRIC)
    return g.to_crs("EPSG:4490")


def _moved(g: shapely.Geometry) -> shapely.Geometry:
    return shapely.transform(g, lambda xy: xy + np.array([X0, Y0]))


@pytest.fixture(scope="module")
def detour_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A point P at (0, 0) and a centre C at (1000, 0) joined by two routes.

    Route A is a 20 km zig-zag inside the first cut; route B (7 km) goes north to y = 3000 m,
    beyond the first cut, in five pieces. The true walk is route B.
    """
    zig = [(0, 0)] + [(x, 900 if i % 2 == 0 else -900) for i, x in enumerate(range(50, 1000, 100))]
    zig.append((1000, 0))
    pieces_b = [
        [(0, 0), (0, 1500)],
        [(0, 1500), (0, 3000)],
        [(0, 3000), (1000, 3000)],
        [(1000, 3000), (1000, 1500)],
        [(1000, 1500), (1000, 0)],
    ]
    lines = [LineString(zig), *(LineString(p) for p in pieces_b)]
    roads = _lonlat(
        [_moved(g) for g in lines],
        road_id=[f"R{i}" for i in range(len(lines))],
        road_class=["residential"] * len(lines),
    )
    pop = _lonlat(
        [_moved(Point(0, 0))],
        cell_id=["P"],
        pop_total=[100.0],
        pop_60plus=[20.0],
        adcode=["440703002001"],
    )
    centres = _lonlat(
        [_moved(Point(1000, 0))],
        facility_id=["C"],
        name=["centre"],
        kind=["day_care_centre"],
        status=["operating"],
    )
    town = _moved(box(-100, -100, 100, 100))
    units = _lonlat(
        [town, town],
        adcode=["440703002", "440703002001"],
        name=["town", "village"],
        level=["town", "village"],
        parent_adcode=["440703", "440703002"],
    )
    path = tmp_path_factory.mktemp("detour") / "detour.gpkg"
    minx, miny, maxx, maxy = roads.total_bounds
    bounds = (minx - 0.01, miny - 0.01, maxx + 0.01, maxy + 0.01)
    ws = Workspace.create(path, name="detour", adcode="440703", bounds=bounds, measure_crs=METRIC)
    prov = {"synthetic": True, "source": "test", "method": "hand-built"}
    layers = {"roads": roads, "population": pop, "elder_care": centres, "admin_units": units}
    ws.write_layers(layers, {k: prov for k in layers})
    return ws


def test_a_route_leaving_the_first_cut_is_found_by_growing_it(detour_ws):
    s = CircleSettings()
    units = detour_ws.read("admin_units")
    town = units[units["level"] == "town"].iloc[0]
    part = partition.Part("440703002", "town", town.geometry)
    frames, log = partition.coverage_part(
        detour_ws, part, settings=s, measure_crs=METRIC, buffer_m=2000.0
    )
    # Independent check: networkx over the road pieces, metres / walking speed.
    roads = detour_ws.read("roads").to_crs(METRIC)
    g = nx.Graph()
    for geom in roads.geometry:
        a, b = (tuple(np.round(c, 3)) for c in (geom.coords[0], geom.coords[-1]))
        g.add_edge(a, b, weight=min(geom.length, g.get_edge_data(a, b, {}).get("weight", 1e18)))
    p0 = tuple(np.round((X0, Y0), 3))
    c0 = tuple(np.round((X0 + 1000, Y0), 3))
    metres = nx.shortest_path_length(g, p0, c0, weight="weight")
    assert metres == pytest.approx(7000.0, abs=1e-3)
    walk = frames["times"]["walk_min"].iloc[0]
    assert walk == pytest.approx(metres / (s.walk_speed_kmh * 1000 / 60), rel=1e-9)
    assert log["rounds"] >= 2  # the first cut only had the 20 km zig-zag
    assert log["buffer_m"][0] == 2000.0
    # What the first cut alone would have said: the zig-zag, far longer.
    cut = partition.make_cut(part.geometry, METRIC, 2000.0)
    inside = roads[shapely.intersects(cut.polygon, roads.geometry.values)]
    assert set(inside["road_id"]) == {"R0", "R1", "R2", "R4", "R5"}  # not the northern piece
    net = network_from_roads(inside, mode="walk", walk_speed_kmh=s.walk_speed_kmh,
                             measure_crs=METRIC, components="all")  # fmt: skip
    t1 = coverage.access_times(net, detour_ws.read("elder_care"), detour_ws.read("population"))
    assert t1["walk_min"].iloc[0] > 2 * walk


def test_proof_radius_and_complete_components_by_hand():
    # A 1 km road wholly inside a 10 km cut: its component is complete, any time is proven.
    roads = gpd.GeoDataFrame(
        {"road_id": ["a"], "road_class": ["residential"]},
        geometry=[LineString([(0, 0), (1000, 0)])],
        crs=METRIC,
    )
    net = network_from_roads(roads, mode="walk", measure_crs=METRIC, components="all")
    cut = partition.Cut(METRIC, box(-5000, -5000, 5000, 5000), 5000.0)
    assert partition.complete_nodes(net, cut).all()
    # The same road crossing the cut's edge: not complete, so only the radius can prove.
    small = partition.Cut(METRIC, box(-100, -100, 500, 100), 100.0)
    assert not partition.complete_nodes(net, small).any()
    xy = np.array([[0.0, 0.0], [0.0, 0.0]])
    v = 60.0  # km/h = 1000 m/min
    # room from (0, 0) to the edge of the small cut is 100 m: 0 + 2·0.04·1000 + 2 = 82 <= 100
    ok = partition.proven(net, small, xy, np.array([0, 0]), np.zeros(2),
                          np.array([0.04, 0.05]), v, full=False)  # fmt: skip
    assert ok.tolist() == [True, False]  # 2·0.05·1000 + 2 = 102 > 100
    assert partition.proven(net, small, xy, np.array([0, 0]), np.zeros(2),
                            np.array([np.inf, 9.0]), v, full=True).all()  # fmt: skip


def test_network_components_all_keeps_every_piece():
    roads = gpd.GeoDataFrame(
        {"road_id": ["a", "b"], "road_class": ["residential"] * 2},
        geometry=[LineString([(0, 0), (1000, 0)]), LineString([(0, 500), (10, 500)])],
        crs=METRIC,
    )
    largest = network_from_roads(roads, mode="walk", measure_crs=METRIC)
    every = network_from_roads(roads, mode="walk", measure_crs=METRIC, components="all")
    assert (largest.n_edges, every.n_edges) == (1, 2)
    assert largest.dropped["components"] == 1 and every.dropped["components"] == 0
    with pytest.raises(Exception, match="components"):
        network_from_roads(roads, mode="walk", measure_crs=METRIC, components="some")


# --------------------------------------------------------------------------- the sample


@pytest.fixture(scope="module")
def sample(sample_ws):
    return sample_ws


def _town_parts(ws: Workspace) -> list[partition.Part]:
    from geo_mz.scale.runner import parts_of

    return parts_of(ws.read("admin_units"), "town")


def test_coverage_by_town_equals_the_whole_district(sample):
    crs = sample.metadata["measure_crs"]
    s = CircleSettings()
    layers = sample.read_all()
    net = network_from_roads(
        layers["roads"],
        mode="walk",
        walk_speed_kmh=s.walk_speed_kmh,
        measure_crs=crs,
        components="all",
    )
    centres = coverage.select_centres(layers["elder_care"], kinds=s.kinds, statuses=s.statuses)
    whole = coverage.access_times(net, centres, layers["population"], max_snap_m=s.max_snap_m)
    times, units, rounds = [], [], []
    for part in _town_parts(sample):
        frames, log = partition.coverage_part(sample, part, settings=s, measure_crs=crs)
        times.append(frames["times"])
        units.append(frames["units"])
        rounds.append(log["rounds"])
    got = pd.concat(times, ignore_index=True).set_index("cell_id")
    ref = whole.set_index("cell_id")
    assert len(got) == len(ref) and got.index.is_unique
    got = got.loc[ref.index]
    # Bit for bit, every point: time, nearest centre, snap distance.
    np.testing.assert_array_equal(got["walk_min"].to_numpy(), ref["walk_min"].to_numpy())
    np.testing.assert_array_equal(got["snap_m"].to_numpy(), ref["snap_m"].to_numpy())
    assert (got["nearest_centre"].astype(str) == ref["nearest_centre"].astype(str)).all()
    # The ids as the whole run types them (object: a missing one stays None, not NaN).
    assert got["nearest_centre"].dtype == ref["nearest_centre"].dtype == object
    assert max(rounds) > 1  # some rural points walk further than the first buffer
    # Unit tables: every town and village row equals the district run's row exactly.
    u = pd.concat(units, ignore_index=True).set_index("adcode")
    for level in ("town", "village"):
        ref_tab = coverage.coverage_by_unit(
            whole, layers["admin_units"], level=level, thresholds_min=s.thresholds_min,
            targets=s.targets,
        ).set_index("adcode")  # fmt: skip
        ref_tab = ref_tab[ref_tab["level"] == level]
        mine = pd.DataFrame(u.loc[ref_tab.index, ref_tab.columns])
        pd.testing.assert_frame_equal(mine, ref_tab, check_dtype=False, check_exact=True)


def test_relief_by_town_equals_the_whole_district(sample):
    crs = sample.metadata["measure_crs"]
    layers = sample.read_all()
    s = relief.ReliefSettings(targets=relief.workspace_targets(sample.metadata))
    whole = relief.run_audit(layers, s, measure_crs=crs).table
    vmax = partition.max_drive_kmh(layers["roads"], s)
    got = pd.concat(
        [
            relief_part(sample, p, settings=s, measure_crs=crs, vmax_kmh=vmax)[0]["audit"]
            for p in _town_parts(sample)
        ],
        ignore_index=True,
    )
    key = ["target", "point_id"]
    assert len(got) == len(whole) and not got.duplicated(key).any()
    m = whole.merge(pd.DataFrame(got), on=key, suffixes=("", "_p"), validate="1:1")
    for col in ("time_min", "margin_min", "population"):
        np.testing.assert_array_equal(m[col].to_numpy(float), m[f"{col}_p"].to_numpy(float))
    for col in ("store_id", "status", "meets", "too_far"):
        assert (m[col].astype(str) == m[f"{col}_p"].astype(str)).all(), col
    assert m.geometry.geom_equals_exact(gpd.GeoSeries(m["geometry_p"]), 0).all()


def test_boundary_qa_by_town_equals_the_whole_district(sample, tmp_path):
    crs = sample.metadata["measure_crs"]
    units = sample.read("admin_units")
    # Make findings: grow some villages (overlaps), shrink others (gaps), drop one (a hole).
    vil = units[units["level"] == "village"].to_crs(crs).copy()
    codes = vil["adcode"].tolist()
    grow, shrink, drop = codes[3::17], codes[8::23], codes[40]
    vil.loc[vil["adcode"].isin(grow), "geometry"] = vil.loc[vil["adcode"].isin(grow)].buffer(40)
    vil.loc[vil["adcode"].isin(shrink), "geometry"] = vil.loc[vil["adcode"].isin(shrink)].buffer(
        -25
    )
    vil = vil[vil["adcode"] != drop]
    edited = pd.concat([units[units["level"] != "village"], vil.to_crs(units.crs)])
    whole = boundaries.qa(
        edited[edited["level"] == "village"], code_field="adcode", name_field="name",
        measure_crs=crs,
    )  # fmt: skip
    assert set(whole.findings["kind"]) >= {"overlap", "gap"}
    parts = [
        partition.boundary_part(None, p, level="village", measure_crs=crs, units=edited)[0]
        for p in _town_parts(sample)
    ]
    got = boundaries.number_findings(
        gpd.GeoDataFrame(pd.concat([f["findings"] for f in parts], ignore_index=True))
    )
    ref = whole.findings.to_crs("EPSG:4490")
    cols = ["finding_id", "kind", "sliver_of", "unit_a", "unit_b", "units", "detail"]
    pd.testing.assert_frame_equal(
        pd.DataFrame(got[cols]).astype(str), pd.DataFrame(ref[cols]).astype(str)
    )
    np.testing.assert_allclose(got["area_m2"].astype(float), ref["area_m2"].astype(float),
                               rtol=1e-9)  # fmt: skip
    # Same pieces; a gap's ring may start at another vertex, so compare shapes, not lists.
    a, b = got.to_crs(crs).geometry.values, whole.findings.geometry.values
    assert shapely.hausdorff_distance(a, b).max() < 1e-6  # metres
    edges = pd.concat([f["invalid_edges"] for f in parts], ignore_index=True)
    assert sorted(edges["code"]) == sorted(whole.invalid_edges["code"])


def test_an_unsure_source_bounds_the_times_a_complete_component_proves():
    # A road wholly inside the cut; a centre outside the cut 2,549.5 m from the road's nearest
    # node. On the whole network it may snap elsewhere, so it can change no answer below its
    # snap leg: 2.5495 min at 60 km/h. Above that, only the radius rule could prove a time.
    roads = gpd.GeoDataFrame(
        {"road_id": ["a"], "road_class": ["residential"]},
        geometry=[LineString([(0, 0), (1000, 0)])],
        crs=METRIC,
    )
    net = network_from_roads(roads, mode="walk", measure_crs=METRIC, components="all")
    cut = partition.Cut(METRIC, box(-2000, -2000, 3000, 2000), 2000.0)
    source = np.array([[500.0, 2500.0]])
    leg = np.hypot(500.0, 2500.0) / 1000.0
    below = partition.exact_below_min(net, cut, 60.0, source_xy=source)
    np.testing.assert_allclose(below, leg)
    assert not partition.complete_nodes(net, cut, source_xy=source).any()
    assert partition.complete_nodes(net, cut).all()
    xy = np.zeros((4, 2))
    times = np.array([2.5, leg, 2.6, np.inf])
    ok = partition.proven(net, cut, xy, np.zeros(4, dtype=int), np.zeros(4), times, 60.0,
                          full=False, source_xy=source)  # fmt: skip
    assert ok.tolist() == [True, False, False, False]
    # Without the outside source every answer of the component is the whole's, unreachable too.
    assert partition.proven(net, cut, xy, np.zeros(4, dtype=int), np.zeros(4), times, 60.0,
                            full=False).all()  # fmt: skip
    # A component that reaches the cut's edge proves nothing by this rule.
    edge = partition.Cut(METRIC, box(-2000, -2000, 999.5, 2000), 2000.0)
    assert np.isneginf(partition.exact_below_min(net, edge, 60.0)).all()


def test_generated_counties_equal_the_whole_in_one_round(tmp_path):
    # Four generated counties side by side (10 km squares near 蓬江): every part's times are
    # the whole network's, and round 1 proves nearly every point although the other counties'
    # centres lie outside each cut (they only bound the times the part proves).
    from geo_mz.datasets.county_workload import write_workload
    from geo_mz.scale.runner import parts_of

    squares = [_moved(box(x, y, x + 10_000, y + 10_000)) for x in (0, 10_000) for y in (0, 10_000)]
    counties = _lonlat(squares, adcode=["440703", "440704", "440705", "440781"],
                       name=["甲", "乙", "丙", "丁"])  # fmt: skip
    ws = write_workload(tmp_path / "four.gpkg", counties)
    s = CircleSettings()
    crs = ws.metadata["measure_crs"]
    layers = ws.read_all()
    net = network_from_roads(layers["roads"], mode="walk", walk_speed_kmh=s.walk_speed_kmh,
                             measure_crs=crs, components="all")  # fmt: skip
    centres = coverage.select_centres(layers["elder_care"], kinds=s.kinds, statuses=s.statuses)
    whole = coverage.access_times(net, centres, layers["population"], max_snap_m=s.max_snap_m)
    got, rounds = [], []
    for part in parts_of(layers["admin_units"], "county"):
        frames, log = partition.coverage_part(ws, part, settings=s, measure_crs=crs)
        got.append(frames["times"])
        rounds.append(log["recomputed"])
    g = pd.concat(got).set_index("cell_id").loc[whole["cell_id"]]
    np.testing.assert_array_equal(g["walk_min"].to_numpy(float), whole["walk_min"].to_numpy())
    assert (g["nearest_centre"].astype(str) == whole["nearest_centre"].astype(str).values).all()
    # Round 1 proves all but a handful (before, a centre outside the cut spoiled the proof of
    # its nearest node's whole component, and most parts ran 2-3 rounds).
    again = sum(sum(r[1:]) for r in rounds)
    assert len(rounds) == 4 and again <= 0.001 * sum(r[0] for r in rounds)


def test_a_worker_reads_the_source_layer_once_until_the_file_changes(detour_ws, tmp_path):
    import shutil

    ws = Workspace(shutil.copy(detour_ws.path, tmp_path / "copy.gpkg"))
    first = partition.source_layer(ws, "elder_care")
    calls = []
    real = Workspace.read

    def counting(self, kind, **kw):
        calls.append(kind)
        return real(self, kind, **kw)

    Workspace.read = counting
    try:
        again = partition.source_layer(Workspace(ws.path), "elder_care")
        assert calls == [] and again.equals(first) and again is not first
        # A write replaces the file: the next part reads the new rows.
        moved = first.assign(name=["新名"])
        ws.write_layers({"elder_care": moved}, {"elder_care": {"synthetic": True}})
        third = partition.source_layer(Workspace(ws.path), "elder_care")
        assert calls == ["elder_care"] and third["name"].tolist() == ["新名"]
    finally:
        Workspace.read = real


def test_reprojection_shortcut_is_to_crs_bit_for_bit():
    """Parts reproject with a cached transformer: the coordinates geopandas' to_crs gives."""
    from geo_mz.core.projection import geometries_to_crs

    rng = np.random.default_rng(3)
    xy = np.column_stack([rng.uniform(112.0, 114.0, 300), rng.uniform(22.0, 24.0, 300)])
    hole = box(113.2, 23.2, 113.4, 23.4)
    geoms = [
        *shapely.points(xy),
        LineString(xy[:7]),
        shapely.MultiLineString([xy[10:14], xy[20:25]]),
        box(113.0, 23.0, 113.5, 23.5).difference(hole),
        shapely.MultiPolygon([box(112, 22, 112.1, 22.1), box(112.5, 22.5, 112.6, 22.6)]),
        None,
    ]
    for many in (np.array(geoms[:300], dtype=object), np.array(geoms, dtype=object)):
        for src, dst in (("EPSG:4490", "EPSG:4547"), ("EPSG:4490", "EPSG:4326")):
            got = geometries_to_crs(many, src, dst)
            want = np.asarray(gpd.GeoSeries(many, crs=src).to_crs(dst).values)
            assert (shapely.get_type_id(got) == shapely.get_type_id(want)).all()
            assert np.array_equal(shapely.get_coordinates(got), shapely.get_coordinates(want))
            back = geometries_to_crs(got, dst, src)
            again = np.asarray(gpd.GeoSeries(want, crs=dst).to_crs(src).values)
            assert np.array_equal(shapely.get_coordinates(back), shapely.get_coordinates(again))
    same = np.array(geoms, dtype=object)
    assert geometries_to_crs(same, "EPSG:4490", "EPSG:4490") is same

"""Relief parts proven in one round: each answer against its own stores, and anchor roads.

Hand-built counties with roads of their own (not joined): county A's village is 40 min from
A's store, and county B's store lies outside A's first cut but 32 km from A's roads. In A's part
B's store snaps onto A's roads (a 32 min leg) and bounds A's answers; on the whole network it
snaps to B's road. The whole run in one process is the reference for every part.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import LineString, Point, box

from geo_mz.core.workspace import Workspace
from geo_mz.network import disruption as dis
from geo_mz.relief import drive_audit as relief
from geo_mz.scale import exit_rule, partition, relief_proof
from geo_mz.scale import partition_relief as pr
from geo_mz.scale.runner import parts_of

METRIC = "EPSG:4547"
X0, Y0 = 404_000.0, 2_500_000.0
PROV = {"synthetic": True, "source": "test", "method": "hand-built counties"}
OWN = relief.ReliefSettings(targets=(relief.Target("county", 6.0, "own"),))
ANY = relief.ReliefSettings(targets=(relief.Target("county", 6.0, "any"),))
# Trucks to the door: a store's snap leg at 60 km/h, so a store snapped 32 km onto A's road in
# A's part would serve A's village first (32 min against 40) if the part trusted it.
ANY_FAST = relief.ReliefSettings(targets=ANY.targets, last_leg_kmh=60.0)


def _lonlat(geoms: list, **cols: list) -> gpd.GeoDataFrame:
    moved = [shapely.transform(g, lambda xy: xy + np.array([X0, Y0])) for g in geoms]
    return gpd.GeoDataFrame(cols, geometry=moved, crs=METRIC).to_crs("EPSG:4490")


def _counties(
    folder,
    far_store_x: float | None = None,
    joined: bool = False,
    bypass: bool = False,
    shortcut: bool = False,
    split: bool = False,
    detour: bool = False,
    entry: bool = False,
) -> Workspace:
    """Counties A (x 0–10 km) and B (x 40–50 km), each a road along y = 5 km in 1 km pieces.

    A's store is at its road's west end, its village's people at the east end (8 km of
    residential road: 40 min at 12 km/h); B likewise. ``far_store_x``: a third county store
    (of a county with no units) at that x on y = 5 km, whose nearest road is A's. ``joined``:
    a road joins A's east end to B's west end (one network). ``bypass``: a motorway from A's
    store to A's village by way of y = -5 km, three pieces, faster than A's own road; its
    middle piece lies 3 km outside A's 2 km cut. ``shortcut``: a store of a third county at
    (9 km, -6 km), outside A's 2 km cut, on a motorway that runs to y = -3 km (outside the
    cut) and on to A's village (into it). ``split``: A's road lacks its piece from 4 to 5 km
    (A's store cannot reach its village along it). ``detour``: a road from 4 km to 5 km by
    way of y = -5 km, 3 km outside A's 2 km cut. ``entry``: a store of a third county at
    (30 km, -6.1 km) on a motorway north to y = 5 km and west to A's village; only its last
    piece meets A's cut.
    """
    pieces, ids = [], []
    for name, x0 in (("A", 1000), ("B", 41000)):
        for i in range(8):
            if split and name == "A" and i == 3:
                continue
            pieces.append(LineString([(x0 + 1000 * i, 5000), (x0 + 1000 * (i + 1), 5000)]))
            ids.append(f"{name}{i}")
    if joined:
        pieces.append(LineString([(9000, 5000), (41000, 5000)]))
        ids.append("AB")
    if detour:
        way = [(4000, 5000), (4000, -5000), (5000, -5000), (5000, 5000)]
        pieces += [LineString(way[i : i + 2]) for i in range(3)]
        ids += ["D0", "D1", "D2"]
    classes = ["residential"] * len(ids)
    if entry:
        way = [(30000, -6000), (30000, -5000), (30000, 5000), (9000, 5000)]
        pieces += [LineString(way[i : i + 2]) for i in range(3)]
        ids += ["E0", "E1", "E2"]
        classes += ["motorway"] * 3
    if bypass:
        way = [(1000, 5000), (1000, -5000), (9000, -5000), (9000, 5000)]
        pieces += [LineString(way[i : i + 2]) for i in range(3)]
        ids += ["M0", "M1", "M2"]
        classes += ["motorway"] * 3
    if shortcut:
        pieces += [LineString([(9000, -5900), (9000, -3000)]),
                   LineString([(9000, -3000), (9000, 5000)])]  # fmt: skip
        ids += ["S0", "S1"]
        classes += ["motorway"] * 2
        far_store_x = None
    roads = _lonlat(pieces, road_id=ids, road_class=classes)
    xs = [1000.0, 41000.0]
    codes = ["440703", "440704"]
    if far_store_x is not None:
        xs.append(far_store_x)
        codes.append("440705")
    at = [Point(x, 5050) for x in xs]
    if shortcut:
        at.append(Point(9000, -6000))
        codes.append("440705")
    if entry:
        at.append(Point(30000, -6100))
        codes.append("440705")
    stores = _lonlat(
        at,
        store_id=[f"{c}-RS" for c in codes],
        name=[f"store {c}" for c in codes],
        level=["county"] * len(at),
        adcode=codes,
    )
    pop = _lonlat(
        [Point(9000, 5000), Point(49000, 5000)],
        cell_id=["a", "b"],
        pop_total=[500.0, 500.0],
        pop_60plus=[80.0, 80.0],
        adcode=["440703001001", "440704001001"],
    )
    squares = [box(0, 0, 10_000, 10_000), box(40_000, 0, 50_000, 10_000)]
    units = _lonlat(
        squares * 3,
        adcode=["440703", "440704", "440703001", "440704001", "440703001001", "440704001001"],
        name=["A", "B", "a", "b", "a1", "b1"],
        level=["county"] * 2 + ["town"] * 2 + ["village"] * 2,
        parent_adcode=["440700", "440700", "440703", "440704", "440703001", "440704001"],
    )
    layers = {"roads": roads, "population": pop, "relief_stores": stores, "admin_units": units}
    x0, y0, x1, y1 = pd.concat([roads, stores, units]).total_bounds
    ws = Workspace.create(
        folder / "counties.gpkg",
        name="counties",
        adcode="440700",
        bounds=(x0 - 0.01, y0 - 0.01, x1 + 0.01, y1 + 0.01),
        measure_crs=METRIC,
    )
    ws.write_layers(layers, {k: PROV for k in layers})
    return ws


@pytest.fixture(scope="module")
def two_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return _counties(tmp_path_factory.mktemp("two_counties"))


def _parts(ws: Workspace) -> list[partition.Part]:
    return parts_of(ws.read("admin_units"), "county")


def _txt(s: pd.Series) -> list[str | None]:
    return [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in s]


def _equal(whole: pd.DataFrame, got: pd.DataFrame) -> None:
    m = whole.merge(pd.DataFrame(got), on=["target", "point_id"], suffixes=("", "_p"),
                    validate="1:1")  # fmt: skip
    assert len(m) == len(whole) == len(got)
    np.testing.assert_array_equal(m["time_min"].to_numpy(float), m["time_min_p"].to_numpy(float))
    for col in ("store_id", "status"):
        assert _txt(m[col]) == _txt(m[f"{col}_p"]), col


def _run(ws: Workspace, s: relief.ReliefSettings) -> tuple[pd.DataFrame, list[dict]]:
    vmax = partition.max_drive_kmh(ws.read("roads"), s)
    rows, logs = [], []
    for p in _parts(ws):
        frames, log = pr.relief_part(ws, p, settings=s, measure_crs=METRIC, vmax_kmh=vmax)
        rows.append(frames["audit"])
        logs.append(log)
    return pd.concat(rows, ignore_index=True), logs


def test_the_far_store_bounds_the_component_under_the_old_rule(two_ws):
    # The premise of the tests below, by hand: in A's first cut B's store snaps onto A's road
    # 32 km away (a 32 min leg at 60 km/h), below the 40 min of A's village.
    ws = two_ws
    a = next(p for p in _parts(ws) if p.code == "440703")
    cut = partition.make_cut(a.geometry, METRIC, 20_000.0)
    roads = partition.roads_in_cut(ws, cut, None, pr.ROAD_FIELDS)
    assert set(roads["road_id"]) == {f"A{i}" for i in range(8)}
    net = relief.drive_network(roads, OWN, measure_crs=METRIC, components="all")
    sxy = partition.to_cut_crs(ws.read("relief_stores"), METRIC).get_coordinates().to_numpy()
    vmax = partition.max_drive_kmh(ws.read("roads"), OWN)
    below = partition.exact_below_min(net, cut, vmax, source_xy=sxy)
    assert vmax == 60.0 and below.min() == pytest.approx(32.0, abs=0.01)
    whole = relief.run_audit(ws.read_all(), OWN, measure_crs=METRIC).table
    travel = whole["time_min"].to_numpy(float) - OWN.dispatch_prep_min
    assert (travel > 40.0).all()


def test_own_targets_are_proven_against_their_own_stores_in_one_round(two_ws):
    whole = relief.run_audit(two_ws.read_all(), OWN, measure_crs=METRIC).table
    got, logs = _run(two_ws, OWN)
    _equal(whole, got)
    assert set(whole["status"]) == {"meets"}
    # Other counties' stores never serve a county's own target: no second round, no anchor.
    assert [lg["rounds"] for lg in logs] == [1, 1]
    assert [lg["anchors"] for lg in logs] == [0, 0]


@pytest.mark.parametrize("s", [ANY, ANY_FAST], ids=["walk_leg", "truck_leg"])
def test_any_targets_anchor_the_far_store_on_its_own_road(two_ws, s):
    whole = relief.run_audit(two_ws.read_all(), s, measure_crs=METRIC).table
    assert set(whole["store_id"]) == {"440703-RS", "440704-RS"}  # each village its own store
    got, logs = _run(two_ws, s)
    _equal(whole, got)
    # One round each. Where a county's own store wins, the exit rule proves it (nothing from
    # outside the cut reaches the village); where the other county's store, falsely snapped
    # onto the part's road at a truck's speed, wins in the part, its road is read (an anchor).
    assert [lg["rounds"] for lg in logs] == [1, 1]
    assert [lg["roads_read"] for lg in logs] == [8, 8]
    anchored = [lg["anchors"] for lg in logs]
    assert anchored == ([0, 0] if s is ANY else [1, 0])


def test_without_its_anchor_the_far_store_would_serve_the_part(two_ws):
    # What the anchor prevents: on A's first cut alone, B's store (snapped 32 km onto A's
    # road, 32 min at 60 km/h) serves A's village before A's own store (40 min).
    ws = two_ws
    a = next(p for p in _parts(ws) if p.code == "440703")
    cut = partition.make_cut(a.geometry, METRIC, 20_000.0)
    roads = partition.roads_in_cut(ws, cut, None, pr.ROAD_FIELDS)
    net = relief.drive_network(roads, ANY_FAST, measure_crs=METRIC, components="all")
    layers = ws.read_all()
    pts = relief.audit_points(layers, measure_crs=METRIC)
    pts = pts[pts["adcode"].astype(str).str.startswith("440703")]
    alone = relief.audit(pts, layers["relief_stores"], net, ANY_FAST).table
    assert list(alone["store_id"]) == ["440704-RS"]


def test_a_store_whose_nearest_road_is_in_the_part_is_not_anchored(tmp_path):
    # A county store 22 km west of A's road, nearest to it of every road: it does snap into
    # A's component on the whole network; no road is nearer, so the buffer grows instead.
    ws = _counties(tmp_path, far_store_x=-21_000.0)
    whole = relief.run_audit(ws.read_all(), ANY, measure_crs=METRIC).table
    got, logs = _run(ws, ANY)
    _equal(whole, got)
    log_a = next(lg for lg, p in zip(logs, _parts(ws), strict=True) if p.code == "440703")
    # A's own store wins and nothing reaches A's road from outside the cut: the exit rule
    # proves it in the probe round; the far store is not anchored.
    assert log_a["rounds"] == 1 and log_a["anchors"] == 0


def test_scenario_with_anchors_equals_the_whole(two_ws):
    ws = two_ws
    layers = ws.read_all()
    base = relief.run_audit(layers, ANY, measure_crs=METRIC)
    d = dis.from_edge_ids(base.network, ["A3"])
    whole = relief.reaudit(base, d, name="cut")
    assert set(whole.table["status"]) == {"cut_off", "meets"}
    vmax = partition.max_drive_kmh(layers["roads"], ANY)
    got, logs = [], []
    for p in _parts(ws):
        frames, log = pr.relief_scenario_part(
            ws, p, settings=ANY, measure_crs=METRIC, vmax_kmh=vmax, name="cut",
            close_roads=["A3"],
        )  # fmt: skip
        got.append(frames["scenario"])
        logs.append(log)
    _equal(whole.table, pd.concat(got, ignore_index=True))
    assert [lg["rounds"] for lg in logs] == [1, 1]
    assert sum(lg["anchors"] for lg in logs) >= 1


def test_anchors_are_added_once_and_never_inside_the_cut(two_ws):
    ws = two_ws
    a = next(p for p in _parts(ws) if p.code == "440703")
    sxy = partition.to_cut_crs(ws.read("relief_stores"), METRIC).get_coordinates().to_numpy()
    anchors = relief_proof.Anchors(ws, sxy, METRIC, ANY, pr.ROAD_FIELDS)
    # Store 1 (B's) is 32 km from A's nearest node: its anchor is B's west road piece.
    assert anchors.add([1, 1], [32_000.0, 32_000.0]) == 1
    cut = partition.make_cut(a.geometry, METRIC, 20_000.0)
    roads = partition.roads_in_cut(ws, cut, None, pr.ROAD_FIELDS)
    both = anchors.with_roads(roads, cut)
    assert list(both["road_id"]) == [*roads["road_id"], "B0"]
    # In a cut holding B's roads the anchor is read with them, not added again.
    wide = partition.make_cut(a.geometry, METRIC, 40_000.0)
    wide_roads = partition.roads_in_cut(ws, wide, None, pr.ROAD_FIELDS)
    assert "B0" in set(wide_roads["road_id"])
    assert len(anchors.with_roads(wide_roads, wide)) == len(wide_roads)
    # Store 0 (A's own) has no road end nearer than its 50 m snap: nothing to anchor.
    assert anchors.add([0], [50.0]) == 0


def test_a_county_of_its_own_is_proven_by_the_probe(two_ws):
    _, logs = _run(two_ws, OWN)
    assert [lg["buffer_m"] for lg in logs] == [[relief_proof.PROBE_M]] * 2


def test_joined_counties_are_proven_in_the_probe_by_the_time_from_outside(tmp_path):
    # One network: A's component reaches the probe's edge, and A's village (40 min) would need
    # 80 km of room (a cut of ~40 km holds every road). But from outside the probe the only
    # way in is the joining road (32 km of residential road, 160 min): the exit rule proves it.
    ws = _counties(tmp_path, joined=True)
    whole = relief.run_audit(ws.read_all(), OWN, measure_crs=METRIC).table
    got, logs = _run(ws, OWN)
    _equal(whole, got)
    extent = partition.roads_extent(ws)
    for p, lg in zip(_parts(ws), logs, strict=True):
        full = relief_proof.full_buffer_m(partition.make_cut(p.geometry, METRIC, 1.0), extent)
        assert 30_000 < full < 40_000
        assert lg["buffer_m"] == [relief_proof.PROBE_M]


def test_full_buffer_is_the_least_cut_holding_the_extent(two_ws):
    extent = partition.roads_extent(two_ws)
    for p in _parts(two_ws):
        cut = partition.make_cut(p.geometry, METRIC, 2000.0)
        full = relief_proof.full_buffer_m(cut, extent)
        assert cut.with_buffer(full).contains_extent(extent)
        assert not cut.with_buffer(0.97 * full).contains_extent(extent)
        again = partition.make_cut(p.geometry, METRIC, full)
        assert again.polygon.equals_exact(cut.with_buffer(full).polygon, 0.0)


def test_generated_counties_are_proven_by_the_probe_and_equal_the_whole(tmp_path):
    # Four generated counties 40 km apart (10 km squares near 蓬江: a 20 km cut holds no other
    # county's roads), each with its own roads and stores: every relief part is proven in its
    # first round on the probe's cut, although the other counties' stores snap onto its roads
    # from outside, and equals the whole audit.
    from geo_mz.datasets.county_relief import add_relief_layers
    from geo_mz.datasets.county_workload import write_workload

    x0, y0 = 404_000.0 - X0, 2_500_000.0 - Y0  # the generated counties' corner, as in coverage
    squares = [box(x0 + x, y0 + y, x0 + x + 10_000, y0 + y + 10_000)
               for x in (0, 50_000) for y in (0, 50_000)]  # fmt: skip
    counties = _lonlat(squares, adcode=["440703", "440704", "440705", "440781"],
                       name=["甲", "乙", "丙", "丁"])  # fmt: skip
    ws = write_workload(tmp_path / "four.gpkg", counties)
    add_relief_layers(ws)
    crs = ws.metadata["measure_crs"]
    layers = ws.read_all()
    s = relief.ReliefSettings(targets=relief.workspace_targets(ws.metadata))
    whole = relief.run_audit(layers, s, measure_crs=crs).table
    vmax = partition.max_drive_kmh(layers["roads"], s)
    got, logs = [], []
    for p in parts_of(layers["admin_units"], "county"):
        frames, log = pr.relief_part(ws, p, settings=s, measure_crs=crs, vmax_kmh=vmax)
        got.append(frames["audit"])
        logs.append(log)
    _equal(whole, pd.concat(got, ignore_index=True))
    assert len(logs) == 4 and len(whole) > 100
    assert all(lg["buffer_m"] == [relief_proof.PROBE_M] for lg in logs), logs


def test_a_faster_route_outside_the_cut_is_found(tmp_path):
    # The whole's route to A's village leaves the probe's cut (the bypass); in the probe the
    # village is reached by A's slow road only. The time from outside (up the bypass's last
    # piece) is less than that, so the exit rule does not prove it, and a wider cut finds
    # the bypass.
    ws = _counties(tmp_path, bypass=True)
    whole = relief.run_audit(ws.read_all(), OWN, measure_crs=METRIC).table
    travel = whole["time_min"].to_numpy(float) - OWN.dispatch_prep_min
    a_row = whole["town_adcode"].astype(str).str.startswith("440703").to_numpy()
    assert (travel[a_row] < 40.0).all()  # the premise: the bypass beats 8 km at 12 km/h
    got, logs = _run(ws, OWN)
    _equal(whole, got)
    log_a = next(lg for lg, p in zip(logs, _parts(ws), strict=True) if p.code == "440703")
    assert log_a["rounds"] >= 2


def test_exit_times_match_networkx(tmp_path):
    import networkx as nx

    ws = _counties(tmp_path, joined=True, bypass=True)
    a = next(p for p in _parts(ws) if p.code == "440703")
    cut = partition.make_cut(a.geometry, METRIC, 2000.0)
    roads = partition.roads_in_cut(ws, cut, None, pr.ROAD_FIELDS)
    net = relief.drive_network(roads, OWN, measure_crs=METRIC, components="all")
    got = exit_rule.exit_times(net, cut)
    g = nx.DiGraph()
    coo = net.graph.tocoo()
    g.add_nodes_from(range(net.graph.shape[0]))
    for i, j, w in zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist(), strict=True):
        g.add_edge(i, j, weight=w)
    outside = [
        i for i, (x, y) in enumerate(net.node_xy.tolist()) if not cut.polygon.contains(Point(x, y))
    ]
    assert outside  # the joining road's and the bypass's outer ends
    want = nx.multi_source_dijkstra_path_length(g, outside, weight="weight")
    for n in range(len(got)):
        assert got[n] == pytest.approx(want.get(n, np.inf), abs=1e-9)


def test_a_store_outside_the_cut_on_a_road_the_part_lacks_is_not_missed(tmp_path):
    # In A's probe the third county's store snaps 3 km onto the motorway's outer end (a slow
    # leg), so A's own store wins there; on the whole network it drives the motorway and wins.
    # Its least time from outside the cut is the motorway's last piece: the exit rule must
    # not prove A's village before a cut holds the store's road.
    ws = _counties(tmp_path, shortcut=True)
    whole = relief.run_audit(ws.read_all(), ANY, measure_crs=METRIC).table
    a_row = whole["town_adcode"].astype(str).str.startswith("440703").to_numpy()
    assert set(whole.loc[a_row, "store_id"]) == {"440705-RS"}  # the premise
    got, logs = _run(ws, ANY)
    _equal(whole, got)
    log_a = next(lg for lg, p in zip(logs, _parts(ws), strict=True) if p.code == "440703")
    assert log_a["rounds"] >= 2


def test_a_village_its_store_cannot_reach_is_proven_cut_off_in_one_round(tmp_path):
    # A's road is split between its store and its village, and the village's half is joined
    # to B: its component leaves every cut of A, so no component rule proves it, and the
    # room rule has no time to work with. A's store (its only candidate) cannot leave the
    # cut at all: no route of the whole network brings it to the village.
    ws = _counties(tmp_path, joined=True, split=True)
    whole = relief.run_audit(ws.read_all(), OWN, measure_crs=METRIC).table
    a_row = whole["town_adcode"].astype(str).str.startswith("440703").to_numpy()
    assert set(whole.loc[a_row, "status"]) == {"cut_off"}  # the premise
    got, logs = _run(ws, OWN)
    _equal(whole, got)
    assert [lg["rounds"] for lg in logs] == [1, 1]


def test_a_village_reached_only_by_a_detour_outside_the_cut_is_not_called_cut_off(tmp_path):
    # The same, with a road from the store's half to the village's half by way of y = -5 km:
    # in A's first cut the village is unreachable, on the whole network it is reached. The
    # store leaves the cut and can come back: not proven; a wider cut finds the detour.
    ws = _counties(tmp_path, joined=True, split=True, detour=True)
    whole = relief.run_audit(ws.read_all(), OWN, measure_crs=METRIC).table
    a_row = whole["town_adcode"].astype(str).str.startswith("440703").to_numpy()
    assert set(whole.loc[a_row, "status"]) == {"meets"}  # the premise
    got, logs = _run(ws, OWN)
    _equal(whole, got)
    log_a = next(lg for lg, p in zip(logs, _parts(ws), strict=True) if p.code == "440703")
    assert log_a["rounds"] >= 2


def test_a_store_whose_road_enters_the_cut_from_afar_is_not_missed(tmp_path):
    # The third county's store snaps onto its anchor (E0, outside the cut), which the part
    # cannot join to E2 (the piece between lies outside): in A's first cut A's own store wins
    # the village. On the whole network the third store drives E0-E2 and wins. Its least time
    # to E2's outer end is at least the straight line there: the exit rule must not prove the
    # village before a cut holds the whole motorway.
    ws = _counties(tmp_path, entry=True)
    whole = relief.run_audit(ws.read_all(), ANY, measure_crs=METRIC).table
    a_row = whole["town_adcode"].astype(str).str.startswith("440703").to_numpy()
    assert set(whole.loc[a_row, "store_id"]) == {"440705-RS"}  # the premise
    got, logs = _run(ws, ANY)
    _equal(whole, got)
    log_a = next(lg for lg, p in zip(logs, _parts(ws), strict=True) if p.code == "440703")
    assert log_a["rounds"] >= 2

"""Relief scenarios, shelter adequacy and evacuation by town equal the whole-district runs."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo_mz.core.workspace import Workspace
from geo_mz.network import disruption as dis
from geo_mz.network.graph import network_from_roads
from geo_mz.relief import drive_audit as relief
from geo_mz.relief import shelters as shel
from geo_mz.scale import partition
from geo_mz.scale import partition_relief as pr
from geo_mz.scale import partition_shelters as ps


@pytest.fixture(scope="module")
def sample(sample_ws):
    return sample_ws


def _town_parts(ws: Workspace) -> list[partition.Part]:
    from geo_mz.scale.runner import parts_of

    return parts_of(ws.read("admin_units"), "town")


def _txt(s: pd.Series) -> pd.Series:
    """Values as text, every missing value (None, NaN) as one mark."""
    return s.astype(object).where(s.notna(), "<NA>").astype(str)


def _border_roads(layers: dict, crs: str, n: int) -> list[str]:
    """Ids of ``n`` drivable roads that cross a border between two towns."""
    units = layers["admin_units"]
    towns = units[units["level"] == "town"].to_crs(crs)
    roads = layers["roads"].to_crs(crs)
    roads = roads[roads["road_class"].isin(["primary", "secondary", "tertiary", "residential"])]
    hits = shapely.STRtree(towns.geometry.values).query(roads.geometry.values, "intersects")
    per_road = pd.Series(hits[1]).groupby(hits[0]).nunique()
    crossing = roads.iloc[per_road[per_road >= 2].index.to_numpy()]
    return crossing["road_id"].astype(str).head(n).tolist()


def test_scenario_by_town_equals_the_whole_district(sample, tmp_path):
    crs = sample.metadata["measure_crs"]
    layers = sample.read_all()
    s = relief.ReliefSettings(targets=relief.workspace_targets(sample.metadata))
    units = layers["admin_units"]
    district = units[(units["level"] == "county") & units["in_jurisdiction"].fillna(False)]
    tif = dis.synthetic_flood_raster(layers["water"], district, tmp_path / "f.tif", crs=crs)
    ids = _border_roads(layers, crs, 6)
    assert len(ids) == 6
    # A closure area on a town border too: a 300 m disc at the middle of a crossing road.
    road = layers["roads"].to_crs(crs).set_index("road_id").geometry[ids[0]]
    area = gpd.GeoDataFrame(geometry=[road.interpolate(0.5, normalized=True).buffer(300)], crs=crs)
    closure_file = tmp_path / "closure.gpkg"  # as the command line gives it: a file
    area.to_file(closure_file)
    base = relief.run_audit(layers, s, measure_crs=crs)
    d = dis.combine(
        dis.from_flood_raster(base.network, tif),
        dis.from_edge_ids(base.network, ids[1:]),
        dis.from_polygons(base.network, area, reason="closure"),
    )
    whole = relief.reaudit(base, d, name="flood")
    ref_changes = relief.compare(base, whole)
    assert d.n_closed > 0 and len(ref_changes) > 0
    vmax = partition.max_drive_kmh(layers["roads"], s)
    got, changes, logs = [], [], []
    for p in _town_parts(sample):
        frames, log = pr.relief_scenario_part(
            sample,
            p,
            settings=s,
            measure_crs=crs,
            vmax_kmh=vmax,
            name="flood",
            flood=tif,
            close_roads=ids[1:],
            closures=closure_file,
        )
        got.append(frames["scenario"])
        changes.append(frames["changes"])
        logs.append(log)
    # Every closed id is in some part's network (the gather step's check of misspelt ids).
    assert set.intersection(*(set(lg["close_roads_not_in_cut"]) for lg in logs)) == set()
    got = pd.concat(got, ignore_index=True)
    key = ["target", "point_id"]
    m = whole.table.merge(pd.DataFrame(got), on=key, suffixes=("", "_p"), validate="1:1")
    assert len(m) == len(whole.table) == len(got)
    # Equal up to the order in which a repaired search sums its arcs (the whole's and a part's
    # forests are repaired from different subtrees): 3e-14 min on the sample.
    for col in ("time_min", "margin_min"):
        np.testing.assert_allclose(
            m[col].to_numpy(float), m[f"{col}_p"].to_numpy(float), rtol=1e-12, atol=0
        )
    for col in ("store_id", "status", "meets"):
        assert (_txt(m[col]) == _txt(m[f"{col}_p"])).all(), col
    assert (m["status"] == "cut_off").any()  # the flood cuts villages off
    ch = pd.concat(changes, ignore_index=True)
    cols = ["point_id", "target", "status_before", "status_after", "change", "store_id"]
    a = ref_changes[cols].apply(_txt).sort_values(["target", "point_id"]).reset_index(drop=True)
    b = ch[cols].apply(_txt).sort_values(["target", "point_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    # The border closures alone change routes (so the parts had to see them across borders).
    border = dis.combine(
        dis.from_edge_ids(base.network, ids[1:]),
        dis.from_polygons(base.network, area, reason="closure"),
    )
    moved = relief.compare(base, relief.reaudit(base, border))
    assert len(moved) > 0 and moved["town_name"].nunique() >= 2


@pytest.fixture(scope="module")
def walk_whole(sample):
    """The whole district's walking network (every component, as the parts keep them)."""
    layers = sample.read_all()
    s = shel.ShelterSettings()
    net = network_from_roads(
        layers["roads"],
        mode="walk",
        walk_speed_kmh=s.walk_speed_kmh,
        measure_crs=sample.metadata["measure_crs"],
        components="all",
    )
    return layers, s, net


def test_shelter_adequacy_by_town_equals_the_whole_district(sample, walk_whole):
    layers, s, net = walk_whole
    crs = sample.metadata["measure_crs"]
    whole = shel.shelter_adequacy(
        layers["shelters"], layers["admin_units"], layers["population"], net, s
    )
    towns, villages, rounds = [], [], []
    for p in _town_parts(sample):
        frames, log = ps.shelter_adequacy_part(sample, p, settings=s, measure_crs=crs)
        towns.append(frames["towns"])
        villages.append(frames["villages"])
        rounds.append(log["rounds"])
    for got, ref in ((towns, whole.table_towns), (villages, whole.table_villages)):
        got = pd.concat(got, ignore_index=True).set_index("adcode")
        ref = ref.iloc[:-1].set_index("adcode")
        assert got.index.is_unique and set(got.index) == set(ref.index)
        pd.testing.assert_frame_equal(
            got.loc[ref.index, ref.columns], ref, check_dtype=False, check_exact=True
        )
        # The total row from the gathered rows, as the whole run sums it.
        tot = ps.gather_adequacy_totals(got)
        for col in tot.index:
            assert tot[col] == pytest.approx(float(whole.table_towns.iloc[-1][col]), rel=1e-12)
    # Served people are not trivially all or none: the proof mattered.
    served = whole.table_towns.iloc[-1]["pop_served_share"]
    assert 0.05 < served < 0.95


def _cost(lines: pd.DataFrame) -> int:
    """Person-minutes at the solver's resolution (0.01 min), as the flow minimises them."""
    return int(np.rint(lines["walk_min"].to_numpy() * 100).astype(np.int64) @ lines["persons"])


def test_evacuation_by_town_is_an_optimum_of_the_whole_district(sample, walk_whole):
    layers, s, net = walk_whole
    crs = sample.metadata["measure_crs"]
    whole = shel.evacuate(
        layers["population"], layers["shelters"], net, s, units=layers["admin_units"]
    )
    frames, logs = [], []
    extent = partition.roads_extent(sample)
    for i, p in enumerate(_town_parts(sample)):
        # Two towns start from a cut too small for the proof and must grow it.
        first_m = 4000.0 if i < 2 else 12000.0
        f, log = ps.evacuation_part(
            sample, p, settings=s, measure_crs=crs, roads_bbox=extent, buffer_m=first_m
        )
        frames.append(f)
        logs.append(log)
    order = layers["shelters"]["shelter_id"].tolist()
    got = ps.gather_evacuation(frames, crs, shelter_order=order)
    # People of one town share shelters with another's: parts solved such components with a
    # halo (sources of other towns), and the towns that do not own them skipped them.
    assert sum(lg["halo_sources"] for lg in logs) > 0
    assert sum(lg["shared_components"] for lg in logs) > 0
    assert logs[0]["rounds"] >= 2 and logs[1]["rounds"] >= 2
    # Without the halo (each town's people alone, every shelter offered) towns over-fill the
    # shelters they share: the components had to be solved whole.
    pop = layers["population"]
    naive = sum(
        shel.evacuate(pop[pop["adcode"].str.startswith(p.code)], layers["shelters"], net, s)
        .load["assigned_persons"]
        .to_numpy()
        for p in _town_parts(sample)
    )
    assert (naive > whole.load["capacity_persons"].to_numpy()).any()
    # The optimum's value: people placed and person-minutes (solver resolution).
    assert int(got["lines"]["persons"].sum()) == whole.assigned
    assert 0 < whole.assigned < whole.total_people  # shelters fill up: capacity binds
    assert _cost(got["lines"]) == _cost(whole.lines)
    # The loads and the unplaced people per village are the whole run's too (not implied by
    # the value: people of two villages at one node may swap shelters at equal cost, and do).
    ref, mine = whole.load.set_index("shelter_id"), got["load"].set_index("shelter_id")
    assert list(mine.index) == list(ref.index) == order
    for col in ("assigned_persons", "capacity_persons", "status"):
        assert (mine[col].astype(str) == ref[col].astype(str)).all(), col
    # Feasible in the whole's terms: every flow within its shelter's service time.
    limit = ref["service_min"].reindex(got["lines"]["shelter_id"]).to_numpy()
    assert (got["lines"]["walk_min"].to_numpy() <= limit + 1e-9).all()
    u_ref = whole.unassigned.set_index(["adcode", "reason"])
    u_got = got["unassigned"].set_index(["adcode", "reason"])
    assert list(u_got.index) == list(u_ref.index)
    assert (u_got["persons_unassigned"] == u_ref["persons_unassigned"]).all()
    assert (u_got["unassigned_id"] == u_ref["unassigned_id"]).all()
    dist = u_got.to_crs(crs).geometry.distance(u_ref.to_crs(crs).geometry, align=False)
    assert dist.max() < 1e-6  # metres


def test_scenario_disruption_reads_every_incident_that_touches_the_part(sample, tmp_path):
    import shutil

    path = tmp_path / "copy.gpkg"
    shutil.copy(sample.path, path)
    ws = Workspace(path)
    crs = ws.metadata["measure_crs"]
    part = _town_parts(ws)[0]
    cut = partition.make_cut(part.geometry, crs, 2000.0)
    roads = partition.in_cut(ws.read("roads", bbox=cut.lonlat_bbox), cut)
    net = relief.drive_network(roads, measure_crs=crs)
    # Incidents at the far ends of roads that leave the cut: outside the cut, still on an
    # edge of the part's network.
    lines = gpd.GeoSeries(net.edge_geometry, crs=crs)
    beyond = lines[~lines.within(cut.polygon)].difference(cut.polygon)
    ends = shapely.points(np.vstack([shapely.get_coordinates(g)[[0, -1]] for g in beyond]))
    # Two beyond even the box the part reads its roads by (a read by that box would miss them).
    x0, y0, x1, y1 = cut.lonlat_bbox
    ll = shapely.get_coordinates(gpd.GeoSeries(ends, crs=crs).to_crs("EPSG:4490").values)
    out_box = ~((ll[:, 0] >= x0) & (ll[:, 0] <= x1) & (ll[:, 1] >= y0) & (ll[:, 1] <= y1))
    assert out_box.sum() >= 2
    pts = [*ends[out_box][:2], ends[~out_box][0]]
    inc = gpd.GeoDataFrame(
        {"incident_id": ["I1", "I2", "I3"], "kind": "road_blocked",
         "status": ["reported", "verified", "closed"], "reported_at": "2026-01-01T00:00:00"},
        geometry=pts, crs=crs,
    ).to_crs("EPSG:4490")  # fmt: skip
    ws.write_layers({"incidents": inc}, {"incidents": {"synthetic": True, "source": "test"}})
    d, missing = pr.scenario_disruption(ws, net, use_incidents=True)
    ref = dis.from_polygons(net, inc[inc["status"] != "closed"], buffer_m=30.0, reason="incident")
    assert missing == [] and d.n_closed > 0
    np.testing.assert_array_equal(d.closed, ref.closed)


def test_evacuation_refuses_cells_farther_than_far_m(sample):
    # Other parts' proofs rest on no cell lying farther than far_m from the network.
    part = _town_parts(sample)[0]
    with pytest.raises(partition.PartitionError, match=r"far_m") as err:
        ps.evacuation_part(sample, part, measure_crs=sample.metadata["measure_crs"], far_m=20.0)
    assert "疏散分区" in str(err.value) and "cell_id" in str(err.value)


# --------------------------------------------------------------------------- by hand

METRIC = "EPSG:4547"
X0, Y0 = 404_000.0, 2_500_000.0  # near Pengjiang


def _lonlat(geoms: list, **cols: list) -> gpd.GeoDataFrame:
    moved = [shapely.transform(g, lambda xy: xy + np.array([X0, Y0])) for g in geoms]
    return gpd.GeoDataFrame(cols, geometry=moved, crs=METRIC).to_crs("EPSG:4490")


@pytest.fixture(scope="module")
def border_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """Towns A (x 0-1 km) and B (x 1-2 km) on a 6 km road; shelter S on their border.

    A's 300 people reach only S (100 m; T is 600 m away, beyond its 500 m service); B's 300
    reach S (100 m) and T (400 m). S holds 400, T 200. The optimum places everyone: A's 300
    and 100 of B's at S, B's other 200 at T: 1,800 person-minutes at 4 km/h (15 m/min).
    """
    return _border_workspace(
        tmp_path_factory.mktemp("border"), {"S": (1000, 400), "T": (1500, 200)}
    )


def _border_workspace(folder, shelter_at: dict) -> Workspace:
    """The two towns, their people, and shelters ``id: (x, capacity)`` (emergency class)."""
    # In 100 m pieces: people and shelters snap to the nodes at their feet.
    pieces = [shapely.LineString([(x, 0), (x + 100, 0)]) for x in range(0, 6000, 100)]
    roads = _lonlat(pieces, road_id=[f"R{i}" for i in range(60)], road_class=["residential"] * 60)
    pop = _lonlat(
        [shapely.Point(900, 0), shapely.Point(1100, 0)],
        cell_id=["a", "b"],
        pop_total=[300.0, 300.0],
        pop_60plus=[50.0, 50.0],
        cell_size_m=[100, 100],
        adcode=["440703002001", "440703005001"],
    )
    ids = list(shelter_at)
    shelters = _lonlat(
        [shapely.Point(x, 0) for x, _ in shelter_at.values()],
        shelter_id=ids,
        name=ids,
        class_gb51143=["emergency"] * len(ids),
        shelter_class=["III"] * len(ids),
        capacity_persons=[c for _, c in shelter_at.values()],
        effective_area_m2=[1.5 * c for _, c in shelter_at.values()],
        adcode=["440703002001" if x <= 1000 else "440703005001" for x, _ in shelter_at.values()],
    )
    boxes = [shapely.box(0, -100, 1000, 100), shapely.box(1000, -100, 2000, 100)]
    units = _lonlat(
        [*boxes, *boxes],
        adcode=["440703002", "440703005", "440703002001", "440703005001"],
        name=["A", "B", "a", "b"],
        level=["town"] * 2 + ["village"] * 2,
        parent_adcode=["440703"] * 2 + ["440703002", "440703005"],
    )
    path = folder / "border.gpkg"
    x0, y0, x1, y1 = roads.total_bounds
    ws = Workspace.create(
        path,
        name="border",
        adcode="440703",
        bounds=(x0 - 0.01, y0 - 0.01, x1 + 0.01, y1 + 0.01),
        measure_crs=METRIC,
    )
    layers = {"roads": roads, "population": pop, "shelters": shelters, "admin_units": units}
    prov = {"synthetic": True, "source": "test", "method": "hand-built"}
    ws.write_layers(layers, {k: prov for k in layers})
    return ws


def test_evacuation_across_a_border_by_hand(border_ws):
    units = border_ws.read("admin_units")
    towns = units[units["level"] == "town"]
    parts = [
        partition.Part(c, n, g)
        for c, n, g in zip(towns["adcode"], towns["name"], towns.geometry, strict=True)
    ]
    frames, logs = [], []
    for p in parts:
        f, log = ps.evacuation_part(border_ws, p, measure_crs=METRIC, buffer_m=500.0, far_m=100.0)
        frames.append(f)
        logs.append(log)
    got = ps.gather_evacuation(frames, METRIC, shelter_order=["S", "T"])
    load = got["load"].set_index("shelter_id")["assigned_persons"]
    assert load.to_dict() == {"S": 400, "T": 200}
    lines = got["lines"]
    assert lines["persons"].sum() == 600
    assert (lines["persons"] * lines["walk_min"]).sum() == pytest.approx(1800.0, abs=1e-6)
    by = lines.groupby(["adcode", "shelter_id"])["persons"].sum().to_dict()
    assert by == {
        ("440703002001", "S"): 300,
        ("440703005001", "S"): 100,
        ("440703005001", "T"): 200,
    }
    # A owns the component (smallest code) and solved it with B's people as its halo; B
    # skipped it. A grew its cut from 500 m until B's people and T were proven inside.
    assert (logs[0]["components"], logs[0]["halo_sources"]) == (1, 1)
    assert (logs[1]["components"], logs[1]["shared_components"]) == (0, 1)
    assert logs[0]["rounds"] >= 3 and len(got["unassigned"]) == 0


def test_a_shelter_that_never_fills_joins_nobody(tmp_path):
    # One shelter U on the border holding 1,000: everyone reaches it, it cannot fill, so each
    # town solves its own people alone (no halo) and the loads add up.
    ws = _border_workspace(tmp_path, {"U": (1000, 1000)})
    units = ws.read("admin_units")
    towns = units[units["level"] == "town"]
    frames, logs = [], []
    for c, name, g in zip(towns["adcode"], towns["name"], towns.geometry, strict=True):
        part = partition.Part(c, name, g)
        f, log = ps.evacuation_part(ws, part, measure_crs=METRIC, buffer_m=500.0, far_m=100.0)
        frames.append(f)
        logs.append(log)
    assert [(lg["components"], lg["halo_sources"], lg["free_shelters"]) for lg in logs] == [
        (1, 0, 1),
        (1, 0, 1),
    ]
    got = ps.gather_evacuation(frames, METRIC)
    u = got["load"].set_index("shelter_id").loc["U"]
    assert (u["assigned_persons"], u["spare_persons"], u["status"]) == (600, 400, "partial")
    assert u["mean_walk_min"] == pytest.approx(1.5, rel=1e-9)  # 100 m at 4 km/h, everyone
    assert got["lines"]["persons"].sum() == 600 and got["lines"]["source_id"].nunique() == 2

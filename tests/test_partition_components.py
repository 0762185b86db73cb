"""Partitioned = whole on networks of several components (issue 18, item 2).

The whole-area analyses and the parts follow one component policy: every component is kept and
a point whose nearest road is a piece not joined to any centre or store is reported unreachable
(``unreachable_pop``, relief status ``cut_off``), in both. The sample is edited to have several
components: an isolated 6 m road on its most populated cell, a separate loop of streets with a
centre of its own and a short road at one village's audit point.
"""

from __future__ import annotations

import shutil

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from scipy.sparse.csgraph import connected_components
from shapely.geometry import LineString, Point, box

from geo_mz.core.workspace import Workspace
from geo_mz.eldercare import coverage
from geo_mz.eldercare.circle15 import CircleSettings, analyse_circle
from geo_mz.network.graph import network_from_roads
from geo_mz.relief import drive_audit as relief
from geo_mz.scale import partition
from geo_mz.scale.partition_relief import relief_part

PROV = {"synthetic": True, "source": "test", "method": "isolated road pieces added by hand"}


def _town_parts(ws: Workspace) -> list[partition.Part]:
    from geo_mz.scale.runner import parts_of

    return parts_of(ws.read("admin_units"), "town")


def _texts(values: pd.Series) -> list[str | None]:
    """Values as text, None where missing (a gathered column may hold NaN for None)."""
    return [None if pd.isna(v) else str(v) for v in values]


def _free_spot(xy: np.ndarray, ends: np.ndarray, order: np.ndarray, min_m: float) -> int:
    """First index in ``order`` whose point is at least ``min_m`` from every road end."""
    for i in order:
        if np.hypot(*(ends - xy[i]).T).min() >= min_m:
            return int(i)
    raise AssertionError("no free spot")


@pytest.fixture(scope="module")
def pieces_ws(sample_ws, tmp_path_factory: pytest.TempPathFactory):
    """The sample with three road pieces joined to nothing, and a centre on one of them."""
    path = tmp_path_factory.mktemp("pieces") / "pieces.gpkg"
    shutil.copy(sample_ws.path, path)
    ws = Workspace(path)
    crs = ws.metadata["measure_crs"]
    roads = ws.read("roads")
    ends = shapely.get_coordinates(
        np.r_[
            shapely.get_point(roads.to_crs(crs).geometry.values, 0),
            shapely.get_point(roads.to_crs(crs).geometry.values, -1),
        ]
    )
    pop = ws.read("population").to_crs(crs)
    pxy = shapely.get_coordinates(pop.geometry.values)
    by_people = np.argsort(-pop["pop_60plus"].to_numpy(float), kind="stable")
    # 1. A 6 m road on the most populated cell that is 20 m from every road end.
    i = _free_spot(pxy, ends, by_people, 20.0)
    x, y = pxy[i]
    lines = [LineString([(x - 3, y + 0.7), (x + 3, y + 0.7)])]
    # 2. A 120 m loop of four streets in another town, with a centre on its corner.
    town = pop["adcode"].astype(str).str[:9].to_numpy()
    other = by_people[town[by_people] != town[i]]
    j = _free_spot(pxy, ends, other, 60.0)
    a, b = pxy[j] + (-40.0, -40.0), pxy[j] + (80.0, 80.0)
    corners = [(a[0], a[1]), (b[0], a[1]), (b[0], b[1]), (a[0], b[1])]
    lines += [LineString([corners[k], corners[(k + 1) % 4]]) for k in range(4)]
    # 3. A 6 m road at one village's audit point (the drive network's isolated piece).
    points = relief.audit_points(ws.read_all(), measure_crs=crs)
    vil = points[points["kind"] == "village"].to_crs(crs)
    vxy = shapely.get_coordinates(vil.geometry.values)
    k = _free_spot(vxy, ends, np.arange(10, len(vxy)), 20.0)
    vx, vy = vxy[k]
    lines.append(LineString([(vx + 1, vy), (vx + 7, vy)]))
    extra = gpd.GeoDataFrame(
        {
            "road_id": [f"PIECE{n}" for n in range(len(lines))],
            "road_class": ["residential"] * len(lines),
        },
        geometry=lines,
        crs=crs,
    ).to_crs(roads.crs)
    centres = ws.read("elder_care")
    new_centre = centres[centres["status"] == "operating"].iloc[[0]].copy()
    new_centre["facility_id"] = "LOOP-CENTRE"
    new_centre["kind"] = "day_care_centre"
    new_centre = new_centre.set_geometry(
        gpd.GeoSeries([Point(corners[0])], crs=crs).to_crs(centres.crs).values
    )
    ws.write_layers(
        {
            "roads": pd.concat([roads, extra], ignore_index=True),
            "elder_care": pd.concat([centres, new_centre], ignore_index=True),
        },
        {"roads": PROV, "elder_care": PROV},
    )
    ws.cell_on_piece = str(pop["cell_id"].iloc[i])  # type: ignore[attr-defined]
    ws.village_on_piece = str(vil["point_id"].iloc[k])  # type: ignore[attr-defined]
    return ws


def test_the_edited_sample_has_several_components(pieces_ws):
    crs = pieces_ws.metadata["measure_crs"]
    roads = pieces_ws.read("roads")
    walk = network_from_roads(roads, mode="walk", measure_crs=crs, components="all")
    n, _ = connected_components(walk.graph, directed=True, connection="weak")
    assert n == 4  # the sample's one network and the three pieces
    largest = network_from_roads(roads, mode="walk", measure_crs=crs)
    assert largest.dropped["components"] == 3


def test_coverage_by_town_equals_the_single_process_circle(pieces_ws):
    crs = pieces_ws.metadata["measure_crs"]
    s = CircleSettings()
    whole = analyse_circle(pieces_ws.read_all(), s)
    times, units = [], []
    for part in _town_parts(pieces_ws):
        frames, _ = partition.coverage_part(pieces_ws, part, settings=s, measure_crs=crs)
        times.append(frames["times"])
        units.append(frames["units"])
    ref = whole.times.set_index("cell_id")
    got = pd.concat(times, ignore_index=True).set_index("cell_id")
    assert len(got) == len(ref) and got.index.is_unique
    got = got.loc[ref.index]
    np.testing.assert_array_equal(got["walk_min"].to_numpy(), ref["walk_min"].to_numpy())
    np.testing.assert_array_equal(got["snap_m"].to_numpy(), ref["snap_m"].to_numpy())
    assert _texts(got["nearest_centre"]) == _texts(ref["nearest_centre"])
    # The cell on the 6 m road is unreachable in both, and counted as such, not dropped.
    cell = pieces_ws.cell_on_piece
    assert np.isinf(ref.loc[cell, "walk_min"]) and np.isinf(got.loc[cell, "walk_min"])
    aged = float(ref.loc[cell, "pop_60plus"])
    assert aged > 0
    tot = whole.table_towns[whole.table_towns["level"] == "total"].iloc[0]
    assert float(tot["unreachable_pop"]) == pytest.approx(aged)
    assert any(k.label_en == "Aged 60+ unreachable on the network" for k in whole.kpis)
    # The loop's own centre serves the cells around it (a separate component, reachable).
    assert (ref["nearest_centre"].astype(str) == "LOOP-CENTRE").sum() > 0
    # Unit tables, row for row: the part's rows equal the single-process run's.
    u = pd.concat(units, ignore_index=True).set_index("adcode")
    for level, table in (("town", whole.table_towns), ("village", whole.table_villages)):
        ref_tab = table[table["level"] == level].set_index("adcode")
        cols = [c for c in ref_tab.columns if c in u.columns]
        assert "unreachable_pop" in cols
        mine = pd.DataFrame(u.loc[ref_tab.index, cols])
        pd.testing.assert_frame_equal(mine, ref_tab[cols], check_dtype=False, check_exact=True)
        assert float(mine["unreachable_pop"].sum()) == pytest.approx(aged)


def test_coverage_figures_match_an_independent_count(pieces_ws):
    """The unreachable cell by another method: the 6 m road's component has no centre."""
    crs = pieces_ws.metadata["measure_crs"]
    roads = pieces_ws.read("roads")
    net = network_from_roads(roads, mode="walk", measure_crs=crs, components="all")
    _, label = connected_components(net.graph, directed=True, connection="weak")
    centres = coverage.select_centres(pieces_ws.read("elder_care"))
    pop = pieces_ws.read("population")
    _, cnode = net.node_tree.query(shapely.get_coordinates(centres.to_crs(crs).geometry.values))
    _, pnode = net.node_tree.query(shapely.get_coordinates(pop.to_crs(crs).geometry.values))
    no_centre = ~np.isin(label[pnode], label[cnode])
    assert pop["cell_id"].astype(str)[no_centre].tolist() == [pieces_ws.cell_on_piece]


def test_relief_by_town_equals_the_single_process_audit(pieces_ws):
    crs = pieces_ws.metadata["measure_crs"]
    layers = pieces_ws.read_all()
    s = relief.ReliefSettings(targets=relief.workspace_targets(pieces_ws.metadata))
    whole = relief.run_audit(layers, s, measure_crs=crs).table
    vmax = partition.max_drive_kmh(layers["roads"], s)
    got = pd.concat(
        [
            relief_part(pieces_ws, p, settings=s, measure_crs=crs, vmax_kmh=vmax)[0]["audit"]
            for p in _town_parts(pieces_ws)
        ],
        ignore_index=True,
    )
    key = ["target", "point_id"]
    assert len(got) == len(whole) and not got.duplicated(key).any()
    m = whole.merge(pd.DataFrame(got), on=key, suffixes=("", "_p"), validate="1:1")
    for col in ("time_min", "margin_min", "population"):
        np.testing.assert_array_equal(m[col].to_numpy(float), m[f"{col}_p"].to_numpy(float))
    for col in ("store_id", "status", "meets", "too_far"):
        assert _texts(m[col]) == _texts(m[f"{col}_p"]), col
    # The village on the isolated road is cut off in both, for every target.
    on_piece = m[m["point_id"] == pieces_ws.village_on_piece]
    assert len(on_piece) > 0
    assert (on_piece["status"] == "cut_off").all() and (on_piece["status_p"] == "cut_off").all()


# --------------------------------------------------------------------------- hand-built

METRIC = "EPSG:4547"
X0, Y0 = 404_000.0, 2_500_000.0


def _lonlat(geoms: list, **cols: list) -> gpd.GeoDataFrame:
    moved = [shapely.transform(g, lambda xy: xy + np.array([X0, Y0])) for g in geoms]
    return gpd.GeoDataFrame(cols, geometry=moved, crs=METRIC).to_crs("EPSG:4490")


@pytest.fixture(scope="module")
def far_centre_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A point P on a 10 m road (its own component) and a centre C 2,150 m east of it.

    C is outside the first cut (2 km round a 200 m town), and the 10 m road is its nearest
    road anywhere: on the whole network P is served by C (a long straight walk); the first cut
    holds P's component wholly but not C.
    """
    roads = _lonlat(
        [LineString([(0, 0), (10, 0)]), LineString([(0, 10_000), (1000, 10_000)])],
        road_id=["K", "MAIN"],
        road_class=["residential", "residential"],
    )
    pop = _lonlat([Point(0, 0)], cell_id=["P"], pop_total=[100.0], pop_60plus=[20.0],
                  adcode=["440703002001"])  # fmt: skip
    centres = _lonlat([Point(2150, 0)], facility_id=["C"], name=["centre"],
                      kind=["day_care_centre"], status=["operating"])  # fmt: skip
    town = box(-100, -100, 100, 100)
    units = _lonlat([town, town], adcode=["440703002", "440703002001"], name=["town", "village"],
                    level=["town", "village"], parent_adcode=["440703", "440703002"])  # fmt: skip
    path = tmp_path_factory.mktemp("far_centre") / "far.gpkg"
    minx, miny, maxx, maxy = pd.concat([roads, centres]).total_bounds
    ws = Workspace.create(path, name="far", adcode="440703",
                          bounds=(minx - 0.01, miny - 0.01, maxx + 0.01, maxy + 0.01),
                          measure_crs=METRIC)  # fmt: skip
    layers = {"roads": roads, "population": pop, "elder_care": centres, "admin_units": units}
    ws.write_layers(layers, {k: PROV for k in layers})
    return ws


def test_a_centre_outside_the_cut_that_snaps_into_a_complete_component(far_centre_ws):
    s = CircleSettings()
    ws = far_centre_ws
    net = network_from_roads(ws.read("roads"), mode="walk", walk_speed_kmh=s.walk_speed_kmh,
                             measure_crs=METRIC, components="all")  # fmt: skip
    whole = coverage.access_times(net, ws.read("elder_care"), ws.read("population"))
    # Independent: C walks 2,140 m straight to the road's east end, then 10 m to P's node.
    metres = 2140.0 + 10.0
    assert whole["walk_min"].iloc[0] == pytest.approx(metres / (s.walk_speed_kmh * 1000 / 60))
    units = ws.read("admin_units")
    part = partition.Part("440703002", "town", units[units["level"] == "town"].geometry.iloc[0])
    frames, log = partition.coverage_part(ws, part, settings=s, measure_crs=METRIC)
    got = frames["times"]
    assert got["walk_min"].iloc[0] == whole["walk_min"].iloc[0]
    assert got["nearest_centre"].iloc[0] == "C"
    # The first cut held P's whole component but not C, and said so by computing again.
    assert log["rounds"] >= 2


# --------------------------------------------------------------------------- real roads

MOSS_CLASSES = {"trunk": "trunk", "trunk_link": "trunk", "primary": "primary",
                "tertiary": "tertiary", "tertiary_link": "tertiary",
                "residential": "residential"}  # fmt: skip


@pytest.fixture(scope="module")
def wuhan_ws(shared_data, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """Real Wuhan 光谷 roads (30 drive components at 0.5 m) with hand-made units and people.

    Two towns (west, east halves of the roads' box) of two villages each, a population point
    every 150 m, three centres, a district store and a store per town (all made up).
    """
    import warnings

    with warnings.catch_warnings():  # duplicate feature ids between roads and junctions
        warnings.simplefilter("ignore", RuntimeWarning)
        raw = gpd.read_file(shared_data / "roads" / "wuhan_guanggu_roadnet_mosstool.geojson")
    lines = raw[raw.geom_type == "LineString"].reset_index(drop=True)
    roads = gpd.GeoDataFrame(
        {"road_id": lines["id"].astype(str), "road_class": lines["highway"].map(MOSS_CLASSES),
         "speed_kmh": lines["max_speed"] * 3.6},
        geometry=lines.geometry, crs=lines.crs,
    ).to_crs(METRIC)  # fmt: skip
    x0, y0, x1, y1 = roads.total_bounds + np.array([-300, -300, 300, 300])
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    towns = [box(x0, y0, xm, y1), box(xm, y0, x1, y1)]
    villages = [box(x0, y0, xm, ym), box(x0, ym, xm, y1), box(xm, y0, x1, ym), box(xm, ym, x1, y1)]
    t_codes, v_codes = (
        ["420111001", "420111002"],
        [f"42011100{t}00{v}" for t in (1, 2) for v in (1, 2)],
    )
    units = gpd.GeoDataFrame(
        {"adcode": ["420111", *t_codes, *v_codes], "name": ["区", "西", "东", "a", "b", "c", "d"],
         "level": ["county", "town", "town", *["village"] * 4],
         "parent_adcode": ["420100", "420111", "420111", *[t_codes[0]] * 2, *[t_codes[1]] * 2]},
        geometry=[box(x0, y0, x1, y1), *towns, *villages], crs=METRIC,
    )  # fmt: skip
    gx, gy = np.meshgrid(np.arange(x0 + 75, x1, 150), np.arange(y0 + 75, y1, 150))
    pts = gpd.GeoSeries(gpd.points_from_xy(gx.ravel(), gy.ravel()), crs=METRIC)
    vil = np.array([next(k for k, v in enumerate(villages) if v.covers(p)) for p in pts])
    pop = gpd.GeoDataFrame(
        {"cell_id": [f"W{n}" for n in range(len(pts))], "pop_total": 100.0, "pop_60plus": 20.0,
         "adcode": np.array(v_codes)[vil]},
        geometry=pts.values, crs=METRIC,
    )  # fmt: skip
    cx = [x0 + (x1 - x0) * f for f in (0.2, 0.5, 0.8)]
    centres = gpd.GeoDataFrame(
        {"facility_id": ["C1", "C2", "C3"], "name": ["c1", "c2", "c3"],
         "kind": ["day_care_centre"] * 3, "status": ["operating"] * 3},
        geometry=gpd.points_from_xy(cx, [y0 + (y1 - y0) * f for f in (0.3, 0.6, 0.4)]),
        crs=METRIC,
    )  # fmt: skip
    stores = gpd.GeoDataFrame(
        {"store_id": ["S0", "S1", "S2"], "name": ["district", "west", "east"],
         "level": ["county", "township", "township"], "adcode": ["420111", *t_codes]},
        geometry=gpd.points_from_xy([xm, (x0 + xm) / 2, (xm + x1) / 2], [ym, ym, y0 + 400]),
        crs=METRIC,
    )  # fmt: skip
    layers = {"roads": roads, "population": pop, "elder_care": centres,
              "relief_stores": stores, "admin_units": units}  # fmt: skip
    layers = {k: v.to_crs("EPSG:4490") for k, v in layers.items()}
    minx, miny, maxx, maxy = layers["admin_units"].total_bounds
    path = tmp_path_factory.mktemp("wuhan") / "wuhan.gpkg"
    ws = Workspace.create(path, name="wuhan", adcode="420111",
                          bounds=(minx - 0.01, miny - 0.01, maxx + 0.01, maxy + 0.01),
                          measure_crs=METRIC)  # fmt: skip
    ws.write_layers(layers, {k: PROV for k in layers})
    return ws


def test_real_roads_of_many_components_whole_equals_parts(wuhan_ws):
    ws = wuhan_ws
    layers = ws.read_all()
    s = CircleSettings()
    drive = relief.drive_network(layers["roads"], measure_crs=METRIC)
    walk = network_from_roads(layers["roads"], mode="walk", measure_crs=METRIC, components="all")
    n_drive = connected_components(drive.graph, directed=True, connection="strong")[0]
    n_walk = connected_components(walk.graph, directed=True, connection="weak")[0]
    assert n_drive == 30 and n_walk > 1  # the real file's pieces, all kept
    parts = _town_parts(ws)
    assert len(parts) == 2
    # Coverage: the single-process circle vs the two towns.
    whole = analyse_circle(layers, s)
    got = pd.concat(
        [partition.coverage_part(ws, p, settings=s, measure_crs=METRIC)[0]["times"] for p in parts],
        ignore_index=True,
    ).set_index("cell_id")
    ref = whole.times.set_index("cell_id")
    got = got.loc[ref.index]
    np.testing.assert_array_equal(got["walk_min"].to_numpy(), ref["walk_min"].to_numpy())
    assert _texts(got["nearest_centre"]) == _texts(ref["nearest_centre"])
    walk_min = ref["walk_min"].to_numpy()
    assert np.isfinite(walk_min).any() and np.isinf(walk_min).any()  # both kinds compared
    # Relief: the single-process audit vs the two towns.
    rs = relief.ReliefSettings(targets=relief.PENGJIANG_TARGETS)
    audit = relief.run_audit(layers, rs, measure_crs=METRIC).table
    vmax = partition.max_drive_kmh(layers["roads"], rs)
    rows = pd.concat(
        [relief_part(ws, p, settings=rs, measure_crs=METRIC, vmax_kmh=vmax)[0]["audit"]
         for p in parts],
        ignore_index=True,
    )  # fmt: skip
    m = audit.merge(pd.DataFrame(rows), on=["target", "point_id"], suffixes=("", "_p"),
                    validate="1:1")  # fmt: skip
    assert len(m) == len(audit) == len(rows)
    np.testing.assert_array_equal(m["time_min"].to_numpy(float), m["time_min_p"].to_numpy(float))
    assert _texts(m["status"]) == _texts(m["status_p"])
    assert _texts(m["store_id"]) == _texts(m["store_id_p"])
    assert m["status"].eq("cut_off").any() and m["status"].ne("cut_off").any()
    print(f"\nWuhan: {n_drive} drive / {n_walk} walk components; unreachable aged 60+ "
          f"{whole.table_towns['unreachable_pop'].iloc[-1]:.0f}; relief status "
          f"{audit['status'].value_counts().to_dict()}")  # fmt: skip

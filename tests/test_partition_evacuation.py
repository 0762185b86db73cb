"""Evacuation in two passes: the bound on the cells' distance to the network is measured.

Pass 1 measures how far each part's cells lie from the walking network, the reduce takes the
largest, pass 2 proves each part with it (``geo_mz.scale.partition_evacuation``). The parts'
gathered flows must be an optimum of the whole run; a hand-built province where a cell of one
town lies 3 km from any road, in a village whose people another town's part must take as its
halo, shows what a bound too small would break.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo_mz.core.workspace import Workspace
from geo_mz.network.graph import network_from_roads
from geo_mz.network.paths import snap_points
from geo_mz.relief import shelters as shel
from geo_mz.scale import partition
from geo_mz.scale import partition_evacuation as pe
from geo_mz.scale import partition_shelters as ps
from geo_mz.scale.partition_twopass import concat_frames, run_two_pass_in_process

METRIC = "EPSG:4547"
X0, Y0 = 404_000.0, 2_500_000.0  # near Pengjiang
A, B = "440703002", "440703005"


def _cost(lines: pd.DataFrame) -> int:
    """Person-minutes at the solver's resolution (0.01 min), as the flow minimises them."""
    return int(np.rint(lines["walk_min"].to_numpy() * 100).astype(np.int64) @ lines["persons"])


def _town_parts(ws: Workspace) -> list[partition.Part]:
    from geo_mz.scale.runner import parts_of

    return parts_of(ws.read("admin_units"), "town")


def _assert_optimum_of_whole(got: dict, whole: shel.EvacuationResult, crs: str) -> None:
    """The gathered parts place the same people at the same cost, shelter by shelter."""
    assert int(got["lines"]["persons"].sum()) == whole.assigned
    assert _cost(got["lines"]) == _cost(whole.lines)
    ref, mine = whole.load.set_index("shelter_id"), got["load"].set_index("shelter_id")
    assert list(mine.index) == list(ref.index)
    for col in ("assigned_persons", "capacity_persons", "status"):
        assert (mine[col].astype(str) == ref[col].astype(str)).all(), col
    u_ref = whole.unassigned.set_index(["adcode", "reason"])
    u_got = got["unassigned"].set_index(["adcode", "reason"])
    assert list(u_got.index) == list(u_ref.index)
    assert (u_got["persons_unassigned"] == u_ref["persons_unassigned"]).all()


# --------------------------------------------------------------------------- the sample


def _two_pass(ws: Workspace, parts: list[partition.Part], **opts) -> tuple[list, dict, dict]:
    """Pass 1 on every part, the reduce, pass 2 on every part: frames, logs, reduced value."""
    firsts = [pe.evacuation_far(ws, p, **opts) for p in parts]
    shared = pe.evacuation_far_reduce(concat_frames([f for f, _ in firsts]))
    seconds = [pe.evacuation_second(ws, p, shared=shared, **opts) for p in parts]
    logs = {"first": {p.code: lg for p, (_, lg) in zip(parts, firsts, strict=True)},
            "second": {p.code: lg for p, (_, lg) in zip(parts, seconds, strict=True)}}  # fmt: skip
    return [f for f, _ in seconds], logs, shared


def test_two_passes_by_town_are_an_optimum_of_the_whole_district(sample_ws):
    crs = sample_ws.metadata["measure_crs"]
    layers = sample_ws.read_all()
    s = shel.ShelterSettings()
    net = network_from_roads(layers["roads"], mode="walk", walk_speed_kmh=s.walk_speed_kmh,
                             measure_crs=crs, components="all")  # fmt: skip
    whole = shel.evacuate(
        layers["population"], layers["shelters"], net, s, units=layers["admin_units"]
    )
    frames, log, shared = _two_pass(sample_ws, _town_parts(sample_ws), measure_crs=crs)
    order = layers["shelters"]["shelter_id"].tolist()
    _assert_optimum_of_whole(ps.gather_evacuation(frames, crs, shelter_order=order), whole, crs)
    # Every cell of the district was measured: the bound is the whole network's largest snap
    # (the same CRS here), with its margins, and pass 2 used it.
    snap = snap_points(net, layers["population"].geometry, max_snap_m=s.max_snap_m).offset_m
    assert shared["cells"] == len(layers["population"]) and shared["disjoint"]
    assert shared["far_m"] == pytest.approx(snap.max() * pe.ZONE_SCALE + partition.SLACK_M)
    assert all(lg["exact"] for lg in log["first"].values())
    assert {lg["far_source"] for lg in log["second"].values()} == {"measured"}
    assert {lg["far_m"] for lg in log["second"].values()} == {round(shared["far_m"], 1)}
    # The first cut is sized from it: smaller than the single pass's with FAR_M.
    first = {lg["buffer_m"][0] for lg in log["second"].values()}
    reach = shel.shelter_capacity(layers["shelters"], s)["service_min"].max()
    v = s.walk_speed_kmh * 1000.0 / 60.0
    assert first == {ps.evacuation_buffer_m(reach * v, shared["far_m"])}
    assert max(first) < ps.evacuation_buffer_m(reach * v, ps.FAR_M)


def test_the_registered_job_runs_both_passes(sample_ws):
    # ``scale run evacuation`` runs this job: the runner's in-process twin gives the same rows.
    from geo_mz.scale.jobs import pass_names, two_pass

    assert two_pass("evacuation") and pass_names("evacuation") == ("evacuation:1", "evacuation:2")
    crs = sample_ws.metadata["measure_crs"]
    parts = _town_parts(sample_ws)[:3]
    got, log = run_two_pass_in_process(pe.EVACUATION, sample_ws, parts, measure_crs=crs)
    frames, _, shared = _two_pass(sample_ws, parts, measure_crs=crs)
    assert log["shared"] == shared
    want = concat_frames(frames)
    for name in ("load", "lines", "unassigned"):
        pd.testing.assert_frame_equal(got[name], want[name])


def test_some_parts_only_fall_back_to_the_assumed_bound(sample_ws):
    # Two towns do not hold every cell of the layer: their measure bounds only their own cells.
    crs = sample_ws.metadata["measure_crs"]
    parts = _town_parts(sample_ws)[:2]
    firsts = [pe.evacuation_far(sample_ws, p, measure_crs=crs)[0] for p in parts]
    shared = pe.evacuation_far_reduce(concat_frames(firsts))
    assert 0 < shared["cells"] < len(sample_ws.read("population"))
    assert pe.far_bound(sample_ws, shared) == (ps.FAR_M, "assumed")
    assert pe.far_bound(sample_ws, None) == (ps.FAR_M, "assumed")
    # Nested codes could count a cell twice: not a measure of the layer either.
    rows = pd.DataFrame({"part": ["4407", "440703"], "cells": [1, 1], "far_m": [5.0, 9.0]})
    nested = pe.evacuation_far_reduce({pe.FAR_LAYER: rows})
    assert not nested["disjoint"] and nested["far_m"] == pytest.approx(9.0 * pe.ZONE_SCALE + 2)
    with pytest.raises(partition.PartitionError, match="far_m"):
        pe.far_bound(sample_ws, shared | {"far_m": float("nan")})


# --------------------------------------------------------------------------- by hand


def _lonlat(geoms: list, **cols: list) -> gpd.GeoDataFrame:
    moved = [shapely.transform(g, lambda xy: xy + np.array([X0, Y0])) for g in geoms]
    return gpd.GeoDataFrame(cols, geometry=moved, crs=METRIC).to_crs("EPSG:4490")


@pytest.fixture(scope="module")
def far_cell_ws(tmp_path_factory) -> Workspace:
    """Two towns on one road (100 m pieces along y = 0, x 0-20 km); shelters S and T fill up.

    A (x 0-1 km) has 300 people at x 900; B (x 1-2 km, reaching 3.1 km south) has 300 at
    x 1100 and one person 3 km south of it, whose nearest node is B's at x 1100 too: one
    source of B's village, 301 people. S (x 1000, 400 places) is within reach of both, T
    (x 1500, 200 places) of B: A's part owns the component and must take B's source whole,
    the far person too (600 places for 601 people: one is left).
    """
    pieces = [shapely.LineString([(x, 0), (x + 100, 0)]) for x in range(0, 20000, 100)]
    roads = _lonlat(pieces, road_id=[f"R{i}" for i in range(200)], road_class=["residential"] * 200)
    pop = _lonlat(
        [shapely.Point(900, 0), shapely.Point(1100, 0), shapely.Point(1100, -3000)],
        cell_id=["a", "b", "far"],
        pop_total=[300.0, 300.0, 1.0],
        pop_60plus=[50.0, 50.0, 0.0],
        cell_size_m=[100, 100, 100],
        adcode=["440703002001", "440703005001", "440703005001"],
    )
    shelters = _lonlat(
        [shapely.Point(1000, 0), shapely.Point(1500, 0)],
        shelter_id=["S", "T"],
        name=["S", "T"],
        class_gb51143=["emergency"] * 2,
        shelter_class=["III"] * 2,
        capacity_persons=[400, 200],
        effective_area_m2=[600.0, 300.0],
        adcode=["440703002001", "440703005001"],
    )
    boxes = [shapely.box(0, -100, 1000, 100), shapely.box(1000, -3100, 2000, 100)]
    units = _lonlat(
        [*boxes, *boxes],
        adcode=[A, B, "440703002001", "440703005001"],
        name=["A", "B", "a", "b"],
        level=["town"] * 2 + ["village"] * 2,
        parent_adcode=["440703"] * 2 + [A, B],
    )
    path = tmp_path_factory.mktemp("far_cell") / "far.gpkg"
    x0, y0, x1, y1 = np.r_[units.total_bounds[:2], roads.total_bounds[2:]]
    ws = Workspace.create(path, name="far", adcode="440703", measure_crs=METRIC,
                          bounds=(x0 - 0.01, y0 - 0.01, x1 + 0.01, y1 + 0.01))  # fmt: skip
    layers = {"roads": roads, "population": pop, "shelters": shelters, "admin_units": units}
    prov = {"synthetic": True, "source": "test", "method": "hand-built"}
    ws.write_layers(layers, {k: prov for k in layers})
    return ws


def _towns(ws: Workspace) -> list[partition.Part]:
    units = ws.read("admin_units")
    towns = units[units["level"] == "town"]
    return [partition.Part(c, n, g) for c, n, g in
            zip(towns["adcode"], towns["name"], towns.geometry, strict=True)]  # fmt: skip


def test_a_cell_far_from_roads_in_another_part_is_measured(far_cell_ws):
    ws = far_cell_ws
    parts = _towns(ws)
    layers = ws.read_all()
    s = shel.ShelterSettings(max_snap_m=5000.0)  # the far person joins B's source at x 1100
    net = network_from_roads(layers["roads"], mode="walk", measure_crs=METRIC, components="all")
    whole = shel.evacuate(layers["population"], layers["shelters"], net, s)
    assert (whole.assigned, whole.total_people) == (600, 601)
    frames, log, shared = _two_pass(ws, parts, settings=s, measure_crs=METRIC)
    # B measured its far cell (3 km; a second, wider cut for it) and every part proved its
    # sources with that bound.
    assert log["first"][B]["far_m"] == pytest.approx(3000.0) and log["first"][B]["exact"]
    assert log["first"][B]["rounds"] == 2 and log["first"][A]["far_m"] == pytest.approx(0.0)
    assert shared["far_m"] == pytest.approx(3000.0 * pe.ZONE_SCALE + partition.SLACK_M)
    assert {lg["far_source"] for lg in log["second"].values()} == {"measured"}
    gathered = ps.gather_evacuation(frames, METRIC, shelter_order=["S", "T"])
    _assert_optimum_of_whole(gathered, whole, METRIC)
    assert gathered["unassigned"]["persons_unassigned"].sum() == 1
    # A bound measured on A's cells alone (100 m) would be too small: A's cut then leaves the
    # far person out of B's source, and A places all 300 others of it, which the whole cannot.
    small = ps.evacuation_part(ws, parts[0], settings=s, measure_crs=METRIC, far_m=100.0)[0]
    assert small["lines"]["persons"].sum() == 600 and small["unassigned"].empty
    right = frames[0]
    assert right["lines"]["persons"].sum() == 600
    assert right["unassigned"]["persons_unassigned"].sum() == 1
    # The single pass's assumed 2 km does not hold here: B's part refuses rather than guess.
    with pytest.raises(partition.PartitionError, match="far_m"):
        ps.evacuation_part(ws, parts[1], settings=s, measure_crs=METRIC, buffer_m=500.0)


def test_a_part_whose_first_cut_holds_no_road_grows_it(far_cell_ws):
    # B drawn around its far person only: no road within 2 km of the part, in either pass.
    ws = far_cell_ws
    s = shel.ShelterSettings(max_snap_m=5000.0)
    shape = _lonlat([shapely.box(1050, -3050, 1150, -2950)]).geometry.iloc[0]
    alone = partition.Part(B, "B", shape)
    _, log = pe.evacuation_far(ws, alone, settings=s, measure_crs=METRIC)
    assert (log["cells"], log["exact"]) == (1, True)
    assert log["far_m"] == pytest.approx(3000.0)
    frames, log = ps.evacuation_part(ws, alone, settings=s, measure_crs=METRIC, buffer_m=500.0,
                                     far_m=3000.0 * pe.ZONE_SCALE + partition.SLACK_M)  # fmt: skip
    assert log["roadless"] == 3 and log["buffer_m"][:4] == [500.0, 1000.0, 2000.0, 4000.0]
    # Its people share A's component (A owns it): nothing to solve, as for B's own polygon.
    assert (log["components"], log["shared_components"]) == (0, 1)
    assert frames["lines"].empty and frames["unassigned"].empty


@pytest.mark.slow
def test_two_passes_on_postgis_equal_the_geopackage(pg_url, sample_ws):
    # A PostGIS workspace counts its cells in the database: the same measure, the same rows.
    from geo_mz.core.workspace_postgis import PostgisWorkspace
    from geo_mz.core.workspaces import open_workspace

    PostgisWorkspace.from_workspace(sample_ws, pg_url, schema="evac_ws", replace=True)
    pg = open_workspace(f"{pg_url}#evac_ws")
    crs = sample_ws.metadata["measure_crs"]
    parts = _town_parts(sample_ws)
    got, log, shared = _two_pass(pg, parts, measure_crs=crs)
    want, _, shared_gpkg = _two_pass(sample_ws, parts, measure_crs=crs)
    assert shared == shared_gpkg
    assert {lg["far_source"] for lg in log["second"].values()} == {"measured"}
    for g, w in zip(got, want, strict=True):
        for name in ("load", "lines", "unassigned"):
            pd.testing.assert_frame_equal(g[name], w[name], check_dtype=False)

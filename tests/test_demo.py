"""The sample job end to end: workspace, raster, report, and a map a browser draws offline."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import geopandas as gpd
import pytest
import rasterio
from click.testing import CliRunner
from geopandas.testing import assert_geodataframe_equal

from geo_mz.cli import main
from geo_mz.core.catalog import load_catalog
from geo_mz.core.workspace import Workspace
from geo_mz.demo import run_demo


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(main, ["demo", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


def test_demo_writes_every_layer_with_provenance(demo_out: Path):
    ws = Workspace(demo_out / "pengjiang.gpkg")
    info = ws.info()
    assert info["adcode"] == "440703" and info["measure_crs"] == "EPSG:4547"
    assert set(ws.layers()) == set(load_catalog())
    recs = {r["layer"]: r for r in info["layers"]}
    for kind in ("roads", "population", "elder_care", "shelters", "relief_stores", "water"):
        assert recs[kind]["synthetic"] is True, kind
        assert recs[kind]["method"], kind
    assert recs["population"]["rows"] > 10_000
    pop = ws.read("population")
    assert pop["pop_60plus"].sum() == 83_000
    with rasterio.open(demo_out / "population_100m.tif") as src:
        assert src.crs.to_epsg() == 4547 and src.res == (100.0, 100.0)
        assert float(src.read(2).sum()) == pytest.approx(83_000)


def test_report_shows_computed_figures_and_validation(demo_out: Path):
    html = (demo_out / "report.html").read_text(encoding="utf-8")
    assert "83,000" in html and "江门市蓬江区" in html
    beds = re.search(r"([\d.]+)\s*张", html[html.index("Beds per 1,000") :])
    assert beds is not None and float(beds.group(1)) == pytest.approx(
        3100 / 83_000 * 1000, abs=0.05
    )
    assert "GB 21734-2008 §5.4" in html  # the small-shelter warnings, with their source
    assert 'href="map.html"' in html


def test_demo_audits_relief_under_a_flood_and_shelters(demo_out: Path):
    with rasterio.open(demo_out / "flood_depth.tif") as src:
        assert src.tags()["SYNTHETIC"] == "yes"
    changes = gpd.read_file(demo_out / "relief.gpkg", layer="relief_changes")
    closures = gpd.read_file(demo_out / "relief.gpkg", layer="road_closures")
    assert (changes["change"] == "cut_off").any() and len(closures) > 0
    html = (demo_out / "report.html").read_text(encoding="utf-8")
    assert "镇(街)级储备库3小时送达村居" in html and "江门市蓬江区“大民政”" in html
    assert "Villages cut off in the scenario" in html
    assert "Fixed-shelter capacity / population" in html
    for name in ("relief_map.html", "shelters_map.html", "shelters.xlsx", "relief.xlsx"):
        assert (demo_out / name).stat().st_size > 0, name


def test_demo_ranks_tree_burial_land_on_its_synthetic_dem(demo_out: Path):
    with rasterio.open(demo_out / "dem_30m.tif") as src:
        assert src.tags()["SYNTHETIC"] == "yes" and src.crs.to_epsg() == 4547
    cand = gpd.read_file(demo_out / "burial.gpkg", layer="burial_candidates")
    assert len(cand) > 0 and (cand.to_crs(4547).area >= 3000 * 0.999).all()
    html = (demo_out / "report.html").read_text(encoding="utf-8")
    assert "殡葬管理条例" in html  # exclusion rules cite their source


def test_same_seed_same_workspace(demo_out: Path, tmp_path: Path):
    again = run_demo(tmp_path / "again")
    a, b = Workspace(demo_out / "pengjiang.gpkg"), Workspace(again.workspace)
    for kind in a.layers():
        assert_geodataframe_equal(a.read(kind), b.read(kind), check_like=False)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_map_draws_offline_in_a_real_browser(demo_out: Path, tmp_path: Path):
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed in CI (.ci/run installs it)")
        pytest.skip("chromium not installed")
    html = (demo_out / "map.html").read_text(encoding="utf-8")
    assert not re.search(r'<(script|link)[^>]+(src|href)="https?://', html)
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # no network at all: the map must be offline
        "--virtual-time-budget=10000",
        "--dump-dom",
        (demo_out / "map.html").as_uri(),
    ]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    # Leaflet itself built these: the layer switcher with each layer's Chinese title and count,
    # the scale bar, and a canvas with the drawn features.
    assert "leaflet-control-layers-overlays" in dom
    assert "养老服务设施 (105)" in dom or re.search(r"养老服务设施 \(\d+\)", dom)
    assert "leaflet-control-scale" in dom
    assert "<canvas" in dom
    assert "图例" in dom


def test_demo_outputs_match_the_recorded_fingerprint(demo_out: Path):
    """Every layer and raster the demo writes equals the fingerprint recorded before the package
    reorganisation (tests/data/demo_fingerprint.json): a move of code changes no value."""
    import json

    from tests.demo_fingerprint import fingerprint

    recorded = json.loads((Path(__file__).parent / "data" / "demo_fingerprint.json").read_text())
    now = fingerprint(demo_out)
    assert sorted(now) == sorted(recorded)
    changed = [k for k in recorded if now[k] != recorded[k]]
    assert not changed, f"changed outputs: {changed}"

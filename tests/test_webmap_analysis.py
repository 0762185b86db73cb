"""Web map analysis endpoints: relief audit with the current closures, coverage KPIs, live push."""

from __future__ import annotations

import json
import threading
import time

import pytest

pytest.importorskip("flask")

import geopandas as gpd
import requests
import shapely

from geo_mz.core.workspace import Workspace
from webmap import create_app
from webmap.testing import PASSWORD, fresh_settings, running_server

CLOSURES = "/collections/road_closures/items"


@pytest.fixture(scope="module")
def app(base, tmp_path_factory):
    return create_app(
        fresh_settings(base, tmp_path_factory.mktemp("analysis"), sse_keepalive_s=0.2)
    )


def bridge_polygon(workspace) -> dict:
    """The 潮连 island bridges (roads with ``bridge``), their union buffered 50 m, as CRS84."""
    roads = Workspace(workspace).read("roads")
    bridges = roads[roads["bridge"].fillna(False).astype(bool)]
    assert len(bridges) > 0
    crs = Workspace(workspace).metadata["measure_crs"]
    area = shapely.union_all(bridges.to_crs(crs).geometry.to_numpy()).buffer(50)
    g = gpd.GeoSeries([area], crs=crs).to_crs("OGC:CRS84").iloc[0]
    return json.loads(shapely.to_geojson(g))


def test_relief_normal_all_villages_meet(app):
    r = app.test_client().get("/analysis/relief")
    assert r.status_code == 200, r.json
    body = r.json
    assert body["scenario"] == "normal" and body["closures"] == 0
    assert body["villages"] > 0 and body["villages_late_or_cut_off"] == 0
    assert body["falls_out"] == 0 and body["cut_off"] == 0
    assert {t["key"] for t in body["targets"]} == set(body["counts"])
    assert all(t["source"] for t in body["targets"])
    for counts in body["counts"].values():
        assert counts["meets"] == body["villages"] and counts["cut_off"] == 0
    feats = body["features"]["features"]
    assert feats and {f["properties"]["feature_type"] for f in feats} == {"point"}
    assert all(f["properties"]["status"] == "meets" for f in feats)
    lon, lat = feats[0]["geometry"]["coordinates"]
    assert 112 < lon < 114 and 22 < lat < 23


def test_coverage_kpis(app):
    r = app.test_client().get("/analysis/coverage")
    assert r.status_code == 200, r.json
    kpis = r.json["kpis"]
    share = [k for k in kpis if k["label_en"] == "Aged 60+ within 15 min walk"]
    assert share and share[0]["unit"] == "%" and 0 <= share[0]["value"] <= 100
    assert app.test_client().get("/analysis/coverage").json == r.json  # cached


def test_closing_the_bridges_cuts_villages_off_and_pushes_an_event(app):
    api = app.extensions["webmap"]
    polygon = bridge_polygon(api.settings.workspace)
    assert app.test_client().get("/analysis/relief").json["cut_off"] == 0  # in use now
    got: list[dict] = []
    with running_server(app) as root:
        ready = threading.Event()

        def listen() -> None:
            with requests.get(f"{root}/events", stream=True, timeout=30) as resp:
                event = None
                ready.set()
                for line in resp.iter_lines(decode_unicode=True):
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event == "analysis":
                        got.append(json.loads(line[6:]))
                        return

        t = threading.Thread(target=listen, daemon=True)
        t.start()
        assert ready.wait(10)
        time.sleep(0.3)
        s = requests.Session()
        s.auth = ("commander1", PASSWORD)
        feature = {"type": "Feature", "geometry": polygon, "properties": {"reason": "桥梁封闭"}}
        r = s.post(f"{root}{CLOSURES}", json=feature, timeout=30)
        assert r.status_code == 201, r.text
        fid, etag = r.json()["id"], r.headers["ETag"]
        t.join(timeout=20)
        assert got, "no analysis event arrived"
        assert got[0]["cut_off"] > 0 and got[0]["closures"] == 1
        body = s.get(f"{root}/analysis/relief", timeout=30).json()
        assert body["cut_off"] > 0 and body["villages_late_or_cut_off"] >= body["cut_off"]
        assert body["edges_closed"] > 0 and body["cut_off_ids"]
        statuses = {
            f["properties"]["status"]
            for f in body["features"]["features"]
            if f["properties"]["feature_type"] == "point"
        }
        assert "cut_off" in statuses
        r = s.delete(f"{root}{CLOSURES}/{fid}", headers={"If-Match": etag}, timeout=30)
        assert r.status_code == 204, r.text
        back = s.get(f"{root}/analysis/relief", timeout=30).json()
        assert back["scenario"] == "normal" and back["villages_late_or_cut_off"] == 0
        assert back["cut_off"] == 0 and back["closures"] == 0


def test_openapi_documents_the_analysis_paths(app):
    doc = app.test_client().get("/openapi").json
    assert "/analysis/relief" in doc["paths"] and "/analysis/coverage" in doc["paths"]


def shelter_places_free(client) -> tuple[int, str]:
    """Σ(capacity − occupancy) over the open shelters (all when none is open), from the layer."""
    feats = client.get("/collections/shelters/items?limit=1000").json["features"]
    props = [f["properties"] for f in feats]
    is_open = [p.get("is_open") is not False for p in props]  # unknown counts as open
    basis = "open" if any(is_open) else "all"
    rows = [p for p, o in zip(props, is_open, strict=True) if o or basis == "all"]
    free = sum(max((p["capacity_persons"] or 0) - (p["occupancy_persons"] or 0), 0) for p in rows)
    return free, basis


def test_coverage_layers_rings_and_gaps_with_spec_fields(app):
    from geo_mz.core.results import result_catalog

    client = app.test_client()
    r = client.get("/analysis/coverage/layers?lang=en")
    assert r.status_code == 200, r.json
    layers = r.json["layers"]
    assert set(layers) == {"isochrones", "coverage_gaps"}
    specs = result_catalog()
    rings = layers["isochrones"]
    assert rings["type"] == "FeatureCollection"
    assert sorted(f["properties"]["threshold_min"] for f in rings["features"]) == [5, 10, 15]
    ring_colors = {v.code: v.color for v in specs["isochrones"].field("ring").values}
    for f in rings["features"]:
        assert f["style"]["fillColor"].lower() == ring_colors[f["properties"]["ring"]].lower()
        lon, lat = shapely.geometry.shape(f["geometry"]).representative_point().coords[0]
        assert 112 < lon < 114 and 22 < lat < 23  # CRS84
    gaps = layers["coverage_gaps"]
    assert gaps["features"] and gaps["symbology"] == dict(specs["coverage_gaps"].symbology)
    names = set(specs["coverage_gaps"].field_names)
    for f in gaps["features"]:
        assert names <= set(f["properties"]) and f["id"] == f["properties"]["gap_id"]
        assert f["style"] and f["popup"]
    assert gaps["legend"]["swatches"] and rings["legend"]["swatches"]
    assert client.get("/analysis/coverage/layers?lang=en").json == r.json  # cached
    assert client.get("/analysis/coverage/layers?lang=xx").status_code == 400


def test_summary_figures_coverage_share_and_shelter_places_free(app):
    client = app.test_client()
    cov = client.get("/analysis/coverage").json
    kpi = next(k for k in cov["kpis"] if k["label_en"] == "Aged 60+ within 15 min walk")
    assert cov["share_60plus_15min"]["value"] == kpi["value"] and kpi["unit"] == "%"
    live = client.get("/map/summary").json["live"]
    free, basis = shelter_places_free(client)
    assert live["shelter_places_free"] == free and live["shelter_places_basis"] == basis


def test_occupancy_patch_lowers_places_free_by_that_amount(app):
    client = app.test_client()
    r = client.post("/login", json={"username": "commander1", "password": PASSWORD})
    assert r.status_code == 200, r.json
    csrf = {"X-CSRF-Token": r.json["csrf_token"]}
    before = client.get("/map/summary").json["live"]
    feats = client.get("/collections/shelters/items?limit=1000").json["features"]
    counted = [
        f
        for f in feats
        if before["shelter_places_basis"] == "all" or f["properties"].get("is_open") is not False
    ]
    target = next(
        f
        for f in counted
        if (f["properties"]["capacity_persons"] or 0) - (f["properties"]["occupancy_persons"] or 0)
        >= 10
    )
    occ = target["properties"]["occupancy_persons"] or 0
    url = f"/collections/shelters/items/{target['id']}"
    etag = client.get(url).headers["ETag"]  # PATCH needs If-Match (428 without)
    r = client.patch(url, json={"occupancy_persons": occ + 7}, headers=csrf | {"If-Match": etag})
    assert r.status_code == 200, r.json
    after = client.get("/map/summary").json["live"]
    assert after["shelter_places_basis"] == before["shelter_places_basis"]
    assert after["shelter_places_free"] == before["shelter_places_free"] - 7
    assert after["shelter_places_free"] == shelter_places_free(client)[0]


def test_openapi_documents_the_coverage_layers_path(app):
    doc = app.test_client().get("/openapi").json
    op = doc["paths"]["/analysis/coverage/layers"]["get"]
    assert op["operationId"] == "analysisCoverageLayers" and "200" in op["responses"]

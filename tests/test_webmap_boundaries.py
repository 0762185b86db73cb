"""Web map: boundary overlays (lines, QA findings, marker checks) and the place-name search."""

from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("flask")

from geo_mz.core.results import result_catalog
from geo_mz.core.validate import check_layer
from webmap import create_app
from webmap.core.geojson import CRS84
from webmap.core.overlays import OVERLAYS
from webmap.testing import PASSWORD, fresh_settings

OVERLAY_IDS = ("boundary_lines", "boundary_findings", "boundary_marker_report")


@pytest.fixture(scope="module")
def app(base, tmp_path_factory):
    return create_app(fresh_settings(base, tmp_path_factory.mktemp("webmap_boundaries")))


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


def _all_items(client, cid: str) -> list[dict]:
    feats, url = [], f"/collections/{cid}/items?limit=7"
    while url:
        r = client.get(url)
        assert r.status_code == 200, r.json
        feats += r.json["features"]
        nxt = [link["href"] for link in r.json["links"] if link["rel"] == "next"]
        url = nxt[0].split("://", 1)[-1].split("/", 1)[-1] if nxt else None
        url = "/" + url if url else None
    return feats


def _frame(feats: list[dict]):
    import geopandas as gpd

    return gpd.GeoDataFrame.from_features(feats, crs=CRS84)


def test_overlays_are_listed_with_result_titles(client):
    cols = {c["id"]: c for c in client.get("/collections").json["collections"]}
    specs = result_catalog()
    for cid in (*OVERLAY_IDS, "boundary_line_issues"):
        assert cid in cols, cid
        assert cols[cid]["title"] == specs[cid].title_zh
        assert cols[cid]["titles"]["en"] == specs[cid].title_en
        assert cols[cid]["writes"] == [] and cols[cid]["idField"] == specs[cid].id_field
    assert cols["boundary_lines"]["geometryType"] == "LineString"
    assert cols["boundary_marker_report"]["numberOfFeatures"] == 42
    en = {c["id"]: c for c in client.get("/collections?lang=en").json["collections"]}
    assert en["boundary_lines"]["title"] == "Boundary lines"


# Features each overlay has on the sample. The marker rows are the sample's boundary_markers
# (checked below against the GeoPackage itself), the lines include the 5 shared county lines
# (test_boundary_lines_of_the_sample); lines and line issues are otherwise this sample's
# numbers. Its towns and villages tile the district, so QA legitimately finds nothing: that is
# the only overlay allowed to be empty (tests/test_webmap_failures.py checks the tiling
# independently, and that a failed computation is a 500, not an empty layer).
EXPECTED_FEATURES = {
    "boundary_lines": 24,
    "boundary_findings": 0,
    "boundary_marker_report": 42,
    "boundary_line_issues": 4,
}


def test_every_overlay_has_an_expected_count():
    assert set(EXPECTED_FEATURES) == set(OVERLAYS)


@pytest.mark.parametrize("cid", OVERLAYS)
def test_overlay_items_conform_to_their_specs(client, cid):
    r = client.get(f"/collections/{cid}/items?limit=1")
    assert r.status_code == 200, r.json  # computed: a failure would be a 500, never 0 features
    feats = _all_items(client, cid)
    assert len(feats) == EXPECTED_FEATURES[cid] == r.json["numberMatched"]
    spec = result_catalog()[cid]
    assert len({f["id"] for f in feats}) == len(feats)
    assert all(f["id"] == f["properties"][spec.id_field] for f in feats)
    if EXPECTED_FEATURES[cid] == 0:
        return
    g = _frame(feats)
    _, problems = check_layer(g, spec, file=cid, area=None)
    assert [p for p in problems if p.severity == "error"] == []
    minx, miny, maxx, maxy = g.total_bounds
    assert 112 < minx < maxx < 114 and 22 < miny < maxy < 23.5


def test_marker_report_counts_the_workspace_markers(client, base):
    """The 42 marker rows are the sample's boundary markers, read straight from the GeoPackage."""
    import pyogrio

    markers = pyogrio.read_dataframe(base / "pengjiang.gpkg", layer="boundary_markers")
    assert len(markers) == EXPECTED_FEATURES["boundary_marker_report"]
    ids = {f["id"] for f in _all_items(client, "boundary_marker_report")}
    assert ids == set(markers["marker_id"].astype(str))


def test_boundary_lines_of_the_sample(client):
    feats = _all_items(client, "boundary_lines")
    county = [f for f in feats if len(f["properties"]["unit_a"] or "") == 6]
    shared = {f["properties"]["line_id"] for f in county if f["properties"]["kind"] == "shared"}
    assert len(shared) == 5 and "440703-440784" in shared
    r = client.get("/collections/boundary_lines/items/440703-440784%231")
    assert r.status_code == 200 and r.headers["ETag"]
    p = r.json["properties"]
    assert p["line_name"] == "蓬江区—鹤山市" and p["kind"] == "shared"
    assert r.json["geometry"]["type"] == "LineString"
    # town level too: the sample's 6 towns share lines inside 蓬江区
    towns = [f for f in feats if len(f["properties"]["unit_a"] or "") == 9]
    assert any(f["properties"]["kind"] == "shared" for f in towns)
    assert {f["properties"]["kind"] for f in feats} == {"shared", "outer"}


def test_marker_report_bbox_and_paging(client):
    r = client.get("/collections/boundary_marker_report/items?limit=10")
    assert r.json["numberMatched"] == 42 and r.json["numberReturned"] == 10
    assert "next" in {link["rel"] for link in r.json["links"]}
    assert len(_all_items(client, "boundary_marker_report")) == 42
    f = r.json["features"][0]
    x, y = f["geometry"]["coordinates"][:2]
    box = f"{x - 0.001},{y - 0.001},{x + 0.001},{y + 0.001}"
    near = client.get(f"/collections/boundary_marker_report/items?bbox={box}").json
    assert 1 <= near["numberMatched"] < 42
    assert f["id"] in {g["id"] for g in near["features"]}
    assert client.get("/collections/boundary_marker_report/items?limit=0").status_code == 400


def test_writes_to_overlays_are_refused(client):
    auth = {
        "Authorization": "Basic "
        + __import__("base64").b64encode(f"admin1:{PASSWORD}".encode()).decode()
    }
    body = json.dumps({"type": "Feature", "properties": {}, "geometry": None})
    for cid in OVERLAYS:
        r = client.post(
            f"/collections/{cid}/items", data=body, headers=auth, content_type="application/json"
        )
        assert r.status_code == 405 and r.headers["Allow"] == "GET", cid
        fid = "x"
        for method in ("patch", "delete", "put"):
            r = getattr(client, method)(
                f"/collections/{cid}/items/{fid}",
                data=body,
                headers=auth,
                content_type="application/json",
            )
            assert r.status_code == 405, (cid, method)


def test_overlays_follow_workspace_changes(base, tmp_path):
    store = create_app(fresh_settings(base, tmp_path / "ws")).extensions["webmap"].store
    before = store.token("boundary_lines")
    assert store.token("boundary_lines") == before  # cached
    units = store.inner.frame("admin_units")
    prov = {"admin_units": {"synthetic": True, "source": "test", "method": "towns dropped"}}
    store.inner.ws.write_layers({"admin_units": units[units["level"] != "town"]}, prov)
    lines = store.frame("boundary_lines")
    assert store.token("boundary_lines") != before
    assert not lines["unit_a"].astype(str).str.len().eq(9).any()
    assert len(store.frame("boundary_marker_report")) == 42


def test_map_config_and_layers_list_overlays(client):
    layers = {x["id"]: x for x in client.get("/map/config").json["layers"]}
    for cid in OVERLAY_IDS:
        assert cid in layers and layers[cid]["writes"] == []
    assert layers["boundary_lines"]["visible"]
    assert not layers["boundary_findings"]["visible"]
    assert not layers["boundary_marker_report"]["visible"]
    spec = result_catalog()["boundary_lines"]
    r = client.get("/map/layers/boundary_lines")
    assert r.status_code == 200 and r.json["legend"]["title"] == spec.title_zh
    kinds = {v.code: v.color for v in spec.field("kind").values}
    colours = {f["properties"]["s"]["color"] for f in r.json["features"]}
    assert colours <= set(kinds.values()) and kinds["shared"] in colours
    m = client.get("/map/layers/boundary_marker_report?lang=en").json
    assert m["total"] == 42 and m["legend"]["title"] == "Boundary marker check"


def test_openapi_has_overlays_and_name_search(client):
    doc = json.loads(client.get("/openapi").data)
    assert "get" in doc["paths"]["/collections/boundary_lines/items"]
    assert "post" not in doc["paths"]["/collections/boundary_lines/items"]
    op = doc["paths"]["/names/search"]["get"]
    assert {p["name"] for p in op["parameters"]} >= {"q", "code_prefix", "limit"}
    assert "503" in op["responses"]


def test_page_has_the_name_search_box(client):
    html = client.get("/", headers={"Accept": "text/html"}).get_data(as_text=True)  # a browser
    assert 'id="name-q"' in html and "地名检索 / search place names" in html
    assert "/static/names.js" in html
    with client.get("/static/names.js") as js:
        assert js.status_code == 200 and b"names/search" in js.data


def _search(client, query: str, timeout: float = 240.0):
    """GET /names/search, waiting while the index is being built (503)."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(query)
        if r.status_code != 503 or time.monotonic() > deadline:
            return r
        assert r.json["code"] == "index_building" and r.headers["Retry-After"]
        time.sleep(0.5)


def test_name_search_bad_params(client):
    for q in (
        "/names/search",
        "/names/search?q=",
        "/names/search?q=%20%20",
        "/names/search?q=zhoujun&limit=0",
        "/names/search?q=zhoujun&limit=51",
        "/names/search?q=zhoujun&limit=x",
        "/names/search?q=zhoujun&code_prefix=44a",
        "/names/search?q=zhoujun&level=hamlet",
        "/names/search?q=zhoujun&nope=1",
        "/names/search?q=" + "长" * 65,
    ):
        r = client.get(q)
        assert r.status_code == 400 and r.mimetype == "application/json", q


def test_name_search_finds_a_village_of_the_sample(client):
    r = _search(client, "/names/search?q=zhoujun&code_prefix=440703")
    assert r.status_code == 200, r.json
    hits = r.json["results"]
    top = hits[0]
    assert top["name"] == "周郡村委会" and top["code"] == "440703101213"
    assert top["full_name"] == "广东省 江门市 蓬江区 棠下镇 周郡村委会"
    assert top["level"] == "village" and top["match"] and top["score"] > 0
    minx, miny, maxx, maxy = top["bbox"]
    lon, lat = top["center"]
    assert 112 < minx <= lon <= maxx < 114 and 22 < miny <= lat <= maxy < 23.5
    r = _search(client, "/names/search?q=%E5%91%A8%E5%90%9B%E6%9D%91&limit=5")  # 周君村
    assert r.status_code == 200
    assert "440703101213" in [h["code"] for h in r.json["results"]]
    assert len(r.json["results"]) <= 5
    # a unit outside the workspace has no extent
    far = _search(client, "/names/search?q=%E5%91%A8%E6%9D%91%E5%8C%BA&limit=3").json  # 周村区
    outside = [h for h in far["results"] if not h["code"].startswith("4407")]
    assert outside and all(h["bbox"] is None and h["center"] is None for h in outside)
    assert client.get("/collections/admin_units/items/440703101213").status_code == 200

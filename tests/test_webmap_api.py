"""Web map, read side: OGC API - Features endpoints, paging, filters, errors, OpenAPI, page data."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("flask")

from webmap import create_app
from webmap.testing import fresh_settings, sample_base


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory):
    return sample_base(tmp_path_factory.getbasetemp() / "webmap_base")


@pytest.fixture(scope="module")
def client(base, tmp_path_factory):
    settings = fresh_settings(base, tmp_path_factory.mktemp("webmap_read"))
    return create_app(settings).test_client()


def test_landing_page_json_and_map_html(client):
    r = client.get("/?f=json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    rels = {link["rel"] for link in r.json["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= rels
    assert "江门市蓬江区" in r.json["title"]
    r = client.get("/", headers={"Accept": "application/json"})
    assert r.mimetype == "application/json"
    page = client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "/vendor/leaflet/leaflet.js" in html and "/static/map.js" in html
    assert "cdn" not in html.lower() and "unpkg" not in html
    assert "English" in html and 'lang="zh-CN"' in html
    assert 'lang="en"' in client.get("/?lang=en&f=html").get_data(as_text=True)


def test_static_files_are_served_offline(client):
    for url in (
        "/vendor/leaflet/leaflet.js",
        "/vendor/leaflet/leaflet.css",
        "/vendor/leaflet/images/marker-icon.png",
    ):
        with client.get(url) as r:
            assert r.status_code == 200, url
    with client.get("/static/map.js") as js:
        assert js.status_code == 200 and b"EventSource" in js.data
    with client.get("/static/nope.js") as r:
        assert r.status_code == 404


def test_conformance(client):
    r = client.get("/conformance")
    assert r.status_code == 200
    classes = r.json["conformsTo"]
    for part in ("core", "geojson", "oas30"):
        assert f"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/{part}" in classes


def test_collections_list_every_layer_with_titles_extent_crs(client):
    r = client.get("/collections")
    assert r.status_code == 200
    cols = {c["id"]: c for c in r.json["collections"]}
    for name in ("admin_units", "roads", "shelters", "incidents", "population", "road_closures"):
        assert name in cols
    sh = cols["shelters"]
    assert sh["title"] == "应急避难场所" and sh["titles"]["en"] == "Emergency shelters"
    assert sh["crs"][0] == "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    assert sh["storageCrs"] == "http://www.opengis.net/def/crs/EPSG/0/4490"
    assert sh["storageCrs"] in sh["crs"]  # Part 2: the storage CRS is one the client may ask
    minx, miny, maxx, maxy = sh["extent"]["spatial"]["bbox"][0]
    assert 112 < minx < maxx < 114 and 22 < miny < maxy < 23
    assert sh["writes"] == ["PATCH"] and cols["road_closures"]["writes"] == ["POST", "DELETE"]
    assert cols["road_closures"]["title"] == "道路中断与受阻路段"
    en = client.get("/collections?lang=en").json["collections"]
    assert {c["id"]: c["title"] for c in en}["shelters"] == "Emergency shelters"


def test_one_collection_and_unknown(client):
    r = client.get("/collections/roads")
    assert r.status_code == 200 and r.json["id"] == "roads"
    assert {link["rel"] for link in r.json["links"]} >= {"self", "items"}
    r = client.get("/collections/nope")
    assert r.status_code == 404 and r.json["code"] == "no_collection"
    assert "shelters" in r.json["description"]


def test_items_default_page_and_geojson(client):
    r = client.get("/collections/roads/items")
    assert r.status_code == 200 and r.mimetype == "application/geo+json"
    fc = r.json
    assert fc["type"] == "FeatureCollection"
    assert fc["numberReturned"] == 100 == len(fc["features"])
    assert fc["numberMatched"] > 1000
    f = fc["features"][0]
    assert f["id"] == f["properties"]["road_id"]
    assert f["geometry"]["type"] == "LineString"
    lon, lat = f["geometry"]["coordinates"][0]
    assert 112 < lon < 114 and 22 < lat < 23  # CRS84: lon first
    rels = {link["rel"] for link in fc["links"]}
    assert "next" in rels and "prev" not in rels


def test_items_paging_walks_every_feature_once(client):
    total = client.get("/collections/shelters/items?limit=1").json["numberMatched"]
    seen, url = [], "/collections/shelters/items?limit=25"
    while url:
        page = client.get(url).json
        seen += [f["id"] for f in page["features"]]
        nxt = [link["href"] for link in page["links"] if link["rel"] == "next"]
        url = nxt[0].replace("http://localhost", "") if nxt else None
    assert len(seen) == len(set(seen)) == total == 61
    last = client.get("/collections/shelters/items?limit=25&offset=50").json
    assert last["numberReturned"] == 11
    prev = [link["href"] for link in last["links"] if link["rel"] == "prev"]
    assert prev and "offset=25" in prev[0]
    beyond = client.get("/collections/shelters/items?offset=1000").json
    assert beyond["numberReturned"] == 0 and beyond["numberMatched"] == 61


def test_items_limit_maximum_and_errors(client):
    assert client.get("/collections/population/items?limit=10000").json["numberReturned"] == 10000
    for bad in ("0", "10001", "-5", "ten", "1.5"):
        r = client.get(f"/collections/roads/items?limit={bad}")
        assert r.status_code == 400, bad
        assert r.json["errors"][0]["field"] == "limit"
    r = client.get("/collections/roads/items?offset=-1")
    assert r.status_code == 400 and r.json["errors"][0]["field"] == "offset"


def test_items_bbox_filters_and_errors(client):
    everything = client.get("/collections/shelters/items?limit=1000").json
    box = (113.0, 22.55, 113.1, 22.65)
    r = client.get("/collections/shelters/items?limit=1000&bbox=" + ",".join(map(str, box)))
    assert r.status_code == 200
    inside = [
        f["id"]
        for f in everything["features"]
        if box[0] <= f["geometry"]["coordinates"][0] <= box[2]
        and box[1] <= f["geometry"]["coordinates"][1] <= box[3]
    ]
    assert sorted(f["id"] for f in r.json["features"]) == sorted(inside)
    assert 0 < r.json["numberMatched"] < everything["numberMatched"]
    assert "bbox=" in r.json["links"][0]["href"]
    for bad in ("1,2,3", "a,b,c,d", "113.1,22,113.0,23", "0,0,0,95", "nan,1,2,3"):
        r = client.get(f"/collections/shelters/items?bbox={bad}")
        assert r.status_code == 400, bad
        assert r.json["errors"][0]["field"] == "bbox"


def test_items_unknown_parameter_and_format(client):
    r = client.get("/collections/roads/items?colour=red")
    assert r.status_code == 400 and r.json["errors"][0]["field"] == "colour"
    assert client.get("/collections/roads/items?f=html").status_code == 400
    assert client.get("/collections/roads/items?f=json&limit=1").status_code == 200
    assert client.get("/collections/roads/items?lang=fr").status_code == 400


def test_items_datetime_errors(client):
    assert (
        client.get("/collections/incidents/items?datetime=2024-01-01T00:00:00Z").status_code == 200
    )
    assert client.get("/collections/incidents/items?datetime=../2030-01-01").status_code == 200
    r = client.get("/collections/incidents/items?datetime=yesterday")
    assert r.status_code == 400 and r.json["errors"][0]["field"] == "datetime"
    r = client.get("/collections/incidents/items?datetime=2025-01-02/2025-01-01")
    assert r.status_code == 400


def test_single_item_by_id_field_with_etag(client):
    r = client.get("/collections/shelters/items/SH001")
    assert r.status_code == 200 and r.mimetype == "application/geo+json"
    assert r.json["id"] == "SH001" and r.json["properties"]["shelter_id"] == "SH001"
    assert r.headers["ETag"].startswith('"1-')
    assert client.get("/collections/shelters/items/SH001").headers["ETag"] == r.headers["ETag"]
    r = client.get("/collections/shelters/items/NOPE")
    assert r.status_code == 404 and r.json["code"] == "no_feature"
    assert client.get("/collections/nope/items/1").status_code == 404


def test_unknown_route_is_json_404(client):
    r = client.get("/no/such/page")
    assert r.status_code == 404 and r.mimetype == "application/json"
    assert r.json["code"] == "not_found"


def test_openapi_document_is_valid_json_with_paths(client):
    r = client.get("/openapi")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/vnd.oai.openapi+json")
    doc = json.loads(r.data)
    assert doc["openapi"].startswith("3.0")
    paths = doc["paths"]
    for p in ("/", "/conformance", "/collections", "/events", "/login", "/audit"):
        assert p in paths
    assert "get" in paths["/collections/roads/items"]
    assert "post" in paths["/collections/incidents/items"]
    assert "post" in paths["/collections/road_closures/items"]
    assert "delete" in paths["/collections/road_closures/items/{featureId}"]
    assert "patch" in paths["/collections/shelters/items/{featureId}"]
    assert "post" not in paths["/collections/roads/items"]
    kind = doc["components"]["schemas"]["incidentsProperties"]["properties"]["kind"]
    assert "flood" in kind["enum"]
    # every $ref resolves
    text = json.dumps(doc)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        node = doc
        for key in ref.lstrip("#/").split("/"):
            node = node[key]


def test_map_config_layers_and_form_choices(client):
    r = client.get("/map/config")
    assert r.status_code == 200
    layers = {x["id"]: x for x in r.json["layers"]}
    assert layers["shelters"]["title"] == {"zh": "应急避难场所", "en": "Emergency shelters"}
    assert layers["population"]["big"] and not layers["population"]["visible"]
    assert layers["shelters"]["visible"]
    zs = [x["z"] for x in r.json["layers"]]
    assert zs == sorted(zs)
    kinds = {v["code"]: v for v in r.json["incident_choices"]["kind"]}
    assert kinds["flood"]["zh"] == "积水/洪水"
    assert r.json["tiles"] is None and len(r.json["bounds"]) == 4


def test_map_layer_styles_from_catalog_symbology(client):
    from geo_mz.core.catalog import get_spec

    r = client.get("/map/layers/shelters?lang=zh")
    assert r.status_code == 200
    fc = r.json
    assert fc["total"] == fc["shown"] == 61
    spec = get_spec("shelters")
    f = fc["features"][0]
    code = next(
        v.code
        for v in spec.field("shelter_class").values
        if v.zh == f["properties"]["p"]["shelter_class"]
    )
    assert f["properties"]["s"]["color"] == spec.color_of(code)
    assert f["properties"]["s"]["radius"] >= spec.symbology["radius"]
    assert ["name", "名称"] in fc["fields"]
    assert fc["legend"]["title"] == "应急避难场所" and fc["legend"]["swatches"]
    en = client.get("/map/layers/shelters?lang=en").json
    assert en["legend"]["title"] == "Emergency shelters"


def test_map_layer_big_layer_cut_to_view(client):
    r = client.get("/map/layers/population?bbox=113.05,22.55,113.1,22.6")
    assert r.status_code == 200
    assert 0 < r.json["matched"] < r.json["total"]
    assert r.json["shown"] == min(r.json["matched"], 10_000)
    assert client.get("/map/layers/nope").status_code == 404


def test_map_summary_headline_figures(client):
    r = client.get("/map/summary?lang=en")
    assert r.status_code == 200
    labels = {k["label"] for k in r.json["kpis"]}
    assert "Shelter capacity" in labels
    live = r.json["live"]
    assert live["closures"] == 0 and live["incidents_total"] == 0
    assert live["shelters_total"] == 61
    assert r.json["incidents"] == []


def test_session_anonymous(client):
    r = client.get("/session")
    assert r.json == {"user": None, "role": None, "csrf_token": None}

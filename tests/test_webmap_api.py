"""Web map, read side: OGC API - Features endpoints, paging, filters, errors, OpenAPI, page data."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("flask")

from webmap import create_app
from webmap.testing import basic_auth, fresh_settings


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
    assert sh["writes"] == ["PATCH"] and cols["road_closures"]["writes"] == [
        "POST",
        "PATCH",
        "DELETE",
    ]
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


# -- OGC API - Features Part 2/3, content negotiation, CORS, hostile bodies (issue 15) ---------

EPSG4490 = "http://www.opengis.net/def/crs/EPSG/0/4490"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


@pytest.fixture(scope="module")
def with_incidents(base, tmp_path_factory):
    """A client whose incidents layer has three reports at known times."""
    app = create_app(fresh_settings(base, tmp_path_factory.mktemp("webmap_incidents")))
    c = app.test_client()
    for lon, lat, when in [
        (113.05, 22.60, "2024-07-01T08:00:00Z"),
        (113.08, 22.65, "2024-07-02T09:30:00+08:00"),  # 01:30 UTC
        (113.02, 22.62, "2024-07-03T10:00:00Z"),
    ]:
        r = c.post(
            "/collections/incidents/items",
            json={
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
                "properties": {"kind": "flood", "reported_at": when},
            },
            headers=basic_auth("reporter1"),
        )
        assert r.status_code == 201, r.json
    yield c
    app.extensions["webmap"].close()


def test_datetime_filter_on_a_layer_with_features(with_incidents):
    """Was a 500 (read-only array under pandas copy-on-write) once the layer had features."""
    c = with_incidents

    def matched(q: str) -> int:
        r = c.get(f"/collections/incidents/items?datetime={q}")
        assert r.status_code == 200, r.json
        return r.json["numberMatched"]

    assert matched("2024-07-01T00:00:00Z/..") == 3
    assert matched("../2024-07-02T00:00:00Z") == 1
    assert matched("2024-07-02T00:00:00Z/2024-07-02T23:59:59Z") == 1  # 01:30 UTC
    assert matched("2024-07-01T08:00:00Z") == 1  # an instant
    assert matched("2024-07-03T10:00:01Z/..") == 0
    interval = c.get("/collections/incidents").json["extent"]["temporal"]["interval"]
    assert interval == [["2024-07-01T08:00:00Z", "2024-07-03T10:00:00Z"]]


def test_conformance_declares_crs_and_queryables(client):
    classes = client.get("/conformance").json["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in classes
    for c in ("queryables", "queryables-query-parameters"):
        assert f"http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/{c}" in classes


def test_crs_parameter_answers_with_content_crs_and_lat_lon_order(client):
    plain = client.get("/collections/shelters/items?limit=3")
    assert plain.headers["Content-Crs"] == f"<{CRS84}>"
    for value in (EPSG4490, "EPSG:4490", "https://www.opengis.net/def/crs/EPSG/0/4490"):
        r = client.get("/collections/shelters/items", query_string={"limit": 3, "crs": value})
        assert r.status_code == 200 and r.headers["Content-Crs"] == f"<{EPSG4490}>"
        for a, b in zip(plain.json["features"], r.json["features"], strict=True):
            assert b["geometry"]["coordinates"] == a["geometry"]["coordinates"][::-1]
    fid = plain.json["features"][0]["id"]
    one = client.get(f"/collections/shelters/items/{fid}", query_string={"crs": EPSG4490})
    assert one.headers["Content-Crs"] == f"<{EPSG4490}>" and "ETag" in one.headers
    assert (
        one.json["geometry"]["coordinates"]
        == plain.json["features"][0]["geometry"]["coordinates"][::-1]
    )
    # CRS84 explicitly, and the Gauss-Kruger metres of the workspace (northing first)
    r = client.get("/collections/shelters/items", query_string={"limit": 1, "crs": CRS84})
    assert r.json["features"][0]["geometry"] == plain.json["features"][0]["geometry"]
    gk = "http://www.opengis.net/def/crs/EPSG/0/4547"
    r = client.get("/collections/shelters/items", query_string={"limit": 1, "crs": gk})
    north, east = r.json["features"][0]["geometry"]["coordinates"]
    assert 2_400_000 < north < 2_600_000 and 300_000 < east < 500_000
    for bad in ("EPSG:2385", "http://www.opengis.net/def/crs/EPSG/0/99999", "wgs84"):
        r = client.get("/collections/shelters/items", query_string={"crs": bad})
        assert r.status_code == 400 and r.json["errors"][0]["field"] == "crs", bad
        assert "/" in r.json["description"]  # 中文 / English


def test_bbox_crs_and_3d_bbox_select_the_same_features(client):
    def ids(**q) -> list[str]:
        r = client.get("/collections/roads/items", query_string={"limit": 10000, **q})
        assert r.status_code == 200, r.json
        return sorted(f["id"] for f in r.json["features"])

    lon0, lat0, lon1, lat1 = 113.0, 22.55, 113.1, 22.65
    two_d = ids(bbox=f"{lon0},{lat0},{lon1},{lat1}")
    assert two_d and two_d == ids(bbox=f"{lon0},{lat0},-50,{lon1},{lat1},5000")
    assert two_d == ids(bbox=f"{lat0},{lon0},{lat1},{lon1}", **{"bbox-crs": EPSG4490})
    assert two_d == ids(bbox=f"{lon0},{lat0},{lon1},{lat1}", **{"bbox-crs": CRS84})
    for bad in ("1,2,3,4,5", "113,22,10,113.1,22.1,0"):  # 5 numbers; min height > max
        r = client.get(f"/collections/roads/items?bbox={bad}")
        assert r.status_code == 400 and r.json["errors"][0]["field"] == "bbox", bad
    r = client.get(f"/collections/roads/items?bbox=1,2,3,4&bbox-crs={EPSG4490}x")
    assert r.status_code == 400 and r.json["errors"][0]["field"] == "bbox-crs"


def test_storage_crs_is_in_every_crs_list(client):
    for col in client.get("/collections").json["collections"]:
        assert col["storageCrs"] in col["crs"] and col["crs"][0] == CRS84
        rels = {link["rel"] for link in col["links"]}
        assert {"items", "describedby", "http://www.opengis.net/def/rel/ogc/1.0/queryables"} <= rels


def test_queryables_schema_and_queryable_parameters(client):
    r = client.get("/collections/shelters/queryables")
    assert r.status_code == 200 and r.mimetype == "application/schema+json"
    props = r.json["properties"]
    assert props["shelter_class"]["type"] == "string" and "effective_area_m2" not in props
    r = client.get("/collections/shelters/schema")
    assert r.json["properties"]["shelter_id"]["x-ogc-role"] == "id"
    assert r.json["properties"]["geometry"]["x-ogc-role"] == "primary-geometry"
    feature = client.get("/collections/shelters/schema?profile=geojson").json
    assert "shelter_class" in feature["properties"]["properties"]["properties"]
    assert client.get("/collections/nope/queryables").status_code == 404
    assert client.get("/collections/shelters/schema?profile=xsd").status_code == 400
    # equality filters, cross-checked against the full page
    everything = client.get("/collections/shelters/items?limit=1000").json["features"]
    want = sum(1 for f in everything if f["properties"]["shelter_class"] == "I")
    r = client.get("/collections/shelters/items?shelter_class=I&limit=1000")
    assert r.json["numberMatched"] == want > 0
    assert "shelter_class=I" in r.json["links"][0]["href"]
    want = sum(1 for f in everything if f["properties"]["is_open"] is False)
    assert client.get("/collections/shelters/items?is_open=false").json["numberMatched"] == want
    r = client.get("/collections/shelters/items?capacity_persons=lots")
    assert r.status_code == 400 and r.json["errors"][0]["field"] == "capacity_persons"
    assert client.get("/collections/shelters/items?is_open=maybe").status_code == 400
    # a float field is not a queryable: still an unknown parameter
    assert client.get("/collections/shelters/items?effective_area_m2=1").status_code == 400


@pytest.mark.parametrize(
    ("accept", "f", "html"),
    [
        ("*/*", None, False),  # OWSLib, curl
        (None, None, False),  # no Accept at all
        ("application/json", None, False),  # GDAL
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", None, True),
        ("text/html", None, True),
        ("application/json;q=0.5, text/html", None, True),
        ("text/html;q=0.5, application/json", None, False),
        ("*/*", "html", True),
        ("text/html", "json", False),
    ],
)
def test_landing_page_negotiation(client, accept, f, html):
    headers = {} if accept is None else {"Accept": accept}
    r = client.get("/", headers=headers, query_string={} if f is None else {"f": f})
    assert r.status_code == 200
    assert r.mimetype == ("text/html" if html else "application/json")


def test_cors_on_reads_only_and_configurable(base, tmp_path_factory):
    app = create_app(fresh_settings(base, tmp_path_factory.mktemp("webmap_cors")))
    c = app.test_client()
    origin = {"Origin": "https://gis.example.org"}
    r = c.get("/collections/shelters/items?limit=1", headers=origin)
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "Content-Crs" in r.headers["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Credentials" not in r.headers
    assert "Access-Control-Allow-Origin" not in c.get("/collections").headers  # no Origin
    w = c.post(
        "/collections/incidents/items", json={}, headers={**origin, **basic_auth("reporter1")}
    )
    assert w.status_code == 400 and "Access-Control-Allow-Origin" not in w.headers
    app.extensions["webmap"].close()
    only = ("https://gis.example.org",)
    app = create_app(
        fresh_settings(base, tmp_path_factory.mktemp("webmap_cors2"), cors_origins=only)
    )
    c = app.test_client()
    r = c.get("/collections", headers=origin)
    assert r.headers["Access-Control-Allow-Origin"] == "https://gis.example.org"
    assert "Origin" in r.headers["Vary"]
    r = c.get("/collections", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers
    app.extensions["webmap"].close()
    app = create_app(fresh_settings(base, tmp_path_factory.mktemp("webmap_cors3"), cors_origins=()))
    r = app.test_client().get("/collections", headers=origin)
    assert "Access-Control-Allow-Origin" not in r.headers
    app.extensions["webmap"].close()


DEEP = b"[" * 100_000 + b"]" * 100_000


def test_deeply_nested_json_is_refused_before_decoding(client):
    """A 100k-deep body was a RecursionError (500), also on anonymous POST /login."""
    r = client.post("/login", data=DEEP, content_type="application/json")
    assert r.status_code == 400 and r.json["code"] == "json_too_deep"
    assert "嵌套" in r.json["description"] and "nested" in r.json["description"]
    r = client.post(
        "/collections/incidents/items",
        data=b'{"type": "Feature", "properties": ' + DEEP + b"}",
        content_type="application/geo+json",
        headers=basic_auth("reporter1"),
    )
    assert r.status_code == 400 and r.json["code"] == "json_too_deep"
    # the same depth inside a string is only text
    body = json.dumps({"username": "[" * 100_000, "password": "x"})
    r = client.post("/login", data=body, content_type="application/json")
    assert r.status_code == 401 and r.json["code"] == "bad_credentials"


@pytest.mark.parametrize(
    "body",
    [b'{"username": NaN, "password": "x"}', b'{"username": 1' + b"1" * 5000 + b"}", b"\xff\xfe"],
)
def test_unreadable_json_is_a_400(client, body):
    r = client.post("/login", data=body, content_type="application/json")
    assert r.status_code == 400 and r.json["code"] == "invalid_json", body[:40]


def test_oversized_login_body_is_a_413(base, tmp_path_factory):
    app = create_app(
        fresh_settings(base, tmp_path_factory.mktemp("webmap_big"), max_body_bytes=1000)
    )
    r = app.test_client().post(
        "/login",
        data=json.dumps({"username": "a" * 2000, "password": "x"}),
        content_type="application/json",
    )
    assert r.status_code == 413 and r.is_json
    app.extensions["webmap"].close()


def _refuse_constant(name):
    raise AssertionError(f"{name} is not JSON")


def test_items_body_is_strict_json_equal_to_the_per_row_encoder(client):
    """The columnar page (sent as text) parses strictly and equals ``features_of`` row by row."""
    from webmap.core.geojson import features_of

    api = client.application.extensions["webmap"]
    for cid, query in (
        ("admin_units", {"limit": 40, "crs": EPSG4490}),  # multipolygons, booleans, lat/lon
        ("shelters", {"limit": 1000}),  # nullable ints, floats, text
        ("population", {"limit": 1000, "offset": 5000}),
    ):
        r = client.get(f"/collections/{cid}/items", query_string=query)
        assert r.status_code == 200 and r.mimetype == "application/geo+json"

        body = json.loads(r.get_data(as_text=True), parse_constant=_refuse_constant)
        g = api.store.frame(cid)
        start = query.get("offset", 0)
        page = g.iloc[start : start + query["limit"]]
        spec = api.store.spec(cid)
        expect = features_of(page, spec.id_field, crs=query.get("crs", CRS84))
        assert body["features"] == expect and body["numberReturned"] == len(expect)


def test_refusals_speak_chinese_first(client):
    r = client.get("/collections/shelters/items?colour=red")
    assert r.status_code == 400 and r.json["description"].startswith("未知的查询参数")
    assert "unknown query parameter" in r.json["description"]
    r = client.post("/login", json={"username": "nobody", "password": "x"})
    assert r.status_code == 401 and r.json["description"].startswith("用户名或密码错误")
    r = client.post("/login", json=[1, 2])
    assert r.status_code == 400 and r.json["description"].startswith("请求体应为")

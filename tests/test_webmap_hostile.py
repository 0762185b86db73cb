"""Web map under hostile or careless use (issue 15, build 3).

Failed-login throttling per name and address (``POST /login`` and HTTP Basic), ``If-Match``
required on PATCH/DELETE (428), security headers on every response, confirmation of closures
covering a large share of the district, and edits that write only the changed feature.
"""

from __future__ import annotations

import sqlite3
import time

import pytest

pytest.importorskip("flask")

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from shapely.geometry import mapping

from geo_mz.core.temp_copies import temp_files
from geo_mz.core.workspace import Workspace
from webmap import create_app
from webmap.testing import PASSWORD, basic_auth, fresh_settings

CLOSURES = "/collections/road_closures/items"
SHELTER = "/collections/shelters/items/SH001"
WINDOW_S = 2.0
LONLAT = "OGC:CRS84"


def client_at(app, address: str):
    """A test client whose requests come from ``address``."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def login(client, name: str, password: str = PASSWORD):
    return client.post("/login", json={"username": name, "password": password})


def session(app, name: str, address: str = "10.9.9.9"):
    client = client_at(app, address)
    r = login(client, name)
    assert r.status_code == 200, r.json
    return client, {"X-CSRF-Token": r.json["csrf_token"]}


# -- failed-login throttling -----------------------------------------------------------------
@pytest.fixture
def throttled(base, tmp_path):
    return create_app(
        fresh_settings(base, tmp_path / "ws", login_max_failures=3, login_window_s=WINDOW_S)
    )


def test_wrong_logins_lock_the_name_from_that_address_until_the_window_passes(throttled):
    a, b = client_at(throttled, "10.0.0.1"), client_at(throttled, "10.0.0.2")
    codes = [login(a, "commander1", "wrong-password").status_code for _ in range(3)]
    assert codes == [401, 401, 401]
    r = login(a, "commander1", "wrong-password")
    assert r.status_code == 429 and r.json["code"] == "too_many_failed_logins"
    wait = int(r.headers["Retry-After"])
    assert 1 <= wait <= WINDOW_S and r.json["retry_after_s"] == wait
    assert "登录失败次数过多" in r.json["description"] and "try again" in r.json["description"]
    locked_at = time.monotonic()
    # the right password from the locked address is refused too ...
    r = login(a, "commander1")
    assert r.status_code == 429 and "Retry-After" in r.headers
    # ... while another address logs in as the same user
    assert login(b, "commander1").status_code == 200
    time.sleep(max(0.0, WINDOW_S + 0.1 - (time.monotonic() - locked_at)))
    assert login(a, "commander1").status_code == 200


def test_a_successful_login_resets_the_names_count(throttled):
    a = client_at(throttled, "10.0.0.3")
    for _ in range(2):
        assert login(a, "reporter1", "wrong-password").status_code == 401
    assert login(a, "reporter1").status_code == 200
    for _ in range(2):  # 4 failures in the window, but only 2 since the success
        assert login(a, "reporter1", "wrong-password").status_code == 401
    assert login(a, "reporter1").status_code == 200


def test_http_basic_is_throttled_like_the_login_form(throttled):
    c, d = client_at(throttled, "10.0.0.4"), client_at(throttled, "10.0.0.5")
    for _ in range(3):
        assert c.get("/session", headers=basic_auth("admin1", "nope-nope")).status_code == 401
    r = c.get("/collections", headers=basic_auth("admin1"))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert d.get("/session", headers=basic_auth("admin1")).json["user"] == "admin1"


def test_one_address_spraying_many_names_is_locked(base, tmp_path):
    # a long window: twelve password hashes on a busy machine can take longer than WINDOW_S
    app = create_app(fresh_settings(base, tmp_path / "ws", login_max_failures=3))
    a, b = client_at(app, "10.0.0.6"), client_at(app, "10.0.0.7")
    # 4 x 3 failures over names nobody has: the address is locked, whatever name comes next
    for i in range(12):
        assert login(a, f"guess{i // 2}", "wrong-password").status_code == 401
    assert login(a, "viewer1").status_code == 429
    assert login(b, "viewer1").status_code == 200


# -- If-Match is required ----------------------------------------------------------------------
def test_patch_and_delete_without_if_match_are_428(base, tmp_path):
    app = create_app(fresh_settings(base, tmp_path / "ws"))
    api = app.extensions["webmap"]
    client, csrf = session(app, "commander1")
    r = client.patch(SHELTER, json={"occupancy_persons": 5}, headers=csrf)
    assert r.status_code == 428 and r.json["code"] == "if_match_required"
    assert "If-Match" in r.json["description"] and "ETag" in r.json["description"]
    assert "须带" in r.json["description"]  # Chinese first
    line = {"type": "LineString", "coordinates": [[113.08, 22.60], [113.081, 22.601]]}
    body = {"type": "Feature", "geometry": line, "properties": {"reason": "积水"}}
    fid = client.post(CLOSURES, json=body, headers=csrf).json["id"]
    r = client.delete(f"{CLOSURES}/{fid}", headers=csrf)
    assert r.status_code == 428 and r.json["code"] == "if_match_required"
    assert client.get(f"{CLOSURES}/{fid}").status_code == 200  # not lifted
    assert [row["action"] for row in api.store.audit_rows()] == ["create"]
    etag = client.get(f"{CLOSURES}/{fid}").headers["ETag"]
    assert client.delete(f"{CLOSURES}/{fid}", headers=csrf | {"If-Match": etag}).status_code == 204


# -- security headers ----------------------------------------------------------------------------
def check_headers(r, tiles: str | None = None) -> None:
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    csp = dict(d.strip().split(" ", 1) for d in r.headers["Content-Security-Policy"].split(";"))
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'" and csp["connect-src"] == "'self'"
    assert csp["object-src"] == "'none'" and "unsafe" not in r.headers["Content-Security-Policy"]
    images = csp["img-src"].split()
    assert images[:2] == ["'self'", "data:"] and images[2:] == ([tiles] if tiles else [])


def test_security_headers_on_html_json_static_and_errors(base, tmp_path):
    app = create_app(
        fresh_settings(
            base,
            tmp_path / "ws",
            tiles_url="https://t{s}.tianditu.gov.cn/vec_w/wmts?x={x}&y={y}&l={z}&tk=KEY",
        )
    )
    client = app.test_client()
    html = client.get("/", headers={"Accept": "text/html"})
    assert html.status_code == 200 and html.mimetype == "text/html"
    js = client.get("/static/map.js")
    leaflet = client.get("/vendor/leaflet/leaflet.css")
    api_json = client.get("/collections")
    missing = client.get("/collections/nope")
    refused = client.post("/login", json={"username": "x", "password": "y"})
    for r in (html, js, leaflet, api_json, missing, refused):
        check_headers(r, "https://*.tianditu.gov.cn")
    assert js.status_code == 200 and leaflet.status_code == 200 and api_json.status_code == 200
    js.close(), leaflet.close()  # streamed files
    assert missing.status_code == 404 and refused.status_code == 401
    # without a tile server, images come from the page's own origin only
    plain = create_app(fresh_settings(base, tmp_path / "plain")).test_client()
    check_headers(plain.get("/collections"))


# -- closures covering much of the district ---------------------------------------------------
def geodesic_area(geom) -> float:
    """Ellipsoidal area (m²), independent of the projected CRS the server measures in."""
    return abs(pyproj.Geod(ellps="GRS80").geometry_area_perimeter(geom)[0])


def test_a_closure_over_much_of_the_district_needs_confirmation(base, tmp_path):
    app = create_app(fresh_settings(base, tmp_path / "ws"))
    api = app.extensions["webmap"]
    district = api.store.jurisdiction()
    minx, miny, maxx, maxy = district.bounds
    half = shapely.box(minx - 0.01, miny - 0.01, (minx + maxx) / 2, maxy + 0.01)
    body = {"type": "Feature", "geometry": mapping(half), "properties": {"reason": "台风"}}
    client, csrf = session(app, "commander1")
    r = client.post(CLOSURES, json=body, headers=csrf)
    assert r.status_code == 409 and r.json["code"] == "confirm_required", r.json
    expected = geodesic_area(half.intersection(district)) / geodesic_area(district)
    assert r.json["area_share"] == pytest.approx(expected, rel=0.01)
    assert 0.2 < expected < 0.9
    assert r.json["share"] == max(r.json["area_share"], r.json["road_share"])
    assert r.json["threshold"] == 0.2 and "confirm" in r.json["description"]
    assert api.store.last_event_id() == 0  # nothing stored
    bad = client.post(CLOSURES, json={**body, "confirm": "yes"}, headers=csrf)
    assert bad.status_code == 400 and bad.json["errors"][0]["field"] == "confirm"
    r = client.post(CLOSURES, json={**body, "confirm": True}, headers=csrf)
    assert r.status_code == 201, r.json
    # a small closure needs no confirmation; a generous setting lets the large one through
    small = shapely.box(113.08, 22.6, 113.081, 22.601)
    r = client.post(CLOSURES, json={**body, "geometry": mapping(small)}, headers=csrf)  # ~0.01 km²
    assert r.status_code == 201, r.json
    lenient = create_app(fresh_settings(base, tmp_path / "lenient", closure_confirm_share=1.0))
    c2, csrf2 = session(lenient, "commander1")
    assert c2.post(CLOSURES, json=body, headers=csrf2).status_code == 201


def test_a_line_closure_counts_its_share_of_the_road_length(base, tmp_path):
    settings = fresh_settings(base, tmp_path / "ws")
    probe = create_app(settings).extensions["webmap"].store
    district, measure = probe.jurisdiction(), probe.metadata["measure_crs"]
    roads = Workspace(settings.workspace).read("roads")
    inside = gpd.GeoSeries(shapely.intersection(roads.geometry.to_numpy(), district), crs=LONLAT)
    total = inside.to_crs(measure).length.sum()
    # the longest road inside the district, sent as a closure line
    parts = shapely.get_parts(inside.to_numpy())
    line = parts[gpd.GeoSeries(parts, crs=LONLAT).to_crs(measure).length.to_numpy().argmax()]
    coords = np.asarray(line.coords)[:, :2].tolist()
    expected = gpd.GeoSeries([line], crs=LONLAT).to_crs(measure).length.sum() / total
    app = create_app(settings.replace(closure_confirm_share=expected / 2))
    body = {
        "type": "Feature",
        "geometry": {"type": "LineString", "coordinates": coords},
        "properties": {"reason": "塌方"},
    }
    client, csrf = session(app, "commander1")
    r = client.post(CLOSURES, json=body, headers=csrf)
    assert r.status_code == 409 and r.json["code"] == "confirm_required", r.json
    assert r.json["road_share"] == pytest.approx(expected, rel=0.01)
    assert "area_share" not in r.json
    assert client.post(CLOSURES, json={**body, "confirm": True}, headers=csrf).status_code == 201


# -- an edit writes the one changed feature ------------------------------------------------------
PAGE = 4096


def changed_pages(old: bytes, new: bytes) -> int:
    n = max(len(old), len(new))
    old, new = old.ljust(n, b"\0"), new.ljust(n, b"\0")
    return sum(old[i : i + PAGE] != new[i : i + PAGE] for i in range(0, n, PAGE))


def raw_rows(path, layer: str) -> dict[int, tuple]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return {r[0]: r for r in conn.execute(f'SELECT * FROM "{layer}" ORDER BY fid')}


def test_an_edit_writes_the_one_feature_and_leaves_the_other_rows_bytes(base, tmp_path):
    app = create_app(fresh_settings(base, tmp_path / "ws"))
    path = app.extensions["webmap"].settings.workspace
    client, csrf = session(app, "commander1")
    before_file, before_rows = path.read_bytes(), raw_rows(path, "shelters")
    inode = path.stat().st_ino
    etag = client.get(SHELTER).headers["ETag"]
    r = client.patch(SHELTER, json={"occupancy_persons": 77}, headers=csrf | {"If-Match": etag})
    assert r.status_code == 200, r.json
    after_rows = raw_rows(path, "shelters")
    edited = [k for k in before_rows if before_rows[k] != after_rows[k]]
    assert len(edited) == 1 and after_rows.keys() == before_rows.keys()
    old, new = before_rows[edited[0]], after_rows[edited[0]]
    names = [c[1] for c in sqlite3.connect(path).execute("PRAGMA table_info(shelters)")]
    assert [n for n, a, b in zip(names, old, new, strict=True) if a != b] == ["occupancy_persons"]
    # a few pages changed (the row, the layer record, gpkg_contents), not the layer's hundreds
    assert changed_pages(before_file, path.read_bytes()) <= 8
    assert path.stat().st_ino == inode  # written in place (one SQLite transaction)
    assert temp_files(path) == []
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ws = Workspace(path)
    rec = ws.layer_records().set_index("layer").loc["shelters"]
    assert int(rec["rows"]) == len(before_rows) and "edited in the web map" in rec["method"]
    row = ws.read("shelters").set_index("shelter_id").loc["SH001"]
    assert row["occupancy_persons"] == 77
    # a new incident is inserted with its types and found through the spatial index
    point = {"type": "Point", "coordinates": [113.08, 22.6]}
    body = {"type": "Feature", "geometry": point, "properties": {"kind": "flood"}}
    reporter, rcsrf = session(app, "reporter1")
    r = reporter.post("/collections/incidents/items", json=body, headers=rcsrf)
    assert r.status_code == 201, r.json
    found = Workspace(path).read("incidents", bbox=(113.079, 22.599, 113.081, 22.601))
    assert found["incident_id"].tolist() == [r.json["id"]]
    sent = r.json["properties"]["reported_at"]  # naive UTC, sent with a Z
    assert str(found["reported_at"].iloc[0]) == sent.removesuffix("Z").replace("T", " ")
    assert found["reporter"].iloc[0] == "reporter1"

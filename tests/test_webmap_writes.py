"""Web map, write side: roles, CSRF, validation errors naming fields, If-Match, audit log."""

from __future__ import annotations

import base64
import threading

import pytest

pytest.importorskip("flask")

import shapely

from geo_mz.core.workspace import Workspace
from webmap import create_app
from webmap.testing import PASSWORD, fresh_settings

INCIDENTS = "/collections/incidents/items"
CLOSURES = "/collections/road_closures/items"
ANY = {"If-Match": "*"}  # PATCH and DELETE need If-Match (428 without); `*` matches any version
POINT = {"type": "Point", "coordinates": [113.08, 22.60]}
LINE = {"type": "LineString", "coordinates": [[113.08, 22.60], [113.081, 22.601]]}
SQUARE = {
    "type": "Polygon",
    "coordinates": [
        [[113.08, 22.6], [113.09, 22.6], [113.09, 22.61], [113.08, 22.61], [113.08, 22.6]]
    ],
}


@pytest.fixture
def app(base, tmp_path):
    return create_app(fresh_settings(base, tmp_path / "ws"))


@pytest.fixture
def api(app):
    return app.extensions["webmap"]


@pytest.fixture(scope="module")
def refusing(base, tmp_path_factory):
    """One app shared by tests whose writes are all refused (each checks nothing was written)."""
    app = create_app(fresh_settings(base, tmp_path_factory.mktemp("refusing")))
    return app, {name: login(app, name) for name in ("viewer1", "reporter1", "commander1")}


def login(app, name: str):
    """A test client logged in as ``name``; returns (client, csrf headers)."""
    client = app.test_client()
    r = client.post("/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.json
    return client, {"X-CSRF-Token": r.json["csrf_token"]}


def incident(**props):
    return {"type": "Feature", "geometry": POINT, "properties": {"kind": "flood", **props}}


def closure(geometry=LINE, **props):
    return {"type": "Feature", "geometry": geometry, "properties": {"reason": "积水", **props}}


def nothing_written(api) -> None:
    assert api.store.last_event_id() == 0
    assert api.store.audit_rows() == []
    assert len(api.store.frame("incidents")) == 0
    assert len(Workspace(api.settings.workspace).read("incidents")) == 0


# -- roles ----------------------------------------------------------------------------------
def test_reporter_posts_an_incident(app, api):
    client, csrf = login(app, "reporter1")
    r = client.post(
        INCIDENTS, json=incident(description="水深0.5米", people_affected=4), headers=csrf
    )
    assert r.status_code == 201, r.json
    feat = r.json
    fid = feat["id"]
    assert feat["properties"]["reporter"] == "reporter1"
    assert feat["properties"]["status"] == "reported"
    assert feat["properties"]["reported_at"].endswith("Z")
    assert r.headers["Location"].endswith(f"{INCIDENTS}/{fid}")
    assert r.headers["ETag"].startswith('"2-') and r.headers["X-Event-Id"] == "1"
    got = client.get(f"{INCIDENTS}/{fid}")
    assert got.status_code == 200 and got.headers["ETag"] == r.headers["ETag"]
    stored = Workspace(api.settings.workspace).read("incidents")
    assert stored["incident_id"].tolist() == [fid]
    assert stored.crs.to_epsg() == 4490
    assert client.get("/map/summary").json["incidents"][0]["id"] == fid


def test_anonymous_write_needs_login(refusing):
    app, _ = refusing
    api = app.extensions["webmap"]
    r = app.test_client().post(INCIDENTS, json=incident())
    assert r.status_code == 401 and r.json["code"] == "login_required"
    nothing_written(api)


def test_viewer_cannot_post_incident(refusing):
    app, clients = refusing
    api = app.extensions["webmap"]
    client, csrf = clients["viewer1"]
    r = client.post(INCIDENTS, json=incident(), headers=csrf)
    assert r.status_code == 403 and r.json["code"] == "role_forbidden"
    nothing_written(api)


def test_reporter_cannot_close_roads_or_set_occupancy(refusing):
    app, clients = refusing
    api = app.extensions["webmap"]
    client, csrf = clients["reporter1"]
    r = client.post(CLOSURES, json=closure(), headers=csrf)
    assert r.status_code == 403 and "commander" in r.json["description"]
    r = client.patch(
        "/collections/shelters/items/SH001", json={"occupancy_persons": 5}, headers=csrf
    )
    assert r.status_code == 403
    assert api.store.last_event_id() == 0


def test_commander_may_do_what_a_reporter_may(app):
    client, csrf = login(app, "commander1")
    assert client.post(INCIDENTS, json=incident(), headers=csrf).status_code == 201


def test_writes_not_offered_are_405(app):
    client, csrf = login(app, "admin1")
    r = client.post("/collections/roads/items", json=incident(), headers=csrf)
    assert r.status_code == 405 and r.headers["Allow"] == "GET"
    r = client.delete("/collections/shelters/items/SH001", headers=csrf)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, PATCH"
    r = client.post("/collections/shelters/items", json=incident(), headers=csrf)
    assert r.status_code == 405 and r.headers["Allow"] == "GET"
    r = client.put(f"{CLOSURES}/x", json={}, headers=csrf)  # PATCH edits it (issue 16)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, PATCH, DELETE"
    assert client.put(f"{INCIDENTS}/x", json={}, headers=csrf).status_code == 405
    assert client.post("/collections/nope/items", json={}, headers=csrf).status_code == 404


# -- sessions, CSRF, basic auth -----------------------------------------------------------------
def test_cookie_session_write_needs_csrf_token(app, api):
    client, _ = login(app, "reporter1")
    r = client.post(INCIDENTS, json=incident())
    assert r.status_code == 403 and r.json["code"] == "csrf_missing"
    r = client.post(INCIDENTS, json=incident(), headers={"X-CSRF-Token": "forged"})
    assert r.status_code == 403 and r.json["code"] == "csrf_invalid"
    nothing_written(api)
    assert client.get("/session").json["user"] == "reporter1"


def test_logout_ends_the_session(app):
    client, csrf = login(app, "reporter1")
    assert client.post("/logout").status_code == 403  # logout is a write: token needed
    # logging in again as someone else replaces the session (no token needed to log in)
    r = client.post("/login", json={"username": "viewer1", "password": PASSWORD})
    assert r.status_code == 200 and r.json["csrf_token"] != csrf["X-CSRF-Token"]
    assert client.get("/session").json["role"] == "viewer"
    csrf = {"X-CSRF-Token": r.json["csrf_token"]}
    assert client.post("/logout", headers=csrf).status_code == 200
    assert client.get("/session").json["user"] is None
    assert client.post(INCIDENTS, json=incident(), headers=csrf).status_code == 401


def test_login_errors(app):
    client = app.test_client()
    r = client.post("/login", json={"username": "reporter1", "password": "wrong-password"})
    assert r.status_code == 401 and r.json["code"] == "bad_credentials"
    r = client.post("/login", json={"username": "nobody", "password": "wrong-password"})
    assert r.status_code == 401
    r = client.post("/login", json={"username": "reporter1"})
    assert r.status_code == 400 and r.json["errors"][0]["field"] == "password"
    assert client.post("/login", data="username=x").status_code == 415


def test_disabled_user_loses_the_session(app, api):
    client, csrf = login(app, "reporter1")
    api.users.set_disabled("reporter1")
    assert client.get("/session").json["user"] is None
    assert client.post(INCIDENTS, json=incident(), headers=csrf).status_code == 401


def test_basic_auth_for_scripts_needs_no_csrf(app):
    client = app.test_client()
    token = base64.b64encode(f"reporter1:{PASSWORD}".encode()).decode()
    r = client.post(INCIDENTS, json=incident(), headers={"Authorization": f"Basic {token}"})
    assert r.status_code == 201
    bad = base64.b64encode(b"reporter1:nope").decode()
    r = client.get("/collections", headers={"Authorization": f"Basic {bad}"})
    assert r.status_code == 401 and "WWW-Authenticate" not in r.headers


def test_login_required_setting_hides_data(base, tmp_path):
    app = create_app(fresh_settings(base, tmp_path / "ws", anonymous_read=False))
    anon = app.test_client()
    assert anon.get("/collections").status_code == 401
    assert anon.get("/map/config").status_code == 401
    assert anon.get("/", headers={"Accept": "text/html"}).status_code == 200  # login page
    client, _ = login(app, "viewer1")
    assert client.get("/collections").status_code == 200


# -- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "status", "field", "code"),
    [
        ({"type": "FeatureCollection", "features": []}, 400, "type", "not_a_feature"),
        ([1, 2], 400, "type", "not_a_feature"),
        (incident() | {"geometry": None}, 400, "geometry", "missing_geometry"),
        (
            incident() | {"geometry": {"type": "Point", "coordinates": [113.0]}},
            400,
            "geometry.coordinates",
            "bad_position",
        ),
        (
            incident() | {"geometry": {"type": "Point", "coordinates": ["x", 1]}},
            400,
            "geometry.coordinates",
            "bad_number",
        ),
        (
            incident() | {"geometry": {"type": "Circle", "coordinates": [1, 2]}},
            400,
            "geometry.type",
            "bad_type",
        ),
        (incident() | {"geometry": LINE}, 422, "geometry.type", "wrong_geometry_type"),
        (incident() | {"properties": "flood"}, 400, "properties", "bad_properties"),
        (incident(kind="meteor"), 422, "properties.kind", "not_allowed"),
        (incident(kind=None), 422, "properties.kind", "missing_required"),
        (incident(people_affected=-3), 422, "properties.people_affected", "out_of_range"),
        (incident(people_affected="many"), 422, "properties.people_affected", "wrong_type"),
        (incident(people_affected=[1]), 422, "properties.people_affected", "wrong_type"),
        (incident(status="lost"), 422, "properties.status", "not_allowed"),
        (incident(reporter="someone-else"), 422, "properties.reporter", "not_editable"),
        (incident(colour="red"), 422, "properties.colour", "not_editable"),
        (incident(description="长" * 2001), 422, "properties.description", "too_long"),
        (incident(reported_at="2999-01-01T00:00:00Z"), 422, "properties.reported_at", "in_future"),
        (incident(reported_at="soon"), 422, "properties.reported_at", "wrong_type"),
        (incident(incident_id="bad id!"), 422, "properties.incident_id", "bad_id"),
        (
            incident() | {"geometry": {"type": "Point", "coordinates": [116.4, 39.9]}},
            422,
            "geometry",
            "outside_area",
        ),
        (
            incident() | {"geometry": {"type": "Point", "coordinates": [22.6, 113.08]}},
            422,
            "geometry",
            "outside_area",
        ),
    ],
)
def test_bad_incident_is_refused_naming_the_field(refusing, body, status, field, code):
    app, clients = refusing
    api = app.extensions["webmap"]
    client, csrf = clients["reporter1"]
    r = client.post(INCIDENTS, json=body, headers=csrf)
    assert r.status_code == status, r.json
    assert r.mimetype == "application/json" and r.json["description"]
    assert {"field": field, "code": code} in [
        {"field": e["field"], "code": e["code"]} for e in r.json["errors"]
    ]
    nothing_written(api)


def test_outside_the_jurisdiction_but_inside_the_box(refusing):
    app, clients = refusing
    api = app.extensions["webmap"]
    units = api.store.frame("admin_units")
    own = shapely.union_all(
        units[units["in_jurisdiction"].fillna(False).to_numpy(dtype=bool)].geometry.to_numpy()
    )
    neighbours = units[~units["in_jurisdiction"].fillna(False).to_numpy(dtype=bool)]
    x0, y0, x1, y1 = api.store.metadata["bounds"]
    spot = next(
        p
        for p in (g.representative_point() for g in neighbours.geometry)
        if own.distance(p) > 0.02 and x0 < p.x < x1 and y0 < p.y < y1
    )
    client, csrf = clients["reporter1"]
    body = incident() | {"geometry": {"type": "Point", "coordinates": [spot.x, spot.y]}}
    r = client.post(INCIDENTS, json=body, headers=csrf)
    assert r.status_code == 422 and r.json["errors"][0]["code"] == "outside_jurisdiction"
    nothing_written(api)


def test_body_must_be_json_and_not_too_large(refusing):
    app, clients = refusing
    api = app.extensions["webmap"]
    client, csrf = clients["reporter1"]
    r = client.post(INCIDENTS, data="kind=flood", headers=csrf, content_type="text/plain")
    assert r.status_code == 415
    r = client.post(INCIDENTS, data="{not json", headers=csrf, content_type="application/json")
    assert r.status_code == 400 and r.json["code"] == "invalid_json"
    big = incident(description="x" * 1_100_000)
    r = client.post(INCIDENTS, json=big, headers=csrf)
    assert r.status_code == 413 and r.mimetype == "application/json"
    many = [[113.08 + i * 1e-6, 22.60] for i in range(10_001)]
    client2, csrf2 = clients["commander1"]
    r = client2.post(
        CLOSURES, json=closure({"type": "LineString", "coordinates": many}), headers=csrf2
    )
    assert r.status_code == 413 and r.json["errors"][0]["code"] == "too_many_vertices"
    nothing_written(api)


def test_client_id_is_idempotent(app):
    client, csrf = login(app, "reporter1")
    body = incident(incident_id="PHONE-7-0001")
    assert client.post(INCIDENTS, json=body, headers=csrf).status_code == 201
    r = client.post(INCIDENTS, json=body, headers=csrf)
    assert r.status_code == 409 and r.json["code"] == "id_exists"


# -- road closures ----------------------------------------------------------------------------
def test_commander_marks_and_lifts_closures(app, api, base, tmp_path):
    client, csrf = login(app, "commander1")
    r = client.post(CLOSURES, json=closure(), headers=csrf)
    assert r.status_code == 201, r.json
    line_id = r.json["id"]
    assert r.json["properties"]["created_by"] == "commander1"
    assert r.json["properties"]["effect"] == "closed"
    r = client.post(CLOSURES, json=closure(SQUARE, reason="滑坡"), headers=csrf)
    assert r.status_code == 201 and r.json["geometry"]["type"] == "MultiPolygon"
    items = client.get(CLOSURES).json
    assert items["numberMatched"] == 2
    # persisted: a new app on the same files sees both
    again = create_app(api.settings).test_client()
    assert again.get(CLOSURES).json["numberMatched"] == 2
    etag = client.get(f"{CLOSURES}/{line_id}").headers["ETag"]
    r = client.delete(f"{CLOSURES}/{line_id}", headers=csrf | {"If-Match": '"1-stale"'})
    assert r.status_code == 409 and r.json["code"] == "stale_version" and r.headers["ETag"] == etag
    r = client.delete(f"{CLOSURES}/{line_id}", headers=csrf | {"If-Match": etag})
    assert r.status_code == 204
    assert client.get(f"{CLOSURES}/{line_id}").status_code == 404
    r = client.delete(f"{CLOSURES}/{line_id}", headers=csrf)
    assert r.status_code == 428 and r.json["code"] == "if_match_required"  # before the 404
    assert client.delete(f"{CLOSURES}/{line_id}", headers=csrf | ANY).status_code == 404
    assert client.get("/map/summary").json["live"]["closures"] == 1


def test_closure_and_incident_patches_refuse_what_they_may_not_change(app, api):
    client, csrf = login(app, "commander1")
    line_id = client.post(CLOSURES, json=closure(), headers=csrf).json["id"]
    inc_id = client.post(INCIDENTS, json=incident(), headers=csrf).json["id"]
    events = api.store.last_event_id()
    for url, patch in [
        (f"{CLOSURES}/{line_id}", {"properties": {"reason": "塌方", "created_by": "x"}}),
        (f"{INCIDENTS}/{inc_id}", {"properties": {"description": "d", "reporter": "x"}}),
    ]:
        r = client.patch(url, json=patch, headers=csrf | ANY)
        assert r.status_code == 422, r.json
        assert [e["code"] for e in r.json["errors"]] == ["not_editable"]
        field = next(k for k in patch["properties"] if k in ("created_by", "reporter"))
        assert r.json["errors"][0]["field"] == f"properties.{field}"
        assert "这些字段不能在此修改" in r.json["description"]
    assert api.store.last_event_id() == events  # nothing written


def test_bad_closures(refusing):
    app, clients = refusing
    api = app.extensions["webmap"]
    client, csrf = clients["commander1"]
    bowtie = {
        "type": "Polygon",
        "coordinates": [
            [[113.08, 22.6], [113.09, 22.61], [113.09, 22.6], [113.08, 22.61], [113.08, 22.6]]
        ],
    }
    r = client.post(CLOSURES, json=closure(bowtie), headers=csrf)
    assert r.status_code == 422 and r.json["errors"][0] == {
        **r.json["errors"][0],
        "field": "geometry",
        "code": "invalid_geometry",
    }
    open_ring = {
        "type": "Polygon",
        "coordinates": [[[113.08, 22.6], [113.09, 22.6], [113.09, 22.61], [113.08, 22.61]]],
    }
    assert client.post(CLOSURES, json=closure(open_ring), headers=csrf).status_code == 400
    r = client.post(CLOSURES, json=closure(reason=None), headers=csrf)
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "properties.reason"
    r = client.post(CLOSURES, json=closure(effect="open"), headers=csrf)
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "properties.effect"
    r = client.post(CLOSURES, json=closure(POINT), headers=csrf)
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "geometry.type"
    assert api.store.last_event_id() == 0


# -- shelter occupancy and optimistic concurrency -----------------------------------------------
def test_shelter_occupancy_patch_with_if_match(app, api):
    client, csrf = login(app, "commander1")
    url = "/collections/shelters/items/SH001"
    cur = client.get(url)
    etag, capacity = cur.headers["ETag"], cur.json["properties"]["capacity_persons"]
    r = client.patch(
        url, json={"occupancy_persons": 120, "is_open": True}, headers=csrf | {"If-Match": etag}
    )
    assert r.status_code == 200, r.json
    assert r.json["properties"]["occupancy_persons"] == 120 and r.json["properties"]["is_open"]
    new_etag = r.headers["ETag"]
    assert new_etag != etag and new_etag.startswith('"2-')
    # the same stale version again: refused, not overwritten
    r = client.patch(url, json={"occupancy_persons": 7}, headers=csrf | {"If-Match": etag})
    assert r.status_code == 409 and r.headers["ETag"] == new_etag
    assert client.get(url).json["properties"]["occupancy_persons"] == 120
    assert client.get(url).headers["ETag"] == new_etag  # same version read back from the cache
    r = client.patch(url, json={"occupancy_persons": 121}, headers=csrf | {"If-Match": new_etag})
    assert r.status_code == 200, r.json  # ... and from the stored file
    assert create_app(api.settings).test_client().get(url).headers["ETag"] == r.headers["ETag"]
    # without If-Match: 428, nothing changed; `If-Match: *` overwrites on purpose
    r = client.patch(url, json={"properties": {"occupancy_persons": capacity}}, headers=csrf)
    assert r.status_code == 428 and r.json["code"] == "if_match_required"
    assert "If-Match" in r.json["description"]
    assert client.get(url).json["properties"]["occupancy_persons"] == 121
    r = client.patch(url, json={"properties": {"occupancy_persons": capacity}}, headers=csrf | ANY)
    assert r.status_code == 200
    stored = Workspace(api.settings.workspace)
    row = stored.read("shelters").set_index("shelter_id").loc["SH001"]
    assert row["occupancy_persons"] == capacity and bool(row["is_open"])
    rec = stored.layer_records().set_index("layer").loc["shelters"]
    assert "edited in the web map" in rec["method"] and bool(rec["synthetic"])
    live = client.get("/map/summary").json["live"]
    assert live["shelters_open"] == 1 and live["shelter_places_free"] == 0


@pytest.mark.parametrize(
    ("patch", "status", "field", "code"),
    [
        ({"occupancy_persons": 10**6}, 422, "properties.occupancy_persons", "exceeds_capacity"),
        ({"occupancy_persons": -1}, 422, "properties.occupancy_persons", "out_of_range"),
        ({"occupancy_persons": 2.5}, 422, "properties.occupancy_persons", "wrong_type"),
        ({"name": "新名字"}, 422, "properties.name", "not_editable"),
        ({}, 422, "properties", "empty_patch"),
        ({"properties": {"is_open": True}, "geometry": POINT}, 422, "geometry", "not_editable"),
        ([1], 400, "body", "not_an_object"),
    ],
)
def test_bad_shelter_patch(refusing, patch, status, field, code):
    app, clients = refusing
    api = app.extensions["webmap"]
    client, csrf = clients["commander1"]
    r = client.patch("/collections/shelters/items/SH001", json=patch, headers=csrf | ANY)
    assert r.status_code == status, r.json
    assert r.json["errors"][0]["field"] == field and r.json["errors"][0]["code"] == code
    assert api.store.last_event_id() == 0 and api.store.audit_rows() == []


def test_patch_unknown_shelter_is_404(refusing):
    client, csrf = refusing[1]["commander1"]
    r = client.patch(
        "/collections/shelters/items/NOPE", json={"occupancy_persons": 1}, headers=csrf | ANY
    )
    assert r.status_code == 404


def test_concurrent_edits_of_one_version_one_wins(app, api):
    url = "/collections/shelters/items/SH002"
    clients = [login(app, "commander1") for _ in range(4)]
    etag = clients[0][0].get(url).headers["ETag"]
    codes: list[int] = []

    def edit(i: int) -> None:
        client, csrf = clients[i]
        r = client.patch(url, json={"occupancy_persons": 10 + i}, headers=csrf | {"If-Match": etag})
        codes.append(r.status_code)

    threads = [threading.Thread(target=edit, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200, 409, 409, 409]
    assert len(api.store.audit_rows()) == 1


# -- audit log -------------------------------------------------------------------------------
def test_audit_log_records_who_what_before_after(app):
    cmd, csrf = login(app, "commander1")
    url = "/collections/shelters/items/SH003"
    before = cmd.get(url).json["properties"]["occupancy_persons"]
    etag = {"If-Match": cmd.get(url).headers["ETag"]}
    assert cmd.patch(url, json={"occupancy_persons": 33}, headers=csrf | etag).status_code == 200
    fid = cmd.post(CLOSURES, json=closure(), headers=csrf).json["id"]
    etag = {"If-Match": cmd.get(f"{CLOSURES}/{fid}").headers["ETag"]}
    assert cmd.delete(f"{CLOSURES}/{fid}", headers=csrf | etag).status_code == 204
    assert cmd.get("/audit").status_code == 403
    assert app.test_client().get("/audit").status_code == 401
    admin, _ = login(app, "admin1")
    rows = admin.get("/audit").json["rows"]
    assert [r["action"] for r in rows] == ["delete", "create", "update"]
    upd = rows[2]
    assert upd["user"] == "commander1" and upd["role"] == "commander"
    assert upd["layer"] == "shelters" and upd["fid"] == "SH003" and upd["version"] == 2
    assert upd["before"]["properties"]["occupancy_persons"] == before
    assert upd["after"]["properties"]["occupancy_persons"] == 33
    assert upd["at"].endswith("+00:00") and upd["event_id"] == 1
    assert rows[0]["before"]["id"] == fid and rows[0]["after"] is None
    assert rows[1]["before"] is None and rows[1]["after"]["properties"]["reason"] == "积水"
    only = admin.get("/audit?layer=shelters&limit=5").json["rows"]
    assert [r["fid"] for r in only] == ["SH003"]
    assert admin.get("/audit?limit=0").status_code == 400

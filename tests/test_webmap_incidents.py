"""The incident lifecycle over the API (no browser): states, roles, If-Match, audit, list.

Also the closure preview (the roads a drawn closure would cut, by the relief engine's rule) and
the edit of a closure's geometry, checked against what the saved closure then does.
"""

from __future__ import annotations

import itertools
import json

import pytest

pytest.importorskip("flask")

import geopandas as gpd
import shapely

from geo_mz.core.workspace import Workspace
from webmap import create_app
from webmap.core.incidents import FLOW, TRANSITIONS
from webmap.testing import basic_auth, fresh_settings, sample_base

ITEMS = "/collections/incidents/items"
CLOSURES = "/collections/road_closures/items"
CHAOLIAN = "440703005"  # 潮连街道


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory):
    base = sample_base(tmp_path_factory.getbasetemp() / "webmap_base")
    return create_app(fresh_settings(base, tmp_path_factory.mktemp("incidents")))


@pytest.fixture(scope="module")
def town_point(app) -> list[float]:
    units = Workspace(app.extensions["webmap"].settings.workspace).read("admin_units")
    town = units[units["adcode"] == CHAOLIAN].geometry.iloc[0]
    p = town.representative_point()
    return [round(p.x, 6), round(p.y, 6)]


def report(
    app, where: list[float], kind: str = "flood", user: str = "reporter1"
) -> tuple[str, str]:
    body = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": where},
        "properties": {"kind": kind, "description": "水浸街 / flooded street"},
    }
    r = app.test_client().post(ITEMS, json=body, headers=basic_auth(user))
    assert r.status_code == 201, r.json
    return r.json["id"], r.headers["ETag"]


def patch(app, fid: str, body: dict, user: str, etag: str | None):
    headers = basic_auth(user) | ({"If-Match": etag} if etag else {})
    return app.test_client().patch(f"{ITEMS}/{fid}", json=body, headers=headers)


def bilingual(text: str) -> bool:
    zh, _, en = text.partition(" / ")
    return any("\u4e00" <= ch <= "\u9fff" for ch in zh) and en.isascii() and len(en) > 10


def test_the_transition_table_is_a_path_through_every_state():
    # each state is reached from the one before, closed is final, nothing skips verification
    for a, b in itertools.pairwise(FLOW):
        assert b in TRANSITIONS[a]
    assert TRANSITIONS["closed"] == ()
    assert all("resolved" not in TRANSITIONS[s] for s in ("reported", "verified"))


def test_full_lifecycle_by_the_right_roles_with_audit(app, town_point):
    fid, etag = report(app, town_point)
    steps = [
        ({"status": "verified"}, "verified"),
        ({"status": "assigned", "assigned_to": CHAOLIAN}, "assigned"),
        ({"status": "assigned", "assigned_to": "潮连抢险队"}, "assigned"),  # handed on
        ({"status": "resolved"}, "resolved"),
        ({"status": "closed"}, "closed"),
    ]
    for body, state in steps:
        # a reporter is refused every lifecycle step, in both languages
        r = patch(app, fid, body, "reporter1", etag)
        assert r.status_code == 403 and r.json["code"] == "role_forbidden"
        assert bilingual(r.json["description"]), r.json
        r = patch(app, fid, body, "commander1", etag)
        assert r.status_code == 200, r.json
        assert r.json["properties"]["status"] == state
        assert r.headers["ETag"] != etag
        etag = r.headers["ETag"]
    assert r.json["properties"]["assigned_to"] == "潮连抢险队"
    # closed is final
    r = patch(app, fid, {"status": "assigned", "assigned_to": CHAOLIAN}, "commander1", etag)
    assert r.status_code == 409 and r.json["code"] == "transition_not_allowed"
    assert r.json["allowed"] == []
    # the audit log has who and when of each step, with the state before and after
    rows = (
        app.test_client().get("/audit?layer=incidents&limit=50", headers=basic_auth("admin1")).json
    )
    mine = [row for row in rows["rows"] if row["fid"] == fid][::-1]  # oldest first
    assert [row["action"] for row in mine] == ["create"] + ["update"] * len(steps)
    assert [row["user"] for row in mine] == ["reporter1"] + ["commander1"] * len(steps)
    assert all(row["at"] for row in mine)
    after = [row["after"]["properties"]["status"] for row in mine]
    assert after == ["reported"] + [s for _, s in steps]
    before = [row["before"]["properties"]["status"] for row in mine[1:]]
    assert before == after[:-1]
    # an admin deletes it (If-Match), a commander may not
    r = app.test_client().delete(
        f"{ITEMS}/{fid}", headers=basic_auth("commander1") | {"If-Match": etag}
    )
    assert r.status_code == 403 and bilingual(r.json["description"])
    r = app.test_client().delete(f"{ITEMS}/{fid}", headers=basic_auth("admin1"))
    assert r.status_code == 428 and bilingual(r.json["description"])
    r = app.test_client().delete(
        f"{ITEMS}/{fid}", headers=basic_auth("admin1") | {"If-Match": etag}
    )
    assert r.status_code == 204
    assert app.test_client().get(f"{ITEMS}/{fid}").status_code == 404


def test_steps_out_of_order_and_bad_units_are_refused(app, town_point):
    fid, etag = report(app, town_point)
    r = patch(app, fid, {"status": "resolved"}, "commander1", etag)
    assert r.status_code == 409 and r.json["allowed"] == ["verified", "closed"]
    assert bilingual(r.json["description"])
    r = patch(app, fid, {"status": "verified"}, "commander1", None)
    assert r.status_code == 428
    r = patch(app, fid, {"status": "finished"}, "commander1", etag)
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "properties.status"
    r = patch(app, fid, {"kind": "fire"}, "commander1", etag)
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "properties.kind"
    etag = patch(app, fid, {"status": "verified"}, "commander1", etag).headers["ETag"]
    r = patch(app, fid, {"status": "assigned"}, "commander1", etag)
    assert r.status_code == 422 and r.json["errors"][0]["code"] == "missing_required"
    r = patch(app, fid, {"status": "assigned", "assigned_to": "440703999"}, "commander1", etag)
    assert r.status_code == 422 and r.json["errors"][0]["code"] == "unknown_town"
    assert "潮连街道" in r.json["errors"][0]["message"]  # says which codes exist
    # a stale version is refused
    ok = patch(app, fid, {"status": "assigned", "assigned_to": CHAOLIAN}, "commander1", etag)
    assert ok.status_code == 200
    r = patch(app, fid, {"status": "resolved"}, "commander1", etag)
    assert r.status_code == 409 and r.json["code"] == "stale_version"
    # a false report is closed at once from reported
    fid2, etag2 = report(app, town_point)
    assert patch(app, fid2, {"status": "closed"}, "commander1", etag2).status_code == 200


def test_a_reporter_corrects_only_their_own_report_before_verification(app, town_point):
    fid, etag = report(app, town_point)
    r = patch(app, fid, {"people_affected": 12}, "reporter1", etag)
    assert r.status_code == 200 and r.json["properties"]["people_affected"] == 12
    etag = r.headers["ETag"]
    r = patch(app, fid, {"status": "verified"}, "commander1", etag)
    etag = r.headers["ETag"]
    r = patch(app, fid, {"people_affected": 13}, "reporter1", etag)
    assert r.status_code == 403 and bilingual(r.json["description"])
    r = patch(app, fid, {"status": "verified"}, "viewer1", etag)
    assert r.status_code == 403 and bilingual(r.json["description"])


def test_incident_list_counts_per_town(app, town_point):
    before = app.test_client().get("/map/incidents?lang=zh").json
    fid, _ = report(app, town_point, kind="landslide")
    body = app.test_client().get("/map/incidents?lang=zh").json
    row = next(i for i in body["incidents"] if i["id"] == fid)
    assert row["town"] == CHAOLIAN and row["town_name"] == "潮连街道"
    assert row["kind_label"] == "滑坡/崩塌" and row["status_label"] == "已上报"

    def count(b: dict, key: str) -> int:
        return sum(c[key] for c in b["counts_by_town"] if c["town"] == CHAOLIAN)

    assert count(body, "open") == count(before, "open") + 1
    assert count(body, "total") == count(before, "total") + 1
    # cross-check: the town counts add up to the list, and open = reported/verified/assigned
    assert sum(c["total"] for c in body["counts_by_town"]) == len(body["incidents"])
    n_open = sum(i["state"] in ("reported", "verified", "assigned") for i in body["incidents"])
    assert sum(c["open"] for c in body["counts_by_town"]) == n_open
    assert [s["code"] for s in body["states"]] == list(FLOW)
    assert app.test_client().get("/map/incidents?town=1").status_code == 400


def test_old_status_codes_stay_valid_and_move_on():
    from webmap.core.incidents import canonical
    from webmap.core.layers import layer_spec

    spec = layer_spec("incidents")
    assert spec is not None
    codes = {v.code for v in spec.field("status").values}
    assert {"confirmed", "handling"} <= codes and set(FLOW) <= codes
    assert canonical("confirmed") == "verified" and canonical("handling") == "assigned"


def _bridges(workspace) -> tuple[dict, set[str]]:
    roads = Workspace(workspace).read("roads")
    bridges = roads[roads["bridge"].fillna(False).astype(bool)]
    crs = Workspace(workspace).metadata["measure_crs"]
    area = shapely.union_all(bridges.to_crs(crs).geometry.to_numpy()).buffer(50)
    g = gpd.GeoSeries([area], crs=crs).to_crs("OGC:CRS84").iloc[0]
    return json.loads(shapely.to_geojson(g)), set(bridges["road_id"].astype(str))


def test_closure_preview_lists_the_cut_roads_and_matches_the_saved_closure(app):
    polygon, bridge_ids = _bridges(app.extensions["webmap"].settings.workspace)
    c = app.test_client()
    r = c.post(
        "/analysis/closure-preview",
        json={"type": "Feature", "geometry": polygon, "properties": {}},
        headers=basic_auth("commander1"),
    )
    assert r.status_code == 200, r.json
    preview = r.json
    ids = {row["road_id"] for row in preview["roads"]}
    assert bridge_ids & ids, "the bridges are not among the cut roads"
    assert {"潮连一桥", "潮连二桥", "潮连三桥"} <= {row["name"] for row in preview["roads"]}
    assert preview["edges"] == len(preview["features"]["features"]) > 0
    # independent check: every road the preview lists does intersect the polygon
    roads = Workspace(app.extensions["webmap"].settings.workspace).read("roads")
    hit = roads[roads.to_crs("OGC:CRS84").intersects(shapely.geometry.shape(polygon))]
    assert ids <= set(hit["road_id"].astype(str))
    # nothing was stored
    assert c.get("/analysis/relief").json["closures"] == 0
    # saved, the relief engine closes exactly that many edges
    r = c.post(
        CLOSURES,
        json={"type": "Feature", "geometry": polygon, "properties": {"reason": "桥梁封闭"}},
        headers=basic_auth("commander1"),
    )
    assert r.status_code == 201, r.json
    fid, etag = r.json["id"], r.headers["ETag"]
    assert c.get("/analysis/relief").json["edges_closed"] == preview["edges"]
    # edited to a line along one bridge: fewer edges closed; If-Match required
    bridge = roads[roads["name"] == "潮连一桥"].to_crs("OGC:CRS84").geometry.iloc[0]
    line = json.loads(shapely.to_geojson(bridge))
    r = c.patch(f"{CLOSURES}/{fid}", json={"geometry": line}, headers=basic_auth("commander1"))
    assert r.status_code == 428
    r = c.patch(
        f"{CLOSURES}/{fid}",
        json={"geometry": line, "properties": {"reason": "一桥封闭"}},
        headers=basic_auth("commander1") | {"If-Match": etag},
    )
    assert r.status_code == 200, r.json
    assert r.json["geometry"]["type"] == "LineString"
    assert r.json["properties"]["reason"] == "一桥封闭"
    relief = c.get("/analysis/relief").json
    assert 0 < relief["edges_closed"] < preview["edges"]
    r = c.delete(
        f"{CLOSURES}/{fid}", headers=basic_auth("commander1") | {"If-Match": r.headers["ETag"]}
    )
    assert r.status_code == 204


def test_a_resolved_road_blocked_report_no_longer_cuts_the_road(app):
    """The relief audit closes roads at open road_blocked reports only (resolved = reopened)."""
    ws = Workspace(app.extensions["webmap"].settings.workspace)
    roads = ws.read("roads")
    bridge = roads[roads["name"] == "潮连一桥"].to_crs("OGC:CRS84").geometry.iloc[0]
    mid = bridge.interpolate(0.5, normalized=True)
    c = app.test_client()
    before = c.get("/analysis/relief").json["edges_closed"]
    fid, etag = report(app, [round(mid.x, 7), round(mid.y, 7)], kind="road_blocked")
    blocked = c.get("/analysis/relief").json["edges_closed"]
    assert blocked > before
    for body in (
        {"status": "verified"},
        {"status": "assigned", "assigned_to": CHAOLIAN},
        {"status": "resolved"},
    ):
        r = patch(app, fid, body, "commander1", etag)
        assert r.status_code == 200, r.json
        etag = r.headers["ETag"]
    assert c.get("/analysis/relief").json["edges_closed"] == before
    live = c.get("/map/summary").json["live"]
    items = c.get(ITEMS, query_string={"limit": 1000}).json["features"]
    open_ = [f for f in items if f["properties"]["status"] not in ("resolved", "closed")]
    assert live["incidents_open"] == len(open_)

"""Web map tiles: tile math, clipped and simplified tiles, ETag, exact invalidation on edits."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("flask")

import shapely

from webmap import create_app
from webmap.core.tilemath import (
    buffer_deg,
    edit_bboxes,
    simplify_tolerance,
    tile_bounds,
    tile_of,
    tiles_for_bbox,
)
from webmap.testing import PASSWORD, fresh_settings

CORE = (113.08, 22.60)
"""A point in the district core (Jiangmen)."""
CLOSURES = "/collections/road_closures/items"


@pytest.fixture
def app(base, tmp_path):
    return create_app(fresh_settings(base, tmp_path / "ws"))


@pytest.fixture
def api(app):
    return app.extensions["webmap"]


def login(app, name: str):
    client = app.test_client()
    r = client.post("/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.json
    return client, {"X-CSRF-Token": r.json["csrf_token"]}


def url(layer: str, z: int, x: int, y: int) -> str:
    return f"/map/tiles/{layer}/{z}/{x}/{y}.json"


def vertices(features) -> int:
    return sum(
        int(shapely.get_num_coordinates(shapely.from_geojson(_dumps(f["geometry"]))))
        for f in features
    )


def _dumps(obj) -> str:
    import json

    return json.dumps(obj)


# -- tile math ------------------------------------------------------------------------------
def test_tile_bounds_hand_computed():
    top = math.degrees(math.atan(math.sinh(math.pi)))
    assert tile_bounds(0, 0, 0) == pytest.approx((-180, -top, 180, top))
    assert tile_bounds(1, 1, 0) == pytest.approx((0, 0, 180, top))
    assert tile_bounds(1, 0, 1) == pytest.approx((-180, -top, 0, 0))
    # z=2, x=3, y=1: lon 90..180; lat from atan(sinh(pi/2)) (66.5133) down to 0
    assert tile_bounds(2, 3, 1) == pytest.approx((90, 0, 180, 66.51326044311186))
    # the z=12 tile over Jiangmen: x = floor((113.08+180)/360*4096) = 3334
    assert tile_of(*CORE, 12) == (3334, 1783)
    w, s, e, n = tile_bounds(12, 3334, 1783)
    assert w == pytest.approx(3334 / 4096 * 360 - 180) and e - w == pytest.approx(360 / 4096)
    assert s <= CORE[1] <= n and w <= CORE[0] <= e
    with pytest.raises(ValueError):
        tile_bounds(1, 2, 0)


def test_tile_math_round_trip_and_ranges():
    for z in (0, 5, 12, 18):
        x, y = tile_of(*CORE, z)
        w, s, e, n = tile_bounds(z, x, y)
        assert w <= CORE[0] < e and s < CORE[1] <= n
    assert list(tiles_for_bbox((0.1, 0.1, 0.2, 0.2), 1)) == [(1, 0)]
    assert sorted(tiles_for_bbox((-1, -1, 1, 1), 1)) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert simplify_tolerance(0) == pytest.approx(360 / 256 / 2)
    assert simplify_tolerance(10) == pytest.approx(360 / 1024 / 256 / 2)
    before = {"geometry": {"type": "Point", "coordinates": [1, 2]}}
    after = {"geometry": {"type": "LineString", "coordinates": [[0, 0], [3, 1]]}}
    assert edit_bboxes(before, after) == [[1, 2, 1, 2], [0, 0, 3, 1]]
    assert edit_bboxes(None, None) == []


# -- tiles ----------------------------------------------------------------------------------
def test_roads_tile_clipped_simplified_and_cached(app):
    client = app.test_client()
    x, y = tile_of(*CORE, 12)
    r = client.get(url("roads", 12, x, y))
    assert r.status_code == 200 and r.headers["X-Tile-Cache"] == "miss"
    assert r.mimetype == "application/geo+json"
    body = r.json
    assert body["type"] == "FeatureCollection" and len(body["features"]) > 100
    f = body["features"][0]
    assert set(f["properties"]) == {"s", "p"} and "color" in f["properties"]["s"]
    assert f["properties"]["p"]["road_id"] == f["id"]
    w, s, e, n = tile_bounds(12, x, y)
    d = buffer_deg(12, 4) + 1e-6
    for feat in body["features"]:
        bx = shapely.bounds(shapely.from_geojson(_dumps(feat["geometry"])))
        assert bx[0] >= w - d and bx[1] >= s - d and bx[2] <= e + d and bx[3] <= n + d
    # the same properties as /map/layers
    whole = client.get("/map/layers/roads?bbox=113.07,22.59,113.09,22.61").json
    by_id = {g["id"]: g["properties"] for g in whole["features"]}
    shared = [g for g in body["features"] if g["id"] in by_id]
    assert shared and all(g["properties"] == by_id[g["id"]] for g in shared)

    # fewer vertices at z=10 than at z=15 over the same area (one z=12 tile)
    def within(feats, bounds):
        geoms = [shapely.from_geojson(_dumps(g["geometry"])) for g in feats]
        return int(shapely.get_num_coordinates(shapely.clip_by_rect(geoms, *bounds)).sum())

    for layer in ("roads", "landuse"):
        x10, y10 = tile_of(*CORE, 10)
        coarse = within(client.get(url(layer, 10, x10, y10)).json["features"], (w, s, e, n))
        fine = 0
        for tx in range(x * 8, x * 8 + 8):
            for ty in range(y * 8, y * 8 + 8):
                feats = client.get(url(layer, 15, tx, ty)).json["features"]
                fine += within(feats, tile_bounds(15, tx, ty))
        assert 0 < coarse < fine, layer

    # ETag and 304
    again = client.get(url("roads", 12, x, y), headers={"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304 and again.headers["ETag"] == r.headers["ETag"]
    assert again.headers["X-Tile-Cache"] == "hit"
    assert client.get(url("roads", 12, x, y)).data == r.data


def test_points_in_exactly_one_tile_and_bad_tiles(app):
    client = app.test_client()
    x, y = tile_of(*CORE, 14)
    ids: list[str] = []
    for dx in (0, 1):
        for dy in (0, 1):
            ids += [
                f["id"] for f in client.get(url("population", 14, x + dx, y + dy)).json["features"]
            ]
    assert ids and len(ids) == len(set(ids))
    assert client.get(url("roads", 3, 8, 0)).status_code == 404
    assert client.get(url("nowhere", 3, 1, 1)).status_code == 404
    assert client.get(url("roads", 3, 1, 1) + "?foo=1").status_code == 400


# -- exact invalidation ---------------------------------------------------------------------
def test_closure_invalidates_exactly_its_tiles(app, api):
    client, csrf = login(app, "commander1")
    line = {"type": "LineString", "coordinates": [[113.0801, 22.6001], [113.0812, 22.6009]]}
    z = 15
    hx, hy = tile_of(113.0805, 22.6005, z)
    near = [(hx, hy), (hx + 3, hy), (hx, hy + 3), (hx - 2, hy - 2)]
    for tx, ty in near:
        for layer in ("road_closures", "roads"):
            assert client.get(url(layer, z, tx, ty)).status_code == 200
    x12, y12 = tile_of(*CORE, 12)
    assert client.get(url("road_closures", 12, x12, y12)).json["features"] == []
    cached = api.tiles.cached()
    assert ("road_closures", z, hx, hy) in cached and len(cached) == 9

    r = client.post(
        CLOSURES,
        json={"type": "Feature", "geometry": line, "properties": {"reason": "积水"}},
        headers=csrf,
    )
    assert r.status_code == 201, r.json
    fid = r.json["id"]
    ev = api.store.events_since(0)[-1]
    assert ev.data["bboxes"] == [[113.0801, 22.6001, 113.0812, 22.6009]]

    touched = {
        ("road_closures", z, tx, ty)
        for tx, ty in tiles_for_bbox((113.0801, 22.6001, 113.0812, 22.6009), z)
    }
    touched.add(("road_closures", 12, x12, y12))
    after = api.tiles.cached()
    assert after == cached - touched  # every other tile (roads too) kept
    assert ("road_closures", z, hx + 3, hy) in after and ("roads", z, hx, hy) in after
    # the next fetch shows the closure: no stale closure on any map
    got = client.get(url("road_closures", 12, x12, y12))
    assert got.headers["X-Tile-Cache"] == "miss" and [f["id"] for f in got.json["features"]] == [
        fid
    ]
    assert [f["id"] for f in client.get(url("road_closures", z, hx, hy)).json["features"]] == [fid]
    assert client.get(url("road_closures", z, hx + 3, hy)).headers["X-Tile-Cache"] == "hit"

    # lifting it drops the same tiles again (old geometry from the event)
    etag = client.get(f"{CLOSURES}/{fid}").headers["ETag"]
    d = client.delete(f"{CLOSURES}/{fid}", headers=csrf | {"If-Match": etag})
    assert d.status_code == 204
    assert ("road_closures", 12, x12, y12) not in api.tiles.cached()
    assert ("road_closures", z, hx + 3, hy) in api.tiles.cached()
    assert client.get(url("road_closures", 12, x12, y12)).json["features"] == []


def test_shelter_patch_invalidates_its_tile(app, api):
    client, csrf = login(app, "commander1")
    sh = api.store.frame("shelters")
    fid = str(sh["shelter_id"].iloc[0])
    pt = sh.geometry.iloc[0]
    z = 14
    x, y = tile_of(pt.x, pt.y, z)
    other = next(tile_of(p.x, p.y, z) for p in sh.geometry if tile_of(p.x, p.y, z) != (x, y))
    t0 = client.get(url("shelters", z, x, y)).json
    assert fid in [f["id"] for f in t0["features"]]
    client.get(url("shelters", z, *other))
    item = client.get(f"/collections/shelters/items/{fid}")
    cap = item.json["properties"]["capacity_persons"]
    r = client.patch(
        f"/collections/shelters/items/{fid}",
        json={"occupancy_persons": min(3, cap)},
        headers=csrf | {"If-Match": item.headers["ETag"]},
    )
    assert r.status_code == 200, r.json
    cached = api.tiles.cached("shelters")
    assert ("shelters", z, x, y) not in cached
    fresh = client.get(url("shelters", z, x, y))
    assert fresh.headers["X-Tile-Cache"] == "miss"
    feat = next(f for f in fresh.json["features"] if f["id"] == fid)
    whole = client.get("/map/layers/shelters").json["features"]
    assert feat["properties"] == next(f for f in whole if f["id"] == fid)["properties"]
    assert feat["properties"] != next(f for f in t0["features"] if f["id"] == fid)["properties"]
    # the other tile stays cached unless the edit moved other shelters' graduated styles
    if ("shelters", z, *other) in cached:
        kept = client.get(url("shelters", z, *other))
        assert kept.headers["X-Tile-Cache"] == "hit"
        others = {f["id"]: f["properties"] for f in whole}
        assert all(f["properties"] == others[f["id"]] for f in kept.json["features"])


def test_outside_change_drops_layer_tiles(app, api):
    client = app.test_client()
    x, y = tile_of(*CORE, 13)
    client.get(url("roads", 13, x, y))
    assert ("roads", 13, x, y) in api.tiles.cached()
    api.tiles.store.token = lambda name, _t=api.tiles.store.token: _t(name) + 10**6  # type: ignore[method-assign]
    assert api.tiles.cached("roads") == set()
    assert client.get(url("roads", 13, x, y)).headers["X-Tile-Cache"] == "miss"


def test_openapi_documents_tiles(app):
    doc = app.test_client().get("/openapi").json
    assert "/map/tiles/{layer}/{z}/{x}/{y}.json" in doc["paths"]


def test_config_marks_tiled_layers(app):
    layers = {i["id"]: i for i in app.test_client().get("/map/config").json["layers"]}
    assert layers["roads"]["tiled"] and layers["population"]["tiled"]
    assert not layers["shelters"]["tiled"]

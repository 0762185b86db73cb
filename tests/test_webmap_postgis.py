"""Web map on PostGIS: a real cluster started by the suite, same API as the GeoPackage backend,
and two server processes that see each other's edits (LISTEN/NOTIFY + replay from the DB)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("flask")
pytest.importorskip("waitress")

from webmap import Settings, SettingsError, create_app
from webmap.testing import SECRET, basic_auth, fresh_settings, post_incident
from webmap.testing_postgis import EventStream, serve_processes

SH_COMPARED, SH_EDITED = "SH001", "SH002"


@pytest.fixture(scope="module")
def pg_app(pg_sample_db, base):
    settings = Settings(
        workspace=None,
        database_url=pg_sample_db,
        users_db=base / "pengjiang.users.sqlite",
        secret_key=SECRET,
    )
    app = create_app(settings)
    yield app
    app.extensions["webmap"].close()


@pytest.fixture(scope="module")
def gpkg_client(base, tmp_path_factory):
    return create_app(fresh_settings(base, tmp_path_factory.mktemp("webmap_pg_ref"))).test_client()


def test_settings_need_a_workspace_or_a_database(tmp_path):
    with pytest.raises(SettingsError, match="database_url"):
        Settings(workspace=None, secret_key=SECRET, users_db=tmp_path / "u.sqlite")
    with pytest.raises(SettingsError, match="users_db"):
        Settings(workspace=None, secret_key=SECRET, database_url="postgresql://x@localhost/db")
    with pytest.raises(SettingsError, match="postgresql"):
        Settings(workspace=tmp_path / "w.gpkg", secret_key=SECRET, database_url="mysql://x")


def test_reads_are_identical_to_the_geopackage_backend(pg_app, gpkg_client):
    pg = pg_app.test_client()
    urls = [
        "/collections",
        "/collections/roads",
        "/collections/roads/items?limit=50&offset=100",
        "/collections/admin_units/items?limit=200",
        "/collections/elder_care/items?bbox=112.9,22.5,113.2,22.8",
        "/collections/place_names/items?limit=10",
        "/collections/incidents/items",
        f"/collections/shelters/items/{SH_COMPARED}",
    ]
    for url in urls:
        a, b = pg.get(url), gpkg_client.get(url)
        assert a.status_code == b.status_code == 200, url
        assert a.json == b.json, url
        assert a.headers.get("ETag") == b.headers.get("ETag"), url
    assert pg.get("/collections/nope/items").status_code == 404


def test_a_write_through_postgis(pg_app):
    c = pg_app.test_client()
    body = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [113.05, 22.58]},
        "properties": {"kind": "flood", "description": "PostGIS 写入", "people_affected": 3},
    }
    r = c.post("/collections/incidents/items", json=body, headers=basic_auth("reporter1"))
    assert r.status_code == 201, r.json
    fid = r.json["id"]
    got = c.get(f"/collections/incidents/items/{fid}")
    assert got.status_code == 200 and got.headers["ETag"] == r.headers["ETag"]
    assert got.json["properties"]["description"] == "PostGIS 写入"
    again = c.post(
        "/collections/incidents/items",
        json={**body, "properties": {**body["properties"], "incident_id": fid}},
        headers=basic_auth("reporter1"),
    )
    assert again.status_code == 409
    audit = c.get("/audit?layer=incidents", headers=basic_auth("admin1")).json["rows"]
    assert audit[0]["fid"] == fid and audit[0]["user"] == "reporter1"
    assert audit[0]["after"]["properties"]["description"] == "PostGIS 写入"
    store = pg_app.extensions["webmap"].store
    ev = store.events_since(int(r.headers["X-Event-Id"]) - 1)[0]
    assert ev.data["id"] == fid and ev.data["op"] == "create"


def test_optimistic_concurrency_409(pg_app):
    c = pg_app.test_client()
    url = f"/collections/shelters/items/{SH_EDITED}"
    etag = c.get(url).headers["ETag"]
    hdr = {**basic_auth("commander1"), "If-Match": etag}
    ok = c.patch(url, json={"properties": {"occupancy_persons": 5}}, headers=hdr)
    assert ok.status_code == 200, ok.json
    assert ok.json["properties"]["occupancy_persons"] == 5 and ok.headers["ETag"] != etag
    stale = c.patch(url, json={"properties": {"occupancy_persons": 6}}, headers=hdr)
    assert stale.status_code == 409 and stale.json["code"] == "stale_version"
    assert stale.headers["ETag"] == ok.headers["ETag"]
    assert c.get(url).json["properties"]["occupancy_persons"] == 5


# -- two server processes -----------------------------------------------------------------
def _posted(root: str, text: str) -> tuple[str, int]:
    feature, event_id = post_incident(
        root, text, kind="flood", lonlat=(113.06, 22.59), timeout_s=10
    )
    return feature["id"], event_id


def test_two_server_processes_see_each_others_edits(pg_sample_db, base, tmp_path):
    users = base / "pengjiang.users.sqlite"
    with serve_processes(pg_sample_db, users, tmp_path, secret_key=SECRET) as (a, b):
        stream = EventStream(f"{b}/events", timeout_s=5)
        t0 = time.monotonic()
        fid, event_id = _posted(a, "A 进程上报")
        ev = stream.next_event(t0 + 10.0)  # a bound, not a timing assertion (shared machine)
        stream.close()
        assert ev is not None, "the edit made on A did not reach B's stream within 10 s"
        assert ev["id"] == event_id and ev["data"]["id"] == fid, ev
        # B serves the feature A wrote
        with urllib.request.urlopen(f"{b}/collections/incidents/items/{fid}", timeout=5) as r:
            assert json.loads(r.read())["properties"]["description"] == "A 进程上报"
        # B's client was offline while A took two more reports: reconnecting replays them
        missed = [_posted(a, f"离线期间 {i}") for i in range(2)]
        again = EventStream(f"{b}/events", last_id=event_id, timeout_s=5)
        deadline = time.monotonic() + 5
        got = [again.next_event(deadline), again.next_event(deadline)]
        again.close()
        assert [(e["id"], e["data"]["id"]) for e in got if e] == [(i, f) for f, i in missed]
        # and an edit on B reaches a stream on A
        stream_a = EventStream(f"{a}/events", timeout_s=5)
        t0 = time.monotonic()
        fid_b, id_b = _posted(b, "B 进程上报")
        ev = stream_a.next_event(t0 + 10.0)
        stream_a.close()
        assert ev is not None and ev["id"] == id_b and ev["data"]["id"] == fid_b


def test_cli_import_refuses_a_database_that_holds_a_workspace(pg_sample_db, base):
    from click.testing import CliRunner

    from geo_mz.cli import main

    ws = str(base / "pengjiang.gpkg")
    r = CliRunner().invoke(main, ["webmap", "import", ws, "--database", pg_sample_db])
    assert r.exit_code != 0 and "already holds a workspace" in r.output


def test_serving_a_database_nothing_was_imported_into_is_a_clear_error(pg_url, tmp_path):
    import psycopg

    name = f"empty_{os.getpid()}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    empty = pg_url.rsplit("/", 1)[0] + f"/{name}"
    env = dict(os.environ, GEO_MZ_SECRET_KEY=SECRET)
    r = subprocess.run(
        [str(Path(sys.executable).with_name("geo-mz")), "serve", "--database", empty, "--port", "0",
         "--users", str(tmp_path / "users.db")],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "没有导入工作空间" in r.stderr and "geo-mz webmap import" in r.stderr
    assert "Traceback" not in r.stderr

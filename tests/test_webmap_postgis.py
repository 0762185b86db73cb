"""Web map on PostGIS: a real cluster started by the suite, same API as the GeoPackage backend,
and two server processes that see each other's edits (LISTEN/NOTIFY + replay from the DB)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("flask")
pytest.importorskip("waitress")

from webmap import Settings, SettingsError, create_app
from webmap.testing import PASSWORD, SECRET, fresh_settings, sample_base

SH_COMPARED, SH_EDITED = "SH001", "SH002"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_base(tmp_path_factory.getbasetemp() / "webmap_base")


@pytest.fixture(scope="module")
def db(pg_url, base) -> str:
    from webmap.core.postgis import import_workspace

    import_workspace(pg_url, base / "pengjiang.gpkg", replace=True)
    return pg_url


@pytest.fixture(scope="module")
def pg_app(db, base):
    settings = Settings(
        workspace=None,
        database_url=db,
        users_db=base / "pengjiang.users.sqlite",
        secret_key=SECRET,
    )
    app = create_app(settings)
    yield app
    app.extensions["webmap"].close()


@pytest.fixture(scope="module")
def gpkg_client(base, tmp_path_factory):
    return create_app(fresh_settings(base, tmp_path_factory.mktemp("webmap_pg_ref"))).test_client()


def basic(user: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


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
    r = c.post("/collections/incidents/items", json=body, headers=basic("reporter1"))
    assert r.status_code == 201, r.json
    fid = r.json["id"]
    got = c.get(f"/collections/incidents/items/{fid}")
    assert got.status_code == 200 and got.headers["ETag"] == r.headers["ETag"]
    assert got.json["properties"]["description"] == "PostGIS 写入"
    again = c.post(
        "/collections/incidents/items",
        json={**body, "properties": {**body["properties"], "incident_id": fid}},
        headers=basic("reporter1"),
    )
    assert again.status_code == 409
    audit = c.get("/audit?layer=incidents", headers=basic("admin1")).json["rows"]
    assert audit[0]["fid"] == fid and audit[0]["user"] == "reporter1"
    assert audit[0]["after"]["properties"]["description"] == "PostGIS 写入"
    store = pg_app.extensions["webmap"].store
    ev = store.events_since(int(r.headers["X-Event-Id"]) - 1)[0]
    assert ev.data["id"] == fid and ev.data["op"] == "create"


def test_optimistic_concurrency_409(pg_app):
    c = pg_app.test_client()
    url = f"/collections/shelters/items/{SH_EDITED}"
    etag = c.get(url).headers["ETag"]
    hdr = {**basic("commander1"), "If-Match": etag}
    ok = c.patch(url, json={"properties": {"occupancy_persons": 5}}, headers=hdr)
    assert ok.status_code == 200, ok.json
    assert ok.json["properties"]["occupancy_persons"] == 5 and ok.headers["ETag"] != etag
    stale = c.patch(url, json={"properties": {"occupancy_persons": 6}}, headers=hdr)
    assert stale.status_code == 409 and stale.json["code"] == "stale_version"
    assert stale.headers["ETag"] == ok.headers["ETag"]
    assert c.get(url).json["properties"]["occupancy_persons"] == 5


# -- two server processes -----------------------------------------------------------------
def _serve(db: str, users: Path, port: int, log: Path) -> subprocess.Popen:
    code = "import sys; from geo_mz.cli import main; sys.exit(main())"
    cmd = [sys.executable, "-c", code, "serve", "--database", db, "--users", str(users)]
    cmd += ["--port", str(port), "--threads", "8", "--lang", "en"]
    env = {**os.environ, "GEO_MZ_SECRET_KEY": SECRET}
    with log.open("wb") as fh:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)


def _wait_ready(root: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited: {log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{root}/conformance", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    pytest.fail(f"server did not start: {log.read_text(errors='replace')}")


class SSE:
    """A tiny Server-Sent Events reader over urllib."""

    def __init__(self, url: str, last_id: int | None = None) -> None:
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = str(last_id)
        self.resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5)
        assert self.resp.headers["Content-Type"].startswith("text/event-stream")
        assert self.resp.readline().startswith(b"retry:")  # the stream has started

    def next_event(self, deadline: float) -> dict | None:
        fields: dict[str, str] = {}
        while time.monotonic() < deadline:
            line = self.resp.readline().decode().rstrip("\n")
            if not line:
                if "event" in fields:
                    return {
                        "id": int(fields["id"]),
                        "event": fields["event"],
                        "data": json.loads(fields.get("data", "null")),
                    }
                fields = {}
                continue
            if line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            fields[key] = value
        return None

    def close(self) -> None:
        self.resp.close()


def _post_incident(root: str, text: str) -> tuple[str, int]:
    body = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [113.06, 22.59]},
        "properties": {"kind": "flood", "description": text},
    }
    req = urllib.request.Request(
        f"{root}/collections/incidents/items",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **basic("reporter1")},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 201
        return json.loads(r.read())["id"], int(r.headers["X-Event-Id"])


def test_two_server_processes_see_each_others_edits(db, base, tmp_path):
    from webmap.testing_postgis import free_port

    users = base / "pengjiang.users.sqlite"
    procs, roots = [], []
    try:
        for name in ("a", "b"):
            port = free_port()
            log = tmp_path / f"serve_{name}.log"
            procs.append((_serve(db, users, port, log), log))
            roots.append(f"http://127.0.0.1:{port}")
        for (proc, log), root in zip(procs, roots, strict=True):
            _wait_ready(root, proc, log)
        a, b = roots
        stream = SSE(f"{b}/events")
        t0 = time.monotonic()
        fid, event_id = _post_incident(a, "A 进程上报")
        ev = stream.next_event(t0 + 10.0)  # a bound, not a timing assertion (shared machine)
        stream.close()
        assert ev is not None, "the edit made on A did not reach B's stream within 10 s"
        assert ev["id"] == event_id and ev["data"]["id"] == fid, ev
        # B serves the feature A wrote
        with urllib.request.urlopen(f"{b}/collections/incidents/items/{fid}", timeout=5) as r:
            assert json.loads(r.read())["properties"]["description"] == "A 进程上报"
        # B's client was offline while A took two more reports: reconnecting replays them
        missed = [_post_incident(a, f"离线期间 {i}") for i in range(2)]
        again = SSE(f"{b}/events", last_id=event_id)
        deadline = time.monotonic() + 5
        got = [again.next_event(deadline), again.next_event(deadline)]
        again.close()
        assert [(e["id"], e["data"]["id"]) for e in got if e] == [(i, f) for f, i in missed]
        # and an edit on B reaches a stream on A
        stream_a = SSE(f"{a}/events")
        t0 = time.monotonic()
        fid_b, id_b = _post_incident(b, "B 进程上报")
        ev = stream_a.next_event(t0 + 10.0)
        stream_a.close()
        assert ev is not None and ev["id"] == id_b and ev["data"]["id"] == fid_b
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def test_cli_import_refuses_a_database_that_holds_a_workspace(db, base):
    from click.testing import CliRunner

    from geo_mz.cli import main

    ws = str(base / "pengjiang.gpkg")
    r = CliRunner().invoke(main, ["webmap", "import", ws, "--database", db])
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

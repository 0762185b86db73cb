"""A write that finds the workspace locked by another reader answers 503 with Retry-After."""

from __future__ import annotations

import base64
import json
import sqlite3
from contextlib import closing

import pytest

pytest.importorskip("flask")

from geo_mz.core.gpkg_lock import OFD_LOCKS, WorkspaceLock
from webmap import create_app
from webmap.testing import PASSWORD, fresh_settings, sample_base

AUTH = "Basic " + base64.b64encode(f"reporter1:{PASSWORD}".encode()).decode()


@pytest.mark.skipif(not OFD_LOCKS, reason="in-place edits need open-file-description locks")
def test_a_write_blocked_by_a_reader_is_503_with_retry_after_and_nothing_written(
    tmp_path, monkeypatch
):
    settings = fresh_settings(sample_base(tmp_path / "base"), tmp_path / "ws")
    # the real lock, waiting 0.3 s instead of 10 s before it gives up
    monkeypatch.setitem(WorkspaceLock.exclusive.__wrapped__.__kwdefaults__, "timeout_s", 0.3)
    client = create_app(settings).test_client()
    body = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [113.08, 22.6]},
        "properties": {"kind": "fire", "description": "busy"},
    }
    headers = {"Authorization": AUTH, "Content-Type": "application/geo+json"}

    def count() -> int:
        r = client.get("/collections/incidents/items?limit=1000")
        return len(r.get_json()["features"])

    # the first incident creates the layer's table (a whole-layer write); then rows in place
    r = client.post("/collections/incidents/items", data=json.dumps(body), headers=headers)
    assert r.status_code == 201
    before = count()
    # another program reading the GeoPackage: SQLite's shared lock, held in a transaction
    with closing(sqlite3.connect(settings.workspace)) as reader:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM sqlite_master").fetchone()
        r = client.post("/collections/incidents/items", data=json.dumps(body), headers=headers)
        reader.execute("COMMIT")
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "2"
    got = r.get_json()
    assert got["code"] == "workspace_busy" and got["retry_after_s"] == 2
    assert "编辑未写入" in got["description"] and "the edit was not written" in got["description"]
    assert str(settings.workspace) in got["description"]  # names the file
    assert count() == before  # nothing was written
    # the lock released, the same write goes through
    r = client.post("/collections/incidents/items", data=json.dumps(body), headers=headers)
    assert r.status_code == 201
    assert count() == before + 1


def test_the_openapi_document_lists_the_busy_answer_of_every_write(tmp_path):
    settings = fresh_settings(sample_base(tmp_path / "base"), tmp_path / "ws")
    doc = create_app(settings).test_client().get("/openapi").get_json()
    busy = doc["components"]["responses"]["E503"]
    assert "workspace_busy" in busy["description"]
    assert busy["headers"]["Retry-After"]["schema"]["type"] == "integer"
    writes = [
        (path, method, op)
        for path, item in doc["paths"].items()
        if path.startswith("/collections/")
        for method, op in item.items()
        if method in ("post", "patch", "put", "delete")
    ]
    assert {(p, m) for p, m, _ in writes} >= {
        ("/collections/incidents/items", "post"),
        ("/collections/road_closures/items/{featureId}", "delete"),
        ("/collections/shelters/items/{featureId}", "patch"),
    }
    for path, method, op in writes:
        assert op["responses"]["503"] == {"$ref": "#/components/responses/E503"}, (path, method)

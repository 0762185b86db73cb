"""Web map, live side: Server-Sent Events with replay, push latency, and a real waitress server."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.request

import pytest
import shapely

pytest.importorskip("flask")
pytest.importorskip("waitress")

from webmap import create_app
from webmap.testing import PASSWORD, fresh_settings, running_server

INCIDENTS = "/collections/incidents/items"


@pytest.fixture
def app(base, tmp_path):
    app = create_app(fresh_settings(base, tmp_path / "ws", sse_keepalive_s=0.05))
    yield app
    app.extensions["webmap"].close()


def login(app, name="reporter1"):
    client = app.test_client()
    r = client.post("/login", json={"username": name, "password": PASSWORD})
    return client, {"X-CSRF-Token": r.json["csrf_token"]}


def report(client, csrf, text: str) -> str:
    body = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [113.08, 22.6]},
        "properties": {"kind": "fire", "description": text},
    }
    r = client.post(INCIDENTS, json=body, headers=csrf)
    assert r.status_code == 201, r.json
    return r.json["id"]


def parse(chunks: list[str]) -> list[dict]:
    """Events of a text/event-stream (comments and retry lines skipped)."""
    events = []
    for block in "".join(chunks).split("\n\n"):
        fields = dict(
            line.split(": ", 1)
            for line in block.splitlines()
            if ": " in line and not line.startswith(":")
        )
        if "event" in fields:
            events.append(
                {
                    "id": int(fields["id"]),
                    "event": fields["event"],
                    "data": json.loads(fields["data"]),
                }
            )
    return events


def read_events(response, n: int, timeout_s: float = 5.0) -> list[dict]:
    """Read a streamed response until ``n`` events arrived (keep-alives bound each wait)."""
    chunks: list[str] = []
    deadline = time.monotonic() + timeout_s
    stream = iter(response.response)
    while time.monotonic() < deadline and len(parse(chunks)) < n:
        try:
            chunk = next(stream)
        except StopIteration:
            break
        chunks.append(chunk.decode() if isinstance(chunk, bytes) else chunk)
    return parse(chunks)


def test_a_write_produces_an_event(app):
    client, csrf = login(app)
    fid = report(client, csrf, "仓库起火")
    r = client.get("/events?since=0")
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    assert r.headers["Cache-Control"] == "no-cache"
    events = read_events(r, 1)
    r.close()
    assert len(events) == 1
    ev = events[0]
    assert ev["id"] == 1 and ev["event"] == "change"
    assert ev["data"]["op"] == "create" and ev["data"]["layer"] == "incidents"
    assert ev["data"]["id"] == fid and ev["data"]["by"] == "reporter1"
    assert ev["data"]["feature"]["properties"]["description"] == "仓库起火"
    assert ev["data"]["etag"] == client.get(f"{INCIDENTS}/{fid}").headers["ETag"]


def test_reconnect_with_last_event_id_replays_what_was_missed(app):
    client, csrf = login(app)
    ids = [report(client, csrf, f"报告{i}") for i in range(3)]
    first = client.get("/events?since=0")
    seen = read_events(first, 2)[:2]
    first.close()
    assert [e["data"]["id"] for e in seen] == ids[:2]
    # offline while two more reports come in, then reconnect as a browser does
    ids += [report(client, csrf, f"报告{i}") for i in (3, 4)]
    again = client.get("/events", headers={"Last-Event-ID": str(seen[-1]["id"])})
    replay = read_events(again, 3)
    assert [e["data"]["id"] for e in replay] == ids[2:]
    assert [e["id"] for e in replay] == [3, 4, 5]
    # then live ones on the same stream
    ids.append(report(client, csrf, "之后"))
    live = read_events(again, 1)
    again.close()
    assert live[-1]["data"]["id"] == ids[-1] and live[-1]["id"] == 6


def test_stream_without_last_id_starts_with_the_next_event(app):
    client, csrf = login(app)
    report(client, csrf, "旧的")
    r = client.get("/events")
    new = report(client, csrf, "新的")
    events = read_events(r, 1)
    r.close()
    assert [e["data"]["id"] for e in events] == [new]


def test_event_stream_errors(app):
    client = app.test_client()
    r = client.get("/events", headers={"Last-Event-ID": "abc"})
    assert r.status_code == 400 and r.json["errors"][0]["field"] == "Last-Event-ID"
    assert client.get("/events?since=-2").status_code == 400
    assert client.get("/events?foo=1").status_code == 400
    # an id beyond the log (journal reset): the page is told to reload
    r = client.get("/events?since=99")
    events = read_events(r, 1, timeout_s=1)
    r.close()
    assert events[0]["event"] == "reset"


def test_push_reaches_a_waiting_stream_within_a_second(base, tmp_path):
    # keep-alives every 30 s: only the condition variable can wake the stream in time
    app = create_app(fresh_settings(base, tmp_path / "ws", sse_keepalive_s=30.0))
    writer, csrf = login(app)
    arrived: list[float] = []
    response = app.test_client().get("/events")

    def listen() -> None:
        if read_events(response, 1, timeout_s=10):
            arrived.append(time.monotonic())

    t = threading.Thread(target=listen)
    t.start()
    time.sleep(0.3)  # the listener is now blocked waiting
    sent = time.monotonic()
    report(writer, csrf, "测试推送")
    t.join(timeout=10)
    response.close()
    app.extensions["webmap"].close()
    assert arrived and arrived[0] - sent < 1.0


def test_real_server_serves_map_api_and_live_events(base, tmp_path):
    app = create_app(fresh_settings(base, tmp_path / "ws", sse_keepalive_s=0.5))
    with running_server(app) as root:
        page_req = urllib.request.Request(f"{root}/", headers={"Accept": "text/html"})
        with urllib.request.urlopen(page_req, timeout=10) as r:  # as a browser asks
            page = r.read().decode()
            assert r.status == 200 and "leaflet.js" in page
        with urllib.request.urlopen(f"{root}/collections", timeout=10) as r:
            cols = json.loads(r.read())
            assert "shelters" in {c["id"] for c in cols["collections"]}
            assert cols["links"][0]["href"] == f"{root}/collections"
        with urllib.request.urlopen(f"{root}/vendor/leaflet/leaflet.js", timeout=10) as r:
            assert r.status == 200 and b"Leaflet" in r.read(2000)
        # a live event over a real socket, within a second
        got: list[tuple[float, str]] = []

        def listen() -> None:
            with urllib.request.urlopen(f"{root}/events", timeout=10) as stream:
                for raw in stream:
                    line = raw.decode().strip()
                    if line.startswith("data: "):
                        got.append((time.monotonic(), line))
                        return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        time.sleep(0.5)
        body = {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [113.08, 22.6]},
            "properties": {"kind": "fire", "description": "真实服务器"},
        }
        auth = base64.b64encode(f"reporter1:{PASSWORD}".encode()).decode()
        post = urllib.request.Request(
            f"{root}/collections/incidents/items",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/geo+json", "Authorization": f"Basic {auth}"},
            method="POST",
        )
        sent = time.monotonic()
        with urllib.request.urlopen(post, timeout=10) as r:
            assert r.status == 201 and r.headers["Location"].startswith(root)
        listener.join(timeout=10)
        # delivery time is measured in bench/ (never asserted as wall-clock in a unit test)
        assert got and got[0][0] >= sent and "真实服务器" in got[0][1]


# -- live analysis events: noticed through the bus, sent once, never older ------------------
def _closure_row(app):
    """A small closure row on the first road of the sample (built as the API would)."""
    import geopandas as gpd

    from webmap.core.layers import closure_spec

    api = app.extensions["webmap"]
    road = api.store.frame("roads").geometry.iloc[0]
    spec = closure_spec("LineString")
    values = {"closure_id": "RC-T1", "reason": "测试", "effect": "closed", "created_by": "t"}
    return gpd.GeoDataFrame(
        {f.name: [values.get(f.name)] for f in spec.fields}, geometry=[road], crs="EPSG:4490"
    )


def test_an_edit_made_elsewhere_is_noticed_through_the_bus_and_sent_once(app):
    """Like another process's edit: committed to the store, announced only on the bus."""
    from webmap.core.analysis_live import LiveAnalysis, version_key
    from webmap.core.events import EventBus

    api = app.extensions["webmap"]
    bus = EventBus(api.store.last_event_id())
    runs: list[int] = []

    def compute() -> dict:
        runs.append(1)
        return {"version": f"{len(runs)}:-", "closures": len(api.store.frame("road_closures"))}

    feed = LiveAnalysis(api.store, bus, compute, lambda: True, lambda e: e)  # type: ignore[arg-type]
    feed.start_watching()
    try:
        seq0, _ = feed.live(None)
        row = _closure_row(app)
        change = api.store.apply(
            "road_closures", "RC-T1", op="create", build=lambda _b: row, user="t", role="admin"
        )
        bus.publish(change.event.id)  # what the PostGIS listener does for another process
        deadline = time.monotonic() + 20
        while feed.live(seq0)[0] == seq0 and time.monotonic() < deadline:
            time.sleep(0.05)
        seq1, chunks = feed.live(seq0)
        assert chunks and chunks[0].startswith("event: analysis\n"), chunks
        assert json.loads(chunks[0].split("data: ", 1)[1])["closures"] == 1
        pokes = bus.pokes
        assert feed.offer(chunks[0], version_key("1:-")) is False  # the same text: once only
        assert feed.offer("event: analysis\ndata: {}\n\n", version_key("0:-")) is False  # older
        assert bus.pokes == pokes
        newer = 'event: analysis\ndata: {"version": "5:-"}\n\n'
        feed.relay(newer)  # another process's newer result goes out
        assert feed.live(seq1) == (seq1 + 1, [newer]) and bus.pokes == pokes + 1
        feed.relay("event: analysis\ndata: {not json\n\n")  # unreadable: dropped, no error
        assert feed.live(seq1 + 1) == (seq1 + 1, [])
    finally:
        feed.close()


def test_geopackage_workers_share_analysis_results_through_the_journal(base, tmp_path):
    """Two apps on one workspace and journal, as two ``--workers``: the analysis is used on A
    only; B's streams get A's result when B's journal watcher calls ``poll_shared``."""
    settings = fresh_settings(base, tmp_path / "ws", sse_keepalive_s=0.05)
    a, b = create_app(settings), create_app(settings)
    api_a, api_b = a.extensions["webmap"], b.extensions["webmap"]
    try:
        assert a.test_client().get("/analysis/relief").status_code == 200  # in use on A
        seq_a, _ = api_a.analysis.live(None)
        seq_b, _ = api_b.analysis.live(None)
        client, csrf = login(a, "commander1")
        road = api_a.store.frame("roads").geometry.iloc[0]
        feature = {
            "type": "Feature",
            "geometry": json.loads(shapely.to_geojson(road)),
            "properties": {"reason": "测试"},
        }
        r = client.post("/collections/road_closures/items", json=feature, headers=csrf)
        assert r.status_code == 201, r.json
        deadline = time.monotonic() + 60
        while api_a.analysis.live(seq_a)[0] == seq_a and time.monotonic() < deadline:
            time.sleep(0.05)
        _, on_a = api_a.analysis.live(seq_a)
        assert on_a and on_a[0].startswith("event: analysis\n")
        assert api_b.analysis.live(seq_b)[1] == []  # B has not looked yet
        # A's stream gets the result before A has shared it through the journal (a moment
        # later, in A's analysis thread); B's watcher polls on every journal change.
        deadline = time.monotonic() + 30
        on_b: list[str] = []
        while not on_b and time.monotonic() < deadline:
            api_b.analysis.poll_shared()
            _, on_b = api_b.analysis.live(seq_b)
            time.sleep(0.02)
        assert on_b == on_a
        assert json.loads(on_b[0].split("data: ", 1)[1])["closures"] == 1
        seq_a2 = api_a.analysis.live(None)[0]
        api_a.analysis.poll_shared()  # its own result is not relayed back to itself
        assert api_a.analysis.live(None)[0] == seq_a2
    finally:
        api_a.close()
        api_b.close()

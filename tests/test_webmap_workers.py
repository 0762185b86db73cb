"""``geo-mz serve --workers 2``: a real supervisor and two forked workers on one port.

Reads reach both workers and agree with the workspace; an incident posted to whichever worker
reaches the live streams open on *both* (the GeoPackage journal is polled across processes)
and can be read back from both; 40 incidents posted at once land on both workers, which write
the one workspace in place together: none is lost, each worker serves all of them, and the file
passes SQLite's integrity check and reads whole with GDAL; Ctrl-C stops every process cleanly.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pyogrio
import pytest

pytest.importorskip("flask")
pytest.importorskip("uvicorn")
pytest.importorskip("a2wsgi")
if not hasattr(os, "fork"):
    pytest.skip("several workers need fork", allow_module_level=True)

from geo_mz.core import Workspace
from webmap.testing import PASSWORD, fresh_settings, start_serve, wait_ready

CONCURRENT = 40
AUTH = "Basic " + base64.b64encode(f"reporter1:{PASSWORD}".encode()).decode()


def fetch(url: str, **kw) -> tuple[int, dict[str, str], bytes]:
    """One request on a new connection (so the kernel may pick either worker)."""
    req = urllib.request.Request(url, **kw)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def until_both_workers(url: str, tries: int = 400) -> dict[str, bytes]:
    """GET ``url`` until each worker has answered once; return each worker's body."""
    bodies: dict[str, bytes] = {}
    for _ in range(tries):
        status, headers, body = fetch(url)
        assert status == 200, body[:300]
        bodies.setdefault(headers["x-worker"], body)
        if len(bodies) == 2:
            return bodies
    raise AssertionError(f"only workers {sorted(bodies)} answered in {tries} connections")


async def open_stream(port: int) -> tuple[str, asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /events HTTP/1.0\r\nHost: x\r\n\r\n")
    await writer.drain()
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)).decode("latin1")
    assert head.startswith("HTTP/1.1 200"), head
    worker = next(ln.split(":", 1)[1].strip() for ln in head.splitlines() if ":" in ln and
                  ln.lower().startswith("x-worker:"))  # fmt: skip
    return worker, reader, writer


async def streams_on_both_workers(port: int) -> dict[str, tuple]:
    streams: dict[str, tuple] = {}
    extra = []
    for _ in range(200):
        worker, reader, writer = await open_stream(port)
        if worker in streams:
            extra.append(writer)
        else:
            streams[worker] = (reader, writer)
        if len(streams) == 2:
            break
    for writer in extra:
        writer.close()
    assert len(streams) == 2, "streams landed on one worker only"
    return streams


async def read_until(reader: asyncio.StreamReader, needle: str, timeout_s: float) -> str:
    text = ""
    deadline = time.monotonic() + timeout_s
    while needle not in text:
        left = deadline - time.monotonic()
        assert left > 0, f"{needle!r} never came; got {text[-500:]!r}"
        chunk = await asyncio.wait_for(reader.read(65536), left)
        assert chunk, f"stream closed before {needle!r}"
        text += chunk.decode()
    return text


def test_two_workers_serve_reads_and_share_live_edits_then_stop_cleanly(base, tmp_path):
    settings = fresh_settings(base, tmp_path / "ws")
    args = ["--workspace", str(settings.workspace)]
    args += ["--port", "0", "--workers", "2", "--threads", "4"]  # the server prints its port
    log = tmp_path / "serve.log"
    proc = start_serve(args, log)
    try:
        deadline = time.monotonic() + 60
        while not (m := re.search(r"port: (\d+)", log.read_text(errors="replace"))):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        port = int(m.group(1))
        root = f"http://127.0.0.1:{port}"
        wait_ready(root, proc, log)
        children = [int(p) for p in subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()]  # fmt: skip
        assert len(children) == 2

        # reads: both workers answer, with the same page, equal to the workspace's layer
        shelters = Workspace(settings.workspace).read("shelters")
        bodies = until_both_workers(root + "/collections/shelters/items?limit=1000")
        pages = [json.loads(b) for b in bodies.values()]
        assert pages[0]["features"] == pages[1]["features"]
        assert pages[0]["numberMatched"] == len(shelters)
        assert len(pages[0]["features"]) == min(1000, len(shelters))

        # live: an incident posted to either worker reaches streams on both, and both read it
        async def scenario() -> tuple[dict[str, str], str]:
            streams = await streams_on_both_workers(port)
            feature = {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [113.08, 22.6]},
                "properties": {"kind": "fire", "description": "two workers"},
            }
            status, headers, body = await asyncio.to_thread(
                fetch,
                root + "/collections/incidents/items",
                data=json.dumps(feature).encode(),
                headers={"Content-Type": "application/geo+json", "Authorization": AUTH},
                method="POST",
            )
            assert status == 201, body[:300]
            needle = f"id: {headers['x-event-id']}\n"
            seen = {}
            for worker, (reader, writer) in streams.items():
                seen[worker] = await read_until(reader, needle, 10)
                writer.close()
            return seen, headers["location"]

        seen, location = asyncio.run(scenario())
        assert sorted(seen) == ["1", "2"]
        assert all("two workers" in text for text in seen.values())
        fid_url = location if location.startswith("http") else root + location
        after = until_both_workers(fid_url)
        assert all(json.loads(b)["properties"]["description"] == "two workers"
                   for b in after.values())  # fmt: skip

        # both workers write the one workspace at once (rows in place): nothing is lost, and
        # each worker's cached layer follows the other's edits (the file's stamp moves)
        def post(i: int) -> str:
            feature = {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [113.08 + i * 1e-4, 22.6]},
                "properties": {"kind": "fire", "description": f"concurrent {i}"},
            }
            status, headers, body = fetch(
                root + "/collections/incidents/items",
                data=json.dumps(feature).encode(),
                headers={"Content-Type": "application/geo+json", "Authorization": AUTH},
                method="POST",
            )
            assert status == 201, body[:300]
            return headers["x-worker"]

        with ThreadPoolExecutor(8) as pool:
            writers = list(pool.map(post, range(CONCURRENT)))
        assert sorted(set(writers)) == ["1", "2"]
        wanted = {f"concurrent {i}" for i in range(CONCURRENT)}
        pages = until_both_workers(root + "/collections/incidents/items?limit=1000")
        for page in map(json.loads, pages.values()):
            got = {f["properties"]["description"] for f in page["features"]}
            assert wanted <= got and page["numberMatched"] == CONCURRENT + 1

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        for pid in children:  # the supervisor reaped its workers: they are gone
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        text = log.read_text(errors="replace")
        assert "Traceback" not in text and "server processes: 2" in text
        with sqlite3.connect(f"file:{settings.workspace}?mode=ro", uri=True) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = pyogrio.read_dataframe(settings.workspace, layer="incidents")  # GDAL reads all
        assert wanted <= set(stored["description"]) and len(stored) == CONCURRENT + 1
        rec = Workspace(settings.workspace).layer_records().set_index("layer").loc["incidents"]
        assert int(rec["rows"]) == CONCURRENT + 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

"""Live-stream benchmark: ``geo-mz serve`` (as the README runs it) vs a bare async SSE app.

Settings
--------
* **geo-mz**: ``geo-mz serve --workspace pengjiang.gpkg`` in its own process (uvicorn, flask
  behind a2wsgi, ``/events`` on the event loop), the Pengjiang sample workspace. Each event is a
  real edit: ``POST /collections/incidents/items`` with HTTP Basic (credentials cached after
  the first), committed to the GeoPackage and the journal, then pushed to every stream.
* **bare**: a pure-ASGI app on the same uvicorn set-up (h11, uvloop when installed; no flask,
  no store): ``POST /publish`` puts a
  600-byte event on every open stream's queue. The floor for any Python SSE server here.
* Clients: N raw sockets (HTTP/1.0 ``GET /events``) in one asyncio process, spread over
  loopback addresses 127.0.0.1-20 (geo-mz caps streams per address; 1,000 maps from 20
  offices). ``E`` events, one every ``--gap`` seconds, sent one at a time by a writer thread.

Measured
--------
* delivery latency, p50 and p99 over all clients x events: from the writer sending the request
  to each client having read the event (for geo-mz this includes committing the edit, see the
  write latency; the server publishes before it answers, so clients usually have the event
  before the writer has its ``201``);
* fan-out p99: from the first client having an event to each other client having it (the
  streaming layer alone, without the commit);
* events lost: N x E minus the (client, event id) pairs received;
* write latency (request sent to response read), p50 and p99;
* the server's CPU milliseconds per event while the writes run (``/proc``: the write, its
  fan-out to every client and any reconnects): a figure the other tenants of a shared machine
  disturb much less than the wall-clock latencies;
* first, the edit's durable row write alone (``webmap.core.gpkg_rows``), in place vs the
  copy-and-replace write it replaced, on the same workspace file, alternating, same repetitions:
  the part of the write latency the storage sets;
* the same with reconnects: each client drops its stream after every k-th event (1/k of the
  clients at each event) and reconnects at once with ``Last-Event-ID``; the missed events come
  from the replay (geo-mz: its memory of recent events or the log; bare: a list). The latency of
  a replayed event counts from its write, so it includes the reconnection.

Run: ``.venv/bin/python bench/bench_sse.py [--clients 200 1000] [--events 20]
[--reconnect-every 4]``. The machine running it should be otherwise idle: the clients share it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ADDRS = [f"127.0.0.{i}" for i in range(1, 21)]
WARMUP_WRITES = 3
ID_LINE = re.compile(rb"^id: (\d+)$", re.MULTILINE)


# -- the bare server (run in its own process) ------------------------------------------------
def bare_app():
    queues: set[asyncio.Queue] = set()
    state = {"n": 0}
    history: list[bytes] = []  # every event, for Last-Event-ID replay (as geo-mz does)
    pad = "x" * 500

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/publish":
            while (await receive()).get("more_body"):
                pass
            state["n"] += 1
            chunk = f'id: {state["n"]}\nevent: change\ndata: {{"pad": "{pad}"}}\n\n'.encode()
            history.append(chunk)
            for q in queues:
                q.put_nowait(chunk)
            eid = [(b"x-event-id", str(state["n"]).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": eid})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        q: asyncio.Queue = asyncio.Queue()
        queues.add(q)
        gone = asyncio.Event()

        async def watch():
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()
            q.put_nowait(b"")

        task = asyncio.create_task(watch())
        try:
            headers = [(b"content-type", b"text/event-stream")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send(
                {"type": "http.response.body", "body": b"retry: 2000\n\n", "more_body": True}
            )
            last = dict(scope["headers"]).get(b"last-event-id")
            if last is not None and history[int(last) :]:
                missed = b"".join(history[int(last) :])  # ids are 1, 2, ...: index = id - 1
                await send({"type": "http.response.body", "body": missed, "more_body": True})
            while not gone.is_set():
                chunk = await q.get()
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            task.cancel()
            queues.discard(q)

    return app


def run_bare(port: int) -> None:
    import uvicorn

    uvicorn.run(  # the same uvicorn set-up as geo-mz serve (webmap.asgi)
        bare_app(), host="127.0.0.1", port=port, log_level="warning", backlog=4096, http="h11"
    )


# -- servers ------------------------------------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server did not start")


def start_geomz(tmp: Path) -> tuple[subprocess.Popen, str, dict[str, str]]:
    from webmap.testing import PASSWORD, fresh_settings, sample_base, start_serve
    from webmap.testing import wait_ready as wait_served

    base = sample_base(tmp / "base")
    settings = fresh_settings(base, tmp / "ws")
    port = free_port()
    log = tmp / "serve.log"
    proc = start_serve(["--workspace", str(settings.workspace), "--port", str(port)], log)
    root = f"http://127.0.0.1:{port}"
    wait_served(root, proc, log)
    auth = "Basic " + base64.b64encode(f"reporter1:{PASSWORD}".encode()).decode()
    return proc, root, {"Authorization": auth, "Content-Type": "application/geo+json"}


def start_bare() -> tuple[subprocess.Popen, str, dict[str, str]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--bare-server", str(port)])
    root = f"http://127.0.0.1:{port}"
    wait_ready(root + "/publish", proc)
    return proc, root, {}


# -- the row write alone -----------------------------------------------------------------------
def row_writes(tmp: Path, reps: int, pad_mib: int = 0) -> None:
    """Time one incident row written in place and by copy-and-replace, alternating.

    ``pad_mib`` grows the workspace by a table of that many MiB (as a district's roads and
    buildings would), to show how each scheme scales with the file.
    """
    import sqlite3

    import geopandas as gpd
    import pandas as pd
    import shapely

    from webmap.core import gpkg_rows
    from webmap.core.layers import layer_spec
    from webmap.testing import fresh_settings, sample_base

    base = sample_base(tmp / "base")
    path = Path(fresh_settings(base, tmp / f"rows{pad_mib}").workspace)
    if pad_mib:
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE bench_padding (b BLOB)")
            for _ in range(pad_mib):
                conn.execute("INSERT INTO bench_padding VALUES (?)", (os.urandom(2**20),))
    spec = layer_spec("incidents")
    ways = {
        "in place": lambda fid, row: gpkg_rows.write_row(path, "incidents", spec, fid, row),
        "copy": lambda fid, row: gpkg_rows.write_row(path, "incidents", spec, fid, row, copy=True),
    }
    times: dict[str, list[float]] = {k: [] for k in ways}
    for i in range(reps + 2):  # the first two of each are warm-up
        for name in ways if i % 2 == 0 else reversed(list(ways)):
            row = gpd.GeoDataFrame(
                {
                    "incident_id": [f"bench-{name}-{i}"],
                    "kind": ["fire"],
                    "reported_at": [pd.Timestamp("2026-07-01T08:00:00")],
                    "status": ["open"],
                },
                geometry=[shapely.Point(113.08, 22.6)],
                crs="EPSG:4490",
            )
            t = time.perf_counter()
            ways[name](f"bench-{name}-{i}", row)
            if i >= 2:
                times[name].append((time.perf_counter() - t) * 1000)
    size = path.stat().st_size / 2**20
    for name, ms in times.items():
        print(
            f"row write {name:8}: p50 {np.percentile(ms, 50):6.1f} ms, p99 "
            f"{np.percentile(ms, 99):6.1f} ms ({reps} writes, {size:.1f} MiB workspace, "
            f"load average {os.getloadavg()[0]:.1f})",
            flush=True,
        )


# -- clients ------------------------------------------------------------------------------------
async def client(
    root: str,
    src: str,
    arrivals: dict[int, float],
    ready: asyncio.Event,
    reconnect_every: int,
    offset: int,
    counts: list[int],
) -> None:
    """One map: read events; with ``reconnect_every`` > 0, drop the connection after every
    ``reconnect_every``-th event (staggered by ``offset``) and reconnect with Last-Event-ID."""
    host, port = root.removeprefix("http://").split(":")
    last: int | None = None
    while True:
        reader, writer = await asyncio.open_connection(host, int(port), local_addr=(src, 0))
        head_lines = "GET /events HTTP/1.0\r\nHost: bench\r\n"
        if last is not None:
            head_lines += f"Last-Event-ID: {last}\r\n"
        writer.write((head_lines + "\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(head.decode(errors="replace"))
        counts[0] += 1
        ready.set()
        buf = b""
        drop = False
        try:
            while not drop and (data := await reader.read(65536)):
                now = time.perf_counter()
                buf += data
                cut = buf.rfind(b"\n\n")
                if cut < 0:
                    continue
                for m in ID_LINE.findall(buf[:cut]):
                    eid = int(m)
                    arrivals.setdefault(eid, now)
                    last = eid if last is None else max(last, eid)
                    if reconnect_every and (eid + offset) % reconnect_every == 0:
                        drop = True
                buf = buf[cut + 2 :]
        finally:
            writer.close()
        if not drop:
            return


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux ``/proc``; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    root: str,
    headers: dict[str, str],
    n: int,
    events: int,
    gap: float,
    bare: bool,
    reconnect_every: int = 0,
    pid: int = 0,
):
    path = "/publish" if bare else "/collections/incidents/items"
    body = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [113.08, 22.6]},
        "properties": {"kind": "fire", "description": "bench"},
    }
    done: list[tuple[int, float, float]] = []  # (event id, sent, answered)

    def writer(first_id: int, count: int = events, keep: bool = True) -> None:
        for i in range(count):
            req = urllib.request.Request(
                root + path, data=json.dumps(body).encode(), headers=headers, method="POST"
            )
            t0 = time.perf_counter()
            with urllib.request.urlopen(req, timeout=60) as r:
                r.read()
                eid = int(r.headers.get("X-Event-Id") or first_id + i)
            if keep:
                done.append((eid, t0, time.perf_counter()))
            time.sleep(gap)

    # Warm-up, the same for both servers, before any stream opens: the first edit of a fresh
    # geo-mz server reads and validates its layers (hundreds of ms), which with 20 events
    # would be the p99 of every row.
    writer(0, WARMUP_WRITES, keep=False)

    counts = [0]  # connections made (first ones and reconnects)
    cpu = [0.0, 0.0]  # the server's CPU seconds when the writes start and end

    async def run() -> list[dict[int, float]]:
        arrivals = [{} for _ in range(n)]
        readies = [asyncio.Event() for _ in range(n)]
        tasks = [
            asyncio.create_task(
                client(
                    root,
                    ADDRS[i % len(ADDRS)],
                    arrivals[i],
                    readies[i],
                    reconnect_every,
                    i,
                    counts,
                )
            )
            for i in range(n)
        ]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
        # the first event id of this run: bare counts from 1 per process, geo-mz answers it
        thread = threading.Thread(target=writer, args=(1,))
        cpu[0] = cpu_s(pid)
        thread.start()
        while thread.is_alive():
            await asyncio.sleep(0.05)
        cpu[1] = cpu_s(pid)
        await asyncio.sleep(3.0)  # let the last event reach everyone
        for t in tasks:
            t.cancel()
        return arrivals

    arrivals = asyncio.run(run())
    lat, spread, lost = [], [], 0
    for eid, sent, _ in done:
        got = [arr[eid] for arr in arrivals if eid in arr]
        lost += len(arrivals) - len(got)
        lat += [t - sent for t in got]
        spread += [t - min(got) for t in got] if got else []
    writes = np.array([a - s for _, s, a in done]) * 1000
    cpu_ms = (cpu[1] - cpu[0]) * 1000 / max(len(done), 1)  # per event: write + fan-out (+ idle)
    return np.array(lat) * 1000, np.array(spread) * 1000, lost, writes, counts[0] - n, cpu_ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[200, 1000])
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--gap", type=float, default=0.25, help="seconds between events")
    ap.add_argument(
        "--reconnect-every",
        type=int,
        default=4,
        help="in the reconnect runs each client drops its stream after every k-th event "
        "(staggered: 1/k of the clients per event) and reconnects with Last-Event-ID; 0: none",
    )
    ap.add_argument(
        "--row-writes", type=int, default=40, help="row writes timed alone per scheme (0: none)"
    )
    ap.add_argument(
        "--row-writes-pad",
        type=int,
        default=50,
        help="also time row writes (a quarter as many) on the workspace grown by this many MiB",
    )
    ap.add_argument("--slowest", type=int, default=0, help="print the N slowest writes per row")
    ap.add_argument("--bare-server", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_server is not None:
        run_bare(args.bare_server)
        return
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import uvicorn

    try:
        import uvloop

        loop = f"uvloop {uvloop.__version__}"
    except ImportError:
        loop = "asyncio"
    print(
        f"bench_sse: {platform.python_version()}, uvicorn {uvicorn.__version__} (h11, {loop}), "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; clients {args.clients}, "
        f"{args.events} events {args.gap} s apart; clients in one asyncio process over "
        f"{len(ADDRS)} loopback addresses; a fresh server per row, {WARMUP_WRITES} warm-up writes "
        "before the streams open, the order of the two servers alternating; latency measured "
        "from the start of the write request"
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench_sse_"))
    if args.row_writes:
        row_writes(tmp / "rows", args.row_writes)
        if args.row_writes_pad:
            row_writes(tmp / "rows", max(args.row_writes // 4, 5), args.row_writes_pad)
    print(
        f"{'server':8} {'clients':>7} {'reconnect':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'fan p99 ms':>10} {'lost':>6} {'reconnects':>10} {'write p50':>9} {'write p99':>9} "
        f"{'CPU/event':>9} {'load':>5}"
    )
    modes = [0] + ([args.reconnect_every] if args.reconnect_every else [])
    row = 0
    try:
        for n in args.clients:
            for every in modes:
                names = ["geo-mz", "bare"] if row % 2 == 0 else ["bare", "geo-mz"]
                row += 1
                for name in names:
                    proc, root, headers = (
                        start_geomz(tmp / f"g{n}_{every}") if name == "geo-mz" else start_bare()
                    )
                    try:
                        lat, spread, lost, writes, again, cpu_ms = measure(
                            root, headers, n, args.events, args.gap, name == "bare", every, proc.pid
                        )
                    finally:
                        proc.terminate()
                        proc.wait(timeout=30)
                    p50, p99 = (np.percentile(lat, q) if len(lat) else np.nan for q in (50, 99))
                    fan99 = np.percentile(spread, 99) if len(spread) else np.nan
                    w50, w99 = np.percentile(writes, 50), np.percentile(writes, 99)
                    label = f"every {every}" if every else "no"
                    print(
                        f"{name:8} {n:>7} {label:>9} {p50:8.1f} {p99:8.1f} {fan99:10.1f} "
                        f"{lost:>6} {again:>10} {w50:9.1f} {w99:9.1f} {cpu_ms:9.1f} "
                        f"{os.getloadavg()[0]:5.1f}",
                        flush=True,
                    )
                    if args.slowest:
                        worst = ", ".join(f"{w:.0f}" for w in sorted(writes)[-args.slowest :])
                        print(f"  slowest writes (ms, in order): {worst}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

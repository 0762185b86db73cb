"""Web-map load benchmark on loopback: feature reads under load, and live-update delivery.

The server (``webmap`` on waitress, enough threads for every client) runs in its own process on
127.0.0.1 over a copy of the Pengjiang sample workspace, so the clients do not share its GIL.
The clients are one asyncio loop in this process, speaking plain HTTP/1.1 over sockets:

1. ``--sse`` live-update clients (default 200) open ``GET /events`` and wait;
2. ``--readers`` concurrent readers (default 50) loop over
   ``GET /collections/{layer}/items?limit=100&offset=...`` (a mix of layers, some with a
   ``bbox``) for ``--duration`` seconds;
3. meanwhile ``--posts`` incidents (default 5) are posted one a second (HTTP Basic, reporter),
   and each live client notes when each one arrives.

Printed: read latency p50/p99/max and throughput, write latency, event delivery latency
p50/p99/max (from the start of the POST to the event at a client, over every client and
event) and the errors (non-200 reads, failed connections, events a client never got). Every
count and wait is bounded; the run stops by itself. Only 127.0.0.1 is used.

Run: ``.venv/bin/python bench/bench_webmap.py [--readers 50] [--sse 200] [--duration 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from webmap.testing import PASSWORD, sample_base

HOST = "127.0.0.1"
LAYERS = ("shelters", "admin_units", "roads", "place_names", "elder_care", "incidents")
BBOX = "112.95,22.55,113.10,22.75"
INSIDE = (113.0, 22.7)  # lon, lat inside the jurisdiction
SERVER = """
import sys, waitress
from webmap import create_app
from webmap.testing import fresh_settings
app = create_app(fresh_settings(sys.argv[1], sys.argv[2], sse_keepalive_s=2.0))
server = waitress.create_server(app, host="127.0.0.1", port=0, threads=int(sys.argv[3]),
                                connection_limit=int(sys.argv[4]), asyncore_use_poll=True)
print(server.effective_port, flush=True)
server.run()
"""


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def figures(name: str, ms: list[float]) -> str:
    if not ms:
        return f"{name}: none"
    return (
        f"{name}: n={len(ms)} p50={pct(ms, 50):.1f} ms p99={pct(ms, 99):.1f} ms "
        f"max={max(ms):.1f} ms mean={statistics.fmean(ms):.1f} ms"
    )


async def request(
    port: int, method: str, target: str, body: bytes = b"", headers: dict | None = None
) -> tuple[int, bytes]:
    """One HTTP/1.1 request on a new connection (``Connection: close``); status and body."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        head = [f"{method} {target} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body:
            head.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    status = int(status_line.split()[1])
    _, _, payload = rest.partition(b"\r\n\r\n")
    return status, payload


class Stats:
    def __init__(self) -> None:
        self.reads: list[float] = []
        self.writes: list[float] = []
        self.delivery: list[float] = []
        self.after_commit: list[float] = []
        self.errors: dict[str, int] = {}
        self.posted: dict[str, float] = {}  # feature id -> monotonic time the POST started
        self.answered: dict[str, float] = {}  # feature id -> time its 201 response arrived

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def reader_loop(port: int, stop: float, stats: Stats, rng: random.Random) -> None:
    while time.monotonic() < stop:
        layer = rng.choice(LAYERS)
        target = f"/collections/{layer}/items?limit=100&offset={rng.randrange(0, 500)}"
        if rng.random() < 0.3:
            target += f"&bbox={BBOX}"
        t0 = time.monotonic()
        try:
            status, _ = await asyncio.wait_for(request(port, "GET", target), timeout=30)
        except (TimeoutError, OSError, ValueError, IndexError):
            stats.error("read failed")
            continue
        stats.reads.append((time.monotonic() - t0) * 1000)
        if status != 200:
            stats.error(f"read HTTP {status}")


async def sse_client(
    port: int,
    ready: asyncio.Event,
    connected: list[int],
    seen: dict[str, float],
    stop: asyncio.Event,
) -> None:
    """Hold an event stream open; note when each incident's event arrives."""
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        return
    try:
        writer.write(
            f"GET /events HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        first = True
        while not stop.is_set():
            line = await reader.readline()
            if not line:
                return
            if first and line.startswith(b"retry:"):
                first = False
                connected[0] += 1
                if connected[0] >= connected[1]:
                    ready.set()
            if line.startswith(b"data: "):
                now = time.monotonic()
                try:
                    data = json.loads(line[6:])
                except ValueError:
                    continue
                if isinstance(data, dict) and data.get("layer") == "incidents":
                    seen.setdefault(str(data.get("id")), now)
    finally:
        writer.close()


async def poster(port: int, n: int, stats: Stats) -> None:
    token = base64.b64encode(f"reporter1:{PASSWORD}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
    for i in range(n):
        await asyncio.sleep(1.0)
        body = {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": list(INSIDE)},
            "properties": {"kind": "flood", "description": f"bench {i}"},
        }
        t0 = time.monotonic()
        try:
            status, payload = await asyncio.wait_for(
                request(
                    port, "POST", "/collections/incidents/items", json.dumps(body).encode(), headers
                ),
                timeout=30,
            )
        except (TimeoutError, OSError, ValueError, IndexError):
            stats.error("post failed")
            continue
        t1 = time.monotonic()
        stats.writes.append((t1 - t0) * 1000)
        if status != 201:
            stats.error(f"post HTTP {status}")
            continue
        fid = json.loads(payload)["id"]
        stats.posted[fid], stats.answered[fid] = t0, t1


async def run(port: int, args: argparse.Namespace, stats: Stats) -> None:
    ready, stop_sse = asyncio.Event(), asyncio.Event()
    connected = [0, args.sse]
    seen: list[dict[str, float]] = [{} for _ in range(args.sse)]
    sse = [
        asyncio.create_task(sse_client(port, ready, connected, seen[i], stop_sse))
        for i in range(args.sse)
    ]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ready.wait(), timeout=30)
    if connected[0] < args.sse:
        stats.errors["event streams not connected"] = args.sse - connected[0]
    print(f"{connected[0]} event streams open; {args.readers} readers for {args.duration:g} s")

    stop = time.monotonic() + args.duration
    rng = random.Random(0)
    readers = [
        asyncio.create_task(reader_loop(port, stop, stats, random.Random(rng.random())))
        for _ in range(args.readers)
    ]
    t_reads = time.monotonic()
    await poster(port, args.posts, stats)
    await asyncio.gather(*readers)
    read_s = time.monotonic() - t_reads

    # every open stream should get every posted incident; wait (bounded) for the stragglers
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if all(fid in s for s in seen[: connected[0]] for fid in stats.posted):
            break
        await asyncio.sleep(0.05)
    stop_sse.set()
    for task in sse:
        task.cancel()
    await asyncio.gather(*sse, return_exceptions=True)
    for s in seen[: connected[0]]:
        for fid, t0 in stats.posted.items():
            if fid in s:
                stats.delivery.append((s[fid] - t0) * 1000)
                stats.after_commit.append(max(0.0, s[fid] - stats.answered[fid]) * 1000)
            else:
                stats.error("event never delivered")
    print(f"reads: {len(stats.reads) / read_s:.0f} per s over {read_s:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--sse", type=int, default=200)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--posts", type=int, default=5)
    parser.add_argument("--base", type=Path, help="reuse a sample-workspace folder")
    args = parser.parse_args()
    args.posts = max(1, min(args.posts, int(args.duration)))
    threads = args.readers + args.sse + 16
    with tempfile.TemporaryDirectory(prefix="bench_webmap_") as tmp:
        base = sample_base(args.base or Path(tmp) / "base")
        server = subprocess.Popen(
            [
                sys.executable,
                "-c",
                SERVER,
                str(base),
                str(Path(tmp) / "ws"),
                str(threads),
                str(threads + 100),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            port = int(server.stdout.readline())  # type: ignore[union-attr]
            print(f"server on {HOST}:{port}, {threads} threads (pid {server.pid})")
            stats = Stats()
            asyncio.run(asyncio.wait_for(run(port, args, stats), timeout=args.duration + 90))
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    print(figures("read /collections/{layer}/items", stats.reads))
    print(figures("write POST incidents", stats.writes))
    print(figures(f"event delivery ({len(stats.posted)} incidents x streams)", stats.delivery))
    print(figures("event delivery after the 201 response (0 if before)", stats.after_commit))
    print(f"errors: {sum(stats.errors.values())} {stats.errors or ''}")


if __name__ == "__main__":
    main()

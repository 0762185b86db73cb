"""OGC API items under load: ``geo-mz serve`` vs pygeoapi (OGR) vs flask+pyogrio, same run.

Data
----
The Pengjiang sample workspace with its ``shelters`` layer replaced by ``--points`` (default
100,000) shelters: the sample's rows repeated, each at a seeded random point in the county's
box, validated and written by ``Workspace.write_layers``. The peers read the very same rows
from a plain GeoPackage written from that layer (``points.gpkg``, layer ``shelters``, lon/lat:
EPSG:4490 and WGS84 are the same numbers at map precision).

Servers (each on 127.0.0.1, a free port, started once and kept for the whole run)
-------------------------------------------------------------------------------
* ``geo-mz``: ``geo-mz serve --workspace ws.gpkg`` exactly as the README runs it for a
  GeoPackage (one process: uvicorn, flask on 16 threads, ``/events`` on the event loop);
* ``geo-mz -w2``: the same with ``--workers 2`` (two forked workers, ``SO_REUSEPORT``);
* ``pygeoapi``: pygeoapi's flask app with its OGR provider on the GeoPackage, under
  ``gunicorn -w 2`` (sync workers: pygeoapi's documented deployment), logging at ERROR, with
  ``simplejson`` installed (GDAL 3.6's ``Feature.ExportToJson`` tries ``import simplejson``
  for every feature; without it the failing import makes pygeoapi 2-3x slower);
* ``flask+pyogrio``: a minimal flask app (``peer_app`` below): ``pyogrio.read_dataframe`` with
  ``bbox``/``skip_features``/``max_features`` per request and ``GeoDataFrame.to_json``, under
  ``gunicorn -w 2`` (sync).

Load
----
wrk (``apt-get install wrk``; 2 threads, ``--clients`` connections, 30 s timeout, HTTP/1.1
keep-alive where the server keeps it), ``Accept: application/geo+json``, paths rotated from a
seeded list shared by every server:

* ``bbox``: ``/collections/shelters/items?bbox=...&limit=100`` (boxes of 0.015 degrees around
  random points; each holds well over 100 points, so every server returns exactly 100);
* ``pages``: ``/collections/shelters/items?limit=1000&offset=k*1000``.

Before the load every server is asked the same bbox and page: the counts and the shelter ids
must agree (printed). Each round measures every server in a rotated order after a warm-up in
round 1. Reported: req/s, p50/p99 latency (wrk's), errors (non-2xx and socket errors), and
ratios to pygeoapi from the same round. Then ``geo-mz`` reads (bbox) with ``--streams`` idle
``/events`` streams open (held by a separate process from 127.0.0.1-20) vs none, alone first.

wrk and the servers share the 2 CPUs (the same for every side); on a shared box the figures are
noisy: compare ratios within one run.

Run: ``.venv/bin/python bench/bench_ogc_load.py [--points 100000] [--seconds 10] [--rounds 2]``
(needs the ``bench`` extra: pygeoapi, gunicorn and GDAL's Python bindings for the OGR
provider, e.g. ``pip install GDAL==$(gdal-config --version)`` after ``apt-get install
libgdal-dev``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from importlib.metadata import version
from pathlib import Path

HOST = "127.0.0.1"
LAYER = "shelters"
BOX_DEG = 0.015
ADDRS = [f"127.0.0.{i}" for i in range(1, 21)]
ACCEPT = "application/geo+json"


# -- the flask+pyogrio peer (run by gunicorn: bench_ogc_load:peer_app()) ------------------------
def peer_app():
    """A minimal OGC-API-like items endpoint over a GeoPackage: pyogrio per request."""
    import pyogrio
    from flask import Flask, Response, abort, request

    path = os.environ["PEER_GPKG"]
    app = Flask("peer")

    @app.get("/collections/<cid>/items")
    def items(cid: str):
        if cid != LAYER:
            abort(404)
        limit = min(int(request.args.get("limit", 10)), 10_000)
        offset = int(request.args.get("offset", 0))
        bbox = request.args.get("bbox")
        box = tuple(float(v) for v in bbox.split(",")) if bbox else None
        gdf = pyogrio.read_dataframe(
            path, layer=LAYER, bbox=box, skip_features=offset, max_features=limit
        )
        return Response(gdf.to_json(), mimetype=ACCEPT)

    @app.get("/conformance")
    def conformance():
        return {"conformsTo": []}

    return app


# -- data ---------------------------------------------------------------------------------------
def make_data(tmp: Path, n: int) -> tuple[Path, Path, tuple[float, float, float, float]]:
    import numpy as np
    import pyogrio
    import shapely

    from geo_mz.core import Workspace
    from webmap.testing import fresh_settings, sample_base

    settings = fresh_settings(sample_base(tmp / "base"), tmp / "ws")
    ws = Workspace(settings.workspace)
    sample = ws.read(LAYER)
    rng = np.random.default_rng(0)
    x0, y0, x1, y1 = sample.total_bounds
    rows = sample.iloc[rng.integers(0, len(sample), n)].reset_index(drop=True)
    rows[f"{LAYER[:-1]}_id"] = [f"SH{i:06d}" for i in range(n)]
    xy = rng.uniform((x0, y0), (x1, y1), (n, 2))
    rows = rows.set_geometry(shapely.points(xy), crs=sample.crs)
    prov = {"synthetic": True, "source": "bench_ogc_load", "method": "sample rows, random points"}
    ws.write_layers({LAYER: rows}, {LAYER: prov})
    stored = Workspace(settings.workspace).read(LAYER)
    peer = tmp / "points.gpkg"
    lonlat = stored.set_crs(4326, allow_override=True)  # GPKG 1.2: older GDALs read it quietly
    pyogrio.write_dataframe(lonlat, peer, layer=LAYER, dataset_options={"VERSION": "1.2"})
    return settings.workspace, peer, (x0, y0, x1, y1)


def paths(bounds: tuple[float, float, float, float], n: int, seed: int = 1) -> dict[str, list]:
    rnd = random.Random(seed)
    x0, y0, x1, y1 = bounds
    h = BOX_DEG / 2
    boxes = []
    for _ in range(500):
        cx, cy = rnd.uniform(x0 + h, x1 - h), rnd.uniform(y0 + h, y1 - h)
        boxes.append(f"{cx - h:.5f},{cy - h:.5f},{cx + h:.5f},{cy + h:.5f}")
    items = f"/collections/{LAYER}/items"
    return {
        "bbox": [f"{items}?bbox={b}&limit=100" for b in boxes],
        "pages": [f"{items}?limit=1000&offset={k * 1000}" for k in range(n // 1000)],
    }


# -- servers ------------------------------------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: server exited\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{url}: server did not start")


def pygeoapi_config(tmp: Path, peer: Path, port: int) -> dict[str, str]:
    import yaml

    cfg = {
        "server": {
            "bind": {"host": HOST, "port": port},
            "url": f"http://{HOST}:{port}",
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "languages": ["en-US"],
            "limits": {"default_items": 10, "max_items": 10_000},
            "map": {"url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png", "attribution": ""},
        },
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {
                "title": "bench",
                "description": "bench",
                "keywords": ["bench"],
                "terms_of_service": "",
                "url": "http://example.org",
            },
            "license": {"name": "CC-BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"},
            "provider": {"name": "bench", "url": "http://example.org"},
            "contact": {"name": "bench"},
        },
        "resources": {
            LAYER: {
                "type": "collection",
                "title": LAYER,
                "description": "100k points",
                "keywords": ["points"],
                "links": [],
                "extents": {"spatial": {"bbox": [-180, -90, 180, 90]}},
                "providers": [
                    {
                        "type": "feature",
                        "name": "OGR",
                        "data": {
                            "source_type": "GPKG",
                            "source": str(peer),
                            "source_capabilities": {"paging": True},
                            "gdal_ogr_options": {"EMPTY_AS_NULL": "NO", "CPL_DEBUG": "NO"},
                        },
                        "id_field": f"{LAYER[:-1]}_id",
                        "layer": LAYER,
                    }
                ],
            }
        },
    }
    path = tmp / "pygeoapi.yml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    openapi = tmp / "pygeoapi-openapi.yml"
    exe = str(Path(sys.executable).parent / "pygeoapi")
    subprocess.run([exe, "openapi", "generate", str(path), "-of", str(openapi)], check=True)
    return {"PYGEOAPI_CONFIG": str(path), "PYGEOAPI_OPENAPI": str(openapi)}


def start_servers(
    tmp: Path, ws: Path, peer: Path, only: set[str], threads: int | None = None
) -> dict[str, dict]:
    from webmap.testing import SECRET

    gunicorn = [sys.executable, "-m", "gunicorn", "-w", "2", "--log-level", "warning"]
    cli = [sys.executable, "-c", "import sys; from geo_mz.cli import main; sys.exit(main())"]
    plans: dict[str, tuple[list[str], dict[str, str]]] = {}
    port = {k: free_port() for k in ("geo-mz", "geo-mz -w2", "pygeoapi", "flask+pyogrio")}
    serve = [*cli, "serve", "--workspace", str(ws)]
    serve += ["--threads", str(threads)] if threads else []
    env_gm = {"GEO_MZ_SECRET_KEY": SECRET}
    plans["geo-mz"] = ([*serve, "--port", str(port["geo-mz"])], env_gm)
    plans["geo-mz -w2"] = ([*serve, "--port", str(port["geo-mz -w2"]), "--workers", "2"], env_gm)
    if "pygeoapi" in only:
        env = pygeoapi_config(tmp, peer, port["pygeoapi"])
        bind = ["-b", f"{HOST}:{port['pygeoapi']}", "pygeoapi.flask_app:APP"]
        plans["pygeoapi"] = ([*gunicorn, *bind], env)
    here = str(Path(__file__).resolve().parent)
    bind = ["-b", f"{HOST}:{port['flask+pyogrio']}", "--chdir", here, "bench_ogc_load:peer_app()"]
    plans["flask+pyogrio"] = ([*gunicorn, *bind], {"PEER_GPKG": str(peer)})
    servers = {}
    for name, (cmd, env) in plans.items():
        if name not in only:
            continue
        log = tmp / f"{name.replace(' ', '_').replace('+', '_')}.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                cmd, env={**os.environ, **env}, stdout=fh, stderr=subprocess.STDOUT
            )
        root = f"http://{HOST}:{port[name]}"
        servers[name] = {"proc": proc, "root": root, "cmd": cmd, "log": log}
    for s in servers.values():
        wait_ready(s["root"] + f"/collections/{LAYER}/items?limit=1", s["proc"], s["log"])
    return servers


def stop(servers: dict[str, dict]) -> None:
    for s in servers.values():
        if s["proc"].poll() is None:
            s["proc"].send_signal(2)  # SIGINT: geo-mz stops gracefully, gunicorn too
    for s in servers.values():
        try:
            s["proc"].wait(timeout=30)
        except subprocess.TimeoutExpired:
            s["proc"].kill()


# -- same answers -------------------------------------------------------------------------------
def ids_of(root: str, path: str) -> list[str]:
    req = urllib.request.Request(root + path, headers={"Accept": ACCEPT})
    with urllib.request.urlopen(req, timeout=60) as r:
        body = json.loads(r.read())
    key = f"{LAYER[:-1]}_id"
    return sorted(str(f["properties"].get(key, f.get("id"))) for f in body["features"])


def check_same(servers: dict[str, dict], bbox_path: str, page_path: str) -> None:
    for label, path in (("bbox", bbox_path), ("page", page_path)):
        got = {name: ids_of(s["root"], path) for name, s in servers.items()}
        counts = {name: len(v) for name, v in got.items()}
        ref = next(iter(got.values()))
        same = all(v == ref for v in got.values())
        note = "same ids" if same else "ids differ (servers order a bbox page differently)"
        print(f"check {label}: features {counts}; {note}")
        if len(set(counts.values())) != 1:
            raise SystemExit(f"servers disagree on {path}: {counts}")


# -- wrk ----------------------------------------------------------------------------------------
LUA = """
local paths = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1], {["Accept"] = "%s"})
end
"""
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(root: str, plist: list[str], seconds: float, clients: int, tmp: Path) -> dict:
    script = tmp / "paths.lua"
    rnd = random.Random(len(plist))
    order = plist[:]
    rnd.shuffle(order)
    script.write_text(LUA % (", ".join(json.dumps(p) for p in order), ACCEPT), encoding="utf-8")
    cmd = ["wrk", "-t2", f"-c{clients}", f"-d{seconds:g}s", "--timeout", "30s", "--latency"]
    out = subprocess.run(
        [*cmd, "-s", str(script), root], capture_output=True, text=True, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for q in ("50", "99"):
        m = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        lat[q] = float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors += int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    # read errors are connections a sync gunicorn worker closed after answering: not failures
    errors += sum(int(m.group(i)) for i in (1, 3, 4)) if m else 0
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    drain(root, plist[0])
    return {"rps": rps, "p50": lat["50"], "p99": lat["99"], "errors": errors, "n": reqs}


def drain(root: str, path: str) -> None:
    """Wait until the requests wrk left queued are done (one request behind them returns).

    A sync gunicorn worker answers every accepted request even when wrk has gone, and a2wsgi's
    threads finish theirs: without this the next measurement would start behind that backlog.
    """
    req = urllib.request.Request(root + path, headers={"Accept": ACCEPT})
    with urllib.request.urlopen(req, timeout=300) as r:
        r.read()


# -- CPU per request, in this process (load-independent) ----------------------------------------
def cpu_costs(tmp: Path, ws: Path, peer: Path, plist: dict[str, list], k: int) -> None:
    """CPU milliseconds per request of each app called in-process on one thread (no HTTP).

    The figure the box's load does not change much: on a shared machine the wrk rates move with
    the other work, the CPU a request needs does not.
    """
    from webmap import create_app
    from webmap.settings import Settings
    from webmap.testing import SECRET

    os.environ.update(pygeoapi_config(tmp / "cpu", peer, 5000))
    os.environ["PEER_GPKG"] = str(peer)
    from pygeoapi.flask_app import APP

    apps = {
        "geo-mz": create_app(Settings(workspace=ws, secret_key=SECRET)),
        "pygeoapi": APP,
        "flask+pyogrio": peer_app(),
    }
    print("\n## CPU per request (process CPU, all threads), in-process, no HTTP server (ms)")
    print("first pass: each path asked for the first time (geo-mz encodes feature texts once per")
    print("cached layer, so its first pass includes that); second pass: the same paths again")
    print("| app | bbox 1st | bbox 2nd | pages 1st | pages 2nd |")
    print("|---|---:|---:|---:|---:|")
    for name, app in apps.items():
        client = app.test_client()
        client.get(plist["bbox"][-1], headers={"Accept": ACCEPT})  # imports, first open
        row = []
        for kind in ("bbox", "pages"):
            for _ in range(2):
                t = time.process_time()
                for path in plist[kind][:k]:
                    r = client.get(path, headers={"Accept": ACCEPT})
                    assert r.status_code == 200, (name, path, r.data[:200])
                row.append((time.process_time() - t) / k * 1000)
        print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in row) + " |", flush=True)
    apps["geo-mz"].extensions["webmap"].close()


# -- idle streams (held by a separate process) --------------------------------------------------
async def hold_streams(root: str, n: int) -> None:
    host, port = root.removeprefix("http://").split(":")
    conns = []

    async def one(i: int) -> None:
        reader, writer = await asyncio.open_connection(
            host, int(port), local_addr=(ADDRS[i % len(ADDRS)], 0)
        )
        writer.write(b"GET /events HTTP/1.0\r\nHost: bench\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(head.decode(errors="replace"))
        conns.append(writer)
        while await reader.read(65536):  # keep-alives
            pass

    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(one(i)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    while len(conns) < n:
        failed = [t for t in tasks if t.done() and t.exception()]
        if failed:
            raise failed[0].exception()
        await asyncio.sleep(0.05)
    print(f"ready {len(conns)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until closed
    for w in conns:
        w.close()


@contextlib.contextmanager
def streams_open(root: str, n: int):
    proc = subprocess.Popen(
        [sys.executable, __file__, "--hold-streams", str(n), "--root", root],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        if not line.startswith("ready"):
            raise SystemExit(f"could not open {n} streams: {line!r}")
        time.sleep(1.0)
        yield
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


# -- main ---------------------------------------------------------------------------------------
def fmt(r: dict) -> str:
    return (
        f"{r['rps']:8.1f} req/s  p50 {r['p50']:7.1f} ms  p99 {r['p99']:7.1f} ms  err {r['errors']}"
    )


def summarize(rs: list[dict]) -> dict:
    """Rounds of one server and workload: mean req/s and p50, worst p99, all errors."""
    return {
        "rps": sum(r["rps"] for r in rs) / len(rs),
        "p50": sum(r["p50"] for r in rs) / len(rs),
        "p99": max(r["p99"] for r in rs),
        "errors": sum(r["errors"] for r in rs),
    }


def versions() -> str:
    out = []
    pkgs = ("uvicorn", "uvloop", "a2wsgi", "flask", "gunicorn", "pygeoapi", "GDAL", "simplejson")
    for pkg in (*pkgs, "pyogrio"):
        with contextlib.suppress(Exception):
            out.append(f"{pkg} {version(pkg)}")
    return ", ".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--servers", default="geo-mz,geo-mz -w2,pygeoapi,flask+pyogrio")
    ap.add_argument("--geomz-threads", type=int, help="geo-mz serve --threads (default: its own)")
    ap.add_argument("--cpu", type=int, default=30, help="requests per app for CPU/request; 0: no")
    ap.add_argument("--hold-streams", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.hold_streams:
        asyncio.run(hold_streams(args.root, args.hold_streams))
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    only = set(args.servers.split(","))
    print(f"# {platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"# load average at start: {os.getloadavg()} (shared box: other work adds noise)")
    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()[1]
    print(f"# {versions()}, wrk {wrk_v}")
    load = f"wrk -t2 -c{args.clients} -d{args.seconds:g}s"
    print(f"# {args.points} points; {load}; rounds {args.rounds}")
    with tempfile.TemporaryDirectory(prefix="bench_ogc_") as d:
        tmp = Path(d)
        t = time.perf_counter()
        ws, peer, bounds = make_data(tmp, args.points)
        print(f"# data made in {time.perf_counter() - t:.1f} s")
        plist = paths(bounds, args.points)
        if args.cpu:
            (tmp / "cpu").mkdir()
            cpu_costs(tmp, ws, peer, plist, args.cpu)
        servers = start_servers(tmp, ws, peer, only, args.geomz_threads)
        try:
            for name, s in servers.items():
                cmd = s["cmd"]  # python -c <geo-mz main> ... / python -m gunicorn ...
                shown = ["geo-mz", *cmd[3:]] if cmd[1] == "-c" else cmd[2:]
                print(f"# {name}: {' '.join(shown)}")
            check_same(servers, plist["bbox"][0], plist["pages"][5])
            results: dict[tuple[str, str], list[dict]] = {}
            names = list(servers)
            for r in range(args.rounds):
                order = names[r % len(names) :] + names[: r % len(names)]
                for name in order:
                    for kind in ("bbox", "pages"):
                        if r == 0:
                            wrk(servers[name]["root"], plist[kind], 3, args.clients, tmp)
                        res = wrk(
                            servers[name]["root"], plist[kind], args.seconds, args.clients, tmp
                        )
                        results.setdefault((name, kind), []).append(res)
                        print(f"round {r + 1} {name:14s} {kind:5s} {fmt(res)}", flush=True)
            print("\n## items (req/s and p50: mean of the rounds; p99: worst round)")
            print("| server | workload | req/s | p50 ms | p99 ms | errors | vs pygeoapi |")
            print("|---|---|---:|---:|---:|---:|---:|")
            summary = {key: summarize(rs) for key, rs in results.items()}
            for kind in ("bbox", "pages"):
                ref = summary.get(("pygeoapi", kind))
                for name in names:
                    b = summary[(name, kind)]
                    ratio = f"{b['rps'] / ref['rps']:.1f}x" if ref and ref["rps"] else "-"
                    print(f"| {name} | {kind} | {b['rps']:.0f} | {b['p50']:.0f} | {b['p99']:.0f}"
                          f" | {b['errors']} | {ratio} |")  # fmt: skip
            for name in [n for n in names if n.startswith("geo-mz")]:
                if args.streams <= 0:
                    break
                root = servers[name]["root"]
                alone = wrk(root, plist["bbox"], args.seconds, args.clients, tmp)
                with streams_open(root, args.streams):
                    held = wrk(root, plist["bbox"], args.seconds, args.clients, tmp)
                after = wrk(root, plist["bbox"], args.seconds, args.clients, tmp)
                print(f"\n## {name}: bbox reads with {args.streams} idle streams open")
                print(f"alone (before) {fmt(alone)}")
                print(f"with streams   {fmt(held)}")
                print(f"alone (after)  {fmt(after)}")
                base = (alone["rps"] + after["rps"]) / 2
                print(f"slow-down: {base / held['rps']:.2f}x req/s (target <= 1.5x)")
        finally:
            stop(servers)


if __name__ == "__main__":
    main()

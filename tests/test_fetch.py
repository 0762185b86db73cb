"""geo_mz.core.fetch and ``geo-mz fetch``, offline against a loopback HTTP server.

The server (fixture ``server``) runs on 127.0.0.1 in a thread for one test, answers only the
routes a test registers (anything else is a 404), records every request, and shuts itself down
after 120 s at the latest. It plays Overpass (the real Longgang OSM fixture, an HTML error page,
a ``<remark>`` timeout, a busy 429, a slow answer), an extract host and a WorldPop host.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner

from geo_mz.cli import main
from geo_mz.core.errors import GeoMzError
from geo_mz.core.fetch import (
    ChecksumMismatchError,
    FetchContentError,
    FetchError,
    FetchHTTPError,
    FetchInputError,
    FetchTimeoutError,
    check_osm_xml,
    download,
    fetch_osm,
    fetch_worldpop,
    overpass_query,
)

DATA = Path(__file__).parent / "data" / "fetch"
OSM_FIXTURE = DATA / "overpass_longgang.osm"
OSM_WAYS = 30
# around the fixture (lon 114.196–114.216, lat 22.681–22.693): min_lon,min_lat,max_lon,max_lat
BBOX = (114.19, 22.68, 114.22, 22.70)
# the same widened by the default margin of 0.01°, in Overpass order south,west,north,east
OVERPASS_BOX = "(22.67,114.18,22.71,114.23)"

HTML_PAGE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 '
    b'Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\n<html><head><title>'
    b"OSM3S Response</title></head><body><p><strong>Error</strong>: runtime error: The server "
    b"is probably too busy to handle your request.</p></body></html>\n"
)
REMARK = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<osm version="0.6" generator="Overpass API">\n'
    b"<note>The data included in this document is from www.openstreetmap.org.</note>\n"
    b'<node id="1" lat="22.69" lon="114.2"/>\n'
    b'<way id="2"><nd ref="1"/><tag k="highway" v="residential"/></way>\n'
    b'<remark> runtime error: Query timed out in "query" at line 3 after 2 seconds. </remark>\n'
    b"</osm>\n"
)
NO_WAYS = b'<?xml version="1.0"?>\n<osm version="0.6" generator="Overpass API">\n</osm>\n'


@dataclass
class Route:
    """One canned answer: status, body, headers; ``delay_s`` before answering."""

    body: bytes = b""
    status: int = 200
    content_type: str = "application/octet-stream"
    delay_s: float = 0.0
    declared_length: int | None = None  # a Content-Length larger than the body: truncated


@dataclass
class Loopback:
    """The server's routes (path → Route) and the requests it saw (method, path, body)."""

    port: int = 0
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def queries(self) -> list[str]:
        """The Overpass queries POSTed (form field ``data``)."""
        return [
            urllib.parse.parse_qs(body.decode())["data"][0]
            for method, _, body in self.requests
            if method == "POST"
        ]


@pytest.fixture
def server():
    state = Loopback()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self, method: str) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            state.requests.append((method, self.path, self.rfile.read(size)))
            route = state.routes.get(self.path) or Route(b"Not Found", 404, "text/plain")
            time.sleep(route.delay_s)
            try:
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(route.declared_length or len(route.body)))
                self.end_headers()
                self.wfile.write(route.body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                pass
            if route.declared_length:
                self.close_connection = True

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    state.port = srv.server_address[1]
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    watchdog = threading.Timer(120.0, srv.shutdown)  # bounded even if a test hangs
    watchdog.daemon = True
    watchdog.start()
    try:
        yield state
    finally:
        watchdog.cancel()
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _no_proxy_no_endpoint(monkeypatch):
    """Loopback requests must not go through a proxy, nor to a configured Overpass."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ALL_PROXY", raising=False)
    monkeypatch.delenv("GEO_MZ_OVERPASS_URL", raising=False)


def _overpass(server: Loopback, body: bytes, **kw: object) -> str:
    server.routes["/api/interpreter"] = Route(body, content_type="application/osm3s+xml", **kw)
    return server.url("/api/interpreter")


def _ways(path: Path) -> int:
    return sum(1 for el in ET.parse(path).getroot() if el.tag == "way")


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- the query ------------------------------------------------------------------------------


def test_query_is_in_overpass_order_and_prints_nodes_first():
    q = overpass_query((114.18, 22.67, 114.24, 22.71))
    assert 'way["highway"](22.67,114.18,22.71,114.24);' in q
    assert q.startswith("[out:xml][timeout:180];")
    assert q.rstrip().endswith("out body;") and ">;" in q and "skel" not in q
    assert "way(22.67" in overpass_query((114.18, 22.67, 114.24, 22.71), highways=False)


@pytest.mark.parametrize(
    "bbox",
    [(22.67, 114.18, 22.71, 114.24), (114.24, 22.67, 114.18, 22.71), (1, 2, 3), (0, 0, 0, "x")],
)
def test_a_bad_or_swapped_box_is_refused(bbox):
    with pytest.raises(FetchInputError, match="min_lon,min_lat,max_lon,max_lat"):
        overpass_query(bbox)


def test_the_fixture_reads_as_roads_and_ways_first_is_refused_by_the_fetch(tmp_path):
    """Why the query prints nodes first: pyosmium (the exact reader) locates nodes in file order.

    GDAL's OSM driver (the fast path) reads a ways-first file all the same; the fetch still
    refuses one, so a file it saves is readable by both readers.
    """
    from geo_mz.core._osm_ways import read_osm_pyosmium
    from geo_mz.core.osm_roads import read_osm_roads

    roads, report = read_osm_roads(OSM_FIXTURE)
    assert report.highway_ways == report.ways_kept == OSM_WAYS and report.missing_nodes == 0
    lines = OSM_FIXTURE.read_text(encoding="utf-8").splitlines()
    first_way = next(i for i, s in enumerate(lines) if s.startswith(" <way"))
    first_node = next(i for i, s in enumerate(lines) if s.startswith(" <node"))
    ways_first = tmp_path / "ways_first.osm"
    ways_first.write_text(
        "\n".join(
            [*lines[:first_node], *lines[first_way:-1], *lines[first_node:first_way], "</osm>"]
        ),
        encoding="utf-8",
    )
    again, _ = read_osm_roads(ways_first)
    assert again.geometry.geom_equals(roads.geometry).all()
    exact = read_osm_pyosmium(ways_first, lambda n: None)
    assert exact.missing_nodes > 0 and len(exact.run_start) == 0
    with pytest.raises(FetchContentError, match="node follows the ways"):
        check_osm_xml(ways_first)


# --- Overpass -------------------------------------------------------------------------------


def test_fetch_osm_posts_the_query_and_saves_the_xml(server, tmp_path):
    from geo_mz.core.osm_roads import read_osm_roads

    url = _overpass(server, OSM_FIXTURE.read_bytes())
    seen = []
    got = fetch_osm(
        bbox=BBOX, out=tmp_path / "roads.osm", endpoint=url, progress=lambda d, t: seen.append(d)
    )
    (query,) = server.queries()
    assert 'way["highway"]' in query and OVERPASS_BOX in query
    assert server.requests[0][:2] == ("POST", "/api/interpreter")
    assert got.path == tmp_path / "roads.osm" and _files(tmp_path) == ["roads.osm"]
    assert got.path.read_bytes() == OSM_FIXTURE.read_bytes()
    assert got.sha256 == hashlib.sha256(OSM_FIXTURE.read_bytes()).hexdigest()
    assert got.size_bytes == OSM_FIXTURE.stat().st_size == seen[-1]
    assert got.ways_n == _ways(got.path) == OSM_WAYS
    assert got.nodes_n == 298 and got.missing_node_refs_n == 0
    assert got.bbox == pytest.approx((114.18, 22.67, 114.23, 22.71))
    assert got.source == "overpass" and not got.sha256_verified
    roads, _ = read_osm_roads(got.path)
    assert set(roads["osm_way_id"].astype(int)) == {
        int(w.get("id")) for w in ET.parse(got.path).getroot().iter("way")
    }


def test_the_endpoint_comes_from_the_environment(server, tmp_path, monkeypatch):
    url = _overpass(server, OSM_FIXTURE.read_bytes())
    monkeypatch.setenv("GEO_MZ_OVERPASS_URL", url)
    got = fetch_osm(bbox=BBOX, out=tmp_path / "roads.osm", margin_deg=0)
    assert got.url == url
    assert "(22.68,114.19,22.7,114.22)" in server.queries()[0]


BAD_ANSWERS = {
    "html": (Route(HTML_PAGE, content_type="text/html"), FetchContentError, "OSM3S Response"),
    "remark": (Route(REMARK, content_type="application/osm3s+xml"), FetchContentError,
               "runtime error: Query timed out"),
    "no ways": (Route(NO_WAYS), FetchContentError, "no way in the OSM XML"),
    "empty": (Route(b""), FetchContentError, "not valid XML"),
    "busy": (Route(b"rate_limited", 429, "text/plain"), FetchHTTPError, "HTTP 429"),
    "slow": (Route(OSM_FIXTURE.read_bytes(), delay_s=1.5), FetchTimeoutError, "0.3 s"),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(BAD_ANSWERS))
def test_a_bad_answer_is_a_named_error_and_leaves_the_old_file(server, tmp_path, kind):
    route, error, text = BAD_ANSWERS[kind]
    server.routes["/api/interpreter"] = route
    url = server.url("/api/interpreter")
    out = tmp_path / "roads.osm"
    out.write_text("the previous fetch", encoding="utf-8")
    with pytest.raises(error) as info:
        fetch_osm(bbox=BBOX, out=out, endpoint=url, timeout_s=0.3)
    message = str(info.value)
    assert text in message and url in message
    assert isinstance(info.value, GeoMzError) and isinstance(info.value, OSError)
    assert _files(tmp_path) == ["roads.osm"]  # no partial or temporary file
    assert out.read_text(encoding="utf-8") == "the previous fetch"
    if kind == "remark":
        assert "Query timed out" in info.value.remark
    if kind == "busy":
        assert info.value.status == 429 and "rate_limited" in message
    if kind in ("html", "no ways"):
        assert "<" in message.split(": ", 1)[1][:220]  # the body is quoted


def test_a_missing_page_is_an_http_error_with_its_status(server, tmp_path):
    with pytest.raises(FetchHTTPError, match="HTTP 404") as info:
        fetch_osm(bbox=BBOX, out=tmp_path / "r.osm", endpoint=server.url("/nothing/here"))
    assert info.value.status == 404 and server.url("/nothing/here") in str(info.value)
    assert _files(tmp_path) == []


def test_a_closed_port_is_a_fetch_error(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FetchError, match="cannot connect"):
        fetch_osm(bbox=BBOX, out=tmp_path / "r.osm", endpoint=f"http://127.0.0.1:{port}/api")
    assert _files(tmp_path) == []


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"bbox": BBOX, "extract_url": "http://127.0.0.1/x.osm.pbf"}, "exactly one"),
        ({}, "exactly one"),
        ({"bbox": BBOX, "sha256": "0" * 64}, "extract_url only"),
        ({"bbox": BBOX, "out": "roads.gpkg"}, "name the file .osm"),
        ({"bbox": BBOX, "endpoint": "ftp://example.org/api"}, "only http"),
        ({"extract_url": "http://127.0.0.1/x.osm.pbf", "out": "x.osm"}, "suffix .osm.pbf"),
        ({"extract_url": "http://127.0.0.1/x.zip"}, "not an OSM extract"),
        ({"bbox": BBOX, "margin_deg": 2}, "margin"),
    ],
)
def test_wrong_arguments_are_refused_before_any_request(server, tmp_path, kwargs, text):
    kwargs = {"out": "roads.osm", **kwargs}
    kwargs["out"] = tmp_path / kwargs["out"]
    with pytest.raises(FetchInputError, match=text):
        fetch_osm(**kwargs)
    assert server.requests == [] and _files(tmp_path) == []


# --- extracts and plain downloads -------------------------------------------------------------


@pytest.fixture
def pbf_bytes(tmp_path_factory) -> bytes:
    import osmium

    path = tmp_path_factory.mktemp("pbf") / "longgang.osm.pbf"
    writer = osmium.SimpleWriter(str(path))
    try:
        for obj in osmium.FileProcessor(str(OSM_FIXTURE)):
            writer.add(obj)
    finally:
        writer.close()
    return path.read_bytes()


def test_an_extract_is_downloaded_verified_and_readable(server, tmp_path, pbf_bytes):
    from geo_mz.core.osm_roads import read_osm_roads

    server.routes["/extracts/longgang.osm.pbf"] = Route(pbf_bytes)
    sha = hashlib.sha256(pbf_bytes).hexdigest()
    got = fetch_osm(
        extract_url=server.url("/extracts/longgang.osm.pbf"),
        sha256=sha.upper(),
        out=tmp_path / "longgang.osm.pbf",
    )
    assert server.requests[0][:2] == ("GET", "/extracts/longgang.osm.pbf")
    assert got.format == "pbf" and got.sha256_verified and got.sha256 == sha
    assert got.ways_n is None and _files(tmp_path) == ["longgang.osm.pbf"]
    roads, _ = read_osm_roads(got.path)
    assert roads["osm_way_id"].nunique() == OSM_WAYS


def test_an_xml_extract_is_counted(server, tmp_path):
    server.routes["/x/longgang.osm"] = Route(OSM_FIXTURE.read_bytes())
    got = fetch_osm(extract_url=server.url("/x/longgang.osm"), out=tmp_path / "a.osm")
    assert got.format == "xml" and got.ways_n == OSM_WAYS and not got.sha256_verified


def test_an_html_page_at_an_extract_url_is_refused(server, tmp_path):
    server.routes["/x/china.osm.pbf"] = Route(HTML_PAGE, content_type="text/html")
    with pytest.raises(FetchContentError, match=r"not an OSM PBF file.*OSM3S"):
        fetch_osm(extract_url=server.url("/x/china.osm.pbf"), out=tmp_path / "c.osm.pbf")
    assert _files(tmp_path) == []


def test_a_sha256_mismatch_names_the_url_and_both_hashes(server, tmp_path, pbf_bytes):
    server.routes["/x/longgang.osm.pbf"] = Route(pbf_bytes)
    url = server.url("/x/longgang.osm.pbf")
    wrong = "ab" * 32
    with pytest.raises(ChecksumMismatchError) as info:
        download(url, tmp_path / "longgang.osm.pbf", sha256=wrong)
    actual = hashlib.sha256(pbf_bytes).hexdigest()
    message = str(info.value)
    assert url in message and wrong in message and actual in message
    assert (info.value.expected, info.value.actual) == (wrong, actual)
    assert isinstance(info.value, ValueError)
    assert _files(tmp_path) == []


def test_download_reports_progress_and_replaces_in_one_step(server, tmp_path):
    body = bytes(range(256)) * 10_000  # 2.5 MB: three chunks
    server.routes["/blob.bin"] = Route(body)
    dest = tmp_path / "sub" / "blob.bin"
    seen: list[tuple[int, int | None]] = []
    path = download(
        server.url("/blob.bin"),
        dest,
        sha256=hashlib.sha256(body).hexdigest(),
        progress=lambda done, total: seen.append((done, total)),
    )
    assert path == dest and dest.read_bytes() == body
    assert seen[0] == (0, len(body)) and seen[-1] == (len(body), len(body)) and len(seen) == 4
    assert _files(dest.parent) == ["blob.bin"]


@pytest.mark.parametrize(
    ("route", "kwargs", "text"),
    [
        (Route(b"x" * 100, declared_length=1000), {}, "truncated download"),
        (Route(b"x" * 5000), {"max_bytes": 1000}, "max_bytes"),
    ],
)
def test_a_truncated_or_too_big_download_leaves_nothing(server, tmp_path, route, kwargs, text):
    server.routes["/f.bin"] = route
    with pytest.raises(FetchError, match=text):
        download(server.url("/f.bin"), tmp_path / "f.bin", timeout_s=5, **kwargs)
    assert _files(tmp_path) == []


@pytest.mark.parametrize(
    ("url", "sha", "text"),
    [("file:///etc/hostname", None, "only http"), ("http://127.0.0.1/x", "abc", "64 hex")],
)
def test_download_checks_its_arguments_first(server, tmp_path, url, sha, text):
    with pytest.raises(FetchInputError, match=text):
        download(url, tmp_path / "x", sha256=sha)
    assert _files(tmp_path) == []


# --- WorldPop -------------------------------------------------------------------------------

CELL_DEG = 0.01
ORIGIN = (114.0, 22.8)  # west, north
NODATA = -99999.0


def _counts() -> np.ndarray:
    """10 rows × 20 columns of people per cell, a few cells nodata (as WorldPop's sea)."""
    rng = np.random.default_rng(440307)
    arr = rng.gamma(2.0, 40.0, size=(10, 20)).astype("float32")
    arr[0, :5] = NODATA
    arr[7, 12] = NODATA
    return arr


def _tif_bytes(
    tmp_path: Path, name: str, *, bands: int = 1, crs: str | None = "EPSG:4326"
) -> bytes:
    arr = _counts()
    path = tmp_path / name
    with rasterio.open(
        path, "w", driver="GTiff", width=20, height=10, count=bands, dtype="float32",
        crs=crs, transform=Affine(CELL_DEG, 0, ORIGIN[0], 0, -CELL_DEG, ORIGIN[1]), nodata=NODATA,
    ) as dst:  # fmt: skip
        for b in range(1, bands + 1):
            dst.write(arr, b)
    data = path.read_bytes()
    path.unlink()
    return data


def _valid_sum(arr: np.ndarray) -> float:
    return float(arr[arr != NODATA].astype("float64").sum())


WP = "/GIS/Population/Global_2000_2020/2020/CHN/chn_ppp_2020_UNadj_constrained.tif"


def test_worldpop_is_downloaded_and_checked(server, tmp_path):
    server.routes[WP] = Route(_tif_bytes(tmp_path, "src.tif"), content_type="image/tiff")
    got = fetch_worldpop(url=server.url(WP), out=tmp_path / "pop.tif")
    assert got.crs == "EPSG:4326" and (got.width, got.height) == (20, 10)
    assert got.nodata == NODATA and got.window is None
    assert got.total_count == pytest.approx(_valid_sum(_counts()), rel=1e-12)
    assert got.full_total_count == got.total_count
    assert _files(tmp_path) == ["pop.tif"]


def test_worldpop_crop_keeps_the_window_total(server, tmp_path):
    server.routes[WP] = Route(_tif_bytes(tmp_path, "src.tif"))
    # cols 3.5–8.5 and rows 4.5–9.5 of the grid: rounded outwards to cols 3–8, rows 4–9
    bbox = (114.035, 22.705, 114.085, 22.755)
    got = fetch_worldpop(
        url=server.url(WP), out=tmp_path / "crop.tif", bbox=bbox, full_out=tmp_path / "full.tif"
    )
    assert got.window == (3, 4, 6, 6) and (got.width, got.height) == (6, 6)
    window_sum = _valid_sum(_counts()[4:10, 3:9])
    assert got.window_total_count == pytest.approx(window_sum, rel=1e-12)
    with rasterio.open(tmp_path / "crop.tif") as src:
        crop = src.read(1)
        assert src.crs.to_string() == "EPSG:4326" and src.nodata == NODATA
        assert src.transform.c == pytest.approx(114.03) and src.transform.f == pytest.approx(22.76)
    np.testing.assert_array_equal(crop, _counts()[4:10, 3:9])
    assert got.total_count == _valid_sum(crop) == got.window_total_count
    assert got.full_total_count == pytest.approx(_valid_sum(_counts()), rel=1e-12)
    assert got.full_path == tmp_path / "full.tif"
    assert _files(tmp_path) == ["crop.tif", "full.tif"]


@pytest.mark.parametrize(
    ("make", "error", "text"),
    [
        ({"bands": 3}, FetchContentError, "3 个波段 bands"),
        ({"crs": None}, FetchContentError, "no CRS"),
        (None, FetchContentError, "not a readable raster"),
    ],
)
def test_a_raster_that_is_not_a_count_raster_is_removed(server, tmp_path, make, error, text):
    body = HTML_PAGE if make is None else _tif_bytes(tmp_path, "src.tif", **make)
    server.routes[WP] = Route(body)
    with pytest.raises(error, match=text):
        fetch_worldpop(url=server.url(WP), out=tmp_path / "pop.tif")
    assert _files(tmp_path) == []


def test_a_density_file_or_a_box_off_the_raster_is_refused(server, tmp_path):
    with pytest.raises(FetchInputError, match="density"):
        fetch_worldpop(url=server.url("/chn_pd_2020_1km.tif"), out=tmp_path / "pd.tif")
    assert server.requests == []
    server.routes[WP] = Route(_tif_bytes(tmp_path, "src.tif"))
    with pytest.raises(FetchContentError, match="does not overlap"):
        fetch_worldpop(url=server.url(WP), out=tmp_path / "pop.tif", bbox=(120, 30, 121, 31))
    assert _files(tmp_path) == []


# --- the command line -----------------------------------------------------------------------


def _run(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_cli_fetch_osm_with_a_bbox(server, tmp_path):
    url = _overpass(server, OSM_FIXTURE.read_bytes())
    out = tmp_path / "roads.osm"
    result = _run(
        ["fetch", "osm", "--bbox", ",".join(map(str, BBOX)), "--out", str(out), "--endpoint", url]
    )
    assert result.exit_code == 0, result.output
    assert OVERPASS_BOX in server.queries()[0] and 'way["highway"]' in server.queries()[0]
    assert _ways(out) == OSM_WAYS
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    assert sha in result.output and f"{out.stat().st_size:,}" in result.output
    assert "ways    : 30" in result.output and "nodes: 298" in result.output
    assert f"geo-mz import {out} --layer roads --workspace WORKSPACE.gpkg" in result.output


def test_cli_fetch_osm_error_exits_2_and_writes_nothing(server, tmp_path):
    url = _overpass(server, REMARK)
    out = tmp_path / "roads.osm"
    result = _run(["fetch", "osm", "--bbox", "114.19,22.68,114.22,22.70", "--out", str(out),
                   "--endpoint", url])  # fmt: skip
    assert result.exit_code == 2
    assert "runtime error: Query timed out" in result.output and url in result.output
    assert _files(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "text"),
    [
        ([], "give one of --code, --bbox, --workspace"),
        (["--bbox", "1,2,3", "--code", "440307"], "give one of"),
        (["--bbox", "22.68,114.19,22.70,114.22"], "min_lon,min_lat,max_lon,max_lat"),
        (["--bbox", "114.19,22.68,114.22,22.70", "--extract-url", "http://x/a.osm.pbf"],
         "an extract has its own area"),
    ],
)  # fmt: skip
def test_cli_fetch_osm_checks_its_options(server, tmp_path, args, text):
    out = tmp_path / "roads.osm"
    result = _run(["fetch", "osm", *args, "--out", str(out), "--endpoint", server.url("/api")])
    assert result.exit_code == 2 and text in result.output
    assert server.requests == [] and _files(tmp_path) == []


def test_cli_fetch_osm_by_code_uses_the_county_polygon(server, tmp_path, monkeypatch):
    import geopandas as gpd
    from shapely.geometry import box

    import geo_mz.datasets.china_counties as counties

    polygons = gpd.GeoDataFrame(
        {"adcode": ["440307", "440308", None]},
        geometry=[box(*BBOX), box(114.3, 22.5, 114.6, 22.7), box(0, 0, 1, 1)],
        crs="EPSG:4490",
    )
    monkeypatch.setattr(counties, "national_counties", lambda **kw: polygons)
    url = _overpass(server, OSM_FIXTURE.read_bytes())
    out = tmp_path / "roads.osm"
    result = _run(["fetch", "osm", "--code", "440307", "--out", str(out), "--endpoint", url])
    assert result.exit_code == 0, result.output
    assert OVERPASS_BOX in server.queries()[0]
    # a city code covers its counties
    result = _run(["fetch", "osm", "--code", "440300", "--out", str(out), "--endpoint", url])
    assert result.exit_code == 0, result.output
    assert "(22.49,114.18,22.71,114.61)" in server.queries()[1]
    result = _run(["fetch", "osm", "--code", "450000", "--out", str(out), "--endpoint", url])
    assert result.exit_code == 2 and "no county polygon has this code" in result.output


def test_cli_fetch_osm_by_workspace(server, tmp_path):
    from geo_mz.core import Workspace

    ws = tmp_path / "longgang.gpkg"
    Workspace.create(ws, name="深圳市龙岗区", adcode="440307", bounds=BBOX)
    url = _overpass(server, OSM_FIXTURE.read_bytes())
    out = tmp_path / "roads.osm"
    result = _run(["fetch", "osm", "--workspace", str(ws), "--out", str(out), "--endpoint", url])
    assert result.exit_code == 0, result.output
    assert OVERPASS_BOX in server.queries()[0]
    assert f"--layer roads --workspace {ws}" in result.output


def test_cli_fetch_worldpop_with_a_crop(server, tmp_path):
    server.routes[WP] = Route(_tif_bytes(tmp_path, "src.tif"))
    out = tmp_path / "pop.tif"
    result = _run(["fetch", "worldpop", "--url", server.url(WP), "--out", str(out),
                   "--bbox", "114.035,22.705,114.085,22.755"])  # fmt: skip
    assert result.exit_code == 0, result.output
    total = _valid_sum(_counts()[4:10, 3:9])
    assert f"window total {total:,.1f} = 文件 file {total:,.1f}" in result.output
    assert "EPSG:4326" in result.output and "CC BY 4.0" in result.output
    assert _files(tmp_path) == ["pop.tif"]
    result = _run(["fetch", "worldpop", "--url", server.url("/nope.tif"), "--out", str(out)])
    assert result.exit_code == 2 and "HTTP 404" in result.output


def test_importing_fetch_opens_no_connection():
    code = (
        "import socket\n"
        "def refuse(*a, **k):\n    raise SystemExit('a connection at import time')\n"
        "socket.socket.connect = refuse\nsocket.create_connection = refuse\n"
        "import geo_mz.core.fetch, geo_mz.cli.fetch\nprint('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr

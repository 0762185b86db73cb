"""Fetch roads (OpenStreetMap) and population rasters (WorldPop) where there is internet.

Optional: geo_mz runs offline, and every analysis reads files the bureau already has. Where the
machine has internet, this module saves the two inputs most districts lack:

* **Roads**: :func:`fetch_osm` posts an Overpass QL query (:func:`overpass_query`: every
  ``highway`` way of a lon/lat bounding box and its nodes) to an Overpass endpoint and saves the
  answer as OSM XML, or downloads a ready extract (``.osm.pbf``, e.g. from Geofabrik or BBBike)
  and checks its sha256. The file is what :func:`geo_mz.core.osm_roads.read_osm_roads` (and
  ``geo-mz import FILE --layer roads``) reads.
* **Population**: :func:`fetch_worldpop` downloads a WorldPop-style GeoTIFF of people per cell,
  checks it is a single-band count raster with a CRS, and optionally crops it to a bounding box.

Every download (:func:`download`) streams into a temporary file beside the destination, checks
the sha256 when one is given and the content (OSM XML with ways, a count raster), and only then
renames it into place: a failed or rejected fetch leaves no file, partial or temporary.
Errors (:class:`FetchError` and its subclasses) name the URL, Chinese first, then English.

Nothing is fetched at import time. The Overpass endpoint is the ``endpoint`` argument, else the
environment variable ``GEO_MZ_OVERPASS_URL``, else :data:`DEFAULT_OVERPASS`. Proxies come from
the usual ``http_proxy``/``https_proxy``/``no_proxy`` variables (urllib's rules).

Data licences: OpenStreetMap data is ODbL 1.0 (© OpenStreetMap contributors; attribute it on
every map and report). WorldPop data is CC BY 4.0 (cite WorldPop, www.worldpop.org).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import math
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from geo_mz import __version__
from geo_mz.core.errors import GeoMzError

__all__ = [
    "DEFAULT_OVERPASS",
    "OVERPASS_ENV",
    "ChecksumMismatchError",
    "Downloaded",
    "FetchContentError",
    "FetchError",
    "FetchHTTPError",
    "FetchInputError",
    "FetchTimeoutError",
    "OsmFetch",
    "OsmSummary",
    "Progress",
    "RasterFetch",
    "RasterSummary",
    "check_count_raster",
    "check_osm_xml",
    "download",
    "download_file",
    "fetch_osm",
    "fetch_worldpop",
    "overpass_endpoint",
    "overpass_query",
]

#: The public Overpass instance (FOSSGIS, Germany): a documented default only, never contacted
#: unless a fetch is asked for. Its usage policy asks for at most about 10,000 queries and 1 GB a
#: day per user; use ``endpoint``/``GEO_MZ_OVERPASS_URL`` for a mirror or a private instance.
DEFAULT_OVERPASS = "https://overpass-api.de/api/interpreter"
#: Environment variable naming the Overpass endpoint when ``endpoint`` is not given.
OVERPASS_ENV = "GEO_MZ_OVERPASS_URL"

#: ``progress(bytes_done, bytes_total)``; the total is None when the server does not say.
Progress = Callable[[int, int | None], Any]

_CHUNK_BYTES = 1 << 20
_SNIPPET_CHARS = 200
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_EXTRACT_SUFFIXES = (".osm.pbf", ".osm.bz2", ".osm.gz", ".pbf", ".osm")
_MAX_TRACKED_NODES = 5_000_000  # beyond this, node references are not checked (memory)


class FetchInputError(GeoMzError, ValueError):
    """A fetch was asked for wrongly (bad box, URL, sha256, file name), found before any request."""


class FetchError(GeoMzError, OSError):
    """A request failed: connection, size limit, truncated body (root of the request errors)."""


class FetchHTTPError(FetchError):
    """The server answered with an HTTP error status (``status``; 429/504: busy, retry later)."""

    def __init__(self, message: str, *, url: str, status: int) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class FetchTimeoutError(FetchError, TimeoutError):
    """The server did not connect or send data within the timeout."""


class ChecksumMismatchError(FetchError, ValueError):
    """The downloaded bytes do not have the expected sha256 (``expected``, ``actual``)."""

    def __init__(self, message: str, *, url: str, expected: str, actual: str) -> None:
        super().__init__(message)
        self.url = url
        self.expected = expected
        self.actual = actual


class FetchContentError(FetchError, ValueError):
    """The download is not what was asked for (nothing is written).

    An HTML page, an Overpass error remark (``remark``), no way, a raster that is not a
    single-band count raster with a CRS.
    """

    def __init__(self, message: str, *, remark: str | None = None) -> None:
        super().__init__(message)
        self.remark = remark


@dataclass(frozen=True)
class Downloaded:
    """A completed download: where it is, from where, how many bytes, their sha256."""

    path: Path
    url: str
    size_bytes: int
    sha256: str
    sha256_verified: bool


@dataclass(frozen=True)
class OsmSummary:
    """What an OSM XML file holds (:func:`check_osm_xml`)."""

    ways_n: int
    nodes_n: int
    relations_n: int
    missing_node_refs_n: int | None
    generator: str | None
    remarks: tuple[str, ...] = ()


@dataclass(frozen=True)
class OsmFetch:
    """A fetched OSM file (:func:`fetch_osm`).

    ``bbox`` is the queried lon/lat box ``(min_lon, min_lat, max_lon, max_lat)`` including the
    margin (None for an extract); ``ways_n``/``nodes_n`` are None for a PBF extract (not counted;
    ``geo-mz import`` reports them).
    """

    path: Path
    url: str
    source: Literal["overpass", "extract"]
    format: Literal["xml", "pbf"]
    size_bytes: int
    sha256: str
    sha256_verified: bool
    bbox: tuple[float, float, float, float] | None
    query: str | None
    ways_n: int | None
    nodes_n: int | None
    missing_node_refs_n: int | None


@dataclass(frozen=True)
class RasterSummary:
    """A count raster as checked (:func:`check_count_raster`)."""

    crs: str
    width: int
    height: int
    nodata: float | None
    total_count: float


@dataclass(frozen=True)
class RasterFetch:
    """A fetched count raster (:func:`fetch_worldpop`).

    ``total_count`` is the sum of the valid cells of the file written (the crop when ``window``
    is set, which then equals ``window_total_count``, the same cells summed in the download);
    ``full_total_count`` is the sum over the whole download. ``window`` is
    ``(col_off, row_off, width, height)`` in cells of the download.
    """

    path: Path
    url: str
    size_bytes: int
    sha256: str
    sha256_verified: bool
    crs: str
    width: int
    height: int
    nodata: float | None
    total_count: float
    full_total_count: float
    window: tuple[int, int, int, int] | None = None
    window_total_count: float | None = None
    full_path: Path | None = None


def overpass_endpoint(endpoint: str | None = None) -> str:
    """Return the Overpass endpoint: ``endpoint``, else ``$GEO_MZ_OVERPASS_URL``, else the default.

    Parameters
    ----------
    endpoint
        An explicit ``http(s)://…/api/interpreter`` URL.

    Returns
    -------
    str
    """
    return endpoint or os.environ.get(OVERPASS_ENV) or DEFAULT_OVERPASS


def _check_bbox(bbox: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    try:
        min_lon, min_lat, max_lon, max_lat = (float(v) for v in bbox)
    except (TypeError, ValueError) as exc:
        raise FetchInputError(
            f"bbox {bbox!r}: 应为4个数 min_lon,min_lat,max_lon,max_lat / "
            "expected 4 numbers min_lon,min_lat,max_lon,max_lat"
        ) from exc
    vals = (min_lon, min_lat, max_lon, max_lat)
    ok = (
        all(math.isfinite(v) for v in vals)
        and -180 <= min_lon < max_lon <= 180
        and -90 <= min_lat < max_lat <= 90
    )
    if not ok:
        raise FetchInputError(
            f"bbox {bbox!r}: 经纬度范围无效（顺序为 最小经度,最小纬度,最大经度,最大纬度）/ "
            "not a lon/lat box; the order is min_lon,min_lat,max_lon,max_lat (e.g. "
            "113.9,22.5,114.4,22.9 for Shenzhen), each min below its max"
        )
    return vals


def _num(v: float) -> str:
    """Format a coordinate with at most 7 decimals (OSM's precision), no trailing zeros."""
    return f"{round(v, 7):.7f}".rstrip("0").rstrip(".")


def overpass_query(
    bbox: tuple[float, float, float, float],
    *,
    highways: bool = True,
    server_timeout_s: int = 180,
) -> str:
    """Overpass QL for the ways of a lon/lat box and all their nodes, as plain OSM XML.

    Parameters
    ----------
    bbox
        ``(min_lon, min_lat, max_lon, max_lat)`` in degrees (WGS84; EPSG:4490 is the same to
        about 1 m), the order geo_mz uses everywhere. Overpass itself wants
        ``(south, west, north, east)`` = ``(min_lat, min_lon, max_lat, max_lon)``; the query is
        written in that order.
    highways
        True (default): ways with a ``highway`` tag (every road, path and track). False: every
        way (buildings, water, land use too; much bigger).
    server_timeout_s
        Overpass' own time limit for the query (``[timeout:…]``), seconds.

    Returns
    -------
    str
        ``[out:xml][timeout:180]; ( way["highway"](S,W,N,E); >; ); out body;``: the union of
        the ways and their nodes (``>``), printed by one ``out body`` so the nodes come before
        the ways (Overpass prints a set nodes first). The classic ``out body; >; out skel qt;``
        prints the ways first, and pyosmium, which locates nodes in file order, then finds no
        location for any node (tested); GDAL's OSM driver also wants nodes first.

    Raises
    ------
    FetchInputError
        If ``bbox`` is not a lon/lat box (e.g. lat/lon swapped, so a latitude is above 90).
    """
    min_lon, min_lat, max_lon, max_lat = _check_bbox(bbox)
    box = ",".join(_num(v) for v in (min_lat, min_lon, max_lat, max_lon))
    selector = 'way["highway"]' if highways else "way"
    return (
        f"[out:xml][timeout:{int(server_timeout_s)}];\n"
        f"(\n  {selector}({box});\n  >;\n);\n"
        "out body;\n"
    )


def _snippet(path: Path, opener: Callable[[Path], IO[bytes]] | None = None) -> str:
    """Return the first 200 characters of a file, whitespace collapsed (for messages)."""
    with (opener or _open_plain)(path) as fh:
        raw = fh.read(_SNIPPET_CHARS * 4)
    text = " ".join(raw.decode("utf-8", errors="replace").split())
    return text[:_SNIPPET_CHARS] or "(空 / empty)"


def _open_plain(path: Path) -> IO[bytes]:
    return open(path, "rb")


def _opener(name: str) -> Callable[[Path], IO[bytes]]:
    """Open plain, .gz or .bz2 OSM XML by the (destination) file name."""
    if name.endswith(".gz"):
        return lambda p: gzip.open(p, "rb")  # type: ignore[return-value]
    if name.endswith(".bz2"):
        return lambda p: bz2.open(p, "rb")  # type: ignore[return-value]
    return _open_plain


def check_osm_xml(
    path: str | Path, *, url: str | None = None, name: str | None = None
) -> OsmSummary:
    """Check that a file is OSM XML with ways, streaming it, and count what it holds.

    Parameters
    ----------
    path
        An OSM XML file (``.gz``/``.bz2`` by name are decompressed while read).
    url
        Where it came from, for the messages (default: the path).
    name
        File name telling the compression (``….osm.gz``), when ``path`` has another name.

    Returns
    -------
    OsmSummary
        Ways, nodes, relations, node references of ways not in the file (None: not checked,
        more than 5 million nodes), the generator and any harmless ``remark``.

    Raises
    ------
    FetchContentError
        If the file is not XML or its root is not ``<osm>`` (an HTML error page, JSON...), if
        Overpass wrote an error ``<remark>`` (``runtime error``, timeout, out of memory: the
        answer is cut short, so it is refused even when it holds ways), if a node follows a way
        (readers that locate nodes in file order lose them), or if there is no way at all.
        Messages quote the first 200 characters of the file.
    """
    path = Path(path)
    where = url or str(path)
    opener = _opener((name or path.name).lower())
    counts = {"node": 0, "way": 0, "relation": 0}
    node_ids: set[str] = set()
    missing = 0
    remarks: list[str] = []
    generator: str | None = None
    depth = 0
    root: ET.Element | None = None
    try:
        with opener(path) as fh:
            for event, elem in ET.iterparse(fh, events=("start", "end")):
                if event == "start":
                    depth += 1
                    if root is None:
                        root = elem
                        if elem.tag != "osm":
                            raise FetchContentError(
                                f"{where}: 不是 OSM XML（根元素 <{elem.tag}>）/ not OSM XML "
                                f"(root element <{elem.tag}>): {_snippet(path, opener)}"
                            )
                        generator = elem.get("generator")
                    continue
                depth -= 1
                if depth != 1:
                    continue
                tag = elem.tag
                if tag == "node":
                    if counts["way"]:
                        raise FetchContentError(
                            f"{where}: 节点出现在路线之后（须先节点后路线）/ a node follows the "
                            "ways: nodes must come first (query with one `out body` over the "
                            "union, see overpass_query)"
                        )
                    if counts["node"] < _MAX_TRACKED_NODES:
                        node_ids.add(elem.get("id", ""))
                elif tag == "way" and counts["node"] <= _MAX_TRACKED_NODES:
                    missing += sum(nd.get("ref") not in node_ids for nd in elem.iter("nd"))
                elif tag == "remark":
                    remarks.append(" ".join((elem.text or "").split()))
                if tag in counts:
                    counts[tag] += 1
                assert root is not None
                root.clear()
    except ET.ParseError as exc:
        raise FetchContentError(
            f"{where}: 不是有效的 XML（{exc}）/ not valid XML ({exc}): {_snippet(path, opener)}"
        ) from exc
    except (OSError, EOFError) as exc:
        if isinstance(exc, FetchError):
            raise
        raise FetchContentError(f"{where}: 无法读取 / cannot be read: {exc}") from exc
    bad = [r for r in remarks if re.search(r"error|time(d)? ?out", r, re.IGNORECASE)]
    if bad:
        raise FetchContentError(
            f"{where}: Overpass 报错，结果不完整 / Overpass reported an error, the answer is "
            f"incomplete: {bad[0]} (缩小范围或稍后重试 / use a smaller box, retry later, another "
            "endpoint or an extract)",
            remark=bad[0],
        )
    if counts["way"] == 0:
        raise FetchContentError(
            f"{where}: OSM XML 中没有路线（范围是否为 最小经度,最小纬度,最大经度,最大纬度？）/ no "
            f"way in the OSM XML (is the box min_lon,min_lat,max_lon,max_lat?): "
            f"{_snippet(path, opener)}"
        )
    return OsmSummary(
        ways_n=counts["way"],
        nodes_n=counts["node"],
        relations_n=counts["relation"],
        missing_node_refs_n=missing if counts["node"] <= _MAX_TRACKED_NODES else None,
        generator=generator,
        remarks=tuple(remarks),
    )


def _check_sha256(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    if not _SHA256.fullmatch(sha256.strip()):
        raise FetchInputError(
            f"sha256 {sha256!r}: 应为64位十六进制 / expected 64 hexadecimal digits"
        )
    return sha256.strip().lower()


def _check_url(url: str) -> str:
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchInputError(
            f"{url}: 仅支持 http(s) 地址（本地文件直接使用即可）/ only http(s) URLs are fetched "
            "(a local file can be used as it is)"
        )
    return url


def _temp_beside(dest: Path, tag: str = "") -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.{tag}", suffix=".part", dir=dest.parent)
    os.close(fd)
    return Path(tmp)


def _unlink(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


def _http_error(url: str, exc: urllib.error.HTTPError) -> FetchHTTPError:
    try:
        body = exc.read(_SNIPPET_CHARS * 4)
    except (OSError, ValueError):
        body = b""
    finally:
        exc.close()
    text = " ".join(body.decode("utf-8", errors="replace").split())[:_SNIPPET_CHARS]
    hint = ""
    if exc.code in (429, 502, 503, 504):
        hint = " (服务器繁忙，请稍后重试或换用其他服务器 / the server is busy: retry later or use "
        hint += "another endpoint or an extract)"
    return FetchHTTPError(
        f"{url}: HTTP {exc.code} {exc.reason}：服务器返回错误 / the server answered with an "
        f"error{hint}: {text or '(无内容 / no body)'}",
        url=url,
        status=exc.code,
    )


def _timeout_error(url: str, timeout_s: float) -> FetchTimeoutError:
    return FetchTimeoutError(
        f"{url}: {timeout_s:g} 秒内无响应 / no answer within {timeout_s:g} s "
        "(timeout; retry later or raise timeout_s / --timeout)"
    )


def _stream(
    url: str,
    tmp: Path,
    *,
    data: Mapping[str, str] | None,
    timeout_s: float,
    progress: Progress | None,
    max_bytes: int | None,
) -> tuple[int, str]:
    """GET (or POST ``data`` as a form) ``url`` into ``tmp``; returns (bytes, sha256 hex)."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(
        url, data=body, headers={"User-Agent": f"geo-mz/{__version__} (Python urllib)"}
    )
    digest = hashlib.sha256()
    done = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if max_bytes is not None and total is not None and total > max_bytes:
                raise FetchError(
                    f"{url}: 文件 {total:,} 字节，超过上限 {max_bytes:,} / the file has {total:,} "
                    f"bytes, more than max_bytes={max_bytes:,}"
                )
            if progress is not None:
                progress(0, total)
            with open(tmp, "wb") as out:
                while chunk := resp.read(_CHUNK_BYTES):
                    done += len(chunk)
                    if max_bytes is not None and done > max_bytes:
                        raise FetchError(
                            f"{url}: 超过上限 {max_bytes:,} 字节 / more than max_bytes="
                            f"{max_bytes:,} bytes; stopped"
                        )
                    digest.update(chunk)
                    out.write(chunk)
                    if progress is not None:
                        progress(done, total)
            if total is not None and done != total:
                raise FetchError(
                    f"{url}: 下载不完整（{done:,}/{total:,} 字节）/ truncated download ({done:,} "
                    f"of {total:,} bytes): the connection closed early"
                )
    except urllib.error.HTTPError as exc:
        raise _http_error(url, exc) from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise _timeout_error(url, timeout_s) from exc
        raise FetchError(f"{url}: 无法连接 / cannot connect: {exc.reason}") from exc
    except TimeoutError as exc:
        raise _timeout_error(url, timeout_s) from exc
    except FetchError:
        raise
    except (OSError, ValueError) as exc:  # http.client errors (IncompleteRead, bad status line)
        raise FetchError(f"{url}: 下载失败 / download failed: {exc!r}") from exc
    return done, digest.hexdigest()


def download_file(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    timeout_s: float = 60.0,
    progress: Progress | None = None,
    max_bytes: int | None = None,
    data: Mapping[str, str] | None = None,
    check: Callable[[Path], Any] | None = None,
) -> Downloaded:
    """Download ``url`` to ``dest`` atomically; like :func:`download`, returning the details.

    Parameters
    ----------
    url, dest, sha256, timeout_s, progress, max_bytes
        As :func:`download`.
    data
        Form fields to POST (``application/x-www-form-urlencoded``) instead of a GET.
    check
        Called with the complete temporary file before it replaces ``dest``; raise to reject it
        (the temporary file is removed, ``dest`` untouched).

    Returns
    -------
    Downloaded
    """
    _check_url(url)
    expected = _check_sha256(sha256)
    dest = Path(dest)
    tmp = _temp_beside(dest)
    try:
        size_bytes, actual = _stream(
            url, tmp, data=data, timeout_s=timeout_s, progress=progress, max_bytes=max_bytes
        )
        if expected is not None and actual != expected:
            raise ChecksumMismatchError(
                f"{url}: sha256 不符，文件已丢弃 / sha256 mismatch, the download was discarded: "
                f"expected {expected}, got {actual}",
                url=url,
                expected=expected,
                actual=actual,
            )
        if check is not None:
            check(tmp)
        os.replace(tmp, dest)
    except BaseException:
        _unlink(tmp)
        raise
    return Downloaded(dest, url, size_bytes, actual, expected is not None)


def download(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    timeout_s: float = 60.0,
    progress: Progress | None = None,
    max_bytes: int | None = None,
) -> Path:
    """Download ``url`` to ``dest``: streamed to a temporary file beside it, checked, renamed.

    ``dest`` appears only when the whole body arrived (as many bytes as ``Content-Length``) and
    its sha256 matches; an existing ``dest`` is replaced in one step. On any failure no file is
    left behind. Not resumable. Proxies come from ``http(s)_proxy``/``no_proxy``.

    Parameters
    ----------
    url
        An ``http://`` or ``https://`` URL (redirects are followed).
    dest
        The file to write; its folder is created when missing.
    sha256
        Expected hex sha256 of the bytes; a mismatch is an error.
    timeout_s
        Seconds to wait to connect and for each read (a stalled transfer fails after this long;
        a slow but moving one does not).
    progress
        Called as ``progress(bytes_done, bytes_total)`` after each 1 MiB chunk (and once with 0
        before); ``bytes_total`` is None when the server sends no ``Content-Length``.
    max_bytes
        Refuse (and stop) a download larger than this many bytes.

    Returns
    -------
    pathlib.Path
        ``dest``.

    Raises
    ------
    FetchHTTPError
        An HTTP error status (``status``: 404, 429, 504...), with the start of the body.
    FetchTimeoutError
        No connection or data within ``timeout_s``.
    ChecksumMismatchError
        The sha256 differs (the message names the URL and both hashes).
    FetchError
        Cannot connect, truncated body, more than ``max_bytes``.
    FetchInputError
        Not an http(s) URL, or ``sha256`` not 64 hex digits (before anything is fetched).
    """
    return download_file(
        url, dest, sha256=sha256, timeout_s=timeout_s, progress=progress, max_bytes=max_bytes
    ).path


def _extract_suffix(url: str) -> str:
    name = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1].lower()
    for suffix in _EXTRACT_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    raise FetchInputError(
        f"{url}: 不是 OSM 文件地址（应以 .osm.pbf/.osm/.osm.gz/.osm.bz2 结尾）/ not an OSM extract "
        "URL (expected a name ending in .osm.pbf, .pbf, .osm, .osm.gz or .osm.bz2)"
    )


def _check_pbf(path: Path, url: str) -> None:
    with open(path, "rb") as fh:
        head = fh.read(64)
    if b"OSMHeader" not in head[:32]:
        raise FetchContentError(f"{url}: 不是 OSM PBF 文件 / not an OSM PBF file: {_snippet(path)}")


def fetch_osm(
    *,
    out: str | Path,
    bbox: tuple[float, float, float, float] | None = None,
    endpoint: str | None = None,
    extract_url: str | None = None,
    sha256: str | None = None,
    margin_deg: float = 0.01,
    highways: bool = True,
    timeout_s: float = 300.0,
    progress: Progress | None = None,
) -> OsmFetch:
    """Fetch OpenStreetMap roads: an Overpass query for a box, or a ready extract.

    Give either ``bbox`` (Overpass) or ``extract_url``. The district's box comes from its
    polygon or workspace (``geo-mz fetch osm --code/--workspace`` looks it up; this function
    takes the numbers, so core needs no national data).

    Parameters
    ----------
    out
        The file to write: ``.osm`` for Overpass (OSM XML); for an extract, a name with the
        extract's own suffix (``.osm.pbf``...), so readers recognise the format.
    bbox
        ``(min_lon, min_lat, max_lon, max_lat)``, degrees (see :func:`overpass_query`).
    endpoint
        Overpass interpreter URL; default ``$GEO_MZ_OVERPASS_URL`` or :data:`DEFAULT_OVERPASS`.
        The query is POSTed as the form field ``data``.
    extract_url
        URL of a ready extract instead of a query (copy the link of a ``.osm.pbf`` from
        download.geofabrik.de, Asia → China, or from a BBBike extract): the sensible choice for
        a whole city or province (Overpass is for a district).
    sha256
        Expected sha256 of the extract (only with ``extract_url``: Overpass answers change
        with every edit of the map). Without it the computed hash is reported, not verified.
        Pin a dated file, not a ``-latest`` one, which changes every day.
    margin_deg
        Widen ``bbox`` by this many degrees on every side (0.01° ≈ 1 km), so the roads just
        outside the district, which still carry trips inside it, are included.
    highways
        Only ways with a ``highway`` tag (default), else every way.
    timeout_s
        Seconds to wait for the answer (Overpass may think for minutes before the first byte);
        the query asks Overpass for ``timeout_s - 10`` s at most.
    progress
        ``progress(bytes_done, bytes_total)``, see :func:`download`.

    Returns
    -------
    OsmFetch

    Raises
    ------
    FetchContentError
        The answer is not OSM XML (an HTML error page), carries an Overpass error remark
        (timeout, out of memory), has no way, or the extract is not OSM (see
        :func:`check_osm_xml`). Nothing is written.
    FetchHTTPError, FetchTimeoutError, ChecksumMismatchError, FetchError
        As :func:`download`.
    FetchInputError
        Both or neither of ``bbox`` and ``extract_url``; a bad box; ``sha256`` without an
        extract; ``out`` not named like the data.
    """
    out = Path(out)
    if (bbox is None) == (extract_url is None):
        raise FetchInputError(
            "fetch_osm: 请给出 bbox 或 extract_url 之一 / give exactly one of bbox (Overpass) "
            "and extract_url (a ready extract)"
        )
    if extract_url is not None:
        return _fetch_extract(
            extract_url, out, sha256=sha256, progress=progress, timeout_s=timeout_s
        )
    assert bbox is not None
    if sha256 is not None:
        raise FetchInputError(
            "fetch_osm: sha256 仅用于 extract_url（Overpass 结果随地图编辑而变）/ sha256 applies "
            "to extract_url only (Overpass answers change with every map edit)"
        )
    if not out.name.lower().endswith(".osm"):
        raise FetchInputError(
            f"{out}: Overpass 返回 OSM XML，文件名应以 .osm 结尾 / Overpass answers OSM XML: "
            "name the file .osm"
        )
    min_lon, min_lat, max_lon, max_lat = _check_bbox(bbox)
    if not (0 <= margin_deg < 1):
        raise FetchInputError(
            f"margin_deg={margin_deg}: 应在 0 到 1 之间 / expected 0 ≤ margin < 1"
        )
    box = (
        max(min_lon - margin_deg, -180.0),
        max(min_lat - margin_deg, -90.0),
        min(max_lon + margin_deg, 180.0),
        min(max_lat + margin_deg, 90.0),
    )
    query = overpass_query(box, highways=highways, server_timeout_s=max(int(timeout_s) - 10, 1))
    url = _check_url(overpass_endpoint(endpoint))
    summary: list[OsmSummary] = []
    got = download_file(
        url,
        out,
        timeout_s=timeout_s,
        progress=progress,
        data={"data": query},
        check=lambda tmp: summary.append(check_osm_xml(tmp, url=url)),
    )
    s = summary[0]
    return OsmFetch(
        path=got.path,
        url=url,
        source="overpass",
        format="xml",
        size_bytes=got.size_bytes,
        sha256=got.sha256,
        sha256_verified=False,
        bbox=box,
        query=query,
        ways_n=s.ways_n,
        nodes_n=s.nodes_n,
        missing_node_refs_n=s.missing_node_refs_n,
    )


def _fetch_extract(
    url: str,
    out: Path,
    *,
    sha256: str | None,
    progress: Progress | None,
    timeout_s: float,
) -> OsmFetch:
    _check_url(url)
    suffix = _extract_suffix(url)
    if not out.name.lower().endswith(suffix):
        raise FetchInputError(
            f"{out}: 文件名应与下载文件同后缀 {suffix} / name the file with the extract's suffix "
            f"{suffix} (readers tell the format by it)"
        )
    is_pbf = suffix.endswith(".pbf")
    summary: list[OsmSummary] = []

    def check(tmp: Path) -> None:
        if is_pbf:
            _check_pbf(tmp, url)
        else:  # the temporary name ends in .part: decompress by the extract's suffix
            summary.append(check_osm_xml(tmp, url=url, name=suffix))

    got = download_file(
        url, out, sha256=sha256, timeout_s=timeout_s, progress=progress, check=check
    )
    s = summary[0] if summary else None
    return OsmFetch(
        path=got.path,
        url=url,
        source="extract",
        format="pbf" if is_pbf else "xml",
        size_bytes=got.size_bytes,
        sha256=got.sha256,
        sha256_verified=got.sha256_verified,
        bbox=None,
        query=None,
        ways_n=s.ways_n if s else None,
        nodes_n=s.nodes_n if s else None,
        missing_node_refs_n=s.missing_node_refs_n if s else None,
    )


def _raster_total(src: Any, window: Any, where: str) -> float:
    """Sum of the valid cells of band 1 in ``window`` (None: all), read in strips of rows."""
    import numpy as np
    from rasterio.windows import Window

    win = window or Window(0, 0, src.width, src.height)
    col_off, row_off = int(win.col_off), int(win.row_off)
    width, height = int(win.width), int(win.height)
    strip = max(1, min(height, (16 << 20) // max(width, 1)))
    total = 0.0
    for r in range(row_off, row_off + height, strip):
        rows = min(strip, row_off + height - r)
        block = src.read(1, window=Window(col_off, r, width, rows), masked=True).astype("float64")
        values = np.ma.masked_invalid(block).compressed()
        if values.size and values.min() < 0:
            raise FetchContentError(
                f"{where}: 有负值（{values.min():g}），不是人数栅格 / negative cell values "
                f"({values.min():g}): not a raster of counts"
            )
        total += float(values.sum())
    return total


def check_count_raster(path: str | Path, *, url: str | None = None) -> RasterSummary:
    """Check that a raster is a single-band count raster with a CRS, and sum it.

    Parameters
    ----------
    path
        A GeoTIFF (any raster GDAL reads).
    url
        Where it came from, for the messages (default: the path).

    Returns
    -------
    RasterSummary
        ``total_count`` is the sum of the cells that are not nodata or NaN.

    Raises
    ------
    FetchContentError
        Not a raster, more than one band, no CRS, not numeric, or a negative valid cell.
    """
    import rasterio
    from rasterio.errors import RasterioIOError

    where = url or str(path)
    try:
        src = rasterio.open(path)
    except RasterioIOError as exc:
        raise FetchContentError(
            f"{where}: 不是可读取的栅格 / not a readable raster: {_snippet(Path(path))}"
        ) from exc
    with src:
        problems = []
        if src.count != 1:
            problems.append(f"{src.count} 个波段 bands (需要1个 / need 1)")
        if src.crs is None:
            problems.append("无坐标系 no CRS")
        if src.dtypes[0] not in ("uint8", "uint16", "uint32", "int16", "int32", "int64",
                                 "uint64", "float32", "float64"):  # fmt: skip
            problems.append(f"数据类型 dtype {src.dtypes[0]}")
        if problems:
            raise FetchContentError(
                f"{where}: 不是单波段人数栅格 / not a single-band count raster with a CRS: "
                + "; ".join(problems)
            )
        return RasterSummary(
            crs=src.crs.to_string(),
            width=src.width,
            height=src.height,
            nodata=src.nodata,
            total_count=_raster_total(src, None, where),
        )


def _bbox_window(src: Any, bbox: tuple[float, float, float, float], where: str) -> Any:
    """Return the window of the cells of ``src`` touching a lon/lat box (whole cells)."""
    from rasterio.warp import transform_bounds
    from rasterio.windows import Window, from_bounds

    box = bbox if src.crs.is_geographic else transform_bounds("EPSG:4326", src.crs, *bbox)
    w = from_bounds(*box, transform=src.transform)
    eps = 1e-6
    c0 = max(math.floor(min(w.col_off, w.col_off + w.width) + eps), 0)
    r0 = max(math.floor(min(w.row_off, w.row_off + w.height) + eps), 0)
    c1 = min(math.ceil(max(w.col_off, w.col_off + w.width) - eps), src.width)
    r1 = min(math.ceil(max(w.row_off, w.row_off + w.height) - eps), src.height)
    if c1 <= c0 or r1 <= r0:
        raise FetchContentError(
            f"{where}: 范围 {bbox} 不在栅格内 / the box {bbox} does not overlap the raster "
            f"(bounds {tuple(round(v, 6) for v in src.bounds)})"
        )
    return Window(c0, r0, c1 - c0, r1 - r0)


def _write_crop(src: Any, window: Any, dest: Path) -> None:
    """Copy the cells of ``window`` into a deflate GeoTIFF, in strips of rows."""
    import rasterio
    from affine import Affine
    from rasterio.windows import Window

    width, height = int(window.width), int(window.height)
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 1,
        "dtype": src.dtypes[0],
        "crs": src.crs,
        # not src.window_transform: it multiplies with `*` (PendingDeprecationWarning in affine)
        "transform": src.transform @ Affine.translation(int(window.col_off), int(window.row_off)),
        "nodata": src.nodata,
        "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }
    if width >= 256 and height >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    strip = max(1, min(height, (16 << 20) // max(width, 1)))
    with rasterio.open(dest, "w", **profile) as dst:
        dst.update_tags(**src.tags())
        for r in range(0, height, strip):
            rows = min(strip, height - r)
            part = Window(int(window.col_off), int(window.row_off) + r, width, rows)
            dst.write(src.read(1, window=part), 1, window=Window(0, r, width, rows))


def fetch_worldpop(
    *,
    url: str,
    out: str | Path,
    sha256: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    full_out: str | Path | None = None,
    timeout_s: float = 60.0,
    progress: Progress | None = None,
) -> RasterFetch:
    """Download a WorldPop-style population count GeoTIFF, check it, optionally crop it.

    WorldPop (www.worldpop.org, University of Southampton) publishes people per grid cell per
    country and year, licensed **CC BY 4.0** (cite WorldPop and the dataset's DOI). Files are
    named ``<iso3>_ppp_<year>[_UNadj][_constrained].tif``: ``ppp`` = people per pixel (a count:
    what geo_mz needs), ``UNadj`` = scaled to the UN national total, ``constrained`` = only cells
    with buildings; 3 arc-seconds (~100 m), EPSG:4326, nodata -99999. E.g. China 2020:
    ``chn_ppp_2020_UNadj_constrained.tif`` (copy the exact URL from the dataset's page on
    hub.worldpop.org; the folder layout of data.worldpop.org changes between releases).
    ``<iso3>_pd_<year>_1km.tif`` files are densities (people per km²), not counts, and are
    refused; age/sex files (``chn_f_60_2020.tif``) are counts of one group.

    Parameters
    ----------
    url
        The file's http(s) URL.
    out
        The GeoTIFF to write (the crop when ``bbox`` is given).
    sha256
        Expected sha256 of the download (WorldPop lists none; record the reported one).
    bbox
        ``(min_lon, min_lat, max_lon, max_lat)``: keep only the cells touching this box
        (whole cells, no resampling, so the crop's total is exactly the window's total).
    full_out
        With ``bbox``: also keep the whole download here (default: discarded after the crop).
    timeout_s, progress
        As :func:`download`.

    Returns
    -------
    RasterFetch

    Raises
    ------
    FetchContentError
        Not a single-band count raster with a CRS, a density file, or the box misses the
        raster: the download is removed and ``out`` is not written.
    FetchHTTPError, FetchTimeoutError, ChecksumMismatchError, FetchError
        As :func:`download`.
    """
    import rasterio

    _check_url(url)
    name = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1].lower()
    if re.search(r"(^|_)pd(_|\.)", name):
        raise FetchInputError(
            f"{url}: 这是人口密度（人/平方公里），不是人数 / this is a density (people per km²), "
            "not counts: use the ppp (people per pixel) file"
        )
    box = _check_bbox(bbox) if bbox is not None else None
    out = Path(out)
    found: list[RasterSummary] = []

    def check(tmp: Path) -> None:
        found.append(check_count_raster(tmp, url=url))

    if box is None:
        got = download_file(
            url, out, sha256=sha256, timeout_s=timeout_s, progress=progress, check=check
        )
        info = found[0]
        return RasterFetch(
            path=got.path,
            url=url,
            size_bytes=got.size_bytes,
            sha256=got.sha256,
            sha256_verified=got.sha256_verified,
            crs=info.crs,
            width=info.width,
            height=info.height,
            nodata=info.nodata,
            total_count=info.total_count,
            full_total_count=info.total_count,
        )
    full = _temp_beside(out, "full.")
    crop = _temp_beside(out, "crop.")
    try:
        got = download_file(
            url, full, sha256=sha256, timeout_s=timeout_s, progress=progress, check=check
        )
        with rasterio.open(full) as src:
            window = _bbox_window(src, box, url)
            window_total = _raster_total(src, window, url)
            _write_crop(src, window, crop)
        with rasterio.open(crop) as dst:
            crop_total = _raster_total(dst, None, str(out))
            width, height = dst.width, dst.height
        if not math.isclose(crop_total, window_total, rel_tol=1e-9, abs_tol=1e-6):
            raise FetchError(
                f"{out}: 裁剪后总数 {crop_total} 不等于窗口总数 {window_total} / the crop's total "
                f"{crop_total} differs from the window's {window_total}"
            )
        os.replace(crop, out)
        kept = None
        if full_out is not None:
            kept = Path(full_out)
            kept.parent.mkdir(parents=True, exist_ok=True)
            os.replace(full, kept)
    finally:
        _unlink(crop)
        _unlink(full)
    info = found[0]
    return RasterFetch(
        path=out,
        url=url,
        size_bytes=got.size_bytes,
        sha256=got.sha256,
        sha256_verified=got.sha256_verified,
        crs=info.crs,
        width=width,
        height=height,
        nodata=info.nodata,
        total_count=crop_total,
        full_total_count=info.total_count,
        window=(int(window.col_off), int(window.row_off), int(window.width), int(window.height)),
        window_total_count=window_total,
        full_path=kept,
    )

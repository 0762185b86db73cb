"""Fetch OpenStreetMap roads: an Overpass query for a lon/lat box, or a ready extract.

:func:`fetch_osm` posts an Overpass QL query (:func:`overpass_query`: every ``highway`` way of a
box and its nodes) to the endpoint :func:`overpass_endpoint` names and saves the answer as OSM
XML, or downloads a ready extract (``.osm.pbf``, e.g. from Geofabrik or BBBike) and checks its
sha256; :func:`check_osm_xml` refuses an answer that is not OSM XML with ways (an HTML page, an
Overpass error remark, nodes after the ways) before anything is written. The file is what
:func:`geo_mz.core.osm_roads.read_osm_roads` reads. OpenStreetMap data is ODbL 1.0
(© OpenStreetMap contributors; attribute it on every map and report).
"""

from __future__ import annotations

import bz2
import gzip
import os
import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from geo_mz.core._fetch_common import (
    FetchContentError,
    FetchError,
    FetchInputError,
    Progress,
    check_bbox,
    check_url,
    download_file,
    open_plain,
    snippet,
)

__all__ = [
    "DEFAULT_OVERPASS",
    "OVERPASS_ENV",
    "OsmFetch",
    "OsmSummary",
    "check_osm_xml",
    "fetch_osm",
    "overpass_endpoint",
    "overpass_query",
]

#: The public Overpass instance (FOSSGIS, Germany): a documented default only, never contacted
#: unless a fetch is asked for. Its usage policy asks for at most about 10,000 queries and 1 GB a
#: day per user; use ``endpoint``/``GEO_MZ_OVERPASS_URL`` for a mirror or a private instance.
DEFAULT_OVERPASS = "https://overpass-api.de/api/interpreter"
#: Environment variable naming the Overpass endpoint when ``endpoint`` is not given.
OVERPASS_ENV = "GEO_MZ_OVERPASS_URL"

_EXTRACT_SUFFIXES = (".osm.pbf", ".osm.bz2", ".osm.gz", ".pbf", ".osm")
_MAX_TRACKED_NODES = 5_000_000  # beyond this, node references are not checked (memory)


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
    min_lon, min_lat, max_lon, max_lat = check_bbox(bbox)
    box = ",".join(_num(v) for v in (min_lat, min_lon, max_lat, max_lon))
    selector = 'way["highway"]' if highways else "way"
    return (
        f"[out:xml][timeout:{int(server_timeout_s)}];\n"
        f"(\n  {selector}({box});\n  >;\n);\n"
        "out body;\n"
    )


def _opener(name: str) -> Callable[[Path], IO[bytes]]:
    """Open plain, .gz or .bz2 OSM XML by the (destination) file name."""
    if name.endswith(".gz"):
        return lambda p: gzip.open(p, "rb")  # type: ignore[return-value]
    if name.endswith(".bz2"):
        return lambda p: bz2.open(p, "rb")  # type: ignore[return-value]
    return open_plain


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
                                f"(root element <{elem.tag}>): {snippet(path, opener)}"
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
            f"{where}: 不是有效的 XML（{exc}）/ not valid XML ({exc}): {snippet(path, opener)}"
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
            f"{snippet(path, opener)}"
        )
    return OsmSummary(
        ways_n=counts["way"],
        nodes_n=counts["node"],
        relations_n=counts["relation"],
        missing_node_refs_n=missing if counts["node"] <= _MAX_TRACKED_NODES else None,
        generator=generator,
        remarks=tuple(remarks),
    )


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
        raise FetchContentError(f"{url}: 不是 OSM PBF 文件 / not an OSM PBF file: {snippet(path)}")


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
    min_lon, min_lat, max_lon, max_lat = check_bbox(bbox)
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
    url = check_url(overpass_endpoint(endpoint))
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
    check_url(url)
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

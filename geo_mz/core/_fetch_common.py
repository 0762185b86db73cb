"""The download core every fetch stands on: the errors and one atomic, checked download.

Package-internal (its public names are re-exported by :mod:`geo_mz.core.fetch`):
:func:`download` and :func:`download_file` stream a URL into a temporary file beside the
destination, check the size, the sha256 and (through a ``check`` callback) the content, and only
then rename it into place; :class:`FetchError` and its subclasses name the URL, Chinese first,
then English. It also holds the small checks the OSM and raster fetches share (a lon/lat box, an
http(s) URL, the start of a file for messages, temporary files beside the destination).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from geo_mz import __version__
from geo_mz.core.errors import GeoMzError

__all__ = [
    "ChecksumMismatchError",
    "Downloaded",
    "FetchContentError",
    "FetchError",
    "FetchHTTPError",
    "FetchInputError",
    "FetchTimeoutError",
    "Progress",
    "check_bbox",
    "check_url",
    "download",
    "download_file",
    "open_plain",
    "snippet",
    "temp_beside",
    "unlink",
]

#: ``progress(bytes_done, bytes_total)``; the total is None when the server does not say.
Progress = Callable[[int, int | None], Any]

_CHUNK_BYTES = 1 << 20
_SNIPPET_CHARS = 200
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


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


def check_bbox(bbox: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """Return the lon/lat box as 4 floats; FetchInputError if it is not one."""
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


def snippet(path: Path, opener: Callable[[Path], IO[bytes]] | None = None) -> str:
    """Return the first 200 characters of a file, whitespace collapsed (for messages)."""
    with (opener or open_plain)(path) as fh:
        raw = fh.read(_SNIPPET_CHARS * 4)
    text = " ".join(raw.decode("utf-8", errors="replace").split())
    return text[:_SNIPPET_CHARS] or "(空 / empty)"


def open_plain(path: Path) -> IO[bytes]:
    """Open a file for reading bytes, as it is (no decompression)."""
    return open(path, "rb")


def _check_sha256(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    if not _SHA256.fullmatch(sha256.strip()):
        raise FetchInputError(
            f"sha256 {sha256!r}: 应为64位十六进制 / expected 64 hexadecimal digits"
        )
    return sha256.strip().lower()


def check_url(url: str) -> str:
    """Return ``url`` if it is http(s); FetchInputError otherwise."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchInputError(
            f"{url}: 仅支持 http(s) 地址（本地文件直接使用即可）/ only http(s) URLs are fetched "
            "(a local file can be used as it is)"
        )
    return url


def temp_beside(dest: Path, tag: str = "") -> Path:
    """Create an empty temporary ``.part`` file in the folder of ``dest`` (made if missing)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.{tag}", suffix=".part", dir=dest.parent)
    os.close(fd)
    return Path(tmp)


def unlink(path: Path | None) -> None:
    """Remove ``path`` if it is given and exists."""
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
    check_url(url)
    expected = _check_sha256(sha256)
    dest = Path(dest)
    tmp = temp_beside(dest)
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
        unlink(tmp)
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

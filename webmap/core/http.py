"""Framework-neutral request and response objects exchanged between the adapter and the core."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from webmap.core.errors import BadRequestError, PayloadTooLargeError, UnsupportedMediaTypeError
from webmap.core.users import User

JSON = "application/json"
GEOJSON = "application/geo+json"
OPENAPI_JSON = "application/vnd.oai.openapi+json;version=3.0"
_JSON_TYPES = (JSON, GEOJSON, "application/merge-patch+json")
MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays/objects accepted in a request body (a MultiPolygon feature needs 6;
Python's decoder recurses per level and fails past ~1,000 with a RecursionError)."""


def json_nesting(body: bytes) -> int:
    """Return the deepest array/object nesting of a JSON text, without decoding it.

    Brackets inside strings do not count. A quote is escaped when an odd run of backslashes
    precedes it. Vectorised (numpy), so a megabyte is scanned in milliseconds; for invalid JSON
    the result is still an upper bound of what a decoder would recurse through before failing.
    """
    if not body:
        return 0
    b = np.frombuffer(body, dtype=np.uint8)
    n = b.size
    is_bs = b == 0x5C
    idx = np.arange(n)
    # length of the run of backslashes ending just before each position
    last_not_bs = np.maximum.accumulate(np.where(is_bs, -1, idx))
    run_before = np.empty(n, dtype=np.int64)
    run_before[0] = 0
    run_before[1:] = idx[:-1] - last_not_bs[:-1]
    quote = (b == 0x22) & (run_before % 2 == 0)
    # inside a string: an odd number of unescaped quotes so far (the quotes themselves too)
    in_string = (np.cumsum(quote) % 2 == 1) | quote
    opens = ((b == 0x5B) | (b == 0x7B)) & ~in_string
    closes = ((b == 0x5D) | (b == 0x7D)) & ~in_string
    depth = np.cumsum(opens.astype(np.int64) - closes.astype(np.int64))
    return int(depth.max(initial=0))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def bounded_json(body: bytes, *, max_bytes: int | None, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode a JSON request body after checking its size and nesting depth.

    Parameters
    ----------
    body
        The raw body.
    max_bytes
        Largest accepted size (413 above); None when the caller checked it already (the
        writes check ``Settings.max_body_bytes`` before their handler runs).
    max_depth
        Deepest accepted array/object nesting (400 above), checked before any decoding.

    Returns
    -------
    Any
        The decoded value.

    Raises
    ------
    PayloadTooLargeError
        The body is larger than ``max_bytes`` (413).
    BadRequestError
        Nested too deep, not UTF-8, not JSON, or with ``NaN``/``Infinity`` or a number too
        long to read (400).
    """
    if max_bytes is not None and len(body) > max_bytes:
        raise PayloadTooLargeError(
            f"请求体有 {len(body)} 字节，上限 {max_bytes} 字节 / the body has {len(body)} "
            f"bytes; at most {max_bytes} are accepted",
        )
    depth = json_nesting(body)
    if depth > max_depth:
        raise BadRequestError(
            f"JSON 嵌套 {depth} 层，上限 {max_depth} 层 / the JSON body is nested {depth} "
            f"levels deep; at most {max_depth} are accepted",
            code="json_too_deep",
        )
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError, NaN/Infinity and integers over Python's digit limit
        raise BadRequestError(
            f"请求体不是有效的 JSON：{exc} / the body is not valid JSON: {exc}",
            code="invalid_json",
        ) from exc


@dataclass(frozen=True)
class ApiRequest:
    """One request as the core sees it.

    Parameters
    ----------
    method
        HTTP method, upper case.
    base_url
        The application's root URL with a trailing slash, for links.
    args
        Query parameters (first value of each).
    headers
        Request headers (case-insensitive lookups via :meth:`header`).
    body
        Raw request body.
    content_type
        The body's media type without parameters, lower case.
    user
        The authenticated user, or None.
    """

    method: str = "GET"
    base_url: str = "http://localhost/"
    args: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    content_type: str = ""
    user: User | None = None

    def header(self, name: str) -> str | None:
        """Return a header's value, looked up case-insensitively."""
        low = name.lower()
        for k, v in self.headers.items():
            if k.lower() == low:
                return v
        return None

    def json(self, max_bytes: int | None = None) -> Any:
        """Parse the body as JSON, bounded (see :func:`bounded_json`).

        415 when it is not declared JSON; 413 above ``max_bytes`` (when given); 400 when nested
        deeper than ``MAX_JSON_DEPTH`` or not JSON. Depth is checked before any decoding.
        """
        if self.content_type not in _JSON_TYPES:
            raise UnsupportedMediaTypeError(
                f"the body must be JSON (Content-Type {JSON} or {GEOJSON}), "
                f"not {self.content_type or 'missing'!r}"
            )
        return bounded_json(self.body, max_bytes=max_bytes)


@dataclass
class ApiResponse:
    """One response: status, headers and a JSON-able body (or text)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = JSON

    def text(self) -> str:
        """Serialise the body (JSON unless it is already text)."""
        if isinstance(self.body, str):
            return self.body
        return json.dumps(self.body, ensure_ascii=False, allow_nan=False)


__all__ = [
    "GEOJSON",
    "JSON",
    "MAX_JSON_DEPTH",
    "OPENAPI_JSON",
    "ApiRequest",
    "ApiResponse",
    "bounded_json",
    "json_nesting",
]

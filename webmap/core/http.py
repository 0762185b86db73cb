"""Framework-neutral request and response objects exchanged between the adapter and the core."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from webmap.core.errors import BadRequestError, UnsupportedMediaTypeError
from webmap.core.users import User

JSON = "application/json"
GEOJSON = "application/geo+json"
OPENAPI_JSON = "application/vnd.oai.openapi+json;version=3.0"
_JSON_TYPES = (JSON, GEOJSON, "application/merge-patch+json")


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

    def json(self) -> Any:
        """Parse the body as JSON (415 when it is not declared JSON, 400 when it is not JSON)."""
        if self.content_type not in _JSON_TYPES:
            raise UnsupportedMediaTypeError(
                f"the body must be JSON (Content-Type {JSON} or {GEOJSON}), "
                f"not {self.content_type or 'missing'!r}"
            )
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequestError(
                f"the body is not valid JSON: {exc}", code="invalid_json"
            ) from exc


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


__all__ = ["GEOJSON", "JSON", "OPENAPI_JSON", "ApiRequest", "ApiResponse"]

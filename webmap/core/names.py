"""Place-name search for the map page: ``GET /names/search`` over the national gazetteer.

The index comes from :func:`geo_mz.names.load_index` (memory-mapped from its disk cache;
the first build takes ~15-20 s). It is loaded in a background thread on the first request, and
until it is ready the endpoint answers 503 ``index_building`` with ``Retry-After`` instead of
holding the request. One index per process and cache folder (``GEO_MZ_CACHE_DIR``), shared by
every app. A result whose code is an admin unit of the workspace carries its lon/lat ``bbox``
and a ``center`` inside it, so the map can zoom there; other results have ``null`` for both.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import numpy as np

from webmap.core.errors import ApiError, BadRequestError, field_error
from webmap.core.features import check_params, int_param
from webmap.core.http import ApiRequest, ApiResponse
from webmap.core.openapi_base import errors, json_body, ref
from webmap.core.store import FeatureStore

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 10
MAX_LIMIT = 50
MAX_QUERY_CHARS = 64
"""Longest query accepted (no place name is longer; local choice)."""
MAX_CODE_DIGITS = 12
RETRY_AFTER_S = 5
PARAMS = frozenset({"q", "code_prefix", "limit", "level", "f"})
UNITS = "admin_units"


class ServiceUnavailableError(ApiError):
    """503: the place-name index is not loaded yet."""

    status = 503
    code = "index_building"


class _Loader:
    """Loads the gazetteer index once, in a daemon thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.index: Any = None
        self.error: str | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        with self.lock:
            if self.index is not None or (self.thread is not None and self.thread.is_alive()):
                return
            self.error = None
            self.thread = threading.Thread(
                target=self._load, name="webmap-gazetteer-index", daemon=True
            )
            self.thread.start()

    def _load(self) -> None:
        try:
            from geo_mz.names import load_index

            index = load_index()
        except Exception as exc:  # reported to the client; a later request retries
            log.exception("the place-name index could not be loaded")
            with self.lock:
                self.error = f"{type(exc).__name__}: {exc}"
            return
        with self.lock:
            self.index = index

    def get(self) -> Any:
        """Return the index, or raise 503 (starting the load when it has not started)."""
        self.start()
        with self.lock:
            if self.index is not None:
                return self.index
            error = self.error
        if error is not None:
            raise ServiceUnavailableError(
                f"the place-name index could not be loaded ({error}); retrying",
                headers={"Retry-After": str(RETRY_AFTER_S)},
                code="index_failed",
            )
        raise ServiceUnavailableError(
            "the place-name index is being built; try again in a few seconds "
            "(地名索引正在建立，请稍后再试)",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    def wait(self, timeout: float | None = None) -> bool:
        """Start loading and wait up to ``timeout`` seconds; True when the index is ready."""
        self.start()
        thread = self.thread
        if thread is not None:
            thread.join(timeout)
        return self.index is not None


_LOADERS: dict[str, _Loader] = {}
_LOADERS_LOCK = threading.Lock()


def loader() -> _Loader:
    """Return the process's index loader for the current cache folder (``GEO_MZ_CACHE_DIR``)."""
    key = os.environ.get("GEO_MZ_CACHE_DIR", "")
    with _LOADERS_LOCK:
        if key not in _LOADERS:
            _LOADERS[key] = _Loader()
        return _LOADERS[key]


def _text(req: ApiRequest, name: str, max_len: int, what: str) -> str | None:
    raw = req.args.get(name)
    if raw is None:
        return None
    value = raw.strip()
    if len(value) > max_len:
        raise BadRequestError(
            f"`{name}` has {len(value)} characters; at most {max_len}",
            errors=[field_error(name, "too_long", f"at most {max_len} characters")],
        )
    if not value:
        raise BadRequestError(
            f"`{name}` is empty; give {what}",
            errors=[field_error(name, "empty", what)],
        )
    return value


class NameSearch:
    """``/names/search`` over a store (for the admin units' extents).

    Parameters
    ----------
    store
        The feature store; its ``admin_units`` give ``bbox`` and ``center``.
    """

    def __init__(self, store: FeatureStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._extents: tuple[int, dict[str, tuple[list[float], list[float]]]] | None = None

    def start(self) -> None:
        """Start loading the index in the background (no wait)."""
        loader().start()

    def _unit_extents(self) -> dict[str, tuple[list[float], list[float]]]:
        if UNITS not in self.store.layer_names():
            return {}
        token = self.store.token(UNITS)
        with self._lock:
            if self._extents is not None and self._extents[0] == token:
                return self._extents[1]
        g = self.store.frame(UNITS)
        out: dict[str, tuple[list[float], list[float]]] = {}
        if len(g):
            geoms = g.geometry.to_numpy()
            ok = ~(np.asarray([x is None for x in geoms]) | g.geometry.is_empty.to_numpy())
            codes = g["adcode"].astype(str).to_numpy()[ok]
            bounds = g.geometry[ok].bounds.to_numpy()
            centers = g.geometry[ok].representative_point()
            for code, b, c in zip(codes, bounds, centers, strict=True):
                out[str(code)] = (
                    [round(float(v), 7) for v in b],
                    [round(float(c.x), 7), round(float(c.y), 7)],
                )
        with self._lock:
            self._extents = (token, out)
        return out

    def search(self, req: ApiRequest) -> ApiResponse:
        """Search names by characters, pinyin or initials: ``q``, ``code_prefix``, ``limit``."""
        from geo_mz.names import LEVELS, search

        check_params(req, PARAMS)
        q = _text(req, "q", MAX_QUERY_CHARS, "a place name, its pinyin or initials")
        if q is None:
            raise BadRequestError(
                "`q` is required: a place name, its pinyin or initials",
                errors=[field_error("q", "missing_required", "a place name")],
            )
        prefix = _text(req, "code_prefix", MAX_CODE_DIGITS, "a code prefix")
        if prefix is not None and not (prefix.isascii() and prefix.isdigit()):
            raise BadRequestError(
                f"`code_prefix` was {prefix!r} but must be digits (e.g. 440703)",
                errors=[field_error("code_prefix", "bad_value", "digits")],
            )
        levels = None
        raw_level = _text(req, "level", 64, "levels")
        if raw_level is not None:
            levels = [x.strip() for x in raw_level.split(",") if x.strip()]
            bad = [x for x in levels if x not in LEVELS]
            if bad or not levels:
                raise BadRequestError(
                    f"`level` was {raw_level!r}; levels are {list(LEVELS)}",
                    errors=[field_error("level", "bad_value", ", ".join(LEVELS))],
                )
        limit = int_param(req, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        index = loader().get()
        found = search(index, q, code_prefix=prefix, levels=levels, limit=limit)
        extents = self._unit_extents()
        results = []
        for row in found.itertuples(index=False):
            code = str(row.code)
            bbox, center = extents.get(code, (None, None))
            results.append(
                {
                    "code": code,
                    "name": str(row.name),
                    "level": str(row.level),
                    "full_name": str(row.full_name),
                    "match": str(row.match),
                    "score": float(row.score),
                    "bbox": bbox,
                    "center": center,
                }
            )
        return ApiResponse(
            body={
                "query": q,
                "code_prefix": prefix,
                "limit": limit,
                "numberReturned": len(results),
                "results": results,
            }
        )


def names_paths() -> dict[str, Any]:
    """OpenAPI path of ``/names/search``."""
    result = {
        "type": "object",
        "properties": {
            "code": {"type": "string"},
            "name": {"type": "string"},
            "level": {"type": "string"},
            "full_name": {"type": "string"},
            "match": {"type": "string"},
            "score": {"type": "number"},
            "bbox": {
                "type": "array",
                "items": {"type": "number"},
                "minItems": 4,
                "maxItems": 4,
                "nullable": True,
            },
            "center": {
                "type": "array",
                "items": {"type": "number"},
                "minItems": 2,
                "maxItems": 2,
                "nullable": True,
            },
        },
    }
    body = {
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "code_prefix": {"type": "string", "nullable": True},
            "limit": {"type": "integer"},
            "numberReturned": {"type": "integer"},
            "results": {"type": "array", "items": result},
        },
    }
    return {
        "/names/search": {
            "get": {
                "summary": "search place names (Chinese, pinyin or initials) in the gazetteer; "
                "503 while the index is being built",
                "operationId": "searchNames",
                "parameters": [
                    {
                        "name": "q",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS},
                    },
                    {
                        "name": "code_prefix",
                        "in": "query",
                        "schema": {"type": "string", "pattern": f"^[0-9]{{1,{MAX_CODE_DIGITS}}}$"},
                    },
                    {
                        "name": "level",
                        "in": "query",
                        "schema": {
                            "type": "string",
                            "pattern": "^(province|city|county|town|village)"
                            "(,(province|city|county|town|village))*$",
                        },
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_LIMIT,
                            "default": DEFAULT_LIMIT,
                        },
                    },
                ],
                "responses": {
                    "200": {"description": "matches, best first", **json_body(body)},
                    **errors("400", "401"),
                    "503": {
                        "description": "the index is being built; retry after Retry-After",
                        **json_body(ref("schemas", "exception")),
                    },
                },
            }
        }
    }


__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "NameSearch",
    "ServiceUnavailableError",
    "loader",
    "names_paths",
]

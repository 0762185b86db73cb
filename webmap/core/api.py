"""The web map's API as one framework-neutral object: requests in, plain responses out.

Built from :class:`webmap.settings.Settings`; a web framework adapter (``webmap.app``) only
turns HTTP into :class:`ApiRequest` and :class:`ApiResponse` back into HTTP, authenticates
the user and checks the CSRF token of cookie sessions. Role checks happen here, on every write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from geo_mz.core.gpkg_lock import WorkspaceBusyError
from webmap.core import backend, closures, edits, features, incidents
from webmap.core.analysis import (
    Analysis,
    coverage_layers_response,
    coverage_response,
    relief_response,
)
from webmap.core.errors import (
    ApiError,
    BadRequestError,
    ForbiddenError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    UnauthorizedError,
    busy_error,
    field_error,
)
from webmap.core.events import EventBus, parse_last_event_id, stream
from webmap.core.http import OPENAPI_JSON, ApiRequest, ApiResponse
from webmap.core.layers import CLOSURES, INCIDENTS, SHELTERS, allowed_methods, write_rule
from webmap.core.mapdata import MapData
from webmap.core.names import NameSearch
from webmap.core.openapi import openapi_document
from webmap.core.overlays import with_overlays
from webmap.core.store import FeatureStore
from webmap.core.tiles import TileCache
from webmap.core.users import ROLE_LABELS, User, UserStore
from webmap.settings import Settings

Handler = Callable[..., ApiResponse]

_WRITES: dict[tuple[str, str], Handler] = {
    (INCIDENTS, "POST"): edits.create_incident,
    (INCIDENTS, "PATCH"): incidents.patch_incident,
    (INCIDENTS, "DELETE"): incidents.delete_incident,
    (CLOSURES, "POST"): edits.create_closure,
    (CLOSURES, "PATCH"): closures.patch_closure,
    (CLOSURES, "DELETE"): edits.delete_closure,
    (SHELTERS, "PATCH"): edits.patch_shelter,
}
AUDIT_MAX_LIMIT = 1000


def error_response(exc: ApiError) -> ApiResponse:
    """Build the JSON response of an API error."""
    return ApiResponse(exc.status, exc.body(), dict(exc.headers))


_CORS_METHODS = frozenset({"GET", "HEAD"})
_CORS_EXPOSED = "Content-Crs, ETag, Location, X-Event-Id"


def cors_headers(settings: Settings, req: ApiRequest) -> dict[str, str]:
    """CORS headers for a read-only request from an allowed origin (none for writes).

    ``Settings.cors_origins`` lists the origins whose pages may read the API (``*``: any);
    credentials are never allowed, so a cross-origin page reads only what anonymous users may.
    """
    origin = req.header("Origin")
    allowed = settings.cors_origins
    if req.method not in _CORS_METHODS or not origin or not allowed:
        return {}
    if "*" in allowed:
        return {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": _CORS_EXPOSED}
    if origin not in allowed:
        return {"Vary": "Origin"}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": _CORS_EXPOSED,
        "Vary": "Origin",
    }


class WebMapAPI:
    """Everything the web map answers, independent of the web framework.

    Parameters
    ----------
    settings
        The application settings.
    store
        The feature store; a :class:`webmap.core.gpkg.GpkgStore` on ``settings.workspace``
        when None.
    users
        The users database; ``settings.users_db`` when None.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: FeatureStore | None = None,
        users: UserStore | None = None,
    ) -> None:
        self.settings = settings
        assert settings.users_db is not None
        self._backend = store or backend.open_store(settings)  # GeoPackage or PostGIS
        self.store = with_overlays(self._backend)  # + read-only boundary overlays
        self.users = users or UserStore(settings.users_db)
        self.bus = EventBus(self.store.last_event_id())
        backend.listen(self._backend, self.bus.publish)  # other processes' edits (PostGIS)
        self.mapdata = MapData(self.store, settings)
        self.tiles = TileCache(self.store, self.mapdata.symbology)
        self.names = NameSearch(self.store)
        self.analysis = Analysis(self.store, self.bus)  # relief audit with closures, coverage
        self.added_incidents = bool(getattr(self._backend, "added_incidents", False))
        """Whether opening the workspace added an empty ``incidents`` layer (it had none)."""

    # -- plumbing ---------------------------------------------------------------------------
    def call(self, handler: Handler, req: ApiRequest, *args: Any) -> ApiResponse:
        """Run a handler; turn :class:`ApiError` (and a busy workspace: 503) into JSON; add CORS."""
        try:
            response = handler(req, *args)
        except ApiError as exc:
            response = error_response(exc)
        except WorkspaceBusyError as exc:  # the file stayed locked: nothing written, retry
            response = error_response(busy_error(exc))
        response.headers.update(cors_headers(self.settings, req))
        return response

    def _may_read(self, req: ApiRequest) -> None:
        if req.user is None and not self.settings.anonymous_read:
            raise UnauthorizedError(
                "请先登录才能查看地图和数据 / log in to see the map and its data"
            )

    def _collection(self, cid: str) -> None:
        if cid not in self.store.layer_names():
            raise NotFoundError(
                f"no collection {cid!r}; collections are {self.store.layer_names()}",
                code="no_collection",
            )

    # -- reads (OGC API - Features) -----------------------------------------------------------
    def landing(self, req: ApiRequest) -> ApiResponse:
        """Landing page."""
        self._may_read(req)
        return features.landing(self.store, req)

    def conformance(self, req: ApiRequest) -> ApiResponse:
        """Conformance classes."""
        self._may_read(req)
        return features.conformance(self.store, req)

    def collections(self, req: ApiRequest) -> ApiResponse:
        """All collections."""
        self._may_read(req)
        return features.collections(self.store, req, self.settings.default_lang)

    def collection(self, req: ApiRequest, cid: str) -> ApiResponse:
        """One collection."""
        self._may_read(req)
        return features.collection(self.store, req, cid, self.settings.default_lang)

    def items(self, req: ApiRequest, cid: str) -> ApiResponse:
        """Return a page of features."""
        self._may_read(req)
        return features.items(self.store, req, cid)

    def item(self, req: ApiRequest, cid: str, fid: str) -> ApiResponse:
        """One feature with its ETag."""
        self._may_read(req)
        return features.item(self.store, req, cid, fid)

    def queryables(self, req: ApiRequest, cid: str) -> ApiResponse:
        """Return the collection's queryables (OGC API - Features Part 3)."""
        self._may_read(req)
        return features.collection_queryables(self.store, req, cid)

    def schema(self, req: ApiRequest, cid: str) -> ApiResponse:
        """Return the collection's schema (``profile=geojson``: as a GeoJSON Feature)."""
        self._may_read(req)
        return features.collection_schema(self.store, req, cid)

    def openapi(self, req: ApiRequest) -> ApiResponse:
        """Return the OpenAPI 3.0 document."""
        return ApiResponse(body=openapi_document(self.store, req.base_url), media_type=OPENAPI_JSON)

    # -- map page data ------------------------------------------------------------------------
    def map_config(self, req: ApiRequest) -> ApiResponse:
        """Layer list and settings for the map page."""
        self._may_read(req)
        return self.mapdata.config(req)

    def map_layer(self, req: ApiRequest, cid: str) -> ApiResponse:
        """One styled layer for the map page."""
        self._may_read(req)
        self._collection(cid)
        return self.mapdata.layer(req, cid)

    def map_summary(self, req: ApiRequest) -> ApiResponse:
        """Headline figures and incident list for the side panel."""
        self._may_read(req)
        return self.mapdata.summary(req)

    def analysis_relief(self, req: ApiRequest) -> ApiResponse:
        """Relief audit with the current closures (``webmap.core.analysis``)."""
        self._may_read(req)
        return relief_response(self.analysis)

    def analysis_coverage(self, req: ApiRequest) -> ApiResponse:
        """KPIs of the 15-minute elder-care circle."""
        self._may_read(req)
        return coverage_response(self.analysis)

    def analysis_coverage_layers(self, req: ApiRequest) -> ApiResponse:
        """Serve the 15-minute circle's isochrone rings and coverage gaps, styled, as GeoJSON."""
        self._may_read(req)
        features.check_params(req, frozenset({"lang"}))
        lang = features.lang_of(req, self.settings.default_lang)
        return coverage_layers_response(self.analysis, lang)

    def map_tile(self, req: ApiRequest, cid: str, z: str, x: str, y: str) -> ApiResponse:
        """One tile of a layer for the map page: clipped, simplified by zoom, cached (ETag)."""
        self._may_read(req)
        self._collection(cid)
        return self.tiles.tile(req, cid, int(z), int(x), int(y))

    def map_incidents(self, req: ApiRequest) -> ApiResponse:
        """Every incident with its town, counts per town and the lifecycle rules."""
        self._may_read(req)
        self._collection(INCIDENTS)
        return incidents.incident_list(self.store, req, self.settings.default_lang)

    def closure_preview(self, req: ApiRequest) -> ApiResponse:
        """List the roads a drawn closure would cut (the relief engine's rule; stores nothing)."""
        self._may_read(req)
        return closures.closure_preview(self.analysis, self.store, self.settings, req)

    def names_search(self, req: ApiRequest) -> ApiResponse:
        """Place-name search (503 while the gazetteer index is being built)."""
        self._may_read(req)
        return self.names.search(req)

    # -- writes -------------------------------------------------------------------------------
    def write(self, req: ApiRequest, cid: str, fid: str | None = None) -> ApiResponse:
        """POST to a collection, or PATCH / DELETE one of its features; role-checked."""
        self._collection(cid)
        rule = write_rule(cid, req.method)
        handler = _WRITES.get((cid, req.method))
        if rule is None or handler is None or (fid is None) != (req.method == "POST"):
            offered = allowed_methods(cid)
            here = [m for m in offered if (m == "POST") == (fid is None)]
            where = "items" if fid is None else "an item"
            raise MethodNotAllowedError(
                f"{req.method} is not offered on {where} of '{cid}' (writes offered: {offered})",
                headers={"Allow": ", ".join(["GET", *here])},
            )
        if req.user is None:
            raise UnauthorizedError(
                f"请以{ROLE_LABELS[rule.role][0]}或更高权限登录后再执行此操作"
                f"（{req.method} {cid}） / "
                f"log in as {rule.role} or higher to {req.method} {cid}"
            )
        if not req.user.can(rule.role):
            raise ForbiddenError(
                f"{ROLE_LABELS[req.user.role][0]}无权执行此操作（{req.method} {cid}），须"
                f"{ROLE_LABELS[rule.role][0]}或更高权限 / role {req.user.role} may not "
                f"{req.method} {cid}; {rule.role} or higher may",
                code="role_forbidden",
            )
        if len(req.body) > self.settings.max_body_bytes:
            raise PayloadTooLargeError(
                f"the body has {len(req.body)} bytes; at most {self.settings.max_body_bytes}"
            )
        args = () if fid is None else (fid,)
        token_before = self.tiles.token(cid)
        response = handler(self.store, self.settings, req, *args)
        self.tiles.after_write(cid, token_before, int(response.headers["X-Event-Id"]))
        self.bus.publish(int(response.headers["X-Event-Id"]))
        self.analysis.edited(cid)  # re-run the relief audit in the background, push `analysis`
        return response

    # -- audit, events, login -----------------------------------------------------------------
    def audit(self, req: ApiRequest) -> ApiResponse:
        """Audit-log rows, newest first (admin only): ``limit``, ``offset``, ``layer``."""
        if req.user is None:
            raise UnauthorizedError(
                "请以管理员身份登录查看审计日志 / log in as admin to read the audit log"
            )
        if not req.user.can("admin"):
            raise ForbiddenError(
                "只有管理员可以查看审计日志 / only admin may read the audit log",
                code="role_forbidden",
            )
        features.check_params(req, frozenset({"limit", "offset", "layer", "f"}))
        limit = features.int_param(req, "limit", 100, 1, AUDIT_MAX_LIMIT)
        offset = features.int_param(req, "offset", 0, 0, 2**31)
        rows = self.store.audit_rows(limit=limit, offset=offset, layer=req.args.get("layer"))
        return ApiResponse(body={"rows": rows, "limit": limit, "offset": offset})

    def events_start(self, req: ApiRequest) -> int | None:
        """Check a request for the event stream; return the event id to replay after.

        The one authorisation and parameter check of ``/events``, whichever path serves it.

        Parameters
        ----------
        req
            The authenticated request.

        Returns
        -------
        int or None
            ``Last-Event-ID`` (else ``since``); None to start with the next event.

        Raises
        ------
        ApiError
            401 when anonymous users may not read, 400 for an unknown parameter or a bad id.
        """
        self._may_read(req)
        features.check_params(req, frozenset({"since"}))
        return parse_last_event_id(req.header("Last-Event-ID"), req.args.get("since"))

    def events(self, req: ApiRequest) -> Iterator[str]:
        """Open the event stream; raise :class:`ApiError` (before streaming) on a bad request."""
        last = self.events_start(req)
        return stream(
            self.store,
            self.bus,
            last_id=last,
            keepalive_s=self.settings.sse_keepalive_s,
            max_s=self.settings.sse_max_s,
            live=self.analysis.live,
        )

    def login(self, req: ApiRequest) -> User:
        """Check a ``{"username", "password"}`` body; the adapter starts the session."""
        body = req.json(max_bytes=self.settings.max_body_bytes)  # bounded before decoding
        if not isinstance(body, dict):
            raise BadRequestError(
                "请求体应为 {username, password} / the body must be {username, password}"
            )
        name, password = body.get("username"), body.get("password")
        if not isinstance(name, str) or not isinstance(password, str):
            raise BadRequestError(
                "username and password are required",
                errors=[
                    field_error(k, "missing_required", "a string")
                    for k in ("username", "password")
                    if not isinstance(body.get(k), str)
                ],
            )
        user = self.users.authenticate(name, password)
        if user is None:
            raise UnauthorizedError(
                "用户名或密码错误 / wrong user name or password", code="bad_credentials"
            )
        return user

    def close(self) -> None:
        """End open event streams (the server is stopping)."""
        self.bus.close()
        self.analysis.close()
        backend.close(self._backend)


__all__ = ["AUDIT_MAX_LIMIT", "WebMapAPI", "cors_headers", "error_response"]

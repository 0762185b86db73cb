"""The flask adapter: an app factory turning HTTP into calls on :class:`WebMapAPI`.

Everything the API decides lives in ``webmap.core``; here are only HTTP concerns: the session
cookie (login, logout), the CSRF token required on cookie-session writes, HTTP Basic for
scripts, content negotiation of ``/``, the event stream response and static files.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import xstatic.pkg.leaflet as xleaflet
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    render_template,
    request,
    send_from_directory,
    session,
)
from werkzeug.exceptions import HTTPException, InternalServerError

import geo_mz
from webmap.core.api import WebMapAPI, error_response
from webmap.core.errors import ApiError, ForbiddenError, UnauthorizedError
from webmap.core.features import prefers_html
from webmap.core.http import ApiRequest, ApiResponse
from webmap.core.security import security_headers
from webmap.core.throttle import LoginThrottle
from webmap.core.users import User
from webmap.settings import Settings

HERE = Path(__file__).resolve().parent
CSRF_HEADER = "X-CSRF-Token"
SESSION_COOKIE = "geo_mz_session"
ASYNC_EVENTS = "geo_mz.events"
"""ASGI scope key with which ``webmap.asgi`` asks the ``/events`` view only to check a request."""
_THROTTLE = "webmap_login_throttle"
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ITEM_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def to_flask(resp: ApiResponse) -> Response:
    """Turn an :class:`ApiResponse` into a flask response."""
    if resp.status == 204 or resp.body is None:
        return Response(status=resp.status, headers=resp.headers)
    return Response(
        resp.text(), status=resp.status, headers=resp.headers, content_type=resp.media_type
    )


def _throttle(api: WebMapAPI) -> LoginThrottle:
    """Return the app's failed-login counters (``webmap.core.throttle``), made on first use."""
    found = current_app.extensions.get(_THROTTLE)
    if found is None:
        s = api.settings
        assert s.users_db is not None
        found = LoginThrottle(s.users_db, s.login_max_failures, s.login_window_s)
        current_app.extensions[_THROTTLE] = found
    return found


def _checked_login(api: WebMapAPI, name: str, authenticate: Callable[[], User]) -> User:
    """Run ``authenticate`` unless the name or address is locked; count its failure (401)."""
    throttle, address = _throttle(api), request.remote_addr or "unknown"
    throttle.check(name, address)  # 429 before any password hashing
    try:
        user = authenticate()
    except UnauthorizedError:
        throttle.failed(name, address)
        raise
    throttle.succeeded(name, address)
    return user


def _basic_user(api: WebMapAPI, name: str, password: str) -> User:
    user = api.users.authenticate(name, password)
    if user is None:
        raise UnauthorizedError("wrong user name or password", code="bad_credentials")
    return user


def _current_user(api: WebMapAPI) -> tuple[User | None, str]:
    """Return the user and how they authenticated: ``basic``, ``session`` or ``none``."""
    auth = request.authorization
    if auth is not None and auth.type == "basic":
        name, password = auth.username or "", auth.password or ""
        return _checked_login(api, name, lambda: _basic_user(api, name, password)), "basic"
    name = session.get("user")
    if isinstance(name, str):
        user = api.users.get(name)
        if user is not None:
            return user, "session"
        session.clear()  # the user was removed or disabled
    return None, "none"


def _check_csrf(mode: str) -> None:
    """Cookie-session writes must echo the session's CSRF token in ``X-CSRF-Token``."""
    if request.method not in _UNSAFE or mode != "session":
        return
    sent = request.headers.get(CSRF_HEADER)
    expected = session.get("csrf")
    if not sent:
        raise ForbiddenError(
            f"missing {CSRF_HEADER} header (get it from /session)", code="csrf_missing"
        )
    if not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
        raise ForbiddenError(f"wrong {CSRF_HEADER} token", code="csrf_invalid")


def api_request(api: WebMapAPI, *, csrf: bool = True) -> ApiRequest:
    """Convert the current flask request to an :class:`ApiRequest` (authenticated, CSRF-checked).

    Parameters
    ----------
    api
        Whose users database authenticates.
    csrf
        Check the CSRF token of a cookie session (off only for ``/login``, which starts one).
    """
    user, mode = _current_user(api)
    if csrf:
        _check_csrf(mode)
    return ApiRequest(
        method=request.method,
        base_url=request.url_root,
        args=request.args.to_dict(flat=True),
        headers=dict(request.headers),
        body=request.get_data(cache=True) if request.method in _UNSAFE else b"",
        content_type=request.mimetype or "",
        user=user,
    )


def make_blueprint(api: WebMapAPI) -> Blueprint:
    """All routes of the web map, bound to one :class:`WebMapAPI`."""
    bp = Blueprint("webmap", __name__, template_folder=str(HERE / "templates"))

    def run(method_name: str, *args: str) -> Response:
        try:
            req = api_request(api)
        except ApiError as exc:
            return to_flask(error_response(exc))
        return to_flask(api.call(getattr(api, method_name), req, *args))

    @bp.get("/")
    def index() -> Response | str:
        if not prefers_html(request.headers.get("Accept"), request.args.get("f")):
            return run("landing")  # JSON for */*, application/json, no Accept (OGC clients)
        lang = request.args.get("lang", api.settings.default_lang)
        return render_template(
            "index.html",
            lang=lang if lang in ("zh", "en") else api.settings.default_lang,
            version=geo_mz.__version__,
            leaflet=xleaflet.VERSION,
        )

    bp.add_url_rule("/conformance", "conformance", lambda: run("conformance"))
    bp.add_url_rule("/collections", "collections", lambda: run("collections"))
    bp.add_url_rule("/collections/<cid>", "collection", lambda cid: run("collection", cid))
    bp.add_url_rule(
        "/collections/<cid>/queryables", "queryables", lambda cid: run("queryables", cid)
    )
    bp.add_url_rule("/collections/<cid>/schema", "schema", lambda cid: run("schema", cid))
    bp.add_url_rule("/openapi", "openapi", lambda: run("openapi"))
    bp.add_url_rule("/audit", "audit", lambda: run("audit"))
    bp.add_url_rule("/map/config", "map_config", lambda: run("map_config"))
    bp.add_url_rule("/map/summary", "map_summary", lambda: run("map_summary"))
    bp.add_url_rule("/map/layers/<cid>", "map_layer", lambda cid: run("map_layer", cid))
    bp.add_url_rule(
        "/map/tiles/<cid>/<int:z>/<int:x>/<int:y>.json",
        "map_tile",
        lambda cid, z, x, y: run("map_tile", cid, str(z), str(x), str(y)),
    )
    bp.add_url_rule("/names/search", "names_search", lambda: run("names_search"))
    bp.add_url_rule("/map/incidents", "map_incidents", lambda: run("map_incidents"))
    bp.add_url_rule(
        "/analysis/closure-preview",
        "closure_preview",
        lambda: run("closure_preview"),
        methods=["POST"],
    )
    bp.add_url_rule("/analysis/relief", "analysis_relief", lambda: run("analysis_relief"))
    bp.add_url_rule("/analysis/coverage", "analysis_coverage", lambda: run("analysis_coverage"))
    bp.add_url_rule(
        "/analysis/coverage/layers",
        "analysis_coverage_layers",
        lambda: run("analysis_coverage_layers"),
    )

    @bp.route("/collections/<cid>/items", methods=_ITEM_METHODS)
    def items(cid: str) -> Response:
        return run("items" if request.method == "GET" else "write", cid)

    @bp.route("/collections/<cid>/items/<path:fid>", methods=_ITEM_METHODS)
    def item(cid: str, fid: str) -> Response:
        return run("item" if request.method == "GET" else "write", cid, fid)

    @bp.get("/events")
    def events() -> Response:
        # Under `geo-mz serve` (webmap.asgi) the event loop streams the body: this view only
        # checks the request and tells it where to start (ASYNC_EVENTS in the ASGI scope).
        handoff = request.environ.get("asgi.scope", {}).get(ASYNC_EVENTS)
        try:
            req = api_request(api)
            if isinstance(handoff, dict):  # raises ApiError (401, 400) before any streaming
                handoff["last_id"] = api.events_start(req)
                stream: Iterator[str] = iter(())  # the threaded stream is never made
            else:
                stream = api.events(req)
        except ApiError as exc:
            return to_flask(error_response(exc))
        return Response(
            stream,
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @bp.post("/login")
    def login() -> Response:
        try:
            req = api_request(api, csrf=False)
            body = req.json(max_bytes=api.settings.max_body_bytes)  # bounded before decoding
            name = body.get("username") if isinstance(body, dict) else None
            name = name if isinstance(name, str) else ""
            user = _checked_login(api, name, lambda: api.login(req))
        except ApiError as exc:
            return to_flask(error_response(exc))
        session.clear()
        session["user"] = user.name
        session["csrf"] = secrets.token_urlsafe(32)
        return to_flask(ApiResponse(body=_session_body(user)))

    @bp.post("/logout")
    def logout() -> Response:
        try:
            api_request(api)  # checks the CSRF token of a live session
        except ApiError as exc:
            return to_flask(error_response(exc))
        session.clear()
        return to_flask(ApiResponse(body={"user": None, "role": None, "csrf_token": None}))

    @bp.get("/session")
    def session_info() -> Response:
        try:
            user, _ = _current_user(api)
        except ApiError as exc:
            return to_flask(error_response(exc))
        return to_flask(
            ApiResponse(body=_session_body(user), headers={"Cache-Control": "no-store"})
        )

    @bp.get("/static/<path:filename>")
    def static(filename: str) -> Response:
        return send_from_directory(HERE / "static", filename)

    @bp.get("/vendor/leaflet/<path:filename>")
    def leaflet(filename: str) -> Response:
        return send_from_directory(xleaflet.BASE_DIR, filename)

    return bp


def _session_body(user: User | None) -> dict[str, object]:
    if user is None:
        return {"user": None, "role": None, "csrf_token": None}
    return {"user": user.name, "role": user.role, "csrf_token": session.get("csrf")}


def _http_error(exc: HTTPException) -> Response:
    """Werkzeug's own errors (unknown route, body too large) as JSON like the API's."""
    code = (exc.name or "error").lower().replace(" ", "_")
    body = ApiResponse(exc.code or 500, {"code": code, "description": exc.description or ""})
    return to_flask(body)


def _server_error(exc: InternalServerError) -> Response:
    """Answer an exception no handler turned into an API error: JSON 500, never HTML.

    The core raises :class:`ApiError` for what it foresees (a failed overlay or analysis is
    ``overlay_failed`` / ``analysis_failed``); this is the net under everything else, so the
    map page still gets a message it can show in red. Flask has logged the traceback.
    """
    orig = exc.original_exception
    if isinstance(orig, ApiError):  # raised outside WebMapAPI.call (e.g. while streaming)
        return to_flask(error_response(orig))
    cause = f"{type(orig).__name__}: {orig}" if orig is not None else "unknown"
    body = {
        "code": "server_error",
        "description": f"服务器内部错误（{cause}），详情见服务器日志；请联系系统管理员。"
        f" / Internal server error ({cause}); the server log has the details; tell the "
        "system administrator.",
        "cause": cause,
    }
    return to_flask(ApiResponse(500, body))


def create_app(settings: Settings, *, api: WebMapAPI | None = None) -> Flask:
    """Build the flask application for one workspace.

    Parameters
    ----------
    settings
        Explicit settings (workspace, secret key, databases, tiles, limits).
    api
        A ready :class:`WebMapAPI` (e.g. over another store); built from ``settings`` when None.

    Returns
    -------
    flask.Flask
        The WSGI application; ``app.extensions["webmap"]`` is its :class:`WebMapAPI`.
    """
    api = api or WebMapAPI(settings)
    app = Flask("webmap", static_folder=None, root_path=str(HERE))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.extensions["webmap"] = api
    app.register_blueprint(make_blueprint(api))
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(InternalServerError, _server_error)
    headers = security_headers(settings)

    @app.after_request
    def _secure(response: Response) -> Response:
        for key, value in headers.items():  # every response: HTML, JSON, static, errors
            response.headers.setdefault(key, value)
        return response

    return app


__all__ = [
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "api_request",
    "create_app",
    "make_blueprint",
    "to_flask",
]

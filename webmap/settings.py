"""Explicit, validated settings of one web-map application (no globals, no environment reads)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Lang = Literal["zh", "en"]

MIN_SECRET_CHARS = 16
"""Shortest accepted session secret (local choice; use ``secrets.token_urlsafe(32)``)."""


_ORIGIN = re.compile(r"^(\*|https?://[^/\s?#]+)$")


class SettingsError(ValueError):
    """A setting is missing or out of range; the message names it."""


def _default_beside(workspace: Path, suffix: str) -> Path:
    return workspace.with_name(f"{workspace.stem}.{suffix}")


@dataclass(frozen=True)
class Settings:
    """Everything a web-map application needs, given explicitly to :func:`webmap.create_app`.

    Parameters
    ----------
    workspace
        The workspace GeoPackage (``.gpkg``) served and edited; None with ``database_url``.
    secret_key
        Signs session cookies; at least 16 characters, kept across restarts to keep sessions.
    users_db
        SQLite file of users and roles; ``<workspace stem>.users.sqlite`` beside the workspace
        when None.
    journal_db
        SQLite file of the audit log, the event log, feature versions and road closures;
        ``<workspace stem>.webmap.sqlite`` beside the workspace when None.
    tiles_url
        Optional XYZ tile URL template for a base map (e.g. Tianditu with a key); the map works
        without it, drawn from the workspace's own boundaries and roads.
    tiles_attribution
        Attribution shown with the tiles.
    anonymous_read
        Whether people who are not logged in may read the map and the API (writes always need
        a login).
    max_body_bytes
        Largest accepted request body, in bytes (413 above).
    max_vertices
        Most coordinates in one submitted geometry (422 above).
    max_text_chars
        Longest accepted free-text attribute (description, reason), in characters.
    max_map_features
        Most features one map-layer request returns (the page asks for its view box).
    sse_keepalive_s
        Seconds between keep-alive comments on an idle event stream.
    sse_max_s
        Seconds after which an event stream ends; the browser reconnects with
        ``Last-Event-ID`` and misses nothing.
    sse_max_streams
        Most event streams open at once in one server process; past it ``/events`` answers
        503 with ``Retry-After`` (each open map holds one stream).
    sse_max_streams_per_client
        Most event streams open at once from one client address (behind a reverse proxy the
        address it forwards in ``X-Forwarded-For``; a whole office behind one NAT shares it).
    sse_retry_after_s
        Seconds a refused client is told to wait (``Retry-After``) before it tries again.
    secure_cookies
        Send the session cookie only over HTTPS (turn on behind TLS).
    default_lang
        Language of the map page and labels when the request names none.
    database_url
        ``postgresql://...`` of a PostGIS database made by ``geo-mz webmap import``: serve it
        instead of the GeoPackage (several server processes may share it). ``workspace`` may
        then be None (``users_db`` is required then); the journal is not used.
    cors_origins
        Origins (``https://host[:port]``) whose web pages may read the API across origins
        (CORS, read-only requests: GET/HEAD; never with credentials, so such a page sees only
        what anonymous users may). ``("*",)`` (the default): any origin; ``()``: none.
    login_max_failures
        Failed logins (``POST /login`` or HTTP Basic) of one user name from one client address
        within ``login_window_s`` after which that pair is refused with 429 and
        ``Retry-After``, even with the right password, until the window passes. Four times as
        many failures from one address (any names), or of one name (any addresses), lock that
        address or that name the same way. A successful login clears its name's counts.
    login_window_s
        Seconds over which failed logins are counted (see ``login_max_failures``).
    closure_confirm_share
        A new road closure covering more than this share (0..1) of the district's area or of
        its road length is refused with 409 ``confirm_required`` until sent again with
        ``"confirm": true``; 1 turns the check off.
    """

    workspace: Path | None
    secret_key: str
    users_db: Path | None = None
    journal_db: Path | None = None
    tiles_url: str | None = None
    tiles_attribution: str = ""
    anonymous_read: bool = True
    max_body_bytes: int = 1_000_000
    max_vertices: int = 10_000
    max_text_chars: int = 2_000
    max_map_features: int = 10_000
    sse_keepalive_s: float = 15.0
    sse_max_s: float = 300.0
    sse_max_streams: int = 2_000
    sse_max_streams_per_client: int = 100
    sse_retry_after_s: int = 5
    secure_cookies: bool = False
    default_lang: Lang = "zh"
    database_url: str | None = None
    cors_origins: tuple[str, ...] = ("*",)
    login_max_failures: int = 5
    login_window_s: float = 300.0
    closure_confirm_share: float = 0.2

    def __post_init__(self) -> None:
        ws = None if self.workspace is None else Path(self.workspace)
        object.__setattr__(self, "workspace", ws)
        beside = (lambda suffix: _default_beside(ws, suffix)) if ws else (lambda suffix: None)
        users = Path(self.users_db) if self.users_db else beside("users.sqlite")
        journal = Path(self.journal_db) if self.journal_db else beside("webmap.sqlite")
        object.__setattr__(self, "users_db", users)
        object.__setattr__(self, "journal_db", journal)
        problems = []
        if self.database_url is not None and not str(self.database_url).startswith(
            ("postgresql://", "postgres://")
        ):
            problems.append("`database_url` must be a postgresql:// URL")
        if ws is None and not self.database_url:
            problems.append("give `workspace` (GeoPackage) or `database_url` (PostGIS)")
        if users is None:
            problems.append("`users_db` is required when there is no `workspace`")
        if not isinstance(self.secret_key, str) or len(self.secret_key) < MIN_SECRET_CHARS:
            problems.append(f"`secret_key` must be a string of at least {MIN_SECRET_CHARS} chars")
        for name in (
            "max_body_bytes",
            "max_vertices",
            "max_text_chars",
            "max_map_features",
            "login_max_failures",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"`{name}` was {value!r} but must be a positive integer")
        for name in ("sse_keepalive_s", "sse_max_s", "login_window_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                problems.append(f"`{name}` was {value!r} but must be a positive number of seconds")
        share = self.closure_confirm_share
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
            problems.append(f"`closure_confirm_share` was {share!r} but must lie in (0, 1]")
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins))
        for origin in self.cors_origins:
            if not isinstance(origin, str) or not _ORIGIN.match(origin):
                problems.append(
                    f"`cors_origins` has {origin!r}: each must be '*' or scheme://host[:port] "
                    "without a path"
                )
        for name in ("sse_max_streams", "sse_max_streams_per_client", "sse_retry_after_s"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"`{name}` was {value!r} but must be a positive integer")
        if self.default_lang not in ("zh", "en"):
            problems.append(f"`default_lang` was {self.default_lang!r} but must be 'zh' or 'en'")
        if self.tiles_url is not None and not self.tiles_url.startswith(("http://", "https://")):
            problems.append(f"`tiles_url` was {self.tiles_url!r} but must be an http(s) URL")
        if (users is not None and users == journal) or (ws is not None and ws in (users, journal)):
            problems.append("`workspace`, `users_db` and `journal_db` must be different files")
        if problems:
            raise SettingsError("invalid web-map settings: " + "; ".join(problems))

    def replace(self, **changes: object) -> Settings:
        """Return a copy with some settings changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def users_db_for(workspace: str | Path) -> Path:
    """Return the default users database beside ``workspace`` (what ``geo-mz users add`` writes)."""
    return _default_beside(Path(workspace), "users.sqlite")


__all__ = ["Lang", "Settings", "SettingsError", "users_db_for"]

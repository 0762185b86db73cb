"""API errors: each class carries its HTTP status and a stable code (as pygeoapi's error.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class ApiError(Exception):
    """An error the API reports to the client as JSON ``{code, description, errors}``.

    Parameters
    ----------
    message
        What went wrong, for people: "中文 / English" for errors a user meets (the map page
        shows it as is).
    errors
        Per-field findings: dicts with ``field`` (e.g. ``"properties.kind"``), ``code`` and
        ``message``.
    headers
        Extra response headers (e.g. ``Allow`` for 405).
    code
        Overrides the class's machine-readable code.
    extra
        More machine-readable members of the JSON body (e.g. ``layer``, ``cause``).
    """

    status = 500
    code = "server_error"

    def __init__(
        self,
        message: str,
        *,
        errors: Sequence[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
        code: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors = [dict(e) for e in errors]
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        """Return the JSON body sent to the client."""
        out: dict[str, Any] = {**self.extra, "code": self.code, "description": self.message}
        if self.errors:
            out["errors"] = self.errors
        return out


class BadRequestError(ApiError):
    """Malformed request: bad query parameter, body not JSON, not a GeoJSON Feature."""

    status = 400
    code = "bad_request"


class UnauthorizedError(ApiError):
    """No (valid) login for an operation that needs one."""

    status = 401
    code = "login_required"


class ForbiddenError(ApiError):
    """Logged in, but the role may not do this (or the CSRF token is missing)."""

    status = 403
    code = "forbidden"


class NotFoundError(ApiError):
    """No such collection or feature."""

    status = 404
    code = "not_found"


class MethodNotAllowedError(ApiError):
    """The collection does not accept this write."""

    status = 405
    code = "method_not_allowed"


class ConflictError(ApiError):
    """The edit is based on a stale version (``If-Match``), or the id already exists."""

    status = 409
    code = "conflict"


class PayloadTooLargeError(ApiError):
    """The request body is larger than the configured limit."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaTypeError(ApiError):
    """A write whose body is not JSON."""

    status = 415
    code = "unsupported_media_type"


class UnprocessableError(ApiError):
    """Well-formed but invalid: value not allowed, geometry invalid or outside the area."""

    status = 422
    code = "invalid_feature"


class ComputationFailedError(ApiError):
    """A layer or figure the server computes from the workspace could not be computed: 500.

    Raised instead of serving an empty or default result, so a failed computation never looks
    like "no findings". The body names what failed (``layer`` or ``analysis``), the workspace
    layers it is computed from (``sources``) and why (``cause``); the message says what to do.
    """

    status = 500
    code = "computation_failed"


class ServiceBusyError(ApiError):
    """503: the workspace stayed locked by other readers or writers; nothing was written.

    Sent with ``Retry-After``: the edit can simply be sent again a moment later.
    """

    status = 503
    code = "workspace_busy"


BUSY_RETRY_AFTER_S = 2
"""Seconds a write refused with ``workspace_busy`` is told to wait (local choice: the lock
waits 10 s already, so a retry a little later usually finds the file free)."""


def busy_error(cause: Exception) -> ServiceBusyError:
    """Turn a write lock timeout (``geo_mz.core.gpkg_lock.WorkspaceBusyError``) into a 503.

    Parameters
    ----------
    cause
        The timeout; its bilingual message names the workspace file and the wait.

    Returns
    -------
    ServiceBusyError
        With ``Retry-After`` and the message followed by what to do.
    """
    return ServiceBusyError(
        f"{cause}. 请 {BUSY_RETRY_AFTER_S} 秒后重新提交 / send it again in {BUSY_RETRY_AFTER_S} s",
        headers={"Retry-After": str(BUSY_RETRY_AFTER_S)},
        extra={"retry_after_s": BUSY_RETRY_AFTER_S},
    )


def field_error(field: str, code: str, message: str) -> dict[str, str]:
    """One per-field finding for :attr:`ApiError.errors`."""
    return {"field": field, "code": code, "message": message}


__all__ = [
    "BUSY_RETRY_AFTER_S",
    "ApiError",
    "BadRequestError",
    "ComputationFailedError",
    "ConflictError",
    "ForbiddenError",
    "MethodNotAllowedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "ServiceBusyError",
    "UnauthorizedError",
    "UnprocessableError",
    "UnsupportedMediaTypeError",
    "busy_error",
    "field_error",
]

"""Checks every store makes before an edit, so the GeoPackage and PostGIS backends agree."""

from __future__ import annotations

from typing import Any

from webmap.core.errors import ConflictError, NotFoundError
from webmap.core.geojson import etag_matches


def check_preconditions(
    layer: str, fid: str, op: str, before: Any, etag: str | None, if_match: str | None
) -> None:
    """Refuse a create of an existing id, an edit of a missing one, or a stale ``If-Match``.

    Raises
    ------
    ConflictError
        ``id_exists`` or ``stale_version`` (409, with the current ETag).
    NotFoundError
        The feature to update or delete does not exist (404).
    """
    if op == "create" and before is not None:
        raise ConflictError(f"{layer} {fid!r} exists already", code="id_exists")
    if op != "create" and before is None:
        raise NotFoundError(f"no feature {fid!r} in collection '{layer}'")
    if op != "create" and if_match is not None and not etag_matches(if_match, etag):
        raise ConflictError(
            f"{layer} {fid!r} was changed by someone else (If-Match {if_match} is stale; "
            f"current ETag {etag}); reload it and edit again",
            code="stale_version",
            headers={"ETag": str(etag)},
        )

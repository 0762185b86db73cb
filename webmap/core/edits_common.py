"""Checks every store makes before an edit, so the GeoPackage and PostGIS backends agree."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from geo_mz.core.workspace_common import now_iso
from webmap.core.errors import (
    ApiError,
    ConflictError,
    NotFoundError,
    UnprocessableError,
    field_error,
)
from webmap.core.geojson import etag_matches, make_etag
from webmap.core.tilemath import edit_bboxes


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


def edit_event(
    *,
    op: str,
    layer: str,
    fid: str,
    version: int,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    user: str,
) -> tuple[dict[str, Any], str | None]:
    """Return the event an edit publishes (the same in every store) and the feature's new ETag.

    Parameters
    ----------
    op, layer, fid
        The edit: ``create``, ``update`` or ``delete`` of feature ``fid`` in ``layer``.
    version
        The feature's version after the edit.
    before, after
        The feature as GeoJSON before and after (None: none).
    user
        Who edited.

    Returns
    -------
    tuple
        The event's data (``at`` is now, UTC, to the second) and the new ETag (None after a
        delete).
    """
    new_etag = make_etag(version, after) if after is not None else None
    data = {
        "op": op,
        "layer": layer,
        "id": fid,
        "version": version,
        "etag": new_etag,
        "feature": after,
        "bboxes": edit_bboxes(before, after),  # what maps and tile caches redraw
        "by": user,
        "at": now_iso(),
    }
    return data, new_etag


def refuse_unpatchable(props: Mapping[str, Any], patchable: Collection[str]) -> None:
    """Refuse a patch that names a property outside ``patchable`` (422 ``not_editable`` each).

    Raises
    ------
    UnprocessableError
        Listing every such property, with what may be changed.
    """
    bad = sorted(set(props) - set(patchable))
    if bad:
        raise UnprocessableError(
            f"这些字段不能在此修改 / these may not be changed here: {bad}",
            errors=[
                field_error(f"properties.{k}", "not_editable", f"allowed: {list(patchable)}")
                for k in bad
            ],
        )


class PreconditionRequiredError(ApiError):
    """428: an edit of an existing feature came without ``If-Match`` (RFC 6585)."""

    status = 428
    code = "if_match_required"


def require_if_match(if_match: str | None, layer: str, fid: str) -> str:
    """Return the client's ``If-Match``, or refuse the edit with 428 when it sent none.

    Without it two people editing the same feature would overwrite each other unseen (a lost
    update). ``If-Match: *`` is accepted: the client says explicitly that it overwrites
    whatever is stored.

    Raises
    ------
    PreconditionRequiredError
        When ``if_match`` is missing or blank.
    """
    if if_match is None or not if_match.strip():
        raise PreconditionRequiredError(
            f"修改或删除 {layer} {fid!r} 须带 If-Match 请求头（先 GET 该要素，取其 ETag）"
            f" / changing or deleting {layer} {fid!r} needs an If-Match header: GET the "
            "feature first and send its ETag (or `*` to overwrite whatever is stored)",
        )
    return if_match

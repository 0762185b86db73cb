"""Fill fields a list does not have: the spec's defaults and the user's ``--default FIELD=VALUE``.

- An optional field absent from the file gets the ``default`` its spec declares (if any).
- ``--default FIELD=VALUE`` (``defaults={FIELD: VALUE}`` in Python) fills a field absent from the
  file, or the empty cells of a column that is there; a required field absent from the file is
  an error unless it is given this way.
- ``--default ID_FIELD=auto`` numbers the rows by their row in the file with the layer's id
  prefix (``S0001`` is row 1 of a shelters list); ``auto:PREFIX`` chooses the prefix.

Every fill is reported as a notice; the filled values are then validated like any other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from geo_mz.core.catalog import LayerSpec
from geo_mz.core.errors import LayerSpecError, Problem
from geo_mz.core.field_values import is_null

AUTO = "auto"


@dataclass(frozen=True)
class Fill:
    """One field filled: how, with what, and which rows (a boolean mask over the file's rows)."""

    field: str
    how: str  # absent_default, absent_user, empty_user, auto_absent, auto_empty
    value: Any
    mask: np.ndarray


def parse_defaults(items: Sequence[str]) -> dict[str, str]:
    """Parse ``FIELD=VALUE`` strings (the CLI's repeated ``--default``).

    Raises
    ------
    LayerSpecError
        When an item has no ``=`` or no field name, or a field is given twice.
    """
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise LayerSpecError(
                f"--default {item!r}：应写成 字段=值 / must be FIELD=VALUE, e.g. "
                f"--default capacity_persons=1000"
            )
        if name in out:
            raise LayerSpecError(f"--default {name} 给了两次 / --default {name} is given twice")
        out[name] = value.strip()
    return out


def _resolve(spec: LayerSpec, name: str) -> str:
    if name in spec.field_names:
        return name
    target = spec.match_header(name)
    if target is None:
        raise LayerSpecError(
            f"--default {name}=...：图层 '{spec.name}' 没有字段 '{name}' / layer '{spec.name}' "
            f"has no field '{name}'; fields are {spec.field_names}"
        )
    return target


def _auto_ids(spec: LayerSpec, value: str, rows: Sequence[int]) -> list[str]:
    prefix = value.split(":", 1)[1] if ":" in value else None
    width = max(4, len(str(max(rows, default=1))))
    return [spec.auto_id(int(r), width=width, prefix=prefix) for r in rows]


def apply_defaults(
    df: pd.DataFrame,
    spec: LayerSpec,
    defaults: Mapping[str, Any] | None,
    *,
    rows: Sequence[int],
) -> tuple[pd.DataFrame, list[Fill]]:
    """Fill absent fields and empty cells before validation.

    Parameters
    ----------
    df
        The layer's attributes, columns already matched to field names.
    spec
        The layer spec (its ``default`` values and id prefix).
    defaults
        User defaults by field name (or any heading the spec accepts); ``"auto"`` or
        ``"auto:PREFIX"`` for the id field numbers the rows.
    rows
        1-based file row of each row of ``df`` (for ``auto`` ids).

    Returns
    -------
    tuple
        The filled frame and one :class:`Fill` per field filled (see :func:`fill_notices`).

    Raises
    ------
    LayerSpecError
        When a default names no field of the layer, or ``auto`` is asked for another field
        than the id field.
    """
    user = {_resolve(spec, str(k)): v for k, v in (defaults or {}).items()}
    out = df.copy()
    fills: list[Fill] = []
    n = len(out)
    for f in spec.fields:
        present = f.name in out.columns
        if f.name in user:
            value = user[f.name]
            auto = isinstance(value, str) and value.strip().casefold().split(":")[0] == AUTO
            if auto and f.name != spec.id_field:
                raise LayerSpecError(
                    f"--default {f.name}=auto：只有编号字段 {spec.id_field} 可以自动编号 / only "
                    f"the id field '{spec.id_field}' can be numbered automatically"
                )
            if present:
                mask = np.array([is_null(v) for v in out[f.name].tolist()], dtype=bool)
            else:
                mask = np.ones(n, dtype=bool)
            column = out[f.name].astype(object).tolist() if present else [None] * n
            fill = _auto_ids(spec, value.strip(), rows) if auto else [value] * n
            out[f.name] = pd.Series(
                [fill[i] if mask[i] else column[i] for i in range(n)], index=out.index, dtype=object
            )
            if auto:
                how = "auto_empty" if present else "auto_absent"
            else:
                how = "empty_user" if present else "absent_user"
            fills.append(Fill(f.name, how, value, mask))
        elif not present and f.default is not None:
            out[f.name] = pd.Series([f.default] * n, index=out.index, dtype=object)
            fills.append(Fill(f.name, "absent_default", f.default, np.ones(n, dtype=bool)))
    return out, fills


def fill_notices(
    fills: Sequence[Fill], keep: np.ndarray, *, file: str, ids: Sequence[str | None]
) -> list[Problem]:
    """One notice per field filled, counting the rows that are kept (imported).

    Parameters
    ----------
    fills
        From :func:`apply_defaults`.
    keep
        Boolean mask of the rows kept (all True without a clip).
    file
        The source file, for messages.
    ids
        Id of each row of the file (for the range of automatic ids).
    """
    notes = []
    for fl in fills:
        n = int((fl.mask & keep).sum())
        v = fl.value
        if fl.how in ("empty_user", "auto_empty") and not fl.mask.any():
            msg = (
                f"{fl.field}：没有空值，--default 未使用 / no empty cells, --default {fl.field} "
                f"not used"
            )
        elif fl.how == "absent_default":
            msg = (
                f"{fl.field}：不在文件中，{n} 行按规范默认值设为 {v!r} / not in the file, set to "
                f"the spec's default {v!r} for {n} rows"
            )
        elif fl.how == "absent_user":
            msg = (
                f"{fl.field}：不在文件中，{n} 行设为 {v!r} (--default) / not in the file, set to "
                f"{v!r} for {n} rows (--default)"
            )
        elif fl.how == "empty_user":
            msg = (
                f"{fl.field}：{n} 个空值设为 {v!r} (--default) / {n} empty cells set to {v!r} "
                f"(--default)"
            )
        else:
            numbered = [ids[i] for i in np.flatnonzero(fl.mask & keep)]
            span = f"{numbered[0]}–{numbered[-1]}" if numbered else "-"
            msg = (
                f"{fl.field}：{n} 行按文件行号自动编号 {span} (--default {fl.field}={v}) / "
                f"{n} rows numbered by their file row, {span} (--default {fl.field}={v})"
            )
        notes.append(Problem(file, None, None, fl.field, "default_filled", msg, "notice"))
    return notes

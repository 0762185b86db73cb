"""Helpers shared by the marker checks and the joint inspection of boundary lines.

Package-internal: :func:`col` finds a column by any of its alternative names (e.g.
``line_id`` or ``界线编号`` in a marker register), and :class:`LineIssues` collects the line
issues (stretches of line with an issue) found while lines are inspected; used by
:mod:`geo_mz.boundaries.markers` and :mod:`geo_mz.boundaries.inspection`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import shapely

__all__ = ["LineIssues", "col"]


def col(df: pd.DataFrame, *names: str) -> str | None:
    low = {str(c).casefold(): c for c in df.columns}
    for n in names:
        if n.casefold() in low:
            return str(low[n.casefold()])
    return None


class LineIssues:
    """Collects line issues (rows) while lines are inspected."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(
        self,
        line_id: str,
        kind: str,
        pieces: Sequence[shapely.Geometry],
        *,
        c0: float = np.nan,
        c1: float = np.nan,
        max_offset: float = np.nan,
        detail: str = "",
    ) -> None:
        for p in pieces:
            self.rows.append(
                {
                    "line_id": line_id,
                    "kind": kind,
                    "from_m": c0,
                    "to_m": c1,
                    "length_m": float(p.length),
                    "max_offset_m": max_offset,
                    "detail": detail,
                    "geometry": p,
                }
            )

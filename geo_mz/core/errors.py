"""Exception hierarchy: one root, each class also a builtin so callers can catch either."""

from __future__ import annotations

from dataclasses import dataclass


class GeoMzError(Exception):
    """Root of every error geo_mz raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One finding about one feature (or the whole file when ``row`` is None).

    Attributes
    ----------
    file
        The source file (or workspace table) the finding is about.
    row
        0-based row number in the source, or None for file-level findings.
    feature_id
        Value of the layer's id field for that row, when known.
    field
        The field (column) concerned, ``"geometry"``, or None.
    code
        Stable machine-readable kind, e.g. ``"missing_required"``.
    message
        What is wrong, in English, with the value received.
    severity
        ``"error"`` blocks an import; ``"warning"`` and ``"notice"`` do not.
    """

    file: str
    row: int | None
    feature_id: str | None
    field: str | None
    code: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.feature_id not in (None, ""):
            where += f" (id {self.feature_id})"
        if self.field:
            where += f", field '{self.field}'"
        return f"{where}: [{self.severity}:{self.code}] {self.message}"


class LayerSpecError(GeoMzError, ValueError):
    """A layer spec in the catalog is malformed or a layer kind is unknown."""


class LayerReadError(GeoMzError, ValueError):
    """A source file cannot be read at all (missing, garbage, wrong format)."""


class OsmImportError(LayerReadError):
    """An OSM file cannot be turned into roads (not OSM, no highway, no ``highway`` column)."""


class CrsError(GeoMzError, ValueError):
    """A CRS is missing, unknown or unsuitable for the operation."""


class LayerValidationError(GeoMzError, ValueError):
    """A layer breaks its spec; ``problems`` lists every finding at once."""

    def __init__(self, problems: list[Problem], *, max_shown: int = 50) -> None:
        self.problems = list(problems)
        errors = [p for p in self.problems if p.severity == "error"]
        shown = "\n".join(f"  - {p}" for p in errors[:max_shown])
        more = f"\n  ... and {len(errors) - max_shown} more" if len(errors) > max_shown else ""
        super().__init__(f"{len(errors)} validation error(s):\n{shown}{more}")


class WorkspaceError(GeoMzError, ValueError):
    """A workspace is missing, not a geo_mz workspace, or a write to it failed."""


class UnitsError(GeoMzError, ValueError):
    """Administrative units that cannot be used as reporting units (level, codes, columns)."""
